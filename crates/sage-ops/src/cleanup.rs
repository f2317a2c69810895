//! `cleanup`: expired sessions and nonces (through the store, in batches that skip locked
//! rows), and retention rules for any table, all in bounded batches so no statement holds
//! locks for long.
//!
//! A retention rule compares a column with a cutoff, and that comparison is only meaningful
//! when the cutoff has the column's type: SQLite orders every integer below every text, so an
//! ISO cutoff against an integer column matches every row. [`check_rules`] therefore looks up
//! each rule's table and column in the catalog and refuses any rule whose type and `unit` do
//! not fit, before a single row is deleted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sage_conn::{quote_ident, DurationField, Progress, SqliteLocation, Target};
use serde::{Deserialize, Serialize};

use crate::Error;

/// How a column that is not a timestamp holds time. There is no default: an integer or text
/// column says which of these it holds, or the rule is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    UnixSeconds,
    UnixMillis,
    UnixMicros,
    /// ISO-8601 text, e.g. `2026-01-31T12:00:00Z`.
    Iso8601,
}

impl TimeUnit {
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::UnixSeconds => "unix_seconds",
            TimeUnit::UnixMillis => "unix_millis",
            TimeUnit::UnixMicros => "unix_micros",
            TimeUnit::Iso8601 => "iso8601",
        }
    }

    fn is_integer(self) -> bool {
        self != TimeUnit::Iso8601
    }

    fn integer_cutoff(self, cutoff: DateTime<Utc>) -> i64 {
        match self {
            TimeUnit::UnixSeconds => cutoff.timestamp(),
            TimeUnit::UnixMillis => cutoff.timestamp_millis(),
            _ => cutoff.timestamp_micros(),
        }
    }
}

const INTEGER_UNITS: &str = "unit = \"unix_seconds\", \"unix_millis\" or \"unix_micros\"";

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
    /// How an integer or text column holds time; required for those, refused for
    /// timestamp and date columns.
    #[serde(default)]
    pub unit: Option<TimeUnit>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupConfig {
    #[serde(default)]
    pub retention: Vec<RetentionRule>,
    /// The file the rules came from, for messages.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl CleanupConfig {
    /// Reads a TOML file with `[[retention]]` tables. Errors name the file and the problem.
    pub fn load(path: &Path) -> Result<CleanupConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
        let mut config: CleanupConfig = toml::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {}", path.display(), e.to_string().trim())))?;
        config.file = Some(path.to_path_buf());
        for (i, rule) in config.retention.iter().enumerate() {
            let bad = |field: &'static str, why: String| Error::RetentionRule {
                file: config.file.clone(),
                rule: i + 1,
                table: rule.table.clone(),
                column: rule.column.clone(),
                field,
                why,
            };
            parse_age(&rule.max_age).map_err(|why| bad("max_age", why))?;
            if rule.batch == Some(0) {
                return Err(bad("batch", "batch must be at least 1".into()));
            }
        }
        Ok(config)
    }

    /// `FILE: retention rule N (table.column)`, the prefix of every message about a rule.
    fn label(&self, index: usize) -> String {
        let rule = &self.retention[index];
        crate::error::rule_label(self.file.as_deref(), index + 1, &rule.table, &rule.column)
    }
}

/// A retention age: the project's duration syntax, with a unit required (a bare `30` could
/// as well mean days as seconds) and zero refused (it would match every row).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    DurationField::new("max_age").unit_required().parse(text).map_err(|e| e.to_string())
}

/// How a checked rule compares its column with the cutoff; chosen from the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// PostgreSQL `timestamp with time zone`.
    Timestamptz,
    /// PostgreSQL `timestamp without time zone`, taken as UTC.
    Timestamp,
    /// PostgreSQL `date`.
    Date,
    /// An integer count of seconds, milliseconds or microseconds since 1970.
    Integer(TimeUnit),
    /// ISO-8601 text, compared as points in time (not as strings, so `T` and space
    /// separators and time zone offsets compare correctly).
    IsoText,
}

