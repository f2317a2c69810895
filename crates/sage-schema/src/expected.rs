//! Where schemas come from: a live database, a replay of migrations into a scratch
//! database, or a snapshot file committed beside the migrations.

use std::path::{Path, PathBuf};

use rand::distr::{Alphanumeric, SampleString};
#[cfg(feature = "postgres")]
use sage_conn::{quote_ident, PgSettings};
use sage_conn::{SqliteLocation, Target};
use sage_migrate::{MigrationSet, Migrator, RunOptions};

use crate::model::Schema;
use crate::{introspect, render, Error};

/// The schema of a live database.
pub async fn live(target: &Target) -> Result<Schema, Error> {
    match target {
        #[cfg(feature = "postgres")]
        Target::Postgres(pg) => {
            let client = sage_conn::connect(pg).await?;
            // Through a pooler that shares server sessions, the introspection's statements
            // must all run in one session: a transaction keeps them there.
            let pinned = matches!(pg.pooler, sage_conn::Pooler::Transaction | sage_conn::Pooler::Statement);
            if pinned {
                client
                    .batch_execute("BEGIN READ ONLY")
                    .await
                    .map_err(|e| Error::database("cannot start reading the schema", e))?;
            }
            let schema = introspect::postgres::introspect(&client).await;
            if pinned {
                let _ = client.batch_execute("COMMIT").await;
            }
            schema
        }
        #[cfg(feature = "sqlite")]
        Target::Sqlite(location) => {
            let location = location.clone();
            tokio::task::spawn_blocking(move || {
                let conn = match &location {
                    SqliteLocation::File(path) => {
                        if !path.exists() {
                            return Err(Error::invalid(format!("{} does not exist", path.display())));
                        }
                        rusqlite::Connection::open(path)
                    }
                    SqliteLocation::InMemory => rusqlite::Connection::open_in_memory(),
                }
                .map_err(|e| Error::database("cannot open the SQLite database", e))?;
                introspect::sqlite::introspect(&conn)
            })
            .await
            .map_err(|e| Error::invalid(format!("introspection failed: {e}")))?
        }
        Target::Memory => Err(Error::invalid("memory:// has no schema")),
        #[allow(unreachable_patterns)]
        other => Err(missing_backend(other)),
    }
}

/// The one-line error for a database whose backend this build leaves out.
#[allow(dead_code)]
fn missing_backend(target: &Target) -> Error {
    Error::invalid(match target {
        Target::Postgres(_) => sage_conn::NO_POSTGRES,
        _ => sage_conn::NO_SQLITE,
    })
}

/// The names of the database's own tables (no system catalogs, no bookkeeping tables): one
/// catalog query, for deciding cheaply whether a full [`live`] read is worth it.
pub async fn table_names(target: &Target) -> Result<Vec<String>, Error> {
    let mut names = match target {
        #[cfg(feature = "postgres")]
        Target::Postgres(pg) => {
            let client = sage_conn::connect(pg).await?;
            let rows = client
                .query(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                     AND n.nspname NOT LIKE 'pg\\_%'",
                    &[],
                )
                .await
                .map_err(|e| Error::invalid(format!("cannot list the tables: {e}")))?;
            rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<String>>()
        }
        Target::Sqlite(SqliteLocation::File(path)) if !path.exists() => Vec::new(),
        Target::Sqlite(_) => live(target).await?.tables.into_iter().map(|t| t.name).collect(),
        Target::Memory => Vec::new(),
        #[allow(unreachable_patterns)]
        other => return Err(missing_backend(other)),
    };
    names.retain(|n| !introspect::BOOKKEEPING_TABLES.contains(&n.as_str()));
    Ok(names)
}

/// The schema `set` produces: replayed into a scratch database and read back. On
/// PostgreSQL the scratch database is a temporary database on the server of `near` (which
/// needs the CREATEDB privilege), or the empty database `dev` when given; on SQLite, a
/// temporary file.
pub async fn from_migrations(set: MigrationSet, near: Option<&Target>, dev: Option<&Target>) -> Result<Schema, Error> {
    in_scratch(set, near, dev, |set, target| async move { replay_and_read(set, &target).await }).await
}

