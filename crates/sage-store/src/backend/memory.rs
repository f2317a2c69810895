//! Everything in process memory, with the semantics of the database backends. Values are
//! cloned in and out, so a caller can never alias stored data. Nonces are kept as
//! fingerprints (see `nonce_table.rs`), which differ from exact comparison only with odds
//! of about 2^-128, and then only by refusing a fresh nonce.
//!
//! Scans over all sessions (cleanup, counting, listing) never hold a lock for the whole
//! map: they walk it in id order, [`SCAN_CHUNK`] sessions per lock acquisition, and give
//! the runtime its thread back between chunks, so that 200,000 sessions do not stall the
//! tasks that share the thread (`examples/stall_probe.rs` measures it). Such a scan is not
//! a snapshot: a session created or deleted meanwhile may or may not be seen, as with any
//! answer that is out of date once returned.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::nonce_table::{NonceTable, SHARDS};
use super::{Accepted, Backend, Conditional, Party, SessionRow};
use crate::error::{ErrorKind, Result, StoreError};
use crate::model::{Claim, DidRecord, NonceClaim, Page};

/// Sessions looked at per lock acquisition in a scan: about 0.1 ms of work.
const SCAN_CHUNK: usize = 256;

#[derive(Debug)]
pub(crate) struct MemoryBackend {
    /// Ordered by id, so that a scan can resume after the last id it saw.
    sessions: RwLock<BTreeMap<String, SessionRow>>,
    nonces: NonceTable,
    dids: RwLock<HashMap<String, DidRecord>>,
}

impl MemoryBackend {
    pub(crate) fn new() -> MemoryBackend {
        MemoryBackend { sessions: RwLock::default(), nonces: NonceTable::new(), dids: RwLock::default() }
    }
}

impl MemoryBackend {
    /// Up to [`SCAN_CHUNK`] sessions after `after` (from the start when `None`), under the
    /// read lock; `f` is called on each. Returns the last id seen, `None` at the end.
    fn scan_chunk(&self, after: Option<&str>, mut f: impl FnMut(&SessionRow)) -> Result<Option<String>> {
        let map = self.sessions.read().map_err(|_| poisoned())?;
        let start = match after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        let mut last = None;
        let mut seen = 0;
        for (id, row) in map.range::<str, _>((start, Bound::Unbounded)).take(SCAN_CHUNK) {
            f(row);
            last = Some(id);
            seen += 1;
        }
        // A short chunk is the last one.
        Ok(if seen < SCAN_CHUNK { None } else { last.cloned() })
    }

    /// Calls `f` on every session, chunk by chunk, yielding between chunks.
    async fn scan(&self, mut f: impl FnMut(&SessionRow) + Send) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            after = self.scan_chunk(after.as_deref(), &mut f)?;
            if after.is_none() {
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
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
        let mut rows: Vec<SessionRow> = Vec::new();
        self.scan(|r| {
            let theirs = match party {
                Party::Client => r.client_did == did,
                Party::Server => r.server_did == did,
            };
            if theirs && r.is_live(now) {
                rows.push(r.clone());
            }
        })
        .await?;
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        Ok(rows.into_iter().skip(page.offset as usize).take(page.limit as usize).collect())
    }

    async fn list_all_sessions(&self, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>> {
        let mut rows: Vec<SessionRow> = Vec::new();
        self.scan(|r| {
            if r.is_live(now) {
                rows.push(r.clone());
            }
        })
        .await?;
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
        Ok(rows.into_iter().skip(page.offset as usize).take(page.limit as usize).collect())
    }

    async fn count_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut live = 0;
        self.scan(|r| live += u64::from(r.is_live(now))).await?;
        Ok(live)
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>, _batch: u32) -> Result<u64> {
        // One sweep over the whole map, chunk by chunk: the expired sessions of a chunk are
        // found under the read lock and removed under the write lock (if still expired),
        // then the runtime gets its thread back. Batching by row count, as the databases
        // do, would only rescan the map from its start for every batch.
        let mut deleted = 0;
        let mut after: Option<String> = None;
        loop {
            let mut doomed = Vec::new();
            let next = self.scan_chunk(after.as_deref(), |r| {
                if !r.is_live(now) {
                    doomed.push(r.id.clone());
                }
            })?;
            if !doomed.is_empty() {
                let mut map = self.sessions.write().map_err(|_| poisoned())?;
                for id in doomed {
                    if map.get(&id).is_some_and(|r| !r.is_live(now)) {
                        map.remove(&id);
                        deleted += 1;
                    }
                }
            }
            let Some(next) = next else { return Ok(deleted) };
            after = Some(next);
            tokio::task::yield_now().await;
        }
    }

    async fn session_keys_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let map = self.sessions.read().map_err(|_| poisoned())?;
        let start = match after {
            Some(id) => Bound::Excluded(id),
            None => Bound::Unbounded,
        };
        Ok(map
            .range::<str, _>((start, Bound::Unbounded))
            .take(limit as usize)
            .map(|(id, row)| (id.clone(), row.sealed_key.clone()))
            .collect())
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

    async fn list_all_dids(&self, page: Page) -> Result<Vec<DidRecord>> {
        let map = self.dids.read().map_err(|_| poisoned())?;
        let mut rows: Vec<&DidRecord> = map.values().collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.did.cmp(&a.did)));
        Ok(rows.into_iter().skip(page.offset as usize).take(page.limit as usize).cloned().collect())
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

    fn row(i: usize, now: DateTime<Utc>, expired: bool) -> SessionRow {
        let expires_at = if expired { now - chrono::Duration::seconds(1) } else { now + chrono::Duration::hours(1) };
        SessionRow {
            id: format!("session-{i:06}"),
            client_did: format!("did:sage:client{}", i % 3),
            server_did: "did:sage:server".to_string(),
            sealed_key: vec![1],
            created_at: now,
            expires_at,
            last_activity: now,
            metadata: None,
            message_count: 0,
            max_messages: None,
            idle_timeout_seconds: None,
        }
    }

    /// Scans that span several chunks see every session exactly once.
    #[tokio::test]
    async fn scans_across_chunks_see_every_session_once() {
        let backend = MemoryBackend::new();
        let now = Utc::now();
        let n = SCAN_CHUNK * 3 + 17;
        for i in 0..n {
            backend.insert_session(&row(i, now, i % 2 == 0)).await.unwrap();
        }
        let live = (0..n).filter(|i| i % 2 == 1).count() as u64;
        assert_eq!(backend.count_sessions(now).await.unwrap(), live);
        let page = Page { limit: 1000, offset: 0 };
        let listed = backend.list_sessions(Party::Client, "did:sage:client1", now, page).await.unwrap();
        assert_eq!(listed.len(), (0..n).filter(|i| i % 2 == 1 && i % 3 == 1).count());
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = backend.session_keys_after(after.as_deref(), 500).await.unwrap();
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            keys.extend(page.into_iter().map(|(id, _)| id));
        }
        assert_eq!(keys.len(), n, "rotation's paging visits every session once");
        assert_eq!(backend.delete_expired_sessions(now, 1000).await.unwrap(), n as u64 - live);
        assert_eq!(backend.delete_expired_sessions(now, 1000).await.unwrap(), 0);
        assert_eq!(backend.count_sessions(now).await.unwrap(), live);
    }
}