/// A rule whose table and column exist and whose type fits its unit, with the names as the
/// catalog spells them. Only [`check_rules`] makes one.
#[derive(Debug, Clone)]
pub struct CheckedRule {
    pub rule: RetentionRule,
    schema: Option<String>,
    table: String,
    column: String,
    comparison: Comparison,
}

impl CheckedRule {
    fn qualified(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.table)),
            None => quote_ident(&self.table),
        }
    }
}

/// What the catalog says about one rule's column.
struct ColumnFacts {
    /// `None` when the table does not exist.
    table: Option<(Option<String>, String)>,
    /// `(name, declared type)`; `None` when the table has no such column.
    column: Option<(String, String)>,
    /// PostgreSQL only: the privileges the current role lacks on the table.
    missing_privileges: Vec<&'static str>,
    /// SQLite only: the storage class of a value that disagrees with the unit, if any.
    stray_value: Option<String>,
    /// For a rule with an integer unit: the column's largest value, to tell a unit that
    /// does not match the stored scale (seconds read as microseconds match every row).
    newest: Option<i64>,
}

/// Checks every rule against the catalog: the table and column exist, the column's type
/// fits the rule's unit, the current role may delete (PostgreSQL), and on SQLite the stored
/// values agree with the unit. Returns every refusal at once, on one line; nothing is
/// deleted by checking.
pub async fn check_rules(target: &Target, config: &CleanupConfig, dry_run: bool) -> Result<Vec<CheckedRule>, Error> {
    if config.retention.is_empty() {
        return Ok(Vec::new());
    }
    let facts = match target {
        Target::Postgres(pg) => {
            let client = sage_conn::connect(pg).await?;
            let mut facts = Vec::new();
            for rule in &config.retention {
                facts.push(pg_facts(&client, rule, dry_run).await?);
            }
            facts
        }
        Target::Sqlite(SqliteLocation::File(path)) => {
            let (path, rules) = (path.clone(), config.retention.clone());
            tokio::task::spawn_blocking(move || sqlite_facts(&path, &rules))
                .await
                .map_err(|e| Error::invalid(format!("checking retention rules failed: {e}")))??
        }
        _ => return Err(Error::invalid("retention rules need a PostgreSQL or SQLite file database")),
    };
    let sqlite = matches!(target, Target::Sqlite(_));
    let mut checked = Vec::new();
    let mut refusals = Vec::new();
    for (i, (rule, facts)) in config.retention.iter().zip(facts).enumerate() {
        match judge(rule, facts, sqlite, dry_run) {
            Ok(c) => checked.push(c),
            Err(reason) => refusals.push(format!("{}: {reason}", config.label(i))),
        }
    }
    if refusals.is_empty() {
        Ok(checked)
    } else {
        Err(Error::invalid(format!("{}; nothing was deleted", refusals.join("; "))))
    }
}

fn judge(rule: &RetentionRule, facts: ColumnFacts, sqlite: bool, dry_run: bool) -> Result<CheckedRule, String> {
    let Some((schema, table)) = facts.table else {
        return Err(format!("table {} does not exist", rule.table));
    };
    let Some((column, declared)) = facts.column else {
        return Err(format!("table {} has no column {}", rule.table, rule.column));
    };
    if !facts.missing_privileges.is_empty() {
        let verb = if dry_run { "count" } else { "delete" };
        return Err(format!(
            "the current role lacks the {} privilege on table {} needed to {verb} rows",
            facts.missing_privileges.join(" and "),
            rule.table
        ));
    }
    let comparison = if sqlite { sqlite_comparison(rule, &declared)? } else { pg_comparison(rule, &declared)? };
    if let Some(found) = facts.stray_value {
        let unit = rule.unit.map(TimeUnit::name).unwrap_or_default();
        return Err(format!(
            "column type {declared:?} with unit = \"{unit}\", but the column holds {found} values, which that unit cannot compare"
        ));
    }
    if let (Comparison::Integer(unit), Some(newest)) = (comparison, facts.newest) {
        plausible_time(unit, newest)?;
    }
    Ok(CheckedRule { rule: rule.clone(), schema, table, column, comparison })
}

