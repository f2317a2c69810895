//! `seed`: per-environment data, idempotent. SAGE's own seeds go through the store (so keys
//! are sealed and input validated like any write); a user's seeds are SQL files applied
//! once each, recorded in `sage_seed_history`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use sage_conn::{Progress, SqliteLocation, Target};
use sage_store::{DidRecord, DidStore, KeyType, NewSession, SessionKey, SessionStore, Store};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{blocking, Error};

#[derive(Debug, Clone, Default, Serialize)]
pub struct SeedReport {
    pub environment: String,
    /// Rows added per kind (or per file for SQL seeds).
    pub added: BTreeMap<String, u64>,
    /// Rows (or files) already present and left alone.
    pub already_present: BTreeMap<String, u64>,
}

/// The environments SAGE's built-in seeds know.
pub const SAGE_ENVIRONMENTS: [&str; 2] = ["dev", "staging"];

fn spki(seed: &str) -> Vec<u8> {
    // An Ed25519 SubjectPublicKeyInfo: the 12-byte DER prefix and a 32-byte key, derived
    // from the name so the seed is the same everywhere.
    let mut key = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    key.extend_from_slice(&Sha256::digest(format!("sage seed key {seed}").as_bytes()));
    key
}

fn owner(seed: &str) -> String {
    format!("0x{}", hex::encode(&Sha256::digest(format!("sage seed owner {seed}").as_bytes())[..20]))
}

fn count(map: &mut BTreeMap<String, u64>, key: &str) {
    *map.entry(key.to_string()).or_default() += 1;
}

/// SAGE's seed for `environment`: `dev` is 4 DIDs (3 active, 1 revoked), 3 sessions and 3
/// nonces; `staging` is 2 DIDs (sessions and nonces there come from tests).
/// Reports the rows seeded so far of all of them to `progress`.
pub async fn seed_sage(store: &Store, environment: &str, progress: &Progress) -> Result<SeedReport, Error> {
    let mut report = SeedReport { environment: environment.to_string(), ..SeedReport::default() };
    let now = Utc::now();
    let dids: Vec<(String, bool)> = match environment {
        "dev" => ["alice", "bob", "charlie", "revoked"]
            .iter()
            .map(|n| (format!("did:sage:dev:{n}"), *n == "revoked"))
            .collect(),
        "staging" => ["test1", "test2"].iter().map(|n| (format!("did:sage:staging:{n}"), false)).collect(),
        other => {
            return Err(Error::UnknownEnvironment {
                name: other.to_string(),
                known: SAGE_ENVIRONMENTS.iter().map(|e| e.to_string()).collect(),
            })
        }
    };
    // Each session comes with a nonce.
    let total = (dids.len() + if environment == "dev" { 2 * SESSIONS } else { 0 }) as u64;
    let mut done = 0u64;
    let mut step = |item: &str| {
        progress.items("seeding", Some(item), done, total);
        done += 1;
    };
    for (did, revoked) in &dids {
        step(did);
        let mut record = DidRecord::new(did.clone(), spki(did), owner(did), KeyType::Ed25519);
        record.revoked = *revoked;
        record.capabilities = vec!["messaging".into()];
        match store.dids().create(&record).await {
            Ok(_) => count(&mut report.added, "dids"),
            Err(e) if e.kind() == sage_store::ErrorKind::AlreadyExists => count(&mut report.already_present, "dids"),
            Err(e) => return Err(Error::invalid(format!("seeding {did}: {e}"))),
        }
    }
    if environment != "dev" {
        progress.items("seeding", None, total, total);
        return Ok(report);
    }
    let sessions: [_; SESSIONS] = [
        ("550e8400-e29b-41d4-a716-446655440000", "alice", "bob", Duration::hours(1), "nonce_alice_bob_001"),
        ("660f9511-f30c-42e5-b827-557766551111", "bob", "alice", Duration::hours(2), "nonce_bob_alice_001"),
        ("770fa622-a41d-43f6-8938-668877662222", "charlie", "alice", Duration::minutes(30), "nonce_charlie_alice_001"),
    ];
    for (id, client, server, ttl, nonce) in sessions {
        step(&format!("session {id}"));
        let session = NewSession {
            id: id.into(),
            client_did: format!("did:sage:dev:{client}"),
            server_did: format!("did:sage:dev:{server}"),
            key: SessionKey::new(Sha256::digest(format!("sage dev session key {id}").as_bytes()).to_vec()),
            expires_at: now + ttl,
            metadata: Some(serde_json::json!({"purpose": "test", "environment": "development"})),
            max_messages: None,
            idle_timeout: None,
        };
        match store.sessions().create(&session).await {
            Ok(_) => count(&mut report.added, "sessions"),
            Err(e) if e.kind() == sage_store::ErrorKind::AlreadyExists => {
                count(&mut report.already_present, "sessions")
            }
            Err(e) => return Err(Error::invalid(format!("seeding session {id}: {e}"))),
        }
        step(&format!("nonce {nonce}"));
        match store.nonces().claim(nonce, Some(id), now + Duration::minutes(5)).await {
            Ok(()) => count(&mut report.added, "nonces"),
            Err(e) if e.is_replayed() => count(&mut report.already_present, "nonces"),
            Err(e) => return Err(Error::invalid(format!("seeding nonce {nonce}: {e}"))),
        }
    }
    progress.items("seeding", None, total, total);
    Ok(report)
}

