//! Seeding, cleanup, backup/restore and monitoring from the command line.

mod common;

use std::process::Stdio;

use common::{pg_scalar, run, sage_db, stderr, stdout, write_dir};

fn sqlite_scalar(path: &std::path::Path, sql: &str) -> i64 {
    rusqlite::Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn dev_seed_twice_gives_exactly_the_documented_rows_on_sqlite() {
    let cwd = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let out = run(sage_db(cwd.path()).args(["seed", "--environment", "dev", "--json"]));
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let added: u64 = report["added"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(added, if round == 0 { 10 } else { 0 }, "{report}");
    }
    let db = cwd.path().join("sage.db");
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids"), 4);
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids WHERE revoked = 1"), 1);
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM sessions"), 3);
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM nonces"), 3);
    let staging = run(sage_db(cwd.path()).args(["seed", "--environment", "staging"]));
    assert!(staging.status.success());
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids WHERE did LIKE 'did:sage:staging:%'"), 2);
    let unknown = run(sage_db(cwd.path()).args(["seed", "--environment", "prod"]));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("dev, staging"), "{}", stderr(&unknown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_seed_twice_on_postgres_and_user_seeds_apply_once() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    let key = sage_store::keys::generate_key();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
    for _ in 0..2 {
        let out = run(sage_db(cwd.path())
            .args(["seed", "--environment", "dev", "--database-url", &url])
            .env("SAGE_SESSION_KEY", key.as_str()));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM dids").await, 4);
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM sessions").await, 3);
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM nonces").await, 3);

    let seeds = write_dir(&[]);
    std::fs::create_dir(seeds.path().join("qa")).unwrap();
    std::fs::write(
        seeds.path().join("qa/01_things.sql"),
        "CREATE TABLE things (id int); INSERT INTO things VALUES (1), (2);",
    )
    .unwrap();
    for _ in 0..2 {
        let out = run(sage_db(cwd.path())
            .args(["seed", "--environment", "qa", "--database-url", &url, "--seeds"])
            .arg(seeds.path()));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM things").await, 2);
    std::fs::write(seeds.path().join("qa/01_things.sql"), "INSERT INTO things VALUES (3);").unwrap();
    let changed = run(sage_db(cwd.path())
        .args(["seed", "--environment", "qa", "--database-url", &url, "--seeds"])
        .arg(seeds.path()));
    assert_eq!(changed.status.code(), Some(2));
    assert!(stderr(&changed).contains("changed after it was applied"), "{}", stderr(&changed));
    std::fs::write(
        seeds.path().join("qa/02_broken.sql"),
        "INSERT INTO things VALUES (9); INSERT INTO missing VALUES (1);",
    )
    .unwrap();
    std::fs::write(
        seeds.path().join("qa/01_things.sql"),
        "CREATE TABLE things (id int); INSERT INTO things VALUES (1), (2);",
    )
    .unwrap();
    let broken = run(sage_db(cwd.path())
        .args(["seed", "--environment", "qa", "--database-url", &url, "--seeds"])
        .arg(seeds.path()));
    assert_eq!(broken.status.code(), Some(2));
    assert!(stderr(&broken).contains("02_broken.sql failed and was rolled back"), "{}", stderr(&broken));
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM things").await, 2, "nothing of the failed seed remains");
}

#[test]
fn cleanup_removes_expired_rows_and_applies_retention_rules() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["seed", "--environment", "dev"])).status.success());
    let db = cwd.path().join("sage.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 2500)
         INSERT INTO nonces (nonce, used_at, expires_at) SELECT 'old' || i, 1, 2 FROM g;
         CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL);
         INSERT INTO audit_log (at) VALUES ('2020-01-01T00:00:00Z'), ('2021-06-01T00:00:00Z'), ('2999-01-01T00:00:00Z');",
    )
    .unwrap();
    drop(conn);
    let config = cwd.path().join("cleanup.toml");
    std::fs::write(
        &config,
        "[[retention]]\ntable = \"audit_log\"\ncolumn = \"at\"\nmax_age = \"365d\"\nbatch = 1\nunit = \"iso8601\"\n",
    )
    .unwrap();
    let dry = run(sage_db(cwd.path()).args(["cleanup", "--dry-run", "--json", "--config"]).arg(&config));
    assert!(dry.status.success(), "{}", stderr(&dry));
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(report["expired_nonces"], 2500);
    assert_eq!(report["retention"][0]["rows"], 2);
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM nonces"), 2503, "dry run deletes nothing");
    let real = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
    assert!(real.status.success(), "{}", stderr(&real));
    assert!(stdout(&real).contains("deleted 0 expired session(s) and 2500 expired nonce(s)"), "{}", stdout(&real));
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM nonces"), 3);
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM audit_log"), 1);
    std::fs::write(&config, "[[retention]]\ntable = \"audit_log\"\nmax_age = \"365d\"\n").unwrap();
    let bad = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("cleanup.toml") && stderr(&bad).contains("column"), "{}", stderr(&bad));
}

