//! Point reads on PostgreSQL share pipelined connections: many concurrent reads must each
//! get their own row, and a shared connection the server drops must be replaced, not kept.

use chrono::Utc;
use sage_store::*;

fn session(i: usize) -> NewSession {
    NewSession {
        id: format!("read-{i}"),
        client_did: format!("did:sage:test:client{i}"),
        server_did: "did:sage:test:server".into(),
        key: SessionKey::new(format!("key-{i}").into_bytes()),
        expires_at: Utc::now() + chrono::Duration::hours(1),
        metadata: None,
        max_messages: None,
        idle_timeout: None,
    }
}

async fn open(db: &sage_testkit::TestDatabase) -> Store {
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.migrate = true;
    Store::open(&sage_conn::Target::Postgres(db.settings().clone()), options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_each_get_their_own_row() {
    let db = sage_testkit::database().await.unwrap();
    let store = open(&db).await;
    for i in 0..64 {
        store.sessions().create(&session(i)).await.unwrap();
    }
    let reads = (0..1000).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let i = (n * 7) % 64;
            let got = store.sessions().get(&format!("read-{i}")).await.unwrap();
            (i, got.client_did, got.key.expose().to_vec())
        })
    });
    for read in futures_util::future::join_all(reads).await {
        let (i, client_did, key) = read.unwrap();
        assert_eq!(client_did, format!("did:sage:test:client{i}"));
        assert_eq!(key, format!("key-{i}").into_bytes());
    }
    let missing = store.sessions().get("read-none").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_recover_when_the_server_drops_the_connection() {
    let db = sage_testkit::database().await.unwrap();
    let store = open(&db).await;
    store.sessions().create(&session(1)).await.unwrap();
    store.sessions().get("read-1").await.unwrap();

    let admin = sage_conn::connect(db.settings()).await.unwrap();
    let dropped: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(dropped >= 1, "the store had connections to drop");
    // The server says goodbye on the socket; the store notices and reads on a new connection.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..4 {
        let got = store.sessions().get("read-1").await.unwrap();
        assert_eq!(got.client_did, "did:sage:test:client1");
    }
}
