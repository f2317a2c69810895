//! The object kinds beyond tables and columns on a real PostgreSQL server: each planted
//! change is reported once, with its severity; `render` loads back into an empty database
//! and `pg_dump --schema-only` of both databases is the same.

use std::path::{Path, PathBuf};

use sage_conn::Target;
use sage_migrate::{Dialect, MigrationSet};
use sage_schema::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn fixture_sql(name: &str) -> String {
    dir_sql(&fixture(name))
}

fn dir_sql(dir: &Path) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".up.sql"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<Vec<_>>().join("\n")
}

async fn database() -> (sage_testkit::TestDatabase, Target) {
    let db = sage_testkit::database().await.unwrap();
    let target = Target::Postgres(db.settings().clone());
    (db, target)
}

async fn expected(name: &str) -> Schema {
    expected_of(&fixture(name)).await
}

async fn expected_of(dir: &Path) -> Schema {
    let (_near, target) = database().await;
    from_migrations(MigrationSet::from_dir(dir, Dialect::Postgres).unwrap(), Some(&target), None).await.unwrap()
}

async fn server_version(target: &Target) -> i32 {
    let Target::Postgres(pg) = target else { unreachable!() };
    let client = sage_conn::connect(pg).await.unwrap();
    let v: String = client.query_one("SHOW server_version_num", &[]).await.unwrap().get(0);
    v.parse().unwrap()
}

/// Findings that are drift (not the notes on what was not checked).
fn drift(findings: Vec<Finding>) -> Vec<Finding> {
    findings.into_iter().filter(|f| f.drift != Drift::NotChecked).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_recorded() {
    let s = expected("pg_kinds").await;
    assert_eq!(s.recorded.len(), RECORDED_KINDS.len());
    assert!(s.row_security.iter().any(|r| r.table == "documents" && r.enabled && r.forced));
    let write = s.policies.iter().find(|p| p.name == "documents_write").unwrap();
    assert_eq!((write.command.as_str(), write.permissive), ("INSERT", false));
    assert_eq!(write.roles, ["sage_fx_writer"]);
    assert!(write.with_check.as_deref().unwrap().contains("current_setting"));
    assert!(s.owners.iter().any(|o| o.object == "app.members" && o.owner == "sage_fx_writer"));
    assert!(s.owners.iter().any(|o| o.object == "app.documents" && o.owner == "(database owner)"));
    assert!(s
        .grants
        .iter()
        .any(|g| g.object == "app.documents" && g.grantee == "sage_fx_writer" && g.privileges == ["INSERT", "SELECT"]));
    assert!(s.grants.iter().any(|g| g.kind == "column" && g.object == "app.tenants.name"));
    assert!(s.grants.iter().any(|g| g.kind == "sequence" && g.privileges == ["USAGE*"]));
    assert!(
        !s.grants.iter().any(|g| g.object == "app.current_tenant()" && g.grantee == "PUBLIC"),
        "EXECUTE was revoked from PUBLIC"
    );
    assert!(s.default_privileges.iter().any(|d| d.schema == "app" && d.grantee == "sage_fx_reader"));
    let f = s.functions.iter().find(|f| f.name == "current_tenant").unwrap();
    assert!(f.security_definer);
    assert_eq!(f.settings, ["search_path=pg_catalog, app"]);
    let rel = |n: &str| s.relations.iter().find(|r| r.name == n).unwrap_or_else(|| panic!("{n}: {:#?}", s.relations));
    assert_eq!(rel("events").partition_key.as_deref(), Some("RANGE (at)"));
    assert_eq!(rel("events_other").bound.as_deref(), Some("DEFAULT"));
    assert_eq!(rel("pinned_notes").inherits, ["app.notes"]);
    assert!(rel("cache").unlogged && rel("cache").options == ["fillfactor=70"]);
    assert_eq!(rel("visible_documents").options, ["security_barrier=true"]);
    assert!(s.table("app", "events_2025").is_none(), "a partition is described by its relation entry");
    let id = s.identities.iter().find(|i| i.table == "tenants").unwrap();
    assert_eq!((id.start, id.increment, id.cache), (100, 5, 10));
    assert_eq!(s.sequences.iter().find(|q| q.name == "ticket_numbers").unwrap().cache, Some(20));
    assert!(s.comments.iter().any(|c| c.kind == "table column" && c.text == "Display name"));
    let kinds: Vec<&str> = s.types.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds, ["domain", "range", "composite"], "email, floatrange, money_pair");
    assert_eq!(s.collations.len(), 1);
    assert_eq!(
        s.table("app", "tenants").unwrap().uniques.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["tenants_id_key"],
        "a UNIQUE on the primary key's column is kept"
    );
    assert!(s.not_modelled.is_empty(), "{:?}", s.not_modelled);
}

