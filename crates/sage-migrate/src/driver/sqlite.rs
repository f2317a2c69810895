use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sage_conn::{quote_ident, SqliteLocation};

use super::Driver;
use crate::error::StatementError;
use crate::legacy::{LegacySync, LegacyTable, Peer, SqlxRow};
use crate::{Dialect, Error, HistoryRow, RowState};

/// Runs migrations on a SQLite database. Concurrent `sage-db` processes are kept apart by
/// an exclusive lock on a file beside the database; each transactional migration also runs
/// in an immediate write transaction, so application writers never see half of it.
///
/// SQLite calls block; the engine runs them inline because migrations are short, one-off
/// administrative work rather than a request path.
pub(crate) struct SqliteDriver {
    conn: Connection,
    lock_path: Option<PathBuf>,
    lock_file: Option<File>,
    table: String,
    /// The connection's `foreign_keys` setting before a migration turned it off; restored
    /// when that migration's transaction ends.
    foreign_keys_before: Option<bool>,
}

fn db_error(what: &str, e: rusqlite::Error) -> Error {
    if crate::error::sqlite_busy(&e) {
        return Error::Busy { what: what.to_string(), source: Box::new(e) };
    }
    super::db_error(what, e)
}

impl SqliteDriver {
    pub(crate) fn open(location: &SqliteLocation, table: &str, busy_timeout: Duration) -> Result<SqliteDriver, Error> {
        let (conn, lock_path) = match location {
            SqliteLocation::InMemory => (Connection::open_in_memory(), None),
            SqliteLocation::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    if !parent.is_dir() {
                        return Err(Error::DatabaseOther(format!(
                            "cannot open {}: the directory {} does not exist",
                            path.display(),
                            parent.display()
                        )));
                    }
                }
                let mut lock = path.clone().into_os_string();
                lock.push("-migrate.lock");
                sage_conn::create_private_file(path).map_err(|source| Error::DatabaseFile {
                    action: "create",
                    path: path.clone(),
                    source,
                })?;
                (Connection::open(path), Some(PathBuf::from(lock)))
            }
        };
        let conn = conn.map_err(|e| db_error("cannot open the SQLite database", e))?;
        // SQLite holds the timeout as 32-bit milliseconds and rusqlite panics on more; a
        // longer wait is the same as the longest one SQLite can do.
        let busy_timeout = busy_timeout.min(std::time::Duration::from_millis(i32::MAX as u64));
        conn.busy_timeout(busy_timeout).map_err(|e| db_error("cannot set the busy timeout", e))?;
        Ok(SqliteDriver { conn, lock_path, lock_file: None, table: table.to_string(), foreign_keys_before: None })
    }

    /// Puts `foreign_keys` back as it was before the migration turned it off.
    fn restore_foreign_keys(&mut self) -> Result<(), Error> {
        match self.foreign_keys_before.take() {
            Some(was_on) => self
                .conn
                .pragma_update(None, "foreign_keys", was_on)
                .map_err(|e| db_error("cannot turn foreign keys back on", e)),
            None => Ok(()),
        }
    }

    /// Every row that breaks a foreign key, as SQLite's `foreign_key_check` finds them; an
    /// error describing them when there is at least one.
    fn check_foreign_keys(&self) -> Result<(), Error> {
        let mut stmt = self
            .conn
            .prepare(r#"SELECT "table", rowid, parent FROM pragma_foreign_key_check"#)
            .map_err(|e| db_error("cannot check foreign keys", e))?;
        let broken = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, String>(2)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db_error("cannot check foreign keys", e))?;
        let Some((table, rowid, parent)) = broken.first() else { return Ok(()) };
        Err(Error::ForeignKeys { broken: broken.len(), table: table.clone(), rowid: *rowid, parent: parent.clone() })
    }

    fn history_table(&self) -> String {
        quote_ident(&self.table)
    }

    fn table_columns(&self, table: &str) -> Result<Vec<String>, Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .map_err(|e| db_error("cannot inspect bookkeeping tables", e))?;
        let rows = stmt
            .query_map([table], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db_error("cannot inspect bookkeeping tables", e))?;
        Ok(rows)
    }
}

