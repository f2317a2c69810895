//! Encryption of session key material at rest.
//!
//! Sealed form: `00 'S' 'K' 01 | key id (4) | nonce (24) | XChaCha20-Poly1305 ciphertext`,
//! with the session id as associated data, so a sealed key copied to another session's row
//! fails to open. The key id names which key of the ring sealed it, so keys can be rotated:
//! the last key of the ring seals, every key opens.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::Rng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{ErrorKind, Reason, Result, StoreError};

const MAGIC: [u8; 4] = [0x00, b'S', b'K', 0x01];
const HEADER: usize = MAGIC.len() + 4 + 24;
const AAD_PREFIX: &[u8] = b"sage-db session key v1\0";

/// The environment variable holding base64 keys (comma-separated, last one current).
pub const KEY_VAR: &str = "SAGE_SESSION_KEY";
/// The environment variable naming a key file.
pub const KEY_FILE_VAR: &str = "SAGE_SESSION_KEY_FILE";

#[derive(Clone)]
struct RingKey {
    id: [u8; 4],
    cipher: XChaCha20Poly1305,
}

/// The keys a store seals and opens session keys with. `Debug` shows key ids only.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("key_ids", &self.key_ids()).finish()
    }
}

/// A fresh random 32-byte key, base64-encoded as the key file and `SAGE_SESSION_KEY` take it.
pub fn generate_key() -> Zeroizing<String> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(key.as_mut());
    Zeroizing::new(BASE64.encode(key.as_ref()))
}

fn key_id(key: &[u8; 32]) -> [u8; 4] {
    let digest = Sha256::new().chain_update(b"sage-db key id\0").chain_update(key).finalize();
    digest[..4].try_into().expect("four bytes")
}

fn decode_key(text: &str, origin: &str) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(BASE64.decode(text.trim()).map_err(|_| {
        StoreError::configuration(Reason::BadSessionKey, format!("{origin}: a key is not valid base64"))
    })?);
    let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        StoreError::configuration(
            Reason::BadSessionKey,
            format!("{origin}: a key must be 32 bytes, this one is {}", bytes.len()),
        )
    })?;
    Ok(Zeroizing::new(array))
}

impl KeyRing {
    /// A ring from base64 keys, oldest first; the last one seals.
    pub fn from_base64(keys: &[&str], origin: &str) -> Result<KeyRing> {
        if keys.is_empty() {
            return Err(StoreError::configuration(Reason::BadSessionKey, format!("{origin} holds no key")));
        }
        let keys = keys
            .iter()
            .map(|k| {
                let key = decode_key(k, origin)?;
                Ok(RingKey { id: key_id(&key), cipher: XChaCha20Poly1305::new(Key::from_slice(key.as_ref())) })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KeyRing { keys })
    }

    /// A ring with one random key, for stores that forget everything on exit (memory).
    pub fn ephemeral() -> KeyRing {
        let key = generate_key();
        KeyRing::from_base64(&[key.as_str()], "ephemeral key").expect("a generated key is valid")
    }

    /// Reads a key file: one base64 key per line, `#` comments, the last key current. The
    /// file must not be readable by group or others.
    pub fn load_file(path: &Path) -> Result<KeyRing> {
        check_private(path)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            StoreError::new(ErrorKind::Configuration, format!("cannot read key file {}: {e}", path.display()))
        })?);
        let keys: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        KeyRing::from_base64(&keys, &format!("key file {}", path.display()))
    }

    /// Creates a key file with one new key, mode 0600, refusing to overwrite.
    pub fn create_file(path: &Path) -> Result<KeyRing> {
        append_key(path, true)?;
        KeyRing::load_file(path)
    }

    /// The current key's id, in hex.
    pub fn current_id(&self) -> String {
        hex_id(&self.current().id)
    }

    /// The ids of every key the ring holds, in hex, the current one last.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| hex_id(&k.id)).collect()
    }

    fn current(&self) -> &RingKey {
        self.keys.last().expect("a ring holds at least one key")
    }

    /// Encrypts `plaintext` for the session `session_id` with the current key.
    pub fn seal(&self, session_id: &str, plaintext: &[u8]) -> Vec<u8> {
        let key = self.current();
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(session_id);
        let ciphertext = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(HEADER + ciphertext.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`KeyRing::seal`] produced for the same session. Anything else —
    /// tampered bytes, another session's row, an unknown key, plaintext — is an integrity
    /// error.
    pub fn open(&self, session_id: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let Some(id) = sealed_key_id(sealed) else {
            return Err(StoreError::new(
                ErrorKind::Integrity,
                format!("session {session_id:?}: key material is stored unencrypted; rotating the keys encrypts it"),
            )
            .because(Reason::Unencrypted));
        };
        let Some(key) = self.keys.iter().find(|k| k.id == id) else {
            return Err(StoreError::new(
                ErrorKind::Integrity,
                format!(
                    "session {session_id:?}: key material was sealed with key {} which this store does not have",
                    hex_id(&id)
                ),
            ));
        };
        let nonce = XNonce::from_slice(&sealed[8..HEADER]);
        key.cipher
            .decrypt(nonce, Payload { msg: &sealed[HEADER..], aad: &aad(session_id) })
            .map(Zeroizing::new)
            .map_err(|_| {
                StoreError::new(
                    ErrorKind::Integrity,
                    format!("session {session_id:?}: key material failed authentication (altered, or copied from another session)"),
                )
            })
    }

    /// Whether `sealed` was sealed with the current key.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed_key_id(sealed) == Some(self.current().id)
    }
}

