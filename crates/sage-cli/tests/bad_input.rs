//! Bad input, fed to the real binary: every case in the table must end with exit code 2,
//! one line on stderr that starts with `error:` and names what was wrong (and at most a
//! `hint:` line after it, the command line's advice), no panic, and
//! nothing written: the SQLite database keeps every row as it was and no file appears,
//! changes or disappears beside it.
//!
//! Most cases run against a copy of one prepared SQLite database (SAGE's schema, seeded,
//! with an expired nonce that a wrongly started cleanup would delete and two sessions
//! whose metadata another client stored). Cases marked `fresh` point at a database file
//! that does not exist and must still not exist afterwards: the input is refused before
//! anything is opened.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use common::{run, sage_db, stderr};

/// Which database the case's command is pointed at.
#[derive(Clone, Copy, PartialEq)]
enum Db {
    /// `--database-url sqlite://DIR/sage.db`, a copy of the prepared database.
    Existing,
    /// `--database-url sqlite://DIR/new.db`, which must not be created.
    Fresh,
    /// No `--database-url`; the case gives the database its own way (variables, `.env`).
    Own,
}

struct Case {
    args: Vec<String>,
    /// Text stderr must contain: the flag, field, variable or file at fault.
    names: String,
    db: Db,
    stdin: Option<Vec<u8>>,
    files: Vec<(String, Vec<u8>)>,
    env: Vec<(String, String)>,
}

fn case(names: &str, args: &[&str]) -> Case {
    Case {
        args: args.iter().map(|a| a.to_string()).collect(),
        names: names.to_string(),
        db: Db::Existing,
        stdin: None,
        files: Vec::new(),
        env: Vec::new(),
    }
}

impl Case {
    fn fresh(mut self) -> Case {
        self.db = Db::Fresh;
        self
    }

    fn own_db(mut self) -> Case {
        self.db = Db::Own;
        self
    }

    fn stdin(mut self, bytes: &[u8]) -> Case {
        self.stdin = Some(bytes.to_vec());
        self
    }

    fn file(mut self, name: &str, bytes: &[u8]) -> Case {
        self.files.push((name.to_string(), bytes.to_vec()));
        self
    }

