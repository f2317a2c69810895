//! Everything `sage-db` prints goes through here: tables for people, JSON for machines
//! (stdout only), diagnostics on stderr.

use serde::Serialize;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--quiet`: human-readable output is dropped; JSON and errors still appear.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// A diagnostic line on stderr (`note: …`), dropped under `--quiet`.
pub fn note(text: &str) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("note: {text}");
    }
}

/// Writes to stdout like `print!` (nothing under `--quiet`), but a closed pipe
/// (`sage-db … | head`) ends the program quietly instead of panicking.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    write_stdout_always(args);
}

fn write_stdout_always(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// `say!` for command output.
#[macro_export]
macro_rules! say {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for command output.
#[macro_export]
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// The version of the JSON that `--json` prints (docs/JSON.md): every top-level object
/// carries it as `"format"`. It changes only when a field is removed, renamed or changes
/// its type or meaning; new fields are added without a change.
pub const JSON_FORMAT: u64 = 1;

/// `value` as a top-level document: an object with `"format"` added. Anything but an object
/// at the top level is a mistake in this binary, not in the input.
pub fn versioned<T: Serialize>(value: &T) -> anyhow::Result<serde_json::Value> {
    match serde_json::to_value(value)? {
        serde_json::Value::Object(fields) => {
            let mut document = serde_json::Map::new();
            document.insert("format".into(), JSON_FORMAT.into());
            document.extend(fields);
            Ok(serde_json::Value::Object(document))
        }
        other => anyhow::bail!("internal error: a JSON document must be an object, not {other}"),
    }
}

/// One JSON document on stdout, pretty-printed; printed under `--quiet` too.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    write_stdout_always(format_args!("{}\n", serde_json::to_string_pretty(&versioned(value)?)?));
    Ok(())
}

/// One JSON document on one line, for outputs that print a stream of them (JSON lines).
pub fn json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    write_stdout_always(format_args!("{}\n", serde_json::to_string(&versioned(value)?)?));
    Ok(())
}

/// Prints rows as aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        say!("  {}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
