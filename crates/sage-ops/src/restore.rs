//! `restore`: checks a backup against its manifest before touching the database, then
//! replaces the database's contents in one transaction on sage-db's own connection, which
//! also verifies every table's row count and the file's checksum before it commits.
//!
//! All or nothing: any failure, and a kill of sage-db at any point, rolls everything back
//! (the server aborts the transaction of a connection that goes away), leaving the previous
//! data, owners and grants in place. No psql runs and no plaintext is written to disk: the
//! backup is decrypted and decompressed as a stream, PostgreSQL dumps are read statement by
//! statement (`dump.rs`, which refuses psql meta-commands), and a SQLite backup is checked
//! in memory before it is copied into the target under SQLite's write lock.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::SinkExt;
use sage_conn::{quote_ident, PgSettings, Progress, SqliteLocation, Target};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;

use crate::dump::{DumpReader, Item};
use crate::manifest::{Applied, Authenticity, Manifest};
use crate::sink::{decrypting_reader, Decryption};
use crate::{blocking, tools, Error};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore a backup of a different schema (another migration history, or no table in
    /// common with the database) over it. Without it, such a restore is refused.
    pub replace_schema: bool,
    /// Run the dump's statements as this role (`SET LOCAL ROLE`), e.g. a role without the
    /// rights to reach the server's files or programs.
    pub run_as: Option<String>,
    /// Told the bytes of the backup file read so far, as `restoring`.
    pub progress: Progress,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub file: PathBuf,
    pub migration_version: Option<i64>,
    /// Row counts checked against the manifest.
    pub tables: BTreeMap<String, i64>,
    pub authenticity: Authenticity,
    /// `none`, `passphrase` or `recipients`.
    pub encryption: String,
    /// Owner and grant statements of the backup that could not apply here (a role the
    /// target server does not have), one line each.
    pub skipped: Vec<String>,
    /// The pg_restore that read a custom-format backup and why that one.
    pub client: Option<String>,
}

/// A backup's manifest after the checks that need no database.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub manifest: Manifest,
    pub authenticity: Authenticity,
}

/// Reads the manifest, authenticates it and checks the file against it; the first step
/// of restore and verify, and what `restore` shows the operator before asking.
pub fn inspect(backup: &Path, keys: &Decryption) -> Result<Inspected, Error> {
    inspect_open(backup, keys).map(|(inspected, _)| inspected)
}

/// [`inspect_open`] on the blocking pool: it reads and hashes the whole backup.
async fn inspect_opened(backup: &Path, keys: &Decryption) -> Result<(Inspected, std::fs::File), Error> {
    let (backup, keys) = (backup.to_path_buf(), keys.clone());
    blocking::run("checking the backup", move || inspect_open(&backup, &keys)).await
}

/// `inspect`, returning the backup opened once: restore reads the very file it checked,
/// not whatever the name points to a moment later.
fn inspect_open(backup: &Path, keys: &Decryption) -> Result<(Inspected, std::fs::File), Error> {
    use std::io::Seek;
    let manifest = Manifest::read(backup)?;
    let authenticity = manifest.authenticate(backup, keys)?;
    let unreadable = |e: std::io::Error| Error::io("cannot read", backup, e);
    let mut file = crate::manifest::open_regular(backup).map_err(unreadable)?;
    let mut head = Vec::with_capacity(32);
    (&mut file).take(32).read_to_end(&mut head).map_err(unreadable)?;
    manifest.check_encryption(backup, &head)?;
    file.rewind().map_err(unreadable)?;
    let (sha256, size) = crate::manifest::hash_reader(&mut file, backup)?;
    manifest.verify_digest(backup, &sha256, size)?;
    file.rewind().map_err(unreadable)?;
    Ok((Inspected { manifest, authenticity }, file))
}

