//! PostgreSQL introspection of the kinds in [`crate::objects`]: owners, grants, default
//! privileges, row-level security, policies, comments, relation options, identity
//! sequences, and a count of what the model does not describe. One query per kind; only
//! catalog columns that exist from PostgreSQL 13 on.

use tokio_postgres::Client;

use super::postgres::{not_extension_member, q, user_function, USER_NAMESPACES};
use crate::model::Schema;
use crate::objects::*;
use crate::Error;

/// The role that owns the current database, which owns a snapshot's scratch database too.
const DB_OWNER: &str = "(SELECT datdba FROM pg_database WHERE datname = current_database())";

/// A role OID as the model names it (see [`crate::objects`]).
fn role(oid: &str) -> String {
    format!(
        "CASE WHEN {oid} = 0 THEN 'PUBLIC' WHEN {oid} = {DB_OWNER} THEN '(database owner)' ELSE pg_get_userbyid({oid})::text END"
    )
}

/// `schema.name`, unquoted, as findings name objects.
const REL_NAME: &str = "n.nspname || '.' || c.relname";
/// The same, quoted, as DDL takes it.
const REL_TARGET: &str = "quote_ident(n.nspname) || '.' || quote_ident(c.relname)";
/// A function as `ALTER FUNCTION` and `GRANT … ON FUNCTION` take it.
const FN_TARGET: &str =
    "quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')'";

const RELKIND_NAME: &str = "CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view' \
     WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' ELSE 'foreign table' END";
const PROKIND_NAME: &str = "CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END";

/// The conditions that pick the user's own objects of each class; `relations` takes the
/// excluded bookkeeping tables as `$1`.
struct Filters {
    relations: String,
    functions: String,
    types: String,
    schemas: String,
}

impl Filters {
    fn new() -> Filters {
        Filters {
            // Identity sequences belong to their column; their owner and grants follow the table.
            relations: format!(
                "c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_NAMESPACES} AND {} AND NOT (c.relname = ANY($1)) \
                 AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i'))",
                not_extension_member("pg_class", "c.oid")
            ),
            functions: format!("{USER_NAMESPACES} AND {}", user_function("p")),
            // Enum, domain, range and free-standing composite types; array and row types follow.
            types: format!(
                "t.typtype IN ('e', 'd', 'r', 'c') AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') \
                 AND {USER_NAMESPACES} AND {}",
                not_extension_member("pg_type", "t.oid")
            ),
            // The public schema's owner and ACL changed with PostgreSQL 15, so they are not compared.
            schemas: format!(
                "{USER_NAMESPACES} AND n.nspname <> 'public' AND {}",
                not_extension_member("pg_namespace", "n.oid")
            ),
        }
    }
}

/// Reads the kinds of `objects.rs` into `schema`, a query per kind, and counts what is not
/// modelled.
pub async fn introspect(client: &Client, schema: &mut Schema, excluded: &[&str]) -> Result<(), Error> {
    let excluded: Vec<String> = excluded.iter().map(|s| s.to_string()).collect();
    let filters = Filters::new();
    schema.owners = owners(client, &filters, &excluded).await?;
    schema.grants = grants(client, &filters, &excluded).await?;
    schema.default_privileges = default_privileges(client).await?;
    schema.row_security = row_security(client, &filters, &excluded).await?;
    schema.policies = policies(client, &filters, &excluded).await?;
    schema.comments = comments(client, &excluded).await?;
    schema.relations = relations(client, &filters, &excluded).await?;
    schema.identities = identities(client, &excluded).await?;
    schema.not_modelled = not_modelled(client).await?;
    schema.recorded = RECORDED_KINDS.iter().map(|k| k.to_string()).collect();
    Ok(())
}

