//! The invariants of `docs/ARCHITECTURE.md` that can be read off the source tree and
//! `cargo metadata`, checked so that a change breaking one fails here with the file and line.
//!
//! The source checks work on tokens, not text: comments and `#[cfg(test)]` items are left
//! out, string literals are kept apart from code, and every finding names `path:line`.
//!
//! Invariants checked here (test name in brackets):
//! - `sage-migrate` and `sage-schema` never depend on `sage-store`; `sage-ops` uses the store
//!   only in its seed, serve and bench modules [`migrate_and_schema_never_depend_on_the_store`].
//! - Only `sage-conn` reads the environment for connection settings
//!   [`only_sage_conn_reads_connection_settings_from_the_environment`]; only `sage-cli`
//!   prints [`only_the_binary_prints`].
//! - Identifiers are quoted by `sage_conn::quote_ident` alone
//!   [`identifiers_are_quoted_by_quote_ident_alone`].
//! - Durations are parsed by `sage_conn::DurationField` alone, and a date plus or minus a
//!   duration from input uses the checked operations [`durations_are_parsed_in_one_place`,
//!   `dates_move_by_input_durations_only_through_checked_operations`].
//! - `validate.rs`, `diff.rs`, `plan.rs` and `legacy.rs` do no I/O [`pure_modules_do_no_io`].
//!   (`source.rs` reads the directory and parses in one file, so only its parsing is pure:
//!   its unit tests, e.g. `golang_migrate_pairs`, `every_bad_file_is_reported_at_once`, run
//!   the parser on plain text.)
//! - The migration lock is taken by polling, never by blocking
//!   [`the_migration_lock_is_polled_never_waited_for`].
//! - The store's PostgreSQL statements go through `backend/statements.rs`
//!   [`store_statements_are_sent_through_statements_rs`].
//! - The workspace forbids `unsafe` [`the_workspace_forbids_unsafe`].
//! - Library messages never name a `sage-db` option; the binary's hint does
//!   [`library_messages_never_name_a_command_line_option`].
//!
//! Invariants a source check cannot decide, and the behavioural tests that hold them:
//! - A backup is complete only once its manifest exists; restore refuses a size or checksum
//!   that differs: sage-ops `backup::damaged_or_incomplete_backups_are_refused_before_anything_changes`,
//!   sage-cli `faults::killed_backups_and_verifies_leave_nothing_the_next_run_trips_over`.
//! - Nothing from a backup is executed by a shell or spliced into SQL; restore is one
//!   transaction and compares row counts: sage-ops `hostile::*` (e.g.
//!   `a_dump_carrying_shell_commands_is_refused_before_it_reaches_the_server`,
//!   `tampered_manifests_are_refused_and_run_nothing`),
//!   `backup::a_restore_that_fails_part_way_leaves_the_database_as_it_was`.
//! - Decrypted backup data is never written to disk: sage-cli
//!   `faults::a_killed_sqlite_backup_leaves_no_plaintext_copy`,
//!   `faults::a_killed_sqlite_restore_leaves_the_file_before_or_after_and_no_plaintext`.
//! - A password reaches pg_dump/pg_restore only through `PGPASSWORD` (which variables a child
//!   gets is decided at run time): sage-ops `backup::backup_and_restore_work_over_tls_with_sslmode_require`
//!   and sage-cli `topology::backup_follows_a_multi_host_url` run the real tools with passwords.
//! - Backups only by a pg_dump the server's major reads back; validation never compares two
//!   majors' renderings: sage-cli `versions::*`, sage-schema `versions::*`.
//! - The expected schema comes from the migrations; committed snapshots are current:
//!   sage-schema `schema::committed_snapshots_of_sage_migrations_are_current`.
//! - A migration and its history row commit together; the lock lives on its own connection
//!   and state is read after it: sage-cli `migrate::killed_during_*`,
//!   `migrate::ten_processes_on_*_apply_each_migration_once`, `peers::golang_migrate_waits_for_sage_db_and_nothing_runs_twice`.
//! - SQL is never assembled from data (whether a `format!` argument is data or a constant is
//!   a question of where it came from): sage-ops `hostile::*`,
//!   sage-cli `ops::seed_names_that_escape_the_seed_directory_are_refused`, sage-ops
//!   `roles::a_role_name_that_could_end_the_dollar_quoted_block_is_refused`, and the quoting
//!   check here.
//! - Retention rules are all checked before any row is deleted: sage-cli
//!   `ops::sqlite_every_rule_is_checked_before_any_row_is_deleted`,
//!   `ops::postgres_retention_checks_column_types_before_deleting_anything`.
//! - Session keys reach a database only sealed and are never printed: sage-store
//!   `keys::seal_and_open_round_trip_without_leaking_the_key`, `at_rest::*`, sage-cli
//!   `store::session_commands_never_print_key_material`.
//! - One expiry rule, one-statement nonce claims, `accept`'s atomicity, byte-wise identifier
//!   order: the sage-store `conformance` suite on every backend, `accept_batch::*`,
//!   `accept_faults::*`, sage-cli `migrate::keys_order_bytewise_under_a_linguistic_database_collation`.
//! - Nothing runs on a caller's runtime: sage-store `runtimes::*`. Pooler rules: sage-store
//!   `pooler::*`, sage-cli `topology::concurrent_migrations_through_a_transaction_pooler_apply_once_or_refuse`.
//! - The memory store's chunked scans: `bench/stall_probe.sh` (a measurement, not a test).
//! - Client errors name only what the client sent: sage-store `errors::*`.
//! - Standby reads only when opted in and under the lag bound: sage-store
//!   `standby_reads::standby_reads_follow_the_lag_bound_and_lookups_stay_on_the_primary`;
//!   shared readers: `postgres_reads::*`.
//! - Passwords are redacted: sage-conn `settings::*` unit tests, sage-cli
//!   `migrate::url_typo_is_one_line_with_a_suggestion_and_no_password`.
//! - Input never panics, rows are decoded with `try_get`: the property tests (sage-conn
//!   `parsers_fuzz`, sage-store `validate_fuzz`, the splitter's and dump reader's), sage-store
//!   `foreign_rows::*`.
//! - Arguments are checked before a database is opened, one `error:` line, JSON on stdout
//!   only: sage-cli `bad_input::*`, `conventions::errors_under_json_are_one_json_object_on_stdout`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

