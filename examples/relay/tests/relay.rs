//! The relay over HTTP requests, on every backend: memory, a SQLite file and PostgreSQL (a
//! real server from the test kit). The memory and SQLite tests need nothing but Rust:
//! `cargo test -p sage-relay -- memory:: sqlite::`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use sage_relay::{cleanup_once, router, RelayConfig};
use sage_store::chrono::{self, Utc};
use sage_store::prelude::*;
use sage_store::{keys, DidRecord, KeySource, KeyType, ManualClock, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

enum Kind {
    Memory,
    Sqlite,
    Postgres,
}

/// A relay on a fresh store whose clock only moves when a test says so.
struct Relay {
    app: Router,
    store: Store,
    clock: Arc<ManualClock>,
    _database: Option<sage_testkit::TestDatabase>,
    _dir: Option<tempfile::TempDir>,
}

const ALICE: &str = "did:sage:test:alice";
const MALLORY: &str = "did:sage:test:mallory";

async fn relay(kind: Kind, config: RelayConfig) -> Relay {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let (builder, database, dir) = match kind {
        Kind::Memory => (Store::builder("memory://"), None, None),
        Kind::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}", dir.path().join("relay.db").display());
            (Store::builder(url), None, Some(dir))
        }
        Kind::Postgres => {
            let database = sage_testkit::database().await.expect("a test database (see scripts/test)");
            let builder = Store::builder(database.url())
                .keys(KeySource::Inline(vec![keys::generate_key().to_string()]))
                .migrate(true);
            (builder, Some(database), None)
        }
    };
    let store = builder.clock(clock.clone()).open().await.expect("open the store");
    for did in [ALICE, MALLORY] {
        let record = DidRecord::new(did, vec![7; 32], "0xA11CE", KeyType::Ed25519);
        store.dids().upsert(&record).await.expect("register DID");
    }
    Relay { app: router(store.clone(), config), store, clock, _database: database, _dir: dir }
}

impl Relay {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn handshake(&self, client_did: &str) -> String {
        let (status, body) = self.post("/handshake", json!({"client_did": client_did, "key": [1, 2, 3, 4]})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["session_id"].as_str().expect("session_id").to_string()
    }

    async fn send(&self, session_id: &str, sender_did: &str, nonce: &str) -> (StatusCode, Value) {
        let message = json!({"session_id": session_id, "sender_did": sender_did, "nonce": nonce, "body": "hello"});
        self.post("/messages", message).await
    }

    async fn nonce_used(&self, nonce: &str) -> bool {
        self.store.nonces().is_used(nonce).await.expect("is_used")
    }
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(super::Kind::Memory).await } )*
        }
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(super::Kind::Postgres).await } )*
        }
    };
}

on_every_backend!(
    concurrent_replays_of_one_nonce_are_accepted_once,
    an_expired_session_refuses_messages_and_cleanup_removes_it,
    the_message_budget_ends_a_session_without_burning_the_nonce,
    a_revoked_or_unknown_sender_is_refused,
    metrics_count_accepted_and_refused_messages,
);

