//! PostgreSQL through a deadpool pool of tokio-postgres connections; statements are
//! prepared once per connection on direct connections and sent unnamed through a pooler
//! that shares server sessions (`statements.rs`). Nonce claims and accepted messages are
//! group-committed (`batch.rs`, `pg_accept.rs`);
//! point reads share a few pipelined connections (`Readers`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sage_conn::deadpool_postgres::{Object, Pool};
use sage_conn::PgSettings;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use super::batch::{Batcher, ClaimBatcher};
use super::pg_accept::{accept_messages, Message};
use super::replica::{ReadReplica, Replica};
use super::statements::Statements;
use super::{Accepted, Backend, Conditional, Party, SessionRow};
use crate::error::{ErrorKind, Result, StoreError};
use crate::model::{Claim, DidRecord, KeyType, NonceClaim, Page};

pub(super) const SESSION_COLUMNS: &str = "id, client_did, server_did, session_key, created_at, expires_at, last_activity, metadata, message_count, max_messages, idle_timeout_seconds";
const DID_COLUMNS: &str = "did, public_key, owner_address, key_type, revoked, created_at, updated_at, key_agreement_key, endpoint, capabilities, fetched_at, stale_after";

/// The liveness rule of `SessionRow::is_live`, in SQL, for the time in parameter `n`.
pub(super) fn live(n: usize) -> String {
    format!(
        "(expires_at > ${n} AND (idle_timeout_seconds IS NULL OR last_activity + idle_timeout_seconds * interval '1 second' > ${n}) \
         AND (max_messages IS NULL OR message_count < max_messages))"
    )
}

pub(crate) struct PgBackend {
    pool: Pool,
    settings: PgSettings,
    batcher: ClaimBatcher,
    /// Group commit for `accept` (`pg_accept.rs`).
    accepts: Batcher<Message, Result<Accepted>>,
    readers: Readers,
    statements: Arc<Statements>,
    /// A standby for reads, when the operator gave one.
    replica: Option<Replica>,
}

/// Point reads share a few pooled connections instead of each taking one: concurrent
/// queries on one connection are pipelined, so a burst of reads travels in a few socket
/// writes and is answered back to back by one server process, with no pool checkout per
/// read. A connection found closed is replaced from the pool on next use.
struct Readers {
    slots: Vec<Mutex<Option<Arc<Object>>>>,
    next: AtomicUsize,
}

impl Readers {
    /// One shared connection per two cores (its server process takes one core, the clients
    /// the other), leaving most of the pool to writers; none when the pool is too small to
    /// spare any.
    fn new(max_connections: usize) -> Readers {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let count = if max_connections >= 4 { (cores / 2).clamp(1, max_connections / 4) } else { 0 };
        Readers { slots: (0..count).map(|_| Mutex::new(None)).collect(), next: Default::default() }
    }
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend").field("database", &self.settings.redacted_url()).finish()
    }
}