/// The sessions of the `dev` seed.
const SESSIONS: usize = 3;

/// The SQL seed files for `environment` under `dir`: `dir/<env>/*.sql` in name order, or
/// the single file `dir/<env>.sql`. The environment is a plain name, and every file must
/// resolve (through any symlinks) to a place inside `dir`: a seed directory never reads
/// anything outside itself.
pub fn seed_files(dir: &Path, environment: &str) -> Result<Vec<PathBuf>, Error> {
    check_environment_name(environment)?;
    let root = dir.canonicalize().map_err(|e| Error::io("cannot read the seed directory", dir, e))?;
    let folder = dir.join(environment);
    if folder.is_dir() {
        inside(&root, &folder, environment)?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(|e| Error::io("cannot read", &folder, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for file in &files {
            inside(&root, file, environment)?;
        }
        return Ok(files);
    }
    let single = dir.join(format!("{environment}.sql"));
    if single.is_file() {
        inside(&root, &single, environment)?;
        return Ok(vec![single]);
    }
    let known: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().trim_end_matches(".sql").to_string())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    Err(Error::invalid(format!(
        "no seeds for environment {environment:?} in {} (available: {})",
        dir.display(),
        known.join(", ")
    )))
}

/// An environment names a file or folder directly inside the seed directory: no path
/// separators, no `..`, nothing absolute, nothing hidden.
fn check_environment_name(environment: &str) -> Result<(), Error> {
    let plain = !environment.is_empty()
        && !environment.starts_with('.')
        && !environment.contains(['/', '\\', '\0'])
        && Path::new(environment).components().count() == 1;
    if plain {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "seed environment {environment:?} is not a plain name (no '/', '..' or leading '.'): refusing to read outside the seed directory"
        )))
    }
}

/// Refuses `path` unless it resolves, symlinks followed, to a place under `root` (itself
/// already resolved).
fn inside(root: &Path, path: &Path, environment: &str) -> Result<(), Error> {
    let real = path.canonicalize().map_err(|e| Error::io("cannot read seed", path, e))?;
    if real.starts_with(root) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "seed {} for environment {environment:?} resolves to {}, outside the seed directory {}: refusing to read it",
            path.display(),
            real.display(),
            root.display()
        )))
    }
}