// ---------------------------------------------------------------------------------------
// A small Rust tokenizer: enough to tell code from comments and literals.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A string literal's text between its quotes, escapes left as written.
    Str(String),
    /// Character, byte and number literals.
    Lit,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn tokenize(text: &str) -> Vec<Token> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    let count_lines = |from: usize, to: usize, b: &[char]| b[from..to].iter().filter(|c| **c == '\n').count();
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            let (start, mut depth) = (i, 0);
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(start, i, &b);
        } else if let Some((len, hashes)) = raw_string_start(&b, i) {
            // r"…", r#"…"#, br"…", cr#"…"#
            let start = i;
            let body = i + len;
            let mut j = body;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    break;
                }
                j += 1;
            }
            out.push(Token { tok: Tok::Str(b[body..j.min(b.len())].iter().collect()), line });
            i = (j + 1 + hashes).min(b.len());
            line += count_lines(start, i, &b);
        } else if c == '"' || ((c == 'b' || c == 'c') && b.get(i + 1) == Some(&'"')) {
            let start = i;
            let mut j = if c == '"' { i + 1 } else { i + 2 };
            let body = j;
            while j < b.len() && b[j] != '"' {
                j += if b[j] == '\\' { 2 } else { 1 };
            }
            out.push(Token { tok: Tok::Str(b[body..j.min(b.len())].iter().collect()), line });
            i = (j + 1).min(b.len());
            line += count_lines(start, i, &b);
        } else if c == '\'' || (c == 'b' && b.get(i + 1) == Some(&'\'')) {
            let q = if c == '\'' { i } else { i + 1 };
            if b.get(q + 1) == Some(&'\\') {
                // Past the backslash and the character it escapes.
                let mut j = q + 3;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                out.push(Token { tok: Tok::Lit, line });
                i = j + 1;
            } else if b.get(q + 2) == Some(&'\'') {
                out.push(Token { tok: Tok::Lit, line });
                i = q + 3;
            } else {
                // A lifetime or label: its name is an identifier of no interest here.
                i = q + 1;
                while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() {
            while i < b.len()
                && (b[i].is_alphanumeric()
                    || b[i] == '_'
                    || (b[i] == '.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                i += 1;
            }
            out.push(Token { tok: Tok::Lit, line });
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Token { tok: Tok::Ident(b[start..i].iter().collect()), line });
        } else {
            out.push(Token { tok: Tok::Punct(c), line });
            i += 1;
        }
    }
    out
}

