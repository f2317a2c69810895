//! A database's whole contents as data, so tests can say "exactly as before".

use std::collections::BTreeMap;

use sage_conn::{quote_ident, PgSettings};

use crate::Error;

/// Every user table of the database, `schema.table`, with a digest of all its rows: two
/// calls return the same map exactly when no table was added, dropped or changed.
pub async fn pg_contents(pg: &PgSettings) -> Result<BTreeMap<String, String>, Error> {
    let client = sage_conn::connect(pg).await.map_err(|e| Error::Database(e.to_string()))?;
    let q = |e: tokio_postgres::Error| Error::Database(format!("cannot read the contents: {e}"));
    let tables = client
        .query(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(q)?;
    let mut out = BTreeMap::new();
    for t in tables {
        let (s, n): (String, String) = (t.get(0), t.get(1));
        let sql = format!(
            "SELECT coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {}.{} x",
            quote_ident(&s),
            quote_ident(&n)
        );
        out.insert(format!("{s}.{n}"), client.query_one(&sql, &[]).await.map_err(q)?.get(0));
    }
    Ok(out)
}
