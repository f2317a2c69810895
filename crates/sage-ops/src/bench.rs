//! `sage-db bench`: drives a store with concurrent clients and reports throughput and the
//! latency distribution. The hot paths of a messaging service are here: claiming a nonce,
//! reading and touching a session, creating sessions, reading a cached DID, and a mix shaped
//! like a message stream.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sage_store::{DidRecord, DidStore, KeyType, NewSession, NonceStore, SessionKey, SessionStore, Store};
use serde::Serialize;

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    NonceClaim,
    SessionGet,
    SessionTouch,
    SessionCreate,
    DidGet,
    /// Per message: claim its nonce, read its session, touch the session.
    Mixed,
    /// Per message: claim its nonce and touch its session, as two calls.
    ClaimTouch,
    /// Per message: `Store::accept`, the same work in one atomic call.
    Accept,
}

impl Workload {
    /// The workload's name, as the command line and the JSON report spell it.
    pub fn name(self) -> &'static str {
        match self {
            Workload::NonceClaim => "nonce-claim",
            Workload::SessionGet => "session-get",
            Workload::SessionTouch => "session-touch",
            Workload::SessionCreate => "session-create",
            Workload::DidGet => "did-get",
            Workload::Mixed => "mixed",
            Workload::ClaimTouch => "claim-touch",
            Workload::Accept => "accept",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub workload: Workload,
    pub clients: usize,
    /// Stop after this long, or after `operations`, whichever is given.
    pub duration: Option<Duration>,
    pub operations: Option<u64>,
    /// Sessions and DIDs created up front for the read workloads; for `nonce-claim`, when
    /// set, nonces are drawn from this many values (so some claims are replays).
    pub keys: Option<u64>,
    /// How long claimed nonces and created sessions live.
    pub ttl: Duration,
    /// Run the store's expiry cleanup this often during the run (keeps memory flat).
    pub cleanup_every: Option<Duration>,
    /// Threads of the async runtime the run happens on (reported, not chosen, here).
    pub threads: usize,
    /// Take a [`Sample`] of throughput and resident memory this often.
    pub sample_every: Option<Duration>,
    /// Where samples go as they are taken (they are also in the report).
    pub samples_to: Option<tokio::sync::mpsc::UnboundedSender<Sample>>,
}

/// Throughput and resident memory over one sampling interval of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the run started, at the end of the interval.
    pub seconds: f64,
    pub ops_per_second: f64,
    pub rss_bytes: Option<u64>,
}

/// A client's count of finished operations, on a cache line of its own: only that client
/// writes it, the sampler reads it.
#[derive(Default)]
#[repr(align(128))]
struct Progress(AtomicU64);

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub workload: Workload,
    pub backend: String,
    pub clients: usize,
    pub threads: usize,
    pub operations: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Nonce claims answered "replayed" (not errors).
    pub replayed: u64,
    pub seconds: f64,
    pub ops_per_second: f64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub rss_start_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
}

/// A log-linear latency histogram: 16 buckets per power of two, so percentiles are within
/// about 6 %, in a fixed 8 KiB however long the run.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    max: u64,
}

const SUB: u64 = 16;

impl Histogram {
    fn new() -> Histogram {
        Histogram { counts: vec![0; 64 * SUB as usize], max: 0 }
    }

    fn index(us: u64) -> usize {
        if us < SUB {
            return us as usize;
        }
        let power = 63 - us.leading_zeros() as u64;
        let shift = power - 4;
        let sub = (us >> shift) - SUB;
        ((power - 3) * SUB + sub) as usize
    }

    fn lower_bound(index: usize) -> u64 {
        let index = index as u64;
        if index < SUB {
            return index;
        }
        let power = index / SUB + 3;
        let sub = index % SUB;
        (SUB + sub) << (power - 4)
    }

    fn record(&mut self, us: u64) {
        let last = self.counts.len() - 1;
        self.counts[Histogram::index(us).min(last)] += 1;
        self.max = self.max.max(us);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max = self.max.max(other.max);
    }

