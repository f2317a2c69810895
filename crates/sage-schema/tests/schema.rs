//! The schema tools against real databases: round trips, planted drift and diffs, for
//! SAGE's schema and for a schema holding every object kind, on PostgreSQL and SQLite.

use std::path::{Path, PathBuf};

use sage_conn::{SqliteLocation, Target};
use sage_migrate::{Dialect, MigrationSet};
use sage_schema::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn sage_migrations(dialect: Dialect) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations").join(dialect.name())
}

struct Db {
    target: Target,
    _pg: Option<sage_testkit::TestDatabase>,
    _lite: Option<sage_testkit::SqliteFile>,
}

async fn empty(dialect: Dialect) -> Db {
    match dialect {
        Dialect::Postgres => {
            let db = sage_testkit::database().await.unwrap();
            Db { target: Target::Postgres(db.settings().clone()), _pg: Some(db), _lite: None }
        }
        Dialect::Sqlite => {
            let f = sage_testkit::SqliteFile::new();
            Db { target: Target::Sqlite(SqliteLocation::File(f.path().to_path_buf())), _pg: None, _lite: Some(f) }
        }
    }
}

async fn expected(dir: &Path, dialect: Dialect) -> Schema {
    let near = empty(dialect).await;
    from_migrations(MigrationSet::from_dir(dir, dialect).unwrap(), Some(&near.target), None).await.unwrap()
}

