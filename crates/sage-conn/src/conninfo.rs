//! PostgreSQL connection settings in the forms libpq reads them: URLs with one or more
//! hosts, `key=value` strings, the `PG*` variables, `pg_service.conf` services and the
//! password file. The syntax of URLs and `key=value` strings is tokio-postgres' own parser;
//! this module adds what libpq has and tokio-postgres lacks (`verify-ca`/`verify-full`,
//! `sslrootcert`, services, the password file, timeouts with units) and SAGE's pool
//! parameters, and lays the sources over each other as libpq does: what a connection string
//! says wins, then its service, then the variables, then the defaults.

use std::path::{Path, PathBuf};
#[cfg(feature = "postgres")]
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::percent_decode_str;
#[cfg(feature = "postgres")]
use tokio_postgres::config::Host;

use crate::{DurationField, Environment, Error, Pooler, Secret, SslMode};

/// Which servers of a multi-host list a session may use (`target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionAttrs {
    #[default]
    Any,
    /// A server that accepts writes: the primary, found by asking each host in turn.
    ReadWrite,
    /// A server in read-only mode, such as a standby.
    ReadOnly,
}

impl SessionAttrs {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionAttrs::Any => "any",
            SessionAttrs::ReadWrite => "read-write",
            SessionAttrs::ReadOnly => "read-only",
        }
    }

    fn parse(source: &str, value: &str) -> Result<SessionAttrs, Error> {
        match value {
            "any" => Ok(SessionAttrs::Any),
            "read-write" | "primary" => Ok(SessionAttrs::ReadWrite),
            "read-only" | "standby" => Ok(SessionAttrs::ReadOnly),
            other => Err(Error::invalid(format!(
                "{source}: unknown target_session_attrs {other:?} (expected any, read-write, primary, read-only or standby)"
            ))),
        }
    }
}

/// The parameters SAGE DB handles itself rather than handing them to tokio-postgres.
const OURS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "target_session_attrs",
    "service",
    "pooler",
    "pool_max_conns",
    "pool_min_conns",
    "pool_max_conn_idle_time",
    "pool_health_check_period",
];

/// Parameters libpq knows that SAGE DB cannot honour; refused by name rather than ignored.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("hostaddr", "use host with the address instead"),
    ("sslcert", "client certificates are not supported"),
    ("sslkey", "client certificates are not supported"),
    ("passfile", "set PGPASSFILE instead"),
];

/// `key=value` pairs in the order they were written.
type Pairs = Vec<(String, String)>;

/// Settings from one source, each `None` when that source does not say.
#[derive(Debug, Default, Clone)]
pub(crate) struct Partial {
    pub hosts: Option<Vec<String>>,
    pub ports: Option<Vec<u16>>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub dbname: Option<String>,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    pub application_name: Option<String>,
    /// Server settings for every session (`options=-c name=value …`).
    pub options: Option<String>,
    pub target_session_attrs: Option<SessionAttrs>,
    pub service: Option<String>,
    pub pooler: Option<Pooler>,
    /// `pool_*` parameters, applied in order once everything is laid together.
    pub pool: Vec<(String, String)>,
}

impl Partial {
    /// `self`, with what it leaves open taken from `lower`.
    pub fn over(self, lower: Partial) -> Partial {
        let mut pool = lower.pool;
        pool.extend(self.pool);
        Partial {
            hosts: self.hosts.or(lower.hosts),
            ports: self.ports.or(lower.ports),
            user: self.user.or(lower.user),
            password: self.password.or(lower.password),
            dbname: self.dbname.or(lower.dbname),
            sslmode: self.sslmode.or(lower.sslmode),
            sslrootcert: self.sslrootcert.or(lower.sslrootcert),
            connect_timeout: self.connect_timeout.or(lower.connect_timeout),
            application_name: self.application_name.or(lower.application_name),
            options: self.options.or(lower.options),
            target_session_attrs: self.target_session_attrs.or(lower.target_session_attrs),
            service: self.service.or(lower.service),
            pooler: self.pooler.or(lower.pooler),
            pool,
        }
    }

    /// Pairs each host with its port: one port for all, one per host, or 5432.
    pub fn endpoints(&self, source: &str) -> Result<Vec<(String, u16)>, Error> {
        let hosts = self.hosts.clone().unwrap_or_else(|| vec!["localhost".to_string()]);
        let ports = self.ports.clone().unwrap_or_default();
        match ports.len() {
            0 => Ok(hosts.into_iter().map(|h| (h, 5432)).collect()),
            1 => Ok(hosts.into_iter().map(|h| (h, ports[0])).collect()),
            n if n == hosts.len() => Ok(hosts.into_iter().zip(ports).collect()),
            n => Err(Error::invalid(format!(
                "{source}: {n} ports for {} hosts (give one port, or one per host)",
                hosts.len()
            ))),
        }
    }

