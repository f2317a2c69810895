//! Opening a store from a URL in one call, and the value types a service needs.

use std::sync::Arc;

use sage_store::prelude::*;
use sage_store::{chrono, Clock, ErrorKind, KeySource, KeyType, ManualClock, NewSession, SessionKey, Store};

#[tokio::test]
async fn a_url_is_enough_for_the_embedded_backends() {
    let memory = Store::open_url("memory://").await.unwrap();
    assert_eq!(memory.backend_name(), "memory");
    let file = sage_testkit::SqliteFile::new();
    let sqlite = Store::open_url(&file.url()).await.unwrap();
    assert_eq!(sqlite.backend_name(), "sqlite");
    let key_file = sage_store::KeySource::default_file_for(file.path());
    assert!(key_file.exists(), "the key file is created beside the database");
    assert!(sqlite.notices().iter().any(|n| n.contains("created session-key file")), "{:?}", sqlite.notices());
    // Opened again, the same key reads what the first store sealed.
    let expires_at = sqlite.now() + chrono::Duration::hours(1);
    let created = sqlite
        .sessions()
        .create(&NewSession::new("did:sage:a", "did:sage:b", SessionKey::new(vec![1u8; 32]), expires_at))
        .await
        .unwrap();
    drop(sqlite);
    let again = Store::open_url(&file.url()).await.unwrap();
    assert_eq!(again.sessions().get(&created.id).await.unwrap().key.expose(), &[1u8; 32]);
}

#[tokio::test]
async fn postgres_without_keys_refuses_before_connecting() {
    // Nothing listens there: the key check comes first, and it is a configuration problem.
    let err = Store::open_url("postgres://sage@127.0.0.1:1/sage?sslmode=disable").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(err.to_string().contains("SAGE_SESSION_KEY_FILE"), "{err}");
    let err = Store::builder("postgres://sage@127.0.0.1:1/sage?sslmode=disable")
        .keys(KeySource::Ephemeral)
        .max_connections(0)
        .open()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    let err = Store::open_url("mysql://x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
}

#[tokio::test]
async fn the_store_clock_decides_expiry() {
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let clock = Arc::new(ManualClock::new(start));
    let store = Store::builder("memory://").clock(clock.clone()).open().await.unwrap();
    assert_eq!(store.now(), clock.now());
    let session = NewSession::new(
        "did:sage:a",
        "did:sage:b",
        SessionKey::new(vec![2u8; 32]),
        store.now() + chrono::Duration::minutes(5),
    )
    .with_max_messages(1);
    let session = store.sessions().create(&session).await.unwrap();
    clock.advance(chrono::Duration::minutes(6));
    assert!(store.sessions().get(&session.id).await.unwrap_err().is_expired());
}

#[test]
fn new_sessions_get_fresh_ids_and_sessions_serialize_without_their_key() {
    let expires_at = chrono::Utc::now();
    let a = NewSession::new("did:sage:a", "did:sage:b", SessionKey::new(b"secret-key".to_vec()), expires_at);
    let b = NewSession::new("did:sage:a", "did:sage:b", SessionKey::new(b"secret-key".to_vec()), expires_at);
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.len(), 22);
    assert!(a.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{}", a.id);

    let key_type: KeyType = serde_json::from_str("\"ed25519\"").unwrap();
    assert_eq!(key_type, KeyType::Ed25519);
    assert_eq!(serde_json::to_string(&KeyType::P256).unwrap(), "\"P-256\"");
    let err = serde_json::from_str::<KeyType>("\"rsa\"").unwrap_err();
    assert!(err.to_string().contains("unknown key type \"rsa\""), "{err}");
}

#[tokio::test]
async fn a_session_as_json_has_no_key() {
    let store = Store::open_url("memory://").await.unwrap();
    let new = NewSession::new(
        "did:sage:a",
        "did:sage:b",
        SessionKey::new(b"secret-key".to_vec()),
        store.now() + chrono::Duration::hours(1),
    );
    let session = store.sessions().create(&new).await.unwrap();
    let json = serde_json::to_value(&session).unwrap();
    assert_eq!(json["id"], serde_json::json!(session.id));
    assert!(json.get("key").is_none(), "{json}");
    assert!(!json.to_string().contains("secret"), "{json}");
}
