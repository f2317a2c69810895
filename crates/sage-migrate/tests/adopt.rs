//! Taking over databases managed by golang-migrate, sqlx and dbmate, and keeping their
//! tables in step so the previous tool still reports the right version.

mod common;

use common::{dir, Db};
use sage_migrate::{Dialect, ErrorKind, MigrationSet, Migrator, RunOptions, Target};
use sha2::{Digest, Sha384};

const GOLANG_TABLE_PG: &str =
    "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)";
const GOLANG_TABLE_SQLITE: &str = "CREATE TABLE schema_migrations (version uint64, dirty bool); CREATE UNIQUE INDEX version_unique ON schema_migrations (version)";

/// What `migrate version` (golang-migrate) prints: it reads the single row.
async fn golang_version(db: &Db) -> (i64, bool) {
    match db {
        Db::Postgres(t) => {
            let c = sage_conn::connect(t.settings()).await.unwrap();
            let r = c.query_one("SELECT version, dirty FROM schema_migrations LIMIT 1", &[]).await.unwrap();
            (r.get(0), r.get(1))
        }
        Db::Sqlite(f) => {
            let c = rusqlite::Connection::open(f.path()).unwrap();
            c.query_row("SELECT version, dirty FROM schema_migrations LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
        }
    }
}

fn golang_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("000001_a.up.sql", "CREATE TABLE a (id integer);"),
        ("000001_a.down.sql", "DROP TABLE a;"),
        ("000002_b.up.sql", "CREATE TABLE b (id integer);"),
        ("000002_b.down.sql", "DROP TABLE b;"),
        ("000003_c.up.sql", "CREATE TABLE c (id integer);"),
        ("000003_c.down.sql", "DROP TABLE c;"),
    ]
}

both_dialects!(golang_migrate_database_continues_where_it_stood, |db: Db| async move {
    let table = if db.dialect() == Dialect::Postgres { GOLANG_TABLE_PG } else { GOLANG_TABLE_SQLITE };
    // The state golang-migrate leaves after `migrate up 2`.
    db.exec(&format!("{table}; CREATE TABLE a (id integer); CREATE TABLE b (id integer); INSERT INTO schema_migrations VALUES (2, false);")).await;
    let d = dir(&golang_files());
    let mut m = db.migrator(d.path()).await;
    let status = m.status().await.unwrap();
    assert_eq!(status.version, Some(2), "status already reads golang-migrate's version");
    let report = m.up(Target::Latest).await.unwrap();
    assert!(report.notices[0].contains("golang-migrate"), "{:?}", report.notices);
    assert_eq!(report.applied.iter().map(|s| s.version).collect::<Vec<_>>(), [3]);
    assert_eq!(golang_version(&db).await, (3, false));
    assert_eq!(db.scalar("SELECT count(*) FROM schema_migrations").await, 1, "golang-migrate keeps one row");
    m.down(Target::Steps(1)).await.unwrap();
    assert_eq!(golang_version(&db).await, (2, false));
    m.down(Target::Latest).await.unwrap();
    assert_eq!(db.scalar("SELECT count(*) FROM schema_migrations").await, 0);
});

both_dialects!(dirty_golang_migrate_database_needs_force, |db: Db| async move {
    let table = if db.dialect() == Dialect::Postgres { GOLANG_TABLE_PG } else { GOLANG_TABLE_SQLITE };
    db.exec(&format!("{table}; CREATE TABLE a (id integer); INSERT INTO schema_migrations VALUES (2, true);")).await;
    let d = dir(&golang_files());
    let mut m = db.migrator(d.path()).await;
    let err = m.up(Target::Latest).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::State);
    assert!(err.to_string().contains("dirty at version 2"), "{err}");
    assert!(!db.tables().await.contains(&"c".to_string()), "nothing ran");
    // The operator checks: migration 2 did not run. Force 1, then up.
    m.force(1).await.unwrap();
    assert_eq!(golang_version(&db).await, (1, false));
    m.up(Target::Latest).await.unwrap();
    assert_eq!(golang_version(&db).await, (3, false));
    assert!(db.tables().await.contains(&"c".to_string()));
});

fn sqlx_table(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
        Dialect::Sqlite => "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    }
}

both_dialects!(sqlx_database_continues_and_stays_readable_by_sqlx, |db: Db| async move {
    let first = "CREATE TABLE users (id integer);\n";
    let second = "ALTER TABLE users ADD COLUMN name text;\n";
    let d = dir(&[("20240101000000_create_users.sql", first), ("20240102000000_add_user_name.sql", second)]);
    db.exec(sqlx_table(db.dialect())).await;
    db.exec(first).await;
    let checksum = hex(&Sha384::digest(first.as_bytes()));
    let insert = match db.dialect() {
        Dialect::Postgres => format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20240101000000, 'create users', true, '\\x{checksum}', 1)"),
        Dialect::Sqlite => format!("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20240101000000, 'create users', 1, X'{checksum}', 1)"),
    };
    db.exec(&insert).await;

    let mut m = db.migrator(d.path()).await;
    let report = m.up(Target::Latest).await.unwrap();
    assert_eq!(report.applied.iter().map(|s| s.version).collect::<Vec<_>>(), [20240102000000]);
    assert!(m.status().await.unwrap().findings.is_empty());
    // sqlx verifies each applied row: success, and the SHA-384 of the file it has.
    let expected = hex(&Sha384::digest(second.as_bytes()));
    let (count, ok) = match &db {
        Db::Postgres(t) => {
            let c = sage_conn::connect(t.settings()).await.unwrap();
            let r = c.query_one("SELECT count(*), bool_and(success) FROM _sqlx_migrations", &[]).await.unwrap();
            let row = c
                .query_one(
                    "SELECT description, encode(checksum, 'hex') FROM _sqlx_migrations WHERE version = 20240102000000",
                    &[],
                )
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), "add user name");
            assert_eq!(row.get::<_, String>(1), expected);
            (r.get::<_, i64>(0), r.get::<_, bool>(1))
        }
        Db::Sqlite(f) => {
            let c = rusqlite::Connection::open(f.path()).unwrap();
            let (desc, sum): (String, Vec<u8>) = c
                .query_row(
                    "SELECT description, checksum FROM _sqlx_migrations WHERE version = 20240102000000",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(desc, "add user name");
            assert_eq!(hex(&sum), expected);
            c.query_row("SELECT count(*), min(success) FROM _sqlx_migrations", [], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? == 1))
            })
            .unwrap()
        }
    };
    assert_eq!((count, ok), (2, true));
});