#[test]
fn backup_and_restore_from_the_command_line() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["seed", "--environment", "dev"])).status.success());
    let db = cwd.path().join("sage.db");
    let backup = run(sage_db(cwd.path()).args(["backup", "--json"]).env("SAGE_BACKUP_PASSPHRASE", "not used"));
    assert!(backup.status.success(), "{}", stderr(&backup));
    let report: serde_json::Value = serde_json::from_slice(&backup.stdout).unwrap();
    let file = report["file"].as_str().unwrap().to_string();
    assert_eq!(report["manifest"]["tables"]["dids"], 4);
    let verify = run(sage_db(cwd.path()).args(["backup", "verify", &file]));
    assert!(verify.status.success(), "{}", stderr(&verify));

    rusqlite::Connection::open(&db).unwrap().execute_batch("DELETE FROM dids; DELETE FROM sessions;").unwrap();
    let refused = run(sage_db(cwd.path()).args(["restore", &file]).stdin(Stdio::null()));
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids"), 0, "nothing restored without confirmation");
    let restored = run(sage_db(cwd.path()).args(["restore", &file, "--yes"]));
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids"), 4);
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM sessions"), 3);
    // Into a database of another schema the restore is refused; the hint names the flag.
    let other = cwd.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE unrelated (id int)").unwrap();
    let differs =
        run(sage_db(cwd.path()).args(["restore", &file, "--yes", "--json", "--database-url", "sqlite://other.db"]));
    assert_eq!(differs.status.code(), Some(2), "{}", stdout(&differs));
    let message = json_error(&differs);
    assert!(message.contains("different schema") && !message.contains("--"), "{message}");
    assert_eq!(json_hint(&differs), "pass `--replace-schema` to replace the database's schema with the backup's");
    assert_eq!(sqlite_scalar(&other, "SELECT count(*) FROM sqlite_schema WHERE name = 'dids'"), 0);

    let get = run(sage_db(cwd.path()).args(["session", "get", "550e8400-e29b-41d4-a716-446655440000"]));
    assert!(get.status.success(), "{}", stderr(&get));

    let encrypted = run(sage_db(cwd.path()).args(["backup", "--encrypt", "--json"]));
    assert_eq!(encrypted.status.code(), Some(2));
    assert!(json_error(&encrypted).contains("SAGE_BACKUP_PASSPHRASE"), "{}", stdout(&encrypted));
    let encrypted = run(sage_db(cwd.path())
        .args(["backup", "--encrypt", "--json"])
        .env("SAGE_BACKUP_PASSPHRASE", "s3cret passphrase"));
    assert!(encrypted.status.success(), "{}", stderr(&encrypted));
    let file: serde_json::Value = serde_json::from_slice(&encrypted.stdout).unwrap();
    let file = file["file"].as_str().unwrap().to_string();
    assert!(!stdout(&encrypted).contains("s3cret"));
    let wrong = run(sage_db(cwd.path()).args(["restore", &file, "--yes"]).env("SAGE_BACKUP_PASSPHRASE", "wrong"));
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stderr(&wrong).contains("cannot decrypt"), "{}", stderr(&wrong));
    // Without a key the library says the backup is encrypted; the command line says which
    // variable or flag gives the key (the JSON error's `hint`).
    let no_key = run(sage_db(cwd.path()).args(["restore", &file, "--yes", "--json"]));
    assert_eq!(no_key.status.code(), Some(2));
    assert!(json_error(&no_key).contains("is encrypted") && !json_error(&no_key).contains("--"), "{}", stdout(&no_key));
    assert_eq!(json_hint(&no_key), "set SAGE_BACKUP_PASSPHRASE or pass `--identity FILE`", "{}", stdout(&no_key));
    let right =
        run(sage_db(cwd.path()).args(["restore", &file, "--yes"]).env("SAGE_BACKUP_PASSPHRASE", "s3cret passphrase"));
    assert!(right.status.success(), "{}", stderr(&right));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_shows_every_section_and_says_how_to_enable_slow_queries() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
    let out = run(sage_db(cwd.path()).args(["monitor", "--json", "--database-url", &url]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let titles: Vec<&str> =
        report["sections"].as_array().unwrap().iter().map(|s| s["title"].as_str().unwrap()).collect();
    for expected in [
        "SAGE",
        "Sessions by client",
        "Database",
        "Tables",
        "Index usage",
        "Unused indexes",
        "Slow queries",
        "Long-running queries (over 5 s)",
        "Connections by state",
        "Blocking locks",
        "Dead tuples and autovacuum",
    ] {
        assert!(titles.contains(&expected), "{expected} missing from {titles:?}");
    }
    let slow = report["sections"].as_array().unwrap().iter().find(|s| s["title"] == "Slow queries").unwrap();
    assert!(slow["note"].as_str().unwrap().contains("shared_preload_libraries"), "{slow}");
    let sections = report["sections"].as_array().unwrap();
    assert!(
        sections.iter().all(|s| s["note"].as_str().is_none_or(|n| !n.starts_with("not available"))),
        "every query ran: {report:#}"
    );
    assert_counts_and_sizes_are_numbers(sections);
    let text = run(sage_db(cwd.path()).args(["monitor", "--database-url", &url]));
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(stdout(&text).contains(" KiB") || stdout(&text).contains(" MiB"), "sizes for people: {}", stdout(&text));
}

/// The hint the command line added to the JSON error a `--json` command printed on stdout.
fn json_hint(out: &std::process::Output) -> String {
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not a JSON error ({e}): {}", stdout(out)));
    value["error"]["hint"].as_str().unwrap_or_default().to_string()
}

/// The message and causes of the JSON error a `--json` command printed on stdout.
fn json_error(out: &std::process::Output) -> String {
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not a JSON error ({e}): {}", stdout(out)));
    let error = &value["error"];
    let mut text = error["message"].as_str().unwrap_or_default().to_string();
    for cause in error["causes"].as_array().into_iter().flatten() {
        text.push_str(": ");
        text.push_str(cause.as_str().unwrap_or_default());
    }
    text
}

/// Counts and sizes in `monitor --json` are JSON numbers (sizes in bytes), never text.
fn assert_counts_and_sizes_are_numbers(sections: &[serde_json::Value]) {
    let mut checked = 0;
    for s in sections {
        let columns: Vec<&str> = s["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        for row in s["rows"].as_array().unwrap() {
            for (column, value) in columns.iter().zip(row.as_array().unwrap()) {
                let numeric = column.ends_with("(bytes)")
                    || column.contains("sessions")
                    || column.contains("nonces")
                    || *column == "rows";
                if numeric && !value.is_null() {
                    assert!(value.is_number(), "{}: {column} = {value}", s["title"]);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 5, "numbers were found and checked: {checked}");
}

#[test]
fn monitor_on_sqlite_gives_numbers_as_numbers() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["up", "-q"])).status.success());
    assert!(run(sage_db(cwd.path()).args(["nonce", "claim", "n-1"])).status.success());
    let out = run(sage_db(cwd.path()).args(["monitor", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_counts_and_sizes_are_numbers(report["sections"].as_array().unwrap());
    let nonces = &report["sections"][0]["rows"][0][2];
    assert_eq!(nonces.as_i64(), Some(1), "one active nonce: {report:#}");
}

#[test]
fn new_sqlite_databases_backups_and_manifests_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let cwd = tempfile::tempdir().unwrap();
    let db = cwd.path().join("private.db");
    let url = format!("sqlite://{}", db.display());
    let up = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url]));
    assert!(up.status.success(), "{}", stderr(&up));
    let claim = run(sage_db(cwd.path()).args(["nonce", "claim", "n-1", "--database-url", &url]));
    assert!(claim.status.success(), "{}", stderr(&claim));
    let backup = run(sage_db(cwd.path()).args(["backup", "--json", "--database-url", &url]));
    assert!(backup.status.success(), "{}", stderr(&backup));
    let report: serde_json::Value = serde_json::from_slice(&backup.stdout).unwrap();
    let file = cwd.path().join(report["file"].as_str().unwrap());
    let mut checked = Vec::new();
    for path in [db.clone(), file.clone(), sage_ops::manifest::manifest_path(&file)]
        .into_iter()
        .chain(["-wal", "-shm"].iter().map(|s| cwd.path().join(format!("private.db{s}"))))
    {
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{}", path.display());
            checked.push(path);
        }
    }
    assert!(checked.len() >= 3, "{checked:?}");
}