/// The schema after each prefix of `set`: element `k` is what the first `k` migrations
/// make (element 0 the empty database), up to the first migration that fails. One scratch
/// database, the migrations applied one at a time and the schema read after each, so the
/// cost is one replay, not one per prefix.
pub async fn prefix_schemas(
    set: MigrationSet,
    near: Option<&Target>,
    dev: Option<&Target>,
) -> Result<Vec<Schema>, Error> {
    in_scratch(set, near, dev, |set, target| async move { replay_each(set, &target).await }).await
}

/// Runs `replay` on an empty database for `set`'s dialect: a temporary SQLite file, the
/// PostgreSQL database `dev` when given, or else a scratch database made on the server of
/// `near` (which needs CREATEDB) and dropped afterwards.
async fn in_scratch<T, F, Fut>(
    set: MigrationSet,
    near: Option<&Target>,
    dev: Option<&Target>,
    replay: F,
) -> Result<T, Error>
where
    F: FnOnce(MigrationSet, Target) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    match set.dialect {
        sage_migrate::Dialect::Sqlite => {
            let dir = tempfile_dir()?;
            let target = Target::Sqlite(SqliteLocation::File(dir.join("replay.db")));
            let result = replay(set, target).await;
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
        sage_migrate::Dialect::Postgres => {
            if let Some(dev) = dev {
                return replay(set, dev.clone()).await;
            }
            #[cfg(not(feature = "postgres"))]
            return {
                let _ = near;
                Err(Error::invalid(sage_conn::NO_POSTGRES))
            };
            #[cfg(feature = "postgres")]
            {
                let Some(Target::Postgres(pg)) = near else {
                    return Err(Error::ReplayNeedsServer);
                };
                let scratch = Scratch::create(pg).await?;
                let result = replay(set, Target::Postgres(scratch.settings.clone())).await;
                scratch.drop().await;
                result
            }
        }
    }
}

async fn replay_each(set: MigrationSet, target: &Target) -> Result<Vec<Schema>, Error> {
    let versions: Vec<i64> = set.migrations.iter().map(|m| m.version).collect();
    let mut migrator = Migrator::connect(target, set, RunOptions::default()).await?;
    let mut schemas = vec![live(target).await?];
    for version in versions {
        // A migration that fails on an empty database ends the list: no prefix that
        // includes it can be what a database holds.
        if migrator.up(sage_migrate::Target::Version(version)).await.is_err() {
            break;
        }
        schemas.push(live(target).await?);
    }
    Ok(schemas)
}

async fn replay_and_read(set: MigrationSet, target: &Target) -> Result<Schema, Error> {
    let mut migrator = Migrator::connect(target, set, RunOptions::default()).await?;
    migrator.up(sage_migrate::Target::Latest).await?;
    drop(migrator);
    live(target).await
}

