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
    let db = Database::resolve(global, true)?;
    let dialect = db.dialect()?;
    let created = match &db.settings.target {
        Target::Sqlite(SqliteLocation::File(path)) => !path.exists(),
        _ => false,
    };
    let set = context::migration_set(args, dialect)?;
    let set_label = context::describe_set(&set);
    let mut migrator = Migrator::connect(db.migration_target(), set, context::run_options(args)?).await?;
    let report = migrator.up(Goal::Latest).await?;
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
        say!("            created a new SQLite database");
    }
    say!("migrations: {set_label}");
    print_report(&report);
    say!();
    print_status(&status);
    crate::cmd::migrate::print_validation(findings.as_deref());
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
