//! The store through a real PgBouncer 1.18 in transaction mode, where one client connection
//! runs each transaction in whichever server session is free: the store notices the pooler,
//! sends no named prepared statement, and keeps replay protection exact under contention.
//! (The whole store contract also runs through it: `conformance.rs`, module `pgbouncer`.)

use sage_conn::{Pooler, Target};
use sage_store::*;

/// A migrated test database, and a PgBouncer in transaction mode in front of its server.
async fn pooled() -> (sage_testkit::TestDatabase, sage_testkit::PgBouncer) {
    let db = sage_testkit::database().await.expect("test database");
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.migrate = true;
    Store::open(&Target::Postgres(db.settings().clone()), options).await.expect("migrate").close().await;
    let bouncer = sage_testkit::PgBouncer::start_for(db.admin_settings(), "transaction").expect("pgbouncer");
    (db, bouncer)
}

fn options(key: String) -> OpenOptions {
    OpenOptions::new(KeySource::Inline(vec![key]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_is_detected_and_a_declared_one_is_believed() {
    let (db, bouncer) = pooled().await;
    let direct = sage_conn::decide_pooler(db.settings()).await.unwrap();
    assert_eq!(direct.pooler, Pooler::None, "a direct connection keeps prepared statements");
    let through = sage_conn::decide_pooler(&bouncer.settings_for(db.settings())).await.unwrap();
    assert_eq!(through.pooler, Pooler::Transaction, "PgBouncer's port is not the server's");
    let declared = sage_conn::PgSettings { pooler: Pooler::Transaction, ..db.settings().clone() };
    assert_eq!(sage_conn::decide_pooler(&declared).await.unwrap().pooler, Pooler::Transaction);

    // A store opened with migrations through a declared pooler refuses them, saying what to do.
    let mut migrating = options(keys::generate_key().to_string());
    migrating.migrate = true;
    let declared_url = sage_conn::PgSettings { pooler: Pooler::Transaction, ..bouncer.settings_for(db.settings()) };
    let fresh = sage_testkit::database().await.unwrap();
    let fresh_through = sage_conn::PgSettings { dbname: fresh.name().to_string(), ..declared_url.clone() };
    let err = Store::open(&Target::Postgres(fresh_through), migrating).await.unwrap_err().to_string();
    assert!(err.contains("pooler") && err.contains("run migrations over a direct connection"), "{err}");
    // The migrated database opens through it.
    let store = Store::open(&Target::Postgres(declared_url), options(keys::generate_key().to_string())).await.unwrap();
    store.nonces().claim("n", None, store.now() + chrono::Duration::minutes(1)).await.unwrap();
    store.close().await;
}

/// Two stores (two services) through one pooler, 24 tasks claiming the same 400 nonces one
/// by one and in batches, in different orders: every nonce is accepted exactly once and
/// nothing fails. The pooler has fewer server connections (20) than the stores have
/// clients (2 × 25), so server sessions change hands all the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_through_the_pooler_accept_each_nonce_once() {
    const TASKS: usize = 24;
    const NONCES: usize = 400;
    let (db, bouncer) = pooled().await;
    let key = keys::generate_key().to_string();
    let through = Target::Postgres(bouncer.settings_for(db.settings()));
    let stores = [
        Store::open(&through, options(key.clone())).await.unwrap(),
        Store::open(&through, options(key.clone())).await.unwrap(),
    ];
    let later = stores[0].now() + chrono::Duration::minutes(5);
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let nonces = stores[task % 2].nonces().clone();
        handles.push(tokio::spawn(async move {
            let mut wins = vec![0u32; NONCES];
            let mut order: Vec<usize> = (0..NONCES).collect();
            order.rotate_left(task * NONCES / TASKS);
            if task % 3 == 0 {
                for chunk in order.chunks(50) {
                    let claims: Vec<NonceClaim> = chunk
                        .iter()
                        .map(|i| NonceClaim { nonce: format!("race-{i}"), session_id: None, expires_at: later })
                        .collect();
                    for (i, answer) in chunk.iter().zip(nonces.claim_many(&claims).await.expect("claim_many")) {
                        if answer == Claim::Fresh {
                            wins[*i] += 1;
                        }
                    }
                }
            } else {
                for i in order {
                    match nonces.claim(&format!("race-{i}"), None, later).await {
                        Ok(()) => wins[i] += 1,
                        Err(e) => assert_eq!(e.kind(), ErrorKind::Replayed, "{e}"),
                    }
                }
            }
            wins
        }));
    }
    let mut total = vec![0u32; NONCES];
    for handle in handles {
        for (i, w) in handle.await.unwrap().into_iter().enumerate() {
            total[i] += w;
        }
    }
    assert!(total.iter().all(|&w| w == 1), "each nonce accepted exactly once: {total:?}");
    let errors: u64 = stores
        .iter()
        .flat_map(|s| s.metrics())
        .flat_map(|m| m.outcomes.into_iter().filter(|(o, _)| !matches!(*o, "ok" | "replayed")).map(|(_, n)| n))
        .sum();
    assert_eq!(errors, 0, "no operation failed through the pooler");
    assert_eq!(stores[1].nonces().count_active().await.unwrap(), NONCES as u64);
    for store in stores {
        store.close().await;
    }
}

/// Many callers meeting new statements at once through a small pool: learning a statement's
/// parameter types uses the caller's own connection, so they cannot end up holding every
/// connection while each waits for another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_first_statements_at_once_through_a_small_pool_do_not_wait_for_each_other() {
    let (db, bouncer) = pooled().await;
    let mut settings = bouncer.settings_for(db.settings());
    settings.pool.max_connections = 2;
    settings.connect_timeout = std::time::Duration::from_secs(3);
    let store = Store::open(&Target::Postgres(settings), options(keys::generate_key().to_string())).await.unwrap();
    let later = store.now() + chrono::Duration::minutes(5);
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                // Three statements none of the callers has sent yet.
                let id = format!("first-{i}");
                let found = store.sessions().get(&id).await;
                assert!(found.unwrap_err().is_not_found());
                store.nonces().claim(&format!("first-n{i}"), None, later).await.unwrap();
                store.dids().get(&format!("did:example:{i}")).await.unwrap_err()
            })
        })
        .collect();
    // Callers waiting for each other would end in the pool's "no connection became
    // available" error instead of these answers.
    for task in tasks {
        assert!(task.await.unwrap().is_not_found());
    }
    store.close().await;
}