/// Applies each seed file once, in its own transaction with its history row; a file already
/// applied is skipped, a file changed since it was applied is reported and skipped. Reports
/// the files done so far to `progress`.
pub async fn seed_directory(
    target: &Target,
    dir: &Path,
    environment: &str,
    progress: &Progress,
) -> Result<SeedReport, Error> {
    let files = {
        let (dir, environment) = (dir.to_path_buf(), environment.to_string());
        blocking::run("listing the seeds", move || seed_files(&dir, &environment)).await?
    };
    let mut report = SeedReport { environment: environment.to_string(), ..SeedReport::default() };
    let total = files.len() as u64;
    for (done, file) in files.into_iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        progress.items("seeding", Some(&name), done as u64, total);
        let sql = tokio::fs::read_to_string(&file).await.map_err(|e| Error::io("cannot read", &file, e))?;
        let checksum = sage_migrate::checksum(&sql);
        let applied = match target {
            Target::Postgres(pg) => seed_pg(pg, environment, &name, &checksum, &sql).await?,
            Target::Sqlite(SqliteLocation::File(path)) => {
                let (path, environment, name, checksum, sql) =
                    (path.clone(), environment.to_string(), name.clone(), checksum.clone(), sql.clone());
                blocking::run("seeding", move || seed_sqlite(&path, &environment, &name, &checksum, &sql)).await?
            }
            _ => return Err(Error::invalid("seeds need a PostgreSQL or SQLite file database")),
        };
        match applied {
            Applied::Now => count(&mut report.added, &name),
            Applied::Before => count(&mut report.already_present, &name),
            Applied::Changed => {
                return Err(Error::invalid(format!(
                    "{} changed after it was applied to this database; seeds run once, so put new rows in a new file",
                    file.display()
                )))
            }
        }
    }
    progress.items("seeding", None, total, total);
    Ok(report)
}

enum Applied {
    Now,
    Before,
    Changed,
}

// Created inside each seed's transaction, so that a seed that fails leaves no table behind.
const HISTORY: &str = "CREATE TABLE IF NOT EXISTS sage_seed_history (environment TEXT NOT NULL, file TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (environment, file))";

async fn seed_pg(
    pg: &sage_conn::PgSettings,
    environment: &str,
    name: &str,
    checksum: &str,
    sql: &str,
) -> Result<Applied, Error> {
    let mut client = sage_conn::connect(pg).await?;
    let q = |e: tokio_postgres::Error| {
        Error::invalid(format!("seed {name} failed and was rolled back: {}", sage_conn::describe_pg_error(&e, None)))
    };
    let tx = client.transaction().await.map_err(q)?;
    tx.batch_execute(HISTORY).await.map_err(q)?;
    tx.batch_execute("LOCK TABLE sage_seed_history IN EXCLUSIVE MODE").await.map_err(q)?;
    let existing = tx
        .query_opt(
            "SELECT checksum FROM sage_seed_history WHERE environment = $1 AND file = $2",
            &[&environment, &name],
        )
        .await
        .map_err(q)?;
    if let Some(row) = existing {
        return Ok(if row.get::<_, String>(0) == checksum { Applied::Before } else { Applied::Changed });
    }
    tx.batch_execute(sql).await.map_err(q)?;
    tx.execute(
        "INSERT INTO sage_seed_history (environment, file, checksum, applied_at) VALUES ($1, $2, $3, $4)",
        &[&environment, &name, &checksum, &Utc::now().to_rfc3339()],
    )
    .await
    .map_err(q)?;
    tx.commit().await.map_err(q)?;
    Ok(Applied::Now)
}

fn seed_sqlite(path: &Path, environment: &str, name: &str, checksum: &str, sql: &str) -> Result<Applied, Error> {
    sage_conn::create_private_file(path).map_err(|e| Error::io("cannot create", path, e))?;
    let mut conn =
        rusqlite::Connection::open(path).map_err(|e| Error::database("cannot open the SQLite database", e))?;
    let q = |e: rusqlite::Error| Error::invalid(format!("seed {name} failed and was rolled back: {e}"));
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(q)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(q)?;
    tx.execute_batch(HISTORY).map_err(q)?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT checksum FROM sage_seed_history WHERE environment = ?1 AND file = ?2",
            [environment, name],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| if matches!(e, rusqlite::Error::QueryReturnedNoRows) { Ok(None) } else { Err(e) })
        .map_err(q)?;
    if let Some(existing) = existing {
        return Ok(if existing == checksum { Applied::Before } else { Applied::Changed });
    }
    tx.execute_batch(sql).map_err(q)?;
    tx.execute(
        "INSERT INTO sage_seed_history (environment, file, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
        [environment, name, checksum, &Utc::now().to_rfc3339()],
    )
    .map_err(q)?;
    tx.commit().map_err(q)?;
    Ok(Applied::Now)
}
