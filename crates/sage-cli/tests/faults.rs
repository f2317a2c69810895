//! kill -9 and full disks: the backup, restore and verify commands killed at many points
//! of their run, on PostgreSQL and SQLite, and a backup into a filesystem that fills up.
//! After each fault the database is exactly as before the operation or exactly as after
//! it, nothing is left that the next run trips over (no plaintext copy, no scratch
//! database, no open snapshot, no `.partial` file once the next run has passed), and the
//! next run succeeds without repair.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, run, sage_db, stderr};
use sage_conn::{quote_ident, PgSettings};

/// Every table's whole contents as one digest per table.
async fn pg_digest(pg: &PgSettings) -> std::collections::BTreeMap<String, String> {
    sage_testkit::pg_contents(pg).await.unwrap()
}

async fn pg_exec(pg: &PgSettings, sql: &str) {
    sage_conn::connect(pg).await.unwrap().batch_execute(sql).await.unwrap();
}

/// Sessions other than the caller's on the test database: a killed run must not leave one
/// behind holding a snapshot or a transaction.
async fn other_sessions(pg: &PgSettings) -> i64 {
    let client = sage_conn::connect(pg).await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits (at most 20 s) until no other session is left on the test database: a killed
/// run must not leave one behind holding a snapshot or a transaction.
fn sessions_drain(pg: &PgSettings) -> bool {
    eventually(20, || {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(other_sessions(pg)) == 0)
    })
}

/// Kill points spread over `span`, with a seeded jitter so runs probe different moments.
fn kill_points(span: Duration, n: u32) -> Vec<Duration> {
    let seed = std::process::id() as u64;
    (0..n)
        .map(|k| {
            let base = span.as_secs_f64() * f64::from(k) / f64::from(n);
            let jitter = ((seed.wrapping_mul(6364136223846793005).wrapping_add(u64::from(k) * 1442695040888963407))
                >> 40) as f64
                / (1u64 << 24) as f64
                * span.as_secs_f64()
                / f64::from(n);
            Duration::from_secs_f64(base + jitter)
        })
        .collect()
}

fn kill_after(mut child: Child, after: Duration) -> bool {
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let finished = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    !finished
}

fn timed(command: &mut std::process::Command) -> Duration {
    let start = Instant::now();
    let out = run(command);
    assert!(out.status.success(), "{}", stderr(&out));
    start.elapsed()
}

fn backup_file(cwd: &Path, dir: &Path, url: &str) -> PathBuf {
    let out = run(sage_db(cwd).args(["backup", "--json", "--database-url", url, "--dir"]).arg(dir));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(report["file"].as_str().unwrap())
}

const BIG: &str = "CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, note text);
CREATE TABLE events (id bigint PRIMARY KEY, account int REFERENCES accounts, payload text);
INSERT INTO accounts SELECT g, 'owner ' || g, md5(g::text) FROM generate_series(1, 2000) g;
INSERT INTO events SELECT g, 1 + g % 2000, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 60000) g;";

