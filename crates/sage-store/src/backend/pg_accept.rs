//! Group commit for accepted messages on PostgreSQL. Concurrent `accept` calls, for any
//! number of sessions and several for one session, are merged by the batcher (`batch.rs`)
//! and written in one transaction per batch:
//!
//! 1. the batch's sessions are locked (`FOR UPDATE`, in id order, so two batches never
//!    deadlock on them) and read;
//! 2. the nonces of messages whose session is live are claimed in one statement (the claim
//!    batcher's own `INSERT … ON CONFLICT … WHERE expired … RETURNING`, in nonce order);
//! 3. the messages are decided one by one in the order they reached the store, exactly as
//!    if each had been accepted alone: a missing session, then a session that is not live
//!    (counting the messages of this batch accepted before it), then a replayed nonce;
//! 4. one statement deletes the nonces claimed in step 2 for messages refused in step 3
//!    and counts the accepted messages on their sessions; then the transaction commits.
//!
//! So a message's nonce stays claimed if and only if its message was counted, the batch
//! commits or rolls back as a whole, and every statement's text is constant (arrays bound
//! through `unnest` and `ANY`), which a pooler in transaction mode passes through. A nonce
//! that occurs twice in a batch is decided for its later occurrence in a second
//! transaction, after the first one committed: an occurrence refused for its session
//! leaves the nonce free for the next, as it would one at a time. A lone message, and
//! every message through a pooler in statement mode (which refuses transactions), uses one
//! statement with no transaction around it (`accept_one`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sage_conn::deadpool_postgres::{Object, Pool};
use sage_conn::PgSettings;

use super::postgres::{live, retryable, session_row, CLAIM_SQL, SESSION_COLUMNS};
use super::statements::Statements;
use super::{Accepted, SessionRow};
use crate::error::{from_pg, ErrorKind, Result, StoreError};

/// One message to accept.
#[derive(Debug)]
pub(crate) struct Message {
    pub session_id: String,
    pub nonce: String,
    pub expires_at: DateTime<Utc>,
}

const WHAT: &str = "cannot accept messages";

/// Locks and reads the sessions of a batch. `ORDER BY` runs below the row locks, so the
/// locks are taken in id order.
fn lock_sql() -> String {
    format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE")
}

/// Releases the nonces of refused messages (rows this transaction claimed) and counts the
/// accepted messages on their sessions (rows this transaction locked).
const FINISH_SQL: &str = "WITH released AS (DELETE FROM nonces WHERE nonce = ANY($1::text[])) \
     UPDATE sessions SET message_count = sessions.message_count + u.k, last_activity = $3 \
     FROM unnest($2::text[], $4::bigint[]) AS u(id, k) WHERE sessions.id = u.id";

/// Accepts a batch of messages; answers each one, in order. A batch that fails as a whole
/// (connection lost, database down) answers every message of it with that error.
pub(crate) async fn accept_messages(
    pool: &Pool,
    settings: &PgSettings,
    statements: &Statements,
    messages: Vec<Message>,
    now: DateTime<Utc>,
) -> Result<Vec<Result<Accepted>>> {
    let client = pool.get().await.map_err(|e| StoreError::from(sage_conn::pool_error(settings, e)))?;
    // A pooler in statement mode refuses transactions: each message is its own statement.
    if messages.len() == 1 || settings.pooler == sage_conn::Pooler::Statement {
        let mut answers = Vec::with_capacity(messages.len());
        for message in &messages {
            answers.push(accept_one(&client, statements, message, now).await);
        }
        return Ok(answers);
    }
    // Round r carries the (r+1)-th occurrence of each nonce, so a round's nonces are
    // distinct and a later occurrence is decided after the earlier one committed.
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(messages.len());
    let rounds: Vec<usize> = messages
        .iter()
        .map(|m| {
            let n = seen.entry(m.nonce.as_str()).or_insert(0);
            *n += 1;
            *n - 1
        })
        .collect();
    let mut answers: Vec<Option<Result<Accepted>>> = messages.iter().map(|_| None).collect();
    let mut client = Some(client);
    for round in 0..rounds.iter().max().map_or(0, |r| r + 1) {
        let members: Vec<usize> = (0..messages.len()).filter(|&i| rounds[i] == round).collect();
        let batch: Vec<&Message> = members.iter().map(|&i| &messages[i]).collect();
        let outcome = match client.take() {
            Some(c) => accept_round(c, statements, &batch, now).await,
            None => Err(StoreError::new(ErrorKind::Unavailable, "a connection was lost while accepting messages")),
        };
        match outcome {
            Ok((c, decided)) => {
                client = Some(c);
                for (i, answer) in members.into_iter().zip(decided) {
                    answers[i] = Some(Ok(answer));
                }
            }
            // Earlier rounds committed and keep their answers; this one and any later
            // ones did not.
            Err(e) => {
                for answer in answers.iter_mut().filter(|a| a.is_none()) {
                    *answer = Some(Err(e.clone()));
                }
                break;
            }
        }
    }
    Ok(answers.into_iter().map(|a| a.unwrap_or_else(|| Err(unanswered()))).collect())
}