pub async fn restore(
    target: &Target,
    backup: &Path,
    keys: &Decryption,
    options: &RestoreOptions,
) -> Result<RestoreReport, Error> {
    let (Inspected { manifest, authenticity }, file) = inspect_opened(backup, keys).await?;
    let expected_dialect = match target {
        Target::Postgres(_) => "postgres",
        Target::Sqlite(_) => "sqlite",
        Target::Memory => return Err(Error::invalid("memory:// cannot be restored into")),
    };
    if manifest.dialect != expected_dialect {
        return Err(Error::invalid(format!(
            "{} is a {} backup and cannot be restored into a {expected_dialect} database",
            backup.display(),
            manifest.dialect
        )));
    }
    let mut client = None;
    let skipped = match target {
        Target::Postgres(pg) => {
            let (skipped, tool) = restore_postgres(pg, backup, file, &manifest, keys, options).await?;
            client = tool;
            skipped
        }
        Target::Sqlite(location) => {
            let (location, backup, manifest, keys, options) =
                (location.clone(), backup.to_path_buf(), manifest.clone(), keys.clone(), options.clone());
            tokio::task::spawn_blocking(move || restore_sqlite(&location, &backup, file, &manifest, &keys, &options))
                .await
                .map_err(|e| Error::invalid(format!("restore failed: {e}")))??;
            Vec::new()
        }
        Target::Memory => unreachable!("checked above"),
    };
    Ok(RestoreReport {
        file: backup.to_path_buf(),
        migration_version: manifest.migration_version,
        tables: manifest.tables,
        authenticity,
        encryption: manifest.encryption,
        skipped,
        client,
    })
}

/// Hashes the backup file's bytes as the decryptor consumes them, so the checksum that
/// decides the commit is of exactly the bytes that were restored.
#[derive(Debug, Clone, Default)]
struct Digest256(Arc<Mutex<(Sha256, u64)>>);

impl Digest256 {
    fn hex_and_size(&self) -> (String, u64) {
        let state = self.0.lock().expect("digest lock");
        (hex::encode(state.0.clone().finalize()), state.1)
    }
}

struct Tapped {
    file: std::fs::File,
    digest: Digest256,
    progress: Progress,
}

impl Read for Tapped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        let mut state = self.digest.0.lock().expect("digest lock");
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        self.progress.bytes("restoring", state.1);
        Ok(n)
    }
}

/// The backup's plaintext as a stream, and the digest of the file bytes read so far.
fn open_plaintext(
    backup: &Path,
    file: std::fs::File,
    manifest: &Manifest,
    keys: &Decryption,
    progress: Progress,
) -> Result<(Box<dyn Read + Send>, Digest256), Error> {
    let digest = Digest256::default();
    let tapped = BufReader::with_capacity(1 << 16, Tapped { file, digest: digest.clone(), progress });
    let plain = decrypting_reader(tapped, &manifest.encryption, keys, &backup.display().to_string())?;
    Ok((plain, digest))
}

/// Which migrations a database has applied, and its tables: what decides whether a backup
/// belongs to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SchemaIdentity {
    pub history: Vec<Applied>,
    pub tables: Vec<String>,
}

/// Refuses a backup of another schema. An empty database takes any backup. When both
/// record their migrations, one history must be a prefix of the other (the same schema at
/// another version); when only one does, they are managed differently and are refused;
/// when neither does, at least half of the database's tables must be in the backup.
/// Bookkeeping tables (migration and seed histories) do not count as shared tables.
pub(crate) fn check_same_schema(backup: &Manifest, target: &SchemaIdentity) -> Result<(), String> {
    let target_tables: Vec<&String> = target.tables.iter().filter(|t| !is_bookkeeping(t)).collect();
    if target_tables.is_empty() && target.history.is_empty() {
        return Ok(());
    }
    match (backup.history.is_empty(), target.history.is_empty()) {
        (false, false) => {
            for (ours, theirs) in backup.history.iter().zip(&target.history) {
                if ours.version != theirs.version {
                    return Err(format!(
                        "the backup's migration history has version {} where the database has {}",
                        ours.version, theirs.version
                    ));
                }
                if ours.checksum != theirs.checksum {
                    return Err(format!(
                        "migration {} differs: the backup's checksum is {}, the database's {}",
                        ours.version,
                        short(&ours.checksum),
                        short(&theirs.checksum)
                    ));
                }
            }
            Ok(())
        }
        (true, false) => {
            Err(format!("the database has {} applied migration(s) and the backup records none", target.history.len()))
        }
        (false, true) => {
            Err(format!("the backup records {} applied migration(s) and the database none", backup.history.len()))
        }
        (true, true) => {
            let common = target_tables.iter().filter(|t| backup.tables.contains_key(t.as_str())).count();
            if common == 0 || common * 2 < target_tables.len() {
                return Err(format!(
                    "only {common} of the database's {} table(s) are in the backup",
                    target_tables.len()
                ));
            }
            Ok(())
        }
    }
}