const DRIFT: &str =
    "DELETE FROM events WHERE id % 3 = 0; INSERT INTO accounts VALUES (999999, 'after the backup', NULL);";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postgres_restore_leaves_the_database_before_or_after_never_between() {
    let db = sage_testkit::database().await.unwrap();
    let (pg, url) = (db.settings().clone(), db.url());
    pg_exec(&pg, BIG).await;
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("backups");
    for format in ["custom", "sql.gz"] {
        let out = run(sage_db(cwd.path())
            .args(["backup", "--json", "--database-url", &url, "--format", format, "--dir"])
            .arg(&dir));
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let file = report["file"].as_str().unwrap().to_string();
        let after = pg_digest(&pg).await;
        pg_exec(&pg, DRIFT).await;
        let before = pg_digest(&pg).await;
        assert_ne!(before, after);
        let restore = || {
            let mut c = sage_db(cwd.path());
            c.args(["restore", &file, "--yes", "--database-url", &url]).stdout(Stdio::null()).stderr(Stdio::null());
            c
        };
        let span = timed(&mut restore());
        assert_eq!(pg_digest(&pg).await, after, "{format}: a whole restore gives the backup's contents");
        pg_exec(&pg, DRIFT).await;
        let (mut rolled_back, mut completed) = (0, 0);
        for point in kill_points(span.mul_f64(1.2), 12) {
            let killed = kill_after(restore().spawn().unwrap(), point);
            assert!(sessions_drain(&pg));
            let now = pg_digest(&pg).await;
            if now == before {
                rolled_back += 1;
            } else if now == after {
                completed += 1;
                pg_exec(&pg, DRIFT).await;
            } else {
                panic!("{format}: killed at {point:?} (killed: {killed}), the database is neither before nor after");
            }
        }
        assert!(rolled_back >= 3, "{format}: too few kills landed inside the restore ({rolled_back} of 12)");
        eprintln!("{format}: {rolled_back} kills rolled back, {completed} after completion");
        // The next run needs no repair.
        timed(&mut restore());
        assert_eq!(pg_digest(&pg).await, after);
        pg_exec(&pg, "DROP TABLE events, accounts").await;
        pg_exec(&pg, BIG).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backups_and_verifies_leave_nothing_the_next_run_trips_over() {
    let db = sage_testkit::database().await.unwrap();
    let (pg, url) = (db.settings().clone(), db.url());
    pg_exec(&pg, BIG).await;
    let cwd = tempfile::tempdir().unwrap();
    let dir = cwd.path().join("backups");
    let backup = || {
        let mut c = sage_db(cwd.path());
        c.args(["backup", "--database-url", &url, "--dir"]).arg(&dir).stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    let span = timed(&mut backup());
    for point in kill_points(span.mul_f64(1.2), 10) {
        kill_after(backup().spawn().unwrap(), point);
        // Every file that has a manifest is a complete, restorable backup.
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".dump") && sage_ops::manifest::manifest_path(&path).exists() {
                let inspected = sage_ops::restore::inspect(&path, &Default::default());
                assert!(inspected.is_ok(), "{name}: {:?}", inspected.err());
            }
        }
        // No open snapshot or transaction outlives the killed run.
        assert!(sessions_drain(&pg));
    }
    let file = backup_file(cwd.path(), &dir, &url);
    let partials: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(partials.is_empty(), "the next backup removed what killed runs left: {partials:?}");

    // verify, killed while its scratch database exists; the next verify drops those.
    let verify = || {
        let mut c = sage_db(cwd.path());
        c.args(["backup", "verify", "--database-url", &url]).arg(&file).stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    let scratch = || async {
        let client = sage_conn::connect(&pg).await.unwrap();
        let rows = client
            .query(
                "SELECT 'database ' || datname FROM pg_database WHERE datname LIKE 'sage\\_scratch\\_%' \
                     UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname LIKE 'sage\\_scratch\\_%'",
                &[],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
    };
    let span = timed(&mut verify());
    let mut left = Vec::new();
    for point in kill_points(span, 6) {
        let existing = scratch().await;
        kill_after(verify().spawn().unwrap(), point);
        left.extend(scratch().await.into_iter().filter(|n| !existing.contains(n)));
    }
    assert!(!left.is_empty(), "no kill landed while a scratch database existed");
    timed(&mut verify());
    let remaining = scratch().await;
    let still: Vec<&String> = left.iter().filter(|n| remaining.contains(n)).collect();
    assert!(still.is_empty(), "scratch databases of killed runs outlived the next verify: {still:?}");
}

fn sqlite_digest(path: &Path) -> Vec<(String, i64, i64)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    let mut names = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    let names: Vec<String> = names.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    names
        .into_iter()
        .map(|n| {
            let (count, sum) = conn
                .query_row(
                    &format!(
                        "SELECT count(*), coalesce(sum(length(CAST(rowid AS text)) + rowid), 0) FROM {}",
                        quote_ident(&n)
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            (n, count, sum)
        })
        .collect()
}

fn sqlite_fill(path: &Path, rows: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, payload TEXT);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {rows})
         INSERT INTO events SELECT n, hex(randomblob(48)) FROM g;"
    ))
    .unwrap();
}