/// Refuses a unit under which the column's newest value is not a recent time: before 2000
/// or more than a day ahead means the values are in another unit (seconds read as
/// microseconds put every row in 1970, and the rule would delete them all).
fn plausible_time(unit: TimeUnit, newest: i64) -> Result<(), String> {
    let earliest = DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").expect("a valid date").to_utc();
    let latest = Utc::now() + chrono::Duration::days(1);
    if newest < unit.integer_cutoff(earliest) || newest > unit.integer_cutoff(latest) {
        let scales = [TimeUnit::UnixSeconds, TimeUnit::UnixMillis, TimeUnit::UnixMicros];
        let fits = scales
            .iter()
            .find(|u| newest >= u.integer_cutoff(earliest) && newest <= u.integer_cutoff(latest))
            .map(|u| format!(" (it looks like {})", u.name()))
            .unwrap_or_default();
        return Err(format!(
            "the column's newest value, {newest}, is not a time since 2000 in unit = \"{}\"{fits}; nothing would be safe to delete with this unit",
            unit.name()
        ));
    }
    Ok(())
}

fn pg_comparison(rule: &RetentionRule, type_name: &str) -> Result<Comparison, String> {
    let timestamp = match type_name {
        "timestamp with time zone" => Some(Comparison::Timestamptz),
        "timestamp without time zone" => Some(Comparison::Timestamp),
        "date" => Some(Comparison::Date),
        _ => None,
    };
    if let Some(comparison) = timestamp {
        return match rule.unit {
            None => Ok(comparison),
            Some(unit) => Err(format!(
                "column type {type_name} holds time itself; remove unit = \"{}\" (units are for integer and text columns)",
                unit.name()
            )),
        };
    }
    match (type_name, rule.unit) {
        ("smallint" | "integer" | "bigint", Some(unit)) if unit.is_integer() => Ok(Comparison::Integer(unit)),
        ("smallint" | "integer" | "bigint", _) => {
            Err(format!("column type {type_name} is not a time; say what it counts with {INTEGER_UNITS}"))
        }
        ("text" | "character varying" | "character", Some(TimeUnit::Iso8601)) => Ok(Comparison::IsoText),
        ("text" | "character varying" | "character", _) => {
            Err(format!("column type {type_name} is not a time; if it holds ISO-8601 text, say unit = \"iso8601\""))
        }
        _ => Err(format!(
            "column type {type_name} cannot hold a time a retention rule can compare (timestamp, timestamptz, date, an integer with {INTEGER_UNITS}, or text with unit = \"iso8601\")"
        )),
    }
}

/// SQLite's type affinity of a declared type, by the rules of its documentation (section
/// 3.1 of "Datatypes In SQLite").
fn affinity(declared: &str) -> &'static str {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("INT") {
        "integer"
    } else if ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t)) {
        "text"
    } else if upper.contains("BLOB") || upper.is_empty() {
        "blob"
    } else if ["REAL", "FLOA", "DOUB"].iter().any(|t| upper.contains(t)) {
        "real"
    } else {
        "numeric"
    }
}

fn sqlite_comparison(rule: &RetentionRule, declared: &str) -> Result<Comparison, String> {
    let shown = if declared.is_empty() { "none".to_string() } else { declared.to_string() };
    match (affinity(declared), rule.unit) {
        (_, None) => Err(format!(
            "column type {shown} on SQLite needs an explicit unit ({INTEGER_UNITS} for integers, \"iso8601\" for text)"
        )),
        ("integer" | "numeric", Some(unit)) if unit.is_integer() => Ok(Comparison::Integer(unit)),
        ("text" | "numeric", Some(TimeUnit::Iso8601)) => Ok(Comparison::IsoText),
        ("integer", Some(unit)) => Err(format!(
            "column type {shown} holds integers; unit = \"{}\" is for text (use {INTEGER_UNITS})",
            unit.name()
        )),
        ("text", Some(unit)) => Err(format!(
            "column type {shown} holds text; unit = \"{}\" is for integers (use unit = \"iso8601\")",
            unit.name()
        )),
        _ => Err(format!("column type {shown} cannot hold a time a retention rule can compare")),
    }
}

