//! `serve`: health, Prometheus metrics and a status page for a store, plus background
//! cleanup of expired sessions and nonces that never overlaps itself.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sage_conn::{SqliteLocation, Target};
use sage_store::metrics::StoreCollector;
use sage_store::{NonceStore, SessionStore, Store};
use serde::Serialize;

use crate::Error;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How often expired sessions and nonces are deleted; `None` turns cleanup off.
    pub cleanup_every: Option<Duration>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupStatus {
    pub runs: u64,
    pub sessions_removed: u64,
    pub nonces_removed: u64,
    pub last_run: Option<DateTime<Utc>>,
    pub last_removed: (u64, u64),
    pub last_error: Option<String>,
}

/// What the endpoints share.
pub struct AppState {
    store: Store,
    target: Target,
    started: Instant,
    cleanup: Mutex<CleanupStatus>,
    errors: Mutex<VecDeque<(DateTime<Utc>, String)>>,
    schema: Mutex<Option<(Instant, Result<(), String>)>>,
    /// The last counts of live sessions and nonces and when they were taken; a lock held
    /// while counting, so that scrapes at the same moment share one count.
    active: tokio::sync::Mutex<Option<(Instant, ActiveCounts)>>,
}

/// How long counts of live sessions and nonces are reused. Counting reads every live row
/// (two `count(*)` on SQL databases), which a scrape every few seconds, or several
/// Prometheus servers, would repeat for nothing: the counts are taken at most this often.
pub const ACTIVE_COUNTS_MAX_AGE: Duration = Duration::from_secs(5);
/// How long a count of live sessions or nonces may take before a scrape reports it missing.
pub const COUNT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a missing count is kept before it is tried again.
pub const FAILED_COUNT_MAX_AGE: Duration = Duration::from_secs(1);

/// Live sessions and nonces; `None` when counting failed.
#[derive(Debug, Clone, Copy, Default)]
struct ActiveCounts {
    sessions: Option<u64>,
    nonces: Option<u64>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("target", &self.target.dialect_name()).finish()
    }
}

impl AppState {
    pub fn new(store: Store, target: Target) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            target,
            started: Instant::now(),
            cleanup: Mutex::default(),
            errors: Mutex::default(),
            schema: Mutex::default(),
            active: tokio::sync::Mutex::default(),
        })
    }

    fn note_error(&self, message: String) {
        tracing::warn!("{message}");
        if let Ok(mut errors) = self.errors.lock() {
            errors.push_back((Utc::now(), message));
            while errors.len() > 10 {
                errors.pop_front();
            }
        }
    }

    /// Live sessions and nonces, counted again only when the last counts are older than
    /// [`ACTIVE_COUNTS_MAX_AGE`]. Scrapes that arrive meanwhile wait for one count instead
    /// of starting their own. Each count has [`COUNT_TIMEOUT`] to answer; a failed or
    /// unanswered one is reported as missing and kept for [`FAILED_COUNT_MAX_AGE`] only, so
    /// a slow database is not asked again by every waiting scrape in turn.
    async fn active_counts(&self) -> ActiveCounts {
        let mut last = self.active.lock().await;
        if let Some((at, counts)) = *last {
            let complete = counts.sessions.is_some() && counts.nonces.is_some();
            if at.elapsed() < if complete { ACTIVE_COUNTS_MAX_AGE } else { FAILED_COUNT_MAX_AGE } {
                return counts;
            }
        }
        let counts = ActiveCounts {
            sessions: within_timeout(self.store.sessions().count_active()).await,
            nonces: within_timeout(self.store.nonces().count_active()).await,
        };
        *last = Some((Instant::now(), counts));
        counts
    }

    /// Reachable, at the expected version, and matching the expected schema. The schema
    /// check is repeated at most once a minute; reachability on every call.
    async fn db_health(&self) -> Result<(), String> {
        match tokio::time::timeout(Duration::from_secs(3), self.store.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("database unreachable: {e}")),
            Err(_) => return Err("database unreachable: no answer within 3s".into()),
        }
        if let Some((at, result)) = self.schema.lock().ok().and_then(|s| s.clone()) {
            if at.elapsed() < Duration::from_secs(60) {
                return result;
            }
        }
        let result = self.check_schema().await;
        if let Ok(mut cache) = self.schema.lock() {
            *cache = Some((Instant::now(), result.clone()));
        }
        result
    }

    async fn check_schema(&self) -> Result<(), String> {
        let dialect = match &self.target {
            Target::Postgres(_) => sage_migrate::Dialect::Postgres,
            Target::Sqlite(SqliteLocation::File(_)) => sage_migrate::Dialect::Sqlite,
            _ => return Ok(()),
        };
        let mut migrator =
            sage_migrate::Migrator::connect(&self.target, sage_store::migrations(dialect), Default::default())
                .await
                .map_err(|e| format!("cannot read the migration history: {e}"))?;
        let status = migrator.status().await.map_err(|e| format!("cannot read the migration history: {e}"))?;
        if status.pending > 0 {
            return Err(format!(
                "schema at version {} with {} migration(s) pending",
                status.version.unwrap_or(0),
                status.pending
            ));
        }
        let Some(snapshot) = sage_store::snapshot(dialect) else { return Ok(()) };
        let expected = sage_schema::parse_snapshot(snapshot).map_err(|e| e.to_string())?;
        let live = sage_schema::live(&self.target).await.map_err(|e| format!("cannot read the schema: {e}"))?;
        let findings = sage_schema::validate(&expected, &live, Default::default());
        match findings.iter().find(|f| f.severity == sage_schema::Severity::Error) {
            Some(first) => Err(format!("schema drift: {first}")),
            None => Ok(()),
        }
    }

    /// One cleanup pass.
    pub async fn run_cleanup(&self) {
        let started = Instant::now();
        let result = async {
            let sessions = self.store.sessions().delete_expired().await?;
            let nonces = self.store.nonces().delete_expired().await?;
            Ok::<_, sage_store::StoreError>((sessions, nonces))
        }
        .await;
        self.store.record_cleanup(started.elapsed(), result.is_ok());
        let mut status = self.cleanup.lock().expect("cleanup status lock");
        status.runs += 1;
        status.last_run = Some(Utc::now());
        match result {
            Ok((sessions, nonces)) => {
                status.sessions_removed += sessions;
                status.nonces_removed += nonces;
                status.last_removed = (sessions, nonces);
                status.last_error = None;
                tracing::info!(
                    sessions,
                    nonces,
                    ms = started.elapsed().as_millis() as u64,
                    "cleanup removed expired rows"
                );
            }
            Err(e) => {
                status.last_error = Some(e.to_string());
                drop(status);
                self.note_error(format!("cleanup failed: {e}"));
            }
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/health", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/health/db", get(health_db))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health_db(State(state): State<Arc<AppState>>) -> Response {
    match state.db_health().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reason) => {
            state.note_error(reason.clone());
            (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response()
        }
    }
}

