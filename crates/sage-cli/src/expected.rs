//! Where the expected schema comes from for `schema validate`, `check` and the validation
//! after `migrate up`: a snapshot file, a migration directory (its snapshot or a replay),
//! or SAGE's own snapshot compiled into the binary.

use std::path::Path;

use anyhow::{bail, Context as _};
use sage_conn::{Origin, Settings, Target};
use sage_migrate::{Dialect, MigrationSet};
use sage_schema::Schema;

use crate::cli::ExpectedArgs;
use crate::context::Database;

/// The expected schema and a label saying where it came from.
pub async fn resolve(db: &Database, args: &ExpectedArgs) -> anyhow::Result<(Schema, String)> {
    let dialect = db.dialect()?;
    if let Some(file) = &args.snapshot {
        return Ok((sage_schema::read_snapshot(file)?, format!("snapshot {}", file.display())));
    }
    let dev = dev_target(args.dev_url.as_deref())?;
    if let Some(dir) = &args.source {
        let (json, _) = sage_schema::snapshot_paths(dir);
        if json.is_file() && !args.replay {
            let read = json.clone();
            let schema = crate::context::blocking(move || Ok(sage_schema::read_snapshot(&read)?)).await?;
            return Ok((schema, format!("snapshot {}", json.display())));
        }
        let set = crate::context::read_migrations(dir, dialect).await?;
        return Ok((replay(set, db, dev.as_ref()).await?, format!("replay of {}", dir.display())));
    }
    match sage_store::snapshot(dialect) {
        Some(text) if !args.replay => {
            Ok((sage_schema::parse_snapshot(text)?, format!("SAGE's {} snapshot", dialect.name())))
        }
        _ => Ok((
            replay(sage_store::migrations(dialect), db, dev.as_ref()).await?,
            format!("replay of SAGE's {} migrations", dialect.name()),
        )),
    }
}

pub async fn replay(set: MigrationSet, db: &Database, dev: Option<&Target>) -> anyhow::Result<Schema> {
    if !set.problems.is_empty() {
        let lines: Vec<String> = set.problems.iter().map(|p| p.to_string()).collect();
        bail!("the migrations cannot be replayed:\n  {}", lines.join("\n  "));
    }
    sage_schema::from_migrations(set, Some(&db.settings.target), dev).await.context("replaying the migrations")
}

pub fn dev_target(url: Option<&str>) -> anyhow::Result<Option<Target>> {
    url.map(|u| Settings::parse_url("--dev-url", u, Origin::Flag).map(|s| s.target)).transpose().map_err(Into::into)
}

/// The snapshot of the migration set `migrate up` just applied, when one exists.
pub fn snapshot_for(source: Option<&Path>, dialect: Dialect) -> anyhow::Result<Option<Schema>> {
    match source {
        Some(dir) => {
            let (json, _) = sage_schema::snapshot_paths(dir);
            if json.is_file() {
                Ok(Some(sage_schema::read_snapshot(&json)?))
            } else {
                Ok(None)
            }
        }
        None => sage_store::snapshot(dialect).map(sage_schema::parse_snapshot).transpose().map_err(Into::into),
    }
}