fn unanswered() -> StoreError {
    StoreError::new(ErrorKind::Internal, "a message of an accept batch was not answered")
}

/// One round of distinct nonces in one transaction, run again (up to three times) when it
/// lost a deadlock or serialization conflict, after which it rolled back as a whole. The
/// connection comes back with the answers; after a failure it is closed or released.
async fn accept_round(
    client: Object,
    statements: &Statements,
    messages: &[&Message],
    now: DateTime<Utc>,
) -> Result<(Object, Vec<Accepted>)> {
    let lock = lock_sql();
    for sql in [lock.as_str(), CLAIM_SQL, FINISH_SQL] {
        statements.learn(&client, WHAT, sql).await?;
    }
    let mut attempt = 0;
    loop {
        client.batch_execute("BEGIN").await.map_err(|e| from_pg(WHAT, "BEGIN", e))?;
        let result = decide(&client, statements, &lock, messages, now).await;
        let error = match result {
            Ok(answers) => match client.batch_execute("COMMIT").await {
                Ok(()) => return Ok((client, answers)),
                // Whether the commit landed is unknown; the connection is not reused.
                Err(e) => {
                    drop(Object::take(client));
                    return Err(from_pg("cannot commit accepted messages", "COMMIT", e));
                }
            },
            Err(e) => e,
        };
        // A connection left inside a transaction must never go back to the pool: if the
        // rollback fails, it is closed instead.
        if client.batch_execute("ROLLBACK").await.is_err() {
            drop(Object::take(client));
            return Err(error);
        }
        if attempt < 3 && retryable(&error) {
            attempt += 1;
            tracing::debug!(attempt, "accept batch retried after {error}");
            continue;
        }
        return Err(error);
    }
}

