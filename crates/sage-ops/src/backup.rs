//! `backup`: a consistent copy of a database with a manifest that lets `restore` prove it
//! intact before touching anything.
//!
//! PostgreSQL: row counts are taken in a repeatable-read transaction whose snapshot
//! `pg_dump --snapshot` then dumps, so the manifest describes exactly the dumped data.
//! SQLite: the online backup API copies the database, and the counts are read from the copy.
//! SQLite: the online backup API copies the database into memory, and the counts are read
//! from the copy; no unencrypted copy is ever written to disk.
//! Either way the file is written under a `.partial` name (mode 0600), synced and renamed,
//! and the manifest (0600, sealed when the backup is encrypted) is written last: a backup
//! interrupted at any point leaves nothing `restore` accepts, and the next backup into the
//! same directory removes the leftover `.partial` file. A write error (a full disk) stops
//! pg_dump at once, ends the snapshot's transaction and removes the partial file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sage_conn::{quote_ident, PgSettings, SqliteLocation, Target};
use serde::Serialize;

use crate::manifest::{manifest_path, Applied, Manifest, MANIFEST_FORMAT};
use crate::sink::{sync_dir, Encryption, Sink};
use crate::{blocking, tools, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgFormat {
    /// `pg_dump -Fc`: compressed, restorable selectively.
    Custom,
    /// Plain SQL, gzip-compressed: `sage_backup_YYYYMMDD_HHMMSS.sql.gz`, as SAGE's scripts made.
    SqlGz,
}

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub dir: PathBuf,
    pub format: PgFormat,
    pub encryption: Encryption,
    /// Keep only the newest N backups in `dir`.
    pub keep: Option<usize>,
    /// Remove backups in `dir` older than this.
    pub max_age: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub file: PathBuf,
    pub manifest: Manifest,
    /// Older backups removed by retention.
    pub pruned: Vec<PathBuf>,
    /// PostgreSQL: the pg_dump that wrote it and why that one, e.g. `pg_dump 16.14
    /// (/usr/lib/postgresql/16/bin/pg_dump): the server's own major version`.
    pub client: Option<String>,
}

/// Told the number of bytes written so far, as `dumping`.
pub use sage_conn::Progress;

pub async fn backup(target: &Target, options: &BackupOptions, progress: Progress) -> Result<BackupReport, Error> {
    let dir = options.dir.clone();
    // Waiting for another backup's lock can take as long as that backup.
    let (_lock, leftovers) = blocking::run("preparing the backup directory", move || {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create backup directory", &dir, e))?;
        // One backup at a time per directory: while the lock is held, a `.partial` file can
        // only be the remains of a run that was killed.
        let lock = DirLock::take(&dir)?;
        let leftovers = remove_partials(&dir)?;
        Ok((lock, leftovers))
    })
    .await?;
    let now = Utc::now();
    let mut client = None;
    let manifest = match target {
        Target::Postgres(pg) => {
            let (manifest, tool) = backup_postgres(pg, options, now, progress).await?;
            client = Some(tool);
            manifest
        }
        Target::Sqlite(SqliteLocation::File(path)) => {
            let (path, options) = (path.clone(), options.clone());
            blocking::run("backup", move || backup_sqlite(&path, &options, now, progress)).await?
        }
        Target::Sqlite(SqliteLocation::InMemory) | Target::Memory => {
            return Err(Error::invalid("an in-memory database has nothing to back up"))
        }
    };
    let file = options.dir.join(&manifest.file);
    let mut pruned = {
        let (dir, keep, max_age, file) = (options.dir.clone(), options.keep, options.max_age, file.clone());
        blocking::run("removing old backups", move || prune(&dir, keep, max_age, now, &file)).await?
    };
    pruned.extend(leftovers);
    Ok(BackupReport { file, manifest, pruned, client })
}

/// An exclusive lock on `DIR/.sage-backup.lock` for the duration of a backup.
#[derive(Debug)]
struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(".sage-backup.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io("cannot open", &path, e))?;
        file.lock().map_err(|e| Error::io("cannot lock", &path, e))?;
        Ok(DirLock { _file: file })
    }
}

