//! Streaming standbys of a test cluster, for failover tests: a real `pg_basebackup` of the
//! primary, started as a hot standby that streams from it, and promoted on demand.

use std::time::{Duration, Instant};

use crate::cluster::{check, free_port, path_str, postgres_ids};
use crate::{ClusterOptions, Error, PgCluster};

impl PgCluster {
    /// A streaming standby of this cluster under `name` (its `application_name`, the name
    /// `synchronous_standby_names` refers to), started and streaming when this returns.
    /// It runs with the primary's options on a port of its own, except that it waits for
    /// no standby of its own once promoted (no `synchronous_standby_names`), or every
    /// commit on it would wait for a standby that does not exist.
    pub fn start_standby(&self, name: &str) -> Result<PgCluster, Error> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::Usage(format!("standby name {name:?} must be letters, digits and _")));
        }
        let dir = tempfile::Builder::new()
            .prefix("sage-pg-standby-")
            .tempdir()
            .map_err(Error::io("create a temporary directory in", std::env::temp_dir()))?;
        if self.run_as_postgres {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(Error::io("hand to the postgres user", dir.path()))?;
        }
        let mut standby = PgCluster {
            binaries: self.binaries.clone(),
            dir,
            port: 0,
            password: self.password.clone(),
            options: ClusterOptions {
                settings: self
                    .options
                    .settings
                    .iter()
                    .filter(|(name, _)| name != "synchronous_standby_names")
                    .cloned()
                    .collect(),
                ..self.options.clone()
            },
            run_as_postgres: self.run_as_postgres,
        };
        let data = standby.data_dir();
        let out = standby.run_with_env(
            "pg_basebackup",
            &[
                "-D",
                path_str(&data),
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                crate::cluster::SUPERUSER,
                "-X",
                "stream",
                "-c",
                "fast",
                "-R",
                "--no-sync",
            ],
            &[("PGPASSWORD", &self.password)],
        )?;
        check(out, "pg_basebackup")?;
        // The password is alphanumeric and the name checked above, so the line needs no quoting.
        let conninfo = format!(
            "\nprimary_conninfo = 'host=127.0.0.1 port={} user={} password={} application_name={name}'\n",
            self.port,
            crate::cluster::SUPERUSER,
            self.password
        );
        let auto = data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
        text.push_str(&conninfo);
        std::fs::write(&auto, text).map_err(Error::io("write", &auto))?;
        let mut last = None;
        for _ in 0..5 {
            standby.port = free_port()?;
            match standby.start_server() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        self.wait_for_standby(name, Duration::from_secs(60))?;
        Ok(standby)
    }

    /// Waits until the primary reports `name` as streaming.
    fn wait_for_standby(&self, name: &str, limit: Duration) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let out = self.run_with_env(
                "psql",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    crate::cluster::SUPERUSER,
                    "-d",
                    "postgres",
                    "-Atc",
                    "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
                ],
                &[("PGPASSWORD", &self.password)],
            )?;
            if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == name) {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(Error::Start(format!(
                    "standby {name} did not start streaming within {}s",
                    limit.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Promotes this standby to a primary and waits until it accepts writes.
    pub fn promote(&self) -> Result<(), Error> {
        let out = self.run("pg_ctl", &["-D", path_str(&self.data_dir()), "-w", "-t", "60", "promote"])?;
        check(out, "pg_ctl promote")
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn crash(&self) -> Result<(), Error> {
        let out = self.run("pg_ctl", &["-D", path_str(&self.data_dir()), "-m", "immediate", "-w", "stop"])?;
        check(out, "pg_ctl stop -m immediate")
    }
}