/// Steps 1 to 4 of the module's description, inside the caller's transaction.
async fn decide(
    client: &Object,
    statements: &Statements,
    lock: &str,
    messages: &[&Message],
    now: DateTime<Utc>,
) -> Result<Vec<Accepted>> {
    let mut ids: Vec<&str> = messages.iter().map(|m| m.session_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = statements.query(client, WHAT, lock, &[&ids]).await?;
    let mut sessions: HashMap<String, SessionRow> =
        rows.iter().map(|r| session_row(r).map(|s| (s.id.clone(), s))).collect::<Result<_>>()?;

    // Nonces are claimed for every message whose session is live before the batch; those
    // of messages the batch itself makes too many are released in step 4.
    let mut candidates: Vec<&Message> =
        messages.iter().copied().filter(|m| sessions.get(&m.session_id).is_some_and(|s| s.is_live(now))).collect();
    let mut fresh: HashSet<String> = HashSet::new();
    if !candidates.is_empty() {
        // Nonce order, as the claim batcher: concurrent writers of the same nonces take
        // their row locks in one order.
        candidates.sort_unstable_by(|a, b| a.nonce.cmp(&b.nonce));
        let nonces: Vec<&str> = candidates.iter().map(|m| m.nonce.as_str()).collect();
        let owners: Vec<Option<&str>> = candidates.iter().map(|m| Some(m.session_id.as_str())).collect();
        let expiries: Vec<DateTime<Utc>> = candidates.iter().map(|m| m.expires_at).collect();
        let rows = statements.query(client, WHAT, CLAIM_SQL, &[&nonces, &owners, &expiries, &now]).await?;
        fresh = rows.iter().map(|r| r.try_get::<_, String>(0)).collect::<std::result::Result<_, _>>().map_err(|e| {
            StoreError::new(ErrorKind::Internal, format!("cannot read a claimed nonce: {e}")).with_source(e)
        })?;
    }

    let mut answers = Vec::with_capacity(messages.len());
    let mut counted: Vec<(String, i64)> = Vec::new();
    let mut released: Vec<&str> = Vec::new();
    for m in messages {
        let Some(session) = sessions.get_mut(&m.session_id) else {
            answers.push(Accepted::NotFound);
            continue;
        };
        let claimed = fresh.contains(&m.nonce);
        if !session.is_live(now) {
            if claimed {
                released.push(&m.nonce);
            }
            answers.push(Accepted::NotLive);
        } else if !claimed {
            answers.push(Accepted::Replayed);
        } else {
            session.message_count += 1;
            session.last_activity = now;
            match counted.iter_mut().find(|(id, _)| *id == session.id) {
                Some((_, k)) => *k += 1,
                None => counted.push((session.id.clone(), 1)),
            }
            answers.push(Accepted::Done(session.clone()));
        }
    }
    if !counted.is_empty() || !released.is_empty() {
        let ids: Vec<&str> = counted.iter().map(|(id, _)| id.as_str()).collect();
        let ks: Vec<i64> = counted.iter().map(|(_, k)| *k).collect();
        statements.execute(client, WHAT, FINISH_SQL, &[&released, &ids, &now, &ks]).await?;
    }
    Ok(answers)
}

/// Accepts one message in one statement, so one transaction with no round trips inside.
/// `s` locks the session row if it is live in its latest version (READ COMMITTED re-checks
/// the condition after waiting for a concurrent writer); while it is locked nobody can
/// expire, spend or delete it. The nonce is claimed only for a locked session, and the
/// message counted only for a fresh nonce: both or neither.
pub(crate) async fn accept_one(
    client: &Object,
    statements: &Statements,
    message: &Message,
    now: DateTime<Utc>,
) -> Result<Accepted> {
    let sql = format!(
        "WITH s AS (SELECT id FROM sessions WHERE id = $1 AND {} FOR UPDATE), \
         n AS (INSERT INTO nonces (nonce, session_id, used_at, expires_at) SELECT $2, s.id, $3, $4 FROM s \
               ON CONFLICT (nonce) DO UPDATE SET session_id = EXCLUDED.session_id, used_at = EXCLUDED.used_at, expires_at = EXCLUDED.expires_at \
               WHERE nonces.expires_at <= EXCLUDED.used_at RETURNING nonce), \
         t AS (UPDATE sessions SET message_count = message_count + 1, last_activity = $3 FROM n WHERE sessions.id = $1 \
               RETURNING {SESSION_COLUMNS}) \
         SELECT t.*, EXISTS (SELECT 1 FROM s) FROM (VALUES (1)) AS one LEFT JOIN t ON true",
        live(3)
    );
    let (session_id, nonce) = (&message.session_id, &message.nonce);
    let rows = statements
        .query(client, "cannot accept message", &sql, &[session_id, nonce, &now, &message.expires_at])
        .await?;
    let Some(row) = rows.first() else {
        return Err(StoreError::new(ErrorKind::Internal, "accepting a message returned no row"));
    };
    let found: Option<String> = row.try_get(0).map_err(|e| {
        StoreError::new(ErrorKind::Internal, format!("cannot read an accepted session: {e}")).with_source(e)
    })?;
    if found.is_some() {
        return Ok(Accepted::Done(session_row(row)?));
    }
    let locked: bool = row.try_get(11).map_err(|e| {
        StoreError::new(ErrorKind::Internal, format!("cannot read an accept's answer: {e}")).with_source(e)
    })?;
    if locked {
        return Ok(Accepted::Replayed);
    }
    let exists = !statements
        .query(client, "cannot read session", "SELECT 1 FROM sessions WHERE id = $1", &[session_id])
        .await?
        .is_empty();
    Ok(if exists { Accepted::NotLive } else { Accepted::NotFound })
}
