use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Where the PostgreSQL server programs live.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub dir: PathBuf,
}

const NEEDED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

impl PgBinaries {
    /// Finds `initdb`, `pg_ctl` and `postgres`: `SAGE_PG_BIN` first, then
    /// `pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin`, then `PATH`.
    pub fn find() -> Result<PgBinaries, Error> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(dir) = std::env::var("SAGE_PG_BIN") {
            let dir = PathBuf::from(dir);
            if !has_all(&dir) {
                return Err(Error::BinariesNotFound { dir: Some(dir) });
            }
            return Ok(PgBinaries { dir });
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            }
        }
        if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
            let mut versions: Vec<(u32, PathBuf)> = entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((version, e.path().join("bin")))
                })
                .collect();
            versions.sort_by_key(|v| std::cmp::Reverse(v.0));
            candidates.extend(versions.into_iter().map(|(_, p)| p));
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
        search(candidates)
    }

    pub fn path(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }

    /// The major version of the server binaries, e.g. 15.
    pub fn major_version(&self) -> Result<u32, Error> {
        let out = Command::new(self.path("postgres"))
            .arg("--version")
            .output()
            .map_err(|source| Error::Run { program: self.dir.join("postgres"), source })?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find_map(|w| w.split('.').next()?.parse().ok())
            .ok_or_else(|| Error::CommandFailed { what: "postgres --version".into(), output: text.to_string() })
    }
}

/// The first candidate directory holding every server program, or an error that says what
/// to install.
fn search(candidates: Vec<PathBuf>) -> Result<PgBinaries, Error> {
    candidates
        .into_iter()
        .find(|dir| has_all(dir))
        .map(|dir| PgBinaries { dir })
        .ok_or(Error::BinariesNotFound { dir: None })
}

fn has_all(dir: &Path) -> bool {
    NEEDED.iter().all(|p| dir.join(p).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_what_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let err = search(vec![empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(err.contains("initdb, pg_ctl, postgres"), "{err}");
        assert!(err.contains("apt-get install postgresql") && err.contains("SAGE_PG_BIN"), "{err}");
    }

    #[test]
    fn a_directory_with_all_three_is_found() {
        let dir = tempfile::tempdir().unwrap();
        for program in NEEDED {
            std::fs::write(dir.path().join(program), "").unwrap();
        }
        let empty = tempfile::tempdir().unwrap();
        let found = search(vec![empty.path().to_path_buf(), dir.path().to_path_buf()]).unwrap();
        assert_eq!(found.dir, dir.path());
    }
}
