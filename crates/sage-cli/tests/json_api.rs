//! The `--json` output of every command, run for real (SQLite files, and PostgreSQL from the
//! test kit for what only PostgreSQL has), checked against the JSON Schemas in docs/json/
//! that docs/JSON.md documents. A field added, renamed or retyped without its schema fails
//! here: the schemas are closed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{run, sage_db, stderr, stdout, write_dir};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json")
}

/// Reads `common.schema.json` and the other files the schemas refer to from docs/json/;
/// nothing is fetched from anywhere else.
struct Files;

impl jsonschema::Retrieve for Files {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let path = uri.as_str().strip_prefix("file://").ok_or_else(|| format!("not a file: {}", uri.as_str()))?;
        Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
    }
}

/// Every document in `text` (one, pretty-printed, or one per line with `lines`) is valid
/// against docs/json/`name`.schema.json. Returns the documents.
fn check_as(name: &str, text: &str, lines: bool) -> Vec<serde_json::Value> {
    let path = schema_dir().join(format!("{name}.schema.json")).canonicalize().expect("schema file");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::options()
        .with_base_uri(format!("file://{}", path.display()))
        .with_retriever(Files)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{name}.schema.json: {e}"));
    let documents: Vec<serde_json::Value> = if lines {
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}"))).collect()
    } else {
        vec![serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"))]
    };
    assert!(!documents.is_empty(), "{name}: no output");
    for document in &documents {
        let errors: Vec<String> =
            validator.iter_errors(document).map(|e| format!("  at {}: {e}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{name}: output does not match its schema:\n{}\n{document:#}", errors.join("\n"));
    }
    documents
}

/// Runs a command that should succeed (or exit 1, which also prints a report) and checks its
/// JSON against `name`.
fn check(name: &str, out: &Output) -> serde_json::Value {
    assert!(matches!(out.status.code(), Some(0 | 1)), "{name}: {}{}", stdout(out), stderr(out));
    check_as(name, &stdout(out), false).remove(0)
}

fn check_lines(name: &str, out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{name}: {}", stderr(out));
    check_as(name, &stdout(out), true)
}

fn with_stdin(command: &mut std::process::Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Every schema file is a valid schema and every command's output is checked by this file:
/// a schema nobody checks would drift from the output unnoticed.
#[test]
fn every_schema_file_is_used_here() {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/json_api.rs")).unwrap();
    for entry in std::fs::read_dir(schema_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".schema.json").unwrap_or_else(|| panic!("{name} in docs/json"));
        if stem != "common" {
            assert!(source.contains(&format!("\"{stem}\"")), "{name} is not checked against any output");
        }
    }
}

#[test]
fn sqlite_outputs_match_their_schemas() {
    let cwd = tempfile::tempdir().unwrap();
    let sage = |args: &[&str]| run(sage_db(cwd.path()).args(args).arg("--json"));

    // Errors: a usage error, a missing session.
    let usage = run(sage_db(cwd.path()).args(["migrate", "up", "--no-such-flag", "--json"]));
    assert_eq!(usage.status.code(), Some(2));
    let error = check_as("error", &stdout(&usage), false).remove(0);
    assert_eq!(error["error"]["kind"], "usage");

    // The lifecycle of SAGE's own database.
    let created = check("database", &sage(&["database", "create"]));
    assert_eq!(created["changed"], true);
    let up = check("up", &sage(&["up"]));
    assert_eq!(up["format"], 1);
    check("migrate-up", &sage(&["migrate", "up"]));
    check("migrate-up", &sage(&["migrate", "up", "1"]));
    check("migrate-status", &sage(&["migrate", "status"]));
    check("migrate-version", &sage(&["migrate", "version"]));
    check("migrate-validate", &sage(&["migrate", "validate"]));
    check("migrate-report", &sage(&["provision"]));
    let checked = check("check", &sage(&["check"]));
    // SQLite tables show their indexes (the sessions' primary key and lookups), counted in
    // the table's total as on PostgreSQL.
    let sessions = checked["tables"].as_array().unwrap().iter().find(|t| t["name"] == "sessions").unwrap();
    let (indexes, total) = (sessions["index_bytes"].as_i64().unwrap(), sessions["total_bytes"].as_i64().unwrap());
    assert!(indexes > 0 && total > indexes, "{checked}");
    check("schema-validate", &sage(&["schema", "validate"]));
    check("schema-sql", &sage(&["schema", "sql"]));
    let dumped = check("schema-dump", &sage(&["schema", "dump"]));
    assert!(dumped["snapshot"]["tables"].is_array(), "{dumped}");
    check("schema-dump", &sage(&["schema", "dump", "--out", "snap"]));
    let current = check("schema-dump", &sage(&["schema", "dump", "--out", "snap", "--check"]));
    assert_eq!(current["current"], true);
    let diff = check("schema-diff", &sage(&["schema", "diff", "snap/schema.json", "sqlite://sage.db"]));
    assert!(diff["changes"].is_array());

    // Data.
    let seeded = check("seed", &sage(&["seed"]));
    assert_eq!(seeded["environment"], "dev");
    let listed = check("session-list", &sage(&["session", "list", "--client", "did:sage:dev:alice"]));
    let id = listed["sessions"][0]["id"].as_str().expect("a seeded session").to_string();
    check("session-get", &sage(&["session", "get", &id]));
    check("session-delete", &sage(&["session", "delete", &id, "--yes"]));
    let missing = sage(&["session", "get", &id]);
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(check_as("error", &stdout(&missing), false)[0]["error"]["kind"], "not_found");
    let claims = check_lines("nonce-claim", &sage(&["nonce", "claim", "n-1"]));
    assert_eq!(claims[0]["result"], "fresh");
    let many = check_lines(
        "nonce-claim",
        &with_stdin(sage_db(cwd.path()).args(["nonce", "claim", "-", "--json"]), "n-1\nn-2\n"),
    );
    assert_eq!(many.len(), 2);
    check("nonce-is-used", &sage(&["nonce", "is-used", "n-2"]));
    let did = "did:sage:json:one";
    check("did", &sage(&["did", "put", did, "--public-key", "00ff", "--owner", "0xabc", "--stale-after", "10m"]));
    check("did", &sage(&["did", "get", did]));
    check("did", &sage(&["did", "revoke", did]));
    let dids = check("did-list", &sage(&["did", "list", "--owner", "0xabc"]));
    assert_eq!(dids["dids"].as_array().unwrap().len(), 1, "one DID is a list of one: {dids}");
    check("did-list", &sage(&["did", "list", "--owner", "0xnobody"]));
    check("keys-generate", &sage(&["keys", "generate", "--key-file", "extra.keys"]));
    check("keys-rotate", &sage(&["keys", "rotate"]));

    // Operations.
    let backup = check("backup", &sage(&["backup", "--dir", "backups"]));
    let file = backup["file"].as_str().unwrap().to_string();
    assert!(backup["manifest"]["size"].as_u64().unwrap() > 0, "{backup}");
    check("backup-verify", &sage(&["backup", "verify", &file]));
    check("restore", &sage(&["restore", &file, "--yes"]));
    check("cleanup", &sage(&["cleanup", "--dry-run"]));
    let rules = write_dir(&[(
        "rules.toml",
        "[[retention]]\ntable = \"nonces\"\ncolumn = \"expires_at\"\nmax_age = \"30d\"\nunit = \"unix_micros\"\n",
    )]);
    let cleaned = check(
        "cleanup",
        &run(sage_db(cwd.path()).arg("cleanup").arg("--json").arg("--config").arg(rules.path().join("rules.toml"))),
    );
    assert_eq!(cleaned["retention"].as_array().unwrap().len(), 1, "{cleaned}");
    check_lines("monitor", &sage(&["monitor"]));
    let bench = check(
        "bench",
        &sage(&["bench", "--operations", "200", "--clients", "2", "--database-url", "sqlite://bench.db"]),
    );
    assert!(bench["rss_end_bytes"].as_u64().unwrap_or(1) > 0);
    check("database", &sage(&["database", "drop", "--yes", "--database-url", "sqlite://bench.db"]));
}

/// Commands on a migration directory of the user's: create, down, goto, force, baseline,
/// repair and adopt.
#[test]
fn migration_directory_outputs_match_their_schemas() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = write_dir(&[
        ("1_a.up.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);"),
        ("1_a.down.sql", "DROP TABLE a;"),
        ("2_b.up.sql", "CREATE TABLE b (id INTEGER PRIMARY KEY);"),
        ("2_b.down.sql", "DROP TABLE b;"),
    ]);
    let source = dir.path().to_str().unwrap().to_string();
    let sage = |args: &[&str]| {
        run(sage_db(cwd.path()).args(args).args(["--json", "--source", &source, "--database-url", "sqlite://m.db"]))
    };
    check(
        "database",
        &run(sage_db(cwd.path()).args(["database", "create", "--json", "--database-url", "sqlite://m.db"])),
    );
    let adopt = check("migrate-adopt", &sage(&["migrate", "adopt"]));
    assert_eq!(adopt["adopted"], false);
    check("migrate-up", &sage(&["migrate", "up"]));
    check("migrate-report", &sage(&["migrate", "down", "--yes"]));
    check("migrate-report", &sage(&["migrate", "goto", "2", "--yes"]));
    check("migrate-report", &sage(&["migrate", "force", "2"]));
    check("migrate-report", &sage(&["migrate", "repair"]));
    std::fs::write(dir.path().join("2_b.up.sql"), "CREATE TABLE b (id INTEGER PRIMARY KEY); -- edited").unwrap();
    let invalid = check("migrate-validate", &sage(&["migrate", "validate"]));
    assert_eq!(invalid["valid"], false);
    check("migrate-status", &sage(&["migrate", "status"]));
    check("migrate-report", &sage(&["migrate", "repair"]));
    let created = check("migrate-create", &sage(&["migrate", "create", "add_c"]));
    assert_eq!(created["files"].as_array().unwrap().len(), 2);
    // A schema made by hand (as an ORM's create_all would), then adopted; another recorded
    // as present by hand.
    let conn = rusqlite::Connection::open(cwd.path().join("h.db")).unwrap();
    conn.execute_batch("CREATE TABLE a (id INTEGER PRIMARY KEY);").unwrap();
    drop(conn);
    let on = |file: &str, args: &[&str]| {
        run(sage_db(cwd.path()).args(args).args(["--json", "--source", &source, "--database-url", file]))
    };
    let adopted = check("migrate-adopt", &on("sqlite://h.db", &["migrate", "adopt"]));
    assert_eq!(adopted["adopted"], true, "{adopted}");
    check("migrate-report", &on("sqlite://k.db", &["migrate", "baseline", "1"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outputs_match_their_schemas() {
    let db = sage_testkit::database().await.unwrap();
    let url = db.url();
    let cwd = tempfile::tempdir().unwrap();
    let sage = |args: &[&str]| run(sage_db(cwd.path()).args(args).args(["--json", "--database-url", &url]));
    check("up", &sage(&["up"]));
    let checked = check("check", &sage(&["check"]));
    assert!(checked["replication"]["role"].is_string(), "{checked}");
    check_lines("monitor", &sage(&["monitor"]));
    let backup = check("backup", &sage(&["backup", "--dir", "backups"]));
    check("backup-verify", &sage(&["backup", "verify", backup["file"].as_str().unwrap()]));

    let suffix = db.name().rsplit('_').next().unwrap().to_string();
    let config = cwd.path().join("roles.toml");
    std::fs::write(&config, format!("[[role]]\nname = \"json_reader_{suffix}\"\nselect_in_schemas = [\"public\"]\n"))
        .unwrap();
    let config = config.to_str().unwrap().to_string();
    let planned = check("roles-apply", &sage(&["roles", "apply", "--dry-run", "--config", &config]));
    assert!(!planned["sql"].as_array().unwrap().is_empty(), "{planned}");
    let applied = check("roles-apply", &sage(&["roles", "apply", "--config", &config]));
    assert_eq!(applied["dry_run"], false);

    // One notification, sent once the listener has said it listens.
    let mut child = sage_db(cwd.path())
        .args(["listen", "json_events", "--count", "1", "--json", "--database-url", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    let client = sage_conn::connect(db.settings()).await.unwrap();
    client.batch_execute("NOTIFY json_events, 'hello'").await.unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = check_lines("listen", &out);
    assert_eq!(lines[0]["payload"], "hello");
}
