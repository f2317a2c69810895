//! SAGE's session, nonce and DID storage.
//!
//! One contract ([`SessionStore`], [`NonceStore`], [`DidStore`]) over PostgreSQL
//! (tokio-postgres, pooled, prepared statements), SQLite (rusqlite, WAL, off the async
//! runtime's threads) and memory, chosen at run time from a URL. Nonce claims are atomic:
//! of any number of concurrent claims of one nonce exactly one is fresh. Session key
//! material is sealed with XChaCha20-Poly1305 before it reaches a database, bound to its
//! session id. Expiry is decided by one rule, with one clock, in every backend.
//!
//! This crate also owns SAGE's schema: its migrations for PostgreSQL and SQLite are compiled
//! in and served by [`migrations`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), sage_store::StoreError> {
//! use sage_store::{NonceStore, OpenOptions, Store};
//! let env = sage_conn::Environment::from_process(None)?;
//! let settings = sage_conn::Settings::resolve(None, &env)?; // sqlite://sage.db by default
//! let store = Store::open(&settings.target, OpenOptions::defaults_for(&settings.target, &env)).await?;
//! let expires = chrono::Utc::now() + chrono::Duration::minutes(5);
//! store.nonces().claim("q83vEjRWeJASNFZ4kBI0Vg", None, expires).await?; // fresh
//! assert!(store.nonces().claim("q83vEjRWeJASNFZ4kBI0Vg", None, expires).await.unwrap_err().is_replayed());
//! # Ok(()) }
//! ```

mod backend;
mod clock;
mod contract;
mod error;
mod fingerprint;
pub mod keys;
pub mod metrics;
mod model;
mod schema;
mod store;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use contract::{DidStore, NonceStore, SessionStore};
pub use error::{ErrorKind, Result, StoreError};
pub use keys::{KeyRing, KeySource};
pub use model::{Claim, DidRecord, KeyType, NewSession, NonceClaim, Page, Session, SessionKey, SessionUpdate};
pub use schema::{migrations, snapshot, SCHEMA_VERSION_POSTGRES, SCHEMA_VERSION_SQLITE};
pub use store::{Dids, Nonces, OpenOptions, RotationReport, Sessions, Store, CLEANUP_BATCH};
