//! What people who know psql, sqlx-cli and dbmate expect of a command-line tool: a version
//! that names its revision, completions, a manual page, `--quiet`, and no colour codes in pipes.

mod common;

use common::{run, sage_db, stderr, stdout};

#[test]
fn version_names_the_revision_it_was_built_from() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).arg("--version"));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.starts_with(&format!("sage-db {} (", env!("CARGO_PKG_VERSION"))), "{text}");
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    if git.status.success() {
        let revision = String::from_utf8_lossy(&git.stdout).trim().to_string();
        assert!(text.contains(&revision), "{text} does not name {revision}");
    }
}

#[test]
fn completions_and_manual_page() {
    let cwd = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(sage_db(cwd.path()).args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("sage-db") && stdout(&out).contains("migrate"), "{shell}");
    }
    let bad = run(sage_db(cwd.path()).args(["completions", "tcsh"]));
    assert_eq!(bad.status.code(), Some(2));
    let man = run(sage_db(cwd.path()).arg("man"));
    assert!(man.status.success());
    let page = stdout(&man);
    assert!(page.contains(".TH sage-db 1") && page.contains("migrate"), "{}", &page[..200.min(page.len())]);
}

#[test]
fn quiet_prints_nothing_but_keeps_the_exit_code_and_json() {
    let cwd = tempfile::tempdir().unwrap();
    let up = run(sage_db(cwd.path()).args(["up", "--quiet"]));
    assert!(up.status.success(), "{}", stderr(&up));
    assert_eq!(stdout(&up), "");
    let status = run(sage_db(cwd.path()).args(["migrate", "status", "-q", "--json"]));
    assert!(status.status.success());
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(json["version"].is_number(), "{json}");
    // A failure still says why, on stderr.
    let bad = run(sage_db(cwd.path()).args(["session", "get", "x", "-q", "--database-url", "sqlite://missing/x.db"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).starts_with("error:"), "{}", stderr(&bad));
    assert_eq!(stdout(&bad), "");
}

#[test]
fn verbose_logs_into_a_pipe_carry_no_colour_codes() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["up", "-v"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a pipe: {log:?}");
}

#[test]
fn errors_under_json_are_one_json_object_on_stdout() {
    let cwd = tempfile::tempdir().unwrap();
    // A usage error (clap), a bad value and a failure from the library, each with exit 2.
    for args in [
        &["migrate", "up", "--no-such-flag", "--json"][..],
        &["session", "list", "--json", "--database-url", "mysql://x/y"][..],
        &["session", "get", "x", "--json", "--database-url", "sqlite://missing/x.db"][..],
    ] {
        let out = run(sage_db(cwd.path()).args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {}", stdout(&out)));
        let error = &json["error"];
        assert!(error["kind"].is_string() && error["message"].is_string(), "{args:?}: {json}");
        assert!(error["causes"].is_array(), "{args:?}: {json}");
        assert!(error.get("hint").is_some(), "{args:?}: {json}");
        assert_eq!(stderr(&out), "", "{args:?}: under --json the error is on stdout only");
    }
    let out = run(sage_db(cwd.path()).args(["migrate", "up", "--no-such-flag", "--json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "usage", "{json}");
}

#[test]
fn wait_waits_for_a_server_that_starts_late() {
    let cluster = sage_testkit::PgCluster::start(Default::default()).unwrap();
    let url = cluster.admin_settings().url_exposing_password();
    cluster.stop().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    // Nothing listens: a short wait gives up with a clear error.
    let started = std::time::Instant::now();
    let out = run(sage_db(cwd.path()).args(["migrate", "status", "--wait=1s", "--database-url", &url]));
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("did not accept connections within 1s"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // The server comes up two seconds after the command started: the command succeeds.
    let mut command = sage_db(cwd.path());
    command.args(["migrate", "status", "--json", "--wait", "--database-url", &url]);
    let child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    cluster.resume().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("waiting up to 60s"), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json.get("version").is_some(), "the status of the database that came up: {json}");
}

#[test]
fn database_create_and_drop_on_sqlite() {
    let cwd = tempfile::tempdir().unwrap();
    let url = "sqlite://data/app.db";
    let create = run(sage_db(cwd.path()).args(["database", "create", "--database-url", url]));
    assert!(create.status.success(), "{}", stderr(&create));
    assert!(stdout(&create).contains("created"), "{}", stdout(&create));
    let file = cwd.path().join("data/app.db");
    assert!(file.is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(file.metadata().unwrap().permissions().mode() & 0o077, 0, "only the owner may read it");
    let again = run(sage_db(cwd.path()).args(["database", "create", "--database-url", url]));
    assert!(again.status.success() && stdout(&again).contains("already exists"), "{}", stdout(&again));
    // Migrated and holding data: drop refuses without a terminal or --yes, and keeps it.
    assert!(run(sage_db(cwd.path()).args(["up", "-q", "--database-url", url])).status.success());
    let refused = run(sage_db(cwd.path()).args(["database", "drop", "--database-url", url]));
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert!(file.is_file());
    let dropped = run(sage_db(cwd.path()).args(["database", "drop", "--yes", "--json", "--database-url", url]));
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    let json: serde_json::Value = serde_json::from_slice(&dropped.stdout).unwrap();
    assert_eq!((json["action"].as_str(), json["changed"].as_bool()), (Some("drop"), Some(true)), "{json}");
    let left: Vec<_> = std::fs::read_dir(cwd.path().join("data")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the database and its side files are gone: {left:?}");
    let gone = run(sage_db(cwd.path()).args(["database", "drop", "--database-url", url]));
    assert!(gone.status.success() && stdout(&gone).contains("does not exist"), "{}", stdout(&gone));
}

#[test]
fn database_create_and_drop_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = sage_testkit::shared_admin().unwrap();
    let name = format!("Created.By-{}", std::process::id());
    let url = admin.with_dbname(&name).url_exposing_password();
    let exists = |name: &str| {
        runtime.block_on(async {
            let client = sage_conn::connect(&admin).await.unwrap();
            client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await.unwrap().is_some()
        })
    };
    let cwd = tempfile::tempdir().unwrap();
    let create = run(sage_db(cwd.path()).args(["database", "create", "--database-url", &url]));
    assert!(create.status.success(), "{}", stderr(&create));
    assert!(exists(&name), "a name with a dot, a dash and upper case is created as written");
    let again = run(sage_db(cwd.path()).args(["database", "create", "--database-url", &url]));
    assert!(again.status.success() && stdout(&again).contains("already exists"), "{}", stdout(&again));
    // Someone is connected: a plain drop fails and says how to proceed; --force ends them.
    let holder = runtime.block_on(sage_conn::connect(&admin.with_dbname(&name))).unwrap();
    let busy = run(sage_db(cwd.path()).args(["database", "drop", "--yes", "--database-url", &url]));
    assert_eq!(busy.status.code(), Some(2));
    assert!(stderr(&busy).contains("--force"), "{}", stderr(&busy));
    assert!(exists(&name));
    let refused = run(sage_db(cwd.path()).args(["database", "drop", "--force", "--database-url", &url]));
    assert_eq!(refused.status.code(), Some(2), "no terminal, no --yes: nothing dropped");
    assert!(exists(&name));
    let dropped = run(sage_db(cwd.path()).args(["database", "drop", "--yes", "--force", "--database-url", &url]));
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    assert!(!exists(&name));
    drop(holder);
    let gone = run(sage_db(cwd.path()).args(["database", "drop", "--database-url", &url]));
    assert!(gone.status.success() && stdout(&gone).contains("does not exist"), "{}", stdout(&gone));
}

#[test]
fn a_failed_migrate_up_reports_what_it_applied_before_the_failure() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = common::write_dir(&[
        ("000001_a.up.sql", "CREATE TABLE a (id INTEGER);"),
        ("000002_b.up.sql", "CREATE TABLE b (id INTEGER);"),
        ("000003_broken.up.sql", "CREATE TABLE c (id INTEGER); INSERT INTO no_such_table VALUES (1);"),
    ]);
    let source = dir.path().to_str().unwrap();
    let text = run(sage_db(cwd.path()).args(["migrate", "up", "--source", source, "--database-url", "sqlite://t.db"]));
    assert_eq!(text.status.code(), Some(2));
    assert!(
        stdout(&text).contains("applied 000001_a.up.sql") && stdout(&text).contains("applied 000002_b.up.sql"),
        "{}",
        stdout(&text)
    );
    assert!(stderr(&text).contains("000003_broken.up.sql"), "{}", stderr(&text));
    // The report ends at the version the database reached, not at none.
    assert!(stdout(&text).contains("version none -> 2"), "{}", stdout(&text));

    let json = run(sage_db(cwd.path()).args([
        "migrate",
        "up",
        "--json",
        "--source",
        source,
        "--database-url",
        "sqlite://u.db",
    ]));
    assert_eq!(json.status.code(), Some(2));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let applied: Vec<i64> =
        value["report"]["applied"].as_array().unwrap().iter().map(|s| s["version"].as_i64().unwrap()).collect();
    assert_eq!(applied, [1, 2], "{value:#}");
    assert_eq!(value["report"]["version_after"], 2, "{value:#}");
    assert_eq!(value["error"]["kind"], "migration_failed", "{value:#}");
    // Nothing applied, nothing reported: a failure in the first file carries no report.
    let again = run(sage_db(cwd.path()).args([
        "migrate",
        "up",
        "--json",
        "--source",
        source,
        "--database-url",
        "sqlite://u.db",
    ]));
    let value: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(value.get("report").is_none(), "{value:#}");
}
