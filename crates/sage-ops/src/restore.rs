//! `restore`: checks the backup against its manifest before touching the database, then
//! replaces the database's contents in one transaction that also verifies every table's row
//! count; any failure rolls everything back, leaving the previous data in place.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sage_conn::{quote_ident, PgSettings, SqliteLocation, Target};
use serde::Serialize;

use crate::manifest::Manifest;
use crate::sink::{decrypt_to, Decryption};
use crate::{tools, Error};

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub file: PathBuf,
    pub migration_version: Option<i64>,
    /// Row counts checked against the manifest.
    pub tables: BTreeMap<String, i64>,
}

/// Reads and verifies a backup's manifest; the first step of restore and verify, and what
/// `restore` shows the operator before asking.
pub fn inspect(backup: &Path) -> Result<Manifest, Error> {
    let manifest = Manifest::read(backup)?;
    manifest.verify_file(backup)?;
    Ok(manifest)
}

pub async fn restore(target: &Target, backup: &Path, keys: &Decryption) -> Result<RestoreReport, Error> {
    let manifest = inspect(backup)?;
    let expected_dialect = match target {
        Target::Postgres(_) => "postgres",
        Target::Sqlite(_) => "sqlite",
        Target::Memory => return Err(Error::new("memory:// cannot be restored into")),
    };
    if manifest.dialect != expected_dialect {
        return Err(Error::new(format!(
            "{} is a {} backup and cannot be restored into a {expected_dialect} database",
            backup.display(),
            manifest.dialect
        )));
    }
    let work = WorkDir::new()?;
    let plain = work.path().join("backup.plain");
    {
        let (backup, plain, encryption, keys) =
            (backup.to_path_buf(), plain.clone(), manifest.encryption.clone(), keys.clone());
        tokio::task::spawn_blocking(move || decrypt_to(&backup, &plain, &encryption, &keys))
            .await
            .map_err(|e| Error::new(format!("decryption failed: {e}")))??;
    }
    match target {
        Target::Postgres(pg) => restore_postgres(pg, &manifest, &plain, work.path()).await?,
        Target::Sqlite(location) => {
            let (location, manifest, plain) = (location.clone(), manifest.clone(), plain.clone());
            tokio::task::spawn_blocking(move || restore_sqlite(&location, &manifest, &plain))
                .await
                .map_err(|e| Error::new(format!("restore failed: {e}")))??
        }
        Target::Memory => unreachable!("checked above"),
    }
    Ok(RestoreReport {
        file: backup.to_path_buf(),
        migration_version: manifest.migration_version,
        tables: manifest.tables,
    })
}

