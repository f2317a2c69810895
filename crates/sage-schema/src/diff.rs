//! The DDL that turns one schema into another, in a safe order: drop what depends on a
//! changed object, create and alter, re-create dependents, and only then the destructive
//! drops (tables, columns, sequences), each marked so the caller can refuse them.

use sage_conn::quote_ident;
use serde::Serialize;

use crate::model::*;
use crate::render::{
    add_foreign_key, column_sql, create_enum, create_sequence, create_view, literal, qualified, statement,
};
use crate::validate::canonical_expression as canon;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub description: String,
    pub sql: String,
    /// Loses data (drops a table or column, rewrites a column's type).
    pub destructive: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    pub allow_destructive: bool,
}

fn change(description: impl Into<String>, sql: impl Into<String>, destructive: bool) -> Change {
    Change { description: description.into(), sql: sql.into(), destructive }
}

fn find<'a, T>(list: &'a [T], key: &str, key_of: impl Fn(&T) -> String) -> Option<&'a T> {
    list.iter().find(|x| key_of(x) == key)
}

/// The `COLLATE` clause of a column with a collation of its own; `back_to_default` spells
/// out the type's default for one without (only collatable types take the clause).
fn collate(c: &Column, back_to_default: bool) -> String {
    match &c.collation {
        Some(collation) => format!(" COLLATE {collation}"),
        None if back_to_default => " COLLATE \"default\"".to_string(),
        None => String::new(),
    }
}

fn tkey(t: &Table) -> String {
    format!("{}.{}", t.schema, t.name)
}

/// Every change from `from` to `to`, in the order to apply them.
pub fn diff(from: &Schema, to: &Schema) -> Vec<Change> {
    match to.dialect {
        Dialect::Postgres => diff_postgres(from, to),
        Dialect::Sqlite => diff_sqlite(from, to),
    }
}

fn trig_key(t: &Trigger) -> String {
    format!("{}.{}.{}", t.schema, t.table, t.name)
}

fn view_key(v: &View) -> String {
    format!("{}.{}", v.schema, v.name)
}

fn fn_key(f: &Function) -> String {
    format!("{}.{}({})", f.schema, f.name, f.arguments)
}

/// The order: drop what depends on an object that changes, create and alter in dependency
/// order, then the destructive drops.
fn diff_postgres(from: &Schema, to: &Schema) -> Vec<Change> {
    let first = drop_changed_dependents(from, to);

    let mut middle = create_namespaces_and_extensions(from, to);
    middle.extend(crate::diff_objects::creates(from, to));
    middle.extend(alter_enums(from, to));
    middle.extend(alter_sequences(from, to));
    let (functions, late_functions) = replace_functions(from, to);
    middle.extend(functions);
    let mut dropped_columns = Vec::new();
    for t in &to.tables {
        match find(&from.tables, &tkey(t), tkey) {
            None => {
                let mut sql = vec![crate::render_objects::create_table(to, t)];
                sql.extend(crate::render::constraints_after_create(t));
                middle.push(change(format!("create table {}", tkey(t)), sql.join("\n"), false));
            }
            Some(old) => {
                let (changes, drops) = alter_table(old, t);
                middle.extend(changes);
                dropped_columns.extend(drops);
            }
        }
    }
    middle.extend(sequence_owners(from, to));
    middle.extend(add_foreign_keys_and_indexes(from, to));
    middle.extend(late_functions);
    middle.extend(recreate_views_and_triggers(from, to));
    let (objects, dropped_types) = crate::diff_objects::diff(from, to);
    middle.extend(objects);

    let mut last = dropped_columns;
    last.extend(drop_removed(from, to, dropped_types));
    first.into_iter().chain(middle).chain(last).collect()
}

