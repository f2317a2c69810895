//! `sage-db schema …` and `sage-db check` as an operator runs them.

mod common;

use common::{run, sage_db, stderr, stdout, write_dir};

#[test]
fn sqlite_default_validates_clean_then_reports_planted_drift() {
    let cwd = tempfile::tempdir().unwrap();
    let up = run(sage_db(cwd.path()).arg("up"));
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(stdout(&up).contains("schema:     matches the snapshot"), "{}", stdout(&up));
    let clean = run(sage_db(cwd.path()).args(["schema", "validate"]));
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("clean"));

    let conn = rusqlite::Connection::open(cwd.path().join("sage.db")).unwrap();
    conn.execute_batch("DROP INDEX idx_sessions_expires_at; CREATE TABLE scratch (id INTEGER);").unwrap();
    drop(conn);
    let drift = run(sage_db(cwd.path()).args(["schema", "validate", "--json"]));
    assert_eq!(drift.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&drift.stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{json:#}");
    assert!(findings.iter().any(|f| f["object"] == "sessions.idx_sessions_expires_at" && f["severity"] == "error"));
    assert!(findings.iter().any(|f| f["object"] == "scratch" && f["severity"] == "warning"));
    let strict = run(sage_db(cwd.path()).args(["schema", "validate", "--strict"]));
    assert_eq!(strict.status.code(), Some(1));

    let check = run(sage_db(cwd.path()).arg("check"));
    assert_eq!(check.status.code(), Some(1), "drift needs attention");
    let text = stdout(&check);
    assert!(text.contains("SQLite") && text.contains("version 2, up to date") && text.contains("1 error(s)"), "{text}");
    assert!(text.contains("sessions") && text.contains("ROWS"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_check_and_validate() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    let pending = run(sage_db(cwd.path()).args(["check", "--database-url", &url]));
    assert_eq!(pending.status.code(), Some(1));
    let all = sage_store::SCHEMA_VERSION_POSTGRES;
    assert!(stdout(&pending).contains(&format!("{all} pending")), "{}", stdout(&pending));
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
    let check = run(sage_db(cwd.path()).args(["check", "--json", "--database-url", &url]));
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert!(report["server"].as_str().unwrap().starts_with("PostgreSQL"));
    assert_eq!(report["schema"]["clean"], true);
    assert!(report["tables"].as_array().unwrap().iter().any(|t| t["name"] == "sessions" && t["rows"] == 0));
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client.batch_execute("ALTER TABLE dids ALTER COLUMN key_type SET DEFAULT 'Secp256k1'").await.unwrap();
    let drift = run(sage_db(cwd.path()).args(["schema", "validate", "--database-url", &url]));
    assert_eq!(drift.status.code(), Some(1));
    assert!(
        stdout(&drift).contains("column public.dids.key_type: default is 'Secp256k1'::text, expected 'Ed25519'::text"),
        "{}",
        stdout(&drift)
    );
    let unreachable = run(sage_db(cwd.path()).args([
        "schema",
        "validate",
        "--database-url",
        "postgres://x:pw@127.0.0.1:1/x?sslmode=disable",
    ]));
    assert_eq!(unreachable.status.code(), Some(2), "could not check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_writes_a_migration_that_brings_the_database_in_line() {
    let db = sage_testkit::database().await.unwrap();
    let url = db.url();
    let old = write_dir(&[
        ("000001_init.up.sql", "CREATE TABLE t (id int PRIMARY KEY, name text, legacy text);"),
        ("000001_init.down.sql", "DROP TABLE t;"),
    ]);
    let new = write_dir(&[(
        "000001_init.up.sql",
        "CREATE TABLE t (id int PRIMARY KEY, name varchar(80) NOT NULL DEFAULT '', email text UNIQUE); CREATE INDEX t_name_idx ON t (name);",
    )]);
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url, "--source"]).arg(old.path()))
        .status
        .success());

    let refused = run(sage_db(cwd.path())
        .args(["schema", "diff"])
        .arg(old.path())
        .arg(new.path())
        .args(["--database-url", &url]));
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("drop column public.t.legacy") && stderr(&refused).contains("--allow-destructive"),
        "{}",
        stderr(&refused)
    );

    let wrote = run(sage_db(cwd.path())
        .args(["schema", "diff"])
        .arg(&url)
        .arg(new.path())
        .args(["--allow-destructive", "--write", "align with new", "--source"])
        .arg(old.path())
        .args(["--database-url", &url]));
    assert!(wrote.status.success(), "{}", stderr(&wrote));
    assert!(old.path().join("000002_align_with_new.up.sql").is_file());
    assert!(old.path().join("000002_align_with_new.down.sql").is_file());
    let applied = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url, "--source"]).arg(old.path()));
    assert!(applied.status.success(), "{}", stderr(&applied));
    let validate = run(sage_db(cwd.path())
        .args(["schema", "validate", "--strict", "--replay", "--database-url", &url, "--source"])
        .arg(new.path()));
    assert_eq!(validate.status.code(), Some(0), "{}{}", stdout(&validate), stderr(&validate));
    // And the generated down script takes it back.
    let down =
        run(sage_db(cwd.path()).args(["migrate", "down", "--yes", "--database-url", &url, "--source"]).arg(old.path()));
    assert!(down.status.success(), "{}", stderr(&down));
}

#[test]
fn dump_check_notices_a_stale_snapshot() {
    let dir = write_dir(&[("1_a.up.sql", "CREATE TABLE a (id INTEGER);")]);
    let cwd = tempfile::tempdir().unwrap();
    let dump = run(sage_db(cwd.path())
        .args(["schema", "dump", "--database-url", "sqlite::memory:", "--source"])
        .arg(dir.path()));
    assert!(dump.status.success(), "{}", stderr(&dump));
    let current = run(sage_db(cwd.path())
        .args(["schema", "dump", "--check", "--database-url", "sqlite::memory:", "--source"])
        .arg(dir.path()));
    assert_eq!(current.status.code(), Some(0));
    std::fs::write(dir.path().join("2_b.up.sql"), "CREATE TABLE b (id INTEGER);").unwrap();
    let stale = run(sage_db(cwd.path())
        .args(["schema", "dump", "--check", "--database-url", "sqlite::memory:", "--source"])
        .arg(dir.path()));
    assert_eq!(stale.status.code(), Some(1));
    assert!(stdout(&stale).contains("stale"));
    let sql = run(sage_db(cwd.path())
        .args(["schema", "sql", "--database-url", "sqlite::memory:", "--source"])
        .arg(dir.path()));
    assert!(stdout(&sql).contains("CREATE TABLE a"), "{}", stdout(&sql));
}
