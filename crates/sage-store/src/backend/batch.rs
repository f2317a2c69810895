//! Group commit. Requests that arrive while earlier ones are being written are merged into
//! the next statement, so a burst of N concurrent requests costs a few commits instead of
//! N, while each caller still gets its own answer, and only after the commit that made it
//! durable. A lone request goes out at once: nothing waits for company.
//!
//! The batcher is the same for nonce claims and for accepted messages; what a batch means
//! is the `execute` function's business. It gets the requests of a batch in the order they
//! reached the store and answers each one, in that order.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{Result, StoreError};
use crate::model::{Claim, NonceClaim};

type Execute<T, A> =
    Arc<dyn Fn(Vec<T>, DateTime<Utc>) -> Pin<Box<dyn Future<Output = Result<Vec<A>>> + Send>> + Send + Sync>;

struct Pending<T, A> {
    items: Vec<T>,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<Vec<A>>>,
}

pub(crate) struct Batcher<T, A> {
    queue: mpsc::UnboundedSender<Pending<T, A>>,
    idle: Option<IdlePath<T, A>>,
}

/// Nonce claims: a nonce that occurs again in the same batch is a replay of its first
/// occurrence.
pub(crate) type ClaimBatcher = Batcher<NonceClaim, Claim>;

/// What a request needs to skip the queue when the batcher has nothing to do: the
/// statement itself, the in-flight slots, and how many requests wait in the queue.
struct IdlePath<T, A> {
    execute: Execute<T, A>,
    slots: Arc<Semaphore>,
    in_flight: usize,
    queued: Arc<AtomicUsize>,
}

impl<T, A> std::fmt::Debug for Batcher<T, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batcher")
    }
}

impl<T: Send + 'static, A: Send + 'static> Batcher<T, A> {
    #[cfg(feature = "postgres")]
    /// `execute` writes a batch in one transaction and answers each request in order. At
    /// most `in_flight` batches run at once; each carries at most `max_batch` requests.
    pub(crate) fn new<F, Fut>(execute: F, in_flight: usize, max_batch: usize) -> Batcher<T, A>
    where
        F: Fn(Vec<T>, DateTime<Utc>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<A>>> + Send + 'static,
    {
        let execute: Execute<T, A> = Arc::new(move |items, now| Box::pin(execute(items, now)));
        let (queue, mut incoming) = mpsc::unbounded_channel::<Pending<T, A>>();
        let in_flight = in_flight.max(1);
        let slots = Arc::new(Semaphore::new(in_flight));
        let queued = Arc::new(AtomicUsize::new(0));
        let idle = IdlePath { execute: execute.clone(), slots: slots.clone(), in_flight, queued: queued.clone() };
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                // Waiting for a free slot is what lets a burst pile up into one batch.
                let Ok(permit) = slots.clone().acquire_owned().await else { return };
                // Callers answered by the batch that just finished are being woken now; one
                // turn of the scheduler lets them queue their next requests for this batch
                // instead of each starting a small one of its own. A lone request loses
                // only that turn.
                tokio::task::yield_now().await;
                let batch = fill(first, &mut incoming, max_batch);
                queued.fetch_sub(batch.len(), Ordering::SeqCst);
                let execute = execute.clone();
                tokio::spawn(async move {
                    run_batch(|items, now| execute(items, now), batch).await;
                    drop(permit);
                });
            }
        });
        Batcher { queue, idle: Some(idle) }
    }

    /// Sends `items` with the next batch and waits for their answers, in order.
    pub(crate) async fn submit(&self, items: Vec<T>, now: DateTime<Utc>) -> Result<Vec<A>> {
        // With nothing in flight and nobody waiting there is no company to wait for: a lone
        // request runs its statement itself, without the hops through the batching task.
        if let Some(idle) = &self.idle {
            let nothing_to_do =
                idle.queued.load(Ordering::SeqCst) == 0 && idle.slots.available_permits() == idle.in_flight;
            if items.len() == 1 && nothing_to_do {
                if let Ok(_permit) = idle.slots.clone().try_acquire_owned() {
                    return (idle.execute)(items, now).await;
                }
            }
            idle.queued.fetch_add(1, Ordering::SeqCst);
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { items, now, reply })
            .map_err(|_| StoreError::new(crate::ErrorKind::Unavailable, "the store is closing"))?;
        answer.await.map_err(|_| StoreError::new(crate::ErrorKind::Internal, "a write batch was dropped"))?
    }

    #[cfg(feature = "sqlite")]
    /// A batcher whose batches run one at a time on a dedicated thread, for engines with a
    /// single writer (SQLite): no task or thread hand-off per batch beyond the queue.
    pub(crate) fn on_thread<F>(name: &str, mut execute: F, max_batch: usize) -> std::io::Result<Batcher<T, A>>
    where
        F: FnMut(Vec<T>, DateTime<Utc>) -> Result<Vec<A>> + Send + 'static,
    {
        let (queue, mut incoming) = mpsc::unbounded_channel::<Pending<T, A>>();
        std::thread::Builder::new().name(name.to_string()).spawn(move || {
            while let Some(first) = incoming.blocking_recv() {
                let mut batch = fill(first, &mut incoming, max_batch);
                let (items, now, lengths) = merge(batch.iter_mut());
                let result = execute(items, now);
                distribute(batch, lengths, result);
            }
        })?;
        Ok(Batcher { queue, idle: None })
    }
}

