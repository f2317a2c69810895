//! `sage-db backup|restore|seed|cleanup|monitor`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use sage_conn::{DurationField, Target};
use sage_ops::backup::{BackupOptions, PgFormat};
use sage_ops::{Decryption, Encryption, SecretString};

use crate::cli::{BackupAction, BackupArgs, Global};
use crate::confirm::confirm;
use crate::context::Database;
use crate::output;
use crate::progress::ProgressLine;

const PASSPHRASE_VAR: &str = "SAGE_BACKUP_PASSPHRASE";

fn passphrase(db: &Database) -> Option<SecretString> {
    db.env.get(PASSPHRASE_VAR).map(|p| SecretString::from(p.to_string()))
}

fn keys(db: &Database, identities: Vec<PathBuf>) -> Decryption {
    Decryption { passphrase: passphrase(db), identities }
}

pub async fn backup(global: &Global, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    if let Some(BackupAction::Verify { file, identity }) = args.action {
        let report = sage_ops::restore::verify(&db.settings.target, &file, &keys(&db, identity)).await?;
        if global.json {
            output::json(&report)?;
        } else {
            say!(
                "{}: checksum ok, restored into a scratch copy, {} table(s) with the expected row counts",
                file.display(),
                report.tables.len()
            );
            say!("{}", authenticity_note(report.authenticity, &report.encryption));
            if let Some(client) = &report.client {
                say!("read with {client}");
            }
            if !report.skipped.is_empty() {
                // The scratch copy runs as a role that owns nothing else, so owners and
                // grants for other roles are expected not to apply there (--json lists them).
                say!(
                    "{} owner or grant statement(s) not applied in the scratch copy, which runs without other roles' rights",
                    report.skipped.len()
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let encryption = if args.encrypt {
        match passphrase(&db) {
            Some(p) => Encryption::Passphrase(p),
            None => bail!("--encrypt takes the passphrase from {PASSPHRASE_VAR} (never from the command line); set it, or use --recipient age1…"),
        }
    } else if !args.recipient.is_empty() {
        Encryption::Recipients(args.recipient.clone())
    } else {
        Encryption::None
    };
    let options = BackupOptions {
        dir: args.dir.clone(),
        format: match args.format {
            crate::cli::BackupFormat::Custom => PgFormat::Custom,
            crate::cli::BackupFormat::SqlGz => PgFormat::SqlGz,
        },
        encryption,
        keep: args.keep,
        // A unit is required, as for retention rules: a bare `30` could mean days.
        max_age: args
            .max_age
            .as_deref()
            .map(|a| DurationField::new("--max-age").unit_required().parse(a))
            .transpose()?,
    };
    let report = {
        let line = ProgressLine::start(global);
        sage_ops::backup::backup(&db.settings.target, &options, line.progress()).await?
    };
    if global.json {
        output::json(&report)?;
    } else {
        let m = &report.manifest;
        say!(
            "wrote {} ({}, sha256 {}, encryption: {})",
            report.file.display(),
            sage_ops::format_bytes(i64::try_from(m.size).unwrap_or(i64::MAX)),
            &m.sha256[..16],
            m.encryption
        );
        say!(
            "      {} table(s), {} row(s), migration version {}",
            m.tables.len(),
            m.tables.values().fold(0i64, |sum, n| sum.saturating_add(*n)),
            m.migration_version.map_or("none".into(), |v| v.to_string())
        );
        if let Some(client) = &report.client {
            say!("      dumped with {client}");
        }
        for old in &report.pruned {
            say!("removed {} (retention)", old.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn authenticity_note(authenticity: sage_ops::manifest::Authenticity, encryption: &str) -> &'static str {
    match authenticity {
        sage_ops::manifest::Authenticity::Sealed if encryption == "recipients" => {
            "manifest: sealed to the backup's recipients, and the seal matches (anyone with a recipient's public key can make such a seal)"
        }
        sage_ops::manifest::Authenticity::Sealed => {
            "manifest: sealed with the passphrase, and the seal matches (authenticated)"
        }
        sage_ops::manifest::Authenticity::Unauthenticated => {
            "manifest: unauthenticated (a plain backup); only its checksum and row counts were checked, so keep backups where only you can write"
        }
    }
}

pub async fn restore(
    global: &Global,
    file: &Path,
    identity: Vec<PathBuf>,
    replace_schema: bool,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let keys = keys(&db, identity);
    // Check the file before asking: a damaged or altered backup is refused without a question.
    // Checking reads and hashes the whole file, off the runtime.
    let inspected = {
        let (file, keys) = (file.to_path_buf(), keys.clone());
        crate::context::blocking(move || Ok(sage_ops::restore::inspect(&file, &keys)?)).await?
    };
    let manifest = &inspected.manifest;
    let rows = manifest.tables.values().fold(0i64, |sum, n| sum.saturating_add(*n));
    confirm(
        &format!(
            "Replace ALL data in {} with {} (taken {}, {} tables, {rows} rows)?",
            db.settings,
            file.display(),
            manifest.created_at,
            manifest.tables.len()
        ),
        yes,
    )?;
    let report = {
        let line = ProgressLine::start(global);
        let options = sage_ops::restore::RestoreOptions { replace_schema, run_as: None, progress: line.progress() };
        sage_ops::restore::restore(&db.settings.target, file, &keys, &options).await?
    };
    if global.json {
        output::json(&report)?;
    } else {
        say!("restored {} into {}; row counts verified:", file.display(), db.settings);
        let rows: Vec<Vec<String>> = report.tables.iter().map(|(t, n)| vec![t.clone(), n.to_string()]).collect();
        output::table(&["TABLE", "ROWS"], &rows);
        say!("{}", authenticity_note(report.authenticity, &report.encryption));
        if let Some(client) = &report.client {
            say!("read with {client}");
        }
        for line in &report.skipped {
            say!("not applied here: {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn seed(global: &Global, environment: Option<String>, seeds: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let environment =
        environment.or_else(|| db.env.get("SAGE_ENV").map(str::to_string)).unwrap_or_else(|| "dev".into());
    let report = match seeds {
        Some(dir) => {
            let line = ProgressLine::start(global);
            sage_ops::seed::seed_directory(&db.settings.target, &dir, &environment, &line.progress()).await?
        }
        None => {
            let store = db.open_store().await?;
            let line = ProgressLine::start(global);
            sage_ops::seed::seed_sage(&store, &environment, &line.progress()).await?
        }
    };
    if global.json {
        output::json(&report)?;
    } else {
        let added: u64 = report.added.values().sum();
        let kept: u64 = report.already_present.values().sum();
        say!("seeded environment {:?}: {added} added, {kept} already present", report.environment);
        let mut keys: Vec<&String> = report.added.keys().chain(report.already_present.keys()).collect();
        keys.sort();
        keys.dedup();
        let rows: Vec<Vec<String>> = keys
            .iter()
            .map(|k| {
                vec![
                    k.to_string(),
                    report.added.get(*k).copied().unwrap_or(0).to_string(),
                    report.already_present.get(*k).copied().unwrap_or(0).to_string(),
                ]
            })
            .collect();
        output::table(&["WHAT", "ADDED", "ALREADY PRESENT"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn cleanup(global: &Global, config: Option<PathBuf>, dry_run: bool) -> anyhow::Result<ExitCode> {
    use sage_store::{NonceStore, SessionStore};
    let db = Database::resolve(global)?;
    // A small file read once before anything runs: no other work shares the runtime yet.
    let config = config.map(|p| sage_ops::cleanup::CleanupConfig::load(&p)).transpose()?.unwrap_or_default();
    if let Target::Sqlite(sage_conn::SqliteLocation::File(path)) = &db.settings.target {
        // Opening a missing file would create an empty database and report it clean.
        if !path.exists() {
            bail!("cannot clean up {}: the file does not exist", path.display());
        }
    }
    // Every rule is checked against the catalog before anything is deleted, expired
    // sessions and nonces included: a rule that cannot run stops the whole cleanup.
    let checked = sage_ops::cleanup::check_rules(&db.settings.target, &config, dry_run).await?;
    // Retention first: a rule that fails while it runs stops the cleanup before the
    // expiry pass has deleted anything.
    let now = chrono::Utc::now();
    let mut rules = Vec::new();
    {
        let line = ProgressLine::start(global);
        let progress = line.progress();
        for rule in &checked {
            rules.push(sage_ops::cleanup::apply_rule(&db.settings.target, rule, now, dry_run, &progress).await?);
        }
    }
    let mut result = serde_json::Map::new();
    let sage_tables = !matches!(db.settings.target, Target::Memory) && has_sage_tables(&db).await?;
    if sage_tables {
        let store = db.open_store().await?;
        let (sessions, nonces) = if dry_run {
            let facts = sage_ops::check::inspect(&db.settings.target).await?;
            let total = |name: &str| facts.tables.iter().find(|t| t.name == name).map(|t| t.rows as u64).unwrap_or(0);
            (
                total("sessions").saturating_sub(store.sessions().count_active().await?),
                total("nonces").saturating_sub(store.nonces().count_active().await?),
            )
        } else {
            // Started after the store is open: its notes are printed before the line is drawn.
            let line = ProgressLine::start(global);
            let progress = line.progress();
            (
                store.sessions().delete_expired_reporting(&progress).await?,
                store.nonces().delete_expired_reporting(&progress).await?,
            )
        };
        result.insert("expired_sessions".into(), sessions.into());
        result.insert("expired_nonces".into(), nonces.into());
    }
    result.insert("retention".into(), serde_json::to_value(&rules)?);
    result.insert("dry_run".into(), dry_run.into());
    if global.json {
        output::json(&result)?;
    } else {
        let verb = if dry_run { "would delete" } else { "deleted" };
        if sage_tables {
            say!(
                "{verb} {} expired session(s) and {} expired nonce(s)",
                result["expired_sessions"],
                result["expired_nonces"]
            );
        }
        for r in &rules {
            say!("{verb} {} row(s) of {} with {} before {}", r.rows, r.table, r.column, r.cutoff);
        }
        if !sage_tables && rules.is_empty() {
            say!("nothing to clean: no SAGE tables here and no --config retention rules");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether SAGE's tables are here. Failing to look (no server, wrong password, TLS) is an
/// error, never "no tables": a cleanup that cannot connect must not report success.
async fn has_sage_tables(db: &Database) -> anyhow::Result<bool> {
    let schema = sage_schema::live(&db.settings.target).await.context("cannot look for SAGE's tables")?;
    Ok(["sessions", "nonces"].iter().all(|t| schema.tables.iter().any(|x| &x.name == t)))
}

pub async fn monitor(global: &Global, watch: Option<String>) -> anyhow::Result<ExitCode> {
    let watch = watch.map(|w| DurationField::new("--watch").parse(&w)).transpose()?;
    let db = Database::resolve(global)?;
    loop {
        let report = sage_ops::monitor::monitor(&db.settings.target).await?;
        if global.json {
            output::json_line(&report)?;
        } else {
            if watch.is_some() {
                say_raw!("\x1b[2J\x1b[H");
            }
            say!("{} at {}", db.settings, report.taken_at);
            for s in &report.sections {
                say!("\n{}", s.title);
                if !s.rows.is_empty() {
                    let (header, rows) = monitor_table(s);
                    let header: Vec<&str> = header.iter().map(String::as_str).collect();
                    output::table(&header, &rows);
                } else if s.note.is_none() {
                    say!("  (none)");
                }
                if let Some(note) = &s.note {
                    say!("  {note}");
                }
            }
        }
        let Some(every) = watch else { return Ok(ExitCode::SUCCESS) };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// A monitor section as text: sizes (columns named `… (bytes)`) in binary units, numbers as
/// they are, unknown as `-`.
fn monitor_table(s: &sage_ops::monitor::Section) -> (Vec<String>, Vec<Vec<String>>) {
    let sizes: Vec<bool> = s.columns.iter().map(|c| c.ends_with(" (bytes)")).collect();
    let header = s.columns.iter().map(|c| c.trim_end_matches(" (bytes)").to_string()).collect();
    let rows = s
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    serde_json::Value::Null => "-".to_string(),
                    serde_json::Value::String(text) => text.clone(),
                    serde_json::Value::Number(n) if sizes.get(i) == Some(&true) => {
                        n.as_i64().map(sage_ops::format_bytes).unwrap_or_else(|| n.to_string())
                    }
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    (header, rows)
}

pub async fn roles_apply(global: &Global, config: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    let Target::Postgres(pg) = &db.settings.target else {
        bail!("roles apply needs PostgreSQL; {} has no roles", db.settings.target.dialect_name());
    };
    let config = sage_ops::roles::RolesConfig::load(config)?;
    let roles: Vec<&String> = config.role.iter().map(|r| &r.name).collect();
    if dry_run {
        let (statements, notes) = sage_ops::roles::plan(pg, &config).await?;
        if global.json {
            output::json(&serde_json::json!({
                "roles": roles,
                "dry_run": true,
                "statements": statements.len(),
                "sql": statements,
                "notes": notes,
            }))?;
            return Ok(ExitCode::SUCCESS);
        }
        for note in notes {
            say!("-- {note}");
        }
        for sql in statements {
            say!("{sql};");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let applied = sage_ops::roles::apply(pg, &config).await?;
    if global.json {
        output::json(&serde_json::json!({
            "roles": roles,
            "dry_run": false,
            "statements": applied.statements,
            "notes": applied.notes,
        }))?;
    } else {
        for note in &applied.notes {
            say!("note: {note}");
        }
        say!("applied {} role(s) with {} statement(s) in one transaction", config.role.len(), applied.statements);
    }
    Ok(ExitCode::SUCCESS)
}
