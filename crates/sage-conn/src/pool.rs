use std::time::Duration;

use crate::Error;

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
            "pool_max_conn_idle_time" => self.max_idle_time = parse_duration(name, value)?,
            "pool_health_check_period" => self.health_check_period = parse_duration(name, value)?,
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

fn parse_count(name: &str, value: &str) -> Result<usize, Error> {
    value.parse().map_err(|_| Error::invalid(format!("{name} must be a whole number, got {value:?}")))
}

/// Parses `90s`, `30m`, `1h`, `250ms` or a bare number of seconds.
pub(crate) fn parse_duration(name: &str, value: &str) -> Result<Duration, Error> {
    let bad = || Error::invalid(format!("{name} must be a duration such as 30s, 5m, 1h or 250ms, got {value:?}"));
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let amount: u64 = digits.parse().map_err(|_| bad())?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(amount),
        "ms" => Duration::from_millis(amount),
        "m" | "min" => Duration::from_secs(amount * 60),
        "h" => Duration::from_secs(amount * 3600),
        _ => return Err(bad()),
    };
    Ok(duration)
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
        assert_eq!(parse_duration("x", "90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("x", "5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("x", "250ms").unwrap(), Duration::from_millis(250));
        let err = parse_duration("pool_max_conn_idle_time", "soon").unwrap_err();
        assert!(err.to_string().contains("pool_max_conn_idle_time"));
    }
}
