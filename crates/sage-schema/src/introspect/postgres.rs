//! PostgreSQL introspection through `pg_catalog` and the `pg_get_*def` functions: a fixed
//! handful of queries whatever the number of tables. Extension-owned objects and migration
//! bookkeeping are left out.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::BOOKKEEPING_TABLES;
use crate::model::*;
use crate::Error;

/// Schemas that are the system's, never the user's.
pub(crate) const USER_NAMESPACES: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
     AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'";

pub(crate) fn not_extension_member(class: &str, oid: &str) -> String {
    format!("NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{class}'::regclass AND d.objid = {oid} AND d.deptype = 'e')")
}

/// Functions that are the user's own: not an extension's, nor made with a type (a range
/// type's constructors).
pub(crate) fn user_function(p: &str) -> String {
    format!(
        "{} AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = {p}.oid AND d.deptype = 'i')",
        not_extension_member("pg_proc", &format!("{p}.oid"))
    )
}

pub(crate) fn q(e: tokio_postgres::Error, what: &str) -> Error {
    Error::database(format!("cannot read {what}"), e)
}

/// The whole model of the database `client` is connected to: a query per kind of object,
/// in the order below, then the kinds of `postgres_objects` and `postgres_types`.
pub async fn introspect(client: &Client) -> Result<Schema, Error> {
    let mut schema = Schema::empty(Dialect::Postgres);
    schema.server_major = server_major(client).await?;
    let excluded: Vec<&str> = BOOKKEEPING_TABLES.to_vec();
    schema.namespaces = namespaces(client).await?;
    schema.extensions = extensions(client).await?;
    schema.enums = enums(client).await?;
    schema.sequences = sequences(client).await?;
    schema.functions = functions(client).await?;
    schema.tables = tables(client, &excluded).await?;
    schema.views = views(client).await?;
    schema.triggers = triggers(client, &excluded).await?;
    super::postgres_objects::introspect(client, &mut schema, &excluded).await?;
    schema.normalise();
    super::postgres_types::introspect(client, &mut schema).await?;
    schema.normalise();
    Ok(schema)
}

async fn server_major(client: &Client) -> Result<Option<u32>, Error> {
    let version: String = client
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .map_err(|e| q(e, "the server version"))?
        .get(0);
    Ok(version.parse::<u32>().ok().map(|n| n / 10000))
}

async fn namespaces(client: &Client) -> Result<Vec<String>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname FROM pg_namespace n WHERE {USER_NAMESPACES} AND n.nspname <> 'public' AND {}",
                not_extension_member("pg_namespace", "n.oid")
            ),
            &[],
        )
        .await
        .map_err(|e| q(e, "schemas"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn extensions(client: &Client) -> Result<Vec<Extension>, Error> {
    let rows = client
        .query(
            "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql'",
            &[],
        )
        .await
        .map_err(|e| q(e, "extensions"))?;
    Ok(rows.iter().map(|r| Extension { name: r.get(0), schema: r.get(1) }).collect())
}

async fn enums(client: &Client) -> Result<Vec<EnumType>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
                 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid \
                 WHERE {USER_NAMESPACES} AND {} GROUP BY n.nspname, t.typname",
                not_extension_member("pg_type", "t.oid")
            ),
            &[],
        )
        .await
        .map_err(|e| q(e, "enum types"))?;
    Ok(rows.iter().map(|r| EnumType { schema: r.get(0), name: r.get(1), values: r.get(2) }).collect())
}

/// Sequences, except those behind identity columns (they come with the column).
async fn sequences(client: &Client) -> Result<Vec<Sequence>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle, s.seqcache, \
                        (SELECT quote_ident(tn.nspname) || '.' || quote_ident(t.relname) || '.' || quote_ident(a.attname) FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                           JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'a' LIMIT 1) \
                 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE {USER_NAMESPACES} AND {} \
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')",
                not_extension_member("pg_class", "c.oid")
            ),
            &[],
        )
        .await
        .map_err(|e| q(e, "sequences"))?;
    Ok(rows
        .iter()
        .map(|r| Sequence {
            schema: r.get(0),
            name: r.get(1),
            data_type: r.get(2),
            start: r.get(3),
            increment: r.get(4),
            min: r.get(5),
            max: r.get(6),
            cycle: r.get(7),
            cache: Some(r.get(8)),
            owned_by: r.get(9),
        })
        .collect())
}

