//! Golden tests for what a user sees: the `--help` of every command and subcommand, and
//! text and JSON outputs on a fixed migration directory, compared with the files under
//! tests/golden/. After an intended change, `SAGE_BLESS=1 cargo test -p sage-cli --test
//! golden` rewrites them; review the diff before committing.
//!
//! What changes from run to run is masked on purpose before comparing: the temporary
//! directory (`[TMP]`), timestamps (`[TIME]`), durations in milliseconds (`[MS]`) and the
//! release and revision (`[VERSION]`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run, sage_db, stderr, write_dir};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// `sage-db` with a fixed terminal width, so help wraps the same everywhere.
fn sage(cwd: &Path) -> Command {
    let mut command = sage_db(cwd);
    command.env("COLUMNS", "100").env("NO_COLOR", "1");
    command
}

fn mask(text: &str, tmp: &Path) -> String {
    let mut text = text.replace(&tmp.display().to_string(), "[TMP]");
    if let Ok(real) = tmp.canonicalize() {
        text = text.replace(&real.display().to_string(), "[TMP]");
    }
    let rules: [(&str, &str); 5] = [
        (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}| UTC)", "[TIME]"),
        (r"\d+ ms\)", "[MS] ms)"),
        (r#""(duration_ms|execution_ms)": \d+"#, r#""$1": [MS]"#),
        (r"\b20\d{12}\b", "[TIMESTAMP-VERSION]"),
        (r"\b\d+\.\d+\.\d+ \([0-9a-f]{7,}(-dirty)?\)|\b\d+\.\d+\.\d+ \(unknown\)", "[VERSION]"),
    ];
    for (pattern, with) in rules {
        text = regex::Regex::new(pattern).unwrap().replace_all(&text, with).into_owned();
    }
    text
}

/// Compares `actual` with the golden file `name`, or writes it under `SAGE_BLESS=1`.
/// Returns a readable diff when they differ.
fn compare(name: &str, actual: &str) -> Option<String> {
    let path = golden_dir().join(name);
    if std::env::var_os("SAGE_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return None;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(_) => return Some(format!("{name}: no golden file (run with SAGE_BLESS=1 to write it)\n")),
    };
    (expected != actual).then(|| format!("{name}:\n{}", diff(&expected, actual)))
}

/// A line diff of the two texts: `-` lines only in the golden file, `+` lines only in the
/// output, with two lines of context around each change.
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // Longest common subsequence, table from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut lines = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| lines[k.saturating_sub(2)..(k + 3).min(lines.len())].iter().any(|(t, _)| *t != ' ');
    let mut out = String::new();
    let mut skipped = false;
    for (k, (tag, line)) in lines.iter().enumerate() {
        if near_change(k) {
            out.push_str(&format!("  {tag} {line}\n"));
            skipped = false;
        } else if !skipped {
            out.push_str("  …\n");
            skipped = true;
        }
    }
    out
}

fn assert_all(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ (SAGE_BLESS=1 rewrites them after an intended change):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The subcommands `--help` lists under "Commands:", but `help`.
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == "Commands:" {
            inside = true;
        } else if inside && !line.starts_with("  ") {
            break;
        } else if inside && line.starts_with("  ") && !line.starts_with("   ") {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                names.push(name.to_string());
            }
        }
    }
    names
}

#[test]
fn help_of_every_command() {
    let cwd = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let out = run(sage(cwd.path()).args(&path).arg("--help"));
        assert!(out.status.success(), "{path:?} --help: {}", stderr(&out));
        let help = mask(&String::from_utf8_lossy(&out.stdout), cwd.path());
        for sub in subcommands(&help) {
            let mut next = path.clone();
            next.push(sub);
            queue.push(next);
        }
        let name = if path.is_empty() { "sage-db".to_string() } else { format!("sage-db-{}", path.join("-")) };
        failures.extend(compare(&format!("help/{name}.txt"), &help));
        seen.push(format!("help/{name}.txt"));
    }
    assert!(seen.len() > 40, "every command and subcommand: {seen:?}");
    // A golden file for a command that no longer exists is stale.
    if std::env::var_os("SAGE_BLESS").is_none() {
        for entry in std::fs::read_dir(golden_dir().join("help")).unwrap() {
            let name = format!("help/{}", entry.unwrap().file_name().to_string_lossy());
            if !seen.contains(&name) {
                failures.push(format!("{name}: no such command any more; delete the file\n"));
            }
        }
    }
    assert_all(failures);
}

/// Text and JSON of the migration commands on a fixed directory and a new SQLite file.
#[test]
fn migration_outputs_on_a_fixed_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let dir = write_dir(&[
        ("1_users.up.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"),
        ("1_users.down.sql", "DROP TABLE users;"),
        ("2_posts.up.sql", "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));"),
        ("2_posts.down.sql", "DROP TABLE posts;"),
        ("3_index.up.sql", "CREATE INDEX posts_user ON posts (user_id);"),
        ("3_index.down.sql", "DROP INDEX posts_user;"),
    ]);
    let source = dir.path().to_str().unwrap().to_string();
    let mut failures = Vec::new();
    let mut step = |name: &str, args: &[&str]| {
        let out = run(sage(cwd.path()).args(args).args(["--source", &source, "--database-url", "sqlite://app.db"]));
        let text = format!(
            "$ sage-db {}\n{}{}[exit {}]\n",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code().unwrap_or(-1)
        );
        let text = mask(&text, cwd.path()).replace(&source, "[MIGRATIONS]");
        let text = mask(&text, dir.path());
        failures.extend(compare(&format!("outputs/{name}"), &text));
    };
    step("status-new.txt", &["migrate", "status"]);
    step("up-2.txt", &["migrate", "up", "2"]);
    step("status-partial.txt", &["migrate", "status"]);
    step("status-partial.json", &["migrate", "status", "--json"]);
    step("up-dry-run.txt", &["migrate", "up", "--dry-run"]);
    step("up.json", &["migrate", "up", "--json"]);
    step("version.txt", &["migrate", "version"]);
    step("validate.json", &["migrate", "validate", "--json"]);
    step("down-dry-run.txt", &["migrate", "down", "--dry-run"]);
    step("down-refused.txt", &["migrate", "down"]);
    step("schema-sql.txt", &["schema", "sql", "--live"]);
    step("usage-error.json", &["migrate", "up", "--no-such-flag", "--json"]);
    assert_all(failures);
}