/// Triggers, views, foreign keys, indexes and constraints that change or go: dropped
/// first, so that what they depend on can change.
fn drop_changed_dependents(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut first = Vec::new();
    for t in &from.triggers {
        if find(&to.triggers, &trig_key(t), trig_key).is_none_or(|n| n.definition != t.definition) {
            first.push(change(
                format!("drop trigger {}", trig_key(t)),
                format!("DROP TRIGGER {} ON {};", quote_ident(&t.name), qualified(&t.schema, &t.table)),
                false,
            ));
        }
    }
    for v in from.views_in_order().into_iter().rev() {
        if find(&to.views, &view_key(v), view_key).is_none_or(|n| n != v) {
            let kind = if v.materialized { "MATERIALIZED VIEW" } else { "VIEW" };
            first.push(change(
                format!("drop view {}", view_key(v)),
                format!("DROP {kind} {};", qualified(&v.schema, &v.name)),
                false,
            ));
        }
    }
    for ft in &from.tables {
        let Some(tt) = find(&to.tables, &tkey(ft), tkey) else { continue };
        first.extend(drop_changed_constraints(ft, tt));
    }
    first
}

/// A kept table's foreign keys, indexes, checks, unique constraints and primary key that
/// change or go.
fn drop_changed_constraints(ft: &Table, tt: &Table) -> Vec<Change> {
    let mut first = Vec::new();
    let table = qualified(&ft.schema, &ft.name);
    for fk in &ft.foreign_keys {
        if tt.foreign_keys.iter().find(|k| k.name == fk.name).is_none_or(|k| k != fk) {
            first.push(change(
                format!("drop foreign key {}.{}", tkey(ft), fk.name),
                format!("ALTER TABLE {table} DROP CONSTRAINT {};", quote_ident(&fk.name)),
                false,
            ));
        }
    }
    for ix in &ft.indexes {
        if tt
            .indexes
            .iter()
            .find(|i| i.name == ix.name)
            .is_none_or(|i| canon(&i.shape) != canon(&ix.shape) || i.unique != ix.unique)
        {
            first.push(change(
                format!("drop index {}", ix.name),
                format!("DROP INDEX {};", qualified(&ft.schema, &ix.name)),
                false,
            ));
        }
    }
    let constraints =
        ft.checks.iter().map(|c| (&c.name, &c.definition)).chain(ft.uniques.iter().map(|u| (&u.name, &u.definition)));
    for (name, definition) in constraints {
        let kept = tt
            .checks
            .iter()
            .map(|c| (&c.name, &c.definition))
            .chain(tt.uniques.iter().map(|u| (&u.name, &u.definition)))
            .any(|(n, d)| n == name && canon(d) == canon(definition));
        if !kept {
            first.push(change(
                format!("drop constraint {}.{name}", tkey(ft)),
                format!("ALTER TABLE {table} DROP CONSTRAINT {};", quote_ident(name)),
                false,
            ));
        }
    }
    if let Some(pk) = &ft.primary_key {
        if tt.primary_key.as_ref().is_none_or(|p| p.columns != pk.columns) {
            first.push(change(
                format!("drop primary key of {}", tkey(ft)),
                format!("ALTER TABLE {table} DROP CONSTRAINT {};", quote_ident(&pk.name)),
                false,
            ));
        }
    }
    first
}

fn create_namespaces_and_extensions(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut middle = Vec::new();
    for ns in &to.namespaces {
        if !from.namespaces.contains(ns) {
            middle.push(change(format!("create schema {ns}"), format!("CREATE SCHEMA {};", quote_ident(ns)), false));
        }
    }
    for e in &to.extensions {
        if !from.extensions.iter().any(|x| x.name == e.name) {
            middle.push(change(
                format!("create extension {}", e.name),
                format!(
                    "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {};",
                    quote_ident(&e.name),
                    quote_ident(&e.schema)
                ),
                false,
            ));
        }
    }
    middle
}

/// New enums, and values added at the end of existing ones; anything else about an enum
/// is named as work by hand.
fn alter_enums(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut middle = Vec::new();
    for e in &to.enums {
        match from.enums.iter().find(|x| x.schema == e.schema && x.name == e.name) {
            None => middle.push(change(format!("create type {}", e.name), create_enum(e), false)),
            Some(old) if old.values != e.values => {
                if e.values.starts_with(&old.values) {
                    for v in &e.values[old.values.len()..] {
                        middle.push(change(
                            format!("add value {v} to {}", e.name),
                            format!("ALTER TYPE {} ADD VALUE {};", qualified(&e.schema, &e.name), literal(v)),
                            false,
                        ));
                    }
                } else {
                    middle.push(change(
                        format!("enum {} lost or reordered values; recreate it by hand", e.name),
                        format!(
                            "-- enum {} changed from {:?} to {:?}: PostgreSQL cannot remove enum values in place",
                            e.name, old.values, e.values
                        ),
                        true,
                    ));
                }
            }
            Some(_) => {}
        }
    }
    middle
}

