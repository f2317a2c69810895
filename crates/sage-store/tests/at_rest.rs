//! What reaches the disk: sealed session keys, tamper detection, key rotation, refusing to
//! open without a key or on the wrong schema, and upgrading a database SAGE's Go code made.

use std::sync::Arc;

use chrono::Utc;
use sage_store::*;

const SECRET: &[u8] = b"THE-SECRET-KEY-MATERIAL-0123456789";

fn session(id: &str) -> NewSession {
    NewSession {
        id: id.into(),
        client_did: "did:sage:test:alice".into(),
        server_did: "did:sage:test:bob".into(),
        key: SessionKey::new(SECRET.to_vec()),
        expires_at: Utc::now() + chrono::Duration::hours(1),
        metadata: None,
        max_messages: None,
        idle_timeout: None,
    }
}

fn options(keys: &[&str]) -> OpenOptions {
    let mut o = OpenOptions::new(KeySource::Inline(keys.iter().map(|k| k.to_string()).collect()));
    o.migrate = true;
    o
}

/// Raw access to the database under a store, bypassing it.
#[allow(clippy::large_enum_variant)]
enum Raw {
    Pg(sage_testkit::TestDatabase),
    Lite(sage_testkit::SqliteFile),
}

impl Raw {
    async fn new(pg: bool) -> Raw {
        if pg {
            Raw::Pg(sage_testkit::database().await.unwrap())
        } else {
            Raw::Lite(sage_testkit::SqliteFile::new())
        }
    }

    fn target(&self) -> sage_conn::Target {
        match self {
            Raw::Pg(db) => sage_conn::Target::Postgres(db.settings().clone()),
            Raw::Lite(f) => sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(f.path().to_path_buf())),
        }
    }

    async fn key_bytes(&self, id: &str) -> Vec<u8> {
        match self {
            Raw::Pg(db) => {
                let c = sage_conn::connect(db.settings()).await.unwrap();
                c.query_one("SELECT session_key FROM sessions WHERE id = $1", &[&id]).await.unwrap().get(0)
            }
            Raw::Lite(f) => {
                let c = rusqlite::Connection::open(f.path()).unwrap();
                c.query_row("SELECT session_key FROM sessions WHERE id = ?1", [id], |r| r.get(0)).unwrap()
            }
        }
    }

    async fn set_key_bytes(&self, id: &str, bytes: &[u8]) {
        match self {
            Raw::Pg(db) => {
                let c = sage_conn::connect(db.settings()).await.unwrap();
                c.execute("UPDATE sessions SET session_key = $2 WHERE id = $1", &[&id, &bytes]).await.unwrap();
            }
            Raw::Lite(f) => {
                let c = rusqlite::Connection::open(f.path()).unwrap();
                c.execute("UPDATE sessions SET session_key = ?2 WHERE id = ?1", rusqlite::params![id, bytes]).unwrap();
            }
        }
    }
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(true).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(false).await
            }
        }
    };
}

both!(stored_bytes_never_hold_the_key);
both!(tampered_or_moved_key_material_fails_integrity);
both!(rotation_reseals_everything_and_encrypts_plaintext);

async fn stored_bytes_never_hold_the_key(pg: bool) {
    let raw = Raw::new(pg).await;
    let key = keys::generate_key();
    let store = Store::open(&raw.target(), options(&[&key])).await.unwrap();
    store.sessions().create(&session("s1")).await.unwrap();
    let bytes = raw.key_bytes("s1").await;
    assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET), "plaintext key found at rest");
    assert!(!bytes.windows(10).any(|w| SECRET.windows(10).any(|s| s == w)), "a fragment of the key found at rest");
    assert_eq!(
        keys::sealed_key_id(&bytes).map(|id| id.iter().map(|b| format!("{b:02x}")).collect::<String>()),
        Some(store.current_key_id())
    );
    assert_eq!(store.sessions().get("s1").await.unwrap().key.expose(), SECRET);
}

