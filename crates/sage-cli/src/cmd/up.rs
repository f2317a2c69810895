//! `sage-db up`: the one command a newcomer runs. Creates the database when it does not
//! exist (the embedded default is `sage.db` in the working directory), applies every
//! pending migration and shows where the database stands. Running it again changes nothing.

use std::process::ExitCode;

use sage_conn::{SqliteLocation, Target};
use sage_migrate::{Migrator, Target as Goal};

use crate::cli::{Global, MigrationArgs};
use crate::cmd::migrate::{print_report, print_status};
use crate::context::{self, Database};
use crate::output;

pub async fn run(global: &Global, args: &MigrationArgs) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let dialect = db.dialect()?;
    let created = match &db.settings.target {
        Target::Sqlite(SqliteLocation::File(path)) => !path.exists(),
        Target::Postgres(pg) if !args.dry_run => create_missing_database(pg).await?,
        _ => false,
    };
    let set = context::migration_set(args, dialect).await?;
    let set_label = context::describe_set(&set);
    let options = context::run_options(args, &set)?;
    let mut migrator = Migrator::connect(db.migration_target(), set, options).await?;
    let report = {
        let line = crate::progress::ProgressLine::start(global);
        migrator.set_progress(line.progress());
        migrator.up(Goal::Latest).await?
    };
    let status = migrator.status().await?;
    let findings = if args.dry_run { None } else { crate::cmd::migrate::post_migrate_validation(&db, args).await? };
    let clean = findings.as_deref().is_none_or(sage_schema::is_clean);
    if global.json {
        output::json(&serde_json::json!({
            "database": db.settings.to_string(),
            "created": created && !args.dry_run,
            "report": report,
            "status": status,
            "validation": findings,
        }))?;
        return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    say!("database:   {}", db.describe());
    if created && !args.dry_run {
        match &db.settings.target {
            Target::Postgres(pg) => say!("            created the PostgreSQL database {:?}", pg.dbname),
            _ => say!("            created a new SQLite database"),
        }
    }
    say!("migrations: {set_label}");
    print_report(&report);
    say!();
    print_status(&status);
    crate::cmd::migrate::print_validation(findings.as_deref());
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Creates the PostgreSQL database `pg` names when the server says it does not exist,
/// connecting to the maintenance database `postgres` as the same role. Returns whether it
/// created it; a role without CREATEDB gets a message that says what to do.
pub(crate) async fn create_missing_database(pg: &sage_conn::PgSettings) -> anyhow::Result<bool> {
    match sage_conn::connect(pg).await {
        Ok(_) => return Ok(false),
        Err(e) if e.is_missing_database() => {}
        Err(e) => return Err(e.into()),
    }
    let admin = pg.with_dbname("postgres");
    let client = sage_conn::connect(&admin).await.map_err(|e| {
        anyhow::anyhow!(
            "database {:?} does not exist, and it cannot be created from the maintenance database \"postgres\": {e}",
            pg.dbname
        )
    })?;
    let sql = format!("CREATE DATABASE {}", sage_conn::quote_ident(&pg.dbname));
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(true),
        // Another process created it in the meantime.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => Ok(false),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => anyhow::bail!(
            "database {:?} does not exist and role {:?} may not create databases; ask an administrator to run \
             CREATE DATABASE {} OWNER {} (or grant the role CREATEDB), then run up again",
            pg.dbname,
            pg.user,
            sage_conn::quote_ident(&pg.dbname),
            sage_conn::quote_ident(&pg.user)
        ),
        Err(e) => Err(anyhow::anyhow!(
            "database {:?} does not exist and creating it failed: {}",
            pg.dbname,
            sage_conn::describe_pg_error(&e, None)
        )),
    }
}