async fn owners(client: &Client, f: &Filters, excluded: &[String]) -> Result<Vec<Owner>, Error> {
    let (user_relations, user_functions, user_types, user_schemas) = (&f.relations, &f.functions, &f.types, &f.schemas);
    let sql = format!(
        "SELECT kind, object, CASE WHEN owner = {DB_OWNER} THEN '(database owner)' ELSE pg_get_userbyid(owner)::text END, target FROM ( \
           SELECT {RELKIND_NAME} AS kind, {REL_NAME} AS object, c.relowner AS owner, {REL_TARGET} AS target \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_relations} \
           UNION ALL SELECT {PROKIND_NAME}, n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', p.proowner, {FN_TARGET} \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {user_functions} \
           UNION ALL SELECT 'type', n.nspname || '.' || t.typname, t.typowner, quote_ident(n.nspname) || '.' || quote_ident(t.typname) \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {user_types} \
           UNION ALL SELECT 'schema', n.nspname, n.nspowner, quote_ident(n.nspname) FROM pg_namespace n WHERE {user_schemas} \
         ) o"
    );
    let rows = client.query(&sql, &[&excluded]).await.map_err(|e| q(e, "owners"))?;
    Ok(rows.iter().map(|r| Owner { kind: r.get(0), object: r.get(1), owner: r.get(2), target: r.get(3) }).collect())
}

/// Every object's ACL, or the default one when it has none, entry by entry. The owner's
/// own entry is left out when it is the default (it grows with new privilege kinds, e.g.
/// MAINTAIN in PostgreSQL 17); every other entry, PUBLIC's defaults included, is kept so
/// that a REVOKE shows.
async fn grants(client: &Client, f: &Filters, excluded: &[String]) -> Result<Vec<Grant>, Error> {
    let (user_relations, user_functions, user_types, user_schemas) = (&f.relations, &f.functions, &f.types, &f.schemas);
    let owner_default = |kind: &str, owner: &str| {
        format!(
            "ARRAY(SELECT d.privilege_type FROM aclexplode(acldefault({kind}, {owner})) d WHERE d.grantee = {owner})"
        )
    };
    let rel_acl_kind = "(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\"";
    let sql = format!(
        "WITH objs AS ( \
           SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE {RELKIND_NAME} END AS kind, {REL_NAME} AS object, c.relowner AS owner, \
                  coalesce(c.relacl, acldefault({rel_acl_kind}, c.relowner)) AS acl, {} AS def, {REL_TARGET} AS target, NULL::text AS col \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_relations} \
           UNION ALL SELECT 'column', {REL_NAME} || '.' || a.attname, c.relowner, a.attacl, ARRAY[]::text[], {REL_TARGET}, quote_ident(a.attname) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND {user_relations} \
           UNION ALL SELECT {PROKIND_NAME}, n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', p.proowner, \
                  coalesce(p.proacl, acldefault('f', p.proowner)), {}, {FN_TARGET}, NULL \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {user_functions} \
           UNION ALL SELECT 'type', n.nspname || '.' || t.typname, t.typowner, coalesce(t.typacl, acldefault('T', t.typowner)), {}, quote_ident(n.nspname) || '.' || quote_ident(t.typname), NULL \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {user_types} \
           UNION ALL SELECT 'schema', n.nspname, n.nspowner, coalesce(n.nspacl, acldefault('n', n.nspowner)), {}, quote_ident(n.nspname), NULL \
             FROM pg_namespace n WHERE {user_schemas} \
         ) \
         SELECT o.kind, o.object, CASE WHEN x.grantee = o.owner THEN '(owner)' ELSE {} END, \
                array_agg(x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END), \
                x.grantee = o.owner, o.def, o.target, o.col \
         FROM objs o, aclexplode(o.acl) x \
         GROUP BY o.kind, o.object, o.owner, x.grantee, o.def, o.target, o.col",
        owner_default(rel_acl_kind, "c.relowner"),
        owner_default("'f'", "p.proowner"),
        owner_default("'T'", "t.typowner"),
        owner_default("'n'", "n.nspowner"),
        role("x.grantee")
    );
    let rows = client.query(&sql, &[&excluded]).await.map_err(|e| q(e, "grants"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let mut privileges: Vec<String> = r.get(3);
            privileges.sort();
            let mut default: Vec<String> = r.get(5);
            default.sort();
            if r.get::<_, bool>(4) && privileges == default {
                return None;
            }
            Some(Grant {
                kind: r.get(0),
                object: r.get(1),
                grantee: r.get(2),
                privileges,
                target: r.get(6),
                column: r.get(7),
            })
        })
        .collect())
}