#[async_trait]
impl Driver for SqliteDriver {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn applied_by(&self) -> String {
        std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into())
    }

    async fn lock(&mut self, timeout: Duration) -> Result<(), Error> {
        let Some(path) = &self.lock_path else { return Ok(()) };
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|source| Error::DatabaseFile { action: "open lock file", path: path.clone(), source })?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => {
                    self.lock_file = Some(file);
                    return Ok(());
                }
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::LockTimeout {
                        what: "another migration is running".into(),
                        database: "this database".into(),
                        holder: format!("held through {}", path.display()),
                        waited: timeout,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::DatabaseFile { action: "lock", path: path.clone(), source: e })
                }
            }
        }
    }

    async fn unlock(&mut self) -> Result<(), Error> {
        // Closing the file releases the lock even if unlocking fails.
        if let Some(file) = self.lock_file.take() {
            let _ = file.unlock();
        }
        Ok(())
    }

    async fn ensure_history(&mut self) -> Result<(), Error> {
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                checksum TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('applied', 'running', 'failed', 'baseline', 'adopted')),
                applied_at TEXT NOT NULL,
                execution_ms INTEGER NOT NULL DEFAULT 0,
                applied_by TEXT NOT NULL,
                statements_done INTEGER NOT NULL DEFAULT 0,
                error TEXT
            )",
            self.history_table()
        );
        self.conn.execute_batch(&sql).map_err(|e| db_error("cannot create the history table", e))
    }

    async fn history(&mut self) -> Result<Vec<HistoryRow>, Error> {
        if self.table_columns(&self.table)?.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT version, name, checksum, state, applied_at, execution_ms, applied_by, statements_done, error FROM {} ORDER BY version",
            self.history_table()
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| db_error("cannot read the history table", e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, i32>(7)?,
                    r.get::<_, Option<String>>(8)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db_error("cannot read the history table", e))?;
        rows.into_iter()
            .map(|(version, name, checksum, state, applied_at, execution_ms, applied_by, statements_done, error)| {
                Ok(HistoryRow {
                    version,
                    name,
                    checksum,
                    state: RowState::parse(&state)
                        .ok_or_else(|| Error::DatabaseOther(format!("unknown state {state:?} in the history table")))?,
                    applied_at: DateTime::parse_from_rfc3339(&applied_at).map(|t| t.with_timezone(&Utc)).map_err(
                        |_| Error::DatabaseOther(format!("bad applied_at {applied_at:?} in the history table")),
                    )?,
                    execution_ms,
                    applied_by,
                    statements_done,
                    error,
                })
            })
            .collect()
    }

    async fn legacy(&mut self) -> Result<Vec<LegacyTable>, Error> {
        let mut found = Vec::new();
        let columns = self.table_columns("schema_migrations")?;
        if columns.iter().any(|c| c == "dirty") {
            let row = self
                .conn
                .query_row("SELECT version, dirty FROM schema_migrations LIMIT 1", [], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
                })
                .optional()
                .map_err(|e| db_error("cannot read schema_migrations", e))?;
            found.push(LegacyTable::GolangMigrate {
                version: row.map(|r| r.0).filter(|v| *v >= 0),
                dirty: row.is_some_and(|r| r.1),
            });
        } else if columns.iter().any(|c| c == "version") {
            let mut stmt = self
                .conn
                .prepare("SELECT CAST(version AS TEXT) FROM schema_migrations")
                .map_err(|e| db_error("cannot read schema_migrations", e))?;
            let versions: Vec<String> = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| db_error("cannot read schema_migrations", e))?;
            found.push(LegacyTable::Dbmate { versions });
        }
        if !self.table_columns("_sqlx_migrations")?.is_empty() {
            let mut stmt = self
                .conn
                .prepare("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
                .map_err(|e| db_error("cannot read _sqlx_migrations", e))?;
            let rows = stmt
                .query_map([], |r| Ok(SqlxRow { version: r.get(0)?, success: r.get(1)?, checksum: r.get(2)? }))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| db_error("cannot read _sqlx_migrations", e))?;
            found.push(LegacyTable::Sqlx { rows });
        }
        Ok(found)
    }

    async fn begin(&mut self) -> Result<(), Error> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| db_error("cannot begin a write transaction", e))
    }

    async fn begin_migration(&mut self, first_statement: Option<&str>) -> Result<(), Error> {
        if first_statement.is_some_and(turns_foreign_keys_off) {
            let was_on: bool = self
                .conn
                .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                .map_err(|e| db_error("cannot read the foreign_keys setting", e))?;
            self.conn
                .pragma_update(None, "foreign_keys", false)
                .map_err(|e| db_error("cannot turn foreign keys off", e))?;
            self.foreign_keys_before = Some(was_on);
        }
        let begun = self.begin().await;
        if begun.is_err() {
            self.restore_foreign_keys()?;
        }
        begun
    }

    async fn commit(&mut self) -> Result<(), Error> {
        // With foreign keys off nothing was enforced while the migration ran; SQLite's
        // procedure checks them all before the commit, and a violation rolls back.
        if self.foreign_keys_before.is_some() {
            self.check_foreign_keys()?;
        }
        self.conn.execute_batch("COMMIT").map_err(|e| db_error("cannot commit", e))?;
        self.restore_foreign_keys()
    }

    async fn rollback(&mut self) -> Result<(), Error> {
        let rolled_back = if self.conn.is_autocommit() {
            Ok(())
        } else {
            self.conn.execute_batch("ROLLBACK").map_err(|e| db_error("cannot roll back", e))
        };
        let restored = self.restore_foreign_keys();
        rolled_back.and(restored)
    }

    async fn execute(&mut self, sql: &str) -> Result<(), StatementError> {
        self.conn.execute_batch(sql).map_err(|e| StatementError::from_sqlite(&e))
    }

    async fn copy_in(&mut self, _sql: &str, _rows: &str) -> Result<(), StatementError> {
        Err(StatementError::new("COPY … FROM stdin is PostgreSQL's; SQLite has no COPY"))
    }

    async fn reset_session(&mut self) -> Result<(), StatementError> {
        Ok(())
    }

    async fn write_row(&mut self, row: &HistoryRow) -> Result<(), Error> {
        let sql = format!(
            "INSERT OR REPLACE INTO {} (version, name, checksum, state, applied_at, execution_ms, applied_by, statements_done, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            self.history_table()
        );
        self.conn
            .execute(
                &sql,
                params![
                    row.version,
                    row.name,
                    row.checksum,
                    row.state.as_str(),
                    row.applied_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    row.execution_ms,
                    row.applied_by,
                    row.statements_done,
                    row.error,
                ],
            )
            .map(drop)
            .map_err(|e| db_error("cannot write the history row", e))
    }

    async fn delete_row(&mut self, version: i64) -> Result<(), Error> {
        let sql = format!("DELETE FROM {} WHERE version = ?1", self.history_table());
        self.conn.execute(&sql, [version]).map(drop).map_err(|e| db_error("cannot delete the history row", e))
    }

    async fn sync_legacy(&mut self, change: &LegacySync) -> Result<(), Error> {
        let result = match change {
            LegacySync::GolangSetVersion { version, dirty } => self.conn.execute("DELETE FROM schema_migrations", []).and_then(|_| match version {
                Some(v) => self.conn.execute("INSERT INTO schema_migrations (version, dirty) VALUES (?1, ?2)", params![v, dirty]).map(drop),
                None => Ok(()),
            }),
            LegacySync::SqlxInsert { version, description, checksum, execution_ns } => self
                .conn
                .execute(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (?1, ?2, TRUE, ?3, ?4) \
                     ON CONFLICT (version) DO UPDATE SET success = TRUE, checksum = excluded.checksum, description = excluded.description",
                    params![version, description, checksum, execution_ns],
                )
                .map(drop),
            LegacySync::SqlxDelete { version } => self.conn.execute("DELETE FROM _sqlx_migrations WHERE version = ?1", [version]).map(drop),
            LegacySync::DbmateInsert { version } => {
                self.conn.execute("INSERT OR IGNORE INTO schema_migrations (version) VALUES (?1)", [version]).map(drop)
            }
            LegacySync::DbmateDelete { version } => {
                self.conn.execute("DELETE FROM schema_migrations WHERE CAST(version AS TEXT) = ?1", [version]).map(drop)
            }
            // Each as the tool itself creates it.
            LegacySync::Create(Peer::GolangMigrate) => self.conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool);
                 CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);",
            ),
            LegacySync::Create(Peer::Sqlx) => self.conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
                 installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, \
                 execution_time BIGINT NOT NULL)",
            ),
            LegacySync::Create(Peer::Dbmate) => {
                self.conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(128) primary key)")
            }
        };
        result.map_err(|e| db_error("cannot update the legacy bookkeeping table", e))
    }
}