/// The database's size and, on PostgreSQL, where its server stands in replication.
async fn database_facts(target: &Target) -> (Option<i64>, Option<crate::topology::Topology>) {
    match target {
        Target::Postgres(pg) => {
            let Some(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), sage_conn::connect(pg)).await.ok()
            else {
                return (None, None);
            };
            // One read-only transaction, so that a pooler in transaction mode keeps these
            // statements in one server session.
            if client.batch_execute("BEGIN READ ONLY").await.is_err() {
                return (None, None);
            }
            let size = client
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .ok()
                .map(|r| r.get::<_, i64>(0));
            let topology = crate::topology::inspect(&client).await.ok();
            let _ = client.batch_execute("COMMIT").await;
            (size, topology)
        }
        // The server's runtime answers health checks meanwhile: the stat waits off it.
        Target::Sqlite(SqliteLocation::File(path)) => {
            (tokio::fs::metadata(path).await.ok().map(|m| m.len() as i64), None)
        }
        _ => (None, None),
    }
}

/// The figures of one scrape, read before encoding: [`Collector::encode`] cannot wait on
/// the database.
#[derive(Debug)]
struct ServeFigures {
    backend: &'static str,
    uptime_seconds: f64,
    up: bool,
    active: ActiveCounts,
    size: Option<i64>,
    topology: Option<crate::topology::Topology>,
    cleanup: CleanupStatus,
}

fn gauge<'a>(
    encoder: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)
}