/// The length of a raw string's opening (`r#"` is 3) and its number of `#`, if one starts at `i`.
fn raw_string_start(b: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if matches!(b.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if b.get(j) != Some(&'r') {
        return None;
    }
    // Not the tail of an identifier such as `for`.
    if i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|c| **c == '#').count();
    (b.get(j + hashes) == Some(&'"')).then_some((j + hashes + 1 - i, hashes))
}

/// Leaves out every item marked `#[cfg(test)]` (test modules and test-only functions).
fn without_test_items(tokens: Vec<Token>) -> Vec<Token> {
    let is = |t: &Token, p: &Tok| &t.tok == p;
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let cfg_test = [
            Tok::Punct('#'),
            Tok::Punct('['),
            ident("cfg"),
            Tok::Punct('('),
            ident("test"),
            Tok::Punct(')'),
            Tok::Punct(']'),
        ];
        if tokens.len() - i >= cfg_test.len() && cfg_test.iter().enumerate().all(|(k, p)| is(&tokens[i + k], p)) {
            i += cfg_test.len();
            // The item ends at a `;` or at the brace closing its first `{`, at depth zero.
            let mut depth = 0i32;
            while i < tokens.len() {
                match tokens[i].tok {
                    Tok::Punct('{' | '(' | '[') => depth += 1,
                    Tok::Punct('}' | ')' | ']') => {
                        depth -= 1;
                        if depth == 0 && tokens[i].tok == Tok::Punct('}') {
                            i += 1;
                            break;
                        }
                    }
                    Tok::Punct(';') if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            out.push(tokens[i].clone());
            i += 1;
        }
    }
    out
}

fn ident(s: &str) -> Tok {
    Tok::Ident(s.to_string())
}

struct Source {
    /// Relative to the workspace root.
    path: String,
    tokens: Vec<Token>,
}

impl Source {
    fn at(&self, t: &Token) -> String {
        format!("{}:{}", self.path, t.line)
    }
    fn is_ident(&self, i: usize, name: &str) -> bool {
        self.tokens.get(i).is_some_and(|t| t.tok == ident(name))
    }
    fn is_punct(&self, i: usize, c: char) -> bool {
        self.tokens.get(i).is_some_and(|t| t.tok == Tok::Punct(c))
    }
    /// `a :: b` with `a` at `i`.
    fn path_pair(&self, i: usize, a: &str, b: &str) -> bool {
        self.is_ident(i, a) && self.is_punct(i + 1, ':') && self.is_punct(i + 2, ':') && self.is_ident(i + 3, b)
    }
    /// The tokens between the parentheses that open at `open`.
    fn group(&self, open: usize) -> &[Token] {
        let mut depth = 0;
        for j in open..self.tokens.len() {
            match self.tokens[j].tok {
                Tok::Punct('(' | '[' | '{') => depth += 1,
                Tok::Punct(')' | ']' | '}') => {
                    depth -= 1;
                    if depth == 0 {
                        return &self.tokens[open + 1..j];
                    }
                }
                _ => {}
            }
        }
        &self.tokens[open..]
    }
}

/// Every `.rs` file under `dir` (relative to the workspace root), without test items.
fn sources(dir: &str) -> Vec<Source> {
    let root = root();
    let mut files = Vec::new();
    let mut stack = vec![root.join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no Rust files under {dir}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let path = p.strip_prefix(&root).unwrap().display().to_string();
            Source { path, tokens: without_test_items(tokenize(&text)) }
        })
        .collect()
}

const LIBRARIES: [&str; 5] = ["sage-conn", "sage-migrate", "sage-schema", "sage-store", "sage-ops"];

