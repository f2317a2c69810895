//! The SAGE DB migration engine.
//!
//! Reads a directory of migrations in golang-migrate, sqlx or dbmate format (or a set
//! compiled into a binary), compares it with what the database has recorded, and applies
//! or reverts migrations so that a failure never leaves a half-applied migration behind:
//! each migration's statements and its history row commit in one transaction, and the few
//! statements that cannot run in a transaction (`CREATE INDEX CONCURRENTLY`) run one by
//! one with their progress recorded. A PostgreSQL advisory lock, polled with a timeout,
//! makes concurrent runs apply each migration exactly once. Databases kept by
//! golang-migrate, sqlx or dbmate are adopted and their tables kept in step.
//!
//! Planning and validation are pure functions over [`Migration`]s and [`HistoryRow`]s;
//! the drivers only execute statements and read and write bookkeeping rows.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sage_migrate::Error> {
//! use sage_migrate::{MigrationSet, Migrator, RunOptions, Target, Dialect};
//! let set = MigrationSet::from_dir("migrations".as_ref(), Dialect::Postgres)?;
//! let env = sage_conn::Environment::from_process(None)?;
//! let settings = sage_conn::Settings::resolve(None, &env)?;
//! let mut migrator = Migrator::connect(&settings.target, set, RunOptions::default()).await?;
//! let report = migrator.up(Target::Latest).await?;
//! println!("applied {} migrations", report.applied.len());
//! # Ok(()) }
//! ```

// Built with neither database driver (both features off) the engine has nothing to run
// against; its types and pure parts stay usable, and the driver-facing parts go unused.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite")),
    allow(dead_code, unused_imports, unused_variables, unreachable_code)
)]

mod driver;
mod error;
mod history;
mod legacy;
mod migration;
mod plan;
mod runner;
mod source;
pub mod split;

pub use error::{Error, ErrorKind, PartialFailure, StatementError};
pub use history::{HistoryRow, RowState, DEFAULT_HISTORY_TABLE};
pub use legacy::{LegacyTable, Peer};
pub use migration::{checksum, Migration, Script};
pub use plan::{Finding, FindingKind, MigrationState, Severity, StatusEntry, Target};
pub use runner::{check_history_table, Migrator, Report, RunOptions, StatusReport, StepReport};
pub use source::{Format, MigrationSet, NewMigration};

/// The SQL dialect a migration set is written for, and a schema is read in (the one
/// dialect type of the workspace: `sage_schema::Dialect` is this type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }
}
