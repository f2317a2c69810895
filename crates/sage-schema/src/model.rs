//! The schema model: plain data, serialisable, compared by name. Definitions of checks,
//! indexes, views, functions and triggers are kept in the database's own canonical
//! rendering (`pg_get_*def` on PostgreSQL, the normalised `sqlite_schema.sql` on SQLite), so
//! two spellings of the same thing compare equal and any real change does not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::objects::*;

pub use sage_migrate::Dialect;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub dialect: Dialect,
    /// PostgreSQL: the major version of the server whose rendering the definitions are in
    /// (views, checks, defaults and indexes print differently from one major to the next).
    /// Comparing with a server of another major re-renders them there first
    /// ([`crate::in_server_rendering`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_major: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enums: Vec<EnumType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequences: Vec<Sequence>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<Function>,
    pub tables: Vec<Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<View>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// The kinds of [`RECORDED_KINDS`] this model recorded. Empty in snapshots written
    /// before they existed, which therefore say nothing about them (not: that there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorded: Vec<String>,
    /// Domains, composite and range types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<TypeDef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collations: Vec<TypeDef>,
    /// The order in which types, functions, tables and views are created, dependencies
    /// first (keys such as `table:public.accounts`); empty when not known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<Owner>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_privileges: Vec<DefaultPrivilege>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_security: Vec<RowSecurity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Comment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<Relation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<Identity>,
    /// Object kinds present in the database that the model does not describe, with their
    /// numbers (e.g. `rule: 2`), so that validation can say what it did not check.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub not_modelled: BTreeMap<String, i64>,
}

impl Schema {
    /// A schema without objects (of every kind: see `recorded`).
    pub fn empty(dialect: Dialect) -> Schema {
        Schema {
            dialect,
            server_major: None,
            namespaces: Vec::new(),
            extensions: Vec::new(),
            enums: Vec::new(),
            sequences: Vec::new(),
            functions: Vec::new(),
            tables: Vec::new(),
            views: Vec::new(),
            triggers: Vec::new(),
            // A model built in code knows it has none of these; only snapshots written before
            // they were recorded (which deserialise with an empty list) do not know.
            recorded: match dialect {
                Dialect::Postgres => RECORDED_KINDS.iter().map(|k| k.to_string()).collect(),
                Dialect::Sqlite => Vec::new(),
            },
            types: Vec::new(),
            collations: Vec::new(),
            order: Vec::new(),
            owners: Vec::new(),
            grants: Vec::new(),
            default_privileges: Vec::new(),
            row_security: Vec::new(),
            policies: Vec::new(),
            comments: Vec::new(),
            relations: Vec::new(),
            identities: Vec::new(),
            not_modelled: BTreeMap::new(),
        }
    }

    /// Whether this model recorded `kind` (one of [`RECORDED_KINDS`]).
    pub fn records(&self, kind: &str) -> bool {
        self.recorded.iter().any(|k| k == kind)
    }

    /// The views in an order that creates each after the views it reads.
    pub fn views_in_order(&self) -> Vec<&View> {
        let position = |v: &View| self.order.iter().position(|k| *k == format!("view:{}.{}", v.schema, v.name));
        let mut views: Vec<&View> = self.views.iter().collect();
        if !self.order.is_empty() {
            views.sort_by_key(|v| position(v).unwrap_or(usize::MAX));
        }
        views
    }

