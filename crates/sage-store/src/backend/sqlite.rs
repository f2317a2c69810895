//! SQLite through rusqlite: WAL journal, `synchronous=NORMAL`, a few connections, and every
//! call on a blocking thread so the async runtime never waits on the disk.

use std::sync::{Arc, Condvar, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use sage_conn::SqliteLocation;

use super::batch::ClaimBatcher;
use super::{Accepted, Backend, Conditional, Party, SessionRow};
use crate::error::{from_sqlite, ErrorKind, Result, StoreError};
use crate::model::{Claim, DidRecord, KeyType, NonceClaim, Page};

const SESSION_COLUMNS: &str = "id, client_did, server_did, session_key, created_at, expires_at, last_activity, metadata, message_count, max_messages, idle_timeout_seconds";
const DID_COLUMNS: &str = "did, public_key, owner_address, key_type, revoked, created_at, updated_at, key_agreement_key, endpoint, capabilities, fetched_at, stale_after";

/// The liveness rule of `SessionRow::is_live`, in SQL, for the time in parameter `n`.
fn live(n: usize) -> String {
    format!(
        "(expires_at > ?{n} AND (idle_timeout_seconds IS NULL OR last_activity + idle_timeout_seconds * 1000000 > ?{n}) \
         AND (max_messages IS NULL OR message_count < max_messages))"
    )
}

struct Pool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

/// A connection borrowed from the pool, put back on drop.
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("leased connection")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("leased connection")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Ok(mut idle) = self.pool.idle.lock() {
                idle.push(conn);
            }
            self.pool.returned.notify_one();
        }
    }
}

impl Pool {
    fn lease(&self) -> Result<Lease<'_>> {
        let mut idle =
            self.idle.lock().map_err(|_| StoreError::new(ErrorKind::Internal, "sqlite pool lock poisoned"))?;
        loop {
            if let Some(conn) = idle.pop() {
                return Ok(Lease { pool: self, conn: Some(conn) });
            }
            idle = self
                .returned
                .wait(idle)
                .map_err(|_| StoreError::new(ErrorKind::Internal, "sqlite pool lock poisoned"))?;
        }
    }
}

pub(crate) struct SqliteBackend {
    pool: Arc<Pool>,
    label: String,
    batcher: ClaimBatcher,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend").field("database", &self.label).finish()
    }
}