impl ClaimBatcher {
    #[cfg(feature = "postgres")]
    /// A claim batcher on the async runtime; `execute` writes distinct claims.
    pub(crate) fn claims<F, Fut>(execute: F, in_flight: usize, max_batch: usize) -> ClaimBatcher
    where
        F: Fn(Vec<NonceClaim>, DateTime<Utc>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Claim>>> + Send + 'static,
    {
        let execute = Arc::new(execute);
        Batcher::new(
            move |claims: Vec<NonceClaim>, now| {
                let execute = execute.clone();
                async move {
                    let (distinct, routes) = distinct_claims(claims);
                    let answers = execute(distinct, now).await?;
                    route_claims(&routes, &answers)
                }
            },
            in_flight,
            max_batch,
        )
    }

    #[cfg(feature = "sqlite")]
    /// A claim batcher on a thread of its own; `execute` writes distinct claims.
    pub(crate) fn claims_on_thread<F>(name: &str, mut execute: F, max_batch: usize) -> std::io::Result<ClaimBatcher>
    where
        F: FnMut(Vec<NonceClaim>, DateTime<Utc>) -> Result<Vec<Claim>> + Send + 'static,
    {
        Batcher::on_thread(
            name,
            move |claims, now| {
                let (distinct, routes) = distinct_claims(claims);
                let answers = execute(distinct, now)?;
                route_claims(&routes, &answers)
            },
            max_batch,
        )
    }

    pub(crate) async fn claim(&self, claims: Vec<NonceClaim>, now: DateTime<Utc>) -> Result<Vec<Claim>> {
        self.submit(claims, now).await
    }
}

/// Distinct nonces go to the database; a nonce that occurs again in the same batch is a
/// replay of its first occurrence (`None`), whatever the database answers for that one.
fn distinct_claims(claims: Vec<NonceClaim>) -> (Vec<NonceClaim>, Vec<Option<usize>>) {
    let mut distinct: Vec<NonceClaim> = Vec::with_capacity(claims.len());
    let mut position: HashMap<String, usize> = HashMap::with_capacity(claims.len());
    let mut routes = Vec::with_capacity(claims.len());
    for claim in claims {
        if position.contains_key(&claim.nonce) {
            routes.push(None);
        } else {
            position.insert(claim.nonce.clone(), distinct.len());
            routes.push(Some(distinct.len()));
            distinct.push(claim);
        }
    }
    (distinct, routes)
}

fn route_claims(routes: &[Option<usize>], answers: &[Claim]) -> Result<Vec<Claim>> {
    routes
        .iter()
        .map(|r| match r {
            None => Ok(Claim::Replayed),
            Some(i) => answers.get(*i).copied().ok_or_else(short_answer),
        })
        .collect()
}

fn short_answer() -> StoreError {
    StoreError::new(crate::ErrorKind::Internal, "a write batch answered fewer requests than it carried")
}

#[cfg(feature = "postgres")]
async fn run_batch<T, A, Fut>(execute: impl FnOnce(Vec<T>, DateTime<Utc>) -> Fut, mut batch: Vec<Pending<T, A>>)
where
    Fut: Future<Output = Result<Vec<A>>>,
{
    let (items, now, lengths) = merge(batch.iter_mut());
    let result = execute(items, now).await;
    distribute(batch, lengths, result);
}

/// The requests of a batch in order, the earliest clock reading among them (an entry that
/// expired between two callers' readings is then still treated as live, which errs towards
/// refusing a replay), and how many requests each caller sent.
fn merge<'a, T: 'a, A: 'a>(batch: impl Iterator<Item = &'a mut Pending<T, A>>) -> (Vec<T>, DateTime<Utc>, Vec<usize>) {
    let mut items = Vec::new();
    let mut lengths = Vec::new();
    let mut now: Option<DateTime<Utc>> = None;
    for pending in batch {
        lengths.push(pending.items.len());
        now = Some(now.map_or(pending.now, |n| n.min(pending.now)));
        items.append(&mut pending.items);
    }
    (items, now.expect("a batch is never empty"), lengths)
}

fn distribute<T, A>(batch: Vec<Pending<T, A>>, lengths: Vec<usize>, result: Result<Vec<A>>) {
    let total: usize = lengths.iter().sum();
    match result {
        Ok(answers) if answers.len() == total => {
            let mut answers = answers.into_iter();
            for (pending, n) in batch.into_iter().zip(lengths) {
                let _ = pending.reply.send(Ok(answers.by_ref().take(n).collect()));
            }
        }
        Ok(_) => {
            for pending in batch {
                let _ = pending.reply.send(Err(short_answer()));
            }
        }
        // Every caller gets the whole error: kind, field, message and source.
        Err(e) => {
            for pending in batch {
                let _ = pending.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Starts a batch with `first` and adds whatever is already queued, up to `max_batch`
/// requests.
fn fill<T, A>(
    first: Pending<T, A>,
    incoming: &mut mpsc::UnboundedReceiver<Pending<T, A>>,
    max_batch: usize,
) -> Vec<Pending<T, A>> {
    let mut size = first.items.len();
    let mut batch = vec![first];
    while size < max_batch {
        let Ok(p) = incoming.try_recv() else { break };
        size += p.items.len();
        batch.push(p);
    }
    batch
}

#[cfg(all(test, feature = "postgres"))]
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
        let batcher = Arc::new(ClaimBatcher::claims(
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