fn library_sources() -> Vec<Source> {
    LIBRARIES.iter().flat_map(|c| sources(&format!("crates/{c}/src"))).collect()
}

/// The crates of the stack, the binary and the test kit. `examples/relay` is an
/// application on the library and reads its own configuration as it likes.
fn all_crate_sources() -> Vec<Source> {
    let mut all = library_sources();
    all.extend(sources("crates/sage-cli/src"));
    all.extend(sources("crates/sage-testkit/src"));
    all
}

fn assert_none(what: &str, findings: Vec<String>) {
    assert!(findings.is_empty(), "{what}:\n  {}", findings.join("\n  "));
}

// ---------------------------------------------------------------------------------------
// The scanner itself: a check that cannot see cannot fail.

#[test]
fn the_scanner_sees_code_and_skips_comments_literals_and_test_items() {
    let text = "fn a() { println!(\"x\"); }\n// println!(\"comment\")\n/* dbg!(1) /* nested */ */\nlet s = r#\"println!(\"raw\")\"#;\nlet c = '\"'; let e = '\\''; let l: &'static str = \"\\\"{}\\\"\";\n#[cfg(test)]\nmod tests {\n fn b() { eprintln!(\"t\"); }\n}\n#[cfg(test)]\nuse std::io;\nfn d() { dbg!(2); }\n";
    let tokens = without_test_items(tokenize(text));
    let macros: Vec<(String, usize)> = tokens
        .windows(2)
        .filter_map(|w| match (&w[0].tok, &w[1].tok) {
            (Tok::Ident(name), Tok::Punct('!')) => Some((name.clone(), w[0].line)),
            _ => None,
        })
        .collect();
    assert_eq!(macros, [("println".to_string(), 1), ("dbg".to_string(), 12)]);
    let strings: Vec<&str> =
        tokens.iter().filter_map(|t| if let Tok::Str(s) = &t.tok { Some(s.as_str()) } else { None }).collect();
    assert_eq!(strings, ["x", "println!(\"raw\")", "\\\"{}\\\""]);
    assert!(!tokens.iter().any(|t| t.tok == ident("io")), "the cfg(test) use is left out");
}

/// A file the tokenizer misreads (a literal it does not know) would hide what follows: every
/// file must come out with its brackets balanced.
#[test]
fn the_scanner_reads_every_source_file_to_its_end() {
    let mut findings = Vec::new();
    for s in all_crate_sources().into_iter().chain(sources("examples/relay/src")) {
        let mut depth = 0i64;
        for t in &s.tokens {
            match t.tok {
                Tok::Punct('{' | '(' | '[') => depth += 1,
                Tok::Punct('}' | ')' | ']') => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                findings.push(format!("{}: a closing bracket without its opening one", s.at(t)));
                break;
            }
        }
        if depth > 0 {
            findings.push(format!("{}: {depth} bracket(s) left open at the end", s.path));
        }
    }
    assert_none("the scanner misread a file", findings);
}

// ---------------------------------------------------------------------------------------
// cargo metadata

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Each workspace package's normal (not dev, not build) dependencies, by name.
fn normal_dependencies(meta: &serde_json::Value) -> BTreeMap<String, BTreeSet<String>> {
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// The workspace packages `package` reaches through normal dependencies, itself excluded.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, package: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![package.to_string()];
    while let Some(p) = todo.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn migrate_and_schema_never_depend_on_the_store() {
    let graph = normal_dependencies(&metadata());
    assert!(graph.contains_key("sage-store") && graph.contains_key("sage-migrate"), "{graph:?}");
    for package in ["sage-migrate", "sage-schema", "sage-conn"] {
        let reached = reaches(&graph, package);
        let through: Vec<&String> = reached.iter().filter(|p| graph.contains_key(*p)).collect();
        assert!(!reached.contains("sage-store"), "{package} depends on sage-store (it reaches {through:?})");
    }
    // sage-ops: the store for SAGE's own seeds, serve (expiry in the background, the store's
    // metrics) and bench's workloads, nothing else.
    let allowed = ["crates/sage-ops/src/seed.rs", "crates/sage-ops/src/serve.rs", "crates/sage-ops/src/bench.rs"];
    let mut findings = Vec::new();
    for s in sources("crates/sage-ops/src") {
        if let Some(t) = s.tokens.iter().find(|t| t.tok == ident("sage_store")) {
            if !allowed.contains(&s.path.as_str()) {
                findings.push(format!("{}: uses sage_store", s.at(t)));
            }
        }
    }
    assert_none("sage-ops uses the store outside seed, serve and bench", findings);
}

#[test]
fn the_workspace_forbids_unsafe() {
    let root = root();
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml")).unwrap().parse().unwrap();
    assert_eq!(
        manifest["workspace"]["lints"]["rust"]["unsafe_code"].as_str(),
        Some("forbid"),
        "Cargo.toml: [workspace.lints.rust] unsafe_code must be \"forbid\""
    );
    let meta = metadata();
    let mut findings = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let path = Path::new(p["manifest_path"].as_str().unwrap());
        let member: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        if member.get("lints").and_then(|l| l.get("workspace")).and_then(|w| w.as_bool()) != Some(true) {
            findings.push(format!("{}: no `[lints] workspace = true`", path.strip_prefix(&root).unwrap().display()));
        }
    }
    assert_none("a package that does not take the workspace's lints may use unsafe", findings);
}

