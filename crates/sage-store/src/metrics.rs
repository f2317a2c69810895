//! Operation counts and latency histograms of a store, for `/metrics`. Lock-free: a few
//! atomic adds per operation, into counters of the calling thread's shard.
//! [`render_prometheus`] (or [`crate::Store::render_metrics`]) writes them in the
//! Prometheus text format, ready to serve, through the `prometheus-client` crate's encoder;
//! [`StoreCollector`] puts them into a service's own `prometheus-client` registry.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::error::ErrorKind;

/// The store operations that are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `SessionStore::create`.
    SessionCreate,
    /// `SessionStore::get`.
    SessionGet,
    /// `SessionStore::update`.
    SessionUpdate,
    /// `SessionStore::touch`.
    SessionTouch,
    /// `SessionStore::delete`.
    SessionDelete,
    /// `list_by_client` and `list_by_server`.
    SessionList,
    /// `SessionStore::count_active`.
    SessionCount,
    /// `SessionStore::delete_expired`.
    SessionDeleteExpired,
    /// `NonceStore::claim`.
    NonceClaim,
    /// `NonceStore::claim_many`.
    NonceClaimMany,
    /// `NonceStore::is_used`.
    NonceIsUsed,
    /// `NonceStore::count_active`.
    NonceCount,
    /// `NonceStore::delete_expired`.
    NonceDeleteExpired,
    /// `Store::accept`.
    Accept,
    /// `DidStore::create`.
    DidCreate,
    /// `DidStore::upsert`.
    DidUpsert,
    /// `DidStore::get` (and `is_revoked`).
    DidGet,
    /// `DidStore::update`.
    DidUpdate,
    /// `DidStore::delete`.
    DidDelete,
    /// `DidStore::list_by_owner`.
    DidList,
    /// `DidStore::revoke`.
    DidRevoke,
    /// A cleanup run, recorded with `Store::record_cleanup`.
    Cleanup,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 22] = [
        Operation::SessionCreate,
        Operation::SessionGet,
        Operation::SessionUpdate,
        Operation::SessionTouch,
        Operation::SessionDelete,
        Operation::SessionList,
        Operation::SessionCount,
        Operation::SessionDeleteExpired,
        Operation::NonceClaim,
        Operation::NonceClaimMany,
        Operation::NonceIsUsed,
        Operation::NonceCount,
        Operation::NonceDeleteExpired,
        Operation::Accept,
        Operation::DidCreate,
        Operation::DidUpsert,
        Operation::DidGet,
        Operation::DidUpdate,
        Operation::DidDelete,
        Operation::DidList,
        Operation::DidRevoke,
        Operation::Cleanup,
    ];

    /// The operation's label value in metrics: snake case, e.g. `nonce_claim`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::SessionCreate => "session_create",
            Operation::SessionGet => "session_get",
            Operation::SessionUpdate => "session_update",
            Operation::SessionTouch => "session_touch",
            Operation::SessionDelete => "session_delete",
            Operation::SessionList => "session_list",
            Operation::SessionCount => "session_count_active",
            Operation::SessionDeleteExpired => "session_delete_expired",
            Operation::NonceClaim => "nonce_claim",
            Operation::NonceClaimMany => "nonce_claim_many",
            Operation::NonceIsUsed => "nonce_is_used",
            Operation::NonceCount => "nonce_count_active",
            Operation::NonceDeleteExpired => "nonce_delete_expired",
            Operation::Accept => "accept",
            Operation::DidCreate => "did_create",
            Operation::DidUpsert => "did_upsert",
            Operation::DidGet => "did_get",
            Operation::DidUpdate => "did_update",
            Operation::DidDelete => "did_delete",
            Operation::DidList => "did_list",
            Operation::DidRevoke => "did_revoke",
            Operation::Cleanup => "cleanup",
        }
    }
}

/// Histogram bucket upper bounds, in seconds.
pub const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

/// Outcomes an operation is counted under: `ok`, or the error kind's
/// [`ErrorKind::as_str`] (a replayed nonce is an answer, not a failure, and is counted as
/// `replayed`). None contains a space, so each is a valid Prometheus label value as is.
pub const OUTCOMES: [&str; 10] = [
    "ok",
    "not_found",
    "already_exists",
    "expired",
    "replayed",
    "invalid_input",
    "unavailable",
    "configuration",
    "integrity",
    "internal",
];

#[derive(Default)]
struct Stats {
    outcomes: [AtomicU64; OUTCOMES.len()],
    buckets: [AtomicU64; 12],
    sum_micros: AtomicU64,
}

/// Every operation's counters, once per shard. Threads count into different shards, each
/// on its own cache lines, so counting never makes two cores fight over one line; a
/// snapshot adds the shards up.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    stats: [Stats; Operation::ALL.len()],
}