    fn percentile(&self, p: f64) -> u64 {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::lower_bound(i).min(self.max);
            }
        }
        self.max
    }
}

/// A small, fast generator per client; the benchmark needs spread, not secrecy.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

/// Resident memory in bytes (the kernel reports KiB).
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    Some(kib.saturating_mul(1024))
}

const SESSION_PREFIX: &str = "bench-session-";
const DID_PREFIX: &str = "did:sage:bench:";

async fn prepare(store: &Store, options: &BenchOptions) -> Result<u64, Error> {
    let needs_sessions = matches!(
        options.workload,
        Workload::SessionGet | Workload::SessionTouch | Workload::Mixed | Workload::ClaimTouch | Workload::Accept
    );
    let needs_dids = options.workload == Workload::DidGet;
    let keys = options.keys.unwrap_or(1000).max(1);
    let expires = Utc::now() + chrono::Duration::days(1);
    if needs_sessions {
        for i in 0..keys {
            let session = NewSession {
                id: format!("{SESSION_PREFIX}{i}"),
                client_did: format!("{DID_PREFIX}client{}", i % 100),
                server_did: format!("{DID_PREFIX}server"),
                key: SessionKey::new(vec![7u8; 32]),
                expires_at: expires,
                metadata: None,
                max_messages: None,
                idle_timeout: None,
            };
            match store.sessions().create(&session).await {
                Ok(_) => {}
                Err(e) if e.kind() == sage_store::ErrorKind::AlreadyExists => {
                    let changes = sage_store::SessionUpdate { expires_at: Some(expires), ..Default::default() };
                    // An expired leftover from an earlier run is recreated.
                    if store.sessions().update(&session.id, &changes).await.is_err() {
                        let _ = store.sessions().delete(&session.id).await;
                        store
                            .sessions()
                            .create(&session)
                            .await
                            .map_err(|e| Error::invalid(format!("cannot prepare sessions: {e}")))?;
                    }
                }
                Err(e) => return Err(Error::invalid(format!("cannot prepare sessions: {e}"))),
            }
        }
    }
    if needs_dids {
        for i in 0..keys {
            let record = DidRecord::new(format!("{DID_PREFIX}{i}"), vec![1u8; 44], "0xbench", KeyType::Ed25519);
            store.dids().upsert(&record).await.map_err(|e| Error::invalid(format!("cannot prepare DIDs: {e}")))?;
        }
    }
    Ok(keys)
}