    fn env(mut self, name: &str, value: &str) -> Case {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    fn describe(&self) -> String {
        let stdin = self.stdin.as_ref().map(|s| format!(" < {:?}", String::from_utf8_lossy(s))).unwrap_or_default();
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{} sage-db {:?}{stdin}", env.join(" "), self.args)
    }
}

/// Durations no flag accepts, with what the refusal must say.
const BAD_DURATIONS: &[(&str, &str)] = &[
    ("5mins", "is not a duration"),
    ("", "is not a duration"),
    ("0s", "is zero"),
    ("0ms", "is zero"),
    ("1.5h", "is not a duration"),
    ("-1s", "is not a duration"),
    ("5 m", "is not a duration"),
    ("1h30m", "is not a duration"),
    ("307445734561825861m", "is longer than the limit"),
    ("99999999999999999999999s", "is longer than the limit"),
    ("18446744073709551615ms", "is longer than the limit"),
    ("101y", "is longer than the limit"),
    ("٣s", "is not a duration"),
    ("5s\u{202e}", "is not a duration"),
];

fn duration_cases() -> Vec<Case> {
    // Each flag with the arguments that put it in a command that would otherwise run.
    let flags: &[(&str, &[&str])] = &[
        ("--ttl", &["nonce", "claim", "n-duration"]),
        ("--stale-after", &["did", "put", "did:sage:dev:d", "--public-key", "00ff", "--owner", "0xd"]),
        ("--cleanup-every", &["serve", "--port", "1"]),
        ("--duration", &["bench"]),
        ("--sample-every", &["bench", "--operations", "1"]),
        ("--cleanup-every", &["bench", "--operations", "1"]),
        ("--ttl", &["bench", "--operations", "1"]),
        ("--max-age", &["backup", "--dir", "backups"]),
    ];
    let mut cases = Vec::new();
    for (flag, command) in flags {
        for (text, why) in BAD_DURATIONS {
            let mut args = command.to_vec();
            let value = format!("{flag}={text}");
            args.push(&value);
            let mut c = case(&format!("{flag}: {text:?} "), &args).fresh();
            c.names.push_str(why);
            cases.push(c);
        }
    }
    // --lock-timeout accepts zero ("do not wait") but has a lower limit.
    for (text, why) in [("30d", "is longer than the limit of 24d"), ("5mins", "is not a duration"), ("-1s", "is not")] {
        cases
            .push(case(&format!("--lock-timeout: {text:?} {why}"), &["up", &format!("--lock-timeout={text}")]).fresh());
    }
    // Retention ages need a unit; backup --max-age likewise.
    cases.push(case("--max-age: \"30\" has no unit", &["backup", "--max-age", "30"]).fresh());
    cases
}

fn url_cases() -> Vec<Case> {
    let urls: &[(&str, &str)] = &[
        ("", "--database-url is empty"),
        ("mysql://h/db", "unknown scheme"),
        ("postgress://h/db", "did you mean postgres://"),
        ("not a url", "--database-url is not a URL"),
        ("sqlite://", "names no file"),
        ("postgres://h/db?sslmode=bogus", "sslmode"),
        ("postgres://h/db?port=x", "port"),
        ("postgres://h/db?connect_timeout=0", "connect_timeout: \"0\" is zero"),
        ("postgres://h/db?connect_timeout=5mins", "connect_timeout: \"5mins\" is not a duration"),
        ("postgres://h/db?connect_timeout=307445734561825861m", "connect_timeout"),
        ("postgres://h/db?pool_max_conns=0", "pool_max_conns"),
        ("postgres://h/db?pool_max_conns=-1", "pool_max_conns"),
        ("postgres://h/db?pool_min_conns=9&pool_max_conns=2", "pool_min_conns"),
        ("postgres://h/db?pool_health_check_period=0s", "pool_health_check_period: \"0s\" is zero"),
        ("postgres://h/db?pool_health_check_period=99999999999999999999", "pool_health_check_period"),
        ("postgres://h/db?pool_max_conn_idle_time=1.5h", "pool_max_conn_idle_time"),
        ("postgres://h/db?nonsense=1", "unknown parameter \"nonsense\""),
        ("postgres://h:99999/db", "--database-url: malformed postgres URL"),
        ("postgres://[::1/db", "--database-url: malformed postgres URL"),
        ("memoryy://", "unknown scheme"),
    ];
    let mut cases: Vec<Case> = urls
        .iter()
        .map(|(url, names)| case(names, &["nonce", "is-used", "n1", "--database-url", url]).own_db())
        .collect();
    // The same settings reached through variables and files name those.
    cases.extend([
        case("DATABASE_URL: unknown scheme", &["nonce", "is-used", "n1"]).own_db().env("DATABASE_URL", "mysql://h/db"),
        case("DATABASE_URL: connect_timeout", &["nonce", "is-used", "n1"])
            .own_db()
            .env("DATABASE_URL", "postgres://h/db?connect_timeout=0"),
        case("DB_PORT must be a port number", &["nonce", "is-used", "n1"])
            .own_db()
            .env("DB_HOST", "h")
            .env("DB_PORT", "http"),
        case("POSTGRES_SSLMODE", &["nonce", "is-used", "n1"])
            .own_db()
            .env("POSTGRES_HOST", "h")
            .env("POSTGRES_SSLMODE", "maybe"),
        case(".env:2", &["nonce", "is-used", "n1"]).own_db().file(".env", b"A=1\nthis is wrong\n"),
        case(".env:1: unterminated", &["nonce", "is-used", "n1"])
            .own_db()
            .file(".env", b"DATABASE_URL=\"sqlite://x.db\n"),
        case(".env:1", &["nonce", "is-used", "n1"]).own_db().file(".env", b"1BAD=2\n"),
        case(".env", &["nonce", "is-used", "n1"]).own_db().file(".env", b"DATABASE_URL=\xff\xfe\n"),
        case("prod.env", &["nonce", "is-used", "n1", "--env-file", "prod.env"]).own_db(),
        case("DATABASE_URL: connect_timeout", &["nonce", "is-used", "n1", "--env-file", "vars"])
            .own_db()
            .file("vars", b"DATABASE_URL=postgres://h/db?connect_timeout=99999999999999999999y\n"),
    ]);
    cases
}

const BAD_DIDS: &[&str] = &[
    "sage:alice",
    "did:",
    "did:sage",
    "did:Sage:x",
    "did:sage:",
    "did:sage:a:",
    "did:sage:a b",
    "did:sage:%zz",
    "did:sage:a%e",
    "did:sage:café",
    "did:😀:x",
    "did:sage:a\rb",
    "did:sage:a\u{0}b",
];

fn did_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for did in BAD_DIDS {
        if did.contains('\0') {
            continue; // an argument cannot hold a NUL; the stdin cases cover it
        }
        cases.push(case("invalid did", &["did", "put", did, "--public-key", "00ff", "--owner", "0xa"]).fresh());
        cases.push(case("invalid did", &["did", "get", did]).fresh());
    }
    let long = format!("did:sage:{}", "a".repeat(3000));
    cases.push(case("invalid did: is longer than", &["did", "revoke", &long]).fresh());
    let put = |names: &str, extra: &[&str]| {
        let mut args = vec!["did", "put", "did:sage:dev:bad"];
        args.extend_from_slice(extra);
        case(names, &args).fresh()
    };
    let big_key = "00".repeat(1025);
    cases.extend([
        // A multi-byte character used to be sliced in half and panic.
        put("--public-key: 'é' is not a hex digit", &["--public-key", "é1", "--owner", "0xa"]),
        put("--public-key: 'é' is not a hex digit", &["--public-key", "0é", "--owner", "0xa"]),
        put("--public-key: '😀'", &["--public-key", "😀😀", "--owner", "0xa"]),
        put("--public-key: 'z' is not a hex digit", &["--public-key", "0xzz", "--owner", "0xa"]),
        put("--public-key: hex needs an even number", &["--public-key", "abc", "--owner", "0xa"]),
        put("invalid public_key: must not be empty", &["--public-key", "", "--owner", "0xa"]),
        put("invalid public_key: must not be empty", &["--public-key", "0x", "--owner", "0xa"]),
        put("--public-key: not valid base64", &["--public-key", "base64:!!!", "--owner", "0xa"]),
        put("--public-key: not valid base64", &["--public-key", "base64:é", "--owner", "0xa"]),
        put("invalid public_key: is 1025 bytes", &["--public-key", &big_key, "--owner", "0xa"]),
        put("--key-agreement-key: 'ß'", &["--public-key", "00", "--owner", "0xa", "--key-agreement-key", "ß0"]),
        put("invalid key_agreement_key", &["--public-key", "00", "--owner", "0xa", "--key-agreement-key", ""]),
        put("invalid owner_address", &["--public-key", "00", "--owner", ""]),
        put("invalid owner_address", &["--public-key", "00", "--owner", "0x a"]),
        put("invalid endpoint", &["--public-key", "00", "--owner", "0xa", "--endpoint", "ftp://x"]),
        put("invalid endpoint", &["--public-key", "00", "--owner", "0xa", "--endpoint", "not a url"]),
        put("invalid capabilities", &["--public-key", "00", "--owner", "0xa", "--capability", ""]),
        put("invalid value 'RSA' for '--key-type <KEY_TYPE>' (possible values: Ed25519, Secp256k1, X25519, P-256, P-384)", &["--public-key", "00", "--owner", "0xa", "--key-type", "RSA"]),
    ]);
    cases
}

