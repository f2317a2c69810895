//! SAGE DB and the real peer tools on one database: golang-migrate, sqlx-cli and dbmate,
//! each as its own binary (scripts/test installs them; a missing tool fails the test).
//!
//! For each tool, on PostgreSQL and SQLite: the tool applies part, SAGE DB the rest; the
//! tool applies more; SAGE DB's status, up and `down 1` follow; the tool reverts; SAGE DB
//! notices; the tool's own status agrees throughout; and no migration ever runs twice,
//! which every migration proves by inserting its version into a log table.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{sage_db, stderr, stdout};
use sage_testkit::{SqliteFile, TestDatabase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    GolangMigrate,
    Sqlx,
    Dbmate,
}

impl Tool {
    /// The tool's binary: from the variable scripts/test sets, else from PATH.
    fn binary(self) -> PathBuf {
        let (var, name) = match self {
            Tool::GolangMigrate => ("SAGE_TEST_GOLANG_MIGRATE", "migrate"),
            Tool::Sqlx => ("SAGE_TEST_SQLX", "sqlx"),
            Tool::Dbmate => ("SAGE_TEST_DBMATE", "dbmate"),
        };
        if let Some(path) = std::env::var_os(var) {
            return PathBuf::from(path);
        }
        let found = std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()));
        found.unwrap_or_else(|| {
            panic!(
                "{name} ({self:?}) is not installed: run scripts/test, which installs it, or set {var} to its binary"
            )
        })
    }

    /// The migration file(s) of version `v`, as this tool's directory holds them.
    fn files(self, v: i64, up: &str, down: &str) -> Vec<(String, String)> {
        match self {
            Tool::Dbmate => {
                vec![(format!("{v:03}_step{v}.sql"), format!("-- migrate:up\n{up}\n\n-- migrate:down\n{down}\n"))]
            }
            _ => vec![
                (format!("{v:06}_step{v}.up.sql"), format!("{up}\n")),
                (format!("{v:06}_step{v}.down.sql"), format!("{down}\n")),
            ],
        }
    }
}

#[allow(clippy::large_enum_variant)]
enum Db {
    Postgres(TestDatabase),
    Sqlite(SqliteFile),
}

impl Db {
    async fn new(postgres: bool) -> Db {
        if postgres {
            Db::Postgres(sage_testkit::database().await.expect("test database"))
        } else {
            Db::Sqlite(SqliteFile::new())
        }
    }

    fn sage_url(&self) -> String {
        match self {
            Db::Postgres(db) => db.url(),
            Db::Sqlite(file) => file.url(),
        }
    }

    fn tool_url(&self, tool: Tool) -> String {
        match (self, tool) {
            (Db::Postgres(db), _) => db.url(),
            (Db::Sqlite(file), Tool::GolangMigrate) => format!("sqlite3://{}", file.path().display()),
            (Db::Sqlite(file), Tool::Sqlx) => format!("sqlite://{}?mode=rwc", file.path().display()),
            (Db::Sqlite(file), Tool::Dbmate) => format!("sqlite:{}", file.path().display()),
        }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        match self {
            Db::Postgres(db) => {
                let client = sage_conn::connect(db.settings()).await.expect("connect");
                client.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0)
            }
            Db::Sqlite(file) => {
                let conn = rusqlite::Connection::open(file.path()).expect("open");
                conn.query_row(sql, [], |r| r.get(0)).expect(sql)
            }
        }
    }

    async fn exec(&self, sql: &str) {
        match self {
            Db::Postgres(db) => {
                let client = sage_conn::connect(db.settings()).await.expect("connect");
                client.batch_execute(sql).await.expect(sql);
            }
            Db::Sqlite(file) => {
                rusqlite::Connection::open(file.path()).expect("open").execute_batch(sql).expect(sql);
            }
        }
    }

    /// How often each version's migration has run: the log rows per version.
    async fn runs(&self, up_to: i64) -> Vec<i64> {
        let mut out = Vec::new();
        for v in 1..=up_to {
            out.push(self.scalar(&format!("SELECT count(*) FROM applied_log WHERE v = {v}")).await);
        }
        out
    }
}

struct Scenario {
    tool: Tool,
    db: Db,
    dir: tempfile::TempDir,
    cwd: tempfile::TempDir,
}

