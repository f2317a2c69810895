//! `sage-db migrate …`

use std::process::ExitCode;

use anyhow::bail;
use sage_conn::{SqliteLocation, Target};
use sage_migrate::{Migrator, Report, Severity, Target as Goal};

use crate::cli::{Global, MigrateCommand, MigrationArgs};
use crate::confirm::confirm;
use crate::context::{self, Database};
use crate::output;
use crate::progress::ProgressLine;

pub async fn run(global: &Global, command: MigrateCommand) -> anyhow::Result<ExitCode> {
    match command {
        MigrateCommand::Up { args, steps, to } => {
            let args = MigrationArgs::from(&args);
            let target = match (steps, to) {
                (Some(n), _) => Goal::Steps(n),
                (_, Some(v)) => Goal::Version(v),
                _ => Goal::Latest,
            };
            let mut m = Session::open(global, &args).await?;
            let report = {
                let line = ProgressLine::start(global);
                m.migrator.set_progress(line.progress());
                up_adopting(&mut m, &args, target).await?
            };
            // The JSON has one shape whatever the goal: `validation` is null when none ran.
            if args.dry_run || target != Goal::Latest {
                return m.finish_with_validation(global, &report, None);
            }
            let drift = post_migrate_validation(&m.db, &args).await?;
            m.finish_with_validation(global, &report, drift)
        }
        MigrateCommand::Down { args, steps, to, all, yes } => {
            let args = MigrationArgs::from(&args).answering(yes);
            let target = match (steps, to, all) {
                (_, _, true) => Goal::Latest,
                (_, Some(v), _) => Goal::Version(v),
                (Some(n), _, _) => Goal::Steps(n),
                _ => Goal::Steps(1),
            };
            let mut m = Session::open(global, &args).await?;
            if !args.dry_run {
                m.confirm_reverts(&args, |mig| Box::pin(mig.down(target))).await?;
            }
            let report = {
                let line = ProgressLine::start(global);
                m.migrator.set_progress(line.progress());
                m.migrator.down(target).await?
            };
            m.finish(global, &report)
        }
        MigrateCommand::Goto { args, version, yes } => {
            let args = MigrationArgs::from(&args).answering(yes);
            let mut m = Session::open(global, &args).await?;
            if !args.dry_run {
                m.confirm_reverts(&args, |mig| Box::pin(mig.goto(version))).await?;
            }
            let report = {
                let line = ProgressLine::start(global);
                m.migrator.set_progress(line.progress());
                m.migrator.goto(version).await?
            };
            m.finish(global, &report)
        }
        MigrateCommand::Force { args, version } => {
            let args = MigrationArgs::from(&args);
            let mut m = Session::open(global, &args).await?;
            let report = m.migrator.force(version).await?;
            m.finish(global, &report)
        }
        MigrateCommand::Adopt { args, dev_url } => adopt(global, &MigrationArgs::from(&args), dev_url.as_deref()).await,
        MigrateCommand::Baseline { args, version } => {
            let args = MigrationArgs::from(&args);
            let mut m = Session::open(global, &args).await?;
            let report = m.migrator.baseline(version).await?;
            m.finish(global, &report)
        }
        MigrateCommand::Repair { args } => {
            let args = MigrationArgs::from(&args);
            let mut m = Session::open(global, &args).await?;
            let report = m.migrator.repair().await?;
            m.finish(global, &report)
        }
        MigrateCommand::Status { args, exit_code } => {
            let args = MigrationArgs::from(&args);
            let mut m = Session::open_read_only(global, &args).await?;
            let status = m.migrator.status().await?;
            if global.json {
                output::json(&status)?;
            } else {
                m.header();
                print_status(&status);
            }
            let attention = status.pending > 0 || status.has_errors();
            Ok(if exit_code && attention { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        MigrateCommand::Version { args } => {
            let args = MigrationArgs::from(&args);
            let mut m = Session::open_read_only(global, &args).await?;
            let status = m.migrator.status().await?;
            let partial = status.migrations.iter().any(|e| e.state == sage_migrate::MigrationState::Partial);
            let dirty = status.peer_dirty();
            if global.json {
                output::json(&serde_json::json!({
                    "version": status.version,
                    "partial": partial,
                    "dirty": dirty.is_some(),
                    "dirty_reason": dirty.map(|f| f.message.clone()),
                }))?;
            } else if let Some(f) = dirty {
                let v = status.version.map_or("none".to_string(), |v| v.to_string());
                say!("{v} (dirty: {})", f.message);
            } else {
                match status.version {
                    Some(v) if partial => {
                        say!("{v} (a no-transaction migration stopped part-way; `sage-db migrate up` resumes it)")
                    }
                    Some(v) => say!("{v}"),
                    None => say!("none"),
                }
            }
            Ok(if dirty.is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        MigrateCommand::Validate { args } => {
            let args = MigrationArgs::from(&args);
            let mut m = Session::open_read_only(global, &args).await?;
            let status = m.migrator.status().await?;
            if global.json {
                output::json(&serde_json::json!({ "valid": !status.has_errors(), "findings": status.findings }))?;
            } else if status.findings.is_empty() {
                say!("ok: {} migrations, files and history agree", status.migrations.len());
            } else {
                print_findings(&status.findings);
            }
            Ok(if status.has_errors() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        MigrateCommand::Create { source, dry_run, name } => create(global, source.as_deref(), dry_run, &name).await,
    }
}

/// A connected migrator plus what the header lines show.
struct Session {
    db: Database,
    set_label: String,
    migrator: Migrator,
    /// The SQLite file does not exist yet.
    missing: bool,
}

type PlanFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Report, sage_migrate::Error>> + Send + 'a>>;

impl Session {
    async fn open(global: &Global, args: &MigrationArgs) -> anyhow::Result<Session> {
        let db = Database::resolve(global)?;
        let set = context::migration_set(args, db.dialect()?).await?;
        let set_label = context::describe_set(&set);
        let options = context::run_options(args, &set)?;
        let migrator = Migrator::connect(db.migration_target(), set, options).await?;
        Ok(Session { db, set_label, migrator, missing: false })
    }

    /// Like `open`, but a SQLite file that does not exist yet is read as an empty database
    /// instead of being created: looking must not leave a file behind.
    async fn open_read_only(global: &Global, args: &MigrationArgs) -> anyhow::Result<Session> {
        let db = Database::resolve(global)?;
        let missing = matches!(&db.settings.target, Target::Sqlite(SqliteLocation::File(path)) if !path.exists());
        if !missing {
            return Session::open(global, args).await;
        }
        let set = context::migration_set(args, db.dialect()?).await?;
        let set_label = context::describe_set(&set);
        let empty = Target::Sqlite(SqliteLocation::InMemory);
        let options = context::run_options(args, &set)?;
        let migrator = Migrator::connect(&empty, set, options).await?;
        Ok(Session { db, set_label, migrator, missing: true })
    }

    fn header(&self) {
        say!("database:   {}", self.db.describe());
        if self.missing {
            say!("            does not exist yet (`sage-db migrate up` creates it)");
        }
        say!("migrations: {}", self.set_label);
    }

    /// Plans the command as a dry run, lists what would be reverted, and asks.
    async fn confirm_reverts(
        &mut self,
        args: &MigrationArgs,
        plan: impl for<'a> FnOnce(&'a mut Migrator) -> PlanFuture<'a>,
    ) -> anyhow::Result<()> {
        let set = self.migrator.set().clone();
        let mut options = context::run_options(args, &set)?;
        options.dry_run = true;
        let mut preview = Migrator::connect(self.db.migration_target(), set, options).await?;
        let report = plan(&mut preview).await?;
        if report.reverted.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = report.reverted.iter().map(|s| format!("  {} {}", s.version, s.name)).collect();
        confirm(
            &format!(
                "This reverts {} migration(s) on {} and may delete data:\n{}",
                report.reverted.len(),
                self.db.settings,
                names.join("\n")
            ),
            args.yes,
        )
    }

    /// Like `finish`, plus the validation that follows `up`; drift makes the exit code 1.
    fn finish_with_validation(
        &self,
        global: &Global,
        report: &Report,
        findings: Option<Vec<sage_schema::Finding>>,
    ) -> anyhow::Result<ExitCode> {
        let clean = findings.as_deref().is_none_or(sage_schema::is_clean);
        if global.json {
            output::json(&serde_json::json!({ "report": report, "validation": findings }))?;
        } else {
            self.header();
            print_report(report);
            print_validation(findings.as_deref());
        }
        Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }

    fn finish(&self, global: &Global, report: &Report) -> anyhow::Result<ExitCode> {
        if global.json {
            output::json(report)?;
        } else {
            self.header();
            print_report(report);
        }
        Ok(ExitCode::SUCCESS)
    }
}

pub fn print_report(report: &Report) {
    for notice in &report.notices {
        say!("note: {notice}");
    }
    let verb = |done: &str, planned: &str| if report.dry_run { planned.to_string() } else { done.to_string() };
    for step in &report.applied {
        match &step.sql {
            Some(sql) => say_raw!("{sql}"),
            None => say!(
                "{} {} ({} statements, {} ms)",
                verb("applied", "would apply"),
                step.file,
                step.statements,
                step.duration_ms
            ),
        }
    }
    for step in &report.reverted {
        match &step.sql {
            Some(sql) => say_raw!("{sql}"),
            None => say!(
                "{} {} ({} statements, {} ms)",
                verb("reverted", "would revert"),
                step.file,
                step.statements,
                step.duration_ms
            ),
        }
    }
    let version = |v: Option<i64>| v.map_or("none".to_string(), |v| v.to_string());
    if report.applied.is_empty() && report.reverted.is_empty() && report.notices.is_empty() {
        say!("nothing to do: the database is at version {}", version(report.version_before));
    } else if report.dry_run {
        say!(
            "dry run: nothing was changed (version {} would become {})",
            version(report.version_before),
            version(report.version_after)
        );
    } else {
        say!("version {} -> {}", version(report.version_before), version(report.version_after));
    }
}

pub fn print_status(status: &sage_migrate::StatusReport) {
    let version = status.version.map_or("none".to_string(), |v| v.to_string());
    let latest = status.latest_file_version.map_or("none".to_string(), |v| v.to_string());
    say!("version:    {version} (newest file: {latest}), {} pending", status.pending);
    if !status.legacy_tables.is_empty() {
        say!("also kept:  {}", status.legacy_tables.join(", "));
    }
    if !status.migrations.is_empty() {
        say!();
        let rows: Vec<Vec<String>> = status
            .migrations
            .iter()
            .map(|e| {
                vec![
                    e.version.to_string(),
                    e.state.as_str().to_string(),
                    e.applied_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default(),
                    e.name.clone(),
                ]
            })
            .collect();
        output::table(&["VERSION", "STATE", "APPLIED AT", "NAME"], &rows);
    }
    if !status.findings.is_empty() {
        say!();
        print_findings(&status.findings);
    }
}

fn print_findings(findings: &[sage_migrate::Finding]) {
    for f in findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        say!("{level}: {f}");
        if let Some(hint) = crate::hints::finding(f.kind) {
            say!("  hint: {hint}");
        }
    }
}

async fn create(
    global: &Global,
    source: Option<&std::path::Path>,
    dry_run: bool,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let Some(dir) = source else {
        bail!("create needs --source DIR: SAGE's own migrations are compiled in and not edited here");
    };
    // The dialect only matters for parsing existing files; pick it from the database URL
    // when one is configured, else PostgreSQL's rules (the stricter splitter).
    let dialect =
        Database::resolve(global).ok().and_then(|db| db.dialect().ok()).unwrap_or(sage_migrate::Dialect::Postgres);
    let set = context::read_migrations(dir, dialect).await?;
    let new = set.new_migration(name, chrono::Utc::now())?;
    for (path, _) in &new.files {
        if path.exists() {
            bail!("{} already exists", path.display());
        }
    }
    if !dry_run {
        for (path, text) in &new.files {
            tokio::fs::write(path, text).await.map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
    }
    if global.json {
        let files: Vec<String> = new.files.iter().map(|(p, _)| p.display().to_string()).collect();
        output::json(&serde_json::json!({ "version": new.version, "files": files, "dry_run": dry_run }))?;
    } else {
        for (path, _) in &new.files {
            say!("{} {}", if dry_run { "would create" } else { "created" }, path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// After `up`, the live schema is compared with the snapshot of the migrations (SAGE's own,
/// or `schema.json` in `--source`). `None` when there is no snapshot to compare with.
pub async fn post_migrate_validation(
    db: &Database,
    args: &MigrationArgs,
) -> anyhow::Result<Option<Vec<sage_schema::Finding>>> {
    let (source, dialect) = (args.source.clone(), db.dialect()?);
    let snapshot = context::blocking(move || crate::expected::snapshot_for(source.as_deref(), dialect)).await?;
    let Some(expected) = snapshot else {
        return Ok(None);
    };
    let expected = sage_schema::in_server_rendering(expected, &db.settings.target).await?;
    let live = sage_schema::live(&db.settings.target).await?;
    Ok(Some(sage_schema::validate(&expected, &live, sage_schema::ValidateOptions::default())))
}

pub fn print_validation(findings: Option<&[sage_schema::Finding]>) {
    match findings {
        None => {}
        Some(f) if f.iter().all(|x| x.severity == sage_schema::Severity::Info) => {
            say!("schema:     matches the snapshot")
        }
        Some(f) => {
            say!("schema:     differs from the snapshot of the migrations:");
            crate::cmd::schema::print_findings(f);
        }
    }
}

/// `sage-db provision [--recreate]`: the did:webvh server's `provision(recreate)`, done with
/// migrations, so an upgrade adds what a new version needs instead of skipping it.
pub async fn provision(global: &Global, args: &MigrationArgs, recreate: bool) -> anyhow::Result<ExitCode> {
    let mut m = Session::open(global, args).await?;
    // A database the server's create_all made is adopted first, so that --recreate drops
    // its tables too and a plain provision does not fail on them.
    let adopted = if args.dry_run { None } else { adopt_unrecorded(&mut m, args).await? };
    let mut reverted = None;
    if recreate {
        if !args.dry_run {
            confirm(
                &format!(
                    "Drop every object the migrations created in {} and create them again? All their data is lost.",
                    m.db.settings
                ),
                args.yes,
            )?;
        }
        reverted = Some(m.migrator.down(Goal::Latest).await?);
    }
    let mut report = up_adopting(&mut m, args, Goal::Latest).await?;
    if let Some(down) = reverted {
        report.reverted = down.reverted;
        report.version_before = down.version_before;
    }
    if let Some(adopted) = adopted {
        report = merge(adopted, report);
    }
    m.finish(global, &report)
}

/// The bookkeeping tables of SAGE DB and the tools it keeps in step: not part of the
/// schema the migrations make.
fn bookkeeping(object: &str, history_table: &str) -> bool {
    let table = object.split('.').nth(1).unwrap_or(object);
    let history = history_table.rsplit('.').next().unwrap_or(history_table);
    [history, "schema_migrations", "_sqlx_migrations"].contains(&table)
}

/// Where the live schema stands among the prefixes of the migrations.
enum PrefixMatch {
    /// The live schema is exactly what the first `count` migrations make.
    Exact { count: usize, version: i64 },
    /// No prefix of at least the migrations asked for makes it: the closest and how it
    /// differs (errors only).
    None { version: i64, findings: Vec<sage_schema::Finding> },
}

/// The newest prefix of `set`, of at least `from` migrations, whose schema (`schemas[k]`
/// for the first `k`) is exactly `live`, bookkeeping tables aside.
fn match_prefix(
    set: &sage_migrate::MigrationSet,
    schemas: &[sage_schema::Schema],
    live: &sage_schema::Schema,
    history_table: &str,
    from: usize,
) -> PrefixMatch {
    let strict = sage_schema::ValidateOptions { strict: true };
    let mut closest: Option<(usize, i64, Vec<sage_schema::Finding>)> = None;
    let mut owned = live.clone();
    for k in (from..schemas.len()).rev() {
        owned.owners = owners_as_replayed(&schemas[k], live);
        let findings: Vec<sage_schema::Finding> = sage_schema::validate(&schemas[k], &owned, strict)
            .into_iter()
            .filter(|f| !bookkeeping(&f.object, history_table))
            .filter(|f| f.severity == sage_schema::Severity::Error)
            .collect();
        let version = if k == 0 { 0 } else { set.migrations[k - 1].version };
        if findings.is_empty() {
            return PrefixMatch::Exact { count: k, version };
        }
        if closest.as_ref().is_none_or(|(best, ..)| findings.len() < *best) {
            closest = Some((findings.len(), version, findings));
        }
    }
    let (_, version, findings) = closest.unwrap_or_default();
    PrefixMatch::None { version, findings }
}

/// Who owns an object depends on who ran the statement that made it (the application's own
/// role at start-up, often not the database's owner), not on which migration made it: where
/// the replay leaves an object to the database's owner, the live object's owner matches
/// whoever it is. An owner a migration sets explicitly is still compared.
fn owners_as_replayed(expected: &sage_schema::Schema, live: &sage_schema::Schema) -> Vec<sage_schema::Owner> {
    const DATABASE_OWNER: &str = "(database owner)";
    let mut owners = live.owners.clone();
    for owner in &mut owners {
        let replayed = expected.owners.iter().find(|e| e.kind == owner.kind && e.object == owner.object);
        if replayed.is_some_and(|e| e.owner == DATABASE_OWNER) {
            owner.owner = DATABASE_OWNER.to_string();
        }
    }
    owners
}

fn closest_lines(version: i64, findings: &[sage_schema::Finding]) -> String {
    let mut lines = vec![format!("closest: the migrations through version {version}, which differ in:")];
    lines.extend(findings.iter().map(|f| format!("  {f}")));
    lines.join("\n")
}

/// `migrate adopt`: the newest prefix of the migrations whose replay is exactly the live
/// schema is recorded as applied (as a baseline); with no such prefix, the differences to
/// the closest one are shown and nothing changes.
async fn adopt(global: &Global, args: &MigrationArgs, dev_url: Option<&str>) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let set = context::migration_set(args, db.dialect()?).await?;
    if !set.problems.is_empty() {
        let lines: Vec<String> = set.problems.iter().map(|p| p.to_string()).collect();
        bail!("the migration files have problems:\n  {}", lines.join("\n  "));
    }
    let dev = crate::expected::dev_target(dev_url)?;
    let live = sage_schema::live(&db.settings.target).await?;
    let schemas = sage_schema::prefix_schemas(set.clone(), Some(&db.settings.target), dev.as_ref()).await?;
    let (count, version) = match match_prefix(&set, &schemas, &live, &args.history_table, 0) {
        PrefixMatch::Exact { count, version } => (count, version),
        PrefixMatch::None { version, findings } => {
            if global.json {
                output::json(&serde_json::json!({
                    "adopted": false,
                    "report": null,
                    "closest": { "version": version, "findings": findings },
                }))?;
            } else {
                say!("no prefix of the migrations makes exactly this schema; nothing was recorded");
                say!("{}", closest_lines(version, &findings));
            }
            return Ok(ExitCode::from(1));
        }
    };
    if count == 0 {
        if global.json {
            output::json(&serde_json::json!({ "adopted": false, "report": null, "closest": null }))?;
        } else {
            say!("the database holds none of the migrations' objects; nothing to adopt (run `sage-db migrate up`)");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut m = Session::open(global, args).await?;
    let report = m.migrator.baseline(version).await?;
    if global.json {
        output::json(&serde_json::json!({ "adopted": true, "report": report, "closest": null }))?;
        return Ok(ExitCode::SUCCESS);
    }
    say!("the live schema is exactly what migrations 1 to {count} (through version {version}) make");
    m.finish(global, &report)
}

/// Before `up` and `provision`: a database that holds tables of these migrations but has no
/// record of any migration (SAGE DB's or another tool's; a peer's table that records nothing
/// counts as none) was made without a migration tool, e.g. by an ORM's create_all at
/// start-up. It is adopted as `migrate adopt` does: the newest prefix whose schema is exactly
/// the live one is recorded as present. With none, the differences to the closest are the
/// error and nothing changes. A database without any of the migrations' tables is left to
/// `up` (a fresh one costs one catalog read here).
async fn adopt_unrecorded(m: &mut Session, args: &MigrationArgs) -> anyhow::Result<Option<Report>> {
    let Some(Adoption { count, version }) = unrecorded_adoption(m, args).await? else {
        return Ok(None);
    };
    let mut report = m.migrator.record_present(version, None).await?;
    if report.version_after != Some(version) {
        return Ok(Some(report));
    }
    report.notices.insert(0, adoption_notice("adopted", count, version));
    Ok(Some(report))
}

/// The migrations a database without any migration record would be adopted at (see
/// `adopt_unrecorded`); reads only.
struct Adoption {
    count: usize,
    version: i64,
}

fn adoption_notice(verb: &str, count: usize, version: i64) -> String {
    format!(
        "{verb}: the database had no migration history and its schema is exactly what migrations 1 to {count} (through version {version}) make"
    )
}

async fn unrecorded_adoption(m: &mut Session, args: &MigrationArgs) -> anyhow::Result<Option<Adoption>> {
    let status = m.migrator.status().await?;
    let unrecorded = status.legacy_tables_empty
        && status.migrations.iter().all(|e| e.state == sage_migrate::MigrationState::Pending);
    if !unrecorded || status.migrations.is_empty() {
        return Ok(None);
    }
    let target = m.db.settings.target.clone();
    let mut tables = sage_schema::table_names(&target).await?;
    tables.retain(|t| !bookkeeping(t, &args.history_table));
    if tables.is_empty() {
        return Ok(None);
    }
    let set = m.migrator.set().clone();
    let created = created_tables(&set);
    let named: Vec<&String> = tables.iter().filter(|t| created.contains(&t.to_lowercase())).collect();
    // Which migrations made the tables is found by replaying them in a scratch database.
    // Where that is impossible (a role without CREATEDB), a database whose tables none of
    // the files' CREATE TABLE names is left to `up` as before; one with such tables is not
    // migrated blindly.
    let schemas = match sage_schema::prefix_schemas(set.clone(), Some(&target), None).await {
        Ok(schemas) => schemas,
        Err(_) if named.is_empty() => return Ok(None),
        Err(e) => {
            let names: Vec<&str> = named.iter().map(|t| t.as_str()).collect();
            bail!(
                "the database holds tables these migrations create ({}) but no record of any migration, and finding which migrations made them needs a replay of the migrations, which failed: {e}; nothing was changed\nhint: grant the role CREATEDB, or adopt with an empty database of your own to replay in: sage-db migrate adopt --dev-url URL",
                names.join(", ")
            )
        }
    };
    let known = |name: &str| schemas.iter().any(|s| s.tables.iter().any(|t| t.name == name));
    if !tables.iter().any(|t| known(t)) {
        return Ok(None);
    }
    let live = sage_schema::live(&target).await?;
    match match_prefix(&set, &schemas, &live, &args.history_table, 0) {
        PrefixMatch::Exact { count: 0, .. } => Ok(None),
        PrefixMatch::Exact { count, version } => Ok(Some(Adoption { count, version })),
        PrefixMatch::None { version, findings } => bail!(
            "the database holds tables of these migrations but no record of any migration, and no prefix of the migrations makes exactly its schema; nothing was changed\n{}",
            closest_lines(version, &findings)
        ),
    }
}

/// The tables the migrations' `CREATE TABLE` statements make, in lower case (as the server
/// folds an unquoted name; compared without case). Tables made another way (in a `DO`
/// block, by a function) are not seen: this only tells whether a replay is needed at all.
fn created_tables(set: &sage_migrate::MigrationSet) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for migration in &set.migrations {
        let Ok(statements) = sage_migrate::split::split(&migration.up.sql, set.dialect) else { continue };
        names.extend(statements.iter().filter_map(|s| created_table(s.sql)));
    }
    names
}

/// The table a `CREATE [TEMP | UNLOGGED …] TABLE [IF NOT EXISTS] [schema.]name` statement
/// makes: its last name part, unquoted, in lower case.
fn created_table(sql: &str) -> Option<String> {
    let mut rest = sql.trim_start();
    let mut word = || -> Option<String> {
        rest = rest.trim_start();
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(rest.len());
        let (w, tail) = rest.split_at(end);
        rest = tail;
        (!w.is_empty()).then(|| w.to_ascii_uppercase())
    };
    if word()? != "CREATE" {
        return None;
    }
    let mut next = word()?;
    while matches!(next.as_str(), "GLOBAL" | "LOCAL" | "TEMP" | "TEMPORARY" | "UNLOGGED") {
        next = word()?;
    }
    if next != "TABLE" {
        return None;
    }
    let mut rest = rest.trim_start();
    for keyword in ["IF", "NOT", "EXISTS"] {
        let upper = rest.get(..keyword.len()).map(str::to_ascii_uppercase);
        if upper.as_deref() == Some(keyword) {
            rest = rest[keyword.len()..].trim_start();
        }
    }
    // The name's parts, the last of which is the table.
    loop {
        let (part, tail) = if let Some(quoted) = rest.strip_prefix('"') {
            let mut name = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') if quoted[i + 1..].starts_with('"') => {
                        name.push('"');
                        chars.next();
                    }
                    (i, '"') => break i + 1,
                    (_, c) => name.push(c),
                }
            };
            (name, &quoted[end..])
        } else {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            (rest[..end].to_string(), &rest[end..])
        };
        match tail.trim_start().strip_prefix('.') {
            Some(after) => rest = after.trim_start(),
            None => return Some(part.to_lowercase()),
        }
    }
}

/// After a migration failed: when the database already holds exactly what the next
/// migrations make (the application made their objects itself, as create_all does for a
/// new table), they are recorded as present instead, and `Some` is the report of that.
async fn record_if_present(m: &mut Session, args: &MigrationArgs) -> anyhow::Result<Option<Report>> {
    let status = m.migrator.status().await?;
    let from = status.migrations.iter().take_while(|e| e.state != sage_migrate::MigrationState::Pending).count();
    let set = m.migrator.set().clone();
    let target = m.db.settings.target.clone();
    let live = sage_schema::live(&target).await?;
    let schemas = sage_schema::prefix_schemas(set.clone(), Some(&target), None).await?;
    match match_prefix(&set, &schemas, &live, &args.history_table, from) {
        PrefixMatch::Exact { count, version } if count > from => {
            let mut report = m.migrator.record_present(version, status.version).await?;
            if report.version_after != Some(version) {
                return Ok(Some(report));
            }
            let which = if count == from + 1 {
                format!("migration {count} (version {version}) makes")
            } else {
                format!("migrations {} to {count} (through version {version}) make", from + 1)
            };
            report.notices.insert(
                0,
                format!("the database already holds exactly what {which}; recorded as present instead of run"),
            );
            Ok(Some(report))
        }
        _ => Ok(None),
    }
}

/// `up` with adoption first and, when a migration fails, the check whether its objects
/// were already there.
async fn up_adopting(m: &mut Session, args: &MigrationArgs, target: Goal) -> anyhow::Result<Report> {
    if args.dry_run {
        return up_adopting_dry_run(m, args, target).await;
    }
    let adopted = adopt_unrecorded(m, args).await?;
    let result = m.migrator.up(target).await;
    let report = match result {
        Err(e) if e.kind() == sage_migrate::ErrorKind::MigrationFailed && !args.dry_run => {
            // Any trouble finding out is no reason to hide the migration's own error.
            match record_if_present(m, args).await {
                Ok(Some(present)) => merge(present, m.migrator.up(target).await?),
                _ => return Err(e.into()),
            }
        }
        other => other?,
    };
    Ok(match adopted {
        Some(adopted) => merge(adopted, report),
        None => report,
    })
}

/// `up --dry-run`: what `up` would do, adoption included: the migrations an adoption would
/// record as present are shown as such, not as run.
async fn up_adopting_dry_run(m: &mut Session, args: &MigrationArgs, target: Goal) -> anyhow::Result<Report> {
    let adoption = unrecorded_adoption(m, args).await?;
    // Every migration is pending here: `up N` after adopting the first `count` runs the N
    // after them.
    let target = match (&adoption, target) {
        (Some(a), Goal::Steps(n)) => Goal::Steps(n.saturating_add(u32::try_from(a.count).unwrap_or(u32::MAX))),
        (_, target) => target,
    };
    let mut report = m.migrator.up(target).await?;
    if let Some(Adoption { count, version }) = adoption {
        report.applied.retain(|step| step.version > version);
        report
            .notices
            .insert(0, adoption_notice("would adopt (recording them as present, running nothing)", count, version));
    }
    Ok(report)
}

/// One report for two steps run one after the other.
fn merge(first: Report, then: Report) -> Report {
    let mut notices = first.notices;
    notices.extend(then.notices);
    Report {
        version_before: first.version_before,
        notices,
        applied: [first.applied, then.applied].concat(),
        reverted: [first.reverted, then.reverted].concat(),
        ..then
    }
}

#[cfg(test)]
mod tests {
    use super::created_table;

    #[test]
    fn created_table_names_the_table_a_statement_makes() {
        let cases = [
            ("CREATE TABLE items (id integer)", Some("items")),
            ("create unlogged table if not exists App.Items (id int)", Some("items")),
            ("CREATE TEMP TABLE t AS SELECT 1", Some("t")),
            ("CREATE TABLE \"odd \"\"name\"\" \" (id int)", Some("odd \"name\" ")),
            ("CREATE TABLE public.\"Mixed\"(id int)", Some("mixed")),
            ("CREATE INDEX items_label ON items (label)", None),
            ("CREATE TABLE", None),
            ("CREATE TABLE \"unterminated", None),
            ("INSERT INTO items VALUES (1)", None),
        ];
        for (sql, want) in cases {
            assert_eq!(created_table(sql).as_deref(), want, "{sql}");
        }
    }
}
