//! Where a PostgreSQL server stands in its replication topology, and what that means for
//! replay protection: a nonce claim acknowledged by a primary whose standbys receive it
//! asynchronously can be lost in a failover, and the nonce then accepted a second time.

use serde::Serialize;

use crate::Error;

/// One standby as its primary sees it (`pg_stat_replication`).
#[derive(Debug, Clone, Serialize)]
pub struct Standby {
    pub name: String,
    /// `streaming`, `catchup`, `startup`, …
    pub state: String,
    /// `async`, `sync`, `potential` or `quorum`.
    pub sync_state: String,
    /// How far its replay is behind, in seconds, when the server reports it.
    pub replay_lag_seconds: Option<f64>,
    /// WAL not yet replayed there, in bytes.
    pub replay_lag_bytes: Option<i64>,
}

/// The server's role and replication settings.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// `primary` or `standby`.
    pub role: String,
    pub standbys: Vec<Standby>,
    pub synchronous_standby_names: String,
    pub synchronous_commit: String,
    /// On a standby: seconds since the last replayed transaction committed on the primary.
    pub standby_replay_delay_seconds: Option<f64>,
    /// What an operator should know, each a full sentence with the fix.
    pub warnings: Vec<String>,
}

/// Reads the topology; works on PostgreSQL 10 and later. Without the `pg_monitor` role a
/// primary shows its standbys without their names and lag.
pub async fn inspect(client: &tokio_postgres::Client) -> Result<Topology, Error> {
    let q = |e: tokio_postgres::Error| Error::database("cannot read the replication state", e);
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('synchronous_standby_names'), \
                    current_setting('synchronous_commit'), \
                    CASE WHEN pg_is_in_recovery() \
                         THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END",
            &[],
        )
        .await
        .map_err(q)?;
    let in_recovery: bool = row.get(0);
    let mut topology = Topology {
        role: if in_recovery { "standby" } else { "primary" }.to_string(),
        standbys: Vec::new(),
        synchronous_standby_names: row.get(1),
        synchronous_commit: row.get(2),
        standby_replay_delay_seconds: row.get(3),
        warnings: Vec::new(),
    };
    if !in_recovery {
        let rows = client
            .query(
                "SELECT coalesce(application_name, ''), coalesce(state, 'unknown'), coalesce(sync_state, 'unknown'), \
                        extract(epoch FROM replay_lag)::float8, \
                        pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::int8 \
                 FROM pg_stat_replication ORDER BY 1",
                &[],
            )
            .await
            .map_err(q)?;
        topology.standbys = rows
            .iter()
            .map(|r| Standby {
                name: r.get(0),
                state: r.get(1),
                sync_state: r.get(2),
                replay_lag_seconds: r.get(3),
                replay_lag_bytes: r.get(4),
            })
            .collect();
    }
    topology.warnings = warnings(&topology);
    Ok(topology)
}

/// The replay-protection consequences of a topology.
fn warnings(t: &Topology) -> Vec<String> {
    let mut out = Vec::new();
    if t.role != "primary" {
        out.push(
            "this server is a standby: it cannot claim nonces or write sessions; point writers at the primary \
             (a multi-host URL with target_session_attrs=read-write finds it)"
                .to_string(),
        );
        return out;
    }
    if t.standbys.is_empty() {
        if !t.synchronous_standby_names.trim().is_empty() {
            out.push(format!(
                "synchronous_standby_names is {:?} but no standby is connected: every commit, nonce claims \
                 included, waits until one is; start the standby or clear the setting",
                t.synchronous_standby_names
            ));
        }
        return out;
    }
    let waits = !matches!(t.synchronous_commit.as_str(), "off" | "local");
    let synchronous = t.standbys.iter().any(|s| matches!(s.sync_state.as_str(), "sync" | "quorum"));
    if t.synchronous_standby_names.trim().is_empty() || !synchronous {
        out.push(format!(
            "replication to {} standby(s) is asynchronous: nonce claims are acknowledged before any standby has \
             them, so a failover can lose the last moments of claims and those nonces can then be replayed; \
             set synchronous_standby_names (e.g. 'ANY 1 (…)') with synchronous_commit = on or remote_apply",
            t.standbys.len()
        ));
    } else if !waits {
        out.push(format!(
            "synchronous_commit = {} means commits do not wait for the synchronous standby: nonce claims \
             acknowledged just before a failover can be lost and replayed; set synchronous_commit = on or \
             remote_apply",
            t.synchronous_commit
        ));
    }
    out
}
