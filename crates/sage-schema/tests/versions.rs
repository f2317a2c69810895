//! Snapshots across PostgreSQL major versions: the committed snapshots (taken on 15) of
//! SAGE's schema and of every example set validate clean on the server at hand, whatever
//! its major, and a planted drift is reported the same way. `scripts/test` runs this file
//! on 13, 14, 16, 17 and 18 as well as on the default 15.

use std::path::{Path, PathBuf};

use sage_conn::Target;
use sage_migrate::{Dialect, MigrationSet, Migrator, RunOptions};
use sage_schema::*;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// Every PostgreSQL migration set with a committed snapshot.
fn sets() -> Vec<PathBuf> {
    [
        "migrations/postgres",
        "examples/erc8004/migrations",
        "examples/neo/migrations",
        "examples/tmi/migrations",
        "examples/webvh/migrations/postgres",
    ]
    .iter()
    .map(|p| repo(p))
    .collect()
}

async fn server_major(target: &Target) -> u32 {
    let Target::Postgres(pg) = target else { unreachable!() };
    let client = sage_conn::connect(pg).await.unwrap();
    let num: String = client.query_one("SHOW server_version_num", &[]).await.unwrap().get(0);
    num.parse::<u32>().unwrap() / 10000
}

/// A fresh database with `dir`'s migrations applied.
async fn migrated(dir: &Path) -> (sage_testkit::TestDatabase, Target) {
    let db = sage_testkit::database().await.unwrap();
    let target = Target::Postgres(db.settings().clone());
    let set = MigrationSet::from_dir(dir, Dialect::Postgres).unwrap();
    let mut migrator = Migrator::connect(&target, set, RunOptions::default()).await.unwrap();
    migrator.up(sage_migrate::Target::Latest).await.unwrap();
    drop(migrator);
    (db, target)
}

/// What a user would see of each finding, without the definitions' text (which is the
/// server's rendering and so differs by version by design).
fn seen(findings: &[Finding]) -> Vec<(Severity, Drift, &'static str, String)> {
    let mut out: Vec<_> = findings.iter().map(|f| (f.severity, f.drift, f.kind, f.object.clone())).collect();
    out.sort_by(|a, b| (a.2, &a.3).cmp(&(b.2, &b.3)));
    out
}

/// The first table (by name) with a check constraint, else with an index (the did:webvh
/// server's tables have no checks): its drift is planted. The table, the kind of what is
/// dropped, and its name.
fn victim(schema: &Schema) -> (String, &'static str, String) {
    if let Some(table) = schema.tables.iter().find(|t| !t.checks.is_empty()) {
        return (table.qualified(), "check", table.checks[0].name.clone());
    }
    let table = schema.tables.iter().find(|t| !t.indexes.is_empty()).expect("every set has a check or an index");
    (table.qualified(), "index", table.indexes[0].name.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_taken_on_15_validate_clean_here_and_report_planted_drift_the_same_way() {
    for dir in sets() {
        let name = dir.strip_prefix(repo("")).unwrap_or(&dir).display().to_string();
        let snapshot = read_snapshot(&dir.join("schema.json")).unwrap();
        assert_eq!(snapshot.server_major, Some(15), "{name}: the committed snapshot records the major it was taken on");

        let (_db, target) = migrated(&dir).await;
        let major = server_major(&target).await;
        let expected = in_server_rendering(snapshot.clone(), &target).await.unwrap();
        assert_eq!(expected.server_major, Some(major), "{name}: rendered by this server");
        let live = live(&target).await.unwrap();
        let findings = validate(&expected, &live, ValidateOptions { strict: true });
        assert!(findings.is_empty(), "{name} on PostgreSQL {major}: {findings:#?}");

        // The planted drift: a check constraint (or an index) gone and a column added, on
        // one table.
        let (table, kind, check) = victim(&snapshot);
        let drifted = target;
        let (schema_name, table_name) = table.split_once('.').unwrap();
        let t = format!("{}.{}", sage_conn::quote_ident(schema_name), sage_conn::quote_ident(table_name));
        let drop = match kind {
            "check" => format!("ALTER TABLE {t} DROP CONSTRAINT {}", sage_conn::quote_ident(&check)),
            _ => format!("DROP INDEX {}.{}", sage_conn::quote_ident(schema_name), sage_conn::quote_ident(&check)),
        };
        let sql = format!("{drop}; ALTER TABLE {t} ADD COLUMN planted_drift integer");
        apply(&drifted, &sql).await.unwrap();
        let findings = validate(&expected, &live_of(&drifted).await, ValidateOptions::default());
        let mut planted = vec![
            (Severity::Error, Drift::Missing, kind, format!("{table}.{check}")),
            (Severity::Warning, Drift::Extra, "column", format!("{table}.planted_drift")),
        ];
        planted.sort_by(|a, b| (a.2, &a.3).cmp(&(b.2, &b.3)));
        assert_eq!(seen(&findings), planted, "{name} on PostgreSQL {major}: {findings:#?}");
    }
}

async fn live_of(target: &Target) -> Schema {
    live(target).await.unwrap()
}

/// On the snapshot's own major nothing is re-rendered; a snapshot that says it comes from
/// another major is created on this server and read back, which gives the same schema when
/// the renderings agree (run on every major, this proves the replay itself is faithful).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_from_another_major_is_rendered_by_this_server() {
    let dir = repo("examples/neo/migrations");
    let (_db, target) = migrated(&dir).await;
    let major = server_major(&target).await;
    let here = live(&target).await.unwrap();
    assert_eq!(here.server_major, Some(major), "a live schema records its server's major");
    assert_eq!(in_server_rendering(here.clone(), &target).await.unwrap(), here, "same major: unchanged");

    let mut elsewhere = here.clone();
    elsewhere.server_major = Some(if major == 13 { 18 } else { 13 });
    let rendered = in_server_rendering(elsewhere, &target).await.unwrap();
    assert_eq!(rendered, here, "re-rendered on this server, the schema comes back as this server renders it");
}
