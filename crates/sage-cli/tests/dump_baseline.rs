//! A real `pg_dump` file, the natural baseline of a database that existed before any
//! migration tool, applies through `sage-db migrate up` and recreates the database exactly:
//! pg_dump's guard lines, rules with several actions, SQL-standard bodies, `COPY … FROM
//! stdin` rows with backslashes, tabs and semicolons, and its `search_path = ''`, which must
//! not leak into the migration after it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{run, sage_db, stderr, stdout};
use sage_testkit::{PgBinaries, TestDatabase};

const FIXTURE: &str = r#"
CREATE TABLE items (id integer PRIMARY KEY, label text NOT NULL, note text);
CREATE TABLE item_log (item_id integer, action text, at timestamptz DEFAULT now());
CREATE TABLE counters (name text PRIMARY KEY, n integer NOT NULL DEFAULT 0);
INSERT INTO counters VALUES ('items', 0);
CREATE RULE log_insert AS ON INSERT TO items DO ALSO (
    INSERT INTO item_log (item_id, action) VALUES (new.id, 'insert; logged');
    UPDATE counters SET n = n + 1 WHERE name = 'items';
);
CREATE FUNCTION labelled(a integer, b integer, c integer, d integer, e integer, f integer, g integer,
    h integer, i integer, j integer, k integer, l integer, m integer, n integer, o integer, p integer,
    q integer, r integer, s integer, t integer, u integer, v integer, w integer, x integer, y integer)
    RETURNS TABLE ("end" integer) LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    SELECT CASE WHEN a > 0 THEN a ELSE b END AS "end";
END;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    NEW.note := coalesce(NEW.note, 'touched; by trigger');
    RETURN NEW;
END;
$body$;
CREATE TRIGGER items_touch BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW item_labels AS SELECT id, label || ';' AS label FROM items;
COMMENT ON TABLE items IS 'things; with a semicolon and a quote''s';
CREATE INDEX items_label ON items (label);
INSERT INTO items VALUES (1, 'back\slash', NULL), (2, E'tab\there', 'line one
line two'), (3, 'semi;colon \. not the end', 'é ✓');
"#;

fn pg_dump() -> std::path::PathBuf {
    PgBinaries::find().expect("PostgreSQL binaries (scripts/test sets SAGE_PG_BIN)").path("pg_dump")
}

/// `pg_dump` of `db` (plain format), with the extra arguments.
fn dump(db: &TestDatabase, extra: &[&str]) -> String {
    let out = Command::new(pg_dump())
        .args(["--no-password", "--dbname", &db.url()])
        .args(extra)
        .output()
        .expect("run pg_dump");
    assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 dump")
}

/// A dump without its random guard keys, to compare two databases.
fn comparable(dump: &str) -> String {
    dump.lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn fixture() -> TestDatabase {
    let db = sage_testkit::database().await.expect("test database");
    let client = sage_conn::connect(db.settings()).await.expect("connect");
    client.batch_execute(FIXTURE).await.expect("fixture");
    db
}

fn migrate_up(dir: &Path, db: &TestDatabase) -> std::process::Output {
    let cwd = tempfile::tempdir().unwrap();
    run(sage_db(cwd.path()).args(["migrate", "up", "--source"]).arg(dir).args(["--database-url", &db.url()]))
}

async fn apply_as_baseline(dump_args: &[&str]) {
    let source = fixture().await;
    let text = dump(&source, dump_args);
    assert!(text.contains("\\restrict"), "this pg_dump writes guard lines; the test expects them");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("000001_baseline.up.sql"), &text).unwrap();
    // Unqualified, as people write migrations: fails if pg_dump's empty search_path leaked.
    std::fs::write(dir.path().join("000002_after.up.sql"), "CREATE TABLE after_baseline (id integer);\n").unwrap();

    let target = sage_testkit::database().await.expect("test database");
    let out = migrate_up(dir.path(), &target);
    assert!(out.status.success(), "migrate up failed:\n{}\n{}", stdout(&out), stderr(&out));
    let client = sage_conn::connect(target.settings()).await.unwrap();
    let schema: String = client
        .query_one("SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'after_baseline'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(schema, "public");
    let exclude = ["--exclude-table", "sage_schema_history", "--exclude-table", "after_baseline"];
    let args: Vec<&str> = dump_args.iter().copied().chain(exclude).collect();
    assert_eq!(comparable(&dump(&target, &args)), comparable(&text), "the baseline recreated the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_schema_only_applies_as_a_baseline() {
    apply_as_baseline(&["--schema-only"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_pg_dump_with_copy_data_applies_as_a_baseline() {
    apply_as_baseline(&[]).await;
    // The rows arrived as they were, backslashes, tabs and newlines included.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_that_connects_elsewhere_is_refused_at_its_line() {
    let target = sage_testkit::database().await.expect("test database");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("000001_all.up.sql"),
        "CREATE TABLE a (id integer);\n\n\\connect other_db\n\nCREATE TABLE b (id integer);\n",
    )
    .unwrap();
    let out = migrate_up(dir.path(), &target);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("000001_all.up.sql") && err.contains("line 3"), "{err}");
    assert!(err.contains("\\connect"), "{err}");
    let client = sage_conn::connect(target.settings()).await.unwrap();
    let tables: i64 = client
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN ('a', 'b')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing of the file ran");
}