const SHARDS: usize = 16;

/// The shard of the calling thread: threads take slots in turn as they first count.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SLOT.with(|slot| *slot)
}

pub(crate) struct Metrics {
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics { shards: (0..SHARDS).map(|_| Shard::default()).collect() }
    }

    pub(crate) fn record(&self, op: Operation, elapsed: Duration, outcome: Result<(), ErrorKind>) {
        let stats = &self.shards[shard_index()].stats[op as usize];
        let index = match outcome {
            Ok(()) => 0,
            Err(kind) => OUTCOMES.iter().position(|o| *o == kind.as_str()).unwrap_or(OUTCOMES.len() - 1),
        };
        stats.outcomes[index].fetch_add(1, Ordering::Relaxed);
        // One add into the first bucket that holds the value; the snapshot sums them up
        // into Prometheus's cumulative form. Slower than every bound: counted in +Inf only.
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            stats.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        stats.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Vec<OperationMetrics> {
        let total = |op: Operation, counter: &dyn Fn(&Stats) -> &AtomicU64| -> u64 {
            self.shards.iter().map(|shard| counter(&shard.stats[op as usize]).load(Ordering::Relaxed)).sum()
        };
        Operation::ALL
            .iter()
            .map(|&op| {
                let outcomes =
                    OUTCOMES.iter().enumerate().map(|(i, name)| (*name, total(op, &|s| &s.outcomes[i]))).collect();
                let cumulative_buckets = BUCKETS
                    .iter()
                    .enumerate()
                    .scan(0u64, |running, (i, bound)| {
                        *running += total(op, &|s| &s.buckets[i]);
                        Some((*bound, *running))
                    })
                    .collect();
                OperationMetrics {
                    operation: op.name(),
                    outcomes,
                    cumulative_buckets,
                    sum_seconds: total(op, &|s| &s.sum_micros) as f64 / 1e6,
                }
            })
            .collect()
    }
}