    pub fn table(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.schema == schema && t.name == name)
    }

    /// Sorts every list by name so two introspections of equal schemas are equal values.
    /// Views keep the order they were read in: by name on PostgreSQL, where `order` says
    /// in which order to create them, creation order on SQLite (and in PostgreSQL
    /// snapshots written before `order` existed), which is a valid dependency order.
    pub fn normalise(&mut self) {
        self.namespaces.sort();
        self.extensions.sort_by(|a, b| a.name.cmp(&b.name));
        self.enums.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        self.sequences.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        self.functions.sort_by(|a, b| (&a.schema, &a.name, &a.arguments).cmp(&(&b.schema, &b.name, &b.arguments)));
        self.tables.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        self.triggers.sort_by(|a, b| (&a.schema, &a.table, &a.name).cmp(&(&b.schema, &b.table, &b.name)));
        self.types.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        self.collations.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        self.owners.sort_by(|a, b| (&a.kind, &a.object).cmp(&(&b.kind, &b.object)));
        self.grants.sort_by(|a, b| (&a.kind, &a.object, &a.grantee).cmp(&(&b.kind, &b.object, &b.grantee)));
        self.default_privileges.sort_by(|a, b| {
            (&a.role, &a.schema, &a.objects, &a.grantee).cmp(&(&b.role, &b.schema, &b.objects, &b.grantee))
        });
        self.row_security.sort_by(|a, b| (&a.schema, &a.table).cmp(&(&b.schema, &b.table)));
        self.policies.sort_by_key(|p| p.key());
        self.comments.sort_by(|a, b| (&a.kind, &a.object).cmp(&(&b.kind, &b.object)));
        self.relations.sort_by_key(|r| r.key());
        self.identities.sort_by(|a, b| (&a.schema, &a.table, &a.column).cmp(&(&b.schema, &b.table, &b.column)));
        for t in &mut self.tables {
            t.uniques.sort_by(|a, b| a.name.cmp(&b.name));
            t.checks.sort_by(|a, b| a.name.cmp(&b.name));
            t.foreign_keys.sort_by(|a, b| a.name.cmp(&b.name));
            t.indexes.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }

    /// A short stable hash of the whole model, to tell cheaply whether anything changed.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).expect("the model serialises");
        hex::encode(&Sha256::digest(&json)[..12])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub schema: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumType {
    pub schema: String,
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    pub schema: String,
    pub name: String,
    pub data_type: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cycle: bool,
    /// Absent in snapshots written before the cache size was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<i64>,
    /// `schema.table.column`, quoted, of a serial column that owns it (`table.column` in
    /// snapshots written before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    pub schema: String,
    pub name: String,
    /// The identity arguments, e.g. `a integer, b text`.
    pub arguments: String,
    /// The complete `CREATE OR REPLACE FUNCTION` statement.
    pub definition: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub security_definer: bool,
    /// `SET` clauses (`proconfig`), e.g. `search_path=pg_catalog, public`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub columns: Vec<Column>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<Key>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uniques: Vec<Key>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Index>,
    /// SQLite only: the normalised `CREATE TABLE` statement, which is how SQLite keeps a
    /// table's definition and what recreates it exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

impl Table {
    pub fn qualified(&self) -> String {
        if self.schema.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// Canonical type: `format_type()` on PostgreSQL (`character varying(50)`,
    /// `timestamp with time zone`, `integer[]`), the declared type upper-cased on SQLite.
    pub data_type: String,
    pub nullable: bool,
    /// PostgreSQL: the column's collation when it is not its type's default, quoted as
    /// `COLLATE` takes it (`"C"`, `public."de-x-icu"`). SQLite keeps collations in the
    /// table's statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// `always` or `by default` for identity columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The expression of a generated column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
}

/// A primary key or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub name: String,
    pub columns: Vec<String>,
    /// The database's rendering, e.g. `UNIQUE NULLS NOT DISTINCT (a, b)`.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub references: String,
    pub referenced_columns: Vec<String>,
    pub on_delete: String,
    pub on_update: String,
    pub deferrable: bool,
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    /// `CHECK (…)` as the database renders it.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// Everything that makes the index what it is, without its name and table: method, key
    /// expressions with order, INCLUDE and the partial predicate, e.g.
    /// `USING btree (client_did, created_at DESC) WHERE (revoked = true)`.
    pub shape: String,
    /// The full statement that creates it.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub schema: String,
    pub name: String,
    pub materialized: bool,
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub definition: String,
}
