use std::fmt;

/// The kinds of failure every backend reports the same way. Decide what to do from the
/// kind, not from the message: see [`ErrorKind::http_status`] for how a service answers
/// each, and [`StoreError::is_retryable`] for which are worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The session, nonce or DID does not exist.
    NotFound,
    /// An entry with that id or DID already exists.
    AlreadyExists,
    /// The entry exists but has expired (by time, idle timeout or message budget).
    Expired,
    /// The nonce was already used and has not expired.
    Replayed,
    /// The caller's input was rejected; [`StoreError::field`] names the field.
    InvalidInput,
    /// The database could not be reached or is overloaded; retrying may succeed.
    Unavailable,
    /// The store or its database is not set up for this build: no SAGE schema yet, a schema
    /// newer or older than this build, a schema that differs from the expected one, a
    /// missing or unreadable session-key file, bad connection settings. Retrying will not
    /// help until an operator acts on the message.
    Configuration,
    /// Stored key material failed authentication (tampered, moved to another session, or
    /// sealed with a key this store does not have).
    Integrity,
    /// A bug or an unexpected answer from the database.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::Expired,
        ErrorKind::Replayed,
        ErrorKind::InvalidInput,
        ErrorKind::Unavailable,
        ErrorKind::Configuration,
        ErrorKind::Integrity,
        ErrorKind::Internal,
    ];

    /// A stable identifier in snake case (`not_found`, `invalid_input`, …), fit for metric
    /// labels, JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Expired => "expired",
            ErrorKind::Replayed => "replayed",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Configuration => "configuration",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status a service answers a client with for this kind:
    ///
    /// | kind | status | why |
    /// |---|---|---|
    /// | `NotFound` | 404 | the session or DID the client named does not exist |
    /// | `AlreadyExists` | 409 | the id is taken |
    /// | `Expired` | 401 | the session is over; the client must start a new handshake |
    /// | `Replayed` | 409 | the nonce was used; the message is refused |
    /// | `InvalidInput` | 400 | the request is malformed; [`StoreError::field`] says where |
    /// | `Unavailable` | 503 | the database is unreachable or overloaded; retry later |
    /// | `Configuration` | 500 | the operator must fix the deployment; retrying will not help |
    /// | `Integrity` | 500 | stored key material failed authentication |
    /// | `Internal` | 500 | a bug or an unexpected database answer |
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists | ErrorKind::Replayed => 409,
            ErrorKind::Expired => 401,
            ErrorKind::InvalidInput => 400,
            ErrorKind::Unavailable => 503,
            ErrorKind::Configuration | ErrorKind::Integrity | ErrorKind::Internal => 500,
        }
    }

    /// Whether the failure is the client's to fix (a 4xx status): then the error's message
    /// names only what the client sent and may be shown to it.
    pub fn is_client_error(self) -> bool {
        self.http_status() < 500
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Expired => "expired",
            ErrorKind::Replayed => "replayed",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Configuration => "configuration problem",
            ErrorKind::Integrity => "integrity failure",
            ErrorKind::Internal => "internal error",
        })
    }
}

/// An error from a store. The database's own error stays reachable through `source()`.
///
/// Cloning is cheap and keeps the source: one failed statement can answer every caller
/// whose claims it carried.
///
/// # What to show clients
/// Messages are written for the operator. Those of client errors
/// ([`ErrorKind::is_client_error`]) name only what the client sent (an id, a nonce, a
/// field) and may be passed on. The others must not reach clients: an outage names the
/// database's host and port, a configuration problem names files and settings. Answer
/// them with [`StoreError::client_message`] and log the full error.
///
/// Messages name no command of `sage-db`: for the configuration problems an operator acts
/// on, [`StoreError::reason`] carries the case as data, and the command line adds its
/// advice from it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    kind: ErrorKind,
    field: Option<&'static str>,
    message: String,
    reason: Option<Reason>,
    #[source]
    source: Option<SharedSource>,
}

/// Which known problem an error is (a configuration problem, or key material stored
/// unencrypted), for a caller that says what to do about it in its own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The database has no SAGE schema yet.
    NoSchema,
    /// The schema is older than this build needs.
    SchemaBehind {
        /// The version the database is at.
        at: i64,
        /// The version this build needs.
        needs: i64,
    },
    /// The schema is newer than this build understands.
    SchemaAhead {
        /// The version the database is at.
        at: i64,
        /// The newest version this build understands.
        understands: i64,
    },
    /// The schema's structure differs from what this build expects.
    SchemaDiffers {
        /// How many structural differences were found.
        problems: usize,
    },
    /// No session-key encryption key is configured.
    NoSessionKey,
    /// A configured session key cannot be used (not base64, not 32 bytes, none in the file).
    BadSessionKey,
    /// Session key material is stored unencrypted (an [`ErrorKind::Integrity`] error):
    /// rotating the keys encrypts it.
    Unencrypted,
}

