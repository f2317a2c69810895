use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;

/// Asks before a destructive step. `--yes` skips the question; without a terminal to ask
/// on, the answer is no, so scripts must say `--yes` explicitly.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question} — refusing without confirmation; pass --yes to proceed");
    }
    eprint!("{question}\nType 'yes' to continue: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        bail!("cancelled; nothing was changed")
    }
}
