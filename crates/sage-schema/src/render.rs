//! The model as DDL, in an order that creates every object after what it depends on.

use crate::model::*;
use crate::objects::Identity;
use sage_conn::quote_ident;

/// `schema.name`, each part quoted; a bare name when there is no schema (SQLite).
pub(crate) fn qualified(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        quote_ident(name)
    } else {
        format!("{}.{}", quote_ident(schema), quote_ident(name))
    }
}

/// An SQL string literal.
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn terminated(sql: &str) -> String {
    let sql = sql.trim_end();
    if sql.ends_with(';') {
        sql.to_string()
    } else {
        format!("{sql};")
    }
}

pub(crate) fn column_sql(c: &Column) -> String {
    column_sql_with(c, None)
}

/// A column's definition; `identity` carries the options of its identity sequence.
pub(crate) fn column_sql_with(c: &Column, identity: Option<&Identity>) -> String {
    let mut out = format!("{} {}", quote_ident(&c.name), c.data_type);
    if let Some(collation) = &c.collation {
        out.push_str(&format!(" COLLATE {collation}"));
    }
    if let Some(kind) = &c.identity {
        out.push_str(&format!(" GENERATED {} AS IDENTITY", kind.to_ascii_uppercase()));
        if let Some(i) = identity {
            out.push_str(&format!(
                " (SEQUENCE NAME {} START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {} CACHE {}{})",
                qualified(&i.schema, &i.sequence),
                i.start,
                i.increment,
                i.min,
                i.max,
                i.cache,
                if i.cycle { " CYCLE" } else { " NO CYCLE" }
            ));
        }
    }
    if let Some(expr) = &c.generated {
        out.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
    }
    if let Some(default) = &c.default {
        out.push_str(&format!(" DEFAULT {default}"));
    }
    if !c.nullable {
        out.push_str(" NOT NULL");
    }
    out
}

/// `CREATE TABLE` with the options of its identity columns from `identities`.
pub(crate) fn create_table_with(t: &Table, identities: &[Identity]) -> String {
    let identity =
        |c: &Column| identities.iter().find(|i| i.schema == t.schema && i.table == t.name && i.column == c.name);
    let mut parts: Vec<String> = t.columns.iter().map(|c| column_sql_with(c, identity(c))).collect();
    if let Some(pk) = &t.primary_key {
        parts.push(format!("CONSTRAINT {} {}", quote_ident(&pk.name), pk.definition));
    }
    for u in t.uniques.iter().filter(|u| !duplicates_primary_key(t, u)) {
        parts.push(format!("CONSTRAINT {} {}", quote_ident(&u.name), u.definition));
    }
    for c in t.checks.iter().filter(|c| !not_valid(c)) {
        parts.push(format!("CONSTRAINT {} {}", quote_ident(&c.name), c.definition));
    }
    format!("CREATE TABLE {} (\n    {}\n);", qualified(&t.schema, &t.name), parts.join(",\n    "))
}

/// PostgreSQL drops a UNIQUE constraint on the primary key's columns when both are in one
/// `CREATE TABLE`, so such a constraint is added afterwards.
fn duplicates_primary_key(t: &Table, u: &Key) -> bool {
    t.primary_key.as_ref().is_some_and(|pk| pk.columns == u.columns) && u.definition.starts_with("UNIQUE")
}

/// A CHECK created `NOT VALID` stays so only when added after the table.
fn not_valid(c: &Check) -> bool {
    c.definition.ends_with(" NOT VALID")
}

/// The `ALTER TABLE … ADD CONSTRAINT` statements for what `create_table_with` leaves out.
pub(crate) fn constraints_after_create(t: &Table) -> Vec<String> {
    let add = |name: &str, definition: &str| {
        format!("ALTER TABLE {} ADD CONSTRAINT {} {definition};", qualified(&t.schema, &t.name), quote_ident(name))
    };
    let uniques = t.uniques.iter().filter(|u| duplicates_primary_key(t, u)).map(|u| add(&u.name, &u.definition));
    let checks = t.checks.iter().filter(|c| not_valid(c)).map(|c| add(&c.name, &c.definition));
    uniques.chain(checks).collect()
}

/// An index's statement; on a partitioned table `pg_get_indexdef` says `ON ONLY`, which
/// would create an invalid index that covers no partition.
pub(crate) fn create_index(i: &Index) -> String {
    terminated(&i.definition.replacen(" ON ONLY ", " ON ", 1))
}

pub(crate) fn create_sequence(s: &Sequence) -> String {
    format!(
        "CREATE SEQUENCE {} AS {} START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {}{}{};",
        qualified(&s.schema, &s.name),
        s.data_type,
        s.start,
        s.increment,
        s.min,
        s.max,
        s.cache.map(|c| format!(" CACHE {c}")).unwrap_or_default(),
        if s.cycle { " CYCLE" } else { " NO CYCLE" }
    )
}

pub(crate) fn create_enum(e: &EnumType) -> String {
    let values: Vec<String> = e.values.iter().map(|v| literal(v)).collect();
    format!("CREATE TYPE {} AS ENUM ({});", qualified(&e.schema, &e.name), values.join(", "))
}

pub(crate) fn create_view(v: &View) -> String {
    let kind = if v.materialized { "MATERIALIZED VIEW" } else { "VIEW" };
    if v.schema.is_empty() {
        return terminated(&v.definition);
    }
    format!("CREATE {kind} {} AS\n{}", qualified(&v.schema, &v.name), terminated(v.definition.trim_start()))
}

pub(crate) fn add_foreign_key(t: &Table, fk: &ForeignKey) -> String {
    format!("ALTER TABLE {} ADD CONSTRAINT {} {};", qualified(&t.schema, &t.name), quote_ident(&fk.name), fk.definition)
}