fn split_table(table: &str) -> (Option<&str>, &str) {
    match table.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, table),
    }
}

async fn pg_facts(client: &tokio_postgres::Client, rule: &RetentionRule, dry_run: bool) -> Result<ColumnFacts, Error> {
    let q = |e: tokio_postgres::Error| {
        Error::invalid(format!(
            "cannot check retention on {}.{}: {}",
            rule.table,
            rule.column,
            sage_conn::describe_pg_error(&e, None)
        ))
    };
    // to_regclass parses a (possibly qualified) name and resolves it through search_path
    // without failing when it does not exist; the name is passed as data, quoted so that
    // upper case and dots inside a name keep their meaning.
    let (schema, table) = split_table(&rule.table);
    let name = match schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(table)),
        None => quote_ident(table),
    };
    let Some(row) = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text, c.oid, \
                    has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'DELETE') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')",
            &[&name],
        )
        .await
        .map_err(q)?
    else {
        return Ok(ColumnFacts {
            table: None,
            column: None,
            missing_privileges: Vec::new(),
            stray_value: None,
            newest: None,
        });
    };
    let oid: u32 = row.get(2);
    let mut missing = Vec::new();
    if !row.get::<_, bool>(3) {
        missing.push("SELECT");
    }
    if !dry_run && !row.get::<_, bool>(4) {
        missing.push("DELETE");
    }
    // A domain over timestamptz compares like timestamptz, so the base type decides.
    let column = client
        .query_opt(
            "SELECT a.attname::text, format_type(CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END, NULL) \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
            &[&oid, &rule.column],
        )
        .await
        .map_err(q)?
        .map(|r| (r.get(0), r.get(1)));
    let (schema, table): (String, String) = (row.get(0), row.get(1));
    let mut newest = None;
    let integer_column = column
        .as_ref()
        .is_some_and(|(_, t): &(String, String)| matches!(t.as_str(), "smallint" | "integer" | "bigint"));
    if missing.is_empty() && integer_column && rule.unit.is_some_and(TimeUnit::is_integer) {
        let (name, _) = column.as_ref().expect("checked above");
        let sql =
            format!("SELECT max({})::bigint FROM {}.{}", quote_ident(name), quote_ident(&schema), quote_ident(&table));
        newest = client.query_one(&sql, &[]).await.map_err(q)?.get(0);
    }
    Ok(ColumnFacts {
        table: Some((Some(schema), table)),
        column,
        missing_privileges: missing,
        stray_value: None,
        newest,
    })
}

fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, Error> {
    // Never create the file: a cleanup of a database that is not there is a mistake to
    // report, not an empty database to clean.
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)
        .map_err(|e| Error::database(format!("cannot open the SQLite database {}", path.display()), e))?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(|e| Error::database("cannot configure SQLite", e))?;
    Ok(conn)
}

