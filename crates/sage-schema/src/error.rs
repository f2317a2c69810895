use std::fmt;

/// What kind of failure, decided by its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input cannot be used as given: a malformed snapshot or migration directory, an
    /// unknown kind to ignore, an unsupported combination; the message says what to fix.
    Invalid,
    /// The database could not be reached or refused the connection.
    Connection,
    /// Replaying migrations failed.
    Migration,
    /// The database failed a catalog query or a statement.
    Database,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Connection => "connection",
            ErrorKind::Migration => "migration",
            ErrorKind::Database => "database",
        })
    }
}

/// Why a schema could not be read, replayed or compared. Drift is not an error: it is the
/// list of findings `validate` returns.
#[derive(Debug)]
pub struct Error {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error { message: message.into(), source: None }
    }

    pub(crate) fn database(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        // tokio-postgres prints every server error as "db error"; say what the server said.
        #[cfg(feature = "postgres")]
        let text = match (&source as &(dyn std::error::Error + 'static)).downcast_ref::<tokio_postgres::Error>() {
            Some(pg) => sage_conn::describe_pg_error(pg, None),
            None => source.to_string(),
        };
        #[cfg(not(feature = "postgres"))]
        let text = source.to_string();
        let message = format!("{}: {text}", message.into());
        Error { message, source: Some(Box::new(source)) }
    }
}

impl Error {
    /// The kind of failure: [`ErrorKind::Invalid`] when nothing below it failed, otherwise
    /// what its cause was.
    pub fn kind(&self) -> ErrorKind {
        let Some(source) = self.source.as_deref() else { return ErrorKind::Invalid };
        let source = source as &(dyn std::error::Error + 'static);
        if source.is::<sage_conn::Error>() {
            ErrorKind::Connection
        } else if source.is::<sage_migrate::Error>() {
            ErrorKind::Migration
        } else {
            ErrorKind::Database
        }
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
        Error { message: e.to_string(), source: Some(Box::new(e)) }
    }
}

impl From<sage_migrate::Error> for Error {
    fn from(e: sage_migrate::Error) -> Error {
        Error { message: e.to_string(), source: Some(Box::new(e)) }
    }
}