/// Whether a statement is `PRAGMA foreign_keys = OFF` (or `0`, `false`, `no`), the first
/// step of SQLite's documented procedure for changing a table's definition.
fn turns_foreign_keys_off(sql: &str) -> bool {
    let words: String = without_leading_comments(sql)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ';')
        .collect::<String>()
        .to_ascii_lowercase();
    let Some(value) =
        words.strip_prefix("pragmaforeign_keys=").or_else(|| words.strip_prefix("pragmamain.foreign_keys="))
    else {
        return false;
    };
    matches!(value.trim_matches(|c| c == '\'' || c == '"'), "off" | "0" | "false" | "no")
}

/// The statement after any comments and blank lines that precede it.
fn without_leading_comments(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.find(['\n', '\r']).map_or("", |end| &rest[end..]);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            sql = rest.find("*/").map_or("", |end| &rest[end + 2..]);
        } else {
            return sql;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::turns_foreign_keys_off;

    #[test]
    fn recognises_the_pragma_that_turns_foreign_keys_off() {
        for yes in [
            "PRAGMA foreign_keys = OFF;",
            "pragma foreign_keys=0",
            "PRAGMA main.foreign_keys = 'off'",
            "PRAGMA foreign_keys = false",
            "-- rebuild\n/* step 1 */ PRAGMA foreign_keys = OFF;",
        ] {
            assert!(turns_foreign_keys_off(yes), "{yes}");
        }
        for no in [
            "PRAGMA foreign_keys = ON",
            "PRAGMA defer_foreign_keys = ON",
            "SELECT 1",
            "PRAGMA foreign_keys",
            "PRAGMA foreign_keys_x = OFF",
            "-- PRAGMA foreign_keys = OFF",
        ] {
            assert!(!turns_foreign_keys_off(no), "{no}");
        }
    }
}
