//! Connection settings as PostgreSQL's own tools read them, against a real server: a
//! multi-host URL whose first host is down, `key=value` strings, the `PG*` variables, a
//! service file and the password file.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{run, sage_db, stderr, stdout};

struct Place {
    user: String,
    password: String,
    port: u16,
    dbname: String,
}

fn place(db: &sage_testkit::TestDatabase) -> Place {
    let s = db.settings();
    Place {
        user: s.user.clone(),
        password: s.password.as_ref().expect("the test server asks for a password").expose().to_string(),
        port: s.port,
        dbname: s.dbname.clone(),
    }
}

/// A home directory holding a password file (0600) for the test database.
fn home_with_pgpass(p: &Place) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join(".pgpass");
    let escaped = p.password.replace('\\', "\\\\").replace(':', "\\:");
    std::fs::write(&file, format!("# test server\n127.0.0.1:{}:{}:{}:{escaped}\n", p.port, p.dbname, p.user)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_of_connection_settings_reaches_the_server() {
    let db = sage_testkit::database().await.unwrap();
    let p = place(&db);
    let cwd = tempfile::tempdir().unwrap();
    let home = home_with_pgpass(&p);
    let home_dir = home.path().to_str().unwrap();
    let dead = common::free_port();

    // A multi-host URL whose first host refuses connections; the password comes from the file.
    let multi = format!(
        "postgres://{}@127.0.0.1:{dead},127.0.0.1:{}/{}?sslmode=disable&target_session_attrs=read-write",
        p.user, p.port, p.dbname
    );
    let up = run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &multi]).env("HOME", home_dir));
    assert!(up.status.success(), "{}{}", stdout(&up), stderr(&up));
    assert!(stdout(&up).contains(&format!("127.0.0.1:{dead},127.0.0.1:{}", p.port)), "{}", stdout(&up));

    // The same as a key=value string, with the password in it.
    let kv = format!(
        "host=127.0.0.1,127.0.0.1 port={dead},{} user={} password='{}' dbname={} sslmode=disable",
        p.port,
        p.user,
        p.password.replace('\\', "\\\\").replace('\'', "\\'"),
        p.dbname
    );
    let status = run(sage_db(cwd.path()).args(["migrate", "status", "--database-url", &kv]));
    assert!(status.status.success(), "{}{}", stdout(&status), stderr(&status));
    assert!(!stdout(&status).contains(&p.password) && !stderr(&status).contains(&p.password));

    // Only PG* variables, as psql would take them.
    let status = run(sage_db(cwd.path())
        .args(["migrate", "status"])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", p.port.to_string())
        .env("PGUSER", &p.user)
        .env("PGPASSWORD", &p.password)
        .env("PGDATABASE", &p.dbname)
        .env("PGSSLMODE", "disable"));
    assert!(status.status.success(), "{}{}", stdout(&status), stderr(&status));
    assert!(stdout(&status).contains("PG* variables"), "{}", stdout(&status));
    assert!(stdout(&status).contains("up to date") || stdout(&status).contains("applied"), "{}", stdout(&status));

    // A service from pg_service.conf, the password from the password file.
    std::fs::write(
        home.path().join(".pg_service.conf"),
        format!(
            "[sage-test]\nhost=127.0.0.1\nport={}\nuser={}\ndbname={}\nsslmode=disable\n",
            p.port, p.user, p.dbname
        ),
    )
    .unwrap();
    let status = run(sage_db(cwd.path())
        .args(["migrate", "status"])
        .env("HOME", home_dir)
        .env("PGSYSCONFDIR", home_dir)
        .env("PGSERVICE", "sage-test"));
    assert!(status.status.success(), "{}{}", stdout(&status), stderr(&status));

    // Nothing answers on any host: one line that names every host tried.
    let nowhere =
        format!("postgres://{}:secret-pw@127.0.0.1:{dead},127.0.0.1:{}/x?sslmode=disable", p.user, common::free_port());
    let out = run(sage_db(cwd.path()).args(["migrate", "status", "--database-url", &nowhere]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("127.0.0.1:{dead} or 127.0.0.1:")), "{}", stderr(&out));
    assert!(!stderr(&out).contains("secret-pw"), "{}", stderr(&out));
}

/// `backup` hands the multi-host list to pg_dump, which finds the server behind the dead host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_follows_a_multi_host_url() {
    let db = sage_testkit::database().await.unwrap();
    let p = place(&db);
    let cwd = tempfile::tempdir().unwrap();
    let dead = common::free_port();
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{dead},127.0.0.1:{}/{}?sslmode=disable&target_session_attrs=read-write",
        p.user,
        utf8_encode(&p.password),
        p.port,
        p.dbname
    );
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
    let out = run(sage_db(cwd.path()).args(["backup", "--database-url", &url, "--dir"]).arg(cwd.path().join("b")));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

