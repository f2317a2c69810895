//! `monitor`: the monitoring queries of the seed documents that apply to this database, as
//! titled tables. On PostgreSQL: SAGE's session and nonce figures (when its tables exist),
//! sizes, index usage, slow queries (pg_stat_statements), long-running queries,
//! connections, blocking locks, dead tuples and autovacuum. On SQLite: the equivalents
//! SQLite can tell.

use sage_conn::{quote_ident, SqliteLocation, Target};
use serde::Serialize;
use serde_json::Value;

use crate::Error;

/// One titled table. Cells are JSON values: counts, sizes and durations are numbers (sizes
/// in bytes, in columns whose name ends in `(bytes)`), text is text, and unknown is `null`.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Why a section is empty or what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitorReport {
    pub taken_at: String,
    pub sections: Vec<Section>,
}

fn section(title: &str, columns: &[&str]) -> Section {
    Section {
        title: title.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows: Vec::new(),
        note: None,
    }
}

pub async fn monitor(target: &Target) -> Result<MonitorReport, Error> {
    let sections = match target {
        Target::Postgres(pg) => postgres(pg).await?,
        Target::Sqlite(SqliteLocation::File(path)) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || sqlite(&path))
                .await
                .map_err(|e| Error::invalid(format!("monitor failed: {e}")))??
        }
        _ => return Err(Error::invalid("monitor needs a PostgreSQL or SQLite file database")),
    };
    Ok(MonitorReport { taken_at: chrono::Utc::now().to_rfc3339(), sections })
}

/// Runs a query into a section, each cell as a JSON value of its column's type.
async fn fill(client: &tokio_postgres::Client, mut s: Section, sql: &str) -> Section {
    match client.query(sql, &[]).await {
        Ok(rows) => s.rows = rows.iter().map(|r| (0..r.len()).map(|i| cell(r, i)).collect()).collect(),
        Err(e) => {
            s.note = Some(format!(
                "not available: {}",
                e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
            ))
        }
    }
    s
}

fn cell(row: &tokio_postgres::Row, i: usize) -> Value {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    let value = if ty == Type::INT8 {
        row.get::<_, Option<i64>>(i).map(Value::from)
    } else if ty == Type::INT4 {
        row.get::<_, Option<i32>>(i).map(Value::from)
    } else if ty == Type::INT2 {
        row.get::<_, Option<i16>>(i).map(Value::from)
    } else if ty == Type::FLOAT8 {
        row.get::<_, Option<f64>>(i).map(Value::from)
    } else if ty == Type::BOOL {
        row.get::<_, Option<bool>>(i).map(Value::from)
    } else {
        row.get::<_, Option<String>>(i).map(Value::from)
    };
    value.unwrap_or(Value::Null)
}

