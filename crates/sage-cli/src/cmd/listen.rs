//! `sage-db listen CHANNEL`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use sage_conn::{quote_ident, Target};

use crate::cli::Global;
use crate::context::Database;

pub async fn run(global: &Global, channel: &str, count: Option<u64>) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let Target::Postgres(pg) = &db.settings.target else {
        bail!("listen needs PostgreSQL: LISTEN/NOTIFY does not exist on {}", db.settings.target.dialect_name());
    };
    let (client, mut notifications) = sage_conn::connect_listening(pg).await?;
    client
        .batch_execute(&format!("LISTEN {}", quote_ident(channel)))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {channel:?}: {e}"))?;
    eprintln!("listening on {channel:?} at {} (Ctrl-C to stop)", db.settings);
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    loop {
        tokio::select! {
            n = notifications.recv() => {
                let Some(n) = n else { bail!("the connection to {} was lost", db.settings) };
                let mut out = stdout.lock();
                if global.json {
                    let line = serde_json::json!({
                        "format": crate::output::JSON_FORMAT,
                        "channel": n.channel,
                        "payload": n.payload,
                        "process_id": n.process_id,
                        "received_at": chrono::Utc::now().to_rfc3339(),
                    });
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(out, "{}: {}", n.channel, n.payload)?;
                }
                out.flush()?;
                seen += 1;
                if count.is_some_and(|c| seen >= c) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}