    fn apply_ours(&mut self, source: &str, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "sslmode" => self.sslmode = Some(SslMode::parse(source, value)?),
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            // Zero means "wait forever" to libpq but "give up at once" to a timer; neither
            // is what anyone asking for a timeout wants, so it is refused. A bare number is
            // seconds, as libpq reads it.
            "connect_timeout" => {
                let seconds = value.parse::<u64>().ok().filter(|s| *s > 0 && *s <= 24 * 3600);
                self.connect_timeout = Some(match seconds {
                    Some(seconds) => Duration::from_secs(seconds),
                    None => DurationField::new("connect_timeout")
                        .parse(value)
                        .map_err(|e| Error::invalid(format!("{source}: {e}")))?,
                })
            }
            "target_session_attrs" => self.target_session_attrs = Some(SessionAttrs::parse(source, value)?),
            "service" => self.service = Some(value.to_string()),
            "pooler" => self.pooler = Some(Pooler::parse(source, value)?),
            _ => self.pool.push((key.to_string(), value.to_string())),
        }
        Ok(())
    }

    /// What tokio-postgres parsed, as a partial.
    #[cfg(feature = "postgres")]
    fn from_driver(source: &str, config: &tokio_postgres::Config) -> Result<Partial, Error> {
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let password = match config.get_password() {
            Some(bytes) => Some(Secret::new(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| Error::invalid(format!("{source}: the password is not valid UTF-8")))?,
            )),
            None => None,
        };
        Ok(Partial {
            hosts: (!hosts.is_empty()).then_some(hosts),
            ports: (!config.get_ports().is_empty()).then(|| config.get_ports().to_vec()),
            user: config.get_user().map(str::to_string),
            password,
            dbname: config.get_dbname().map(str::to_string),
            application_name: config.get_application_name().map(str::to_string),
            options: config.get_options().map(str::to_string),
            ..Partial::default()
        })
    }
}

/// Parses a `postgres://` URL, with any number of comma-separated hosts.
pub(crate) fn parse_url(source: &str, url: &str) -> Result<Partial, Error> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut ours = Vec::new();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(source, key)?;
        if is_ours(source, &key)? {
            ours.push((key, decode(source, value)?));
        } else {
            kept.push(pair);
        }
    }
    let driver_url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    let mut partial = driver_partial(source, &driver_url, "malformed postgres URL")?;
    // tokio-postgres fills in 5432 for a host written without a port; libpq would take
    // PGPORT there, so a URL that writes no port leaves the port open.
    if !names_a_port(base) && !query.split('&').any(|p| p.starts_with("port=")) {
        partial.ports = None;
    }
    for (key, value) in ours {
        partial.apply_ours(source, &key, &value)?;
    }
    Ok(partial)
}

/// Whether the host list of a URL (`scheme://user@h1:1,[::1]:2/db`) writes any port.
fn names_a_port(base: &str) -> bool {
    let after_scheme = base.split_once("://").map_or(base, |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, hosts)| hosts);
    hosts.split(',').any(|host| match host.rsplit_once(']') {
        Some((_, rest)) => rest.starts_with(':'),
        None => host.contains(':'),
    })
}

/// Parses a libpq `key=value` connection string (`host=db1,db2 dbname=app user='a b'`).
pub(crate) fn parse_key_values(source: &str, text: &str) -> Result<Partial, Error> {
    from_pairs(source, tokenize(source, text)?)
}

/// Builds a partial from `key=value` pairs, as a connection string or a service file holds them.
fn from_pairs(source: &str, pairs: Vec<(String, String)>) -> Result<Partial, Error> {
    let mut ours = Vec::new();
    let mut driver_text = String::new();
    for (key, value) in pairs {
        if is_ours(source, &key)? {
            ours.push((key, value));
        } else {
            driver_text.push_str(&format!("{key}='{}' ", value.replace('\\', "\\\\").replace('\'', "\\'")));
        }
    }
    let mut partial = driver_partial(source, &driver_text, "malformed connection string")?;
    for (key, value) in ours {
        partial.apply_ours(source, &key, &value)?;
    }
    Ok(partial)
}

/// The parameters tokio-postgres handles for SAGE DB.
const DRIVER: &[&str] = &[
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "application_name",
    "options",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "tcp_user_timeout",
    "channel_binding",
    "load_balance_hosts",
];

