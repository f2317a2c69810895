//! `sage-db check`: connection and server, migration status, schema drift, and tables with
//! row counts and sizes, in one report. Exit 0 when all is well, 1 when something needs
//! attention (pending migrations, drift), 2 when the database cannot be checked.

use std::path::PathBuf;
use std::process::ExitCode;

use sage_migrate::Migrator;
use serde::Serialize;

use crate::cli::{ExpectedArgs, Global, MigrationArgs};
use crate::context::{self, Database};
use crate::{expected, output};

#[derive(Serialize)]
struct Report {
    database: String,
    server: String,
    database_bytes: Option<i64>,
    migrations: sage_migrate::StatusReport,
    schema: SchemaSummary,
    tables: Vec<sage_ops::check::TableFacts>,
}

#[derive(Serialize)]
struct SchemaSummary {
    expected: String,
    clean: bool,
    errors: usize,
    warnings: usize,
    findings: Vec<sage_schema::Finding>,
}

pub async fn run(global: &Global, args: &MigrationArgs, snapshot: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global, true)?;
    let facts = sage_ops::check::inspect(&db.settings.target).await?;
    let set = context::migration_set(args, db.dialect()?)?;
    let mut migrator = Migrator::connect(&db.settings.target, set, context::run_options(args)?).await?;
    let migrations = migrator.status().await?;
    let expected_args = ExpectedArgs { source: args.source.clone(), snapshot, dev_url: None, replay: false };
    let (expected, label) = expected::resolve(&db, &expected_args).await?;
    let expected = sage_schema::in_server_rendering(expected, &db.settings.target).await?;
    let live = sage_schema::live(&db.settings.target).await?;
    let findings = sage_schema::validate(&expected, &live, sage_schema::ValidateOptions::default());
    let errors = findings.iter().filter(|f| f.severity == sage_schema::Severity::Error).count();
    let report = Report {
        database: db.settings.to_string(),
        server: facts.server_version.clone(),
        database_bytes: facts.database_bytes,
        schema: SchemaSummary {
            expected: label,
            clean: errors == 0,
            errors,
            warnings: findings.len() - errors,
            findings,
        },
        migrations,
        tables: facts.tables,
    };
    let attention = report.migrations.pending > 0 || report.migrations.has_errors() || !report.schema.clean;
    if global.json {
        output::json(&report)?;
    } else {
        print_report(&db, &report);
    }
    Ok(if attention { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn print_report(db: &Database, r: &Report) {
    say!("database:    {}", db.describe());
    say!("server:      {} (reachable)", r.server);
    if let Some(bytes) = r.database_bytes {
        say!("size:        {}", human_bytes(bytes));
    }
    let version = r.migrations.version.map_or("none".into(), |v| v.to_string());
    let state =
        if r.migrations.pending == 0 { "up to date".to_string() } else { format!("{} pending", r.migrations.pending) };
    say!("migrations:  version {version}, {state}");
    for f in &r.migrations.findings {
        say!("             {f}");
    }
    let schema = if r.schema.clean && r.schema.warnings == 0 {
        "clean".to_string()
    } else {
        format!("{} error(s), {} warning(s) (details: sage-db schema validate)", r.schema.errors, r.schema.warnings)
    };
    say!("schema:      {schema} against {}", r.schema.expected);
    say!();
    let rows: Vec<Vec<String>> = r
        .tables
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.rows.to_string(),
                t.total_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
                t.index_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(&["TABLE", "ROWS", "SIZE", "INDEXES"], &rows);
}

pub fn human_bytes(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}