async fn concurrent_replays_of_one_nonce_are_accepted_once(kind: Kind) {
    let relay = Arc::new(relay(kind, RelayConfig::default()).await);
    let session = relay.handshake(ALICE).await;
    let senders: Vec<_> = (0..16)
        .map(|_| {
            let (relay, session) = (relay.clone(), session.clone());
            tokio::spawn(async move { relay.send(&session, ALICE, "q83vEjRWeJASNFZ4kBI0Vg").await })
        })
        .collect();
    let mut accepted = 0;
    for sender in senders {
        let (status, body) = sender.await.expect("sender task");
        match status {
            StatusCode::OK => accepted += 1,
            StatusCode::CONFLICT => assert_eq!(body["error"], "replayed", "{body}"),
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    assert_eq!(accepted, 1, "exactly one of 16 concurrent sends of one nonce is accepted");
    let stored = relay.store.sessions().get(&session).await.expect("session");
    assert_eq!(stored.message_count, 1, "replays are not counted on the session");
}

async fn an_expired_session_refuses_messages_and_cleanup_removes_it(kind: Kind) {
    let config = RelayConfig { session_ttl: Duration::from_secs(3600), idle_timeout: None, ..RelayConfig::default() };
    let relay = relay(kind, config).await;
    let session = relay.handshake(ALICE).await;
    let (status, body) = relay.send(&session, ALICE, "nonce-before-expiry-01").await;
    assert_eq!((status, body["message_count"].as_u64()), (StatusCode::OK, Some(1)), "{body}");

    relay.clock.advance(chrono::Duration::minutes(61));
    let (status, body) = relay.send(&session, ALICE, "nonce-after-expiry-001").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "expired");
    assert!(!relay.nonce_used("nonce-after-expiry-001").await, "a refused message leaves its nonce unclaimed");

    let (sessions, _nonces) = cleanup_once(&relay.store).await.expect("cleanup");
    assert_eq!(sessions, 1, "cleanup deletes the expired session");
    let (status, body) = relay.send(&session, ALICE, "nonce-after-cleanup-01").await;
    assert_eq!((status, &body["error"]), (StatusCode::NOT_FOUND, &json!("not_found")), "{body}");

    // A new handshake works on the same clock.
    let fresh = relay.handshake(ALICE).await;
    let (status, body) = relay.send(&fresh, ALICE, "nonce-after-expiry-001").await;
    assert_eq!(status, StatusCode::OK, "the refused message goes through on a new session: {body}");
}

async fn the_message_budget_ends_a_session_without_burning_the_nonce(kind: Kind) {
    let relay = relay(kind, RelayConfig { max_messages: Some(3), ..RelayConfig::default() }).await;
    let session = relay.handshake(ALICE).await;
    for n in 1..=3u64 {
        let (status, body) = relay.send(&session, ALICE, &format!("budget-nonce-000{n}")).await;
        assert_eq!((status, body["message_count"].as_u64()), (StatusCode::OK, Some(n)), "{body}");
    }
    let (status, body) = relay.send(&session, ALICE, "budget-nonce-0004").await;
    assert_eq!((status, &body["error"]), (StatusCode::UNAUTHORIZED, &json!("expired")), "{body}");
    assert!(!relay.nonce_used("budget-nonce-0004").await, "the fourth message's nonce is still unclaimed");

    let fresh = relay.handshake(ALICE).await;
    let (status, body) = relay.send(&fresh, ALICE, "budget-nonce-0004").await;
    assert_eq!((status, body["message_count"].as_u64()), (StatusCode::OK, Some(1)), "{body}");
}

async fn a_revoked_or_unknown_sender_is_refused(kind: Kind) {
    let relay = relay(kind, RelayConfig::default()).await;
    let session = relay.handshake(MALLORY).await;
    let (status, _) = relay.send(&session, MALLORY, "mallory-nonce-00001").await;
    assert_eq!(status, StatusCode::OK);

    relay.store.dids().revoke(MALLORY).await.expect("revoke");
    let (status, body) = relay.send(&session, MALLORY, "mallory-nonce-00002").await;
    assert_eq!((status, &body["error"]), (StatusCode::FORBIDDEN, &json!("forbidden")), "{body}");
    assert!(!relay.nonce_used("mallory-nonce-00002").await, "a refused sender claims no nonce");
    let (status, _) = relay.post("/handshake", json!({"client_did": MALLORY, "key": [1, 2, 3]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a revoked DID cannot open a session");

    let (status, body) = relay.send(&session, "did:sage:test:nobody", "nobody-nonce-000001").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an unknown sender is refused: {body}");
    let stored = relay.store.sessions().get(&session).await.expect("session");
    assert_eq!(stored.message_count, 1, "refused messages are not counted");
}

async fn metrics_count_accepted_and_refused_messages(kind: Kind) {
    let relay = relay(kind, RelayConfig::default()).await;
    let session = relay.handshake(ALICE).await;
    assert_eq!(relay.send(&session, ALICE, "metrics-nonce-00001").await.0, StatusCode::OK);
    assert_eq!(relay.send(&session, ALICE, "metrics-nonce-00001").await.0, StatusCode::CONFLICT);
    cleanup_once(&relay.store).await.expect("cleanup");

    let request = Request::get("/metrics").body(Body::empty()).expect("request");
    let response = relay.app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain; version=0.0.4");
    let text = String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body").to_vec())
        .expect("UTF-8");
    for line in [
        r#"sage_db_store_operations_total{operation="accept",outcome="ok"} 1"#,
        r#"sage_db_store_operations_total{operation="accept",outcome="replayed"} 1"#,
        r#"sage_db_store_operations_total{operation="session_create",outcome="ok"} 1"#,
        r#"sage_db_store_operations_total{operation="cleanup",outcome="ok"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
}