pub(crate) fn statement(sql: &str) -> String {
    terminated(sql)
}

/// `ALTER SEQUENCE … OWNED BY` for a sequence a column owns.
pub(crate) fn owned_by(s: &Sequence) -> Option<String> {
    let owner = s.owned_by.as_ref()?;
    // Snapshots written before owners were schema-qualified and quoted say `table.column`,
    // in the sequence's schema.
    let target = if !owner.contains('"') && owner.matches('.').count() == 1 {
        let (table, column) = owner.split_once('.')?;
        format!("{}.{}", qualified(&s.schema, table), quote_ident(column))
    } else {
        owner.clone()
    };
    Some(format!("ALTER SEQUENCE {} OWNED BY {target};", qualified(&s.schema, &s.name)))
}

/// PostgreSQL DDL in the order pg_dump would use: what nothing depends on first, then
/// types, functions, tables and views in dependency order (see
/// [`Schema::order`](crate::Schema)), then what refers to tables (constraints between
/// them, indexes, triggers), and last what grants access and describes.
fn render_postgres(schema: &Schema, out: &mut Vec<String>) {
    use crate::render_objects as ro;
    out.push("SET check_function_bodies = false;".into());
    for ns in &schema.namespaces {
        out.push(format!("CREATE SCHEMA IF NOT EXISTS {};", quote_ident(ns)));
    }
    for e in &schema.extensions {
        out.push(format!(
            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {};",
            quote_ident(&e.name),
            quote_ident(&e.schema)
        ));
    }
    out.extend(schema.collations.iter().map(|c| terminated(&c.definition)));
    out.extend(schema.sequences.iter().map(create_sequence));
    let partitions = ro::partitions(schema);
    for key in creation_order(schema) {
        let Some((kind, name)) = key.split_once(':') else { continue };
        match kind {
            "type" => {
                if let Some(e) = schema.enums.iter().find(|e| format!("{}.{}", e.schema, e.name) == name) {
                    out.push(create_enum(e));
                } else if let Some(t) = schema.types.iter().find(|t| format!("{}.{}", t.schema, t.name) == name) {
                    out.push(terminated(&t.definition));
                }
            }
            "function" => {
                if let Some(f) =
                    schema.functions.iter().find(|f| format!("{}.{}({})", f.schema, f.name, f.arguments) == name)
                {
                    out.push(terminated(&f.definition));
                }
            }
            "table" => {
                if let Some(t) = schema.tables.iter().find(|t| format!("{}.{}", t.schema, t.name) == name) {
                    out.push(ro::create_table(schema, t));
                } else if let Some(r) = schema
                    .relations
                    .iter()
                    .find(|r| r.partition_of.is_some() && format!("{}.{}", r.schema, r.name) == name)
                {
                    let quoted = qualified(&r.schema, &r.name);
                    out.extend(
                        partitions.iter().filter(|p| p.contains(&format!("TABLE {quoted} PARTITION OF"))).cloned(),
                    );
                }
            }
            _ => {
                if let Some(v) = schema.views.iter().find(|v| format!("{}.{}", v.schema, v.name) == name) {
                    out.push(create_view(v));
                }
            }
        }
    }
    out.extend(partitions.iter().filter(|p| p.starts_with("--")).cloned());
    for t in &schema.tables {
        out.extend(constraints_after_create(t));
    }
    out.extend(schema.sequences.iter().filter_map(owned_by));
    for t in &schema.tables {
        out.extend(t.foreign_keys.iter().map(|fk| add_foreign_key(t, fk)));
    }
    for t in &schema.tables {
        out.extend(t.indexes.iter().map(create_index));
    }
    out.extend(ro::view_options(schema));
    out.extend(schema.triggers.iter().map(|t| terminated(&t.definition)));
    for r in &schema.row_security {
        out.extend(ro::row_security(r));
    }
    out.extend(schema.policies.iter().map(ro::create_policy));
    out.extend(schema.owners.iter().filter_map(ro::alter_owner));
    out.extend(ro::grants(schema));
    out.extend(ro::default_privileges(schema));
    out.extend(schema.comments.iter().map(ro::comment));
}

/// `schema.order` when the model has one (extended by anything it does not list), else
/// types, functions, tables and views as listed (views in creation order).
fn creation_order(schema: &Schema) -> Vec<String> {
    let keys = crate::introspect::postgres_types::order_keys(schema);
    let mut order: Vec<String> = schema.order.iter().filter(|k| keys.contains(k)).cloned().collect();
    for k in keys {
        if !order.contains(&k) {
            order.push(k);
        }
    }
    order
}

/// DDL that recreates `schema` in an empty database.
pub fn render(schema: &Schema) -> String {
    render_with_header(
        schema,
        "-- Generated by sage-db from the migrations; do not edit. Recreate with `sage-db schema dump`.",
    )
}

/// [`render`] for a schema read from a live database: the same statements, under a header
/// that says where they came from.
pub fn render_live(schema: &Schema) -> String {
    render_with_header(schema, "-- Generated by sage-db from a live database's catalog.")
}

fn render_with_header(schema: &Schema, header: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    match schema.dialect {
        Dialect::Postgres => render_postgres(schema, &mut out),
        Dialect::Sqlite => {
            out.extend(schema.tables.iter().filter_map(|t| t.sql.as_deref().map(terminated)));
            for t in &schema.tables {
                out.extend(t.indexes.iter().map(|i| terminated(&i.definition)));
            }
            out.extend(schema.views.iter().map(create_view));
            out.extend(schema.triggers.iter().map(|t| terminated(&t.definition)));
        }
    }
    let mut text = format!("{header}\n\n");
    text.push_str(&out.join("\n\n"));
    text.push('\n');
    text
}
