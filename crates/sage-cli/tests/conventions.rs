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
