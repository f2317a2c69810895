use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use crate::pool::PoolSettings;
use crate::{DurationField, Environment, Error, Secret};

/// The file the embedded default uses when nothing else is configured.
pub const DEFAULT_SQLITE_FILE: &str = "sage.db";

/// A resolved database: what to connect to, and where that choice came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub target: Target,
    pub origin: Origin,
}

/// Where the settings were found, so that `status` can say why it talks to a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    DatabaseUrl,
    DbVariables,
    PostgresUrl,
    PostgresVariables,
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "--database-url",
            Origin::DatabaseUrl => "DATABASE_URL",
            Origin::DbVariables => "DB_* variables",
            Origin::PostgresUrl => "POSTGRES_URL",
            Origin::PostgresVariables => "POSTGRES_* variables",
            Origin::Default => "default",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Postgres(PgSettings),
    Sqlite(SqliteLocation),
    Memory,
}

impl Target {
    /// `postgres`, `sqlite` or `memory`.
    pub fn dialect_name(&self) -> &'static str {
        match self {
            Target::Postgres(_) => "postgres",
            Target::Sqlite(_) => "sqlite",
            Target::Memory => "memory",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteLocation {
    File(PathBuf),
    InMemory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(source: &str, value: &str) -> Result<SslMode, Error> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::invalid(format!(
                    "{source}: unknown sslmode {other:?} (expected disable, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Everything needed to open a PostgreSQL connection.
#[derive(Debug, Clone, PartialEq)]
pub struct PgSettings {
    /// Host name, IP address, or a directory holding the server's Unix socket.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// PEM file with the certificate authorities to trust (`sslrootcert`).
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub application_name: String,
    pub pool: PoolSettings,
}

impl PgSettings {
    fn with_defaults() -> PgSettings {
        PgSettings {
            host: "localhost".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            dbname: String::new(),
            sslmode: SslMode::default(),
            sslrootcert: None,
            connect_timeout: Duration::from_secs(10),
            application_name: "sage-db".into(),
            pool: PoolSettings::default(),
        }
    }

    /// The same server with another database name (used for scratch databases).
    pub fn with_dbname(&self, dbname: &str) -> PgSettings {
        PgSettings { dbname: dbname.to_string(), ..self.clone() }
    }

    /// The settings as a URL with the password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        self.url_with_password(self.password.as_ref().map(|_| "***"))
    }

    /// The settings as a URL that carries the password, for handing to tools such as
    /// `pg_dump`. Never print it.
    pub fn url_exposing_password(&self) -> String {
        self.url_with_password(self.password.as_ref().map(Secret::expose))
    }

    fn url_with_password(&self, password: Option<&str>) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let mut url = format!("postgres://{}", enc(&self.user));
        if let Some(pw) = password {
            if pw == "***" {
                url.push_str(":***");
            } else {
                url.push(':');
                url.push_str(&enc(pw));
            }
        }
        url.push('@');
        let socket = self.host.starts_with('/');
        if !socket {
            if self.host.contains(':') {
                url.push_str(&format!("[{}]", self.host));
            } else {
                url.push_str(&self.host);
            }
            url.push_str(&format!(":{}", self.port));
        }
        url.push('/');
        url.push_str(&enc(&self.dbname));
        let mut params = vec![format!("sslmode={}", self.sslmode.as_str())];
        if socket {
            params.push(format!("host={}", enc(&self.host)));
            params.push(format!("port={}", self.port));
        }
        url.push('?');
        url.push_str(&params.join("&"));
        url
    }
}

impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Postgres(pg) => f.write_str(&pg.redacted_url()),
            Target::Sqlite(SqliteLocation::File(path)) => write!(f, "sqlite://{}", path.display()),
            Target::Sqlite(SqliteLocation::InMemory) => f.write_str("sqlite::memory:"),
            Target::Memory => f.write_str("memory://"),
        }
    }
}

