//! The manifest beside every backup: what it holds, and how to tell it is intact.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

pub const MANIFEST_FORMAT: &str = "sage-db backup 1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The backup file's name (it sits in the same directory).
    pub file: String,
    /// `postgres` or `sqlite`.
    pub dialect: String,
    /// `custom` (pg_dump -Fc), `sql.gz` (plain SQL, gzip) or `sqlite` (a database file).
    pub kind: String,
    /// `none`, `passphrase` or `recipients` (age).
    pub encryption: String,
    pub sha256: String,
    pub size: u64,
    pub created_at: String,
    pub tool_version: String,
    pub server_version: String,
    pub migration_version: Option<i64>,
    /// Exact row counts per table, taken in the same snapshot as the dump.
    pub tables: BTreeMap<String, i64>,
}

/// `<backup>.manifest.json`.
pub fn manifest_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

impl Manifest {
    pub fn read(backup: &Path) -> Result<Manifest, Error> {
        let path = manifest_path(backup);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::new(format!(
                "{} has no readable manifest ({}: {e}); it is not a complete sage-db backup",
                backup.display(),
                path.display()
            ))
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::new(format!("{}: not a sage-db manifest: {e}", path.display())))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(Error::new(format!("{}: unknown manifest format {:?}", path.display(), manifest.format)));
        }
        Ok(manifest)
    }

    /// Checks the file's size and SHA-256 against the manifest, before anything else
    /// touches it.
    pub fn verify_file(&self, backup: &Path) -> Result<(), Error> {
        let (sha256, size) = hash_file(backup)?;
        if size != self.size {
            return Err(Error::new(format!(
                "{} is {size} bytes but its manifest says {}; it is truncated or was replaced, and will not be restored",
                backup.display(),
                self.size
            )));
        }
        if sha256 != self.sha256 {
            return Err(Error::new(format!(
                "{} does not match its manifest's SHA-256; it is corrupted and will not be restored",
                backup.display()
            )));
        }
        Ok(())
    }
}

pub fn hash_file(path: &Path) -> Result<(String, u64), Error> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}