fn nonce_and_session_cases() -> Vec<Case> {
    let long = "n".repeat(256);
    let mut cases = Vec::new();
    for nonce in ["a b", "é", long.as_str(), "a\tb", "a\rb", "a\nb", "a;b", "'"] {
        cases.push(case("invalid nonce", &["nonce", "claim", nonce]).fresh());
    }
    cases.push(case("invalid nonce", &["nonce", "is-used", "a b"]).fresh());
    cases.push(case("invalid --session", &["nonce", "claim", "n1", "--session", "a b"]).fresh());
    // Lines on stdin: the line is named, and the good lines before it are not claimed.
    let stdin: &[(&[u8], &str)] = &[
        (b"good-1\nbad one\n", "stdin line 2: invalid nonce"),
        (b"good-1\r\nbad\x00nul\r\n", "stdin line 2: invalid nonce: contains '\\0'"),
        (b"good-1\n\xff\xfe\n", "stdin line 2: not valid UTF-8"),
        (b"\xc3\x28\n", "stdin line 1: not valid UTF-8"),
        (b"good-1\na\rb\n", "stdin line 2: invalid nonce: contains '\\r'"),
        (b"good-1\r\n\r\n\tx y\r\n", "stdin line 3: invalid nonce"),
        (b"good-1\n\xe2\x80\xae-rtl\n", "stdin line 2: invalid nonce"),
        (b"\x00", "stdin line 1: invalid nonce"),
    ];
    for (input, names) in stdin {
        cases.push(case(names, &["nonce", "claim", "-"]).stdin(input));
    }
    let long_line = format!("ok\n{}\n", "x".repeat(300));
    cases.push(
        case("stdin line 2: invalid nonce: is 300 characters", &["nonce", "claim", "-"]).stdin(long_line.as_bytes()),
    );
    cases.extend([
        case("invalid id", &["session", "get", "a b"]).fresh(),
        case("invalid id", &["session", "get", "é"]).fresh(),
        case("invalid id", &["session", "delete", "a b", "--yes"]).fresh(),
        case("invalid client_did", &["session", "list", "--client", "alice"]).fresh(),
        case("invalid server_did", &["session", "list", "--server", "did:x"]).fresh(),
        case("invalid limit", &["session", "list", "--client", "did:sage:dev:a", "--limit", "0"]).fresh(),
        case("invalid limit", &["session", "list", "--client", "did:sage:dev:a", "--limit", "4000000000"]).fresh(),
        // Metadata another client stored, nested deeper than the JSON parser goes: an error
        // that names the column, where reading it used to panic (PostgreSQL) or quietly
        // drop it (SQLite).
        case("metadata", &["session", "get", "deep-metadata"]),
        case("metadata", &["session", "list", "--client", "did:sage:other:client"]),
    ]);
    cases
}