/// Tables that record how a database was managed rather than what it holds.
fn is_bookkeeping(table: &str) -> bool {
    let name = table.rsplit('.').next().unwrap_or(table);
    matches!(
        name,
        "sage_schema_history"
            | "sage_seed_history"
            | "sage_schema_validation"
            | "schema_migrations"
            | "_sqlx_migrations"
    )
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

fn schema_refusal(backup: &Path, why: String) -> Error {
    Error::SchemaDiffers { file: backup.to_path_buf(), why }
}

async fn pg_identity(client: &impl tokio_postgres::GenericClient) -> Result<SchemaIdentity, Error> {
    let tables: Vec<String> =
        crate::backup::pg_user_tables(client).await?.into_iter().map(|(s, t)| format!("{s}.{t}")).collect();
    let history = crate::backup::pg_history(client).await?;
    Ok(SchemaIdentity { history, tables })
}

/// A statement whose failure for want of a role or of privilege to hand an object to a
/// role is reported rather than fatal: owners and grants for roles this server lacks.
fn may_skip(sql: &str, state: &SqlState) -> bool {
    let head: Vec<String> = sql.split_whitespace().take(4).map(str::to_ascii_uppercase).collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let grant_like = matches!(head.first(), Some(&"GRANT")) || head.starts_with(&["ALTER", "DEFAULT", "PRIVILEGES"]);
    let owner = head.first() == Some(&"ALTER") && sql.to_ascii_uppercase().contains(" OWNER TO ");
    let revoke = head.first() == Some(&"REVOKE");
    let set = head.first() == Some(&"SET");
    if *state == SqlState::UNDEFINED_OBJECT {
        // A missing role; for SET, a setting this server version does not know (a dump
        // from a newer pg_dump sets transaction_timeout).
        return grant_like || owner || revoke || set;
    }
    *state == SqlState::INSUFFICIENT_PRIVILEGE && (grant_like || owner)
}

fn is_create_public(sql: &str) -> bool {
    let words: Vec<String> = sql.split_whitespace().map(str::to_ascii_lowercase).collect();
    words == ["create", "schema", "public"]
}

fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    let mut text: String = line.chars().take(100).collect();
    if text.len() < sql.len() {
        text.push('…');
    }
    text
}

