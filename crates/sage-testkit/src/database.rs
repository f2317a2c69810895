use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use rand::distr::{Alphanumeric, SampleString};
use sage_conn::{quote_ident, PgSettings, Settings, Target};

use crate::{ClusterOptions, Error, PgCluster};

/// A database of its own for one test, dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    settings: PgSettings,
    admin: PgSettings,
}

impl TestDatabase {
    /// Settings for the test database, as the superuser.
    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// A URL for the test database that carries the password, for child processes.
    pub fn url(&self) -> String {
        self.settings.url_exposing_password()
    }

    pub fn name(&self) -> &str {
        &self.settings.dbname
    }

    /// Settings for the maintenance database on the same server.
    pub fn admin_settings(&self) -> &PgSettings {
        &self.admin
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.settings.dbname.clone();
        // Drop runs inside or outside a runtime; a thread of its own works in both.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let client = sage_conn::connect(&admin).await.ok()?;
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name));
                client.batch_execute(&sql).await.ok()
            })
        })
        .join();
    }
}

struct Shared {
    admin: PgSettings,
    // Held for the life of the process; a watchdog stops the server after the process ends.
    _cluster: Option<PgCluster>,
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

/// Settings for the superuser of the shared test server: `SAGE_TEST_PG_URL` when set,
/// otherwise a cluster started for this process.
pub fn shared_admin() -> Result<PgSettings, Error> {
    let shared = SHARED.get_or_init(|| start_shared().map_err(|e| e.to_string()));
    match shared {
        Ok(s) => Ok(s.admin.clone()),
        Err(e) => Err(Error::Start(e.clone())),
    }
}

fn start_shared() -> Result<Shared, Error> {
    if let Ok(url) = std::env::var("SAGE_TEST_PG_URL") {
        return match Settings::parse_url("SAGE_TEST_PG_URL", &url, sage_conn::Origin::Flag) {
            Ok(Settings { target: Target::Postgres(admin), .. }) => Ok(Shared { admin, _cluster: None }),
            Ok(_) => Err(Error::Usage("SAGE_TEST_PG_URL must be a postgres:// URL".into())),
            Err(e) => Err(Error::Usage(e.to_string())),
        };
    }
    let cluster = PgCluster::start(ClusterOptions::default())?;
    spawn_watchdog(&cluster)?;
    Ok(Shared { admin: cluster.admin_settings(), _cluster: Some(cluster) })
}

/// Statics are never dropped, so a small shell process waits for this process to end and
/// then stops the server and removes its directory.
fn spawn_watchdog(cluster: &PgCluster) -> Result<(), Error> {
    let stop = cluster.stop_command()?;
    let script = r#"pid=$1; dir=$2; shift 2
while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
"$@" >/dev/null 2>&1
rm -rf "$dir""#;
    std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sage-testkit-watchdog")
        .arg(std::process::id().to_string())
        .arg(cluster.dir())
        .args(stop)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::Start(format!("cannot start the cluster watchdog: {e}")))?;
    Ok(())
}

/// A fresh, empty database on the shared test server.
pub async fn database() -> Result<TestDatabase, Error> {
    database_created_with("").await
}

/// A fresh, empty database created with extra `CREATE DATABASE` options, e.g.
/// `TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'`.
pub async fn database_created_with(options: &str) -> Result<TestDatabase, Error> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin = tokio::task::spawn_blocking(shared_admin)
        .await
        .map_err(|e| Error::Start(format!("test server start-up panicked: {e}")))??;
    let name = format!(
        "sage_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        Alphanumeric.sample_string(&mut rand::rng(), 6).to_lowercase()
    );
    let client =
        sage_conn::connect(&admin).await.map_err(|e| Error::Database(format!("cannot reach the test server: {e}")))?;
    client
        .batch_execute(&format!("CREATE DATABASE {} {options}", quote_ident(&name)))
        .await
        .map_err(|e| Error::Database(format!("cannot create test database {name}: {e}")))?;
    Ok(TestDatabase { settings: admin.with_dbname(&name), admin })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exists(admin: &PgSettings, name: &str) -> bool {
        let client = sage_conn::connect(admin).await.unwrap();
        let row = client.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&name]).await.unwrap();
        row.get::<_, i64>(0) == 1
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_test_gets_its_own_database_and_it_is_dropped_afterwards() {
        let first = database().await.unwrap();
        let second = database().await.unwrap();
        assert_ne!(first.name(), second.name());
        let client = sage_conn::connect(first.settings()).await.unwrap();
        client.batch_execute("CREATE TABLE mine (id int)").await.unwrap();
        let name = first.name().to_string();
        let admin = first.admin_settings().clone();
        assert!(exists(&admin, &name).await);
        drop(first);
        assert!(!exists(&admin, &name).await, "dropped even with a connection still open");
    }
}
