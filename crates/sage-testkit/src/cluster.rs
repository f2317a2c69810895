use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::distr::{Alphanumeric, SampleString};
use sage_conn::{PgSettings, Secret, Settings, Target};

use crate::{Error, PgBinaries};

/// How to run a throwaway cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Keep fsync and synchronous commit on, as a production server would. Tests leave it
    /// off for speed; benchmarks turn it on so that figures mean something.
    pub durable: bool,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// Serve TLS with a certificate for `localhost` signed by a throwaway CA, whose PEM
    /// file [`PgCluster::ca_cert`] returns.
    pub tls: bool,
    /// With `tls`: the server's certificate expired in 2001, for tests of how clients
    /// report it.
    pub expired_certificate: bool,
}

/// A PostgreSQL cluster in a temporary directory. Dropping it stops the server and removes
/// the directory.
#[derive(Debug)]
pub struct PgCluster {
    pub(crate) binaries: PgBinaries,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
    pub(crate) password: String,
    pub(crate) options: ClusterOptions,
    pub(crate) run_as_postgres: bool,
}

pub(crate) const SUPERUSER: &str = "postgres";

/// The file in a kept cluster's directory that names its binaries' directory.
const BIN_DIR_FILE: &str = "bin-dir";

impl PgCluster {
    pub fn start(options: ClusterOptions) -> Result<PgCluster, Error> {
        let binaries = PgBinaries::find()?;
        let run_as_postgres = running_as_root();
        let dir = tempfile::Builder::new()
            .prefix("sage-pg-")
            .tempdir()
            .map_err(Error::io("create a temporary directory in", std::env::temp_dir()))?;
        if run_as_postgres {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(Error::io("hand to the postgres user", dir.path()))?;
        }
        let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
        let mut cluster = PgCluster { binaries, dir, port: 0, password, options, run_as_postgres };
        cluster.init()?;
        if cluster.options.tls {
            cluster.write_certificates()?;
        }
        // A free port can be taken by someone else between our probe and the server's bind;
        // try a few times before giving up.
        let mut last = None;
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Start("the server did not start".into())))
    }

    fn init(&self) -> Result<(), Error> {
        let pwfile = self.dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password)).map_err(Error::io("write", &pwfile))?;
        if self.run_as_postgres {
            let (uid, gid) = postgres_ids()?;
            let _ = std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid));
        }
        let data = self.data_dir();
        let out = self.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                SUPERUSER,
                &format!("--pwfile={}", pwfile.display()),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        )?;
        let _ = std::fs::remove_file(&pwfile);
        check(out, "initdb")
    }

    pub(crate) fn start_server(&self) -> Result<(), Error> {
        let mut server_opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        if !self.options.durable {
            server_opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        if self.options.tls {
            server_opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        for (name, value) in &self.options.settings {
            server_opts.push_str(&format!(" -c {name}={value}"));
        }
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &["-D", path_str(&self.data_dir()), "-l", path_str(&log), "-w", "-t", "60", "-o", &server_opts, "start"],
        )?;
        if !out.status.success() {
            let server_log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(Error::CommandFailed {
                what: "pg_ctl start".into(),
                output: format!(
                    "{}{}\n{server_log}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(())
    }

    /// Stops the server (fast shutdown), keeping its data for [`PgCluster::resume`].
    pub fn stop(&self) -> Result<(), Error> {
        let out = self.run("pg_ctl", &["-D", path_str(&self.data_dir()), "-m", "fast", "-w", "stop"])?;
        check(out, "pg_ctl stop")
    }

    /// Starts a stopped server again on the same port.
    pub fn resume(&self) -> Result<(), Error> {
        self.start_server()
    }

    /// Gives up ownership: the server keeps running after this value is gone, until
    /// [`PgCluster::stop_kept`] is called with the returned directory.
    pub fn into_kept_dir(self) -> PathBuf {
        // Neither our Drop (which stops the server) nor the TempDir's (which removes the
        // directory) may run, so the whole value is deliberately leaked.
        let this = std::mem::ManuallyDrop::new(self);
        // Which binaries run it, so that `stop_kept` uses this major's pg_ctl whatever
        // SAGE_PG_BIN says by then.
        let _ = std::fs::write(this.dir.path().join(BIN_DIR_FILE), this.binaries.dir.as_os_str().as_encoded_bytes());
        this.dir.path().to_path_buf()
    }

    /// Stops a server left running by [`PgCluster::into_kept_dir`] and removes its directory.
    pub fn stop_kept(dir: &Path) -> Result<(), Error> {
        let binaries = match std::fs::read_to_string(dir.join(BIN_DIR_FILE)) {
            Ok(bin) => PgBinaries { dir: PathBuf::from(bin) },
            Err(_) => PgBinaries::find()?,
        };
        let data = dir.join("data");
        let mut command = if running_as_root() {
            let mut c = Command::new(runuser()?);
            c.args(["-u", "postgres", "--"]).arg(binaries.path("pg_ctl"));
            c
        } else {
            Command::new(binaries.path("pg_ctl"))
        };
        let out = command
            .args(["-D", path_str(&data), "-m", "fast", "-w", "stop"])
            .output()
            .map_err(|source| Error::Run { program: "pg_ctl".into(), source })?;
        let stopped = check(out, "pg_ctl stop");
        std::fs::remove_dir_all(dir).map_err(Error::io("remove", dir))?;
        stopped
    }

    /// The CA certificate (PEM) that signed the server's certificate, for `sslrootcert`.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.path().join("ca.pem"))
    }

    fn write_certificates(&self) -> Result<(), Error> {
        let fail = |e: rcgen::Error| Error::Start(format!("cannot make test certificates: {e}"));
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "sage-testkit CA");
        let ca_key = rcgen::KeyPair::generate().map_err(fail)?;
        let ca = ca_params.self_signed(&ca_key).map_err(fail)?;
        let mut server_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(fail)?;
        if self.options.expired_certificate {
            server_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            server_params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let server_key = rcgen::KeyPair::generate().map_err(fail)?;
        let server = server_params.signed_by(&server_key, &ca, &ca_key).map_err(fail)?;
        let data = self.data_dir();
        let write = |path: PathBuf, text: String, mode: u32| -> Result<(), Error> {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(&path, text).map_err(Error::io("write", &path))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(Error::io("set permissions on", &path))?;
            if self.run_as_postgres {
                let (uid, gid) = postgres_ids()?;
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(Error::io("hand to postgres", &path))?;
            }
            Ok(())
        };
        write(data.join("server.crt"), server.pem(), 0o644)?;
        write(data.join("server.key"), server_key.serialize_pem(), 0o600)?;
        write(self.dir.path().join("ca.pem"), ca.pem(), 0o644)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Settings for the superuser on the `postgres` database, over TCP with a password.
    pub fn admin_settings(&self) -> PgSettings {
        let url = format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres?sslmode=disable", self.port);
        let mut pg = match Settings::parse_url("testkit", &url, sage_conn::Origin::Flag) {
            Ok(Settings { target: Target::Postgres(pg), .. }) => pg,
            other => unreachable!("testkit URL must parse as postgres: {other:?}"),
        };
        pg.password = Some(Secret::new(self.password.clone()));
        pg
    }

    pub fn bin_dir(&self) -> &Path {
        &self.binaries.dir
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn run(&self, program: &str, args: &[&str]) -> Result<Output, Error> {
        self.run_with_env(program, args, &[])
    }

    pub(crate) fn run_with_env(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Output, Error> {
        let program_path = self.binaries.path(program);
        let mut command = if self.run_as_postgres {
            let mut c = Command::new(runuser()?);
            c.args(["-u", "postgres", "--"]).arg(&program_path);
            c
        } else {
            Command::new(&program_path)
        };
        command.args(args).envs(env.iter().copied()).current_dir(self.dir.path());
        command.output().map_err(|source| Error::Run { program: program_path.to_path_buf(), source })
    }

    /// The shell command that stops this server without waiting, for a watchdog.
    pub(crate) fn stop_command(&self) -> Result<Vec<String>, Error> {
        let mut argv = Vec::new();
        if self.run_as_postgres {
            argv.extend([runuser()?.display().to_string(), "-u".into(), "postgres".into(), "--".into()]);
        }
        argv.push(self.binaries.path("pg_ctl").display().to_string());
        argv.extend([
            "-D".into(),
            self.data_dir().display().to_string(),
            "-m".into(),
            "immediate".into(),
            "stop".into(),
        ]);
        Ok(argv)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl", &["-D", path_str(&self.data_dir()), "-m", "immediate", "-w", "stop"]);
    }
}

pub(crate) fn check(out: Output, what: &str) -> Result<(), Error> {
    if out.status.success() {
        return Ok(());
    }
    Err(Error::CommandFailed {
        what: what.to_string(),
        output: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    })
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

pub(crate) fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::NoFreePort)?;
    listener.local_addr().map(|a| a.port()).map_err(Error::NoFreePort)
}

pub(crate) fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

pub(crate) fn postgres_ids() -> Result<(u32, u32), Error> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| Error::Missing {
            advice: "running as root needs a 'postgres' user to run the server as \
                         (PostgreSQL refuses to run as root); create one with: useradd --system postgres"
                .into(),
        })
}

fn runuser() -> Result<PathBuf, Error> {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Missing {
            advice: "running as root needs runuser (util-linux) to start PostgreSQL as postgres".into(),
        })
}