fn tempfile_dir() -> Result<PathBuf, Error> {
    let dir = std::env::temp_dir().join(format!("sage-schema-{}", Alphanumeric.sample_string(&mut rand::rng(), 10)));
    std::fs::create_dir_all(&dir).map_err(|e| Error::invalid(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

#[cfg(feature = "postgres")]
/// A temporary database on a PostgreSQL server, dropped after use.
///
/// Its creator keeps a connection open whose `application_name` names the scratch
/// database for as long as it lives. A scratch database without such a connection was left
/// by a process that was killed, and the next `create` on that server drops it.
#[derive(Debug)]
pub struct Scratch {
    pub settings: PgSettings,
    admin: PgSettings,
    _owner: tokio_postgres::Client,
}

#[cfg(feature = "postgres")]
const SCRATCH_PREFIX: &str = "sage_scratch_";

#[cfg(feature = "postgres")]
fn owner_tag(name: &str) -> String {
    format!("sage-db scratch {name}")
}

#[cfg(feature = "postgres")]
impl Scratch {
    pub async fn create(near: &PgSettings) -> Result<Scratch, Error> {
        let name = format!("{SCRATCH_PREFIX}{}", Alphanumeric.sample_string(&mut rand::rng(), 10).to_lowercase());
        let client = sage_conn::connect(near).await?;
        drop_abandoned(&client).await;
        // Claimed before it exists, so no other run ever takes it for abandoned.
        client
            .execute("SELECT set_config('application_name', $1, false)", &[&owner_tag(&name)])
            .await
            .map_err(|e| Error::invalid(format!("cannot name the scratch session: {e}")))?;
        client.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))).await.map_err(|e| {
            Error::ScratchRefused {
                server: near.redacted_url(),
                reason: e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()),
            }
        })?;
        Ok(Scratch { settings: near.with_dbname(&name), admin: near.clone(), _owner: client })
    }

    /// When the connecting role is a superuser, makes a role without any privilege of its
    /// own, named like the scratch database, and hands it the database: a caller that runs
    /// untrusted SQL there `SET ROLE`s to it, so that SQL cannot reach the server's files or
    /// programs. Returns the role, or `None` when the connecting role is no superuser.
    pub async fn restricted_role(&self) -> Result<Option<String>, Error> {
        let client = &self._owner;
        let q = |e: tokio_postgres::Error| Error::invalid(format!("cannot prepare the scratch database: {e}"));
        let superuser: bool = client
            .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[])
            .await
            .map_err(q)?
            .get(0);
        if !superuser {
            return Ok(None);
        }
        let role = self.settings.dbname.clone();
        client
            .batch_execute(&format!(
                "CREATE ROLE {r} NOLOGIN; ALTER DATABASE {d} OWNER TO {r}",
                r = quote_ident(&role),
                d = quote_ident(&self.settings.dbname)
            ))
            .await
            .map_err(q)?;
        Ok(Some(role))
    }

    pub async fn drop(self) {
        if let Ok(client) = sage_conn::connect(&self.admin).await {
            let name = quote_ident(&self.settings.dbname);
            for sql in [format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), format!("DROP ROLE IF EXISTS {name}")] {
                if let Err(e) = client.batch_execute(&sql).await {
                    tracing::warn!(database = %self.settings.dbname, error = %e, "could not drop the scratch database or role");
                }
            }
        }
    }
}

#[cfg(feature = "postgres")]
/// Drops scratch databases whose creator is gone (no session carries their name). Best
/// effort: a database this role may not drop is left for its owner.
async fn drop_abandoned(client: &tokio_postgres::Client) {
    let rows = match client
        .query(
            "SELECT d.datname FROM pg_database d WHERE starts_with(d.datname, $1) \
             AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = 'sage-db scratch ' || d.datname) \
             AND pg_has_role(d.datdba, 'USAGE')",
            &[&SCRATCH_PREFIX],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!(error = %e, "cannot look for abandoned scratch databases");
            return;
        }
    };
    for row in rows {
        let name: String = row.get(0);
        let well_formed = name[SCRATCH_PREFIX.len()..].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !well_formed {
            continue;
        }
        match client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))).await {
            Ok(()) => tracing::info!(database = %name, "dropped a scratch database left by a killed run"),
            Err(e) => tracing::warn!(database = %name, error = %e, "could not drop an abandoned scratch database"),
        }
    }
    // The restricted roles of scratch databases that are gone.
    let roles = client
        .query(
            "SELECT r.rolname FROM pg_roles r WHERE starts_with(r.rolname, $1) \
             AND NOT EXISTS (SELECT 1 FROM pg_database d WHERE d.datname = r.rolname) \
             AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = 'sage-db scratch ' || r.rolname)",
            &[&SCRATCH_PREFIX],
        )
        .await
        .unwrap_or_default();
    for row in roles {
        let name: String = row.get(0);
        if name[SCRATCH_PREFIX.len()..].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            let _ = client.batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&name))).await;
        }
    }
}