impl Scenario {
    async fn new(tool: Tool, postgres: bool) -> Scenario {
        let s = Scenario {
            tool,
            db: Db::new(postgres).await,
            dir: tempfile::tempdir().unwrap(),
            cwd: tempfile::tempdir().unwrap(),
        };
        // Migration 1 creates the log; every later one writes its version into it.
        s.add(
            1,
            "CREATE TABLE applied_log (v integer NOT NULL);\nINSERT INTO applied_log VALUES (1);",
            "DROP TABLE applied_log;",
        );
        s
    }

    fn add(&self, v: i64, up: &str, down: &str) {
        for (name, text) in self.tool.files(v, up, down) {
            std::fs::write(self.dir.path().join(name), text).unwrap();
        }
    }

    fn add_step(&self, v: i64) {
        self.add(
            v,
            &format!("CREATE TABLE t{v} (id integer);\nINSERT INTO applied_log VALUES ({v});"),
            &format!("DROP TABLE t{v};\nDELETE FROM applied_log WHERE v = {v};"),
        );
    }

    fn tool(&self, args: &[&str]) -> Output {
        let url = self.db.tool_url(self.tool);
        let dir = self.dir.path().to_str().unwrap();
        let mut command = Command::new(self.tool.binary());
        command.current_dir(self.cwd.path());
        match self.tool {
            Tool::GolangMigrate => command.args(["-path", dir, "-database", &url]).args(args),
            Tool::Sqlx => {
                let (sub, rest) = args.split_first().unwrap();
                command.args(["migrate", sub, "--source", dir, "--database-url", &url, "--no-dotenv"]).args(rest)
            }
            Tool::Dbmate => command.args(["--url", &url, "--migrations-dir", dir, "--no-dump-schema"]).args(args),
        };
        command.output().expect("run the peer tool")
    }

    /// Applies every file with the tool itself.
    fn tool_up(&self) {
        let out = match self.tool {
            Tool::GolangMigrate => self.tool(&["up"]),
            Tool::Sqlx => self.tool(&["run"]),
            Tool::Dbmate => self.tool(&["migrate"]),
        };
        assert!(out.status.success(), "{:?} up failed: {}{}", self.tool, stdout(&out), stderr(&out));
    }

    /// Reverts the newest migration with the tool itself.
    fn tool_down_one(&self) {
        let out = match self.tool {
            Tool::GolangMigrate => self.tool(&["down", "1"]),
            Tool::Sqlx => self.tool(&["revert"]),
            Tool::Dbmate => self.tool(&["rollback"]),
        };
        assert!(out.status.success(), "{:?} down failed: {}{}", self.tool, stdout(&out), stderr(&out));
    }

    /// The versions the tool itself reports as applied, from its own status command.
    fn tool_applied(&self) -> Vec<i64> {
        match self.tool {
            Tool::GolangMigrate => {
                let out = self.tool(&["version"]);
                let text = format!("{}{}", stdout(&out), stderr(&out));
                if text.contains("no migration") {
                    return Vec::new();
                }
                let v: i64 = text
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or_else(|| panic!("golang-migrate version: {text}"));
                assert!(!text.contains("dirty"), "golang-migrate reports dirty: {text}");
                self.versions().into_iter().filter(|x| *x <= v).collect()
            }
            Tool::Sqlx => {
                let out = self.tool(&["info"]);
                assert!(out.status.success(), "sqlx migrate info: {}", stderr(&out));
                let text = stdout(&out);
                // A row SAGE DB wrote with another checksum than sqlx computes shows here.
                assert!(!text.contains("different checksum"), "sqlx disagrees with a row SAGE DB wrote: {text}");
                text.lines()
                    .filter(|l| l.contains("installed"))
                    .filter_map(|l| l.trim().split('/').next()?.trim().parse().ok())
                    .collect()
            }
            Tool::Dbmate => {
                let out = self.tool(&["status"]);
                let text = stdout(&out);
                text.lines()
                    .filter_map(|l| l.trim().strip_prefix("[X] "))
                    .filter_map(|f| f.split('_').next()?.parse().ok())
                    .collect()
            }
        }
    }

    fn versions(&self) -> Vec<i64> {
        let mut v: Vec<i64> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.split('_').next()?.parse().ok())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn sage(&self, args: &[&str]) -> Output {
        sage_db(self.cwd.path())
            .arg("migrate")
            .args(args)
            .arg("--source")
            .arg(self.dir.path())
            .args(["--database-url", &self.db.sage_url()])
            .output()
            .expect("run sage-db")
    }

