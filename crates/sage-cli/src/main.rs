//! `sage-db`: migrate, validate, check, seed, back up, restore, clean up and monitor the
//! databases of agent-identity services. This binary only parses arguments, calls the
//! libraries and prints; exit codes are 0 (done), 1 (done, but something needs attention,
//! e.g. pending migrations with `status --exit-code`) and 2 (could not do it).

#[macro_use]
mod output;

mod cli;
mod cmd;
mod confirm;
mod context;
mod expected;
mod hints;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help, --version, and a command group given without its subcommand: help text.
        Err(e) if !e.use_stderr() || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        Err(e) => {
            // clap's own rendering adds a usage block; one line keeps every failure of this
            // binary in the same shape (`error: …`, exit 2). Its tips (a similar flag or
            // subcommand) are kept on that line.
            let text = e.to_string();
            // A value outside a fixed set is followed by the set, `[possible values: …]`.
            let mut lines = text.lines().map(str::trim).filter_map(|l| {
                let listed = l.strip_prefix('[').and_then(|l| l.strip_suffix(']'));
                match listed {
                    Some(values) if values.starts_with("possible values:") => Some(values),
                    _ => (l.starts_with("error:") || l.starts_with("tip:")).then_some(l),
                }
            });
            let first = lines.next().unwrap_or("invalid arguments").trim_start_matches("error:").trim();
            let tips: Vec<&str> = lines.collect();
            if std::env::args().any(|a| a == "--json") {
                let hints: Vec<&str> = tips.iter().map(|t| t.trim_start_matches("tip:").trim()).collect();
                let hint = (!hints.is_empty()).then(|| hints.join("; "));
                print_json_error("usage", first, &[], hint.as_deref(), None);
            } else if tips.is_empty() {
                eprintln!("error: {first}");
            } else {
                eprintln!("error: {first} ({})", tips.join("; "));
            }
            return ExitCode::from(2);
        }
    };
    let json = cli.global.json;
    init_tracing(cli.global.verbose);
    output::set_quiet(cli.global.quiet);
    let mut builder = match cli.runtime_threads() {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let (kind, hint) = classify(&e);
            // Migrations applied (and committed) before the failure are reported with it.
            let partial = e.chain().find_map(|c| c.downcast_ref::<sage_migrate::Error>()).and_then(|m| m.partial());
            if json {
                let causes = causes(&e);
                let message = flatten(&e.to_string());
                print_json_error(kind, &message, &causes, hint.as_deref(), partial);
            } else {
                if let Some(report) = partial {
                    cmd::migrate::print_report(report);
                }
                eprintln!("error: {}", one_line(&e));
                if let Some(hint) = hint {
                    eprintln!("hint: {hint}");
                }
            }
            ExitCode::from(2)
        }
    }
}

/// Under `--json` an error is a JSON object on stdout, so a script reads one stream:
/// `{"format": 1, "error": {"kind", "message", "causes", "hint"}}`, with `"report"` beside `"error"` when
/// migrations were applied before the failure. The exit code is the same as without.
fn print_json_error(
    kind: &str,
    message: &str,
    causes: &[String],
    hint: Option<&str>,
    partial: Option<&sage_migrate::Report>,
) {
    let mut value = serde_json::json!({
        "format": output::JSON_FORMAT,
        "error": { "kind": kind, "message": message, "causes": causes, "hint": hint }
    });
    if let Some(report) = partial {
        value["report"] = serde_json::to_value(report).unwrap_or_default();
    }
    println!("{value}");
}

/// The causes below the top message, each once (see [`one_line`]).
fn causes(error: &anyhow::Error) -> Vec<String> {
    let mut seen = flatten(&error.to_string());
    let mut out = Vec::new();
    for cause in error.chain().skip(1) {
        let text = flatten(&cause.to_string());
        if text.is_empty() || seen.contains(&text) || already_worded(cause, &seen) {
            continue;
        }
        seen.push_str(": ");
        seen.push_str(&text);
        out.push(text);
    }
    out
}

/// A stable, machine-readable kind for the error (the first library error in the chain
/// decides) and advice the command line adds for it, built from the error's data: the
/// libraries' messages never name this binary's options, the hint does. It is printed as
/// `hint: …` below the error, or as `"hint"` under `--json`.
fn classify(error: &anyhow::Error) -> (&'static str, Option<String>) {
    let (kind, hint) = kind_and_hint(error);
    // A store's known problem keeps its advice also when an outer library error decides
    // the kind (sage-ops wraps the store it opens).
    let hint = hint
        .or_else(|| error.chain().filter_map(|c| c.downcast_ref::<sage_store::StoreError>()).find_map(hints::store));
    (kind, hint)
}