fn write_rules(dir: &std::path::Path, rules: &str) -> std::path::PathBuf {
    let config = dir.join("cleanup.toml");
    std::fs::write(&config, rules).unwrap();
    config
}

/// The bug: a 30-day rule on SAGE's own `dids.created_at` (INTEGER on SQLite) compared an
/// integer with an ISO text cutoff, and SQLite orders every integer below every text, so
/// every row was deleted. Now the rule is refused before anything is deleted, expired
/// nonces included, and with the right unit only old rows go.
#[test]
fn sqlite_retention_on_an_integer_column_never_deletes_every_row() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["seed", "--environment", "dev"])).status.success());
    let db = cwd.path().join("sage.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO nonces (nonce, used_at, expires_at) VALUES ('expired', 1, 2);
             UPDATE dids SET created_at = 1000000 WHERE did = 'did:sage:dev:revoked';",
        )
        .unwrap();
    let rule = "[[retention]]\ntable = \"dids\"\ncolumn = \"created_at\"\nmax_age = \"30d\"\n";
    let config = write_rules(cwd.path(), rule);
    let refused = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    for part in ["cleanup.toml", "retention rule 1", "dids.created_at", "INTEGER", "unix_seconds"] {
        assert!(message.contains(part), "{part} missing: {message}");
    }
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids"), 4, "no DID deleted");
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM nonces WHERE nonce = 'expired'"), 1, "expiry did not run");

    // A text unit on an integer column is refused too.
    let config = write_rules(cwd.path(), &format!("{rule}unit = \"iso8601\"\n"));
    let refused = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("holds integers"), "{}", stderr(&refused));

    let config = write_rules(cwd.path(), &format!("{rule}unit = \"unix_micros\"\n"));
    let ok = run(sage_db(cwd.path()).args(["cleanup", "--json", "--config"]).arg(&config));
    assert!(ok.status.success(), "{}", stderr(&ok));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["retention"][0]["rows"], 1, "{report}");
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids"), 3, "only the old DID went");
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM nonces WHERE nonce = 'expired'"), 0);

    // A unit of the wrong scale: microseconds read as milliseconds put every row far in the
    // future, seconds stored and read as microseconds would put every row in 1970.
    for wrong in ["unix_millis", "unix_seconds"] {
        let config = write_rules(cwd.path(), &format!("{rule}unit = \"{wrong}\"\n"));
        let refused = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
        assert_eq!(refused.status.code(), Some(2), "{wrong}");
        assert!(stderr(&refused).contains("looks like unix_micros"), "{wrong}: {}", stderr(&refused));
        assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids"), 3, "{wrong}: nothing deleted");
    }

    // An integer-declared column holding text: the unit does not fit the data.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("UPDATE dids SET created_at = '2020-01-01T00:00:00Z' WHERE did = 'did:sage:dev:alice';")
        .unwrap();
    let refused = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("holds text values"), "{}", stderr(&refused));
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids"), 3);
}

