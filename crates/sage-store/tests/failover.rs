//! Nonce claims through a multi-host URL while the primary crashes and its streaming
//! standby is promoted: claims resume on the new primary without a restart, no replay is
//! ever accepted, and with synchronous replication no acknowledged claim is lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use sage_conn::{PgSettings, SessionAttrs};
use sage_store::*;
use sage_testkit::{ClusterOptions, PgCluster};

fn sync_primary() -> PgCluster {
    PgCluster::start(ClusterOptions {
        settings: vec![
            ("synchronous_commit".into(), "on".into()),
            ("synchronous_standby_names".into(), "standby1".into()),
        ],
        ..ClusterOptions::default()
    })
    .unwrap()
}

/// Both servers, primary first, asking for the one that accepts writes.
fn both(primary: &PgCluster, standby: &PgCluster, dbname: &str) -> PgSettings {
    let mut pg = primary.admin_settings().with_dbname(dbname);
    pg.other_hosts = vec![("127.0.0.1".into(), standby.port())];
    pg.target_session_attrs = SessionAttrs::ReadWrite;
    pg.connect_timeout = Duration::from_secs(2);
    pg
}

#[derive(Default)]
struct Outcomes {
    /// Claims the store answered "fresh".
    acknowledged: Vec<String>,
    /// Claims that failed with an error whose outcome the caller cannot know.
    failed: usize,
    /// Fresh nonces answered "replayed" on a retry after an error: their first attempt
    /// committed although the caller saw an error. Never a nonce claimed before.
    replayed_after_error: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_follow_a_failover_and_lose_nothing_under_synchronous_replication() {
    let primary = sync_primary();
    let standby = primary.start_standby("standby1").unwrap();
    let admin = sage_conn::connect(&primary.admin_settings()).await.unwrap();
    admin.batch_execute("CREATE DATABASE app").await.unwrap();

    let settings = both(&primary, &standby, "app");
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.migrate = true;
    let store = Store::open(&sage_conn::Target::Postgres(settings), options).await.unwrap();

    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let last_ack = Arc::new(Mutex::new(Instant::now()));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (store, outcomes, stop, last_ack) = (store.clone(), outcomes.clone(), stop.clone(), last_ack.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let nonce = format!("w{w}-{i}");
                    i += 1;
                    // Retry one nonce until the store gives an answer, as a client would.
                    let mut errored = false;
                    loop {
                        let expires = Utc::now() + chrono::Duration::hours(1);
                        match store.nonces().claim(&nonce, None, expires).await {
                            Ok(()) => {
                                outcomes.lock().unwrap().acknowledged.push(nonce.clone());
                                *last_ack.lock().unwrap() = Instant::now();
                                break;
                            }
                            Err(e) if e.is_replayed() => {
                                assert!(errored, "{nonce} was never claimed, yet answered replayed");
                                outcomes.lock().unwrap().replayed_after_error += 1;
                                break;
                            }
                            Err(_) => {
                                errored = true;
                                outcomes.lock().unwrap().failed += 1;
                                if stop.load(Ordering::Relaxed) {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                }
            })
        })
        .collect();

    // Claims flow, then the primary crashes at a point that varies from run to run.
    let before = 400 + rand_millis(600);
    tokio::time::sleep(Duration::from_millis(before)).await;
    let acked_before_crash = outcomes.lock().unwrap().acknowledged.len();
    assert!(acked_before_crash > 0, "claims flowed before the crash");
    primary.crash().unwrap();
    let crashed_at = Instant::now();
    standby.promote().unwrap();
    // Claims resume on the promoted standby without a restart of the store.
    let resumed = loop {
        if *last_ack.lock().unwrap() > crashed_at {
            break crashed_at.elapsed();
        }
        assert!(crashed_at.elapsed() < Duration::from_secs(60), "claims did not resume within 60s of the failover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    eprintln!(
        "failover: {} claims acknowledged ({} before the crash), {} errors, {} answered replayed after an error; \
         claims resumed {} ms after the crash",
        outcomes.acknowledged.len(),
        acked_before_crash,
        outcomes.failed,
        outcomes.replayed_after_error,
        resumed.as_millis()
    );
    assert!(outcomes.acknowledged.len() > acked_before_crash, "claims were acknowledged after the failover");
    // Every acknowledged claim survived on the new primary: claiming it again is a replay.
    let survivor = sage_conn::connect(&standby.admin_settings().with_dbname("app")).await.unwrap();
    let kept: i64 = survivor
        .query_one("SELECT count(*) FROM nonces WHERE nonce = ANY($1)", &[&outcomes.acknowledged])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept as usize, outcomes.acknowledged.len(), "acknowledged claims lost in the failover");
    for nonce in outcomes.acknowledged.iter().step_by(7) {
        let again = store.nonces().claim(nonce, None, Utc::now() + chrono::Duration::hours(1)).await.unwrap_err();
        assert!(again.is_replayed(), "{nonce}: {again}");
    }
}

fn rand_millis(spread: u64) -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64 % spread
}