pub async fn run(store: Store, options: BenchOptions) -> Result<BenchReport, Error> {
    if options.duration.is_none() && options.operations.is_none() {
        return Err(Error::BenchUnbounded);
    }
    // The durations are checked once here, so that the clients' expiry and deadline
    // arithmetic below cannot leave the calendar or the clock.
    if options.ttl.is_zero() || [options.cleanup_every, options.sample_every].contains(&Some(Duration::ZERO)) {
        return Err(Error::invalid("ttl, cleanup_every and sample_every must be longer than zero"));
    }
    sage_conn::checked_after("ttl", Utc::now(), options.ttl).map_err(|e| Error::invalid(e.to_string()))?;
    let keys = prepare(&store, &options).await?;
    let rss_start = rss_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let run_id: u64 = rand::random::<u32>() as u64;
    let started = Instant::now();
    let cleaner = options.cleanup_every.map(|every| {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                let _ = store.nonces().delete_expired().await;
                let _ = store.sessions().delete_expired().await;
            }
        })
    });
    let progress: Arc<[Progress]> = (0..options.clients.max(1)).map(|_| Progress::default()).collect();
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = options.sample_every.map(|every| {
        let (stop, progress, to, samples) =
            (stop.clone(), progress.clone(), options.samples_to.clone(), samples.clone());
        tokio::spawn(async move {
            let (mut last_at, mut last_done) = (Instant::now(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                let done: u64 = progress.iter().map(|p| p.0.load(Ordering::Relaxed)).sum();
                let now = Instant::now();
                let sample = Sample {
                    seconds: now.duration_since(started).as_secs_f64(),
                    ops_per_second: (done - last_done) as f64 / now.duration_since(last_at).as_secs_f64(),
                    rss_bytes: rss_bytes(),
                };
                (last_at, last_done) = (now, done);
                if let Some(to) = &to {
                    let _ = to.send(sample.clone());
                }
                samples.lock().expect("samples lock").push(sample);
            }
        })
    });
    // Clients check the deadline themselves: on the memory backend an operation never has
    // to wait, so a timer task might not get a turn before the run ends.
    let deadline = match options.duration {
        Some(d) => Some(started.checked_add(d).ok_or_else(|| Error::invalid("duration is too long for this clock"))?),
        None => None,
    };
    let mut tasks = Vec::new();
    for client in 0..options.clients.max(1) {
        let (store, stop, issued, options) = (store.clone(), stop.clone(), issued.clone(), options.clone());
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::new();
            let (mut errors, mut replayed, mut first_error) = (0u64, 0u64, None::<String>);
            // Seeded by run as well as by client: a second run draws other nonces, instead of
            // replaying the first run's.
            let mut rng = XorShift((0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) * 0x1000_0001) ^ (run_id << 32)) | 1);
            let mut seq = 0u64;
            // In range: run() checked that now + ttl is a valid date.
            let ttl = chrono::TimeDelta::from_std(options.ttl).unwrap_or(chrono::TimeDelta::MAX);
            // One buffer for every nonce, and one clock reading between two operations: the
            // harness should cost the store's figures as little as it can.
            let mut nonce = String::with_capacity(64);
            let prefix = format!("bench-{run_id}-{client}-");
            let mut op_start = Instant::now();
            // The wall clock at a known instant, taken again every few hundred operations so
            // that expiries derived from it never drift from the system's time.
            let mut anchor = (Utc::now(), op_start);
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(limit) = options.operations {
                    if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                        break;
                    }
                }
                seq += 1;
                let outcome: Result<bool, String> = match options.workload {
                    Workload::NonceClaim | Workload::Mixed | Workload::ClaimTouch | Workload::Accept => {
                        nonce.clear();
                        let _ = match options.keys {
                            Some(space) if options.workload == Workload::NonceClaim => {
                                write!(nonce, "bench-{}", rng.next(space))
                            }
                            _ => {
                                nonce.push_str(&prefix);
                                write!(nonce, "{seq}")
                            }
                        };
                        // The expiry comes from the reading that started this operation.
                        let elapsed = chrono::Duration::from_std(op_start - anchor.1).unwrap_or_default();
                        let expires_at = elapsed.checked_add(&ttl).and_then(|d| anchor.0.checked_add_signed(d));
                        // The session of this message, for the workloads that have one.
                        let session = matches!(options.workload, Workload::ClaimTouch | Workload::Accept)
                            .then(|| format!("{SESSION_PREFIX}{}", rng.next(keys)));
                        let claimed = match (expires_at, &session) {
                            (Some(expires_at), Some(id)) if options.workload == Workload::Accept => {
                                match store.accept(id, &nonce, expires_at).await {
                                    Ok(_) => Ok(false),
                                    Err(e) if e.is_replayed() => Ok(true),
                                    Err(e) => Err(e.to_string()),
                                }
                            }
                            (Some(expires_at), session) => {
                                match store.nonces().claim(&nonce, session.as_deref(), expires_at).await {
                                    Ok(()) => Ok(false),
                                    Err(e) if e.is_replayed() => Ok(true),
                                    Err(e) => Err(e.to_string()),
                                }
                            }
                            (None, _) => Err("the nonce's expiry is outside the supported dates".to_string()),
                        };
                        let claimed = match (&session, claimed) {
                            (Some(id), Ok(false)) if options.workload == Workload::ClaimTouch => {
                                store.sessions().touch(id).await.map(|_| false).map_err(|e| e.to_string())
                            }
                            (_, claimed) => claimed,
                        };
                        if options.workload == Workload::Mixed && claimed.is_ok() {
                            let id = format!("{SESSION_PREFIX}{}", rng.next(keys));
                            match store.sessions().get(&id).await {
                                Ok(_) => store.sessions().touch(&id).await.map(|_| false).map_err(|e| e.to_string()),
                                Err(e) => Err(e.to_string()),
                            }
                        } else {
                            claimed
                        }
                    }
                    Workload::SessionGet => store
                        .sessions()
                        .get(&format!("{SESSION_PREFIX}{}", rng.next(keys)))
                        .await
                        .map(|_| false)
                        .map_err(|e| e.to_string()),
                    Workload::SessionTouch => store
                        .sessions()
                        .touch(&format!("{SESSION_PREFIX}{}", rng.next(keys)))
                        .await
                        .map(|_| false)
                        .map_err(|e| e.to_string()),
                    Workload::SessionCreate => match Utc::now().checked_add_signed(ttl) {
                        None => Err("the session's expiry is outside the supported dates".to_string()),
                        Some(expires_at) => {
                            let session = NewSession {
                                id: format!("bench-new-{run_id}-{client}-{seq}"),
                                client_did: format!("{DID_PREFIX}client{client}"),
                                server_did: format!("{DID_PREFIX}server"),
                                key: SessionKey::new(vec![9u8; 32]),
                                expires_at,
                                metadata: None,
                                max_messages: None,
                                idle_timeout: None,
                            };
                            store.sessions().create(&session).await.map(|_| false).map_err(|e| e.to_string())
                        }
                    },
                    Workload::DidGet => store
                        .dids()
                        .get(&format!("{DID_PREFIX}{}", rng.next(keys)))
                        .await
                        .map(|_| false)
                        .map_err(|e| e.to_string()),
                };
                let op_end = Instant::now();
                histogram.record(op_end.duration_since(op_start).as_micros() as u64);
                op_start = op_end;
                progress[client].0.store(seq, Ordering::Relaxed);
                if deadline.is_some_and(|d| op_end >= d) {
                    stop.store(true, Ordering::Relaxed);
                }
                if seq.is_multiple_of(256) {
                    // Let the cleaner and other tasks run even when no operation waits.
                    tokio::task::yield_now().await;
                    op_start = Instant::now();
                    anchor = (Utc::now(), op_start);
                }
                match outcome {
                    Ok(true) => replayed += 1,
                    Ok(false) => {}
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (histogram, errors, replayed, first_error)
        }));
    }
    let mut histogram = Histogram::new();
    let (mut errors, mut replayed, mut first_error) = (0, 0, None);
    for task in tasks {
        let (h, e, r, f) = task.await.map_err(|e| Error::invalid(format!("a benchmark client failed: {e}")))?;
        histogram.merge(&h);
        errors += e;
        replayed += r;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    if let Some(cleaner) = cleaner {
        cleaner.abort();
    }
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    let samples = std::mem::take(&mut *samples.lock().expect("samples lock"));
    let operations: u64 = histogram.counts.iter().sum();
    Ok(BenchReport {
        workload: options.workload,
        backend: store.backend_name().to_string(),
        clients: options.clients,
        threads: options.threads,
        operations,
        errors,
        first_error,
        replayed,
        seconds,
        ops_per_second: operations as f64 / seconds,
        p50_us: histogram.percentile(50.0),
        p95_us: histogram.percentile(95.0),
        p99_us: histogram.percentile(99.0),
        max_us: histogram.max,
        rss_start_bytes: rss_start,
        rss_end_bytes: rss_bytes(),
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_are_close() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(us);
        }
        let p50 = h.percentile(50.0) as f64;
        let p99 = h.percentile(99.0) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.07, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.07, "{p99}");
        assert_eq!(h.max, 10_000);
        for us in [0u64, 1, 15, 16, 17, 31, 32, 1000, 123_456] {
            assert!(Histogram::lower_bound(Histogram::index(us)) <= us, "{us}");
        }
    }
}