fn retention_cases() -> Vec<Case> {
    let rule =
        |max_age: &str| format!("[[retention]]\ntable = \"nonces\"\ncolumn = \"expires_at\"\nmax_age = {max_age}\n");
    let mut cases: Vec<Case> = [
        ("\"30\"", "max_age: \"30\" has no unit"),
        ("\"0d\"", "max_age: \"0d\" is zero"),
        ("\"307445734561825861m\"", "max_age: \"307445734561825861m\" is longer than the limit"),
        ("\"5mins\"", "max_age: \"5mins\" is not a duration"),
        ("\"\"", "max_age: \"\" is not a duration"),
        ("\"101y\"", "longer than the limit"),
        ("\"-1d\"", "is not a duration"),
        ("30", "rules.toml"),
        ("\"30d", "rules.toml"),
    ]
    .iter()
    .map(|(age, names)| case(names, &["cleanup", "--config", "rules.toml"]).file("rules.toml", rule(age).as_bytes()))
    .collect();
    let files: &[(&[u8], &str)] = &[
        (b"[[retention]]\ntable = \"nonces\"\ncolumn = \"expires_at\"\n", "rules.toml"),
        (b"[[retention]]\ntable = \"nonces\"\ncolumn = \"expires_at\"\nmax_age = \"1d\"\nbatch = 0\n", "batch must be at least 1"),
        (b"[[retention]]\ntable = \"nonces\"\ncolumn = \"expires_at\"\nmax_age = \"1d\"\nbatch = -1\n", "rules.toml"),
        (b"[[retention]]\ncolumn = \"expires_at\"\nmax_age = \"1d\"\n", "rules.toml"),
        (b"retention = 5\n", "rules.toml"),
        (b"[[retention]\n", "rules.toml"),
        (b"\xff\xfe[[retention]]\n", "rules.toml"),
        (b"[[retention]]\ntable = \"nonces\"\ncolumn = \"expires_at\"\nmax_age = \"1d\"\n[[retention]]\ntable = \"dids\"\ncolumn = \"created_at\"\nmax_age = \"0s\"\n", "retention rule 2"),
    ];
    for (text, names) in files {
        cases.push(case(names, &["cleanup", "--config", "rules.toml"]).file("rules.toml", text));
    }
    cases.push(case("missing.toml", &["cleanup", "--config", "missing.toml"]));
    cases.push(case("a-directory", &["cleanup", "--config", "a-directory"]).file("a-directory/keep", b""));
    cases
}

