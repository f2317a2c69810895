//! `accept` through group commit on a real PostgreSQL server, directly and through
//! PgBouncer in transaction mode: concurrent accepts share transactions, and each message
//! still gets the answer it would get alone, with its nonce claimed if and only if its
//! message was counted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sage_store::prelude::*;
use sage_store::{keys, ErrorKind, KeySource, ManualClock, NewSession, OpenOptions, SessionKey, Store};

struct Setup {
    store: Store,
    clock: Arc<ManualClock>,
    db: sage_testkit::TestDatabase,
    // Declared after the store, so the store closes before the pooler stops.
    _bouncer: Option<sage_testkit::PgBouncer>,
}

async fn setup(through_pgbouncer: bool) -> Setup {
    let db = sage_testkit::database().await.expect("test database");
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let direct = sage_conn::Target::Postgres(db.settings().clone());
    let mut migrate = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    migrate.migrate = true;
    Store::open(&direct, migrate).await.expect("migrate").close().await;
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.clock = clock.clone();
    let (target, bouncer) = if through_pgbouncer {
        let pooler = sage_testkit::PgBouncer::start_for(db.admin_settings(), "transaction").expect("pgbouncer");
        (sage_conn::Target::Postgres(pooler.settings_for(db.settings())), Some(pooler))
    } else {
        (direct, None)
    };
    let store = Store::open(&target, options).await.expect("open store");
    Setup { store, clock, db, _bouncer: bouncer }
}

fn session(id: &str, expires_at: chrono::DateTime<Utc>, max_messages: Option<u64>) -> NewSession {
    let mut s = NewSession::new("did:sage:test:a", "did:sage:test:b", SessionKey::new(vec![5u8; 32]), expires_at);
    s.id = id.to_string();
    s.max_messages = max_messages;
    s
}

/// The transactions that wrote the given nonces' rows (their `xmin`), one entry each.
async fn writers(db: &sage_testkit::TestDatabase, nonces: &[String]) -> HashSet<String> {
    let client = sage_conn::connect(db.settings()).await.unwrap();
    let rows = client.query("SELECT xmin::text FROM nonces WHERE nonce = ANY($1)", &[&nonces]).await.unwrap();
    assert_eq!(rows.len(), nonces.len(), "every nonce has its row");
    rows.iter().map(|r| r.get(0)).collect()
}