/// Whether SAGE DB handles `key` itself; an error for a parameter nobody handles.
fn is_ours(source: &str, key: &str) -> Result<bool, Error> {
    if let Some((_, advice)) = UNSUPPORTED.iter().find(|(name, _)| *name == key) {
        return Err(Error::invalid(format!("{source}: parameter {key:?} is not supported ({advice})")));
    }
    if OURS.contains(&key) {
        return Ok(true);
    }
    if DRIVER.contains(&key) {
        return Ok(false);
    }
    let known: Vec<&str> = DRIVER.iter().chain(OURS).copied().collect();
    Err(Error::invalid(format!("{source}: unknown parameter {key:?} (known: {})", known.join(", "))))
}

fn decode(source: &str, text: &str) -> Result<String, Error> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::invalid(format!("{source}: a URL parameter is not valid UTF-8 after percent-decoding")))
}

/// What tokio-postgres' parser reads from a URL or connection string.
#[cfg(feature = "postgres")]
fn driver_partial(source: &str, text: &str, what: &str) -> Result<Partial, Error> {
    Partial::from_driver(source, &driver_parse(source, text, what)?)
}

/// Without PostgreSQL support there is no parser for its URLs, and no use for one.
#[cfg(not(feature = "postgres"))]
fn driver_partial(source: &str, _text: &str, _what: &str) -> Result<Partial, Error> {
    Err(Error::new(crate::ErrorKind::InvalidSettings, format!("{source}: {}", crate::NO_POSTGRES)))
}

/// Runs tokio-postgres' parser. Its errors name the option, never the value; they are
/// still checked, since a value can hold a password.
#[cfg(feature = "postgres")]
fn driver_parse(source: &str, text: &str, what: &str) -> Result<tokio_postgres::Config, Error> {
    tokio_postgres::Config::from_str(text).map_err(|e| {
        let reason = crate::describe::error_chain(&e);
        let reason = reason.strip_prefix("invalid configuration: ").unwrap_or(&reason).to_string();
        if reason.contains("option `") || reason.contains("unexpected") || reason.contains("invalid") {
            Error::invalid(format!("{source}: {what} ({})", reason.replace('`', "\"")))
        } else {
            Error::invalid(format!("{source}: {what}"))
        }
    })
}

/// Splits a libpq connection string into pairs: `key = value`, where a value is a run of
/// non-blank characters or a single-quoted string with `\'` and `\\` escapes.
fn tokenize(source: &str, text: &str) -> Result<Vec<(String, String)>, Error> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(Error::invalid(format!("{source}: expected \"=\" after {key:?} (write key=value pairs)")));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => break,
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(Error::invalid(format!("{source}: the quoted value of {key:?} is not closed"))),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// The libpq variables, as a partial: `PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE
/// PGSSLMODE PGSSLROOTCERT PGAPPNAME PGOPTIONS PGCONNECT_TIMEOUT PGTARGETSESSIONATTRS PGSERVICE`.
pub(crate) fn from_environment(env: &Environment) -> Result<Partial, Error> {
    const NAMES: &[(&str, &str)] = &[
        ("PGHOST", "host"),
        ("PGPORT", "port"),
        ("PGUSER", "user"),
        ("PGPASSWORD", "password"),
        ("PGDATABASE", "dbname"),
        ("PGSSLMODE", "sslmode"),
        ("PGSSLROOTCERT", "sslrootcert"),
        ("PGAPPNAME", "application_name"),
        ("PGOPTIONS", "options"),
        ("PGCONNECT_TIMEOUT", "connect_timeout"),
        ("PGTARGETSESSIONATTRS", "target_session_attrs"),
        ("PGSERVICE", "service"),
    ];
    let mut partial = Partial::default();
    for (variable, key) in NAMES {
        if let Some(value) = env.get(variable) {
            // One variable at a time, so that an error names the variable.
            partial = from_pairs(variable, vec![(key.to_string(), value.to_string())])?.over(partial);
        }
    }
    Ok(partial)
}

/// Whether the libpq variables name a server on their own (a host, database or service).
pub(crate) fn environment_names_a_server(env: &Environment) -> bool {
    ["PGHOST", "PGDATABASE", "PGSERVICE"].iter().any(|v| env.get(v).is_some())
}

