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
    #[serde(skip_serializing_if = "Option::is_none")]
    replication: Option<sage_ops::topology::Topology>,
}

#[derive(Serialize)]
struct SchemaSummary {
    expected: String,
    clean: bool,
    errors: usize,
    warnings: usize,
    findings: Vec<sage_schema::Finding>,
}

pub async fn run(
    global: &Global,
    args: &MigrationArgs,
    snapshot: Option<PathBuf>,
    ignore: &[String],
) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let facts = sage_ops::check::inspect(&db.settings.target).await?;
    let set = context::migration_set(args, db.dialect()?).await?;
    let options = context::run_options(args, &set)?;
    let mut migrator = Migrator::connect(db.migration_target(), set, options).await?;
    let migrations = migrator.status().await?;
    let expected_args = ExpectedArgs { source: args.source.clone(), snapshot, dev_url: None, replay: false };
    let (expected, label) = expected::resolve(&db, &expected_args).await?;
    let expected = sage_schema::in_server_rendering(expected, &db.settings.target).await?;
    let live = sage_schema::live(&db.settings.target).await?;
    let findings = sage_schema::validate(&expected, &live, sage_schema::ValidateOptions::default());
    let findings = sage_schema::ignore_kinds(findings, ignore)?;
    let errors = findings.iter().filter(|f| f.severity == sage_schema::Severity::Error).count();
    let warnings = findings.iter().filter(|f| f.severity == sage_schema::Severity::Warning).count();
    let report = Report {
        database: db.settings.to_string(),
        server: facts.server_version.clone(),
        database_bytes: facts.database_bytes,
        schema: SchemaSummary { expected: label, clean: errors == 0, errors, warnings, findings },
        migrations,
        tables: facts.tables,
        replication: facts.replication,
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
        say!("size:        {}", sage_ops::format_bytes(bytes));
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
    if let Some(t) = &r.replication {
        say!("replication: {}", describe_topology(t));
        for warning in &t.warnings {
            say!("warning:     {warning}");
        }
    }
    say!();
    let rows: Vec<Vec<String>> = r
        .tables
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.rows.to_string(),
                t.total_bytes.map(sage_ops::format_bytes).unwrap_or_else(|| "-".into()),
                t.index_bytes.map(sage_ops::format_bytes).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(&["TABLE", "ROWS", "SIZE", "INDEXES"], &rows);
}

/// `primary, 2 standbys: a (streaming, sync, replay lag 0.01 s), b (…)`.
fn describe_topology(t: &sage_ops::topology::Topology) -> String {
    if t.role == "standby" {
        let delay =
            t.standby_replay_delay_seconds.map(|s| format!(", last replayed commit {s:.2} s ago")).unwrap_or_default();
        return format!("standby{delay}");
    }
    if t.standbys.is_empty() {
        return "primary, no standbys".to_string();
    }
    let standbys: Vec<String> = t
        .standbys
        .iter()
        .map(|s| {
            let name = if s.name.is_empty() { "(unnamed)" } else { &s.name };
            let lag = s.replay_lag_seconds.map(|l| format!(", replay lag {l:.2} s")).unwrap_or_default();
            format!("{name} ({}, {}{lag})", s.state, s.sync_state)
        })
        .collect();
    format!("primary, {} standby(s): {}", t.standbys.len(), standbys.join(", "))
}