async fn default_privileges(client: &Client) -> Result<Vec<DefaultPrivilege>, Error> {
    let sql = format!(
        "SELECT {}, coalesce(n.nspname, ''), \
                CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions' \
                     WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE d.defaclobjtype::text END, \
                CASE WHEN x.grantee = d.defaclrole THEN '(owner)' ELSE {} END, \
                array_agg(x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END ORDER BY x.privilege_type) \
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) x \
         GROUP BY 1, 2, 3, 4",
        role("d.defaclrole"),
        role("x.grantee")
    );
    let rows = client.query(&sql, &[]).await.map_err(|e| q(e, "default privileges"))?;
    // The creating role's own entry (ALTER DEFAULT PRIVILEGES without IN SCHEMA stores the
    // whole ACL) is left out, like an owner's.
    Ok(rows
        .iter()
        .filter(|r| r.get::<_, String>(3) != "(owner)")
        .map(|r| DefaultPrivilege {
            role: r.get(0),
            schema: r.get(1),
            objects: r.get(2),
            grantee: r.get(3),
            privileges: sorted(r.get(4)),
        })
        .collect())
}

async fn row_security(client: &Client, f: &Filters, excluded: &[String]) -> Result<Vec<RowSecurity>, Error> {
    let user_relations = &f.relations;
    let sql = format!(
        "SELECT n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND (c.relrowsecurity OR c.relforcerowsecurity) AND {user_relations}"
    );
    let rows = client.query(&sql, &[&excluded]).await.map_err(|e| q(e, "row-level security"))?;
    Ok(rows
        .iter()
        .map(|r| RowSecurity { schema: r.get(0), table: r.get(1), enabled: r.get(2), forced: r.get(3) })
        .collect())
}

async fn policies(client: &Client, f: &Filters, excluded: &[String]) -> Result<Vec<Policy>, Error> {
    let user_relations = &f.relations;
    let sql = format!(
        "SELECT n.nspname, c.relname, p.polname, \
                CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END, \
                p.polpermissive, ARRAY(SELECT {} FROM unnest(p.polroles) r ORDER BY 1), \
                pg_get_expr(p.polqual, p.polrelid, true), pg_get_expr(p.polwithcheck, p.polrelid, true) \
         FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE {user_relations}",
        role("r")
    );
    let rows = client.query(&sql, &[&excluded]).await.map_err(|e| q(e, "policies"))?;
    Ok(rows
        .iter()
        .map(|r| Policy {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
            command: r.get(3),
            permissive: r.get(4),
            roles: sorted(r.get(5)),
            using: r.get(6),
            with_check: r.get(7),
        })
        .collect())
}

/// Comments on the database's own objects: not on built-in ones, nor on extensions and
/// what they bring, nor on bookkeeping tables.
async fn comments(client: &Client, excluded: &[String]) -> Result<Vec<Comment>, Error> {
    let rows = client
        .query(
            "SELECT o.type, o.identity, d.description FROM pg_description d, \
                    LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o \
             WHERE d.objoid >= 16384 AND d.classoid <> 'pg_extension'::regclass \
               AND coalesce(o.schema, '') NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
               AND coalesce(o.schema, '') NOT LIKE 'pg_temp_%' \
               AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e') \
               AND NOT (d.classoid = 'pg_class'::regclass AND (SELECT relname FROM pg_class WHERE oid = d.objoid) = ANY($1))",
            &[&excluded],
        )
        .await
        .map_err(|e| q(e, "comments"))?;
    Ok(rows.iter().map(|r| Comment { kind: r.get(0), object: r.get(1), text: r.get(2) }).collect())
}

async fn relations(client: &Client, f: &Filters, excluded: &[String]) -> Result<Vec<Relation>, Error> {
    let user_relations = &f.relations;
    let sql = format!(
        "SELECT n.nspname, c.relname, CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                (SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) FROM pg_inherits i \
                   JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                 WHERE i.inhrelid = c.oid AND c.relispartition), \
                CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
                ARRAY(SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) FROM pg_inherits i \
                   JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                 WHERE i.inhrelid = c.oid AND NOT c.relispartition ORDER BY i.inhseqno), \
                c.relpersistence = 'u', coalesce(c.reloptions, '{{}}') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm') AND {user_relations}"
    );
    let rows = client.query(&sql, &[&excluded]).await.map_err(|e| q(e, "relations"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut options: Vec<String> = r.get(7);
            options.sort();
            Relation {
                schema: r.get(0),
                name: r.get(1),
                partition_key: r.get(2),
                partition_of: r.get(3),
                bound: r.get(4),
                inherits: r.get(5),
                unlogged: r.get(6),
                options,
            }
        })
        .filter(|r| r != &Relation { schema: r.schema.clone(), name: r.name.clone(), ..Relation::default() })
        .collect())
}

