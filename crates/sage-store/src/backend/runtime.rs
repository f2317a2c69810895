//! The store's own runtime, for backends whose background work must outlive any one caller.
//!
//! A PostgreSQL store keeps connections (each driven by a task that reads its socket), a
//! pool maintenance task and the nonce claim batcher. Spawned on the runtime that opened the
//! store, they would die with it, and a store shared with another runtime would then fail in
//! ways that say nothing about why. So the store starts a small runtime of its own on
//! dedicated threads, opens the backend there, and runs every backend call there: a caller
//! only awaits the answer, which works from any runtime, any thread, and any executor. The
//! runtime stops when the last clone of the store is dropped.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Backend, Conditional, Party, SessionRow};
use crate::error::{ErrorKind, Result, StoreError};
use crate::model::{Claim, DidRecord, NonceClaim, Page};

/// A runtime on threads the store owns. Dropping it stops the runtime, on its own thread,
/// so a store may be dropped anywhere, including inside another runtime's task.
pub(crate) struct OwnRuntime {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for OwnRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnRuntime")
    }
}

impl OwnRuntime {
    /// Starts the runtime: `workers` threads named `name`, plus one that owns it.
    pub(crate) async fn start(name: &str, workers: usize) -> Result<OwnRuntime> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, handle) = tokio::sync::oneshot::channel();
        let thread_name = name.to_string();
        std::thread::Builder::new()
            .name(format!("{name}-owner"))
            .spawn(move || {
                // Built here, not by the caller: a runtime must never be dropped inside
                // another one, and this thread is where it will be dropped.
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers.max(1))
                    .thread_name(thread_name)
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = ready.send(Ok(runtime.handle().clone()));
                        runtime.block_on(async move {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })
            .map_err(|e| start_error(name, e))?;
        let handle = handle
            .await
            .map_err(|_| StoreError::new(ErrorKind::Internal, format!("the {name} runtime thread exited at start")))?
            .map_err(|e| start_error(name, e))?;
        Ok(OwnRuntime { handle, _stop: stop })
    }

    /// Runs `work` on this runtime and waits for its answer from wherever the caller is.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        self.handle.spawn(work).await.map_err(|e| {
            if e.is_panic() {
                StoreError::new(ErrorKind::Internal, "a store task panicked")
            } else {
                StoreError::new(ErrorKind::Unavailable, "the store's runtime has shut down")
            }
        })?
    }
}

fn start_error(name: &str, e: std::io::Error) -> StoreError {
    StoreError::new(ErrorKind::Internal, format!("cannot start the {name} runtime: {e}")).with_source(e)
}

/// A backend whose every call runs on the store's own runtime.
#[derive(Debug)]
pub(crate) struct OnOwnRuntime<B> {
    inner: Arc<B>,
    name: &'static str,
    runtime: OwnRuntime,
}

impl<B: Backend + 'static> OnOwnRuntime<B> {
    /// Starts the runtime and opens the backend on it, so that everything the backend
    /// spawns while opening (connections, maintenance, batchers) lives there.
    /// `open` may return something besides the backend (notices for the operator).
    pub(crate) async fn open<T, Fut>(thread_name: &str, workers: usize, open: Fut) -> Result<(OnOwnRuntime<B>, T)>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<(B, T)>> + Send + 'static,
    {
        let runtime = OwnRuntime::start(thread_name, workers).await?;
        let (inner, extra) = runtime.run(open).await?;
        Ok((OnOwnRuntime { name: inner.name(), inner: Arc::new(inner), runtime }, extra))
    }

    async fn run<T, F, Fut>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<B>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.runtime.run(call(self.inner.clone())).await
    }
}