const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn configure(conn: &Connection, in_memory: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if !in_memory {
        // WAL lets readers work while one writer commits; NORMAL syncs at checkpoints,
        // which keeps every commit durable against a process crash and loses at most the
        // last transactions on power loss. Switching modes takes a lock that SQLite can
        // refuse at once, without waiting, while another process opens the file: only
        // switch when needed, and retry a refusal for as long as the busy timeout.
        let started = std::time::Instant::now();
        loop {
            let result = conn.pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0)).and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(())
                } else {
                    conn.pragma_update(None, "journal_mode", "WAL")
                }
            });
            match result {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => break other?,
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl SqliteBackend {
    pub(crate) fn open(location: &SqliteLocation) -> Result<SqliteBackend> {
        let (size, label) = match location {
            SqliteLocation::InMemory => (1, ":memory:".to_string()),
            SqliteLocation::File(path) => (4, path.display().to_string()),
        };
        if let SqliteLocation::File(path) = location {
            sage_conn::create_private_file(path).map_err(|e| {
                StoreError::new(ErrorKind::Unavailable, format!("cannot create {label}: {e}")).with_source(e)
            })?;
        }
        let mut conns = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = match location {
                SqliteLocation::InMemory => Connection::open_in_memory(),
                SqliteLocation::File(path) => Connection::open(path),
            }
            .map_err(|e| from_sqlite(&format!("cannot open {label}"), e))?;
            configure(&conn, matches!(location, SqliteLocation::InMemory))
                .map_err(|e| from_sqlite("cannot configure SQLite", e))?;
            conns.push(conn);
        }
        let pool = Arc::new(Pool { idle: Mutex::new(conns), returned: Condvar::new() });
        // SQLite has one writer, so nonce claims get a thread and a connection of their
        // own: each batch is one transaction and one commit, with no hand-off per batch.
        let writer = match location {
            SqliteLocation::InMemory => None,
            SqliteLocation::File(path) => {
                let conn = Connection::open(path).map_err(|e| from_sqlite(&format!("cannot open {label}"), e))?;
                configure(&conn, false).map_err(|e| from_sqlite("cannot configure SQLite", e))?;
                Some(conn)
            }
        };
        let batcher = match writer {
            Some(mut conn) => {
                let label = label.clone();
                ClaimBatcher::claims_on_thread(
                    "sage-sqlite-claims",
                    move |claims, now| claim_transaction(&mut conn, &claims, now).map_err(|e| e.on_file(&label)),
                    1000,
                )
            }
            // A private in-memory database exists only on the pool's one connection.
            None => {
                let pool = pool.clone();
                ClaimBatcher::claims_on_thread(
                    "sage-sqlite-claims",
                    move |claims, now| {
                        let mut conn = pool.lease()?;
                        claim_transaction(&mut conn, &claims, now)
                    },
                    1000,
                )
            }
        }
        .map_err(|e| StoreError::new(ErrorKind::Internal, format!("cannot start the SQLite claim writer: {e}")))?;
        Ok(SqliteBackend { pool, label, batcher })
    }

    /// Creates SAGE's schema on a private in-memory database, which only this store's
    /// connection can see.
    pub(crate) async fn migrate_in_place(&self) -> Result<()> {
        self.run(|conn| {
            for m in crate::migrations(sage_migrate::Dialect::Sqlite).migrations {
                conn.execute_batch(&m.up.sql).map_err(|e| from_sqlite(&format!("cannot apply {}", m.up.origin), e))?;
            }
            Ok(())
        })
        .await
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let label = self.label.clone();
        // Any Tokio runtime will do, the caller's; without one there are no blocking threads
        // to run on, which is said rather than panicked.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::new(
                ErrorKind::Internal,
                "a SQLite store must be called from within a Tokio runtime (any runtime will do)",
            )
        })?;
        runtime
            .spawn_blocking(move || {
                let mut conn = pool.lease()?;
                f(&mut conn).map_err(|e| e.on_file(&label))
            })
            .await
            .map_err(|e| StoreError::new(ErrorKind::Internal, format!("sqlite task failed: {e}")))?
    }
}

fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    let metadata: Option<String> = r.get(7)?;
    Ok(SessionRow {
        id: r.get(0)?,
        client_did: r.get(1)?,
        server_did: r.get(2)?,
        sealed_key: r.get(3)?,
        created_at: time(r.get(4)?),
        expires_at: time(r.get(5)?),
        last_activity: time(r.get(6)?),
        // Another client may have stored text this parser refuses (not JSON, or nested
        // deeper than its recursion limit). Reading it as "no metadata" would let the next
        // update erase it, so it is an error naming the column.
        metadata: metadata.map(|m| serde_json::from_str(&m)).transpose().map_err(|e| {
            let named = std::io::Error::other(format!("column metadata: {e}"));
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(named))
        })?,
        message_count: r.get(8)?,
        max_messages: r.get(9)?,
        idle_timeout_seconds: r.get(10)?,
    })
}

fn did_row(r: &Row<'_>) -> rusqlite::Result<(DidRecord, String)> {
    let key_type: String = r.get(3)?;
    let capabilities: String = r.get(9)?;
    let record = DidRecord {
        did: r.get(0)?,
        public_key: r.get(1)?,
        owner_address: r.get(2)?,
        key_type: KeyType::parse(&key_type).unwrap_or(KeyType::Ed25519),
        revoked: r.get(4)?,
        created_at: time(r.get(5)?),
        updated_at: time(r.get(6)?),
        key_agreement_key: r.get(7)?,
        endpoint: r.get(8)?,
        capabilities: serde_json::from_str(&capabilities).unwrap_or_default(),
        fetched_at: time(r.get(10)?),
        stale_after: r.get::<_, Option<i64>>(11)?.map(time),
    };
    Ok((record, key_type))
}