fn utf8_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// `check` and `monitor` show the topology, and on asynchronous replication `check` warns
/// that acknowledged claims can be lost in a failover; with a synchronous standby it does not.
#[test]
fn check_names_the_replay_risk_of_asynchronous_replication() {
    let cwd = tempfile::tempdir().unwrap();
    for synchronous in [false, true] {
        let mut settings = vec![("synchronous_commit".to_string(), "on".to_string())];
        if synchronous {
            settings.push(("synchronous_standby_names".into(), "standby1".into()));
        }
        let primary =
            sage_testkit::PgCluster::start(sage_testkit::ClusterOptions { settings, ..Default::default() }).unwrap();
        let standby = primary.start_standby("standby1").unwrap();
        let url = primary.admin_settings().url_exposing_password();
        assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
        let check = run(sage_db(cwd.path()).args(["check", "--database-url", &url]));
        let text = stdout(&check);
        assert_eq!(check.status.code(), Some(0), "{text}{}", stderr(&check));
        let mode = if synchronous { "sync" } else { "async" };
        assert!(text.contains(&format!("replication: primary, 1 standby(s): standby1 (streaming, {mode}")), "{text}");
        let warned = text.contains("warning:") && text.contains("asynchronous") && text.contains("replayed");
        assert_eq!(warned, !synchronous, "{text}");
        if !synchronous {
            assert!(text.contains("synchronous_standby_names"), "{text}");
            let json = run(sage_db(cwd.path()).args(["check", "--json", "--database-url", &url]));
            let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
            assert_eq!(report["replication"]["standbys"][0]["sync_state"], "async", "{report}");
            assert_eq!(report["replication"]["warnings"].as_array().unwrap().len(), 1, "{report}");
        }
        let monitor = run(sage_db(cwd.path()).args(["monitor", "--database-url", &url]));
        assert!(stdout(&monitor).contains("standby1"), "{}", stdout(&monitor));
        // The standby itself says what it is.
        let on_standby = standby.admin_settings().url_exposing_password();
        let check = run(sage_db(cwd.path()).args(["check", "--database-url", &on_standby]));
        assert!(stdout(&check).contains("replication: standby"), "{}{}", stdout(&check), stderr(&check));
    }
}

