//! Finding PostgreSQL's client programs (pg_dump, pg_restore, psql) in a version that can
//! handle the server, and running them without ever putting the password on a command line.

use std::path::{Path, PathBuf};
use std::process::Command;

use sage_conn::PgSettings;

use crate::Error;

/// A located program and its major version.
#[derive(Debug, Clone)]
pub struct Tool {
    pub path: PathBuf,
    pub major: u32,
    /// What it says of itself, e.g. `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`.
    pub version: String,
}

fn version_of(path: &Path) -> Option<(u32, String)> {
    let out = Command::new(path).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major = text.split_whitespace().find_map(|w| w.split('.').next()?.parse().ok())?;
    Some((major, text))
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
    dirs.into_iter().map(|d| d.join(program)).filter(|p| p.is_file()).collect()
}

/// The `program` to use with a server of `server_major`: the one in `SAGE_PG_BIN` when that
/// is set (it pins the choice); otherwise one of the server's own major version, so that
/// what it writes the server's own tools can read back; otherwise the oldest newer one.
pub fn find(program: &str, server_major: u32) -> Result<Tool, Error> {
    let probe = |path: PathBuf| {
        let (major, version) = version_of(&path)?;
        Some(Tool { major, path, version })
    };
    if let Some(dir) = std::env::var_os("SAGE_PG_BIN") {
        let path = PathBuf::from(dir).join(program);
        let tool = probe(path.clone()).ok_or_else(|| {
            Error::new(format!("SAGE_PG_BIN names {}, which is not a working {program}", path.display()))
        })?;
        if tool.major < server_major {
            return Err(Error::new(format!(
                "{program} {} in SAGE_PG_BIN ({}) is older than the server (PostgreSQL {server_major}) and cannot read it",
                tool.major,
                path.display()
            )));
        }
        return Ok(tool);
    }
    let found: Vec<Tool> = candidates(program).into_iter().filter_map(probe).collect();
    let usable = found.iter().filter(|t| t.major >= server_major);
    if let Some(tool) = usable.min_by_key(|t| t.major) {
        return Ok(tool.clone());
    }
    match found.iter().max_by_key(|t| t.major) {
        Some(old) => Err(Error::new(format!(
            "{program} {} ({}) is older than the server (PostgreSQL {server_major}) and cannot read it; \
             install postgresql-client-{server_major} or set SAGE_PG_BIN to a newer client",
            old.major,
            old.path.display()
        ))),
        None => Err(Error::new(format!(
            "{program} was not found; install the PostgreSQL client programs (Debian/Ubuntu: apt-get install postgresql-client-{server_major}) \
             or set SAGE_PG_BIN to the directory holding them"
        ))),
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
        .map_err(|e| Error::with("cannot read the server version", e))?;
    let num: String = row.get(0);
    Ok(num.parse::<u32>().unwrap_or(0) / 10000)
}