fn checked_did((record, key_type): (DidRecord, String)) -> Result<DidRecord> {
    if KeyType::parse(&key_type).is_none() {
        return Err(StoreError::new(
            ErrorKind::Internal,
            format!("DID {:?} has an unknown key type {key_type:?}", record.did),
        ));
    }
    Ok(record)
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// Placeholders for every column of `DID_COLUMNS`, in order.
const DID_VALUES: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12";

/// A DID record as values for `?1`…`?12`, in the order of `DID_COLUMNS`.
fn did_values(r: &DidRecord) -> [Value; 12] {
    [
        r.did.clone().into(),
        r.public_key.clone().into(),
        r.owner_address.clone().into(),
        r.key_type.as_str().to_string().into(),
        r.revoked.into(),
        us(r.created_at).into(),
        us(r.updated_at).into(),
        r.key_agreement_key.clone().into(),
        r.endpoint.clone().into(),
        serde_json::to_string(&r.capabilities).unwrap_or_else(|_| "[]".into()).into(),
        us(r.fetched_at).into(),
        r.stale_after.map(us).into(),
    ]
}

/// Claims one nonce; returns a row when it was fresh (unused, or its use expired).
const CLAIM: &str = "INSERT INTO nonces (nonce, session_id, used_at, expires_at) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (nonce) DO UPDATE SET session_id = excluded.session_id, used_at = excluded.used_at, expires_at = excluded.expires_at \
     WHERE nonces.expires_at <= excluded.used_at RETURNING 1";

/// Claims distinct nonces in one immediate transaction: SQLite has one writer, so the
/// batch is atomic and costs one commit.
fn claim_transaction(conn: &mut Connection, claims: &[NonceClaim], now: DateTime<Utc>) -> Result<Vec<Claim>> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| from_sqlite("cannot claim nonces", e))?;
    let mut answers = Vec::with_capacity(claims.len());
    {
        let mut stmt = tx.prepare_cached(CLAIM).map_err(|e| from_sqlite("cannot claim nonces", e))?;
        for claim in claims {
            let fresh = stmt
                .exists(params![claim.nonce, claim.session_id, us(now), us(claim.expires_at)])
                .map_err(|e| from_sqlite("cannot claim nonce", e))?;
            answers.push(if fresh { Claim::Fresh } else { Claim::Replayed });
        }
    }
    tx.commit().map_err(|e| from_sqlite("cannot commit nonce claims", e))?;
    Ok(answers)
}

