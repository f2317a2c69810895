//! Whether connections reach the server through a connection pooler such as PgBouncer, and
//! what that allows. A pooler in transaction or statement mode hands each transaction to
//! whichever server connection is free, so nothing that lives in a server session (named
//! prepared statements, session-level locks and settings, `LISTEN`) survives from one
//! transaction to the next.

use crate::Error;

/// What stands between the client and the server (`pooler=` in a URL or connection string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooler {
    /// Not said: the store decides when it connects (see [`detect`]).
    #[default]
    Detect,
    /// A direct connection, or a pooler that keeps one server session per client.
    None,
    /// A pooler in session mode (PgBouncer `pool_mode = session`): sessions hold.
    Session,
    /// A pooler in transaction mode (PgBouncer's common `pool_mode = transaction`).
    Transaction,
    /// A pooler in statement mode: each statement may run in another session.
    Statement,
}

impl Pooler {
    pub(crate) fn parse(source: &str, value: &str) -> Result<Pooler, Error> {
        match value {
            "detect" => Ok(Pooler::Detect),
            "none" => Ok(Pooler::None),
            "session" => Ok(Pooler::Session),
            "transaction" => Ok(Pooler::Transaction),
            "statement" => Ok(Pooler::Statement),
            other => Err(Error::invalid(format!(
                "{source}: unknown pooler {other:?} (expected none, session, transaction, statement or detect)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Pooler::Detect => "detect",
            Pooler::None => "none",
            Pooler::Session => "session",
            Pooler::Transaction => "transaction",
            Pooler::Statement => "statement",
        }
    }

    /// Whether a server session may change between two transactions of one connection, so
    /// that nothing may be left in it: named prepared statements, session locks, `SET`.
    /// `Detect` counts as yes until detection has run, the safe side.
    pub fn shares_sessions(self) -> bool {
        matches!(self, Pooler::Transaction | Pooler::Statement | Pooler::Detect)
    }
}

/// Decides `Detect` on a fresh connection: the server reports the port it listens on, and
/// a client that dialled another port reached it through something in between, a pooler
/// (PgBouncer listens on 6432 by default) or a port forward. Either way the answer is
/// [`Pooler::Transaction`], which is safe for both and costs a port forward only speed;
/// `pooler=none` in the URL keeps prepared statements there. A pooler on the server's own
/// port cannot be told apart this way: declare it with `pooler=transaction`.
#[cfg(feature = "postgres")]
pub async fn detect(client: &tokio_postgres::Client, dialled: &[u16]) -> Result<Pooler, Error> {
    // The simple protocol, which every pooler mode passes through unchanged.
    let messages = client.simple_query("SELECT current_setting('port')").await.map_err(|e| {
        Error::with_source(
            crate::ErrorKind::Server,
            format!("cannot read the server's port: {}", crate::describe_pg_error(&e, None)),
            e,
        )
    })?;
    let port = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|p| p.parse::<u16>().ok()),
        _ => None,
    });
    Ok(match port {
        Some(port) if dialled.contains(&port) => Pooler::None,
        _ => Pooler::Transaction,
    })
}

/// `settings` with [`Pooler::Detect`] replaced by what [`detect`] finds on one fresh
/// connection; settings that declare their pooler are returned as they are.
#[cfg(feature = "postgres")]
pub async fn decide(settings: &crate::PgSettings) -> Result<crate::PgSettings, Error> {
    if settings.pooler != Pooler::Detect {
        return Ok(settings.clone());
    }
    let client = crate::connect(settings).await?;
    let dialled: Vec<u16> = settings.endpoints().map(|(_, port)| port).collect();
    let pooler = detect(&client, &dialled).await?;
    if pooler == Pooler::Transaction {
        tracing::info!(
            "the server listens on another port than the one dialled: assuming a connection pooler in transaction \
             mode (no named prepared statements); add pooler=none to the URL to keep them"
        );
    }
    Ok(crate::PgSettings { pooler, ..settings.clone() })
}
