//! Input checks shared by every backend. Each rejection names the field.

use chrono::{DateTime, Utc};

use crate::error::{Result, StoreError};
use crate::model::{DidRecord, NewSession, NonceClaim, Page, SessionKey};

/// The longest session id, nonce or owner address, in characters.
pub const MAX_ID_LEN: usize = 255;
/// The longest DID, in bytes.
pub const MAX_DID_LEN: usize = 2048;
/// The largest session metadata, as JSON text, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// The largest session key or DID public key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// The most capabilities a DID record may list.
pub const MAX_CAPABILITIES: usize = 64;

/// Session ids and nonces: 1 to 255 characters from the alphabets of UUIDs, base64 and
/// base64url (letters, digits and `-_.:~+/=`).
pub fn token(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(StoreError::invalid(
            field,
            format!("is {} characters long; the limit is {MAX_ID_LEN}", value.len()),
        ));
    }
    let allowed = |c: &char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '~' | '+' | '/' | '=');
    if let Some(c) = value.chars().find(|c| !allowed(c)) {
        return Err(StoreError::invalid(field, format!("contains {c:?}; use letters, digits and -_.:~+/=")));
    }
    Ok(())
}

/// A DID as W3C DID Core defines its syntax: `did:` + a lowercase method name + `:` + a
/// method-specific id of letters, digits, `.-_`, percent-escapes and inner colons.
pub fn did(field: &'static str, value: &str) -> Result<()> {
    if value.len() > MAX_DID_LEN {
        return Err(StoreError::invalid(field, format!("is longer than {MAX_DID_LEN} characters")));
    }
    let Some(rest) = value.strip_prefix("did:") else {
        return Err(StoreError::invalid(field, format!("{value:?} does not start with \"did:\"")));
    };
    let Some((method, id)) = rest.split_once(':') else {
        return Err(StoreError::invalid(field, format!("{value:?} has no method-specific id (did:METHOD:ID)")));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(StoreError::invalid(field, format!("the method {method:?} must be lowercase letters and digits")));
    }
    if id.is_empty() || id.ends_with(':') {
        return Err(StoreError::invalid(field, format!("{value:?} has an empty method-specific id")));
    }
    let bytes = id.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return Err(StoreError::invalid(field, format!("{value:?} has a bad percent-escape")));
            }
            i += 3;
            continue;
        }
        if !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':')) {
            // Every byte before this one was ASCII, so `i` starts a character: name it whole.
            let c = id.get(i..).and_then(|rest| rest.chars().next()).unwrap_or(char::REPLACEMENT_CHARACTER);
            return Err(StoreError::invalid(field, format!("{value:?} contains {c:?}, which a DID cannot hold")));
        }
        i += 1;
    }
    Ok(())
}

/// Key material: 1 to [`MAX_KEY_BYTES`] bytes.
pub fn key(field: &'static str, key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StoreError::invalid(field, format!("is {} bytes; the limit is {MAX_KEY_BYTES}", key.len())));
    }
    Ok(())
}

/// Metadata must be a JSON object of at most 16 KiB.
pub fn metadata(value: Option<&serde_json::Value>) -> Result<()> {
    let Some(value) = value else { return Ok(()) };
    if !value.is_object() {
        return Err(StoreError::invalid("metadata", "must be a JSON object"));
    }
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(StoreError::invalid(
            "metadata",
            format!("is {size} bytes of JSON; the limit is {MAX_METADATA_BYTES}"),
        ));
    }
    Ok(())
}

/// An expiry must lie after `now`.
pub fn expiry(field: &'static str, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    if expires_at <= now {
        return Err(StoreError::invalid(field, format!("{expires_at} is not after the current time {now}")));
    }
    Ok(())
}

/// Everything [`SessionStore::create`](crate::SessionStore::create) checks, field by field.
pub fn new_session(s: &NewSession, now: DateTime<Utc>) -> Result<()> {
    token("id", &s.id)?;
    did("client_did", &s.client_did)?;
    did("server_did", &s.server_did)?;
    session_key(&s.key)?;
    expiry("expires_at", s.expires_at, now)?;
    metadata(s.metadata.as_ref())?;
    limits(s.max_messages, s.idle_timeout)
}

/// A session key: 1 to [`MAX_KEY_BYTES`] bytes.
pub fn session_key(key: &SessionKey) -> Result<()> {
    self::key("key", key.expose())
}