    fn sage_ok(&self, args: &[&str]) -> String {
        let out = self.sage(args);
        assert!(out.status.success(), "sage-db migrate {args:?} failed:\n{}{}", stdout(&out), stderr(&out));
        format!("{}{}", stdout(&out), stderr(&out))
    }

    fn sage_status(&self) -> serde_json::Value {
        let out = sage_db(self.cwd.path())
            .args(["--json", "migrate", "status", "--source"])
            .arg(self.dir.path())
            .args(["--database-url", &self.db.sage_url()])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status JSON: {e}: {}{}", stdout(&out), stderr(&out)))
    }
}

async fn two_tools_on_one_database(tool: Tool, postgres: bool) {
    let s = Scenario::new(tool, postgres).await;
    s.add_step(2);
    // The tool applies part.
    s.tool_up();
    assert_eq!(s.tool_applied(), [1, 2]);
    // SAGE DB the rest.
    s.add_step(3);
    s.sage_ok(&["up"]);
    assert_eq!(s.db.runs(3).await, [1, 1, 1], "each migration ran once");
    assert_eq!(s.tool_applied(), [1, 2, 3], "the tool sees SAGE DB's step");
    // The tool applies more; SAGE DB follows and runs nothing twice.
    s.add_step(4);
    s.tool_up();
    assert_eq!(s.db.runs(4).await, [1, 1, 1, 1]);
    let status = s.sage_status();
    assert_eq!(status["version"], 4, "{status}");
    assert_eq!(status["pending"], 0, "{status}");
    let out = s.sage_ok(&["up"]);
    assert!(out.contains("applied migration 4") || out.contains("nothing to do"), "{out}");
    assert_eq!(s.db.runs(4).await, [1, 1, 1, 1], "SAGE DB did not run the tool's migration again");
    // `down 1` reverts the newest, the one the tool applied.
    s.sage_ok(&["down", "1", "--yes"]);
    assert_eq!(s.db.runs(4).await, [1, 1, 1, 0]);
    assert_eq!(s.tool_applied(), [1, 2, 3]);
    // The tool reverts; SAGE DB notices.
    s.tool_down_one();
    assert_eq!(s.db.runs(4).await, [1, 1, 0, 0]);
    let status = s.sage_status();
    assert_eq!(status["version"], 2, "{status}");
    assert_eq!(status["pending"], 2, "{status}");
    s.sage_ok(&["up"]);
    assert_eq!(s.db.runs(4).await, [1, 1, 1, 1]);
    assert_eq!(s.tool_applied(), [1, 2, 3, 4]);
    if tool == Tool::Dbmate {
        // dbmate's versions keep the files' padding, so dbmate finds its own files applied.
        let padded =
            s.db.scalar("SELECT count(*) FROM schema_migrations WHERE version IN ('001', '002', '003', '004')").await;
        assert_eq!(padded, 4);
    }
}

macro_rules! both {
    ($name:ident, $tool:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                two_tools_on_one_database($tool, true).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                two_tools_on_one_database($tool, false).await;
            }
        }
    };
}