fn alter_sequences(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut middle = Vec::new();
    for s in &to.sequences {
        match from.sequences.iter().find(|x| x.schema == s.schema && x.name == s.name) {
            None => middle.push(change(format!("create sequence {}", s.name), create_sequence(s), false)),
            Some(old) if (old.increment, old.min, old.max, old.cycle) != (s.increment, s.min, s.max, s.cycle) => middle
                .push(change(
                    format!("alter sequence {}", s.name),
                    format!(
                        "ALTER SEQUENCE {} INCREMENT BY {} MINVALUE {} MAXVALUE {}{};",
                        qualified(&s.schema, &s.name),
                        s.increment,
                        s.min,
                        s.max,
                        if s.cycle { " CYCLE" } else { " NO CYCLE" }
                    ),
                    false,
                )),
            Some(_) => {}
        }
    }
    middle
}

/// New and changed functions: those created before tables, and those whose SQL-standard
/// body reads tables (created once the tables exist, before the views that may call them).
fn replace_functions(from: &Schema, to: &Schema) -> (Vec<Change>, Vec<Change>) {
    // Such a body comes after the tables it reads in `order`.
    let first_table = to.order.iter().position(|k| k.starts_with("table:")).unwrap_or(usize::MAX);
    let reads_tables = |f: &Function| {
        let key = format!("function:{}.{}({})", f.schema, f.name, f.arguments);
        to.order.iter().position(|k| *k == key).is_some_and(|p| p > first_table)
    };
    let (mut early, mut late) = (Vec::new(), Vec::new());
    for f in &to.functions {
        if find(&from.functions, &fn_key(f), fn_key).is_none_or(|old| old.definition != f.definition) {
            let c = change(format!("create or replace function {}", fn_key(f)), statement(&f.definition), false);
            if reads_tables(f) {
                late.push(c);
            } else {
                early.push(c);
            }
        }
    }
    (early, late)
}

/// A kept table's new and changed columns, primary key and constraints, and (apart, for
/// the end) its dropped columns.
fn alter_table(old: &Table, t: &Table) -> (Vec<Change>, Vec<Change>) {
    let (mut middle, mut last) = (Vec::new(), Vec::new());
    let table = qualified(&t.schema, &t.name);
    for c in &t.columns {
        let Some(oc) = old.column(&c.name) else {
            middle.push(change(
                format!("add column {}.{}", tkey(t), c.name),
                format!("ALTER TABLE {table} ADD COLUMN {};", column_sql(c)),
                false,
            ));
            continue;
        };
        middle.extend(alter_column(t, oc, c));
    }
    if let Some(pk) = &t.primary_key {
        if old.primary_key.as_ref().is_none_or(|p| p.columns != pk.columns) {
            middle.push(change(
                format!("add primary key to {}", tkey(t)),
                format!("ALTER TABLE {table} ADD CONSTRAINT {} {};", quote_ident(&pk.name), pk.definition),
                false,
            ));
        }
    }
    let old_constraints: Vec<(&String, &String)> = old
        .checks
        .iter()
        .map(|c| (&c.name, &c.definition))
        .chain(old.uniques.iter().map(|u| (&u.name, &u.definition)))
        .collect();
    for (name, definition) in
        t.checks.iter().map(|c| (&c.name, &c.definition)).chain(t.uniques.iter().map(|u| (&u.name, &u.definition)))
    {
        if !old_constraints.iter().any(|(n, d)| *n == name && canon(d) == canon(definition)) {
            middle.push(change(
                format!("add constraint {}.{name}", tkey(t)),
                format!("ALTER TABLE {table} ADD CONSTRAINT {} {definition};", quote_ident(name)),
                false,
            ));
        }
    }
    for oc in &old.columns {
        if t.column(&oc.name).is_none() {
            last.push(change(
                format!("drop column {}.{}", tkey(t), oc.name),
                format!("ALTER TABLE {table} DROP COLUMN {};", quote_ident(&oc.name)),
                true,
            ));
        }
    }
    (middle, last)
}

