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
    /// Wraps key material.
    pub fn new(bytes: impl Into<Vec<u8>>) -> SessionKey {
        SessionKey(Zeroizing::new(bytes.into()))
    }

    /// The key material itself, for the code that uses it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds no bytes (a store refuses such a key).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({} bytes)", self.0.len())
    }
}

/// A secure session between a client and a server. Serializes without its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// A UUID or SAGE's 22-character base64url id.
    pub id: String,
    /// The DID of the client that opened the session.
    pub client_did: String,
    /// The DID of the server the session is with.
    pub server_did: String,
    /// The session's key material; never serialized, never printed.
    #[serde(skip)]
    pub key: SessionKey,
    /// Set by the store when the session is created.
    pub created_at: DateTime<Utc>,
    /// After this the session counts as expired.
    pub expires_at: DateTime<Utc>,
    /// The last message recorded (`touch`, `accept`), or the creation time.
    pub last_activity: DateTime<Utc>,
    /// A JSON object, or `None`.
    pub metadata: Option<serde_json::Value>,
    /// Messages recorded with `touch` or `accept`.
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
    /// The session's id: a UUID or SAGE's 22-character base64url id.
    pub id: String,
    /// The client's DID.
    pub client_did: String,
    /// The server's DID.
    pub server_did: String,
    /// The key material agreed in the handshake; sealed before it is stored.
    pub key: SessionKey,
    /// When the session ends; take it from [`Store::now`](crate::Store::now).
    pub expires_at: DateTime<Utc>,
    /// A JSON object, or `None`.
    pub metadata: Option<serde_json::Value>,
    /// After this many messages the session counts as expired.
    pub max_messages: Option<u64>,
    /// Without activity for this long the session counts as expired.
    pub idle_timeout: Option<Duration>,
}

impl NewSession {
    /// A session with a new random id (SAGE's 22-character base64url form of 128 random
    /// bits), no metadata and no limits besides `expires_at`.
    pub fn new(
        client_did: impl Into<String>,
        server_did: impl Into<String>,
        key: SessionKey,
        expires_at: DateTime<Utc>,
    ) -> NewSession {
        NewSession {
            id: new_session_id(),
            client_did: client_did.into(),
            server_did: server_did.into(),
            key,
            expires_at,
            metadata: None,
            max_messages: None,
            idle_timeout: None,
        }
    }

    /// Ends the session after `max` messages.
    pub fn with_max_messages(mut self, max: u64) -> NewSession {
        self.max_messages = Some(max);
        self
    }

    /// Ends the session after `idle` without messages.
    pub fn with_idle_timeout(mut self, idle: Duration) -> NewSession {
        self.idle_timeout = Some(idle);
        self
    }

    /// Attaches a JSON object.
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> NewSession {
        self.metadata = Some(metadata);
        self
    }
}

/// A new session id: 128 random bits in unpadded base64url, 22 characters.
pub fn new_session_id() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// Changes to an existing, live session. `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SessionUpdate {
    /// New key material.
    pub key: Option<SessionKey>,
    /// A new expiry, after the store's current time.
    pub expires_at: Option<DateTime<Utc>>,
    /// `Some(None)` clears the metadata.
    pub metadata: Option<Option<serde_json::Value>>,
    /// A new message budget; `Some(None)` removes it.
    pub max_messages: Option<Option<u64>>,
    /// A new idle timeout; `Some(None)` removes it.
    pub idle_timeout: Option<Option<Duration>>,
}

/// One page of a listing, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// At most this many entries, 1 to [`Page::MAX_LIMIT`].
    pub limit: u32,
    /// Entries skipped before the page.
    pub offset: u32,
}

impl Page {
    /// The largest page a store returns.
    pub const MAX_LIMIT: u32 = 1000;

    /// The first `limit` entries.
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
    /// The nonce, as the message carries it.
    pub nonce: String,
    /// The session the message belongs to, if any.
    pub session_id: Option<String>,
    /// Until when the nonce stays claimed; after this it may be claimed again.
    pub expires_at: DateTime<Utc>,
}

/// The answer to a claim: the nonce was unused (and is now used), or it was a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Claim {
    /// The nonce was unused and is now claimed.
    Fresh,
    /// The nonce was already claimed and has not expired.
    Replayed,
}

/// Public-key algorithms a cached DID may use. Deserializes from any spelling
/// [`KeyType::parse`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum KeyType {
    /// Ed25519 signatures.
    Ed25519,
    /// ECDSA on secp256k1 (Ethereum's curve).
    Secp256k1,
    /// X25519 key agreement.
    X25519,
    /// ECDSA on NIST P-256.
    #[serde(rename = "P-256")]
    P256,
    /// ECDSA on NIST P-384.
    #[serde(rename = "P-384")]
    P384,
}

impl KeyType {
    /// Every key type.
    pub const ALL: [KeyType; 5] = [KeyType::Ed25519, KeyType::Secp256k1, KeyType::X25519, KeyType::P256, KeyType::P384];

    /// The name SAGE stores: `Ed25519`, `Secp256k1`, `X25519`, `P-256`, `P-384`.
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

impl<'de> serde::Deserialize<'de> for KeyType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<KeyType, D::Error> {
        let text = String::deserialize(deserializer)?;
        KeyType::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown key type {text:?} (expected one of {})",
                KeyType::ALL.map(KeyType::as_str).join(", ")
            ))
        })
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cached DID and what SAGE's application resolves for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DidRecord {
    /// The DID, e.g. `did:sage:alice`.
    pub did: String,
    /// The public key that verifies its signatures.
    pub public_key: Vec<u8>,
    /// Who controls it, e.g. an Ethereum address.
    pub owner_address: String,
    /// The algorithm of `public_key`.
    pub key_type: KeyType,
    /// Whether the DID has been revoked; a service refuses its messages.
    pub revoked: bool,
    /// The key-agreement (X25519, for HPKE) public key, when the DID has one.
    pub key_agreement_key: Option<Vec<u8>>,
    /// Where the agent is reached (`http`, `https`, `ws` or `wss`).
    pub endpoint: Option<String>,
    /// What the agent offers, e.g. `messaging`.
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

    /// Whether the entry should be resolved again at `now`.
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
