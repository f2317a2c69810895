//! Group commit for nonce claims. Claims that arrive while earlier ones are being written
//! are merged into the next statement, so a burst of N concurrent claims costs a few
//! commits instead of N, while each caller still gets its own answer, and only after the
//! commit that made it durable. A lone claim goes out at once: nothing waits for company.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Result, StoreError};
use crate::model::{Claim, NonceClaim};

type Execute = Arc<
    dyn Fn(Vec<NonceClaim>, DateTime<Utc>) -> Pin<Box<dyn Future<Output = Result<Vec<Claim>>> + Send>> + Send + Sync,
>;

struct Pending {
    claims: Vec<NonceClaim>,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<Vec<Claim>>>,
}

pub(crate) struct ClaimBatcher {
    queue: mpsc::UnboundedSender<Pending>,
    idle: Option<IdlePath>,
}

/// What a claim needs to skip the queue when the batcher has nothing to do: the statement
/// itself, the in-flight slots, and how many claims wait in the queue.
struct IdlePath {
    execute: Execute,
    slots: Arc<Semaphore>,
    in_flight: usize,
    queued: Arc<AtomicUsize>,
}

impl std::fmt::Debug for ClaimBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimBatcher")
    }
}

impl ClaimBatcher {
    /// `execute` writes distinct claims in one statement and commit. At most `in_flight`
    /// statements run at once; each carries at most `max_batch` claims.
    pub(crate) fn new<F, Fut>(execute: F, in_flight: usize, max_batch: usize) -> ClaimBatcher
    where
        F: Fn(Vec<NonceClaim>, DateTime<Utc>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Claim>>> + Send + 'static,
    {
        let execute: Execute = Arc::new(move |claims, now| Box::pin(execute(claims, now)));
        let (queue, mut incoming) = mpsc::unbounded_channel::<Pending>();
        let in_flight = in_flight.max(1);
        let slots = Arc::new(Semaphore::new(in_flight));
        let queued = Arc::new(AtomicUsize::new(0));
        let idle = IdlePath { execute: execute.clone(), slots: slots.clone(), in_flight, queued: queued.clone() };
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                // Waiting for a free slot is what lets a burst pile up into one batch.
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                // Callers answered by the batch that just finished are being woken now; one
                // turn of the scheduler lets them queue their next claims for this batch
                // instead of each starting a small one of its own. A lone claim loses only
                // that turn.
                tokio::task::yield_now().await;
                let batch = fill(first, &mut incoming, max_batch);
                queued.fetch_sub(batch.len(), Ordering::SeqCst);
                let execute = execute.clone();
                tokio::spawn(async move {
                    run_batch(&execute, batch).await;
                    drop(permit);
                });
            }
        });
        ClaimBatcher { queue, idle: Some(idle) }
    }

    pub(crate) async fn claim(&self, claims: Vec<NonceClaim>, now: DateTime<Utc>) -> Result<Vec<Claim>> {
        // With nothing in flight and nobody waiting there is no company to wait for: a lone
        // claim runs its statement itself, without the hops through the batching task.
        if let Some(idle) = &self.idle {
            let nothing_to_do =
                idle.queued.load(Ordering::SeqCst) == 0 && idle.slots.available_permits() == idle.in_flight;
            if claims.len() == 1 && nothing_to_do {
                if let Ok(_permit) = idle.slots.clone().try_acquire_owned() {
                    return (idle.execute)(claims, now).await;
                }
            }
            idle.queued.fetch_add(1, Ordering::SeqCst);
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { claims, now, reply })
            .map_err(|_| StoreError::new(crate::ErrorKind::Unavailable, "the store is closing"))?;
        answer.await.map_err(|_| StoreError::new(crate::ErrorKind::Internal, "a nonce claim batch was dropped"))?
    }
}

async fn run_batch(execute: &Execute, batch: Vec<Pending>) {
    let (merged, now, routes) = merge(&batch);
    let result = execute(merged, now).await;
    distribute(batch, routes, result);
}

type Routes = Vec<Vec<Option<usize>>>;

