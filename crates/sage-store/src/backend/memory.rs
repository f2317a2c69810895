//! Everything in process memory, with exactly the semantics of the database backends.
//! Values are cloned in and out, so a caller can never alias stored data.

use std::collections::HashMap;

// aHash with per-process random keys: several times faster than SipHash on short keys and
// still keyed, so callers who choose nonces cannot aim collisions at one bucket.
use ahash::RandomState;
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Backend, Conditional, Party, SessionRow};
use crate::error::{ErrorKind, Result, StoreError};
use crate::model::{Claim, DidRecord, NonceClaim, Page};

const NONCE_SHARDS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct NonceEntry {
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
pub(crate) struct MemoryBackend {
    sessions: RwLock<HashMap<String, SessionRow>>,
    // Nonce claims are the hot path: shards keep concurrent claimers off one lock.
    nonces: Vec<Mutex<HashMap<String, NonceEntry, RandomState>>>,
    hasher: RandomState,
    dids: RwLock<HashMap<String, DidRecord>>,
}

impl MemoryBackend {
    pub(crate) fn new() -> MemoryBackend {
        MemoryBackend {
            sessions: RwLock::default(),
            nonces: (0..NONCE_SHARDS).map(|_| Mutex::new(HashMap::with_hasher(RandomState::new()))).collect(),
            hasher: RandomState::new(),
            dids: RwLock::default(),
        }
    }

    fn shard(&self, nonce: &str) -> &Mutex<HashMap<String, NonceEntry, RandomState>> {
        &self.nonces[(self.hasher.hash_one(nonce) as usize) % NONCE_SHARDS]
    }
}

fn poisoned() -> StoreError {
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
        let mut map = self.sessions.write().map_err(|_| poisoned())?;
        let doomed: Vec<String> =
            map.values().filter(|r| !r.is_live(now)).take(batch as usize).map(|r| r.id.clone()).collect();
        for id in &doomed {
            map.remove(id);
        }
        Ok(doomed.len() as u64)
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
        claims
            .iter()
            .map(|c| {
                let mut shard = self.shard(&c.nonce).lock().map_err(|_| poisoned())?;
                match shard.get_mut(&c.nonce) {
                    Some(entry) if entry.expires_at > now => Ok(Claim::Replayed),
                    Some(entry) => {
                        entry.expires_at = c.expires_at;
                        Ok(Claim::Fresh)
                    }
                    None => {
                        shard.insert(c.nonce.clone(), NonceEntry { expires_at: c.expires_at });
                        Ok(Claim::Fresh)
                    }
                }
            })
            .collect()
    }

    async fn claim_nonce(
        &self,
        nonce: &str,
        _session_id: Option<&str>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        let mut shard = self.shard(nonce).lock().map_err(|_| poisoned())?;
        match shard.get_mut(nonce) {
            Some(entry) if entry.expires_at > now => Ok(Claim::Replayed),
            Some(entry) => {
                entry.expires_at = expires_at;
                Ok(Claim::Fresh)
            }
            None => {
                shard.insert(nonce.to_string(), NonceEntry { expires_at });
                Ok(Claim::Fresh)
            }
        }
    }

    async fn nonce_used(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool> {
        let shard = self.shard(nonce).lock().map_err(|_| poisoned())?;
        Ok(shard.get(nonce).is_some_and(|e| e.expires_at > now))
    }

    async fn count_nonces(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        for shard in &self.nonces {
            total += shard.lock().map_err(|_| poisoned())?.values().filter(|e| e.expires_at > now).count() as u64;
        }
        Ok(total)
    }

    async fn delete_expired_nonces(&self, now: DateTime<Utc>, _batch: u32) -> Result<u64> {
        // No lock is held across shards, and each shard is swept once: in memory, batching
        // would only turn one pass into many.
        let mut removed = 0u64;
        for shard in &self.nonces {
            let mut shard = shard.lock().map_err(|_| poisoned())?;
            let before = shard.len();
            shard.retain(|_, e| e.expires_at > now);
            removed += (before - shard.len()) as u64;
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
