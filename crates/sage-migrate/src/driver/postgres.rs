use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sage_conn::{quote_ident, PgSettings};
use tokio_postgres::Client;

use super::{db_error, lock_key, statement_error, Driver};
use crate::error::StatementError;
use crate::legacy::{LegacySync, LegacyTable, Peer, SqlxRow};
use crate::split::Statement;
use crate::{Dialect, Error, HistoryRow, RowState};

/// Runs migrations over one dedicated connection, which also holds the session-level
/// advisory lock; dropping the connection releases the lock on every path.
pub(crate) struct PgDriver {
    client: Option<Client>,
    settings: PgSettings,
    /// The schema the history table lives in, fixed when connecting so that a migration
    /// that changes `search_path` cannot move the bookkeeping.
    schema: String,
    table: String,
    user: String,
    locked: bool,
    /// Set in the server session that holds the migration lock; every transaction checks
    /// that it runs in that session (see `begin`).
    session_token: String,
    /// The peers' advisory locks held beside ours (golang-migrate's, sqlx's).
    peer_locks: Vec<i64>,
    /// How long a statement of a transactional migration waits for a table lock.
    lock_timeout: Duration,
    /// The URL declares a pooler that shares server sessions: the connection reads inside
    /// one read-only transaction, which keeps it in one server session, and never migrates.
    pinned: bool,
    /// The statements sent for every migration, prepared once on this connection so that
    /// each use costs no parse round trip. A migration that deallocates prepared statements
    /// or discards the session clears them (see `reset_session`).
    prepared: Vec<(Prepared, tokio_postgres::Statement)>,
}

/// The driver's per-migration statements (see `PgDriver::prepared`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prepared {
    BeginCheck,
    WriteRow,
}