#[async_trait]
impl<B: Backend + 'static> Backend for OnOwnRuntime<B> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn pool_status(&self) -> Option<crate::metrics::PoolStatus> {
        self.inner.pool_status()
    }

    async fn ping(&self) -> Result<()> {
        self.run(|b| async move { b.ping().await }).await
    }

    async fn close(&self) {
        let _ = self
            .run(|b| async move {
                b.close().await;
                Ok(())
            })
            .await;
    }

    async fn insert_session(&self, row: &SessionRow) -> Result<()> {
        let row = row.clone();
        self.run(|b| async move { b.insert_session(&row).await }).await
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionRow>> {
        let id = id.to_string();
        self.run(|b| async move { b.get_session(&id).await }).await
    }

    async fn update_session(&self, row: &SessionRow, now: DateTime<Utc>) -> Result<Conditional<()>> {
        let row = row.clone();
        self.run(|b| async move { b.update_session(&row, now).await }).await
    }

    async fn touch_session(&self, id: &str, now: DateTime<Utc>) -> Result<Conditional<SessionRow>> {
        let id = id.to_string();
        self.run(|b| async move { b.touch_session(&id, now).await }).await
    }

    async fn accept(
        &self,
        session_id: &str,
        nonce: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<super::Accepted> {
        let (session_id, nonce) = (session_id.to_string(), nonce.to_string());
        self.run(|b| async move { b.accept(&session_id, &nonce, expires_at, now).await }).await
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.run(|b| async move { b.delete_session(&id).await }).await
    }

    async fn list_sessions(&self, party: Party, did: &str, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>> {
        let did = did.to_string();
        self.run(|b| async move { b.list_sessions(party, &did, now, page).await }).await
    }

    async fn list_all_sessions(&self, now: DateTime<Utc>, page: Page) -> Result<Vec<SessionRow>> {
        self.run(|b| async move { b.list_all_sessions(now, page).await }).await
    }

    async fn count_sessions(&self, now: DateTime<Utc>) -> Result<u64> {
        self.run(|b| async move { b.count_sessions(now).await }).await
    }

    async fn delete_expired_sessions(&self, now: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.run(|b| async move { b.delete_expired_sessions(now, batch).await }).await
    }

    async fn session_keys_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
        let after = after.map(str::to_string);
        self.run(|b| async move { b.session_keys_after(after.as_deref(), limit).await }).await
    }

    async fn replace_session_key(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let (id, old, new) = (id.to_string(), old.to_vec(), new.to_vec());
        self.run(|b| async move { b.replace_session_key(&id, &old, &new).await }).await
    }

    async fn claim_nonces(&self, claims: &[NonceClaim], now: DateTime<Utc>) -> Result<Vec<Claim>> {
        let claims = claims.to_vec();
        self.run(|b| async move { b.claim_nonces(&claims, now).await }).await
    }

    async fn claim_nonce(
        &self,
        nonce: &str,
        session_id: Option<&str>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        let (nonce, session_id) = (nonce.to_string(), session_id.map(str::to_string));
        self.run(|b| async move { b.claim_nonce(&nonce, session_id.as_deref(), expires_at, now).await }).await
    }

    async fn nonce_used(&self, nonce: &str, now: DateTime<Utc>) -> Result<bool> {
        let nonce = nonce.to_string();
        self.run(|b| async move { b.nonce_used(&nonce, now).await }).await
    }

    async fn count_nonces(&self, now: DateTime<Utc>) -> Result<u64> {
        self.run(|b| async move { b.count_nonces(now).await }).await
    }

    async fn delete_expired_nonces(&self, now: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.run(|b| async move { b.delete_expired_nonces(now, batch).await }).await
    }

    async fn insert_did(&self, record: &DidRecord) -> Result<()> {
        let record = record.clone();
        self.run(|b| async move { b.insert_did(&record).await }).await
    }

    async fn upsert_did(&self, record: &DidRecord) -> Result<DidRecord> {
        let record = record.clone();
        self.run(|b| async move { b.upsert_did(&record).await }).await
    }

    async fn get_did(&self, did: &str) -> Result<Option<DidRecord>> {
        let did = did.to_string();
        self.run(|b| async move { b.get_did(&did).await }).await
    }

    async fn update_did(&self, record: &DidRecord) -> Result<Option<DidRecord>> {
        let record = record.clone();
        self.run(|b| async move { b.update_did(&record).await }).await
    }

    async fn delete_did(&self, did: &str) -> Result<bool> {
        let did = did.to_string();
        self.run(|b| async move { b.delete_did(&did).await }).await
    }

    async fn list_dids(&self, owner: &str) -> Result<Vec<DidRecord>> {
        let owner = owner.to_string();
        self.run(|b| async move { b.list_dids(&owner).await }).await
    }

    async fn list_all_dids(&self, page: Page) -> Result<Vec<DidRecord>> {
        self.run(|b| async move { b.list_all_dids(page).await }).await
    }

    async fn revoke_did(&self, did: &str, now: DateTime<Utc>) -> Result<bool> {
        let did = did.to_string();
        self.run(|b| async move { b.revoke_did(&did, now).await }).await
    }
}
