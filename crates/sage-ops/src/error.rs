use std::fmt;
use std::path::PathBuf;

/// What kind of failure, decided by the variant (and for a failure wrapped in another, by
/// the inner one).
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

/// An operation that could not be carried out; the message says what went wrong, in the
/// library's terms (it never names a command-line flag: the command line adds that advice).
///
/// A message quotes its cause's words (for a database error, the server's own message
/// rather than the driver's "db error"), so that it reads whole on one line; the cause
/// itself stays reachable through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A one-off refusal or malformed input; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The database could not be reached.
    #[error("{0}")]
    Connection(#[from] sage_conn::Error),
    /// A database statement failed while doing `what`; `detail` is the server's (or
    /// SQLite's) own account of it.
    #[error("{what}: {detail}")]
    Database {
        what: String,
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file could not be read, written, listed or removed: `what` is the action
    /// ("cannot write"), `path` the file, `error` what the system said. The message words
    /// the system's error itself (a full disk says so), so it is not a `source()` as well:
    /// that would print the same cause twice.
    #[error("{what} {}: {}", path.display(), crate::sink::describe_io(error))]
    Io { what: &'static str, path: PathBuf, error: std::io::Error },
    /// A schema operation below this one failed (a scratch database for verification).
    #[error("{0}")]
    Schema(#[from] sage_schema::Error),
    /// The backup's schema differs from the database's; restoring it would mix the two.
    #[error("{} is a backup of a different schema ({why}); nothing was restored", file.display())]
    SchemaDiffers { file: PathBuf, why: String },
    /// An encrypted backup (or manifest seal) and neither a passphrase nor an identity to
    /// open it.
    #[error("{file} is encrypted ({encryption}); no passphrase or identity was given to decrypt it")]
    KeyMissing { file: String, encryption: String },
    /// A recipient to encrypt for that is not an age recipient.
    #[error("{recipient:?} is not an age recipient (age1…): {reason}")]
    BadRecipient { recipient: String, reason: String },
    /// Verifying a PostgreSQL backup restores it into a scratch database on a server; the
    /// target given is not one.
    #[error("verifying a PostgreSQL backup needs a PostgreSQL server to restore into")]
    VerifyNeedsServer,
    /// No `program` (pg_dump, pg_restore) fits a PostgreSQL `major` server: none was found
    /// (`found` is empty), or those found (described in `found`) cannot do the work.
    #[error("{}", tool_missing(program, *major, found))]
    ToolMissing { program: String, major: u32, found: Vec<String> },
    /// The environment to seed has no seeds shipped with SAGE; `known` lists those that do.
    #[error("SAGE has no seed for environment {name:?} (known: {})", known.join(", "))]
    UnknownEnvironment { name: String, known: Vec<String> },
    /// A retention rule (`rule`, counted from 1, in `file`) with a bad `field`.
    #[error("{}: {why}", rule_label(file.as_deref(), *rule, table, column))]
    RetentionRule {
        file: Option<PathBuf>,
        rule: usize,
        table: String,
        column: String,
        field: &'static str,
        why: String,
    },
    /// A benchmark with neither a duration nor a number of operations would never end.
    #[error("the benchmark needs a duration or a number of operations to end")]
    BenchUnbounded,
    /// A restore into PostgreSQL failed inside its transaction, which was rolled back.
    #[error("the restore failed and was rolled back; the database is as it was: {0}")]
    RolledBack(#[source] Box<Error>),
}

fn tool_missing(program: &str, major: u32, found: &[String]) -> String {
    let install = crate::tools::how_to_install(major);
    if found.is_empty() {
        format!("{program} was not found; {install}")
    } else {
        format!("no {program} fits PostgreSQL {major}; found {}; {install}", found.join(", "))
    }
}

/// `FILE: retention rule N (table.column)`, the prefix of every message about a rule.
pub(crate) fn rule_label(file: Option<&std::path::Path>, rule: usize, table: &str, column: &str) -> String {
    let place = format!("retention rule {rule} ({table}.{column})");
    match file {
        Some(file) => format!("{}: {place}", file.display()),
        None => place,
    }
}

impl Error {
    /// A one-off refusal or malformed input ([`Error::Invalid`]).
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    /// A failed database statement while doing `what`, worded with the server's own
    /// message: tokio-postgres prints every server error as "db error", and the server's
    /// words (and for a missing privilege, the object) are what the user needs.
    pub(crate) fn database(what: impl Into<String>, source: impl Into<DatabaseSource>) -> Error {
        let (detail, source): (String, Box<dyn std::error::Error + Send + Sync>) = match source.into() {
            DatabaseSource::Postgres(pg) => (sage_conn::describe_pg_error(&pg, None), Box::new(pg)),
            DatabaseSource::Sqlite(e) => (e.to_string(), Box::new(e)),
        };
        Error::Database { what: what.into(), detail, source }
    }

    /// A file operation (`what`, e.g. "cannot read") on `path` that failed.
    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io { what, path: path.to_path_buf(), error: source }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Connection(_) => ErrorKind::Connection,
            Error::Database { .. } => ErrorKind::Database,
            Error::Io { .. } => ErrorKind::Io,
            Error::Schema(e) => match e.kind() {
                sage_schema::ErrorKind::Connection => ErrorKind::Connection,
                sage_schema::ErrorKind::Database => ErrorKind::Database,
                _ => ErrorKind::Invalid,
            },
            Error::RolledBack(inner) => inner.kind(),
            Error::Invalid(_)
            | Error::SchemaDiffers { .. }
            | Error::KeyMissing { .. }
            | Error::BadRecipient { .. }
            | Error::VerifyNeedsServer
            | Error::ToolMissing { .. }
            | Error::UnknownEnvironment { .. }
            | Error::RetentionRule { .. }
            | Error::BenchUnbounded => ErrorKind::Invalid,
        }
    }
}

/// The drivers whose failures are [`Error::Database`].
pub(crate) enum DatabaseSource {
    Postgres(tokio_postgres::Error),
    Sqlite(rusqlite::Error),
}

impl From<tokio_postgres::Error> for DatabaseSource {
    fn from(e: tokio_postgres::Error) -> Self {
        DatabaseSource::Postgres(e)
    }
}

impl From<rusqlite::Error> for DatabaseSource {
    fn from(e: rusqlite::Error) -> Self {
        DatabaseSource::Sqlite(e)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn the_kind_follows_the_variant() {
        assert_eq!(Error::invalid("bad manifest").kind(), ErrorKind::Invalid);
        let io = Error::io("cannot write", std::path::Path::new("x"), std::io::Error::other("disk full"));
        assert_eq!(io.kind(), ErrorKind::Io);
        assert_eq!(io.to_string(), "cannot write x: disk full");
        // The system's error is worded in the message, so it is not chained a second time;
        // it stays in the variant.
        assert!(io.source().is_none());
        assert!(matches!(&io, Error::Io { error, .. } if error.to_string() == "disk full"));

        let sqlite = rusqlite::Connection::open_in_memory().unwrap().execute("nonsense", []).unwrap_err();
        let db = Error::database("cannot read", sqlite);
        assert_eq!(db.kind(), ErrorKind::Database);
        assert!(db.to_string().starts_with("cannot read: near \"nonsense\""), "{db}");
        assert!(db.source().unwrap().is::<rusqlite::Error>());

        let conn = sage_conn::Settings::parse_url("test", "ftp://x", sage_conn::Origin::Flag).unwrap_err();
        let conn = Error::from(conn);
        assert_eq!(conn.kind(), ErrorKind::Connection);
        assert!(conn.source().unwrap().is::<sage_conn::Error>());

        // A failure inside a rolled-back restore keeps the inner kind and stays reachable.
        let rolled = Error::RolledBack(Box::new(Error::database("the commit failed", rusqlite_error())));
        assert_eq!(rolled.kind(), ErrorKind::Database);
        let Error::RolledBack(inner) = &rolled else { unreachable!() };
        assert_eq!(inner.kind(), ErrorKind::Database);
        assert!(rolled.source().and_then(|boxed| boxed.source()).unwrap().is::<rusqlite::Error>());

        for refusal in [
            Error::SchemaDiffers { file: "b.dump".into(), why: "tables differ".into() },
            Error::KeyMissing { file: "b.dump.age".into(), encryption: "age-passphrase".into() },
            Error::VerifyNeedsServer,
            Error::BenchUnbounded,
            Error::UnknownEnvironment { name: "qa".into(), known: vec!["dev".into()] },
        ] {
            assert_eq!(refusal.kind(), ErrorKind::Invalid, "{refusal}");
            assert!(!refusal.to_string().contains("--"), "a library message names a flag: {refusal}");
        }
    }

    fn rusqlite_error() -> rusqlite::Error {
        rusqlite::Connection::open_in_memory().unwrap().execute("nonsense", []).unwrap_err()
    }
}
