//! Shared helpers: a database of either dialect, a migration directory on disk, and
//! read-only probes of what the database now holds.

#![allow(dead_code)]

use std::path::Path;

use sage_conn::{SqliteLocation, Target};
use sage_migrate::{Dialect, MigrationSet, Migrator, RunOptions};
use sage_testkit::{SqliteFile, TestDatabase};

#[allow(clippy::large_enum_variant)]
pub enum Db {
    Postgres(TestDatabase),
    Sqlite(SqliteFile),
}

impl Db {
    pub async fn new(dialect: Dialect) -> Db {
        match dialect {
            Dialect::Postgres => Db::Postgres(sage_testkit::database().await.expect("test database")),
            Dialect::Sqlite => Db::Sqlite(SqliteFile::new()),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    pub fn target(&self) -> Target {
        match self {
            Db::Postgres(db) => Target::Postgres(db.settings().clone()),
            Db::Sqlite(file) => Target::Sqlite(SqliteLocation::File(file.path().to_path_buf())),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Db::Postgres(db) => db.url(),
            Db::Sqlite(file) => file.url(),
        }
    }

    pub async fn migrator(&self, dir: &Path) -> Migrator {
        self.migrator_with(dir, RunOptions::default()).await
    }

    pub async fn migrator_with(&self, dir: &Path, options: RunOptions) -> Migrator {
        let set = MigrationSet::from_dir(dir, self.dialect()).expect("readable directory");
        Migrator::connect(&self.target(), set, options).await.expect("connect")
    }

    /// Runs one statement that returns a single integer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self {
            Db::Postgres(db) => {
                let client = sage_conn::connect(db.settings()).await.expect("connect");
                client.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0)
            }
            Db::Sqlite(file) => {
                let conn = rusqlite::Connection::open(file.path()).expect("open");
                conn.query_row(sql, [], |r| r.get(0)).expect(sql)
            }
        }
    }

    pub async fn exec(&self, sql: &str) {
        match self {
            Db::Postgres(db) => {
                let client = sage_conn::connect(db.settings()).await.expect("connect");
                client.batch_execute(sql).await.expect(sql);
            }
            Db::Sqlite(file) => {
                let conn = rusqlite::Connection::open(file.path()).expect("open");
                conn.execute_batch(sql).expect(sql);
            }
        }
    }

    /// User tables, sorted.
    pub async fn tables(&self) -> Vec<String> {
        match self {
            Db::Postgres(db) => {
                let client = sage_conn::connect(db.settings()).await.expect("connect");
                let rows = client
                    .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", &[])
                    .await
                    .expect("tables");
                rows.iter().map(|r| r.get(0)).collect()
            }
            Db::Sqlite(file) => {
                let conn = rusqlite::Connection::open(file.path()).expect("open");
                let mut stmt = conn
                    .prepare(
                        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
                    )
                    .expect("prepare");
                stmt.query_map([], |r| r.get(0)).expect("query").map(Result::unwrap).collect()
            }
        }
    }
}

/// A migration directory holding `files`.
pub fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write migration");
    }
    dir
}

/// Runs a test body once per dialect, each in its own test function.
#[macro_export]
macro_rules! both_dialects {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(Db::new(sage_migrate::Dialect::Postgres).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(Db::new(sage_migrate::Dialect::Sqlite).await).await
            }
        }
    };
}