async fn restore_postgres(
    pg: &PgSettings,
    backup: &Path,
    file: std::fs::File,
    manifest: &Manifest,
    keys: &Decryption,
    options: &RestoreOptions,
) -> Result<(Vec<String>, Option<String>), Error> {
    let mut client = sage_conn::connect(pg).await?;
    let major = tools::server_major(&client).await?;
    if !options.replace_schema {
        let identity = pg_identity(&client).await?;
        check_same_schema(manifest, &identity).map_err(|why| schema_refusal(backup, why))?;
    }
    let (pg_restore, file) = if manifest.kind == "custom" {
        let writer = manifest.client_version.as_deref().and_then(tools::major_of);
        let (backup, plain) = (backup.to_path_buf(), manifest.encryption == "none");
        // Finding pg_restore runs each candidate's `--version`, and checking the archive
        // runs `pg_restore --list` over the whole file.
        let (tool, file) = blocking::run("looking for pg_restore", move || {
            let tool = tools::find("pg_restore", tools::Purpose::Read { server: major, writer })?;
            tracing::info!(client = %tool.describe(), "reading the archive with");
            if plain {
                check_readable(&tool, &backup, &file)?;
            }
            Ok((tool, file))
        })
        .await?;
        (Some(tool), file)
    } else {
        (None, file)
    };
    let described = pg_restore.as_ref().map(tools::Tool::describe);

    // The reading side runs on a thread of its own (files, decryption, pg_restore), handing
    // statements and rows over a small channel; this side runs them in one transaction.
    let (sender, mut items) = tokio::sync::mpsc::channel::<Item>(8);
    let reader = {
        let (backup, manifest, keys, progress) =
            (backup.to_path_buf(), manifest.clone(), keys.clone(), options.progress.clone());
        tokio::task::spawn_blocking(move || read_dump(&backup, file, &manifest, &keys, pg_restore, sender, progress))
    };

    let applied = async {
        let db = |what: String| move |e: tokio_postgres::Error| Error::database(what, e);
        let tx = client.transaction().await.map_err(db("cannot start the restore".into()))?;
        let schemas: Vec<String> = tx
            .query(
                "SELECT nspname FROM pg_namespace n WHERE nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%' \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')",
                &[],
            )
            .await
            .map_err(db("cannot list schemas".into()))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        tx.batch_execute("SET LOCAL client_min_messages = warning").await.map_err(db("cannot configure".into()))?;
        if let Some(role) = &options.run_as {
            tx.batch_execute(&format!("SET LOCAL ROLE {}", quote_ident(role)))
                .await
                .map_err(db(format!("cannot take the role {role:?}")))?;
        }
        for schema in &schemas {
            tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(schema)))
                .await
                .map_err(db(format!("cannot clear schema {schema:?}")))?;
        }
        // pg_dump writes the public schema's privileges as changes from the ones initdb
        // gives it, so the new one starts from those.
        let owner = if major >= 15 { "pg_database_owner".to_string() } else { bootstrap_superuser(&tx).await? };
        let usage = if major >= 15 { "USAGE" } else { "ALL" };
        tx.batch_execute("CREATE SCHEMA public").await.map_err(db("cannot create schema public".into()))?;
        // Large objects live outside every schema; the backup's replace the database's.
        tx.batch_execute("SELECT count(lo_unlink(oid)) FROM pg_largeobject_metadata")
            .await
            .map_err(db("cannot remove the database's large objects".into()))?;
        let mut skipped = Vec::new();
        for sql in [
            format!("ALTER SCHEMA public OWNER TO {}", quote_ident(&owner)),
            format!("GRANT {usage} ON SCHEMA public TO PUBLIC"),
        ] {
            run_tolerant(&tx, &sql, 0, &mut skipped).await?;
        }
        while let Some(item) = items.recv().await {
            match item {
                Item::Statement { sql, line } => {
                    if is_create_public(&sql) {
                        // This dump made its own public schema (the source's was recreated
                        // at some point): its privileges are relative to that one.
                        tx.batch_execute("DROP SCHEMA public").await.map_err(|e| at_line(line, &sql, e))?;
                    }
                    run_tolerant(&tx, &sql, line, &mut skipped).await?
                }
                Item::Copy { sql, line } => {
                    let sink = tx.copy_in::<_, bytes::Bytes>(sql.as_str()).await.map_err(|e| at_line(line, &sql, e))?;
                    futures_util::pin_mut!(sink);
                    loop {
                        match items.recv().await {
                            Some(Item::CopyData(rows)) => {
                                sink.send(bytes::Bytes::from(rows)).await.map_err(|e| at_line(line, &sql, e))?
                            }
                            Some(Item::CopyEnd) => break,
                            // The reader stopped; its error says why.
                            _ => return Err(Error::invalid("the backup could not be read to the end")),
                        }
                    }
                    sink.as_mut().finish().await.map_err(|e| at_line(line, &sql, e))?;
                }
                Item::CopyData(_) | Item::CopyEnd => return Err(Error::invalid("COPY data outside a COPY")),
            }
        }
        Ok::<_, Error>((tx, skipped))
    }
    .await;
    drop(items);
    // The reader's error (a damaged file, a refused meta-command) explains more than the
    // consumer's, which only saw the stream stop.
    let read = reader.await.map_err(|e| Error::invalid(format!("reading the backup failed: {e}")))?;
    let rolled_back = |e: Error| Error::RolledBack(Box::new(e));
    let (digest, size) = read.map_err(rolled_back)?;
    let (tx, skipped) = applied.map_err(rolled_back)?;
    manifest.verify_digest(backup, &digest, size).map_err(rolled_back)?;

    // Still inside the transaction this restore began: nothing in the dump ended it.
    tx.batch_execute("SAVEPOINT sage_restore_final")
        .await
        .map_err(|e| rolled_back(Error::database("the dump left the restore's transaction", e)))?;
    let restored = crate::backup::pg_row_counts(&tx).await.map_err(rolled_back)?;
    compare_counts(&manifest.tables, &restored).map_err(|e| rolled_back(Error::invalid(e)))?;
    tx.commit().await.map_err(|e| rolled_back(Error::database("the commit failed", e)))?;
    Ok((skipped, described))
}

