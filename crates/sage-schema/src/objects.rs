//! The kinds of the model beyond tables, columns, constraints, indexes, views, functions and
//! triggers: who owns and may use what (owners, grants, default privileges), row-level
//! security and policies, comments, how relations are stored and partitioned, and identity
//! sequences. All PostgreSQL only.
//!
//! Role names are kept relative where a literal name would differ between the scratch
//! database a snapshot comes from and the live database: the role that owns the database
//! is `(database owner)`, and an object's own owner in its grants is `(owner)`. Other roles
//! keep their names, so a grant to `app_reader` compares with a grant to `app_reader`.

use serde::{Deserialize, Serialize};

/// The kinds a PostgreSQL introspection records beyond the base model, by finding kind. A
/// snapshot lists the ones it recorded in [`Schema::recorded`](crate::Schema); a kind it
/// does not list is reported as not checked instead of as drift.
pub const RECORDED_KINDS: [&str; 16] = [
    "type",
    "collation",
    "owner",
    "grant",
    "default privilege",
    "row level security",
    "policy",
    "security definer",
    "function setting",
    "comment",
    "partition key",
    "partition",
    "inheritance",
    "persistence",
    "relation option",
    "identity",
];

/// Owner of a table, view, sequence, function, type or schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// `table`, `view`, `materialized view`, `sequence`, `function`, `type`, `schema`, …
    pub kind: String,
    /// The object's identity, e.g. `public.accounts` or `public.add_one(integer)`.
    pub object: String,
    pub owner: String,
    /// The object as DDL names it, quoted (functions with their argument types).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
}

/// The privileges one grantee holds on one object (an entry of its ACL, or of the default
/// ACL when it has none). Privileges held with grant option end in `*`, e.g. `SELECT*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `table`, `sequence`, `column`, `function`, `schema`, `type`, …
    pub kind: String,
    pub object: String,
    /// A role name, `PUBLIC`, `(owner)` or `(database owner)`.
    pub grantee: String,
    pub privileges: Vec<String>,
    /// The object as `GRANT … ON` names it, quoted; for a column, its table.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// The quoted column of a column grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
}

/// `ALTER DEFAULT PRIVILEGES`: what objects `role` creates (in `schema`, or anywhere when
/// empty) grant to `grantee`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPrivilege {
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schema: String,
    /// `tables`, `sequences`, `functions`, `types` or `schemas`.
    pub objects: String,
    pub grantee: String,
    pub privileges: Vec<String>,
}

/// Row-level security of a table where it is on (tables not listed have it off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSecurity {
    pub schema: String,
    pub table: String,
    pub enabled: bool,
    /// `FORCE ROW LEVEL SECURITY`: the table's owner is subject to the policies too.
    pub forced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `ALL`, `SELECT`, `INSERT`, `UPDATE` or `DELETE`.
    pub command: String,
    pub permissive: bool,
    /// Sorted role names; `PUBLIC` for everyone.
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub using: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_check: Option<String>,
}

impl Policy {
    pub fn key(&self) -> String {
        format!("{}.{}.{}", self.schema, self.table, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// As `pg_identify_object` names it: `table`, `table column`, `function`, `index`, …
    pub kind: String,
    pub object: String,
    pub text: String,
}

/// What a relation is beyond its columns and constraints, when any of it is not the
/// default: partitioning, inheritance, persistence and storage or view options. A
/// partition is described here only (its columns, constraints and indexes are its
/// parent's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    /// `PARTITION BY …` of a partitioned table, as `pg_get_partkeydef` renders it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// The parent of a partition, qualified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
    /// `FOR VALUES …` or `DEFAULT` of a partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    /// Parents of an inheritance child, qualified, in inheritance order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unlogged: bool,
    /// Storage parameters and view options, e.g. `fillfactor=70`, `security_barrier=true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Relation {
    pub fn key(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The sequence behind an identity column, with every option.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub schema: String,
    pub table: String,
    pub column: String,
    pub sequence: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
}

/// A domain, composite or range type, or a collation, as the statement that creates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDef {
    pub schema: String,
    pub name: String,
    /// `domain`, `composite`, `range` or `collation`.
    pub kind: String,
    pub definition: String,
}
