//! The store contract: three traits every backend satisfies identically, usable as trait
//! objects (`Arc<dyn SessionStore>`).

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Claim, DidRecord, NewSession, NonceClaim, Page, Session, SessionUpdate};

/// Sessions between a client and a server: created at a handshake, touched by every
/// message, over by time, idleness or message budget. [`Store::sessions`](crate::Store::sessions)
/// gives one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sage_store::StoreError> {
/// use sage_store::{prelude::*, chrono::Duration, ErrorKind, NewSession, SessionKey, Store};
/// let store = Store::open_url("memory://").await?;
/// let new = NewSession::new("did:sage:alice", "did:sage:bob", SessionKey::new(vec![7; 32]), store.now() + Duration::hours(1))
///     .with_max_messages(2);
/// let session = store.sessions().create(&new).await?;
/// store.sessions().touch(&session.id).await?;
/// store.sessions().touch(&session.id).await?; // the budget's last message
/// assert_eq!(store.sessions().get(&session.id).await.unwrap_err().kind(), ErrorKind::Expired);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session. `AlreadyExists` when the id is taken.
    async fn create(&self, session: &NewSession) -> Result<Session>;
    /// `NotFound` when there is no such session, `Expired` when it exists but is past its
    /// expiry, idle timeout or message budget.
    async fn get(&self, id: &str) -> Result<Session>;
    /// Changes a live session; an expired one cannot be revived.
    async fn update(&self, id: &str, changes: &SessionUpdate) -> Result<Session>;
    /// Records one message: bumps the counter and the last activity, atomically, and
    /// fails with `Expired` once the session is out of time, idle or over budget.
    async fn touch(&self, id: &str) -> Result<Session>;
    /// Deletes a session, live or not; `NotFound` when there is none. Its nonces stay
    /// claimed until they expire.
    async fn delete(&self, id: &str) -> Result<()>;
    /// Live sessions of a client, newest first.
    async fn list_by_client(&self, client_did: &str, page: Page) -> Result<Vec<Session>>;
    /// Live sessions of a server, newest first.
    async fn list_by_server(&self, server_did: &str, page: Page) -> Result<Vec<Session>>;
    /// Every live session, newest first (ties broken by id, so pages do not overlap).
    async fn list_all(&self, page: Page) -> Result<Vec<Session>>;
    /// How many sessions are live now.
    async fn count_active(&self) -> Result<u64>;
    /// Deletes expired sessions in small batches; returns how many.
    async fn delete_expired(&self) -> Result<u64>;
}

/// Single-use nonces: the replay protection of signed messages.
/// [`Store::nonces`](crate::Store::nonces) gives one; to claim a message's nonce and count
/// it on its session in one step, use [`Store::accept`](crate::Store::accept).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sage_store::StoreError> {
/// use sage_store::{prelude::*, chrono::Duration, Store};
/// let store = Store::open_url("memory://").await?;
/// let expires_at = store.now() + Duration::minutes(10);
/// store.nonces().claim("q83vEjRWeJASNFZ4kBI0Vg", None, expires_at).await?;
/// let replay = store.nonces().claim("q83vEjRWeJASNFZ4kBI0Vg", None, expires_at).await;
/// assert!(replay.unwrap_err().is_replayed());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// Marks a nonce used. `Replayed` when it is already used and not expired; an expired
    /// nonce can be claimed again. Exactly one of any number of concurrent claims of the
    /// same nonce succeeds.
    async fn claim(
        &self,
        nonce: &str,
        session_id: Option<&str>,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()>;
    /// Claims many nonces in one round trip; one answer per claim, in order. A nonce
    /// repeated within the batch is fresh at most once.
    async fn claim_many(&self, claims: &[NonceClaim]) -> Result<Vec<Claim>>;
    /// Whether `nonce` is claimed and not expired.
    async fn is_used(&self, nonce: &str) -> Result<bool>;
    /// How many nonces are claimed and not expired.
    async fn count_active(&self) -> Result<u64>;
    /// Deletes expired nonces in small batches; returns how many.
    async fn delete_expired(&self) -> Result<u64>;
}

/// A cache of resolved DIDs: public keys, owners, endpoints, capabilities, revocation.
/// [`Store::dids`](crate::Store::dids) gives one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sage_store::StoreError> {
/// use sage_store::{prelude::*, DidRecord, KeyType, Store};
/// let store = Store::open_url("memory://").await?;
/// store.dids().upsert(&DidRecord::new("did:sage:alice", vec![7; 32], "0xA11CE", KeyType::Ed25519)).await?;
/// assert!(!store.dids().is_revoked("did:sage:alice").await?);
/// store.dids().revoke("did:sage:alice").await?;
/// assert!(store.dids().is_revoked("did:sage:alice").await?);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait DidStore: Send + Sync {
    /// Stores a new record; `AlreadyExists` when the DID is cached already. The store sets
    /// `created_at` and `updated_at`, and `fetched_at` when it is left at the epoch.
    async fn create(&self, record: &DidRecord) -> Result<DidRecord>;
    /// Stores a record, replacing everything but `created_at` when the DID is cached.
    async fn upsert(&self, record: &DidRecord) -> Result<DidRecord>;
    /// The record of `did`; `NotFound` when it is not cached.
    async fn get(&self, did: &str) -> Result<DidRecord>;
    /// Replaces everything but `created_at`; `NotFound` when the DID is not cached.
    async fn update(&self, record: &DidRecord) -> Result<DidRecord>;
    /// Deletes a record; `NotFound` when there is none.
    async fn delete(&self, did: &str) -> Result<()>;
    /// Newest first.
    async fn list_by_owner(&self, owner_address: &str) -> Result<Vec<DidRecord>>;
    /// Every cached DID, newest first (ties broken by DID, so pages do not overlap).
    async fn list_all(&self, page: Page) -> Result<Vec<DidRecord>>;
    /// Marks a DID revoked; `NotFound` when it is not cached.
    async fn revoke(&self, did: &str) -> Result<()>;
    /// `NotFound` for an unknown DID: an unknown DID is not "not revoked".
    async fn is_revoked(&self, did: &str) -> Result<bool>;
}
