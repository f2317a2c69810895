//! Reading a live database into the [`Schema`](crate::Schema) model.

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "postgres")]
pub(crate) mod postgres_objects;
pub(crate) mod postgres_types;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// Tables that hold migration bookkeeping rather than schema; never part of a model.
pub const BOOKKEEPING_TABLES: [&str; 5] =
    ["sage_schema_history", "schema_migrations", "_sqlx_migrations", "sage_schema_validation", "sage_seed_history"];
