//! What the engine needs from a database, and nothing more: run a statement, open and close
//! a transaction, take the lock, and read and write bookkeeping rows. The logic of when to
//! do which lives once, in the runner.
//!
//! The trait is the crate's own: its methods take the crate's private types (statement
//! errors, peers' tables and their changes), and nothing outside the crate implements or
//! calls it. `Migrator::connect` picks the driver from the connection target.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;

#[cfg(feature = "postgres")]
pub(crate) use self::postgres::PgDriver;
#[cfg(feature = "sqlite")]
pub(crate) use self::sqlite::SqliteDriver;
use crate::error::StatementError;
use crate::legacy::{LegacySync, LegacyTable};
use crate::split::Statement;
use crate::{Dialect, Error, HistoryRow};

#[async_trait]
pub(crate) trait Driver: Send {
    fn dialect(&self) -> Dialect;

    /// Who applies migrations, for the history's `applied_by`.
    fn applied_by(&self) -> String;

    /// Takes the migration lock, waiting at most `timeout`.
    async fn lock(&mut self, timeout: Duration) -> Result<(), Error>;

    /// Releases the lock. If that fails the driver closes its connection, which releases
    /// the lock on the server's side.
    async fn unlock(&mut self) -> Result<(), Error>;

    /// Creates the history table when it does not exist.
    async fn ensure_history(&mut self) -> Result<(), Error>;

    /// The history, oldest version first; empty when the table does not exist yet.
    async fn history(&mut self) -> Result<Vec<HistoryRow>, Error>;

    /// The bookkeeping tables of other tools found beside ours.
    async fn legacy(&mut self) -> Result<Vec<LegacyTable>, Error>;

    async fn begin(&mut self) -> Result<(), Error>;

    /// Begins the transaction one migration script runs in. SQLite's documented procedure
    /// for rebuilding a table starts with `PRAGMA foreign_keys = OFF`, which SQLite ignores
    /// inside a transaction; the SQLite driver honours it when it is the script's first
    /// statement, and then checks every foreign key before it commits.
    async fn begin_migration(&mut self, _first_statement: Option<&str>) -> Result<(), Error> {
        self.begin().await
    }

    async fn commit(&mut self) -> Result<(), Error>;
    async fn rollback(&mut self) -> Result<(), Error>;

    /// Runs one statement of a migration.
    async fn execute(&mut self, sql: &str) -> Result<(), StatementError>;

    /// Runs a `COPY … FROM stdin` with the rows that followed it in the file.
    async fn copy_in(&mut self, sql: &str, rows: &str) -> Result<(), StatementError>;

    /// Runs one statement as the splitter found it: with its rows for a COPY.
    async fn run_statement(&mut self, statement: &Statement<'_>) -> Result<(), StatementError> {
        match statement.copy_data {
            Some(rows) => self.copy_in(statement.sql, rows).await,
            None => self.execute(statement.sql).await,
        }
    }

    /// Puts back the session settings a script changed (`SET search_path`, `SET
    /// standard_conforming_strings`, …), so the next script runs, and is read, as in a
    /// fresh session.
    async fn reset_session(&mut self) -> Result<(), StatementError>;

    /// Inserts or replaces the history row for `row.version`.
    async fn write_row(&mut self, row: &HistoryRow) -> Result<(), Error>;

    async fn delete_row(&mut self, version: i64) -> Result<(), Error>;

    /// Mirrors one step into another tool's table.
    async fn sync_legacy(&mut self, change: &LegacySync) -> Result<(), Error>;
}

pub(crate) fn db_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    statement_error(what, None, e)
}

/// Like [`db_error`], naming the statement so that a missing privilege can be named too.
/// A PostgreSQL error shows the server's own message (the driver's `Display` says only
/// "db error").
pub(crate) fn statement_error(
    what: &str,
    statement: Option<&str>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    #[cfg(feature = "postgres")]
    let text = match (&e as &(dyn std::error::Error + 'static)).downcast_ref::<tokio_postgres::Error>() {
        Some(pg) if through_transaction_pooler(pg) => {
            return Error::Pooler { what: what.to_string(), source: Some(Box::new(e)) };
        }
        Some(pg) => sage_conn::describe_pg_error(pg, statement),
        None => e.to_string(),
    };
    #[cfg(not(feature = "postgres"))]
    let text = {
        let _ = statement;
        e.to_string()
    };
    Error::Database { what: what.to_string(), detail: text, source: Some(Box::new(e)) }
}

/// A prepared statement that vanished or was already there: the server session changed
/// under the connection, which only a pooler in transaction or statement mode does.
#[cfg(feature = "postgres")]
fn through_transaction_pooler(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| *c == SqlState::DUPLICATE_PSTATEMENT || *c == SqlState::INVALID_SQL_STATEMENT_NAME)
}

/// The lock key for a history table: stable across processes and versions, distinct per
/// schema and table so two migration sets in one database do not block each other.
#[cfg(feature = "postgres")]
pub(crate) fn lock_key(schema: &str, table: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("sage-db migrate\0{schema}\0{table}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("eight bytes"))
}