/// The key id in a sealed value, or `None` when the bytes are not sealed at all.
pub fn sealed_key_id(bytes: &[u8]) -> Option<[u8; 4]> {
    if bytes.len() < HEADER + 16 || bytes[..4] != MAGIC {
        return None;
    }
    Some(bytes[4..8].try_into().expect("four bytes"))
}

fn aad(session_id: &str) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(session_id.as_bytes());
    aad
}

fn hex_id(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds a new key at the end of `path` (it becomes the current key), creating the file
/// with mode 0600 when `create` is set. Returns the new key's id.
///
/// A new file is written in full under a temporary name and then linked into place, so a
/// process racing to create the same file either wins or finds a complete file, never an
/// empty one.
pub fn append_key(path: &Path, create: bool) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| {
        if sage_conn::is_disk_full(&e) {
            return StoreError::new(
                ErrorKind::Unavailable,
                format!("cannot write key file: {}", sage_conn::describe_io_error(&e, path)),
            );
        }
        StoreError::new(ErrorKind::Configuration, format!("cannot write key file {}: {e}", path.display()))
    };
    let key = generate_key();
    let id = hex_id(&key_id(&*decode_key(&key, "new key")?));
    if !create {
        check_private(path)?;
        let mut file = std::fs::OpenOptions::new().append(true).open(path).map_err(io)?;
        file.write_all(format!("{}\n", key.as_str()).as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        return Ok(id);
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io)?;
    let written = file
        .write_all(
            b"# SAGE DB session-key file: one base64 key per line. The last key encrypts new\n\
              # session keys; earlier keys still decrypt older rows. Keep it secret (mode 0600)\n\
              # and back it up apart from the database: without it, stored session keys are lost.\n",
        )
        .and_then(|()| file.write_all(format!("{}\n", key.as_str()).as_bytes()))
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    written.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            StoreError::new(ErrorKind::AlreadyExists, format!("key file {} already exists", path.display()))
        } else {
            io(e)
        }
    })?;
    Ok(id)
}

fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| {
        StoreError::new(ErrorKind::Configuration, format!("cannot read key file {}: {e}", path.display()))
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::new(
            ErrorKind::Configuration,
            format!(
                "key file {} is readable by others (mode {mode:o}); run: chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Where a store's keys come from. `Debug` never shows inline keys, only how many.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Base64 keys from `SAGE_SESSION_KEY` (comma-separated, last current).
    Inline(Vec<String>),
    /// A key file.
    File(PathBuf),
    /// A key file that is created on first use (the embedded default).
    FileCreatedOnFirstUse(PathBuf),
    /// A random key that lives as long as the process (memory stores).
    Ephemeral,
    /// Nothing configured.
    None,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Inline(keys) => write!(f, "Inline({} key(s))", keys.len()),
            KeySource::File(path) => f.debug_tuple("File").field(path).finish(),
            KeySource::FileCreatedOnFirstUse(path) => f.debug_tuple("FileCreatedOnFirstUse").field(path).finish(),
            KeySource::Ephemeral => f.write_str("Ephemeral"),
            KeySource::None => f.write_str("None"),
        }
    }
}