impl PgDriver {
    pub(crate) async fn connect(settings: &PgSettings, table: &str, lock_timeout: Duration) -> Result<PgDriver, Error> {
        let client = sage_conn::connect(settings).await?;
        let pinned = matches!(settings.pooler, sage_conn::Pooler::Transaction | sage_conn::Pooler::Statement);
        if pinned {
            client.batch_execute("BEGIN READ ONLY").await.map_err(|e| db_error("cannot start reading", e))?;
        } else {
            // If this process dies mid-migration, the server should notice within a second
            // and roll back, releasing the lock, instead of finishing a long statement for
            // nobody. The setting exists from PostgreSQL 14; older servers notice on their
            // next write.
            let _ = client.batch_execute("SET client_connection_check_interval = '1s'").await;
        }
        let row = client
            .query_one("SELECT current_schema(), current_user::text", &[])
            .await
            .map_err(|e| db_error("cannot read the current schema", e))?;
        let schema: Option<String> = row.get(0);
        let schema = schema.ok_or_else(|| {
            Error::DatabaseOther(
                "no schema is selected (search_path is empty); set search_path or create the public schema".into(),
            )
        })?;
        let (schema, table) = match table.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => (schema, table.to_string()),
        };
        Ok(PgDriver {
            client: Some(client),
            settings: settings.clone(),
            schema,
            table,
            user: row.get(1),
            locked: false,
            session_token: session_token(),
            peer_locks: Vec::new(),
            lock_timeout,
            pinned,
            prepared: Vec::new(),
        })
    }

    /// `which`, prepared on first use and kept for the life of the connection.
    async fn prepared(&mut self, which: Prepared) -> Result<tokio_postgres::Statement, Error> {
        if let Some((_, statement)) = self.prepared.iter().find(|(w, _)| *w == which) {
            return Ok(statement.clone());
        }
        let sql = match which {
            Prepared::BeginCheck => format!(
                "SELECT set_config('lock_timeout', $1, true), \
                        NOT $4 OR (coalesce(current_setting('sage.migration_session', true) = $2, false) \
                                   AND EXISTS ({HELD_HERE_3}))"
            ),
            Prepared::WriteRow => format!(
                "INSERT INTO {} (version, name, checksum, state, applied_at, execution_ms, applied_by, statements_done, error)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum, state = EXCLUDED.state,
                   applied_at = EXCLUDED.applied_at, execution_ms = EXCLUDED.execution_ms, applied_by = EXCLUDED.applied_by,
                   statements_done = EXCLUDED.statements_done, error = EXCLUDED.error",
                self.history_table()
            ),
        };
        let statement =
            self.client()?.prepare(&sql).await.map_err(|e| db_error("cannot prepare the bookkeeping statements", e))?;
        self.prepared.push((which, statement.clone()));
        Ok(statement)
    }

    fn client(&self) -> Result<&Client, Error> {
        self.client
            .as_ref()
            .ok_or_else(|| Error::DatabaseOther("the connection was closed after a failed unlock".into()))
    }

    fn history_table(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }

    /// The columns of a bookkeeping table, empty when it does not exist. Read from the
    /// catalog, which every role may read: information_schema shows only tables the role has
    /// privileges on, so a role without them would see no history and be told the database
    /// was never migrated, instead of being told which privilege it lacks.
    async fn table_columns(&self, table: &str) -> Result<Vec<String>, Error> {
        let rows = self
            .client()?
            .query(
                "SELECT a.attname::text FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&self.schema, &table],
            )
            .await
            .map_err(|e| db_error("cannot inspect bookkeeping tables", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Polls for the session-level advisory lock `key` until `timeout` after `started`.
    /// Takes the advisory lock `key`, waiting at most until `timeout` after `started`. For
    /// our own lock (`ours`), the server session is also marked with this run's token, and
    /// a session that holds the lock already is recognised as another client's, handed to
    /// us by a pooler in transaction mode (a fresh session never holds it).
    async fn take_lock(
        &self,
        key: i64,
        started: Instant,
        timeout: Duration,
        what: &str,
        ours: bool,
    ) -> Result<(), Error> {
        let mut pause = Duration::from_millis(50);
        let sql = if ours {
            format!(
                "SELECT CASE WHEN EXISTS ({HELD_HERE}) THEN 'held' \
                             WHEN pg_try_advisory_lock($1) THEN set_config('sage.migration_session', $2, false) \
                             ELSE 'busy' END"
            )
        } else {
            "SELECT CASE WHEN pg_try_advisory_lock($1) THEN 'taken' ELSE 'busy' END".to_string()
        };
        let with_token: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&key, &self.session_token];
        let params = if ours { &with_token[..] } else { &with_token[..1] };
        // Poll instead of blocking in pg_advisory_lock: a session waiting inside that call
        // holds a snapshot, which makes a peer's CREATE INDEX CONCURRENTLY wait for it
        // forever.
        loop {
            let row = self
                .client()?
                .query_one(&sql, params)
                .await
                .map_err(|e| db_error("cannot take the migration lock", e))?;
            match row.get::<_, String>(0).as_str() {
                "held" => return Err(Error::Pooler { what: "cannot take the migration lock".into(), source: None }),
                "busy" => {}
                _ => return Ok(()),
            }
            if started.elapsed() >= timeout {
                let holder = self.lock_holder(key).await.unwrap_or_else(|| "held by another session".into());
                return Err(Error::LockTimeout {
                    what: what.to_string(),
                    database: self.settings.redacted_url(),
                    holder,
                    waited: timeout,
                });
            }
            tokio::time::sleep(pause.min(timeout.saturating_sub(started.elapsed()))).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// The advisory lock keys of the peers whose tables are here: golang-migrate's
    /// (CRC-32 of schema, table and database, times its salt, in 32 bits) and sqlx's (its
    /// factor times the CRC-32 of the database name). dbmate takes no lock.
    async fn peer_lock_keys(&self) -> Result<Vec<(&'static str, i64)>, Error> {
        let mut keys = Vec::new();
        let database: String = self
            .client()?
            .query_one("SELECT current_database()::text", &[])
            .await
            .map_err(|e| db_error("cannot read the database name", e))?
            .get(0);
        if self.table_columns("schema_migrations").await?.iter().any(|c| c == "dirty") {
            // The migrate CLI names the database by its URL's path (`/app`); a program that
            // hands golang-migrate an open connection, by current_database() (`app`).
            let cli = format!("/{database}");
            keys.push(("golang-migrate", golang_migrate_lock_key(&self.schema, "schema_migrations", &cli)));
            keys.push(("golang-migrate", golang_migrate_lock_key(&self.schema, "schema_migrations", &database)));
        }
        if !self.table_columns("_sqlx_migrations").await?.is_empty() {
            keys.push(("sqlx", sqlx_lock_key(&database)));
        }
        Ok(keys)
    }

    /// Who holds our lock, for the timeout message.
    async fn lock_holder(&self, key: i64) -> Option<String> {
        let row = self
            .client()
            .ok()?
            .query_opt(
                "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local'), \
                        coalesce(extract(epoch FROM now() - a.backend_start)::bigint, 0) \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                   AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
                &[&key],
            )
            .await
            .ok()??;
        let (pid, app, addr, secs): (i32, String, String, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
        Some(format!("held by server process {pid} ({app} from {addr}, connected {secs}s ago)"))
    }
}

/// Whether this server session holds the advisory lock with key `$1`.
const HELD_HERE: &str = "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
     AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = $1";

/// [`HELD_HERE`] with the key in `$3`.
const HELD_HERE_3: &str = "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
     AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = $3";

/// Releases the lock in the server session marked with `token`. Directly connected, that
/// is this connection's session, the first try. Behind a pooler in transaction mode each
/// try may land in another server session; only the marked one releases anything, so a
/// few tries give the lock back instead of leaving it with the pooler's server connection.
async fn release(client: &Client, key: i64, token: &str) -> Result<bool, tokio_postgres::Error> {
    // Through a pooler in transaction mode each try may reach another server session; the
    // one holding the lock may be busy with another client for a while. Keep asking for up
    // to a few seconds: a lock left on a pooled server session outlives this process.
    const PATIENCE: Duration = Duration::from_secs(5);
    // The simple protocol, with the key (a number) and the token (hex this process made)
    // written into the text: a named prepared statement would not survive the pooler.
    debug_assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let sql = format!(
        "SELECT CASE WHEN current_setting('sage.migration_session', true) = '{token}' \
                     THEN pg_advisory_unlock({key}) AND set_config('sage.migration_session', '', false) = '' \
                     ELSE false END"
    );
    let started = Instant::now();
    let mut tries = 0u32;
    loop {
        let released = client
            .simple_query(&sql)
            .await?
            .iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some("t")));
        if released {
            return Ok(true);
        }
        tries += 1;
        if started.elapsed() >= PATIENCE {
            return Ok(false);
        }
        // A direct connection answers right the first time; only a pooled one gets here.
        if tries > 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A value no other process uses, to mark the server session that holds our lock.
fn session_token() -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let seed = format!("{}\0{nanos}\0{:p}", std::process::id(), &nanos);
    Sha256::digest(seed.as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl Driver for PgDriver {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn applied_by(&self) -> String {
        self.user.clone()
    }

    async fn lock(&mut self, timeout: Duration) -> Result<(), Error> {
        if self.pinned {
            return Err(Error::Pooler { what: "cannot take the migration lock".into(), source: None });
        }
        let started = Instant::now();
        let key = lock_key(&self.schema, &self.table);
        self.take_lock(key, started, timeout, "another migration is running", true).await?;
        self.locked = true;
        // The peers' own locks too, computed as they compute them, so golang-migrate or an
        // sqlx migrator started at the same moment waits for us instead of racing.
        let peers = match self.peer_lock_keys().await {
            Ok(peers) => peers,
            Err(e) => {
                let _ = self.unlock().await;
                return Err(e);
            }
        };
        for (tool, key) in peers {
            let what = format!("{tool} is migrating this database");
            if let Err(e) = self.take_lock(key, started, timeout, &what, false).await {
                let _ = self.unlock().await;
                return Err(e);
            }
            self.peer_locks.push(key);
        }
        Ok(())
    }

    async fn unlock(&mut self) -> Result<(), Error> {
        if !self.locked {
            return Ok(());
        }
        self.locked = false;
        for key in std::mem::take(&mut self.peer_locks) {
            if let Some(client) = &self.client {
                let _ = client.query_one("SELECT pg_advisory_unlock($1)", &[&key]).await;
            }
        }
        let key = lock_key(&self.schema, &self.table);
        let released = match &self.client {
            Some(client) => release(client, key, &self.session_token).await,
            None => return Ok(()),
        };
        match released {
            Ok(true) => Ok(()),
            other => {
                // Closing the session releases every lock it holds.
                self.client = None;
                match other {
                    Err(e) => Err(db_error("cannot release the migration lock (connection closed instead)", e)),
                    _ => Ok(()),
                }
            }
        }
    }

    async fn ensure_history(&mut self) -> Result<(), Error> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                state text NOT NULL CHECK (state IN ('applied', 'running', 'failed', 'baseline', 'adopted')),
                applied_at timestamptz NOT NULL DEFAULT now(),
                execution_ms bigint NOT NULL DEFAULT 0,
                applied_by text NOT NULL DEFAULT current_user,
                statements_done integer NOT NULL DEFAULT 0,
                error text
            )",
            self.history_table()
        );
        self.client()?.batch_execute(&sql).await.map_err(|e| db_error("cannot create the history table", e))
    }

    async fn history(&mut self) -> Result<Vec<HistoryRow>, Error> {
        if self.table_columns(&self.table.clone()).await?.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT version, name, checksum, state, applied_at, execution_ms, applied_by, statements_done, error FROM {} ORDER BY version",
            self.history_table()
        );
        let rows = self
            .client()?
            .query(&sql, &[])
            .await
            .map_err(|e| statement_error("cannot read the history table", Some(&sql), e))?;
        rows.iter()
            .map(|r| {
                let state: String = r.get(3);
                Ok(HistoryRow {
                    version: r.get(0),
                    name: r.get(1),
                    checksum: r.get(2),
                    state: RowState::parse(&state)
                        .ok_or_else(|| Error::DatabaseOther(format!("unknown state {state:?} in the history table")))?,
                    applied_at: r.get::<_, DateTime<Utc>>(4),
                    execution_ms: r.get(5),
                    applied_by: r.get(6),
                    statements_done: r.get(7),
                    error: r.get(8),
                })
            })
            .collect()
    }

    async fn legacy(&mut self) -> Result<Vec<LegacyTable>, Error> {
        let mut found = Vec::new();
        let columns = self.table_columns("schema_migrations").await?;
        if columns.iter().any(|c| c == "dirty") {
            let sql = format!("SELECT version::bigint, dirty FROM {} LIMIT 1", self.qualified("schema_migrations"));
            let row = self
                .client()?
                .query_opt(&sql, &[])
                .await
                .map_err(|e| statement_error("cannot read schema_migrations", Some(&sql), e))?;
            // golang-migrate writes -1 for "no version" when it leaves that dirty.
            found.push(LegacyTable::GolangMigrate {
                version: row.as_ref().map(|r| r.get::<_, i64>(0)).filter(|v| *v >= 0),
                dirty: row.map(|r| r.get(1)).unwrap_or(false),
            });
        } else if columns.iter().any(|c| c == "version") {
            let sql = format!("SELECT version::text FROM {} ORDER BY 1", self.qualified("schema_migrations"));
            let rows = self
                .client()?
                .query(&sql, &[])
                .await
                .map_err(|e| statement_error("cannot read schema_migrations", Some(&sql), e))?;
            let versions = rows.iter().map(|r| r.get::<_, String>(0)).collect();
            found.push(LegacyTable::Dbmate { versions });
        }
        if !self.table_columns("_sqlx_migrations").await?.is_empty() {
            let sql = format!(
                "SELECT version, success, checksum FROM {} ORDER BY version",
                self.qualified("_sqlx_migrations")
            );
            let rows = self
                .client()?
                .query(&sql, &[])
                .await
                .map_err(|e| statement_error("cannot read _sqlx_migrations", Some(&sql), e))?;
            let rows =
                rows.iter().map(|r| SqlxRow { version: r.get(0), success: r.get(1), checksum: r.get(2) }).collect();
            found.push(LegacyTable::Sqlx { rows });
        }
        Ok(found)
    }

    async fn begin(&mut self) -> Result<(), Error> {
        // A statement that waits for a table lock may already hold others that the
        // application needs: waiting is bounded, and the migration then fails whole.
        // lock_timeout is a 32-bit count of milliseconds, and 0 would mean "no limit".
        let timeout = format!("{}ms", self.lock_timeout.as_millis().clamp(1, i32::MAX as u128));
        // Every transaction checks that it runs in the server session that holds the lock:
        // behind a pooler in transaction mode it may not, and then nothing must change.
        let key = lock_key(&self.schema, &self.table);
        let check = self.prepared(Prepared::BeginCheck).await?;
        let client = self.client()?;
        // BEGIN and the check go out together: one round trip. Should BEGIN fail, the check
        // ran outside any transaction and changed nothing (its setting was local).
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&timeout, &self.session_token, &key, &self.locked];
        let (begun, checked) =
            futures_util::future::join(client.batch_execute("BEGIN"), client.query_one(&check, &params)).await;
        begun.map_err(|e| db_error("cannot begin a transaction", e))?;
        let row = checked.map_err(|e| db_error("cannot set the lock timeout", e))?;
        if !row.get::<_, bool>(1) {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(Error::Pooler { what: "the migration lock was lost".into(), source: None });
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), Error> {
        self.client()?.batch_execute("COMMIT").await.map_err(|e| db_error("cannot commit", e))
    }

    async fn rollback(&mut self) -> Result<(), Error> {
        self.client()?.batch_execute("ROLLBACK").await.map_err(|e| db_error("cannot roll back", e))
    }

    async fn execute(&mut self, sql: &str) -> Result<(), StatementError> {
        let client = self.client().map_err(|e| StatementError::new(e.to_string()))?;
        client.batch_execute(sql).await.map_err(|e| StatementError::from_pg(&e))
    }

    async fn run_statement(&mut self, statement: &Statement<'_>) -> Result<(), StatementError> {
        // DISCARD and DEALLOCATE drop the prepared bookkeeping statements: prepare them again.
        if statement.changes_session {
            self.prepared.clear();
        }
        match statement.copy_data {
            Some(rows) => self.copy_in(statement.sql, rows).await,
            None => self.execute(statement.sql).await,
        }
    }

    async fn copy_in(&mut self, sql: &str, rows: &str) -> Result<(), StatementError> {
        use futures_util::SinkExt;
        let client = self.client().map_err(|e| StatementError::new(e.to_string()))?;
        let sink = client.copy_in::<_, bytes::Bytes>(sql).await.map_err(|e| StatementError::from_pg(&e))?;
        futures_util::pin_mut!(sink);
        if !rows.is_empty() {
            sink.send(bytes::Bytes::copy_from_slice(rows.as_bytes())).await.map_err(|e| StatementError::from_pg(&e))?;
        }
        sink.as_mut().finish().await.map(drop).map_err(|e| StatementError::from_pg(&e))
    }

    async fn reset_session(&mut self) -> Result<(), StatementError> {
        let client = self.client().map_err(|e| StatementError::new(e.to_string()))?;
        // RESET ALL goes back to the values the session started with, including those
        // given at connection time; the one setting of our own is set again.
        client.batch_execute("RESET ALL").await.map_err(|e| StatementError::from_pg(&e))?;
        // Within the migration's transaction a failed SET would abort it: set only where the
        // setting exists (PostgreSQL 14 and later).
        client
            .batch_execute(
                "SELECT set_config('client_connection_check_interval', '1s', false) \
                 WHERE current_setting('server_version_num')::int >= 140000",
            )
            .await
            .map_err(|e| StatementError::from_pg(&e))?;
        // RESET ALL clears the mark of the session that holds the lock too; it is this
        // run's own hex token, so it goes into the text as it is.
        if self.locked {
            debug_assert!(self.session_token.chars().all(|c| c.is_ascii_hexdigit()));
            client
                .batch_execute(&format!("SELECT set_config('sage.migration_session', '{}', false)", self.session_token))
                .await
                .map_err(|e| StatementError::from_pg(&e))?;
        }
        Ok(())
    }

    async fn write_row(&mut self, row: &HistoryRow) -> Result<(), Error> {
        let insert = self.prepared(Prepared::WriteRow).await?;
        self.client()?
            .execute(
                &insert,
                &[
                    &row.version,
                    &row.name,
                    &row.checksum,
                    &row.state.as_str(),
                    &row.applied_at,
                    &row.execution_ms,
                    &row.applied_by,
                    &row.statements_done,
                    &row.error,
                ],
            )
            .await
            .map(drop)
            .map_err(|e| db_error("cannot write the history row", e))
    }

    async fn delete_row(&mut self, version: i64) -> Result<(), Error> {
        let sql = format!("DELETE FROM {} WHERE version = $1", self.history_table());
        self.client()?
            .execute(&sql, &[&version])
            .await
            .map(drop)
            .map_err(|e| db_error("cannot delete the history row", e))
    }

    async fn sync_legacy(&mut self, change: &LegacySync) -> Result<(), Error> {
        let client = self.client()?;
        let result = match change {
            LegacySync::GolangSetVersion { version, dirty } => {
                let table = self.qualified("schema_migrations");
                // golang-migrate keeps exactly one row and replaces it the same way.
                let cleared = client.batch_execute(&format!("DELETE FROM {table}")).await;
                match (cleared, version) {
                    (Err(e), _) => Err(e),
                    (Ok(()), None) => Ok(()),
                    (Ok(()), Some(v)) => client
                        .execute(&format!("INSERT INTO {table} (version, dirty) VALUES ($1, $2)"), &[v, dirty])
                        .await
                        .map(drop),
                }
            }
            LegacySync::SqlxInsert { version, description, checksum, execution_ns } => client
                .execute(
                    &format!(
                        "INSERT INTO {} (version, description, success, checksum, execution_time) VALUES ($1, $2, TRUE, $3, $4) \
                         ON CONFLICT (version) DO UPDATE SET success = TRUE, checksum = EXCLUDED.checksum, description = EXCLUDED.description",
                        self.qualified("_sqlx_migrations")
                    ),
                    &[version, description, checksum, execution_ns],
                )
                .await
                .map(drop),
            LegacySync::SqlxDelete { version } => client
                .execute(&format!("DELETE FROM {} WHERE version = $1", self.qualified("_sqlx_migrations")), &[version])
                .await
                .map(drop),
            LegacySync::DbmateInsert { version } => client
                .execute(
                    &format!("INSERT INTO {} (version) VALUES ($1) ON CONFLICT DO NOTHING", self.qualified("schema_migrations")),
                    &[version],
                )
                .await
                .map(drop),
            LegacySync::DbmateDelete { version } => client
                .execute(&format!("DELETE FROM {} WHERE version = $1", self.qualified("schema_migrations")), &[version])
                .await
                .map(drop),
            // Each as the tool itself creates it, in the history table's schema.
            LegacySync::Create(Peer::GolangMigrate) => client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (version bigint not null primary key, dirty boolean not null)",
                    self.qualified("schema_migrations")
                ))
                .await,
            LegacySync::Create(Peer::Sqlx) => client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
                     installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, \
                     execution_time BIGINT NOT NULL)",
                    self.qualified("_sqlx_migrations")
                ))
                .await,
            LegacySync::Create(Peer::Dbmate) => client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (version varchar(128) primary key)",
                    self.qualified("schema_migrations")
                ))
                .await,
        };
        result.map_err(|e| db_error("cannot update the legacy bookkeeping table", e))
    }
}

