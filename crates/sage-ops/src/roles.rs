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
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
        let config: RolesConfig = toml::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: {}", path.display(), e.to_string().trim())))?;
        if let Some(bad) = config.role.iter().find(|r| r.name.is_empty()) {
            return Err(Error::invalid(format!("{}: a role has an empty name ({bad:?})", path.display())));
        }
        // A role name travels as a string literal inside a dollar-quoted block: a `$` could
        // end that block early, so such names are refused rather than escaped.
        if let Some(bad) = config.role.iter().find(|r| r.name.contains('$') || r.name.chars().any(char::is_control)) {
            return Err(Error::invalid(format!(
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
                .map_err(|e| Error::invalid(format!("cannot read the owners of schema {schema}: {}", sage_conn::describe_pg_error(&e, None))))?;
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

/// PostgreSQL's predefined roles that not every supported version has, with the major
/// version that brought each.
const PREDEFINED_SINCE: [(&str, u32); 8] = [
    ("pg_read_all_data", 14),
    ("pg_write_all_data", 14),
    ("pg_database_owner", 14),
    ("pg_checkpoint", 15),
    ("pg_use_reserved_connections", 16),
    ("pg_create_subscription", 16),
    ("pg_maintain", 17),
    ("pg_signal_autovacuum_worker", 18),
];

/// What the roles become on this server: before 14, which lacks `pg_read_all_data`, a role
/// that is to be a member of it reads every schema instead (`select_in_schemas` gets every
/// user schema: SELECT on their tables and sequences, and on those created in them later).
/// Any other predefined role the server lacks is refused before anything changes. Returns
/// the config to apply and a note for the operator per replaced membership.
async fn for_server(
    client: &impl tokio_postgres::GenericClient,
    config: &RolesConfig,
) -> Result<(RolesConfig, Vec<String>), Error> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| Error::database("cannot read the server version", e))?;
    let major = u32::try_from(row.get::<_, i32>(0) / 10000).unwrap_or(0);
    let mut config = config.clone();
    let mut notes = Vec::new();
    for role in &mut config.role {
        if let Some((group, since)) =
            role.member_of.iter().find_map(|g| PREDEFINED_SINCE.iter().find(|(p, since)| p == g && major < *since))
        {
            if *group != "pg_read_all_data" {
                return Err(Error::invalid(format!(
                    "role {:?}: {group} exists from PostgreSQL {since} on and this server is PostgreSQL {major}; \
                     remove it from member_of or upgrade the server; nothing was changed",
                    role.name
                )));
            }
        }
        if major < 14 && role.member_of.iter().any(|g| g == "pg_read_all_data") {
            let schemas: Vec<String> = client
                .query(
                    "SELECT n.nspname::text FROM pg_namespace n WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                     AND n.nspname !~ '^pg_' ORDER BY 1",
                    &[],
                )
                .await
                .map_err(|e| Error::database("cannot list schemas", e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            role.member_of.retain(|g| g != "pg_read_all_data");
            for schema in &schemas {
                if !role.select_in_schemas.contains(schema) {
                    role.select_in_schemas.push(schema.clone());
                }
            }
            notes.push(format!(
                "PostgreSQL {major} has no pg_read_all_data (it came in 14): {} gets SELECT on the tables and sequences of \
                 every schema instead ({}), including tables created there later; run roles apply again after adding a schema",
                role.name,
                schemas.join(", ")
            ));
        }
    }
    Ok((config, notes))
}

/// What `apply` would do on this database, for a dry run: every statement, and the notes
/// on memberships this server's version replaces.
pub async fn plan(pg: &PgSettings, config: &RolesConfig) -> Result<(Vec<String>, Vec<String>), Error> {
    let client = sage_conn::connect(pg).await?;
    let (config, notes) = for_server(&client, config).await?;
    let mut statements = config.statements();
    statements.extend(owner_defaults(&client, &config).await?);
    Ok((statements, notes))
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub statements: usize,
    /// Memberships this server's version lacks and what was granted instead.
    pub notes: Vec<String>,
}

/// Applies every statement in one transaction: either all roles end up as configured, or
/// nothing changes.
pub async fn apply(pg: &PgSettings, config: &RolesConfig) -> Result<Applied, Error> {
    let mut client = sage_conn::connect(pg).await?;
    let tx = client.transaction().await.map_err(|e| Error::database("cannot begin", e))?;
    let (config, notes) = for_server(&tx, config).await?;
    let mut statements = config.statements();
    statements.extend(owner_defaults(&tx, &config).await?);
    for sql in &statements {
        tx.batch_execute(sql).await.map_err(|e| {
            let detail = sage_conn::describe_pg_error(&e, Some(sql));
            Error::invalid(format!("applying roles failed at `{sql}`: {detail}; nothing was changed"))
        })?;
    }
    tx.commit().await.map_err(|e| Error::database("cannot commit", e))?;
    Ok(Applied { statements: statements.len(), notes })
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
