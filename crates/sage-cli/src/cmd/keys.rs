//! `sage-db keys generate|rotate`. Keys themselves are never printed, only their ids.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use sage_conn::{SqliteLocation, Target};
use sage_store::keys::{append_key, KeyRing, KEY_FILE_VAR};
use sage_store::KeySource;

use crate::cli::{Global, KeysCommand};
use crate::context::Database;
use crate::output;

pub async fn run(global: &Global, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    match command {
        KeysCommand::Generate { key_file } => {
            let path = match key_file.or_else(|| db.env.get(KEY_FILE_VAR).map(PathBuf::from)) {
                Some(path) => path,
                None => match &db.settings.target {
                    Target::Sqlite(SqliteLocation::File(file)) => KeySource::default_file_for(file),
                    _ => bail!(
                        "say where to keep the key: --key-file FILE (then set {KEY_FILE_VAR}=FILE for the service)"
                    ),
                },
            };
            let created = !path.exists();
            let id = append_key(&path, created)?;
            let ring = KeyRing::load_file(&path)?;
            if global.json {
                output::json(
                    &serde_json::json!({ "key_file": path, "key_id": id, "created": created, "keys": ring.key_ids() }),
                )?;
            } else {
                say!("{} {} with new key {id}", if created { "created" } else { "updated" }, path.display());
                say!("it now seals new session keys; run `sage-db keys rotate` to re-seal existing ones");
                if created {
                    say!("keep the file secret (mode 0600) and back it up apart from the database");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate => {
            let store = db.open_store().await?;
            let report = store.rotate_keys().await?;
            if global.json {
                output::json(&report)?;
            } else {
                say!("current key: {}", report.key_id);
                say!(
                    "examined {} sessions: {} re-sealed, {} plaintext keys sealed, {} already current, {} changed meanwhile",
                    report.examined, report.resealed, report.encrypted_plaintext, report.already_current, report.changed_meanwhile
                );
                for id in &report.failed {
                    say!("failed: session {id} (key material does not authenticate; left as it was)");
                }
            }
            Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}