/// The cause, shared between clones. Not an error itself: `source()` gives the cause as
/// its own type, so callers can downcast it.
#[derive(Debug, Clone)]
pub struct SharedSource(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl std::ops::Deref for SharedSource {
    type Target = dyn std::error::Error + Send + Sync;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// A result with [`StoreError`] as its error.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// An error of `kind` with an operator-facing message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StoreError {
        StoreError { kind, field: None, message: message.into(), reason: None, source: None }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
        StoreError {
            kind: ErrorKind::InvalidInput,
            field: Some(field),
            message: format!("invalid {field}: {}", reason.into()),
            reason: None,
            source: None,
        }
    }

    pub(crate) fn not_found(what: &str, id: &str) -> StoreError {
        StoreError::new(ErrorKind::NotFound, format!("{what} {id:?} not found"))
    }

    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        self.source = Some(SharedSource(std::sync::Arc::new(source)));
        self
    }

    /// A configuration problem of a known case.
    pub(crate) fn configuration(reason: Reason, message: impl Into<String>) -> StoreError {
        StoreError::new(ErrorKind::Configuration, message).because(reason)
    }

    pub(crate) fn because(mut self, reason: Reason) -> StoreError {
        self.reason = Some(reason);
        self
    }

    /// Which problem it is, when it is one a caller can advise on (most configuration
    /// problems, unencrypted key material).
    pub fn reason(&self) -> Option<&Reason> {
        self.reason.as_ref()
    }

    /// What kind of failure this is; the same on every backend.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// For [`ErrorKind::InvalidInput`]: the field that was rejected.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }

    /// Whether the session, nonce or DID does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Whether the session is past its expiry, idle timeout or message budget.
    pub fn is_expired(&self) -> bool {
        self.kind == ErrorKind::Expired
    }

    /// Whether the nonce was already used.
    pub fn is_replayed(&self) -> bool {
        self.kind == ErrorKind::Replayed
    }

    /// Whether retrying the same call later may succeed: only for
    /// [`ErrorKind::Unavailable`]. A configuration problem is not retryable.
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }

    /// The HTTP status to answer a client with; see [`ErrorKind::http_status`].
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }

    /// A message safe to show a client: this error's own message for client errors, a
    /// fixed phrase naming nothing of the deployment for the others.
    pub fn client_message(&self) -> String {
        match self.kind {
            kind if kind.is_client_error() => self.message.clone(),
            ErrorKind::Unavailable => "the service is temporarily unavailable; retry later".to_string(),
            _ => "internal server error".to_string(),
        }
    }
}

impl From<sage_conn::Error> for StoreError {
    fn from(e: sage_conn::Error) -> StoreError {
        let kind = match e.kind() {
            sage_conn::ErrorKind::InvalidSettings => ErrorKind::Configuration,
            _ => ErrorKind::Unavailable,
        };
        StoreError::new(kind, e.to_string()).with_source(e)
    }
}

#[cfg(feature = "postgres")]
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

#[cfg(feature = "sqlite")]
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
    #[cfg(feature = "sqlite")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_reason_field_and_source_follow_each_constructor() {
        let e = StoreError::invalid("nonce", "too long");
        assert_eq!((e.kind(), e.field(), e.reason()), (ErrorKind::InvalidInput, Some("nonce"), None));
        assert_eq!(e.to_string(), "invalid nonce: too long");
        assert_eq!(e.client_message(), "invalid nonce: too long");

        let e = StoreError::not_found("session", "s1");
        assert_eq!(e.kind(), ErrorKind::NotFound);

        let e = StoreError::configuration(Reason::SchemaBehind { at: 1, needs: 2 }, "behind");
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert_eq!(e.reason(), Some(&Reason::SchemaBehind { at: 1, needs: 2 }));
        assert_eq!(e.client_message(), "internal server error");
        assert!(!e.is_retryable());

        // The cause is reachable as its own type, also from a clone.
        let e = StoreError::new(ErrorKind::Unavailable, "cannot reach the database")
            .with_source(std::io::Error::other("refused"));
        let clone = e.clone();
        let source = std::error::Error::source(&clone).expect("a source");
        assert!(source.downcast_ref::<std::io::Error>().is_some(), "{source:?}");
        assert!(e.is_retryable());
    }
}
