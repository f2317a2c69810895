//! Everything in process memory, with exactly the semantics of the database backends.
//! Values are cloned in and out, so a caller can never alias stored data.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};

// aHash with per-process random keys: several times faster than SipHash on short keys and
// still keyed, so callers who choose nonces cannot aim collisions at one bucket.
use ahash::RandomState;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hashbrown::hash_table::{Entry, HashTable};

use super::{Backend, Conditional, Party, SessionRow};
use crate::error::{ErrorKind, Result, StoreError};
use crate::model::{Claim, DidRecord, NonceClaim, Page};

const NONCE_SHARDS: usize = 256;

/// A claimed nonce, kept as a 128-bit fingerprint: two independently keyed 64-bit hashes of
/// its bytes. The first places the entry (and moves it when a table grows, without hashing
/// again), the second tells apart nonces that share the first. Two different nonces share
/// both with odds of about 2^-128 per pair; such a meeting could only make a fresh nonce
/// look replayed, never let a replay through, since one nonce always has one fingerprint.
/// Entries are 24 bytes with nothing on the heap: no allocation per claim, none to free
/// in a sweep. The expiry is in microseconds since the epoch.
struct NonceEntry {
    hash: u64,
    check: u64,
    expires_at: i64,
}

/// Claimed nonces, in shards so concurrent claimers rarely meet on one lock. The keys are
/// per process and random, so callers who choose nonces cannot aim them at one slot.
struct NonceTable {
    shards: Vec<Mutex<HashTable<NonceEntry>>>,
    placement: RandomState,
    check: RandomState,
}

impl std::fmt::Debug for NonceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceTable")
    }
}

impl NonceTable {
    fn new() -> NonceTable {
        NonceTable {
            shards: (0..NONCE_SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            placement: RandomState::new(),
            check: RandomState::new(),
        }
    }

    /// The nonce's fingerprint and its shard, locked. The shard comes from middle bits of
    /// the placing hash: a table places entries by the low bits and tells them apart by the
    /// top seven, so those must vary within a shard.
    fn locate(&self, nonce: &str) -> Result<(u64, u64, MutexGuard<'_, HashTable<NonceEntry>>)> {
        let hash = self.placement.hash_one(nonce);
        let check = self.check.hash_one(nonce);
        let shard = &self.shards[((hash >> 32) as usize) % NONCE_SHARDS];
        Ok((hash, check, shard.lock().map_err(|_| poisoned())?))
    }

    fn claim(&self, nonce: &str, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<Claim> {
        let (hash, check, mut table) = self.locate(nonce)?;
        let (expires_at, now) = (expires_at.timestamp_micros(), now.timestamp_micros());
        match table.entry(hash, |e| e.hash == hash && e.check == check, |e| e.hash) {
            Entry::Occupied(mut found) => {
                let entry = found.get_mut();
                if entry.expires_at > now {
                    return Ok(Claim::Replayed);
                }
                entry.expires_at = expires_at;
                Ok(Claim::Fresh)
            }
            Entry::Vacant(slot) => {
                slot.insert(NonceEntry { hash, check, expires_at });
                Ok(Claim::Fresh)
            }
        }
    }

    fn used(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool> {
        let (hash, check, table) = self.locate(nonce)?;
        let now = now.timestamp_micros();
        Ok(table.find(hash, |e| e.hash == hash && e.check == check).is_some_and(|e| e.expires_at > now))
    }

    fn count_live(&self, now: DateTime<Utc>) -> Result<u64> {
        let now = now.timestamp_micros();
        let mut total = 0;
        for shard in &self.shards {
            total += shard.lock().map_err(|_| poisoned())?.iter().filter(|e| e.expires_at > now).count() as u64;
        }
        Ok(total)
    }

    /// Deletes the expired entries of one shard.
    fn delete_expired_in(&self, shard: usize, now: DateTime<Utc>) -> Result<u64> {
        let now = now.timestamp_micros();
        let mut table = self.shards[shard].lock().map_err(|_| poisoned())?;
        let before = table.len();
        table.retain(|e| e.expires_at > now);
        Ok((before - table.len()) as u64)
    }
}

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
        claims.iter().map(|c| self.nonces.claim(&c.nonce, c.expires_at, now)).collect()
    }

    fn claim_nonce_now(&self, nonce: &str, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<Result<Claim>> {
        Some(self.nonces.claim(nonce, expires_at, now))
    }

    async fn nonce_used(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool> {
        self.nonces.used(nonce, now)
    }

    async fn count_nonces(&self, now: DateTime<Utc>) -> Result<u64> {
        self.nonces.count_live(now)
    }

    async fn delete_expired_nonces(&self, now: DateTime<Utc>, _batch: u32) -> Result<u64> {
        // Shard by shard, giving the runtime back its thread in between: a sweep of millions
        // of entries must not hold up the tasks that share the thread. Batching by row count
        // would only turn one pass over a shard into many.
        let mut removed = 0;
        for shard in 0..NONCE_SHARDS {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_many_similar_nonces_apart() {
        let table = NonceTable::new();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let later = now + chrono::Duration::minutes(5);
        let nonces: Vec<String> = (0..200_000).map(|i| format!("n-{i}")).collect();
        assert!(nonces.iter().all(|n| table.claim(n, later, now).unwrap() == Claim::Fresh));
        assert!(nonces.iter().all(|n| table.claim(n, later, now).unwrap() == Claim::Replayed));
        assert!(nonces.iter().all(|n| table.used(n, now).unwrap()));
        assert!(!table.used("n-200000", now).unwrap());
        assert_eq!(table.count_live(now).unwrap(), 200_000);
        // Once expired, a nonce can be claimed again; a sweep removes only the expired.
        let after = later + chrono::Duration::seconds(1);
        assert_eq!(table.claim("n-7", after + chrono::Duration::minutes(5), after).unwrap(), Claim::Fresh);
        let swept: u64 = (0..NONCE_SHARDS).map(|s| table.delete_expired_in(s, after).unwrap()).sum();
        assert_eq!(swept, 199_999);
        assert!(table.used("n-7", after).unwrap());
    }
}
