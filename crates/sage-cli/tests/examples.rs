//! Each example system through its whole lifecycle on a real database: migrate up,
//! validate clean, seed, seed again (no change), check, backup, restore, validate clean,
//! down to zero, up again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{run, sage_db, stderr, stdout};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}

fn table_rows(check: &serde_json::Value) -> Vec<(String, i64)> {
    check["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["rows"].as_i64().unwrap()))
        .collect()
}

/// Migrate, validate, seed twice, check, back up, restore, validate; `down_and_up` finishes.
fn lifecycle(example: &Path, url: &str, cwd: &Path) {
    let migrations = example.join("migrations");
    let seeds = example.join("seeds");
    let ok = |args: &[&str]| {
        let mut c = sage_db(cwd);
        c.args(args).args(["--database-url", url]).stdin(Stdio::null());
        let out = run(&mut c);
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
        out
    };
    let src = migrations.to_str().unwrap();
    ok(&["migrate", "up", "--source", src]);
    ok(&["schema", "validate", "--strict", "--source", src]);
    let first = ok(&["seed", "--environment", "dev", "--json", "--seeds", seeds.to_str().unwrap()]);
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(!first["added"].as_object().unwrap().is_empty(), "{first}");
    let before: serde_json::Value = serde_json::from_slice(&ok(&["check", "--json", "--source", src]).stdout).unwrap();
    let again = ok(&["seed", "--environment", "dev", "--json", "--seeds", seeds.to_str().unwrap()]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(again["added"].as_object().unwrap().is_empty(), "the second seed adds nothing: {again}");
    let after_seed: serde_json::Value =
        serde_json::from_slice(&ok(&["check", "--json", "--source", src]).stdout).unwrap();
    assert_eq!(table_rows(&before), table_rows(&after_seed));
    let backups = cwd.join("backups");
    let backup: serde_json::Value =
        serde_json::from_slice(&ok(&["backup", "--json", "--dir", backups.to_str().unwrap()]).stdout).unwrap();
    let file = backup["file"].as_str().unwrap().to_string();
    ok(&["restore", &file, "--yes"]);
    let restored: serde_json::Value =
        serde_json::from_slice(&ok(&["check", "--json", "--source", src]).stdout).unwrap();
    assert_eq!(table_rows(&before), table_rows(&restored));
    ok(&["schema", "validate", "--strict", "--source", src]);
    // The example's retention rules pass the catalog's type check on its own schema.
    let rules = example.join(if url.starts_with("sqlite") { "cleanup-sqlite.toml" } else { "cleanup.toml" });
    if rules.exists() {
        ok(&["cleanup", "--dry-run", "--config", rules.to_str().unwrap()]);
    }
}

fn down_and_up(example: &Path, url: &str, cwd: &Path) {
    let src = example.join("migrations");
    let src = src.to_str().unwrap();
    for args in [
        vec!["migrate", "down", "--all", "--yes", "--source", src],
        vec!["migrate", "up", "--source", src],
        vec!["schema", "validate", "--strict", "--source", src],
    ] {
        let out = run(sage_db(cwd).args(&args).args(["--database-url", url]).stdin(Stdio::null()));
        assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erc8004_lifecycle_and_notifications() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    lifecycle(&example("erc8004"), &db.url(), cwd.path());

    // listen prints one line per event inserted by another connection.
    let listener = sage_db(cwd.path())
        .args(["listen", "new_event", "--json", "--count", "3", "--database-url", &db.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = sage_conn::connect(db.settings()).await.unwrap();
    // Wait until the listener is registered before inserting.
    common::eventually(20, || {
        let rt = tokio::runtime::Handle::current();
        std::thread::scope(|s| {
            s.spawn(|| {
                rt.block_on(client.query_one("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'", &[]))
            })
            .join()
            .unwrap()
        })
        .map(|r| r.get::<_, i64>(0) > 0)
        .unwrap_or(false)
    });
    for i in 0..3 {
        client
            .execute(
                "INSERT INTO events (id, chain_id, block_number, block_hash, transaction_hash, log_index, registry, event_type, timestamp) \
                 VALUES ($1, 84532, $2, 'h', 't', 0, 'identity', 'TokenCreated', 0)",
                &[&format!("84532-9{i}-0"), &(9000i64 + i)],
            )
            .await
            .unwrap();
    }
    let out = tokio::task::spawn_blocking(move || listener.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let payload: serde_json::Value = serde_json::from_str(lines[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["event_id"], "84532-90-0");
    assert_eq!(payload["registry"], "identity");

    // The upstream documents' monitoring queries run and answer sensibly.
    let rows = client
        .query("SELECT registry, event_type, count(*) FROM events GROUP BY 1, 2 ORDER BY 3 DESC", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "reputation, identity and validation events");
    assert_eq!(rows.iter().map(|r| r.get::<_, i64>(2)).sum::<i64>(), 11, "8 seeded events and 3 inserted");
    let failures: i64 = client
        .query_one("SELECT count(*) FILTER (WHERE status = 'failed') FROM action_results", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(failures, 1);
    drop(client);
    down_and_up(&example("erc8004"), &db.url(), cwd.path());
}

#[test]
fn webvh_lifecycle_on_sqlite_with_provision() {
    let cwd = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", cwd.path().join("app.db").display());
    let sqlite = example("webvh").join("migrations/sqlite");
    let webvh_sqlite = tempfile::tempdir().unwrap();
    // The lifecycle expects migrations/ and seeds/ side by side.
    std::os::unix::fs::symlink(&sqlite, webvh_sqlite.path().join("migrations")).unwrap();
    std::os::unix::fs::symlink(example("webvh").join("seeds"), webvh_sqlite.path().join("seeds")).unwrap();
    let rules = webvh_sqlite.path().join("cleanup-sqlite.toml");
    std::os::unix::fs::symlink(example("webvh").join("cleanup-sqlite.toml"), rules).unwrap();
    lifecycle(webvh_sqlite.path(), &url, cwd.path());
    down_and_up(webvh_sqlite.path(), &url, cwd.path());

    // An older deployment at version 2 (the server's own schema) with a row as the server
    // writes it: the upgrade drops the redundant indexes and keeps the row.
    let src = sqlite.to_str().unwrap();
    let db = cwd.path().join("app.db");
    assert!(run(sage_db(cwd.path()).args(["migrate", "goto", "2", "--yes", "--source", src, "--database-url", &url]))
        .status
        .success());
    let insert = "INSERT INTO did_controllers (scid, did, domain, namespace, alias, deactivated, logs, parameters, document) \
                  VALUES (?1, 'did:webvh:Qm1:example.com:people:alice', 'example.com', 'people', 'alice', 0, '[]', '{}', '{}')";
    rusqlite::Connection::open(&db).unwrap().execute(insert, ["Qm1"]).unwrap();
    let provision = run(sage_db(cwd.path()).args(["provision", "--source", src, "--database-url", &url]));
    assert!(provision.status.success(), "{}", stderr(&provision));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (rows, redundant): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM did_controllers), (SELECT count(*) FROM sqlite_master WHERE name = 'ix_did_controllers_scid')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, redundant), (1, 0));
    // As in the server's models, (namespace, alias) is not a unique key of the table: the
    // server checks it itself, and the schema does not refuse what the server writes.
    conn.execute(insert, ["Qm2"]).unwrap();
    drop(conn);

    // --recreate asks first, and wipes what the migrations made.
    let refused = run(sage_db(cwd.path())
        .args(["provision", "--recreate", "--source", src, "--database-url", &url])
        .stdin(Stdio::null()));
    assert_eq!(refused.status.code(), Some(2));
    let recreated =
        run(sage_db(cwd.path()).args(["provision", "--recreate", "--yes", "--source", src, "--database-url", &url]));
    assert!(recreated.status.success(), "{}", stderr(&recreated));
    let rows: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM did_controllers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webvh_lifecycle_on_postgres() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let layout = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(example("webvh").join("migrations/postgres"), layout.path().join("migrations")).unwrap();
    std::os::unix::fs::symlink(example("webvh").join("seeds"), layout.path().join("seeds")).unwrap();
    std::os::unix::fs::symlink(example("webvh").join("cleanup.toml"), layout.path().join("cleanup.toml")).unwrap();
    lifecycle(layout.path(), &db.url(), cwd.path());
    let client = sage_conn::connect(db.settings()).await.unwrap();
    let policy: String = client
        .query_one("SELECT policy_data->>'version' FROM server_policies WHERE policy_id = 'active'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(policy, "1.0");
    drop(client);
    down_and_up(layout.path(), &db.url(), cwd.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo_lifecycle_roles_cleanup_and_views() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let neo = example("neo");
    lifecycle(&neo, &db.url(), cwd.path());

    // Roles grant what they promise, also on tables created afterwards.
    let roles = run(sage_db(cwd.path())
        .args(["roles", "apply", "--config"])
        .arg(neo.join("roles.toml"))
        .args(["--database-url", &db.url()]));
    assert!(roles.status.success(), "{}", stderr(&roles));
    let again = run(sage_db(cwd.path())
        .args(["roles", "apply", "--config"])
        .arg(neo.join("roles.toml"))
        .args(["--database-url", &db.url()]));
    assert!(again.status.success(), "applying twice is fine: {}", stderr(&again));
    let admin = sage_conn::connect(db.settings()).await.unwrap();
    admin.batch_execute("CREATE TABLE core.later (id int); INSERT INTO core.later VALUES (1);").await.unwrap();
    for role in ["neo_readonly", "neo_auditor", "neo_backup"] {
        admin.batch_execute(&format!("ALTER ROLE {role} LOGIN PASSWORD 'pw-{role}'")).await.unwrap();
    }
    let as_role = |role: &str| {
        let mut s = db.settings().clone();
        s.user = role.to_string();
        s.password = Some(sage_conn::Secret::new(format!("pw-{role}")));
        s
    };
    let readonly = sage_conn::connect(&as_role("neo_readonly")).await.unwrap();
    let users: i64 = readonly.query_one("SELECT count(*) FROM core.users", &[]).await.unwrap().get(0);
    assert_eq!(users, 1);
    assert_eq!(
        readonly.query_one("SELECT count(*) FROM core.later", &[]).await.unwrap().get::<_, i64>(0),
        1,
        "default privileges"
    );
    for confidential in ["sgx.sealed_data_items", "keymanagement.cryptographic_keys", "monitoring.audit_logs"] {
        let err = readonly.query_one(&format!("SELECT count(*) FROM {confidential}"), &[]).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{confidential}: {err:?}"
        );
    }
    let err = readonly.execute("DELETE FROM core.users", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "read only: {err:?}");
    let auditor = sage_conn::connect(&as_role("neo_auditor")).await.unwrap();
    auditor.query("SELECT * FROM monitoring.table_usage", &[]).await.expect("the auditor reads monitoring views");
    let err = auditor.query_one("SELECT count(*) FROM core.users", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE), "auditor: {err:?}");
    let backup_url = as_role("neo_backup").url_exposing_password();
    let backup = run(sage_db(cwd.path())
        .args(["backup", "--json", "--dir"])
        .arg(cwd.path().join("role-backups"))
        .args(["--database-url", &backup_url]));
    assert!(backup.status.success(), "the backup role can dump the database: {}", stderr(&backup));

    // The cleanup function works on this schema and audits itself.
    let row = admin
        .query_one(
            "SELECT sealed_items_removed, sessions_removed, audit_rows_removed FROM public.cleanup_expired_data()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1, "the expired sealed item");
    let audited: i64 = admin
        .query_one("SELECT count(*) FROM monitoring.audit_logs WHERE action = 'CLEANUP_EXPIRED_DATA'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    let changes: i64 = admin
        .query_one("SELECT count(*) FROM monitoring.audit_logs WHERE resource_type = 'sealed_data_items'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(changes >= 3, "inserts and the cleanup's delete were audited: {changes}");
    // The monitoring views compile and answer.
    for view in ["monitoring.database_performance", "monitoring.index_usage", "monitoring.table_usage"] {
        admin.query(&format!("SELECT * FROM {view}"), &[]).await.unwrap_or_else(|e| panic!("{view}: {e}"));
    }
    admin.batch_execute("DROP TABLE core.later").await.unwrap();
    drop((admin, readonly, auditor));
    down_and_up(&neo, &db.url(), cwd.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmi_lifecycle_and_the_drift_tmis_validator_missed() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let tmi = example("tmi");
    lifecycle(&tmi, &db.url(), cwd.path());
    let src = tmi.join("migrations");
    let client = sage_conn::connect(db.settings()).await.unwrap();
    // The drift TMI's heuristics accepted: an extra allowed severity and a changed ON DELETE.
    client
        .batch_execute(
            "ALTER TABLE threats DROP CONSTRAINT threats_severity_check, ADD CONSTRAINT threats_severity_check CHECK (severity IS NULL OR severity IN ('low', 'medium', 'high', 'critical', 'evil'));
             ALTER TABLE threats DROP CONSTRAINT threats_threat_model_id_fkey, ADD CONSTRAINT threats_threat_model_id_fkey FOREIGN KEY (threat_model_id) REFERENCES threat_models (id) ON DELETE SET NULL;
             ALTER TABLE users ALTER COLUMN name TYPE varchar(300);",
        )
        .await
        .unwrap();
    let out = run(sage_db(cwd.path())
        .args(["schema", "validate", "--json", "--source"])
        .arg(&src)
        .args(["--database-url", &db.url()]));
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let objects: Vec<&str> =
        report["findings"].as_array().unwrap().iter().map(|f| f["object"].as_str().unwrap()).collect();
    assert_eq!(objects.len(), 3, "{report:#}");
    for expected in
        ["public.threats.threats_severity_check", "public.threats.threats_threat_model_id_fkey", "public.users.name"]
    {
        assert!(objects.contains(&expected), "{expected} not in {objects:?}");
    }
    // The monitoring query of TMI's check-db: row counts per table.
    let rows = client.query("SELECT severity, count(*) FROM threats GROUP BY 1 ORDER BY 1", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
}