fn argument_cases() -> Vec<Case> {
    vec![
        case("--watch: \"abc\" is not a duration", &["monitor", "--watch", "abc"]).fresh(),
        case("--watch: \"-1\" is not a duration", &["monitor", "--watch=-1"]).fresh(),
        case("--watch: \"0\" is zero", &["monitor", "--watch", "0"]).fresh(),
        case("--port", &["serve", "--port", "99999"]).fresh(),
        case("--bind", &["serve", "--bind", "localhost:80"]).fresh(),
        case("--clients", &["bench", "--clients", "many"]).fresh(),
        case("--clients", &["bench", "--clients", "0"]).fresh(),
        // Used to abort: the run allocated per-client state for each before starting.
        case("--clients", &["bench", "--clients", "100000000"]).fresh(),
        // Used to panic when the system refused that many runtime threads.
        case("--threads", &["bench", "--threads", "100000"]).fresh(),
        case("--threads", &["bench", "--threads", "0"]).fresh(),
        case("--limit", &["session", "list", "--client", "did:sage:a", "--limit=-1"]).fresh(),
        case("'zip' for '--format <FORMAT>' (possible values: custom, sql.gz)", &["backup", "--format", "zip"]).fresh(),
        case(
            "invalid value 'everything' for '--workload <WORKLOAD>' (possible values: nonce-claim,",
            &["bench", "--workload", "everything"],
        )
        .fresh(),
        case("--keep", &["backup", "--keep", "many"]).fresh(),
        case("unrecognized subcommand 'nonc' (tip: a similar subcommand exists: 'nonce')", &["nonc"]).fresh(),
        case(
            "unexpected argument '--tll' found (tip: a similar argument exists: '--ttl')",
            &["nonce", "claim", "x", "--tll", "5m"],
        )
        .fresh(),
        case("a value is required for '--watch <DURATION>'", &["monitor", "--watch"]).fresh(),
    ]
}

fn file_cases() -> Vec<Case> {
    vec![
        case("--history-table: history table \"\" is empty", &["up", "--history-table", ""]).fresh(),
        case("--history-table: history table \".\" must be", &["up", "--history-table", "."]).fresh(),
        case("--history-table", &["up", "--history-table", "a.b.c"]).fresh(),
        case("--history-table", &["migrate", "status", "--history-table", "x."]).fresh(),
        case("--history-table", &["up", "--history-table", "a\tb"]).fresh(),
        case("--history-table", &["up", "--history-table", &"h".repeat(64)]).fresh(),
        case("missing.dump", &["restore", "missing.dump", "--yes"]),
        case("missing.dump", &["backup", "verify", "missing.dump"]),
        case("missing-dir", &["migrate", "status", "--source", "missing-dir"]),
        case("missing.json", &["schema", "validate", "--snapshot", "missing.json"]),
        case("no-such-dir", &["keys", "generate", "--key-file", "no-such-dir/k.key"]),
    ]
}

