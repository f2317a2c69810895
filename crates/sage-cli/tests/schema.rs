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

/// A SQLite table rebuild must not fire `ON DELETE CASCADE`: `DROP TABLE parent` deletes
/// the parent's rows first, and with foreign keys on that used to empty every child table.
#[test]
fn sqlite_rebuild_of_a_parent_keeps_every_child_row() {
    let cwd = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", cwd.path().join("app.db").display());
    let old = write_dir(&[(
        "000001_init.up.sql",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE, note TEXT);
         CREATE INDEX child_parent ON child (parent_id);
         CREATE TRIGGER child_note AFTER INSERT ON child BEGIN UPDATE child SET note = coalesce(note, 'new') WHERE id = NEW.id; END;
         CREATE VIEW family AS SELECT p.name, c.note FROM parent p JOIN child c ON c.parent_id = p.id;",
    )]);
    let new = write_dir(&[(
        "000001_init.up.sql",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL CHECK (length(name) > 0), kind TEXT NOT NULL DEFAULT 'plain');
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE, note TEXT);
         CREATE INDEX child_parent ON child (parent_id);
         CREATE TRIGGER child_note AFTER INSERT ON child BEGIN UPDATE child SET note = coalesce(note, 'new') WHERE id = NEW.id; END;
         CREATE VIEW family AS SELECT p.name, c.note FROM parent p JOIN child c ON c.parent_id = p.id;",
    )]);
    let up = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url, "--source"]).arg(old.path()));
    assert!(up.status.success(), "{}", stderr(&up));
    let conn = rusqlite::Connection::open(cwd.path().join("app.db")).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
         INSERT INTO parent (id, name) SELECT i, 'p' || i FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO child (id, parent_id) SELECT i, 1 + i % 50 FROM n;",
    )
    .unwrap();
    let before: Vec<(i64, i64, String)> = rows(&conn, "SELECT id, parent_id, note FROM child ORDER BY id");
    drop(conn);

    let wrote = run(sage_db(cwd.path())
        .args(["schema", "diff"])
        .arg(&url)
        .arg(new.path())
        .args(["--write", "stricter parent", "--source"])
        .arg(old.path())
        .args(["--database-url", &url]));
    assert!(wrote.status.success(), "{}", stderr(&wrote));
    let script = std::fs::read_to_string(old.path().join("000002_stricter_parent.up.sql")).unwrap();
    assert!(script.contains("rebuild") || script.contains("RENAME"), "{script}");
    let applied = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url, "--source"]).arg(old.path()));
    assert!(applied.status.success(), "{}", stderr(&applied));

    let conn = rusqlite::Connection::open(cwd.path().join("app.db")).unwrap();
    assert_eq!(rows::<(i64, i64, String)>(&conn, "SELECT id, parent_id, note FROM child ORDER BY id"), before);
    let parents: Vec<(i64, String, String)> = rows(&conn, "SELECT id, name, kind FROM parent ORDER BY id");
    assert_eq!(parents.len(), 50);
    assert!(parents.iter().all(|(id, name, kind)| *name == format!("p{id}") && kind == "plain"));
    // The child's foreign key still points at the rebuilt parent and still cascades.
    assert_eq!(rows::<(i64,)>(&conn, "SELECT count(*) FROM pragma_foreign_key_check"), vec![(0,)]);
    conn.execute_batch("PRAGMA foreign_keys = ON; DELETE FROM parent WHERE id = 1;").unwrap();
    assert_eq!(rows::<(i64,)>(&conn, "SELECT count(*) FROM child"), vec![(196,)]);
    assert_eq!(rows::<(i64,)>(&conn, "SELECT count(*) FROM family"), vec![(196,)]);
    let validate = run(sage_db(cwd.path())
        .args(["schema", "validate", "--strict", "--replay", "--database-url", &url, "--source"])
        .arg(new.path()));
    assert_eq!(validate.status.code(), Some(0), "{}{}", stdout(&validate), stderr(&validate));
}