async fn functions(client: &Client) -> Result<Vec<Function>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid), \
                        p.prosecdef, coalesce(p.proconfig, '{{}}') \
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE {USER_NAMESPACES} AND p.prokind IN ('f', 'p') AND {}",
                user_function("p")
            ),
            &[],
        )
        .await
        .map_err(|e| q(e, "functions"))?;
    Ok(rows
        .iter()
        .map(|r| Function {
            schema: r.get(0),
            name: r.get(1),
            arguments: r.get(2),
            definition: r.get(3),
            security_definer: r.get(4),
            settings: r.get(5),
        })
        .collect())
}

/// Tables (partitions come with their parent) with their columns, keys, constraints and
/// indexes.
async fn tables(client: &Client, excluded: &[&str]) -> Result<Vec<Table>, Error> {
    let mut tables = table_shells(client, excluded).await?;
    let oids: Vec<u32> = tables.keys().copied().collect();
    let names = columns(client, &oids, &mut tables).await?;
    constraints(client, &oids, &mut tables, &names).await?;
    indexes(client, &oids, &mut tables).await?;
    Ok(tables.into_values().collect())
}

/// Each table by oid, without its columns and constraints yet.
async fn table_shells(client: &Client, excluded: &[&str]) -> Result<HashMap<u32, Table>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {USER_NAMESPACES} AND {} AND NOT (c.relname = ANY($1))",
                not_extension_member("pg_class", "c.oid")
            ),
            &[&excluded],
        )
        .await
        .map_err(|e| q(e, "tables"))?;
    let mut tables: HashMap<u32, Table> = HashMap::new();
    for r in &rows {
        let oid: u32 = r.get(0);
        tables.insert(
            oid,
            Table {
                schema: r.get(1),
                name: r.get(2),
                columns: Vec::new(),
                primary_key: None,
                uniques: Vec::new(),
                foreign_keys: Vec::new(),
                checks: Vec::new(),
                indexes: Vec::new(),
                sql: None,
            },
        );
    }
    Ok(tables)
}