// ---------------------------------------------------------------------------------------
// Source checks

#[test]
fn only_the_binary_prints() {
    let mut findings = Vec::new();
    for s in library_sources()
        .into_iter()
        .chain(sources("crates/sage-testkit/src").into_iter().filter(|s| !s.path.contains("/src/bin/")))
    {
        for i in 0..s.tokens.len() {
            for name in ["println", "eprintln", "print", "eprint", "dbg"] {
                if s.is_ident(i, name) && s.is_punct(i + 1, '!') {
                    findings.push(format!("{}: {name}!", s.at(&s.tokens[i])));
                }
            }
            for stream in ["stdout", "stderr"] {
                if s.path_pair(i, "io", stream) {
                    findings.push(format!("{}: io::{stream}", s.at(&s.tokens[i])));
                }
            }
        }
    }
    assert_none("a library writes to the terminal (only sage-cli prints)", findings);
}

fn is_connection_variable(name: &str) -> bool {
    name == "DATABASE_URL" || ["PG", "DB_", "POSTGRES_"].iter().any(|p| name.starts_with(p))
}

#[test]
fn only_sage_conn_reads_connection_settings_from_the_environment() {
    let mut findings = Vec::new();
    for s in all_crate_sources().into_iter().filter(|s| !s.path.starts_with("crates/sage-conn/")) {
        for i in 0..s.tokens.len() {
            let at = || s.at(&s.tokens[i]);
            if s.is_ident(i, "dotenvy") {
                findings.push(format!("{}: reads .env files with dotenvy", at()));
            }
            for read in ["var", "var_os"] {
                if s.path_pair(i, "env", read) && s.is_punct(i + 4, '(') {
                    match s.group(i + 4).first().map(|t| &t.tok) {
                        Some(Tok::Str(name)) if !is_connection_variable(name) => {}
                        Some(Tok::Str(name)) => findings.push(format!("{}: env::{read}(\"{name}\")", at())),
                        _ => findings.push(format!("{}: env::{read} of a name that is not a literal", at())),
                    }
                }
            }
            // The whole environment may be handed to sage-conn, which picks what it reads.
            for read in ["vars", "vars_os"] {
                if s.path_pair(i, "env", read) {
                    let mut k = i;
                    if k >= 3 && s.is_ident(k - 3, "std") && s.is_punct(k - 1, ':') {
                        k -= 3;
                    }
                    let handed = k >= 2 && s.is_punct(k - 1, '(') && s.is_ident(k - 2, "from_pairs");
                    if !handed {
                        findings
                            .push(format!("{}: env::{read} not handed to sage_conn::Environment::from_pairs", at()));
                    }
                }
            }
        }
    }
    assert_none("the environment is read for connection settings outside sage-conn", findings);
}