fn kind_and_hint(error: &anyhow::Error) -> (&'static str, Option<String>) {
    for cause in error.chain() {
        if cause.is::<confirm::Unconfirmed>() {
            return ("unconfirmed", Some("pass `--yes` to proceed without the question".into()));
        }
        if let Some(e) = cause.downcast_ref::<sage_store::StoreError>() {
            use sage_store::ErrorKind as K;
            return match e.kind() {
                K::NotFound => ("not_found", None),
                K::AlreadyExists => ("already_exists", None),
                K::Expired => ("expired", None),
                K::Replayed => ("replayed", None),
                K::InvalidInput => ("invalid_input", None),
                K::Unavailable => (
                    "unavailable",
                    Some("check that the database is running and reachable; `--wait` waits for it".to_string()),
                ),
                K::Configuration => ("configuration", hints::store(e)),
                K::Integrity => ("integrity", hints::store(e)),
                K::Internal => ("internal", None),
                _ => ("error", None),
            };
        }
        if let Some(e) = cause.downcast_ref::<sage_migrate::Error>() {
            // A connection failure is named by the connection error below it, as for every
            // other command.
            if matches!(e.inner(), sage_migrate::Error::Connection(_)) {
                continue;
            }
            use sage_migrate::ErrorKind as K;
            let kind = match e.kind() {
                K::Source => "migration_source",
                K::Usage => "usage",
                K::State => "migration_state",
                K::LockTimeout => "lock_timeout",
                K::MigrationFailed => "migration_failed",
                K::Database => "database",
                _ => "error",
            };
            return (kind, hints::migrate(e));
        }
        // A connection failure is named by the connection error below it.
        if let Some(e) = cause.downcast_ref::<sage_ops::Error>() {
            match e.kind() {
                sage_ops::ErrorKind::Connection => continue,
                sage_ops::ErrorKind::Database => return ("database", hints::ops(e)),
                sage_ops::ErrorKind::Io => return ("io", hints::ops(e)),
                _ => return ("invalid_input", hints::ops(e)),
            }
        }
        if let Some(e) = cause.downcast_ref::<sage_schema::Error>() {
            match e.kind() {
                sage_schema::ErrorKind::Connection | sage_schema::ErrorKind::Migration => continue,
                sage_schema::ErrorKind::Database => return ("database", hints::schema(e)),
                _ => return ("invalid_input", hints::schema(e)),
            }
        }
        if let Some(e) = cause.downcast_ref::<sage_conn::Error>() {
            use sage_conn::ErrorKind as K;
            return match e.kind() {
                K::InvalidSettings => ("invalid_settings", None),
                K::Unreachable => (
                    "unreachable",
                    Some("check the host and port and that the server is running; `--wait` waits for it".to_string()),
                ),
                K::Authentication => ("authentication", None),
                K::Tls => ("tls", None),
                K::Server => ("server", None),
                _ => ("error", None),
            };
        }
    }
    ("error", None)
}

/// The whole cause chain on one line, `outer: inner: innermost`. Many library errors
/// already quote their source's text; a cause whose text is already on the line is not
/// repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = flatten(&cause.to_string());
        if text.is_empty() || line.contains(&text) || already_worded(cause, &line) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A driver error that an outer message has already put in words (sage-conn's
/// `describe_pg_error` quotes the server's message or the SQLSTATE): its own text, "db
/// error: ERROR: …", would say the same thing again.
fn already_worded(cause: &(dyn std::error::Error + 'static), line: &str) -> bool {
    let Some(db) = cause.downcast_ref::<tokio_postgres::Error>().and_then(|e| e.as_db_error()) else {
        return false;
    };
    line.contains(db.message()) || line.contains(&format!("SQLSTATE {}", db.code().code()))
}

/// A message that spans lines (TOML's parse errors draw the offending line with a gutter
/// and carets) as one line: the gutter and caret lines are dropped, the rest joined.
fn flatten(text: &str) -> String {
    let is_drawing = |l: &str| {
        let rest = l.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start();
        rest.starts_with('|') || l.chars().all(|c| matches!(c, '^' | '~' | '-' | ' '))
    };
    let parts: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !is_drawing(l)).collect();
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            // A part that introduces a list ends with a colon; the list follows it directly.
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn init_tracing(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: never into a pipe or a file, never with NO_COLOR.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_one_line_without_repeats() {
        let inner = std::io::Error::other("disk full");
        let e = anyhow::Error::new(inner).context("cannot write backups/x.dump").context("backup failed");
        assert_eq!(one_line(&e), "backup failed: cannot write backups/x.dump: disk full");
        // A library error that quotes its source: the source is not printed twice.
        let quoted = anyhow::anyhow!("cannot read session: disk full").context("session get");
        assert_eq!(one_line(&quoted), "session get: cannot read session: disk full");
        let repeated = anyhow::Error::new(std::io::Error::other("--ttl: bad")).context("--ttl: bad");
        assert_eq!(one_line(&repeated), "--ttl: bad");
    }

    #[test]
    fn multi_line_messages_are_flattened() {
        let toml = "TOML parse error at line 2, column 11\n  |\n2 | max_age = \n  |           ^\ninvalid string\nexpected `\"`, `'`\n";
        assert_eq!(flatten(toml), "TOML parse error at line 2, column 11; invalid string; expected `\"`, `'`");
        assert_eq!(flatten("a\rb"), "a b");
    }
}