async fn tampered_or_moved_key_material_fails_integrity(pg: bool) {
    let raw = Raw::new(pg).await;
    let key = keys::generate_key();
    let store = Store::open(&raw.target(), options(&[&key])).await.unwrap();
    store.sessions().create(&session("s1")).await.unwrap();
    store.sessions().create(&session("s2")).await.unwrap();
    // s2's sealed key copied onto s1: the same bytes, but bound to another session.
    raw.set_key_bytes("s1", &raw.key_bytes("s2").await).await;
    assert_eq!(store.sessions().get("s1").await.unwrap_err().kind(), ErrorKind::Integrity);
    let mut flipped = raw.key_bytes("s2").await;
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    raw.set_key_bytes("s2", &flipped).await;
    let err = store.sessions().get("s2").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

async fn rotation_reseals_everything_and_encrypts_plaintext(pg: bool) {
    let raw = Raw::new(pg).await;
    let (k1, k2) = (keys::generate_key(), keys::generate_key());
    let store = Store::open(&raw.target(), options(&[&k1])).await.unwrap();
    for id in ["a", "b", "c"] {
        store.sessions().create(&session(id)).await.unwrap();
    }
    // A row as an older SAGE database holds it: the key in plaintext.
    store.sessions().create(&session("legacy")).await.unwrap();
    raw.set_key_bytes("legacy", b"plaintext-key-from-sage-go").await;
    store.close().await;

    let rotated = Store::open(&raw.target(), options(&[&k1, &k2])).await.unwrap();
    let err = rotated.sessions().get("legacy").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert_eq!(err.reason(), Some(&sage_store::Reason::Unencrypted), "{err}");
    let report = rotated.rotate_keys().await.unwrap();
    assert_eq!((report.examined, report.resealed, report.encrypted_plaintext, report.already_current), (4, 3, 1, 0));
    assert!(report.failed.is_empty());
    assert_eq!(rotated.rotate_keys().await.unwrap().already_current, 4, "rotation is idempotent");
    rotated.close().await;

    // The old key can now be retired.
    let only_new = Store::open(&raw.target(), options(&[&k2])).await.unwrap();
    for id in ["a", "b", "c"] {
        assert_eq!(only_new.sessions().get(id).await.unwrap().key.expose(), SECRET);
    }
    assert_eq!(only_new.sessions().get("legacy").await.unwrap().key.expose(), b"plaintext-key-from-sage-go");
    assert!(keys::sealed_key_id(&raw.key_bytes("legacy").await).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_a_key_refuses_and_says_how_to_set_one() {
    let db = sage_testkit::database().await.unwrap();
    let target = sage_conn::Target::Postgres(db.settings().clone());
    let env = sage_conn::Environment::from_pairs(Vec::new());
    let err = Store::open(&target, OpenOptions::defaults_for(&target, &env)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(!err.is_retryable(), "a missing key does not appear by retrying");
    let text = err.to_string();
    assert!(text.contains("SAGE_SESSION_KEY_FILE") && text.contains("SAGE_SESSION_KEY"), "{text}");
    assert!(!text.contains("sage-db"), "the library names no command of the binary: {text}");
    assert_eq!(err.reason(), Some(&sage_store::Reason::NoSessionKey));
}

/// A migrator for SAGE's own PostgreSQL migrations.
async fn postgres_migrator(target: &sage_conn::Target) -> sage_migrate::Migrator {
    let set = migrations(sage_migrate::Dialect::Postgres);
    sage_migrate::Migrator::connect(target, set, sage_migrate::RunOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_checks_the_schema_version() {
    let db = sage_testkit::database().await.unwrap();
    let target = sage_conn::Target::Postgres(db.settings().clone());
    let key = keys::generate_key();
    let mut opts = options(&[&key]);
    opts.migrate = false;
    let err = Store::open(&target, opts.clone()).await.unwrap_err();
    assert_eq!(err.reason(), Some(&sage_store::Reason::NoSchema), "{err}");
    assert!(err.to_string().contains("migrate it"), "{err}");
    let mut migrator = postgres_migrator(&target).await;
    migrator.up(sage_migrate::Target::Version(3)).await.unwrap();
    let err = Store::open(&target, opts.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains("version 3")
            && err.to_string().contains(&format!("needs version {}", sage_store::SCHEMA_VERSION_POSTGRES)),
        "{err}"
    );
    migrator.up(sage_migrate::Target::Latest).await.unwrap();
    Store::open(&target, opts).await.unwrap().ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_default_creates_a_private_key_file_and_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let file = sage_testkit::SqliteFile::new();
    let target = sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(file.path().to_path_buf()));
    let env = sage_conn::Environment::from_pairs(Vec::new());
    let store = Store::open(&target, OpenOptions::defaults_for(&target, &env)).await.unwrap();
    let key_file = KeySource::default_file_for(file.path());
    assert!(store
        .notices()
        .iter()
        .any(|n| n.contains("created session-key file") && n.contains(&key_file.display().to_string())));
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    store.sessions().create(&session("kept")).await.unwrap();
    store.close().await;
    let again = Store::open(&target, OpenOptions::defaults_for(&target, &env)).await.unwrap();
    assert!(again.notices().iter().all(|n| !n.contains("created session-key file")));
    assert_eq!(again.sessions().get("kept").await.unwrap().key.expose(), SECRET);
}

/// SAGE's Go tooling made this database at version 1 and filled it (key material in the
/// clear, UUID ids, zone-less timestamps). `migrate up` plus `keys rotate` make every row
/// readable through the store, with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sage_version_1_database_is_upgraded_and_readable() {
    let db = sage_testkit::database().await.unwrap();
    let admin = sage_conn::connect(db.settings()).await.unwrap();
    let v1 = migrations(sage_migrate::Dialect::Postgres).get(1).unwrap().up.sql.clone();
    admin.batch_execute("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (1, false);").await.unwrap();
    admin.batch_execute(&v1).await.unwrap();
    admin
        .batch_execute(
            "SET TIME ZONE 'UTC';
             INSERT INTO dids (did, public_key, owner_address, key_type) VALUES
               ('did:sage:dev:alice', '\\x302a300506032b65700321000101010101010101010101010101010101010101010101010101010101010101', '0x742d35Cc6634C0532925a3b844Bc9e7595f0bEb0', 'Ed25519');
             INSERT INTO sessions (id, client_did, server_did, session_key, expires_at, metadata) VALUES
               ('550e8400-e29b-41d4-a716-446655440000', 'did:sage:dev:alice', 'did:sage:dev:bob', '\\x0102030405', now() + interval '1 hour', '{\"purpose\": \"test\"}');
             INSERT INTO nonces (nonce, session_id, expires_at) VALUES ('nonce_alice_bob_001', '550e8400-e29b-41d4-a716-446655440000', now() + interval '5 minutes');",
        )
        .await
        .unwrap();
    let target = sage_conn::Target::Postgres(db.settings().clone());
    let mut migrator = postgres_migrator(&target).await;
    assert_eq!(
        migrator.up(sage_migrate::Target::Latest).await.unwrap().version_after,
        Some(sage_store::SCHEMA_VERSION_POSTGRES)
    );

    let key = keys::generate_key();
    let mut opts = options(&[&key]);
    opts.clock = Arc::new(SystemClock);
    let store = Store::open(&target, opts).await.unwrap();
    let report = store.rotate_keys().await.unwrap();
    assert_eq!(report.encrypted_plaintext, 1);
    let s = store.sessions().get("550e8400-e29b-41d4-a716-446655440000").await.unwrap();
    assert_eq!(s.key.expose(), &[1, 2, 3, 4, 5]);
    assert_eq!(s.metadata, Some(serde_json::json!({"purpose": "test"})));
    assert!(s.expires_at > Utc::now() + chrono::Duration::minutes(50), "times read as UTC: {}", s.expires_at);
    let alice = store.dids().get("did:sage:dev:alice").await.unwrap();
    assert_eq!((alice.key_type, alice.public_key.len(), alice.capabilities.len()), (KeyType::Ed25519, 44, 0));
    assert!(store.nonces().is_used("nonce_alice_bob_001").await.unwrap());
    store.sessions().delete("550e8400-e29b-41d4-a716-446655440000").await.unwrap();
    assert!(store.nonces().is_used("nonce_alice_bob_001").await.unwrap(), "the nonce outlives its session");
}

/// The store refuses a database whose schema drifted from what it expects, and says where
/// to look; a clean validation is remembered so later opens skip the catalog queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_validates_the_schema_on_open() {
    let db = sage_testkit::database().await.unwrap();
    let target = sage_conn::Target::Postgres(db.settings().clone());
    let key = keys::generate_key();
    Store::open(&target, options(&[&key])).await.unwrap().close().await;
    let admin = sage_conn::connect(db.settings()).await.unwrap();
    let recorded: i64 = admin.query_one("SELECT count(*) FROM sage_schema_validation", &[]).await.unwrap().get(0);
    assert_eq!(recorded, 1);
    // Drift made by hand, after the fingerprint was recorded, plus a change to the history
    // (here: forgetting the fingerprint, as a new migration would) makes the next open look.
    admin.batch_execute("DROP INDEX idx_nonces_expires_at; DELETE FROM sage_schema_validation;").await.unwrap();
    let err = Store::open(&target, options(&[&key])).await.unwrap_err();
    assert!(
        err.to_string().contains("idx_nonces_expires_at")
            && err.reason() == Some(&sage_store::Reason::SchemaDiffers { problems: 1 }),
        "{err}"
    );
}