/// Every rule is checked before anything is deleted: a bad second rule stops the first one
/// and the expired-row pass too. Text needs an explicit ISO unit.
#[test]
fn sqlite_every_rule_is_checked_before_any_row_is_deleted() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["seed", "--environment", "dev"])).status.success());
    let db = cwd.path().join("sage.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO nonces (nonce, used_at, expires_at) VALUES ('expired', 1, 2);
             CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL);
             INSERT INTO audit_log (at) VALUES ('2020-01-01 00:00:00'), ('2999-01-01T00:00:00+02:00');",
        )
        .unwrap();
    let good = "[[retention]]\ntable = \"audit_log\"\ncolumn = \"at\"\nmax_age = \"1d\"\nunit = \"iso8601\"\n";
    for (bad, expected) in [
        (
            "[[retention]]\ntable = \"audit_log\"\ncolumn = \"at\"\nmax_age = \"1d\"\n",
            "TEXT on SQLite needs an explicit unit",
        ),
        (
            "[[retention]]\ntable = \"nope\"\ncolumn = \"at\"\nmax_age = \"1d\"\nunit = \"iso8601\"\n",
            "table nope does not exist",
        ),
        (
            "[[retention]]\ntable = \"audit_log\"\ncolumn = \"when\"\nmax_age = \"1d\"\nunit = \"iso8601\"\n",
            "has no column when",
        ),
    ] {
        let config = write_rules(cwd.path(), &format!("{good}\n{bad}"));
        let out = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains("retention rule 2") && stderr(&out).contains(expected), "{}", stderr(&out));
        assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM audit_log"), 2, "rule 1 did not run");
        assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM nonces WHERE nonce = 'expired'"), 1);
    }
    let config = write_rules(cwd.path(), good);
    let out = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
    assert!(out.status.success(), "{}", stderr(&out));
    // Space-separated and offset times compare as times, not as strings.
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM audit_log"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retention_checks_column_types_before_deleting_anything() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO nonces (nonce, used_at, expires_at) VALUES ('expired', now() - interval '2 days', now() - interval '1 day');
             CREATE TABLE events (at timestamptz, d date, local timestamp, secs bigint, ms bigint, iso text, flag boolean);
             INSERT INTO events VALUES
               ('2000-01-01Z', '2000-01-01', '2000-01-01', 946684800, 946684800000, '2000-01-01T00:00:00Z', true),
               (now(), current_date, now() AT TIME ZONE 'UTC', extract(epoch FROM now())::bigint,
                (extract(epoch FROM now()) * 1000)::bigint, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), true);",
        )
        .await
        .unwrap();
    let rule = |column: &str, unit: Option<&str>| {
        let unit = unit.map(|u| format!("unit = \"{u}\"\n")).unwrap_or_default();
        format!("[[retention]]\ntable = \"events\"\ncolumn = \"{column}\"\nmax_age = \"30d\"\n{unit}")
    };
    let key = sage_store::keys::generate_key();
    let cleanup = |rules: &str| {
        let config = write_rules(cwd.path(), rules);
        run(sage_db(cwd.path())
            .args(["cleanup", "--json", "--database-url", &url, "--config"])
            .arg(&config)
            .env("SAGE_SESSION_KEY", key.as_str()))
    };
    for (bad, expected) in [
        (rule("secs", None), "column type bigint is not a time"),
        (rule("iso", None), "column type text is not a time"),
        (rule("flag", Some("unix_seconds")), "column type boolean cannot hold a time"),
        (rule("at", Some("unix_seconds")), "remove unit"),
        (rule("nothing", None), "has no column nothing"),
    ] {
        let out = cleanup(&format!("{}\n{bad}", rule("at", None)));
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let error = json_error(&out);
        assert!(error.contains("retention rule 2") && error.contains(expected), "{error}");
        assert!(error.contains("cleanup.toml") && error.contains("events."), "{error}");
        assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM events").await, 2, "rule 1 did not run");
        assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM nonces").await, 1, "expiry did not run");
    }
    for (column, unit) in [
        ("at", None),
        ("d", None),
        ("local", None),
        ("secs", Some("unix_seconds")),
        ("ms", Some("unix_millis")),
        ("iso", Some("iso8601")),
    ] {
        let out = cleanup(&rule(column, unit));
        assert!(out.status.success(), "{column}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["retention"][0]["rows"], 1, "{column}: only the old row matches: {report}");
        // Put the old row back for the next column.
        client
            .batch_execute(
                "INSERT INTO events VALUES ('2000-01-01Z', '2000-01-01', '2000-01-01', 946684800, 946684800000, '2000-01-01T00:00:00Z', true)",
            )
            .await
            .unwrap();
    }
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM nonces").await, 0);
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM events WHERE at > now() - interval '1 day'").await, 1);
}

