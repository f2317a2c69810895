use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use crate::conninfo::{self, SessionAttrs};
use crate::pool::PoolSettings;
use crate::{Environment, Error, Pooler, Secret};

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
    /// Given explicitly by the caller (a command-line option, a configuration value); the
    /// caller knows its name.
    Flag,
    DatabaseUrl,
    DbVariables,
    PostgresUrl,
    PostgresVariables,
    /// libpq's `PGHOST`, `PGDATABASE` or `PGSERVICE` (with the other `PG*` variables).
    LibpqVariables,
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "given explicitly",
            Origin::DatabaseUrl => "DATABASE_URL",
            Origin::DbVariables => "DB_* variables",
            Origin::PostgresUrl => "POSTGRES_URL",
            Origin::PostgresVariables => "POSTGRES_* variables",
            Origin::LibpqVariables => "PG* variables",
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
    pub(crate) fn parse(source: &str, value: &str) -> Result<SslMode, Error> {
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
    /// Host name, IP address, or a directory holding the server's Unix socket: the first
    /// (or only) server to try.
    pub host: String,
    pub port: u16,
    /// The servers to try after `host`, in order (a multi-host URL such as
    /// `postgres://db1,db2/app`); which one is used depends on `target_session_attrs`.
    pub other_hosts: Vec<(String, u16)>,
    pub target_session_attrs: SessionAttrs,
    pub user: String,
    pub password: Option<Secret>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// PEM file with the certificate authorities to trust (`sslrootcert`).
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub application_name: String,
    /// Server settings sent at connection start-up (`options=-c name=value …`, or
    /// `PGOPTIONS`), e.g. `-c statement_timeout=5s`.
    pub options: Option<String>,
    /// What stands between SAGE DB and the server (`pooler=` in the URL); decides whether
    /// named prepared statements and session state may be used.
    pub pooler: Pooler,
    pub pool: PoolSettings,
}

impl PgSettings {
    fn with_defaults() -> PgSettings {
        PgSettings {
            host: "localhost".into(),
            port: 5432,
            other_hosts: Vec::new(),
            target_session_attrs: SessionAttrs::Any,
            user: "postgres".into(),
            password: None,
            dbname: String::new(),
            sslmode: SslMode::default(),
            sslrootcert: None,
            connect_timeout: Duration::from_secs(10),
            application_name: "sage-db".into(),
            options: None,
            pooler: Pooler::Detect,
            pool: PoolSettings::default(),
        }
    }