/// A rebuild whose copied rows break a foreign key is refused and changes nothing.
#[test]
fn sqlite_rebuild_that_breaks_a_foreign_key_is_rolled_back() {
    let cwd = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", cwd.path().join("app.db").display());
    let dir = write_dir(&[(
        "000001_init.up.sql",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id) ON DELETE CASCADE);
         INSERT INTO parent VALUES (1, 'a'), (2, 'b');
         INSERT INTO child VALUES (10, 1), (20, 2);",
    )]);
    let up = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url, "--source"]).arg(dir.path()));
    assert!(up.status.success(), "{}", stderr(&up));
    // A hand-written rebuild in SQLite's documented form that loses parent 2 on the way.
    std::fs::write(
        dir.path().join("000002_rebuild.up.sql"),
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         INSERT INTO parent_new SELECT id, name FROM parent WHERE id = 1;
         DROP TABLE parent;
         ALTER TABLE parent_new RENAME TO parent;
         PRAGMA foreign_keys = ON;",
    )
    .unwrap();
    let refused = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url, "--source"]).arg(dir.path()));
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(stderr(&refused).contains("foreign key"), "{}", stderr(&refused));
    let conn = rusqlite::Connection::open(cwd.path().join("app.db")).unwrap();
    assert_eq!(rows::<(i64,)>(&conn, "SELECT count(*) FROM parent"), vec![(2,)]);
    assert_eq!(rows::<(i64,)>(&conn, "SELECT count(*) FROM child"), vec![(2,)]);
    assert_eq!(rows::<(i64,)>(&conn, "SELECT count(*) FROM sqlite_master WHERE name = 'parent_new'"), vec![(0,)]);
}

fn rows<T: FromRow>(conn: &rusqlite::Connection, sql: &str) -> Vec<T> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| T::from_row(r)).unwrap().collect::<Result<_, _>>().unwrap()
}

trait FromRow: Sized {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

impl FromRow for (i64,) {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

impl FromRow for (i64, i64, String) {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
}

impl FromRow for (i64, String, String) {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    }
}

/// Disabling row-level security is an error; `--ignore` leaves a kind out and says so; a
/// kind that does not exist is refused; a snapshot that predates a kind says it was not
/// checked instead of reporting drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_drift_is_an_error_and_ignored_kinds_are_named() {
    let db = sage_testkit::database().await.unwrap();
    let url = db.url();
    let source = write_dir(&[(
        "000001_rls.up.sql",
        "CREATE TABLE notes (id int PRIMARY KEY, owner text NOT NULL, body text); \
         ALTER TABLE notes ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY own_notes ON notes USING (owner = current_user); \
         COMMENT ON TABLE notes IS 'Private notes';",
    )]);
    let cwd = tempfile::tempdir().unwrap();
    let up = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url, "--source"]).arg(source.path()));
    assert!(up.status.success(), "{}", stderr(&up));
    let validate = |extra: &[&str]| {
        run(sage_db(cwd.path())
            .args(["schema", "validate", "--replay", "--database-url", &url])
            .args(extra)
            .arg("--source")
            .arg(source.path()))
    };
    assert_eq!(validate(&[]).status.code(), Some(0), "{}", stdout(&validate(&[])));

    let client = sage_conn::connect(db.settings()).await.unwrap();
    client
        .batch_execute("ALTER TABLE notes DISABLE ROW LEVEL SECURITY; COMMENT ON TABLE notes IS 'Notes'")
        .await
        .unwrap();
    let drift = validate(&[]);
    assert_eq!(drift.status.code(), Some(1));
    let text = stdout(&drift);
    assert!(text.contains("error: row level security public.notes: is disabled, expected enabled"), "{text}");
    assert!(text.contains("info: comment table public.notes: is \"Notes\", expected \"Private notes\""), "{text}");
    assert!(text.contains("1 error(s), 0 warning(s)"), "{text}");

    let ignored = validate(&["--ignore", "row-level-security"]);
    assert_eq!(ignored.status.code(), Some(0), "{}", stdout(&ignored));
    let said = stdout(&ignored);
    assert!(said.contains("info: not checked row level security: ignored on request\n"), "{said}");

    let typo = validate(&["--ignore", "grants"]);
    assert_eq!(typo.status.code(), Some(2));
    let said = stderr(&typo);
    assert!(said.contains("invalid value 'grants' for '--ignore <KIND>'") && said.contains("'grant'"), "{said}");

    // A snapshot written before row-level security was recorded.
    let old = write_dir(&[]);
    let dumped = run(sage_db(cwd.path())
        .args(["schema", "dump", "--database-url", &url, "--source"])
        .arg(source.path())
        .arg("--out")
        .arg(old.path()));
    assert!(dumped.status.success(), "{}", stderr(&dumped));
    let json = old.path().join("schema.json");
    let mut snapshot: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for field in ["recorded", "row_security", "policies", "comments", "owners", "grants", "order"] {
        snapshot.as_object_mut().unwrap().remove(field);
    }
    std::fs::write(&json, snapshot.to_string()).unwrap();
    let against_old =
        run(sage_db(cwd.path()).args(["schema", "validate", "--database-url", &url, "--snapshot"]).arg(&json));
    assert_eq!(against_old.status.code(), Some(0), "{}", stdout(&against_old));
    assert!(stdout(&against_old)
        .contains("info: not checked row level security: the expected schema does not record this kind"));
}
