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
    check_options(&options)?;
    let keys = prepare(&store, &options).await?;
    let rss_start = rss_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let cleaner = options.cleanup_every.map(|every| spawn_cleaner(store.clone(), stop.clone(), every));
    let progress: Arc<[Progress]> = (0..options.clients.max(1)).map(|_| Progress::default()).collect();
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sampler = options.sample_every.map(|every| {
        spawn_sampler(every, started, stop.clone(), progress.clone(), options.samples_to.clone(), samples.clone())
    });
    // Clients check the deadline themselves: on the memory backend an operation never has
    // to wait, so a timer task might not get a turn before the run ends.
    let deadline = match options.duration {
        Some(d) => Some(started.checked_add(d).ok_or_else(|| Error::invalid("duration is too long for this clock"))?),
        None => None,
    };
    let shared = Shared {
        stop: stop.clone(),
        issued: Arc::new(AtomicU64::new(0)),
        progress,
        deadline,
        run_id: rand::random::<u32>() as u64,
        keys,
    };
    let tasks: Vec<_> = (0..options.clients.max(1))
        .map(|client| tokio::spawn(client_loop(store.clone(), options.clone(), shared.clone(), client)))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.map_err(|e| Error::invalid(format!("a benchmark client failed: {e}")))?;
        total.merge(tally);
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
    let operations: u64 = total.histogram.counts.iter().sum();
    Ok(BenchReport {
        workload: options.workload,
        backend: store.backend_name().to_string(),
        clients: options.clients,
        threads: options.threads,
        operations,
        errors: total.errors,
        first_error: total.first_error,
        replayed: total.replayed,
        seconds,
        ops_per_second: operations as f64 / seconds,
        p50_us: total.histogram.percentile(50.0),
        p95_us: total.histogram.percentile(95.0),
        p99_us: total.histogram.percentile(99.0),
        max_us: total.histogram.max,
        rss_start_bytes: rss_start,
        rss_end_bytes: rss_bytes(),
        samples,
    })
}

/// The durations are checked once here, so that the clients' expiry and deadline
/// arithmetic cannot leave the calendar or the clock.
fn check_options(options: &BenchOptions) -> Result<(), Error> {
    if options.duration.is_none() && options.operations.is_none() {
        return Err(Error::BenchUnbounded);
    }
    if options.ttl.is_zero() || [options.cleanup_every, options.sample_every].contains(&Some(Duration::ZERO)) {
        return Err(Error::invalid("ttl, cleanup_every and sample_every must be longer than zero"));
    }
    sage_conn::checked_after("ttl", Utc::now(), options.ttl).map_err(|e| Error::invalid(e.to_string()))?;
    Ok(())
}

/// Deletes expired nonces and sessions every `every` until the run stops.
fn spawn_cleaner(store: Store, stop: Arc<AtomicBool>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(every).await;
            let _ = store.nonces().delete_expired().await;
            let _ = store.sessions().delete_expired().await;
        }
    })
}

/// Every `every`, the throughput since the last sample and the resident memory.
fn spawn_sampler(
    every: Duration,
    started: Instant,
    stop: Arc<AtomicBool>,
    progress: Arc<[Progress]>,
    to: Option<tokio::sync::mpsc::UnboundedSender<Sample>>,
    samples: Arc<std::sync::Mutex<Vec<Sample>>>,
) -> tokio::task::JoinHandle<()> {
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
}

/// What every client of a run shares.
#[derive(Clone)]
struct Shared {
    stop: Arc<AtomicBool>,
    /// Operations started, against `--operations`.
    issued: Arc<AtomicU64>,
    progress: Arc<[Progress]>,
    deadline: Option<Instant>,
    run_id: u64,
    /// The key space of sessions and DIDs `prepare` made.
    keys: u64,
}

/// What a client found: its latencies, errors and replays.
struct Tally {
    histogram: Histogram,
    errors: u64,
    replayed: u64,
    first_error: Option<String>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally { histogram: Histogram::new(), errors: 0, replayed: 0, first_error: None }
    }
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.histogram.merge(&other.histogram);
        self.errors += other.errors;
        self.replayed += other.replayed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// One client: operations back to back until the deadline, the operation count or a stop.
async fn client_loop(store: Store, options: BenchOptions, shared: Shared, client: usize) -> Tally {
    let mut tally = Tally::default();
    let mut state = ClientState::new(&options, &shared, client);
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(limit) = options.operations {
            if shared.issued.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        state.seq += 1;
        let outcome = state.operation(&store, &options).await;
        let op_end = Instant::now();
        tally.histogram.record(op_end.duration_since(state.op_start).as_micros() as u64);
        state.op_start = op_end;
        shared.progress[client].0.store(state.seq, Ordering::Relaxed);
        if shared.deadline.is_some_and(|d| op_end >= d) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        if state.seq.is_multiple_of(256) {
            // Let the cleaner and other tasks run even when no operation waits.
            tokio::task::yield_now().await;
            state.op_start = Instant::now();
            state.anchor = (Utc::now(), state.op_start);
        }
        match outcome {
            Ok(true) => tally.replayed += 1,
            Ok(false) => {}
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(e);
            }
        }
    }
    tally
}