    /// Every server to try, in order: `host` first, then `other_hosts`.
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, u16)> {
        std::iter::once((self.host.as_str(), self.port)).chain(self.other_hosts.iter().map(|(h, p)| (h.as_str(), *p)))
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
        let socket = self.endpoints().any(|(host, _)| host.starts_with('/'));
        if !socket {
            let hosts: Vec<String> = self
                .endpoints()
                .map(
                    |(host, port)| {
                        if host.contains(':') {
                            format!("[{host}]:{port}")
                        } else {
                            format!("{host}:{port}")
                        }
                    },
                )
                .collect();
            url.push_str(&hosts.join(","));
        }
        url.push('/');
        url.push_str(&enc(&self.dbname));
        let mut params = vec![format!("sslmode={}", self.sslmode.as_str())];
        if socket {
            let hosts: Vec<String> = self.endpoints().map(|(host, _)| enc(host)).collect();
            let ports: Vec<String> = self.endpoints().map(|(_, port)| port.to_string()).collect();
            params.push(format!("host={}", hosts.join(",")));
            params.push(format!("port={}", ports.join(",")));
        }
        if self.target_session_attrs != SessionAttrs::Any {
            params.push(format!("target_session_attrs={}", self.target_session_attrs.as_str()));
        }
        if self.pooler != Pooler::Detect {
            params.push(format!("pooler={}", self.pooler.as_str()));
        }
        if let Some(options) = &self.options {
            params.push(format!("options={}", enc(options)));
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
    /// Resolves the database to use: `given` first (the caller's name for where it came
    /// from, such as a command-line option, and the URL), then
    /// `DATABASE_URL`, then SAGE's `DB_*` variables, then `POSTGRES_URL`, then the
    /// `POSTGRES_*` variables, then libpq's `PGHOST`/`PGDATABASE`/`PGSERVICE`, and finally
    /// the SQLite file `sage.db`.
    ///
    /// A PostgreSQL target takes what it leaves open as libpq does: from the service it
    /// names (`service=`, or `PGSERVICE`), then from the `PG*` variables, and its password
    /// last from the password file (`PGPASSFILE` or `~/.pgpass`).
    pub fn resolve(given: Option<(&str, &str)>, env: &Environment) -> Result<Settings, Error> {
        if let Some((name, url)) = given {
            return Settings::parse_with(name, url, Origin::Flag, env);
        }
        if let Some(url) = env.get("DATABASE_URL") {
            return Settings::parse_with("DATABASE_URL", url, Origin::DatabaseUrl, env);
        }
        if let Some(partial) = from_variables(env, &DB_VARIABLES)? {
            let pg = finish(DB_VARIABLES.origin, partial, env)?;
            return Ok(Settings { target: Target::Postgres(pg), origin: Origin::DbVariables });
        }
        if let Some(url) = env.get("POSTGRES_URL") {
            return Settings::parse_with("POSTGRES_URL", url, Origin::PostgresUrl, env);
        }
        if let Some(partial) = from_variables(env, &POSTGRES_VARIABLES)? {
            let pg = finish(POSTGRES_VARIABLES.origin, partial, env)?;
            return Ok(Settings { target: Target::Postgres(pg), origin: Origin::PostgresVariables });
        }
        if conninfo::environment_names_a_server(env) {
            let pg = finish("PG* variables", conninfo::Partial::default(), env)?;
            return Ok(Settings { target: Target::Postgres(pg), origin: Origin::LibpqVariables });
        }
        Ok(Settings {
            target: Target::Sqlite(SqliteLocation::File(PathBuf::from(DEFAULT_SQLITE_FILE))),
            origin: Origin::Default,
        })
    }

    /// Parses one database URL or libpq `key=value` string on its own, without the `PG*`
    /// variables or files. `source` names where it came from, for error messages.
    pub fn parse_url(source: &str, url: &str, origin: Origin) -> Result<Settings, Error> {
        Settings::parse_with(source, url, origin, &Environment::default())
    }

    /// Parses one database URL or `key=value` string, filling what it leaves open from the
    /// service it names, the `PG*` variables in `env` and the password file, as
    /// [`Settings::resolve`] does.
    pub fn parse_with(source: &str, url: &str, origin: Origin, env: &Environment) -> Result<Settings, Error> {
        let url = url.trim();
        let target = parse_target(source, url, env)?;
        Ok(Settings { target, origin })
    }
}

fn parse_target(source: &str, url: &str, env: &Environment) -> Result<Target, Error> {
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
        Some("postgres" | "postgresql") => finish(source, conninfo::parse_url(source, url)?, env).map(Target::Postgres),
        Some(other) => Err(Error::invalid(format!(
            "{source}: unknown scheme {other:?}{} (expected postgres://, sqlite://, sqlite::memory: or memory://)",
            suggestion(other)
        ))),
        None if url.contains('=') => {
            finish(source, conninfo::parse_key_values(source, url)?, env).map(Target::Postgres)
        }
        None => Err(Error::invalid(format!(
            "{source} is not a URL (expected postgres://user@host/db, host=… dbname=…, sqlite://file.db or memory://)"
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

/// Lays `explicit` over its service, the `PG*` variables and the defaults, and looks the
/// password up in the password file when none of them gave one.
fn finish(source: &str, explicit: conninfo::Partial, env: &Environment) -> Result<PgSettings, Error> {
    let from_env = conninfo::from_environment(env)?;
    let service = match explicit.service.clone().or_else(|| from_env.service.clone()) {
        Some(name) => conninfo::service(env, &name)?,
        None => conninfo::Partial::default(),
    };
    let partial = explicit.over(service).over(from_env);
    let mut endpoints = partial.endpoints(source)?.into_iter();
    let defaults = PgSettings::with_defaults();
    let (host, port) = endpoints.next().unwrap_or((defaults.host.clone(), defaults.port));
    let user = partial.user.clone().unwrap_or_else(|| defaults.user.clone());
    let dbname = partial.dbname.clone().unwrap_or_else(|| user.clone());
    let mut pg = PgSettings {
        host,
        port,
        other_hosts: endpoints.collect(),
        target_session_attrs: partial.target_session_attrs.unwrap_or_default(),
        user,
        password: partial.password.clone(),
        dbname,
        sslmode: partial.sslmode.unwrap_or_default(),
        sslrootcert: partial.sslrootcert.clone(),
        connect_timeout: partial.connect_timeout.unwrap_or(defaults.connect_timeout),
        application_name: partial.application_name.clone().unwrap_or(defaults.application_name),
        options: partial.options.clone(),
        pooler: partial.pooler.unwrap_or_default(),
        pool: defaults.pool,
    };
    for (name, value) in &partial.pool {
        pg.pool.apply_param(name, value).map_err(|e| Error::invalid(format!("{source}: {e}")))?;
    }
    pg.pool.check().map_err(|e| Error::invalid(format!("{source}: {e}")))?;
    if pg.password.is_none() {
        let endpoints: Vec<(String, u16)> = pg.endpoints().map(|(h, p)| (h.to_string(), p)).collect();
        pg.password = conninfo::password_from_file(env, &endpoints, &pg.dbname, &pg.user);
    }
    Ok(pg)
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

/// The settings one variable family gives, or `None` when it names no server. A family
/// is in use when its host or database name is set.
fn from_variables(env: &Environment, family: &VariableFamily) -> Result<Option<conninfo::Partial>, Error> {
    let host = family.hosts.iter().find_map(|name| env.get(name));
    let dbname = env.get(family.dbname);
    if host.is_none() && dbname.is_none() {
        return Ok(None);
    }
    let mut partial = conninfo::Partial { hosts: host.map(|h| vec![h.to_string()]), ..Default::default() };
    if let Some((name, port)) = family.ports.iter().find_map(|n| env.get(n).map(|v| (n, v))) {
        let port = port.parse().map_err(|_| Error::invalid(format!("{name} must be a port number, got {port:?}")))?;
        partial.ports = Some(vec![port]);
    }
    partial.user = env.get(family.user).map(str::to_string);
    partial.password = env.get(family.password).map(Secret::new);
    if let Some(mode) = env.get(family.sslmode) {
        partial.sslmode = Some(SslMode::parse(family.sslmode, mode)?);
    }
    // Without a database name the family means the user's own database, as before the
    // libpq variables were read.
    partial.dbname = Some(dbname.or(partial.user.as_deref()).unwrap_or("postgres").to_string());
    tracing::debug!(origin = family.origin, "database settings from variables");
    Ok(Some(partial))
}

/// What a build without PostgreSQL support answers a PostgreSQL URL with.
pub const NO_POSTGRES: &str =
    "this build has no PostgreSQL support: it was compiled without the `postgres` cargo feature (on by default)";

/// What a build without SQLite support answers a SQLite URL with.
pub const NO_SQLITE: &str =
    "this build has no SQLite support: it was compiled without the `sqlite` cargo feature (on by default)";

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
        let s = Settings::resolve(Some(("--database-url", "sqlite://b.db")), &e).unwrap();
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

    #[test]
    fn server_options_are_kept_from_every_source() {
        let s = Settings::parse_url("t", "postgres://u@h/d?options=-c%20statement_timeout%3D5s", Origin::Flag).unwrap();
        assert_eq!(pg(&s).options.as_deref(), Some("-c statement_timeout=5s"));
        let again = Settings::parse_url("t", &pg(&s).url_exposing_password(), Origin::Flag).unwrap();
        assert_eq!(pg(&again), pg(&s), "the URL form carries the options");
        let s = Settings::resolve(Some(("url", "host=h dbname=d options='-c search_path=app'")), &env(&[])).unwrap();
        assert_eq!(pg(&s).options.as_deref(), Some("-c search_path=app"));
        let s =
            Settings::resolve(Some(("url", "postgres://u@h/d")), &env(&[("PGOPTIONS", "-c work_mem=8MB")])).unwrap();
        assert_eq!(pg(&s).options.as_deref(), Some("-c work_mem=8MB"), "PGOPTIONS fills what the URL leaves open");
    }

    #[test]
    fn multi_host_url_keeps_every_host_in_order() {
        let s = Settings::parse_url(
            "t",
            "postgres://u:pw@db1:5432,db2:5433,[::1]/app?target_session_attrs=read-write&sslmode=disable",
            Origin::Flag,
        )
        .unwrap();
        let p = pg(&s);
        let hosts: Vec<(&str, u16)> = p.endpoints().collect();
        assert_eq!(hosts, vec![("db1", 5432), ("db2", 5433), ("::1", 5432)]);
        assert_eq!(p.target_session_attrs, SessionAttrs::ReadWrite);
        assert_eq!(
            s.to_string(),
            "postgres://u:***@db1:5432,db2:5433,[::1]:5432/app?sslmode=disable&target_session_attrs=read-write"
        );
        let again = Settings::parse_url("t", &p.url_exposing_password(), Origin::Flag).unwrap();
        assert_eq!(pg(&again), p);
    }

    #[test]
    fn a_pooler_is_declared_in_the_url_or_connection_string() {
        let s =
            Settings::parse_url("t", "postgres://u:pw@pgbouncer:6432/app?pooler=transaction", Origin::Flag).unwrap();
        let p = pg(&s);
        assert_eq!(p.pooler, Pooler::Transaction);
        assert!(p.pooler.shares_sessions());
        assert_eq!(s.to_string(), "postgres://u:***@pgbouncer:6432/app?sslmode=prefer&pooler=transaction");
        let again = Settings::parse_url("t", &p.url_exposing_password(), Origin::Flag).unwrap();
        assert_eq!(pg(&again), p);
        let kv = Settings::parse_url("t", "host=db dbname=app pooler=none", Origin::Flag).unwrap();
        assert_eq!(pg(&kv).pooler, Pooler::None);
        assert!(!pg(&kv).pooler.shares_sessions());
        let default = Settings::parse_url("t", "postgres://db/app", Origin::Flag).unwrap();
        assert_eq!(pg(&default).pooler, Pooler::Detect);
        let err =
            Settings::parse_url("DATABASE_URL", "postgres://u:hunter2@h/db?pooler=yes", Origin::Flag).unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL: unknown pooler \"yes\""), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn key_value_strings_are_connection_strings_too() {
        let s = Settings::parse_url(
            "DATABASE_URL",
            "host=db1,db2 port=5432,6432 dbname=app user='o\\'brien' password='p w' sslmode=verify-full target_session_attrs=primary connect_timeout=4 pool_max_conns=7",
            Origin::DatabaseUrl,
        )
        .unwrap();
        let p = pg(&s);
        assert_eq!(p.endpoints().collect::<Vec<_>>(), vec![("db1", 5432), ("db2", 6432)]);
        assert_eq!((p.user.as_str(), p.dbname.as_str()), ("o'brien", "app"));
        assert_eq!(p.password.as_ref().unwrap().expose(), "p w");
        assert_eq!(p.sslmode, SslMode::VerifyFull);
        assert_eq!(p.target_session_attrs, SessionAttrs::ReadWrite);
        assert_eq!(p.connect_timeout, Duration::from_secs(4));
        assert_eq!(p.pool.max_connections, 7);
        assert!(!s.to_string().contains("p w") && !s.to_string().contains("p%20w"), "{s}");
        let socket = Settings::parse_url("t", "host=/var/run/postgresql dbname=x", Origin::Flag).unwrap();
        assert_eq!(pg(&socket).host, "/var/run/postgresql");
    }

    #[test]
    fn bad_connection_strings_name_the_problem_and_never_the_password() {
        for (input, says) in [
            ("host=a,b,c port=1,2 password=hunter2", "3 hosts"),
            ("postgres://u:hunter2@a,b,c:1,2/db?port=1,2", "ports"),
            ("host=h password=hunter2 dbnam=x", "unknown parameter \"dbnam\""),
            ("host=h password='hunter2", "not closed"),
            ("host=h password=hunter2 hostaddr=1.2.3.4", "\"hostaddr\" is not supported"),
            ("postgres://u:hunter2@h/db?target_session_attrs=prefer-standby", "target_session_attrs"),
            ("host=h password=hunter2 port=http", "port"),
        ] {
            let err = Settings::parse_url("DATABASE_URL", input, Origin::DatabaseUrl).unwrap_err().to_string();
            assert!(err.contains(says), "{input}: {err}");
            assert!(err.starts_with("DATABASE_URL"), "{input}: {err}");
            assert!(!err.contains("hunter2"), "{input}: {err}");
        }
    }

    #[test]
    fn libpq_variables_name_a_server_below_every_other_source() {
        let libpq = [
            ("PGHOST", "pg1,pg2"),
            ("PGPORT", "5433"),
            ("PGUSER", "alice"),
            ("PGPASSWORD", "from-env"),
            ("PGDATABASE", "appdb"),
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", "/ca.pem"),
            ("PGAPPNAME", "relay"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGTARGETSESSIONATTRS", "read-write"),
        ];
        let s = Settings::resolve(None, &env(&libpq)).unwrap();
        assert_eq!(s.origin, Origin::LibpqVariables);
        let p = pg(&s);
        assert_eq!(p.endpoints().collect::<Vec<_>>(), vec![("pg1", 5433), ("pg2", 5433)]);
        assert_eq!((p.user.as_str(), p.dbname.as_str(), p.application_name.as_str()), ("alice", "appdb", "relay"));
        assert_eq!(p.password.as_ref().unwrap().expose(), "from-env");
        assert_eq!(p.sslmode, SslMode::Require);
        assert_eq!(p.sslrootcert.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(p.connect_timeout, Duration::from_secs(7));
        assert_eq!(p.target_session_attrs, SessionAttrs::ReadWrite);
        assert!(!s.to_string().contains("from-env"));

        // Every other source wins; the variables only fill what it leaves open.
        let mut with_url = libpq.to_vec();
        with_url.push(("DATABASE_URL", "postgres://bob@h/other"));
        let s = Settings::resolve(None, &env(&with_url)).unwrap();
        let p = pg(&s);
        assert_eq!((p.host.as_str(), p.port, p.user.as_str(), p.dbname.as_str()), ("h", 5433, "bob", "other"));
        assert_eq!(p.password.as_ref().unwrap().expose(), "from-env");
        let mut with_db = libpq.to_vec();
        with_db.extend([("DB_HOST", "sage-db"), ("DB_NAME", "sage")]);
        let s = Settings::resolve(None, &env(&with_db)).unwrap();
        assert_eq!((s.origin, pg(&s).host.as_str(), pg(&s).dbname.as_str()), (Origin::DbVariables, "sage-db", "sage"));
        // A variable alone that names no server keeps the embedded default.
        let s = Settings::resolve(None, &env(&[("PGUSER", "alice"), ("PGPASSWORD", "x")])).unwrap();
        assert_eq!(s.origin, Origin::Default);
        let err = Settings::resolve(None, &env(&[("PGHOST", "h"), ("PGPORT", "x")])).unwrap_err();
        assert!(err.to_string().starts_with("PGPORT"), "{err}");
    }

    #[test]
    fn services_and_the_password_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap().to_string();
        std::fs::write(
            dir.path().join(".pg_service.conf"),
            "# ours\n[billing]\nhost=svc-host\nport=6543\ndbname=billing\nuser=svc\n\n[other]\nhost=x\n",
        )
        .unwrap();
        let pgpass = dir.path().join(".pgpass");
        std::fs::write(&pgpass, "# comment\nsvc-host:6543:billing:svc:pa\\:ss\n*:*:*:*:fallback\n").unwrap();
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let base = [("HOME", home.as_str()), ("PGSYSCONFDIR", home.as_str())];

        // A service named in the URL; the URL's own dbname wins over the service's.
        let s = Settings::resolve(Some(("url", "postgres:///mine?service=billing")), &env(&base)).unwrap();
        let p = pg(&s);
        assert_eq!((p.host.as_str(), p.port, p.user.as_str(), p.dbname.as_str()), ("svc-host", 6543, "svc", "mine"));
        assert_eq!(p.password.as_ref().unwrap().expose(), "fallback");
        // PGSERVICE alone names a server, and the password file matches it exactly.
        let mut vars = base.to_vec();
        vars.push(("PGSERVICE", "billing"));
        let s = Settings::resolve(None, &env(&vars)).unwrap();
        assert_eq!(s.origin, Origin::LibpqVariables);
        assert_eq!(pg(&s).password.as_ref().unwrap().expose(), "pa:ss");
        assert!(!s.to_string().contains("pa:ss") && !s.to_string().contains("pa%3Ass"));
        // A password in the URL beats the file; PGPASSFILE points elsewhere.
        let s = Settings::resolve(
            Some(("url", "host=svc-host port=6543 dbname=billing user=svc password=given")),
            &env(&base),
        )
        .unwrap();
        assert_eq!(pg(&s).password.as_ref().unwrap().expose(), "given");
        let mut vars = base.to_vec();
        vars.push(("PGPASSFILE", "/nonexistent/pgpass"));
        let s = Settings::resolve(Some(("url", "postgres://svc@svc-host:6543/billing")), &env(&vars)).unwrap();
        assert!(pg(&s).password.is_none());
        // As libpq does, a password file others can read is ignored.
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let s = Settings::resolve(Some(("url", "postgres://svc@svc-host:6543/billing")), &env(&base)).unwrap();
        assert!(pg(&s).password.is_none());
        // An unknown service is an error that says where it looked.
        let err = Settings::resolve(Some(("url", "service=nope")), &env(&base)).unwrap_err().to_string();
        assert!(err.contains("service \"nope\" is not defined") && err.contains(".pg_service.conf"), "{err}");
    }
}