/// `cleanup` used to say "nothing to clean" and exit 0 when it could not connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_monitor_and_check_that_cannot_connect_fail_with_exit_2() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let s = db.settings();
    let wrong_password = format!("postgres://{}:wrong@{}:{}/{}?sslmode=disable", s.user, s.host, s.port, s.dbname);
    let no_server = format!("postgres://{}:x@127.0.0.1:{}/{}?sslmode=disable", s.user, common::free_port(), s.dbname);
    // The test server speaks no TLS, so a connection that requires it fails.
    let no_tls = format!("{}?sslmode=require", db.url().split('?').next().unwrap());
    for (url, expected) in [(&wrong_password, "password"), (&no_server, "refused"), (&no_tls, "TLS")] {
        for command in ["cleanup", "monitor", "check"] {
            let out = run(sage_db(cwd.path()).args([command, "--database-url", url]));
            assert_eq!(out.status.code(), Some(2), "{command} {url}: {}", stdout(&out));
            assert!(!stdout(&out).contains("nothing to clean"), "{}", stdout(&out));
            let message = stderr(&out);
            assert!(message.contains("could not connect") && message.contains(expected), "{command}: {message}");
            assert!(!message.contains("wrong"), "no password in messages: {message}");
        }
    }
    let missing = cwd.path().join("missing.db");
    let out =
        run(sage_db(cwd.path()).args(["cleanup", "--database-url"]).arg(format!("sqlite://{}", missing.display())));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!missing.exists(), "cleanup created no database");
}