async fn postgres(pg: &sage_conn::PgSettings) -> Result<Vec<Section>, Error> {
    let client = sage_conn::connect(pg).await?;
    let mut out = Vec::new();
    let has = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .await
                .map(|r| r.get::<_, bool>(0))
                .unwrap_or(false)
        }
    };
    if has("sessions").await && has("nonces").await {
        out.push(
            fill(
                &client,
                section("SAGE", &["active sessions", "expired sessions", "active nonces", "expired nonces"]),
                "SELECT (SELECT count(*) FROM sessions WHERE expires_at > now()), (SELECT count(*) FROM sessions WHERE expires_at <= now()), \
                        (SELECT count(*) FROM nonces WHERE expires_at > now()), (SELECT count(*) FROM nonces WHERE expires_at <= now())",
            )
            .await,
        );
        out.push(
            fill(
                &client,
                section("Sessions by client", &["client", "active sessions"]),
                "SELECT client_did, count(*) FROM sessions WHERE expires_at > now() GROUP BY client_did ORDER BY count(*) DESC LIMIT 10",
            )
            .await,
        );
    }
    out.push(
        fill(
            &client,
            section("Database", &["name", "size (bytes)", "server", "connections", "max connections"]),
            "SELECT current_database()::text, pg_database_size(current_database()), version(), \
                    (SELECT count(*) FROM pg_stat_activity), current_setting('max_connections')::int",
        )
        .await,
    );
    out.push(
        fill(
            &client,
            section("Tables", &["table", "total (bytes)", "data (bytes)", "indexes (bytes)", "rows (estimate)"]),
            "SELECT schemaname || '.' || relname, pg_total_relation_size(relid), pg_relation_size(relid), \
                    pg_indexes_size(relid), n_live_tup \
             FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT 20",
        )
        .await,
    );
    out.push(
        fill(
            &client,
            section("Index usage", &["table", "index", "scans", "size (bytes)"]),
            "SELECT schemaname || '.' || relname, indexrelname::text, idx_scan, pg_relation_size(indexrelid) \
             FROM pg_stat_user_indexes ORDER BY idx_scan DESC, indexrelname LIMIT 20",
        )
        .await,
    );
    let mut unused = fill(
        &client,
        section("Unused indexes", &["table", "index", "size (bytes)"]),
        "SELECT s.schemaname || '.' || s.relname, s.indexrelname::text, pg_relation_size(s.indexrelid) \
         FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid \
         WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary ORDER BY pg_relation_size(s.indexrelid) DESC",
    )
    .await;
    unused.note.get_or_insert_with(|| "never scanned since statistics were last reset; candidates for removal".into());
    out.push(unused);
    let statements: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(false);
    let slow = section("Slow queries", &["calls", "mean ms", "total ms", "query"]);
    if statements {
        out.push(
            fill(
                &client,
                slow,
                "SELECT calls, round(mean_exec_time::numeric, 2)::float8, round(total_exec_time::numeric, 1)::float8, left(regexp_replace(query, '\\s+', ' ', 'g'), 120) \
                 FROM pg_stat_statements ORDER BY mean_exec_time DESC LIMIT 10",
            )
            .await,
        );
    } else {
        out.push(Section {
            note: Some(
                "pg_stat_statements is not installed: add shared_preload_libraries = 'pg_stat_statements' to postgresql.conf, \
                 restart the server, then run CREATE EXTENSION pg_stat_statements in this database"
                    .into(),
            ),
            ..slow
        });
    }
    out.push(
        fill(
            &client,
            section("Long-running queries (over 5 s)", &["pid", "user", "state", "running for (s)", "query"]),
            "SELECT pid, usename::text, state, round(extract(epoch FROM now() - query_start)::numeric, 1)::float8, left(regexp_replace(query, '\\s+', ' ', 'g'), 100) \
             FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid() AND query_start < now() - interval '5 seconds' \
             ORDER BY query_start LIMIT 20",
        )
        .await,
    );
    out.push(
        fill(
            &client,
            section("Connections by state", &["state", "connections"]),
            "SELECT coalesce(state, backend_type), count(*) FROM pg_stat_activity GROUP BY 1 ORDER BY count(*) DESC",
        )
        .await,
    );
    out.push(
        fill(
            &client,
            section("Blocking locks", &["blocked pid", "blocked query", "blocking pid", "blocking query"]),
            "SELECT blocked.pid, left(blocked.query, 60), blocking.pid, left(blocking.query, 60) \
             FROM pg_stat_activity blocked CROSS JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS b(pid) \
             JOIN pg_stat_activity blocking ON blocking.pid = b.pid",
        )
        .await,
    );
    out.push(
        fill(
            &client,
            section(
                "Dead tuples and autovacuum",
                &["table", "live", "dead", "dead %", "last autovacuum", "last autoanalyze"],
            ),
            "SELECT schemaname || '.' || relname, n_live_tup, n_dead_tup, \
                    round(100.0 * n_dead_tup / greatest(n_live_tup + n_dead_tup, 1), 1)::float8, \
                    to_char(last_autovacuum AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                    to_char(last_autoanalyze AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
             FROM pg_stat_user_tables ORDER BY n_dead_tup DESC LIMIT 20",
        )
        .await,
    );
    out.push(replication(&client).await);
    Ok(out)
}

/// The server's role, its standbys and what asynchronous replication means for claims.
async fn replication(client: &tokio_postgres::Client) -> Section {
    let mut s = section("Replication", &["role", "standby", "state", "sync", "replay lag (s)", "replay lag (bytes)"]);
    match crate::topology::inspect(client).await {
        Ok(t) => {
            if t.standbys.is_empty() {
                let delay = t.standby_replay_delay_seconds.map_or(Value::Null, Value::from);
                s.rows.push(vec![t.role.clone().into(), Value::Null, Value::Null, Value::Null, delay, Value::Null]);
            }
            for standby in &t.standbys {
                s.rows.push(vec![
                    t.role.clone().into(),
                    standby.name.clone().into(),
                    standby.state.clone().into(),
                    standby.sync_state.clone().into(),
                    standby.replay_lag_seconds.map_or(Value::Null, Value::from),
                    standby.replay_lag_bytes.map_or(Value::Null, Value::from),
                ]);
            }
            if !t.warnings.is_empty() {
                s.note = Some(t.warnings.join("; "));
            }
        }
        Err(e) => s.note = Some(format!("not available: {e}")),
    }
    s
}