/// One operation's counters at a moment.
#[derive(Debug, Clone, Serialize)]
pub struct OperationMetrics {
    /// The operation's name ([`Operation::name`]).
    pub operation: &'static str,
    /// Count per outcome.
    pub outcomes: Vec<(&'static str, u64)>,
    /// Prometheus-style cumulative buckets: (upper bound in seconds, count ≤ bound).
    pub cumulative_buckets: Vec<(f64, u64)>,
    /// The time all calls took together, in seconds.
    pub sum_seconds: f64,
}

impl OperationMetrics {
    /// Calls counted, whatever their outcome.
    pub fn count(&self) -> u64 {
        self.outcomes.iter().map(|(_, c)| c).sum()
    }
}

/// Connections of a pooled store.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max: usize,
    /// Connections open now, idle or in use.
    pub open: usize,
    /// Open connections that are not in use.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// A store's metrics at one moment, as a [`prometheus_client`] collector: register it in a
/// [`Registry`] beside a service's own metrics (as `sage-db serve` does), or let
/// [`render_prometheus`] encode it alone. Names start with `sage_db_`:
///
/// - `sage_db_store_operations_total{operation, outcome}`: a counter per operation and
///   outcome (`ok` or an [`ErrorKind::as_str`]); an operation's `ok` line is always there,
///   other outcomes once they occurred;
/// - `sage_db_store_operation_duration_seconds{operation}`: a latency histogram;
/// - `sage_db_pool_connections{state}`, `sage_db_pool_waiting`, `sage_db_pool_max_connections`
///   (pooled stores only).
///
/// Every label value is one of this crate's fixed names: none contains a space, a quote or
/// a backslash.
#[derive(Debug, Clone)]
pub struct StoreCollector {
    operations: Vec<OperationMetrics>,
    pool: Option<PoolStatus>,
}

impl StoreCollector {
    /// The collector of a snapshot ([`crate::Store::metrics`], [`crate::Store::pool_status`]).
    pub fn new(operations: Vec<OperationMetrics>, pool: Option<PoolStatus>) -> StoreCollector {
        StoreCollector { operations, pool }
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        if let Some(pool) = self.pool {
            let mut family = encoder.encode_descriptor(
                "sage_db_pool_connections",
                "Pool connections by state.",
                None,
                MetricType::Gauge,
            )?;
            for (state, n) in
                [("open", pool.open), ("idle", pool.idle), ("in_use", pool.open.saturating_sub(pool.idle))]
            {
                family.encode_family(&[("state", state)])?.encode_gauge(&(n as i64))?;
            }
            encoder
                .encode_descriptor(
                    "sage_db_pool_waiting",
                    "Callers waiting for a connection.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&(pool.waiting as i64))?;
            encoder
                .encode_descriptor("sage_db_pool_max_connections", "Pool size limit.", None, MetricType::Gauge)?
                .encode_gauge(&(pool.max as i64))?;
        }
        // Registered without `_total`: the encoder appends it to a counter's name.
        let mut family = encoder.encode_descriptor(
            "sage_db_store_operations",
            "Store operations by outcome.",
            None,
            MetricType::Counter,
        )?;
        for op in &self.operations {
            for (outcome, count) in &op.outcomes {
                if *count > 0 || *outcome == "ok" {
                    family
                        .encode_family(&[("operation", op.operation), ("outcome", outcome)])?
                        .encode_counter::<NoLabelSet, _, u64>(count, None)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "sage_db_store_operation_duration_seconds",
            "Store operation latency.",
            None,
            MetricType::Histogram,
        )?;
        for op in &self.operations {
            // The encoder adds the buckets up itself: it takes each bucket's own count.
            let mut below = 0;
            let buckets: Vec<(f64, u64)> = op
                .cumulative_buckets
                .iter()
                .map(|&(bound, cumulative)| {
                    let own = cumulative - below;
                    below = cumulative;
                    (bound, own)
                })
                .collect();
            family.encode_family(&[("operation", op.operation)])?.encode_histogram::<NoLabelSet>(
                op.sum_seconds,
                op.count(),
                &buckets,
                None,
            )?;
        }
        Ok(())
    }
}

/// Writes operation counts, latency histograms and (for pooled stores) the pool's state in
/// the Prometheus text exposition format (version 0.0.4; serve it as
/// [`CONTENT_TYPE`]). The names are [`StoreCollector`]'s.
pub fn render_prometheus(out: &mut String, operations: &[OperationMetrics], pool: Option<PoolStatus>) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StoreCollector::new(operations.to_vec(), pool)));
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(out, &registry);
}

/// The content type of the text [`render_prometheus`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_count_everything() {
        let m = Metrics::new();
        m.record(Operation::NonceClaim, Duration::from_micros(50), Ok(()));
        m.record(Operation::NonceClaim, Duration::from_millis(3), Err(ErrorKind::Replayed));
        m.record(Operation::NonceClaim, Duration::from_secs(10), Ok(()));
        let claim = m.snapshot().into_iter().find(|o| o.operation == "nonce_claim").unwrap();
        assert_eq!(claim.count(), 3);
        assert_eq!(claim.outcomes.iter().find(|(o, _)| *o == "replayed").unwrap().1, 1);
        let le = |bound: f64| claim.cumulative_buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!((le(0.0001), le(0.005), le(2.5)), (1, 2, 2), "the 10 s one is only in +Inf");
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let m = Metrics::new();
        std::thread::scope(|scope| {
            for t in 0..(SHARDS + 3) {
                let m = &m;
                scope.spawn(move || {
                    for _ in 0..1000 {
                        m.record(Operation::SessionGet, Duration::from_micros(200 + t as u64), Ok(()));
                    }
                });
            }
        });
        let get = m.snapshot().into_iter().find(|o| o.operation == "session_get").unwrap();
        let threads = (SHARDS + 3) as u64;
        assert_eq!(get.count(), threads * 1000);
        assert_eq!(get.cumulative_buckets.iter().find(|(b, _)| *b == 0.00025).unwrap().1, threads * 1000);
        let expected_sum: u64 = (0..threads).map(|t| (200 + t) * 1000).sum();
        assert!((get.sum_seconds - expected_sum as f64 / 1e6).abs() < 1e-6, "{}", get.sum_seconds);
    }

    #[test]
    fn prometheus_text_has_labels_without_spaces_and_a_line_per_operation() {
        let m = Metrics::new();
        m.record(Operation::NonceClaim, Duration::from_micros(50), Err(ErrorKind::NotFound));
        let mut out = String::new();
        render_prometheus(&mut out, &m.snapshot(), Some(PoolStatus { max: 4, open: 2, idle: 1, waiting: 0 }));
        assert!(
            out.contains("sage_db_store_operations_total{operation=\"nonce_claim\",outcome=\"not_found\"} 1"),
            "{out}"
        );
        for op in Operation::ALL {
            let ok = format!("sage_db_store_operations_total{{operation=\"{}\",outcome=\"ok\"}} ", op.name());
            assert!(out.contains(&ok), "{ok}");
        }
        assert!(out.contains("sage_db_pool_connections{state=\"in_use\"} 1"));
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let labels = line.split_once('{').map_or("", |(_, rest)| rest.split_once('}').map_or("", |(l, _)| l));
            for value in labels.split(',').filter_map(|pair| pair.split_once('=')).map(|(_, v)| v) {
                assert!(!value.contains(' '), "label value with a space: {line}");
            }
        }
    }
}