/// `seed --env ../x` used to read `x.sql` beside the seed directory.
#[test]
fn seed_names_that_escape_the_seed_directory_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let seeds = outside.path().join("seeds");
    std::fs::create_dir_all(seeds.join("qa")).unwrap();
    std::fs::write(outside.path().join("x.sql"), "CREATE TABLE escaped (id int);").unwrap();
    std::fs::write(outside.path().join("y.sql"), "CREATE TABLE escaped (id int);").unwrap();
    std::os::unix::fs::symlink(outside.path().join("y.sql"), seeds.join("qa/01_link.sql")).unwrap();
    std::os::unix::fs::symlink(outside.path(), seeds.join("linked")).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let x = outside.path().join("x").display().to_string();
    for env in ["../x", x.as_str(), "qa", "linked", ".."] {
        let out = run(sage_db(cwd.path()).args(["seed", "--environment", env, "--seeds"]).arg(&seeds));
        assert_eq!(out.status.code(), Some(2), "{env}: {}", stdout(&out));
        let message = stderr(&out);
        assert_eq!(message.trim().lines().count(), 1, "{message}");
        assert!(message.contains("outside the seed directory"), "{env}: {message}");
    }
    let db = cwd.path().join("sage.db");
    if db.exists() {
        assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM sqlite_schema WHERE name = 'escaped'"), 0);
    }
}

/// A failed SQL seed used to leave `sage_seed_history` behind: the table is now created in
/// the seed's own transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_seed_leaves_no_history_table_on_sqlite_or_postgres() {
    let pg = sage_testkit::database().await.unwrap();
    let sqlite = sage_testkit::SqliteFile::new();
    let seeds = write_dir(&[("qa.sql", "CREATE TABLE things (id int); INSERT INTO missing VALUES (1);")]);
    let cwd = tempfile::tempdir().unwrap();
    for url in [pg.url(), sqlite.url()] {
        let out = run(sage_db(cwd.path())
            .args(["seed", "--environment", "qa", "--database-url", &url, "--seeds"])
            .arg(seeds.path()));
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        assert!(stderr(&out).contains("failed and was rolled back"), "{}", stderr(&out));
    }
    assert_eq!(
        pg_scalar(pg.settings(), "SELECT count(*) FROM pg_class WHERE relname IN ('sage_seed_history', 'things')")
            .await,
        0
    );
    assert_eq!(
        sqlite_scalar(
            sqlite.path(),
            "SELECT count(*) FROM sqlite_schema WHERE name IN ('sage_seed_history', 'things')"
        ),
        0
    );
}

/// Default privileges belong to the role that creates a table: a superuser's own would not
/// cover tables the migration owner creates after `roles apply`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_applied_by_a_superuser_cover_tables_the_owner_creates_later() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let suffix = db.name().rsplit('_').next().unwrap().to_string();
    let (owner, reader) = (format!("owner_{suffix}"), format!("reader_{suffix}"));
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE ROLE {owner} NOLOGIN; CREATE SCHEMA app AUTHORIZATION {owner}; \
             SET ROLE {owner}; CREATE TABLE app.early (id int); INSERT INTO app.early VALUES (1); RESET ROLE;"
        ))
        .await
        .unwrap();
    let config = cwd.path().join("roles.toml");
    std::fs::write(&config, format!("[[role]]\nname = \"{reader}\"\nselect_in_schemas = [\"app\"]\n")).unwrap();
    let dry = run(sage_db(cwd.path())
        .args(["roles", "apply", "--dry-run", "--database-url", &db.url(), "--config"])
        .arg(&config));
    assert!(dry.status.success(), "{}", stderr(&dry));
    let expected = format!("ALTER DEFAULT PRIVILEGES FOR ROLE \"{owner}\" IN SCHEMA \"app\" GRANT SELECT ON TABLES");
    assert!(stdout(&dry).contains(&expected), "{}", stdout(&dry));
    let out = run(sage_db(cwd.path()).args(["roles", "apply", "--database-url", &db.url(), "--config"]).arg(&config));
    assert!(out.status.success(), "{}", stderr(&out));
    client
        .batch_execute(&format!(
            "SET ROLE {owner}; CREATE TABLE app.later (id int); INSERT INTO app.later VALUES (2); RESET ROLE;"
        ))
        .await
        .unwrap();
    for table in ["app.early", "app.later"] {
        let sql = format!("SET ROLE {reader}; SELECT count(*) FROM {table}");
        let rows = client.simple_query(&sql).await;
        client.batch_execute("RESET ROLE").await.unwrap();
        assert!(
            rows.is_ok(),
            "{reader} cannot read {table}: {:?}",
            rows.err().and_then(|e| e.as_db_error().map(|d| d.message().to_string()))
        );
    }
    client.batch_execute(&format!("DROP SCHEMA app CASCADE; DROP OWNED BY {reader}; DROP ROLE {reader}; DROP OWNED BY {owner}; DROP ROLE {owner};")).await.unwrap();
}

