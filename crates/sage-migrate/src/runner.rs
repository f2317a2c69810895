//! Carries out a plan: takes the lock, re-reads the history under it, adopts other tools'
//! bookkeeping, and applies or reverts migrations so that each one either completes with its
//! history row or leaves nothing behind.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use crate::driver::Driver;
#[cfg(feature = "postgres")]
use crate::driver::PgDriver;
#[cfg(feature = "sqlite")]
use crate::driver::SqliteDriver;
use crate::error::StatementError;
use crate::legacy::{self, LegacyTable, Peer};
use crate::plan::{self, Finding, Severity, StatusEntry, Step, Target};
use crate::split::{split, Statement, TransactionControl};
use crate::{Dialect, Error, HistoryRow, Migration, MigrationSet, RowState, Script, DEFAULT_HISTORY_TABLE};

/// Options shared by every command. Safety-relevant ones default to the safe choice.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How long to wait for another process's migration lock, and how long a statement of
    /// a transactional migration waits for a lock on what it changes (PostgreSQL's
    /// `lock_timeout`, SQLite's busy timeout) before the migration fails whole.
    pub lock_timeout: Duration,
    /// Apply files older than the newest applied migration instead of refusing.
    pub allow_out_of_order: bool,
    /// Plan and print, change nothing.
    pub dry_run: bool,
    /// The history table, optionally schema-qualified (`schema.table`).
    pub history_table: String,
    /// Create this tool's bookkeeping table when it is missing, and keep it in step, so the
    /// tool works on this database from its first run.
    pub keep_in_step: Option<Peer>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            lock_timeout: Duration::from_secs(60),
            allow_out_of_order: false,
            dry_run: false,
            history_table: DEFAULT_HISTORY_TABLE.to_string(),
            keep_in_step: None,
        }
    }
}

/// What a command did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub version_before: Option<i64>,
    pub version_after: Option<i64>,
    pub applied: Vec<StepReport>,
    pub reverted: Vec<StepReport>,
    /// Things the operator should know: adoptions, resumed migrations, accepted edits.
    pub notices: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub version: i64,
    pub name: String,
    pub file: String,
    pub statements: usize,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_at_statement: Option<usize>,
    /// The SQL that would run, for `--dry-run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// Where a database stands against the migration files.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub version: Option<i64>,
    pub latest_file_version: Option<i64>,
    pub pending: usize,
    pub migrations: Vec<StatusEntry>,
    pub findings: Vec<Finding>,
    /// Other tools' bookkeeping tables found, e.g. `golang-migrate (schema_migrations)`.
    pub legacy_tables: Vec<String>,
    /// Whether every one of those tables records no migration at all.
    #[serde(skip)]
    pub legacy_tables_empty: bool,
}

impl StatusReport {
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// Another tool's dirty or failed state, which stops every change until `force`.
    pub fn peer_dirty(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.kind == plan::FindingKind::PeerDirty)
    }
}

enum Operation {
    Up(Target),
    Down(Target),
    Goto(i64),
    Force(i64),
    Baseline(i64),
    Present { version: i64, seen: Option<i64> },
    Repair,
}

/// Applies a [`MigrationSet`] to one database.
pub struct Migrator {
    driver: Box<dyn Driver>,
    set: MigrationSet,
    options: RunOptions,
    /// The SQLite file, named in a "disk full" message.
    file: Option<std::path::PathBuf>,
    /// Told as each migration starts and finishes.
    progress: sage_conn::Progress,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator").field("dialect", &self.set.dialect).field("options", &self.options).finish()
    }
}

/// Refuses a history table name that no database could hold as meant: empty, with an empty
/// part (`.x`, `x.`), more than a schema and a table, a control character, or a part longer
/// than the 63 bytes PostgreSQL keeps (it would silently cut the name and could then find
/// another tool's table).
pub fn check_history_table(name: &str) -> Result<(), Error> {
    let refuse = |why: &'static str| Err(Error::BadHistoryTable { name: name.to_string(), why });
    let parts: Vec<&str> = name.split('.').collect();
    if name.is_empty() {
        return refuse("is empty");
    }
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 2 {
        return refuse("must be TABLE or SCHEMA.TABLE");
    }
    if name.chars().any(char::is_control) {
        return refuse("contains a control character");
    }
    if parts.iter().any(|p| p.len() > 63) {
        return refuse("has a part longer than 63 bytes");
    }
    Ok(())
}

