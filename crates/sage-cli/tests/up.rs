//! The newcomer's command: `sage-db up` on the embedded default.

mod common;

use common::{run, sage_db, stdout};

#[test]
fn up_creates_sage_db_applies_migrations_and_is_idempotent() {
    let cwd = tempfile::tempdir().unwrap();
    let first = run(sage_db(cwd.path()).arg("up"));
    assert!(first.status.success(), "{}", common::stderr(&first));
    let text = stdout(&first);
    assert!(text.contains("sqlite://sage.db (default)"), "{text}");
    assert!(text.contains("created a new SQLite database"), "{text}");
    assert!(text.contains("applied 000001_initial_schema.up.sql"), "{text}");
    assert!(cwd.path().join("sage.db").is_file());

    let conn = rusqlite::Connection::open(cwd.path().join("sage.db")).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('sessions', 'nonces', 'dids')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 3);
    drop(conn);

    let second = run(sage_db(cwd.path()).arg("up"));
    assert!(second.status.success());
    let text = stdout(&second);
    assert!(text.contains("nothing to do"), "{text}");
    assert!(!text.contains("created"), "{text}");
}

#[test]
fn up_json_reports_version_and_nothing_pending() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["up", "--json"]));
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["status"]["version"], sage_store::SCHEMA_VERSION_SQLITE);
    assert_eq!(json["status"]["pending"], 0);
    assert_eq!(json["created"], true);
}
