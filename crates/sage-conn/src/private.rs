//! Files that hold data are created readable by their owner only.

use std::path::Path;

/// Creates `path` as an empty file with mode 0600 when it does not exist yet, so that the
/// SQLite database (and the journal and WAL files SQLite gives the same mode) is never
/// readable by other users. An existing file is left as it is: its mode is the operator's
/// choice. An empty file is a valid, empty SQLite database.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn new_files_are_private_and_existing_ones_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        super::create_private_file(&new).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o600);
        let shared = dir.path().join("shared.db");
        std::fs::write(&shared, b"").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
        super::create_private_file(&shared).unwrap();
        assert_eq!(std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777, 0o640);
    }
}