/// Lists an unencrypted archive's contents with the pg_restore that will read it, before
/// anything is touched: an archive this pg_restore cannot read is refused up front. (An
/// encrypted one is read as it is decrypted; the manifest's pg_dump version chose a
/// pg_restore that reads it, and a failure there rolls the restore back.)
fn check_readable(tool: &tools::Tool, backup: &Path, file: &std::fs::File) -> Result<(), Error> {
    use std::io::Seek;
    let unreadable = |e: std::io::Error| Error::io("cannot read", backup, e);
    // The very file that was checked, not whatever the name points to now.
    let mut input = file.try_clone().map_err(unreadable)?;
    input.rewind().map_err(unreadable)?;
    let out = std::process::Command::new(&tool.path)
        .arg("--list")
        .stdin(input)
        .output()
        .map_err(|e| Error::invalid(format!("cannot run pg_restore ({}): {e}", tool.path.display())))?;
    file.try_clone().and_then(|mut f| f.rewind()).map_err(unreadable)?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{} cannot read {} ({}); nothing was restored",
        tool.describe(),
        backup.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

async fn bootstrap_superuser(tx: &tokio_postgres::Transaction<'_>) -> Result<String, Error> {
    let row = tx
        .query_one("SELECT rolname FROM pg_roles WHERE oid = 10", &[])
        .await
        .map_err(|e| Error::database("cannot read the bootstrap superuser", e))?;
    Ok(row.get(0))
}

fn at_line(line: usize, sql: &str, e: tokio_postgres::Error) -> Error {
    let detail = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
    Error::invalid(format!("line {line} of the dump ({}): {detail}", first_line(sql)))
}

/// Runs one statement; an owner or grant for a missing role is skipped and reported,
/// inside a savepoint so the transaction goes on.
async fn run_tolerant(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    line: usize,
    skipped: &mut Vec<String>,
) -> Result<(), Error> {
    // The extended protocol takes exactly one statement per message, so the server runs
    // the statement dump.rs read, never several hidden in it.
    let head = sql.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
    let candidate = matches!(head.as_str(), "GRANT" | "REVOKE" | "ALTER" | "SET");
    if !candidate {
        return tx.execute(sql, &[]).await.map(drop).map_err(|e| at_line(line, sql, e));
    }
    let control = |e: tokio_postgres::Error| Error::database("savepoint", e);
    tx.batch_execute("SAVEPOINT sage_restore_step").await.map_err(control)?;
    match tx.execute(sql, &[]).await {
        Ok(_) => tx.batch_execute("RELEASE SAVEPOINT sage_restore_step").await.map_err(control),
        Err(e) if e.code().is_some_and(|state| may_skip(sql, state)) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT sage_restore_step").await.map_err(control)?;
            let detail = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
            skipped.push(format!("line {line}: {} ({detail})", first_line(sql)));
            Ok(())
        }
        Err(e) => Err(at_line(line, sql, e)),
    }
}

