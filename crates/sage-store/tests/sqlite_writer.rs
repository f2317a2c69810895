//! The SQLite claim writer on a real file: claims from many tasks stay exact, the log is
//! checkpointed and rewound instead of growing without bound, and closing the store lets
//! go of the file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use sage_store::*;

async fn open(file: &sage_testkit::SqliteFile) -> Store {
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.migrate = true;
    let target = sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(file.path().to_path_buf()));
    Store::open(&target, options).await.unwrap()
}

fn wal(file: &sage_testkit::SqliteFile) -> PathBuf {
    let mut path = file.path().as_os_str().to_owned();
    path.push("-wal");
    PathBuf::from(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_stay_exact_and_the_log_bounded() {
    let file = sage_testkit::SqliteFile::new();
    let store = open(&file).await;
    let expires_at = Utc::now() + chrono::Duration::minutes(5);
    // Eight writers, 40,000 claims: the log passes SQLite's 1000-page checkpoint mark
    // many times over.
    let mut tasks = Vec::new();
    for client in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5_000 {
                store.nonces().claim(&format!("w{client}-{i}"), None, expires_at).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.nonces().count_active().await.unwrap(), 40_000);
    for nonce in ["w0-0", "w3-2500", "w7-4999"] {
        let err = store.nonces().claim(nonce, None, expires_at).await.unwrap_err();
        assert!(err.is_replayed(), "{nonce}: {err}");
    }
    let log = std::fs::metadata(wal(&file)).unwrap().len();
    assert!(log < 64 << 20, "the log grew to {log} bytes");

    // Once every connection is closed SQLite folds the log into the database and removes
    // it; a connection left open (a pooled one, the writer's) would keep it.
    store.close().await;
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal(&file).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!wal(&file).exists(), "a connection still holds the database open");
    let rows: i64 = rusqlite::Connection::open(file.path())
        .unwrap()
        .query_row("SELECT count(*) FROM nonces", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 40_000);
}
