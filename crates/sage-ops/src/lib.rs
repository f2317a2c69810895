//! Operating databases: the facts a `check` report shows (server, sizes, row counts), and,
//! as they land, backup, restore, seeding, cleanup and monitoring. Works on any schema.
//!
//! ```no_run
//! # async fn demo(target: sage_conn::Target) -> Result<(), sage_ops::Error> {
//! let facts = sage_ops::check::inspect(&target).await?;
//! println!("{} on {}", facts.server_version, facts.tables.len());
//! # Ok(()) }
//! ```

pub mod backup;
pub mod bench;
mod blocking;
pub mod check;
pub mod cleanup;
pub mod dump;
mod error;
pub mod manifest;
pub mod monitor;
pub mod restore;
pub mod roles;
pub mod seed;
pub mod serve;
mod sink;
pub mod tools;
pub mod topology;
mod units;

pub use age::secrecy::SecretString;
pub use error::{Error, ErrorKind};
pub use sink::{Decryption, Encryption};
pub use units::format_bytes;
