//! `Store`: the contract implemented once over any backend. Input is validated here, key
//! material is sealed here, and time comes from here, so every backend behaves the same.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::backend::replica::ReadReplica;
#[cfg(feature = "sqlite")]
use crate::backend::sqlite::SqliteBackend;
use crate::backend::{memory::MemoryBackend, Accepted, Backend, Conditional, Party, SessionRow};
#[cfg(feature = "postgres")]
use crate::backend::{postgres::PgBackend, runtime::OnOwnRuntime};
use crate::clock::{Clock, SystemClock};
use crate::contract::{DidStore, NonceStore, SessionStore};
use crate::error::{ErrorKind, Reason, Result, StoreError};
use crate::keys::{sealed_key_id, KeyRing, KeySource};
use crate::metrics::{Metrics, Operation, OperationMetrics, PoolStatus};
use crate::model::{micros, Claim, DidRecord, NewSession, NonceClaim, Page, Session, SessionKey, SessionUpdate};
use crate::validate;

/// Rows deleted per statement by `delete_expired`, so cleanup never holds long locks.
pub const CLEANUP_BATCH: u32 = 1000;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Where the session-key encryption keys come from.
    pub keys: KeySource,
    /// Apply SAGE's pending migrations before opening. Off unless asked for: production
    /// databases are migrated deliberately, with `sage-db migrate up`.
    pub migrate: bool,
    /// The clock that decides expiry.
    pub clock: Arc<dyn Clock>,
    /// PostgreSQL only: a streaming standby for session and DID reads, used while its
    /// replay lag is under a bound (see [`ReadReplica`]). `None`: every read goes to the
    /// server the URL selects.
    pub read_replica: Option<ReadReplica>,
}

impl OpenOptions {
    /// Keys from `keys`, no migration, the system clock.
    pub fn new(keys: KeySource) -> OpenOptions {
        OpenOptions { keys, migrate: false, clock: Arc::new(SystemClock), read_replica: None }
    }

    /// The zero-configuration choice for `target`: keys from `SAGE_SESSION_KEY` or
    /// `SAGE_SESSION_KEY_FILE` when set; otherwise a key file created beside a SQLite
    /// database, a throwaway key for memory, and nothing (so opening refuses) for
    /// PostgreSQL. SQLite and memory stores migrate themselves.
    pub fn defaults_for(target: &sage_conn::Target, env: &sage_conn::Environment) -> OpenOptions {
        use sage_conn::{SqliteLocation, Target};
        let (fallback, migrate) = match target {
            Target::Sqlite(SqliteLocation::File(path)) => {
                (KeySource::FileCreatedOnFirstUse(KeySource::default_file_for(path)), true)
            }
            Target::Sqlite(SqliteLocation::InMemory) | Target::Memory => (KeySource::Ephemeral, true),
            Target::Postgres(_) => (KeySource::None, false),
        };
        OpenOptions { migrate, ..OpenOptions::new(KeySource::from_environment(env, fallback)) }
    }
}

struct Inner {
    backend: Box<dyn Backend>,
    keys: KeyRing,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend.name()).field("keys", &self.keys).finish()
    }
}

/// Sessions, nonces and DIDs on one database. Cheap to clone; clones share the pool.
#[derive(Debug, Clone)]
pub struct Store {
    sessions: Sessions,
    nonces: Nonces,
    dids: Dids,
    notices: Vec<String>,
}

/// The session half of a [`Store`].
#[derive(Debug, Clone)]
pub struct Sessions(Arc<Inner>);
/// The nonce half of a [`Store`].
#[derive(Debug, Clone)]
pub struct Nonces(Arc<Inner>);
/// The DID half of a [`Store`].
#[derive(Debug, Clone)]
pub struct Dids(Arc<Inner>);