fn key_and_snapshot_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = ["é", "abc", "AAAA", "=,=", "k1:é", &"a".repeat(100)]
        .iter()
        .map(|key| case("SAGE_SESSION_KEY: a key", &["nonce", "claim", "n-key"]).env("SAGE_SESSION_KEY", key))
        .collect();
    cases.extend([
        case("key file", &["nonce", "claim", "n-key"])
            .env("SAGE_SESSION_KEY_FILE", "kf")
            .file("kf", b"\xc3\xa9\n\xff\n"),
        case("missing.key", &["nonce", "claim", "n-key"]).env("SAGE_SESSION_KEY_FILE", "missing.key"),
        case("bad.json: not a schema snapshot", &["schema", "validate", "--snapshot", "bad.json"])
            .file("bad.json", b"{\"tables\": [{\"name\": 5}]}"),
        case("bin.json", &["schema", "validate", "--snapshot", "bin.json"]).file("bin.json", b"\xff\xfe{}"),
        case("bad.json", &["schema", "diff", "bad.json", "bad.json"]).file("bad.json", b"[1, 2"),
        case("\"nowhere\" is neither", &["schema", "diff", "nowhere", "nowhere"]),
    ]);
    cases
}

/// A backup file and manifests an attacker or an accident could leave beside it.
fn manifest_cases() -> Vec<Case> {
    let body: &[u8] = b"SQLite format 3\0 but not really a database";
    let (sha256, size) = sage_ops::manifest::hash_reader(body, Path::new("b.sqlite")).unwrap();
    let good = serde_json::json!({
        "format": "sage-db backup 2", "file": "b.sqlite", "dialect": "sqlite", "kind": "sqlite",
        "encryption": "none", "sha256": sha256, "size": size, "created_at": "2026-11-30T00:00:00Z",
        "tool_version": "sage-db", "server_version": "SQLite", "migration_version": null,
        "history": [], "tables": {"nonces": 1}, "privileges": false
    });
    let edits: Vec<(&str, serde_json::Value)> = vec![
        ("file", serde_json::json!("../../etc/passwd")),
        ("dialect", serde_json::json!("oracle")),
        ("kind", serde_json::json!("custom; \\! id")),
        ("encryption", serde_json::json!("rot13")),
        ("sha256", serde_json::json!("not hex at all")),
        ("size", serde_json::json!(1)),
        ("format", serde_json::json!("sage-db backup 99")),
        ("tables", serde_json::json!({"nonces": -5})),
        ("tables", serde_json::json!({"a": i64::MAX, "b": i64::MAX})),
        ("tables", serde_json::json!({"x$sage_verify$;\n\\! touch pwned\n--": 1})),
        ("seal", serde_json::json!({"key": "AAAA", "mac": "00"})),
        ("seal", serde_json::json!("a string")),
        ("history", serde_json::json!([{"version": "one", "checksum": 1}])),
        ("surprise", serde_json::json!("\\! id")),
        ("created_at", serde_json::json!(12)),
    ];
    let mut cases = Vec::new();
    for (field, value) in edits {
        let mut manifest = good.clone();
        manifest[field] = value;
        cases.push(
            case("b.sqlite", &["restore", "b.sqlite", "--yes"])
                .file("b.sqlite", body)
                .file("b.sqlite.manifest.json", manifest.to_string().as_bytes()),
        );
    }
    for raw in [&b""[..], b"{", b"[]", b"null", b"\xff\xfe{}", b"{\"format\": \"sage-db backup 2\"}"] {
        cases.push(
            case("b.sqlite.manifest.json", &["restore", "b.sqlite", "--yes"])
                .file("b.sqlite", body)
                .file("b.sqlite.manifest.json", raw),
        );
    }
    for command in [&["restore", "b.sqlite", "--yes"][..], &["backup", "verify", "b.sqlite"][..]] {
        cases.push(case("no readable manifest", command).file("b.sqlite", body));
    }
    cases
}

