//! The progress line of long commands: drawn on stderr when it is a terminal (here a
//! pseudo-terminal made by util-linux `script`), never into a pipe, never with `--quiet` or
//! `--json`, and cleared before the report.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{run, sage_db, stderr, stdout};

const SCRIPT: &str = "/usr/bin/script";

/// `sage-db ARGS` run in `cwd` under a pseudo-terminal of type `xterm`, with a clean
/// environment; returns everything the terminal showed (stdout and stderr together) and
/// whether it succeeded.
fn under_terminal(cwd: &Path, args: &[&str]) -> (bool, String) {
    under_terminal_of_type("xterm", cwd, args, &[])
}

fn under_terminal_of_type(term: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    assert!(
        Path::new(SCRIPT).is_file(),
        "{SCRIPT} (util-linux `script`) is needed to run sage-db under a terminal; install util-linux (scripts/test does)"
    );
    let mut line = quote(env!("CARGO_BIN_EXE_sage-db"));
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let output = Command::new(SCRIPT)
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .env("SHELL", "/bin/sh")
        .env("TERM", term)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One shell word: the test's own paths and arguments, quoted for `sh -c`.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

fn migrations(count: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=count {
        std::fs::write(
            dir.path().join(format!("{i:04}_table_{i}.sql")),
            format!(
                "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, label TEXT);\nINSERT INTO t{i} (label) VALUES ('x');\n"
            ),
        )
        .unwrap();
    }
    dir
}

fn migrate_up(source: &Path, db: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "migrate".to_string(),
        "up".into(),
        "--source".into(),
        source.display().to_string(),
        "--database-url".into(),
        format!("sqlite://{}", db.display()),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn sqlite_count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn migrate_up_draws_progress_on_a_terminal_and_clears_it() {
    let cwd = tempfile::tempdir().unwrap();
    let source = migrations(30);
    let db: PathBuf = cwd.path().join("app.db");
    let (ok, shown) = under_terminal(cwd.path(), &strs(&migrate_up(source.path(), &db, &[])));
    assert!(ok, "{shown}");
    assert!(shown.contains("applying 1/30 1 table_1"), "no progress on the terminal:\n{shown:?}");
    assert!(shown.contains("/30 "), "{shown:?}");
    // The line is cleared (carriage return and erase line) before the report is printed.
    let report = shown.find("applied 0001_table_1.sql").expect("the report");
    let last_progress = shown.rfind("applying ").unwrap();
    assert!(last_progress < report, "{shown:?}");
    assert!(shown[last_progress..report].contains("\u{1b}[2K"), "the progress line is not erased:\n{shown:?}");
    assert!(shown.contains("version none -> 30"), "{shown:?}");
    assert_eq!(sqlite_count(&db, "SELECT count(*) FROM sage_schema_history"), 30);
}

#[test]
fn migrate_up_into_a_pipe_shows_no_progress() {
    let cwd = tempfile::tempdir().unwrap();
    let source = migrations(30);
    let db = cwd.path().join("app.db");
    let out = run(sage_db(cwd.path()).args(strs(&migrate_up(source.path(), &db, &[]))));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing on stderr into a pipe");
    let text = stdout(&out);
    assert!(!text.contains("applying") && !text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
    assert_eq!(text.lines().filter(|l| l.starts_with("applied ")).count(), 30, "{text}");
    assert!(text.ends_with("version none -> 30\n"), "{text}");
}

#[test]
fn migrate_up_with_quiet_or_json_shows_no_progress_on_a_terminal() {
    let cwd = tempfile::tempdir().unwrap();
    let source = migrations(30);
    let quiet_db = cwd.path().join("quiet.db");
    let (ok, shown) = under_terminal(cwd.path(), &strs(&migrate_up(source.path(), &quiet_db, &["--quiet"])));
    assert!(ok, "{shown}");
    assert_eq!(shown, "", "--quiet prints nothing, progress included");
    assert_eq!(sqlite_count(&quiet_db, "SELECT count(*) FROM sage_schema_history"), 30);

    let json_db = cwd.path().join("json.db");
    let (ok, shown) = under_terminal(cwd.path(), &strs(&migrate_up(source.path(), &json_db, &["--json"])));
    assert!(ok, "{shown}");
    assert!(!shown.contains("applying") && !shown.contains('\u{1b}'), "{shown:?}");
    // The terminal turns each newline into CR LF; nothing else is there but the document.
    let document: serde_json::Value = serde_json::from_str(&shown.replace("\r\n", "\n")).expect("only JSON");
    assert_eq!(document["report"]["applied"].as_array().map(Vec::len), Some(30));

    // A terminal that cannot move its cursor gets no line it could not erase.
    let dumb_db = cwd.path().join("dumb.db");
    let (ok, shown) = under_terminal_of_type("dumb", cwd.path(), &strs(&migrate_up(source.path(), &dumb_db, &[])), &[]);
    assert!(ok, "{shown}");
    assert!(
        !shown.contains("applying") && !shown.contains('\u{1b}') && shown.contains("version none -> 30"),
        "{shown:?}"
    );
}

/// A SQLite database with SAGE's tables (from `seed`), 3,000 expired nonces and 2,000 old
/// audit rows deleted 100 at a time.
fn cleanup_fixture() -> (tempfile::TempDir, PathBuf) {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["seed", "--environment", "dev"])).status.success());
    let conn = rusqlite::Connection::open(cwd.path().join("sage.db")).unwrap();
    conn.execute_batch(
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 3000)
         INSERT INTO nonces (nonce, used_at, expires_at) SELECT 'old' || i, 1, 2 FROM g;
         CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL);
         WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2000)
         INSERT INTO audit_log (at) SELECT '2020-01-01T00:00:00Z' FROM g;",
    )
    .unwrap();
    let config = cwd.path().join("cleanup.toml");
    std::fs::write(
        &config,
        "[[retention]]\ntable = \"audit_log\"\ncolumn = \"at\"\nmax_age = \"365d\"\nbatch = 100\nunit = \"iso8601\"\n",
    )
    .unwrap();
    (cwd, config)
}