async fn identities(client: &Client, excluded: &[String]) -> Result<Vec<Identity>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, t.relname, a.attname, c.relname, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle \
                 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid \
                 JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i' AND d.refclassid = 'pg_class'::regclass \
                 JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace n ON n.oid = t.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
                 WHERE {USER_NAMESPACES} AND NOT (t.relname = ANY($1)) AND NOT t.relispartition"
            ),
            &[&excluded],
        )
        .await
        .map_err(|e| q(e, "identity sequences"))?;
    Ok(rows
        .iter()
        .map(|r| Identity {
            schema: r.get(0),
            table: r.get(1),
            column: r.get(2),
            sequence: r.get(3),
            start: r.get(4),
            increment: r.get(5),
            min: r.get(6),
            max: r.get(7),
            cache: r.get(8),
            cycle: r.get(9),
        })
        .collect())
}

/// How many objects of each kind the model does not describe the database holds.
async fn not_modelled(client: &Client) -> Result<std::collections::BTreeMap<String, i64>, Error> {
    let ext = |class: &str, oid: &str| not_extension_member(class, oid);
    let counts = [
        (
            "rule",
            format!(
                "SELECT count(*) FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE r.rulename <> '_RETURN' AND {USER_NAMESPACES} AND {}",
                ext("pg_rewrite", "r.oid")
            ),
        ),
        (
            "statistics object",
            format!(
                "SELECT count(*) FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE {USER_NAMESPACES} AND {}",
                ext("pg_statistic_ext", "s.oid")
            ),
        ),
        (
            "aggregate",
            format!(
                "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind = 'a' AND {USER_NAMESPACES} AND {}",
                ext("pg_proc", "p.oid")
            ),
        ),
        (
            "foreign table",
            format!(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'f' AND {USER_NAMESPACES} AND {}",
                ext("pg_class", "c.oid")
            ),
        ),
        (
            "typed table",
            format!(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.reloftype <> 0 AND c.relkind IN ('r', 'p') AND {USER_NAMESPACES}"
            ),
        ),
        (
            "index on a materialized view",
            format!(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'm' AND {USER_NAMESPACES} AND {}",
                ext("pg_class", "c.oid")
            ),
        ),
        (
            "index or constraint of a partition alone",
            format!(
                "SELECT (SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relispartition AND {USER_NAMESPACES} AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)) \
                 + (SELECT count(*) FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relispartition AND k.conislocal AND k.conparentid = 0 AND k.contype <> 'n' AND {USER_NAMESPACES})"
            ),
        ),
        (
            "operator",
            format!(
                "SELECT count(*) FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {USER_NAMESPACES} AND {}",
                ext("pg_operator", "o.oid")
            ),
        ),
        (
            "text search configuration",
            format!(
                "SELECT count(*) FROM pg_ts_config t JOIN pg_namespace n ON n.oid = t.cfgnamespace WHERE {USER_NAMESPACES} AND {}",
                ext("pg_ts_config", "t.oid")
            ),
        ),
        ("publication", "SELECT count(*) FROM pg_publication".to_string()),
        (
            "event trigger",
            format!("SELECT count(*) FROM pg_event_trigger e WHERE {}", ext("pg_event_trigger", "e.oid")),
        ),
        (
            "cast",
            format!("SELECT count(*) FROM pg_cast k WHERE k.oid >= 16384 AND {} AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_cast'::regclass AND d.objid = k.oid AND d.deptype = 'i')", ext("pg_cast", "k.oid")),
        ),
    ];
    let sql: Vec<String> =
        counts.iter().map(|(kind, count)| format!("SELECT '{kind}'::text, ({count})::bigint")).collect();
    let rows = client.query(&sql.join(" UNION ALL "), &[]).await.map_err(|e| q(e, "unmodelled objects"))?;
    Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))).filter(|(_, n)| *n > 0).collect())
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}