#[test]
fn identifiers_are_quoted_by_quote_ident_alone() {
    let mut findings = Vec::new();
    for s in library_sources().into_iter().chain(sources("crates/sage-cli/src")) {
        if s.path == "crates/sage-conn/src/ident.rs" {
            continue;
        }
        for t in &s.tokens {
            let Tok::Str(text) = &t.tok else { continue };
            // An opening double quote (escaped, or in a raw string) right before a placeholder.
            for (at, _) in text.match_indices("\"{") {
                let before = text[..at].strip_suffix('\\').unwrap_or(&text[..at]);
                let opening = before.matches('"').count() % 2 == 0;
                // `key = "{value}"` in a message or a label is not an identifier.
                if opening && !before.trim_end().ends_with('=') {
                    findings.push(format!("{}: {text:?} puts a placeholder in double quotes", s.at(t)));
                }
            }
            // Backquotes name code in messages; in SQL they quote an identifier (SQLite).
            let sql = ["SELECT ", "INSERT ", "UPDATE ", "DELETE ", "CREATE ", "ALTER ", "DROP ", " FROM ", " TABLE "]
                .iter()
                .any(|k| text.contains(k));
            if sql && text.contains("`{") {
                findings.push(format!("{}: {text:?} puts a placeholder in backquotes", s.at(t)));
            }
            // The escape of a double quote inside an identifier.
            if text == "\\\"\\\"" || text == "\"\"" {
                findings.push(format!("{}: doubles double quotes by hand", s.at(t)));
            }
        }
    }
    assert_none("an identifier is quoted outside sage_conn::quote_ident", findings);
}

const DURATION_CRATES: [&str; 5] =
    ["humantime", "humantime-serde", "parse_duration", "duration-str", "go-parse-duration"];
const UNITS: [&str; 22] = [
    "ns", "us", "µs", "ms", "s", "m", "h", "d", "w", "sec", "secs", "second", "seconds", "min", "mins", "minute",
    "minutes", "hour", "hours", "day", "days", "weeks",
];

#[test]
fn durations_are_parsed_in_one_place() {
    let mut findings = Vec::new();
    for (package, deps) in normal_dependencies(&metadata()) {
        for d in deps.iter().filter(|d| DURATION_CRATES.contains(&d.as_str())) {
            findings.push(format!("{package}: depends on {d}"));
        }
    }
    for s in all_crate_sources() {
        if s.path == "crates/sage-conn/src/duration.rs" {
            continue;
        }
        for i in 0..s.tokens.len() {
            let at = || s.at(&s.tokens[i]);
            if s.is_ident(i, "parse_duration") && s.is_punct(i + 1, '(') {
                findings.push(format!("{}: parse_duration outside DurationField", at()));
            }
            for cut in ["strip_suffix", "ends_with", "trim_end_matches", "rsplit_once", "split_once"] {
                if s.is_ident(i, cut) && s.is_punct(i + 1, '(') {
                    if let Some(Tok::Str(unit)) = s.group(i + 1).first().map(|t| &t.tok) {
                        if UNITS.contains(&unit.as_str()) {
                            findings.push(format!("{}: {cut}(\"{unit}\") reads a duration's unit by hand", at()));
                        }
                    }
                }
            }
            // A number read from text turned into a duration.
            for make in ["from_secs", "from_millis", "from_micros", "from_nanos", "from_secs_f64", "from_secs_f32"] {
                if s.is_ident(i, make)
                    && s.is_punct(i + 1, '(')
                    && s.group(i + 1).iter().any(|t| t.tok == ident("parse"))
                {
                    findings.push(format!("{}: {make} of a parsed number", at()));
                }
            }
        }
    }
    assert_none("a duration is parsed outside sage_conn::DurationField", findings);
}

