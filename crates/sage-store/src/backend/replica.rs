//! Reads from a streaming standby, used only while its replay lag is known to be under the
//! operator's bound and falling back to the primary otherwise. The bound holds strictly: a
//! standby's lag grows at most as fast as the clock, so a lag measured at `t0` plus the time
//! since `t0` bounds the lag now; once that sum reaches the bound, reads go to the primary
//! until a new measurement shows the standby has caught up.

#[cfg(feature = "postgres")]
use std::sync::Mutex;
use std::time::Duration;
#[cfg(feature = "postgres")]
use std::time::Instant;

#[cfg(feature = "postgres")]
use sage_conn::deadpool_postgres::Pool;
use sage_conn::PgSettings;
#[cfg(feature = "postgres")]
use tokio_postgres::Row;

#[cfg(feature = "postgres")]
use super::statements::{Params, Statements};
#[cfg(feature = "postgres")]
use crate::error::{ErrorKind, Result, StoreError};

/// Where reads that may be served by a standby go, and on what terms.
#[derive(Debug, Clone)]
pub struct ReadReplica {
    /// The standby (or a URL with `target_session_attrs=read-only` that finds one).
    pub settings: PgSettings,
    /// The most replay lag a read served by the standby may see. No default: how stale a
    /// listing may be is the operator's decision.
    pub max_lag: Duration,
    /// Whether session and DID lookups (what a service checks before it accepts a message:
    /// that a session is live, that a DID is not revoked) go to the standby too. Off, they
    /// decide on the primary, where a revocation or expiry is never missed; listings and
    /// counts of sessions and DIDs go to the standby either way.
    pub authorising_reads: bool,
}

#[cfg(feature = "postgres")]
/// How often a lagging or unreachable standby is measured again, at most.
const REMEASURE: Duration = Duration::from_millis(250);

#[cfg(feature = "postgres")]
pub(crate) struct Replica {
    pool: Pool,
    statements: Statements,
    max_lag: Duration,
    pub(crate) authorising_reads: bool,
    /// When the lag was last measured, and what it was (`None`: not usable then).
    measured: Mutex<Option<(Instant, Option<Duration>)>>,
}

#[cfg(feature = "postgres")]
impl Replica {
    pub(crate) async fn open(options: &ReadReplica) -> Result<Replica> {
        if options.max_lag.is_zero() {
            return Err(StoreError::new(ErrorKind::Configuration, "the standby's max_lag must be longer than zero"));
        }
        let settings = sage_conn::decide_pooler(&options.settings).await?;
        let pool = sage_conn::open_pool(&settings).await?;
        Ok(Replica {
            statements: Statements::new(&settings),
            pool,
            max_lag: options.max_lag,
            authorising_reads: options.authorising_reads,
            measured: Mutex::default(),
        })
    }

    /// Whether a read may go to the standby now.
    pub(crate) async fn usable(&self) -> bool {
        let now = Instant::now();
        let last = self.measured.lock().ok().and_then(|m| *m);
        if let Some((at, lag)) = last {
            let since = now.duration_since(at);
            match lag {
                Some(lag) if lag + since < self.max_lag => return true,
                _ if since < REMEASURE => return false,
                _ => {}
            }
        }
        let lag = self.measure().await;
        if let Ok(mut m) = self.measured.lock() {
            *m = Some((now, lag));
        }
        lag.is_some_and(|lag| lag < self.max_lag)
    }

    /// The standby's replay lag, or `None` when it is not a streaming standby right now (a
    /// standby cut off from its primary replays nothing new and would look current). The
    /// receiver's state is shown to roles with `pg_read_all_stats`; to others a running
    /// receiver process counts as streaming.
    async fn measure(&self) -> Option<Duration> {
        const SQL: &str = "SELECT pg_is_in_recovery() \
               AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL AND coalesce(status, 'streaming') = 'streaming'), \
             CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
                  ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8";
        let attempt = async {
            let client = self.pool.get().await.ok()?;
            let rows = self.statements.query(&client, "cannot measure the standby's lag", SQL, &[]).await.ok()?;
            let row = rows.first()?;
            let streaming: Option<bool> = row.try_get(0).ok()?;
            let seconds: Option<f64> = row.try_get(1).ok()?;
            match (streaming, seconds) {
                (Some(true), Some(s)) if s.is_finite() => Some(Duration::from_secs_f64(s.max(0.0))),
                _ => None,
            }
        };
        let lag = tokio::time::timeout(Duration::from_secs(1), attempt).await.ok().flatten();
        tracing::debug!(lag_ms = lag.map(|l| l.as_millis() as u64), "standby lag measured");
        lag
    }

    pub(crate) async fn query(&self, what: &str, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let client =
            self.pool.get().await.map_err(|e| StoreError::new(ErrorKind::Unavailable, format!("{what}: {e}")))?;
        self.statements.query(&client, what, sql, params).await
    }

    /// After a failed read the standby is measured again before it serves another.
    pub(crate) fn forget(&self) {
        if let Ok(mut m) = self.measured.lock() {
            *m = Some((Instant::now(), None));
        }
    }

    pub(crate) fn close(&self) {
        self.pool.close();
    }
}
