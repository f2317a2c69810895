//! PostgreSQL domains, composite and range types and collations, each as the statement that
//! creates it, and the order in which `schema sql` creates types, functions, tables and
//! views: dependencies first, computed from `pg_depend` (a view's rule, a column's default
//! and type, a CHECK's function, a SQL-standard function body's tables, a partition's
//! parent).

#[cfg(feature = "postgres")]
use std::collections::{BTreeMap, BTreeSet};

#[cfg(feature = "postgres")]
use tokio_postgres::Client;

#[cfg(feature = "postgres")]
use super::postgres::{not_extension_member, q, USER_NAMESPACES};
use crate::model::*;
#[cfg(feature = "postgres")]
use crate::objects::TypeDef;
#[cfg(feature = "postgres")]
use crate::Error;

#[cfg(feature = "postgres")]
pub async fn introspect(client: &Client, schema: &mut Schema) -> Result<(), Error> {
    let ext = not_extension_member("pg_type", "t.oid");
    let qualified = "quote_ident(n.nspname) || '.' || quote_ident(t.typname)";
    let collate = |oid: &str, default: &str| {
        format!(
            "CASE WHEN {oid} <> 0 AND {oid} <> {default} THEN ' COLLATE ' || \
               (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co \
                JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = {oid}) ELSE '' END"
        )
    };
    let sql = format!(
        "SELECT n.nspname, t.typname, 'domain', \
            'CREATE DOMAIN ' || {qualified} || ' AS ' || format_type(t.typbasetype, t.typtypmod) \
            || {} \
            || coalesce(' DEFAULT ' || t.typdefault, '') || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END \
            || coalesce((SELECT string_agg(' CONSTRAINT ' || quote_ident(k.conname) || ' ' || pg_get_constraintdef(k.oid, true), '' ORDER BY k.conname) \
                         FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c'), '') \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_type bt ON bt.oid = t.typbasetype \
         WHERE t.typtype = 'd' AND {USER_NAMESPACES} AND {ext} \
         UNION ALL \
         SELECT n.nspname, t.typname, 'composite', \
            'CREATE TYPE ' || {qualified} || ' AS (' || coalesce((SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod) \
                || {}, ', ' ORDER BY a.attnum) \
              FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '') || ')' \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_class c ON c.oid = t.typrelid \
         WHERE t.typtype = 'c' AND c.relkind = 'c' AND {USER_NAMESPACES} AND {ext} \
         UNION ALL \
         SELECT n.nspname, t.typname, 'range', \
            'CREATE TYPE ' || {qualified} || ' AS RANGE (SUBTYPE = ' || format_type(r.rngsubtype, NULL) \
            || CASE WHEN r.rngsubopc <> coalesce((SELECT o.oid FROM pg_opclass o WHERE o.opcintype = r.rngsubtype AND o.opcdefault AND o.opcmethod = 403 LIMIT 1), 0) \
                    THEN ', SUBTYPE_OPCLASS = ' || (SELECT quote_ident(on_.nspname) || '.' || quote_ident(o.opcname) FROM pg_opclass o JOIN pg_namespace on_ ON on_.oid = o.opcnamespace WHERE o.oid = r.rngsubopc) ELSE '' END \
            || CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> (SELECT typcollation FROM pg_type WHERE oid = r.rngsubtype) \
                    THEN ', COLLATION = ' || (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = r.rngcollation) ELSE '' END \
            || CASE WHEN r.rngcanonical <> 0 THEN ', CANONICAL = ' || r.rngcanonical::regproc::text ELSE '' END \
            || CASE WHEN r.rngsubdiff <> 0 THEN ', SUBTYPE_DIFF = ' || r.rngsubdiff::regproc::text ELSE '' END \
            || coalesce(', MULTIRANGE_TYPE_NAME = ' || (SELECT quote_ident(mn.nspname) || '.' || quote_ident(m.typname) FROM pg_type m \
                 JOIN pg_namespace mn ON mn.oid = m.typnamespace WHERE m.oid = (to_jsonb(r) ->> 'rngmultitypid')::oid), '') || ')' \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_range r ON r.rngtypid = t.oid \
         WHERE t.typtype = 'r' AND {USER_NAMESPACES} AND {ext}",
        collate("t.typcollation", "bt.typcollation"),
        collate("a.attcollation", "at.typcollation"),
    );
    let rows = client.query(&sql, &[]).await.map_err(|e| q(e, "types"))?;
    schema.types = rows
        .iter()
        .map(|r| TypeDef { schema: r.get(0), name: r.get(1), kind: r.get(2), definition: r.get(3) })
        .collect();

    // Locale columns differ between versions (colliculocale in 15 and 16, colllocale from
    // 17 on), so they are read through to_jsonb, which has whichever the server has.
    let sql = format!(
        "SELECT n.nspname, co.collname, 'collation', \
            'CREATE COLLATION ' || quote_ident(n.nspname) || '.' || quote_ident(co.collname) || ' (provider = ' \
            || CASE co.collprovider WHEN 'i' THEN 'icu' WHEN 'b' THEN 'builtin' ELSE 'libc' END \
            || CASE WHEN co.collprovider = 'c' THEN ', lc_collate = ' || quote_literal(co.collcollate) || ', lc_ctype = ' || quote_literal(co.collctype) \
                    ELSE ', locale = ' || quote_literal(coalesce(to_jsonb(co) ->> 'colllocale', to_jsonb(co) ->> 'colliculocale', co.collcollate)) END \
            || CASE WHEN NOT co.collisdeterministic THEN ', deterministic = false' ELSE '' END \
            || coalesce(', rules = ' || quote_literal(to_jsonb(co) ->> 'collicurules'), '') || ')' \
         FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace WHERE {USER_NAMESPACES} AND {}",
        not_extension_member("pg_collation", "co.oid")
    );
    let rows = client.query(&sql, &[]).await.map_err(|e| q(e, "collations"))?;
    schema.collations = rows
        .iter()
        .map(|r| TypeDef { schema: r.get(0), name: r.get(1), kind: r.get(2), definition: r.get(3) })
        .collect();

    let sql = format!(
        "WITH obj AS ( \
           SELECT 'pg_class'::regclass::oid AS classid, c.oid AS objid, \
                  CASE WHEN c.relkind IN ('v', 'm') THEN 'view:' WHEN c.relkind = 'c' THEN 'type:' ELSE 'table:' END || n.nspname || '.' || c.relname AS key \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'c') AND {USER_NAMESPACES} \
           UNION ALL SELECT 'pg_proc'::regclass::oid, p.oid, 'function:' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.prokind IN ('f', 'p') AND {USER_NAMESPACES} \
           UNION ALL SELECT 'pg_type'::regclass::oid, t.oid, 'type:' || n.nspname || '.' || t.typname \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('e', 'd', 'r') AND {USER_NAMESPACES} \
         ), ref AS ( \
           SELECT classid, objid, key FROM obj \
           UNION ALL SELECT 'pg_type'::regclass::oid, t.typarray, o.key FROM pg_type t JOIN obj o ON o.classid = 'pg_type'::regclass::oid AND o.objid = t.oid WHERE t.typarray <> 0 \
           UNION ALL SELECT 'pg_type'::regclass::oid, t.oid, o.key FROM pg_type t JOIN obj o ON o.classid = 'pg_class'::regclass::oid AND o.objid = t.typrelid \
           UNION ALL SELECT 'pg_type'::regclass::oid, t.typarray, o.key FROM pg_type t JOIN obj o ON o.classid = 'pg_class'::regclass::oid AND o.objid = t.typrelid WHERE t.typarray <> 0 \
         ), dep AS ( \
           SELECT d.classid, d.objid, d.refclassid, d.refobjid FROM pg_depend d \
             WHERE d.deptype IN ('n', 'a') AND d.classid IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_type'::regclass) \
           UNION ALL SELECT 'pg_class'::regclass::oid, ad.adrelid, d.refclassid, d.refobjid FROM pg_depend d \
             JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND ad.oid = d.objid \
           UNION ALL SELECT CASE WHEN k.conrelid <> 0 THEN 'pg_class'::regclass::oid ELSE 'pg_type'::regclass::oid END, \
                            CASE WHEN k.conrelid <> 0 THEN k.conrelid ELSE k.contypid END, d.refclassid, d.refobjid FROM pg_depend d \
             JOIN pg_constraint k ON d.classid = 'pg_constraint'::regclass AND k.oid = d.objid WHERE k.contype = 'c' \
           UNION ALL SELECT 'pg_class'::regclass::oid, r.ev_class, d.refclassid, d.refobjid FROM pg_depend d \
             JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid \
         ) \
         SELECT DISTINCT a.key, b.key FROM dep JOIN obj a ON a.classid = dep.classid AND a.objid = dep.objid \
           JOIN ref b ON b.classid = dep.refclassid AND b.objid = dep.refobjid WHERE a.key <> b.key"
    );
    let rows = client.query(&sql, &[]).await.map_err(|e| q(e, "dependencies"))?;
    let edges: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    schema.order = creation_order(schema, &edges);
    Ok(())
}