#[test]
fn cleanup_draws_rows_deleted_per_table_on_a_terminal_only() {
    let (cwd, config) = cleanup_fixture();
    let config_arg = config.display().to_string();
    let (ok, shown) = under_terminal(cwd.path(), &["cleanup", "--config", &config_arg]);
    assert!(ok, "{shown}");
    assert!(shown.contains("deleting from audit_log: 100 row(s)"), "no retention progress:\n{shown:?}");
    assert!(shown.contains("deleting expired nonces: 1000 row(s)"), "no expiry progress:\n{shown:?}");
    assert!(shown.contains("deleted 0 expired session(s) and 3000 expired nonce(s)"), "{shown:?}");
    assert!(shown.contains("deleted 2000 row(s) of audit_log"), "{shown:?}");

    let (cwd, config) = cleanup_fixture();
    let piped = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert_eq!(stderr(&piped), "");
    let text = stdout(&piped);
    assert!(!text.contains("deleting") && !text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("deleted 0 expired session(s) and 3000 expired nonce(s)"), "{text}");

    let (cwd, config) = cleanup_fixture();
    let config_arg = config.display().to_string();
    let (ok, shown) = under_terminal(cwd.path(), &["cleanup", "--quiet", "--config", &config_arg]);
    assert!(ok, "{shown}");
    assert_eq!(shown, "");
}

#[test]
fn seed_draws_files_seeded_on_a_terminal() {
    let cwd = tempfile::tempdir().unwrap();
    let seeds = tempfile::tempdir().unwrap();
    std::fs::create_dir(seeds.path().join("dev")).unwrap();
    std::fs::write(seeds.path().join("dev/000_table.sql"), "CREATE TABLE things (id INTEGER PRIMARY KEY);").unwrap();
    for i in 1..=20 {
        std::fs::write(seeds.path().join(format!("dev/{i:03}_row.sql")), format!("INSERT INTO things VALUES ({i});"))
            .unwrap();
    }
    let url = format!("sqlite://{}", cwd.path().join("app.db").display());
    let seeds_arg = seeds.path().display().to_string();
    let args = ["seed", "--database-url", &url, "--seeds", &seeds_arg, "--environment", "dev"];
    let (ok, shown) = under_terminal(cwd.path(), &args);
    assert!(ok, "{shown}");
    assert!(shown.contains("seeding 1/21 000_table.sql"), "no seed progress:\n{shown:?}");
    assert!(shown.contains("21 added"), "{shown:?}");
    let (ok, shown) = under_terminal(cwd.path(), &[&args[..], &["--json"]].concat());
    assert!(ok, "{shown}");
    assert!(!shown.contains("seeding") && !shown.contains('\u{1b}'), "{shown:?}");
}

#[tokio::test]
async fn postgres_backup_draws_bytes_dumped_on_a_terminal_and_nothing_with_json() {
    let db = sage_testkit::database().await.unwrap();
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE blobs (id int PRIMARY KEY, body text);
             INSERT INTO blobs SELECT i, repeat(md5(i::text), 20) FROM generate_series(1, 20000) i;",
        )
        .await
        .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    // The URL (with its password) goes through the environment, not the command line.
    let mut env = vec![("DATABASE_URL", url.as_str())];
    let pg_bin = std::env::var("SAGE_PG_BIN").unwrap_or_default();
    if !pg_bin.is_empty() {
        env.push(("SAGE_PG_BIN", pg_bin.as_str()));
    }
    let (ok, shown) = under_terminal_of_type("xterm", cwd.path(), &["backup", "--dir", "b"], &env);
    assert!(ok, "{shown}");
    assert!(shown.contains("dumping ") && shown.contains("iB"), "no backup progress:\n{shown:?}");
    let report = shown.find("wrote ").expect("the report");
    assert!(shown.rfind("dumping ").unwrap() < report, "{shown:?}");
    let (ok, shown) = under_terminal_of_type("xterm", cwd.path(), &["backup", "--json", "--dir", "b"], &env);
    assert!(ok, "{shown}");
    assert!(!shown.contains("dumping") && !shown.contains('\u{1b}'), "{shown:?}");
    let document: serde_json::Value = serde_json::from_str(&shown.replace("\r\n", "\n")).expect("only JSON");
    assert_eq!(document["manifest"]["tables"]["public.blobs"], 20000);

    let file = document["file"].as_str().expect("the backup file").to_string();
    let (ok, shown) = under_terminal_of_type("xterm", cwd.path(), &["restore", &file, "--yes"], &env);
    assert!(ok, "{shown}");
    assert!(shown.contains("restoring ") && shown.contains("iB"), "no restore progress:\n{shown:?}");
    let report = shown.find("row counts verified").expect("the report");
    assert!(shown.rfind("restoring ").unwrap() < report, "{shown:?}");
}
