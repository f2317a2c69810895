use std::path::PathBuf;

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

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from resolving settings or connecting. Its text never holds a password, and
/// never names a command-line option: `source` arguments are the caller's names.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A line of a `.env` file or of a service file is malformed.
    #[error("{}:{line}: {reason}", file.display())]
    BadLine { file: PathBuf, line: usize, reason: String },
    /// A service named by `service=` or `PGSERVICE` is defined in none of the files looked in.
    #[error("service {name:?} is not defined (looked in {})", looked.join(", "))]
    UnknownService { name: String, looked: Vec<String> },
    /// A settings file (`.env`, a service file) exists but cannot be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        /// "env file", "service file".
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any other malformed setting; the message names the setting and why.
    #[error("{0}")]
    InvalidSettings(String),
    /// The server could not be reached (refused, unknown host, timeout).
    #[error("{message}")]
    Unreachable {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The server refused the credentials.
    #[error("{message}")]
    Authentication {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// TLS could not be set up or the certificate was rejected.
    #[error("{message}")]
    Tls {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The server answered with another error during start-up.
    #[error("{message}")]
    Server {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::of(kind, message.into(), None)
    }

    // Only the PostgreSQL parts (connections, TLS, poolers) have a cause to keep.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::of(kind, message.into(), Some(Box::new(source)))
    }

    fn of(kind: ErrorKind, message: String, source: Option<BoxError>) -> Error {
        match kind {
            ErrorKind::InvalidSettings => Error::InvalidSettings(message),
            ErrorKind::Unreachable => Error::Unreachable { message, source },
            ErrorKind::Authentication => Error::Authentication { message, source },
            ErrorKind::Tls => Error::Tls { message, source },
            ErrorKind::Server => Error::Server { message, source },
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidSettings, message)
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadLine { .. }
            | Error::UnknownService { .. }
            | Error::ReadFile { .. }
            | Error::InvalidSettings(_) => ErrorKind::InvalidSettings,
            Error::Unreachable { .. } => ErrorKind::Unreachable,
            Error::Authentication { .. } => ErrorKind::Authentication,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Server { .. } => ErrorKind::Server,
        }
    }

    pub fn is_unreachable(&self) -> bool {
        self.kind() == ErrorKind::Unreachable
    }

    /// The server answered that the database named in the settings does not exist.
    pub fn is_missing_database(&self) -> bool {
        #[cfg(not(feature = "postgres"))]
        return false;
        #[cfg(feature = "postgres")]
        std::error::Error::source(self)
            .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
            .and_then(tokio_postgres::Error::code)
            .is_some_and(|code| *code == tokio_postgres::error::SqlState::INVALID_CATALOG_NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_follows_each_variant() {
        let io = || Some(Box::new(std::io::Error::other("refused")) as BoxError);
        let cases = [
            (Error::BadLine { file: ".env".into(), line: 3, reason: "no =".into() }, ErrorKind::InvalidSettings),
            (
                Error::UnknownService { name: "s".into(), looked: vec!["~/.pg_service.conf".into()] },
                ErrorKind::InvalidSettings,
            ),
            (Error::InvalidSettings("bad".into()), ErrorKind::InvalidSettings),
            (
                Error::ReadFile { what: "env file", path: ".env".into(), source: std::io::Error::other("denied") },
                ErrorKind::InvalidSettings,
            ),
            (Error::Unreachable { message: "m".into(), source: io() }, ErrorKind::Unreachable),
            (Error::Authentication { message: "m".into(), source: None }, ErrorKind::Authentication),
            (Error::Tls { message: "m".into(), source: None }, ErrorKind::Tls),
            (Error::Server { message: "m".into(), source: None }, ErrorKind::Server),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
        // The constructors by kind give the variant of that kind, with the source kept.
        for kind in [
            ErrorKind::InvalidSettings,
            ErrorKind::Unreachable,
            ErrorKind::Authentication,
            ErrorKind::Tls,
            ErrorKind::Server,
        ] {
            assert_eq!(Error::new(kind, "m").kind(), kind);
        }
        let e = Error::with_source(ErrorKind::Unreachable, "could not connect", std::io::Error::other("refused"));
        assert!(e.is_unreachable() && std::error::Error::source(&e).is_some());
        assert_eq!(
            Error::BadLine { file: ".env".into(), line: 3, reason: "expected KEY=VALUE".into() }.to_string(),
            ".env:3: expected KEY=VALUE"
        );
    }
}