/// A column kept in table `t`, from `oc` to `c`: type (or collation), default, nullability.
fn alter_column(t: &Table, oc: &Column, c: &Column) -> Vec<Change> {
    let mut middle = Vec::new();
    let table = qualified(&t.schema, &t.name);
    let col = quote_ident(&c.name);
    if oc.data_type != c.data_type {
        middle.push(change(
            format!("change type of {}.{} from {} to {}", tkey(t), c.name, oc.data_type, c.data_type),
            format!(
                "ALTER TABLE {table} ALTER COLUMN {col} TYPE {}{} USING {col}::{};",
                c.data_type,
                collate(c, false),
                c.data_type
            ),
            true,
        ));
    } else if oc.collation != c.collation {
        // Same type, other collation: no rows are rewritten, but the column's indexes
        // are rebuilt while the table is locked.
        middle.push(change(
            format!("change collation of {}.{}", tkey(t), c.name),
            format!("ALTER TABLE {table} ALTER COLUMN {col} TYPE {}{};", c.data_type, collate(c, true)),
            false,
        ));
    }
    if oc.default != c.default {
        let sql = match &c.default {
            Some(d) => format!("ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {d};"),
            None => format!("ALTER TABLE {table} ALTER COLUMN {col} DROP DEFAULT;"),
        };
        middle.push(change(format!("change default of {}.{}", tkey(t), c.name), sql, false));
    }
    if oc.nullable != c.nullable {
        let action = if c.nullable { "DROP NOT NULL" } else { "SET NOT NULL" };
        middle.push(change(
            format!("{} on {}.{}", action.to_lowercase(), tkey(t), c.name),
            format!("ALTER TABLE {table} ALTER COLUMN {col} {action};"),
            false,
        ));
    }
    middle
}

fn sequence_owners(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut middle = Vec::new();
    for s in &to.sequences {
        if let (Some(owner), true) =
            (&s.owned_by, !from.sequences.iter().any(|x| x.name == s.name && x.owned_by == s.owned_by))
        {
            if let Some(sql) = crate::render::owned_by(s) {
                middle.push(change(format!("sequence {} owned by {owner}", s.name), sql, false));
            }
        }
    }
    middle
}

/// Foreign keys and indexes that are new or were dropped first because they changed.
fn add_foreign_keys_and_indexes(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut middle = Vec::new();
    for t in &to.tables {
        let old = find(&from.tables, &tkey(t), tkey);
        for fk in &t.foreign_keys {
            if old.is_none_or(|o| o.foreign_keys.iter().find(|k| k.name == fk.name) != Some(fk)) {
                middle.push(change(format!("add foreign key {}.{}", tkey(t), fk.name), add_foreign_key(t, fk), false));
            }
        }
        for ix in &t.indexes {
            if old.is_none_or(|o| {
                o.indexes
                    .iter()
                    .find(|i| i.name == ix.name)
                    .is_none_or(|i| canon(&i.shape) != canon(&ix.shape) || i.unique != ix.unique)
            }) {
                middle.push(change(format!("create index {}", ix.name), crate::render::create_index(ix), false));
            }
        }
    }
    middle
}

/// Views and triggers that are new or were dropped first because they changed.
fn recreate_views_and_triggers(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut middle = Vec::new();
    for v in to.views_in_order() {
        if find(&from.views, &view_key(v), view_key).is_none_or(|o| o != v) {
            middle.push(change(format!("create view {}", view_key(v)), create_view(v), false));
        }
    }
    for t in &to.triggers {
        if find(&from.triggers, &trig_key(t), trig_key).is_none_or(|o| o.definition != t.definition) {
            middle.push(change(format!("create trigger {}", trig_key(t)), statement(&t.definition), false));
        }
    }
    middle
}

