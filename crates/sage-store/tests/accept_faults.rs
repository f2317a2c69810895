//! `accept` under faults on a real PostgreSQL server: connections killed while messages are
//! accepted. Whatever each caller is told, a claimed nonce always comes with its counted
//! message and a counted message with its claimed nonce.

use sage_store::prelude::*;
use sage_store::{keys, KeySource, NewSession, OpenOptions, SessionKey, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_never_split_a_nonce_from_its_message() {
    const MESSAGES: usize = 400;
    let db = sage_testkit::database().await.unwrap();
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.migrate = true;
    let store = Store::open(&sage_conn::Target::Postgres(db.settings().clone()), options).await.unwrap();
    let expires_at = store.now() + chrono::Duration::hours(1);
    let session = NewSession::new("did:sage:test:a", "did:sage:test:b", SessionKey::new(vec![3u8; 32]), expires_at);
    let session = store.sessions().create(&session).await.unwrap();

    // Kills every other connection to the test database, again and again, while 8 tasks
    // accept messages.
    let killer = {
        let (admin, name) = (db.admin_settings().clone(), db.name().to_string());
        tokio::spawn(async move {
            let client = sage_conn::connect(&admin).await.unwrap();
            let mut kills = 0u64;
            for _ in 0..40 {
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
                let rows = client
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await
                    .unwrap();
                kills += rows.len() as u64;
            }
            kills
        })
    };
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (store, id) = (store.clone(), session.id.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                for i in (t..MESSAGES).step_by(8) {
                    match store.accept(&id, &format!("fault-{i}"), expires_at).await {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            assert!(e.is_retryable() || e.is_replayed(), "{e}");
                            if e.is_retryable() {
                                // Through the batcher too, the driver's error stays reachable.
                                assert!(std::error::Error::source(&e).is_some(), "{e} keeps its source");
                            }
                            failed += 1;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let mut ok = 0;
    let mut failed = 0;
    for task in tasks {
        let (o, f) = task.await.unwrap();
        ok += o;
        failed += f;
    }
    let kills = killer.await.unwrap();
    assert!(kills > 0 && failed > 0, "the faults landed: {kills} kills, {failed} failed accepts");

    // Retry until the database answers again, then compare the two sides.
    let mut count = None;
    for _ in 0..50 {
        if let Ok(s) = store.sessions().get(&session.id).await {
            count = Some(s.message_count);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let count = count.expect("the store recovers");
    let mut used = 0;
    for i in 0..MESSAGES {
        if store.nonces().is_used(&format!("fault-{i}")).await.unwrap() {
            used += 1;
        }
    }
    assert_eq!(count, used, "every claimed nonce has its message counted, and the other way round");
    assert!(used >= ok, "every accepted message is stored ({ok} accepted, {used} stored)");
}

/// The same with messages spread over many sessions, each with a budget, so that batches
/// carry several sessions and refuse some messages: per session, the nonces claimed are
/// exactly the messages counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_connections_never_split_a_batch_of_many_sessions() {
    const SESSIONS: usize = 12;
    const MESSAGES: usize = 600;
    const BUDGET: u64 = 40;
    let db = sage_testkit::database().await.unwrap();
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.migrate = true;
    let store = Store::open(&sage_conn::Target::Postgres(db.settings().clone()), options).await.unwrap();
    let expires_at = store.now() + chrono::Duration::hours(1);
    for s in 0..SESSIONS {
        let mut session =
            NewSession::new("did:sage:test:a", "did:sage:test:b", SessionKey::new(vec![3u8; 32]), expires_at);
        session.id = format!("many-{s}");
        session.max_messages = Some(BUDGET);
        store.sessions().create(&session).await.unwrap();
    }
    let killer = {
        let (admin, name) = (db.admin_settings().clone(), db.name().to_string());
        tokio::spawn(async move {
            let client = sage_conn::connect(&admin).await.unwrap();
            let mut kills = 0u64;
            for _ in 0..40 {
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
                let rows = client
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await
                    .unwrap();
                kills += rows.len() as u64;
            }
            kills
        })
    };
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut failed = 0u64;
                for i in (t..MESSAGES).step_by(16) {
                    if let Err(e) =
                        store.accept(&format!("many-{}", i % SESSIONS), &format!("many-n{i}"), expires_at).await
                    {
                        assert!(e.is_retryable() || e.is_expired(), "{e}");
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        failed += task.await.unwrap();
    }
    let kills = killer.await.unwrap();
    assert!(kills > 0 && failed > 0, "the faults landed: {kills} kills, {failed} failed accepts");

    let client = sage_conn::connect(db.settings()).await.unwrap();
    let rows = client
        .query(
            "SELECT s.id, s.message_count, (SELECT count(*) FROM nonces n WHERE n.session_id = s.id) FROM sessions s ORDER BY s.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), SESSIONS);
    for row in rows {
        let (id, counted, claimed): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(counted, claimed, "session {id}: messages counted and nonces claimed");
        assert!(counted as u64 <= BUDGET, "session {id}: within its budget");
    }
}