/// A client's own state between operations.
struct ClientState {
    client: usize,
    run_id: u64,
    keys: u64,
    rng: XorShift,
    seq: u64,
    ttl: chrono::TimeDelta,
    /// One buffer for every nonce, and one clock reading between two operations: the
    /// harness should cost the store's figures as little as it can.
    nonce: String,
    prefix: String,
    op_start: Instant,
    /// The wall clock at a known instant, taken again every few hundred operations so
    /// that expiries derived from it never drift from the system's time.
    anchor: (chrono::DateTime<Utc>, Instant),
}

impl ClientState {
    fn new(options: &BenchOptions, shared: &Shared, client: usize) -> ClientState {
        let run_id = shared.run_id;
        let op_start = Instant::now();
        ClientState {
            client,
            run_id,
            keys: shared.keys,
            // Seeded by run as well as by client: a second run draws other nonces, instead
            // of replaying the first run's.
            rng: XorShift((0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) * 0x1000_0001) ^ (run_id << 32)) | 1),
            seq: 0,
            // In range: run() checked that now + ttl is a valid date.
            ttl: chrono::TimeDelta::from_std(options.ttl).unwrap_or(chrono::TimeDelta::MAX),
            nonce: String::with_capacity(64),
            prefix: format!("bench-{run_id}-{client}-"),
            op_start,
            anchor: (Utc::now(), op_start),
        }
    }

    /// One operation of the workload: `Ok(true)` for a replayed nonce.
    async fn operation(&mut self, store: &Store, options: &BenchOptions) -> Result<bool, String> {
        let keys = self.keys;
        match options.workload {
            Workload::NonceClaim | Workload::Mixed | Workload::ClaimTouch | Workload::Accept => {
                self.message(store, options).await
            }
            Workload::SessionGet => store
                .sessions()
                .get(&format!("{SESSION_PREFIX}{}", self.rng.next(keys)))
                .await
                .map(|_| false)
                .map_err(|e| e.to_string()),
            Workload::SessionTouch => store
                .sessions()
                .touch(&format!("{SESSION_PREFIX}{}", self.rng.next(keys)))
                .await
                .map(|_| false)
                .map_err(|e| e.to_string()),
            Workload::SessionCreate => match Utc::now().checked_add_signed(self.ttl) {
                None => Err("the session's expiry is outside the supported dates".to_string()),
                Some(expires_at) => {
                    let session = NewSession {
                        id: format!("bench-new-{}-{}-{}", self.run_id, self.client, self.seq),
                        client_did: format!("{DID_PREFIX}client{}", self.client),
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
                .get(&format!("{DID_PREFIX}{}", self.rng.next(keys)))
                .await
                .map(|_| false)
                .map_err(|e| e.to_string()),
        }
    }

    /// A message's work: claim its nonce (with `accept`, or alone), then touch or read its
    /// session as the workload says.
    async fn message(&mut self, store: &Store, options: &BenchOptions) -> Result<bool, String> {
        let keys = self.keys;
        self.nonce.clear();
        let _ = match options.keys {
            Some(space) if options.workload == Workload::NonceClaim => {
                write!(self.nonce, "bench-{}", self.rng.next(space))
            }
            _ => {
                self.nonce.push_str(&self.prefix);
                write!(self.nonce, "{}", self.seq)
            }
        };
        // The expiry comes from the reading that started this operation.
        let elapsed = chrono::Duration::from_std(self.op_start - self.anchor.1).unwrap_or_default();
        let expires_at = elapsed.checked_add(&self.ttl).and_then(|d| self.anchor.0.checked_add_signed(d));
        // The session of this message, for the workloads that have one.
        let session = matches!(options.workload, Workload::ClaimTouch | Workload::Accept)
            .then(|| format!("{SESSION_PREFIX}{}", self.rng.next(keys)));
        let nonce = &self.nonce;
        let claimed = match (expires_at, &session) {
            (Some(expires_at), Some(id)) if options.workload == Workload::Accept => {
                match store.accept(id, nonce, expires_at).await {
                    Ok(_) => Ok(false),
                    Err(e) if e.is_replayed() => Ok(true),
                    Err(e) => Err(e.to_string()),
                }
            }
            (Some(expires_at), session) => match store.nonces().claim(nonce, session.as_deref(), expires_at).await {
                Ok(()) => Ok(false),
                Err(e) if e.is_replayed() => Ok(true),
                Err(e) => Err(e.to_string()),
            },
            (None, _) => Err("the nonce's expiry is outside the supported dates".to_string()),
        };
        let claimed = match (&session, claimed) {
            (Some(id), Ok(false)) if options.workload == Workload::ClaimTouch => {
                store.sessions().touch(id).await.map(|_| false).map_err(|e| e.to_string())
            }
            (_, claimed) => claimed,
        };
        if options.workload == Workload::Mixed && claimed.is_ok() {
            let id = format!("{SESSION_PREFIX}{}", self.rng.next(keys));
            match store.sessions().get(&id).await {
                Ok(_) => store.sessions().touch(&id).await.map(|_| false).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        } else {
            claimed
        }
    }
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
