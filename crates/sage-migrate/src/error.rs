use std::path::PathBuf;
use std::time::Duration;

use crate::plan::Finding;

/// What kind of failure, the same for PostgreSQL and SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The migration files could not be read or are invalid.
    Source,
    /// The request cannot be carried out as asked (unknown version, no down script, ...).
    Usage,
    /// The database state forbids the operation until an operator decides (edited or
    /// out-of-order migrations, a dirty golang-migrate table).
    State,
    /// Another process held the migration lock for longer than the timeout.
    LockTimeout,
    /// A migration's SQL failed; nothing of it was kept (or, outside a transaction, the
    /// message says exactly what was).
    MigrationFailed,
    /// The database could not be reached or failed outside a migration.
    Database,
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from the migration engine. Messages name the file, the statement and its line;
/// the variants carry them as data, so a caller (the command line) can add its own advice,
/// such as the option that changes the outcome. Messages never name command-line options.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A migration directory or file could not be read.
    #[error("cannot {action} {}: {source}", path.display())]
    ReadSource {
        /// What was being done: "read migration directory", "list", "read".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Migration files are invalid (bad names, duplicate versions, unreadable links, ...).
    #[error("refusing to migrate until these files are fixed:\n  {}", lines(problems))]
    InvalidFiles { problems: Vec<Finding> },
    /// A script could not be split into statements.
    #[error("{file}: line {line}, column {column}: {message}")]
    Syntax { file: String, line: usize, column: usize, message: String },
    /// Creating a migration needs a directory to write it to, and the set has none (it is
    /// the embedded one).
    #[error("create needs a migration directory")]
    NoSourceDirectory,
    /// A new migration's name has nothing usable in a file name.
    #[error("{name:?} is not a usable migration name; use letters, digits and underscores")]
    BadMigrationName { name: String },
    /// The newest version is `i64::MAX`.
    #[error("the newest migration's version {latest} is the largest possible; no version follows it")]
    NoNextVersion { latest: i64 },
    /// A target version that no migration has. `zero_allowed`: 0 (no migration) is a valid
    /// target here, and the message says so.
    #[error("no migration has version {version}{}", if *zero_allowed { " (use 0 for none)" } else { "" })]
    UnknownVersion { version: i64, zero_allowed: bool },
    /// Migrations chosen for reverting cannot be (file missing, no down script).
    #[error("cannot revert:\n  {}", problems.join("\n  "))]
    CannotRevert { problems: Vec<String> },
    /// The history table's name is unusable.
    #[error("history table {name:?} {why}")]
    BadHistoryTable { name: String, why: &'static str },
    /// The migrations are written for another database than the one connected to.
    #[error("the migrations are written for {migrations} but the database is {database}")]
    WrongDialect { migrations: &'static str, database: &'static str },
    /// Any other request that cannot be carried out as asked.
    #[error("{0}")]
    Usage(String),
    /// Findings of severity error (edited, out-of-order migrations, ...) stop the run.
    #[error("refusing to migrate until these are fixed:\n  {}", lines(findings))]
    Refused { findings: Vec<Finding> },
    /// Another tool's record stops the run (a dirty golang-migrate table).
    #[error("{}", finding.message)]
    PeerBlocks { finding: Finding },
    /// `baseline` on a database that already records migrations.
    #[error("baseline is for a database with no recorded migrations; this one has some")]
    NotEmpty,
    /// Recording migrations through `version` as present would put a later one before them.
    #[error("cannot record the migrations through {version} as present: {later_version} ({later_name}) is recorded after them")]
    RecordedAfter { version: i64, later_version: i64, later_name: String },
    /// The table of the tool to keep in step with exists, as another tool's table.
    #[error("cannot keep {peer}'s table in step: its table {table} already exists as {owner}'s")]
    PeerTableTaken { peer: &'static str, table: &'static str, owner: &'static str },
    /// Another migration held the lock for longer than the timeout. `what` says whose
    /// migration ("another migration is running", "golang-migrate is migrating this
    /// database"), `database` names the database (a redacted URL, or "this database"),
    /// `holder` who holds the lock as far as can be told.
    #[error("{what} on {database} (the lock is {holder}); gave up after {}s", waited.as_secs())]
    LockTimeout { what: String, database: String, holder: String, waited: Duration },
    /// Another connection was writing to the SQLite file for longer than the lock timeout.
    #[error("{what}: {source}: another connection was writing to the database for longer than the lock timeout; run again when it is done")]
    Busy {
        what: String,
        #[source]
        source: BoxError,
    },
    /// The connection goes through a transaction-mode pooler, where the migration lock and
    /// prepared statements do not hold.
    #[error("{what}: {POOLER_ADVICE}")]
    Pooler {
        what: String,
        #[source]
        source: Option<BoxError>,
    },
    /// A statement of a migration failed. `outcome` says what of the migration was kept and
    /// what to do (it depends on whether the script runs in a transaction).
    #[error("{file} failed at statement {statement} of {statements} (line {line}, column {column}): {}\n{outcome}", cause.message)]
    StatementFailed {
        file: String,
        /// 1-based.
        statement: usize,
        statements: usize,
        line: usize,
        column: usize,
        cause: StatementError,
        outcome: String,
    },
    /// The session could not be reset after a migration that changed its settings.
    #[error("{file}: cannot reset the session: {}", cause.message)]
    ResetSession { file: String, cause: StatementError },
    /// A SQLite migration that turned foreign keys off leaves rows that break one.
    #[error("the migration turned foreign keys off and leaves {broken} row(s) that break a foreign key, e.g. in table {table}{}, whose {parent} row is missing; nothing of it was kept", rowid.map(|r| format!(" (rowid {r})")).unwrap_or_default())]
    ForeignKeys { broken: usize, table: String, rowid: Option<i64>, parent: String },
    /// A file beside the database (the SQLite file, its lock file) could not be used.
    #[error("cannot {action} {}: {source}", path.display())]
    DatabaseFile {
        /// "create", "open lock file", "lock".
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The database failed outside a migration. `detail` is the driver's error in words.
    #[error("{what}: {detail}")]
    Database {
        what: String,
        detail: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Any other database failure outside a migration, in words.
    #[error("{0}")]
    DatabaseOther(String),
    /// The connection could not be made.
    #[error("{0}")]
    Connection(#[source] sage_conn::Error),
    /// The failure, with what the command had already done, committed, before it.
    #[error(transparent)]
    AfterProgress(Box<PartialFailure>),
}

/// A failure after some migrations were applied or reverted and committed: the error reads
/// as the failure itself; the report says what was done before it.
#[derive(Debug)]
pub struct PartialFailure {
    pub error: Error,
    pub report: crate::Report,
}

impl std::fmt::Display for PartialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for PartialFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// What to do when migrations reach the server through a transaction-mode pooler.
pub(crate) const POOLER_ADVICE: &str = "the connection goes through a connection pooler in transaction mode \
    (such as PgBouncer with pool_mode = transaction), where prepared statements and the migration lock do not \
    hold from one transaction to the next; run migrations over a direct connection to the server";

fn lines(findings: &[Finding]) -> String {
    findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n  ")
}

impl Error {
    /// A request that cannot be carried out as asked.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::ReadSource { .. } | Error::InvalidFiles { .. } | Error::Syntax { .. } => ErrorKind::Source,
            Error::NoSourceDirectory
            | Error::BadMigrationName { .. }
            | Error::NoNextVersion { .. }
            | Error::UnknownVersion { .. }
            | Error::CannotRevert { .. }
            | Error::BadHistoryTable { .. }
            | Error::WrongDialect { .. }
            | Error::Usage(_) => ErrorKind::Usage,
            Error::Refused { .. }
            | Error::PeerBlocks { .. }
            | Error::NotEmpty
            | Error::RecordedAfter { .. }
            | Error::PeerTableTaken { .. } => ErrorKind::State,
            Error::LockTimeout { .. } => ErrorKind::LockTimeout,
            Error::StatementFailed { .. } | Error::ResetSession { .. } | Error::ForeignKeys { .. } => {
                ErrorKind::MigrationFailed
            }
            Error::Busy { .. }
            | Error::Pooler { .. }
            | Error::DatabaseFile { .. }
            | Error::Database { .. }
            | Error::DatabaseOther(_)
            | Error::Connection(_) => ErrorKind::Database,
            Error::AfterProgress(p) => p.error.kind(),
        }
    }

    /// The failure itself, without the progress made before it.
    pub fn inner(&self) -> &Error {
        match self {
            Error::AfterProgress(p) => &p.error,
            e => e,
        }
    }

    /// The migrations applied or reverted, and committed, before the failure (none when it
    /// failed before changing anything).
    pub fn partial(&self) -> Option<&crate::Report> {
        match self {
            Error::AfterProgress(p) => Some(&p.report),
            _ => None,
        }
    }

    pub(crate) fn after(self, report: &crate::Report) -> Error {
        if report.applied.is_empty() && report.reverted.is_empty() {
            return self;
        }
        let error = match self {
            Error::AfterProgress(p) => p.error,
            e => e,
        };
        Error::AfterProgress(Box::new(PartialFailure { error, report: report.clone() }))
    }

    /// SQLite says "database or disk is full" without naming the file; this names it.
    pub(crate) fn naming_full_disk(mut self, path: &std::path::Path) -> Error {
        // SQLite's fixed text for SQLITE_FULL (sqlite3ErrStr), whether it reached us as the
        // source or inside a statement's message.
        const FULL: &str = "database or disk is full";
        let named = || format!("disk full while writing {}", path.display());
        if let Error::AfterProgress(p) = self {
            let PartialFailure { error, report } = *p;
            return Error::AfterProgress(Box::new(PartialFailure { error: error.naming_full_disk(path), report }));
        }
        match &mut self {
            Error::Database { detail: text, .. }
            | Error::StatementFailed { cause: StatementError { message: text, .. }, .. }
            | Error::ResetSession { cause: StatementError { message: text, .. }, .. }
                if text.contains(FULL) =>
            {
                *text = text.replace(FULL, &named());
            }
            _ => {}
        }
        self
    }
}

impl From<sage_conn::Error> for Error {
    fn from(e: sage_conn::Error) -> Error {
        Error::Connection(e)
    }
}

/// A failed statement, as the database reported it.
#[derive(Debug, Clone)]
pub struct StatementError {
    pub message: String,
    /// The statement failed because of other sessions (a lock it waited too long for, a
    /// deadlock, a busy SQLite file), not because of what it says: running it again later
    /// can succeed unchanged.
    pub contended: bool,
}

impl StatementError {
    pub fn new(message: impl Into<String>) -> StatementError {
        StatementError { message: message.into(), contended: false }
    }

    /// What the operator should do about a failed migration statement.
    pub(crate) fn advice(&self) -> &'static str {
        if self.contended {
            "another session held what it needed; the file is fine: run it again"
        } else {
            "fix the file and migrate again"
        }
    }
}

impl StatementError {
    #[cfg(feature = "postgres")]
    pub(crate) fn from_pg(e: &tokio_postgres::Error) -> StatementError {
        use tokio_postgres::error::SqlState;
        match e.as_db_error() {
            Some(db) => {
                let mut message = format!("{}: {}", db.severity(), db.message());
                if let Some(detail) = db.detail() {
                    message.push_str(&format!(" (detail: {detail})"));
                }
                if let Some(hint) = db.hint() {
                    message.push_str(&format!(" (hint: {hint})"));
                }
                message.push_str(&format!(" [SQLSTATE {}]", db.code().code()));
                let contended = [
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                ]
                .contains(db.code());
                StatementError { message, contended }
            }
            None => StatementError::new(e.to_string()),
        }
    }

    #[cfg(feature = "sqlite")]
    pub(crate) fn from_sqlite(e: &rusqlite::Error) -> StatementError {
        StatementError { message: e.to_string(), contended: sqlite_busy(e) }
    }
}

/// SQLite refused because another connection held the database for longer than the busy
/// timeout.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{FindingKind, Severity};

    fn finding(kind: FindingKind) -> Finding {
        Finding { kind, severity: Severity::Error, version: Some(3), file: None, message: "m".into() }
    }

    fn io() -> std::io::Error {
        std::io::Error::other("denied")
    }

    fn every_variant() -> Vec<(Error, ErrorKind)> {
        let cause = StatementError::new("ERROR: boom");
        vec![
            (Error::ReadSource { action: "read", path: "m/1_a.sql".into(), source: io() }, ErrorKind::Source),
            (Error::InvalidFiles { problems: vec![finding(FindingKind::Unreadable)] }, ErrorKind::Source),
            (Error::Syntax { file: "f".into(), line: 1, column: 2, message: "m".into() }, ErrorKind::Source),
            (Error::NoSourceDirectory, ErrorKind::Usage),
            (Error::BadMigrationName { name: "!".into() }, ErrorKind::Usage),
            (Error::NoNextVersion { latest: i64::MAX }, ErrorKind::Usage),
            (Error::UnknownVersion { version: 9, zero_allowed: true }, ErrorKind::Usage),
            (Error::CannotRevert { problems: vec!["x".into()] }, ErrorKind::Usage),
            (Error::BadHistoryTable { name: "".into(), why: "is empty" }, ErrorKind::Usage),
            (Error::WrongDialect { migrations: "SQLite", database: "PostgreSQL" }, ErrorKind::Usage),
            (Error::usage("no"), ErrorKind::Usage),
            (Error::Refused { findings: vec![finding(FindingKind::OutOfOrder)] }, ErrorKind::State),
            (Error::PeerBlocks { finding: finding(FindingKind::PeerDirty) }, ErrorKind::State),
            (Error::NotEmpty, ErrorKind::State),
            (Error::RecordedAfter { version: 1, later_version: 2, later_name: "b".into() }, ErrorKind::State),
            (Error::PeerTableTaken { peer: "sqlx", table: "t", owner: "dbmate" }, ErrorKind::State),
            (
                Error::LockTimeout {
                    what: "another migration is running".into(),
                    database: "this database".into(),
                    holder: "held".into(),
                    waited: Duration::from_secs(10),
                },
                ErrorKind::LockTimeout,
            ),
            (
                Error::StatementFailed {
                    file: "f".into(),
                    statement: 1,
                    statements: 2,
                    line: 3,
                    column: 1,
                    cause: cause.clone(),
                    outcome: "nothing of this migration was kept".into(),
                },
                ErrorKind::MigrationFailed,
            ),
            (Error::ResetSession { file: "f".into(), cause }, ErrorKind::MigrationFailed),
            (
                Error::ForeignKeys { broken: 1, table: "t".into(), rowid: None, parent: "p".into() },
                ErrorKind::MigrationFailed,
            ),
            (Error::Busy { what: "w".into(), source: Box::new(io()) }, ErrorKind::Database),
            (Error::Pooler { what: "w".into(), source: None }, ErrorKind::Database),
            (Error::DatabaseFile { action: "lock", path: "x".into(), source: io() }, ErrorKind::Database),
            (Error::Database { what: "w".into(), detail: "d".into(), source: None }, ErrorKind::Database),
            (Error::DatabaseOther("o".into()), ErrorKind::Database),
        ]
    }

    #[test]
    fn kind_follows_each_variant_and_progress_keeps_it() {
        for (error, kind) in every_variant() {
            assert_eq!(error.kind(), kind, "{error}");
            let text = error.to_string();
            let report = crate::Report {
                applied: vec![crate::StepReport {
                    version: 1,
                    name: "a".into(),
                    file: "1_a.up.sql".into(),
                    statements: 1,
                    duration_ms: 0,
                    resumed_at_statement: None,
                    sql: None,
                }],
                ..Default::default()
            };
            let after = error.after(&report);
            assert_eq!(after.kind(), kind, "{after}");
            assert_eq!(after.to_string(), text, "the report does not change the message");
            assert_eq!(after.partial().map(|r| r.applied.len()), Some(1));
        }
    }

    #[test]
    fn messages_name_no_command_line_option() {
        for (error, _) in every_variant() {
            let text = error.to_string();
            assert!(!text.contains(" --"), "{text}");
        }
    }

    #[test]
    fn sources_stay_reachable() {
        let e = Error::ReadSource { action: "read", path: "m".into(), source: io() };
        assert_eq!(std::error::Error::source(&e).map(|s| s.to_string()).as_deref(), Some("denied"));
        let e = Error::DatabaseFile { action: "lock", path: "m".into(), source: io() }
            .after(&crate::Report { reverted: vec![], ..Default::default() });
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn a_full_disk_is_named_inside_progress_too() {
        let e =
            Error::Database { what: "cannot write".into(), detail: "database or disk is full".into(), source: None };
        let named = e.naming_full_disk(std::path::Path::new("/data/x.db"));
        assert_eq!(named.to_string(), "cannot write: disk full while writing /data/x.db");
    }
}