#[cfg(feature = "postgres")]
/// `expected` in the rendering of the PostgreSQL server `target` names, for comparing
/// with that server's live schema: PostgreSQL prints views, checks, defaults and indexes
/// differently from one major version to the next (16 drops column qualifications in views
/// that 13-15 print; 13 prints `TRIM` as `btrim`), so a snapshot taken on another major is
/// created in a scratch database on this server and read back. The same major (or SQLite)
/// returns it unchanged. When no scratch database can be made (no CREATEDB) or the server
/// cannot create something in it, the snapshot is compared as it is, with a warning.
pub async fn in_server_rendering(expected: Schema, target: &Target) -> Result<Schema, Error> {
    let Target::Postgres(pg) = target else { return Ok(expected) };
    if expected.dialect != crate::Dialect::Postgres {
        return Ok(expected);
    }
    let client = sage_conn::connect(pg).await?;
    let version: String = client
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .map_err(|e| Error::database("cannot read the server version", e))?
        .get(0);
    let major = version.parse::<u32>().unwrap_or(0) / 10000;
    drop(client);
    if expected.server_major == Some(major) {
        return Ok(expected);
    }
    let scratch = match Scratch::create(pg).await {
        Ok(scratch) => scratch,
        Err(e) => {
            tracing::warn!(error = %e, "cannot re-render the snapshot on this server; comparing it as recorded");
            return Ok(expected);
        }
    };
    let result = render_in(&scratch, &expected).await;
    scratch.drop().await;
    match result {
        Ok(mut rendered) => {
            rendered.server_major = Some(major);
            Ok(rendered)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot re-render the snapshot on this server; comparing it as recorded");
            Ok(expected)
        }
    }
}

/// Without PostgreSQL support there is no server to render on: `expected` as it is.
#[cfg(not(feature = "postgres"))]
pub async fn in_server_rendering(expected: Schema, _target: &Target) -> Result<Schema, Error> {
    Ok(expected)
}

#[cfg(feature = "postgres")]
/// Creates `schema` in the scratch database, as its restricted role when there is one (the
/// snapshot's definitions cannot reach the server's files from there), and reads it back.
async fn render_in(scratch: &Scratch, schema: &Schema) -> Result<Schema, Error> {
    let role = scratch.restricted_role().await?;
    let client = sage_conn::connect(&scratch.settings).await?;
    if let Some(role) = &role {
        client
            .batch_execute(&format!("SET ROLE {}", quote_ident(role)))
            .await
            .map_err(|e| Error::database("cannot take the scratch role", e))?;
    }
    client.batch_execute(&render(schema)).await.map_err(|e| {
        Error::invalid(format!(
            "this server cannot create the snapshot's schema: {}",
            e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
        ))
    })?;
    introspect::postgres::introspect(&client).await
}

/// `schema.json` and `schema.sql` in `dir`.
pub fn snapshot_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("schema.json"), dir.join("schema.sql"))
}

pub fn read_snapshot(path: &Path) -> Result<Schema, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(format!("cannot read snapshot {}: {e}", path.display())))?;
    parse_snapshot(&text).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}

pub fn parse_snapshot(text: &str) -> Result<Schema, Error> {
    serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("not a schema snapshot (line {}, column {}): {e}", e.line(), e.column())))
}

pub fn snapshot_json(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("the model serialises");
    text.push('\n');
    text
}

/// Writes `schema.json` and `schema.sql` into `dir`, each through a temporary file renamed
/// into place, so a reader never sees half a snapshot.
pub fn write_snapshot(dir: &Path, schema: &Schema) -> Result<(PathBuf, PathBuf), Error> {
    let (json, sql) = snapshot_paths(dir);
    write_atomically(&json, &snapshot_json(schema))?;
    write_atomically(&sql, &render(schema))?;
    Ok((json, sql))
}

fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::invalid(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::invalid(format!("cannot replace {}: {e}", path.display())))
}

/// Runs DDL (e.g. the output of [`render`]) against a database.
pub async fn apply(target: &Target, sql: &str) -> Result<(), Error> {
    match target {
        #[cfg(feature = "postgres")]
        Target::Postgres(pg) => {
            let client = sage_conn::connect(pg).await?;
            client.batch_execute(sql).await.map_err(|e| {
                Error::invalid(format!(
                    "applying DDL failed: {}",
                    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
                ))
            })
        }
        #[cfg(feature = "sqlite")]
        Target::Sqlite(location) => {
            let conn = match location {
                SqliteLocation::File(path) => rusqlite::Connection::open(path),
                SqliteLocation::InMemory => rusqlite::Connection::open_in_memory(),
            }
            .map_err(|e| Error::database("cannot open the SQLite database", e))?;
            conn.execute_batch(sql).map_err(|e| Error::database("applying DDL failed", e))
        }
        Target::Memory => Err(Error::invalid("memory:// has no schema")),
        #[allow(unreachable_patterns)]
        other => Err(missing_backend(other)),
    }
}