impl Migrator {
    pub async fn connect(
        target: &sage_conn::Target,
        set: MigrationSet,
        options: RunOptions,
    ) -> Result<Migrator, Error> {
        check_history_table(&options.history_table)?;
        let driver: Box<dyn Driver> = match target {
            #[cfg(feature = "postgres")]
            sage_conn::Target::Postgres(pg) => {
                Box::new(PgDriver::connect(pg, &options.history_table, options.lock_timeout).await?)
            }
            #[cfg(not(feature = "postgres"))]
            sage_conn::Target::Postgres(_) => return Err(Error::usage(sage_conn::NO_POSTGRES)),
            #[cfg(feature = "sqlite")]
            sage_conn::Target::Sqlite(location) => {
                Box::new(SqliteDriver::open(location, &options.history_table, options.lock_timeout)?)
            }
            #[cfg(not(feature = "sqlite"))]
            sage_conn::Target::Sqlite(_) => return Err(Error::usage(sage_conn::NO_SQLITE)),
            sage_conn::Target::Memory => {
                return Err(Error::usage("memory:// keeps no schema to migrate; use a postgres:// or sqlite:// URL"))
            }
        };
        let mut migrator = Migrator::with_driver(driver, set, options)?;
        if let sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(path)) = target {
            migrator.file = Some(path.clone());
        }
        Ok(migrator)
    }

    fn with_driver(driver: Box<dyn Driver>, set: MigrationSet, options: RunOptions) -> Result<Migrator, Error> {
        if driver.dialect() != set.dialect {
            return Err(Error::WrongDialect { migrations: set.dialect.name(), database: driver.dialect().name() });
        }
        Ok(Migrator { driver, set, options, file: None, progress: sage_conn::Progress::none() })
    }

    pub fn set(&self) -> &MigrationSet {
        &self.set
    }

    /// Reports each migration applied or reverted (not in a dry run) to `progress`: before it
    /// starts, with the number finished so far and planned in all, and once all are done.
    pub fn set_progress(&mut self, progress: sage_conn::Progress) {
        self.progress = progress;
    }

    /// Reads where the database stands. Takes no lock and creates nothing.
    pub async fn status(&mut self) -> Result<StatusReport, Error> {
        let legacy = self.driver.legacy().await?;
        let mut history = self.driver.history().await?;
        // Show the merged truth: what the other tools applied or reverted since the last
        // run, as the next run will record it, and their dirty or failed states.
        let reconciled = legacy::reconcile(&legacy, &self.set, &history);
        reconciled.apply_to(&mut history);
        let migrations = plan::status(&self.set, &history);
        let mut findings = plan::findings(&self.set, &history, self.options.allow_out_of_order);
        findings.extend(reconciled.findings);
        let pending = migrations
            .iter()
            .filter(|e| {
                matches!(
                    e.state,
                    plan::MigrationState::Pending | plan::MigrationState::OutOfOrder | plan::MigrationState::Partial
                )
            })
            .count();
        Ok(StatusReport {
            version: plan::current_version(&history),
            latest_file_version: self.set.latest_version(),
            pending,
            migrations,
            findings,
            legacy_tables: legacy.iter().map(|t| format!("{} ({})", t.tool(), t.table())).collect(),
            legacy_tables_empty: legacy.iter().all(LegacyTable::records_nothing),
        })
    }

    pub async fn up(&mut self, target: Target) -> Result<Report, Error> {
        self.run(Operation::Up(target)).await
    }

    pub async fn down(&mut self, target: Target) -> Result<Report, Error> {
        self.run(Operation::Down(target)).await
    }

    pub async fn goto(&mut self, version: i64) -> Result<Report, Error> {
        self.run(Operation::Goto(version)).await
    }

    /// Records that exactly the migrations up to `version` are applied, without running
    /// anything. The way out after a failure outside SAGE DB's control.
    pub async fn force(&mut self, version: i64) -> Result<Report, Error> {
        self.run(Operation::Force(version)).await
    }

    /// Records migrations up to `version` as already present in a database whose schema
    /// was created before SAGE DB managed it.
    pub async fn baseline(&mut self, version: i64) -> Result<Report, Error> {
        self.run(Operation::Baseline(version)).await
    }

    /// Records the migrations up to `version` that have no row yet as present (state
    /// `baseline`), running nothing: the caller has found that the database already holds
    /// exactly what they make (a schema made by an ORM's create_all, or a later migration's
    /// objects made by the application before SAGE DB ran it). Unlike `baseline`, the
    /// database may have a history; a migration recorded after `version` is refused.
    ///
    /// `seen` is the version the caller saw when it compared the schemas: if another run
    /// has recorded migrations since (under the lock the history says otherwise), nothing
    /// is recorded and a notice says so, since the comparison may have seen its work half
    /// done.
    pub async fn record_present(&mut self, version: i64, seen: Option<i64>) -> Result<Report, Error> {
        self.run(Operation::Present { version, seen }).await
    }

    /// Accepts the current checksum of applied migrations whose files were edited.
    pub async fn repair(&mut self) -> Result<Report, Error> {
        self.run(Operation::Repair).await
    }

    async fn run(&mut self, operation: Operation) -> Result<Report, Error> {
        let file = self.file.clone();
        self.run_unnamed(operation).await.map_err(|e| match &file {
            Some(path) => e.naming_full_disk(path),
            None => e,
        })
    }

    async fn run_unnamed(&mut self, operation: Operation) -> Result<Report, Error> {
        if self.options.dry_run {
            return self.run_locked(operation).await;
        }
        self.driver.lock(self.options.lock_timeout).await?;
        let result = self.run_locked(operation).await;
        let unlocked = self.driver.unlock().await;
        let report = result?;
        unlocked?;
        Ok(report)
    }

    async fn run_locked(&mut self, operation: Operation) -> Result<Report, Error> {
        let dry_run = self.options.dry_run;
        let mut report = Report { dry_run, ..Report::default() };
        if !dry_run {
            self.driver.ensure_history().await?;
        }
        // Read under the lock: another process may have migrated while we waited.
        let mut legacy = self.driver.legacy().await?;
        let mut history = self.driver.history().await?;
        let forcing = matches!(operation, Operation::Force(_) | Operation::Baseline(_));
        self.keep_in_step(&mut legacy, &history, &mut report).await?;
        // `force` is how an operator settles a dirty or failed state; it follows the rest.
        self.reconcile(&legacy, &mut history, &mut report, forcing).await?;
        report.version_before = plan::current_version(&history);
        let steps = match operation {
            Operation::Up(target) => {
                refuse_problems(&self.set)?;
                plan::plan_up(&self.set, &history, target, self.options.allow_out_of_order)?
            }
            Operation::Down(target) => plan::plan_down(&self.set, &history, target)?,
            Operation::Goto(version) => {
                refuse_problems(&self.set)?;
                plan::plan_goto(&self.set, &history, version, self.options.allow_out_of_order)?
            }
            Operation::Force(version) => {
                self.force_to(version, RowState::Applied, &history, &legacy, &mut report).await?;
                return Ok(report);
            }
            Operation::Baseline(version) => {
                if history.iter().any(|r| r.state.is_complete())
                    || legacy.iter().any(|t| !matches!(t, LegacyTable::GolangMigrate { version: None, .. }))
                {
                    return Err(Error::NotEmpty);
                }
                self.force_to(version, RowState::Baseline, &history, &legacy, &mut report).await?;
                return Ok(report);
            }
            Operation::Present { version, seen } => {
                if report.version_before != seen {
                    report.version_after = report.version_before;
                    report
                        .notices
                        .push("another run recorded migrations meanwhile; nothing was recorded as present".to_string());
                    return Ok(report);
                }
                if let Some(later) = history.iter().find(|r| r.state.is_complete() && r.version > version) {
                    return Err(Error::RecordedAfter {
                        version,
                        later_version: later.version,
                        later_name: later.name.clone(),
                    });
                }
                self.force_to(version, RowState::Baseline, &history, &legacy, &mut report).await?;
                return Ok(report);
            }
            Operation::Repair => {
                self.repair_checksums(&history, &mut report).await?;
                return Ok(report);
            }
        };
        let total = steps.len() as u64;
        for (done, step) in steps.into_iter().enumerate() {
            if !dry_run {
                self.report_step(&step, done as u64, total);
            }
            match step {
                Step::Apply { version, resume_at } => {
                    let step_report = match self.apply(version, resume_at, &mut history, &legacy).await {
                        Ok(step) => step,
                        Err(e) => {
                            // What is committed stays: the report ends at the version reached.
                            report.version_after = plan::current_version(&history);
                            return Err(e.after(&report));
                        }
                    };
                    if let Some(at) = step_report.resumed_at_statement {
                        report.notices.push(format!("resumed {} at statement {}", step_report.file, at + 1));
                    }
                    report.applied.push(step_report);
                }
                Step::Revert { version } => {
                    let step_report = match self.revert(version, &mut history, &legacy).await {
                        Ok(step) => step,
                        Err(e) => {
                            // What is committed stays: the report ends at the version reached.
                            report.version_after = plan::current_version(&history);
                            return Err(e.after(&report));
                        }
                    };
                    report.reverted.push(step_report);
                }
            }
        }
        if !dry_run && total > 0 {
            self.progress.items("migrating", None, total, total);
        }
        report.version_after = plan::current_version(&history);
        Ok(report)
    }

    fn report_step(&self, step: &Step, done: u64, total: u64) {
        let (action, version) = match step {
            Step::Apply { version, .. } => ("applying", *version),
            Step::Revert { version } => ("reverting", *version),
        };
        let name = self.set.get(version).map_or_else(|| version.to_string(), |m| format!("{version} {}", m.name));
        self.progress.items(action, Some(&name), done, total);
    }

    /// Follows what other tools did since the last run: their applied migrations are
    /// recorded as applied (by that tool), their reverts as reverted. A dirty or failed
    /// state stops the run: nothing may run until an operator has looked.
    async fn reconcile(
        &mut self,
        legacy: &[LegacyTable],
        history: &mut Vec<HistoryRow>,
        report: &mut Report,
        forcing: bool,
    ) -> Result<(), Error> {
        let reconciled = legacy::reconcile(legacy, &self.set, history);
        if let Some(finding) = reconciled.blocking().filter(|_| !forcing) {
            return Err(Error::PeerBlocks { finding: finding.clone() });
        }
        if let Some(conflict) = reconciled.findings.first() {
            report.notices.push(conflict.message.clone());
        }
        if reconciled.add.is_empty() && reconciled.remove.is_empty() {
            return Ok(());
        }
        if !self.options.dry_run {
            self.driver.begin().await?;
            let write = async {
                for row in &reconciled.add {
                    self.driver.write_row(row).await?;
                }
                for version in &reconciled.remove {
                    self.driver.delete_row(*version).await?;
                }
                self.driver.commit().await
            }
            .await;
            if let Err(e) = write {
                let _ = self.driver.rollback().await;
                return Err(e);
            }
        }
        reconciled.apply_to(history);
        report.notices.extend(reconciled.notices);
        Ok(())
    }

    /// Creates the table of the tool named by `--keep-in-step` when it is missing, filled
    /// with what is applied, so that tool sees the truth from its first run.
    async fn keep_in_step(
        &mut self,
        legacy: &mut Vec<LegacyTable>,
        history: &[HistoryRow],
        report: &mut Report,
    ) -> Result<(), Error> {
        let Some(peer) = self.options.keep_in_step else { return Ok(()) };
        if legacy.iter().any(|t| t.peer() == peer) {
            return Ok(());
        }
        if let Some(other) = legacy.iter().find(|t| t.table() == peer.table()) {
            return Err(Error::PeerTableTaken { peer: peer.name(), table: peer.table(), owner: other.tool() });
        }
        let table = LegacyTable::empty(peer);
        let complete = complete_versions(history);
        let mut changes = vec![legacy::LegacySync::Create(peer)];
        let mut so_far = Vec::new();
        for version in &complete {
            so_far.push(*version);
            changes.extend(legacy::sync_for(std::slice::from_ref(&table), &self.set, *version, true, &so_far, 0));
        }
        report.notices.push(format!(
            "created {}'s table {} with {} applied migration(s), so {} sees the same state",
            peer.name(),
            peer.table(),
            complete.len(),
            peer.name()
        ));
        legacy.push(table);
        if self.options.dry_run {
            return Ok(());
        }
        self.driver.begin().await?;
        let write = async {
            for change in &changes {
                self.driver.sync_legacy(change).await?;
            }
            self.driver.commit().await
        }
        .await;
        if write.is_err() {
            let _ = self.driver.rollback().await;
        }
        // Read back, so the table's state is as the driver sees it.
        *legacy = self.driver.legacy().await?;
        write
    }

    async fn apply(
        &mut self,
        version: i64,
        resume_at: usize,
        history: &mut Vec<HistoryRow>,
        legacy: &[LegacyTable],
    ) -> Result<StepReport, Error> {
        let migration = self.set.get(version).expect("planned migrations exist").clone();
        let statements = statements_of(&migration.up, self.set.dialect)?;
        let mut step = StepReport {
            version,
            name: migration.name.clone(),
            file: migration.up.origin.clone(),
            statements: statements.len(),
            duration_ms: 0,
            resumed_at_statement: (resume_at > 0).then_some(resume_at),
            sql: None,
        };
        if self.options.dry_run {
            step.sql = Some(render_dry_run(
                &migration.up,
                &statements,
                resume_at,
                &format!("record version {version} as applied"),
            ));
            mark_complete(history, row_for(&migration, RowState::Applied, 0, &self.driver.applied_by()));
            return Ok(step);
        }
        let started = Instant::now();
        let mut complete_after: Vec<i64> = complete_versions(history);
        complete_after.push(version);
        let mut row = row_for(&migration, RowState::Applied, 0, &self.driver.applied_by());
        if migration.up.transactional {
            self.driver.begin_migration(statements.first().map(|s| s.sql)).await?;
            let outcome =
                self.run_in_transaction(&migration, &statements, &mut row, started, &complete_after, legacy).await;
            if let Err(e) = outcome {
                let _ = self.driver.rollback().await;
                return Err(e);
            }
        } else {
            self.run_outside_transaction(
                &migration,
                &statements,
                resume_at,
                &mut row,
                started,
                &complete_after,
                legacy,
            )
            .await?;
        }
        step.duration_ms = started.elapsed().as_millis() as u64;
        mark_complete(history, row);
        tracing::info!(version, file = %migration.up.origin, ms = step.duration_ms, "applied migration");
        Ok(step)
    }

    async fn run_in_transaction(
        &mut self,
        migration: &Migration,
        statements: &[Statement<'_>],
        row: &mut HistoryRow,
        started: Instant,
        complete_after: &[i64],
        legacy: &[LegacyTable],
    ) -> Result<(), Error> {
        for (index, statement) in statements.iter().enumerate() {
            if let Err(e) = self.driver.run_statement(statement).await {
                let outcome = format!("nothing of this migration was kept; {}", e.advice());
                return Err(failed_at(&migration.up.origin, index, statements, e, outcome));
            }
        }
        self.reset_session_after(migration, statements).await?;
        row.execution_ms = started.elapsed().as_millis() as i64;
        self.driver.write_row(row).await?;
        let elapsed_ns = started.elapsed().as_nanos() as i64;
        for change in legacy::sync_for(legacy, &self.set, migration.version, true, complete_after, elapsed_ns) {
            self.driver.sync_legacy(&change).await?;
        }
        self.driver.commit().await
    }

    /// After a script that changed session settings, the next one runs in a session as
    /// fresh as the first: pg_dump's `SET search_path = ''` must not follow it.
    async fn reset_session_after(&mut self, migration: &Migration, statements: &[Statement<'_>]) -> Result<(), Error> {
        if !statements.iter().any(|s| s.changes_session) {
            return Ok(());
        }
        self.driver
            .reset_session()
            .await
            .map_err(|cause| Error::ResetSession { file: migration.up.origin.clone(), cause })
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_outside_transaction(
        &mut self,
        migration: &Migration,
        statements: &[Statement<'_>],
        resume_at: usize,
        row: &mut HistoryRow,
        started: Instant,
        complete_after: &[i64],
        legacy: &[LegacyTable],
    ) -> Result<(), Error> {
        // The row says "running" before the first statement, so an interrupted run is
        // visible and the next `up` knows where to resume.
        row.state = RowState::Running;
        row.statements_done = resume_at as i32;
        self.driver.write_row(row).await?;
        for table in legacy {
            if let LegacyTable::GolangMigrate { .. } = table {
                let dirty = legacy::LegacySync::GolangSetVersion { version: Some(migration.version), dirty: true };
                self.driver.sync_legacy(&dirty).await?;
            }
        }
        for (index, statement) in statements.iter().enumerate().skip(resume_at) {
            if let Err(e) = self.driver.run_statement(statement).await {
                row.state = RowState::Failed;
                row.error = Some(format!("statement {} ({}): {}", index + 1, position(statement), e.message));
                let _ = self.driver.write_row(row).await;
                let kept = if index == 0 {
                    "no statement of it had run".to_string()
                } else {
                    format!("statements 1 to {index} completed and are kept (it runs outside a transaction)")
                };
                let outcome = format!("{kept}; {} to resume at statement {}", e.advice(), index + 1);
                return Err(failed_at(&migration.up.origin, index, statements, e, outcome));
            }
            row.statements_done = index as i32 + 1;
            self.driver.write_row(row).await?;
        }
        self.reset_session_after(migration, statements).await?;
        row.state = RowState::Applied;
        row.error = None;
        row.execution_ms = started.elapsed().as_millis() as i64;
        self.driver.begin().await?;
        let finish = async {
            self.driver.write_row(row).await?;
            let elapsed_ns = started.elapsed().as_nanos() as i64;
            for change in legacy::sync_for(legacy, &self.set, migration.version, true, complete_after, elapsed_ns) {
                self.driver.sync_legacy(&change).await?;
            }
            self.driver.commit().await
        }
        .await;
        if finish.is_err() {
            let _ = self.driver.rollback().await;
        }
        finish
    }

    async fn revert(
        &mut self,
        version: i64,
        history: &mut Vec<HistoryRow>,
        legacy: &[LegacyTable],
    ) -> Result<StepReport, Error> {
        let migration = self.set.get(version).expect("planned migrations exist").clone();
        let script = migration.down.clone().expect("planned reverts have a down script");
        let statements = statements_of(&script, self.set.dialect)?;
        let mut step = StepReport {
            version,
            name: migration.name.clone(),
            file: script.origin.clone(),
            statements: statements.len(),
            duration_ms: 0,
            resumed_at_statement: None,
            sql: None,
        };
        if self.options.dry_run {
            step.sql =
                Some(render_dry_run(&script, &statements, 0, &format!("delete version {version} from the history")));
            history.retain(|r| r.version != version);
            return Ok(step);
        }
        let started = Instant::now();
        let complete_after: Vec<i64> = complete_versions(history).into_iter().filter(|v| *v != version).collect();
        let run = async {
            if script.transactional {
                self.driver.begin_migration(statements.first().map(|s| s.sql)).await?;
            }
            for (index, statement) in statements.iter().enumerate() {
                if let Err(e) = self.driver.run_statement(statement).await {
                    let kept = if script.transactional || index == 0 {
                        "nothing of it was kept".to_string()
                    } else {
                        format!("statements 1 to {index} completed and are kept (it runs outside a transaction); the migration is still recorded as applied")
                    };
                    return Err(failed_at(&script.origin, index, &statements, e, kept));
                }
            }
            if statements.iter().any(|s| s.changes_session) {
                self.driver
                    .reset_session()
                    .await
                    .map_err(|cause| Error::ResetSession { file: script.origin.clone(), cause })?;
            }
            if !script.transactional {
                self.driver.begin().await?;
            }
            self.driver.delete_row(version).await?;
            let elapsed_ns = started.elapsed().as_nanos() as i64;
            for change in legacy::sync_for(legacy, &self.set, version, false, &complete_after, elapsed_ns) {
                self.driver.sync_legacy(&change).await?;
            }
            self.driver.commit().await
        }
        .await;
        if let Err(e) = run {
            let _ = self.driver.rollback().await;
            return Err(e);
        }
        step.duration_ms = started.elapsed().as_millis() as u64;
        history.retain(|r| r.version != version);
        tracing::info!(version, file = %script.origin, ms = step.duration_ms, "reverted migration");
        Ok(step)
    }

    async fn force_to(
        &mut self,
        version: i64,
        state: RowState,
        history: &[HistoryRow],
        legacy: &[LegacyTable],
        report: &mut Report,
    ) -> Result<(), Error> {
        if version < 0 || (version > 0 && self.set.get(version).is_none()) {
            return Err(Error::UnknownVersion { version, zero_allowed: true });
        }
        report.version_before = plan::current_version(history);
        let applied_by = self.driver.applied_by();
        let mut writes: Vec<HistoryRow> = Vec::new();
        let mut deletes: Vec<i64> = Vec::new();
        for m in self.set.migrations.iter().filter(|m| m.version <= version) {
            let recorded = history.iter().find(|r| r.version == m.version);
            if !recorded.is_some_and(|r| r.state.is_complete()) {
                writes.push(row_for(m, state, 0, &applied_by));
            }
        }
        deletes.extend(
            history
                .iter()
                .filter(|r| r.version > version || (!r.state.is_complete() && self.set.get(r.version).is_none()))
                .map(|r| r.version),
        );
        let complete_after: Vec<i64> =
            self.set.migrations.iter().map(|m| m.version).filter(|v| *v <= version).collect();
        let mut changes = Vec::new();
        for table in legacy {
            if let LegacyTable::GolangMigrate { .. } = table {
                changes.push(legacy::LegacySync::GolangSetVersion {
                    version: (version > 0).then_some(version),
                    dirty: false,
                });
                continue;
            }
            let sync = |v: i64, applied: bool| {
                legacy::sync_for(std::slice::from_ref(table), &self.set, v, applied, &complete_after, 0)
            };
            if let LegacyTable::Sqlx { rows } = table {
                // sqlx's own advice for a failed row is to fix the schema and remove the
                // row; force marks it successful when the forced version covers it.
                for failed in rows.iter().filter(|r| !r.success) {
                    changes.extend(sync(failed.version, failed.version <= version));
                }
            }
            for row in &writes {
                changes.extend(sync(row.version, true));
            }
            for v in &deletes {
                changes.extend(sync(*v, false));
            }
        }
        report.notices.push(
            format!(
                "{} recorded {} and removed {} history row(s); no migration SQL was run",
                if self.options.dry_run { "would have" } else { "" },
                writes.len(),
                deletes.len()
            )
            .trim_start()
            .to_string(),
        );
        report.version_after = (version > 0).then_some(version);
        if self.options.dry_run {
            return Ok(());
        }
        self.driver.begin().await?;
        let result = async {
            for row in &writes {
                self.driver.write_row(row).await?;
            }
            for v in &deletes {
                self.driver.delete_row(*v).await?;
            }
            for change in &changes {
                self.driver.sync_legacy(change).await?;
            }
            self.driver.commit().await
        }
        .await;
        if result.is_err() {
            let _ = self.driver.rollback().await;
        }
        result
    }

    async fn repair_checksums(&mut self, history: &[HistoryRow], report: &mut Report) -> Result<(), Error> {
        let mut fixed = Vec::new();
        for row in history.iter().filter(|r| r.state.is_complete()) {
            if let Some(m) = self.set.get(row.version) {
                if m.checksum != row.checksum {
                    fixed.push(HistoryRow { checksum: m.checksum.clone(), name: m.name.clone(), ..row.clone() });
                }
            }
        }
        report.version_before = plan::current_version(history);
        report.version_after = report.version_before;
        for row in &fixed {
            report.notices.push(format!("accepted the edited file for version {} ({})", row.version, row.name));
        }
        if fixed.is_empty() {
            report.notices.push("nothing to repair: every applied migration matches its file".into());
        }
        if self.options.dry_run || fixed.is_empty() {
            return Ok(());
        }
        self.driver.begin().await?;
        for row in &fixed {
            if let Err(e) = self.driver.write_row(row).await {
                let _ = self.driver.rollback().await;
                return Err(e);
            }
        }
        self.driver.commit().await
    }
}

fn refuse_problems(set: &MigrationSet) -> Result<(), Error> {
    if set.problems.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidFiles { problems: set.problems.clone() })
}

/// The statements of a script, without a `BEGIN; … COMMIT;` wrapper (the engine supplies
/// its own transaction).
fn statements_of(script: &Script, dialect: Dialect) -> Result<Vec<Statement<'_>>, Error> {
    let offset = script.first_line - 1;
    let mut statements = split(&script.sql, dialect).map_err(|e| Error::Syntax {
        file: script.origin.clone(),
        line: e.line + offset,
        column: e.column,
        message: e.message.clone(),
    })?;
    for statement in &mut statements {
        statement.line += offset;
    }
    let wrapped = statements.len() >= 2
        && statements[0].transaction_control() == Some(TransactionControl::Begin)
        && statements[statements.len() - 1].transaction_control() == Some(TransactionControl::Commit);
    if wrapped {
        statements.pop();
        statements.remove(0);
    }
    Ok(statements)
}

/// Where a statement starts in its file, for messages.
/// A migration's statement failed: which one, where, why, and what of the migration was kept.
fn failed_at(file: &str, index: usize, statements: &[Statement<'_>], cause: StatementError, outcome: String) -> Error {
    let statement = &statements[index];
    Error::StatementFailed {
        file: file.to_string(),
        statement: index + 1,
        statements: statements.len(),
        line: statement.line,
        column: statement.column,
        cause,
        outcome,
    }
}

fn position(statement: &Statement<'_>) -> String {
    format!("line {}, column {}", statement.line, statement.column)
}

fn render_dry_run(script: &Script, statements: &[Statement<'_>], resume_at: usize, bookkeeping: &str) -> String {
    let mut out = String::new();
    let mode = if script.transactional { "in one transaction" } else { "statement by statement, no transaction" };
    out.push_str(&format!("-- {} ({mode})\n", script.origin));
    if script.transactional {
        out.push_str("BEGIN;\n");
    }
    for statement in statements.iter().skip(resume_at) {
        out.push_str(statement.sql);
        out.push_str(";\n");
        if let Some(rows) = statement.copy_data {
            out.push_str(rows);
            out.push_str("\\.\n");
        }
    }
    out.push_str(&format!("-- then {bookkeeping}\n"));
    if script.transactional {
        out.push_str("COMMIT;\n");
    }
    out
}

fn row_for(m: &Migration, state: RowState, execution_ms: i64, applied_by: &str) -> HistoryRow {
    HistoryRow {
        version: m.version,
        name: m.name.clone(),
        checksum: m.checksum.clone(),
        state,
        applied_at: Utc::now(),
        execution_ms,
        applied_by: applied_by.to_string(),
        statements_done: 0,
        error: None,
    }
}

fn complete_versions(history: &[HistoryRow]) -> Vec<i64> {
    history.iter().filter(|r| r.state.is_complete()).map(|r| r.version).collect()
}

fn mark_complete(history: &mut Vec<HistoryRow>, row: HistoryRow) {
    history.retain(|r| r.version != row.version);
    history.push(row);
    history.sort_by_key(|r| r.version);
}