#[async_trait]
impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        self.run(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(|e| from_sqlite("ping failed", e))).await
    }

    async fn close(&self) {}

    async fn insert_session(&self, row: &SessionRow) -> Result<()> {
        let r = row.clone();
        self.run(move |c| {
            let sql = format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            );
            c.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.execute(params![
                        r.id,
                        r.client_did,
                        r.server_did,
                        r.sealed_key,
                        us(r.created_at),
                        us(r.expires_at),
                        us(r.last_activity),
                        json_text(&r.metadata),
                        r.message_count,
                        r.max_messages,
                        r.idle_timeout_seconds
                    ])
                })
                .map(drop)
                .map_err(|e| match from_sqlite("cannot create session", e) {
                    e if e.kind() == ErrorKind::AlreadyExists => {
                        StoreError::new(ErrorKind::AlreadyExists, format!("session {:?} already exists", r.id))
                    }
                    e => e,
                })
        })
        .await
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionRow>> {
        let id = id.to_string();
        self.run(move |c| {
            let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1");
            c.prepare_cached(&sql)
                .and_then(|mut s| s.query_row([&id], session_row).optional())
                .map_err(|e| from_sqlite("cannot read session", e))
        })
        .await
    }

    async fn update_session(&self, row: &SessionRow, now: DateTime<Utc>) -> Result<Conditional<()>> {
        let r = row.clone();
        self.run(move |c| {
            let sql = format!(
                "UPDATE sessions SET session_key = ?2, expires_at = ?3, metadata = ?4, max_messages = ?5, idle_timeout_seconds = ?6 WHERE id = ?1 AND {}",
                live(7)
            );
            let n = c
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.execute(params![r.id, r.sealed_key, us(r.expires_at), json_text(&r.metadata), r.max_messages, r.idle_timeout_seconds, us(now)])
                })
                .map_err(|e| from_sqlite("cannot update session", e))?;
            Ok(if n == 1 { Conditional::Done(()) } else { Conditional::NotLive })
        })
        .await
    }

    async fn touch_session(&self, id: &str, now: DateTime<Utc>) -> Result<Conditional<SessionRow>> {
        let id = id.to_string();
        self.run(move |c| {
            let sql = format!(
                "UPDATE sessions SET message_count = message_count + 1, last_activity = ?2 WHERE id = ?1 AND {} RETURNING {SESSION_COLUMNS}",
                live(2)
            );
            let row = c
                .prepare_cached(&sql)
                .and_then(|mut s| s.query_row(params![id, us(now)], session_row).optional())
                .map_err(|e| from_sqlite("cannot touch session", e))?;
            if let Some(row) = row {
                return Ok(Conditional::Done(row));
            }
            let exists = c
                .prepare_cached("SELECT 1 FROM sessions WHERE id = ?1")
                .and_then(|mut s| s.exists([&id]))
                .map_err(|e| from_sqlite("cannot read session", e))?;
            Ok(if exists { Conditional::NotLive } else { Conditional::NotFound })
        })
        .await
    }

    async fn accept(
        &self,
        session_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Accepted> {
        let (id, nonce) = (session_id.to_string(), nonce.to_string());
        self.run(move |c| {
            // One immediate transaction: the touch and the claim commit together, and a
            // transaction dropped before its commit rolls both back.
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| from_sqlite("cannot accept message", e))?;
            let sql = format!(
                "UPDATE sessions SET message_count = message_count + 1, last_activity = ?2 WHERE id = ?1 AND {} RETURNING {SESSION_COLUMNS}",
                live(2)
            );
            let row = tx
                .prepare_cached(&sql)
                .and_then(|mut s| s.query_row(params![id, us(now)], session_row).optional())
                .map_err(|e| from_sqlite("cannot touch session", e))?;
            let Some(row) = row else {
                let exists = tx
                    .prepare_cached("SELECT 1 FROM sessions WHERE id = ?1")
                    .and_then(|mut s| s.exists([&id]))
                    .map_err(|e| from_sqlite("cannot read session", e))?;
                return Ok(if exists { Accepted::NotLive } else { Accepted::NotFound });
            };
            let fresh = tx
                .prepare_cached(CLAIM)
                .and_then(|mut s| s.exists(params![nonce, id, us(now), us(expires_at)]))
                .map_err(|e| from_sqlite("cannot claim nonce", e))?;
            if !fresh {
                return Ok(Accepted::Replayed);
            }
            tx.commit().map_err(|e| from_sqlite("cannot commit accepted message", e))?;
            Ok(Accepted::Done(row))
        })
        .await
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.run(move |c| {
            c.prepare_cached("DELETE FROM sessions WHERE id = ?1")
                .and_then(|mut s| s.execute([&id]))
                .map(|n| n == 1)
                .map_err(|e| from_sqlite("cannot delete session", e))
        })
        .await
    }

    async fn list_sessions(&self, party: Party, did: &str, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>> {
        let did = did.to_string();
        self.run(move |c| {
            let column = match party {
                Party::Client => "client_did",
                Party::Server => "server_did",
            };
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE {column} = ?1 AND {} ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4",
                live(2)
            );
            c.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(params![did, us(now), page.limit, page.offset], session_row)?.collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| from_sqlite("cannot list sessions", e))
        })
        .await
    }

    async fn list_all_sessions(&self, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>> {
        self.run(move |c| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions WHERE {} ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3",
                live(1)
            );
            c.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(params![us(now), page.limit, page.offset], session_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| from_sqlite("cannot list sessions", e))
        })
        .await
    }

    async fn count_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        self.run(move |c| {
            let sql = format!("SELECT count(*) FROM sessions WHERE {}", live(1));
            c.prepare_cached(&sql)
                .and_then(|mut s| s.query_row([us(now)], |r| r.get::<_, i64>(0)))
                .map(|n| n as u64)
                .map_err(|e| from_sqlite("cannot count sessions", e))
        })
        .await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.run(move |c| {
            let sql = format!(
                "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE NOT {} LIMIT ?2)",
                live(1)
            );
            c.prepare_cached(&sql)
                .and_then(|mut s| s.execute(params![us(now), batch]))
                .map(|n| n as u64)
                .map_err(|e| from_sqlite("cannot delete expired sessions", e))
        })
        .await
    }

    async fn session_keys_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let after = after.unwrap_or("").to_string();
        self.run(move |c| {
            c.prepare_cached("SELECT id, session_key FROM sessions WHERE id > ?1 ORDER BY id LIMIT ?2")
                .and_then(|mut s| {
                    s.query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| from_sqlite("cannot read session keys", e))
        })
        .await
    }

    async fn replace_session_key(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let (id, old, new) = (id.to_string(), old.to_vec(), new.to_vec());
        self.run(move |c| {
            c.prepare_cached("UPDATE sessions SET session_key = ?3 WHERE id = ?1 AND session_key = ?2")
                .and_then(|mut s| s.execute(params![id, old, new]))
                .map(|n| n == 1)
                .map_err(|e| from_sqlite("cannot replace session key", e))
        })
        .await
    }

    async fn claim_nonces(&self, claims: &[NonceClaim], now: DateTime<Utc>) -> Result<Vec<Claim>> {
        self.batcher.claim(claims.to_vec(), now).await
    }

    async fn nonce_used(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool> {
        let nonce = nonce.to_string();
        self.run(move |c| {
            c.prepare_cached("SELECT 1 FROM nonces WHERE nonce = ?1 AND expires_at > ?2")
                .and_then(|mut s| s.exists(params![nonce, us(now)]))
                .map_err(|e| from_sqlite("cannot read nonce", e))
        })
        .await
    }

    async fn count_nonces(&self, now: DateTime<Utc>) -> Result<u64> {
        self.run(move |c| {
            c.prepare_cached("SELECT count(*) FROM nonces WHERE expires_at > ?1")
                .and_then(|mut s| s.query_row([us(now)], |r| r.get::<_, i64>(0)))
                .map(|n| n as u64)
                .map_err(|e| from_sqlite("cannot count nonces", e))
        })
        .await
    }

    async fn delete_expired_nonces(&self, now: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.run(move |c| {
            c.prepare_cached(
                "DELETE FROM nonces WHERE rowid IN (SELECT rowid FROM nonces WHERE expires_at <= ?1 LIMIT ?2)",
            )
            .and_then(|mut s| s.execute(params![us(now), batch]))
            .map(|n| n as u64)
            .map_err(|e| from_sqlite("cannot delete expired nonces", e))
        })
        .await
    }

    async fn insert_did(&self, record: &DidRecord) -> Result<()> {
        let values = did_values(record);
        let did = record.did.clone();
        self.run(move |c| {
            let sql = format!("INSERT INTO dids ({DID_COLUMNS}) VALUES ({DID_VALUES})");
            c.prepare_cached(&sql).and_then(|mut s| s.execute(params_from_iter(values))).map(drop).map_err(|e| {
                match from_sqlite("cannot create DID", e) {
                    e if e.kind() == ErrorKind::AlreadyExists => {
                        StoreError::new(ErrorKind::AlreadyExists, format!("DID {did:?} already exists"))
                    }
                    e => e,
                }
            })
        })
        .await
    }

    async fn upsert_did(&self, record: &DidRecord) -> Result<DidRecord> {
        let values = did_values(record);
        self.run(move |c| {
            let sql = format!(
                "INSERT INTO dids ({DID_COLUMNS}) VALUES ({DID_VALUES}) \
                 ON CONFLICT (did) DO UPDATE SET public_key = excluded.public_key, owner_address = excluded.owner_address, \
                 key_type = excluded.key_type, revoked = excluded.revoked, updated_at = excluded.updated_at, \
                 key_agreement_key = excluded.key_agreement_key, endpoint = excluded.endpoint, capabilities = excluded.capabilities, \
                 fetched_at = excluded.fetched_at, stale_after = excluded.stale_after RETURNING {DID_COLUMNS}"
            );
            let row = c
                .prepare_cached(&sql)
                .and_then(|mut s| s.query_row(params_from_iter(values), did_row))
                .map_err(|e| from_sqlite("cannot store DID", e))?;
            checked_did(row)
        })
        .await
    }

    async fn get_did(&self, did: &str) -> Result<Option<DidRecord>> {
        let did = did.to_string();
        self.run(move |c| {
            let sql = format!("SELECT {DID_COLUMNS} FROM dids WHERE did = ?1");
            c.prepare_cached(&sql)
                .and_then(|mut s| s.query_row([&did], did_row).optional())
                .map_err(|e| from_sqlite("cannot read DID", e))?
                .map(checked_did)
                .transpose()
        })
        .await
    }

    async fn update_did(&self, record: &DidRecord) -> Result<Option<DidRecord>> {
        let values = did_values(record);
        self.run(move |c| {
            // Binds every column's value; `?6` (created_at) is left unused so a DID keeps its creation time.
            let sql = format!(
                "UPDATE dids SET public_key = ?2, owner_address = ?3, key_type = ?4, revoked = ?5, updated_at = ?7, key_agreement_key = ?8, \
                 endpoint = ?9, capabilities = ?10, fetched_at = ?11, stale_after = ?12 WHERE did = ?1 RETURNING {DID_COLUMNS}"
            );
            c.prepare_cached(&sql)
                .and_then(|mut s| s.query_row(params_from_iter(values), did_row).optional())
                .map_err(|e| from_sqlite("cannot update DID", e))?
                .map(checked_did)
                .transpose()
        })
        .await
    }

    async fn delete_did(&self, did: &str) -> Result<bool> {
        let did = did.to_string();
        self.run(move |c| {
            c.prepare_cached("DELETE FROM dids WHERE did = ?1")
                .and_then(|mut s| s.execute([&did]))
                .map(|n| n == 1)
                .map_err(|e| from_sqlite("cannot delete DID", e))
        })
        .await
    }

    async fn list_dids(&self, owner: &str) -> Result<Vec<DidRecord>> {
        let owner = owner.to_string();
        self.run(move |c| {
            let sql =
                format!("SELECT {DID_COLUMNS} FROM dids WHERE owner_address = ?1 ORDER BY created_at DESC, did DESC");
            let rows = c
                .prepare_cached(&sql)
                .and_then(|mut s| s.query_map([&owner], did_row)?.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| from_sqlite("cannot list DIDs", e))?;
            rows.into_iter().map(checked_did).collect()
        })
        .await
    }

    async fn list_all_dids(&self, page: Page) -> Result<Vec<DidRecord>> {
        self.run(move |c| {
            let sql = format!("SELECT {DID_COLUMNS} FROM dids ORDER BY created_at DESC, did DESC LIMIT ?1 OFFSET ?2");
            let rows = c
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(params![page.limit, page.offset], did_row)?.collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(|e| from_sqlite("cannot list DIDs", e))?;
            rows.into_iter().map(checked_did).collect()
        })
        .await
    }

    async fn revoke_did(&self, did: &str, now: DateTime<Utc>) -> Result<bool> {
        let did = did.to_string();
        self.run(move |c| {
            c.prepare_cached("UPDATE dids SET revoked = 1, updated_at = ?2 WHERE did = ?1")
                .and_then(|mut s| s.execute(params![did, us(now)]))
                .map(|n| n == 1)
                .map_err(|e| from_sqlite("cannot revoke DID", e))
        })
        .await
    }
}
