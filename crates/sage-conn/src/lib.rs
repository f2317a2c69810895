//! Connection settings for SAGE DB.
//!
//! Every way an operator can name a database ends up here: a `--database-url` flag,
//! `DATABASE_URL`, the `DB_*` variables SAGE documents, the `POSTGRES_*` variables of TMI,
//! Neo and the did:webvh server, and a `.env` file. The result is one [`Settings`] value
//! whose `Display` never shows a password. This is the only crate that reads the
//! environment for connection settings.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sage_conn::Error> {
//! let env = sage_conn::Environment::from_process(None)?;
//! let settings = sage_conn::Settings::resolve(None, &env)?;
//! println!("using {settings}"); // password shown as ***
//! if let sage_conn::Target::Postgres(pg) = &settings.target {
//!     let client = sage_conn::connect(pg).await?;
//!     client.simple_query("SELECT 1").await.ok();
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "postgres")]
mod connect;
mod conninfo;
mod describe;
mod duration;
mod env;
mod error;
mod ident;
#[cfg(feature = "postgres")]
mod pg_pool;
mod pool;
mod pooler;
mod private;
pub mod progress;
mod secret;
mod settings;
#[cfg(feature = "postgres")]
mod tls;

#[cfg(feature = "postgres")]
pub use connect::{connect, connect_listening, connect_with_timeout, Notification};
pub use conninfo::SessionAttrs;
#[cfg(feature = "postgres")]
pub use deadpool_postgres;
#[cfg(feature = "postgres")]
pub use describe::describe_pg_error;
pub use describe::{describe_io_error, is_disk_full};
pub use duration::{
    checked_after, checked_before, format_duration, parse_duration, DurationError, DurationField, MAX_DURATION,
};
pub use env::Environment;
pub use error::{Error, ErrorKind};
pub use ident::quote_ident;
#[cfg(feature = "postgres")]
pub use pg_pool::{open_pool, pool_error};
pub use pool::PoolSettings;
pub use pooler::Pooler;
#[cfg(feature = "postgres")]
pub use pooler::{decide as decide_pooler, detect as detect_pooler};
pub use private::create_private_file;
pub use progress::Progress;
pub use secret::Secret;
pub use settings::{Origin, PgSettings, Settings, SqliteLocation, SslMode, Target};
pub use settings::{NO_POSTGRES, NO_SQLITE};