fn sqlite(path: &std::path::Path) -> Result<Vec<Section>, Error> {
    if !path.exists() {
        return Err(Error::invalid(format!("{} does not exist", path.display())));
    }
    let conn = rusqlite::Connection::open(path).map_err(|e| Error::database("cannot open the SQLite database", e))?;
    let q = |e: rusqlite::Error| Error::database("monitoring query failed", e);
    let now = chrono::Utc::now().timestamp_micros();
    let mut out = Vec::new();
    let has = |name: &str| {
        conn.query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", [name], |_| Ok(())).is_ok()
    };
    if has("sessions") && has("nonces") {
        let mut s = section("SAGE", &["active sessions", "expired sessions", "active nonces", "expired nonces"]);
        let counts: (i64, i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM sessions WHERE expires_at > ?1), (SELECT count(*) FROM sessions WHERE expires_at <= ?1), \
                        (SELECT count(*) FROM nonces WHERE expires_at > ?1), (SELECT count(*) FROM nonces WHERE expires_at <= ?1)",
                [now],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(q)?;
        s.rows.push(vec![counts.0.into(), counts.1.into(), counts.2.into(), counts.3.into()]);
        out.push(s);
        let mut s = section("Sessions by client", &["client", "active sessions"]);
        let mut stmt = conn
            .prepare("SELECT client_did, count(*) FROM sessions WHERE expires_at > ?1 GROUP BY client_did ORDER BY count(*) DESC LIMIT 10")
            .map_err(q)?;
        s.rows = stmt
            .query_map([now], |r| Ok(vec![r.get::<_, String>(0)?.into(), r.get::<_, i64>(1)?.into()]))
            .and_then(|r| r.collect())
            .map_err(q)?;
        out.push(s);
    }
    let mut s = section(
        "Database",
        &["file", "size (bytes)", "pages", "free pages", "journal mode", "WAL file (bytes)", "SQLite"],
    );
    let (page_size, pages, free, mode, version): (i64, i64, i64, String, String) = conn
        .query_row(
            "SELECT (SELECT page_size FROM pragma_page_size()), (SELECT page_count FROM pragma_page_count()), \
                    (SELECT freelist_count FROM pragma_freelist_count()), (SELECT journal_mode FROM pragma_journal_mode()), sqlite_version()",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .map_err(q)?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_size = std::fs::metadata(std::path::PathBuf::from(wal)).map_or(Value::Null, |m| m.len().into());
    s.rows.push(vec![
        path.display().to_string().into(),
        (page_size * pages).into(),
        pages.into(),
        free.into(),
        mode.into(),
        wal_size,
        version.into(),
    ]);
    out.push(s);
    let sizes: std::collections::HashMap<String, i64> = conn
        .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .unwrap_or_default();
    let mut s = section("Tables", &["table", "rows", "size (bytes)"]);
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(q)?;
    let names: Vec<String> = stmt.query_map([], |r| r.get(0)).and_then(|r| r.collect()).map_err(q)?;
    for name in names {
        let rows: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", quote_ident(&name)), [], |r| r.get(0)).map_err(q)?;
        let size = sizes.get(&name).map_or(Value::Null, |b| (*b).into());
        s.rows.push(vec![name.into(), rows.into(), size]);
    }
    if sizes.is_empty() {
        s.note = Some("this SQLite build has no dbstat table, so per-table sizes are not shown".into());
    }
    out.push(s);
    let mut s = section("Indexes", &["table", "index", "size (bytes)"]);
    let mut stmt = conn
        .prepare("SELECT tbl_name, name FROM sqlite_schema WHERE type = 'index' ORDER BY tbl_name, name")
        .map_err(q)?;
    s.rows = stmt
        .query_map([], |r| {
            let name: String = r.get(1)?;
            let size = sizes.get(&name).map_or(Value::Null, |b| (*b).into());
            Ok(vec![r.get::<_, String>(0)?.into(), name.into(), size])
        })
        .and_then(|r| r.collect())
        .map_err(q)?;
    out.push(s);
    out.push(Section {
        note: Some("SQLite keeps no query statistics; inspect a slow statement with EXPLAIN QUERY PLAN".into()),
        ..section("Slow queries", &[])
    });
    Ok(out)
}
