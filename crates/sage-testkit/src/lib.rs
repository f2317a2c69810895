//! Throwaway databases for tests and benchmarks.
//!
//! [`PgCluster::start`] runs `initdb` and `pg_ctl` from the machine's PostgreSQL binaries
//! in a temporary directory on a free loopback port (as the `postgres` user when running as
//! root, because PostgreSQL refuses to run as root) and stops and removes it when dropped.
//! [`database`] gives each test its own fresh database on one cluster per test run: the
//! cluster named by `SAGE_TEST_PG_URL` (which `scripts/test` starts once for the whole
//! suite), or else one started for this process that stops when the process exits.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sage_testkit::Error> {
//! let db = sage_testkit::database().await?;
//! let client = sage_conn::connect(db.settings()).await.expect("connect");
//! client.simple_query("CREATE TABLE t (id int)").await.expect("create");
//! # Ok(()) }
//! ```

mod binaries;
mod bouncer;
mod cluster;
mod contents;
mod database;
mod error;
mod sqlite;
mod standby;

pub use binaries::PgBinaries;
pub use bouncer::PgBouncer;
pub use cluster::{ClusterOptions, PgCluster};
pub use contents::pg_contents;
pub use database::{database, database_created_with, shared_admin, TestDatabase};
pub use error::{Error, ErrorKind};
pub use sqlite::SqliteFile;
