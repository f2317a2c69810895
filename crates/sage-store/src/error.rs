use std::fmt;

/// The kinds of failure every backend reports the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// The entry exists but has expired (by time, idle timeout or message budget).
    Expired,
    /// The nonce was already used and has not expired.
    Replayed,
    /// The caller's input was rejected; [`StoreError::field`] names the field.
    InvalidInput,
    /// The database could not be reached; retrying may succeed.
    Unavailable,
    /// Stored key material failed authentication (tampered, moved to another session, or
    /// sealed with a key this store does not have).
    Integrity,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Expired => "expired",
            ErrorKind::Replayed => "replayed",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error from a store. The database's own error stays reachable through `source()`.
#[derive(Debug)]
pub struct StoreError {
    kind: ErrorKind,
    field: Option<&'static str>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StoreError {
        StoreError { kind, field: None, message: message.into(), source: None }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
        StoreError {
            kind: ErrorKind::InvalidInput,
            field: Some(field),
            message: format!("invalid {field}: {}", reason.into()),
            source: None,
        }
    }

    pub(crate) fn not_found(what: &str, id: &str) -> StoreError {
        StoreError::new(ErrorKind::NotFound, format!("{what} {id:?} not found"))
    }

    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        self.source = Some(Box::new(source));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For [`ErrorKind::InvalidInput`]: the field that was rejected.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    pub fn is_expired(&self) -> bool {
        self.kind == ErrorKind::Expired
    }

    pub fn is_replayed(&self) -> bool {
        self.kind == ErrorKind::Replayed
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<sage_conn::Error> for StoreError {
    fn from(e: sage_conn::Error) -> StoreError {
        let kind = match e.kind() {
            sage_conn::ErrorKind::InvalidSettings => ErrorKind::InvalidInput,
            _ => ErrorKind::Unavailable,
        };
        StoreError::new(kind, e.to_string()).with_source(e)
    }
}

/// Maps a PostgreSQL error onto the portable kinds. The message is the server's (with the
/// privilege and object when one is missing, which the statement's text lets us name).
pub(crate) fn from_pg(what: &str, statement: &str, e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let kind = match e.code() {
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => ErrorKind::AlreadyExists,
        Some(c) if *c == SqlState::CHECK_VIOLATION || *c == SqlState::NOT_NULL_VIOLATION => ErrorKind::InvalidInput,
        Some(c) if c.code().starts_with("08") || c.code().starts_with("57") || c.code().starts_with("53") => {
            ErrorKind::Unavailable
        }
        Some(_) => ErrorKind::Internal,
        None if e.is_closed() || e.to_string().contains("connection") => ErrorKind::Unavailable,
        None => ErrorKind::Unavailable,
    };
    let detail = sage_conn::describe_pg_error(&e, Some(statement));
    StoreError::new(kind, format!("{what}: {detail}")).with_source(e)
}

pub(crate) fn from_sqlite(what: &str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) if e.to_string().contains("UNIQUE") => ErrorKind::AlreadyExists,
        Some(ErrorCode::ConstraintViolation) => ErrorKind::InvalidInput,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen) => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    if e.sqlite_error_code() == Some(ErrorCode::DiskFull) {
        // SQLite's own text ("database or disk is full") names neither; the backend adds the
        // file (see `StoreError::on_file`), since only it knows which one it was writing.
        return StoreError::new(ErrorKind::Unavailable, format!("{what}: disk full")).with_source(e);
    }
    StoreError::new(kind, format!("{what}: {e}")).with_source(e)
}

impl StoreError {
    /// Names the file a SQLite write failed on when the disk was full.
    pub(crate) fn on_file(mut self, path: &str) -> StoreError {
        let full = self
            .source
            .as_deref()
            .and_then(|s| s.downcast_ref::<rusqlite::Error>())
            .is_some_and(|e| e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull));
        if full && !self.message.ends_with(path) {
            self.message = format!("{} while writing {path}", self.message);
        }
        self
    }
}