/// Migration directories whose file names no migration tool would accept.
fn migration_file_cases() -> Vec<Case> {
    let files: &[(&str, &[u8], &str)] = &[
        ("m/99999999999999999999_big.up.sql", b"SELECT 1;", "99999999999999999999_big.up.sql"),
        ("m/1_a.up.sql", b"SELECT \xff;", "1_a.up.sql"),
        ("m/0_zero.up.sql", b"SELECT 1;", "0_zero.up.sql"),
    ];
    let mut cases: Vec<Case> = files
        .iter()
        .map(|(name, body, names)| case(names, &["migrate", "up", "--source", "m"]).file(name, body))
        .collect();
    cases.push(
        case("version 1", &["migrate", "up", "--source", "m"])
            .file("m/1_a.up.sql", b"SELECT 1;")
            .file("m/01_b.up.sql", b"SELECT 2;"),
    );
    cases
}

fn all_cases() -> Vec<Case> {
    let mut cases = duration_cases();
    cases.extend(url_cases());
    cases.extend(did_cases());
    cases.extend(nonce_and_session_cases());
    cases.extend(retention_cases());
    cases.extend(argument_cases());
    cases.extend(file_cases());
    cases.extend(key_and_snapshot_cases());
    cases.extend(manifest_cases());
    cases.extend(migration_file_cases());
    cases
}

/// The prepared database, made once: migrated, seeded, one nonce already expired, one DID,
/// and two sessions whose metadata is nested 200 levels deep.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("sage.db").display());
            for args in [
                vec!["up"],
                vec!["seed"],
                vec!["nonce", "claim", "expired-soon", "--ttl", "1ms"],
                vec!["did", "put", "did:sage:dev:keep", "--public-key", "00ff", "--owner", "0xkeep"],
            ] {
                let out = run(sage_db(dir.path()).args(&args).args(["--database-url", &url]));
                assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            }
            let deep = format!("{}{}", "{\"a\":".repeat(200), "1".to_string() + &"}".repeat(200));
            let conn = rusqlite::Connection::open(dir.path().join("sage.db")).unwrap();
            let now = chrono::Utc::now().timestamp_micros();
            for id in ["deep-metadata", "deep-metadata-2"] {
                conn.execute(
                    "INSERT INTO sessions (id, client_did, server_did, session_key, created_at, expires_at, last_activity, metadata) \
                     VALUES (?1, 'did:sage:other:client', 'did:sage:other:server', x'00', ?2, ?3, ?2, ?4)",
                    rusqlite::params![id, now, now + 3_600_000_000, deep],
                )
                .unwrap();
            }
            drop(conn);
            std::thread::sleep(std::time::Duration::from_millis(5));
            dir
        })
        .path()
}