/// A message budget of at least 1, an idle timeout of 1 second to 68 years.
pub fn limits(max_messages: Option<u64>, idle_timeout: Option<std::time::Duration>) -> Result<()> {
    if max_messages == Some(0) || max_messages.is_some_and(|m| m > i64::MAX as u64) {
        return Err(StoreError::invalid("max_messages", "must be between 1 and 2^63-1"));
    }
    if let Some(idle) = idle_timeout {
        if idle.as_secs() == 0 || idle.as_secs() > i32::MAX as u64 {
            return Err(StoreError::invalid("idle_timeout", "must be between 1 second and 68 years"));
        }
    }
    Ok(())
}

/// A nonce claim: its nonce, its session id when it has one, and an expiry after `now`.
pub fn claim(c: &NonceClaim, now: DateTime<Utc>) -> Result<()> {
    token("nonce", &c.nonce)?;
    if let Some(session) = &c.session_id {
        token("session_id", session)?;
    }
    expiry("expires_at", c.expires_at, now)
}

/// A page of 1 to [`Page::MAX_LIMIT`] entries.
pub fn page(page: Page) -> Result<()> {
    if page.limit == 0 || page.limit > Page::MAX_LIMIT {
        return Err(StoreError::invalid("limit", format!("must be between 1 and {}", Page::MAX_LIMIT)));
    }
    Ok(())
}

/// Everything the DID store checks in a record, field by field.
pub fn did_record(r: &DidRecord) -> Result<()> {
    did("did", &r.did)?;
    key("public_key", &r.public_key)?;
    if let Some(k) = &r.key_agreement_key {
        key("key_agreement_key", k)?;
    }
    if r.owner_address.is_empty()
        || r.owner_address.len() > MAX_ID_LEN
        || r.owner_address.chars().any(char::is_whitespace)
    {
        return Err(StoreError::invalid("owner_address", "must be 1 to 255 characters without spaces"));
    }
    if let Some(endpoint) = &r.endpoint {
        let ok = url::Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https" | "wss" | "ws"));
        if !ok {
            return Err(StoreError::invalid("endpoint", format!("{endpoint:?} is not an http(s) or ws(s) URL")));
        }
    }
    if r.capabilities.len() > MAX_CAPABILITIES {
        return Err(StoreError::invalid(
            "capabilities",
            format!("has {} entries; the limit is {MAX_CAPABILITIES}", r.capabilities.len()),
        ));
    }
    if r.capabilities.iter().any(|c| c.is_empty() || c.len() > 128) {
        return Err(StoreError::invalid("capabilities", "entries must be 1 to 128 characters"));
    }
    if let Some(stale) = r.stale_after {
        if stale < r.fetched_at {
            return Err(StoreError::invalid("stale_after", "is before fetched_at"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn dids_follow_did_core_syntax() {
        for ok in [
            "did:sage:dev:alice",
            "did:web:example.com%3A8443:agents:bob",
            "did:sage:ethereum:0xAbC123",
            "did:key:z6Mk-_.x",
        ] {
            did("did", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "sage:alice",
            "did:",
            "did:sage",
            "did:Sage:x",
            "did:sage:",
            "did:sage:a:",
            "did:sage:a b",
            "did:sage:%zz",
            "did:sage:a/b",
            "did:sage:é",
            "did:sage:a%e9%",
            "did:😀:x",
        ] {
            let err = did("client_did", bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
            assert_eq!(err.field(), Some("client_did"), "{bad}");
        }
    }

    #[test]
    fn a_refused_did_character_is_named_whole() {
        let err = did("did", "did:sage:caf\u{e9}").unwrap_err().to_string();
        assert!(err.contains("contains '\u{e9}'"), "{err}");
    }

    #[test]
    fn tokens_accept_uuids_and_base64url_ids() {
        token("id", "550e8400-e29b-41d4-a716-446655440000").unwrap();
        token("id", "q83vEjRWeJASNFZ4kBI0Vg").unwrap();
        assert_eq!(token("nonce", "").unwrap_err().field(), Some("nonce"));
        assert_eq!(token("nonce", "has space").unwrap_err().field(), Some("nonce"));
        assert_eq!(token("id", &"x".repeat(256)).unwrap_err().field(), Some("id"));
        token("nonce", "a-b_c.d:e~f+g/h=").unwrap();
        // The refused character is named whole, even when it takes several bytes.
        let err = token("nonce", "abcé").unwrap_err().to_string();
        assert!(err.contains("'é'"), "{err}");
        assert!(token("nonce", "tab\there").unwrap_err().to_string().contains("'\\t'"));
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        metadata(Some(&serde_json::json!({"purpose": "test"}))).unwrap();
        assert!(metadata(Some(&serde_json::json!([1, 2]))).is_err());
        let big = serde_json::json!({ "x": "y".repeat(MAX_METADATA_BYTES) });
        assert_eq!(metadata(Some(&big)).unwrap_err().field(), Some("metadata"));
    }
}
