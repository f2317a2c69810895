//! `examples/webvh` against the did:webvh server's own way of making its schema: SQLAlchemy's
//! `create_all`, really run (examples/webvh/sqlalchemy, the server's models as facts), on a
//! real SQLite file and a real PostgreSQL database.
//!
//! Both directions must hold: the server starting on a database SAGE DB migrated creates
//! nothing (its create_all finds every table, and the schema stays exactly the migrations'),
//! and a database the server made, with its rows, is taken over by SAGE DB without a row
//! lost. scripts/test installs SQLAlchemy and sets SAGE_TEST_PYTHON; without it the tests
//! fail and say so.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{run, sage_db, stderr, stdout};

/// The server's tables: the bookkeeping tables beside them are not compared.
const TABLES: &[&str] = &[
    "admin_background_tasks",
    "attested_resources",
    "did_controllers",
    "known_witness_registries",
    "server_policies",
    "tails_files",
    "verifiable_credentials",
    "witness_invitations",
];

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/webvh")
}

/// A Python with SQLAlchemy (and psycopg2): the one scripts/test installs.
fn python() -> PathBuf {
    match std::env::var_os("SAGE_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "SAGE_TEST_PYTHON is not set: run scripts/test, which installs SQLAlchemy for these tests, \
             or set it to a python that has SQLAlchemy 2.0 and psycopg2"
        ),
    }
}

/// Runs the server's start-up create_all (with `--rows`, then writes rows as the server
/// does) and returns its report: the DDL it sent and the rows per table.
fn create_all(sqlalchemy_url: &str, rows: bool) -> serde_json::Value {
    let dir = example().join("sqlalchemy");
    let mut command = Command::new(python());
    command.current_dir(&dir).arg("create_all.py").arg(sqlalchemy_url).stdin(Stdio::null());
    if rows {
        command.arg("--rows");
    }
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    assert!(out.status.success(), "create_all.py failed: {}{}", stdout(&out), stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("create_all.py printed no JSON ({e}): {}", stdout(&out)))
}