impl PgBackend {
    pub(crate) async fn open(settings: &PgSettings, replica: Option<&ReadReplica>) -> Result<PgBackend> {
        let replica = match replica {
            Some(options) => Some(Replica::open(options).await?),
            None => None,
        };
        let pool = sage_conn::open_pool(settings).await?;
        let statements = Arc::new(Statements::new(settings));
        tracing::debug!(pooler = settings.pooler.as_str(), named = statements.named(), "postgres store statements");
        let (batch_pool, batch_settings, batch_statements) = (pool.clone(), settings.clone(), statements.clone());
        // Several batches in flight keep the pool busy; each one is a single statement and
        // commit however many claims it carries.
        let in_flight = (settings.pool.max_connections / 2).clamp(1, 2);
        let batcher = ClaimBatcher::claims(
            move |claims, now| {
                let (pool, settings, statements) =
                    (batch_pool.clone(), batch_settings.clone(), batch_statements.clone());
                async move { claim_statement(&pool, &settings, &statements, &claims, now).await }
            },
            in_flight,
            MAX_BATCH,
        );
        let (accept_pool, accept_settings, accept_statements) = (pool.clone(), settings.clone(), statements.clone());
        let accepts = Batcher::new(
            move |messages, now| {
                let (pool, settings, statements) =
                    (accept_pool.clone(), accept_settings.clone(), accept_statements.clone());
                async move { accept_messages(&pool, &settings, &statements, messages, now).await }
            },
            in_flight,
            MAX_BATCH,
        );
        let readers = Readers::new(settings.pool.max_connections);
        Ok(PgBackend { pool, settings: settings.clone(), batcher, accepts, readers, statements, replica })
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| sage_conn::pool_error(&self.settings, e).into())
    }

    async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.statements.query(&self.client().await?, what, sql, params).await
    }

    /// A read-only statement on one of the shared reader connections.
    async fn read(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        match self.reader().await? {
            Some(client) => self.statements.query(&client, what, sql, params).await,
            None => self.query(what, sql, params).await,
        }
    }

    /// A read the standby may serve while its lag is under the bound: listings always,
    /// lookups (`lookup`) only when the operator opted in, since a service decides on them
    /// whether to accept a message. Anything else, or a failed standby read, goes to the
    /// primary.
    async fn standby_read(
        &self,
        lookup: bool,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        if let Some(replica) = &self.replica {
            if (!lookup || replica.authorising_reads) && replica.usable().await {
                match replica.query(what, sql, params).await {
                    Ok(rows) => return Ok(rows),
                    Err(e) => {
                        tracing::warn!(error = %e, "a read on the standby failed; reading from the primary");
                        replica.forget();
                    }
                }
            }
        }
        if lookup {
            self.read(what, sql, params).await
        } else {
            self.query(what, sql, params).await
        }
    }

    async fn reader(&self) -> Result<Option<Arc<Object>>> {
        let slots = &self.readers.slots;
        if slots.is_empty() {
            return Ok(None);
        }
        let slot = &slots[self.readers.next.fetch_add(1, Ordering::Relaxed) % slots.len()];
        let lock = || slot.lock().map_err(|_| StoreError::new(ErrorKind::Internal, "reader lock poisoned"));
        if let Some(client) = lock()?.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Some(client.clone()));
        }
        // Two callers may both replace a closed connection; the later one wins and the
        // other's connection returns to the pool when its read is done.
        let fresh = Arc::new(self.client().await?);
        *lock()? = Some(fresh.clone());
        Ok(Some(fresh))
    }

    async fn execute(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        self.statements.execute(&self.client().await?, what, sql, params).await
    }

    /// Runs `sql` with a DID record bound to `$1`…`$12` in the order of `DID_COLUMNS`.
    async fn write_did(&self, what: &str, sql: &str, r: &DidRecord) -> Result<Vec<Row>> {
        let capabilities = serde_json::json!(r.capabilities);
        let key_type = r.key_type.as_str();
        self.query(
            what,
            sql,
            &[
                &r.did,
                &r.public_key,
                &r.owner_address,
                &key_type,
                &r.revoked,
                &r.created_at,
                &r.updated_at,
                &r.key_agreement_key,
                &r.endpoint,
                &capabilities,
                &r.fetched_at,
                &r.stale_after,
            ],
        )
        .await
    }
}

/// One column of a stored row. Rows may have been written by other clients, so a value
/// this store cannot decode (metadata nested deeper than the JSON parser allows, a
/// timestamp beyond chrono's calendar, such as `infinity`) is an error naming the column,
/// never a panic.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, index: usize, what: &str) -> Result<T> {
    r.try_get(index).map_err(|e| {
        let name = r.columns().get(index).map_or("?", |c| c.name());
        StoreError::new(ErrorKind::Internal, format!("cannot read column {name} of a stored {what}: {e}"))
            .with_source(e)
    })
}

pub(super) fn session_row(r: &Row) -> Result<SessionRow> {
    let id: String = column(r, 0, "session")?;
    let what = format!("session ({id:?})");
    Ok(SessionRow {
        client_did: column(r, 1, &what)?,
        server_did: column(r, 2, &what)?,
        sealed_key: column(r, 3, &what)?,
        created_at: column(r, 4, &what)?,
        expires_at: column(r, 5, &what)?,
        last_activity: column(r, 6, &what)?,
        metadata: column(r, 7, &what)?,
        message_count: column(r, 8, &what)?,
        max_messages: column(r, 9, &what)?,
        idle_timeout_seconds: column(r, 10, &what)?,
        id,
    })
}

fn did_row(r: &Row) -> Result<DidRecord> {
    let did: String = column(r, 0, "DID")?;
    let what = format!("DID ({did:?})");
    let key_type: String = column(r, 3, &what)?;
    let capabilities: serde_json::Value = column(r, 9, &what)?;
    let key_type = KeyType::parse(&key_type).ok_or_else(|| {
        StoreError::new(ErrorKind::Internal, format!("DID {did:?} has an unknown key type {key_type:?}"))
    })?;
    Ok(DidRecord {
        public_key: column(r, 1, &what)?,
        owner_address: column(r, 2, &what)?,
        key_type,
        revoked: column(r, 4, &what)?,
        created_at: column(r, 5, &what)?,
        updated_at: column(r, 6, &what)?,
        key_agreement_key: column(r, 7, &what)?,
        endpoint: column(r, 8, &what)?,
        capabilities: serde_json::from_value(capabilities).unwrap_or_default(),
        fetched_at: column(r, 10, &what)?,
        stale_after: column(r, 11, &what)?,
        did,
    })
}