/// Removes `.partial` files left by killed backups; only called under the directory lock.
fn remove_partials(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        let path = entry.map_err(|e| Error::io("cannot list", dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        // Files and symbolic links alike: a link left under a `.partial` name would
        // otherwise receive the next backup's bytes wherever it points.
        let kind = std::fs::symlink_metadata(&path).map(|m| m.file_type());
        let removable = kind.is_ok_and(|k| k.is_file() || k.is_symlink());
        if name.starts_with("sage_backup_") && name.ends_with(".partial") && removable {
            std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove unfinished backup", &path, e))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

fn file_name(dir: &Path, now: DateTime<Utc>, extension: &str) -> PathBuf {
    let stem = format!("sage_backup_{}", now.format("%Y%m%d_%H%M%S"));
    let mut candidate = dir.join(format!("{stem}.{extension}"));
    let mut n = 2;
    while candidate.exists() || manifest_path(&candidate).exists() {
        candidate = dir.join(format!("{stem}_{n}.{extension}"));
        n += 1;
    }
    candidate
}

fn write_manifest(file: &Path, manifest: &Manifest) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = manifest_path(file);
    let tmp = crate::sink::partial_path(&path);
    let text = serde_json::to_string_pretty(manifest).expect("the manifest serialises");
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut out = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("cannot write", &tmp, e));
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot write", &path, e))?;
    sync_dir(&path);
    Ok(())
}

async fn backup_postgres(
    pg: &PgSettings,
    options: &BackupOptions,
    now: DateTime<Utc>,
    progress: Progress,
) -> Result<(Manifest, String), Error> {
    let client = sage_conn::connect(pg).await?;
    let major = tools::server_major(&client).await?;
    // Finding the right pg_dump runs each candidate's `--version`.
    let pg_dump =
        blocking::run("looking for pg_dump", move || tools::find("pg_dump", tools::Purpose::Dump { server: major }))
            .await?;
    tracing::info!(client = %pg_dump.describe(), "dumping with");
    let q = |e: tokio_postgres::Error| Error::database("cannot read the database for the backup", e);
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(q)?;
    let snapshot: String = client.query_one("SELECT pg_export_snapshot()", &[]).await.map_err(q)?.get(0);
    let server_version: String = client.query_one("SHOW server_version", &[]).await.map_err(q)?.get(0);
    let tables = pg_row_counts(&client).await?;
    let history = pg_history(&client).await?;
    let migration_version = history.last().map(|applied| applied.version);

    let (extension, gzip, format_flag) = match options.format {
        PgFormat::Custom => ("dump", false, "-Fc"),
        PgFormat::SqlGz => ("sql.gz", true, "-Fp"),
    };
    let extension =
        if matches!(options.encryption, Encryption::None) { extension.to_string() } else { format!("{extension}.age") };
    let file = file_name(&options.dir, now, &extension);
    let mut command = tools::command(&pg_dump, pg);
    // Owners, grants and default privileges are kept (restore re-applies them, skipping
    // roles the target server lacks); UTF-8 so the dump can be replayed on sage-db's own
    // connection whatever the database's encoding.
    command.args([format_flag, "--encoding=UTF8", &format!("--snapshot={snapshot}")]);
    let sealed = {
        let (file, encryption) = (file.clone(), options.encryption.clone());
        blocking::run("pg_dump", move || {
            // Creating the file includes deriving the key of a passphrase (scrypt).
            let sink = Sink::create(&file, &encryption, gzip)?;
            run_into_sink(command, sink, &file, progress)
        })
        .await?
    };
    client.batch_execute("COMMIT").await.map_err(q)?;
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        file: file.file_name().unwrap().to_string_lossy().into_owned(),
        dialect: "postgres".into(),
        kind: match options.format {
            PgFormat::Custom => "custom".into(),
            PgFormat::SqlGz => "sql.gz".into(),
        },
        encryption: options.encryption.name().into(),
        sha256: sealed.sha256,
        size: sealed.size,
        created_at: now.to_rfc3339(),
        tool_version: format!("sage-db {}", env!("CARGO_PKG_VERSION")),
        server_version: format!("PostgreSQL {server_version}"),
        client_version: Some(pg_dump.version.clone()),
        migration_version,
        history,
        tables,
        privileges: true,
        seal: None,
    };
    let (file, encryption) = (file.clone(), options.encryption.clone());
    let manifest = blocking::run("writing the manifest", move || {
        manifest.seal(&encryption)?;
        write_manifest(&file, &manifest)?;
        Ok(manifest)
    })
    .await?;
    Ok((manifest, pg_dump.describe()))
}

fn run_into_sink(
    mut command: std::process::Command,
    mut sink: Sink,
    file: &Path,
    progress: Progress,
) -> Result<crate::sink::Sealed, Error> {
    use std::io::Write;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::invalid(format!("cannot run pg_dump: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut buf = vec![0u8; 1 << 16];
    let copied: Result<(), std::io::Error> = (|| loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        sink.write_all(&buf[..n])?;
        progress.bytes("dumping", sink.written());
    })();
    if copied.is_err() {
        // pg_dump would block on a pipe nobody reads any more, holding its snapshot open:
        // stop it before waiting for it.
        let _ = child.kill();
    }
    drop(stdout);
    let status = child.wait().map_err(|e| Error::invalid(format!("pg_dump did not finish: {e}")))?;
    let stderr = errors.join().unwrap_or_default();
    if let Err(e) = copied {
        sink.abandon();
        return Err(Error::io("cannot write", file, e));
    }
    if !status.success() {
        sink.abandon();
        return Err(Error::invalid(format!("pg_dump failed ({status}): {}", stderr.trim())));
    }
    sink.seal(file)
}

/// Every user table as (schema, name): ordinary and partitioned tables, not partitions,
/// not those of extensions.
pub(crate) async fn pg_user_tables(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Vec<(String, String)>, Error> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e') \
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| Error::database("cannot list tables", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Exact row counts of every user table, keyed `schema.table`.
pub(crate) async fn pg_row_counts(client: &impl tokio_postgres::GenericClient) -> Result<BTreeMap<String, i64>, Error> {
    let mut counts = BTreeMap::new();
    for (schema, table) in pg_user_tables(client).await? {
        let sql = format!("SELECT count(*) FROM {}.{}", quote_ident(&schema), quote_ident(&table));
        let n: i64 = client.query_one(&sql, &[]).await.map_err(|e| Error::database("cannot count rows", e))?.get(0);
        counts.insert(format!("{schema}.{table}"), n);
    }
    Ok(counts)
}

/// The applied migrations in `sage_schema_history`, oldest first; empty without one.
pub(crate) async fn pg_history(client: &impl tokio_postgres::GenericClient) -> Result<Vec<Applied>, Error> {
    let q = |e: tokio_postgres::Error| Error::database("cannot read the migration history", e);
    // Ask first: a failed query would abort the transaction that holds the dump's snapshot.
    let exists: bool =
        client.query_one("SELECT to_regclass('sage_schema_history') IS NOT NULL", &[]).await.map_err(q)?.get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT version, checksum FROM sage_schema_history WHERE state IN ('applied', 'baseline', 'adopted') ORDER BY version",
            &[],
        )
        .await
        .map_err(q)?;
    Ok(rows.iter().map(|r| Applied { version: r.get(0), checksum: r.get(1) }).collect())
}

fn backup_sqlite(
    source: &Path,
    options: &BackupOptions,
    now: DateTime<Utc>,
    progress: Progress,
) -> Result<Manifest, Error> {
    use std::io::Write;
    if !source.exists() {
        return Err(Error::invalid(format!("{} does not exist", source.display())));
    }
    let extension = if matches!(options.encryption, Encryption::None) { "sqlite" } else { "sqlite.age" };
    let file = file_name(&options.dir, now, extension);
    let conn = rusqlite::Connection::open(source).map_err(|e| Error::database("cannot open the SQLite database", e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| Error::database("cannot configure SQLite", e))?;
    // The copy lives in memory: an unencrypted copy on disk would outlive a kill.
    let mut copy =
        rusqlite::Connection::open_in_memory().map_err(|e| Error::database("cannot open an in-memory database", e))?;
    rusqlite::backup::Backup::new(&conn, &mut copy)
        .and_then(|b| b.run_to_completion(1 << 30, std::time::Duration::ZERO, None))
        .map_err(|e| Error::database("the SQLite backup failed", e))?;
    drop(conn);
    let (tables, version, sqlite_version) = sqlite_facts(&copy)?;
    let history = sqlite_history(&copy);
    let bytes = copy.serialize(rusqlite::MAIN_DB).map_err(|e| Error::database("the SQLite backup failed", e))?;
    let mut sink = Sink::create(&file, &options.encryption, false)?;
    for chunk in bytes.chunks(1 << 16) {
        if let Err(e) = sink.write_all(chunk) {
            sink.abandon();
            return Err(Error::io("cannot write", &file, e));
        }
        progress.bytes("dumping", sink.written());
    }
    let sealed = sink.seal(&file)?;
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        file: file.file_name().unwrap().to_string_lossy().into_owned(),
        dialect: "sqlite".into(),
        kind: "sqlite".into(),
        encryption: options.encryption.name().into(),
        sha256: sealed.sha256,
        size: sealed.size,
        created_at: now.to_rfc3339(),
        tool_version: format!("sage-db {}", env!("CARGO_PKG_VERSION")),
        server_version: format!("SQLite {sqlite_version}"),
        client_version: None,
        migration_version: version,
        history,
        tables,
        privileges: false,
        seal: None,
    };
    manifest.seal(&options.encryption)?;
    write_manifest(&file, &manifest)?;
    Ok(manifest)
}

/// Row counts per table, migration version and SQLite version of a database file.
pub(crate) type SqliteFacts = (BTreeMap<String, i64>, Option<i64>, String);

pub(crate) fn sqlite_facts(conn: &rusqlite::Connection) -> Result<SqliteFacts, Error> {
    let q = |e: rusqlite::Error| Error::database("cannot count rows", e);
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(q)?;
    let names: Vec<String> = stmt.query_map([], |r| r.get(0)).and_then(|rows| rows.collect()).map_err(q)?;
    let mut tables = BTreeMap::new();
    for name in names {
        let n: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {}", quote_ident(&name)), [], |r| r.get(0)).map_err(q)?;
        tables.insert(name, n);
    }
    let version = conn
        .query_row(
            "SELECT max(version) FROM sage_schema_history WHERE state IN ('applied', 'baseline', 'adopted')",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .ok()
        .flatten();
    let sqlite_version: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0)).map_err(q)?;
    Ok((tables, version, sqlite_version))
}

/// The applied migrations of a SQLite database, oldest first; empty without a history.
pub(crate) fn sqlite_history(conn: &rusqlite::Connection) -> Vec<Applied> {
    let read = || -> rusqlite::Result<Vec<Applied>> {
        let mut stmt = conn.prepare(
            "SELECT version, checksum FROM sage_schema_history WHERE state IN ('applied', 'baseline', 'adopted') ORDER BY version",
        )?;
        let rows = stmt.query_map([], |r| Ok(Applied { version: r.get(0)?, checksum: r.get(1)? }))?;
        rows.collect()
    };
    read().unwrap_or_default()
}

/// Applies retention to the backups in `dir` (only complete backups, those with a
/// manifest, are considered); never removes `just_written`.
fn prune(
    dir: &Path,
    keep: Option<usize>,
    max_age: Option<std::time::Duration>,
    now: DateTime<Utc>,
    just_written: &Path,
) -> Result<Vec<PathBuf>, Error> {
    if keep.is_none() && max_age.is_none() {
        return Ok(Vec::new());
    }
    let mut backups: Vec<(DateTime<Utc>, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        let path = entry.map_err(|e| Error::io("cannot list", dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !name.starts_with("sage_backup_") || name.ends_with(".manifest.json") || name.ends_with(".partial") {
            continue;
        }
        if let Ok(m) = Manifest::read(&path) {
            if let Ok(created) = DateTime::parse_from_rfc3339(&m.created_at) {
                backups.push((created.with_timezone(&Utc), path));
            }
        }
    }
    backups.sort_by_key(|b| std::cmp::Reverse(b.0));
    let mut doomed = Vec::new();
    for (index, (created, path)) in backups.iter().enumerate() {
        if path == just_written {
            continue;
        }
        let too_many = keep.is_some_and(|k| index >= k);
        let too_old = max_age.is_some_and(|age| now.signed_duration_since(*created).to_std().is_ok_and(|d| d > age));
        if too_many || too_old {
            doomed.push(path.clone());
        }
    }
    for path in &doomed {
        std::fs::remove_file(path).map_err(|e| Error::io("cannot remove old backup", path, e))?;
        let _ = std::fs::remove_file(manifest_path(path));
    }
    Ok(doomed)
}
