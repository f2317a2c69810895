//! File and process work (reading and hashing backups, pg_dump and pg_restore, directory
//! listings, fsync) never runs on a runtime worker: a worker blocked on a disk or a child
//! process stalls every other task of the runtime (a server's health checks, the other end
//! of a channel). It runs on tokio's blocking pool through [`run`].

use crate::Error;

/// Runs `work` on the blocking pool and waits for it; `what` names it if it panics.
pub(crate) async fn run<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::invalid(format!("{what} failed: {e}")))?
}
