//! `sage-db schema dump|validate|sql|diff`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use sage_conn::{Origin, Settings, Target};
use sage_migrate::Dialect;
use sage_schema::{Finding, Schema, Severity};

use crate::cli::{ExpectedArgs, Global, SchemaCommand};
use crate::context::{self, Database};
use crate::{expected, output};

pub async fn run(global: &Global, command: SchemaCommand) -> anyhow::Result<ExitCode> {
    match command {
        SchemaCommand::Dump { expected: args, out, check } => dump(global, &args, out, check).await,
        SchemaCommand::Validate { expected: args, strict, ignore } => {
            let db = Database::resolve(global)?;
            let (expected, label) = expected::resolve(&db, &args).await?;
            let expected = sage_schema::in_server_rendering(expected, &db.settings.target).await?;
            let actual = sage_schema::live(&db.settings.target).await.context("reading the live schema")?;
            let findings = sage_schema::validate(&expected, &actual, sage_schema::ValidateOptions { strict });
            let findings = sage_schema::ignore_kinds(findings, &ignore)?;
            let clean = sage_schema::is_clean(&findings);
            if global.json {
                output::json(
                    &serde_json::json!({ "database": db.settings.to_string(), "expected": label, "clean": clean, "findings": findings }),
                )?;
            } else {
                say!("database: {}", db.describe());
                say!("expected: {label}");
                print_findings(&findings);
            }
            Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        SchemaCommand::Sql { expected: args, live } => {
            let db = Database::resolve(global)?;
            let sql = if live {
                sage_schema::render_live(&sage_schema::live(&db.settings.target).await?)
            } else {
                sage_schema::render(&expected::resolve(&db, &args).await?.0)
            };
            if global.json {
                output::json(&serde_json::json!({ "sql": sql }))?;
            } else {
                say_raw!("{sql}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SchemaCommand::Diff { from, to, allow_destructive, write, source, dev_url } => {
            diff(global, &from, &to, allow_destructive, write, source, dev_url).await
        }
    }
}

/// Errors and warnings first, then what is worth knowing (comments, kinds not checked).
pub fn print_findings(findings: &[Finding]) {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    for severity in [Severity::Error, Severity::Warning, Severity::Info] {
        for f in findings.iter().filter(|f| f.severity == severity) {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            say!("{level}: {f}");
        }
    }
    if errors + warnings == 0 {
        say!("clean: the database matches the expected schema");
    } else {
        say!("{errors} error(s), {warnings} warning(s)");
    }
}

async fn dump(global: &Global, args: &ExpectedArgs, out: Option<PathBuf>, check: bool) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let dialect = db.dialect()?;
    let set = match &args.source {
        Some(dir) => context::read_migrations(dir, dialect).await?,
        None => sage_store::migrations(dialect),
    };
    let dev = expected::dev_target(args.dev_url.as_deref())?;
    let schema = expected::replay(set, &db, dev.as_ref()).await?;
    let Some(dir) = out.or_else(|| args.source.clone()) else {
        let snapshot = sage_schema::snapshot_json(&schema);
        if global.json {
            let snapshot: serde_json::Value = serde_json::from_str(&snapshot)?;
            output::json(&serde_json::json!({ "snapshot": snapshot }))?;
        } else {
            say_raw!("{snapshot}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (json, sql) = sage_schema::snapshot_paths(&dir);
    if check {
        let recorded_json = tokio::fs::read_to_string(&json).await.ok();
        let recorded = recorded_json.as_deref().and_then(|text| sage_schema::parse_snapshot(text).ok());
        let current = match recorded {
            // Taken on another PostgreSQL major: current when it is the same schema in this
            // server's rendering (the files are rewritten only by a dump on their own major).
            Some(recorded) if recorded.server_major.is_some() && recorded.server_major != schema.server_major => {
                let mut rendered = sage_schema::in_server_rendering(recorded, &db.settings.target).await?;
                rendered.server_major = schema.server_major;
                rendered == schema
            }
            _ => {
                recorded_json.unwrap_or_default() == sage_schema::snapshot_json(&schema)
                    && tokio::fs::read_to_string(&sql).await.unwrap_or_default() == sage_schema::render(&schema)
            }
        };
        if global.json {
            output::json(&serde_json::json!({ "snapshot": json, "current": current }))?;
        } else if current {
            say!("{} is current", json.display());
        } else {
            say!("{} is stale: run `sage-db schema dump` and commit the result", json.display());
        }
        return Ok(if current { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    tokio::fs::create_dir_all(&dir).await.with_context(|| format!("cannot create {}", dir.display()))?;
    let (json, sql) = {
        let (dir, schema) = (dir.clone(), schema.clone());
        context::blocking(move || Ok(sage_schema::write_snapshot(&dir, &schema)?)).await?
    };
    if global.json {
        output::json(
            &serde_json::json!({ "json": json, "sql": sql, "tables": schema.tables.len(), "fingerprint": schema.fingerprint() }),
        )?;
    } else {
        say!("wrote {} and {} ({} tables)", json.display(), sql.display(), schema.tables.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// One side of a diff.
enum Endpoint {
    Database(Target),
    Directory(PathBuf),
    Snapshot(PathBuf),
}

fn endpoint(text: &str) -> anyhow::Result<Endpoint> {
    if text.contains("://") || text.starts_with("sqlite:") || text.starts_with("memory:") {
        return Ok(Endpoint::Database(Settings::parse_url("diff", text, Origin::Flag)?.target));
    }
    let path = Path::new(text);
    if path.is_dir() {
        Ok(Endpoint::Directory(path.to_path_buf()))
    } else if path.is_file() {
        Ok(Endpoint::Snapshot(path.to_path_buf()))
    } else {
        bail!("{text:?} is neither a database URL, a migration directory nor a schema.json file")
    }
}

fn endpoint_dialect(e: &Endpoint) -> anyhow::Result<Option<Dialect>> {
    Ok(match e {
        Endpoint::Database(Target::Postgres(_)) => Some(Dialect::Postgres),
        Endpoint::Database(Target::Sqlite(_)) => Some(Dialect::Sqlite),
        Endpoint::Database(Target::Memory) => bail!("memory:// has no schema to diff"),
        Endpoint::Snapshot(path) => Some(match sage_schema::read_snapshot(path)?.dialect {
            sage_schema::Dialect::Postgres => Dialect::Postgres,
            sage_schema::Dialect::Sqlite => Dialect::Sqlite,
        }),
        Endpoint::Directory(_) => None,
    })
}

async fn load(e: &Endpoint, dialect: Dialect, db: &Database, dev: Option<&Target>) -> anyhow::Result<Schema> {
    match e {
        Endpoint::Database(target) => Ok(sage_schema::live(target).await?),
        Endpoint::Snapshot(path) => {
            let path = path.clone();
            context::blocking(move || Ok(sage_schema::read_snapshot(&path)?)).await
        }
        Endpoint::Directory(dir) => {
            let set = context::read_migrations(dir, dialect).await?;
            if let (Dialect::Postgres, None, false) = (dialect, dev, matches!(db.settings.target, Target::Postgres(_)))
            {
                bail!("replaying {} needs a PostgreSQL server: pass --database-url or --dev-url", dir.display());
            }
            expected::replay(set, db, dev).await
        }
    }
}

async fn diff(
    global: &Global,
    from: &str,
    to: &str,
    allow_destructive: bool,
    write: Option<String>,
    source: Option<PathBuf>,
    dev_url: Option<String>,
) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let (from_e, to_e) = (endpoint(from)?, endpoint(to)?);
    let dialect = match (endpoint_dialect(&from_e)?, endpoint_dialect(&to_e)?) {
        (Some(a), Some(b)) if a != b => bail!("cannot diff a {} schema against a {} one", a.name(), b.name()),
        (Some(d), _) | (_, Some(d)) => d,
        (None, None) => db.dialect()?,
    };
    let dev = expected::dev_target(dev_url.as_deref())?;
    let from_schema = load(&from_e, dialect, &db, dev.as_ref()).await?;
    let to_schema = load(&to_e, dialect, &db, dev.as_ref()).await?;
    let changes = sage_schema::diff(&from_schema, &to_schema);
    let destructive: Vec<&sage_schema::Change> = changes.iter().filter(|c| c.destructive).collect();
    if !destructive.is_empty() && !allow_destructive {
        let list: Vec<String> = destructive.iter().map(|c| format!("  {}", c.description)).collect();
        bail!(
            "the diff has destructive steps; review them and pass --allow-destructive to include them:\n{}",
            list.join("\n")
        );
    }
    if let Some(name) = write {
        let dir = source.expect("clap requires --source with --write");
        let set = context::read_migrations(&dir, dialect).await?;
        let new = set.new_migration(&name, chrono::Utc::now())?;
        let up: String = changes.iter().map(|c| format!("-- {}\n{}\n", c.description, c.sql)).collect();
        let reverse = sage_schema::diff(&to_schema, &from_schema);
        let down: String = reverse.iter().map(|c| format!("-- {}\n{}\n", c.description, c.sql)).collect();
        let mut written = Vec::new();
        for (i, (path, _)) in new.files.iter().enumerate() {
            let text = match (set.format, i) {
                (sage_migrate::Format::Dbmate, _) => format!("-- migrate:up\n{up}\n-- migrate:down\n{down}"),
                (_, 0) => up.clone(),
                _ => down.clone(),
            };
            if path.exists() {
                bail!("{} already exists", path.display());
            }
            tokio::fs::write(path, text).await.with_context(|| format!("cannot write {}", path.display()))?;
            if !global.json {
                say!("wrote {}", path.display());
            }
            written.push(path.display().to_string());
        }
        if global.json {
            output::json(&serde_json::json!({ "version": new.version, "files": written, "changes": changes }))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if global.json {
        output::json(&serde_json::json!({ "changes": changes }))?;
    } else if changes.is_empty() {
        say!("-- no differences");
    } else {
        for c in &changes {
            say!("-- {}{}\n{}\n", c.description, if c.destructive { " (destructive)" } else { "" }, c.sql);
        }
    }
    Ok(ExitCode::SUCCESS)
}
