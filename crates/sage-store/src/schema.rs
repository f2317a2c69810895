use sage_migrate::{Dialect, MigrationSet};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_migrations.rs"));
}

/// The PostgreSQL schema version this build of the store reads and writes.
pub const SCHEMA_VERSION_POSTGRES: i64 = 7;
/// The SQLite schema version this build of the store reads and writes.
pub const SCHEMA_VERSION_SQLITE: i64 = 2;

#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub(crate) fn expected_version(dialect: Dialect) -> i64 {
    match dialect {
        Dialect::Postgres => SCHEMA_VERSION_POSTGRES,
        Dialect::Sqlite => SCHEMA_VERSION_SQLITE,
    }
}

/// The committed snapshot (`schema.json`) of what SAGE's migrations produce for `dialect`,
/// as compiled into this binary.
pub fn snapshot(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Postgres => embedded::POSTGRES_SNAPSHOT,
        Dialect::Sqlite => embedded::SQLITE_SNAPSHOT,
    }
}

/// SAGE's own migrations for `dialect`, as compiled into this binary.
pub fn migrations(dialect: Dialect) -> MigrationSet {
    let files = match dialect {
        Dialect::Postgres => embedded::POSTGRES,
        Dialect::Sqlite => embedded::SQLITE,
    };
    MigrationSet::from_embedded(files, dialect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sets_parse_and_end_at_the_schema_version() {
        let pg = migrations(Dialect::Postgres);
        assert!(pg.problems.is_empty(), "{:?}", pg.problems);
        assert_eq!(pg.latest_version(), Some(SCHEMA_VERSION_POSTGRES));
        assert!(pg.migrations.iter().all(|m| m.down.is_some()), "every SAGE migration is reversible");
        let lite = migrations(Dialect::Sqlite);
        assert!(lite.problems.is_empty(), "{:?}", lite.problems);
        assert_eq!(lite.latest_version(), Some(SCHEMA_VERSION_SQLITE));
    }
}
