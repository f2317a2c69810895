//! `sage-db nonce claim|is-used`.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context as _;
use sage_store::{Claim, NonceClaim, NonceStore};

use crate::cli::{Global, NonceCommand};
use crate::context::{parse_duration, Database};

/// Lines of stdin claimed per round trip.
const BATCH: usize = 500;

pub async fn run(global: &Global, command: NonceCommand) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global, true)?;
    let store = db.open_store().await?;
    let nonces = store.nonces();
    match command {
        NonceCommand::Claim { nonce, session, ttl } => {
            let ttl = parse_duration(&ttl).context("--ttl")?;
            let expires_at = chrono::Utc::now() + chrono::Duration::from_std(ttl)?;
            if nonce != "-" {
                let answer = nonces
                    .claim_many(&[NonceClaim { nonce: nonce.clone(), session_id: session, expires_at }])
                    .await?[0];
                print_answer(global.json, &nonce, answer)?;
                return Ok(if answer == Claim::Fresh { ExitCode::SUCCESS } else { ExitCode::from(1) });
            }
            let stdin = std::io::stdin();
            let mut batch: Vec<NonceClaim> = Vec::with_capacity(BATCH);
            let mut lines = stdin.lock().lines();
            loop {
                let line = lines.next().transpose().context("cannot read stdin")?;
                if let Some(line) = &line {
                    let text = line.trim();
                    if !text.is_empty() {
                        batch.push(NonceClaim { nonce: text.to_string(), session_id: session.clone(), expires_at });
                    }
                }
                if batch.len() >= BATCH || (line.is_none() && !batch.is_empty()) {
                    let answers = nonces.claim_many(&batch).await?;
                    for (claim, answer) in batch.iter().zip(answers) {
                        print_answer(global.json, &claim.nonce, answer)?;
                    }
                    batch.clear();
                }
                if line.is_none() {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        NonceCommand::IsUsed { nonce } => {
            let used = nonces.is_used(&nonce).await?;
            if global.json {
                say!("{}", serde_json::json!({ "nonce": nonce, "used": used }));
            } else {
                say!("{}", if used { "used" } else { "unused" });
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line per nonce: `NONCE fresh|replayed`, or a JSON object per line with `--json`.
fn print_answer(json: bool, nonce: &str, answer: Claim) -> anyhow::Result<()> {
    if json {
        say!("{}", serde_json::to_string(&serde_json::json!({ "nonce": nonce, "result": answer }))?);
    } else {
        let word = match answer {
            Claim::Fresh => "fresh",
            Claim::Replayed => "replayed",
        };
        say!("{nonce} {word}");
    }
    Ok(())
}