fn sqlite_facts(path: &Path, rules: &[RetentionRule]) -> Result<Vec<ColumnFacts>, Error> {
    let conn = open_sqlite(path)?;
    let mut out = Vec::new();
    for rule in rules {
        let q = |e: rusqlite::Error| {
            Error::invalid(format!("cannot check retention on {}.{}: {e}", rule.table, rule.column))
        };
        let (schema, table) = split_table(&rule.table);
        let schema_name = schema.unwrap_or("main");
        let exists: Option<String> = conn
            .query_row(
                "SELECT name FROM pragma_table_list(?1) WHERE schema = ?2 AND type = 'table'",
                [table, schema_name],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })
            .map_err(q)?;
        let Some(table_name) = exists else {
            out.push(ColumnFacts {
                table: None,
                column: None,
                missing_privileges: Vec::new(),
                stray_value: None,
                newest: None,
            });
            continue;
        };
        let column: Option<(String, String)> = conn
            .query_row(
                "SELECT name, type FROM pragma_table_xinfo(?1, ?2) WHERE name = ?3 COLLATE NOCASE",
                [table_name.as_str(), schema_name, rule.column.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })
            .map_err(q)?;
        let mut facts = ColumnFacts {
            table: Some((schema.map(|_| schema_name.to_string()), table_name.clone())),
            column: column.clone(),
            missing_privileges: Vec::new(),
            stray_value: None,
            newest: None,
        };
        // The declared type says what a column should hold; SQLite stores whatever it is
        // given, so one value of another storage class is enough to make the comparison
        // meaningless. Text must also parse as a date.
        if let (Some((name, _)), Some(unit)) = (&column, rule.unit) {
            let qualified = match schema {
                Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&table_name)),
                None => quote_ident(&table_name),
            };
            let col = quote_ident(name);
            let sql = if unit.is_integer() {
                format!("SELECT typeof({col}) FROM {qualified} WHERE {col} IS NOT NULL AND typeof({col}) <> 'integer' LIMIT 1")
            } else {
                format!(
                    "SELECT CASE typeof({col}) WHEN 'text' THEN 'unparsable text' ELSE typeof({col}) END FROM {qualified} \
                     WHERE {col} IS NOT NULL AND (typeof({col}) <> 'text' OR julianday({col}) IS NULL) LIMIT 1"
                )
            };
            facts.stray_value = conn
                .query_row(&sql, [], |r| r.get(0))
                .map(Some)
                .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })
                .map_err(q)?;
            if unit.is_integer() && facts.stray_value.is_none() {
                facts.newest =
                    conn.query_row(&format!("SELECT max({col}) FROM {qualified}"), [], |r| r.get(0)).map_err(q)?;
            }
        }
        out.push(facts);
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    pub table: String,
    pub column: String,
    pub cutoff: String,
    /// Deleted, or with `dry_run`, that would be deleted.
    pub rows: u64,
}