/// Plants one change at a time into a fresh copy of the fixture and expects exactly one
/// finding, of the given kind, drift and severity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_changes_of_every_kind_are_reported_once_with_their_severity() {
    let expected = expected("pg_kinds").await;
    let sql = fixture_sql("pg_kinds");
    let (_db, target) = database().await;
    apply(&target, &sql).await.unwrap();
    let clean = validate(&expected, &live(&target).await.unwrap(), ValidateOptions::default());
    assert!(clean.is_empty(), "nothing changed, nothing reported: {clean:#?}");

    use Drift::*;
    use Severity::*;
    let mut cases: Vec<(&str, &str, Drift, Severity)> = vec![
        ("ALTER TABLE app.documents DISABLE ROW LEVEL SECURITY", "row level security", Changed, Error),
        ("ALTER TABLE app.documents NO FORCE ROW LEVEL SECURITY", "row level security", Changed, Error),
        ("DROP POLICY documents_tenant ON app.documents", "policy", Missing, Error),
        ("ALTER POLICY documents_tenant ON app.documents TO PUBLIC", "policy", Changed, Error),
        ("ALTER POLICY documents_tenant ON app.documents USING (true)", "policy", Changed, Error),
        ("CREATE POLICY sneaky ON app.documents USING (true)", "policy", Extra, Error),
        ("REVOKE SELECT ON app.documents FROM sage_fx_reader", "grant", Missing, Error),
        ("GRANT DELETE ON app.documents TO sage_fx_writer", "grant", Changed, Error),
        ("GRANT SELECT ON app.tenants TO PUBLIC", "grant", Extra, Error),
        ("REVOKE SELECT (name) ON app.tenants FROM sage_fx_reader", "grant", Missing, Error),
        ("GRANT EXECUTE ON FUNCTION app.current_tenant() TO PUBLIC", "grant", Extra, Error),
        ("REVOKE GRANT OPTION FOR USAGE ON SEQUENCE app.ticket_numbers FROM sage_fx_writer", "grant", Changed, Error),
        ("REVOKE USAGE ON SCHEMA app FROM sage_fx_writer", "grant", Missing, Error),
        (
            "ALTER DEFAULT PRIVILEGES IN SCHEMA app REVOKE SELECT ON TABLES FROM sage_fx_reader",
            "default privilege",
            Missing,
            Error,
        ),
        ("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC", "default privilege", Extra, Error),
        ("ALTER TABLE app.members OWNER TO sage_fx_reader", "owner", Changed, Error),
        ("ALTER FUNCTION app.stamp() OWNER TO sage_fx_writer", "owner", Changed, Error),
        ("ALTER FUNCTION app.current_tenant() SECURITY INVOKER", "security definer", Changed, Error),
        ("ALTER FUNCTION app.current_tenant() SET search_path = public", "function setting", Changed, Error),
        ("ALTER TABLE app.events DETACH PARTITION app.events_2026", "partition", Missing, Error),
        ("DROP TABLE app.events_2025", "partition", Missing, Error),
        (
            "CREATE TABLE app.events_2027 PARTITION OF app.events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')",
            "partition",
            Extra,
            Warning,
        ),
        (
            "DROP TABLE app.audit_log; CREATE TABLE app.audit_log (at timestamptz NOT NULL, line text) PARTITION BY LIST (at)",
            "partition key",
            Changed,
            Error,
        ),
        ("ALTER TABLE app.pinned_notes NO INHERIT app.notes", "inheritance", Changed, Error),
        ("ALTER TABLE app.cache SET LOGGED", "persistence", Changed, Error),
        ("ALTER TABLE app.cache SET (fillfactor = 90)", "relation option", Changed, Error),
        ("ALTER VIEW app.visible_documents RESET (security_barrier)", "relation option", Changed, Error),
        ("ALTER TABLE app.tenants ALTER COLUMN id SET INCREMENT BY 1", "identity", Changed, Error),
        ("ALTER TABLE app.tenants ALTER COLUMN id SET CACHE 1", "identity", Changed, Error),
        ("ALTER SEQUENCE app.ticket_numbers CACHE 1", "sequence", Changed, Error),
        ("ALTER SEQUENCE app.ticket_numbers START 1", "sequence", Changed, Error),
        (
            "ALTER TABLE app.documents DROP CONSTRAINT documents_author_fkey, ADD CONSTRAINT documents_author_fkey \
             FOREIGN KEY (tenant_id, author_id) REFERENCES app.members (tenant_id, id) MATCH FULL DEFERRABLE",
            "foreign key",
            Changed,
            Error,
        ),
        (
            "ALTER TABLE app.documents ALTER CONSTRAINT documents_author_fkey DEFERRABLE INITIALLY DEFERRED",
            "foreign key",
            Changed,
            Error,
        ),
        (
            "ALTER TABLE app.documents DROP CONSTRAINT documents_author_fkey, ADD CONSTRAINT documents_author_fkey \
             FOREIGN KEY (tenant_id, author_id) REFERENCES app.members (tenant_id, id) DEFERRABLE NOT VALID",
            "foreign key",
            Changed,
            Error,
        ),
        ("ALTER TABLE app.members VALIDATE CONSTRAINT members_tenant_positive", "check", Changed, Error),
        ("ALTER TABLE app.tenants DROP CONSTRAINT tenants_id_key", "unique constraint", Missing, Error),
        ("ALTER DOMAIN app.email DROP CONSTRAINT email_check", "type", Changed, Error),
        ("DROP COLLATION app.ci", "collation", Missing, Error),
        ("COMMENT ON TABLE app.tenants IS 'changed'", "comment", Changed, Info),
        ("COMMENT ON COLUMN app.tenants.name IS NULL", "comment", Missing, Info),
        ("COMMENT ON VIEW app.summary IS 'new'", "comment", Extra, Info),
    ];
    if server_version(&target).await >= 150000 {
        cases.push((
            "ALTER TABLE app.documents DROP CONSTRAINT documents_author_fkey, ADD CONSTRAINT documents_author_fkey \
             FOREIGN KEY (tenant_id, author_id) REFERENCES app.members (tenant_id, id) ON DELETE SET NULL (author_id) DEFERRABLE",
            "foreign key",
            Changed,
            Error,
        ));
    }
    let mut failures = Vec::new();
    for (change, kind, drift_kind, severity) in &cases {
        let (_db, target) = database().await;
        apply(&target, &sql).await.unwrap();
        apply(&target, change).await.unwrap();
        let found = drift(validate(&expected, &live(&target).await.unwrap(), ValidateOptions::default()));
        let as_expected =
            found.len() == 1 && (found[0].kind, found[0].drift, found[0].severity) == (*kind, *drift_kind, *severity);
        if !as_expected {
            failures.push(format!("{change}:\n{found:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_kinds_and_old_snapshots_say_what_they_did_not_check() {
    let expected = expected("pg_kinds").await;
    let (_db, target) = database().await;
    apply(&target, &fixture_sql("pg_kinds")).await.unwrap();
    apply(&target, "GRANT SELECT ON app.tenants TO PUBLIC; ALTER TABLE app.documents DISABLE ROW LEVEL SECURITY")
        .await
        .unwrap();
    let actual = live(&target).await.unwrap();
    let findings = validate(&expected, &actual, ValidateOptions::default());
    assert_eq!(drift(findings.clone()).len(), 2);
    let ignored = ignore_kinds(findings, &["grant".to_string()]).unwrap();
    let kinds: Vec<(&str, &str)> = ignored.iter().map(|f| (f.kind, f.object.as_str())).collect();
    assert_eq!(kinds, [("row level security", "app.documents"), ("not checked", "grant")]);
    assert!(ignore_kinds(Vec::new(), &["grants".to_string()]).is_err(), "a kind that does not exist is refused");

    // A snapshot from before these kinds were recorded: no false drift, and a note per kind.
    let mut old: serde_json::Value = serde_json::from_str(&snapshot_json(&expected)).unwrap();
    let object = old.as_object_mut().unwrap();
    for field in [
        "recorded",
        "owners",
        "grants",
        "default_privileges",
        "row_security",
        "policies",
        "comments",
        "relations",
        "identities",
        "types",
        "collations",
        "order",
    ] {
        object.remove(field);
    }
    for s in object["sequences"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("cache");
    }
    for f in object["functions"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("security_definer");
        f.as_object_mut().unwrap().remove("settings");
    }
    let old = parse_snapshot(&old.to_string()).unwrap();
    let findings = validate(&old, &actual, ValidateOptions::default());
    let not_checked: Vec<&str> =
        findings.iter().filter(|f| f.drift == Drift::NotChecked).map(|f| f.object.as_str()).collect();
    assert_eq!(not_checked, RECORDED_KINDS);
    assert!(findings.iter().all(|f| f.severity == Severity::Info), "{findings:#?}");
}

/// `pg_dump --schema-only` of a database, without what differs between two loads of the
/// same schema (comments, settings, the restrict key), as a sorted list of statements.
fn pg_dump(target: &Target) -> Vec<String> {
    let Target::Postgres(pg) = target else { unreachable!() };
    let bin = std::env::var("SAGE_PG_BIN").expect("SAGE_PG_BIN names the PostgreSQL binaries");
    let out = std::process::Command::new(Path::new(&bin).join("pg_dump"))
        .args([
            "--schema-only",
            "--no-comments",
            "--exclude-table=*.sage_schema_history",
            "--dbname",
            &pg.url_exposing_password(),
        ])
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            !(l.starts_with("--")
                || l.starts_with("SET ")
                || l.starts_with("SELECT pg_catalog.set_config")
                || l.starts_with("\\"))
        })
        .collect();
    // PostgreSQL prints a varchar IN list differently once its own output is parsed again
    // (`'a'::character varying` in a `::text[]` array becomes `'a'::character varying::text`),
    // as after any dump and restore; the casts and parentheses are left out of the comparison.
    let normalised = kept
        .join("\n")
        .replace("::character varying", "")
        .replace("::text[]", "")
        .replace("::text", "")
        .replace(['(', ')'], "");
    let mut statements: Vec<String> =
        normalised.split(";\n").map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    statements.sort();
    statements
}

async fn loads_back(dir: &Path) {
    let expected = expected_of(dir).await;
    let (_a, migrated) = database().await;
    let set = MigrationSet::from_dir(dir, Dialect::Postgres).unwrap();
    let mut migrator = sage_migrate::Migrator::connect(&migrated, set, Default::default()).await.unwrap();
    migrator.up(sage_migrate::Target::Latest).await.unwrap();
    drop(migrator);
    let (_b, rendered) = database().await;
    let sql = render(&expected);
    apply(&rendered, &sql).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let again = live(&rendered).await.unwrap();
    let findings = validate(&expected, &again, ValidateOptions { strict: true });
    assert!(findings.is_empty(), "{findings:#?}");
    let (want, have) = (canonical_expression(&snapshot_json(&expected)), canonical_expression(&snapshot_json(&again)));
    let (want, have): (Vec<&str>, Vec<&str>) = (want.lines().collect(), have.lines().collect());
    let lost: Vec<&&str> = want.iter().filter(|l| !have.contains(l)).collect();
    let gained: Vec<&&str> = have.iter().filter(|l| !want.contains(l)).collect();
    assert!(want == have, "the snapshot changed through render and load:\nlost {lost:#?}\ngained {gained:#?}");
    let (left, right) = (pg_dump(&migrated), pg_dump(&rendered));
    let only_left: Vec<&String> = left.iter().filter(|s| !right.contains(s)).collect();
    let only_right: Vec<&String> = right.iter().filter(|s| !left.contains(s)).collect();
    assert!(
        only_left.is_empty() && only_right.is_empty(),
        "migrated only: {only_left:#?}\nrendered only: {only_right:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_kinds_load_back_and_dump_the_same() {
    loads_back(&fixture("pg_kinds")).await;
    loads_back(&fixture("every_kind_pg")).await;
}

/// The application schemas of the examples (Neo's service layer, did:webvh, TMI, the
/// ERC-8004 backend) load back from `render` and dump the same as their migrations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_schemas_load_back_and_dump_the_same() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for dir in ["neo/migrations", "webvh/migrations/postgres", "tmi/migrations", "erc8004/migrations"] {
        loads_back(&examples.join(dir)).await;
    }
    loads_back(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres")).await;
}

/// `diff` from a database that drifted in every security-relevant way (and from an empty
/// one) to the fixture gives DDL that, applied, validates clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_to_the_fixture_closes_every_kind_of_drift() {
    let expected = expected("pg_kinds").await;
    let drifted = "ALTER TABLE app.documents DISABLE ROW LEVEL SECURITY; \
        DROP POLICY documents_tenant ON app.documents; \
        ALTER POLICY documents_write ON app.documents TO PUBLIC; \
        CREATE POLICY sneaky ON app.documents USING (true); \
        REVOKE SELECT ON app.documents FROM sage_fx_reader; \
        GRANT DELETE ON app.documents TO sage_fx_writer; \
        GRANT SELECT ON app.tenants TO PUBLIC; \
        REVOKE SELECT (name) ON app.tenants FROM sage_fx_reader; \
        GRANT EXECUTE ON FUNCTION app.current_tenant() TO PUBLIC; \
        ALTER DEFAULT PRIVILEGES IN SCHEMA app REVOKE SELECT ON TABLES FROM sage_fx_reader; \
        ALTER TABLE app.members OWNER TO sage_fx_reader; \
        ALTER FUNCTION app.current_tenant() SECURITY INVOKER; \
        ALTER TABLE app.events DETACH PARTITION app.events_2026; \
        DROP TABLE app.events_2025; \
        ALTER TABLE app.pinned_notes NO INHERIT app.notes; \
        ALTER TABLE app.cache SET LOGGED; ALTER TABLE app.cache SET (fillfactor = 90, autovacuum_enabled = false); \
        ALTER VIEW app.visible_documents RESET (security_barrier); \
        ALTER TABLE app.tenants ALTER COLUMN id SET INCREMENT BY 1; \
        COMMENT ON TABLE app.tenants IS 'changed'; COMMENT ON COLUMN app.tenants.name IS NULL";
    for start in [Some(drifted), None] {
        let (_db, target) = database().await;
        if let Some(drift_sql) = start {
            apply(&target, &fixture_sql("pg_kinds")).await.unwrap();
            apply(&target, drift_sql).await.unwrap();
        }
        let before = live(&target).await.unwrap();
        let changes = diff(&before, &expected);
        let sql: Vec<String> = changes.iter().map(|c| c.sql.clone()).collect();
        apply(&target, &sql.join("\n")).await.unwrap_or_else(|e| panic!("{e}\n{}", sql.join("\n")));
        let findings = drift(validate(&expected, &live(&target).await.unwrap(), ValidateOptions { strict: true }));
        assert!(findings.is_empty(), "{findings:#?}\n{}", sql.join("\n"));
    }
}