async fn mixed_batch(through_pgbouncer: bool) {
    let s = setup(through_pgbouncer).await;
    let (store, now) = (&s.store, s.store.now());
    let later = now + chrono::Duration::hours(1);
    for (id, expires, budget) in [
        ("live", later, None),
        ("short", now + chrono::Duration::seconds(30), None),
        ("budget", later, Some(3)),
        ("blocker", later, None),
    ] {
        store.sessions().create(&session(id, expires, budget)).await.unwrap();
    }
    store.accept("budget", "budget-0", later).await.unwrap();
    store.nonces().claim("used-before", None, later).await.unwrap();
    s.clock.advance(chrono::Duration::minutes(1));

    // Both in-flight slots wait on a locked session, so everything sent meanwhile queues up
    // and goes out as one batch when the lock is released.
    let admin = sage_conn::connect(s.db.settings()).await.unwrap();
    admin.batch_execute("BEGIN; SELECT 1 FROM sessions WHERE id = 'blocker' FOR UPDATE").await.unwrap();
    let mut blocked = Vec::new();
    for nonce in ["blocked-1", "blocked-2"] {
        let store = store.clone();
        blocked.push(tokio::spawn(async move { store.accept("blocker", nonce, later).await }));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let messages: Vec<(&str, &str, Option<ErrorKind>)> = vec![
        ("live", "live-1", None),
        ("live", "live-2", None),
        ("short", "short-1", Some(ErrorKind::Expired)),
        ("budget", "budget-1", None),
        ("budget", "budget-2", None),
        ("budget", "budget-3", Some(ErrorKind::Expired)),
        ("budget", "budget-4", Some(ErrorKind::Expired)),
        ("live", "used-before", Some(ErrorKind::Replayed)),
        ("missing", "missing-1", Some(ErrorKind::NotFound)),
        // The same nonce for an expired session and a live one: the live one gets it.
        ("short", "shared", Some(ErrorKind::Expired)),
        ("live", "shared", None),
    ];
    let tasks: Vec<_> = messages
        .iter()
        .map(|&(id, nonce, _)| {
            let store = store.clone();
            tokio::spawn(async move { store.accept(id, nonce, later).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    admin.batch_execute("COMMIT").await.unwrap();
    for task in blocked {
        task.await.unwrap().unwrap();
    }

    // Which of the budget session's four messages win depends on their order in the batch;
    // that two of them do, does not.
    let mut budget_accepted = 0;
    for ((id, nonce, expected), task) in messages.iter().zip(tasks) {
        let result = task.await.unwrap();
        let used = store.nonces().is_used(nonce).await.unwrap();
        if *id == "budget" {
            match result {
                Ok(_) => budget_accepted += 1,
                Err(e) => assert_eq!(e.kind(), ErrorKind::Expired, "{nonce}: {e}"),
            }
            continue;
        }
        match (expected, result) {
            (None, Ok(_)) => assert!(used, "{nonce} was accepted, so its nonce is claimed"),
            (Some(kind), Err(e)) => {
                assert_eq!(e.kind(), *kind, "{nonce}: {e}");
                if *kind != ErrorKind::Replayed && *nonce != "shared" {
                    assert!(!used, "{nonce} was refused, so its nonce is free");
                }
            }
            (expected, result) => panic!("{nonce}: expected {expected:?}, got {result:?}"),
        }
    }
    assert_eq!(budget_accepted, 2, "the budget of 3 had one message spent before the batch");
    let used: Vec<bool> = futures_util::future::join_all(
        (1..=4).map(|i| async move { store.nonces().is_used(&format!("budget-{i}")).await.unwrap() }),
    )
    .await;
    assert_eq!(used.iter().filter(|u| **u).count(), 2, "exactly the accepted budget messages hold their nonces");

    let live = store.sessions().get("live").await.unwrap();
    assert_eq!(live.message_count, 3, "live-1, live-2 and shared");
    assert_eq!(live.last_activity, s.store.now());
    assert!(store.sessions().get("budget").await.unwrap_err().is_expired(), "the budget is spent");
    assert!(!store.nonces().is_used("short-1").await.unwrap());
    assert!(!store.nonces().is_used("missing-1").await.unwrap());

    // The first occurrences went out in one transaction.
    let first = ["live-1".to_string(), "live-2".to_string()];
    assert_eq!(writers(&s.db, &first).await.len(), 1, "accepts of one batch share a transaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_batch_answers_each_message_as_if_alone() {
    mixed_batch(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_batch_answers_each_message_as_if_alone_through_pgbouncer() {
    mixed_batch(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_of_one_nonce_have_one_winner_across_sessions() {
    const TASKS: usize = 64;
    let s = setup(false).await;
    let later = s.store.now() + chrono::Duration::hours(1);
    for i in 0..8 {
        s.store.sessions().create(&session(&format!("s{i}"), later, None)).await.unwrap();
    }
    for round in 0..3 {
        let nonce = format!("contested-{round}");
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (store, nonce) = (s.store.clone(), nonce.clone());
                tokio::spawn(async move { store.accept(&format!("s{}", t % 8), &nonce, later).await })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => wins += 1,
                Err(e) => assert!(e.is_replayed(), "{e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    let mut counted = 0;
    for i in 0..8 {
        counted += s.store.sessions().get(&format!("s{i}")).await.unwrap().message_count;
    }
    assert_eq!(counted, 3, "one message counted per contested nonce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_session_accepts_exactly_its_budget() {
    const TASKS: usize = 300;
    const BUDGET: u64 = 11;
    let s = setup(false).await;
    let later = s.store.now() + chrono::Duration::hours(1);
    s.store.sessions().create(&session("hot", later, Some(BUDGET))).await.unwrap();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = s.store.clone();
            tokio::spawn(async move { store.accept("hot", &format!("hot-{i}"), later).await })
        })
        .collect();
    let mut accepted = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(session) => accepted.push((i, session.message_count)),
            Err(e) => assert!(e.is_expired(), "{e}"),
        }
    }
    assert_eq!(accepted.len() as u64, BUDGET);
    let mut counts: Vec<u64> = accepted.iter().map(|(_, c)| *c).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=BUDGET).collect::<Vec<_>>(), "each accepted message sees its own count");
    assert_eq!(s.store.nonces().count_active().await.unwrap(), BUDGET, "refused messages claimed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepts_spread_over_sessions_share_commits() {
    const SESSIONS: usize = 50;
    const MESSAGES: usize = 400;
    let s = setup(false).await;
    let later = s.store.now() + chrono::Duration::hours(1);
    for i in 0..SESSIONS {
        s.store.sessions().create(&session(&format!("spread-{i}"), later, None)).await.unwrap();
    }
    let tasks: Vec<_> = (0..MESSAGES)
        .map(|i| {
            let store = s.store.clone();
            tokio::spawn(
                async move { store.accept(&format!("spread-{}", i % SESSIONS), &format!("m-{i}"), later).await },
            )
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let nonces: Vec<String> = (0..MESSAGES).map(|i| format!("m-{i}")).collect();
    let transactions = writers(&s.db, &nonces).await.len();
    assert!(transactions < MESSAGES / 4, "{MESSAGES} accepts took {transactions} transactions");
    for i in 0..SESSIONS {
        let session = s.store.sessions().get(&format!("spread-{i}")).await.unwrap();
        assert_eq!(session.message_count, (MESSAGES / SESSIONS) as u64);
    }
}
