//! The plainest way to claim nonces in SQLite, as a baseline for `sage-db bench`: one
//! thread, one connection, the same upsert the store sends, N claims per transaction, WAL
//! with `synchronous=NORMAL`. Nonces follow the benchmark's shape (eight writers, each
//! counting up), so both write the same pages.
//!
//! Usage: sqlite_claim_loop FILE CLAIMS_PER_TRANSACTION SECONDS
//! Prints claims per second.

use std::time::{Duration, Instant, SystemTime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, per_transaction, seconds] = args.as_slice() else {
        return Err("usage: sqlite_claim_loop FILE CLAIMS_PER_TRANSACTION SECONDS".into());
    };
    let per_transaction: u64 = per_transaction.parse().map_err(|_| "CLAIMS_PER_TRANSACTION: not a number")?;
    let seconds: f64 = seconds.parse().map_err(|_| "SECONDS: not a number")?;
    let mut db = rusqlite::Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    let upsert = "INSERT INTO nonces (nonce, session_id, used_at, expires_at) VALUES (?1, NULL, ?2, ?3) \
        ON CONFLICT (nonce) DO UPDATE SET session_id = excluded.session_id, used_at = excluded.used_at, \
        expires_at = excluded.expires_at WHERE nonces.expires_at <= excluded.used_at RETURNING 1";
    let (started, limit) = (Instant::now(), Duration::from_secs_f64(seconds));
    let mut claimed = 0u64;
    while started.elapsed() < limit {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_micros() as i64;
        let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut statement = tx.prepare_cached(upsert)?;
            for _ in 0..per_transaction {
                claimed += 1;
                let nonce = format!("loop-{}-{}", claimed % 8, claimed);
                let fresh = statement.query_row(rusqlite::params![nonce, now, now + 300_000_000], |_| Ok(()));
                fresh?;
            }
        }
        tx.commit()?;
    }
    println!("{}", (claimed as f64 / started.elapsed().as_secs_f64()).round());
    Ok(())
}
