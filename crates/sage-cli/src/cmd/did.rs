//! `sage-db did get|put|revoke|list`.

use std::process::ExitCode;

use anyhow::bail;
use base64::Engine as _;
use sage_conn::DurationField;
use sage_store::{DidRecord, DidStore, KeyType};
use serde::Serialize;

use crate::cli::{DidCommand, Global};
use crate::context::Database;
use crate::output;

#[derive(Serialize)]
struct DidView {
    did: String,
    key_type: String,
    public_key: String,
    owner_address: String,
    revoked: bool,
    key_agreement_key: Option<String>,
    endpoint: Option<String>,
    capabilities: Vec<String>,
    fetched_at: String,
    stale_after: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<&DidRecord> for DidView {
    fn from(r: &DidRecord) -> DidView {
        DidView {
            did: r.did.clone(),
            key_type: r.key_type.to_string(),
            public_key: hex(&r.public_key),
            owner_address: r.owner_address.clone(),
            revoked: r.revoked,
            key_agreement_key: r.key_agreement_key.as_deref().map(hex),
            endpoint: r.endpoint.clone(),
            capabilities: r.capabilities.clone(),
            fetched_at: r.fetched_at.to_rfc3339(),
            stale_after: r.stale_after.map(|t| t.to_rfc3339()),
            created_at: r.created_at.to_rfc3339(),
            updated_at: r.updated_at.to_rfc3339(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex (optionally `0x`/`\x`-prefixed) or `base64:…`.
fn parse_key(flag: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(b64) = text.strip_prefix("base64:") {
        return base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| anyhow::anyhow!("{flag}: not valid base64 ({e})"));
    }
    let digits = text.trim_start_matches("0x").trim_start_matches("\\x");
    // Checked character by character before any slicing: a multi-byte character would
    // otherwise put a slice boundary inside it.
    if let Some(c) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        bail!("{flag}: {c:?} is not a hex digit (write hex, or base64 after a base64: prefix)");
    }
    if !digits.len().is_multiple_of(2) {
        bail!("{flag}: hex needs an even number of digits, got {}", digits.len());
    }
    digits.as_bytes().chunks(2).map(|pair| Ok(u8::from_str_radix(std::str::from_utf8(pair)?, 16)?)).collect()
}

fn print(global: &Global, records: &[DidRecord]) -> anyhow::Result<()> {
    let views: Vec<DidView> = records.iter().map(DidView::from).collect();
    if global.json {
        if let [view] = views.as_slice() {
            return output::json(view);
        }
        return output::json(&serde_json::json!({ "dids": views }));
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.did.clone(),
                v.key_type.clone(),
                v.owner_address.clone(),
                if v.revoked { "revoked".into() } else { "active".into() },
                v.updated_at.clone(),
            ]
        })
        .collect();
    output::table(&["DID", "KEY TYPE", "OWNER", "STATE", "UPDATED AT"], &rows);
    Ok(())
}

/// Every argument is checked before the store is opened, so that a mistyped one creates no
/// database file and runs no migration.
pub async fn run(global: &Global, command: DidCommand) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    match command {
        DidCommand::Get { did } => {
            sage_store::validate::did("did", &did)?;
            let store = db.open_store().await?;
            print(global, &[store.dids().get(&did).await?])?;
        }
        DidCommand::List { owner } => {
            let store = db.open_store().await?;
            let dids = store.dids();
            let found = match &owner {
                Some(owner) => dids.list_by_owner(owner).await?,
                None => crate::cmd::session::every_page(0, |page| dids.list_all(page)).await?,
            };
            if global.json {
                output::json(&serde_json::json!({ "dids": found.iter().map(DidView::from).collect::<Vec<_>>() }))?;
            } else if found.is_empty() {
                match owner {
                    Some(owner) => say!("no DIDs for {owner}"),
                    None => say!("no DIDs cached"),
                }
            } else {
                print(global, &found)?;
            }
        }
        DidCommand::Revoke { did } => {
            sage_store::validate::did("did", &did)?;
            let store = db.open_store().await?;
            store.dids().revoke(&did).await?;
            print(global, &[store.dids().get(&did).await?])?;
        }
        DidCommand::Put {
            did,
            public_key,
            owner,
            key_type,
            key_agreement_key,
            endpoint,
            capabilities,
            stale_after,
            revoked,
        } => {
            let key_type = KeyType::from(key_type);
            let stale_after = stale_after.map(|a| DurationField::new("--stale-after").parse(&a)).transpose()?;
            let mut record = DidRecord::new(did, parse_key("--public-key", &public_key)?, owner, key_type);
            record.key_agreement_key = key_agreement_key.map(|k| parse_key("--key-agreement-key", &k)).transpose()?;
            record.endpoint = endpoint;
            record.capabilities = capabilities;
            record.revoked = revoked;
            record.fetched_at = chrono::Utc::now();
            if let Some(after) = stale_after {
                record.stale_after = Some(sage_conn::checked_after("--stale-after", record.fetched_at, after)?);
            }
            sage_store::validate::did_record(&record)?;
            let store = db.open_store().await?;
            print(global, &[store.dids().upsert(&record).await?])?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_in_hex_and_base64() {
        assert_eq!(parse_key("--public-key", "0x00ff").unwrap(), vec![0, 255]);
        assert_eq!(parse_key("--public-key", "\\xABcd").unwrap(), vec![0xab, 0xcd]);
        assert_eq!(parse_key("--public-key", "base64:AP8=").unwrap(), vec![0, 255]);
    }

    /// A multi-byte character used to be sliced in half: `é1` panicked.
    #[test]
    fn a_multi_byte_character_is_refused_by_name() {
        let err = parse_key("--public-key", "é1").unwrap_err().to_string();
        assert_eq!(err, "--public-key: 'é' is not a hex digit (write hex, or base64 after a base64: prefix)");
    }

    proptest! {
        #[test]
        fn keys_never_panic(text in prop_oneof![any::<String>(), "(0x|base64:)?[0-9a-fA-Fé+/=]{0,9}"]) {
            if let Err(e) = parse_key("--public-key", &text) {
                prop_assert!(e.to_string().starts_with("--public-key: "));
            }
        }

        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(parse_key("--public-key", &hex(&bytes)).unwrap(), bytes);
        }
    }
}
