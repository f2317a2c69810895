//! A message relay for agents, built on `sage-store` alone: the example of how a service
//! uses the store.
//!
//! - `POST /handshake` `{"client_did", "key"}`: the client's DID must be known and not
//!   revoked; the relay opens a session for it and answers `{"session_id", "expires_at"}`.
//! - `POST /messages` `{"session_id", "sender_did", "nonce", "body"}`: the sender's DID must
//!   be known and not revoked; then [`Store::accept`] claims the nonce and counts the message
//!   on its session in one atomic step, so a replayed nonce, an expired session or a spent
//!   budget refuses the message and leaves everything as it was. Answers
//!   `{"message_count", "expires_at"}`.
//! - `GET /metrics`: the store's counters and latencies in the Prometheus text format.
//!
//! A store error becomes the HTTP status of its kind ([`ErrorKind::http_status`]) and a body
//! `{"error": kind, "message": …}` whose message is [`StoreError::client_message`]: an
//! outage's host and port never reach the client. [`spawn_cleanup`] deletes expired
//! sessions and nonces in the background.
//!
//! What a real relay adds and this one leaves out, because none of it is the store's job:
//! deriving the session key by key agreement (here the client sends the key material),
//! verifying each message's signature with the sender's public key from its DID record,
//! and delivering the body. DIDs get into the store from whatever resolves them; here
//! `sage-db did put` or [`DidStore::upsert`] in the tests.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sage_store::chrono::{DateTime, Utc};
use sage_store::prelude::*;
use sage_store::{ErrorKind, NewSession, SessionKey, Store, StoreError};
use serde::{Deserialize, Serialize};

/// How the relay runs its sessions.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The relay's own DID, the server side of every session.
    pub server_did: String,
    /// How long a session lasts from its handshake.
    pub session_ttl: Duration,
    /// How long a message's nonce stays claimed. Longer than any clock skew or retry
    /// window a client may have; the nonce can be reused only after this.
    pub nonce_ttl: Duration,
    /// Messages a session may carry before the client must shake hands again.
    pub max_messages: Option<u64>,
    /// A session without messages for this long is over.
    pub idle_timeout: Option<Duration>,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            server_did: "did:sage:relay".to_string(),
            session_ttl: Duration::from_secs(3600),
            nonce_ttl: Duration::from_secs(600),
            max_messages: Some(10_000),
            idle_timeout: Some(Duration::from_secs(900)),
        }
    }
}

#[derive(Debug, Clone)]
struct Relay {
    store: Store,
    config: RelayConfig,
}

/// The relay's routes on `store`.
pub fn router(store: Store, config: RelayConfig) -> Router {
    Router::new()
        .route("/handshake", post(handshake))
        .route("/messages", post(message))
        .route("/metrics", get(metrics))
        .with_state(Relay { store, config })
}

/// The body of `POST /handshake`.
#[derive(Debug, Deserialize)]
pub struct Handshake {
    /// Who opens the session.
    pub client_did: String,
    /// The session's key material, which a real handshake would derive by key agreement.
    pub key: Vec<u8>,
}

/// The answer to a handshake.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionOpened {
    /// The id every message of the session names.
    pub session_id: String,
    /// When the session ends at the latest.
    pub expires_at: DateTime<Utc>,
}

/// The body of `POST /messages`.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// The session the message belongs to.
    pub session_id: String,
    /// Who sent it.
    pub sender_did: String,
    /// Unique per message: a replay of it is refused.
    pub nonce: String,
    /// What to relay; delivery is left out of this example.
    pub body: String,
}

/// The answer to an accepted message.
#[derive(Debug, Serialize, Deserialize)]
pub struct MessageAccepted {
    /// Messages the session has carried, this one included.
    pub message_count: u64,
    /// When the session ends at the latest.
    pub expires_at: DateTime<Utc>,
}

async fn handshake(
    State(relay): State<Relay>,
    Json(request): Json<Handshake>,
) -> Result<Json<SessionOpened>, ApiError> {
    may_send(&relay.store, &request.client_did).await?;
    let config = &relay.config;
    // Expiry is computed from the store's clock, which a test can move.
    let expires_at = relay.store.now() + config.session_ttl;
    let mut session = NewSession::new(request.client_did, &config.server_did, SessionKey::new(request.key), expires_at);
    session.max_messages = config.max_messages;
    session.idle_timeout = config.idle_timeout;
    let session = relay.store.sessions().create(&session).await?;
    Ok(Json(SessionOpened { session_id: session.id, expires_at: session.expires_at }))
}

async fn message(State(relay): State<Relay>, Json(message): Json<Message>) -> Result<Json<MessageAccepted>, ApiError> {
    may_send(&relay.store, &message.sender_did).await?;
    let nonce_expires_at = relay.store.now() + relay.config.nonce_ttl;
    // One atomic step: the nonce is claimed and the message counted, or neither. A refused
    // message (replayed nonce, expired session, spent budget) leaves the nonce as it was,
    // so a client whose session ran out can send the same message on a new one.
    let session = relay.store.accept(&message.session_id, &message.nonce, nonce_expires_at).await?;
    Ok(Json(MessageAccepted { message_count: session.message_count, expires_at: session.expires_at }))
}

async fn metrics(State(relay): State<Relay>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], relay.store.render_metrics()).into_response()
}

/// Refuses a DID that is unknown or revoked.
async fn may_send(store: &Store, did: &str) -> Result<(), ApiError> {
    match store.dids().is_revoked(did).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(ApiError::forbidden(format!("DID {did:?} is revoked"))),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(ApiError::forbidden(format!("DID {did:?} is unknown"))),
        Err(e) => Err(e.into()),
    }
}

/// Deletes expired sessions and nonces once; returns how many of each. Counted in the
/// store's metrics as `cleanup`.
pub async fn cleanup_once(store: &Store) -> Result<(u64, u64), StoreError> {
    let started = Instant::now();
    let result = async { Ok((store.sessions().delete_expired().await?, store.nonces().delete_expired().await?)) }.await;
    store.record_cleanup(started.elapsed(), result.is_ok());
    result
}

/// Runs [`cleanup_once`] every `every` until the task is aborted. The store deletes in
/// small batches, so messages keep flowing meanwhile.
pub fn spawn_cleanup(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            if let Err(e) = cleanup_once(&store).await {
                eprintln!("relay: cleanup failed: {e}");
            }
        }
    })
}

/// A refused request: a status and a message that is safe to show the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    message: String,
}

impl ApiError {
    fn forbidden(message: String) -> ApiError {
        ApiError { status: StatusCode::FORBIDDEN, error: "forbidden", message }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let kind = e.kind();
        if !kind.is_client_error() {
            // The full error (host, port, cause) is for the operator only.
            eprintln!("relay: {e}");
        }
        ApiError {
            status: StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error: kind.as_str(),
            message: e.client_message(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            message: &'a str,
        }
        (self.status, Json(Body { error: self.error, message: &self.message })).into_response()
    }
}
