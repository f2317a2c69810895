//! Everything in process memory, with the semantics of the database backends. Values are
//! cloned in and out, so a caller can never alias stored data. Nonces are kept as
//! fingerprints (see `nonce_table.rs`), which differ from exact comparison only with odds
//! of about 2^-128, and then only by refusing a fresh nonce.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::nonce_table::{NonceTable, SHARDS};
use super::{Accepted, Backend, Conditional, Party, SessionRow};
use crate::error::{ErrorKind, Result, StoreError};
use crate::model::{Claim, DidRecord, NonceClaim, Page};

#[derive(Debug)]
pub(crate) struct MemoryBackend {
    sessions: RwLock<HashMap<String, SessionRow>>,
    nonces: NonceTable,
    dids: RwLock<HashMap<String, DidRecord>>,
}

impl MemoryBackend {
    pub(crate) fn new() -> MemoryBackend {
        MemoryBackend { sessions: RwLock::default(), nonces: NonceTable::new(), dids: RwLock::default() }
    }
}

pub(crate) fn poisoned() -> StoreError {
    StoreError::new(ErrorKind::Internal, "memory store lock poisoned by a panic")
}

#[async_trait]
impl Backend for MemoryBackend {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn close(&self) {}

    async fn insert_session(&self, row: &SessionRow) -> Result<()> {
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        if map.contains_key(&row.id) {
            return Err(StoreError::new(ErrorKind::AlreadyExists, format!("session {:?} already exists", row.id)));
        }
        map.insert(row.id.clone(), row.clone());
        Ok(())
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionRow>> {
        Ok(self.sessions.read().map_err(|_| poisoned())?.get(id).cloned())
    }

    async fn update_session(&self, row: &SessionRow, now: DateTime<Utc>) -> Result<Conditional<()>> {
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        let Some(stored) = map.get_mut(&row.id) else { return Ok(Conditional::NotFound) };
        if !stored.is_live(now) {
            return Ok(Conditional::NotLive);
        }
        stored.sealed_key = row.sealed_key.clone();
        stored.expires_at = row.expires_at;
        stored.metadata = row.metadata.clone();
        stored.max_messages = row.max_messages;
        stored.idle_timeout_seconds = row.idle_timeout_seconds;
        Ok(Conditional::Done(()))
    }

    async fn touch_session(&self, id: &str, now: DateTime<Utc>) -> Result<Conditional<SessionRow>> {
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        let Some(stored) = map.get_mut(id) else { return Ok(Conditional::NotFound) };
        if !stored.is_live(now) {
            return Ok(Conditional::NotLive);
        }
        stored.message_count += 1;
        stored.last_activity = now;
        Ok(Conditional::Done(stored.clone()))
    }

    async fn accept(
        &self,
        session_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Accepted> {
        // The session's write lock is held across the claim: nobody can expire, spend or
        // delete the session between the check and the touch, so a claimed nonce always
        // comes with its counted message.
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        let Some(stored) = map.get_mut(session_id) else { return Ok(Accepted::NotFound) };
        if !stored.is_live(now) {
            return Ok(Accepted::NotLive);
        }
        match self.nonces.claim(nonce, expires_at.timestamp_micros(), now.timestamp_micros())? {
            Claim::Replayed => Ok(Accepted::Replayed),
            Claim::Fresh => {
                stored.message_count += 1;
                stored.last_activity = now;
                Ok(Accepted::Done(stored.clone()))
            }
        }
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        Ok(self.sessions.write().map_err(|_| poisoned())?.remove(id).is_some())
    }

    async fn list_sessions(&self, party: Party, did: &str, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>> {
        let map = self.sessions.read().map_err(|_| poisoned())?;
        let mut rows: Vec<&SessionRow> = map
            .values()
            .filter(|r| match party {
                Party::Client => r.client_did == did,
                Party::Server => r.server_did == did,
            })
            .filter(|r| r.is_live(now))
            .collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        Ok(rows.into_iter().skip(page.offset as usize).take(page.limit as usize).cloned().collect())
    }

    async fn count_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(self.sessions.read().map_err(|_| poisoned())?.values().filter(|r| r.is_live(now)).count() as u64)
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>, batch: u32) -> Result<u64> {
        let deleted = {
            let mut map = self.sessions.write().map_err(|_| poisoned())?;
            let doomed: Vec<String> =
                map.values().filter(|r| !r.is_live(now)).take(batch as usize).map(|r| r.id.clone()).collect();
            for id in &doomed {
                map.remove(id);
            }
            doomed.len() as u64
        };
        // The store calls this batch after batch; between two, the runtime gets its thread
        // back, so a long cleanup never holds up the tasks that share it.
        tokio::task::yield_now().await;
        Ok(deleted)
    }

    async fn session_keys_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let map = self.sessions.read().map_err(|_| poisoned())?;
        let mut ids: Vec<&String> = map.keys().filter(|id| after.is_none_or(|a| id.as_str() > a)).collect();
        ids.sort();
        Ok(ids.into_iter().take(limit as usize).map(|id| (id.clone(), map[id].sealed_key.clone())).collect())
    }

    async fn replace_session_key(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        match map.get_mut(id) {
            Some(row) if row.sealed_key == old => {
                row.sealed_key = new.to_vec();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_nonces(&self, claims: &[NonceClaim], now: DateTime<Utc>) -> Result<Vec<Claim>> {
        let now = now.timestamp_micros();
        claims.iter().map(|c| self.nonces.claim(&c.nonce, c.expires_at.timestamp_micros(), now)).collect()
    }

    fn claim_nonce_now(&self, nonce: &str, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<Result<Claim>> {
        Some(self.nonces.claim(nonce, expires_at.timestamp_micros(), now.timestamp_micros()))
    }

    async fn nonce_used(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool> {
        self.nonces.used(nonce, now.timestamp_micros())
    }

    async fn count_nonces(&self, now: DateTime<Utc>) -> Result<u64> {
        self.nonces.count_live(now.timestamp_micros())
    }

    async fn delete_expired_nonces(&self, now: DateTime<Utc>, _batch: u32) -> Result<u64> {
        // Shard by shard, giving the runtime back its thread in between: a sweep of millions
        // of entries must not hold up the tasks that share the thread. Batching by row count
        // would only turn one pass over a shard into many.
        let now = now.timestamp_micros();
        let mut removed = 0;
        for shard in 0..SHARDS {
            removed += self.nonces.delete_expired_in(shard, now)?;
            tokio::task::yield_now().await;
        }
        Ok(removed)
    }

    async fn insert_did(&self, record: &DidRecord) -> Result<()> {
        let mut map = self.dids.write().map_err(|_| poisoned())?;
        if map.contains_key(&record.did) {
            return Err(StoreError::new(ErrorKind::AlreadyExists, format!("DID {:?} already exists", record.did)));
        }
        map.insert(record.did.clone(), record.clone());
        Ok(())
    }

    async fn upsert_did(&self, record: &DidRecord) -> Result<DidRecord> {
        let mut map = self.dids.write().map_err(|_| poisoned())?;
        let mut stored = record.clone();
        if let Some(existing) = map.get(&record.did) {
            stored.created_at = existing.created_at;
        }
        map.insert(record.did.clone(), stored.clone());
        Ok(stored)
    }

    async fn get_did(&self, did: &str) -> Result<Option<DidRecord>> {
        Ok(self.dids.read().map_err(|_| poisoned())?.get(did).cloned())
    }

    async fn update_did(&self, record: &DidRecord) -> Result<Option<DidRecord>> {
        let mut map = self.dids.write().map_err(|_| poisoned())?;
        let Some(existing) = map.get_mut(&record.did) else { return Ok(None) };
        let created_at = existing.created_at;
        *existing = DidRecord { created_at, ..record.clone() };
        Ok(Some(existing.clone()))
    }

    async fn delete_did(&self, did: &str) -> Result<bool> {
        Ok(self.dids.write().map_err(|_| poisoned())?.remove(did).is_some())
    }

    async fn list_dids(&self, owner: &str) -> Result<Vec<DidRecord>> {
        let map = self.dids.read().map_err(|_| poisoned())?;
        let mut rows: Vec<DidRecord> = map.values().filter(|r| r.owner_address == owner).cloned().collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.did.cmp(&a.did)));
        Ok(rows)
    }

    async fn revoke_did(&self, did: &str, now: DateTime<Utc>) -> Result<bool> {
        let mut map = self.dids.write().map_err(|_| poisoned())?;
        match map.get_mut(did) {
            Some(r) => {
                r.revoked = true;
                r.updated_at = now;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
