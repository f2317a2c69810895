//! The store contract, run against every backend: memory, a SQLite file and PostgreSQL,
//! the latter both directly and through a real PgBouncer in transaction mode. A test here
//! is the definition of what a store does; each backend must pass all of them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sage_store::*;

#[derive(Debug)]
pub enum Kind {
    Memory,
    Sqlite,
    Postgres,
    /// PostgreSQL through PgBouncer with `pool_mode = transaction`, the pooler found by
    /// the store itself (nothing in the URL says so).
    PgBouncer,
}

#[derive(Debug)]
pub struct Harness {
    pub store: Store,
    pub clock: Arc<ManualClock>,
    _db: Option<sage_testkit::TestDatabase>,
    _file: Option<sage_testkit::SqliteFile>,
    // Declared after the store, so the store closes before the pooler stops.
    _bouncer: Option<sage_testkit::PgBouncer>,
}

impl Harness {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }
}

pub async fn harness(kind: Kind) -> Harness {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let key = keys::generate_key();
    let mut options = OpenOptions::new(KeySource::Inline(vec![key.to_string()]));
    options.clock = clock.clone();
    options.migrate = true;
    let (mut target, mut bouncer, db, file) = (sage_conn::Target::Memory, None, None, None);
    let (db, file) = match kind {
        Kind::Memory => (db, file),
        Kind::Sqlite => {
            let file = sage_testkit::SqliteFile::new();
            target = sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(file.path().to_path_buf()));
            (db, Some(file))
        }
        Kind::Postgres => {
            let db = sage_testkit::database().await.expect("test database");
            target = sage_conn::Target::Postgres(db.settings().clone());
            (Some(db), file)
        }
        Kind::PgBouncer => {
            let db = sage_testkit::database().await.expect("test database");
            // Migrations need a session of their own: applied directly, as an operator would.
            let direct = sage_conn::Target::Postgres(db.settings().clone());
            let mut migrate = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
            migrate.migrate = true;
            Store::open(&direct, migrate).await.expect("migrate directly").close().await;
            options.migrate = false;
            let pooler = sage_testkit::PgBouncer::start_for(db.admin_settings(), "transaction").expect("pgbouncer");
            target = sage_conn::Target::Postgres(pooler.settings_for(db.settings()));
            bouncer = Some(pooler);
            (Some(db), file)
        }
    };
    let store = Store::open(&target, options).await.expect("open store");
    Harness { store, clock, _db: db, _file: file, _bouncer: bouncer }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(super::harness(super::Kind::Memory).await).await } )*
        }
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(super::harness(super::Kind::Sqlite).await).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(super::harness(super::Kind::Postgres).await).await } )*
        }
        mod pgbouncer {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
               async fn $name() { super::$name(super::harness(super::Kind::PgBouncer).await).await } )*
        }
    };
}

conformance!(
    session_lifecycle,
    session_expiry_boundary,
    idle_timeout_and_message_budget,
    listing_is_newest_first_and_paginated,
    listing_everything_pages_through_every_live_session_and_did,
    nonce_is_single_use,
    expired_nonce_can_be_claimed_again,
    claim_many_answers_each_in_order,
    deleting_a_session_keeps_its_nonces_closed,
    concurrent_claims_have_exactly_one_winner,
    did_lifecycle,
    did_upsert_keeps_creation_time,
    invalid_input_names_the_field_and_writes_nothing,
    cleanup_removes_only_what_expired,
    accept_claims_and_touches_together,
    accept_that_fails_leaves_everything_as_it_was,
    concurrent_accepts_of_one_nonce_have_exactly_one_winner,
    concurrent_accepts_never_overspend_a_budget,
    accept_racing_a_delete_burns_no_nonce,
);

fn new_session(id: &str, client: &str, server: &str, expires_at: DateTime<Utc>) -> NewSession {
    NewSession {
        id: id.into(),
        client_did: client.into(),
        server_did: server.into(),
        key: SessionKey::new(format!("key-material-for-{id}").into_bytes()),
        expires_at,
        metadata: Some(serde_json::json!({"purpose": "secure-messaging", "n": 1})),
        max_messages: None,
        idle_timeout: None,
    }
}

const ALICE: &str = "did:sage:test:alice";
const BOB: &str = "did:sage:test:bob";
const CAROL: &str = "did:sage:test:carol";