/// golang-migrate's advisory lock key for its table in `schema` of `database`.
pub(crate) fn golang_migrate_lock_key(schema: &str, table: &str, database: &str) -> i64 {
    let text = format!("{schema}\0{table}\0{database}");
    i64::from(crc32_ieee(text.as_bytes()).wrapping_mul(1_486_364_155))
}

/// sqlx's advisory lock key for `database`.
pub(crate) fn sqlx_lock_key(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(crc32_ieee(database.as_bytes()))
}

/// CRC-32 (IEEE 802.3, as Go's `crc32.ChecksumIEEE` and the `crc` crate's ISO-HDLC).
fn crc32_ieee(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_one() {
        // The check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32_ieee(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn peer_lock_keys_are_the_peers_own() {
        let golang = golang_migrate_lock_key("public", "schema_migrations", "app");
        assert!((0..=i64::from(u32::MAX)).contains(&golang), "golang-migrate's key is a uint32");
        assert_ne!(golang, golang_migrate_lock_key("other", "schema_migrations", "app"));
        // The key the migrate CLI (v4.18.3) held in pg_locks while migrating database
        // "lockprobe" with its table in "public": it names the database by the URL's path.
        assert_eq!(golang_migrate_lock_key("public", "schema_migrations", "/lockprobe"), 1_048_348_955);
        assert!(sqlx_lock_key("app") > i64::from(u32::MAX), "sqlx's key is a product in 64 bits");
    }
}