fn compare_counts(expected: &BTreeMap<String, i64>, restored: &BTreeMap<String, i64>) -> Result<(), String> {
    for (table, want) in expected {
        match restored.get(table) {
            None => return Err(format!("verification failed: table {table:?} is in the manifest but not in the dump")),
            Some(got) if got != want => {
                return Err(format!("verification failed: {table:?} has {got} rows, the manifest says {want}"))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = restored.keys().find(|t| !expected.contains_key(*t)) {
        return Err(format!("verification failed: the dump creates table {extra:?}, which the manifest does not list"));
    }
    Ok(())
}

/// Kills and reaps a child process however its owner's scope ends.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reading side of a PostgreSQL restore: file → decryption → (gunzip | pg_restore) →
/// statements. Returns the file's digest once everything was read.
fn read_dump(
    backup: &Path,
    file: std::fs::File,
    manifest: &Manifest,
    keys: &Decryption,
    pg_restore: Option<tools::Tool>,
    sender: tokio::sync::mpsc::Sender<Item>,
    progress: Progress,
) -> Result<(String, u64), Error> {
    let (plain, digest) = open_plaintext(backup, file, manifest, keys, progress)?;
    let what = backup.display().to_string();
    // False when the restore side hung up: it stopped on an error of its own, which is
    // the one to report.
    let forward = |reader: &mut DumpReader<Box<dyn BufRead + Send>>| -> Result<bool, Error> {
        while let Some(item) = reader.next_item().map_err(|e| Error::invalid(format!("{what}: {e}")))? {
            if sender.blocking_send(item).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    };
    let hung_up = || Ok((String::new(), 0));
    match pg_restore {
        None => {
            let sql: Box<dyn BufRead + Send> =
                Box::new(BufReader::with_capacity(1 << 16, flate2::read::MultiGzDecoder::new(plain)));
            if !forward(&mut DumpReader::new(sql))? {
                return hung_up();
            }
        }
        Some(tool) => {
            // pg_restore turns the archive into SQL on its stdout and touches no database.
            let mut child = ChildGuard(
                std::process::Command::new(&tool.path)
                    .args(["-f", "-"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| Error::invalid(format!("cannot run pg_restore ({}): {e}", tool.path.display())))?,
            );
            let mut stdin = child.0.stdin.take().expect("piped stdin");
            let stdout = child.0.stdout.take().expect("piped stdout");
            let mut stderr = child.0.stderr.take().expect("piped stderr");
            let feeder = std::thread::spawn(move || {
                let mut plain = plain;
                std::io::copy(&mut plain, &mut stdin).map(drop)
            });
            let errors = std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            });
            let sql: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 16, stdout));
            // Dropping the reader closes pg_restore's stdout, so an early stop ends it too.
            let forwarded = forward(&mut DumpReader::new(sql));
            if matches!(forwarded, Ok(false)) {
                return hung_up();
            }
            let fed = feeder.join().unwrap_or_else(|_| Err(std::io::Error::other("the feeding thread failed")));
            let status = child.0.wait().map_err(|e| Error::invalid(format!("pg_restore did not finish: {e}")))?;
            let stderr = errors.join().unwrap_or_default();
            if !status.success() {
                return Err(Error::invalid(format!("pg_restore could not read {what}: {}", stderr.trim())));
            }
            forwarded?;
            fed.map_err(|e| Error::invalid(format!("cannot read {what}: {e}")))?;
        }
    }
    Ok(digest.hex_and_size())
}

/// The backup's database, opened in memory: decrypted, never written to disk.
fn load_sqlite_backup(
    backup: &Path,
    file: std::fs::File,
    manifest: &Manifest,
    keys: &Decryption,
    progress: Progress,
) -> Result<rusqlite::Connection, Error> {
    let (mut plain, digest) = open_plaintext(backup, file, manifest, keys, progress)?;
    let mut bytes = Vec::new();
    plain.read_to_end(&mut bytes).map_err(|e| Error::io("cannot read", backup, e))?;
    drop(plain);
    let (sha256, size) = digest.hex_and_size();
    manifest.verify_digest(backup, &sha256, size)?;
    let mut conn =
        rusqlite::Connection::open_in_memory().map_err(|e| Error::database("cannot open an in-memory database", e))?;
    // A database copied from a WAL-mode file says so in its header (bytes 18 and 19), and
    // an in-memory database cannot use WAL: read it as a rollback-journal database.
    if bytes.len() >= 100 && bytes.starts_with(b"SQLite format 3\0") && bytes[18] == 2 && bytes[19] == 2 {
        bytes[18] = 1;
        bytes[19] = 1;
    }
    let len = bytes.len();
    conn.deserialize_read_exact(rusqlite::MAIN_DB, std::io::Cursor::new(bytes), len, true)
        .map_err(|e| Error::database(format!("{} does not hold a SQLite database", backup.display()), e))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| Error::database(format!("{} does not hold a readable SQLite database", backup.display()), e))?;
    if integrity != "ok" {
        return Err(Error::invalid(format!("the backup's database fails SQLite's integrity check: {integrity}")));
    }
    let (tables, _, _) = crate::backup::sqlite_facts(&conn)?;
    compare_counts(&manifest.tables, &tables).map_err(|e| Error::invalid(format!("{}: {e}", backup.display())))?;
    Ok(conn)
}