async fn session_lifecycle(h: Harness) {
    let sessions = h.store.sessions();
    let id = "q83vEjRWeJASNFZ4kBI0Vg";
    assert_eq!(sessions.get(id).await.unwrap_err().kind(), ErrorKind::NotFound);
    let created = sessions.create(&new_session(id, ALICE, BOB, h.now() + chrono::Duration::hours(1))).await.unwrap();
    assert_eq!(created.created_at, h.now());
    assert_eq!(created.last_activity, h.now());
    let dup = sessions.create(&new_session(id, ALICE, BOB, h.now() + chrono::Duration::hours(1))).await.unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists);

    let got = sessions.get(id).await.unwrap();
    assert_eq!(got, created);
    assert_eq!(got.key.expose(), format!("key-material-for-{id}").as_bytes());
    assert_eq!(got.metadata, Some(serde_json::json!({"purpose": "secure-messaging", "n": 1})));
    assert_eq!(format!("{:?}", got.key), format!("SessionKey({} bytes)", got.key.len()), "keys never print");

    let uuid = "550e8400-e29b-41d4-a716-446655440000";
    sessions.create(&new_session(uuid, ALICE, BOB, h.now() + chrono::Duration::hours(1))).await.unwrap();

    h.advance(chrono::Duration::seconds(5));
    let changes = SessionUpdate {
        key: Some(SessionKey::new(b"rekeyed".to_vec())),
        expires_at: Some(h.now() + chrono::Duration::hours(2)),
        metadata: Some(None),
        ..SessionUpdate::default()
    };
    let updated = sessions.update(id, &changes).await.unwrap();
    assert_eq!(updated.key.expose(), b"rekeyed");
    assert_eq!(updated.metadata, None);
    assert_eq!(sessions.get(id).await.unwrap(), updated);
    assert_eq!(updated.created_at, created.created_at, "update never changes the creation time");
    assert_eq!(sessions.update("missing", &changes).await.unwrap_err().kind(), ErrorKind::NotFound);

    let touched = sessions.touch(id).await.unwrap();
    assert_eq!((touched.message_count, touched.last_activity), (1, h.now()));

    sessions.delete(id).await.unwrap();
    assert_eq!(sessions.delete(id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(sessions.get(id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(sessions.touch(id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(sessions.count_active().await.unwrap(), 1);
}

async fn session_expiry_boundary(h: Harness) {
    let sessions = h.store.sessions();
    let expires = h.now() + chrono::Duration::seconds(10);
    sessions.create(&new_session("s1", ALICE, BOB, expires)).await.unwrap();
    h.clock.set(expires - chrono::Duration::microseconds(1));
    sessions.get("s1").await.unwrap();
    assert_eq!(sessions.count_active().await.unwrap(), 1);
    assert_eq!(sessions.list_by_client(ALICE, Page::default()).await.unwrap().len(), 1);

    // Expired exactly at expires_at, the same way everywhere.
    h.clock.set(expires);
    let err = sessions.get("s1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Expired, "expired is not not-found: {err}");
    assert_eq!(sessions.count_active().await.unwrap(), 0);
    assert!(sessions.list_by_client(ALICE, Page::default()).await.unwrap().is_empty());
    assert_eq!(sessions.touch("s1").await.unwrap_err().kind(), ErrorKind::Expired);
    let revive = SessionUpdate { expires_at: Some(h.now() + chrono::Duration::hours(1)), ..SessionUpdate::default() };
    assert_eq!(sessions.update("s1", &revive).await.unwrap_err().kind(), ErrorKind::Expired, "no reviving");
    assert_eq!(sessions.delete_expired().await.unwrap(), 1);
    assert_eq!(sessions.get("s1").await.unwrap_err().kind(), ErrorKind::NotFound);
}

async fn idle_timeout_and_message_budget(h: Harness) {
    let sessions = h.store.sessions();
    let far = h.now() + chrono::Duration::hours(1);
    let idle = NewSession { idle_timeout: Some(Duration::from_secs(30)), ..new_session("idle", ALICE, BOB, far) };
    sessions.create(&idle).await.unwrap();
    h.advance(chrono::Duration::seconds(29));
    sessions.touch("idle").await.unwrap();
    h.advance(chrono::Duration::seconds(29));
    sessions.get("idle").await.unwrap();
    h.advance(chrono::Duration::seconds(1));
    assert_eq!(sessions.get("idle").await.unwrap_err().kind(), ErrorKind::Expired);
    assert_eq!(sessions.touch("idle").await.unwrap_err().kind(), ErrorKind::Expired);

    let budget = NewSession { max_messages: Some(2), ..new_session("budget", ALICE, BOB, far) };
    sessions.create(&budget).await.unwrap();
    assert_eq!(sessions.touch("budget").await.unwrap().message_count, 1);
    assert_eq!(sessions.touch("budget").await.unwrap().message_count, 2);
    assert_eq!(sessions.touch("budget").await.unwrap_err().kind(), ErrorKind::Expired);
    assert_eq!(sessions.get("budget").await.unwrap_err().kind(), ErrorKind::Expired);
    assert_eq!(sessions.count_active().await.unwrap(), 0);
    assert_eq!(sessions.delete_expired().await.unwrap(), 2);
}

async fn listing_is_newest_first_and_paginated(h: Harness) {
    let sessions = h.store.sessions();
    let far = h.now() + chrono::Duration::hours(1);
    for i in 0..5 {
        sessions.create(&new_session(&format!("c{i}"), ALICE, BOB, far)).await.unwrap();
        h.advance(chrono::Duration::seconds(1));
    }
    sessions.create(&new_session("other", CAROL, BOB, far)).await.unwrap();
    sessions.create(&new_session("short", ALICE, CAROL, h.now() + chrono::Duration::seconds(1))).await.unwrap();
    h.advance(chrono::Duration::seconds(2));
    let ids = |v: Vec<Session>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(sessions.list_by_client(ALICE, Page { limit: 2, offset: 0 }).await.unwrap()), ["c4", "c3"]);
    assert_eq!(ids(sessions.list_by_client(ALICE, Page { limit: 2, offset: 2 }).await.unwrap()), ["c2", "c1"]);
    assert_eq!(ids(sessions.list_by_client(ALICE, Page { limit: 2, offset: 4 }).await.unwrap()), ["c0"]);
    assert!(sessions.list_by_client(ALICE, Page { limit: 2, offset: 6 }).await.unwrap().is_empty());
    assert_eq!(ids(sessions.list_by_server(BOB, Page::first(3)).await.unwrap()), ["other", "c4", "c3"]);
    assert!(
        sessions.list_by_server(CAROL, Page::default()).await.unwrap().is_empty(),
        "expired sessions are not listed"
    );
    assert_eq!(sessions.list_by_client(ALICE, Page { limit: 0, offset: 0 }).await.unwrap_err().field(), Some("limit"));
    assert_eq!(sessions.count_active().await.unwrap(), 6);
}

/// `list_all`: every live session and every DID, newest first, in pages that neither
/// overlap nor leave anything out, ties (same creation time) broken by id.
async fn listing_everything_pages_through_every_live_session_and_did(h: Harness) {
    let sessions = h.store.sessions();
    let far = h.now() + chrono::Duration::hours(1);
    for i in 0..3 {
        sessions.create(&new_session(&format!("a{i}"), ALICE, BOB, far)).await.unwrap();
        sessions.create(&new_session(&format!("b{i}"), BOB, CAROL, far)).await.unwrap();
        h.advance(chrono::Duration::seconds(1));
    }
    sessions.create(&new_session("short", CAROL, ALICE, h.now() + chrono::Duration::seconds(1))).await.unwrap();
    h.advance(chrono::Duration::seconds(2));
    let mut seen = Vec::new();
    for offset in (0..).step_by(4) {
        let page = sessions.list_all(Page { limit: 4, offset }).await.unwrap();
        let done = page.len() < 4;
        seen.extend(page.into_iter().map(|s| s.id));
        if done {
            break;
        }
    }
    assert_eq!(seen, ["b2", "a2", "b1", "a1", "b0", "a0"], "newest first, ties by id, expired left out");
    assert_eq!(sessions.list_all(Page { limit: 0, offset: 0 }).await.unwrap_err().field(), Some("limit"));

    let dids = h.store.dids();
    for (name, owner) in [("alice", "0x1"), ("bob", "0x2"), ("carol", "0x1")] {
        dids.create(&did(name, owner)).await.unwrap();
        h.advance(chrono::Duration::seconds(1));
    }
    let first: Vec<String> =
        dids.list_all(Page { limit: 2, offset: 0 }).await.unwrap().into_iter().map(|d| d.did).collect();
    let rest: Vec<String> =
        dids.list_all(Page { limit: 2, offset: 2 }).await.unwrap().into_iter().map(|d| d.did).collect();
    assert_eq!(first, ["did:sage:test:carol", "did:sage:test:bob"]);
    assert_eq!(rest, ["did:sage:test:alice"]);
}

async fn nonce_is_single_use(h: Harness) {
    let nonces = h.store.nonces();
    let later = h.now() + chrono::Duration::minutes(5);
    assert!(!nonces.is_used("n1").await.unwrap());
    nonces.claim("n1", Some("sess-1"), later).await.unwrap();
    let again = nonces.claim("n1", Some("sess-1"), later).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Replayed);
    assert!(again.is_replayed());
    // Whoever presents it.
    assert_eq!(nonces.claim("n1", Some("sess-2"), later).await.unwrap_err().kind(), ErrorKind::Replayed);
    assert_eq!(nonces.claim("n1", None, later).await.unwrap_err().kind(), ErrorKind::Replayed);
    assert!(nonces.is_used("n1").await.unwrap());
    nonces.claim("n2", None, later).await.unwrap();
    assert_eq!(nonces.count_active().await.unwrap(), 2);
    // The same answers through the contract as a trait object.
    let contract: &dyn NonceStore = nonces;
    assert_eq!(contract.claim("n1", None, later).await.unwrap_err().kind(), ErrorKind::Replayed);
    contract.claim("n3", None, later).await.unwrap();
    assert_eq!(nonces.claim("n3", None, later).await.unwrap_err().kind(), ErrorKind::Replayed);
    assert_eq!(contract.count_active().await.unwrap(), 3);
}

async fn expired_nonce_can_be_claimed_again(h: Harness) {
    let nonces = h.store.nonces();
    let expires = h.now() + chrono::Duration::seconds(60);
    nonces.claim("old", None, expires).await.unwrap();
    nonces.claim("fresh", None, expires + chrono::Duration::hours(1)).await.unwrap();
    h.clock.set(expires - chrono::Duration::microseconds(1));
    assert!(nonces.is_used("old").await.unwrap());
    assert_eq!(
        nonces.claim("old", None, h.now() + chrono::Duration::minutes(5)).await.unwrap_err().kind(),
        ErrorKind::Replayed
    );
    h.clock.set(expires);
    assert!(!nonces.is_used("old").await.unwrap(), "an expired nonce no longer counts as used");
    assert_eq!(nonces.count_active().await.unwrap(), 1);
    nonces.claim("old", None, h.now() + chrono::Duration::minutes(5)).await.unwrap();
    assert!(nonces.is_used("old").await.unwrap());
    assert_eq!(
        nonces.claim("old", None, h.now() + chrono::Duration::minutes(5)).await.unwrap_err().kind(),
        ErrorKind::Replayed
    );
}

async fn claim_many_answers_each_in_order(h: Harness) {
    let nonces = h.store.nonces();
    let later = h.now() + chrono::Duration::minutes(5);
    nonces.claim("used", None, later).await.unwrap();
    let claim = |n: &str| NonceClaim { nonce: n.into(), session_id: Some("s".into()), expires_at: later };
    let answers = nonces.claim_many(&[claim("a"), claim("used"), claim("b"), claim("a"), claim("c")]).await.unwrap();
    assert_eq!(answers, [Claim::Fresh, Claim::Replayed, Claim::Fresh, Claim::Replayed, Claim::Fresh]);
    assert_eq!(nonces.count_active().await.unwrap(), 4);
    assert!(nonces.claim_many(&[]).await.unwrap().is_empty());
}

async fn deleting_a_session_keeps_its_nonces_closed(h: Harness) {
    let later = h.now() + chrono::Duration::minutes(5);
    h.store.sessions().create(&new_session("s1", ALICE, BOB, h.now() + chrono::Duration::hours(1))).await.unwrap();
    h.store.nonces().claim("m1", Some("s1"), later).await.unwrap();
    h.store.sessions().delete("s1").await.unwrap();
    assert!(h.store.nonces().is_used("m1").await.unwrap());
    assert_eq!(h.store.nonces().claim("m1", Some("s1"), later).await.unwrap_err().kind(), ErrorKind::Replayed);
}

async fn concurrent_claims_have_exactly_one_winner(h: Harness) {
    const TASKS: usize = 16;
    const NONCES: usize = 150;
    let later = h.now() + chrono::Duration::minutes(5);
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let nonces = h.store.nonces().clone();
        handles.push(tokio::spawn(async move {
            let mut wins = vec![0u32; NONCES];
            // Half the tasks claim one by one, half in batches, in different orders.
            if task % 2 == 0 {
                for i in (0..NONCES).rev() {
                    match nonces.claim(&format!("race-{i}"), None, later).await {
                        Ok(()) => wins[i] += 1,
                        Err(e) => assert_eq!(e.kind(), ErrorKind::Replayed, "{e}"),
                    }
                }
            } else {
                let order: Vec<usize> = (0..NONCES).map(|i| (i * 7 + task) % NONCES).collect();
                for chunk in order.chunks(25) {
                    let claims: Vec<NonceClaim> = chunk
                        .iter()
                        .map(|i| NonceClaim { nonce: format!("race-{i}"), session_id: None, expires_at: later })
                        .collect();
                    for (i, answer) in chunk.iter().zip(nonces.claim_many(&claims).await.unwrap()) {
                        if answer == Claim::Fresh {
                            wins[*i] += 1;
                        }
                    }
                }
            }
            wins
        }));
    }
    let mut total = vec![0u32; NONCES];
    for handle in handles {
        for (i, w) in handle.await.unwrap().into_iter().enumerate() {
            total[i] += w;
        }
    }
    assert!(total.iter().all(|&w| w == 1), "every nonce must be fresh exactly once: {total:?}");
    assert_eq!(h.store.nonces().count_active().await.unwrap(), NONCES as u64);
}

fn did(name: &str, owner: &str) -> DidRecord {
    let mut key = hex_decode("302a300506032b6570032100");
    key.extend_from_slice(&[7u8; 32]);
    DidRecord::new(format!("did:sage:test:{name}"), key, owner, KeyType::Ed25519)
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

async fn did_lifecycle(h: Harness) {
    let dids = h.store.dids();
    assert_eq!(dids.get("did:sage:test:alice").await.unwrap_err().kind(), ErrorKind::NotFound);
    let mut alice = did("alice", "0xAbC");
    alice.key_agreement_key = Some(vec![9u8; 32]);
    alice.endpoint = Some("https://alice.example.com/a2a".into());
    alice.capabilities = vec!["messaging".into(), "payments".into()];
    alice.stale_after = Some(h.now() + chrono::Duration::minutes(5));
    let created = dids.create(&alice).await.unwrap();
    assert_eq!(created.created_at, h.now());
    assert_eq!(created.fetched_at, h.now(), "fetched_at defaults to now");
    assert_eq!(dids.create(&alice).await.unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!(dids.get(&alice.did).await.unwrap(), created);
    assert!(!created.is_stale(h.now()));
    assert!(created.is_stale(h.now() + chrono::Duration::minutes(5)));

    h.advance(chrono::Duration::seconds(1));
    dids.create(&did("bob", "0xAbC")).await.unwrap();
    h.advance(chrono::Duration::seconds(1));
    dids.create(&did("carol", "0xDef")).await.unwrap();
    let owned: Vec<String> = dids.list_by_owner("0xAbC").await.unwrap().into_iter().map(|d| d.did).collect();
    assert_eq!(owned, ["did:sage:test:bob", "did:sage:test:alice"], "newest first");
    assert!(dids.list_by_owner("0xabc").await.unwrap().is_empty(), "owner match is exact");

    h.advance(chrono::Duration::seconds(1));
    let mut changed = created.clone();
    changed.key_type = KeyType::Secp256k1;
    changed.capabilities = vec![];
    let updated = dids.update(&changed).await.unwrap();
    assert_eq!(updated.key_type, KeyType::Secp256k1);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(updated.updated_at, h.now());
    assert_eq!(dids.get(&alice.did).await.unwrap(), updated);
    assert_eq!(dids.update(&did("nobody", "0x0")).await.unwrap_err().kind(), ErrorKind::NotFound);

    assert!(!dids.is_revoked(&alice.did).await.unwrap());
    dids.revoke(&alice.did).await.unwrap();
    assert!(dids.is_revoked(&alice.did).await.unwrap());
    assert_eq!(dids.is_revoked("did:sage:test:nobody").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(dids.revoke("did:sage:test:nobody").await.unwrap_err().kind(), ErrorKind::NotFound);

    dids.delete(&alice.did).await.unwrap();
    assert_eq!(dids.delete(&alice.did).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(dids.list_by_owner("0xAbC").await.unwrap().len(), 1);
}

async fn did_upsert_keeps_creation_time(h: Harness) {
    let dids = h.store.dids();
    let first = dids.upsert(&did("dave", "0x1")).await.unwrap();
    h.advance(chrono::Duration::minutes(1));
    let mut newer = did("dave", "0x2");
    newer.revoked = true;
    let second = dids.upsert(&newer).await.unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.updated_at, h.now());
    assert_eq!((second.owner_address.as_str(), second.revoked), ("0x2", true));
    assert_eq!(dids.get(&newer.did).await.unwrap(), second);
}

async fn invalid_input_names_the_field_and_writes_nothing(h: Harness) {
    let sessions = h.store.sessions();
    let later = h.now() + chrono::Duration::hours(1);
    let field = |r: Result<Session>| r.unwrap_err().field();
    assert_eq!(field(sessions.create(&new_session("s 1", ALICE, BOB, later)).await), Some("id"));
    assert_eq!(field(sessions.create(&new_session("s1", "alice", BOB, later)).await), Some("client_did"));
    assert_eq!(field(sessions.create(&new_session("s1", ALICE, "did:sage:", later)).await), Some("server_did"));
    assert_eq!(field(sessions.create(&new_session("s1", ALICE, BOB, h.now())).await), Some("expires_at"));
    let empty_key = NewSession { key: SessionKey::new(Vec::new()), ..new_session("s1", ALICE, BOB, later) };
    assert_eq!(field(sessions.create(&empty_key).await), Some("key"));
    let array = NewSession { metadata: Some(serde_json::json!([1])), ..new_session("s1", ALICE, BOB, later) };
    assert_eq!(field(sessions.create(&array).await), Some("metadata"));
    let zero = NewSession { max_messages: Some(0), ..new_session("s1", ALICE, BOB, later) };
    assert_eq!(field(sessions.create(&zero).await), Some("max_messages"));
    assert_eq!(sessions.count_active().await.unwrap(), 0);
    assert_eq!(sessions.get("s1").await.unwrap_err().kind(), ErrorKind::NotFound);

    let nonces = h.store.nonces();
    assert_eq!(nonces.claim("", None, later).await.unwrap_err().field(), Some("nonce"));
    assert_eq!(
        nonces.claim("ok", None, h.now() - chrono::Duration::seconds(1)).await.unwrap_err().field(),
        Some("expires_at")
    );
    let batch = [
        NonceClaim { nonce: "good".into(), session_id: None, expires_at: later },
        NonceClaim { nonce: "bad nonce".into(), session_id: None, expires_at: later },
    ];
    assert_eq!(nonces.claim_many(&batch).await.unwrap_err().field(), Some("nonce"));
    assert!(!nonces.is_used("good").await.unwrap(), "a rejected batch writes nothing");

    let dids = h.store.dids();
    let mut bad = did("eve", "0x1");
    bad.endpoint = Some("ftp://nope".into());
    assert_eq!(dids.create(&bad).await.unwrap_err().field(), Some("endpoint"));
    let mut bad = did("eve", "0x1");
    bad.public_key.clear();
    assert_eq!(dids.create(&bad).await.unwrap_err().field(), Some("public_key"));
    assert_eq!(dids.get("not-a-did").await.unwrap_err().field(), Some("did"));
    assert_eq!(dids.list_by_owner("0x1").await.unwrap().len(), 0);
    assert_eq!(KeyType::parse("ed25519"), Some(KeyType::Ed25519));
    assert_eq!(KeyType::parse("RSA"), None);
}

async fn cleanup_removes_only_what_expired(h: Harness) {
    let sessions = h.store.sessions();
    let nonces = h.store.nonces();
    let soon = h.now() + chrono::Duration::seconds(10);
    let later = h.now() + chrono::Duration::hours(1);
    // Half expire soon: one batch and a bit more, so cleanup has to come back for the rest.
    let total = 2 * CLEANUP_BATCH as usize + 6;
    let claims: Vec<NonceClaim> = (0..total)
        .map(|i| NonceClaim {
            nonce: format!("x{i}"),
            session_id: None,
            expires_at: if i % 2 == 0 { soon } else { later },
        })
        .collect();
    for chunk in claims.chunks(100) {
        nonces.claim_many(chunk).await.unwrap();
    }
    sessions.create(&new_session("gone", ALICE, BOB, soon)).await.unwrap();
    sessions.create(&new_session("kept", ALICE, BOB, later)).await.unwrap();
    h.clock.set(soon);
    assert_eq!(nonces.delete_expired().await.unwrap(), u64::from(CLEANUP_BATCH) + 3, "more than one batch");
    assert_eq!(nonces.count_active().await.unwrap(), u64::from(CLEANUP_BATCH) + 3);
    assert_eq!(nonces.delete_expired().await.unwrap(), 0);
    assert_eq!(sessions.delete_expired().await.unwrap(), 1);
    sessions.get("kept").await.unwrap();
}

async fn accept_claims_and_touches_together(h: Harness) {
    let id = "accept-session-1";
    let later = h.now() + chrono::Duration::minutes(5);
    h.store.sessions().create(&new_session(id, ALICE, BOB, h.now() + chrono::Duration::hours(1))).await.unwrap();
    h.advance(chrono::Duration::seconds(3));
    let session = h.store.accept(id, "accept-n1", later).await.unwrap();
    assert_eq!((session.message_count, session.last_activity), (1, h.now()));
    assert!(h.store.nonces().is_used("accept-n1").await.unwrap());
    assert_eq!(h.store.sessions().get(id).await.unwrap(), session, "the answer is what is stored");

    let replay = h.store.accept(id, "accept-n1", later).await.unwrap_err();
    assert_eq!(replay.kind(), ErrorKind::Replayed, "{replay}");
    assert_eq!(h.store.sessions().get(id).await.unwrap().message_count, 1, "a replay counts no message");
    // A nonce claimed on its own is a replay for accept too, and the other way round.
    h.store.nonces().claim("accept-n2", None, later).await.unwrap();
    assert!(h.store.accept(id, "accept-n2", later).await.unwrap_err().is_replayed());
    h.store.accept(id, "accept-n3", later).await.unwrap();
    assert!(h.store.nonces().claim("accept-n3", None, later).await.unwrap_err().is_replayed());
    assert_eq!(h.store.sessions().get(id).await.unwrap().message_count, 2);
    let invalid = h.store.accept(id, "", later).await.unwrap_err();
    assert_eq!((invalid.kind(), invalid.field()), (ErrorKind::InvalidInput, Some("nonce")));
}

async fn accept_that_fails_leaves_everything_as_it_was(h: Harness) {
    let later = h.now() + chrono::Duration::hours(2);
    let sessions = h.store.sessions();
    // Unknown session: the nonce stays unclaimed, so the client's retry on a new session works.
    assert!(h.store.accept("no-such-session", "fail-n1", later).await.unwrap_err().is_not_found());
    assert!(!h.store.nonces().is_used("fail-n1").await.unwrap());

    // Over budget.
    let mut budget = new_session("fail-budget", ALICE, BOB, h.now() + chrono::Duration::hours(1));
    budget.max_messages = Some(2);
    sessions.create(&budget).await.unwrap();
    h.store.accept("fail-budget", "fail-b1", later).await.unwrap();
    h.store.accept("fail-budget", "fail-b2", later).await.unwrap();
    assert!(h.store.accept("fail-budget", "fail-b3", later).await.unwrap_err().is_expired());
    assert!(!h.store.nonces().is_used("fail-b3").await.unwrap(), "a refused message burns no nonce");
    // A replay on a spent session is reported as the session's problem.
    assert!(h.store.accept("fail-budget", "fail-b1", later).await.unwrap_err().is_expired());

    // Idle and past expiry.
    let mut idle = new_session("fail-idle", ALICE, BOB, h.now() + chrono::Duration::hours(1));
    idle.idle_timeout = Some(Duration::from_secs(60));
    sessions.create(&idle).await.unwrap();
    sessions.create(&new_session("fail-expiry", ALICE, BOB, h.now() + chrono::Duration::minutes(30))).await.unwrap();
    h.advance(chrono::Duration::seconds(59));
    h.store.accept("fail-idle", "fail-i1", later).await.unwrap();
    h.advance(chrono::Duration::seconds(60));
    assert!(h.store.accept("fail-idle", "fail-i2", later).await.unwrap_err().is_expired());
    assert!(!h.store.nonces().is_used("fail-i2").await.unwrap());
    h.advance(chrono::Duration::minutes(30));
    assert!(h.store.accept("fail-expiry", "fail-e1", later).await.unwrap_err().is_expired());
    assert!(!h.store.nonces().is_used("fail-e1").await.unwrap());
    let untouched = sessions.list_by_client(ALICE, Page::default()).await.unwrap();
    assert!(untouched.is_empty(), "every session is expired now");
    // The refused nonces are still free for a live session.
    sessions.create(&new_session("fail-fresh", ALICE, BOB, h.now() + chrono::Duration::minutes(30))).await.unwrap();
    for nonce in ["fail-n1", "fail-b3", "fail-i2", "fail-e1"] {
        h.store.accept("fail-fresh", nonce, later).await.unwrap();
    }
    assert_eq!(sessions.get("fail-fresh").await.unwrap().message_count, 4);
}

async fn concurrent_accepts_of_one_nonce_have_exactly_one_winner(h: Harness) {
    const TASKS: usize = 16;
    let later = h.now() + chrono::Duration::minutes(5);
    h.store.sessions().create(&new_session("race-accept", ALICE, BOB, later)).await.unwrap();
    for round in 0..5 {
        let nonce = format!("accept-race-{round}");
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let (store, nonce) = (h.store.clone(), nonce.clone());
                tokio::spawn(async move { store.accept("race-accept", &nonce, later).await })
            })
            .collect();
        let mut wins = 0;
        for handle in handles {
            match handle.await.unwrap() {
                Ok(_) => wins += 1,
                Err(e) => assert!(e.is_replayed(), "{e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    assert_eq!(h.store.sessions().get("race-accept").await.unwrap().message_count, 5);
}

async fn concurrent_accepts_never_overspend_a_budget(h: Harness) {
    const TASKS: usize = 24;
    const BUDGET: u64 = 7;
    let later = h.now() + chrono::Duration::minutes(5);
    let mut session = new_session("budget-race", ALICE, BOB, later);
    session.max_messages = Some(BUDGET);
    h.store.sessions().create(&session).await.unwrap();
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move { (i, store.accept("budget-race", &format!("budget-n{i}"), later).await) })
        })
        .collect();
    let mut accepted = 0;
    for handle in handles {
        let (i, result) = handle.await.unwrap();
        let used = h.store.nonces().is_used(&format!("budget-n{i}")).await.unwrap();
        match result {
            Ok(_) => {
                accepted += 1;
                assert!(used, "accepted message {i} has its nonce claimed");
            }
            Err(e) => {
                assert!(e.is_expired(), "{e}");
                assert!(!used, "refused message {i} left its nonce unclaimed");
            }
        }
    }
    assert_eq!(accepted, BUDGET);
    let stored = h.store.sessions().get("budget-race").await.unwrap_err();
    assert!(stored.is_expired(), "the budget is spent");
    assert_eq!(h.store.nonces().count_active().await.unwrap(), BUDGET);
}

async fn accept_racing_a_delete_burns_no_nonce(h: Harness) {
    const MESSAGES: usize = 60;
    let later = h.now() + chrono::Duration::minutes(5);
    h.store.sessions().create(&new_session("doomed", ALICE, BOB, later)).await.unwrap();
    let handles: Vec<_> = (0..MESSAGES)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                if i == MESSAGES / 3 {
                    store.sessions().delete("doomed").await.unwrap();
                }
                (i, store.accept("doomed", &format!("doomed-n{i}"), later).await)
            })
        })
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for handle in handles {
        let (i, result) = handle.await.unwrap();
        let used = h.store.nonces().is_used(&format!("doomed-n{i}")).await.unwrap();
        match result {
            Ok(_) => {
                accepted += 1;
                assert!(used, "accepted message {i} has its nonce claimed");
            }
            Err(e) => {
                refused += 1;
                assert!(e.is_not_found(), "{e}");
                assert!(!used, "message {i}, refused because its session was deleted, left its nonce unclaimed");
            }
        }
    }
    assert_eq!(accepted + refused, MESSAGES);
    assert!(refused > 0, "the delete landed before some accepts");
    assert_eq!(h.store.nonces().count_active().await.unwrap(), accepted as u64);
}