fn ddl(report: &serde_json::Value) -> Vec<String> {
    report["ddl"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

fn sage(url: &str, args: &[&str]) -> std::process::Output {
    let cwd = tempfile::tempdir().unwrap();
    run(sage_db(cwd.path()).args(args).args(["--database-url", url]).stdin(Stdio::null()))
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = sage(url, args);
    assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// Every row of the server's tables, as text, per table: equal maps mean no row was lost
/// or changed.
fn sqlite_contents(path: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = BTreeMap::new();
    for table in TABLES {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
        let width = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells: Vec<String> = (0..width)
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(v) => format!("{:?}", String::from_utf8_lossy(v)),
                        rusqlite::types::ValueRef::Blob(v) => format!("{v:?}"),
                    })
                    .collect();
                Ok(cells.join("|"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        out.insert(table.to_string(), rows);
    }
    out
}

async fn pg_contents(db: &sage_testkit::TestDatabase) -> BTreeMap<String, String> {
    let all = sage_testkit::pg_contents(db.settings()).await.unwrap();
    all.into_iter().filter(|(k, _)| TABLES.iter().any(|t| k == &format!("public.{t}"))).collect()
}

/// The database's URL for create_all.py, which hands a postgres:// URL to libpq as it is.
fn sqlalchemy_pg_url(db: &sage_testkit::TestDatabase) -> String {
    db.url()
}

fn rows_per_table(report: &serde_json::Value) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> =
        report["rows"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap())).collect();
    rows.sort();
    rows
}

#[test]
fn the_servers_create_all_on_a_migrated_sqlite_database_creates_nothing() {
    let file = sage_testkit::SqliteFile::new();
    let url = file.url();
    let src = example().join("migrations/sqlite");
    let src = src.to_str().unwrap();
    ok(&url, &["migrate", "up", "--source", src]);
    let report = create_all(&format!("sqlite:///{}", file.path().display()), true);
    assert_eq!(ddl(&report), Vec::<String>::new(), "create_all found every table");
    // The server's own writes, with the values its code supplies, fit the schema.
    assert!(rows_per_table(&report).iter().all(|(_, n)| *n == 1), "{report}");
    ok(&url, &["schema", "validate", "--strict", "--source", src]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_create_all_on_a_migrated_postgres_database_creates_nothing() {
    let db = sage_testkit::database().await.unwrap();
    let url = db.url();
    let sa_url = sqlalchemy_pg_url(&db);
    tokio::task::spawn_blocking(move || {
        let src = example().join("migrations/postgres");
        let src = src.to_str().unwrap();
        ok(&url, &["migrate", "up", "--source", src]);
        let report = create_all(&sa_url, true);
        assert_eq!(ddl(&report), Vec::<String>::new(), "create_all found every table");
        assert!(rows_per_table(&report).iter().all(|(_, n)| *n == 1), "{report}");
        ok(&url, &["schema", "validate", "--strict", "--source", src]);
    })
    .await
    .unwrap();
}

/// What the server made at start-up is what migrations 1 and 2 make: adoption records
/// those, `up` applies the later ones, every row stays, and the server's create_all still
/// has nothing to do afterwards.
#[test]
fn a_sqlite_database_the_server_made_is_adopted_without_loss() {
    let file = sage_testkit::SqliteFile::new();
    let url = file.url();
    let sa_url = format!("sqlite:///{}", file.path().display());
    let made = create_all(&sa_url, true);
    assert_eq!(ddl(&made).iter().filter(|s| s.starts_with("CREATE TABLE")).count(), TABLES.len());
    let before = sqlite_contents(file.path());
    assert!(before.values().all(|rows| rows.len() == 1), "{before:?}");
    let src = example().join("migrations/sqlite");
    let src = src.to_str().unwrap();
    let adopted = ok(&url, &["migrate", "adopt", "--source", src]);
    assert!(adopted.contains("migrations 1 to 2"), "{adopted}");
    ok(&url, &["migrate", "up", "--source", src]);
    assert_eq!(sqlite_contents(file.path()), before, "no row lost or changed");
    ok(&url, &["schema", "validate", "--strict", "--source", src]);
    assert_eq!(ddl(&create_all(&sa_url, false)), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_the_server_made_is_adopted_without_loss() {
    let db = sage_testkit::database().await.unwrap();
    let url = db.url();
    let sa_url = sqlalchemy_pg_url(&db);
    let made = tokio::task::spawn_blocking({
        let sa_url = sa_url.clone();
        move || create_all(&sa_url, true)
    })
    .await
    .unwrap();
    assert_eq!(ddl(&made).iter().filter(|s| s.starts_with("CREATE TABLE")).count(), TABLES.len());
    let before = pg_contents(&db).await;
    assert_eq!(before.len(), TABLES.len());
    let src = example().join("migrations/postgres");
    let src = src.to_str().unwrap().to_string();
    let adopted = tokio::task::spawn_blocking({
        let (url, src) = (url.clone(), src.clone());
        move || {
            let adopted = ok(&url, &["migrate", "adopt", "--source", &src]);
            ok(&url, &["migrate", "up", "--source", &src]);
            ok(&url, &["schema", "validate", "--strict", "--source", &src]);
            adopted
        }
    })
    .await
    .unwrap();
    assert!(adopted.contains("migrations 1 to 2"), "{adopted}");
    assert_eq!(pg_contents(&db).await, before, "no row lost or changed");
    let again = tokio::task::spawn_blocking(move || create_all(&sa_url, false)).await.unwrap();
    assert_eq!(ddl(&again), Vec::<String>::new());
}

/// Without `migrate adopt`: plain `up` (SQLite) and `provision` (PostgreSQL, the server's
/// own command) adopt the server's database by themselves, keep every row, and apply the
/// later migrations.
#[test]
fn up_takes_over_a_sqlite_database_the_server_made() {
    let file = sage_testkit::SqliteFile::new();
    let url = file.url();
    create_all(&format!("sqlite:///{}", file.path().display()), true);
    let before = sqlite_contents(file.path());
    let src = example().join("migrations/sqlite");
    let src = src.to_str().unwrap();
    let up = ok(&url, &["migrate", "up", "--source", src]);
    assert!(up.contains("adopted") && up.contains("migrations 1 to 2"), "{up}");
    assert!(up.contains("000003_drop_redundant_indexes"), "{up}");
    assert_eq!(sqlite_contents(file.path()), before, "no row lost or changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_takes_over_a_postgres_database_the_server_made() {
    let db = sage_testkit::database().await.unwrap();
    let url = db.url();
    let sa_url = sqlalchemy_pg_url(&db);
    tokio::task::spawn_blocking(move || create_all(&sa_url, true)).await.unwrap();
    let before = pg_contents(&db).await;
    let out = tokio::task::spawn_blocking(move || {
        let src = example().join("migrations/postgres");
        let src = src.to_str().unwrap();
        let out = ok(&url, &["provision", "--source", src]);
        ok(&url, &["schema", "validate", "--strict", "--source", src]);
        out
    })
    .await
    .unwrap();
    assert!(out.contains("adopted") && out.contains("migrations 1 to 2"), "{out}");
    assert!(out.contains("000004_column_defaults"), "{out}");
    assert_eq!(pg_contents(&db).await, before, "no row lost or changed");
}

/// The server was upgraded first: at version 1, its create_all made the 0.5 table
/// (witness_invitations). `up` records migration 2 as present instead of failing on "already
/// exists", and applies 3.
#[test]
fn a_table_the_server_made_ahead_is_recorded_not_created_again() {
    let file = sage_testkit::SqliteFile::new();
    let url = file.url();
    let src = example().join("migrations/sqlite");
    let src = src.to_str().unwrap();
    ok(&url, &["migrate", "up", "--to", "1", "--source", src]);
    let made = create_all(&format!("sqlite:///{}", file.path().display()), true);
    assert!(ddl(&made).iter().any(|s| s.starts_with("CREATE TABLE witness_invitations")), "{made}");
    let before = sqlite_contents(file.path());
    let up = ok(&url, &["migrate", "up", "--source", src]);
    assert!(up.contains("already holds exactly what migration 2"), "{up}");
    assert_eq!(sqlite_contents(file.path()), before);
    ok(&url, &["schema", "validate", "--strict", "--source", src]);
}
