//! The values stores take and return.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use zeroize::Zeroizing;

/// Session key material. Held in memory in the clear only while in use (it is zeroed on
/// drop), encrypted before it reaches a database, and never printed: `Debug` shows only
/// its length.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(Zeroizing<Vec<u8>>);

impl SessionKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> SessionKey {
        SessionKey(Zeroizing::new(bytes.into()))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({} bytes)", self.0.len())
    }
}

/// A secure session between a client and a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// A UUID or SAGE's 22-character base64url id.
    pub id: String,
    pub client_did: String,
    pub server_did: String,
    pub key: SessionKey,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    /// A JSON object, or `None`.
    pub metadata: Option<serde_json::Value>,
    /// Messages recorded with `touch`.
    pub message_count: u64,
    /// After this many messages the session counts as expired.
    pub max_messages: Option<u64>,
    /// Without activity for this long the session counts as expired.
    pub idle_timeout: Option<Duration>,
}

impl Session {
    /// Whether the session is usable at `now`: before its expiry, within its idle timeout
    /// and under its message budget. Every backend applies exactly this rule.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
            && self.idle_timeout.is_none_or(|idle| {
                // An idle deadline beyond the calendar is never reached.
                chrono::TimeDelta::from_std(idle)
                    .ok()
                    .and_then(|idle| self.last_activity.checked_add_signed(idle))
                    .is_none_or(|deadline| now < deadline)
            })
            && self.max_messages.is_none_or(|max| self.message_count < max)
    }
}

/// What `create` needs; the store fills in the rest.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub client_did: String,
    pub server_did: String,
    pub key: SessionKey,
    pub expires_at: DateTime<Utc>,
    pub metadata: Option<serde_json::Value>,
    pub max_messages: Option<u64>,
    pub idle_timeout: Option<Duration>,
}

/// Changes to an existing, live session. `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SessionUpdate {
    pub key: Option<SessionKey>,
    pub expires_at: Option<DateTime<Utc>>,
    /// `Some(None)` clears the metadata.
    pub metadata: Option<Option<serde_json::Value>>,
    pub max_messages: Option<Option<u64>>,
    pub idle_timeout: Option<Option<Duration>>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u32,
}

impl Page {
    pub const MAX_LIMIT: u32 = 1000;

    pub fn first(limit: u32) -> Page {
        Page { limit, offset: 0 }
    }
}

impl Default for Page {
    fn default() -> Page {
        Page { limit: 100, offset: 0 }
    }
}

/// One nonce to claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceClaim {
    pub nonce: String,
    pub session_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The answer to a claim: the nonce was unused (and is now used), or it was a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Claim {
    Fresh,
    Replayed,
}

/// Public-key algorithms a cached DID may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum KeyType {
    Ed25519,
    Secp256k1,
    X25519,
    #[serde(rename = "P-256")]
    P256,
    #[serde(rename = "P-384")]
    P384,
}

impl KeyType {
    pub const ALL: [KeyType; 5] = [KeyType::Ed25519, KeyType::Secp256k1, KeyType::X25519, KeyType::P256, KeyType::P384];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "Ed25519",
            KeyType::Secp256k1 => "Secp256k1",
            KeyType::X25519 => "X25519",
            KeyType::P256 => "P-256",
            KeyType::P384 => "P-384",
        }
    }

    /// Accepts SAGE's spellings in any case (`Ed25519`, `ed25519`, `secp256k1`, `p256`).
    pub fn parse(text: &str) -> Option<KeyType> {
        let folded: String = text.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_ascii_lowercase();
        KeyType::ALL.into_iter().find(|k| k.as_str().replace('-', "").to_ascii_lowercase() == folded)
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cached DID and what SAGE's application resolves for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidRecord {
    pub did: String,
    pub public_key: Vec<u8>,
    pub owner_address: String,
    pub key_type: KeyType,
    pub revoked: bool,
    /// The key-agreement (X25519, for HPKE) public key, when the DID has one.
    pub key_agreement_key: Option<Vec<u8>>,
    pub endpoint: Option<String>,
    pub capabilities: Vec<String>,
    /// When the entry was resolved from its source.
    pub fetched_at: DateTime<Utc>,
    /// After this the entry should be resolved again.
    pub stale_after: Option<DateTime<Utc>>,
    /// Set by the store.
    pub created_at: DateTime<Utc>,
    /// Set by the store on every change.
    pub updated_at: DateTime<Utc>,
}

impl DidRecord {
    /// A record with the required fields and everything else empty; the store sets the
    /// timestamps.
    pub fn new(
        did: impl Into<String>,
        public_key: Vec<u8>,
        owner_address: impl Into<String>,
        key_type: KeyType,
    ) -> DidRecord {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        DidRecord {
            did: did.into(),
            public_key,
            owner_address: owner_address.into(),
            key_type,
            revoked: false,
            key_agreement_key: None,
            endpoint: None,
            capabilities: Vec::new(),
            fetched_at: epoch,
            stale_after: None,
            created_at: epoch,
            updated_at: epoch,
        }
    }

    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.stale_after.is_some_and(|t| t <= now)
    }
}

/// Drops sub-microsecond precision, which PostgreSQL and SQLite do not keep, so a value
/// reads back exactly as written from every backend.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.timestamp_subsec_nanos().is_multiple_of(1000) {
        return t;
    }
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