impl Settings {
    /// Resolves the database to use: `flag` (from `--database-url`) first, then
    /// `DATABASE_URL`, then SAGE's `DB_*` variables, then `POSTGRES_URL`, then the
    /// `POSTGRES_*` variables, and finally the SQLite file `sage.db`.
    pub fn resolve(flag: Option<&str>, env: &Environment) -> Result<Settings, Error> {
        if let Some(url) = flag {
            return Settings::parse_url("--database-url", url, Origin::Flag);
        }
        if let Some(url) = env.get("DATABASE_URL") {
            return Settings::parse_url("DATABASE_URL", url, Origin::DatabaseUrl);
        }
        if let Some(pg) = from_variables(env, &DB_VARIABLES)? {
            return Ok(Settings { target: Target::Postgres(pg), origin: Origin::DbVariables });
        }
        if let Some(url) = env.get("POSTGRES_URL") {
            return Settings::parse_url("POSTGRES_URL", url, Origin::PostgresUrl);
        }
        if let Some(pg) = from_variables(env, &POSTGRES_VARIABLES)? {
            return Ok(Settings { target: Target::Postgres(pg), origin: Origin::PostgresVariables });
        }
        Ok(Settings {
            target: Target::Sqlite(SqliteLocation::File(PathBuf::from(DEFAULT_SQLITE_FILE))),
            origin: Origin::Default,
        })
    }

    /// Parses one database URL. `source` names where it came from, for error messages.
    pub fn parse_url(source: &str, url: &str, origin: Origin) -> Result<Settings, Error> {
        let url = url.trim();
        let target = parse_target(source, url)?;
        Ok(Settings { target, origin })
    }
}

fn parse_target(source: &str, url: &str) -> Result<Target, Error> {
    if url.is_empty() {
        return Err(Error::invalid(format!("{source} is empty")));
    }
    if url == "memory://" || url == "memory:" {
        return Ok(Target::Memory);
    }
    if url == "sqlite::memory:" || url == "sqlite://:memory:" {
        return Ok(Target::Sqlite(SqliteLocation::InMemory));
    }
    if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(Error::invalid(format!(
                "{source}: the sqlite URL names no file (write sqlite://sage.db or sqlite:///abs/path.db)"
            )));
        }
        let decoded = percent_decode_str(path).decode_utf8_lossy().into_owned();
        return Ok(Target::Sqlite(SqliteLocation::File(PathBuf::from(decoded))));
    }
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("postgres" | "postgresql") => parse_postgres_url(source, url).map(Target::Postgres),
        Some(other) => Err(Error::invalid(format!(
            "{source}: unknown scheme {other:?}{} (expected postgres://, sqlite://, sqlite::memory: or memory://)",
            suggestion(other)
        ))),
        None => Err(Error::invalid(format!(
            "{source} is not a URL (expected postgres://user@host/db, sqlite://file.db or memory://)"
        ))),
    }
}

