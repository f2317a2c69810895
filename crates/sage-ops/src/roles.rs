//! `roles apply`: least-privilege roles from a config file, applied in one transaction and
//! idempotently. Grants cover the tables that exist and, through default privileges, the
//! tables created later by the applying role and by every role that owns the schema or a
//! table in it (the migration owner): default privileges belong to the role that creates a
//! table, so a superuser's own defaults would not cover tables the migration owner creates.

use std::path::Path;

use sage_conn::{quote_ident, PgSettings};
use serde::{Deserialize, Serialize};

use crate::Error;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    pub name: String,
    /// Schemas whose tables and sequences the role may read.
    #[serde(default)]
    pub select_in_schemas: Vec<String>,
    /// Roles this role becomes a member of (e.g. `pg_read_all_data`).
    #[serde(default)]
    pub member_of: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    #[serde(default)]
    pub role: Vec<RoleSpec>,
}

impl RolesConfig {
    pub fn load(path: &Path) -> Result<RolesConfig, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::new(format!("cannot read {}: {e}", path.display())))?;
        let config: RolesConfig =
            toml::from_str(&text).map_err(|e| Error::new(format!("{}: {}", path.display(), e.to_string().trim())))?;
        if let Some(bad) = config.role.iter().find(|r| r.name.is_empty()) {
            return Err(Error::new(format!("{}: a role has an empty name ({bad:?})", path.display())));
        }
        // A role name travels as a string literal inside a dollar-quoted block: a `$` could
        // end that block early, so such names are refused rather than escaped.
        if let Some(bad) = config.role.iter().find(|r| r.name.contains('$') || r.name.chars().any(char::is_control)) {
            return Err(Error::new(format!(
                "{}: role name {:?} contains `$` or a control character; use letters, digits and underscores",
                path.display(),
                bad.name
            )));
        }
        Ok(config)
    }

    /// The statements that make the roles so; identifiers are quoted, no values are spliced.
    pub fn statements(&self) -> Vec<String> {
        let mut out = Vec::new();
        for role in &self.role {
            let r = quote_ident(&role.name);
            // CREATE ROLE has no IF NOT EXISTS; the DO block makes it idempotent and takes the
            // name as data through format().
            out.push(format!(
                "DO $sage$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {lit}) THEN EXECUTE format('CREATE ROLE %I NOLOGIN', {lit}); END IF; END $sage$",
                lit = literal(&role.name)
            ));
            out.push(format!(
                "DO $sage$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), {}); END $sage$",
                literal(&role.name)
            ));
            for schema in &role.select_in_schemas {
                let s = quote_ident(schema);
                out.push(format!("GRANT USAGE ON SCHEMA {s} TO {r}"));
                out.push(format!("GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}"));
                out.push(format!("GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}"));
                out.push(format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}"));
                out.push(format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON SEQUENCES TO {r}"));
            }
            for group in &role.member_of {
                out.push(format!("GRANT {} TO {r}", quote_ident(group)));
            }
        }
        out
    }
}

/// A string literal for a role name inside a DO block's dynamic SQL.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The `ALTER DEFAULT PRIVILEGES FOR ROLE owner` statements for the owners of each schema a
/// role reads and of the tables already in it. Owners come from the catalog (schema names
/// are bound as values), and only roles the current user may act for are included.
async fn owner_defaults(
    client: &impl tokio_postgres::GenericClient,
    config: &RolesConfig,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for role in &config.role {
        let r = quote_ident(&role.name);
        for schema in &role.select_in_schemas {
            let rows = client
                .query(
                    "SELECT DISTINCT o.rolname::text FROM pg_roles o \
                     WHERE o.rolname <> current_user AND o.rolname !~ '^pg_' AND pg_has_role(o.oid, 'MEMBER') AND o.oid IN ( \
                        SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = $1 \
                        UNION SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')) \
                     ORDER BY 1",
                    &[schema],
                )
                .await
                .map_err(|e| Error::new(format!("cannot read the owners of schema {schema}: {}", sage_conn::describe_pg_error(&e, None))))?;
            let s = quote_ident(schema);
            for row in rows {
                let owner = quote_ident(row.get::<_, &str>(0));
                out.push(format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}"
                ));
                out.push(format!(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT SELECT ON SEQUENCES TO {r}"
                ));
            }
        }
    }
    Ok(out)
}

/// Every statement `apply` would run on this database, for a dry run.
pub async fn plan(pg: &PgSettings, config: &RolesConfig) -> Result<Vec<String>, Error> {
    let client = sage_conn::connect(pg).await?;
    let mut statements = config.statements();
    statements.extend(owner_defaults(&client, config).await?);
    Ok(statements)
}

/// Applies every statement in one transaction: either all roles end up as configured, or
/// nothing changes.
pub async fn apply(pg: &PgSettings, config: &RolesConfig) -> Result<usize, Error> {
    let mut client = sage_conn::connect(pg).await?;
    let tx = client.transaction().await.map_err(|e| Error::with("cannot begin", e))?;
    let mut statements = config.statements();
    statements.extend(owner_defaults(&tx, config).await?);
    for sql in &statements {
        tx.batch_execute(sql).await.map_err(|e| {
            let detail = sage_conn::describe_pg_error(&e, Some(sql));
            Error::new(format!("applying roles failed at `{sql}`: {detail}; nothing was changed"))
        })?;
    }
    tx.commit().await.map_err(|e| Error::with("cannot commit", e))?;
    Ok(statements.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_name_that_could_end_the_dollar_quoted_block_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roles.toml");
        for name in ["x$sage$; DROP TABLE sessions; --", "bad\nname"] {
            std::fs::write(&path, format!("[[role]]\nname = {}\n", toml::Value::String(name.into()))).unwrap();
            let err = RolesConfig::load(&path).unwrap_err().to_string();
            assert!(err.contains("roles.toml") && err.contains("role name"), "{err}");
        }
        std::fs::write(&path, "[[role]]\nname = \"app_reader\"\n").unwrap();
        assert!(RolesConfig::load(&path).is_ok());
    }
}
