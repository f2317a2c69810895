//! Turning command-line options into settings, a migration set and run options.

use std::time::Duration;

use anyhow::{bail, Context as _};
use sage_conn::{DurationField, Environment, Origin, Settings, Target};
use sage_migrate::{Dialect, Format, MigrationSet, Peer, RunOptions};

use crate::cli::{Global, KeepInStep, MigrationArgs};

/// The resolved database for this invocation.
pub struct Database {
    pub settings: Settings,
    pub env: Environment,
    /// `--direct-url` or `DIRECT_URL`: where migrations connect when the database URL goes
    /// through a pooler.
    pub direct: Option<Settings>,
}

impl Database {
    /// Resolves the database, reading `--env-file` (or its other spelling `--env`) first.
    pub fn resolve(global: &Global) -> anyhow::Result<Database> {
        let file = global.env_file.clone().or_else(|| global.env.clone());
        let env = Environment::from_process(file.as_deref())?;
        let settings = Settings::resolve(global.database_url.as_deref().map(|url| ("--database-url", url)), &env)?;
        let direct = match (&global.direct_url, env.get("DIRECT_URL")) {
            (Some(url), _) => Some(Settings::parse_with("--direct-url", url, Origin::Flag, &env)?),
            (None, Some(url)) => Some(Settings::parse_with("DIRECT_URL", url, Origin::Flag, &env)?),
            (None, None) => None,
        };
        Ok(Database { settings, env, direct })
    }

    /// Where migrations run: the direct URL when one is given, else the database URL.
    pub fn migration_target(&self) -> &Target {
        self.direct.as_ref().map_or(&self.settings.target, |d| &d.target)
    }

    pub fn dialect(&self) -> anyhow::Result<Dialect> {
        match &self.settings.target {
            Target::Postgres(_) => Ok(Dialect::Postgres),
            Target::Sqlite(_) => Ok(Dialect::Sqlite),
            Target::Memory => bail!("memory:// keeps no schema to migrate; use a postgres:// or sqlite:// URL"),
        }
    }

    /// Opens SAGE's store with the zero-configuration defaults (see
    /// `sage_store::OpenOptions::defaults_for`), telling the operator what it set up.
    pub async fn open_store(&self) -> anyhow::Result<sage_store::Store> {
        let options = sage_store::OpenOptions::defaults_for(&self.settings.target, &self.env);
        let store = sage_store::Store::open(&self.settings.target, options).await?;
        for notice in store.notices() {
            eprintln!("note: {notice}");
        }
        Ok(store)
    }

    /// `url (origin)` for headers, with the password redacted. The library does not know
    /// this binary's option names; a URL given on the command line is named by its option.
    pub fn describe(&self) -> String {
        match self.settings.origin {
            Origin::Flag => format!("{} (--database-url)", self.settings),
            origin => format!("{} ({origin})", self.settings),
        }
    }
}

/// `--wait`: how long to wait for a server that is not accepting connections yet.
const WAIT: DurationField<'static> = DurationField::new("--wait").zero_allowed().at_most(Duration::from_secs(86_400));

