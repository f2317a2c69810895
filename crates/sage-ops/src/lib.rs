//! Operating databases: the facts a `check` report shows (server, sizes, row counts), and,
//! as they land, backup, restore, seeding, cleanup and monitoring. Works on any schema.
//!
//! ```no_run
//! # async fn demo(target: sage_conn::Target) -> Result<(), sage_ops::Error> {
//! let facts = sage_ops::check::inspect(&target).await?;
//! println!("{} on {}", facts.server_version, facts.tables.len());
//! # Ok(()) }
//! ```

pub mod check;
mod error;

pub use error::Error;