/// A private temporary directory, removed on drop: decrypted backups never linger.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Result<WorkDir, Error> {
        use rand::distr::{Alphanumeric, SampleString};
        use std::os::unix::fs::DirBuilderExt;
        let path =
            std::env::temp_dir().join(format!("sage-restore-{}", Alphanumeric.sample_string(&mut rand::rng(), 12)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", path.display())))?;
        Ok(WorkDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn restore_postgres(pg: &PgSettings, manifest: &Manifest, plain: &Path, work: &Path) -> Result<(), Error> {
    let client = sage_conn::connect(pg).await?;
    let major = tools::server_major(&client).await?;
    let psql = tools::find("psql", major)?;
    let dump_sql = work.join("dump.sql");
    match manifest.kind.as_str() {
        "custom" => {
            let pg_restore = tools::find("pg_restore", major)?;
            let out = std::process::Command::new(&pg_restore.path)
                .args(["--no-owner", "--no-privileges", "-f"])
                .arg(&dump_sql)
                .arg(plain)
                .output()
                .map_err(|e| Error::new(format!("cannot run pg_restore: {e}")))?;
            if !out.status.success() {
                return Err(Error::new(format!(
                    "pg_restore could not read the backup: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        "sql.gz" => {
            let input = std::fs::File::open(plain).map_err(|e| Error::new(format!("cannot read the backup: {e}")))?;
            let mut decoder = flate2::read::GzDecoder::new(input);
            let mut output = std::fs::File::create(&dump_sql)
                .map_err(|e| Error::new(format!("cannot write {}: {e}", dump_sql.display())))?;
            std::io::copy(&mut decoder, &mut output)
                .map_err(|e| Error::new(format!("the backup is not valid gzip: {e}")))?;
        }
        other => return Err(Error::new(format!("unknown PostgreSQL backup kind {other:?}"))),
    }
    let schemas: Vec<String> = client
        .query(
            "SELECT nspname FROM pg_namespace n WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
             AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%' \
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')",
            &[],
        )
        .await
        .map_err(|e| Error::with("cannot list schemas", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(client);

    // One script, one transaction: clear the database, load the dump, check the counts.
    let script = work.join("restore.sql");
    let mut out =
        std::fs::File::create(&script).map_err(|e| Error::new(format!("cannot write {}: {e}", script.display())))?;
    let io = |e: std::io::Error| Error::new(format!("cannot write the restore script: {e}"));
    writeln!(out, "SET client_min_messages = warning;").map_err(io)?;
    for schema in &schemas {
        writeln!(out, "DROP SCHEMA IF EXISTS {} CASCADE;", quote_ident(schema)).map_err(io)?;
    }
    writeln!(out, "CREATE SCHEMA IF NOT EXISTS public;").map_err(io)?;
    std::io::copy(&mut std::fs::File::open(&dump_sql).map_err(io)?, &mut out).map_err(io)?;
    writeln!(out, "\nSET client_min_messages = warning;\nDO $sage_verify$\nDECLARE n bigint;\nBEGIN").map_err(io)?;
    for (table, expected) in &manifest.tables {
        let (schema, name) = table.split_once('.').unwrap_or(("public", table));
        let qualified = format!("{}.{}", quote_ident(schema), quote_ident(name));
        let label = table.replace('\'', "''");
        writeln!(
            out,
            "  SELECT count(*) INTO n FROM {qualified};\n  IF n <> {expected} THEN RAISE EXCEPTION 'restore verification failed: {label} has % rows, the backup has {expected}', n; END IF;"
        )
        .map_err(io)?;
    }
    writeln!(out, "END\n$sage_verify$;").map_err(io)?;
    out.sync_all().map_err(io)?;
    drop(out);

    let mut command = tools::command(&psql, pg);
    command.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f"]).arg(&script);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| Error::new(format!("psql failed: {e}")))?
        .map_err(|e| Error::new(format!("cannot run psql: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(Error::new(format!(
            "the restore failed and was rolled back; the database is as it was: {}",
            last.join(" | ")
        )));
    }
    Ok(())
}

fn restore_sqlite(location: &SqliteLocation, manifest: &Manifest, plain: &Path) -> Result<(), Error> {
    let (tables, _, _) = crate::backup::sqlite_facts(plain)?;
    let check = rusqlite::Connection::open(plain).map_err(|e| Error::with("cannot open the backup", e))?;
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| Error::with("cannot check the backup", e))?;
    drop(check);
    if integrity != "ok" {
        return Err(Error::new(format!("the backup's database fails SQLite's integrity check: {integrity}")));
    }
    if tables != manifest.tables {
        return Err(Error::new("the backup's row counts differ from its manifest; nothing was restored"));
    }
    let mut target = match location {
        SqliteLocation::File(path) => rusqlite::Connection::open(path),
        SqliteLocation::InMemory => return Err(Error::new("an in-memory database cannot be restored into")),
    }
    .map_err(|e| Error::with("cannot open the target database", e))?;
    target.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| Error::with("cannot configure SQLite", e))?;
    // The backup API replaces the target's pages under its write lock: readers see the old
    // database or the new one, never a mix.
    target
        .restore(rusqlite::MAIN_DB, plain, None::<fn(rusqlite::backup::Progress)>)
        .map_err(|e| Error::with("the SQLite restore failed; the database is as it was", e))?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub file: PathBuf,
    pub checksum: String,
    pub tables: BTreeMap<String, i64>,
}

/// Restores the backup into a scratch database (a temporary database on the server of
/// `near`, or a temporary SQLite file) and checks every row count, leaving `near` untouched.
pub async fn verify(near: &Target, backup: &Path, keys: &Decryption) -> Result<VerifyReport, Error> {
    let manifest = inspect(backup)?;
    match manifest.dialect.as_str() {
        "postgres" => {
            let Target::Postgres(pg) = near else {
                return Err(Error::new(
                    "verifying a PostgreSQL backup needs a PostgreSQL server to restore into: pass --database-url",
                ));
            };
            let scratch = sage_schema::Scratch::create(pg).await.map_err(|e| Error::new(e.to_string()))?;
            let result = restore(&Target::Postgres(scratch.settings.clone()), backup, keys).await;
            scratch.drop().await;
            result?;
        }
        _ => {
            let work = WorkDir::new()?;
            restore(&Target::Sqlite(SqliteLocation::File(work.path().join("verify.db"))), backup, keys).await?;
        }
    }
    Ok(VerifyReport { file: backup.to_path_buf(), checksum: manifest.sha256, tables: manifest.tables })
}
