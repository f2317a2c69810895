//! Schemas of PostgreSQL and SQLite databases as plain data.
//!
//! [`live`] reads a database through its catalogs; [`from_migrations`] replays a migration
//! set into a scratch database and reads that, so the expected schema is always what the
//! migrations produce, never a second hand-kept definition. [`validate`] compares two
//! schemas and returns every difference as a [`Finding`]; [`render`] turns a schema into
//! DDL; [`diff`] gives the DDL from one schema to another.
//!
//! ```no_run
//! # async fn demo(target: sage_conn::Target) -> Result<(), sage_schema::Error> {
//! let expected = sage_schema::read_snapshot("migrations/postgres/schema.json".as_ref())?;
//! let actual = sage_schema::live(&target).await?;
//! for finding in sage_schema::validate(&expected, &actual, Default::default()) {
//!     println!("{:?}: {finding}", finding.severity);
//! }
//! # Ok(()) }
//! ```

// Built with neither database driver (both features off) the engine has nothing to run
// against; its types and pure parts stay usable, and the driver-facing parts go unused.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite")),
    allow(dead_code, unused_imports, unused_variables, unreachable_code)
)]

mod compare_objects;
mod diff;
mod diff_objects;
mod error;
mod expected;
pub mod introspect;
mod model;
mod objects;
mod render;
mod render_objects;
mod validate;

pub use diff::{diff, Change, DiffOptions};
pub use error::{Error, ErrorKind};
#[cfg(feature = "postgres")]
pub use expected::Scratch;
pub use expected::{
    apply, from_migrations, in_server_rendering, live, parse_snapshot, prefix_schemas, read_snapshot, snapshot_json,
    snapshot_paths, table_names, write_snapshot,
};
pub use model::*;
pub use objects::*;
pub use render::{render, render_live};
pub use validate::{
    canonical_expression, finding_kinds, ignore_kinds, is_clean, validate, Drift, Finding, Severity, ValidateOptions,
    STRUCTURAL_KINDS,
};
