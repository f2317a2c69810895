//! `sage-db serve` on a free loopback port: every endpoint, metrics that parse and move,
//! background cleanup, graceful shutdown, and /health/db following the database's state.

mod common;

use std::process::{Child, Stdio};

use common::{eventually, free_port, http_get, run, sage_db, stderr};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metric(body: &str, name: &str) -> Option<f64> {
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("/metrics parses as Prometheus text");
    scrape.samples.iter().find(|s| s.metric == name).and_then(|s| match s.value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Untyped(v) => Some(v),
        _ => None,
    })
}

#[test]
fn sqlite_endpoints_metrics_cleanup_and_shutdown() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["seed", "--environment", "dev"])).status.success());
    // Two nonces that expired already, for the background cleanup to find.
    rusqlite::Connection::open(cwd.path().join("sage.db"))
        .unwrap()
        .execute_batch("INSERT INTO nonces (nonce, used_at, expires_at) VALUES ('gone1', 1, 2), ('gone2', 1, 2);")
        .unwrap();
    let port = free_port();
    let server = Server(
        sage_db(cwd.path())
            .args(["serve", "--port", &port.to_string(), "--cleanup-every", "1s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(eventually(20, || http_get(port, "/health").is_some_and(|(s, _)| s == 200)), "server did not come up");
    let (status, body) = http_get(port, "/health/db").unwrap();
    assert_eq!(status, 200, "{body}");

    let (_, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(metric(&body, "sage_db_build_info"), Some(1.0));
    assert_eq!(metric(&body, "sage_db_active_sessions"), Some(3.0));
    let nonces_before = metric(&body, "sage_db_active_nonces").unwrap();
    assert!(metric(&body, "sage_db_database_size_bytes").unwrap() > 0.0);
    assert!(body.contains("sage_db_store_operation_duration_seconds_bucket"), "{body}");

    // Load from another process shows in the gauges; cleanup runs and removes rows.
    let mut claims =
        sage_db(cwd.path()).args(["nonce", "claim", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = claims.stdin.take().unwrap();
        for i in 0..25 {
            writeln!(stdin, "load-{i}").unwrap();
        }
    }
    assert!(claims.wait().unwrap().success());
    assert!(eventually(10, || {
        let (_, body) = http_get(port, "/metrics").unwrap();
        metric(&body, "sage_db_active_nonces") == Some(nonces_before + 25.0)
            && metric(&body, "sage_db_cleanup_runs_total").unwrap_or(0.0) >= 1.0
    }));
    let (_, body) = http_get(port, "/metrics").unwrap();
    let removed = body.lines().find(|l| l.starts_with("sage_db_cleanup_rows_removed_total{kind=\"nonces\"}")).unwrap();
    assert!(removed.ends_with(" 2"), "{removed}");
    let ops = body
        .lines()
        .find(|l| l.starts_with("sage_db_store_operations_total{operation=\"cleanup\",outcome=\"ok\"}"))
        .unwrap();
    assert!(!ops.ends_with(" 0"), "the cleanup counter moved: {ops}");

    let (status, page) = http_get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("healthy") && page.contains("active sessions") && page.contains("last cleanup"), "{page}");

    // SIGTERM: stop accepting, finish, exit 0.
    let mut server = server;
    let pid = server.0.id();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(eventually(10, || server.0.try_wait().unwrap().is_some()), "did not stop on SIGTERM");
    assert!(server.0.wait().unwrap().success());
    assert!(http_get(port, "/health").is_none(), "no longer listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_health_follows_the_server_and_startup_needs_migrations() {
    let cluster = sage_testkit::PgCluster::start(Default::default()).unwrap();
    let admin = cluster.admin_settings();
    sage_conn::connect(&admin).await.unwrap().batch_execute("CREATE DATABASE app").await.unwrap();
    let url = admin.with_dbname("app").url_exposing_password();
    let key = sage_store::keys::generate_key();
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();

    let refused = run(sage_db(cwd.path())
        .args(["serve", "--port", &port.to_string(), "--database-url", &url])
        .env("SAGE_SESSION_KEY", key.as_str()));
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("\nhint: `sage-db migrate up`"), "{}", stderr(&refused));

    let _server = Server(
        sage_db(cwd.path())
            .args(["serve", "--migrate", "--port", &port.to_string(), "--database-url", &url])
            .env("SAGE_SESSION_KEY", key.as_str())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(eventually(30, || http_get(port, "/health/db").is_some_and(|(s, _)| s == 200)), "healthy after --migrate");
    let (_, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(metric(&body, "sage_db_pool_max_connections"), Some(25.0));
    assert_eq!(metric(&body, "sage_db_database_up"), Some(1.0));

    cluster.stop().unwrap();
    let started = std::time::Instant::now();
    assert!(
        eventually(15, || http_get(port, "/health/db").is_some_and(|(s, _)| s == 503)),
        "unhealthy while the database is down"
    );
    assert!(started.elapsed().as_secs() < 15);
    let (status, reason) = http_get(port, "/health/db").unwrap();
    assert_eq!(status, 503);
    assert!(reason.contains("unreachable"), "{reason}");
    assert_eq!(http_get(port, "/health").unwrap().0, 200, "the process itself is alive");
    let (_, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(metric(&body, "sage_db_database_up"), Some(0.0));

    cluster.resume().unwrap();
    assert!(
        eventually(30, || http_get(port, "/health/db").is_some_and(|(s, _)| s == 200)),
        "recovers without a restart"
    );
    let (_, page) = http_get(port, "/").unwrap();
    assert!(page.contains("unreachable"), "the outage shows among recent errors");
}
