use std::fmt;

/// What kind of failure, decided by its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request or its input cannot be carried out as given (a malformed file or
    /// manifest, a refused operation, a wrong target); the message says what to fix.
    Invalid,
    /// The database could not be reached or refused the connection.
    Connection,
    /// The database failed a statement.
    Database,
    /// A file or a program could not be read, written or run.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Connection => "connection",
            ErrorKind::Database => "database",
            ErrorKind::Io => "io",
        })
    }
}

/// An operation that could not be carried out; the message says what to fix.
#[derive(Debug)]
pub struct Error {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error { message: message.into(), source: None }
    }

    pub(crate) fn with(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        // tokio-postgres prints every server error as "db error"; the server's own words
        // (and for a missing privilege, the object) are what the user needs.
        let text = match (&source as &(dyn std::error::Error + 'static)).downcast_ref::<tokio_postgres::Error>() {
            Some(pg) => sage_conn::describe_pg_error(pg, None),
            None => source.to_string(),
        };
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
        } else if source.is::<tokio_postgres::Error>() || source.is::<rusqlite::Error>() {
            ErrorKind::Database
        } else if source.is::<std::io::Error>() {
            ErrorKind::Io
        } else {
            ErrorKind::Invalid
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_follows_the_cause() {
        assert_eq!(Error::new("bad manifest").kind(), ErrorKind::Invalid);
        assert_eq!(Error::with("cannot write x", std::io::Error::other("disk full")).kind(), ErrorKind::Io);
        let sqlite = rusqlite::Connection::open_in_memory().unwrap().execute("nonsense", []).unwrap_err();
        assert_eq!(Error::with("cannot read", sqlite).kind(), ErrorKind::Database);
    }
}