/// Files in `dir` that are not the database itself or SQLite's own companions.
fn strays(dir: &Path, db: &Path) -> Vec<String> {
    let own = db.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            ![own.clone(), format!("{own}-wal"), format!("{own}-shm"), format!("{own}-journal"), "backups".into()]
                .contains(n)
        })
        .collect()
}

#[test]
fn a_killed_sqlite_restore_leaves_the_file_before_or_after_and_no_plaintext() {
    let cwd = tempfile::tempdir().unwrap();
    let db = cwd.path().join("app.db");
    sqlite_fill(&db, 80_000);
    let url = format!("sqlite://{}", db.display());
    let dir = cwd.path().join("backups");
    let out = run(sage_db(cwd.path())
        .args(["backup", "--json", "--encrypt", "--database-url", &url, "--dir"])
        .arg(&dir)
        .env("SAGE_BACKUP_PASSPHRASE", "a passphrase"));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = report["file"].as_str().unwrap().to_string();
    let after = sqlite_digest(&db);
    let drift = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("DELETE FROM events WHERE id % 3 = 0; INSERT INTO events VALUES (9999999, 'after');")
            .unwrap()
    };
    drift();
    let before = sqlite_digest(&db);
    let restore = || {
        let mut c = sage_db(cwd.path());
        c.args(["restore", &file, "--yes", "--database-url", &url])
            .env("SAGE_BACKUP_PASSPHRASE", "a passphrase")
            .env("TMPDIR", cwd.path().join("tmp"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    std::fs::create_dir_all(cwd.path().join("tmp")).unwrap();
    let span = timed(&mut restore());
    assert_eq!(sqlite_digest(&db), after);
    drift();
    let mut rolled_back = 0;
    for point in kill_points(span.mul_f64(1.2), 12) {
        kill_after(restore().spawn().unwrap(), point);
        let now = sqlite_digest(&db);
        if now == before {
            rolled_back += 1;
        } else {
            assert_eq!(now, after, "killed at {point:?}: neither before nor after");
            drift();
        }
        let stray: Vec<String> = strays(cwd.path(), &db).into_iter().filter(|n| n != "tmp").collect();
        assert!(stray.is_empty(), "killed at {point:?}: files left beside the database: {stray:?}");
        let tmp: Vec<_> = std::fs::read_dir(cwd.path().join("tmp")).unwrap().collect();
        assert!(tmp.is_empty(), "killed at {point:?}: files left in TMPDIR");
    }
    assert!(rolled_back >= 3, "too few kills landed inside the restore ({rolled_back} of 12)");
    timed(&mut restore());
    assert_eq!(sqlite_digest(&db), after);
}

#[test]
fn a_killed_sqlite_backup_leaves_no_plaintext_copy() {
    let cwd = tempfile::tempdir().unwrap();
    let db = cwd.path().join("app.db");
    sqlite_fill(&db, 80_000);
    let url = format!("sqlite://{}", db.display());
    let dir = cwd.path().join("backups");
    let backup = || {
        let mut c = sage_db(cwd.path());
        c.args(["backup", "--encrypt", "--database-url", &url, "--dir"])
            .arg(&dir)
            .env("SAGE_BACKUP_PASSPHRASE", "a passphrase")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let span = timed(&mut backup());
    for point in kill_points(span.mul_f64(1.2), 10) {
        kill_after(backup().spawn().unwrap(), point);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.starts_with(b"SQLite format 3"), "killed at {point:?}: {name} is an unencrypted copy");
            let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions()) & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        assert!(strays(cwd.path(), &db).is_empty(), "files beside the database: {:?}", strays(cwd.path(), &db));
    }
    timed(&mut backup());
    let partials = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".partial"));
    assert_eq!(partials.count(), 0);
}

