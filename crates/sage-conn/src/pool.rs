use std::time::Duration;

use crate::{DurationField, Error};

/// Connection-pool settings. The defaults are the ones SAGE documents for its PostgreSQL
/// store: at most 25 connections, at least 2, idle connections closed after 30 minutes and
/// a health check every minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub max_connections: usize,
    pub min_connections: usize,
    pub max_idle_time: Duration,
    pub health_check_period: Duration,
}

impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            max_connections: 25,
            min_connections: 2,
            max_idle_time: Duration::from_secs(30 * 60),
            health_check_period: Duration::from_secs(60),
        }
    }
}

impl PoolSettings {
    /// Applies one `pool_*` URL parameter (the names pgx uses, so SAGE's URLs carry over).
    /// Returns `false` when `name` is not a pool parameter.
    pub(crate) fn apply_param(&mut self, name: &str, value: &str) -> Result<bool, Error> {
        match name {
            "pool_max_conns" => self.max_connections = parse_count(name, value)?,
            "pool_min_conns" => self.min_connections = parse_count(name, value)?,
            // Zero idle time means "close every idle connection above the minimum at each
            // check"; a zero check period would make the maintenance task's timer panic.
            "pool_max_conn_idle_time" => self.max_idle_time = duration(DurationField::new(name).zero_allowed(), value)?,
            "pool_health_check_period" => self.health_check_period = duration(DurationField::new(name), value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.max_connections == 0 {
            return Err(Error::invalid("pool_max_conns must be at least 1"));
        }
        if self.min_connections > self.max_connections {
            return Err(Error::invalid(format!(
                "pool_min_conns ({}) is larger than pool_max_conns ({})",
                self.min_connections, self.max_connections
            )));
        }
        Ok(())
    }
}

fn duration(field: DurationField<'_>, value: &str) -> Result<Duration, Error> {
    field.parse(value).map_err(|e| Error::invalid(e.to_string()))
}

fn parse_count(name: &str, value: &str) -> Result<usize, Error> {
    value.parse().map_err(|_| Error::invalid(format!("{name} must be a whole number, got {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let p = PoolSettings::default();
        assert_eq!((p.max_connections, p.min_connections), (25, 2));
        assert_eq!(p.max_idle_time, Duration::from_secs(1800));
        assert_eq!(p.health_check_period, Duration::from_secs(60));
    }

    #[test]
    fn durations_parse_with_units() {
        let mut p = PoolSettings::default();
        assert!(p.apply_param("pool_max_conn_idle_time", "90").unwrap());
        assert_eq!(p.max_idle_time, Duration::from_secs(90));
        p.apply_param("pool_health_check_period", "250ms").unwrap();
        assert_eq!(p.health_check_period, Duration::from_millis(250));
        p.apply_param("pool_max_conn_idle_time", "0").unwrap();
        assert_eq!(p.max_idle_time, Duration::ZERO);
        let err = p.apply_param("pool_max_conn_idle_time", "soon").unwrap_err();
        assert!(err.to_string().starts_with("pool_max_conn_idle_time: \"soon\" is not a duration"), "{err}");
    }

    /// A zero period used to reach `tokio::time::interval`, which panics on it.
    #[test]
    fn zero_health_check_period_is_refused() {
        let err = PoolSettings::default().apply_param("pool_health_check_period", "0s").unwrap_err();
        assert!(err.to_string().contains("is zero"), "{err}");
    }
}