const CHRONO_SPANS: [&str; 9] =
    ["weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "nanoseconds", "from_std"];

#[test]
fn dates_move_by_input_durations_only_through_checked_operations() {
    let mut findings = Vec::new();
    for s in all_crate_sources() {
        if s.path == "crates/sage-conn/src/duration.rs" {
            continue;
        }
        // Names bound to a duration converted from a std one (where input durations live).
        let mut converted = BTreeSet::new();
        for i in 0..s.tokens.len() {
            if s.is_ident(i, "let") {
                let name = if s.is_ident(i + 1, "mut") { i + 2 } else { i + 1 };
                let end = (i..s.tokens.len()).find(|&j| s.is_punct(j, ';')).unwrap_or(s.tokens.len());
                if (i..end).any(|j| s.is_ident(j, "from_std")) {
                    if let Some(Tok::Ident(n)) = s.tokens.get(name).map(|t| &t.tok) {
                        converted.insert(n.clone());
                    }
                }
            }
        }
        for i in 0..s.tokens.len() {
            if !(s.is_punct(i, '+') || s.is_punct(i, '-')) {
                continue;
            }
            let mut j = if s.is_punct(i + 1, '=') { i + 2 } else { i + 1 };
            if s.path_pair(j, "chrono", "Duration") || s.path_pair(j, "chrono", "TimeDelta") {
                j += 3;
            }
            let at = || s.at(&s.tokens[i]);
            if (s.is_ident(j, "Duration") || s.is_ident(j, "TimeDelta"))
                && s.is_punct(j + 1, ':')
                && s.is_punct(j + 2, ':')
            {
                if let Some(Tok::Ident(ctor)) = s.tokens.get(j + 3).map(|t| &t.tok) {
                    if CHRONO_SPANS.contains(&ctor.as_str()) && s.is_punct(j + 4, '(') {
                        let args = s.group(j + 4);
                        if !(args.len() == 1 && args[0].tok == Tok::Lit) {
                            findings
                                .push(format!("{}: a date moved by Duration::{ctor} of a variable with + or -", at()));
                        }
                    }
                }
            }
            if let Some(Tok::Ident(n)) = s.tokens.get(j).map(|t| &t.tok) {
                if converted.contains(n) {
                    findings.push(format!("{}: `{n}` (from from_std) used with + or -", at()));
                }
            }
        }
    }
    assert_none("a date is moved by a duration from input without checked_add_signed", findings);
}

#[test]
fn pure_modules_do_no_io() {
    let pure = [
        "crates/sage-schema/src/validate.rs",
        "crates/sage-schema/src/compare_objects.rs",
        "crates/sage-schema/src/diff.rs",
        "crates/sage-schema/src/diff_objects.rs",
        "crates/sage-migrate/src/plan.rs",
        "crates/sage-migrate/src/legacy.rs",
    ];
    let io = [
        "async",
        "await",
        "fs",
        "File",
        "tokio",
        "tokio_postgres",
        "rusqlite",
        "Client",
        "Connection",
        "Driver",
        "Command",
        "TcpStream",
        "env",
    ];
    // Reading the clock (`Utc::now()` for a row's time) is not I/O here.
    let mut findings = Vec::new();
    let mut seen = 0;
    for s in sources("crates/sage-schema/src").into_iter().chain(sources("crates/sage-migrate/src")) {
        if !pure.contains(&s.path.as_str()) {
            continue;
        }
        seen += 1;
        for t in &s.tokens {
            if let Tok::Ident(name) = &t.tok {
                if io.contains(&name.as_str()) {
                    findings.push(format!("{}: {name}", s.at(t)));
                }
            }
        }
        for i in 0..s.tokens.len() {
            if s.path_pair(i, "std", "io") || s.path_pair(i, "std", "net") {
                findings.push(format!("{}: std I/O", s.at(&s.tokens[i])));
            }
        }
    }
    assert_eq!(seen, pure.len(), "a pure module moved: {pure:?}");
    assert_none("a module documented as pure does I/O", findings);
}

#[test]
fn the_migration_lock_is_polled_never_waited_for() {
    let mut findings = Vec::new();
    let mut polls = 0;
    for s in sources("crates/sage-migrate/src") {
        for t in &s.tokens {
            let Tok::Str(sql) = &t.tok else { continue };
            let lower = sql.to_ascii_lowercase();
            polls += lower.matches("pg_try_advisory_lock(").count();
            for blocking in ["pg_advisory_lock(", "pg_advisory_xact_lock(", "pg_advisory_lock_shared("] {
                if lower.contains(blocking) {
                    findings.push(format!("{}: {blocking}…) waits for the lock", s.at(t)));
                }
            }
        }
    }
    assert!(polls > 0, "no pg_try_advisory_lock in sage-migrate: where is the lock taken?");
    assert_none("the migration lock is waited for instead of polled", findings);
}

#[test]
fn store_statements_are_sent_through_statements_rs() {
    // tokio-postgres calls that send a statement; the SQLite backend's rusqlite calls share
    // some of these names and are not PostgreSQL statements.
    let sending = [
        "prepare",
        "prepare_cached",
        "prepare_typed",
        "query_typed",
        "query_one",
        "query_opt",
        "query_raw",
        "simple_query",
        "execute_raw",
    ];
    let handles = ["client", "tx", "transaction", "conn", "connection"];
    let mut findings = Vec::new();
    for s in sources("crates/sage-store/src/backend") {
        if s.path.ends_with("/statements.rs") || s.path.ends_with("/sqlite.rs") {
            continue;
        }
        for i in 1..s.tokens.len() {
            let Tok::Ident(method) = &s.tokens[i].tok else { continue };
            if !s.is_punct(i - 1, '.') || !s.is_punct(i + 1, '(') {
                continue;
            }
            let at = s.at(&s.tokens[i]);
            if sending.contains(&method.as_str()) {
                findings.push(format!("{at}: .{method}( sends a statement outside statements.rs"));
            }
            let receiver = match i.checked_sub(2).map(|r| &s.tokens[r].tok) {
                Some(Tok::Ident(r)) => r.as_str(),
                _ => "",
            };
            if (method == "query" || method == "execute") && handles.contains(&receiver) {
                findings.push(format!("{at}: {receiver}.{method}( sends a statement outside statements.rs"));
            }
            // Transaction control has no parameters and prepares nothing.
            if method == "batch_execute" {
                match s.group(i + 1).first().map(|t| &t.tok) {
                    Some(Tok::Str(sql)) if ["BEGIN", "COMMIT", "ROLLBACK"].contains(&sql.as_str()) => {}
                    _ => {
                        findings.push(format!("{at}: batch_execute of something other than BEGIN, COMMIT or ROLLBACK"))
                    }
                }
            }
        }
    }
    assert_none("a store statement bypasses backend/statements.rs", findings);
}

/// Every long option of `sage-db`, read from the reviewed `--help` of each command.
fn cli_options() -> BTreeSet<String> {
    let dir = root().join("crates/sage-cli/tests/golden/help");
    let mut options = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("golden help directory") {
        let text = std::fs::read_to_string(entry.expect("help file").path()).expect("help file");
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if let Some(name) = word.strip_prefix("--").filter(|n| n.starts_with(|c: char| c.is_ascii_lowercase())) {
                options.insert(name.to_string());
            }
        }
    }
    assert!(options.len() > 20, "read only {} options from {}", options.len(), dir.display());
    options
}