/// A small tmpfs, unmounted when dropped. Mounting needs root, which the test run has.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (run the suite as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_into_a_full_disk_fails_fast_and_leaves_nothing() {
    let db = sage_testkit::database().await.unwrap();
    let (pg, url) = (db.settings().clone(), db.url());
    pg_exec(&pg, BIG).await;
    let cwd = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&cwd.path().join("small"), "1m");
    for format in ["custom", "sql.gz"] {
        let start = Instant::now();
        let out = run(sage_db(cwd.path())
            .args(["backup", "--database-url", &url, "--format", format, "--dir"])
            .arg(&disk.0)
            .stdin(Stdio::null()));
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(2), "{format}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("disk is full") && err.contains(&disk.0.display().to_string()), "{format}: {err}");
        // Said once, in words: not again as the system's "(os error 28)".
        assert!(!err.contains("os error") && err.lines().count() == 1, "{format}: {err}");
        assert!(took < Duration::from_secs(60), "{format}: took {took:?}");
        let left: Vec<String> = std::fs::read_dir(&disk.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{format}: left on the full disk: {left:?}");
        assert!(sessions_drain(&pg), "{format}: pg_dump's snapshot is still held");
    }
    // A SQLite backup too.
    let sqlite = cwd.path().join("app.db");
    sqlite_fill(&sqlite, 60_000);
    let out = run(sage_db(cwd.path())
        .args(["backup", "--database-url", &format!("sqlite://{}", sqlite.display()), "--dir"])
        .arg(&disk.0));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("disk is full") && !stderr(&out).contains("os error"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(&disk.0)
            .unwrap()
            .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
            .count(),
        0
    );
}

/// Both kinds of database a test runs on: a SQLite file, and a database on the test server.
async fn both_targets(cwd: &Path) -> Vec<(String, Option<sage_testkit::TestDatabase>)> {
    let pg = sage_testkit::database().await.unwrap();
    vec![(format!("sqlite://{}", cwd.join("app.db").display()), None), (pg.url(), Some(pg))]
}

fn open_target(url: &str) -> sage_conn::Target {
    sage_conn::Settings::parse_url("--database-url", url, sage_conn::Origin::Flag).unwrap().target
}

