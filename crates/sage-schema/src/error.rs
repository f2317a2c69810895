use std::fmt;

/// What kind of failure, decided by the variant.
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
///
/// Messages are in the library's terms and never name a command-line flag (the command
/// line adds that advice). A message quotes its cause's words (for a database error, the
/// server's own message rather than the driver's "db error"); the cause itself stays
/// reachable through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A one-off refusal or malformed input; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The database could not be reached.
    #[error("{0}")]
    Connection(#[from] sage_conn::Error),
    /// Replaying migrations failed.
    #[error("{0}")]
    Migration(#[from] sage_migrate::Error),
    /// A catalog query or statement failed while doing `what`; `detail` is the server's (or
    /// SQLite's) own account of it.
    #[error("{what}: {detail}")]
    Database {
        what: String,
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// PostgreSQL migrations replay only on a PostgreSQL server, and none was given.
    #[error("replaying PostgreSQL migrations needs a PostgreSQL server")]
    ReplayNeedsServer,
    /// The server (`server`, its URL without password) refused to create a scratch
    /// database; `reason` is the server's message.
    #[error("cannot create a scratch database on {server} ({reason})")]
    ScratchRefused { server: String, reason: String },
    /// A kind of finding to ignore that no finding has; `known` lists those that exist.
    #[error("{given:?} is not a kind of finding (one of: {})", known.join(", "))]
    UnknownFindingKind { given: String, known: Vec<String> },
}

impl Error {
    /// A one-off refusal or malformed input ([`Error::Invalid`]).
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    /// A failed catalog query or statement while doing `what`.
    pub(crate) fn database(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        // tokio-postgres prints every server error as "db error"; say what the server said.
        #[cfg(feature = "postgres")]
        let detail = match (&source as &(dyn std::error::Error + 'static)).downcast_ref::<tokio_postgres::Error>() {
            Some(pg) => sage_conn::describe_pg_error(pg, None),
            None => source.to_string(),
        };
        #[cfg(not(feature = "postgres"))]
        let detail = source.to_string();
        Error::Database { what: what.into(), detail, source: Box::new(source) }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Connection(_) => ErrorKind::Connection,
            Error::Migration(_) => ErrorKind::Migration,
            Error::Database { .. } => ErrorKind::Database,
            Error::Invalid(_)
            | Error::ReplayNeedsServer
            | Error::ScratchRefused { .. }
            | Error::UnknownFindingKind { .. } => ErrorKind::Invalid,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn the_kind_follows_the_variant() {
        assert_eq!(Error::invalid("not a schema snapshot").kind(), ErrorKind::Invalid);

        let conn = sage_conn::Settings::parse_url("test", "ftp://x", sage_conn::Origin::Flag).unwrap_err();
        let conn = Error::from(conn);
        assert_eq!(conn.kind(), ErrorKind::Connection);
        assert!(conn.source().unwrap().is::<sage_conn::Error>());

        let refusals = [
            Error::ReplayNeedsServer,
            Error::ScratchRefused { server: "postgres://u@h/db".into(), reason: "permission denied".into() },
            Error::UnknownFindingKind { given: "grnat".into(), known: vec!["grant".into()] },
        ];
        for refusal in refusals {
            assert_eq!(refusal.kind(), ErrorKind::Invalid, "{refusal}");
            assert!(!refusal.to_string().contains("--"), "a library message names a flag: {refusal}");
        }
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn a_sqlite_failure_is_a_database_error_in_sqlites_words() {
        let sqlite = rusqlite::Connection::open_in_memory().unwrap().execute("nonsense", []).unwrap_err();
        let e = Error::database("cannot read tables", sqlite);
        assert_eq!(e.kind(), ErrorKind::Database);
        assert!(e.to_string().starts_with("cannot read tables: near \"nonsense\""), "{e}");
        assert!(e.source().unwrap().is::<rusqlite::Error>());
    }
}