/// What `to` no longer has: tables, functions, sequences, enums, extensions, the types
/// `diff_objects` dropped, and schemas, in that order.
fn drop_removed(from: &Schema, to: &Schema, dropped_types: Vec<Change>) -> Vec<Change> {
    let mut last = Vec::new();
    for t in &from.tables {
        // A table that becomes a partition is attached, not dropped.
        let becomes_partition =
            to.relations.iter().any(|r| r.schema == t.schema && r.name == t.name && r.partition_of.is_some());
        if find(&to.tables, &tkey(t), tkey).is_none() && !becomes_partition {
            last.push(change(
                format!("drop table {}", tkey(t)),
                format!("DROP TABLE {};", qualified(&t.schema, &t.name)),
                true,
            ));
        }
    }
    for f in &from.functions {
        if find(&to.functions, &fn_key(f), fn_key).is_none() {
            last.push(change(
                format!("drop function {}", fn_key(f)),
                format!("DROP FUNCTION {}({});", qualified(&f.schema, &f.name), f.arguments),
                false,
            ));
        }
    }
    for s in &from.sequences {
        if !to.sequences.iter().any(|x| x.schema == s.schema && x.name == s.name) && s.owned_by.is_none() {
            last.push(change(
                format!("drop sequence {}", s.name),
                format!("DROP SEQUENCE {};", qualified(&s.schema, &s.name)),
                true,
            ));
        }
    }
    for e in &from.enums {
        if !to.enums.iter().any(|x| x.schema == e.schema && x.name == e.name) {
            last.push(change(
                format!("drop type {}", e.name),
                format!("DROP TYPE {};", qualified(&e.schema, &e.name)),
                true,
            ));
        }
    }
    for e in &from.extensions {
        if !to.extensions.iter().any(|x| x.name == e.name) {
            last.push(change(
                format!("drop extension {}", e.name),
                format!("DROP EXTENSION {};", quote_ident(&e.name)),
                true,
            ));
        }
    }
    last.extend(dropped_types);
    for ns in &from.namespaces {
        if !to.namespaces.contains(ns) {
            last.push(change(format!("drop schema {ns}"), format!("DROP SCHEMA {};", quote_ident(ns)), true));
        }
    }
    last
}

