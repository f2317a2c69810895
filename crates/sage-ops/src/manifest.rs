//! The manifest beside every backup: what it holds, and how to tell it is intact.
//!
//! A manifest is untrusted input. Nothing in it is ever executed or spliced into SQL: it
//! supplies expected facts (checksum, size, row counts, migration history) that restore
//! compares with what it reads itself. The manifest of an encrypted backup is sealed: an
//! HMAC-SHA256 over its contents, keyed by a random key that is itself encrypted with the
//! backup's passphrase or recipients, so changing one field without the key is detected
//! before anything runs. A plain backup's manifest cannot be authenticated, and
//! `backup verify` says so.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sink::{decrypting_reader, encrypting_writer, Decryption, Encryption};
use crate::Error;

pub const MANIFEST_FORMAT: &str = "sage-db backup 2";
/// Backups written before manifests were sealed and privileges kept; still restorable.
const FORMAT_1: &str = "sage-db backup 1";
/// A manifest is a few kilobytes; anything far larger is not one.
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The pg_dump that wrote a PostgreSQL backup, e.g. `pg_dump (PostgreSQL) 15.18`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    pub migration_version: Option<i64>,
    /// The migrations the backed-up database had applied (`sage_schema_history`): restore
    /// refuses a backup whose history is not a prefix of the target's or the other way round.
    #[serde(default)]
    pub history: Vec<Applied>,
    /// Exact row counts per table, taken in the same snapshot as the dump.
    pub tables: BTreeMap<String, i64>,
    /// Whether owners, grants and default privileges are in the dump.
    #[serde(default)]
    pub privileges: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<Seal>,
}

/// One applied migration, as its history row records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applied {
    pub version: i64,
    pub checksum: String,
}

/// The authentication of an encrypted backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// A random 32-byte key, age-encrypted like the backup itself, in base64.
    pub key: String,
    /// HMAC-SHA256 of the manifest with this field empty, in hex.
    pub mac: String,
}

/// What `authenticate` could establish about a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Authenticity {
    /// The seal matched: nobody without the passphrase or identity changed the manifest.
    Sealed,
    /// A plain backup (or one from before seals): nothing vouches for the manifest beyond
    /// the checks restore makes itself.
    Unauthenticated,
}

/// `<backup>.manifest.json`.
pub fn manifest_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

type HmacSha256 = Hmac<Sha256>;