async fn open_store(url: &str, keys: &[String]) -> sage_store::Store {
    let target = open_target(url);
    let env = sage_conn::Environment::from_pairs([("SAGE_SESSION_KEY".to_string(), keys.join(","))]);
    sage_store::Store::open(&target, sage_store::OpenOptions::defaults_for(&target, &env)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_key_rotation_loses_no_session_key_and_the_next_run_finishes() {
    use sage_store::SessionStore;
    let cwd = tempfile::tempdir().unwrap();
    for (url, _db) in both_targets(cwd.path()).await {
        let up = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url]));
        assert!(up.status.success(), "{}", stderr(&up));
        let mut keys = vec![sage_store::keys::generate_key().to_string()];
        let store = open_store(&url, &keys).await;
        let far = chrono::Utc::now() + chrono::Duration::days(1);
        let ids: Vec<String> = (0..1500).map(|i| format!("rot-{i:05}")).collect();
        for id in &ids {
            let session = sage_store::NewSession {
                id: id.clone(),
                client_did: "did:sage:test:alice".into(),
                server_did: "did:sage:test:bob".into(),
                key: sage_store::SessionKey::new(format!("material of {id}").into_bytes()),
                expires_at: far,
                metadata: None,
                max_messages: None,
                idle_timeout: None,
            };
            store.sessions().create(&session).await.unwrap();
        }
        store.close().await;
        let rotate = |keys: &[String]| {
            let mut c = sage_db(cwd.path());
            c.args(["keys", "rotate", "--database-url", &url])
                .env("SAGE_SESSION_KEY", keys.join(","))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        };
        keys.push(sage_store::keys::generate_key().to_string());
        let span = timed(&mut rotate(&keys));
        for point in kill_points(span.mul_f64(1.2), 8) {
            // Each round rotates to a key of its own, so every round has all rows to do.
            keys.push(sage_store::keys::generate_key().to_string());
            kill_after(rotate(&keys).spawn().unwrap(), point);
            let store = open_store(&url, &keys).await;
            for id in &ids {
                let session = store
                    .sessions()
                    .get(id)
                    .await
                    .unwrap_or_else(|e| panic!("{url}: {id} after a kill at {point:?}: {e}"));
                assert_eq!(session.key.expose(), format!("material of {id}").as_bytes());
            }
            store.close().await;
        }
        timed(&mut rotate(&keys));
        // Finished: the newest key alone opens every session.
        let store = open_store(&url, &keys[keys.len() - 1..]).await;
        for id in &ids {
            store.sessions().get(id).await.unwrap_or_else(|e| panic!("{url}: {id} not re-sealed: {e}"));
        }
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cleanup_deletes_only_what_it_should_and_the_next_run_completes() {
    use sage_store::NonceStore;
    let cwd = tempfile::tempdir().unwrap();
    for (url, _db) in both_targets(cwd.path()).await {
        let up = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url]));
        assert!(up.status.success(), "{}", stderr(&up));
        let keys = vec![sage_store::keys::generate_key().to_string()];
        let cleanup = || {
            let mut c = sage_db(cwd.path());
            c.args(["cleanup", "--database-url", &url])
                .env("SAGE_SESSION_KEY", keys.join(","))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c
        };
        let fill = || async {
            // Claimed as of ten minutes ago, so half of them are already expired now.
            let now = chrono::Utc::now();
            let target = open_target(&url);
            let env = sage_conn::Environment::from_pairs([("SAGE_SESSION_KEY".to_string(), keys.join(","))]);
            let mut options = sage_store::OpenOptions::defaults_for(&target, &env);
            options.clock = std::sync::Arc::new(sage_store::ManualClock::new(now - chrono::Duration::minutes(10)));
            let store = sage_store::Store::open(&target, options).await.unwrap();
            let claims: Vec<(String, chrono::DateTime<chrono::Utc>)> = (0..6000)
                .map(|i| {
                    let expires =
                        if i % 2 == 0 { now - chrono::Duration::minutes(5) } else { now + chrono::Duration::hours(1) };
                    (format!("{}-{i}", if i % 2 == 0 { "old" } else { "live" }), expires)
                })
                .collect();
            for chunk in claims.chunks(500) {
                let claims: Vec<_> = chunk
                    .iter()
                    .map(|(n, e)| sage_store::NonceClaim { nonce: n.clone(), session_id: None, expires_at: *e })
                    .collect();
                store.nonces().claim_many(&claims).await.unwrap();
            }
            store.close().await;
        };
        let live = || async {
            let store = open_store(&url, &keys).await;
            let n = store.nonces().count_active().await.unwrap();
            store.close().await;
            n
        };
        fill().await;
        let span = timed(&mut cleanup());
        for point in kill_points(span.mul_f64(1.2), 8) {
            fill().await;
            let before = live().await;
            kill_after(cleanup().spawn().unwrap(), point);
            assert_eq!(live().await, before, "{url}: a killed cleanup deleted a live nonce (at {point:?})");
        }
        timed(&mut cleanup());
        let store = open_store(&url, &keys).await;
        assert_eq!(store.nonces().delete_expired().await.unwrap(), 0, "{url}: the next run left expired rows");
        store.close().await;
    }
}

async fn scalar(url: &str, sql: &str) -> i64 {
    match open_target(url) {
        sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(path)) => {
            rusqlite::Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
        }
        sage_conn::Target::Postgres(pg) => common::pg_scalar(&pg, sql).await,
        other => panic!("{other:?}"),
    }
}