/// Distinct nonces go to the database; a nonce that occurs again in the same batch is a
/// replay of its first occurrence, whatever the database answers for that one.
fn merge(batch: &[Pending]) -> (Vec<NonceClaim>, DateTime<Utc>, Routes) {
    let mut merged: Vec<NonceClaim> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    let mut routes: Routes = Vec::with_capacity(batch.len());
    // The earliest clock reading: an entry that expired between two callers' readings is
    // then still treated as live, which errs towards refusing a replay.
    let now = batch.iter().map(|p| p.now).min().expect("a batch is never empty");
    for pending in batch {
        let route = pending
            .claims
            .iter()
            .map(|c| {
                if position.contains_key(c.nonce.as_str()) {
                    None
                } else {
                    position.insert(c.nonce.as_str(), merged.len());
                    merged.push(c.clone());
                    Some(merged.len() - 1)
                }
            })
            .collect();
        routes.push(route);
    }
    (merged, now, routes)
}

fn distribute(batch: Vec<Pending>, routes: Routes, result: Result<Vec<Claim>>) {
    for (pending, route) in batch.into_iter().zip(routes) {
        let answer = match &result {
            Ok(answers) => Ok(route.iter().map(|r| r.map_or(Claim::Replayed, |i| answers[i])).collect()),
            // Every caller gets the whole error: kind, field, message and source.
            Err(e) => Err(e.clone()),
        };
        let _ = pending.reply.send(answer);
    }
}

impl ClaimBatcher {
    /// A batcher whose statements run one at a time on a dedicated thread, for engines
    /// with a single writer (SQLite): no task or thread hand-off per batch beyond the queue.
    pub(crate) fn on_thread<F>(name: &str, mut execute: F, max_batch: usize) -> std::io::Result<ClaimBatcher>
    where
        F: FnMut(Vec<NonceClaim>, DateTime<Utc>) -> Result<Vec<Claim>> + Send + 'static,
    {
        let (queue, mut incoming) = mpsc::unbounded_channel::<Pending>();
        std::thread::Builder::new().name(name.to_string()).spawn(move || {
            while let Some(first) = incoming.blocking_recv() {
                let batch = fill(first, &mut incoming, max_batch);
                let (merged, now, routes) = merge(&batch);
                let result = execute(merged, now);
                distribute(batch, routes, result);
            }
        })?;
        Ok(ClaimBatcher { queue, idle: None })
    }
}

/// Starts a batch with `first` and adds whatever is already queued, up to `max_batch` claims.
fn fill(first: Pending, incoming: &mut mpsc::UnboundedReceiver<Pending>, max_batch: usize) -> Vec<Pending> {
    let mut size = first.claims.len();
    let mut batch = vec![first];
    while size < max_batch {
        let Ok(p) = incoming.try_recv() else { break };
        size += p.claims.len();
        batch.push(p);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn claim(n: &str) -> NonceClaim {
        NonceClaim { nonce: n.into(), session_id: None, expires_at: Utc::now() + chrono::Duration::minutes(1) }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_share_statements_and_duplicates_lose() {
        let statements = Arc::new(AtomicUsize::new(0));
        let counter = statements.clone();
        // Stands in for the table: a nonce is fresh the first time it is written.
        let table = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let batcher = Arc::new(ClaimBatcher::new(
            move |claims: Vec<NonceClaim>, _| {
                counter.fetch_add(1, Ordering::SeqCst);
                let table = table.clone();
                async move {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    let mut table = table.lock().unwrap();
                    Ok(claims
                        .iter()
                        .map(|c| if table.insert(c.nonce.clone()) { Claim::Fresh } else { Claim::Replayed })
                        .collect())
                }
            },
            1,
            1000,
        ));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let b = batcher.clone();
            // Every fifth caller claims the same nonce.
            let nonce = if i % 5 == 0 { "same".to_string() } else { format!("n{i}") };
            tasks.push(tokio::spawn(async move { b.claim(vec![claim(&nonce)], Utc::now()).await.unwrap()[0] }));
        }
        let answers: Vec<Claim> = futures_util::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            answers.iter().filter(|a| **a == Claim::Fresh).count(),
            41,
            "40 distinct nonces plus one winner of \"same\""
        );
        assert!(statements.load(Ordering::SeqCst) < 50, "claims were grouped");

        // One at a time, each claim is alone: its own statement, and still the right answer.
        let before = statements.load(Ordering::SeqCst);
        let mut answers = Vec::new();
        for nonce in ["solo-1", "solo-2", "solo-1"] {
            answers.push(batcher.claim(vec![claim(nonce)], Utc::now()).await.unwrap()[0]);
        }
        assert_eq!(answers, [Claim::Fresh, Claim::Fresh, Claim::Replayed]);
        assert_eq!(statements.load(Ordering::SeqCst), before + 3);
    }
}
