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
        let out = run(sage_db(cwd.path()).args(["seed", "--env", "dev", "--json"]));
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
    let staging = run(sage_db(cwd.path()).args(["seed", "--env", "staging"]));
    assert!(staging.status.success());
    assert_eq!(sqlite_scalar(&db, "SELECT count(*) FROM dids WHERE did LIKE 'did:sage:staging:%'"), 2);
    let unknown = run(sage_db(cwd.path()).args(["seed", "--env", "prod"]));
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
            .args(["seed", "--env", "dev", "--database-url", &url])
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
        let out =
            run(sage_db(cwd.path()).args(["seed", "--env", "qa", "--database-url", &url, "--seeds"]).arg(seeds.path()));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM things").await, 2);
    std::fs::write(seeds.path().join("qa/01_things.sql"), "INSERT INTO things VALUES (3);").unwrap();
    let changed =
        run(sage_db(cwd.path()).args(["seed", "--env", "qa", "--database-url", &url, "--seeds"]).arg(seeds.path()));
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
    let broken =
        run(sage_db(cwd.path()).args(["seed", "--env", "qa", "--database-url", &url, "--seeds"]).arg(seeds.path()));
    assert_eq!(broken.status.code(), Some(2));
    assert!(stderr(&broken).contains("02_broken.sql failed and was rolled back"), "{}", stderr(&broken));
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM things").await, 2, "nothing of the failed seed remains");
}

#[test]
fn cleanup_removes_expired_rows_and_applies_retention_rules() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["seed", "--env", "dev"])).status.success());
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
    std::fs::write(&config, "[[retention]]\ntable = \"audit_log\"\ncolumn = \"at\"\nmax_age = \"365d\"\nbatch = 1\n")
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
    assert!(run(sage_db(cwd.path()).args(["seed", "--env", "dev"])).status.success());
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
    // The store still reads what was restored (its key file was never touched).
    let get = run(sage_db(cwd.path()).args(["session", "get", "550e8400-e29b-41d4-a716-446655440000"]));
    assert!(get.status.success(), "{}", stderr(&get));

    let encrypted = run(sage_db(cwd.path()).args(["backup", "--encrypt", "--json"]));
    assert_eq!(encrypted.status.code(), Some(2));
    assert!(stderr(&encrypted).contains("SAGE_BACKUP_PASSPHRASE"), "{}", stderr(&encrypted));
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
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = claims.stdin.take().unwrap();
        for i in 0..40_000 {
            if writeln!(stdin, "nonce-{i:06}-{}", "x".repeat(100)).is_err() {
                break;
            }
        }
    }
    let out = claims.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(message.contains(&format!("disk full while writing {}", db.display())), "{message}");
    assert!(!message.contains("os error") && !message.contains("IoError"), "{message}");

    // A migration on a full disk, and the key file a new store writes.
    disk.fill();
    let other = disk.0.path().join("other.db");
    let out =
        run(sage_db(cwd.path()).args(["migrate", "up", "--database-url"]).arg(format!("sqlite://{}", other.display())));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("disk full while writing {}", other.display())), "{}", stderr(&out));
    let out = run(sage_db(disk.0.path()).args(["seed", "--env", "dev"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("disk full while writing"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("os error"), "{}", stderr(&out));
}
