//! The one progress line of every long command (migrate, backup, restore, cleanup, seed).
//!
//! The libraries report through [`sage_conn::Progress`]; this draws those reports on stderr
//! when it is a terminal and neither `--quiet` nor `--json` is given, and clears the line
//! when the work is done (or fails), so the output that follows reads as without it. Into a
//! pipe or a file nothing is drawn. It uses no colour, so `NO_COLOR` has nothing to turn off.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sage_conn::progress::{Unit, Update};
use sage_conn::Progress;

use crate::cli::Global;

/// A progress line on stderr for as long as it lives.
pub struct ProgressLine {
    bar: ProgressBar,
}

/// Which of the three looks the line has now.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Look {
    /// N of M, with a bar.
    Counted,
    /// Rows so far, with a spinner.
    Rows,
    /// Bytes so far and the rate, with a spinner.
    Bytes,
}

impl ProgressLine {
    /// Starts a line that is drawn only for a person at a terminal.
    pub fn start(global: &Global) -> ProgressLine {
        // `-v` writes log lines to the same terminal, which a redrawn line would break up.
        let drawn = !global.quiet && !global.json && !global.verbose && std::io::stderr().is_terminal();
        let bar = if drawn {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        ProgressLine { bar }
    }

    /// What the libraries report to: each update redraws the line.
    pub fn progress(&self) -> Progress {
        if self.bar.is_hidden() {
            return Progress::none();
        }
        let bar = self.bar.clone();
        let look: Mutex<Option<Look>> = Mutex::new(None);
        Progress::new(move |update| {
            let wanted = match (update.total, update.unit) {
                (Some(_), _) => Look::Counted,
                (None, Unit::Bytes) => Look::Bytes,
                (None, _) => Look::Rows,
            };
            let mut current = look.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if *current != Some(wanted) {
                bar.set_style(style(wanted));
                *current = Some(wanted);
            }
            draw(&bar, update);
        })
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn style(look: Look) -> ProgressStyle {
    let template = match look {
        Look::Counted => "[{bar:24}] {msg}",
        Look::Rows => "{spinner} {msg}",
        Look::Bytes => "{spinner} {msg} {binary_bytes} ({binary_bytes_per_sec})",
    };
    // Plain ASCII: a terminal without Unicode line drawing shows the same.
    ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> ").tick_chars("|/-\\ ")
}

fn draw(bar: &ProgressBar, update: &Update<'_>) {
    // An item is a file or table name, which may hold anything: control characters would
    // reach the terminal as commands, so they are drawn as `?`.
    let item = update.item.map(|i| i.chars().map(|c| if c.is_control() { '?' } else { c }).collect::<String>());
    let item = item.as_deref();
    match update.total {
        Some(total) => {
            bar.set_length(total);
            bar.set_position(update.done);
            bar.set_message(match item {
                // The item under way is the next one after those done.
                Some(item) => format!("{} {}/{total} {item}", update.action, (update.done + 1).min(total)),
                None => format!("{} {}/{total}", update.action, update.done),
            });
        }
        None if update.unit == Unit::Bytes => {
            bar.set_message(update.action.to_string());
            bar.set_position(update.done);
        }
        None => {
            bar.set_message(match item {
                Some(item) => format!("{} {item}: {} row(s)", update.action, update.done),
                None => format!("{}: {} row(s)", update.action, update.done),
            });
            bar.tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_an_item_never_reach_the_terminal() {
        let bar = ProgressBar::hidden();
        let item = "seed\u{1b}]0;owned\u{7}.sql";
        draw(&bar, &Update { action: "seeding", item: Some(item), done: 0, total: Some(2), unit: Unit::Items });
        assert_eq!(bar.message(), "seeding 1/2 seed?]0;owned?.sql");
        draw(&bar, &Update { action: "deleting from", item: Some("t\r\n"), done: 5, total: None, unit: Unit::Rows });
        assert_eq!(bar.message(), "deleting from t??: 5 row(s)");
    }
}
