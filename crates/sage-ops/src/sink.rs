//! Where backup bytes go: optionally gzip, optionally age encryption, then a hash and a
//! file. The file is a `.partial` name until everything is flushed to disk.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::Error;

/// How a backup is encrypted.
#[derive(Clone)]
pub enum Encryption {
    None,
    /// age with a passphrase (scrypt).
    Passphrase(SecretString),
    /// age to one or more X25519 recipients (`age1…`).
    Recipients(Vec<String>),
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Encryption {
    pub fn name(&self) -> &'static str {
        match self {
            Encryption::None => "none",
            Encryption::Passphrase(_) => "passphrase",
            Encryption::Recipients(_) => "recipients",
        }
    }
}

/// Counts and hashes what passes through to the file.
struct Hashing {
    file: File,
    hasher: Sha256,
    size: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

enum Layer {
    Plain(Hashing),
    Encrypted(age::stream::StreamWriter<Hashing>),
}

impl Write for Layer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Layer::Plain(w) => w.write(buf),
            Layer::Encrypted(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Layer::Plain(w) => w.flush(),
            Layer::Encrypted(w) => w.flush(),
        }
    }
}

pub struct Sink {
    inner: SinkInner,
    partial: PathBuf,
    written: u64,
}

enum SinkInner {
    Raw(Layer),
    Gzip(flate2::write::GzEncoder<Layer>),
}

pub struct Sealed {
    pub sha256: String,
    pub size: u64,
}

impl Sink {
    /// Opens `<final>.partial` for writing (mode 0600: a backup holds every row).
    pub fn create(final_path: &Path, encryption: &Encryption, gzip: bool) -> Result<Sink, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let partial = partial_path(final_path);
        // A new file, never an existing one or the target of a symbolic link someone left
        // under this name (O_EXCL does not follow links).
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| Error::io("cannot create", &partial, e))?;
        let hashing = Hashing { file, hasher: Sha256::new(), size: 0 };
        let layer = match encryption {
            Encryption::None => Layer::Plain(hashing),
            _ => Layer::Encrypted(encrypting_writer(hashing, encryption)?),
        };
        let inner = if gzip {
            SinkInner::Gzip(flate2::write::GzEncoder::new(layer, flate2::Compression::default()))
        } else {
            SinkInner::Raw(layer)
        };
        Ok(Sink { inner, partial, written: 0 })
    }

    /// Bytes taken in so far (before compression and encryption).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Finishes every layer, syncs the file and renames it into place.
    pub fn seal(self, final_path: &Path) -> Result<Sealed, Error> {
        let io = |e: io::Error| Error::io("cannot finish", final_path, e);
        let layer = match self.inner {
            SinkInner::Raw(layer) => layer,
            SinkInner::Gzip(gz) => gz.finish().map_err(io)?,
        };
        let hashing = match layer {
            Layer::Plain(h) => h,
            Layer::Encrypted(w) => w.finish().map_err(io)?,
        };
        hashing.file.sync_all().map_err(io)?;
        std::fs::rename(&self.partial, final_path).map_err(io)?;
        sync_dir(final_path);
        Ok(Sealed { sha256: hex::encode(hashing.hasher.finalize()), size: hashing.size })
    }

    /// Removes the partial file after a failure.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            SinkInner::Raw(w) => w.write(buf)?,
            SinkInner::Gzip(w) => w.write(buf)?,
        };
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            SinkInner::Raw(w) => w.flush(),
            SinkInner::Gzip(w) => w.flush(),
        }
    }
}

/// An I/O error in words: a full disk says so; anything else in the system's words.
pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(28) => "the disk is full (no space left on device)".into(),
        Some(122) => "the disk quota is exhausted".into(),
        _ => e.to_string(),
    }
}

pub fn partial_path(final_path: &Path) -> PathBuf {
    let mut name = final_path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Makes a rename durable.
pub fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }) {
            let _ = d.sync_all();
        }
    }
}

/// How to open an encrypted backup.
#[derive(Clone, Default)]
pub struct Decryption {
    pub passphrase: Option<SecretString>,
    /// age identity files (`AGE-SECRET-KEY-1…` lines).
    pub identities: Vec<PathBuf>,
}

impl std::fmt::Debug for Decryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryption")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .field("identities", &self.identities)
            .finish()
    }
}

/// An age writer to the backup's recipients or passphrase; `finish` completes it.
pub(crate) fn encrypting_writer<W: Write>(
    output: W,
    encryption: &Encryption,
) -> Result<age::stream::StreamWriter<W>, Error> {
    let start = |e: &dyn std::fmt::Display| Error::invalid(format!("cannot start encryption: {e}"));
    let encryptor = match encryption {
        Encryption::None => return Err(Error::invalid("cannot start encryption: the backup is not encrypted")),
        Encryption::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
        Encryption::Recipients(list) => {
            let recipients = list
                .iter()
                .map(|r| {
                    r.parse::<age::x25519::Recipient>()
                        .map_err(|e| Error::BadRecipient { recipient: r.clone(), reason: e.to_string() })
                })
                .collect::<Result<Vec<_>, _>>()?;
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| start(&e))?
        }
    };
    encryptor.wrap_output(output).map_err(|e| start(&e))
}

/// Reads `input`, decrypting it when `encryption` (a manifest's field) says it is
/// encrypted. `what` names the input in errors. Nothing is written anywhere: callers stream
/// the plaintext to where it goes.
pub(crate) fn decrypting_reader<R: io::BufRead + Send + 'static>(
    input: R,
    encryption: &str,
    keys: &Decryption,
    what: &str,
) -> Result<Box<dyn io::Read + Send>, Error> {
    if encryption == "none" {
        return Ok(Box::new(input));
    }
    let decryptor =
        age::Decryptor::new_buffered(input).map_err(|e| Error::invalid(format!("{what} is not an age file: {e}")))?;
    let mut identities: Vec<Box<dyn age::Identity>> = Vec::new();
    if let Some(p) = &keys.passphrase {
        identities.push(Box::new(age::scrypt::Identity::new(p.clone())));
    }
    for path in &keys.identities {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read identity file", path, e))?;
        for line in text.lines().map(str::trim).filter(|l| l.starts_with("AGE-SECRET-KEY-")) {
            identities.push(Box::new(
                line.parse::<age::x25519::Identity>()
                    .map_err(|e| Error::invalid(format!("{}: bad age identity: {e}", path.display())))?,
            ));
        }
    }
    if identities.is_empty() {
        return Err(Error::KeyMissing { file: what.to_string(), encryption: encryption.to_string() });
    }
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref()))
        .map_err(|e| Error::invalid(format!("cannot decrypt {what}: {e} (wrong passphrase or identity?)")))?;
    Ok(Box::new(reader))
}