/// Applies one checked retention rule (or counts, with `dry_run`), reporting the rows
/// deleted so far to `progress` after each batch. Each batch is its own statement and commits on its own: a failure part-way
/// keeps the batches already deleted, and running the rule again continues from there.
pub async fn apply_rule(
    target: &Target,
    checked: &CheckedRule,
    now: DateTime<Utc>,
    dry_run: bool,
    progress: &Progress,
) -> Result<RuleReport, Error> {
    let rule = &checked.rule;
    let age = parse_age(&rule.max_age).map_err(Error::invalid)?;
    let cutoff = sage_conn::checked_before("max_age", now, age).map_err(|e| Error::invalid(e.to_string()))?;
    let batch = i64::from(rule.batch.unwrap_or(5000));
    let qualified = checked.qualified();
    let column = quote_ident(&checked.column);
    let label = format!("{}.{}", rule.table, rule.column);
    let mut total = 0u64;
    match target {
        Target::Postgres(pg) => {
            let client = sage_conn::connect(pg).await?;
            let q = |e: tokio_postgres::Error| {
                Error::invalid(format!("retention on {label}: {}", sage_conn::describe_pg_error(&e, None)))
            };
            // The cutoff is bound with the column's own type so that the comparison is
            // between times, whatever the column holds them as.
            let (condition, value): (String, Box<dyn tokio_postgres::types::ToSql + Sync + Send>) = match checked
                .comparison
            {
                Comparison::Timestamptz => (format!("{column} < $1::timestamptz"), Box::new(cutoff)),
                Comparison::Timestamp => (format!("{column} < $1::timestamp"), Box::new(cutoff.naive_utc())),
                Comparison::Date => (format!("{column} < $1::date"), Box::new(cutoff.date_naive())),
                Comparison::Integer(unit) => (format!("{column} < $1::bigint"), Box::new(unit.integer_cutoff(cutoff))),
                Comparison::IsoText => (format!("{column}::timestamptz < $1::timestamptz"), Box::new(cutoff)),
            };
            if dry_run {
                let sql = format!("SELECT count(*) FROM {qualified} WHERE {condition}");
                total = client.query_one(&sql, &[&*value]).await.map_err(q)?.get::<_, i64>(0) as u64;
            } else {
                let sql = format!(
                    "DELETE FROM {qualified} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {qualified} WHERE {condition} LIMIT $2 FOR UPDATE SKIP LOCKED))"
                );
                let statement = client.prepare(&sql).await.map_err(q)?;
                loop {
                    let n = client.execute(&statement, &[&*value, &batch]).await.map_err(q)?;
                    total += n;
                    progress.rows("deleting from", Some(&rule.table), total);
                    if n < batch as u64 {
                        break;
                    }
                }
            }
        }
        Target::Sqlite(SqliteLocation::File(path)) => {
            let (path, comparison, progress, table) =
                (path.clone(), checked.comparison, progress.clone(), rule.table.clone());
            total = tokio::task::spawn_blocking(move || -> Result<u64, Error> {
                let conn = open_sqlite(&path)?;
                let q = |e: rusqlite::Error| Error::invalid(format!("retention on {label}: {e}"));
                let (condition, value): (String, rusqlite::types::Value) = match comparison {
                    Comparison::Integer(unit) => (format!("{column} < ?1"), unit.integer_cutoff(cutoff).into()),
                    Comparison::IsoText => (
                        format!("julianday({column}) < julianday(?1)"),
                        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into(),
                    ),
                    other => {
                        return Err(Error::invalid(format!(
                            "retention on {label}: {other:?} is not a SQLite comparison"
                        )))
                    }
                };
                if dry_run {
                    return conn
                        .query_row(&format!("SELECT count(*) FROM {qualified} WHERE {condition}"), [&value], |r| {
                            r.get::<_, i64>(0)
                        })
                        .map(|n| n as u64)
                        .map_err(q);
                }
                let sql = format!(
                    "DELETE FROM {qualified} WHERE rowid IN (SELECT rowid FROM {qualified} WHERE {condition} LIMIT ?2)"
                );
                let mut total = 0u64;
                loop {
                    let n = conn.execute(&sql, rusqlite::params![value, batch]).map_err(q)? as u64;
                    total += n;
                    progress.rows("deleting from", Some(&table), total);
                    if n < batch as u64 {
                        return Ok(total);
                    }
                }
            })
            .await
            .map_err(|e| Error::invalid(format!("cleanup failed: {e}")))??;
        }
        _ => return Err(Error::invalid("retention rules need a PostgreSQL or SQLite file database")),
    }
    Ok(RuleReport { table: rule.table.clone(), column: rule.column.clone(), cutoff: cutoff.to_rfc3339(), rows: total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integer_unit_must_match_the_scale_of_the_stored_times() {
        let now = Utc::now();
        assert!(plausible_time(TimeUnit::UnixSeconds, now.timestamp()).is_ok());
        assert!(plausible_time(TimeUnit::UnixMicros, now.timestamp_micros()).is_ok());
        let seconds_as_micros = plausible_time(TimeUnit::UnixMicros, now.timestamp()).unwrap_err();
        assert!(seconds_as_micros.contains("looks like unix_seconds"), "{seconds_as_micros}");
        assert!(plausible_time(TimeUnit::UnixSeconds, now.timestamp_millis()).unwrap_err().contains("unix_millis"));
        assert!(plausible_time(TimeUnit::UnixSeconds, 5).is_err());
    }

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
        std::fs::write(
            &path,
            "[[retention]]\ntable = \"t\"\ncolumn = \"x\"\nmax_age = \"1d\"\nunit = \"fortnights\"\n",
        )
        .unwrap();
        let err = CleanupConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("fortnights") && err.contains("unix_millis"), "{err}");
    }

    #[test]
    fn sqlite_affinity_follows_the_documented_rules() {
        for (declared, expected) in [
            ("INTEGER", "integer"),
            ("BIGINT", "integer"),
            ("VARCHAR(40)", "text"),
            ("TEXT", "text"),
            ("", "blob"),
            ("BLOB", "blob"),
            ("DOUBLE", "real"),
            ("DATETIME", "numeric"),
            ("TIMESTAMP", "numeric"),
        ] {
            assert_eq!(affinity(declared), expected, "{declared}");
        }
    }
}