/// What `rotate_keys` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RotationReport {
    /// The id of the key everything is now sealed with.
    pub key_id: String,
    /// Sessions looked at.
    pub examined: u64,
    /// Sessions already sealed with the current key.
    pub already_current: u64,
    /// Sessions re-sealed with the current key.
    pub resealed: u64,
    /// Rows that held key material in plaintext (an older SAGE database) and are now sealed.
    pub encrypted_plaintext: u64,
    /// Rows that changed while being rotated; run rotation again to cover them.
    pub changed_meanwhile: u64,
    /// Sessions whose key material failed authentication; left untouched.
    pub failed: Vec<String>,
}

impl Store {
    /// Opens the store at `url` (`postgres://…`, `sqlite://path.db`, `sqlite::memory:` or
    /// `memory://`) with the defaults of its backend; see [`StoreBuilder`](crate::StoreBuilder)
    /// for them and for what can be changed. Reads nothing from the environment.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), sage_store::StoreError> {
    /// // A SQLite file, migrated on open, its key file created beside it on first use.
    /// let store = sage_store::Store::open_url("sqlite://sage.db").await?;
    /// # Ok(()) }
    /// ```
    pub async fn open_url(url: &str) -> Result<Store> {
        Store::builder(url).open().await
    }

    /// A builder for a store at `url`: keys, migration, clock and pool limits.
    pub fn builder(url: impl Into<String>) -> crate::StoreBuilder {
        crate::StoreBuilder::new(url)
    }

    /// The store's current time, from its clock. Compute expiries from this, not from
    /// `Utc::now()`: a store running on a [`ManualClock`](crate::ManualClock) decides
    /// expiry by its own time.
    pub fn now(&self) -> DateTime<Utc> {
        self.sessions.0.now()
    }

    /// Opens the store for `target`: PostgreSQL (pooled), a SQLite file or in-memory
    /// database, or `memory://`. Checks the schema version first (after migrating, when
    /// `options.migrate` is set) and refuses a database this build does not understand.
    pub async fn open(target: &sage_conn::Target, options: OpenOptions) -> Result<Store> {
        // A key file is a few lines read once, before the store exists and anything runs on
        // it; creating one on first use writes those lines once. Left on the caller's
        // thread: nothing else is waiting on this store yet.
        let (keys, key_notice) = options.keys.load()?;
        // Only a database backend adds notices (schema migrations).
        #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(unused_mut))]
        let mut notices: Vec<String> = key_notice.into_iter().collect();
        let backend: Box<dyn Backend> = match target {
            sage_conn::Target::Memory => Box::new(MemoryBackend::new()),
            #[cfg(feature = "postgres")]
            sage_conn::Target::Postgres(pg) => {
                // Everything a PostgreSQL store runs in the background lives on its own
                // runtime (see `backend/runtime.rs`), so the store works from any runtime.
                let (pg, migrate, replica) = (pg.clone(), options.migrate, options.read_replica.clone());
                let (backend, schema_notices) = OnOwnRuntime::open("sage-store-pg", 2, async move {
                    // Whether a pooler shares server sessions decides how every statement,
                    // the open-time checks' included, is sent.
                    let pg = sage_conn::decide_pooler(&pg).await?;
                    let target = sage_conn::Target::Postgres(pg.clone());
                    let mut notices = Vec::new();
                    check_schema(&target, migrate, &mut notices).await?;
                    Ok((PgBackend::open(&pg, replica.as_ref()).await?, notices))
                })
                .await?;
                notices.extend(schema_notices);
                Box::new(backend)
            }
            #[cfg(not(feature = "postgres"))]
            sage_conn::Target::Postgres(_) => {
                return Err(StoreError::new(ErrorKind::Configuration, sage_conn::NO_POSTGRES));
            }
            #[cfg(not(feature = "sqlite"))]
            sage_conn::Target::Sqlite(_) => {
                return Err(StoreError::new(ErrorKind::Configuration, sage_conn::NO_SQLITE));
            }
            #[cfg(feature = "sqlite")]
            sage_conn::Target::Sqlite(location) => {
                // Opening reads and may create the file: off the async runtime's threads.
                let backend = {
                    let location = location.clone();
                    blocking(move || SqliteBackend::open(&location)).await?
                };
                if matches!(location, sage_conn::SqliteLocation::InMemory) {
                    // A private in-memory database exists only on the store's connection.
                    backend.migrate_in_place().await?;
                } else {
                    check_schema(target, options.migrate, &mut notices).await?;
                }
                Box::new(backend)
            }
        };
        let inner = Arc::new(Inner { backend, keys, clock: options.clock, metrics: Metrics::new() });
        Ok(Store { sessions: Sessions(inner.clone()), nonces: Nonces(inner.clone()), dids: Dids(inner), notices })
    }