/// A role without privileges used to be told "db error" or "the database has no SAGE schema
/// yet"; it is now told which privilege it lacks on which object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_privilege_is_named_with_its_object() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &db.url()])).status.success());
    let role = format!("app_{}", db.name().rsplit('_').next().unwrap());
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'app-secret'; GRANT CONNECT ON DATABASE {} TO {role};",
            sage_conn::quote_ident(db.name())
        ))
        .await
        .unwrap();
    let s = db.settings();
    let url = format!("postgres://{role}:app-secret@{}:{}/{}?sslmode=disable", s.host, s.port, s.dbname);
    let key = sage_store::keys::generate_key();
    let get = || {
        run(sage_db(cwd.path())
            .args(["session", "get", "550e8400-e29b-41d4-a716-446655440000", "--database-url", &url])
            .env("SAGE_SESSION_KEY", key.as_str()))
    };
    let out = get();
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(message.contains("SELECT privilege on table sage_schema_history"), "{message}");
    assert!(!message.contains("no SAGE schema") && !message.contains("db error"), "{message}");
    let check = run(sage_db(cwd.path()).args(["check", "--database-url", &url]));
    assert_eq!(check.status.code(), Some(2));
    assert!(stderr(&check).contains("the role lacks the SELECT privilege on table"), "{}", stderr(&check));
    assert!(!stderr(&check).contains("db error"), "{}", stderr(&check));
    // With the history readable, the store's own tables are next.
    client
        .batch_execute(&format!(
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; REVOKE SELECT ON sessions FROM {role};"
        ))
        .await
        .unwrap();
    let message = stderr(&get());
    assert!(message.contains("SELECT privilege on table sessions"), "{message}");
    assert!(!message.contains("db error"), "{message}");
    client.batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};")).await.unwrap();
}

/// `serve` used to print "serving on …" before it failed to bind.
#[test]
fn serve_reports_a_bind_failure_without_announcing_anything() {
    let cwd = tempfile::tempdir().unwrap();
    // A database the store opens, so that only the address can fail.
    assert!(run(sage_db(cwd.path()).args(["migrate", "up"])).status.success());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let out = run(sage_db(cwd.path()).args(["serve", "--port", &port.to_string()]));
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let message = stderr(&out);
    assert!(!message.contains("serving"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(message.contains(&format!("cannot listen on 127.0.0.1:{port}")) && message.contains("in use"), "{message}");
}

/// A 1 MiB tmpfs, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount() -> SmallDisk {
        let uid = std::process::Command::new("id").arg("-u").output().expect("run id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test mounts a 1 MiB tmpfs to fill the disk under SQLite, which needs root: run the suite as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .status();
        assert!(mounted.is_ok_and(|s| s.success()), "mount -t tmpfs failed");
        SmallDisk(dir)
    }

    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.0.path().join("filler")).unwrap();
        while filler.write_all(&[0u8; 4096]).is_ok() {}
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0.path()).status();
    }
}

