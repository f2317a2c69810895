//! `sage-db database create|drop`: the database itself, as `sqlx database` and `dbmate
//! create/drop` manage it. Both are idempotent; `drop` asks first.

use std::process::ExitCode;

use anyhow::Context as _;
use sage_conn::{quote_ident, PgSettings, SqliteLocation, Target};

use crate::cli::{DatabaseCommand, Global};
use crate::confirm::confirm;
use crate::context::Database;
use crate::output;

pub async fn run(global: &Global, command: DatabaseCommand) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let (action, changed) = match command {
        DatabaseCommand::Create => ("create", create(&db.settings.target).await?),
        DatabaseCommand::Drop { yes, force } => {
            let question = format!("Drop {} and everything in it?", db.describe());
            ("drop", drop(&db.settings.target, || confirm(&question, yes), force).await?)
        }
    };
    if global.json {
        output::json(
            &serde_json::json!({ "database": db.settings.to_string(), "action": action, "changed": changed }),
        )?;
    } else {
        let done = match (action, changed) {
            ("create", true) => "created",
            ("create", false) => "already exists; nothing to do",
            (_, true) => "dropped",
            _ => "does not exist; nothing to do",
        };
        say!("{}: {done}", db.describe());
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(target: &Target) -> anyhow::Result<bool> {
    match target {
        Target::Postgres(pg) => crate::cmd::up::create_missing_database(pg).await,
        Target::Sqlite(SqliteLocation::File(path)) => {
            if path.exists() {
                return Ok(false);
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            // An empty file is an empty SQLite database; only its owner may read it, as for
            // every database file sage-db creates.
            sage_conn::create_private_file(path).with_context(|| format!("cannot create {}", path.display()))?;
            Ok(true)
        }
        Target::Sqlite(_) | Target::Memory => {
            anyhow::bail!("an in-memory database exists only while a process holds it; there is nothing to create")
        }
    }
}

async fn drop(target: &Target, confirmed: impl FnOnce() -> anyhow::Result<()>, force: bool) -> anyhow::Result<bool> {
    match target {
        Target::Postgres(pg) => {
            let admin = maintenance(pg);
            let client = sage_conn::connect(&admin).await.with_context(|| {
                format!("cannot connect to the maintenance database {:?} to drop {:?}", admin.dbname, pg.dbname)
            })?;
            let exists = client
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&pg.dbname])
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot look up database {:?}: {}",
                        pg.dbname,
                        sage_conn::describe_pg_error(&e, None)
                    )
                })?
                .is_some();
            if !exists {
                return Ok(false);
            }
            confirmed()?;
            let mut sql = format!("DROP DATABASE IF EXISTS {}", quote_ident(&pg.dbname));
            if force {
                sql.push_str(" WITH (FORCE)");
            }
            client.batch_execute(&sql).await.map_err(|e| {
                let hint = if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) {
                    " (other sessions are connected; --force ends them first)"
                } else {
                    ""
                };
                anyhow::anyhow!(
                    "cannot drop database {:?}: {}{hint}",
                    pg.dbname,
                    sage_conn::describe_pg_error(&e, None)
                )
            })?;
            Ok(true)
        }
        Target::Sqlite(SqliteLocation::File(path)) => {
            if !path.exists() {
                return Ok(false);
            }
            confirmed()?;
            // The database first: once it is gone, a leftover journal cannot be replayed into
            // anything. Then its journal, WAL and shared-memory files and the migration lock.
            std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
            for suffix in ["-journal", "-wal", "-shm", "-migrate.lock"] {
                let mut side = path.clone().into_os_string();
                side.push(suffix);
                match std::fs::remove_file(&side) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("cannot remove {}", side.to_string_lossy())),
                }
            }
            Ok(true)
        }
        Target::Sqlite(_) | Target::Memory => {
            anyhow::bail!("an in-memory database exists only while a process holds it; there is nothing to drop")
        }
    }
}

/// Where to connect to drop `pg`'s database: "postgres", or "template1" when that is the
/// one being dropped.
fn maintenance(pg: &PgSettings) -> PgSettings {
    pg.with_dbname(if pg.dbname == "postgres" { "template1" } else { "postgres" })
}
