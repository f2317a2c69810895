//! What a storage engine provides. Validation, encryption and the rules of the contract
//! live once, in `store.rs`; a backend stores rows and answers the atomic questions
//! (claim, touch, conditional update) in one step.

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) mod batch;
pub(crate) mod memory;
pub(crate) mod nonce_table;
#[cfg(feature = "postgres")]
pub(crate) mod pg_accept;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod replica;
#[cfg(feature = "postgres")]
pub(crate) mod runtime;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
#[cfg(feature = "postgres")]
pub(crate) mod statements;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::model::{Claim, DidRecord, NonceClaim, Page};

/// A session as stored: the key is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub id: String,
    pub client_did: String,
    pub server_did: String,
    pub sealed_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub metadata: Option<serde_json::Value>,
    pub message_count: i64,
    pub max_messages: Option<i64>,
    pub idle_timeout_seconds: Option<i32>,
}

impl SessionRow {
    /// The liveness rule; the SQL backends state the same rule in their WHERE clauses.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
            // Rows may come from other clients: an idle deadline beyond the calendar is never
            // reached, and the addition must not panic on the way.
            && self.idle_timeout_seconds.is_none_or(|s| {
                self.last_activity
                    .checked_add_signed(chrono::TimeDelta::seconds(s.into()))
                    .is_none_or(|deadline| now < deadline)
            })
            && self.max_messages.is_none_or(|max| self.message_count < max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Party {
    Client,
    Server,
}

/// The result of a write that only applies to a live session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Conditional<T> {
    Done(T),
    NotFound,
    NotLive,
}

/// The result of accepting a message: its nonce claimed and its session touched, both or
/// neither.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// Both happened; the session as it is now.
    Done(SessionRow),
    NotFound,
    NotLive,
    /// The session is live but the nonce was already used; nothing changed.
    Replayed,
}

#[async_trait]
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    /// The connection pool's state, for pooled backends.
    fn pool_status(&self) -> Option<crate::metrics::PoolStatus> {
        None
    }
    async fn ping(&self) -> Result<()>;
    async fn close(&self);

    async fn insert_session(&self, row: &SessionRow) -> Result<()>;
    async fn get_session(&self, id: &str) -> Result<Option<SessionRow>>;
    /// Replaces the mutable fields of a live session.
    async fn update_session(&self, row: &SessionRow, now: DateTime<Utc>) -> Result<Conditional<()>>;
    /// Counts one message and records activity, if the session is live.
    async fn touch_session(&self, id: &str, now: DateTime<Utc>) -> Result<Conditional<SessionRow>>;
    /// Claims `nonce` for the session and counts one message on it, in one atomic step:
    /// both or neither. A session that is missing or not live is reported before a replay.
    async fn accept(
        &self,
        session_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Accepted>;
    async fn delete_session(&self, id: &str) -> Result<bool>;
    /// Live sessions of one party, newest first.
    async fn list_sessions(&self, party: Party, did: &str, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>>;
    /// Every live session, newest first (ties by id, descending), a page at a time.
    async fn list_all_sessions(&self, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>>;
    async fn count_sessions(&self, now: DateTime<Utc>) -> Result<u64>;
    /// Deletes at most `batch` sessions that are not live.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>, batch: u32) -> Result<u64>;
    /// Sealed keys in id order, after `after`, for key rotation.
    async fn session_keys_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, Vec<u8>)>>;
    /// Swaps a sealed key only if it still holds `old`.
    async fn replace_session_key(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool>;

    /// Claims distinct nonces; answers in the same order.
    async fn claim_nonces(&self, claims: &[NonceClaim], now: DateTime<Utc>) -> Result<Vec<Claim>>;

    /// Answers a claim at once, for backends that never wait (memory): the hottest call
    /// then costs no boxed future. `None` sends it down `claim_nonce`.
    fn claim_nonce_now(&self, _nonce: &str, _expires_at: DateTime<Utc>, _now: DateTime<Utc>) -> Option<Result<Claim>> {
        None
    }

    /// Claims one nonce. Backends with a cheaper single path override this.
    async fn claim_nonce(
        &self,
        nonce: &str,
        session_id: Option<&str>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        let claim = NonceClaim { nonce: nonce.to_string(), session_id: session_id.map(str::to_string), expires_at };
        Ok(self.claim_nonces(std::slice::from_ref(&claim), now).await?.into_iter().next().unwrap_or(Claim::Replayed))
    }
    async fn nonce_used(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool>;
    async fn count_nonces(&self, now: DateTime<Utc>) -> Result<u64>;
    async fn delete_expired_nonces(&self, now: DateTime<Utc>, batch: u32) -> Result<u64>;

    async fn insert_did(&self, record: &DidRecord) -> Result<()>;
    /// Inserts or replaces everything but `created_at`; returns the stored record.
    async fn upsert_did(&self, record: &DidRecord) -> Result<DidRecord>;
    async fn get_did(&self, did: &str) -> Result<Option<DidRecord>>;
    /// Replaces everything but `created_at`; `None` when the DID is unknown.
    async fn update_did(&self, record: &DidRecord) -> Result<Option<DidRecord>>;
    async fn delete_did(&self, did: &str) -> Result<bool>;
    /// Newest first.
    async fn list_dids(&self, owner: &str) -> Result<Vec<DidRecord>>;
    /// Every cached DID, newest first (ties by DID, descending), a page at a time.
    async fn list_all_dids(&self, page: Page) -> Result<Vec<DidRecord>>;
    async fn revoke_did(&self, did: &str, now: DateTime<Utc>) -> Result<bool>;
}