/// Adds each table's columns; returns every column's name by (table oid, attribute number).
async fn columns(
    client: &Client,
    oids: &[u32],
    tables: &mut HashMap<u32, Table>,
) -> Result<HashMap<(u32, i16), String>, Error> {
    let rows = client
        .query(
            "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END, \
                    a.attidentity::text, \
                    CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END, a.attnum, \
                    CASE WHEN a.attcollation <> t.typcollation THEN \
                        CASE WHEN cn.nspname = 'pg_catalog' THEN '' ELSE quote_ident(cn.nspname) || '.' END \
                        || quote_ident(co.collname) END \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             LEFT JOIN pg_collation co ON co.oid = a.attcollation \
             LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await
        .map_err(|e| q(e, "columns"))?;
    let mut names: HashMap<(u32, i16), String> = HashMap::new();
    for r in &rows {
        let oid: u32 = r.get(0);
        let name: String = r.get(1);
        names.insert((oid, r.get(7)), name.clone());
        let identity: String = r.get(5);
        let column = Column {
            name,
            data_type: r.get(2),
            nullable: !r.get::<_, bool>(3),
            collation: r.get(8),
            default: r.get(4),
            identity: match identity.as_str() {
                "a" => Some("always".into()),
                "d" => Some("by default".into()),
                _ => None,
            },
            generated: r.get(6),
        };
        if let Some(t) = tables.get_mut(&oid) {
            t.columns.push(column);
        }
    }
    Ok(names)
}

/// Adds each table's primary key, unique, exclusion, check and foreign key constraints.
async fn constraints(
    client: &Client,
    oids: &[u32],
    tables: &mut HashMap<u32, Table>,
    names: &HashMap<(u32, i16), String>,
) -> Result<(), Error> {
    let column_names = |oid: u32, nums: &[i16]| -> Vec<String> {
        nums.iter().filter_map(|n| names.get(&(oid, *n)).cloned()).collect()
    };

    let rows = client
        .query(
            "SELECT c.conrelid, c.conname, c.contype::text, pg_get_constraintdef(c.oid, true), c.conkey, \
                    c.confrelid::regclass::text, c.confkey, c.confdeltype::text, c.confupdtype::text, c.condeferrable, c.confrelid \
             FROM pg_constraint c WHERE c.conrelid = ANY($1) AND c.contype IN ('p', 'u', 'f', 'c', 'x')",
            &[&oids],
        )
        .await
        .map_err(|e| q(e, "constraints"))?;
    let mut referenced: Vec<(u32, usize, u32, Vec<i16>)> = Vec::new();
    for r in &rows {
        let oid: u32 = r.get(0);
        let name: String = r.get(1);
        let kind: String = r.get(2);
        let definition: String = r.get(3);
        let keys: Vec<i16> = r.get::<_, Option<Vec<i16>>>(4).unwrap_or_default();
        let columns = column_names(oid, &keys);
        let Some(t) = tables.get_mut(&oid) else { continue };
        match kind.as_str() {
            "p" => t.primary_key = Some(Key { name, columns, definition }),
            "u" | "x" => t.uniques.push(Key { name, columns, definition }),
            "c" => t.checks.push(Check { name, definition }),
            "f" => {
                let target: u32 = r.get(10);
                referenced.push((
                    oid,
                    t.foreign_keys.len(),
                    target,
                    r.get::<_, Option<Vec<i16>>>(6).unwrap_or_default(),
                ));
                t.foreign_keys.push(ForeignKey {
                    name,
                    columns,
                    references: r.get(5),
                    referenced_columns: Vec::new(),
                    on_delete: action(&r.get::<_, String>(7)),
                    on_update: action(&r.get::<_, String>(8)),
                    deferrable: r.get(9),
                    definition,
                });
            }
            _ => {}
        }
    }
    // Referenced columns may live in tables outside the model (another schema), so read
    // their names directly.
    for (oid, index, target, keys) in referenced {
        let cols = if names.keys().any(|(o, _)| *o == target) {
            column_names(target, &keys)
        } else {
            let rows = client
                .query("SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum = ANY($2) ORDER BY array_position($2, attnum)", &[&target, &keys])
                .await
                .map_err(|e| q(e, "referenced columns"))?;
            rows.iter().map(|r| r.get(0)).collect()
        };
        if let Some(t) = tables.get_mut(&oid) {
            t.foreign_keys[index].referenced_columns = cols;
        }
    }
    Ok(())
}

/// Adds each table's indexes; those that back a constraint are described by the constraint.
async fn indexes(client: &Client, oids: &[u32], tables: &mut HashMap<u32, Table>) -> Result<(), Error> {
    let rows = client
        .query(
            "SELECT i.indrelid, ic.relname, i.indisunique, pg_get_indexdef(i.indexrelid) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             WHERE i.indrelid = ANY($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))",
            &[&oids],
        )
        .await
        .map_err(|e| q(e, "indexes"))?;
    for r in &rows {
        let oid: u32 = r.get(0);
        let definition: String = r.get(3);
        let shape = definition
            .split_once(" USING ")
            .map(|(_, rest)| format!("USING {rest}"))
            .unwrap_or_else(|| definition.clone());
        if let Some(t) = tables.get_mut(&oid) {
            t.indexes.push(Index { name: r.get(1), unique: r.get(2), shape, definition });
        }
    }
    Ok(())
}

async fn views(client: &Client) -> Result<Vec<View>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid, true) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {USER_NAMESPACES} AND {} ORDER BY n.nspname, c.relname",
                not_extension_member("pg_class", "c.oid")
            ),
            &[],
        )
        .await
        .map_err(|e| q(e, "views"))?;
    Ok(rows
        .iter()
        .map(|r| View { schema: r.get(0), name: r.get(1), materialized: r.get(2), definition: r.get(3) })
        .collect())
}

async fn triggers(client: &Client, excluded: &[&str]) -> Result<Vec<Trigger>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid, true) FROM pg_trigger t \
                 JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {USER_NAMESPACES} AND NOT (c.relname = ANY($1))"
            ),
            &[&excluded],
        )
        .await
        .map_err(|e| q(e, "triggers"))?;
    Ok(rows
        .iter()
        .map(|r| Trigger { schema: r.get(0), table: r.get(1), name: r.get(2), definition: r.get(3) })
        .collect())
}

fn action(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        _ => "NO ACTION",
    }
    .to_string()
}
