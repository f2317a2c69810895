use std::path::PathBuf;

/// What kind of failure, for a caller that decides from it (a missing tool is the
/// machine's setup; a server that would not start may be worth another try).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A program the kit needs (PostgreSQL's server binaries, PgBouncer, runuser) or the
    /// user it runs the server as is missing.
    Missing,
    /// A program ran and failed (initdb, pg_ctl, pgbouncer).
    Failed,
    /// The server or pooler did not come up in time, or no port was free.
    Start,
    /// A file or directory of the kit could not be made or changed.
    Io,
    /// The test server did not answer as expected.
    Database,
    /// The request itself is unusable (a bad name, a URL that is not PostgreSQL's).
    Usage,
}

/// Why a throwaway database could not be provided. The message says what to install or set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// PostgreSQL's server binaries are not where they were looked for.
    #[error("{}", match dir {
        Some(dir) => format!("SAGE_PG_BIN={} does not hold initdb, pg_ctl and postgres", dir.display()),
        None => "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found; \
                 install them (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql@15) \
                 or set SAGE_PG_BIN to the directory that holds them".to_string(),
    })]
    BinariesNotFound {
        /// The directory `SAGE_PG_BIN` named, when it was set.
        dir: Option<PathBuf>,
    },
    /// Another program or account the kit needs is missing; `advice` says how to get it.
    #[error("{advice}")]
    Missing { advice: String },
    /// A program could not be run at all.
    #[error("cannot run {}: {source}", program.display())]
    Run {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed; `output` is what it printed (and the server's log).
    #[error("{what} failed: {output}")]
    CommandFailed { what: String, output: String },
    /// The server or pooler did not start, or did not reach the state waited for.
    #[error("{0}")]
    Start(String),
    /// No free TCP port.
    #[error("no free port: {0}")]
    NoFreePort(#[source] std::io::Error),
    /// A file or directory could not be made or changed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The test server did not answer as expected.
    #[error("{0}")]
    Database(String),
    /// An unusable request.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BinariesNotFound { .. } | Error::Missing { .. } => ErrorKind::Missing,
            Error::Run { .. } | Error::CommandFailed { .. } => ErrorKind::Failed,
            Error::Start(_) | Error::NoFreePort(_) => ErrorKind::Start,
            Error::Io { .. } => ErrorKind::Io,
            Error::Database(_) => ErrorKind::Database,
            Error::Usage(_) => ErrorKind::Usage,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_follows_each_variant() {
        let io = || std::io::Error::other("denied");
        let cases = [
            (Error::BinariesNotFound { dir: None }, ErrorKind::Missing),
            (Error::BinariesNotFound { dir: Some("/x".into()) }, ErrorKind::Missing),
            (Error::Missing { advice: "install pgbouncer".into() }, ErrorKind::Missing),
            (Error::Run { program: "/bin/initdb".into(), source: io() }, ErrorKind::Failed),
            (Error::CommandFailed { what: "initdb".into(), output: "out".into() }, ErrorKind::Failed),
            (Error::Start("the server did not start".into()), ErrorKind::Start),
            (Error::NoFreePort(io()), ErrorKind::Start),
            (Error::Io { action: "write", path: "/x".into(), source: io() }, ErrorKind::Io),
            (Error::Database("cannot create test database".into()), ErrorKind::Database),
            (Error::Usage("bad name".into()), ErrorKind::Usage),
        ];
        for (error, kind) in cases {
            assert_eq!(error.kind(), kind, "{error}");
        }
        let e = Error::CommandFailed { what: "initdb".into(), output: "initdb: error: directory exists".into() };
        assert_eq!(e.to_string(), "initdb failed: initdb: error: directory exists");
        assert!(std::error::Error::source(&Error::NoFreePort(io())).is_some());
    }
}