/// A full disk under a SQLite database used to print `IoError(Os { code: 28 … })` or
/// SQLite's "database or disk is full"; the message now names the file being written.
#[test]
fn a_full_disk_under_sqlite_names_the_file_being_written() {
    let disk = SmallDisk::mount();
    let db = disk.0.path().join("sage.db");
    let url = format!("sqlite://{}", db.display());
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
    // Claims until the disk is full: far more than 1 MiB of nonces.
    let mut claims = sage_db(cwd.path())
        .args(["nonce", "claim", "-", "--database-url", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let feeder = {
        let mut stdin = claims.stdin.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            for i in 0..40_000 {
                if writeln!(stdin, "nonce-{i:06}-{}", "x".repeat(100)).is_err() {
                    break;
                }
            }
        })
    };
    let out = claims.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(message.contains(&format!("disk full while writing {}", db.display())), "{message}");
    assert!(!message.contains("os error") && !message.contains("IoError"), "{message}");
    // Every claim acknowledged as fresh before the disk filled is in the file, which is
    // intact; and a replay of one of them is still refused on the full disk.
    let acknowledged: Vec<String> =
        stdout(&out).lines().filter_map(|l| l.strip_suffix(" fresh").map(str::to_string)).collect();
    assert!(!acknowledged.is_empty(), "some claims were acknowledged before the disk filled");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let stored: i64 = conn.query_row("SELECT count(*) FROM nonces", [], |r| r.get(0)).unwrap();
    assert!(stored >= acknowledged.len() as i64, "{stored} stored, {} acknowledged", acknowledged.len());
    drop(conn);
    let replay = run(sage_db(cwd.path()).args(["nonce", "claim", &acknowledged[0], "--database-url", &url]));
    assert!(stdout(&replay).contains("replayed"), "{} {}", stdout(&replay), stderr(&replay));

    // A migration on a full disk, and the key file a new store writes.
    disk.fill();
    let other = disk.0.path().join("other.db");
    let out =
        run(sage_db(cwd.path()).args(["migrate", "up", "--database-url"]).arg(format!("sqlite://{}", other.display())));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("disk full while writing {}", other.display())), "{}", stderr(&out));
    let out = run(sage_db(disk.0.path()).args(["seed", "--environment", "dev"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("disk full while writing"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("os error"), "{}", stderr(&out));
}

/// A rule that passes every check but fails while it runs (here a trigger refuses the
/// delete) used to fail after the expiry pass had already deleted sessions and nonces.
#[test]
fn a_retention_rule_that_fails_while_running_stops_cleanup_before_expiry_deletes_anything() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["up"])).status.success());
    let claim = run(sage_db(cwd.path()).args(["nonce", "claim", "expires-at-once", "--ttl", "1ms"]));
    assert!(claim.status.success(), "{}", stderr(&claim));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let db = cwd.path().join("sage.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE audit (at INTEGER NOT NULL);
             INSERT INTO audit VALUES (CAST(strftime('%s', 'now') AS INTEGER) - 40 * 86400);
             CREATE TRIGGER keep_audit BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit rows are kept'); END;",
        )
        .unwrap();
    let config = write_rules(
        cwd.path(),
        "[[retention]]\ntable = \"audit\"\ncolumn = \"at\"\nmax_age = \"30d\"\nunit = \"unix_seconds\"\n",
    );
    let out = run(sage_db(cwd.path()).args(["cleanup", "--config"]).arg(&config));
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("audit rows are kept"), "{}", stderr(&out));
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM nonces WHERE nonce = 'expires-at-once'"), 1);
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM audit"), 1);
}

/// `--env` is a variables file for `seed` as for every command; the older `seed --env NAME`
/// still seeds NAME when no such file exists, and says what to write instead.
#[test]
fn seed_env_is_a_file_and_the_old_spelling_still_names_the_environment() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("vars"), "DATABASE_URL=sqlite://from-file.db\nSAGE_ENV=staging\n").unwrap();
    let from_file = run(sage_db(cwd.path()).args(["seed", "--env", "vars", "--json"]));
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    let report: serde_json::Value = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(report["environment"], "staging", "{report}");
    assert!(cwd.path().join("from-file.db").is_file(), "the file's DATABASE_URL was used");
    let old = run(sage_db(cwd.path()).args(["seed", "--env", "dev", "--json"]));
    assert!(old.status.success(), "{}", stderr(&old));
    let report: serde_json::Value = serde_json::from_slice(&old.stdout).unwrap();
    assert_eq!(report["environment"], "dev", "{report}");
    assert!(
        stderr(&old).contains("write that instead") && stderr(&old).contains("--environment dev"),
        "{}",
        stderr(&old)
    );
}

/// An environment SAGE ships no seed for is refused with the known ones; the flag for seeds
/// of one's own is the command line's hint, not part of the library's message.
#[test]
fn an_unknown_environment_without_seeds_names_the_known_ones_and_hints_at_seeds() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["seed", "--environment", "qa", "--json"]));
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let message = json_error(&out);
    assert!(message.contains("no seed for environment \"qa\" (known: dev, staging)"), "{message}");
    assert!(!message.contains("--seeds"), "{message}");
    assert_eq!(json_hint(&out), "give `--seeds DIR` for seeds of your own");
}