/// The key under which `schema.order` lists an object.
pub(crate) fn order_keys(schema: &Schema) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    keys.extend(schema.enums.iter().map(|e| format!("type:{}.{}", e.schema, e.name)));
    keys.extend(schema.types.iter().map(|t| format!("type:{}.{}", t.schema, t.name)));
    keys.extend(schema.functions.iter().map(|f| format!("function:{}.{}({})", f.schema, f.name, f.arguments)));
    keys.extend(schema.tables.iter().map(|t| format!("table:{}.{}", t.schema, t.name)));
    keys.extend(
        schema.relations.iter().filter(|r| r.partition_of.is_some()).map(|r| format!("table:{}.{}", r.schema, r.name)),
    );
    keys.extend(schema.views.iter().map(|v| format!("view:{}.{}", v.schema, v.name)));
    keys
}

/// A topological order of the model's types, functions, tables and views: among the
/// objects whose dependencies are all created, types first, then functions (their bodies
/// are not checked while loading), tables and views, each by name. A cycle is broken at
/// the first object in that order, as a dump would need a hand edit there too.
#[cfg(feature = "postgres")]
fn creation_order(schema: &Schema, edges: &[(String, String)]) -> Vec<String> {
    let keys = order_keys(schema);
    let rank = |k: &str| match k.split_once(':').map(|(kind, _)| kind) {
        Some("type") => 0,
        Some("function") => 1,
        Some("table") => 2,
        _ => 3,
    };
    let known: BTreeSet<&str> = keys.iter().map(|k| k.as_str()).collect();
    let mut needs: BTreeMap<&str, BTreeSet<&str>> = keys.iter().map(|k| (k.as_str(), BTreeSet::new())).collect();
    for (from, to) in edges {
        if known.contains(from.as_str()) && known.contains(to.as_str()) {
            needs.get_mut(from.as_str()).expect("known").insert(to.as_str());
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut remaining: BTreeSet<(u8, &str)> = keys.iter().map(|k| (rank(k), k.as_str())).collect();
    while !remaining.is_empty() {
        let next = remaining
            .iter()
            .find(|(_, k)| needs[k].iter().all(|d| done.contains(d)))
            .or_else(|| remaining.iter().next())
            .copied()
            .expect("not empty");
        remaining.remove(&next);
        done.insert(next.1);
        order.push(next.1.to_string());
    }
    order
}
