//! The database facts of a `check` report: server version, database size, and per table
//! the exact row count and size on disk.

use serde::Serialize;

use sage_conn::{quote_ident, SqliteLocation, Target};

use crate::Error;

#[derive(Debug, Clone, Serialize)]
pub struct TableFacts {
    pub name: String,
    pub rows: i64,
    /// Table plus indexes and TOAST, in bytes, when the engine reports it.
    pub total_bytes: Option<i64>,
    pub index_bytes: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseFacts {
    pub server_version: String,
    pub database_bytes: Option<i64>,
    pub tables: Vec<TableFacts>,
    /// PostgreSQL: the server's place in its replication topology.
    pub replication: Option<crate::topology::Topology>,
}

/// Reads the facts. Row counts are exact (`count(*)` per table): a check is run by an
/// operator, not on a hot path.
pub async fn inspect(target: &Target) -> Result<DatabaseFacts, Error> {
    match target {
        Target::Postgres(pg) => {
            let client = sage_conn::connect(pg).await?;
            let q = |e: tokio_postgres::Error| Error::database("cannot read database statistics", e);
            let version: String = client.query_one("SHOW server_version", &[]).await.map_err(q)?.get(0);
            let size: i64 =
                client.query_one("SELECT pg_database_size(current_database())", &[]).await.map_err(q)?.get(0);
            let rows = client
                .query(
                    "SELECT n.nspname, c.relname, pg_total_relation_size(c.oid), pg_indexes_size(c.oid) \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
                     ORDER BY 1, 2",
                    &[],
                )
                .await
                .map_err(q)?;
            let mut tables = Vec::new();
            for r in rows {
                let (schema, name): (String, String) = (r.get(0), r.get(1));
                let sql = format!("SELECT count(*) FROM {}.{}", quote_ident(&schema), quote_ident(&name));
                let count: i64 = client
                    .query_one(&sql, &[])
                    .await
                    .map_err(|e| {
                        Error::invalid(format!(
                            "cannot count the rows of {schema}.{name}: {}",
                            sage_conn::describe_pg_error(&e, Some(&sql))
                        ))
                    })?
                    .get(0);
                let label = if schema == "public" { name } else { format!("{schema}.{name}") };
                tables.push(TableFacts {
                    name: label,
                    rows: count,
                    total_bytes: Some(r.get(2)),
                    index_bytes: Some(r.get(3)),
                });
            }
            // A role that cannot read the replication state still gets the rest of the report.
            let replication = match crate::topology::inspect(&client).await {
                Ok(topology) => Some(topology),
                Err(e) => {
                    tracing::warn!(error = %e, "replication state not shown");
                    None
                }
            };
            Ok(DatabaseFacts {
                server_version: format!("PostgreSQL {version}"),
                database_bytes: Some(size),
                tables,
                replication,
            })
        }
        Target::Sqlite(location) => {
            let location = location.clone();
            tokio::task::spawn_blocking(move || sqlite_facts(&location))
                .await
                .map_err(|e| Error::invalid(format!("check failed: {e}")))?
        }
        Target::Memory => Err(Error::invalid("memory:// keeps nothing to check")),
    }
}

fn sqlite_facts(location: &SqliteLocation) -> Result<DatabaseFacts, Error> {
    let conn = match location {
        SqliteLocation::File(path) if !path.exists() => {
            return Err(Error::invalid(format!("{} does not exist", path.display())))
        }
        SqliteLocation::File(path) => rusqlite::Connection::open(path),
        SqliteLocation::InMemory => rusqlite::Connection::open_in_memory(),
    }
    .map_err(|e| Error::database("cannot open the SQLite database", e))?;
    let q = |e: rusqlite::Error| Error::database("cannot read database statistics", e);
    let version: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0)).map_err(q)?;
    let size: i64 = conn
        .query_row("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", [], |r| r.get(0))
        .map_err(q)?;
    // dbstat is compiled into some SQLite builds only; sizes are shown when it is.
    let sizes: std::collections::HashMap<String, i64> = conn
        .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .unwrap_or_default();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(q)?;
    let names: Vec<String> = stmt.query_map([], |r| r.get(0)).and_then(|rows| rows.collect()).map_err(q)?;
    // Each table's indexes, its own and the automatic ones behind UNIQUE and PRIMARY KEY.
    let mut stmt = conn.prepare("SELECT tbl_name, name FROM sqlite_schema WHERE type = 'index'").map_err(q)?;
    let indexes: Vec<(String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).and_then(|rows| rows.collect()).map_err(q)?;
    let mut tables = Vec::new();
    for name in names {
        let count: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", quote_ident(&name)), [], |r| r.get(0)).map_err(q)?;
        // Sizes only where this build has dbstat; a table's total counts its indexes, as on
        // PostgreSQL.
        let (total, index_bytes) = match sizes.get(&name) {
            Some(own) => {
                let index_bytes: i64 =
                    indexes.iter().filter(|(table, _)| *table == name).filter_map(|(_, index)| sizes.get(index)).sum();
                (Some(own + index_bytes), Some(index_bytes))
            }
            None => (None, None),
        };
        tables.push(TableFacts { name, rows: count, total_bytes: total, index_bytes });
    }
    Ok(DatabaseFacts {
        server_version: format!("SQLite {version}"),
        database_bytes: Some(size),
        tables,
        replication: None,
    })
}