/// Waits, with backoff, until the PostgreSQL server behind `global`'s settings accepts a
/// connection or answers with anything but "not reachable" / "starting up" (a missing
/// database, say, is for the command to handle). SQLite and memory targets do not wait.
pub async fn wait_for_server(global: &Global) -> anyhow::Result<()> {
    let Some(wait) = &global.wait else { return Ok(()) };
    let limit = WAIT.parse(wait)?;
    let db = Database::resolve(global)?;
    let Target::Postgres(pg) = db.migration_target() else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(100);
    let mut told = false;
    loop {
        let attempt = Duration::from_secs(5).min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let error = match sage_conn::connect_with_timeout(pg, attempt.max(Duration::from_millis(100))).await {
            Ok(_) => return Ok(()),
            Err(e) if !still_starting(&e) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() + pause > deadline {
            return Err(
                anyhow::Error::new(error).context(format!("the server did not accept connections within {wait}"))
            );
        }
        if !told {
            crate::output::note(&format!("waiting up to {wait} for {}", db.describe()));
            told = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// An error that waiting can cure: nothing listens yet, or the server is starting, shutting
/// down or recovering (SQLSTATE 57P03).
fn still_starting(error: &sage_conn::Error) -> bool {
    if error.kind() == sage_conn::ErrorKind::Unreachable {
        return true;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(db) = e.downcast_ref::<tokio_postgres::Error>().and_then(|p| p.as_db_error()) {
            return db.code() == &tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW;
        }
        cause = e.source();
    }
    false
}

/// The migrations a command works on: `--source DIR`, or SAGE's own.
pub async fn migration_set(args: &MigrationArgs, dialect: Dialect) -> anyhow::Result<MigrationSet> {
    match &args.source {
        Some(dir) => read_migrations(dir, dialect).await,
        None => Ok(sage_store::migrations(dialect)),
    }
}

/// Reads a migration directory (every file, hashed) on the blocking pool, off the runtime.
pub async fn read_migrations(dir: &std::path::Path, dialect: Dialect) -> anyhow::Result<MigrationSet> {
    let dir = dir.to_path_buf();
    blocking(move || Ok(MigrationSet::from_dir(&dir, dialect)?)).await
}

/// Runs file work on tokio's blocking pool: a runtime worker never waits on a disk.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await?
}

pub fn describe_set(set: &MigrationSet) -> String {
    match &set.dir {
        Some(dir) => format!("{} ({}, {} migrations)", dir.display(), set.format.name(), set.migrations.len()),
        None => format!("SAGE's embedded {} migrations ({})", set.dialect.name(), set.migrations.len()),
    }
}

/// `--lock-timeout`: zero means "try once, do not wait". SQLite's busy timeout and
/// PostgreSQL's `lock_timeout` hold at most 2^31-1 milliseconds (24.8 days), so the
/// limit is 24 days rather than the general one.
const LOCK_TIMEOUT: DurationField<'static> =
    DurationField::new("--lock-timeout").zero_allowed().at_most(Duration::from_secs(24 * 86_400));

pub fn run_options(args: &MigrationArgs, set: &MigrationSet) -> anyhow::Result<RunOptions> {
    sage_migrate::check_history_table(&args.history_table).context("--history-table")?;
    Ok(RunOptions {
        lock_timeout: LOCK_TIMEOUT.parse(&args.lock_timeout)?,
        allow_out_of_order: args.allow_out_of_order,
        dry_run: args.dry_run,
        history_table: args.history_table.clone(),
        keep_in_step: keep_in_step(args.keep_in_step, set)?,
    })
}

/// The tool `--keep-in-step` (or `SAGE_KEEP_IN_STEP`) names; `auto` is the one whose layout
/// the directory unambiguously has.
fn keep_in_step(choice: Option<KeepInStep>, set: &MigrationSet) -> anyhow::Result<Option<Peer>> {
    Ok(match choice {
        None => None,
        Some(KeepInStep::GolangMigrate) => Some(Peer::GolangMigrate),
        Some(KeepInStep::Sqlx) => Some(Peer::Sqlx),
        Some(KeepInStep::Dbmate) => Some(Peer::Dbmate),
        Some(KeepInStep::Auto) => match (&set.dir, set.format) {
            (None, _) => bail!("--keep-in-step auto: SAGE's embedded migrations belong to no other tool; give --source or leave it out"),
            (Some(_), Format::Dbmate) => Some(Peer::Dbmate),
            (Some(_), Format::Simple) => Some(Peer::Sqlx),
            (Some(dir), Format::UpDown) => bail!(
                "--keep-in-step auto: {} holds .up.sql/.down.sql pairs, the layout of golang-migrate and of sqlx's reversible migrations alike; name the tool (golang-migrate or sqlx)",
                dir.display()
            ),
        },
    })
}