impl Collector for ServeFigures {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        gauge(&mut encoder, "sage_db_build_info", "Build information.")?
            .encode_family(&[("version", env!("CARGO_PKG_VERSION")), ("backend", self.backend)])?
            .encode_gauge(&1i64)?;
        // Tenths of a second, as before: the figure is for people reading the page.
        let uptime = (self.uptime_seconds * 10.0).floor() / 10.0;
        gauge(&mut encoder, "sage_db_uptime_seconds", "Seconds since the server started.")?.encode_gauge(&uptime)?;
        gauge(&mut encoder, "sage_db_database_up", "Whether the database answered a ping.")?
            .encode_gauge(&i64::from(self.up))?;
        if let Some(n) = self.active.sessions {
            gauge(&mut encoder, "sage_db_active_sessions", "Sessions not yet expired.")?.encode_gauge(&n)?;
        }
        if let Some(n) = self.active.nonces {
            gauge(&mut encoder, "sage_db_active_nonces", "Nonces used and not yet expired.")?.encode_gauge(&n)?;
        }
        if let Some(bytes) = self.size {
            gauge(&mut encoder, "sage_db_database_size_bytes", "Size of the database.")?.encode_gauge(&bytes)?;
        }
        if let Some(topology) = &self.topology {
            encode_topology(&mut encoder, topology)?;
        }
        // Counters are registered without `_total`: the encoder appends it.
        encoder
            .encode_descriptor("sage_db_cleanup_runs", "Background cleanup runs.", None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&self.cleanup.runs, None)?;
        let mut removed = encoder.encode_descriptor(
            "sage_db_cleanup_rows_removed",
            "Rows removed by background cleanup.",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in [("sessions", self.cleanup.sessions_removed), ("nonces", self.cleanup.nonces_removed)] {
            removed.encode_family(&[("kind", kind)])?.encode_counter::<NoLabelSet, _, u64>(&n, None)?;
        }
        Ok(())
    }
}

/// `sage_db_replication_*`: the server's role, its standbys, whether claims wait for one,
/// and how far each standby's replay is behind.
fn encode_topology(encoder: &mut DescriptorEncoder<'_>, t: &crate::topology::Topology) -> std::fmt::Result {
    let mut family = gauge(encoder, "sage_db_replication_role", "The server's role (1 for the role it has).")?;
    for role in ["primary", "standby"] {
        family.encode_family(&[("role", role)])?.encode_gauge(&i64::from(t.role == role))?;
    }
    let synchronous = t.standbys.iter().filter(|s| matches!(s.sync_state.as_str(), "sync" | "quorum")).count();
    gauge(encoder, "sage_db_replication_standbys", "Standbys connected to this primary.")?
        .encode_gauge(&(t.standbys.len() as i64))?;
    gauge(
        encoder,
        "sage_db_replication_synchronous_standbys",
        "Connected standbys whose confirmation commits wait for (sync or quorum).",
    )?
    .encode_gauge(&(synchronous as i64))?;
    let waits = synchronous > 0 && !matches!(t.synchronous_commit.as_str(), "off" | "local");
    gauge(
        encoder,
        "sage_db_replication_synchronous",
        "Whether a nonce claim is acknowledged only once a standby has it (1), or may be lost in a failover (0).",
    )?
    .encode_gauge(&i64::from(waits))?;
    // Standby names come from the server: the encoder escapes label values.
    let mut family = gauge(
        encoder,
        "sage_db_replication_replay_lag_seconds",
        "How far a standby's replay is behind the primary (0 when it has replayed everything).",
    )?;
    for standby in &t.standbys {
        // PostgreSQL stops reporting a lag once a standby has caught up and nothing is written.
        let lag = match (standby.replay_lag_seconds, standby.replay_lag_bytes) {
            (Some(seconds), _) => Some(seconds),
            (None, Some(0)) => Some(0.0),
            _ => None,
        };
        if let Some(lag) = lag {
            family
                .encode_family(&[("standby", standby.name.as_str()), ("sync_state", standby.sync_state.as_str())])?
                .encode_gauge(&lag)?;
        }
    }
    let mut family = gauge(encoder, "sage_db_replication_replay_lag_bytes", "WAL a standby has not replayed yet.")?;
    for standby in &t.standbys {
        if let Some(bytes) = standby.replay_lag_bytes {
            family
                .encode_family(&[("standby", standby.name.as_str()), ("sync_state", standby.sync_state.as_str())])?
                .encode_gauge(&bytes)?;
        }
    }
    if let Some(delay) = t.standby_replay_delay_seconds {
        gauge(
            encoder,
            "sage_db_replication_replay_delay_seconds",
            "On a standby: seconds since the last replayed transaction committed on the primary.",
        )?
        .encode_gauge(&delay)?;
    }
    Ok(())
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let up = tokio::time::timeout(Duration::from_secs(3), state.store.ping()).await.is_ok_and(|r| r.is_ok());
    let (active, (size, topology)) =
        if up { (state.active_counts().await, database_facts(&state.target).await) } else { Default::default() };
    let figures = ServeFigures {
        backend: state.store.backend_name(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        up,
        active,
        size,
        topology,
        cleanup: state.cleanup.lock().map(|c| c.clone()).unwrap_or_default(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(figures));
    // Operations, latencies and the pool: the same metrics any service on sage-store serves.
    registry.register_collector(Box::new(StoreCollector::new(state.store.metrics(), state.store.pool_status())));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], out).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn status_page(State(state): State<Arc<AppState>>) -> Html<String> {
    let health = state.db_health().await;
    let ActiveCounts { sessions, nonces } =
        if health.is_ok() { state.active_counts().await } else { ActiveCounts::default() };
    let cleanup = state.cleanup.lock().map(|c| c.clone()).unwrap_or_default();
    let errors: Vec<(DateTime<Utc>, String)> =
        state.errors.lock().map(|e| e.iter().rev().cloned().collect()).unwrap_or_default();
    let (color, verdict) = match &health {
        Ok(()) => ("#1a7f37", "healthy".to_string()),
        Err(reason) => ("#cf222e", format!("unhealthy: {reason}")),
    };
    let figure = |v: Option<u64>| v.map_or("–".to_string(), |n| n.to_string());
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sage-db</title><meta http-equiv=\"refresh\" content=\"10\">\
         <style>body{{font:15px system-ui,sans-serif;margin:2em;max-width:50em}}td{{padding:.2em 1em .2em 0}}.state{{color:{color};font-weight:bold}}</style></head><body>\
         <h1>sage-db</h1><p class=\"state\">{}</p><table>\
         <tr><td>database</td><td>{}</td></tr><tr><td>backend</td><td>{}</td></tr><tr><td>up for</td><td>{}s</td></tr>\
         <tr><td>active sessions</td><td>{}</td></tr><tr><td>active nonces</td><td>{}</td></tr>\
         <tr><td>last cleanup</td><td>{}</td></tr><tr><td>cleanup runs</td><td>{} (removed {} sessions, {} nonces)</td></tr></table>",
        escape(&verdict),
        escape(&target_label(&state.target)),
        state.store.backend_name(),
        state.started.elapsed().as_secs(),
        figure(sessions),
        figure(nonces),
        cleanup.last_run.map_or("not yet".into(), |t| format!("{} (removed {} sessions, {} nonces)", t.to_rfc3339(), cleanup.last_removed.0, cleanup.last_removed.1)),
        cleanup.runs,
        cleanup.sessions_removed,
        cleanup.nonces_removed,
    );
    html.push_str("<h2>Recent errors</h2>");
    if errors.is_empty() {
        html.push_str("<p>none</p>");
    } else {
        html.push_str("<ul>");
        for (at, message) in errors {
            let _ = write!(html, "<li>{} — {}</li>", at.to_rfc3339(), escape(&message));
        }
        html.push_str("</ul>");
    }
    html.push_str("</body></html>");
    Html(html)
}