    /// The sessions ([`SessionStore`]).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The nonces ([`NonceStore`]); see also [`Store::accept`].
    pub fn nonces(&self) -> &Nonces {
        &self.nonces
    }

    /// The DID cache ([`DidStore`]).
    pub fn dids(&self) -> &Dids {
        &self.dids
    }

    /// Things the operator should be told, e.g. that a key file was created.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// `postgres`, `sqlite` or `memory`.
    pub fn backend_name(&self) -> &'static str {
        self.sessions.0.backend.name()
    }

    /// The id of the key that seals new session keys.
    pub fn current_key_id(&self) -> String {
        self.sessions.0.keys.current_id()
    }

    /// Counts and latencies of every store operation since the store opened.
    pub fn metrics(&self) -> Vec<OperationMetrics> {
        self.sessions.0.metrics.snapshot()
    }

    /// The store's metrics (operation counts, latency histograms, the pool's state) in the
    /// Prometheus text format, to serve as `/metrics` with content type
    /// [`crate::metrics::CONTENT_TYPE`] (`text/plain; version=0.0.4; charset=utf-8`). See
    /// [`crate::metrics::StoreCollector`] for the names.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        crate::metrics::render_prometheus(&mut out, &self.metrics(), self.pool_status());
        out
    }

    /// The connection pool's state, for pooled backends.
    pub fn pool_status(&self) -> Option<PoolStatus> {
        self.sessions.0.backend.pool_status()
    }

    /// Records a cleanup run for the metrics (used by services that run cleanup).
    pub fn record_cleanup(&self, elapsed: std::time::Duration, ok: bool) {
        self.sessions.0.metrics.record(
            Operation::Cleanup,
            elapsed,
            if ok { Ok(()) } else { Err(ErrorKind::Unavailable) },
        );
    }

    /// Accepts one message of a session: claims its `nonce` (bound to the session, used
    /// until `nonce_expires_at`) and counts the message on the session (message count, last
    /// activity), in one atomic step on every backend. Either both happen or neither: a
    /// session that is missing (`NotFound`) or no longer live (`Expired`: past its expiry,
    /// idle timeout or message budget) leaves the nonce unclaimed, so the client may retry
    /// it on a fresh session, and a replayed nonce (`Replayed`) leaves the session as it
    /// was. Of any number of concurrent accepts of one nonce exactly one succeeds. A
    /// session's problem is reported before a replay. Returns the session as it is now.
    ///
    /// On PostgreSQL concurrent accepts are group-committed: many messages, of many
    /// sessions or of one, share one transaction, and each is decided as if it had been
    /// accepted alone, in the order the messages reached the store. Batches of one session
    /// serialise on its row; see `docs/PERFORMANCE.md` for what a hot session costs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sage_store::StoreError> {
    /// use sage_store::{prelude::*, chrono::Duration, ErrorKind, NewSession, SessionKey, Store};
    /// let store = Store::open_url("memory://").await?;
    /// let until = store.now() + Duration::hours(1);
    /// let session = NewSession::new("did:sage:alice", "did:sage:bob", SessionKey::new(vec![7; 32]), until)
    ///     .with_max_messages(2);
    /// let session = store.sessions().create(&session).await?;
    ///
    /// assert_eq!(store.accept(&session.id, "nonce-1", until).await?.message_count, 1);
    /// assert_eq!(store.accept(&session.id, "nonce-1", until).await.unwrap_err().kind(), ErrorKind::Replayed);
    /// assert_eq!(store.accept(&session.id, "nonce-2", until).await?.message_count, 2);
    /// // The budget is spent: the third message is refused, and its nonce stays free.
    /// assert_eq!(store.accept(&session.id, "nonce-3", until).await.unwrap_err().kind(), ErrorKind::Expired);
    /// assert!(!store.nonces().is_used("nonce-3").await?);
    /// # Ok(()) }
    /// ```
    pub async fn accept(&self, session_id: &str, nonce: &str, nonce_expires_at: DateTime<Utc>) -> Result<Session> {
        let inner = &self.sessions.0;
        observed(inner, Operation::Accept, async move {
            let now = inner.now();
            validate::token("session_id", session_id)?;
            validate::token("nonce", nonce)?;
            validate::expiry("nonce_expires_at", nonce_expires_at, now)?;
            match inner.backend.accept(session_id, nonce, micros(nonce_expires_at), now).await? {
                Accepted::Done(row) => inner.session_from_row(row),
                Accepted::NotFound => Err(StoreError::not_found("session", session_id)),
                Accepted::NotLive => {
                    Err(StoreError::new(ErrorKind::Expired, format!("session {session_id:?} has expired")))
                }
                Accepted::Replayed => {
                    Err(StoreError::new(ErrorKind::Replayed, format!("nonce {nonce:?} was already used")))
                }
            }
        })
        .await
    }

    /// Whether the database answers: a round trip on PostgreSQL, a query on SQLite.
    pub async fn ping(&self) -> Result<()> {
        self.sessions.0.backend.ping().await
    }

    /// Closes a PostgreSQL store's connections; calls after this fail. Dropping the last
    /// clone of a store closes it too. Does nothing on SQLite and memory.
    pub async fn close(&self) {
        self.sessions.0.backend.close().await
    }

    /// Re-seals every session key with the current key, and seals key material an older
    /// SAGE database holds in plaintext. Rows are swapped one by one only if unchanged
    /// meanwhile, so rotation can run while the service is up.
    pub async fn rotate_keys(&self) -> Result<RotationReport> {
        let inner = &self.sessions.0;
        let mut report = RotationReport { key_id: inner.keys.current_id(), ..RotationReport::default() };
        let mut after: Option<String> = None;
        loop {
            let page = inner.backend.session_keys_after(after.as_deref(), 500).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (id, sealed) in page {
                report.examined += 1;
                let plaintext = match sealed_key_id(&sealed) {
                    Some(_) if inner.keys.is_current(&sealed) => {
                        report.already_current += 1;
                        continue;
                    }
                    Some(_) => match inner.keys.open(&id, &sealed) {
                        Ok(p) => p,
                        Err(_) => {
                            report.failed.push(id);
                            continue;
                        }
                    },
                    None => zeroize::Zeroizing::new(sealed.clone()),
                };
                let resealed = inner.keys.seal(&id, &plaintext);
                if inner.backend.replace_session_key(&id, &sealed, &resealed).await? {
                    if sealed_key_id(&sealed).is_some() {
                        report.resealed += 1;
                    } else {
                        report.encrypted_plaintext += 1;
                    }
                } else {
                    report.changed_meanwhile += 1;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(feature = "sqlite")]
/// Runs blocking work on the current Tokio runtime's blocking threads, or in place when
/// there is no Tokio runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(work)
            .await
            .map_err(|e| StoreError::new(ErrorKind::Internal, format!("a blocking store task failed: {e}")))?,
        Err(_) => work(),
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
/// Opens SAGE's migrations on the database, applies them when asked, and refuses unless the
/// database is at exactly the version this build reads and writes.
async fn check_schema(target: &sage_conn::Target, migrate: bool, notices: &mut Vec<String>) -> Result<()> {
    let dialect = match target {
        sage_conn::Target::Postgres(_) => sage_migrate::Dialect::Postgres,
        _ => sage_migrate::Dialect::Sqlite,
    };
    let expected = crate::schema::expected_version(dialect);
    let mut migrator =
        sage_migrate::Migrator::connect(target, crate::migrations(dialect), sage_migrate::RunOptions::default())
            .await
            .map_err(migrate_error)?;
    if migrate {
        let report = migrator.up(sage_migrate::Target::Latest).await.map_err(migrate_error)?;
        if !report.applied.is_empty() {
            notices.push(format!(
                "applied {} migration(s); the schema is now at version {}",
                report.applied.len(),
                report.version_after.unwrap_or_default()
            ));
        }
    }
    let status = migrator.status().await.map_err(migrate_error)?;
    drop(migrator);
    match status.version {
        Some(v) if v == expected => crate::fingerprint::validate_once(target, dialect, v, status.migrations.len()).await,
        Some(v) if v > expected => Err(StoreError::configuration(
            Reason::SchemaAhead { at: v, understands: expected },
            format!("the database schema is at version {v}, newer than this build understands ({expected}); upgrade sage-db"),
        )),
        Some(v) => Err(StoreError::configuration(
            Reason::SchemaBehind { at: v, needs: expected },
            format!("the database schema is at version {v} but this build needs version {expected}; migrate it, or open the store with migrate enabled"),
        )),
        None => Err(StoreError::configuration(
            Reason::NoSchema,
            "the database has no SAGE schema yet; migrate it, or open the store with migrate enabled",
        )),
    }
}

#[cfg(any(feature = "postgres", feature = "sqlite"))]
fn migrate_error(e: sage_migrate::Error) -> StoreError {
    let kind = match e.kind() {
        sage_migrate::ErrorKind::Database => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    StoreError::new(kind, e.to_string()).with_source(e)
}

impl Inner {
    fn now(&self) -> DateTime<Utc> {
        micros(self.clock.now())
    }

    fn session_from_row(&self, row: SessionRow) -> Result<Session> {
        let key = self.keys.open(&row.id, &row.sealed_key)?;
        Ok(Session {
            key: SessionKey::new(key.to_vec()),
            id: row.id,
            client_did: row.client_did,
            server_did: row.server_did,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_activity: row.last_activity,
            metadata: row.metadata,
            message_count: row.message_count.max(0) as u64,
            max_messages: row.max_messages.map(|m| m.max(0) as u64),
            idle_timeout: row.idle_timeout_seconds.map(|s| Duration::from_secs(s.max(0) as u64)),
        })
    }

    /// After a conditional write failed: `NotFound` or `Expired`.
    async fn missing_or_expired(&self, id: &str) -> StoreError {
        match self.backend.get_session(id).await {
            Ok(Some(_)) => StoreError::new(ErrorKind::Expired, format!("session {id:?} has expired")),
            Ok(None) => StoreError::not_found("session", id),
            Err(e) => e,
        }
    }
}

/// Runs one store operation and records its outcome and duration.
async fn observed<T>(inner: &Inner, op: Operation, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let started = std::time::Instant::now();
    let result = work.await;
    inner.metrics.record(op, started.elapsed(), result.as_ref().map(|_| ()).map_err(|e| e.kind()));
    result
}

fn idle_seconds(idle: Option<Duration>) -> Option<i32> {
    idle.map(|d| d.as_secs().min(i32::MAX as u64) as i32)
}

#[async_trait]
impl SessionStore for Sessions {
    async fn create(&self, s: &NewSession) -> Result<Session> {
        observed(&self.0, Operation::SessionCreate, async move {
            let inner = &self.0;
            let now = inner.now();
            validate::new_session(s, now)?;
            let row = SessionRow {
                id: s.id.clone(),
                client_did: s.client_did.clone(),
                server_did: s.server_did.clone(),
                sealed_key: inner.keys.seal(&s.id, s.key.expose()),
                created_at: now,
                expires_at: micros(s.expires_at),
                last_activity: now,
                metadata: s.metadata.clone(),
                message_count: 0,
                max_messages: s.max_messages.map(|m| m as i64),
                idle_timeout_seconds: idle_seconds(s.idle_timeout),
            };
            inner.backend.insert_session(&row).await?;
            inner.session_from_row(row)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Session> {
        observed(&self.0, Operation::SessionGet, async move {
            let inner = &self.0;
            validate::token("id", id)?;
            let now = inner.now();
            match inner.backend.get_session(id).await? {
                None => Err(StoreError::not_found("session", id)),
                Some(row) if !row.is_live(now) => {
                    Err(StoreError::new(ErrorKind::Expired, format!("session {id:?} has expired")))
                }
                Some(row) => inner.session_from_row(row),
            }
        })
        .await
    }

    async fn update(&self, id: &str, changes: &SessionUpdate) -> Result<Session> {
        observed(&self.0, Operation::SessionUpdate, async move {
            let inner = &self.0;
            validate::token("id", id)?;
            let now = inner.now();
            let Some(current) = inner.backend.get_session(id).await? else {
                return Err(StoreError::not_found("session", id));
            };
            if !current.is_live(now) {
                return Err(StoreError::new(
                    ErrorKind::Expired,
                    format!("session {id:?} has expired and cannot be changed"),
                ));
            }
            let mut row = current.clone();
            if let Some(key) = &changes.key {
                validate::session_key(key)?;
                row.sealed_key = inner.keys.seal(id, key.expose());
            }
            if let Some(expires_at) = changes.expires_at {
                validate::expiry("expires_at", expires_at, now)?;
                row.expires_at = micros(expires_at);
            }
            if let Some(metadata) = &changes.metadata {
                validate::metadata(metadata.as_ref())?;
                row.metadata = metadata.clone();
            }
            let max_messages = changes.max_messages.unwrap_or(row.max_messages.map(|m| m as u64));
            let idle = changes.idle_timeout.unwrap_or(row.idle_timeout_seconds.map(|s| Duration::from_secs(s as u64)));
            validate::limits(max_messages, idle)?;
            row.max_messages = max_messages.map(|m| m as i64);
            row.idle_timeout_seconds = idle_seconds(idle);
            match inner.backend.update_session(&row, now).await? {
                Conditional::Done(()) => inner.session_from_row(row),
                Conditional::NotFound | Conditional::NotLive => Err(inner.missing_or_expired(id).await),
            }
        })
        .await
    }

    async fn touch(&self, id: &str) -> Result<Session> {
        observed(&self.0, Operation::SessionTouch, async move {
            let inner = &self.0;
            validate::token("id", id)?;
            match inner.backend.touch_session(id, inner.now()).await? {
                Conditional::Done(row) => inner.session_from_row(row),
                Conditional::NotFound => Err(StoreError::not_found("session", id)),
                Conditional::NotLive => Err(StoreError::new(ErrorKind::Expired, format!("session {id:?} has expired"))),
            }
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        observed(&self.0, Operation::SessionDelete, async move {
            validate::token("id", id)?;
            if self.0.backend.delete_session(id).await? {
                Ok(())
            } else {
                Err(StoreError::not_found("session", id))
            }
        })
        .await
    }

    async fn list_by_client(&self, client_did: &str, page: Page) -> Result<Vec<Session>> {
        observed(&self.0, Operation::SessionList, async move {
            list(&self.0, Party::Client, "client_did", client_did, page).await
        })
        .await
    }

    async fn list_all(&self, page: Page) -> Result<Vec<Session>> {
        observed(&self.0, Operation::SessionList, async move {
            validate::page(page)?;
            let rows = self.0.backend.list_all_sessions(self.0.now(), page).await?;
            rows.into_iter().map(|r| self.0.session_from_row(r)).collect()
        })
        .await
    }

    async fn list_by_server(&self, server_did: &str, page: Page) -> Result<Vec<Session>> {
        observed(&self.0, Operation::SessionList, async move {
            list(&self.0, Party::Server, "server_did", server_did, page).await
        })
        .await
    }

    async fn count_active(&self) -> Result<u64> {
        observed(&self.0, Operation::SessionCount, self.0.backend.count_sessions(self.0.now())).await
    }

    async fn delete_expired(&self) -> Result<u64> {
        self.delete_expired_reporting(&sage_conn::Progress::none()).await
    }
}

impl Sessions {
    /// [`SessionStore::delete_expired`], reporting the rows deleted so far to `progress`
    /// after each batch.
    pub async fn delete_expired_reporting(&self, progress: &sage_conn::Progress) -> Result<u64> {
        let now = self.0.now();
        observed(
            &self.0,
            Operation::SessionDeleteExpired,
            in_batches(
                || self.0.backend.delete_expired_sessions(now, CLEANUP_BATCH),
                |total| progress.rows("deleting expired", Some("sessions"), total),
            ),
        )
        .await
    }
}

async fn list(inner: &Inner, party: Party, field: &'static str, did: &str, page: Page) -> Result<Vec<Session>> {
    validate::did(field, did)?;
    validate::page(page)?;
    let rows = inner.backend.list_sessions(party, did, inner.now(), page).await?;
    rows.into_iter().map(|r| inner.session_from_row(r)).collect()
}

impl Nonces {
    /// [`NonceStore::delete_expired`], reporting the rows deleted so far to `progress`
    /// after each batch.
    pub async fn delete_expired_reporting(&self, progress: &sage_conn::Progress) -> Result<u64> {
        let now = self.0.now();
        observed(
            &self.0,
            Operation::NonceDeleteExpired,
            in_batches(
                || self.0.backend.delete_expired_nonces(now, CLEANUP_BATCH),
                |total| progress.rows("deleting expired", Some("nonces"), total),
            ),
        )
        .await
    }

    /// [`NonceStore::claim`], called on the store directly: the call every signed message
    /// makes, without the boxed future a trait object needs.
    pub async fn claim(&self, nonce: &str, session_id: Option<&str>, expires_at: DateTime<Utc>) -> Result<()> {
        observed(&self.0, Operation::NonceClaim, async move {
            let inner = &self.0;
            let now = inner.now();
            validate::token("nonce", nonce)?;
            if let Some(session) = session_id {
                validate::token("session_id", session)?;
            }
            validate::expiry("expires_at", expires_at, now)?;
            let expires_at = micros(expires_at);
            let claim = match inner.backend.claim_nonce_now(nonce, expires_at, now) {
                Some(answer) => answer?,
                None => inner.backend.claim_nonce(nonce, session_id, expires_at, now).await?,
            };
            match claim {
                Claim::Fresh => Ok(()),
                Claim::Replayed => {
                    Err(StoreError::new(ErrorKind::Replayed, format!("nonce {nonce:?} was already used")))
                }
            }
        })
        .await
    }
}

#[async_trait]
impl NonceStore for Nonces {
    async fn claim(&self, nonce: &str, session_id: Option<&str>, expires_at: DateTime<Utc>) -> Result<()> {
        Nonces::claim(self, nonce, session_id, expires_at).await
    }

    async fn claim_many(&self, claims: &[NonceClaim]) -> Result<Vec<Claim>> {
        observed(&self.0, Operation::NonceClaimMany, async move {
            let inner = &self.0;
            let now = inner.now();
            for claim in claims {
                validate::claim(claim, now)?;
            }
            // A nonce repeated inside one batch is a replay of its first occurrence; only
            // distinct nonces go to the backend.
            let mut seen = HashSet::with_capacity(claims.len());
            let mut distinct = Vec::with_capacity(claims.len());
            let mut repeated = Vec::with_capacity(claims.len());
            for claim in claims {
                let first = seen.insert(claim.nonce.as_str());
                repeated.push(!first);
                if first {
                    distinct.push(NonceClaim { expires_at: micros(claim.expires_at), ..claim.clone() });
                }
            }
            let answers = inner.backend.claim_nonces(&distinct, now).await?;
            let mut answers = answers.into_iter();
            Ok(repeated
                .into_iter()
                .map(|dup| if dup { Claim::Replayed } else { answers.next().unwrap_or(Claim::Replayed) })
                .collect())
        })
        .await
    }

    async fn is_used(&self, nonce: &str) -> Result<bool> {
        observed(&self.0, Operation::NonceIsUsed, async move {
            validate::token("nonce", nonce)?;
            self.0.backend.nonce_used(nonce, self.0.now()).await
        })
        .await
    }

    async fn count_active(&self) -> Result<u64> {
        observed(&self.0, Operation::NonceCount, self.0.backend.count_nonces(self.0.now())).await
    }

    async fn delete_expired(&self) -> Result<u64> {
        self.delete_expired_reporting(&sage_conn::Progress::none()).await
    }
}

fn prepared(record: &DidRecord, now: DateTime<Utc>) -> Result<DidRecord> {
    let mut r = record.clone();
    if r.fetched_at == DateTime::<Utc>::UNIX_EPOCH {
        r.fetched_at = now;
    }
    r.fetched_at = micros(r.fetched_at);
    r.stale_after = r.stale_after.map(micros);
    r.created_at = now;
    r.updated_at = now;
    validate::did_record(&r)?;
    Ok(r)
}

#[async_trait]
impl DidStore for Dids {
    async fn create(&self, record: &DidRecord) -> Result<DidRecord> {
        observed(&self.0, Operation::DidCreate, async move {
            let r = prepared(record, self.0.now())?;
            self.0.backend.insert_did(&r).await?;
            Ok(r)
        })
        .await
    }

    async fn upsert(&self, record: &DidRecord) -> Result<DidRecord> {
        observed(&self.0, Operation::DidUpsert, async move {
            let r = prepared(record, self.0.now())?;
            self.0.backend.upsert_did(&r).await
        })
        .await
    }

    async fn get(&self, did: &str) -> Result<DidRecord> {
        observed(&self.0, Operation::DidGet, async move {
            validate::did("did", did)?;
            self.0.backend.get_did(did).await?.ok_or_else(|| StoreError::not_found("DID", did))
        })
        .await
    }

    async fn update(&self, record: &DidRecord) -> Result<DidRecord> {
        observed(&self.0, Operation::DidUpdate, async move {
            let r = prepared(record, self.0.now())?;
            self.0.backend.update_did(&r).await?.ok_or_else(|| StoreError::not_found("DID", &r.did))
        })
        .await
    }

    async fn delete(&self, did: &str) -> Result<()> {
        observed(&self.0, Operation::DidDelete, async move {
            validate::did("did", did)?;
            if self.0.backend.delete_did(did).await? {
                Ok(())
            } else {
                Err(StoreError::not_found("DID", did))
            }
        })
        .await
    }

    async fn list_all(&self, page: Page) -> Result<Vec<DidRecord>> {
        observed(&self.0, Operation::DidList, async move {
            validate::page(page)?;
            self.0.backend.list_all_dids(page).await
        })
        .await
    }

    async fn list_by_owner(&self, owner_address: &str) -> Result<Vec<DidRecord>> {
        observed(&self.0, Operation::DidList, async move {
            if owner_address.is_empty() {
                return Err(StoreError::invalid("owner_address", "must not be empty"));
            }
            self.0.backend.list_dids(owner_address).await
        })
        .await
    }

    async fn revoke(&self, did: &str) -> Result<()> {
        observed(&self.0, Operation::DidRevoke, async move {
            validate::did("did", did)?;
            if self.0.backend.revoke_did(did, self.0.now()).await? {
                Ok(())
            } else {
                Err(StoreError::not_found("DID", did))
            }
        })
        .await
    }

    async fn is_revoked(&self, did: &str) -> Result<bool> {
        Ok(self.get(did).await?.revoked)
    }
}

/// Repeats a batched delete until a batch comes back short; returns the rows deleted in all.
/// Short batches keep each statement's locks brief while writers carry on.
async fn in_batches<F, Fut>(mut delete_batch: F, deleted_so_far: impl Fn(u64)) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let mut total = 0;
    loop {
        let n = delete_batch().await?;
        total += n;
        deleted_so_far(total);
        if n < u64::from(CLEANUP_BATCH) {
            return Ok(total);
        }
    }
}