fn restore_sqlite(
    location: &SqliteLocation,
    backup: &Path,
    file: std::fs::File,
    manifest: &Manifest,
    keys: &Decryption,
    options: &RestoreOptions,
) -> Result<(), Error> {
    let source = load_sqlite_backup(backup, file, manifest, keys, options.progress.clone())?;
    let mut target = match location {
        SqliteLocation::File(path) => {
            sage_conn::create_private_file(path).map_err(|e| Error::io("cannot create", path, e))?;
            rusqlite::Connection::open(path)
        }
        SqliteLocation::InMemory => return Err(Error::invalid("an in-memory database cannot be restored into")),
    }
    .map_err(|e| Error::database("cannot open the target database", e))?;
    target
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| Error::database("cannot configure SQLite", e))?;
    if !options.replace_schema {
        let (tables, _, _) = crate::backup::sqlite_facts(&target)?;
        let identity =
            SchemaIdentity { history: crate::backup::sqlite_history(&target), tables: tables.into_keys().collect() };
        check_same_schema(manifest, &identity).map_err(|why| schema_refusal(backup, why))?;
    }
    // The backup API replaces the target's pages in one write transaction: readers see the
    // old database or the new one, and a kill part-way leaves the old one (SQLite's journal).
    let copy = rusqlite::backup::Backup::new(&source, &mut target)
        .map_err(|e| Error::database("the SQLite restore failed; the database is as it was", e))?;
    copy.run_to_completion(1 << 30, std::time::Duration::ZERO, None)
        .map_err(|e| Error::database("the SQLite restore failed; the database is as it was", e))?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub file: PathBuf,
    pub checksum: String,
    pub tables: BTreeMap<String, i64>,
    pub authenticity: Authenticity,
    pub encryption: String,
    pub skipped: Vec<String>,
    /// The pg_restore that read a custom-format backup and why that one.
    pub client: Option<String>,
}

