//! The plainest way to send sage-store's batched claim statement, as a baseline for
//! `sage-db bench`: N connections, each sending the same `unnest` statement with C random
//! nonces, waiting for its commit, and sending the next one; no batcher, no callers to
//! answer. It shows what the statement and the driver cost apart from the store's
//! batching, between pgbench's ceiling (no client at all) and `sage-db bench`.
//!
//! Usage: pg_claim_loop URL CONNECTIONS CLAIMS_PER_STATEMENT SECONDS
//! Prints claims per second.

use std::time::{Duration, Instant};

use sage_conn::{Settings, Target};

const CLAIM: &str = "INSERT INTO nonces (nonce, session_id, used_at, expires_at) \
    SELECT n, s, $4, e FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(n, s, e) \
    ON CONFLICT (nonce) DO UPDATE SET session_id = EXCLUDED.session_id, used_at = EXCLUDED.used_at, \
    expires_at = EXCLUDED.expires_at WHERE nonces.expires_at <= EXCLUDED.used_at RETURNING nonce";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, connections, per_statement, seconds] = args.as_slice() else {
        return Err("usage: pg_claim_loop URL CONNECTIONS CLAIMS_PER_STATEMENT SECONDS".into());
    };
    let Settings { target: Target::Postgres(settings), .. } = Settings::parse_url("URL", url, sage_conn::Origin::Flag)?
    else {
        return Err("URL: a postgres:// URL is needed".into());
    };
    let connections: u64 = connections.parse().map_err(|_| "CONNECTIONS: not a number")?;
    let per_statement: usize = per_statement.parse().map_err(|_| "CLAIMS_PER_STATEMENT: not a number")?;
    let limit = Duration::from_secs_f64(seconds.parse().map_err(|_| "SECONDS: not a number")?);
    let started = Instant::now();
    let mut loops = Vec::new();
    for connection in 0..connections {
        let client = sage_conn::connect(&settings).await?;
        loops.push(tokio::spawn(async move {
            let statement = client.prepare(CLAIM).await?;
            let mut state = 0x9E37_79B9_7F4A_7C15 ^ ((connection + 1) << 32) ^ u64::from(std::process::id());
            let mut claimed = 0u64;
            while started.elapsed() < limit {
                let now = chrono::Utc::now();
                let mut nonces: Vec<String> = (0..per_statement)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        format!("loop-{}", state % 9_000_000_000_000_000)
                    })
                    .collect();
                // In nonce order, as the store sends them.
                nonces.sort_unstable();
                let sessions: Vec<Option<&str>> = vec![None; per_statement];
                let expiries = vec![now + chrono::Duration::minutes(5); per_statement];
                client.query(&statement, &[&nonces, &sessions, &expiries, &now]).await?;
                claimed += per_statement as u64;
            }
            Ok::<u64, tokio_postgres::Error>(claimed)
        }));
    }
    let mut claimed = 0;
    for one in loops {
        claimed += one.await??;
    }
    println!("{}", (claimed as f64 / started.elapsed().as_secs_f64()).round());
    Ok(())
}
