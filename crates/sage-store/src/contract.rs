//! The store contract: three traits every backend satisfies identically, usable as trait
//! objects (`Arc<dyn SessionStore>`).

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{Claim, DidRecord, NewSession, NonceClaim, Page, Session, SessionUpdate};

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
    async fn delete(&self, id: &str) -> Result<()>;
    /// Live sessions of a client, newest first.
    async fn list_by_client(&self, client_did: &str, page: Page) -> Result<Vec<Session>>;
    /// Live sessions of a server, newest first.
    async fn list_by_server(&self, server_did: &str, page: Page) -> Result<Vec<Session>>;
    async fn count_active(&self) -> Result<u64>;
    /// Deletes expired sessions in small batches; returns how many.
    async fn delete_expired(&self) -> Result<u64>;
}

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
    async fn is_used(&self, nonce: &str) -> Result<bool>;
    async fn count_active(&self) -> Result<u64>;
    async fn delete_expired(&self) -> Result<u64>;
}

#[async_trait]
pub trait DidStore: Send + Sync {
    async fn create(&self, record: &DidRecord) -> Result<DidRecord>;
    async fn upsert(&self, record: &DidRecord) -> Result<DidRecord>;
    async fn get(&self, did: &str) -> Result<DidRecord>;
    async fn update(&self, record: &DidRecord) -> Result<DidRecord>;
    async fn delete(&self, did: &str) -> Result<()>;
    /// Newest first.
    async fn list_by_owner(&self, owner_address: &str) -> Result<Vec<DidRecord>>;
    async fn revoke(&self, did: &str) -> Result<()>;
    /// `NotFound` for an unknown DID: an unknown DID is not "not revoked".
    async fn is_revoked(&self, did: &str) -> Result<bool>;
}
