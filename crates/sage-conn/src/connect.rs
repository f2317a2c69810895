use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::describe::error_chain;
use tokio_postgres::config::TargetSessionAttrs;

use crate::{tls, Error, ErrorKind, PgSettings, SessionAttrs, SslMode};

/// Opens one PostgreSQL connection, driving it on a background task. Errors say what to fix
/// and never contain the password.
pub async fn connect(settings: &PgSettings) -> Result<Client, Error> {
    connect_with_timeout(settings, settings.connect_timeout).await
}

pub async fn connect_with_timeout(settings: &PgSettings, timeout: Duration) -> Result<Client, Error> {
    let config = driver_config(settings, timeout);
    let place = place(settings);
    let attempt = async {
        if settings.sslmode == SslMode::Disable {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            spawn_connection(connection);
            Ok(client)
        } else {
            let tls =
                tls::connector(settings.sslmode, settings.sslrootcert.as_deref()).map_err(ConnectFailure::Setup)?;
            let (client, connection) = config.connect(tls).await?;
            spawn_connection(connection);
            Ok(client)
        }
    };
    match tokio::time::timeout(timeout + Duration::from_secs(1), attempt).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(ConnectFailure::Setup(e))) => Err(e),
        Ok(Err(ConnectFailure::Driver(e))) => Err(describe(settings, &place, e)),
        Err(_) => Err(Error::new(
            ErrorKind::Unreachable,
            format!("could not connect to {place}: no answer within {}s", timeout.as_secs()),
        )),
    }
}

enum ConnectFailure {
    Setup(Error),
    Driver(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for ConnectFailure {
    fn from(e: tokio_postgres::Error) -> ConnectFailure {
        ConnectFailure::Driver(e)
    }
}

fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
}

pub(crate) fn driver_config(s: &PgSettings, timeout: Duration) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    for (host, port) in s.endpoints() {
        if host.starts_with('/') {
            config.host_path(host);
        } else {
            config.host(host);
        }
        config.port(port);
    }
    config
        .target_session_attrs(match s.target_session_attrs {
            SessionAttrs::Any => TargetSessionAttrs::Any,
            SessionAttrs::ReadWrite => TargetSessionAttrs::ReadWrite,
            SessionAttrs::ReadOnly => TargetSessionAttrs::ReadOnly,
        })
        .user(&s.user)
        .dbname(&s.dbname)
        .application_name(&s.application_name)
        .connect_timeout(timeout)
        .ssl_mode(match s.sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
    if let Some(options) = &s.options {
        config.options(options);
    }
    if let Some(password) = &s.password {
        config.password(password.expose());
    }
    config
}

pub(crate) fn place(s: &PgSettings) -> String {
    let places: Vec<String> = s
        .endpoints()
        .map(|(host, port)| {
            if host.starts_with('/') {
                format!("the socket in {host} (port {port})")
            } else {
                format!("{host}:{port}")
            }
        })
        .collect();
    let attrs = match s.target_session_attrs {
        SessionAttrs::Any => String::new(),
        attrs => format!(" ({} server wanted)", attrs.as_str()),
    };
    format!("{}{attrs}, database {:?}", places.join(" or "), s.dbname)
}

pub(crate) fn describe(s: &PgSettings, place: &str, e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let (kind, hint) =
            if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                (ErrorKind::Authentication, "check the user name and password".to_string())
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                (ErrorKind::Server, format!("create it first (createdb {:?}) or fix the database name", s.dbname))
            } else if *code == SqlState::TOO_MANY_CONNECTIONS {
                (ErrorKind::Unreachable, "the server is at max_connections; retry later".to_string())
            } else if *code == SqlState::CANNOT_CONNECT_NOW {
                (ErrorKind::Unreachable, "the server is starting up or shutting down; retry shortly".to_string())
            } else {
                (ErrorKind::Server, String::new())
            };
        let message = crate::describe::describe_pg_error(&e, None);
        let text = if hint.is_empty() {
            format!("could not connect to {place}: {message}")
        } else {
            format!("could not connect to {place}: {message} ({hint})")
        };
        return Error::with_source(kind, text, e);
    }
    // A certificate or handshake failure says which check failed, in words.
    if let Some(words) = crate::describe::tls_failure(&e, Some(&s.host)) {
        return Error::with_source(
            ErrorKind::Tls,
            format!("could not connect to {place}: {words} (check sslmode and sslrootcert)"),
            e,
        );
    }
    let chain = error_chain(&e);
    let lower = chain.to_ascii_lowercase();
    let (kind, hint) = if lower.contains("refused") {
        (ErrorKind::Unreachable, " (is PostgreSQL running and listening there?)")
    } else if lower.contains("failed to lookup") || lower.contains("name or service not known") {
        (ErrorKind::Unreachable, " (check the host name)")
    } else if lower.contains("tls") || lower.contains("certificate") || lower.contains("ssl") {
        (ErrorKind::Tls, " (check sslmode and sslrootcert)")
    } else if lower.contains("timed out") || lower.contains("timeout") {
        (ErrorKind::Unreachable, " (is the host reachable?)")
    } else {
        (ErrorKind::Unreachable, "")
    };
    Error::with_source(kind, format!("could not connect to {place}: {chain}{hint}"), e)
}

/// A notification received with `LISTEN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub channel: String,
    pub payload: String,
    pub process_id: i32,
}

/// Opens a connection whose notifications (`LISTEN`/`NOTIFY`) are delivered on the returned
/// channel; it closes when the connection ends.
pub async fn connect_listening(
    settings: &PgSettings,
) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<Notification>), Error> {
    let config = driver_config(settings, settings.connect_timeout);
    let place = place(settings);
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let client = if settings.sslmode == SslMode::Disable {
        let (client, connection) =
            config.connect(tokio_postgres::NoTls).await.map_err(|e| describe(settings, &place, e))?;
        spawn_forwarding(connection, sender);
        client
    } else {
        let tls = tls::connector(settings.sslmode, settings.sslrootcert.as_deref())?;
        let (client, connection) = config.connect(tls).await.map_err(|e| describe(settings, &place, e))?;
        spawn_forwarding(connection, sender);
        client
    };
    Ok((client, receiver))
}

fn spawn_forwarding<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    sender: tokio::sync::mpsc::UnboundedSender<Notification>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures_util::StreamExt;
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let _ = sender.send(Notification {
                        channel: n.channel().to_string(),
                        payload: n.payload().to_string(),
                        process_id: n.process_id(),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "listening connection closed");
                    return;
                }
            }
        }
    });
}
