//! `sage-db migrate` as operators use it: many processes at once, processes killed
//! mid-migration, bad input, confirmations and exit codes.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{pg_scalar, run, sage_db, stderr, stdout, write_dir};

fn counted_migrations(slow: &str) -> Vec<(String, String)> {
    let mut files = vec![(
        "000001_log.up.sql".to_string(),
        "CREATE TABLE applied_log (version integer NOT NULL);\nINSERT INTO applied_log VALUES (1);".to_string(),
    )];
    for v in 2..=6 {
        files.push((
            format!("00000{v}_step.up.sql"),
            format!("CREATE TABLE t{v} (id integer);\nINSERT INTO applied_log VALUES ({v});\n{slow}"),
        ));
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_processes_on_postgres_apply_each_migration_once() {
    let db = sage_testkit::database().await.unwrap();
    let files = counted_migrations("SELECT pg_sleep(0.2);");
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let dir = write_dir(&refs);
    let cwd = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..10)
        .map(|_| {
            sage_db(cwd.path())
                .args(["migrate", "up", "--source"])
                .arg(dir.path())
                .args(["--database-url", &db.url()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a process failed: {}", stderr(&out));
    }
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM applied_log").await, 6);
    assert_eq!(pg_scalar(db.settings(), "SELECT count(DISTINCT version)::bigint FROM applied_log").await, 6);
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM sage_schema_history WHERE state = 'applied'").await, 6);
}

#[test]
fn ten_processes_on_sqlite_apply_each_migration_once() {
    let files = counted_migrations("");
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let dir = write_dir(&refs);
    let cwd = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..10)
        .map(|_| {
            sage_db(cwd.path())
                .args(["migrate", "up", "--source"])
                .arg(dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a process failed: {}", stderr(&out));
    }
    let conn = rusqlite::Connection::open(cwd.path().join("sage.db")).unwrap();
    let (rows, distinct): (i64, i64) = conn
        .query_row("SELECT count(*), count(DISTINCT version) FROM applied_log", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!((rows, distinct), (6, 6));
}

/// Waits until `sql` (a boolean query) holds, for at most 20 seconds.
async fn wait_for(settings: &sage_conn::PgSettings, sql: &str) {
    let started = Instant::now();
    while pg_scalar(settings, sql).await == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for: {sql}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `migrate up` on `dir` and kills it (SIGKILL) while the server runs its
/// `SELECT pg_sleep(2)` statement.
async fn kill_while_sleeping(cwd: &std::path::Path, dir: &std::path::Path, db: &sage_testkit::TestDatabase) {
    let mut child = sage_db(cwd)
        .args(["migrate", "up", "--source"])
        .arg(dir)
        .args(["--database-url", &db.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(db.settings(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(2)%'").await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_transactional_migration_next_up_just_works() {
    let db = sage_testkit::database().await.unwrap();
    let dir = write_dir(&[
        ("1_a.up.sql", "CREATE TABLE a (id integer);"),
        ("2_slow.up.sql", "CREATE TABLE half (id integer);\nINSERT INTO half VALUES (1);\nSELECT pg_sleep(2);"),
    ]);
    let cwd = tempfile::tempdir().unwrap();
    kill_while_sleeping(cwd.path(), dir.path(), &db).await;

    let out = run(sage_db(cwd.path())
        .args(["migrate", "up", "--source"])
        .arg(dir.path())
        .args(["--database-url", &db.url()]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM half").await, 1, "migration 2 ran exactly once");
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM sage_schema_history").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_no_transaction_migration_next_up_resumes() {
    let db = sage_testkit::database().await.unwrap();
    let dir = write_dir(&[
        ("1_t.up.sql", "CREATE TABLE t (a integer, b integer);"),
        (
            "2_indexes.up.sql",
            "-- sage:no-transaction\nCREATE INDEX CONCURRENTLY idx_a ON t (a);\nSELECT pg_sleep(2);\nCREATE INDEX CONCURRENTLY idx_b ON t (b);\n",
        ),
    ]);
    let cwd = tempfile::tempdir().unwrap();
    kill_while_sleeping(cwd.path(), dir.path(), &db).await;
    assert_eq!(
        pg_scalar(
            db.settings(),
            "SELECT count(*) FROM sage_schema_history WHERE state = 'running' AND statements_done = 1"
        )
        .await,
        1
    );

    let out = run(sage_db(cwd.path())
        .args(["migrate", "up", "--source"])
        .arg(dir.path())
        .args(["--database-url", &db.url()]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("resumed 2_indexes.up.sql at statement 2"), "{}", stdout(&out));
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM pg_indexes WHERE tablename = 't'").await, 2);
}

#[test]
fn killed_during_a_sqlite_migration_next_up_just_works() {
    let dir = write_dir(&[(
        "1_slow.up.sql",
        "CREATE TABLE half (id integer);\nINSERT INTO half VALUES (1);\nWITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000) SELECT count(*) FROM c;",
    )]);
    let cwd = tempfile::tempdir().unwrap();
    let mut child = sage_db(cwd.path())
        .args(["migrate", "up", "--source"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    // The journal rolls the half-done transaction back on the next open; the history is
    // empty, so the file is simply applied again (here replaced by a quick version).
    std::fs::write(dir.path().join("1_slow.up.sql"), "CREATE TABLE half (id integer);\nINSERT INTO half VALUES (1);")
        .unwrap();
    let out = run(sage_db(cwd.path()).args(["migrate", "up", "--source"]).arg(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let conn = rusqlite::Connection::open(cwd.path().join("sage.db")).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM half", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn url_typo_is_one_line_with_a_suggestion_and_no_password() {
    let err = status_error("postgress://sage:s3cret-pw@localhost/sage");
    assert!(err.contains("did you mean postgres://"), "{err}");
}

#[test]
fn unreachable_server_says_so_without_the_password() {
    let err = status_error("postgres://sage:s3cret-pw@127.0.0.1:1/sage?sslmode=disable");
    assert!(err.contains("127.0.0.1:1") && err.contains("refused"), "{err}");
}

/// Runs `migrate status` against a URL whose password is `s3cret-pw` and expects a
/// connection error (exit 2: one line, and a hint below it) that does not repeat the password.
fn status_error(url: &str) -> String {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["migrate", "status", "--database-url", url]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    // The error line, and at most the hint below it.
    let lines: Vec<&str> = err.trim().lines().collect();
    assert!(lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")), "{err}");
    assert!(!err.contains("s3cret-pw"), "{err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_named_as_such() {
    let db = sage_testkit::database().await.unwrap();
    let mut settings = db.settings().clone();
    settings.password = Some(sage_conn::Secret::new("not-the-password"));
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["migrate", "status", "--database-url", &settings.url_exposing_password()]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

#[test]
fn db_variables_from_an_env_file_are_used_and_redacted() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("prod.env"),
        "DB_HOST=127.0.0.1\nDB_PORT=1\nDB_USER=sage\nDB_PASSWORD=hunter2-pw\nDB_NAME=sage\nDB_SSLMODE=disable\n",
    )
    .unwrap();
    let out = run(sage_db(cwd.path()).args(["--env", "prod.env", "migrate", "status"]));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2-pw"), "{err}");
}

#[test]
fn bad_file_names_and_duplicates_are_listed_and_nothing_runs() {
    let dir = write_dir(&[
        ("000001_ok.up.sql", "CREATE TABLE ok (id integer);"),
        ("000002_first.up.sql", "CREATE TABLE first (id integer);"),
        ("000002_second.up.sql", "CREATE TABLE second (id integer);"),
        ("3_missing_suffix.up.sq", "SELECT 1;"),
    ]);
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["migrate", "up", "--source"]).arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("000002_second.up.sql") && err.contains("also used by 000002_first.up.sql"), "{err}");
    assert!(err.contains("3_missing_suffix.up.sq"), "{err}");
    let conn = rusqlite::Connection::open(cwd.path().join("sage.db")).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'ok'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "nothing ran");
}

#[test]
fn validate_and_status_exit_codes() {
    let dir =
        write_dir(&[("1_a.up.sql", "CREATE TABLE a (id integer);"), ("2_b.up.sql", "CREATE TABLE b (id integer);")]);
    let cwd = tempfile::tempdir().unwrap();
    let migrate = |args: &[&str]| {
        let mut c = sage_db(cwd.path());
        c.arg("migrate").args(args).arg("--source").arg(dir.path());
        run(&mut c)
    };
    assert_eq!(migrate(&["status", "--exit-code"]).status.code(), Some(1), "pending");
    assert_eq!(migrate(&["status"]).status.code(), Some(0), "without --exit-code");
    assert!(migrate(&["up", "1"]).status.success());
    let json = migrate(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(status["version"], 1);
    assert_eq!(status["pending"], 1);
    assert!(migrate(&["up"]).status.success());
    assert_eq!(migrate(&["status", "--exit-code"]).status.code(), Some(0));
    assert_eq!(stdout(&migrate(&["version"])).trim(), "2");
    assert_eq!(migrate(&["validate"]).status.code(), Some(0));
    std::fs::write(dir.path().join("1_a.up.sql"), "CREATE TABLE a (id bigint);").unwrap();
    let out = migrate(&["validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("1_a.up.sql: changed after it was applied"), "{}", stdout(&out));
}

#[test]
fn down_asks_first_and_yes_proceeds() {
    let dir = write_dir(&[("1_a.up.sql", "CREATE TABLE a (id integer);"), ("1_a.down.sql", "DROP TABLE a;")]);
    let cwd = tempfile::tempdir().unwrap();
    let migrate = |args: &[&str]| {
        let mut c = sage_db(cwd.path());
        c.arg("migrate").args(args).arg("--source").arg(dir.path()).stdin(Stdio::null());
        run(&mut c)
    };
    assert!(migrate(&["up"]).status.success());
    let refused = migrate(&["down"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("\nhint: pass `--yes`"), "{}", stderr(&refused));
    assert_eq!(stdout(&migrate(&["version"])).trim(), "1", "nothing reverted");
    let dry = migrate(&["down", "--dry-run"]);
    assert!(dry.status.success());
    assert!(stdout(&dry).contains("DROP TABLE a"), "{}", stdout(&dry));
    assert!(migrate(&["down", "--yes"]).status.success());
    assert_eq!(stdout(&migrate(&["version"])).trim(), "none");
}

#[test]
fn create_follows_the_directory_format() {
    let dir = write_dir(&[("000001_init.up.sql", "SELECT 1;"), ("000001_init.down.sql", "SELECT 1;")]);
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["migrate", "create", "add session ttl", "--source"]).arg(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("000002_add_session_ttl.up.sql").is_file());
    assert!(dir.path().join("000002_add_session_ttl.down.sql").is_file());
}

#[test]
fn status_on_a_missing_sqlite_file_creates_nothing() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["migrate", "status", "--exit-code"]));
    assert_eq!(out.status.code(), Some(1), "everything is pending");
    assert!(stdout(&out).contains("does not exist yet"), "{}", stdout(&out));
    assert!(!cwd.path().join("sage.db").exists());
}

/// Under a linguistic default collation, SAGE's key columns still order byte by byte (as on
/// SQLite), the schema validates clean, and stepping back one migration restores the
/// database's own order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_order_bytewise_under_a_linguistic_database_collation() {
    let db =
        sage_testkit::database_created_with("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'")
            .await
            .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let sage =
        |args: &[&str]| run(sage_db(cwd.path()).args(args).args(["--database-url", &db.url()]).stdin(Stdio::null()));
    let up = sage(&["migrate", "up"]);
    assert!(up.status.success(), "{}", stderr(&up));
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO sessions (id, client_did, server_did, session_key, expires_at) \
             SELECT id, 'did:x:c', 'did:x:s', '\\x01', now() + interval '1 hour' FROM unnest(ARRAY['b', 'B', 'a', 'A']) AS id",
        )
        .await
        .unwrap();
    assert_eq!(ids_in_order(&client).await, "ABab", "byte order");
    let validate = sage(&["schema", "validate"]);
    assert!(validate.status.success(), "{}", stdout(&validate));

    let down = sage(&["migrate", "down", "1", "--yes"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(ids_in_order(&client).await, "aAbB", "the database's linguistic order again");
    assert!(sage(&["migrate", "up"]).status.success());
    assert_eq!(ids_in_order(&client).await, "ABab");
}

async fn ids_in_order(client: &tokio_postgres::Client) -> String {
    let rows = client.query("SELECT id FROM sessions ORDER BY id", &[]).await.unwrap();
    rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

/// Migration 7 locks the tables of nonces, sessions and DIDs. Behind a transaction that holds
/// one of them it gives up after its lock timeout instead of holding the others (and every
/// claim) indefinitely, keeps nothing, and goes through once that transaction has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_7_gives_up_behind_a_long_transaction() {
    let db = sage_testkit::database().await.unwrap();
    let url = db.url();
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().to_path_buf();
    let sage = move |args: &'static [&'static str]| {
        let (url, dir) = (url.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            run(sage_db(&dir).args(args).args(["--database-url", &url]).stdin(Stdio::null()))
        })
    };
    assert!(sage(&["migrate", "up", "--to", "6"]).await.unwrap().status.success());
    let mut holder = sage_conn::connect(db.settings()).await.unwrap();
    let long = holder.transaction().await.unwrap();
    long.query("SELECT count(*) FROM dids", &[]).await.unwrap();

    let refused = sage(&["migrate", "up"]).await.unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("lock timeout"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("000007_byte_order_keys.up.sql"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("the file is fine: run it again"), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("\nhint: `sage-db migrate up` runs it again"), "{}", stderr(&refused));
    assert_eq!(stdout(&sage(&["migrate", "version"]).await.unwrap()).trim(), "6", "nothing kept");
    let claims = sage_conn::connect(db.settings()).await.unwrap();
    claims
        .execute("INSERT INTO nonces (nonce, expires_at) VALUES ('after-refusal', now() + interval '1 minute')", &[])
        .await
        .expect("claims go on once the migration has given up");

    long.rollback().await.unwrap();
    let applied = sage(&["migrate", "up"]).await.unwrap();
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert_eq!(stdout(&sage(&["migrate", "version"]).await.unwrap()).trim(), "7");
}

/// Another connection writing to the SQLite file for longer than `--lock-timeout`: the
/// error says so and what to do, nothing is applied, and `up` goes through afterwards.
#[test]
fn sqlite_busy_with_another_writer_says_so_and_keeps_nothing() {
    let dir = write_dir(&[("1_a.up.sql", "CREATE TABLE a (id integer);")]);
    let cwd = tempfile::tempdir().unwrap();
    let writer = rusqlite::Connection::open(cwd.path().join("sage.db")).unwrap();
    writer.pragma_update(None, "journal_mode", "WAL").unwrap();
    writer.execute_batch("CREATE TABLE held (x); BEGIN IMMEDIATE; INSERT INTO held VALUES (1);").unwrap();
    let migrate = |args: &[&str]| run(sage_db(cwd.path()).arg("migrate").args(args).arg("--source").arg(dir.path()));

    let refused = migrate(&["up", "--lock-timeout", "1s"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("another connection was writing to the database"), "{}", stderr(&refused));
    let text = stderr(&refused);
    let lines: Vec<&str> = text.lines().collect();
    let error = lines.iter().position(|l| l.starts_with("error: ")).expect("an error line");
    assert!(!lines[error].contains("--lock-timeout"), "the library's message names no option: {}", lines[error]);
    assert!(
        lines.get(error + 1).is_some_and(|l| l.starts_with("hint: ") && l.contains("raise `--lock-timeout`")),
        "the hint follows the error: {text}"
    );
    assert_eq!(stdout(&migrate(&["version"])).trim(), "none", "nothing applied");

    writer.execute_batch("ROLLBACK").unwrap();
    let applied = migrate(&["up"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert_eq!(stdout(&migrate(&["version"])).trim(), "1");
}

/// A symlink named like a migration that leads nowhere used to be skipped while `validate`
/// said ok; a migration silently missing from a set is a finding, and `up` refuses.
#[test]
fn dangling_and_looping_migration_symlinks_are_findings_and_block_up() {
    let dir = write_dir(&[("1_a.up.sql", "CREATE TABLE a (id integer);")]);
    std::os::unix::fs::symlink(dir.path().join("gone.sql"), dir.path().join("2_b.up.sql")).unwrap();
    std::os::unix::fs::symlink("3_c.up.sql", dir.path().join("3_c.up.sql")).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let migrate = |args: &[&str]| {
        let mut c = sage_db(cwd.path());
        c.arg("migrate").args(args).arg("--source").arg(dir.path());
        run(&mut c)
    };
    let validate = migrate(&["validate"]);
    assert_eq!(validate.status.code(), Some(1), "{}", stdout(&validate));
    assert!(stdout(&validate).contains("2_b.up.sql: dangling symlink"), "{}", stdout(&validate));
    assert!(stdout(&validate).contains("3_c.up.sql: symlink loop"), "{}", stdout(&validate));
    let up = migrate(&["up"]);
    assert_eq!(up.status.code(), Some(2));
    assert!(stderr(&up).contains("dangling symlink"), "{}", stderr(&up));
    let conn = rusqlite::Connection::open(cwd.path().join("sage.db")).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'a'", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "nothing ran");
    // A symlink that leads to a real file is a migration like any other.
    std::fs::remove_file(dir.path().join("2_b.up.sql")).unwrap();
    std::fs::remove_file(dir.path().join("3_c.up.sql")).unwrap();
    let elsewhere = write_dir(&[("b.sql", "CREATE TABLE b (id integer);")]);
    std::os::unix::fs::symlink(elsewhere.path().join("b.sql"), dir.path().join("2_b.up.sql")).unwrap();
    assert!(migrate(&["up"]).status.success());
    assert_eq!(stdout(&migrate(&["version"])).trim(), "2");
}

/// A migration older than the newest applied one: the error lists it without naming an
/// option, and the hint below it (or `"hint"` under `--json`) says which option applies it.
#[test]
fn an_out_of_order_migration_is_refused_with_the_option_in_the_hint() {
    let dir = write_dir(&[("2_b.up.sql", "CREATE TABLE b (id integer);")]);
    let cwd = tempfile::tempdir().unwrap();
    let migrate = |args: &[&str]| run(sage_db(cwd.path()).arg("migrate").args(args).arg("--source").arg(dir.path()));
    assert!(migrate(&["up"]).status.success());
    std::fs::write(dir.path().join("1_a.up.sql"), "CREATE TABLE a (id integer);").unwrap();

    let refused = migrate(&["up"]);
    assert_eq!(refused.status.code(), Some(2));
    let text = stderr(&refused);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains("1_a.up.sql"), "{text}");
    assert!(!lines[0].contains("--allow-out-of-order"), "{text}");
    assert!(lines[1].starts_with("hint: ") && lines[1].contains("`--allow-out-of-order`"), "{text}");

    let json = migrate(&["up", "--json"]);
    assert_eq!(json.status.code(), Some(2));
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(value["error"]["kind"], "migration_state");
    assert!(value["error"]["hint"].as_str().unwrap().contains("`--allow-out-of-order`"), "{value}");
    assert!(!value["error"]["message"].as_str().unwrap().contains("--allow"), "{value}");

    // `status` reports the same finding, with the same advice below it.
    let status = migrate(&["status"]);
    let text = stdout(&status);
    let finding = text.lines().position(|l| l.contains("1_a.up.sql")).unwrap_or_else(|| panic!("{text}"));
    let next = text.lines().nth(finding + 1).unwrap_or_default();
    assert!(next.trim_start().starts_with("hint: ") && next.contains("migrate up --allow-out-of-order`"), "{text}");

    let applied = migrate(&["up", "--allow-out-of-order"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
}