/// What a database migrated by the set below shows from outside, checked for consistency:
/// the number of whole migrations it holds.
async fn migrations_visible(url: &str) -> i64 {
    let sqlite = url.starts_with("sqlite:");
    let exists = |name: &str| {
        if sqlite {
            format!("SELECT count(*) FROM sqlite_schema WHERE name = '{name}'")
        } else {
            format!("SELECT count(*) FROM pg_class WHERE relname = '{name}' AND relnamespace = 'public'::regnamespace")
        }
    };
    let kind_column = if sqlite {
        "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'kind'".to_string()
    } else {
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'kind'"
            .to_string()
    };
    let mut visible = 0;
    if scalar(url, &exists("events")).await == 1 {
        assert_eq!(scalar(url, "SELECT count(*) FROM events").await, 40000, "{url}: migration 1 is half there");
        visible = 1;
        if scalar(url, &kind_column).await == 1 {
            assert_eq!(
                scalar(url, "SELECT count(*) FROM events WHERE kind IS NULL").await,
                0,
                "{url}: migration 2 is half there"
            );
            visible = 2;
            if scalar(url, &exists("events_copy")).await == 1 {
                assert_eq!(scalar(url, &exists("events_kind")).await, 1, "{url}: migration 3 is half there");
                visible = 3;
                if scalar(url, &exists("marks")).await == 1 {
                    assert_eq!(scalar(url, "SELECT count(*) FROM marks").await, 1, "{url}: migration 4 is half there");
                    visible = 4;
                }
            }
        }
    }
    for later in ["events_copy", "marks"] {
        if visible < 3 {
            assert_eq!(scalar(url, &exists(later)).await, 0, "{url}: {later} exists out of order");
        }
    }
    let recorded = if scalar(url, &exists("sage_schema_history")).await == 1 {
        scalar(url, "SELECT count(*) FROM sage_schema_history WHERE state = 'applied'").await
    } else {
        0
    };
    assert_eq!(recorded, visible, "{url}: the history records {recorded} migrations, the schema shows {visible}");
    visible
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_migrate_up_leaves_whole_migrations_and_the_next_run_finishes() {
    let cwd = tempfile::tempdir().unwrap();
    let files = [
        ("000001_events.up.sql", "CREATE TABLE events (id integer PRIMARY KEY, payload text);\nINSERT INTO events (id, payload) WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 40000) SELECT n, 'p' || n FROM g;"),
        ("000002_kind.up.sql", "ALTER TABLE events ADD COLUMN kind text;\nUPDATE events SET kind = 'k' || (id % 7);"),
        ("000003_copy.up.sql", "CREATE TABLE events_copy AS SELECT * FROM events;\nCREATE INDEX events_kind ON events (kind);"),
        ("000004_marks.up.sql", "CREATE TABLE marks (n integer);\nINSERT INTO marks SELECT count(*) FROM events_copy;"),
    ];
    let dir = common::write_dir(&files);
    for dialect in ["sqlite", "postgres"] {
        let mut dbs = Vec::new();
        let mut fresh = || {
            if dialect == "sqlite" {
                let path = cwd.path().join(format!("m{}.db", dbs.len()));
                dbs.push(None);
                format!("sqlite://{}", path.display())
            } else {
                let db = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(sage_testkit::database())
                })
                .unwrap();
                let url = db.url();
                dbs.push(Some(db));
                url
            }
        };
        let migrate = |url: &str| {
            let mut c = sage_db(cwd.path());
            c.args(["migrate", "up", "--source"]).arg(dir.path()).args(["--database-url", url]);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            c
        };
        let span = timed(&mut migrate(&fresh()));
        let mut partial = 0;
        for point in kill_points(span.mul_f64(1.2), 8) {
            let url = fresh();
            kill_after(migrate(&url).spawn().unwrap(), point);
            let visible = migrations_visible(&url).await;
            if (1..4).contains(&visible) {
                partial += 1;
            }
            let up = run(&mut migrate(&url));
            assert!(up.status.success(), "{url}: the run after a kill at {point:?} failed: {}", stderr(&up));
            assert_eq!(migrations_visible(&url).await, 4, "{url}");
        }
        eprintln!("{dialect}: {partial} of 8 kills stopped between migrations");
    }
}