fn target_label(target: &Target) -> String {
    match target {
        Target::Postgres(pg) => pg.redacted_url(),
        Target::Sqlite(SqliteLocation::File(p)) => format!("sqlite://{}", p.display()),
        Target::Sqlite(SqliteLocation::InMemory) => "sqlite::memory:".into(),
        Target::Memory => "memory://".into(),
    }
}

/// Takes the address, so that a caller can announce it only once it is really listening
/// (and fail with the reason when it cannot, e.g. the address is in use).
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| Error::invalid(format!("cannot listen on {address}: {e}")))
}

/// Serves on `listener` (from [`bind`]) until `shutdown` resolves: stops accepting, lets
/// requests in flight finish, stops the cleanup loop after its current pass, and closes the
/// store.
pub async fn serve(
    store: Store,
    target: Target,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    if options.cleanup_every.is_some_and(|every| every.is_zero()) {
        // A zero period would panic the cleanup task while /health kept answering.
        return Err(Error::invalid("cleanup_every must be longer than zero (None turns cleanup off)"));
    }
    let address =
        listener.local_addr().map_err(|e| Error::invalid(format!("cannot read the listening address: {e}")))?;
    let state = AppState::new(store.clone(), target);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let cleaner = options.cleanup_every.map(|every| {
        let state = state.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            // One pass at a time: a slow pass delays the next instead of overlapping it.
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => state.run_cleanup().await,
                    _ = stop_rx.changed() => return,
                }
            }
        })
    });
    tracing::info!(%address, "serving");
    let result = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await;
    let _ = stop_tx.send(true);
    if let Some(cleaner) = cleaner {
        let _ = cleaner.await;
    }
    store.close().await;
    result.map_err(|e| Error::invalid(format!("server error: {e}")))
}

/// A count's answer, or `None` when it failed or took longer than [`COUNT_TIMEOUT`].
async fn within_timeout<T, E>(count: impl std::future::Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(COUNT_TIMEOUT, count).await.ok().and_then(Result::ok)
}
