//! SAGE's session, nonce and DID storage.
//!
//! This crate owns SAGE's schema: its migrations for PostgreSQL and SQLite are compiled in
//! and served by [`migrations`].
//!
//! ```no_run
//! let set = sage_store::migrations(sage_migrate::Dialect::Sqlite);
//! assert!(set.problems.is_empty());
//! ```

mod schema;

pub use schema::{migrations, SCHEMA_VERSION_POSTGRES, SCHEMA_VERSION_SQLITE};