/// Five `migrate up` runs at once through PgBouncer in transaction mode: session locks do not
/// hold there, so each run either refuses, saying so, or every migration is applied once.
#[test]
fn concurrent_migrations_through_a_transaction_pooler_apply_once_or_refuse() {
    let cluster = sage_testkit::PgCluster::start(Default::default()).unwrap();
    let bouncer = sage_testkit::PgBouncer::start(&cluster, "transaction").unwrap();
    let admin = cluster.admin_settings();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = sage_conn::connect(&admin).await.unwrap();
        client.batch_execute("CREATE DATABASE app").await.unwrap();
    });
    let dir = common::write_dir(&[
        ("000001_events.up.sql", "CREATE TABLE events (id serial PRIMARY KEY, what text NOT NULL);"),
        ("000002_seed.up.sql", "INSERT INTO events (what) VALUES ('seeded');"),
        ("000003_more.up.sql", "INSERT INTO events (what) VALUES ('more');"),
    ]);
    let through_pooler = bouncer.settings_for(&admin.with_dbname("app")).url_exposing_password();
    let cwd = tempfile::tempdir().unwrap();
    let runs: Vec<_> = (0..5)
        .map(|_| {
            sage_db(cwd.path())
                .args(["migrate", "up", "--database-url", &through_pooler, "--source"])
                .arg(dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = runs.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for out in &outputs {
        eprintln!("pooled run: {:?} {}", out.status.code(), stderr(out).trim());
        if !out.status.success() {
            let message = stderr(out);
            assert!(message.contains("pooler") && message.contains("direct"), "an unclear refusal: {message}");
        }
    }
    let rows: Vec<String> = runtime.block_on(async {
        let client = sage_conn::connect(&admin.with_dbname("app")).await.unwrap();
        match client.query("SELECT what FROM events ORDER BY id", &[]).await {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(_) => Vec::new(),
        }
    });
    assert!(rows.is_empty() || rows == ["seeded", "more"], "a migration ran twice or half: {rows:?}");
    // Whatever happened, --direct-url finishes the job while the database URL stays the pooler's.
    let direct = admin.with_dbname("app").url_exposing_password();
    let up = run(sage_db(cwd.path())
        .args(["migrate", "up", "--database-url", &through_pooler, "--direct-url", &direct, "--source"])
        .arg(dir.path()));
    assert!(up.status.success(), "{}", stderr(&up));
    let status = run(sage_db(cwd.path())
        .args(["migrate", "status", "--database-url", &through_pooler, "--source"])
        .arg(dir.path())
        .env("DIRECT_URL", &direct));
    assert!(stdout(&status).contains("0 pending"), "{}{}", stdout(&status), stderr(&status));
    let rows: Vec<String> = runtime.block_on(async {
        let client = sage_conn::connect(&admin.with_dbname("app")).await.unwrap();
        client.query("SELECT what FROM events ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    });
    assert_eq!(rows, ["seeded", "more"]);
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every sample of `name` in a Prometheus text, with its labels.
fn samples(body: &str, name: &str) -> Vec<(std::collections::HashMap<String, String>, f64)> {
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text");
    scrape
        .samples
        .into_iter()
        .filter(|s| s.metric == name)
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => {
                Some((s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(), v))
            }
            _ => None,
        })
        .collect()
}

fn serve(cwd: &std::path::Path, url: &str) -> (Server, u16) {
    let port = common::free_port();
    let server = Server(
        sage_db(cwd)
            .args(["serve", "--port", &port.to_string(), "--database-url", url])
            .env("SAGE_SESSION_KEY", sage_store::keys::generate_key().as_str())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(
        common::eventually(60, || common::http_get(port, "/health").is_some_and(|(s, _)| s == 200)),
        "serve did not start on {url}"
    );
    (server, port)
}

/// `serve`'s /metrics shows the topology of a real primary and streaming standby: the role,
/// the standbys, whether claims wait for one, and each standby's replay lag; served from
/// the standby it says so.
#[test]
fn metrics_show_the_topology() {
    let cwd = tempfile::tempdir().unwrap();
    for synchronous in [false, true] {
        let mut settings = vec![("synchronous_commit".to_string(), "on".to_string())];
        if synchronous {
            settings.push(("synchronous_standby_names".into(), "standby1".into()));
        }
        let primary =
            sage_testkit::PgCluster::start(sage_testkit::ClusterOptions { settings, ..Default::default() }).unwrap();
        let standby = primary.start_standby("standby1").unwrap();
        let url = primary.admin_settings().url_exposing_password();
        assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
        let (_server, port) = serve(cwd.path(), &url);
        let (status, body) = common::http_get(port, "/metrics").unwrap();
        assert_eq!(status, 200);
        let role = samples(&body, "sage_db_replication_role");
        let is = |name: &str| role.iter().find(|(l, _)| l["role"] == name).map(|(_, v)| *v);
        assert_eq!((is("primary"), is("standby")), (Some(1.0), Some(0.0)), "{body}");
        assert_eq!(samples(&body, "sage_db_replication_standbys")[0].1, 1.0, "{body}");
        let sync = if synchronous { 1.0 } else { 0.0 };
        assert_eq!(samples(&body, "sage_db_replication_synchronous_standbys")[0].1, sync, "{body}");
        assert_eq!(samples(&body, "sage_db_replication_synchronous")[0].1, sync, "{body}");
        let lag = samples(&body, "sage_db_replication_replay_lag_seconds");
        assert_eq!(lag.len(), 1, "{body}");
        assert_eq!(lag[0].0["standby"], "standby1");
        assert_eq!(lag[0].0["sync_state"], if synchronous { "sync" } else { "async" });
        assert!((0.0..10.0).contains(&lag[0].1), "a streaming standby on this machine lags little: {body}");
        assert_eq!(samples(&body, "sage_db_replication_replay_lag_bytes").len(), 1, "{body}");

        if !synchronous {
            // Served from the standby, the metrics say it is one.
            let on_standby = standby.admin_settings().url_exposing_password();
            let (_server, port) = serve(cwd.path(), &on_standby);
            let (_, body) = common::http_get(port, "/metrics").unwrap();
            let role = samples(&body, "sage_db_replication_role");
            let is = |name: &str| role.iter().find(|(l, _)| l["role"] == name).map(|(_, v)| *v);
            assert_eq!((is("primary"), is("standby")), (Some(0.0), Some(1.0)), "{body}");
            assert_eq!(samples(&body, "sage_db_replication_standbys")[0].1, 0.0, "{body}");
        }
    }
}