impl KeySource {
    /// `SAGE_SESSION_KEY`, else `SAGE_SESSION_KEY_FILE`, else `fallback`.
    pub fn from_environment(env: &sage_conn::Environment, fallback: KeySource) -> KeySource {
        if let Some(keys) = env.get(KEY_VAR) {
            return KeySource::Inline(
                keys.split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect(),
            );
        }
        if let Some(path) = env.get(KEY_FILE_VAR) {
            return KeySource::File(PathBuf::from(path));
        }
        fallback
    }

    /// The key file SQLite databases use by default: `<database>.key` beside it.
    pub fn default_file_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".key");
        PathBuf::from(name)
    }

    /// Loads the ring. The second value is a notice for the operator when a key file was
    /// created.
    pub fn load(&self) -> Result<(KeyRing, Option<String>)> {
        match self {
            KeySource::Inline(keys) => {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                Ok((KeyRing::from_base64(&refs, KEY_VAR)?, None))
            }
            KeySource::File(path) => Ok((KeyRing::load_file(path)?, None)),
            KeySource::FileCreatedOnFirstUse(path) if path.exists() => Ok((KeyRing::load_file(path)?, None)),
            KeySource::FileCreatedOnFirstUse(path) => {
                let ring = match KeyRing::create_file(path) {
                    Ok(ring) => ring,
                    // Another process created it first; use theirs.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok((KeyRing::load_file(path)?, None)),
                    Err(e) => return Err(e),
                };
                let notice = format!(
                    "created session-key file {} (mode 0600); back it up apart from the database: without it, stored session keys cannot be read",
                    path.display()
                );
                tracing::info!("{notice}");
                Ok((ring, Some(notice)))
            }
            KeySource::Ephemeral => Ok((KeyRing::ephemeral(), None)),
            KeySource::None => Err(StoreError::configuration(
                Reason::NoSessionKey,
                format!("no session-key encryption key is configured; set {KEY_FILE_VAR} to a key file (or put the key in {KEY_VAR})"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_without_leaking_the_key() {
        let ring = KeyRing::ephemeral();
        let sealed = ring.seal("s1", b"super secret key material");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(ring.open("s1", &sealed).unwrap().as_slice(), b"super secret key material");
    }

    #[test]
    fn moved_or_tampered_ciphertext_fails_integrity() {
        let ring = KeyRing::ephemeral();
        let sealed = ring.seal("s1", b"k");
        assert_eq!(ring.open("s2", &sealed).unwrap_err().kind(), ErrorKind::Integrity);
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open("s1", &flipped).unwrap_err().kind(), ErrorKind::Integrity);
        assert_eq!(ring.open("s1", b"plaintext key").unwrap_err().kind(), ErrorKind::Integrity);
    }

    #[test]
    fn older_keys_still_open_after_rotation() {
        let old = generate_key();
        let new = generate_key();
        let before = KeyRing::from_base64(&[old.as_str()], "t").unwrap();
        let sealed = before.seal("s", b"k");
        let after = KeyRing::from_base64(&[old.as_str(), new.as_str()], "t").unwrap();
        assert!(!after.is_current(&sealed));
        assert_eq!(after.open("s", &sealed).unwrap().as_slice(), b"k");
        assert!(after.is_current(&after.seal("s", b"k")));
        let only_new = KeyRing::from_base64(&[new.as_str()], "t").unwrap();
        assert!(only_new.open("s", &sealed).unwrap_err().to_string().contains(&before.current_id()));
    }

    #[test]
    fn key_file_is_private_and_refuses_loose_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let ring = KeyRing::create_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let id = append_key(&path, false).unwrap();
        let rotated = KeyRing::load_file(&path).unwrap();
        assert_eq!(rotated.key_ids(), vec![ring.current_id(), id]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(KeyRing::load_file(&path).unwrap_err().to_string().contains("chmod 600"));
        assert!(KeyRing::create_file(&path).is_err(), "never overwrites");
    }
}
