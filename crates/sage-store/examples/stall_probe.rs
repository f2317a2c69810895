//! How long the memory store keeps the async runtime's thread from other tasks: a probe task
//! sleeps 1 ms at a time and records the longest gap between two wake-ups while the store
//! works through N sessions: `delete_expired` of N expired sessions, and `count_active`
//! and `list_by_client` over N live ones. Runs on a current-thread runtime, where the
//! probe and the store share the one thread (the worst case: every stall shows), then on a
//! multi-thread runtime of two workers. A gap near 1 ms means no stall.
//!
//! Usage: stall_probe [SESSIONS]   (default 200000)
//! Prints one line per operation: its duration and the longest gap the probe saw.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sage_store::chrono::Duration as Span;
use sage_store::{prelude::*, ManualClock, NewSession, Page, SessionKey, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|_| "SESSIONS: not a number")?,
        None => 200_000,
    };
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    current.block_on(probe_all("current-thread runtime", sessions))?;
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    multi.block_on(probe_all("multi-thread runtime (2 workers)", sessions))?;
    Ok(())
}

async fn probe_all(runtime: &str, sessions: u64) -> Result<(), Box<dyn std::error::Error>> {
    let clock = Arc::new(ManualClock::new(sage_store::chrono::Utc::now()));
    let store = Store::builder("memory://").clock(clock.clone()).open().await?;
    let expires_at = store.now() + Span::minutes(10);
    for i in 0..sessions {
        let client = format!("did:sage:client{}", i % 1000);
        let session = NewSession::new(client, "did:sage:server", SessionKey::new(vec![7; 32]), expires_at);
        store.sessions().create(&session).await?;
    }
    println!("{runtime}, {sessions} sessions:");
    report("idle (the probe alone)", probe(async { tokio::time::sleep(Duration::from_millis(200)).await }).await);
    let (took, gap) = probe(async { store.sessions().count_active().await.map(drop) }).await;
    report("count_active over live sessions", (took, gap));
    let (took, gap) =
        probe(async { store.sessions().list_by_client("did:sage:client7", Page::first(100)).await.map(drop) }).await;
    report("list_by_client over live sessions", (took, gap));
    clock.advance(Span::minutes(11));
    let (took, gap) = probe(async { store.sessions().delete_expired().await.map(drop) }).await;
    report("delete_expired of expired sessions", (took, gap));
    assert_eq!(store.sessions().count_active().await?, 0);
    Ok(())
}

fn report(what: &str, (took, gap): (Duration, Duration)) {
    println!("  {what:<38} took {:>8.1} ms; longest probe gap {:>6.2} ms", ms(took), ms(gap));
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `work` beside a task that sleeps 1 ms at a time; returns how long the work took and
/// the longest gap between two of the probe's wake-ups meanwhile.
async fn probe<F, T>(work: F) -> (Duration, Duration)
where
    F: std::future::Future<Output = T>,
{
    let done = Arc::new(AtomicBool::new(false));
    let longest = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (done, longest) = (done.clone(), longest.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let before = Instant::now();
                tokio::time::sleep(Duration::from_millis(1)).await;
                longest.fetch_max(before.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        })
    };
    // Let the probe take its first tick before the work starts.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let started = Instant::now();
    let _ = work.await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    (took, Duration::from_micros(longest.load(Ordering::Relaxed)))
}
