//! Bookkeeping tables of other migration tools. SAGE DB adopts them on first contact and
//! keeps them in step afterwards, so the previous tool still reports the right version.

use chrono::Utc;

use crate::history::MISMATCH_AT_ADOPTION;
use crate::{Error, ErrorKind, HistoryRow, MigrationSet, RowState};

/// What another tool has recorded, as read from its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyTable {
    /// golang-migrate's `schema_migrations(version bigint, dirty boolean)`: one row at most.
    GolangMigrate { version: Option<i64>, dirty: bool },
    /// sqlx's `_sqlx_migrations`: one row per migration.
    Sqlx { rows: Vec<SqlxRow> },
    /// dbmate's `schema_migrations(version varchar)`: one row per migration.
    Dbmate { versions: Vec<i64> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlxRow {
    pub version: i64,
    pub success: bool,
    pub checksum: Vec<u8>,
}

impl LegacyTable {
    pub fn tool(&self) -> &'static str {
        match self {
            LegacyTable::GolangMigrate { .. } => "golang-migrate",
            LegacyTable::Sqlx { .. } => "sqlx",
            LegacyTable::Dbmate { .. } => "dbmate",
        }
    }

    pub fn table(&self) -> &'static str {
        match self {
            LegacyTable::GolangMigrate { .. } | LegacyTable::Dbmate { .. } => "schema_migrations",
            LegacyTable::Sqlx { .. } => "_sqlx_migrations",
        }
    }
}

/// A change to a legacy table that mirrors one step of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacySync {
    GolangSetVersion { version: Option<i64>, dirty: bool },
    SqlxInsert { version: i64, description: String, checksum: Vec<u8>, execution_ns: i64 },
    SqlxDelete { version: i64 },
    DbmateInsert { version: i64 },
    DbmateDelete { version: i64 },
}

/// The history rows that record what `legacy` says is applied. Refuses when the other tool
/// left the database dirty: what ran of that migration is unknown, and only an operator can
/// tell (`sage-db migrate force`).
pub(crate) fn adopt(legacy: &LegacyTable, set: &MigrationSet, applied_by: &str) -> Result<Vec<HistoryRow>, Error> {
    let row = |version: i64, checksum: String| {
        let name = set.get(version).map(|m| m.name.clone()).unwrap_or_else(|| "(no file)".into());
        HistoryRow {
            version,
            name,
            checksum,
            state: RowState::Adopted,
            applied_at: Utc::now(),
            execution_ms: 0,
            applied_by: applied_by.to_string(),
            statements_done: 0,
            error: None,
        }
    };
    let file_checksum = |version: i64| set.get(version).map(|m| m.checksum.clone()).unwrap_or_default();
    match legacy {
        LegacyTable::GolangMigrate { version: None, .. } => Ok(Vec::new()),
        LegacyTable::GolangMigrate { version: Some(version), dirty: true } => Err(Error::new(
            ErrorKind::State,
            format!(
                "golang-migrate left this database dirty at version {version}: that migration failed part-way and what ran of it is unknown; \
                 check the schema, then run `sage-db migrate force {version}` if it is fully applied or `sage-db migrate force {}` if none of it is",
                set.migrations.iter().map(|m| m.version).filter(|v| v < version).max().unwrap_or(0)
            ),
        )),
        LegacyTable::GolangMigrate { version: Some(current), dirty: false } => {
            if set.get(*current).is_none() {
                return Err(Error::new(
                    ErrorKind::State,
                    format!("golang-migrate records version {current}, but no migration file has that version; point --source at the directory this database was migrated from"),
                ));
            }
            Ok(set
                .migrations
                .iter()
                .filter(|m| m.version <= *current)
                .map(|m| row(m.version, m.checksum.clone()))
                .collect())
        }
        LegacyTable::Sqlx { rows } => {
            if let Some(bad) = rows.iter().find(|r| !r.success) {
                return Err(Error::new(
                    ErrorKind::State,
                    format!("sqlx marks migration {} as partially applied; check the schema, then run `sage-db migrate force` with the last fully applied version", bad.version),
                ));
            }
            Ok(rows
                .iter()
                .map(|r| {
                    let checksum = match set.get(r.version) {
                        Some(m) if m.sqlx_checksum == r.checksum => m.checksum.clone(),
                        Some(_) => MISMATCH_AT_ADOPTION.to_string(),
                        None => String::new(),
                    };
                    row(r.version, checksum)
                })
                .collect())
        }
        LegacyTable::Dbmate { versions } => Ok(versions.iter().map(|v| row(*v, file_checksum(*v))).collect()),
    }
}

/// The changes that mirror applying (`applied = true`) or reverting `version` into each
/// legacy table, given the versions complete afterwards.
pub(crate) fn sync_for(
    legacy: &[LegacyTable],
    set: &MigrationSet,
    version: i64,
    applied: bool,
    complete_after: &[i64],
    execution_ns: i64,
) -> Vec<LegacySync> {
    legacy
        .iter()
        .map(|table| match table {
            LegacyTable::GolangMigrate { .. } => {
                LegacySync::GolangSetVersion { version: complete_after.iter().copied().max(), dirty: false }
            }
            LegacyTable::Sqlx { .. } if applied => {
                let m = set.get(version);
                LegacySync::SqlxInsert {
                    version,
                    description: m.map(|m| m.name.replace('_', " ")).unwrap_or_default(),
                    checksum: m.map(|m| m.sqlx_checksum.clone()).unwrap_or_default(),
                    execution_ns,
                }
            }
            LegacyTable::Sqlx { .. } => LegacySync::SqlxDelete { version },
            LegacyTable::Dbmate { .. } if applied => LegacySync::DbmateInsert { version },
            LegacyTable::Dbmate { .. } => LegacySync::DbmateDelete { version },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dialect;

    fn set() -> MigrationSet {
        MigrationSet::from_embedded(
            &[("1_a.up.sql", "SELECT 1;"), ("2_b.up.sql", "SELECT 2;"), ("3_c.up.sql", "SELECT 3;")],
            Dialect::Postgres,
        )
    }

    #[test]
    fn golang_version_adopts_everything_up_to_it() {
        let rows = adopt(&LegacyTable::GolangMigrate { version: Some(2), dirty: false }, &set(), "me").unwrap();
        assert_eq!(rows.iter().map(|r| r.version).collect::<Vec<_>>(), [1, 2]);
        assert!(rows.iter().all(|r| r.state == RowState::Adopted));
    }

    #[test]
    fn dirty_golang_table_needs_an_operator() {
        let err = adopt(&LegacyTable::GolangMigrate { version: Some(2), dirty: true }, &set(), "me").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::State);
        assert!(err.to_string().contains("force 2"), "{err}");
        assert!(err.to_string().contains("force 1"), "{err}");
    }

    #[test]
    fn sqlx_checksum_mismatch_shows_as_edited() {
        let s = set();
        let rows = vec![
            SqlxRow { version: 1, success: true, checksum: s.get(1).unwrap().sqlx_checksum.clone() },
            SqlxRow { version: 2, success: true, checksum: vec![0; 48] },
        ];
        let adopted = adopt(&LegacyTable::Sqlx { rows }, &s, "me").unwrap();
        assert_eq!(adopted[0].checksum, s.get(1).unwrap().checksum);
        assert_eq!(adopted[1].checksum, MISMATCH_AT_ADOPTION);
    }
}
