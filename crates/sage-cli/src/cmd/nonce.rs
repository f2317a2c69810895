//! `sage-db nonce claim|is-used`.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use sage_conn::DurationField;
use sage_store::{Claim, NonceClaim, NonceStore};

use crate::cli::{Global, NonceCommand};
use crate::context::Database;

/// Lines of stdin claimed per round trip.
const BATCH: usize = 500;

pub async fn run(global: &Global, command: NonceCommand) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    match command {
        NonceCommand::Claim { nonce, session, ttl } => {
            // Checked before the store is opened, so that a mistyped flag creates no
            // database file and runs no migration.
            let ttl = DurationField::new("--ttl").parse(&ttl)?;
            if nonce != "-" {
                sage_store::validate::token("nonce", &nonce)?;
            }
            if let Some(session) = &session {
                sage_store::validate::token("--session", session)?;
            }
            let store = db.open_store().await?;
            let nonces = store.nonces();
            // Each claim's expiry counts from when it is read, not from when the command began.
            let expires_at = || sage_conn::checked_after("--ttl", chrono::Utc::now(), ttl);
            if nonce != "-" {
                let expires_at = expires_at()?;
                let answer = nonces
                    .claim_many(&[NonceClaim { nonce: nonce.clone(), session_id: session, expires_at }])
                    .await?[0];
                print_answer(global.json, &nonce, answer)?;
                return Ok(if answer == Claim::Fresh { ExitCode::SUCCESS } else { ExitCode::from(1) });
            }
            // Lines are read as bytes and checked one by one, so that an error names the
            // line (invalid UTF-8, a NUL, a stray carriage return) and no claim is sent for
            // the batch that holds it. Batches before it have been claimed and printed. A batch
            // is sent when it is full or when no more input is waiting, so a producer that
            // writes one nonce at a time gets each answer before it writes the next.
            // Larger than stdin's own buffer, so that what is waiting is all in this one.
            let mut input = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
            let mut batch: Vec<NonceClaim> = Vec::with_capacity(BATCH);
            let mut raw = Vec::new();
            for line_no in 1.. {
                raw.clear();
                let done = input.read_until(b'\n', &mut raw).context("cannot read stdin")? == 0;
                if !done {
                    let text = std::str::from_utf8(&raw)
                        .map_err(|_| anyhow!("stdin line {line_no}: not valid UTF-8"))?
                        .trim_end_matches(['\n', '\r'])
                        .trim_matches([' ', '\t']);
                    if !text.is_empty() {
                        sage_store::validate::token("nonce", text).with_context(|| format!("stdin line {line_no}"))?;
                        let claim = NonceClaim {
                            nonce: text.to_string(),
                            session_id: session.clone(),
                            expires_at: expires_at()?,
                        };
                        batch.push(claim);
                    }
                }
                let waiting = !done && !input.buffer().is_empty();
                if !batch.is_empty() && (batch.len() >= BATCH || !waiting) {
                    let answers = nonces.claim_many(&batch).await?;
                    for (claim, answer) in batch.iter().zip(answers) {
                        print_answer(global.json, &claim.nonce, answer)?;
                    }
                    batch.clear();
                }
                if done {
                    break;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        NonceCommand::IsUsed { nonce } => {
            sage_store::validate::token("nonce", &nonce)?;
            let store = db.open_store().await?;
            let used = store.nonces().is_used(&nonce).await?;
            if global.json {
                crate::output::json(&serde_json::json!({ "nonce": nonce, "used": used }))?;
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
        crate::output::json_line(&serde_json::json!({ "nonce": nonce, "result": answer }))?;
    } else {
        let word = match answer {
            Claim::Fresh => "fresh",
            Claim::Replayed => "replayed",
        };
        say!("{nonce} {word}");
    }
    Ok(())
}
