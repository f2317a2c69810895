//! The model as DDL, in an order that creates every object after what it depends on.

use crate::model::*;
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
    let mut out = format!("{} {}", quote_ident(&c.name), c.data_type);
    if let Some(collation) = &c.collation {
        out.push_str(&format!(" COLLATE {collation}"));
    }
    if let Some(identity) = &c.identity {
        out.push_str(&format!(" GENERATED {} AS IDENTITY", identity.to_ascii_uppercase()));
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

pub(crate) fn create_table_pg(t: &Table) -> String {
    let mut parts: Vec<String> = t.columns.iter().map(column_sql).collect();
    if let Some(pk) = &t.primary_key {
        parts.push(format!("CONSTRAINT {} {}", quote_ident(&pk.name), pk.definition));
    }
    for u in &t.uniques {
        parts.push(format!("CONSTRAINT {} {}", quote_ident(&u.name), u.definition));
    }
    for c in &t.checks {
        parts.push(format!("CONSTRAINT {} {}", quote_ident(&c.name), c.definition));
    }
    format!("CREATE TABLE {} (\n    {}\n);", qualified(&t.schema, &t.name), parts.join(",\n    "))
}

pub(crate) fn create_sequence(s: &Sequence) -> String {
    format!(
        "CREATE SEQUENCE {} AS {} START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {}{};",
        qualified(&s.schema, &s.name),
        s.data_type,
        s.start,
        s.increment,
        s.min,
        s.max,
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

/// DDL that recreates `schema` in an empty database.
pub fn render(schema: &Schema) -> String {
    let mut out: Vec<String> = Vec::new();
    match schema.dialect {
        Dialect::Postgres => {
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
            out.extend(schema.enums.iter().map(create_enum));
            out.extend(schema.sequences.iter().map(create_sequence));
            out.extend(schema.functions.iter().map(|f| terminated(&f.definition)));
            out.extend(schema.tables.iter().map(create_table_pg));
            for s in &schema.sequences {
                if let Some(owner) = &s.owned_by {
                    if let Some((table, column)) = owner.split_once('.') {
                        out.push(format!(
                            "ALTER SEQUENCE {} OWNED BY {}.{};",
                            qualified(&s.schema, &s.name),
                            qualified(&s.schema, table),
                            quote_ident(column)
                        ));
                    }
                }
            }
            for t in &schema.tables {
                out.extend(t.foreign_keys.iter().map(|fk| add_foreign_key(t, fk)));
            }
            for t in &schema.tables {
                out.extend(t.indexes.iter().map(|i| terminated(&i.definition)));
            }
            out.extend(schema.views.iter().map(create_view));
            out.extend(schema.triggers.iter().map(|t| terminated(&t.definition)));
        }
        Dialect::Sqlite => {
            out.extend(schema.tables.iter().filter_map(|t| t.sql.as_deref().map(terminated)));
            for t in &schema.tables {
                out.extend(t.indexes.iter().map(|i| terminated(&i.definition)));
            }
            out.extend(schema.views.iter().map(create_view));
            out.extend(schema.triggers.iter().map(|t| terminated(&t.definition)));
        }
    }
    let mut text = String::from(
        "-- Generated by sage-db from the migrations; do not edit. Recreate with `sage-db schema dump`.\n\n",
    );
    text.push_str(&out.join("\n\n"));
    text.push('\n');
    text
}
