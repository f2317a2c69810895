use std::io::{BufRead, IsTerminal, Write};

/// Asks before a destructive step. `--yes` skips the question; without a terminal to ask
/// on, the answer is no, so scripts must say `--yes` explicitly.
pub fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Unconfirmed { question: question.to_string() }.into());
    }
    eprint!("{question}\nType 'yes' to continue: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        anyhow::bail!("cancelled; nothing was changed")
    }
}

/// A destructive step refused because nobody could be asked (no terminal) and `--yes` was
/// not given. The binary's hint names `--yes`.
#[derive(Debug, thiserror::Error)]
#[error("{question} — refusing without confirmation")]
pub struct Unconfirmed {
    pub question: String,
}
