//! Session and DID reads from a real streaming standby (`pg_basebackup -R`), used only while
//! its replay lag is under the operator's bound: listings come from it then, lookups (which
//! may authorise a message) stay on the primary unless the operator opts in, and once the
//! lag passes the bound the primary answers everything.

use std::time::Duration;

use sage_conn::Target;
use sage_store::*;
use sage_testkit::PgCluster;

const ALICE: &str = "did:sage:test:alice";
const BOB: &str = "did:sage:test:bob";

async fn scalar(settings: &sage_conn::PgSettings, sql: &str) -> Option<i64> {
    let client = sage_conn::connect(settings).await.ok()?;
    client.query_one(sql, &[]).await.ok().map(|r| r.get(0))
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn session(id: &str, expires_at: chrono::DateTime<chrono::Utc>) -> NewSession {
    NewSession { id: id.into(), ..NewSession::new(ALICE, BOB, SessionKey::new(b"key".to_vec()), expires_at) }
}

fn ids(sessions: &[Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_reads_follow_the_lag_bound_and_lookups_stay_on_the_primary() {
    let primary = PgCluster::start(Default::default()).unwrap();
    let standby = primary.start_standby("standby1").unwrap();
    sage_conn::connect(&primary.admin_settings()).await.unwrap().batch_execute("CREATE DATABASE app").await.unwrap();
    let on_primary = primary.admin_settings().with_dbname("app");
    let on_standby = standby.admin_settings().with_dbname("app");
    let key = keys::generate_key().to_string();
    let options = |replica: Option<ReadReplica>| {
        let mut o = OpenOptions::new(KeySource::Inline(vec![key.clone()]));
        o.read_replica = replica;
        o
    };
    let mut migrating = options(None);
    migrating.migrate = true;
    Store::open(&Target::Postgres(on_primary.clone()), migrating).await.unwrap().close().await;
    until("the standby has the schema", async || scalar(&on_standby, "SELECT count(*) FROM sessions").await.is_some())
        .await;

    let replica = |max_lag: Duration, authorising_reads: bool| {
        Some(ReadReplica { settings: on_standby.clone(), max_lag, authorising_reads })
    };
    let target = Target::Postgres(on_primary.clone());
    let relaxed = Store::open(&target, options(replica(Duration::from_secs(3600), false))).await.unwrap();
    let opted_in = Store::open(&target, options(replica(Duration::from_secs(3600), true))).await.unwrap();
    let strict = Store::open(&target, options(replica(Duration::from_secs(1), false))).await.unwrap();

    let far = relaxed.now() + chrono::Duration::hours(1);
    relaxed.sessions().create(&session("s1", far)).await.unwrap();
    until("the standby has s1", async || {
        scalar(&on_standby, "SELECT count(*) FROM sessions WHERE id = 's1'").await == Some(1)
    })
    .await;
    assert_eq!(ids(&relaxed.sessions().list_by_client(ALICE, Page::default()).await.unwrap()), ["s1"]);

    // The standby stops replaying: s2 reaches it but is not applied there.
    let standby_admin = sage_conn::connect(&on_standby).await.unwrap();
    standby_admin.batch_execute("SELECT pg_wal_replay_pause()").await.unwrap();
    relaxed.sessions().create(&session("s2", far)).await.unwrap();
    until("the standby has received s2 without replaying it", async || {
        scalar(&on_standby, "SELECT count(*) WHERE pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()").await
            == Some(1)
    })
    .await;

    // Under the bound (an hour), a listing comes from the standby, which lacks s2...
    assert_eq!(ids(&relaxed.sessions().list_by_client(ALICE, Page::default()).await.unwrap()), ["s1"]);
    // ...but a lookup, on which a service decides whether to accept a message, is the primary's.
    assert_eq!(relaxed.sessions().get("s2").await.unwrap().id, "s2");
    // An operator who opted in gets the standby's answer for lookups too.
    assert_eq!(opted_in.sessions().get("s2").await.unwrap_err().kind(), ErrorKind::NotFound);

    // Over the bound (one second since the standby last replayed anything), the primary answers.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ids(&strict.sessions().list_by_client(ALICE, Page::default()).await.unwrap()), ["s2", "s1"]);

    // Replay resumes; once caught up, the strict store reads from the standby again (which
    // now has everything, so the answer is the same as the primary's).
    standby_admin.batch_execute("SELECT pg_wal_replay_resume()").await.unwrap();
    until("the standby has caught up", async || scalar(&on_standby, "SELECT count(*) FROM sessions").await == Some(2))
        .await;
    assert_eq!(ids(&strict.sessions().list_by_client(ALICE, Page::default()).await.unwrap()), ["s2", "s1"]);
    for store in [relaxed, opted_in, strict] {
        store.close().await;
    }
}