/// dump → sql → apply to an empty database → dump again gives the same snapshot.
async fn round_trip(dir: PathBuf, dialect: Dialect) {
    let first = expected(&dir, dialect).await;
    assert!(!first.tables.is_empty());
    let db = empty(dialect).await;
    apply(&db.target, &render(&first)).await.unwrap();
    let second = live(&db.target).await.unwrap();
    assert_eq!(snapshot_json(&first), snapshot_json(&second), "the snapshot must survive sql and back");
    assert!(validate(&first, &second, ValidateOptions { strict: true }).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sage_schema_round_trips_on_postgres() {
    round_trip(sage_migrations(Dialect::Postgres), Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sage_schema_round_trips_on_sqlite() {
    round_trip(sage_migrations(Dialect::Sqlite), Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_kind_round_trips_on_postgres() {
    let schema = expected(&fixture("every_kind_pg"), Dialect::Postgres).await;
    assert_eq!(schema.namespaces, ["audit"]);
    assert_eq!(schema.extensions.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["citext"]);
    assert_eq!(schema.enums[0].values, ["sad", "ok", "happy"]);
    assert!(schema.sequences.iter().any(|s| s.name == "invoice_numbers" && s.start == 1000 && s.increment == 10));
    assert!(
        schema.sequences.iter().any(|s| s.owned_by.as_deref() == Some("public.invoices.id")),
        "serial sequences are owned"
    );
    let accounts = schema.table("public", "accounts").unwrap();
    assert_eq!(accounts.column("handle").unwrap().data_type, "character varying(40)");
    assert_eq!(accounts.column("id").unwrap().identity.as_deref(), Some("always"));
    assert!(accounts.column("handle_lower").unwrap().generated.is_some());
    assert_eq!(accounts.column("tags").unwrap().data_type, "text[]");
    assert_eq!(accounts.column("referral_code").unwrap().collation.as_deref(), Some("\"C\""));
    assert_eq!(accounts.column("handle_lower").unwrap().collation, None, "the type's default is not spelled out");
    assert_eq!(accounts.indexes.len(), 3);
    let lines = schema.table("public", "invoice_lines").unwrap();
    assert!(lines.foreign_keys[0].deferrable && lines.foreign_keys[0].on_delete == "SET NULL");
    assert_eq!(schema.views.len(), 3);
    assert_eq!(schema.functions.len(), 2);
    assert_eq!(schema.triggers.len(), 1);
    assert!(schema.table("public", "sage_schema_history").is_none(), "bookkeeping is not schema");
    round_trip(fixture("every_kind_pg"), Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_kind_round_trips_on_sqlite() {
    let schema = expected(&fixture("every_kind_sqlite"), Dialect::Sqlite).await;
    let invoices = schema.table("", "invoices").unwrap();
    assert_eq!(invoices.foreign_keys[0].on_delete, "CASCADE");
    assert_eq!(invoices.uniques.len(), 1);
    assert_eq!(invoices.checks.len(), 1);
    assert_eq!(schema.views.len(), 2);
    assert_eq!(schema.triggers.len(), 1);
    round_trip(fixture("every_kind_sqlite"), Dialect::Sqlite).await;
}

/// Plants one kind of drift at a time and expects exactly one finding of the right kind,
/// and that the diff from the drifted database back to the expected schema closes it.
async fn planted(dialect: Dialect, dir: PathBuf, cases: &[(&str, &str, Drift, Severity)]) {
    let expected = expected(&dir, dialect).await;
    let db = empty(dialect).await;
    apply(&db.target, &render(&expected)).await.unwrap();
    assert!(
        validate(&expected, &live(&db.target).await.unwrap(), ValidateOptions::default()).is_empty(),
        "clean database, no findings"
    );
    let mut wrong = Vec::new();
    for (sql, kind, drift, severity) in cases {
        let db = empty(dialect).await;
        apply(&db.target, &render(&expected)).await.unwrap();
        apply(&db.target, sql).await.unwrap();
        let findings = validate(&expected, &live(&db.target).await.unwrap(), ValidateOptions::default());
        let found: Vec<_> = findings.iter().map(|f| (f.kind, f.drift, f.severity)).collect();
        if found != [(*kind, *drift, *severity)] {
            wrong.push(format!("{sql}\n  expected one {kind} {drift:?} {severity:?}, got {findings:#?}"));
        }
        // The diff back to the expected schema, applied, closes the drift.
        let changes = diff(&live(&db.target).await.unwrap(), &expected);
        let ddl: Vec<&str> = changes.iter().map(|c| c.sql.as_str()).collect();
        if let Err(e) = apply(&db.target, &ddl.join("\n")).await {
            wrong.push(format!("{sql}\n  the diff back does not apply: {e}\n{}", ddl.join("\n")));
            continue;
        }
        let left = validate(&expected, &live(&db.target).await.unwrap(), ValidateOptions { strict: true });
        // A change the diff cannot make is said in a comment instead of DDL; that drift stays.
        let said_cannot = changes.iter().any(|c| c.sql.trim_start().starts_with("--") && c.sql.contains("cannot"));
        if !(left.is_empty() || said_cannot && left.len() == 1) {
            wrong.push(format!("{sql}\n  after the diff back: {left:#?}\n{}", ddl.join("\n")));
        }
    }
    assert!(wrong.is_empty(), "{} of {} planted changes misreported:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_drift_is_reported_once_and_classified_on_postgres() {
    planted(
        Dialect::Postgres,
        fixture("every_kind_pg"),
        &[
            ("DROP INDEX accounts_handle_lower_idx", "index", Drift::Missing, Severity::Error),
            ("ALTER TABLE accounts ALTER COLUMN nickname TYPE varchar(80)", "column", Drift::Changed, Severity::Error),
            ("ALTER TABLE accounts ALTER COLUMN balance SET DEFAULT 5", "column", Drift::Changed, Severity::Error),
            ("ALTER TABLE accounts ALTER COLUMN referral_code TYPE text COLLATE \"default\"", "column", Drift::Changed, Severity::Error),
            ("ALTER TABLE accounts ALTER COLUMN nickname TYPE varchar(30) COLLATE \"POSIX\"", "column", Drift::Changed, Severity::Error),
            (
                "ALTER TABLE invoices DROP CONSTRAINT invoices_status_check, ADD CONSTRAINT invoices_status_check CHECK (status IN ('draft', 'sent', 'paid', 'void'))",
                "check",
                Drift::Changed,
                Severity::Error,
            ),
            (
                "ALTER TABLE invoices DROP CONSTRAINT invoices_account_id_fkey, ADD CONSTRAINT invoices_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE SET NULL ON UPDATE RESTRICT",
                "foreign key",
                Drift::Changed,
                Severity::Error,
            ),
            ("DROP INDEX invoices_open_idx; CREATE UNIQUE INDEX invoices_open_idx ON invoices (account_id) WHERE status = 'draft'", "index", Drift::Changed, Severity::Error),
            ("CREATE TABLE stray (id int)", "table", Drift::Extra, Severity::Warning),
            ("ALTER TABLE invoices ALTER COLUMN region SET NOT NULL", "column", Drift::Changed, Severity::Error),
            ("ALTER TABLE accounts ADD COLUMN extra int", "column", Drift::Extra, Severity::Warning),
            ("ALTER INDEX accounts_profile_gin_idx RENAME TO profile_idx", "index", Drift::Renamed, Severity::Warning),
            ("DROP TRIGGER accounts_touch ON accounts", "trigger", Drift::Missing, Severity::Error),
            ("CREATE OR REPLACE FUNCTION add_one(n integer) RETURNS integer LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT n + 2; END", "function", Drift::Changed, Severity::Error),
            ("ALTER TYPE mood ADD VALUE 'ecstatic'", "enum type", Drift::Changed, Severity::Error),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_drift_is_reported_once_and_classified_on_sqlite() {
    planted(
        Dialect::Sqlite,
        sage_migrations(Dialect::Sqlite),
        &[
            ("DROP INDEX idx_nonces_expires_at", "index", Drift::Missing, Severity::Error),
            (
                "DROP INDEX idx_dids_revoked; CREATE INDEX idx_dids_revoked ON dids (revoked) WHERE revoked = 0",
                "index",
                Drift::Changed,
                Severity::Error,
            ),
            ("CREATE TABLE stray (id INTEGER)", "table", Drift::Extra, Severity::Warning),
            ("DROP TRIGGER update_dids_updated_at", "trigger", Drift::Missing, Severity::Error),
            ("ALTER TABLE sessions ADD COLUMN note TEXT", "column", Drift::Extra, Severity::Warning),
        ],
    )
    .await;
}

/// `diff` from an old migration directory to a new one yields DDL that, applied to a
/// database at the old state, validates clean against the new.
async fn diff_closes_the_gap(dialect: Dialect, old: &[(&str, &str)], new: &[(&str, &str)], destructive: bool) {
    let write = |files: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        for (name, sql) in files {
            std::fs::write(dir.path().join(name), sql).unwrap();
        }
        dir
    };
    let (old_dir, new_dir) = (write(old), write(new));
    let from = expected(old_dir.path(), dialect).await;
    let to = expected(new_dir.path(), dialect).await;
    let changes = diff(&from, &to);
    assert!(!changes.is_empty());
    assert_eq!(changes.iter().any(|c| c.destructive), destructive, "{changes:#?}");
    let db = empty(dialect).await;
    apply(&db.target, &render(&from)).await.unwrap();
    let sql: Vec<&str> = changes.iter().map(|c| c.sql.as_str()).collect();
    apply(&db.target, &sql.join("\n")).await.unwrap();
    let findings = validate(&to, &live(&db.target).await.unwrap(), ValidateOptions { strict: true });
    assert!(findings.is_empty(), "{findings:#?}\n{}", sql.join("\n"));
    assert!(diff(&to, &live(&db.target).await.unwrap()).is_empty() || dialect == Dialect::Sqlite);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_between_migration_directories_on_postgres() {
    let old = [("1_init.up.sql", "CREATE TABLE t (id int PRIMARY KEY, name varchar(20), gone text, status text CHECK (status IN ('a', 'b'))); CREATE INDEX t_name_idx ON t (name); CREATE TABLE old_table (id int);")];
    let new = [(
        "1_init.up.sql",
        "CREATE TABLE t (id int PRIMARY KEY, name varchar(40) NOT NULL DEFAULT '', status text CHECK (status IN ('a', 'b', 'c')), added timestamptz); \
         CREATE INDEX t_name_idx ON t (name) WHERE name <> ''; CREATE TABLE child (id int REFERENCES t (id) ON DELETE CASCADE); CREATE VIEW v AS SELECT id FROM t;",
    )];
    diff_closes_the_gap(Dialect::Postgres, &old, &new, true).await;
    let additive_old = [("1_init.up.sql", "CREATE TABLE t (id int PRIMARY KEY, code text, tag text COLLATE \"C\");")];
    let additive_new = [(
        "1_init.up.sql",
        "CREATE TABLE t (id int PRIMARY KEY, code text COLLATE \"C\", tag text, note text); CREATE INDEX t_note_idx ON t (note);",
    )];
    diff_closes_the_gap(Dialect::Postgres, &additive_old, &additive_new, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_between_migration_directories_on_sqlite() {
    let old = [("1_init.up.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, gone TEXT); CREATE INDEX t_name_idx ON t (name); INSERT INTO t VALUES (1, 'x', 'y');")];
    let new = [(
        "1_init.up.sql",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '', status TEXT CHECK (status IN ('a', 'b'))); \
         CREATE INDEX t_name_idx ON t (name) WHERE name <> ''; CREATE TABLE child (id INTEGER REFERENCES t (id)); CREATE VIEW v AS SELECT id FROM t;",
    )];
    diff_closes_the_gap(Dialect::Sqlite, &old, &new, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_snapshots_of_sage_migrations_are_current() {
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let dir = sage_migrations(dialect);
        let fresh = expected(&dir, dialect).await;
        let (json, sql) = snapshot_paths(&dir);
        let committed = std::fs::read_to_string(&json).unwrap_or_default();
        assert_eq!(committed, snapshot_json(&fresh), "{} is stale: run `sage-db schema dump`", json.display());
        assert_eq!(std::fs::read_to_string(&sql).unwrap_or_default(), render(&fresh), "{} is stale", sql.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_schema_round_trips_on_sqlite() {
    let webvh = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/webvh/migrations/sqlite");
    round_trip(webvh, Dialect::Sqlite).await;
}

/// Rewrites the stored definition of `table` in place, the way drift that SQLite cannot
/// express with `ALTER TABLE` (a changed type, default, collation, foreign key action or
/// check) arrives on a real database: by hand or by another tool's rebuild.
fn rewrite_table_sql(table: &str, from: &str, to: &str) -> String {
    let (from, to) = (from.replace('\'', "''"), to.replace('\'', "''"));
    format!(
        "PRAGMA writable_schema = ON; \
         UPDATE sqlite_schema SET sql = replace(sql, '{from}', '{to}') WHERE type = 'table' AND name = '{table}'; \
         PRAGMA writable_schema = OFF;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_drift_of_every_sqlite_kind_is_reported_once() {
    let rewrites = [
        ("invoices", "ON DELETE CASCADE", "ON DELETE SET NULL", "foreign key"),
        ("invoices", "'draft', 'sent', 'paid'", "'draft', 'sent', 'paid', 'void'", "check"),
        ("accounts", "VARCHAR(40)", "VARCHAR(80)", "column"),
        ("accounts", "DEFAULT 0", "DEFAULT 1", "column"),
        ("accounts", "UNIQUE COLLATE NOCASE", "UNIQUE", "column"),
        ("invoices", "region TEXT,", "region TEXT NOT NULL,", "column"),
        ("accounts", "AS (lower(handle))", "AS (upper(handle))", "column"),
    ];
    let rewritten: Vec<(String, &str)> =
        rewrites.iter().map(|(table, from, to, kind)| (rewrite_table_sql(table, from, to), *kind)).collect();
    let mut cases: Vec<(&str, &str, Drift, Severity)> = vec![
        ("DROP INDEX accounts_handle_lower_idx", "index", Drift::Missing, Severity::Error),
        (
            "DROP INDEX invoices_open_idx; CREATE UNIQUE INDEX invoices_open_idx ON invoices (account_id) WHERE status = 'draft'",
            "index",
            Drift::Changed,
            Severity::Error,
        ),
        (
            "DROP INDEX accounts_created_desc_idx; CREATE INDEX accounts_created_desc_idx ON accounts (created_at)",
            "index",
            Drift::Changed,
            Severity::Error,
        ),
        ("DROP TRIGGER accounts_audit", "trigger", Drift::Missing, Severity::Error),
        (
            "DROP VIEW big_open_invoices; CREATE VIEW big_open_invoices AS SELECT * FROM open_invoices WHERE total > 10",
            "view",
            Drift::Changed,
            Severity::Error,
        ),
        ("DROP VIEW big_open_invoices", "view", Drift::Missing, Severity::Error),
        ("CREATE TABLE stray (id INTEGER)", "table", Drift::Extra, Severity::Warning),
        ("ALTER TABLE invoices ADD COLUMN note TEXT", "column", Drift::Extra, Severity::Warning),
        ("CREATE INDEX invoices_total_idx ON invoices (total)", "index", Drift::Extra, Severity::Warning),
    ];
    for (sql, kind) in &rewritten {
        cases.push((sql.as_str(), kind, Drift::Changed, Severity::Error));
    }
    planted(Dialect::Sqlite, fixture("every_kind_sqlite"), &cases).await;
}
