//! Rows written by another client, which SAGE's own checks would have refused: reading them
//! is an error that names the column, never a panic, and never a silent loss.

use chrono::Utc;
use sage_store::*;

/// JSON objects nested `depth` levels deep: deeper than serde_json's recursion limit (128),
/// well within what PostgreSQL's jsonb and SQLite's json_valid accept.
fn nested(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

fn keys() -> KeySource {
    KeySource::Inline(vec![keys::generate_key().to_string()])
}

fn assert_names_metadata(result: Result<Session>) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    assert!(err.to_string().contains("metadata"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_metadata_on_postgres_is_an_error_not_a_panic() {
    let db = sage_testkit::database().await.unwrap();
    let mut options = OpenOptions::new(keys());
    options.migrate = true;
    let store = Store::open(&sage_conn::Target::Postgres(db.settings().clone()), options).await.unwrap();
    let other = sage_conn::connect(db.settings()).await.unwrap();
    other
        .execute(
            "INSERT INTO sessions (id, client_did, server_did, session_key, created_at, expires_at, last_activity, metadata) \
             VALUES ('deep', 'did:sage:x:c', 'did:sage:x:s', '\\x00', now(), now() + interval '1 hour', now(), $1::text::jsonb)",
            &[&nested(200)],
        )
        .await
        .unwrap();
    assert_names_metadata(store.sessions().get("deep").await);
    let listed = store.sessions().list_by_client("did:sage:x:c", Page::default()).await.unwrap_err();
    assert!(listed.to_string().contains("metadata"), "{listed}");

    // A timestamp PostgreSQL holds but chrono cannot: an error naming the column.
    other
        .execute(
            "INSERT INTO sessions (id, client_did, server_did, session_key, created_at, expires_at, last_activity) \
             VALUES ('forever', 'did:sage:x:c2', 'did:sage:x:s', '\\x00', now(), 'infinity', now())",
            &[],
        )
        .await
        .unwrap();
    let err = store.sessions().get("forever").await.unwrap_err();
    assert!(err.to_string().contains("expires_at"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_metadata_on_sqlite_is_an_error_not_read_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sage.db");
    let target = sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(path.clone()));
    let mut options = OpenOptions::new(keys());
    options.migrate = true;
    let store = Store::open(&target, options).await.unwrap();
    let now = Utc::now().timestamp_micros();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO sessions (id, client_did, server_did, session_key, created_at, expires_at, last_activity, metadata) \
             VALUES ('deep', 'did:sage:x:c', 'did:sage:x:s', x'00', ?1, ?2, ?1, ?3)",
            rusqlite::params![now, now + 3_600_000_000, nested(200)],
        )
        .unwrap();
    // Read as "no metadata", the next update would have written NULL over it.
    assert_names_metadata(store.sessions().get("deep").await);
}
