//! What differs between PostgreSQL major versions, from the command line, on the server at
//! hand: which pg_dump and pg_restore a backup and its restore use, SAGE_PG_BIN pinning
//! them, and roles that name a predefined role the server may lack. `scripts/test` runs
//! this file on 13, 14, 16, 17 and 18 (every client of those majors on PATH) as well as on
//! the default 15.

mod common;

use std::path::{Path, PathBuf};

use common::{pg_scalar, run, sage_db, stderr, stdout};

async fn server_major(settings: &sage_conn::PgSettings) -> u32 {
    u32::try_from(pg_scalar(settings, "SELECT current_setting('server_version_num')::bigint").await / 10000).unwrap()
}

/// The custom-format archive version a major's pg_dump writes (PostgreSQL's own table).
fn archive_format(major: u32) -> u32 {
    match major {
        12..=15 => 14,
        16 => 15,
        _ => 16,
    }
}

/// A pg_restore of exactly `major` on this machine, where the tools would look.
fn own_pg_restore(major: u32) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    dirs.into_iter().map(|d| d.join("pg_restore")).filter(|p| p.is_file()).find(|p| {
        let out = std::process::Command::new(p).arg("--version").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split_whitespace().nth(2).and_then(|v| v.split('.').next()).and_then(|v| v.parse::<u32>().ok())
            == Some(major)
    })
}

