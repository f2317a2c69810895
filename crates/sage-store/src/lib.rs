//! SAGE's session, nonce and DID storage.
//!
//! One contract ([`SessionStore`], [`NonceStore`], [`DidStore`], and [`Store::accept`]
//! for a message's nonce and session together) over PostgreSQL (tokio-postgres, pooled,
//! prepared statements), SQLite (rusqlite, WAL, off the async runtime's threads) and
//! memory, chosen at run time from a URL. Nonce claims are atomic: of any number of
//! concurrent claims of one nonce exactly one is fresh. Session key material is sealed with
//! XChaCha20-Poly1305 before it reaches a database, bound to its session id. Expiry is
//! decided by one rule, with one clock ([`Store::now`]), in every backend.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sage_store::StoreError> {
//! use sage_store::Store;
//! let store = Store::open_url("memory://").await?; // or postgres://…, sqlite://sage.db
//! let expires = store.now() + sage_store::chrono::Duration::minutes(5);
//! store.nonces().claim("q83vEjRWeJASNFZ4kBI0Vg", None, expires).await?; // fresh
//! assert!(store.nonces().claim("q83vEjRWeJASNFZ4kBI0Vg", None, expires).await.unwrap_err().is_replayed());
//! # Ok(()) }
//! ```
//!
//! # Runtimes
//! A store may be used from any Tokio runtime and any thread for its whole life, whichever
//! runtime opened it. A PostgreSQL store runs its connections, pool maintenance and claim
//! batcher on a small runtime of its own (two worker threads), stopped when the last clone
//! of the store is dropped. A SQLite store runs its statements on the calling runtime's
//! blocking threads and its claim writer on a thread of its own; called outside any Tokio
//! runtime it answers with an error that says so. The memory store needs no runtime.
//!
//! # Cargo features
//! Each database backend is a feature, both on by default; the memory store is always
//! there. `postgres` brings tokio-postgres, a deadpool pool and rustls; `sqlite` brings
//! rusqlite with SQLite compiled in. A service that needs one backend leaves the other out
//! (`default-features = false, features = ["sqlite"]`) and does not build its
//! dependencies. Opening a URL whose backend was left out fails with an
//! [`ErrorKind::Configuration`] error that names the missing feature (a `postgres://` URL
//! already fails to parse, since its parser is part of the PostgreSQL support).
//!
//! # Errors
//! Every error has an [`ErrorKind`], the same on every backend, with the HTTP status a
//! service answers it with ([`ErrorKind::http_status`]) and whether a retry may help
//! ([`StoreError::is_retryable`]). Messages are for the operator; show clients
//! [`StoreError::client_message`]: an outage message names the database's host and port.
//!
//! # Environment
//! The library reads no environment variables and no `.env` file unless asked:
//! [`StoreBuilder::keys_from_environment`] reads `SAGE_SESSION_KEY` or
//! `SAGE_SESSION_KEY_FILE` from the process environment; [`Environment::from_process`]
//! (what the `sage-db` command uses) also reads `./.env`.
//!
//! # Where to start
//! [`Store::open_url`] or [`Store::builder`] opens a store; [`Store::accept`] is the call
//! every message makes; [`SessionStore`], [`NonceStore`] and [`DidStore`] are the contract
//! (bring them into scope with [`prelude`]); [`Store::render_metrics`] serves `/metrics`.
//! `examples/relay` in the repository is a whole axum service built on this crate alone.
//!
//! This crate also owns SAGE's schema: its migrations for PostgreSQL and SQLite are compiled
//! in and served by [`migrations`].

#![deny(missing_docs)]

mod backend;
mod builder;
mod clock;
mod contract;
mod error;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod fingerprint;
pub mod keys;
pub mod metrics;
mod model;
mod schema;
mod store;
pub mod validate;

pub use builder::StoreBuilder;
pub use clock::{Clock, ManualClock, SystemClock};
pub use contract::{DidStore, NonceStore, SessionStore};
pub use error::{ErrorKind, Reason, Result, SharedSource, StoreError};
pub use keys::{KeyRing, KeySource};
pub use model::{
    new_session_id, Claim, DidRecord, KeyType, NewSession, NonceClaim, Page, Session, SessionKey, SessionUpdate,
};
pub use schema::{migrations, snapshot, SCHEMA_VERSION_POSTGRES, SCHEMA_VERSION_SQLITE};
pub use store::{Dids, Nonces, OpenOptions, ReadReplica, RotationReport, Sessions, Store, CLEANUP_BATCH};

/// The date and time types of this crate's API.
pub use chrono;

/// The store traits, for code that holds a store as `Arc<dyn SessionStore>` and the like.
pub mod prelude {
    pub use crate::{DidStore, NonceStore, SessionStore};
}

/// Connection settings, re-exported so that a store can be opened with this crate alone.
pub use sage_conn::{Environment, PgSettings, PoolSettings, Settings, SqliteLocation, SslMode, Target};

/// The README's Rust examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
