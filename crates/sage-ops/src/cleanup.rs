//! `cleanup`: expired sessions and nonces (through the store, in batches that skip locked
//! rows), and retention rules for any table, all in bounded batches so no statement holds
//! locks for long.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sage_conn::{quote_ident, DurationField, SqliteLocation, Target};
use serde::{Deserialize, Serialize};

use crate::Error;

/// A retention rule: delete rows of `table` whose `column` is older than `max_age`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// `table` or `schema.table`.
    pub table: String,
    pub column: String,
    /// `90d`, `12h`, `30m`, `1y`.
    pub max_age: String,
    /// Rows per statement (default 5000).
    #[serde(default)]
    pub batch: Option<u32>,
    /// SQLite only: how the column holds time when it is not ISO-8601 text:
    /// `unix_seconds` or `unix_micros`.
    #[serde(default)]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupConfig {
    #[serde(default)]
    pub retention: Vec<RetentionRule>,
}

impl CleanupConfig {
    /// Reads a TOML file with `[[retention]]` tables. Errors name the file and the problem.
    pub fn load(path: &Path) -> Result<CleanupConfig, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
        let config: CleanupConfig =
            toml::from_str(&text).map_err(|e| Error::new(format!("{}: {}", path.display(), e.to_string().trim())))?;
        for (i, rule) in config.retention.iter().enumerate() {
            parse_age(&rule.max_age).map_err(|e| {
                Error::new(format!("{}: retention rule {} ({}): {e}", path.display(), i + 1, rule.table))
            })?;
            if rule.batch == Some(0) {
                return Err(Error::new(format!(
                    "{}: retention rule {} ({}): batch must be at least 1",
                    path.display(),
                    i + 1,
                    rule.table
                )));
            }
        }
        Ok(config)
    }
}

/// A retention age: the project's duration syntax, with a unit required (a bare `30` could
/// as well mean days as seconds) and zero refused (it would match every row).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    DurationField::new("max_age").unit_required().parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    pub table: String,
    pub column: String,
    pub cutoff: String,
    /// Deleted, or with `dry_run`, that would be deleted.
    pub rows: u64,
}

/// Applies one retention rule (or counts, with `dry_run`), calling `progress` after each batch.
pub async fn apply_rule(
    target: &Target,
    rule: &RetentionRule,
    now: DateTime<Utc>,
    dry_run: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<RuleReport, Error> {
    let age = parse_age(&rule.max_age).map_err(Error::new)?;
    let cutoff = sage_conn::checked_before("max_age", now, age).map_err(|e| Error::new(e.to_string()))?;
    let batch = i64::from(rule.batch.unwrap_or(5000));
    let (schema, table) = match rule.table.split_once('.') {
        Some((s, t)) => (Some(s.to_string()), t.to_string()),
        None => (None, rule.table.clone()),
    };
    let qualified = match &schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&table)),
        None => quote_ident(&table),
    };
    let column = quote_ident(&rule.column);
    let mut total = 0u64;
    match target {
        Target::Postgres(pg) => {
            let client = sage_conn::connect(pg).await?;
            let q = |e: tokio_postgres::Error| {
                let detail = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
                Error::new(format!("retention on {}.{}: {detail}", rule.table, rule.column))
            };
            if dry_run {
                let sql = format!("SELECT count(*) FROM {qualified} WHERE {column} < $1");
                total = client.query_one(&sql, &[&cutoff]).await.map_err(q)?.get::<_, i64>(0) as u64;
            } else {
                let sql = format!(
                    "DELETE FROM {qualified} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {qualified} WHERE {column} < $1 LIMIT $2 FOR UPDATE SKIP LOCKED))"
                );
                let statement = client.prepare(&sql).await.map_err(q)?;
                loop {
                    let n = client.execute(&statement, &[&cutoff, &batch]).await.map_err(q)?;
                    total += n;
                    progress(total);
                    if n < batch as u64 {
                        break;
                    }
                }
            }
        }
        Target::Sqlite(SqliteLocation::File(path)) => {
            let (path, unit) = (path.clone(), rule.unit.clone());
            let label = format!("{}.{}", rule.table, rule.column);
            total = tokio::task::spawn_blocking(move || -> Result<u64, Error> {
                let conn = rusqlite::Connection::open(&path).map_err(|e| Error::with("cannot open the SQLite database", e))?;
                conn.busy_timeout(Duration::from_secs(30)).map_err(|e| Error::with("cannot configure SQLite", e))?;
                let q = |e: rusqlite::Error| Error::new(format!("retention on {label}: {e}"));
                let value: rusqlite::types::Value = match unit.as_deref() {
                    Some("unix_seconds") => cutoff.timestamp().into(),
                    Some("unix_micros") => cutoff.timestamp_micros().into(),
                    None | Some("iso8601") => cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into(),
                    Some(other) => return Err(Error::new(format!("retention on {label}: unknown unit {other:?} (unix_seconds, unix_micros or iso8601)"))),
                };
                if dry_run {
                    return conn
                        .query_row(&format!("SELECT count(*) FROM {qualified} WHERE {column} < ?1"), [&value], |r| r.get::<_, i64>(0))
                        .map(|n| n as u64)
                        .map_err(q);
                }
                let sql = format!("DELETE FROM {qualified} WHERE rowid IN (SELECT rowid FROM {qualified} WHERE {column} < ?1 LIMIT ?2)");
                let mut total = 0u64;
                loop {
                    let n = conn.execute(&sql, rusqlite::params![value, batch]).map_err(q)? as u64;
                    total += n;
                    if n < batch as u64 {
                        return Ok(total);
                    }
                }
            })
            .await
            .map_err(|e| Error::new(format!("cleanup failed: {e}")))??;
            progress(total);
        }
        _ => return Err(Error::new("retention rules need a PostgreSQL or SQLite file database")),
    }
    Ok(RuleReport { table: rule.table.clone(), column: rule.column.clone(), cutoff: cutoff.to_rfc3339(), rows: total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_file_and_rule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cleanup.toml");
        std::fs::write(&path, "[[retention]]\ntable = \"audit_log\"\ncolumn = \"created_at\"\nmax_age = \"1y\"\n")
            .unwrap();
        assert_eq!(CleanupConfig::load(&path).unwrap().retention.len(), 1);
        std::fs::write(&path, "[[retention]]\ntable = \"audit_log\"\ncolumn = \"created_at\"\nmax_age = \"soon\"\n")
            .unwrap();
        let err = CleanupConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("cleanup.toml") && err.contains("rule 1") && err.contains("soon"), "{err}");
        std::fs::write(&path, "[[retention]]\ntable = \"t\"\ncolum = \"x\"\nmax_age = \"1d\"\n").unwrap();
        let err = CleanupConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("colum"), "{err}");
    }
}
