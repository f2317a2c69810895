//! Opening a store from a URL in one call, with defaults per backend.

use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{ErrorKind, Result, StoreError};
use crate::keys::KeySource;
use crate::store::{OpenOptions, Store};

/// Opens a [`Store`] from a database URL; made by [`Store::builder`].
///
/// Defaults per backend, each of which a setter overrides:
///
/// | URL | keys | migrate |
/// |---|---|---|
/// | `postgres://…` | none: set [`keys`](StoreBuilder::keys) or [`keys_from_environment`](StoreBuilder::keys_from_environment), or opening refuses | no: production databases are migrated deliberately |
/// | `sqlite://path.db` | the key file `path.db.key`, created (mode 0600) on first use | yes |
/// | `sqlite::memory:`, `memory://` | a random key that lives as long as the store | yes |
///
/// Nothing is read from the environment or from a `.env` file unless
/// [`keys_from_environment`](StoreBuilder::keys_from_environment) asks for it.
///
/// ```no_run
/// # async fn demo() -> Result<(), sage_store::StoreError> {
/// let store = sage_store::Store::builder("postgres://sage@db.internal/sage?sslmode=verify-full")
///     .keys_from_environment() // SAGE_SESSION_KEY or SAGE_SESSION_KEY_FILE
///     .max_connections(16)
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StoreBuilder {
    url: String,
    keys: Option<KeySource>,
    keys_from_environment: bool,
    migrate: Option<bool>,
    clock: Option<Arc<dyn Clock>>,
    max_connections: Option<usize>,
    min_connections: Option<usize>,
}

impl StoreBuilder {
    pub(crate) fn new(url: impl Into<String>) -> StoreBuilder {
        StoreBuilder {
            url: url.into(),
            keys: None,
            keys_from_environment: false,
            migrate: None,
            clock: None,
            max_connections: None,
            min_connections: None,
        }
    }

    /// Where the session-key encryption keys come from.
    pub fn keys(mut self, keys: KeySource) -> StoreBuilder {
        self.keys = Some(keys);
        self
    }

    /// Takes the keys from the process environment: `SAGE_SESSION_KEY` (base64 keys, comma
    /// separated, the last one current) or `SAGE_SESSION_KEY_FILE` (a key file). When
    /// neither is set, the backend's default applies. Only the process environment is
    /// read, never a `.env` file.
    pub fn keys_from_environment(mut self) -> StoreBuilder {
        self.keys_from_environment = true;
        self
    }

    /// Whether to apply SAGE's pending migrations before opening.
    pub fn migrate(mut self, migrate: bool) -> StoreBuilder {
        self.migrate = Some(migrate);
        self
    }

    /// The clock that decides expiry, e.g. a [`crate::ManualClock`] in tests.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> StoreBuilder {
        self.clock = Some(clock);
        self
    }

    /// PostgreSQL: the most connections the pool opens (default 25, or `pool_max_conns`
    /// in the URL).
    pub fn max_connections(mut self, n: usize) -> StoreBuilder {
        self.max_connections = Some(n);
        self
    }

    /// PostgreSQL: connections kept open while idle (default 2, or `pool_min_conns` in
    /// the URL).
    pub fn min_connections(mut self, n: usize) -> StoreBuilder {
        self.min_connections = Some(n);
        self
    }

    /// The target and options this builder opens, without opening.
    pub fn resolve(&self) -> Result<(sage_conn::Target, OpenOptions)> {
        let settings = sage_conn::Settings::parse_url("the database URL", &self.url, sage_conn::Origin::Flag)?;
        let mut target = settings.target;
        if let sage_conn::Target::Postgres(pg) = &mut target {
            if let Some(n) = self.max_connections {
                pg.pool.max_connections = n;
            }
            if let Some(n) = self.min_connections {
                pg.pool.min_connections = n;
            }
            if pg.pool.max_connections == 0 || pg.pool.min_connections > pg.pool.max_connections {
                return Err(StoreError::new(
                    ErrorKind::Configuration,
                    format!(
                        "pool limits: at least 1 and at least the minimum ({}) connections are needed, got {}",
                        pg.pool.min_connections, pg.pool.max_connections
                    ),
                ));
            }
        }
        let env = if self.keys_from_environment {
            sage_conn::Environment::from_pairs(std::env::vars())
        } else {
            sage_conn::Environment::default()
        };
        let mut options = OpenOptions::defaults_for(&target, &env);
        if let Some(keys) = &self.keys {
            options.keys = keys.clone();
        }
        if let Some(migrate) = self.migrate {
            options.migrate = migrate;
        }
        if let Some(clock) = &self.clock {
            options.clock = clock.clone();
        }
        Ok((target, options))
    }

    /// Opens the store.
    pub async fn open(self) -> Result<Store> {
        let (target, options) = self.resolve()?;
        Store::open(&target, options).await
    }
}
