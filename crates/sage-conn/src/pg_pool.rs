//! A pool of PostgreSQL connections with the settings of [`PoolSettings`].

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::connect::{describe, driver_config, place};
use crate::{tls, Error, ErrorKind, PgSettings, SslMode};

/// Opens a pool, checks that the server answers, warms up `min_connections` connections and
/// starts a background task that, every `health_check_period`, drops connections that died
/// or sat idle longer than `max_idle_time` (keeping at least `min_connections`).
pub async fn open_pool(settings: &PgSettings) -> Result<Pool, Error> {
    let config = driver_config(settings, settings.connect_timeout);
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = if settings.sslmode == SslMode::Disable {
        Manager::from_config(config, tokio_postgres::NoTls, manager_config)
    } else {
        let connector = tls::connector(settings.sslmode, settings.sslrootcert.as_deref())?;
        Manager::from_config(config, connector, manager_config)
    };
    let pool_settings = &settings.pool;
    let pool = Pool::builder(manager)
        .max_size(pool_settings.max_connections)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(settings.connect_timeout))
        .wait_timeout(Some(settings.connect_timeout))
        .build()
        .map_err(|e| Error::new(ErrorKind::InvalidSettings, format!("cannot build the connection pool: {e}")))?;
    // The first connection tells whether the server is there at all, with the same clear
    // message a single connection gives.
    let first = pool.get().await.map_err(|e| pool_error(settings, e))?;
    let mut warm = vec![first];
    for _ in 1..pool_settings.min_connections {
        match pool.get().await {
            Ok(client) => warm.push(client),
            Err(e) => {
                tracing::warn!(error = %e, "could not open every minimum pool connection");
                break;
            }
        }
    }
    drop(warm);
    spawn_maintenance(
        &pool,
        pool_settings.min_connections,
        pool_settings.max_idle_time,
        pool_settings.health_check_period,
    );
    Ok(pool)
}

fn spawn_maintenance(pool: &Pool, min: usize, max_idle: Duration, period: Duration) {
    let weak = pool.weak();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(pool) = weak.upgrade() else { return };
            if pool.is_closed() {
                return;
            }
            let mut keep = pool.status().size;
            pool.retain(|client, metrics| {
                let dead = client.is_closed();
                let idle = metrics.last_used() > max_idle && keep > min;
                if dead || idle {
                    keep = keep.saturating_sub(1);
                    return false;
                }
                true
            });
        }
    });
}

/// Turns a pool error into the same message a direct connection would give.
pub fn pool_error(settings: &PgSettings, e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => describe(settings, &place(settings), e),
        deadpool_postgres::PoolError::Timeout(_) => Error::new(
            ErrorKind::Unreachable,
            format!(
                "no connection to {} became available within {}s",
                place(settings),
                settings.connect_timeout.as_secs()
            ),
        ),
        other => Error::new(ErrorKind::Unreachable, format!("connection pool for {}: {other}", place(settings))),
    }
}
