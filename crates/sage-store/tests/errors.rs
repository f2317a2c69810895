//! Errors tell the caller what to do: configuration problems are not retryable, outages
//! are, every kind maps to one HTTP status, and what reaches a client names nothing of the
//! deployment. Errors that travel through the claim batcher keep their source.

use std::error::Error as _;

use chrono::Utc;
use sage_store::{keys, ErrorKind, KeySource, OpenOptions, Store};

fn options(migrate: bool) -> OpenOptions {
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.migrate = migrate;
    options
}

fn sqlite(file: &sage_testkit::SqliteFile) -> sage_conn::Target {
    sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(file.path().to_path_buf()))
}

#[tokio::test]
async fn a_database_without_schema_is_a_configuration_problem() {
    let file = sage_testkit::SqliteFile::new();
    let err = Store::open(&sqlite(&file), options(false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(!err.is_retryable(), "retrying never creates a schema");
    assert_eq!(err.http_status(), 500);
    let text = err.to_string();
    assert!(text.contains("no SAGE schema yet") && text.contains("migrate"), "{text}");
    assert!(!text.contains("sage-db"), "the library names no command of the binary: {text}");
    assert_eq!(err.reason(), Some(&sage_store::Reason::NoSchema));
    assert_eq!(err.client_message(), "internal server error");
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_a_configuration_problem() {
    let file = sage_testkit::SqliteFile::new();
    Store::open(&sqlite(&file), options(true)).await.unwrap();
    let conn = rusqlite::Connection::open(file.path()).unwrap();
    conn.execute(
        "INSERT INTO sage_schema_history (version, name, checksum, state, applied_at, applied_by) \
         VALUES (99999999, 'from a newer build', 'x', 'applied', '2030-01-01T00:00:00Z', 'test')",
        [],
    )
    .unwrap();
    drop(conn);
    let err = Store::open(&sqlite(&file), options(false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_retryable_and_its_address_stays_with_the_operator() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = sage_conn::Settings::parse_url(
        "test",
        &format!("postgres://sage@127.0.0.1:{port}/sage?sslmode=disable&connect_timeout=2"),
        sage_conn::Origin::Flag,
    )
    .unwrap();
    let err = Store::open(&settings.target, options(false)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert_eq!(err.http_status(), 503);
    assert!(err.to_string().contains(&port.to_string()), "the operator learns where: {err}");
    let shown = err.client_message();
    assert!(!shown.contains(&port.to_string()) && !shown.contains("127.0.0.1"), "{shown}");
}

#[test]
fn every_kind_has_a_status_a_label_and_words() {
    for kind in ErrorKind::ALL {
        let status = kind.http_status();
        assert!((400..600).contains(&status), "{kind:?}");
        assert!(!kind.as_str().contains(' ') && !kind.as_str().is_empty(), "{kind:?}");
        assert!(!kind.to_string().is_empty());
    }
    assert_eq!(ErrorKind::Replayed.to_string(), "replayed");
    assert_eq!(ErrorKind::NotFound.as_str(), "not_found");
    assert!(ErrorKind::Expired.is_client_error() && !ErrorKind::Configuration.is_client_error());
}

/// Regression: an error that failed a whole claim batch reached each caller as bare text,
/// without the database error behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_through_the_claim_batcher_keep_their_source() {
    let db = sage_testkit::database().await.unwrap();
    let store = Store::open(&sage_conn::Target::Postgres(db.settings().clone()), options(true)).await.unwrap();
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client.batch_execute("DROP TABLE nonces").await.unwrap();
    let later = Utc::now() + chrono::Duration::minutes(5);
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.nonces().claim(&format!("gone-{i}"), None, later).await })
        })
        .collect();
    for handle in handles {
        let err = handle.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
        let source = err.source().expect("the database error is kept");
        let pg = source.downcast_ref::<tokio_postgres::Error>().expect("a tokio-postgres error");
        assert_eq!(pg.code(), Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE));
    }
}