fn suggestion(scheme: &str) -> String {
    let known = ["postgres", "postgresql", "sqlite", "memory"];
    known
        .iter()
        .find(|k| edit_distance(k, &scheme.to_ascii_lowercase()) <= 2)
        .map(|k| format!(", did you mean {k}://"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn parse_postgres_url(source: &str, raw: &str) -> Result<PgSettings, Error> {
    // The error from the url crate may quote the input; never echo it, it can hold a password.
    let url = url::Url::parse(raw).map_err(|e| Error::invalid(format!("{source}: malformed postgres URL ({e})")))?;
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let mut pg = PgSettings::with_defaults();
    if !url.username().is_empty() {
        pg.user = decode(url.username());
    }
    pg.password = url.password().map(|p| Secret::new(decode(p)));
    if let Some(host) = url.host_str() {
        pg.host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    }
    if let Some(port) = url.port() {
        pg.port = port;
    }
    pg.dbname = decode(url.path().trim_start_matches('/'));
    for (name, value) in url.query_pairs() {
        apply_param(source, &mut pg, &name, &value)?;
    }
    if pg.dbname.is_empty() {
        pg.dbname = pg.user.clone();
    }
    pg.pool.check().map_err(|e| Error::invalid(format!("{source}: {e}")))?;
    Ok(pg)
}

fn apply_param(source: &str, pg: &mut PgSettings, name: &str, value: &str) -> Result<(), Error> {
    match name {
        "sslmode" => pg.sslmode = SslMode::parse(source, value)?,
        "sslrootcert" => pg.sslrootcert = Some(PathBuf::from(value)),
        "host" => pg.host = value.to_string(),
        "port" => {
            pg.port =
                value.parse().map_err(|_| Error::invalid(format!("{source}: port must be a number, got {value:?}")))?
        }
        "user" => pg.user = value.to_string(),
        "password" => pg.password = Some(Secret::new(value)),
        "dbname" => pg.dbname = value.to_string(),
        "application_name" => pg.application_name = value.to_string(),
        "connect_timeout" => {
            // Zero means "wait forever" to libpq but "give up at once" to a timer; neither
            // is what anyone asking for a timeout wants, so it is refused.
            pg.connect_timeout = DurationField::new("connect_timeout")
                .parse(value)
                .map_err(|e| Error::invalid(format!("{source}: {e}")))?
        }
        _ => {
            let known = pg.pool.apply_param(name, value).map_err(|e| Error::invalid(format!("{source}: {e}")))?;
            if !known {
                return Err(Error::invalid(format!(
                    "{source}: unknown parameter {name:?} (known: sslmode, sslrootcert, host, port, user, password, dbname, application_name, connect_timeout, pool_max_conns, pool_min_conns, pool_max_conn_idle_time, pool_health_check_period)"
                )));
            }
        }
    }
    Ok(())
}

/// The variable names one family of seed systems uses.
struct VariableFamily {
    origin: &'static str,
    hosts: &'static [&'static str],
    ports: &'static [&'static str],
    user: &'static str,
    password: &'static str,
    dbname: &'static str,
    sslmode: &'static str,
}

const DB_VARIABLES: VariableFamily = VariableFamily {
    origin: "DB_* variables",
    hosts: &["DB_HOST"],
    ports: &["DB_PORT"],
    user: "DB_USER",
    password: "DB_PASSWORD",
    dbname: "DB_NAME",
    sslmode: "DB_SSLMODE",
};

const POSTGRES_VARIABLES: VariableFamily = VariableFamily {
    origin: "POSTGRES_* variables",
    hosts: &["POSTGRES_HOST", "POSTGRES_SERVER_NAME"],
    ports: &["POSTGRES_PORT", "POSTGRES_SERVER_PORT"],
    user: "POSTGRES_USER",
    password: "POSTGRES_PASSWORD",
    dbname: "POSTGRES_DB",
    sslmode: "POSTGRES_SSLMODE",
};

/// Builds settings from one variable family, or `None` when it names no server.
/// A family is in use when its host or database name is set.
fn from_variables(env: &Environment, family: &VariableFamily) -> Result<Option<PgSettings>, Error> {
    let host = family.hosts.iter().find_map(|name| env.get(name));
    let dbname = env.get(family.dbname);
    if host.is_none() && dbname.is_none() {
        return Ok(None);
    }
    let mut pg = PgSettings::with_defaults();
    if let Some(host) = host {
        pg.host = host.to_string();
    }
    if let Some((name, port)) = family.ports.iter().find_map(|n| env.get(n).map(|v| (n, v))) {
        pg.port = port.parse().map_err(|_| Error::invalid(format!("{name} must be a port number, got {port:?}")))?;
    }
    if let Some(user) = env.get(family.user) {
        pg.user = user.to_string();
    }
    pg.password = env.get(family.password).map(Secret::new);
    if let Some(mode) = env.get(family.sslmode) {
        pg.sslmode = SslMode::parse(family.sslmode, mode)?;
    }
    pg.dbname = dbname.unwrap_or(&pg.user).to_string();
    tracing::debug!(origin = family.origin, "database settings from variables");
    Ok(Some(pg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn pg(settings: &Settings) -> &PgSettings {
        match &settings.target {
            Target::Postgres(pg) => pg,
            other => panic!("expected postgres, got {other:?}"),
        }
    }

    #[test]
    fn default_is_sqlite_file_in_working_directory() {
        let s = Settings::resolve(None, &env(&[])).unwrap();
        assert_eq!(s.target, Target::Sqlite(SqliteLocation::File("sage.db".into())));
        assert_eq!(s.origin, Origin::Default);
    }

    #[test]
    fn flag_beats_database_url_beats_variables() {
        let e = env(&[("DATABASE_URL", "sqlite://a.db"), ("DB_HOST", "h"), ("DB_NAME", "n")]);
        let s = Settings::resolve(Some("sqlite://b.db"), &e).unwrap();
        assert_eq!(s.target, Target::Sqlite(SqliteLocation::File("b.db".into())));
        let s = Settings::resolve(None, &e).unwrap();
        assert_eq!(s.target, Target::Sqlite(SqliteLocation::File("a.db".into())));
    }

    #[test]
    fn sage_db_variables_build_a_postgres_target() {
        let e = env(&[
            ("DB_HOST", "db.example.com"),
            ("DB_PORT", "6432"),
            ("DB_USER", "sage"),
            ("DB_PASSWORD", "p@ss word'\""),
            ("DB_NAME", "sage_prod"),
            ("DB_SSLMODE", "require"),
        ]);
        let s = Settings::resolve(None, &e).unwrap();
        let p = pg(&s);
        assert_eq!((p.host.as_str(), p.port, p.user.as_str()), ("db.example.com", 6432, "sage"));
        assert_eq!(p.password.as_ref().unwrap().expose(), "p@ss word'\"");
        assert_eq!(p.sslmode, SslMode::Require);
        assert_eq!(s.origin, Origin::DbVariables);
        assert!(!s.to_string().contains("p@ss"), "{s}");
    }

    #[test]
    fn webvh_server_name_variables_are_understood() {
        let e = env(&[
            ("POSTGRES_SERVER_NAME", "pg"),
            ("POSTGRES_SERVER_PORT", "5433"),
            ("POSTGRES_USER", "webvh"),
            ("POSTGRES_DB", "webvh"),
        ]);
        let p = Settings::resolve(None, &e).unwrap();
        assert_eq!((pg(&p).host.as_str(), pg(&p).port), ("pg", 5433));
    }

    #[test]
    fn postgres_url_with_every_parameter() {
        let s = Settings::parse_url(
            "t",
            "postgresql://u:s%40cret@[::1]:5433/db?sslmode=verify-full&sslrootcert=/ca.pem&pool_max_conns=50&pool_min_conns=5&connect_timeout=3s",
            Origin::Flag,
        )
        .unwrap();
        let p = pg(&s);
        assert_eq!(p.host, "::1");
        assert_eq!(p.password.as_ref().unwrap().expose(), "s@cret");
        assert_eq!(p.sslmode, SslMode::VerifyFull);
        assert_eq!(p.sslrootcert.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!((p.pool.max_connections, p.pool.min_connections), (50, 5));
        assert_eq!(p.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.to_string(), "postgres://u:***@[::1]:5433/db?sslmode=verify-full");
    }

    #[test]
    fn scheme_typo_gets_a_suggestion_and_no_password() {
        let err = Settings::parse_url("DATABASE_URL", "postgress://u:hunter2@h/db", Origin::DatabaseUrl).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("did you mean postgres://"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn unknown_parameter_is_named() {
        let err =
            Settings::parse_url("DATABASE_URL", "postgres://u:hunter2@h/db?sslmod=require", Origin::Flag).unwrap_err();
        assert!(err.to_string().contains("\"sslmod\""), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn bad_sslmode_is_named() {
        let err = Settings::resolve(None, &env(&[("DB_HOST", "h"), ("DB_SSLMODE", "yes")])).unwrap_err();
        assert!(err.to_string().contains("DB_SSLMODE"), "{err}");
    }

    #[test]
    fn sqlite_forms() {
        let t = |u| Settings::parse_url("t", u, Origin::Flag).unwrap().target;
        assert_eq!(t("sqlite:///var/lib/x.db"), Target::Sqlite(SqliteLocation::File("/var/lib/x.db".into())));
        assert_eq!(t("sqlite:rel.db"), Target::Sqlite(SqliteLocation::File("rel.db".into())));
        assert_eq!(t("sqlite::memory:"), Target::Sqlite(SqliteLocation::InMemory));
        assert_eq!(t("memory://"), Target::Memory);
    }

    #[test]
    fn redacted_url_round_trips_through_the_parser() {
        let s = Settings::parse_url("t", "postgres://a%20b:pw@host:1/d%2Fb?sslmode=disable", Origin::Flag).unwrap();
        let exposed = pg(&s).url_exposing_password();
        let again = Settings::parse_url("t", &exposed, Origin::Flag).unwrap();
        assert_eq!(pg(&again), pg(&s));
    }
}