/// Placeholders for every column of `DID_COLUMNS`, in order.
const DID_VALUES: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12";

fn already_exists(e: StoreError, what: &str) -> StoreError {
    if e.kind() == ErrorKind::AlreadyExists {
        StoreError::new(ErrorKind::AlreadyExists, format!("{what} already exists"))
    } else {
        e
    }
}

/// Claims or messages per batch, at most.
const MAX_BATCH: usize = 1000;

/// Claims distinct nonces (`$1`, with sessions `$2` and expiries `$3`, used at `$4`);
/// returns the nonces claimed.
pub(super) const CLAIM_SQL: &str = "INSERT INTO nonces (nonce, session_id, used_at, expires_at) \
     SELECT n, s, $4, e FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(n, s, e) \
     ON CONFLICT (nonce) DO UPDATE SET session_id = EXCLUDED.session_id, used_at = EXCLUDED.used_at, expires_at = EXCLUDED.expires_at \
     WHERE nonces.expires_at <= EXCLUDED.used_at \
     RETURNING nonce";

/// Claims distinct nonces in one statement (and, outside a transaction, one commit). A
/// conflicting row is taken over only when it has expired; under concurrency PostgreSQL
/// re-checks that condition against the committed winner, so exactly one claimer of a nonce
/// gets a row back.
async fn claim_statement(
    pool: &Pool,
    settings: &PgSettings,
    statements: &Statements,
    claims: &[NonceClaim],
    now: DateTime<Utc>,
) -> Result<Vec<Claim>> {
    // Rows are written in nonce order, so two batches that share nonces take their row locks
    // in the same order and wait for each other instead of deadlocking.
    let mut sorted: Vec<&NonceClaim> = claims.iter().collect();
    sorted.sort_unstable_by(|a, b| a.nonce.cmp(&b.nonce));
    let nonces: Vec<&str> = sorted.iter().map(|c| c.nonce.as_str()).collect();
    let sessions: Vec<Option<&str>> = sorted.iter().map(|c| c.session_id.as_deref()).collect();
    let expiries: Vec<DateTime<Utc>> = sorted.iter().map(|c| c.expires_at).collect();
    let mut attempt = 0;
    let rows = loop {
        let client = pool.get().await.map_err(|e| StoreError::from(sage_conn::pool_error(settings, e)))?;
        match statements.query(&client, "cannot claim nonces", CLAIM_SQL, &[&nonces, &sessions, &expiries, &now]).await
        {
            Ok(rows) => break rows,
            // Another writer (not a claim batch) can still close a lock cycle; the statement
            // rolled back as a whole, so running it again is safe.
            Err(e) if attempt < 3 && retryable(&e) => {
                attempt += 1;
                tracing::debug!(attempt, "nonce claim batch retried after {e}");
            }
            Err(e) => return Err(e),
        }
    };
    let fresh: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(claims.iter().map(|c| if fresh.contains(&c.nonce) { Claim::Fresh } else { Claim::Replayed }).collect())
}