fn diff_sqlite(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut first = Vec::new();
    let mut middle = Vec::new();
    let mut last = Vec::new();
    let rebuilt: Vec<&Table> =
        to.tables.iter().filter(|t| from.tables.iter().any(|o| o.name == t.name && o.sql != t.sql)).collect();
    let is_rebuilt = |name: &str| rebuilt.iter().any(|t| t.name == name);
    // SQLite's procedure for changing a table's definition: foreign keys off (the runner
    // honours this first statement outside the transaction and checks every foreign key
    // before it commits), so that dropping the old table deletes no rows of other tables
    // through ON DELETE CASCADE; views and triggers, which may name the table, are dropped
    // first and created again after the swap.
    let rebuilding = !rebuilt.is_empty();
    if rebuilding {
        first.push(change(
            "turn foreign keys off while tables are rebuilt; every foreign key is checked before commit",
            "PRAGMA foreign_keys = OFF;",
            false,
        ));
    }

    for t in &from.triggers {
        let unchanged = !rebuilding && to.triggers.iter().any(|n| n.name == t.name && n.definition == t.definition);
        if !unchanged {
            first.push(change(
                format!("drop trigger {}", t.name),
                format!("DROP TRIGGER IF EXISTS {};", quote_ident(&t.name)),
                false,
            ));
        }
    }
    for v in from.views.iter().rev() {
        if rebuilding || !to.views.iter().any(|n| n == v) {
            first.push(change(format!("drop view {}", v.name), format!("DROP VIEW {};", quote_ident(&v.name)), false));
        }
    }
    for ft in &from.tables {
        let Some(tt) = to.tables.iter().find(|t| t.name == ft.name) else { continue };
        if is_rebuilt(&ft.name) {
            continue;
        }
        for ix in &ft.indexes {
            if !tt.indexes.iter().any(|i| i.name == ix.name && i.definition == ix.definition) {
                first.push(change(
                    format!("drop index {}", ix.name),
                    format!("DROP INDEX {};", quote_ident(&ix.name)),
                    false,
                ));
            }
        }
    }
    for t in &to.tables {
        let Some(sql) = &t.sql else { continue };
        match from.tables.iter().find(|o| o.name == t.name) {
            None => middle.push(change(format!("create table {}", t.name), statement(sql), false)),
            Some(old) if old.sql != t.sql => {
                // SQLite alters little in place: build the new shape beside the old table,
                // copy the rows, and swap.
                let temp = format!("{}__sage_new", t.name);
                let kept: Vec<String> = t
                    .columns
                    .iter()
                    .filter(|c| old.column(&c.name).is_some() && c.generated.is_none())
                    .map(|c| quote_ident(&c.name))
                    .collect();
                let dropped: Vec<&str> =
                    old.columns.iter().filter(|c| t.column(&c.name).is_none()).map(|c| c.name.as_str()).collect();
                let create = rename_created_table(sql, &temp);
                let sql = format!(
                    "{}\nINSERT INTO {} ({cols}) SELECT {cols} FROM {};\nDROP TABLE {};\nALTER TABLE {} RENAME TO {};",
                    statement(&create),
                    quote_ident(&temp),
                    quote_ident(&t.name),
                    quote_ident(&t.name),
                    quote_ident(&temp),
                    quote_ident(&t.name),
                    cols = kept.join(", ")
                );
                let description = if dropped.is_empty() {
                    format!("rebuild table {} with its new definition", t.name)
                } else {
                    format!("rebuild table {} without column(s) {}", t.name, dropped.join(", "))
                };
                middle.push(change(description, sql, !dropped.is_empty()));
            }
            Some(_) => {}
        }
    }
    for t in &to.tables {
        let old = from.tables.iter().find(|o| o.name == t.name);
        for ix in &t.indexes {
            let unchanged = !is_rebuilt(&t.name)
                && old.is_some_and(|o| o.indexes.iter().any(|i| i.name == ix.name && i.definition == ix.definition));
            if !unchanged {
                middle.push(change(format!("create index {}", ix.name), statement(&ix.definition), false));
            }
        }
    }
    for v in &to.views {
        if rebuilding || !from.views.iter().any(|o| o == v) {
            middle.push(change(format!("create view {}", v.name), create_view(v), false));
        }
    }
    for t in &to.triggers {
        let unchanged = !rebuilding && from.triggers.iter().any(|o| o.name == t.name && o.definition == t.definition);
        if !unchanged {
            middle.push(change(format!("create trigger {}", t.name), statement(&t.definition), false));
        }
    }
    for t in &from.tables {
        if !to.tables.iter().any(|n| n.name == t.name) {
            last.push(change(format!("drop table {}", t.name), format!("DROP TABLE {};", quote_ident(&t.name)), true));
        }
    }
    first.into_iter().chain(middle).chain(last).collect()
}

/// `CREATE TABLE <name> (…)` with the table's name replaced by `new_name`.
fn rename_created_table(sql: &str, new_name: &str) -> String {
    let upper = sql.to_ascii_uppercase();
    let Some(start) = upper.find("TABLE") else { return sql.to_string() };
    let after = start + "TABLE".len();
    let rest = sql[after..].trim_start();
    let offset = sql.len() - rest.len();
    let name_len = match rest.chars().next() {
        Some(q @ ('"' | '`' | '[')) => {
            let close = if q == '[' { ']' } else { q };
            rest[1..].find(close).map(|i| i + 2).unwrap_or(rest.len())
        }
        _ => rest.find(|c: char| c.is_whitespace() || c == '(').unwrap_or(rest.len()),
    };
    format!("{} {}{}", &sql[..after], quote_ident(new_name), &sql[offset + name_len..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_the_created_table() {
        assert_eq!(rename_created_table("CREATE TABLE t (a INTEGER)", "n"), "CREATE TABLE \"n\" (a INTEGER)");
        assert_eq!(rename_created_table("CREATE TABLE \"my t\"(a INTEGER)", "n"), "CREATE TABLE \"n\"(a INTEGER)");
    }
}