/// Every file under `dir` with its bytes, except the SQLite database (compared by its rows)
/// and SQLite's own side files, which a read may create and remove.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                out.insert(path.clone(), b"<dir>".to_vec());
                stack.push(path);
            } else if name != "sage.db"
                && !name.ends_with("-wal")
                && !name.ends_with("-shm")
                && !name.ends_with("-journal")
            {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Every row of every table of the SQLite database, in a stable order.
fn rows(db: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = BTreeMap::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let width = stmt.column_count();
        let mut all: Vec<String> = stmt
            .query_map([], |r| {
                let values: Vec<String> = (0..width).map(|i| r.get_ref(i).map(show)).collect::<Result<_, _>>()?;
                Ok(values.join("|"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        all.sort();
        out.insert(table, all);
    }
    out
}

fn show(value: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => b.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// Runs one case; `Err` says how it failed.
fn check(case: &Case) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template(), dir.path());
    for (name, bytes) in &case.files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let db = dir.path().join("sage.db");
    let fresh = dir.path().join("new.db");
    let (files_before, rows_before) = (files(dir.path()), rows(&db));

    let mut command = sage_db(dir.path());
    command.args(&case.args).env("RUST_BACKTRACE", "0");
    match case.db {
        Db::Existing => command.args(["--database-url", &format!("sqlite://{}", db.display())]),
        Db::Fresh => command.args(["--database-url", &format!("sqlite://{}", fresh.display())]),
        Db::Own => &mut command,
    };
    for (k, v) in &case.env {
        command.env(k, v);
    }
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let input = case.stdin.clone().unwrap_or_default();
    let mut pipe = child.stdin.take().unwrap();
    // A process that fails before reading closes the pipe; that is not the test's failure.
    let _ = pipe.write_all(&input);
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);

    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit code {:?}, expected 2", out.status.code()));
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        problems.push("panicked".to_string());
    }
    // One `error:` line, and at most one `hint:` line after it with the command line's advice.
    let lines: Vec<&str> = err.trim_end_matches('\n').split('\n').collect();
    let shaped = match lines.as_slice() {
        [error] => error.starts_with("error: "),
        [error, hint] => error.starts_with("error: ") && hint.starts_with("hint: "),
        _ => false,
    };
    if !shaped || !err.ends_with('\n') {
        problems.push("stderr is not one line starting with `error: ` (and a `hint: ` line)".to_string());
    }
    // The error line itself names what was wrong; the hint only adds what to do.
    if !lines[0].contains(&case.names) {
        problems.push(format!("the error line does not contain {:?}", case.names));
    }
    if fresh.exists() {
        problems.push("created the database file".to_string());
    }
    if files(dir.path()) != files_before {
        problems.push("files were created, changed or removed".to_string());
    }
    if rows(&db) != rows_before {
        problems.push("rows of the database changed".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n    stderr: {err:?}\n    {}", case.describe(), problems.join("; ")))
    }
}

#[test]
fn bad_input_is_refused_with_one_line_and_nothing_written() {
    let cases = all_cases();
    assert!(cases.len() >= 150, "only {} cases", cases.len());
    let failures: Vec<String> = cases.iter().filter_map(|c| check(c).err()).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// The prepared database really holds what the cases rely on: an expired nonce that a
/// wrongly started cleanup would delete, and the deep metadata.
#[test]
fn the_prepared_database_has_rows_a_mistake_would_change() {
    let rows = rows(&template().join("sage.db"));
    assert!(rows["nonces"].iter().any(|r| r.contains("expired-soon")), "{:?}", rows["nonces"]);
    assert!(rows["sessions"].iter().any(|r| r.contains("deep-metadata")));
    assert!(rows["dids"].iter().any(|r| r.contains("did:sage:dev:keep")));
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template(), dir.path());
    let url = format!("sqlite://{}", dir.path().join("sage.db").display());
    let out = run(sage_db(dir.path()).args(["cleanup", "--dry-run", "--database-url", &url]));
    assert!(common::stdout(&out).contains("and 1 expired nonce(s)"), "{}", common::stdout(&out));
}

/// The checks themselves can fail: a command that succeeds and writes is caught on every
/// count, and so is one that creates a file.
#[test]
fn the_checks_catch_a_command_that_writes() {
    let err = check(&case("nonce", &["nonce", "claim", "n-written"])).unwrap_err();
    assert!(err.contains("exit code Some(0)") && err.contains("rows of the database changed"), "{err}");
    assert!(err.contains("stderr is not one line"), "{err}");
    let err = check(&case("created", &["nonce", "claim", "n-written"]).fresh()).unwrap_err();
    assert!(err.contains("created the database file"), "{err}");
    let err = check(&case("--dir", &["keys", "generate", "--key-file", "new.key"])).unwrap_err();
    assert!(err.contains("files were created, changed or removed"), "{err}");
}

/// Help is not an error line: a command group without its subcommand still prints its help
/// (to stderr, exit 2), and --help prints to stdout with exit 0.
#[test]
fn help_is_printed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(sage_db(dir.path()).arg("nonce"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Usage:") && !stderr(&out).starts_with("error:"), "{}", stderr(&out));
    let out = run(sage_db(dir.path()).args(["nonce", "--help"]));
    assert!(out.status.success() && common::stdout(&out).contains("Usage:"));
}