fn client_major(described: &str) -> u32 {
    // `pg_dump 16.14 (/path/pg_dump): why`
    described.split_whitespace().nth(1).and_then(|v| v.split('.').next()).and_then(|v| v.parse().ok()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_written_by_a_client_this_server_reads_back_and_restores_here() {
    let db = sage_testkit::database().await.unwrap();
    let major = server_major(db.settings()).await;
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    let key = sage_store::keys::generate_key();
    assert!(run(sage_db(cwd.path()).args(["up", "--database-url", &url])).status.success());
    let seeded = run(sage_db(cwd.path())
        .args(["seed", "--environment", "dev", "--database-url", &url])
        .env("SAGE_SESSION_KEY", key.as_str()));
    assert!(seeded.status.success(), "{}", stderr(&seeded));

    let backup = run(sage_db(cwd.path()).args(["backup", "--json", "--database-url", &url]));
    assert!(backup.status.success(), "{}", stderr(&backup));
    let report: serde_json::Value = serde_json::from_slice(&backup.stdout).unwrap();
    let client = report["client"].as_str().unwrap().to_string();
    let writer = client_major(&client);
    assert!(
        writer == major || (writer > major && archive_format(writer) == archive_format(major)),
        "PostgreSQL {major}: {client}"
    );
    let recorded = report["manifest"]["client_version"].as_str().unwrap();
    assert!(recorded.contains(&format!(" {writer}.")), "the manifest records the client: {recorded}");
    let file = report["file"].as_str().unwrap().to_string();
    if let Some(own) = own_pg_restore(major) {
        let listed =
            std::process::Command::new(&own).current_dir(cwd.path()).arg("--list").arg(&file).output().unwrap();
        assert!(
            listed.status.success(),
            "{} cannot read it: {}",
            own.display(),
            String::from_utf8_lossy(&listed.stderr)
        );
    }

    let verify = run(sage_db(cwd.path()).args(["backup", "verify", &file, "--database-url", &url]));
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(stdout(&verify).contains("read with pg_restore"), "{}", stdout(&verify));
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client.batch_execute("TRUNCATE dids, sessions, nonces").await.unwrap();
    let restored = run(sage_db(cwd.path()).args(["restore", &file, "--yes", "--database-url", &url]));
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert!(stdout(&restored).contains("read with pg_restore"), "{}", stdout(&restored));
    assert_eq!(pg_scalar(db.settings(), "SELECT count(*) FROM dids").await, 4);
}

/// The client programs Debian ships with this machine's default server (15).
const DEBIAN_15: &str = "/usr/lib/postgresql/15/bin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sage_pg_bin_pins_the_client_and_a_client_the_server_cannot_use_is_refused() {
    assert!(Path::new(DEBIAN_15).join("pg_dump").is_file(), "scripts/test installs PostgreSQL 15 with apt-get");
    let db = sage_testkit::database().await.unwrap();
    let major = server_major(db.settings()).await;
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    assert!(run(sage_db(cwd.path()).args(["up", "--database-url", &url])).status.success());

    let pinned =
        run(sage_db(cwd.path()).args(["backup", "--json", "--database-url", &url]).env("SAGE_PG_BIN", DEBIAN_15));
    // 15's pg_dump fits 15, and 13 and 14 (same archive version); it cannot read 16-18.
    if major <= 15 {
        assert!(pinned.status.success(), "PostgreSQL {major}: {}", stderr(&pinned));
        let report: serde_json::Value = serde_json::from_slice(&pinned.stdout).unwrap();
        let client = report["client"].as_str().unwrap();
        assert!(client.starts_with("pg_dump 15.") && client.contains("pinned by SAGE_PG_BIN"), "{client}");
    } else {
        assert_eq!(pinned.status.code(), Some(2), "PostgreSQL {major}: {}", stdout(&pinned));
        // Under --json the error is the JSON object on stdout.
        let report: serde_json::Value = serde_json::from_slice(&pinned.stdout).unwrap();
        let err = format!("{} {}", report["error"]["message"], report["error"]["causes"]);
        assert!(err.contains("SAGE_PG_BIN") && err.contains("cannot read a newer server"), "{err}");
        assert!(err.contains(&format!("postgresql-client-{major}")), "says how to get a matching client: {err}");
    }

    let empty = tempfile::tempdir().unwrap();
    let nothing = run(sage_db(cwd.path()).args(["backup", "--database-url", &url]).env("SAGE_PG_BIN", empty.path()));
    assert_eq!(nothing.status.code(), Some(2));
    let err = stderr(&nothing);
    assert!(err.contains("not a working pg_dump") && err.contains(&format!("postgresql-client-{major}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_that_read_everything_work_on_every_major() {
    let db = sage_testkit::database().await.unwrap();
    let major = server_major(db.settings()).await;
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    let neo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/neo");
    let up = run(sage_db(cwd.path()).args(["up", "--database-url", &url, "--source"]).arg(neo.join("migrations")));
    assert!(up.status.success(), "{}", stderr(&up));
    let applied = run(sage_db(cwd.path())
        .args(["roles", "apply", "--database-url", &url, "--config"])
        .arg(neo.join("roles.toml")));
    assert!(applied.status.success(), "PostgreSQL {major}: {}", stderr(&applied));
    let said = stdout(&applied) + &stderr(&applied);
    assert_eq!(said.contains("has no pg_read_all_data"), major < 14, "PostgreSQL {major}: {said}");
    // neo_backup reads a table in a schema no other role was given.
    let reads = pg_scalar(
        db.settings(),
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND n.nspname IN ('sgx', 'keymanagement') AND has_table_privilege('neo_backup', c.oid, 'SELECT')",
    )
    .await;
    let tables = pg_scalar(
        db.settings(),
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname IN ('sgx', 'keymanagement')",
    )
    .await;
    assert!(tables > 0 && reads == tables, "PostgreSQL {major}: neo_backup reads {reads} of {tables} tables");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_creates_a_missing_postgres_database_and_says_what_to_ask_for_when_it_may_not() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let admin = sage_conn::connect(db.admin_settings()).await.unwrap();
    let suffix = db.name().to_string();
    let (missing, role) = (format!("{suffix}_new"), format!("{suffix}_nocreate"));
    admin
        .batch_execute(&format!("CREATE ROLE {} LOGIN PASSWORD 'not-a-secret'", sage_conn::quote_ident(&role)))
        .await
        .unwrap();

    let mut settings = db.settings().with_dbname(&missing);
    let up = run(sage_db(cwd.path()).args(["up", "--database-url", &settings.url_exposing_password()]));
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(stdout(&up).contains(&format!("created the PostgreSQL database {missing:?}")), "{}", stdout(&up));
    let again = run(sage_db(cwd.path()).args(["up", "--database-url", &settings.url_exposing_password()]));
    assert!(again.status.success() && !stdout(&again).contains("created"), "{}", stdout(&again));

    settings = settings.with_dbname(&format!("{suffix}_refused"));
    settings.user = role.clone();
    settings.password = Some(sage_conn::Secret::new("not-a-secret".to_string()));
    let refused = run(sage_db(cwd.path()).args(["up", "--database-url", &settings.url_exposing_password()]));
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    let err = stderr(&refused);
    assert!(err.contains("may not create databases") && err.contains("CREATEDB"), "{err}");
    assert!(!err.contains("not-a-secret"), "{err}");

    // DROP DATABASE cannot share a batch (an implicit transaction) with anything else.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", sage_conn::quote_ident(&missing)))
        .await
        .unwrap();
    admin.batch_execute(&format!("DROP ROLE {}", sage_conn::quote_ident(&role))).await.unwrap();
}
