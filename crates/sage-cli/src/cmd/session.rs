//! `sage-db session list|get|delete`. Key material is never printed: views show its length.

use std::process::ExitCode;

use sage_store::{Page, Session, SessionStore};
use serde::Serialize;

use crate::cli::{Global, SessionCommand};
use crate::confirm::confirm;
use crate::context::Database;
use crate::output;

/// A session as printed: everything but the key.
#[derive(Serialize)]
pub struct SessionView {
    id: String,
    client_did: String,
    server_did: String,
    created_at: String,
    expires_at: String,
    last_activity: String,
    message_count: u64,
    max_messages: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    metadata: Option<serde_json::Value>,
    key_bytes: usize,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> SessionView {
        SessionView {
            id: s.id.clone(),
            client_did: s.client_did.clone(),
            server_did: s.server_did.clone(),
            created_at: s.created_at.to_rfc3339(),
            expires_at: s.expires_at.to_rfc3339(),
            last_activity: s.last_activity.to_rfc3339(),
            message_count: s.message_count,
            max_messages: s.max_messages,
            idle_timeout_seconds: s.idle_timeout.map(|d| d.as_secs()),
            metadata: s.metadata.clone(),
            key_bytes: s.key.len(),
        }
    }
}

/// `--limit` with `--client` or `--server`.
const DEFAULT_LIMIT: u32 = 100;

/// Rows fetched per round trip when a listing reads everything.
pub const PAGE: u32 = 500;

/// Every row of a listing from `offset` on, a page at a time, until a page comes back short.
pub async fn every_page<T, F, Fut>(offset: u32, mut fetch: F) -> Result<Vec<T>, sage_store::StoreError>
where
    F: FnMut(Page) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, sage_store::StoreError>>,
{
    let mut all = Vec::new();
    let mut offset = offset;
    loop {
        let page = fetch(Page { limit: PAGE, offset }).await?;
        let short = page.len() < PAGE as usize;
        all.extend(page);
        if short {
            return Ok(all);
        }
        offset = offset.saturating_add(PAGE);
    }
}

pub async fn run(global: &Global, command: SessionCommand) -> anyhow::Result<ExitCode> {
    let db = Database::resolve(global)?;
    // The arguments are checked before the store is opened, so that a mistyped one creates
    // no database file.
    match &command {
        SessionCommand::List { client, server, limit, offset } => {
            if let Some(did) = client {
                sage_store::validate::did("client_did", did)?;
            }
            if let Some(did) = server {
                sage_store::validate::did("server_did", did)?;
            }
            sage_store::validate::page(Page { limit: limit.unwrap_or(DEFAULT_LIMIT), offset: *offset })?;
        }
        SessionCommand::Get { id } | SessionCommand::Delete { id, .. } => sage_store::validate::token("id", id)?,
    }
    let store = db.open_store().await?;
    let sessions = store.sessions();
    match command {
        SessionCommand::List { client, server, limit, offset } => {
            let page = Page { limit: limit.unwrap_or(DEFAULT_LIMIT), offset };
            let found = match (&client, &server, limit) {
                (Some(did), _, _) => sessions.list_by_client(did, page).await?,
                (_, Some(did), _) => sessions.list_by_server(did, page).await?,
                (None, None, Some(_)) => sessions.list_all(page).await?,
                (None, None, None) => every_page(offset, |page| sessions.list_all(page)).await?,
            };
            let views: Vec<SessionView> = found.iter().map(SessionView::from).collect();
            if global.json {
                output::json(&serde_json::json!({ "sessions": views }))?;
            } else if views.is_empty() {
                say!("no live sessions");
            } else {
                let rows: Vec<Vec<String>> = views
                    .iter()
                    .map(|v| {
                        vec![
                            v.id.clone(),
                            v.client_did.clone(),
                            v.server_did.clone(),
                            v.expires_at.clone(),
                            v.message_count.to_string(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "CLIENT", "SERVER", "EXPIRES AT", "MESSAGES"], &rows);
            }
        }
        SessionCommand::Get { id } => {
            let session = sessions.get(&id).await?;
            let view = SessionView::from(&session);
            if global.json {
                output::json(&view)?;
            } else {
                let value = serde_json::to_value(&view)?;
                for (key, value) in value.as_object().into_iter().flatten() {
                    say!("{key:<22} {}", value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string()));
                }
            }
        }
        SessionCommand::Delete { id, yes } => {
            // Say "not found" before asking; an expired session can still be deleted.
            if let Err(e) = sessions.get(&id).await {
                if !e.is_expired() {
                    return Err(e.into());
                }
            }
            confirm(&format!("Delete session {id:?}? Its holders will have to handshake again."), yes)?;
            sessions.delete(&id).await?;
            if global.json {
                output::json(&serde_json::json!({ "deleted": id }))?;
            } else {
                say!("deleted session {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
