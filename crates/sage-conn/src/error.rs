use std::fmt;

/// What went wrong, the same for every way of naming a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL, a variable or the `.env` file is malformed.
    InvalidSettings,
    /// The server could not be reached (refused, unknown host, timeout).
    Unreachable,
    /// The server refused the credentials.
    Authentication,
    /// TLS could not be set up or the certificate was rejected.
    Tls,
    /// The server answered with another error during start-up.
    Server,
}

/// An error from resolving settings or connecting. Its text never holds a password.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), source: None }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error { kind, message: message.into(), source: Some(Box::new(source)) }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidSettings, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn is_unreachable(&self) -> bool {
        self.kind == ErrorKind::Unreachable
    }

    /// The server answered that the database named in the settings does not exist.
    pub fn is_missing_database(&self) -> bool {
        #[cfg(not(feature = "postgres"))]
        return false;
        #[cfg(feature = "postgres")]
        self.source
            .as_ref()
            .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
            .and_then(tokio_postgres::Error::code)
            .is_some_and(|code| *code == tokio_postgres::error::SqlState::INVALID_CATALOG_NAME)
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