/// The long options a string literal names in prose: `--name` after a space, a backquote
/// or its start, in a literal that holds a sentence (a space). A literal without one is a
/// program's argument (`--encoding=UTF8` to pg_dump), not something a person reads.
fn options_named_in(text: &str, options: &BTreeSet<String>) -> Vec<String> {
    if !text.contains(' ') {
        return Vec::new();
    }
    let mut named = Vec::new();
    for (i, _) in text.match_indices("--") {
        if i > 0 && !matches!(text.as_bytes()[i - 1], b' ' | b'`' | b'(') {
            continue;
        }
        let name: String =
            text[i + 2..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-').collect();
        if options.contains(&name) {
            named.push(format!("--{name}"));
        }
    }
    named
}

#[test]
fn library_messages_never_name_a_command_line_option() {
    let options = cli_options();
    assert_eq!(options_named_in("raise --lock-timeout to wait", &options), ["--lock-timeout"]);
    assert!(options_named_in("--encoding=UTF8", &options).is_empty());
    assert!(options_named_in("-- a SQL comment", &options).is_empty());
    let mut findings = Vec::new();
    for s in library_sources() {
        for t in &s.tokens {
            if let Tok::Str(text) = &t.tok {
                for option in options_named_in(text, &options) {
                    findings.push(format!("{}: {option} in {text:?}", s.at(t)));
                }
            }
        }
    }
    assert_none("a library message names a sage-db option (the binary's hint should say it)", findings);
}