both_dialects!(sqlx_row_with_other_checksum_shows_as_edited, |db: Db| async move {
    let first = "CREATE TABLE users (id integer);\n";
    let d = dir(&[("20240101000000_create_users.sql", first)]);
    db.exec(sqlx_table(db.dialect())).await;
    db.exec(first).await;
    let insert = match db.dialect() {
        Dialect::Postgres => "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20240101000000, 'create users', true, '\\x00', 1)",
        Dialect::Sqlite => "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20240101000000, 'create users', 1, X'00', 1)",
    };
    db.exec(insert).await;
    let status = db.migrator(d.path()).await.status().await.unwrap();
    assert!(status.findings.iter().any(|f| f.kind == sage_migrate::FindingKind::Edited), "{:?}", status.findings);
});

both_dialects!(dbmate_database_continues, |db: Db| async move {
    let d = dir(&[
        ("20240101000000_a.sql", "-- migrate:up\nCREATE TABLE a (id integer);\n-- migrate:down\nDROP TABLE a;\n"),
        ("20240102000000_b.sql", "-- migrate:up\nCREATE TABLE b (id integer);\n-- migrate:down\nDROP TABLE b;\n"),
    ]);
    db.exec("CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY); CREATE TABLE a (id integer); INSERT INTO schema_migrations VALUES ('20240101000000');").await;
    let mut m = db.migrator(d.path()).await;
    m.up(Target::Latest).await.unwrap();
    assert_eq!(db.scalar("SELECT count(*) FROM schema_migrations").await, 2);
    m.down(Target::Steps(1)).await.unwrap();
    assert_eq!(db.scalar("SELECT count(*) FROM schema_migrations").await, 1);
});

/// A database SAGE's Go tooling created and filled at version 1 is adopted and upgraded
/// by SAGE's embedded migrations with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sage_version_1_database_is_upgraded_in_place() {
    let db = Db::new(Dialect::Postgres).await;
    let set = sage_store_migrations();
    let latest = set.latest_version().unwrap();
    let v1 = &set.get(1).unwrap().up.sql;
    db.exec(GOLANG_TABLE_PG).await;
    db.exec(v1).await;
    db.exec(
        "INSERT INTO schema_migrations VALUES (1, false);
         INSERT INTO dids (did, public_key, owner_address) VALUES ('did:sage:dev:alice', '\\x302a300506032b6570032100', '0xabc');
         INSERT INTO sessions (id, client_did, server_did, session_key, expires_at)
             VALUES ('550e8400-e29b-41d4-a716-446655440000', 'did:sage:dev:alice', 'did:sage:dev:bob', '\\x01', now() + interval '1 hour');
         INSERT INTO nonces (nonce, session_id, expires_at) VALUES ('n1', '550e8400-e29b-41d4-a716-446655440000', now() + interval '5 minutes');",
    )
    .await;
    let mut m = Migrator::connect(&db.target(), set, RunOptions::default()).await.unwrap();
    let report = m.up(Target::Latest).await.unwrap();
    assert_eq!(report.version_before, Some(1));
    assert_eq!(report.version_after, Some(latest));
    assert_eq!(golang_version(&db).await, (latest, false));
    assert_eq!(db.scalar("SELECT count(*) FROM sessions WHERE id = '550e8400-e29b-41d4-a716-446655440000'").await, 1);
    assert_eq!(db.scalar("SELECT count(*) FROM dids WHERE capabilities = '[]'::jsonb").await, 1);
    // Nonces now outlive their session.
    db.exec("DELETE FROM sessions").await;
    assert_eq!(db.scalar("SELECT count(*) FROM nonces").await, 1);
    // Every SAGE migration reverts cleanly, and the whole set applies again.
    let set = sage_store_migrations();
    let mut m = Migrator::connect(&db.target(), set, RunOptions::default()).await.unwrap();
    m.down(Target::Latest).await.unwrap();
    assert_eq!(db.tables().await, ["sage_schema_history", "schema_migrations"]);
    m.up(Target::Latest).await.unwrap();
    assert_eq!(golang_version(&db).await, (latest, false));
}

fn sage_store_migrations() -> MigrationSet {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres");
    MigrationSet::from_dir(&root, Dialect::Postgres).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
