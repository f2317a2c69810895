use std::fmt;

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
        let text = match (&source as &(dyn std::error::Error + 'static)).downcast_ref::<tokio_postgres::Error>() {
            Some(pg) => sage_conn::describe_pg_error(pg, None),
            None => source.to_string(),
        };
        let message = format!("{}: {text}", message.into());
        Error { message, source: Some(Box::new(source)) }
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