/// The service's settings from the first `pg_service.conf` that has it: `PGSERVICEFILE` or
/// `~/.pg_service.conf`, then `PGSYSCONFDIR/pg_service.conf` (Debian:
/// `/etc/postgresql-common/pg_service.conf`).
pub(crate) fn service(env: &Environment, name: &str) -> Result<Partial, Error> {
    let mut files = Vec::new();
    match env.get("PGSERVICEFILE") {
        Some(file) => files.push(PathBuf::from(file)),
        None => {
            if let Some(home) = env.get("HOME") {
                files.push(Path::new(home).join(".pg_service.conf"));
            }
        }
    }
    let sysconf = env.get("PGSYSCONFDIR").unwrap_or("/etc/postgresql-common");
    files.push(Path::new(sysconf).join("pg_service.conf"));
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Error::ReadFile { what: "service file", path: file.clone(), source }),
        };
        if let Some(pairs) = service_section(&text, name).map_err(|(line, reason)| Error::BadLine {
            file: file.clone(),
            line,
            reason: reason.to_string(),
        })? {
            return from_pairs(&format!("{} [{name}]", file.display()), pairs);
        }
    }
    let looked: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Err(Error::UnknownService { name: name.to_string(), looked })
}

/// The `key=value` lines of section `[name]` of a service file, if it has one.
fn service_section(text: &str, name: &str) -> Result<Option<Pairs>, (usize, String)> {
    let mut inside = false;
    let mut found = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let section =
                section.strip_suffix(']').ok_or((index + 1, "a section header lacks its \"]\"".to_string()))?;
            if inside {
                break;
            }
            inside = section.trim() == name;
            if inside {
                found = Some(Vec::new());
            }
            continue;
        }
        if !inside {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or((index + 1, "expected key=value".to_string()))?;
        if key.trim() == "service" {
            return Err((index + 1, "a service cannot name another service".to_string()));
        }
        if let Some(pairs) = found.as_mut() {
            pairs.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    Ok(found)
}

/// The password for the first of `endpoints` that the password file (`PGPASSFILE` or
/// `~/.pgpass`) has a line for. As libpq does, a file that others can read is ignored.
pub(crate) fn password_from_file(
    env: &Environment,
    endpoints: &[(String, u16)],
    dbname: &str,
    user: &str,
) -> Option<Secret> {
    let path = match env.get("PGPASSFILE") {
        Some(file) => PathBuf::from(file),
        None => Path::new(env.get("HOME")?).join(".pgpass"),
    };
    let metadata = std::fs::metadata(&path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "password file has group or world access; ignored (chmod 0600 it)"
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    endpoints.iter().find_map(|(host, port)| {
        // libpq matches a socket directory as "localhost".
        let host = if host.starts_with('/') { "localhost" } else { host.as_str() };
        text.lines().find_map(|line| {
            let fields = pgpass_fields(line)?;
            let wanted = [host, &port.to_string(), dbname, user];
            let matches = fields[..4].iter().zip(wanted).all(|(field, want)| field == "*" || field == want);
            matches.then(|| Secret::new(fields[4].clone()))
        })
    })
}

/// The five fields of a password-file line (`host:port:database:user:password`, `\:` and
/// `\\` escaped), or `None` for a comment or a malformed line.
fn pgpass_fields(line: &str) -> Option<Vec<String>> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    (fields.len() == 5).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_strings_tokenize_like_libpq() {
        let pairs = tokenize("t", "host=db1,db2 port = 5433 user='o\\'brien' password=p\\ w dbname= 'x y'").unwrap();
        let expect =
            [("host", "db1,db2"), ("port", "5433"), ("user", "o'brien"), ("password", "p w"), ("dbname", "x y")];
        assert_eq!(pairs, expect.map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(tokenize("t", "host").unwrap_err().to_string().contains("expected \"=\""));
        assert!(tokenize("t", "user='open").unwrap_err().to_string().contains("not closed"));
    }

    #[test]
    fn service_sections() {
        let text = "# x\n[a]\nhost=h1\n[b]\nhost=h2\nport=6\n[c]\n";
        assert_eq!(service_section(text, "b").unwrap().unwrap().len(), 2);
        assert_eq!(service_section(text, "c").unwrap(), Some(vec![]));
        assert_eq!(service_section(text, "zz").unwrap(), None);
        assert!(service_section("[a\nhost=x", "a").is_err());
    }

    #[test]
    fn password_file_lines() {
        assert_eq!(pgpass_fields("h:5432:db:u:p\\:w").unwrap()[4], "p:w");
        assert_eq!(pgpass_fields("h:5432:db:u:pa:ss").unwrap()[4], "pa:ss");
        assert!(pgpass_fields("# h:5432:db:u:p").is_none());
        assert!(pgpass_fields("h:5432:db").is_none());
    }
}