impl Manifest {
    pub fn read(backup: &Path) -> Result<Manifest, Error> {
        let path = manifest_path(backup);
        let unreadable = |e: std::io::Error| {
            Error::invalid(format!(
                "{} has no readable manifest ({}: {e}); it is not a complete sage-db backup",
                backup.display(),
                path.display()
            ))
        };
        let file = open_regular(&path).map_err(unreadable)?;
        let mut text = String::new();
        file.take(MAX_MANIFEST_BYTES + 1).read_to_string(&mut text).map_err(unreadable)?;
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::invalid(format!("{}: larger than any sage-db manifest; refused", path.display())));
        }
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: not a sage-db manifest: {e}", path.display())))?;
        manifest.check_fields(backup).map_err(|why| Error::invalid(format!("{}: {why}", path.display())))?;
        Ok(manifest)
    }

    /// Rejects values no sage-db ever writes, so later steps only meet known ones.
    fn check_fields(&self, backup: &Path) -> Result<(), String> {
        if self.format != MANIFEST_FORMAT && self.format != FORMAT_1 {
            return Err(format!("unknown manifest format {:?}", self.format));
        }
        let kinds: &[&str] = match self.dialect.as_str() {
            "postgres" => &["custom", "sql.gz"],
            "sqlite" => &["sqlite"],
            other => return Err(format!("dialect: unknown value {other:?}")),
        };
        if !kinds.contains(&self.kind.as_str()) {
            return Err(format!("kind: {:?} is not a {} backup kind", self.kind, self.dialect));
        }
        if !["none", "passphrase", "recipients"].contains(&self.encryption.as_str()) {
            return Err(format!("encryption: unknown value {:?}", self.encryption));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("sha256: not a SHA-256 in hex".into());
        }
        let own_name = backup.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if self.file != own_name {
            return Err(format!("file: names {:?}, not this backup ({own_name:?})", self.file));
        }
        if let Some((table, n)) = self.tables.iter().find(|(_, n)| **n < 0) {
            return Err(format!("tables: {table:?} has a negative row count ({n})"));
        }
        Ok(())
    }

    /// Checks the file's size and SHA-256 against the manifest, before anything else
    /// touches it.
    pub fn verify_file(&self, backup: &Path) -> Result<(), Error> {
        let (sha256, size) = hash_file(backup)?;
        self.verify_digest(backup, &sha256, size)
    }

    /// Refuses a manifest that calls an encrypted file plain: restoring it would skip the
    /// seal, so an attacker could swap an encrypted backup for a plain one of their own.
    pub fn check_encryption(&self, backup: &Path, head: &[u8]) -> Result<(), Error> {
        let age_file = head.starts_with(b"age-encryption.org/v1");
        let age_name = backup.extension().is_some_and(|e| e == "age");
        if self.encryption == "none" && (age_file || age_name) {
            return Err(Error::invalid(format!(
                "{}: the manifest calls the backup unencrypted, but it is {}; it was altered, and nothing was restored",
                manifest_path(backup).display(),
                if age_file { "an age file" } else { "named as an encrypted one (.age)" }
            )));
        }
        if self.encryption != "none" && !(age_file && age_name) {
            return Err(Error::invalid(format!(
                "{}: the manifest says the backup is encrypted, but {} is not an age file named .age; nothing was restored",
                manifest_path(backup).display(),
                backup.display()
            )));
        }
        Ok(())
    }

    /// Compares a digest taken while reading the file with the manifest's.
    pub fn verify_digest(&self, backup: &Path, sha256: &str, size: u64) -> Result<(), Error> {
        if size != self.size {
            return Err(Error::invalid(format!(
                "{} is {size} bytes but its manifest says {}; it is truncated or was replaced, and will not be restored",
                backup.display(),
                self.size
            )));
        }
        if sha256 != self.sha256 {
            return Err(Error::invalid(format!(
                "{} does not match its manifest's SHA-256; it is corrupted and will not be restored",
                backup.display()
            )));
        }
        Ok(())
    }

    /// The bytes the seal's MAC covers: the manifest with the MAC itself left empty.
    fn mac_input(&self) -> Vec<u8> {
        let mut copy = self.clone();
        if let Some(seal) = &mut copy.seal {
            seal.mac.clear();
        }
        serde_json::to_vec(&copy).expect("the manifest serialises")
    }

    /// Seals an encrypted backup's manifest (a no-op for a plain one). Call last: any
    /// later change breaks the seal.
    pub fn seal(&mut self, encryption: &Encryption) -> Result<(), Error> {
        if matches!(encryption, Encryption::None) {
            self.seal = None;
            return Ok(());
        }
        let key: [u8; 32] = rand::random();
        let mut sealed_key = Vec::new();
        let mut writer = encrypting_writer(&mut sealed_key, encryption)?;
        writer
            .write_all(&key)
            .and_then(|()| writer.finish().map(drop))
            .map_err(|e| Error::invalid(format!("cannot seal the manifest: {e}")))?;
        self.seal =
            Some(Seal { key: base64::engine::general_purpose::STANDARD.encode(&sealed_key), mac: String::new() });
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(&self.mac_input());
        self.seal.as_mut().expect("just set").mac = hex::encode(mac.finalize().into_bytes());
        Ok(())
    }

    /// Establishes who could have written this manifest: for an encrypted backup, only
    /// someone with its passphrase or identity, else it is refused.
    pub fn authenticate(&self, backup: &Path, keys: &Decryption) -> Result<Authenticity, Error> {
        let altered = || {
            Error::invalid(format!(
                "{}: the manifest was altered after the backup was made (its seal does not match); nothing was restored",
                manifest_path(backup).display()
            ))
        };
        let Some(seal) = &self.seal else {
            if self.encryption != "none" && self.format != FORMAT_1 {
                return Err(Error::invalid(format!(
                    "{}: the manifest of an encrypted backup carries no seal; it was altered, and nothing was restored",
                    manifest_path(backup).display()
                )));
            }
            return Ok(Authenticity::Unauthenticated);
        };
        if self.encryption == "none" {
            // Only an encrypted backup has a key to seal with; a seal here was made up.
            return Err(altered());
        }
        let sealed_key = base64::engine::general_purpose::STANDARD.decode(&seal.key).map_err(|_| altered())?;
        let mut reader = decrypting_reader(
            std::io::BufReader::new(std::io::Cursor::new(sealed_key)),
            &self.encryption,
            keys,
            &format!("the seal of {}", manifest_path(backup).display()),
        )?;
        let mut key = Vec::new();
        reader.read_to_end(&mut key).map_err(|_| altered())?;
        let expected = hex::decode(&seal.mac).map_err(|_| altered())?;
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(&self.mac_input());
        mac.verify_slice(&expected).map_err(|_| altered())?;
        Ok(Authenticity::Sealed)
    }
}

/// Opens a file that must be a regular file: never through a symbolic link, and without
/// waiting on a FIFO or device, so what is checked is what is then read.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(
            |e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    std::io::Error::other("it is a symbolic link; name the file itself")
                } else {
                    e
                }
            },
        )?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

pub fn hash_file(path: &Path) -> Result<(String, u64), Error> {
    let file = open_regular(path).map_err(|e| Error::io("cannot read", path, e))?;
    hash_reader(file, path)
}

/// SHA-256 in hex and size of everything `file` yields.
pub fn hash_reader(file: impl Read, path: &Path) -> Result<(String, u64), Error> {
    let mut reader = HashingReader::new(file);
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| Error::io("cannot read", path, e))?;
    Ok(reader.digest())
}

/// Hashes and counts everything read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, hasher: Sha256::new(), size: 0 }
    }

    /// SHA-256 in hex and size of what was read so far.
    pub fn digest(&self) -> (String, u64) {
        (hex::encode(self.hasher.clone().finalize()), self.size)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}