both!(golang_migrate_and_sage_db, Tool::GolangMigrate);
both!(sqlx_and_sage_db, Tool::Sqlx);
both!(dbmate_and_sage_db, Tool::Dbmate);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golang_migrate_dirty_state_is_visible_and_force_lets_the_tool_continue() {
    let s = Scenario::new(Tool::GolangMigrate, true).await;
    s.add_step(2);
    s.add(3, "CREATE TABLE t3 (id integer);\nINSERT INTO missing_table VALUES (3);", "DROP TABLE IF EXISTS t3;");
    let out = s.tool(&["up"]);
    assert!(!out.status.success(), "migration 3 fails");
    // Visible everywhere: status (exit code and JSON), version, validate.
    let status = s.sage(&["status", "--exit-code"]);
    assert_eq!(status.status.code(), Some(1), "{}", stdout(&status));
    assert!(stdout(&status).contains("dirty at version 3"), "{}", stdout(&status));
    let version = s.sage(&["version"]);
    assert_eq!(version.status.code(), Some(1));
    assert!(stdout(&version).contains("dirty"), "{}", stdout(&version));
    assert_eq!(s.sage(&["validate"]).status.code(), Some(1));
    let up = s.sage(&["up"]);
    assert!(!up.status.success() && stderr(&up).contains("dirty"), "{}", stderr(&up));
    // The operator looks (t3 was not created: golang-migrate's file ran in one implicit
    // transaction), forces 2, fixes the file; golang-migrate itself continues.
    s.sage_ok(&["force", "2"]);
    assert_eq!(s.db.scalar("SELECT count(*) FROM schema_migrations WHERE version = 2 AND NOT dirty").await, 1);
    s.add_step(3);
    s.tool_up();
    assert_eq!(s.tool_applied(), [1, 2, 3]);
    assert_eq!(s.db.runs(3).await, [1, 1, 1]);
    assert_eq!(s.sage_status()["version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_failed_row_is_visible_and_force_lets_sqlx_continue() {
    let s = Scenario::new(Tool::Sqlx, true).await;
    s.add_step(2);
    s.tool_up();
    // What sqlx leaves when a migration fails where DDL is not transactional.
    s.db.exec("UPDATE _sqlx_migrations SET success = false WHERE version = 2").await;
    let refused = s.tool(&["run"]);
    assert!(!refused.status.success(), "sqlx itself refuses a failed row");
    let status = s.sage(&["status", "--exit-code"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(stdout(&status).contains("sqlx marks migration 2 as failed"), "{}", stdout(&status));
    assert!(!s.sage(&["up"]).status.success());
    s.sage_ok(&["force", "2"]);
    assert_eq!(s.db.scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").await, 2);
    s.add_step(3);
    s.tool_up();
    assert_eq!(s.db.runs(3).await, [1, 1, 1]);
    assert_eq!(s.tool_applied(), [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_in_step_creates_the_tools_table_on_a_fresh_database() {
    for tool in [Tool::GolangMigrate, Tool::Sqlx, Tool::Dbmate] {
        for postgres in [true, false] {
            let s = Scenario::new(tool, postgres).await;
            s.add_step(2);
            let name = match tool {
                Tool::GolangMigrate => "golang-migrate",
                Tool::Sqlx => "sqlx",
                Tool::Dbmate => "dbmate",
            };
            s.sage_ok(&["up", "--keep-in-step", name]);
            assert_eq!(s.tool_applied(), [1, 2], "{tool:?} sees SAGE DB's migrations from its first run");
            s.add_step(3);
            s.tool_up();
            assert_eq!(s.db.runs(3).await, [1, 1, 1], "{tool:?}");
        }
    }
}

/// `SAGE_KEEP_IN_STEP=auto` (as a deployment's environment or `.env` would set it) keeps the
/// tool whose layout the directory has: dbmate's sections, sqlx's single files. A directory
/// of `.up.sql`/`.down.sql` pairs could be golang-migrate's or sqlx's: refused, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_in_step_auto_follows_the_directory_layout() {
    for postgres in [true, false] {
        let s = Scenario::new(Tool::Dbmate, postgres).await;
        s.add_step(2);
        let out = sage_db(s.cwd.path())
            .args(["migrate", "up", "--source"])
            .arg(s.dir.path())
            .args(["--database-url", &s.db.sage_url()])
            .env("SAGE_KEEP_IN_STEP", "auto")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        assert_eq!(s.tool_applied(), [1, 2], "dbmate sees SAGE DB's migrations");

        // sqlx's single-file layout.
        let single = Scenario::new(Tool::Sqlx, postgres).await;
        for entry in std::fs::read_dir(single.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.to_str().unwrap().ends_with(".down.sql") {
                std::fs::remove_file(&path).unwrap();
            } else {
                let plain = path.to_str().unwrap().replace(".up.sql", ".sql");
                std::fs::rename(&path, plain).unwrap();
            }
        }
        let out = sage_db(single.cwd.path())
            .args(["migrate", "up", "--keep-in-step", "auto", "--source"])
            .arg(single.dir.path())
            .args(["--database-url", &single.db.sage_url()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        assert_eq!(single.tool_applied(), [1], "sqlx sees SAGE DB's migration");

        let pairs = Scenario::new(Tool::GolangMigrate, postgres).await;
        let out = sage_db(pairs.cwd.path())
            .args(["migrate", "up", "--keep-in-step", "auto", "--source"])
            .arg(pairs.dir.path())
            .args(["--database-url", &pairs.db.sage_url()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}{}", stdout(&out), stderr(&out));
        assert!(stderr(&out).contains("golang-migrate or sqlx"), "{}", stderr(&out));
        assert_eq!(pairs.db.scalar(&tables_named(postgres, "applied_log")).await, 0, "nothing ran");
    }
}

fn tables_named(postgres: bool, name: &str) -> String {
    if postgres {
        format!("SELECT count(*) FROM pg_tables WHERE tablename = '{name}'")
    } else {
        format!("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{name}'")
    }
}

/// A database the application made itself (its create_all at start-up), beside the tool's
/// table that records nothing (the tool ran once and everything was reverted): `up` adopts
/// what the schema shows, runs only the rest, and the tool sees all of it as applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_all_database_beside_an_empty_tool_table_is_adopted() {
    for tool in [Tool::GolangMigrate, Tool::Sqlx, Tool::Dbmate] {
        for postgres in [true, false] {
            let s = Scenario::new(tool, postgres).await;
            s.add_step(2);
            s.tool_up();
            s.tool_down_one();
            s.tool_down_one();
            assert_eq!(s.tool_applied(), Vec::<i64>::new(), "{tool:?}: the tool's table records nothing");
            // What the application's start-up makes: migrations 1 and 2's objects, with rows.
            s.db.exec("CREATE TABLE applied_log (v integer NOT NULL); CREATE TABLE t2 (id integer); INSERT INTO t2 VALUES (7);")
                .await;
            s.add_step(3);
            let dry = s.sage_ok(&["up", "--dry-run"]);
            assert!(dry.contains("would adopt") && dry.contains("migrations 1 to 2"), "{tool:?}: {dry}");
            assert!(!dry.contains("step2"), "{tool:?}: the dry run shows migration 2 as run: {dry}");
            assert_eq!(
                s.db.scalar("SELECT count(*) FROM applied_log").await,
                0,
                "{tool:?}: the dry run changed nothing"
            );
            let out = s.sage_ok(&["up"]);
            assert!(out.contains("adopted"), "{tool:?}: {out}");
            assert_eq!(s.db.runs(3).await, [0, 0, 1], "{tool:?}: only migration 3 ran");
            assert_eq!(s.db.scalar("SELECT count(*) FROM t2").await, 1, "{tool:?}: the application's rows are kept");
            assert_eq!(s.tool_applied(), [1, 2, 3], "{tool:?} sees the adopted migrations as applied");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golang_migrate_waits_for_sage_db_and_nothing_runs_twice() {
    tool_waits_for_sage_db(Tool::GolangMigrate).await;
}

/// While SAGE DB runs a migration, the tool started beside it waits in its own lock (SAGE DB
/// holds it under the tool's key, computed as the tool computes it) and then finds nothing
/// to do. (sqlx-cli's `migrate run` takes no lock at all, only sqlx's library migrator
/// does, so the CLI cannot be shown waiting; dbmate takes none either.)
async fn tool_waits_for_sage_db(tool: Tool) {
    let s = Scenario::new(tool, true).await;
    s.tool_up();
    s.add(
        2,
        "CREATE TABLE t2 (id integer);\nINSERT INTO applied_log VALUES (2);\nSELECT pg_sleep(3);",
        "DROP TABLE t2;",
    );
    let url = s.db.sage_url();
    let sage = sage_db(s.cwd.path())
        .args(["migrate", "up", "--source"])
        .arg(s.dir.path())
        .args(["--database-url", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once SAGE DB runs migration 2, the tool finds its own lock taken.
    let mut running = false;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n = s
            .db
            .scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(3)%' AND pid <> pg_backend_pid()")
            .await;
        if n > 0 {
            running = true;
            break;
        }
    }
    assert!(running, "SAGE DB started migration 2");
    let other = match tool {
        Tool::GolangMigrate => s.tool(&["up"]),
        _ => s.tool(&["run"]),
    };
    let text = format!("{}{}", stdout(&other), stderr(&other));
    if other.status.success() {
        // The tool waited in its lock until SAGE DB had committed migration 2, then found
        // nothing to do. (SAGE DB's process may still be validating the schema after giving
        // the lock back, so whether it has exited says nothing.)
        let ran = match tool {
            Tool::GolangMigrate => !text.contains("no change"),
            _ => text.contains("Applied"),
        };
        assert!(!ran, "{tool:?} ran instead of waiting: {text}");
    } else {
        assert!(text.contains("lock"), "{tool:?} failed for another reason than the lock: {text}");
    }
    let sage_out = sage.wait_with_output().unwrap();
    assert!(sage_out.status.success(), "{}", stderr(&sage_out));
    // Afterwards golang-migrate finds everything applied and runs nothing twice.
    s.tool_up();
    assert_eq!(s.db.runs(2).await, [1, 1]);
    assert_eq!(s.tool_applied(), [1, 2]);
}
