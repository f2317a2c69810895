//! How the PostgreSQL backend sends its statements. On a connection of its own to the
//! server, each statement is prepared once per connection under a name and reused, which
//! saves the server parsing and planning it again. Through a pooler in transaction or
//! statement mode a named statement would not survive: the next transaction may run in
//! another server session, where the name is unknown or, worse, names another client's
//! statement. There every statement is sent unnamed, parsed and bound in the same round
//! trip, with the parameter types the server described for it once per SQL text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sage_conn::deadpool_postgres::Object;
use sage_conn::PgSettings;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::error::{from_pg, ErrorKind, Result, StoreError};

pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub(crate) enum Statements {
    /// Named statements, prepared once per connection (a direct connection).
    Prepared,
    /// Unnamed statements with the parameter types learned once per SQL text.
    Unnamed { types: Mutex<HashMap<String, Arc<[Type]>>> },
}

impl Statements {
    pub(crate) fn new(settings: &PgSettings) -> Statements {
        if settings.pooler.shares_sessions() {
            Statements::Unnamed { types: Mutex::default() }
        } else {
            Statements::Prepared
        }
    }

    pub(crate) fn named(&self) -> bool {
        matches!(self, Statements::Prepared)
    }

    pub(crate) async fn query(&self, client: &Object, what: &str, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        match self {
            Statements::Prepared => {
                let statement = client.prepare_cached(sql).await.map_err(|e| from_pg(what, sql, e))?;
                client.query(&statement, params).await.map_err(|e| from_pg(what, sql, e))
            }
            Statements::Unnamed { .. } => {
                let types = self.types(client, what, sql).await?;
                let typed = typed(params, &types);
                client.query_typed(sql, &typed).await.map_err(|e| from_pg(what, sql, e))
            }
        }
    }

    pub(crate) async fn execute(&self, client: &Object, what: &str, sql: &str, params: Params<'_>) -> Result<u64> {
        match self {
            Statements::Prepared => {
                let statement = client.prepare_cached(sql).await.map_err(|e| from_pg(what, sql, e))?;
                client.execute(&statement, params).await.map_err(|e| from_pg(what, sql, e))
            }
            Statements::Unnamed { .. } => {
                let types = self.types(client, what, sql).await?;
                let typed = typed(params, &types);
                client.execute_typed(sql, &typed).await.map_err(|e| from_pg(what, sql, e))
            }
        }
    }

    /// Makes sure `sql` can be sent inside a transaction: through a pooler its parameter
    /// types are learned (in a transaction of their own) before the caller opens one. A
    /// prepared-statement store prepares on first use, which is fine inside a transaction.
    pub(crate) async fn learn(&self, client: &Object, what: &str, sql: &str) -> Result<()> {
        match self {
            Statements::Prepared => Ok(()),
            Statements::Unnamed { .. } => self.types(client, what, sql).await.map(drop),
        }
    }

    /// The parameter types of `sql`, asked of the server the first time, on the caller's own
    /// connection: taking a second one from the pool while holding the first would let
    /// many callers with a new statement hold every connection and wait for each other. The
    /// statement is described inside a transaction, which a pooler keeps in one server
    /// session, and closed before it ends, so no name is left behind in a session others
    /// will use.
    async fn types(&self, client: &Object, what: &str, sql: &str) -> Result<Arc<[Type]>> {
        let Statements::Unnamed { types, .. } = self else {
            return Err(StoreError::new(ErrorKind::Internal, "parameter types asked of a prepared-statement store"));
        };
        let lock = || types.lock().map_err(|_| StoreError::new(ErrorKind::Internal, "statement cache lock poisoned"));
        if let Some(known) = lock()?.get(sql) {
            return Ok(known.clone());
        }
        client.batch_execute("BEGIN").await.map_err(|e| from_pg(what, "BEGIN", e))?;
        let described = client.prepare(sql).await.map_err(|e| from_pg(what, sql, e));
        // Dropping the statement sends its Close ahead of the transaction's end below.
        let params: Result<Arc<[Type]>> = described.map(|s| s.params().into());
        let end = if params.is_ok() { "COMMIT" } else { "ROLLBACK" };
        // A connection whose transaction cannot be ended is broken; the pool's recycling
        // check drops a closed connection instead of handing it out again.
        client.batch_execute(end).await.map_err(|e| from_pg(what, end, e))?;
        let params = params?;
        lock()?.insert(sql.to_string(), params.clone());
        Ok(params)
    }
}

fn typed<'a>(params: Params<'a>, types: &[Type]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().zip(types.iter()).map(|(p, t)| (*p, t.clone())).collect()
}
