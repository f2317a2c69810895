use std::path::{Path, PathBuf};

/// A path for a SQLite database in a temporary directory that is removed on drop.
#[derive(Debug)]
pub struct SqliteFile {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteFile {
    pub fn new() -> SqliteFile {
        let dir = tempfile::Builder::new().prefix("sage-sqlite-").tempdir().expect("temporary directory");
        let path = dir.path().join("test.db");
        SqliteFile { dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory the file lives in, for tests that need more files beside it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }
}

impl Default for SqliteFile {
    fn default() -> SqliteFile {
        SqliteFile::new()
    }
}
