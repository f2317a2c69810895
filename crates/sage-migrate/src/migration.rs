use sha2::{Digest, Sha256, Sha384};

/// One migration: a version, a name, the script that applies it and, when reversible, the
/// script that reverts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub up: Script,
    pub down: Option<Script>,
    /// SHA-256 (hex) of the up script with a BOM stripped and CRLF turned into LF, so the
    /// same file checked out on Windows and Linux has one checksum.
    pub checksum: String,
    /// SHA-384 of the raw up script, as sqlx records it in `_sqlx_migrations`.
    pub sqlx_checksum: Vec<u8>,
}

/// The SQL of one direction of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Where the script came from: a file name, or `name (embedded)`.
    pub origin: String,
    pub sql: String,
    /// Run inside one transaction together with the history row (the default), or
    /// statement by statement outside a transaction (`-- sage:no-transaction`).
    pub transactional: bool,
    /// The line of the file on which `sql` starts: 1 for a whole file, the line after
    /// `-- migrate:up` for a dbmate section. Positions in messages are the file's.
    pub first_line: usize,
}

impl Migration {
    /// The label used in messages: the up script's file name.
    pub fn label(&self) -> &str {
        &self.up.origin
    }
}

/// Text normalised for checksums: without a byte-order mark and with LF line endings.
pub fn normalise(text: &str) -> String {
    text.strip_prefix('\u{feff}').unwrap_or(text).replace("\r\n", "\n")
}

pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(normalise(text).as_bytes()))
}

pub(crate) fn sqlx_checksum(raw: &str) -> Vec<u8> {
    Sha384::digest(raw.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_bom_and_line_endings() {
        let unix = "CREATE TABLE t (id int);\nSELECT 1;\n";
        let windows = "\u{feff}CREATE TABLE t (id int);\r\nSELECT 1;\r\n";
        assert_eq!(checksum(unix), checksum(windows));
        assert_ne!(checksum(unix), checksum("CREATE TABLE t (id bigint);\nSELECT 1;\n"));
    }
}
