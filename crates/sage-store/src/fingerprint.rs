//! Schema validation when a store opens, made cheap: after a clean validation the store
//! records a fingerprint of what it validated (the expected snapshot and the migration
//! history). While that fingerprint is still current, opening skips the catalog queries.
//! `sage-db schema validate` remains the full check for changes made by hand.

#[cfg(feature = "sqlite")]
use sage_conn::SqliteLocation;
use sage_conn::Target;
use sage_migrate::Dialect;

use crate::error::{ErrorKind, Reason, Result, StoreError};

const CREATE: &str =
    "CREATE TABLE IF NOT EXISTS sage_schema_validation (fingerprint TEXT PRIMARY KEY, validated_at TEXT NOT NULL)";

pub(crate) async fn validate_once(target: &Target, dialect: Dialect, version: i64, migrations: usize) -> Result<()> {
    let Some(text) = crate::schema::snapshot(dialect) else { return Ok(()) };
    let expected =
        sage_schema::parse_snapshot(text).map_err(|e| StoreError::new(ErrorKind::Internal, e.to_string()))?;
    let fingerprint = format!("{}:v{version}:n{migrations}", expected.fingerprint());
    if recorded(target, &fingerprint).await.unwrap_or(false) {
        return Ok(());
    }
    let live = sage_schema::live(target).await.map_err(|e| StoreError::new(ErrorKind::Unavailable, e.to_string()))?;
    let findings = sage_schema::validate(&expected, &live, sage_schema::ValidateOptions::default());
    // The store needs its tables, columns, keys, indexes and functions as built; who may
    // use them (grants, owners, row-level security, policies) and comments are the
    // operator's to set, and `sage-db schema validate` reports them.
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == sage_schema::Severity::Error && sage_schema::STRUCTURAL_KINDS.contains(&f.kind))
        .map(|f| f.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(StoreError::configuration(
            Reason::SchemaDiffers { problems: errors.len() },
            format!(
                "the database schema differs from what this build expects ({} problem(s), first: {})",
                errors.len(),
                errors[0]
            ),
        ));
    }
    if let Err(e) = record(target, &fingerprint).await {
        tracing::debug!(error = %e, "could not record the schema fingerprint; the next open validates again");
    }
    Ok(())
}

async fn recorded(target: &Target, fingerprint: &str) -> std::result::Result<bool, String> {
    match target {
        #[cfg(feature = "postgres")]
        Target::Postgres(pg) => {
            let mut client = sage_conn::connect(pg).await.map_err(|e| e.to_string())?;
            // In a transaction, so that a pooler keeps the statement in one server session.
            let tx = client.transaction().await.map_err(|e| e.to_string())?;
            let exists = tx
                .query_opt("SELECT 1 FROM sage_schema_validation WHERE fingerprint = $1", &[&fingerprint])
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            Ok(exists.is_some())
        }
        #[cfg(feature = "sqlite")]
        Target::Sqlite(SqliteLocation::File(path)) => {
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            conn.query_row("SELECT 1 FROM sage_schema_validation WHERE fingerprint = ?1", [fingerprint], |_| Ok(()))
                .map(|_| true)
                .or_else(
                    |e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(false) } else { Err(e.to_string()) },
                )
        }
        _ => Ok(false),
    }
}

async fn record(target: &Target, fingerprint: &str) -> std::result::Result<(), String> {
    let now = chrono::Utc::now().to_rfc3339();
    match target {
        #[cfg(feature = "postgres")]
        Target::Postgres(pg) => {
            let mut client = sage_conn::connect(pg).await.map_err(|e| e.to_string())?;
            client.batch_execute(CREATE).await.map_err(|e| e.to_string())?;
            let tx = client.transaction().await.map_err(|e| e.to_string())?;
            tx.execute(
                "INSERT INTO sage_schema_validation (fingerprint, validated_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&fingerprint, &now],
            )
            .await
            .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())
        }
        #[cfg(feature = "sqlite")]
        Target::Sqlite(SqliteLocation::File(path)) => {
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
            conn.execute_batch(CREATE).map_err(|e| e.to_string())?;
            conn.execute(
                "INSERT OR IGNORE INTO sage_schema_validation (fingerprint, validated_at) VALUES (?1, ?2)",
                [fingerprint, &now],
            )
            .map(drop)
            .map_err(|e| e.to_string())
        }
        _ => Ok(()),
    }
}