/// A deadlock or serialization failure, after which the statement rolled back as a whole.
pub(super) fn retryable(e: &StoreError) -> bool {
    let pg = std::error::Error::source(e).and_then(|s| s.downcast_ref::<tokio_postgres::Error>());
    pg.and_then(|e| e.code())
        .is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

#[async_trait]
impl Backend for PgBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn pool_status(&self) -> Option<crate::metrics::PoolStatus> {
        let s = self.pool.status();
        Some(crate::metrics::PoolStatus { max: s.max_size, open: s.size, idle: s.available, waiting: s.waiting })
    }

    async fn ping(&self) -> Result<()> {
        self.query("ping failed", "SELECT 1", &[]).await.map(drop)
    }

    async fn close(&self) {
        for slot in &self.readers.slots {
            if let Ok(mut reader) = slot.lock() {
                reader.take();
            }
        }
        if let Some(replica) = &self.replica {
            replica.close();
        }
        self.pool.close();
    }

    async fn insert_session(&self, r: &SessionRow) -> Result<()> {
        let sql =
            format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
        self.execute(
            "cannot create session",
            &sql,
            &[
                &r.id,
                &r.client_did,
                &r.server_did,
                &r.sealed_key,
                &r.created_at,
                &r.expires_at,
                &r.last_activity,
                &r.metadata,
                &r.message_count,
                &r.max_messages,
                &r.idle_timeout_seconds,
            ],
        )
        .await
        .map(drop)
        .map_err(|e| already_exists(e, &format!("session {:?}", r.id)))
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        self.standby_read(true, "cannot read session", &sql, &[&id]).await?.first().map(session_row).transpose()
    }

    async fn update_session(&self, r: &SessionRow, now: DateTime<Utc>) -> Result<Conditional<()>> {
        let sql = format!(
            "UPDATE sessions SET session_key = $2, expires_at = $3, metadata = $4, max_messages = $5, idle_timeout_seconds = $6 WHERE id = $1 AND {}",
            live(7)
        );
        let n = self
            .execute(
                "cannot update session",
                &sql,
                &[&r.id, &r.sealed_key, &r.expires_at, &r.metadata, &r.max_messages, &r.idle_timeout_seconds, &now],
            )
            .await?;
        Ok(if n == 1 { Conditional::Done(()) } else { Conditional::NotLive })
    }

    async fn touch_session(&self, id: &str, now: DateTime<Utc>) -> Result<Conditional<SessionRow>> {
        let sql = format!(
            "UPDATE sessions SET message_count = message_count + 1, last_activity = $2 WHERE id = $1 AND {} RETURNING {SESSION_COLUMNS}",
            live(2)
        );
        if let Some(row) = self.query("cannot touch session", &sql, &[&id, &now]).await?.first() {
            return Ok(Conditional::Done(session_row(row)?));
        }
        let exists =
            !self.query("cannot read session", "SELECT 1 FROM sessions WHERE id = $1", &[&id]).await?.is_empty();
        Ok(if exists { Conditional::NotLive } else { Conditional::NotFound })
    }

    async fn accept(
        &self,
        session_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Accepted> {
        let message = Message { session_id: session_id.to_string(), nonce: nonce.to_string(), expires_at };
        self.accepts
            .submit(vec![message], now)
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::new(ErrorKind::Internal, "an accept batch gave no answer")))
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        Ok(self.execute("cannot delete session", "DELETE FROM sessions WHERE id = $1", &[&id]).await? == 1)
    }

    async fn list_sessions(&self, party: Party, did: &str, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>> {
        let column = match party {
            Party::Client => "client_did",
            Party::Server => "server_did",
        };
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE {column} = $1 AND {} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4",
            live(2)
        );
        let (limit, offset) = (i64::from(page.limit), i64::from(page.offset));
        self.standby_read(false, "cannot list sessions", &sql, &[&did, &now, &limit, &offset])
            .await?
            .iter()
            .map(session_row)
            .collect()
    }

    async fn list_all_sessions(&self, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE {} ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
            live(1)
        );
        let (limit, offset) = (i64::from(page.limit), i64::from(page.offset));
        self.standby_read(false, "cannot list sessions", &sql, &[&now, &limit, &offset])
            .await?
            .iter()
            .map(session_row)
            .collect()
    }

    async fn count_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM sessions WHERE {}", live(1));
        let rows = self.query("cannot count sessions", &sql, &[&now]).await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>, batch: u32) -> Result<u64> {
        // SKIP LOCKED: two cleaners never wait on each other, and a batch never waits on a
        // session being touched right now.
        let sql = format!(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE NOT {} LIMIT $2 FOR UPDATE SKIP LOCKED)",
            live(1)
        );
        self.execute("cannot delete expired sessions", &sql, &[&now, &i64::from(batch)]).await
    }

    async fn session_keys_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let after = after.unwrap_or("");
        let rows = self
            .query(
                "cannot read session keys",
                "SELECT id, session_key FROM sessions WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await?;
        rows.iter().map(|r| Ok((column(r, 0, "session")?, column(r, 1, "session")?))).collect()
    }

    async fn replace_session_key(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let n = self
            .execute(
                "cannot replace session key",
                "UPDATE sessions SET session_key = $3 WHERE id = $1 AND session_key = $2",
                &[&id, &old, &new],
            )
            .await?;
        Ok(n == 1)
    }

    async fn claim_nonces(&self, claims: &[NonceClaim], now: DateTime<Utc>) -> Result<Vec<Claim>> {
        self.batcher.claim(claims.to_vec(), now).await
    }

    async fn nonce_used(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool> {
        let rows = self
            .query("cannot read nonce", "SELECT 1 FROM nonces WHERE nonce = $1 AND expires_at > $2", &[&nonce, &now])
            .await?;
        Ok(!rows.is_empty())
    }

    async fn count_nonces(&self, now: DateTime<Utc>) -> Result<u64> {
        let rows =
            self.query("cannot count nonces", "SELECT count(*) FROM nonces WHERE expires_at > $1", &[&now]).await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    async fn delete_expired_nonces(&self, now: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.execute(
            "cannot delete expired nonces",
            "DELETE FROM nonces WHERE nonce IN (SELECT nonce FROM nonces WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&now, &i64::from(batch)],
        )
        .await
    }

    async fn insert_did(&self, r: &DidRecord) -> Result<()> {
        let sql = format!("INSERT INTO dids ({DID_COLUMNS}) VALUES ({DID_VALUES})");
        self.write_did("cannot create DID", &sql, r)
            .await
            .map(drop)
            .map_err(|e| already_exists(e, &format!("DID {:?}", r.did)))
    }

    async fn upsert_did(&self, r: &DidRecord) -> Result<DidRecord> {
        let sql = format!(
            "INSERT INTO dids ({DID_COLUMNS}) VALUES ({DID_VALUES}) \
             ON CONFLICT (did) DO UPDATE SET public_key = EXCLUDED.public_key, owner_address = EXCLUDED.owner_address, \
             key_type = EXCLUDED.key_type, revoked = EXCLUDED.revoked, updated_at = EXCLUDED.updated_at, \
             key_agreement_key = EXCLUDED.key_agreement_key, endpoint = EXCLUDED.endpoint, capabilities = EXCLUDED.capabilities, \
             fetched_at = EXCLUDED.fetched_at, stale_after = EXCLUDED.stale_after RETURNING {DID_COLUMNS}"
        );
        let rows = self.write_did("cannot store DID", &sql, r).await?;
        did_row(&rows[0])
    }

    async fn get_did(&self, did: &str) -> Result<Option<DidRecord>> {
        let sql = format!("SELECT {DID_COLUMNS} FROM dids WHERE did = $1");
        self.standby_read(true, "cannot read DID", &sql, &[&did]).await?.first().map(did_row).transpose()
    }

    async fn update_did(&self, r: &DidRecord) -> Result<Option<DidRecord>> {
        let sql = format!(
            "UPDATE dids SET public_key = $2, owner_address = $3, key_type = $4, revoked = $5, updated_at = $6, key_agreement_key = $7, \
             endpoint = $8, capabilities = $9, fetched_at = $10, stale_after = $11 WHERE did = $1 RETURNING {DID_COLUMNS}"
        );
        let capabilities = serde_json::json!(r.capabilities);
        let rows = self
            .query(
                "cannot update DID",
                &sql,
                &[
                    &r.did,
                    &r.public_key,
                    &r.owner_address,
                    &r.key_type.as_str(),
                    &r.revoked,
                    &r.updated_at,
                    &r.key_agreement_key,
                    &r.endpoint,
                    &capabilities,
                    &r.fetched_at,
                    &r.stale_after,
                ],
            )
            .await?;
        rows.first().map(did_row).transpose()
    }

    async fn delete_did(&self, did: &str) -> Result<bool> {
        Ok(self.execute("cannot delete DID", "DELETE FROM dids WHERE did = $1", &[&did]).await? == 1)
    }

    async fn list_dids(&self, owner: &str) -> Result<Vec<DidRecord>> {
        let sql = format!("SELECT {DID_COLUMNS} FROM dids WHERE owner_address = $1 ORDER BY created_at DESC, did DESC");
        self.standby_read(false, "cannot list DIDs", &sql, &[&owner]).await?.iter().map(did_row).collect()
    }

    async fn list_all_dids(&self, page: Page) -> Result<Vec<DidRecord>> {
        let sql = format!("SELECT {DID_COLUMNS} FROM dids ORDER BY created_at DESC, did DESC LIMIT $1 OFFSET $2");
        let (limit, offset) = (i64::from(page.limit), i64::from(page.offset));
        self.standby_read(false, "cannot list DIDs", &sql, &[&limit, &offset]).await?.iter().map(did_row).collect()
    }

    async fn revoke_did(&self, did: &str, now: DateTime<Utc>) -> Result<bool> {
        Ok(self
            .execute(
                "cannot revoke DID",
                "UPDATE dids SET revoked = TRUE, updated_at = $2 WHERE did = $1",
                &[&did, &now],
            )
            .await?
            == 1)
    }
}
