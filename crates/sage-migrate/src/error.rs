use std::fmt;

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

/// An error from the migration engine. Messages name the file, the statement and its line.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// What the command had already done, committed, when it failed.
    partial: Option<Box<crate::Report>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), source: None, partial: None }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error { kind, message: message.into(), source: Some(Box::new(source)), partial: None }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The migrations applied or reverted, and committed, before the failure (none when it
    /// failed before changing anything).
    pub fn partial(&self) -> Option<&crate::Report> {
        self.partial.as_deref()
    }

    pub(crate) fn after(mut self, report: &crate::Report) -> Error {
        if !report.applied.is_empty() || !report.reverted.is_empty() {
            self.partial = Some(Box::new(report.clone()));
        }
        self
    }

    /// SQLite says "database or disk is full" without naming the file; this names it.
    pub(crate) fn naming_full_disk(mut self, path: &std::path::Path) -> Error {
        // SQLite's fixed text for SQLITE_FULL (sqlite3ErrStr), whether it reached us as the
        // source or inside a statement's message.
        const FULL: &str = "database or disk is full";
        if self.message.contains(FULL) {
            self.message = self.message.replace(FULL, &format!("disk full while writing {}", path.display()));
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<sage_conn::Error> for Error {
    fn from(e: sage_conn::Error) -> Error {
        Error { kind: ErrorKind::Database, message: e.to_string(), source: Some(Box::new(e)), partial: None }
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
    pub(crate) fn new(message: impl Into<String>) -> StatementError {
        StatementError { message: message.into(), contended: false }
    }

    /// What the operator should do about a failed migration statement.
    pub(crate) fn advice(&self) -> &'static str {
        if self.contended {
            "another session held what it needed; the file is fine: run `sage-db migrate up` again"
        } else {
            "fix the file and run `sage-db migrate up`"
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
