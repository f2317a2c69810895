//! What the backup tests share: a filled SAGE database and digests of whole contents.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use sage_conn::{quote_ident, PgSettings, Target};
use sage_ops::backup::{BackupOptions, PgFormat};
use sage_ops::{restore, Encryption};

pub const FILL: &str = "
INSERT INTO dids (did, public_key, owner_address, capabilities) VALUES
  ('did:sage:dev:alice', '\\x0102', '0xa', '[\"messaging\"]'), ('did:sage:dev:bob', '\\x0304', '0xb', '[]');
INSERT INTO sessions (id, client_did, server_did, session_key, expires_at, metadata) VALUES
  ('s1', 'did:sage:dev:alice', 'did:sage:dev:bob', '\\x00534b01', now() + interval '1 hour', '{\"k\": 1}');
INSERT INTO nonces (nonce, session_id, expires_at) SELECT 'n' || g, 's1', now() + interval '5 minutes' FROM generate_series(1, 50) g;
";

pub async fn migrated_pg() -> sage_testkit::TestDatabase {
    let db = sage_testkit::database().await.unwrap();
    let target = Target::Postgres(db.settings().clone());
    let set = sage_store::migrations(sage_migrate::Dialect::Postgres);
    sage_migrate::Migrator::connect(&target, set, Default::default())
        .await
        .unwrap()
        .up(sage_migrate::Target::Latest)
        .await
        .unwrap();
    sage_conn::connect(db.settings()).await.unwrap().batch_execute(FILL).await.unwrap();
    db
}

/// Every table's full contents, as a digest per table.
pub async fn pg_contents(pg: &PgSettings) -> BTreeMap<String, String> {
    sage_testkit::pg_contents(pg).await.unwrap()
}

pub async fn wipe_pg(pg: &PgSettings) {
    sage_conn::connect(pg)
        .await
        .unwrap()
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .await
        .unwrap();
}

pub fn options(dir: &Path, format: PgFormat, encryption: Encryption) -> BackupOptions {
    BackupOptions { dir: dir.to_path_buf(), format, encryption, keep: None, max_age: None }
}

pub fn replace_nothing() -> restore::RestoreOptions {
    restore::RestoreOptions::default()
}

pub fn quiet() -> sage_ops::backup::Progress {
    sage_ops::backup::Progress::none()
}

pub fn sqlite_contents(path: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut names =
        conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").unwrap();
    let names: Vec<String> = names.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    names
        .into_iter()
        .map(|n| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {}", quote_ident(&n))).unwrap();
            let width = stmt.column_count();
            let mut rows: Vec<String> = stmt
                .query_map([], |r| {
                    Ok((0..width).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join(","))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.sort();
            (n, rows)
        })
        .collect()
}