/// Restores the backup into a scratch database (a temporary database on the server of
/// `near`, or memory for SQLite) and checks every row count, leaving `near` untouched.
pub async fn verify(near: &Target, backup: &Path, keys: &Decryption) -> Result<VerifyReport, Error> {
    let (Inspected { manifest, authenticity }, file) = inspect_opened(backup, keys).await?;
    let mut skipped = Vec::new();
    let mut client = None;
    match manifest.dialect.as_str() {
        "postgres" => {
            let Target::Postgres(pg) = near else {
                return Err(Error::VerifyNeedsServer);
            };
            let scratch = sage_schema::Scratch::create(pg).await?;
            // The dump runs as a role that owns the scratch database and nothing else: even a
            // tampered plain backup cannot reach the server's files or programs from here.
            let run_as = match scratch.restricted_role().await {
                Ok(role) => role,
                Err(e) => {
                    scratch.drop().await;
                    return Err(e.into());
                }
            };
            // Before PostgreSQL 15 the public schema belongs to the bootstrap superuser, not
            // to the database's owner: hand it to the restricted role, which replaces it.
            if let Some(role) = &run_as {
                let handed = async {
                    let client = sage_conn::connect(&scratch.settings).await?;
                    client
                        .batch_execute(&format!("ALTER SCHEMA public OWNER TO {}", quote_ident(role)))
                        .await
                        .map_err(|e| Error::database("cannot prepare the scratch database", e))
                }
                .await;
                if let Err(e) = handed {
                    scratch.drop().await;
                    return Err(e);
                }
            }
            let options = RestoreOptions { replace_schema: true, run_as, progress: Progress::none() };
            let result = restore(&Target::Postgres(scratch.settings.clone()), backup, keys, &options).await;
            scratch.drop().await;
            let report = result?;
            skipped = report.skipped;
            client = report.client;
        }
        _ => {
            let (backup, manifest, keys) = (backup.to_path_buf(), manifest.clone(), keys.clone());
            tokio::task::spawn_blocking(move || {
                load_sqlite_backup(&backup, file, &manifest, &keys, Progress::none()).map(drop)
            })
            .await
            .map_err(|e| Error::invalid(format!("verification failed: {e}")))??;
        }
    }
    Ok(VerifyReport {
        file: backup.to_path_buf(),
        checksum: manifest.sha256,
        tables: manifest.tables,
        authenticity,
        encryption: manifest.encryption,
        skipped,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(history: &[(i64, &str)], tables: &[&str]) -> Manifest {
        Manifest {
            format: crate::manifest::MANIFEST_FORMAT.into(),
            file: "b".into(),
            dialect: "postgres".into(),
            kind: "custom".into(),
            encryption: "none".into(),
            sha256: String::new(),
            size: 0,
            created_at: String::new(),
            tool_version: String::new(),
            server_version: String::new(),
            client_version: None,
            migration_version: None,
            history: history.iter().map(|(v, c)| Applied { version: *v, checksum: c.to_string() }).collect(),
            tables: tables.iter().map(|t| (t.to_string(), 0)).collect(),
            privileges: true,
            seal: None,
        }
    }

    fn identity(history: &[(i64, &str)], tables: &[&str]) -> SchemaIdentity {
        SchemaIdentity {
            history: history.iter().map(|(v, c)| Applied { version: *v, checksum: c.to_string() }).collect(),
            tables: tables.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn same_schema_at_another_version_is_accepted() {
        let backup = manifest(&[(1, "a"), (2, "b")], &["public.sessions"]);
        assert!(check_same_schema(&backup, &identity(&[(1, "a"), (2, "b"), (3, "c")], &["public.sessions"])).is_ok());
        assert!(check_same_schema(&backup, &identity(&[(1, "a")], &["public.sessions"])).is_ok());
        assert!(check_same_schema(&backup, &identity(&[], &[])).is_ok(), "an empty database takes any backup");
    }

    #[test]
    fn another_schema_is_refused() {
        let sage = manifest(&[(1, "a"), (2, "b")], &["public.sessions"]);
        let tmi = identity(&[(1, "x")], &["public.threat_models"]);
        assert!(check_same_schema(&sage, &tmi).unwrap_err().contains("migration 1 differs"));
        let unmanaged = manifest(&[], &["public.sessions"]);
        let tmi_unmanaged = identity(&[], &["public.threat_models"]);
        assert!(check_same_schema(&unmanaged, &tmi_unmanaged).unwrap_err().contains("only 0"));
        // Sharing only a bookkeeping table is not sharing a schema, and a backup without
        // history is not one of a database that has one.
        let bare = manifest(&[], &["public.sage_schema_history"]);
        let sage = identity(&[(1, "a")], &["public.sage_schema_history", "public.sessions", "public.nonces"]);
        assert!(check_same_schema(&bare, &sage).unwrap_err().contains("records none"));
        let one_shared = manifest(&[], &["public.a", "public.x", "public.y"]);
        let three = identity(&[], &["public.a", "public.b", "public.c"]);
        assert!(check_same_schema(&one_shared, &three).is_err());
        let dropped_one = manifest(&[], &["public.a", "public.b", "public.c"]);
        assert!(check_same_schema(&dropped_one, &identity(&[], &["public.a", "public.b"])).is_ok());
    }

    #[test]
    fn counts_must_match_both_ways() {
        let want: BTreeMap<String, i64> = [("a".to_string(), 2)].into();
        assert!(compare_counts(&want, &want).is_ok());
        assert!(compare_counts(&want, &[("a".to_string(), 3)].into()).is_err());
        assert!(compare_counts(&want, &[("a".to_string(), 2), ("b".to_string(), 0)].into()).is_err());
        assert!(compare_counts(&want, &BTreeMap::new()).is_err());
    }

    #[test]
    fn only_owner_and_grant_failures_for_missing_roles_are_skipped() {
        assert!(may_skip("ALTER TABLE public.t OWNER TO app", &SqlState::UNDEFINED_OBJECT));
        assert!(may_skip("GRANT SELECT ON TABLE public.t TO app", &SqlState::UNDEFINED_OBJECT));
        assert!(may_skip("SET transaction_timeout = 0", &SqlState::UNDEFINED_OBJECT));
        assert!(!may_skip("REVOKE ALL ON TABLE public.t FROM PUBLIC", &SqlState::INSUFFICIENT_PRIVILEGE));
        assert!(!may_skip("CREATE TABLE t (x int)", &SqlState::UNDEFINED_OBJECT));
        assert!(!may_skip("ALTER TABLE t ADD COLUMN y int", &SqlState::INSUFFICIENT_PRIVILEGE));
    }
}
