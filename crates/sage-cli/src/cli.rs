use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, RangedU64ValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "sage-db",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SAGE_DB_REVISION"), ")"),
    about = "The database lifecycle for agent-identity services: migrate, validate, check, seed, back up, restore, clean up, monitor"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Worker threads the async runtime should have; `None` for one per core.
    pub fn runtime_threads(&self) -> Option<usize> {
        match self.command {
            Command::Bench { threads, .. } => threads,
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct Global {
    /// Database URL: postgres://… (several hosts: postgres://h1,h2/db), a libpq string
    /// (host=… dbname=…), sqlite://FILE, sqlite::memory: or memory://. Without it:
    /// DATABASE_URL, the DB_* or POSTGRES_* variables, PGHOST/PGDATABASE/PGSERVICE, then
    /// sqlite://sage.db.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Migrations only: connect here instead, directly to the server, when the database
    /// URL goes through a connection pooler in transaction mode (default: DIRECT_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub direct_url: Option<String>,

    /// Read variables from FILE before the environment (default: ./.env when present).
    #[arg(long = "env-file", global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,

    /// The same as --env-file, for every command.
    #[arg(long = "env", global = true, value_name = "FILE")]
    pub env: Option<PathBuf>,

    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// Log what happens (set SAGE_LOG=debug for more).
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print nothing but errors (and JSON with --json); the exit code tells the outcome.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Wait up to DURATION (default 60s) for a PostgreSQL server that is not accepting
    /// connections yet, retrying with backoff, before running the command.
    #[arg(long, global = true, value_name = "DURATION", num_args = 0..=1, default_missing_value = "60s", require_equals = true)]
    pub wait: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if needed, apply every pending migration and show the status.
    Up(ApplyArgs),
    /// Migrations: apply, revert, inspect and create.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Inspect and delete stored sessions (key material is never shown).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Claim nonces, one or many (from stdin), and see whether each was fresh.
    #[command(subcommand)]
    Nonce(NonceCommand),
    /// Read and write the DID cache.
    #[command(subcommand)]
    Did(DidCommand),
    /// Session-key encryption keys: generate and rotate.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Schemas: snapshot the migrations, validate the live database, render DDL, diff.
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// Back up the database: a file and a manifest (checksum, row counts, version).
    Backup(BackupArgs),
    /// Restore a backup after checking it; the previous contents stay if anything fails.
    Restore {
        /// The backup file (its manifest `FILE.manifest.json` sits beside it).
        file: PathBuf,
        /// age identity file for backups encrypted to a recipient.
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// Restore even though the backup is of a different schema (another migration
        /// history, or no table in common): the database's schema is replaced by the backup's.
        #[arg(long)]
        replace_schema: bool,
        /// Do not ask before replacing the database's contents.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Load per-environment seed data; running it again adds nothing.
    Seed {
        /// The environment to seed: dev or staging for SAGE's built-in seeds, any name with
        /// --seeds (default: SAGE_ENV, then dev).
        #[arg(long, value_name = "NAME")]
        environment: Option<String>,
        /// Directory of SQL seeds (`DIR/<env>/*.sql` or `DIR/<env>.sql`). Default: SAGE's
        /// built-in seeds (dev, staging).
        #[arg(long, value_name = "DIR")]
        seeds: Option<PathBuf>,
    },
    /// Delete expired sessions and nonces, and apply retention rules, in small batches.
    Cleanup {
        /// TOML file with `[[retention]]` rules (table, column, max_age, batch, unit).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Sizes, activity, slow and long-running queries, locks, dead tuples.
    Monitor {
        /// Refresh this often until interrupted (a bare number is seconds: 5, 500ms, 1m).
        #[arg(long, value_name = "DURATION")]
        watch: Option<String>,
    },
    /// Serve /health, /health/db, /metrics and a status page, and clean up in the background.
    Serve {
        /// Address to listen on (loopback unless told otherwise).
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port to listen on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// How often to delete expired sessions and nonces (e.g. 5m), or `off`.
        #[arg(long, default_value = "5m", value_name = "DURATION")]
        cleanup_every: String,
        /// Apply pending migrations before serving; without it, a database behind the
        /// expected version stops start-up.
        #[arg(long)]
        migrate: bool,
    },
    /// Bring the database to the newest migration; with --recreate, first drop everything
    /// the migrations created (asks first).
    Provision {
        #[command(flatten)]
        args: ApplyArgs,
        /// Revert every migration, then apply them all again: all their data is lost.
        #[arg(long)]
        recreate: bool,
        /// Do not ask before --recreate drops everything.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Create or drop the database itself (PostgreSQL database or SQLite file).
    #[command(subcommand)]
    Database(DatabaseCommand),
    /// Database roles from a config file.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Print PostgreSQL notifications on CHANNEL as they arrive (JSON lines with --json).
    Listen {
        /// The channel to LISTEN on.
        channel: String,
        /// Stop after this many notifications.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Measure the store: throughput and latency percentiles of a workload.
    Bench {
        /// What each operation does.
        #[arg(long, value_enum, default_value_t = Workload::NonceClaim)]
        workload: Workload,
        /// Concurrent clients (1 to 10000; each keeps state for the whole run).
        #[arg(long, default_value_t = 8, value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
        clients: usize,
        /// How long to run (e.g. 10s); default 10s unless --operations is given.
        #[arg(long, value_name = "DURATION")]
        duration: Option<String>,
        /// Stop after this many operations.
        #[arg(long, value_name = "N")]
        operations: Option<u64>,
        /// Sessions/DIDs to read from; for nonce-claim, a bounded nonce space (replays).
        #[arg(long, value_name = "N")]
        keys: Option<u64>,
        /// Lifetime of claimed nonces and created sessions.
        #[arg(long, default_value = "5m", value_name = "DURATION")]
        ttl: String,
        /// Delete expired rows this often during the run.
        #[arg(long, value_name = "DURATION")]
        cleanup_every: Option<String>,
        /// Print throughput and resident memory this often during the run (e.g. 10s).
        #[arg(long, value_name = "DURATION")]
        sample_every: Option<String>,
        /// Async runtime threads; 1 runs every client and connection on one thread, with no
        /// hand-offs between threads. Default: one per core. At most 256: the runtime
        /// panics when the system refuses a thread.
        #[arg(long, value_name = "N", value_parser = RangedU64ValueParser::<usize>::new().range(1..=256))]
        threads: Option<usize>,
    },
    /// One report on a database: connection, server, migrations, schema drift, tables.
    Check {
        #[command(flatten)]
        args: ReadArgs,
        /// Where the expected schema comes from (default: the migrations' snapshot).
        #[arg(long, value_name = "FILE")]
        snapshot: Option<PathBuf>,
        /// Leave findings of KIND out of the schema report (repeatable), e.g. `grant` when
        /// grants are managed elsewhere; the report names each ignored kind as not checked.
        #[arg(long, value_name = "KIND", value_parser = finding_kinds(), hide_possible_values = true)]
        ignore: Vec<String>,
    },
    /// Print a shell completion script (e.g. `sage-db completions bash > /etc/bash_completion.d/sage-db`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page in roff (e.g. `sage-db man > sage-db.1; man ./sage-db.1`).
    Man,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    /// Directory for backups.
    #[arg(long, value_name = "DIR", default_value = "./backups")]
    pub dir: PathBuf,
    /// PostgreSQL: the dump's format (SQLite backups are a database file).
    #[arg(long, value_enum, default_value_t = BackupFormat::Custom)]
    pub format: BackupFormat,
    /// Encrypt with age using the passphrase in SAGE_BACKUP_PASSPHRASE.
    #[arg(long)]
    pub encrypt: bool,
    /// Encrypt with age to this recipient (age1…); repeat for several.
    #[arg(long, value_name = "AGE_RECIPIENT", conflicts_with = "encrypt")]
    pub recipient: Vec<String>,
    /// Keep only the newest N backups in the directory.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Remove backups older than this (e.g. 30d).
    #[arg(long, value_name = "AGE")]
    pub max_age: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Check a backup's manifest and checksum, restore it into a scratch database and
    /// compare the row counts.
    Verify {
        /// The backup file (its manifest `FILE.manifest.json` sits beside it).
        file: PathBuf,
        /// age identity file for backups encrypted to a recipient.
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
    },
}

#[derive(Debug, Args, Clone)]
pub struct ExpectedArgs {
    /// Migration directory whose schema is expected (its schema.json when present,
    /// otherwise replayed). Default: SAGE's own migrations.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// A snapshot file (schema.json) to compare with instead.
    #[arg(long, value_name = "FILE", conflicts_with = "source")]
    pub snapshot: Option<PathBuf>,
    /// An empty PostgreSQL database to replay migrations into, instead of a temporary
    /// database created on the server of --database-url.
    #[arg(long, value_name = "URL")]
    pub dev_url: Option<String>,
    /// Replay the migrations even when a schema.json sits beside them.
    #[arg(long)]
    pub replay: bool,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Replay migrations into a scratch database and write schema.json and schema.sql
    /// beside them (or into --out).
    Dump {
        #[command(flatten)]
        expected: ExpectedArgs,
        /// Directory to write the snapshot to (default: the migration directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Write nothing; exit 1 when the committed snapshot is not current.
        #[arg(long)]
        check: bool,
    },
    /// Compare the live database with the expected schema; every difference at once.
    /// Exit 0 clean, 1 drift, 2 could not check.
    Validate {
        #[command(flatten)]
        expected: ExpectedArgs,
        /// Extra objects are errors, not warnings.
        #[arg(long)]
        strict: bool,
        /// Leave findings of KIND out (repeatable), e.g. `grant` or `owner` when they are
        /// managed elsewhere; the report names each ignored kind as not checked.
        #[arg(long, value_name = "KIND", value_parser = finding_kinds())]
        ignore: Vec<String>,
    },
    /// Print the DDL that recreates the expected schema (or, with --live, the database's).
    Sql {
        #[command(flatten)]
        expected: ExpectedArgs,
        /// Render the live database instead.
        #[arg(long)]
        live: bool,
    },
    /// The DDL from FROM to TO; each is a database URL, a migration directory or a
    /// schema.json file.
    Diff {
        /// Where to start: a database URL, a migration directory or a schema.json file.
        from: String,
        /// Where to get to: a database URL, a migration directory or a schema.json file.
        to: String,
        /// Include steps that lose data (dropped tables or columns, type rewrites).
        #[arg(long)]
        allow_destructive: bool,
        /// Save the result as the next migration NAME in --source DIR (with the reverse
        /// diff as its down script where the format has one).
        #[arg(long, value_name = "NAME", requires = "source")]
        write: Option<String>,
        /// The migration directory --write adds to.
        #[arg(long, value_name = "DIR")]
        source: Option<PathBuf>,
        /// An empty PostgreSQL database for replaying migration directories.
        #[arg(long, value_name = "URL")]
        dev_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Live sessions, newest first: of a client, of a server, or all of them.
    List {
        /// Sessions whose client is this DID.
        #[arg(long, value_name = "DID", conflicts_with = "server")]
        client: Option<String>,
        /// Sessions whose server is this DID.
        #[arg(long, value_name = "DID")]
        server: Option<String>,
        /// At most this many sessions (default: 100 with --client or --server; without
        /// them, every live session, read a page at a time).
        #[arg(long)]
        limit: Option<u32>,
        /// Skip this many first.
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
    /// One session.
    Get {
        /// The session id.
        id: String,
    },
    /// Delete a session (its nonces stay used until they expire).
    Delete {
        /// The session id.
        id: String,
        /// Do not ask; delete.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NonceCommand {
    /// Claim NONCE, or every line of stdin with `-` (one answer per line). Exit code 1
    /// when a single nonce was a replay.
    Claim {
        /// The nonce, or `-` to read one nonce per line from stdin.
        nonce: String,
        /// The session the nonce belongs to.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// How long the nonce stays used (e.g. 5m).
        #[arg(long, default_value = "5m", value_name = "DURATION")]
        ttl: String,
    },
    /// Whether NONCE is used and not yet expired.
    IsUsed {
        /// The nonce.
        nonce: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DidCommand {
    /// One cached DID.
    Get {
        /// The DID.
        did: String,
    },
    /// Insert or replace a cached DID.
    Put {
        /// The DID.
        did: String,
        /// Public key, hex (or base64 with a `base64:` prefix).
        #[arg(long, value_name = "KEY")]
        public_key: String,
        /// The owner's address (e.g. an Ethereum address).
        #[arg(long, value_name = "ADDRESS")]
        owner: String,
        /// The public key's type (any case; p256 and p384 without the dash too).
        #[arg(long, value_enum, ignore_case = true, default_value_t = KeyTypeArg::Ed25519)]
        key_type: KeyTypeArg,
        /// Key-agreement (X25519) public key, hex or `base64:`.
        #[arg(long, value_name = "KEY")]
        key_agreement_key: Option<String>,
        /// The DID's service endpoint.
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// A capability; repeat for several.
        #[arg(long = "capability", value_name = "NAME")]
        capabilities: Vec<String>,
        /// Resolve again after this long (e.g. 10m).
        #[arg(long, value_name = "DURATION")]
        stale_after: Option<String>,
        /// Store it as revoked.
        #[arg(long)]
        revoked: bool,
    },
    /// Mark a DID revoked.
    Revoke {
        /// The DID.
        did: String,
    },
    /// Cached DIDs, newest first: of an owner address, or all of them.
    List {
        /// Only the DIDs of this owner address (default: every cached DID, read a page at a
        /// time).
        #[arg(long, value_name = "ADDRESS")]
        owner: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatabaseCommand {
    /// Create the database when it does not exist (PostgreSQL: from the maintenance
    /// database "postgres", as the same role; SQLite: an empty file). Exits 0 either way.
    Create,
    /// Drop the database and everything in it (asks first). Exits 0 when it does not exist.
    Drop {
        /// Do not ask; drop.
        #[arg(long, short = 'y')]
        yes: bool,
        /// PostgreSQL 13+: end other sessions on the database first (`WITH (FORCE)`);
        /// without it the drop fails while anyone is connected.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Create the roles and grant what the file says, in one transaction (PostgreSQL).
    Apply {
        /// The roles file (TOML: roles, their grants and options).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Print the statements; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new key to a key file (created with mode 0600 if missing); it becomes the key
    /// that seals new session keys. Prints the key's id, never the key.
    Generate {
        /// The key file. Default: SAGE_SESSION_KEY_FILE, or the file beside a SQLite database.
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Re-seal every stored session key with the current key, and seal key material an
    /// older SAGE database holds in plaintext.
    Rotate,
}

/// The tool `--keep-in-step` keeps in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeepInStep {
    GolangMigrate,
    Sqlx,
    Dbmate,
    // The tool whose layout the migration directory has (no help text of its own, so
    // `--help` keeps the short layout).
    Auto,
}

/// Where the migrations are and where their history is kept: what every migration command
/// needs, including those that only read.
#[derive(Debug, Args, Clone)]
pub struct MigrationSource {
    /// Directory of migration files (golang-migrate, sqlx or dbmate format).
    /// Without it, SAGE's own migrations compiled into this binary.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,

    /// History table, optionally schema-qualified.
    #[arg(long, value_name = "TABLE", default_value = sage_migrate::DEFAULT_HISTORY_TABLE)]
    pub history_table: String,
}

/// For commands that only read the migration state and judge it.
#[derive(Debug, Args, Clone)]
pub struct ReadArgs {
    #[command(flatten)]
    pub from: MigrationSource,

    /// Judge unapplied migrations older than the newest applied one as a warning, not an
    /// error (as they are when `up --allow-out-of-order` is how they get applied).
    #[arg(long)]
    pub allow_out_of_order: bool,
}

/// For commands that change the database's migration state.
#[derive(Debug, Args, Clone)]
pub struct WriteArgs {
    #[command(flatten)]
    pub from: MigrationSource,

    /// How long to wait for another process's migration lock, and how long a statement of a
    /// transactional migration waits for a table lock before the migration fails whole
    /// (e.g. 30s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub lock_timeout: String,

    /// Create this tool's bookkeeping table when it is missing and keep it in step, so the
    /// tool works on this database from its first run; `auto` picks the tool whose layout
    /// the directory has (dbmate's sections, sqlx's single files).
    #[arg(long, value_name = "TOOL", value_enum, env = "SAGE_KEEP_IN_STEP")]
    pub keep_in_step: Option<KeepInStep>,

    /// Show the SQL that would run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// For commands that apply migrations.
#[derive(Debug, Args, Clone)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub write: WriteArgs,

    /// Apply migrations older than the newest applied one instead of refusing.
    #[arg(long)]
    pub allow_out_of_order: bool,
}

/// What a migration command was given, whichever of the argument sets above it takes; what
/// a command does not take has its default (nothing is written without a write command).
#[derive(Debug, Clone)]
pub struct MigrationArgs {
    pub source: Option<PathBuf>,
    pub lock_timeout: String,
    pub history_table: String,
    pub allow_out_of_order: bool,
    pub keep_in_step: Option<KeepInStep>,
    pub dry_run: bool,
    /// Do not ask before reverting migrations.
    pub yes: bool,
}

impl From<&MigrationSource> for MigrationArgs {
    fn from(from: &MigrationSource) -> MigrationArgs {
        MigrationArgs {
            source: from.source.clone(),
            lock_timeout: "60s".into(),
            history_table: from.history_table.clone(),
            allow_out_of_order: false,
            keep_in_step: None,
            dry_run: false,
            yes: false,
        }
    }
}

impl From<&ReadArgs> for MigrationArgs {
    fn from(args: &ReadArgs) -> MigrationArgs {
        MigrationArgs { allow_out_of_order: args.allow_out_of_order, ..MigrationArgs::from(&args.from) }
    }
}

impl From<&WriteArgs> for MigrationArgs {
    fn from(args: &WriteArgs) -> MigrationArgs {
        MigrationArgs {
            lock_timeout: args.lock_timeout.clone(),
            keep_in_step: args.keep_in_step,
            dry_run: args.dry_run,
            ..MigrationArgs::from(&args.from)
        }
    }
}

impl From<&ApplyArgs> for MigrationArgs {
    fn from(args: &ApplyArgs) -> MigrationArgs {
        MigrationArgs { allow_out_of_order: args.allow_out_of_order, ..MigrationArgs::from(&args.write) }
    }
}

impl MigrationArgs {
    /// With `--yes` as given.
    pub fn answering(self, yes: bool) -> MigrationArgs {
        MigrationArgs { yes, ..self }
    }
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations: all, the next N, or through version V.
    Up {
        #[command(flatten)]
        args: ApplyArgs,
        /// Apply only the next N.
        steps: Option<u32>,
        /// Apply through this version.
        #[arg(long, value_name = "V", conflicts_with = "steps")]
        to: Option<i64>,
    },
    /// Revert applied migrations: the last one, the last N, down to V, or all.
    Down {
        #[command(flatten)]
        args: WriteArgs,
        /// Revert the last N (default 1).
        steps: Option<u32>,
        /// Revert every migration newer than V.
        #[arg(long, value_name = "V", conflicts_with_all = ["steps", "all"])]
        to: Option<i64>,
        /// Revert every migration.
        #[arg(long, conflicts_with = "steps")]
        all: bool,
        /// Do not ask for confirmation before reverting migrations.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Apply or revert until the database is exactly at version V (0 = empty).
    Goto {
        #[command(flatten)]
        args: ApplyArgs,
        /// The version to end at (0 = empty).
        version: i64,
        /// Do not ask for confirmation before reverting migrations.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Record that migrations through V are applied, running nothing (0 = none).
    Force {
        #[command(flatten)]
        args: WriteArgs,
        /// The version to record as the newest applied (0 = none).
        version: i64,
    },
    /// Show every migration and its state.
    Status {
        #[command(flatten)]
        args: ReadArgs,
        /// Exit with 1 when migrations are pending or files have problems.
        #[arg(long)]
        exit_code: bool,
    },
    /// Print the current version.
    Version {
        #[command(flatten)]
        args: MigrationSource,
    },
    /// Report edited, missing, out-of-order and unreadable migrations, all at once.
    Validate {
        #[command(flatten)]
        args: ReadArgs,
    },
    /// Create the next migration file(s) in the directory's own format.
    Create {
        /// The migration directory to add to (its format decides the files' names).
        #[arg(long, value_name = "DIR")]
        source: Option<PathBuf>,
        /// Show the files that would be created; create nothing.
        #[arg(long)]
        dry_run: bool,
        /// What the migration does, as the file name's words (e.g. add_users).
        name: String,
    },
    /// Take over a database whose schema exists but was made without a migration tool (an
    /// ORM's create_all, a hand-run script): finds the newest migration prefix whose replayed
    /// schema equals the live one and records it as applied; changes nothing if none does.
    Adopt {
        #[command(flatten)]
        args: WriteArgs,
        /// A scratch PostgreSQL server to replay the migrations on (default: a scratch
        /// database beside the target).
        #[arg(long, value_name = "URL")]
        dev_url: Option<String>,
    },
    /// Record migrations through V as already present, for a schema created by hand.
    Baseline {
        #[command(flatten)]
        args: WriteArgs,
        /// The newest version to record as present.
        version: i64,
    },
    /// Accept the current contents of edited migration files as applied.
    Repair {
        #[command(flatten)]
        args: WriteArgs,
    },
}

/// `bench --workload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Claim a fresh nonce.
    NonceClaim,
    /// Read a session.
    SessionGet,
    /// Record a message on a session.
    SessionTouch,
    /// Create a session.
    SessionCreate,
    /// Read a cached DID.
    DidGet,
    /// Claim a nonce, read its session and touch it.
    Mixed,
    /// Claim a message's nonce, then touch its session: two calls.
    ClaimTouch,
    /// The same as claim-touch in one atomic call (`Store::accept`).
    Accept,
}

impl From<Workload> for sage_ops::bench::Workload {
    fn from(w: Workload) -> Self {
        use sage_ops::bench::Workload as W;
        match w {
            Workload::NonceClaim => W::NonceClaim,
            Workload::SessionGet => W::SessionGet,
            Workload::SessionTouch => W::SessionTouch,
            Workload::SessionCreate => W::SessionCreate,
            Workload::DidGet => W::DidGet,
            Workload::Mixed => W::Mixed,
            Workload::ClaimTouch => W::ClaimTouch,
            Workload::Accept => W::Accept,
        }
    }
}

/// `backup --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackupFormat {
    /// pg_dump's custom format (pg_dump -Fc).
    Custom,
    /// Plain SQL, gzip-compressed.
    #[value(name = "sql.gz")]
    SqlGz,
}

/// `did put --key-type`, spelled as SAGE stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    /// Ed25519 signatures.
    #[value(name = "Ed25519")]
    Ed25519,
    /// ECDSA on secp256k1 (Ethereum's curve).
    #[value(name = "Secp256k1")]
    Secp256k1,
    /// X25519 key agreement.
    #[value(name = "X25519")]
    X25519,
    /// ECDSA on NIST P-256.
    #[value(name = "P-256", alias = "p256")]
    P256,
    /// ECDSA on NIST P-384.
    #[value(name = "P-384", alias = "p384")]
    P384,
}

impl From<KeyTypeArg> for sage_store::KeyType {
    fn from(key_type: KeyTypeArg) -> sage_store::KeyType {
        match key_type {
            KeyTypeArg::Ed25519 => sage_store::KeyType::Ed25519,
            KeyTypeArg::Secp256k1 => sage_store::KeyType::Secp256k1,
            KeyTypeArg::X25519 => sage_store::KeyType::X25519,
            KeyTypeArg::P256 => sage_store::KeyType::P256,
            KeyTypeArg::P384 => sage_store::KeyType::P384,
        }
    }
}

/// The kinds of schema finding `--ignore` takes, spelled with dashes (`foreign-key`); the
/// schema library reads dashes as spaces.
fn finding_kinds() -> PossibleValuesParser {
    // clap takes static names; the dashed spellings are made once per process.
    static DASHED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let dashed = DASHED.get_or_init(|| {
        sage_schema::finding_kinds().into_iter().map(|k| &*Box::leak(k.replace(' ', "-").into_boxed_str())).collect()
    });
    PossibleValuesParser::new(dashed.iter().map(|kind| {
        let value = PossibleValue::new(*kind);
        if *kind == "row-level-security" {
            value.alias("rls")
        } else {
            value
        }
    }))
}

/// The tools `--keep-in-step` knows.
#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command and every argument says what it is for in `--help`.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                // A positional argument named `version` is the command's own, not --version.
                let builtin = !arg.is_positional() && matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(format!("{sub_path} (command)"));
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "sage-db", &mut missing);
        assert!(missing.is_empty(), "{} without help:\n{}", missing.len(), missing.join("\n"));
    }

    /// Commands that only read take no flag that only matters for writing: a `--dry-run`
    /// or `--yes` there would suggest that the command could change something.
    #[test]
    fn read_only_commands_take_no_write_flags() {
        use clap::Parser;
        let parse = |args: &[&str]| super::Cli::try_parse_from([&["sage-db"], args].concat());
        let read_only: [&[&str]; 4] =
            [&["migrate", "status"], &["migrate", "version"], &["migrate", "validate"], &["check"]];
        for command in read_only {
            assert!(parse(command).is_ok(), "{command:?}");
            for flag in ["--dry-run", "--yes", "--lock-timeout=5s", "--keep-in-step=sqlx"] {
                let err = parse(&[command, &[flag]].concat()).expect_err(&format!("{command:?} {flag}"));
                assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument, "{command:?} {flag}");
            }
        }
        assert!(parse(&["migrate", "version", "--allow-out-of-order"]).is_err());
        assert!(parse(&["migrate", "status", "--allow-out-of-order", "--source", "m"]).is_ok());
        // Only what reverts asks, so only that takes --yes; every write takes --dry-run.
        assert!(parse(&["migrate", "down", "--yes", "--dry-run", "--lock-timeout=5s"]).is_ok());
        assert!(parse(&["migrate", "goto", "3", "-y"]).is_ok());
        assert!(parse(&["provision", "--recreate", "-y"]).is_ok());
        for command in [&["migrate", "up"][..], &["migrate", "force", "1"], &["migrate", "repair"], &["up"]] {
            assert!(parse(&[command, &["--dry-run"]].concat()).is_ok(), "{command:?}");
            assert!(parse(&[command, &["--yes"]].concat()).is_err(), "{command:?} asks nothing");
        }
        assert!(parse(&["migrate", "down", "--allow-out-of-order"]).is_err(), "reverting applies nothing");
        assert!(parse(&["migrate", "create", "x", "--lock-timeout=5s"]).is_err(), "create connects to nothing");
        assert!(parse(&["migrate", "create", "x", "--source", "m", "--dry-run"]).is_ok());
    }
}
