//! A real PgBouncer in front of a test cluster, for tests of the store and of migrations
//! through a connection pooler.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sage_conn::PgSettings;

use crate::cluster::{free_port, postgres_ids, running_as_root};
use crate::{Error, PgCluster};

/// A PgBouncer process pooling connections to one cluster; stopped when dropped.
#[derive(Debug)]
pub struct PgBouncer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl PgBouncer {
    /// Starts PgBouncer (`SAGE_PGBOUNCER`, `/usr/sbin/pgbouncer` or `pgbouncer` on `PATH`)
    /// in front of `cluster`, with `pool_mode` `session`, `transaction` or `statement`.
    /// Every database of the cluster is reachable through it as the superuser.
    pub fn start(cluster: &PgCluster, pool_mode: &str) -> Result<PgBouncer, Error> {
        PgBouncer::start_for(&cluster.admin_settings(), pool_mode)
    }

    /// Starts PgBouncer in front of the server `admin` reaches (over TCP or a socket
    /// directory), as `admin`'s user with its password; every database of that server is
    /// reachable through it.
    pub fn start_for(admin: &PgSettings, pool_mode: &str) -> Result<PgBouncer, Error> {
        let password = admin.password.as_ref().map(|p| p.expose().to_string()).unwrap_or_default();
        if !admin.user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || !password.chars().all(|c| c.is_ascii_alphanumeric())
            || admin.host.chars().any(|c| c.is_whitespace() || c == '\'')
        {
            return Err(Error::Usage("pgbouncer needs an alphanumeric user and password and a plain host".into()));
        }
        if !["session", "transaction", "statement"].contains(&pool_mode) {
            return Err(Error::Usage(format!("unknown pool_mode {pool_mode:?}")));
        }
        let program = find()?;
        let dir = tempfile::Builder::new()
            .prefix("sage-pgbouncer-")
            .tempdir()
            .map_err(Error::io("create a temporary directory in", std::env::temp_dir()))?;
        let port = free_port()?;
        let path = |name: &str| dir.path().join(name);
        let ini = format!(
            "[databases]\n* = host={host} port={server}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = plain\nauth_file = {users}\npool_mode = {pool_mode}\n\
             max_client_conn = 1000\ndefault_pool_size = 20\nmax_db_connections = 60\n\
             ignore_startup_parameters = extra_float_digits,options\nlogfile = {log}\nadmin_users = {user}\n",
            host = admin.host,
            server = admin.port,
            users = path("userlist.txt").display(),
            log = path("pgbouncer.log").display(),
            user = admin.user,
        );
        let userlist = format!("\"{}\" \"{password}\"\n", admin.user);
        for (name, text) in [("pgbouncer.ini", ini), ("userlist.txt", userlist)] {
            std::fs::write(path(name), text).map_err(Error::io("write", path(name)))?;
        }
        let mut command = Command::new(&program);
        command.arg(path("pgbouncer.ini")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // PgBouncer refuses to run as root; as root, it runs as the postgres user.
        if running_as_root() {
            let (uid, gid) = postgres_ids()?;
            for entry in [dir.path().to_path_buf(), path("pgbouncer.ini"), path("userlist.txt")] {
                std::os::unix::fs::chown(&entry, Some(uid), Some(gid))
                    .map_err(Error::io("hand to postgres", &entry))?;
            }
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().map_err(|source| Error::Run { program: program.clone(), source })?;
        let mut bouncer = PgBouncer { child, dir, port };
        bouncer.wait_until_listening(Duration::from_secs(20))?;
        Ok(bouncer)
    }

    fn wait_until_listening(&mut self, limit: Duration) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default();
                return Err(Error::CommandFailed { what: format!("pgbouncer ({status})"), output: log });
            }
            if started.elapsed() > limit {
                return Err(Error::Start("pgbouncer did not start listening".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Leaves PgBouncer running after this value is gone (for `sage-testkit bouncer`, which
    /// benchmark scripts use); returns its process id and its directory, which the caller
    /// removes after stopping it with `kill PID`.
    pub fn into_kept(self) -> (u32, PathBuf) {
        // Neither our Drop (which stops PgBouncer) nor the TempDir's (which removes its
        // configuration) may run, so the whole value is deliberately leaked.
        let this = std::mem::ManuallyDrop::new(self);
        (this.child.id(), this.dir.path().to_path_buf())
    }

    /// `settings` (a database of the cluster behind this pooler) reached through the pooler.
    pub fn settings_for(&self, settings: &PgSettings) -> PgSettings {
        PgSettings { host: "127.0.0.1".into(), port: self.port, other_hosts: Vec::new(), ..settings.clone() }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find() -> Result<PathBuf, Error> {
    if let Ok(path) = std::env::var("SAGE_PGBOUNCER") {
        return Ok(PathBuf::from(path));
    }
    let mut candidates = vec![PathBuf::from("/usr/sbin/pgbouncer"), PathBuf::from("/usr/bin/pgbouncer")];
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("pgbouncer")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| Error::Missing {
        advice: "pgbouncer was not found (Debian/Ubuntu: apt-get install pgbouncer, or set SAGE_PGBOUNCER)".into(),
    })
}
