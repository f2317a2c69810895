//! Bookkeeping tables of other migration tools (peers). SAGE DB reads them on every run:
//! what the peer applied since the last run is recorded as applied (not run again), what it
//! reverted is recorded as reverted, and every step SAGE DB takes is written into the peer's
//! table exactly as the peer would write it, so both tools can be used on one database.

use std::collections::BTreeSet;

use chrono::Utc;

use crate::history::MISMATCH_AT_ADOPTION;
use crate::plan::{Finding, FindingKind, Severity};
use crate::{HistoryRow, Migration, MigrationSet, RowState};

/// A migration tool whose bookkeeping SAGE DB keeps in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    GolangMigrate,
    Sqlx,
    Dbmate,
}

impl Peer {
    pub fn name(self) -> &'static str {
        match self {
            Peer::GolangMigrate => "golang-migrate",
            Peer::Sqlx => "sqlx",
            Peer::Dbmate => "dbmate",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Peer::GolangMigrate | Peer::Dbmate => "schema_migrations",
            Peer::Sqlx => "_sqlx_migrations",
        }
    }
}

impl std::str::FromStr for Peer {
    type Err = String;

    fn from_str(s: &str) -> Result<Peer, String> {
        match s {
            "golang-migrate" => Ok(Peer::GolangMigrate),
            "sqlx" => Ok(Peer::Sqlx),
            "dbmate" => Ok(Peer::Dbmate),
            other => Err(format!("unknown tool {other:?}; expected golang-migrate, sqlx or dbmate")),
        }
    }
}

/// What another tool has recorded, as read from its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyTable {
    /// golang-migrate's `schema_migrations(version bigint, dirty boolean)`: one row at most.
    GolangMigrate { version: Option<i64>, dirty: bool },
    /// sqlx's `_sqlx_migrations`: one row per migration.
    Sqlx { rows: Vec<SqlxRow> },
    /// dbmate's `schema_migrations(version varchar)`: one row per migration, the version as
    /// the file name spells it (`001`).
    Dbmate { versions: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlxRow {
    pub version: i64,
    pub success: bool,
    pub checksum: Vec<u8>,
}

impl LegacyTable {
    pub fn peer(&self) -> Peer {
        match self {
            LegacyTable::GolangMigrate { .. } => Peer::GolangMigrate,
            LegacyTable::Sqlx { .. } => Peer::Sqlx,
            LegacyTable::Dbmate { .. } => Peer::Dbmate,
        }
    }

    pub fn tool(&self) -> &'static str {
        self.peer().name()
    }

    pub fn table(&self) -> &'static str {
        self.peer().table()
    }

    /// The empty table `--keep-in-step` creates.
    pub fn empty(peer: Peer) -> LegacyTable {
        match peer {
            Peer::GolangMigrate => LegacyTable::GolangMigrate { version: None, dirty: false },
            Peer::Sqlx => LegacyTable::Sqlx { rows: Vec::new() },
            Peer::Dbmate => LegacyTable::Dbmate { versions: Vec::new() },
        }
    }

    /// Whether the table records no migration at all (as the peer leaves it on a database
    /// it created but never migrated, or as `--keep-in-step` creates it).
    pub fn records_nothing(&self) -> bool {
        *self == LegacyTable::empty(self.peer())
    }
}

/// A change to a peer's table that mirrors one step of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacySync {
    /// Creates the peer's table as the peer creates it.
    Create(Peer),
    GolangSetVersion {
        version: Option<i64>,
        dirty: bool,
    },
    /// Inserts a successful row, or marks a failed one successful (what `force` does).
    SqlxInsert {
        version: i64,
        description: String,
        checksum: Vec<u8>,
        execution_ns: i64,
    },
    SqlxDelete {
        version: i64,
    },
    /// The version as dbmate writes it: the file name's leading digits.
    DbmateInsert {
        version: String,
    },
    DbmateDelete {
        version: String,
    },
}

/// The version as the migration's file name spells it (`001` in `001_init.sql`), which is
/// what dbmate stores.
pub(crate) fn version_text(m: &Migration) -> String {
    let file = m.up.origin.rsplit(['/', '\\']).next().unwrap_or(&m.up.origin);
    let digits: String = file.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        m.version.to_string()
    } else {
        digits
    }
}

/// What the peers' tables say that our history does not: rows to add (applied by a peer),
/// versions to remove (reverted by a peer), and findings (dirty or failed states, and
/// records that no step of a peer could have left).
#[derive(Debug, Default)]
pub(crate) struct Reconciled {
    pub add: Vec<HistoryRow>,
    pub remove: Vec<i64>,
    pub notices: Vec<String>,
    pub findings: Vec<Finding>,
}

impl Reconciled {
    /// A dirty or failed peer: nothing may run until an operator has looked.
    pub fn blocking(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.kind == FindingKind::PeerDirty)
    }

    /// Applies the changes to an in-memory history.
    pub fn apply_to(&self, history: &mut Vec<HistoryRow>) {
        history.retain(|r| !self.remove.contains(&r.version));
        for row in &self.add {
            history.retain(|r| r.version != row.version);
            history.push(row.clone());
        }
        history.sort_by_key(|r| r.version);
    }
}

pub(crate) fn reconcile(legacy: &[LegacyTable], set: &MigrationSet, history: &[HistoryRow]) -> Reconciled {
    let mut out = Reconciled::default();
    let mut ours: BTreeSet<i64> = history.iter().filter(|r| r.state.is_complete()).map(|r| r.version).collect();
    // A failed or running row of ours is not the peer's to settle.
    let unsettled: BTreeSet<i64> = history.iter().filter(|r| !r.state.is_complete()).map(|r| r.version).collect();
    for table in legacy {
        let tool = table.tool();
        let peer = match peer_versions(table, set, &ours, &unsettled) {
            Ok(peer) => peer,
            Err(findings) => {
                out.findings.extend(findings);
                continue;
            }
        };
        let added: Vec<i64> = peer.difference(&ours).copied().filter(|v| !unsettled.contains(v)).collect();
        let removed: Vec<i64> = ours.difference(&peer).copied().collect();
        // A peer reverts from the newest down; a gap below what it still has is not its doing.
        let peer_max = peer.iter().next_back().copied();
        if let Some(low) = removed.iter().find(|v| peer_max.is_some_and(|max| **v < max)) {
            out.findings.push(finding(
                FindingKind::PeerConflict,
                Some(*low),
                format!(
                    "{tool}'s {} lacks version {low}, which SAGE DB applied, but has newer ones; no {tool} command leaves that, so neither record was changed",
                    table.table()
                ),
            ));
            continue;
        }
        out.add.extend(adopted_rows(table, set, &added));
        if !added.is_empty() {
            out.notices.push(format!("{tool} applied {} since; recorded as applied, not run again", list(&added)));
        }
        if !removed.is_empty() {
            out.notices.push(format!("{tool} reverted {}; recorded as reverted", list(&removed)));
        }
        out.remove.extend(&removed);
        ours = peer;
    }
    out
}

fn finding(kind: FindingKind, version: Option<i64>, message: String) -> Finding {
    Finding { kind, severity: Severity::Error, version, file: None, message }
}

/// The versions `table` records as applied, as a set SAGE DB's history can be compared
/// with; or the findings that leave it unread (none when its dirty row is SAGE DB's own
/// unfinished migration, which our history already says how to resume).
fn peer_versions(
    table: &LegacyTable,
    set: &MigrationSet,
    ours: &BTreeSet<i64>,
    unsettled: &BTreeSet<i64>,
) -> Result<BTreeSet<i64>, Vec<Finding>> {
    let peer = match table {
        // SAGE DB marks golang-migrate's row dirty while it runs a no-transaction
        // migration; its own `running` or `failed` row says how to resume that one.
        LegacyTable::GolangMigrate { version: Some(v), dirty: true } if unsettled.contains(v) => return Err(Vec::new()),
        LegacyTable::GolangMigrate { version: Some(v), dirty: true } => {
            let before = set.migrations.iter().map(|m| m.version).filter(|x| x < v).max().unwrap_or(0);
            return Err(vec![finding(
                FindingKind::PeerDirty,
                Some(*v),
                format!(
                    "golang-migrate left this database dirty at version {v}: that migration failed part-way and what ran of it is unknown; \
                     check the schema, then force version {v} if it is fully applied or version {before} if none of it is"
                ),
            )]);
        }
        LegacyTable::GolangMigrate { version: None, dirty: true } => {
            return Err(vec![finding(
                FindingKind::PeerDirty,
                None,
                "golang-migrate left this database dirty while going to no version; check the schema, then force the version it is at".into(),
            )]);
        }
        LegacyTable::GolangMigrate { version, dirty: false } => {
            let current = version.filter(|v| *v >= 0);
            if let Some(v) = current {
                if set.get(v).is_none() {
                    return Err(vec![finding(
                        FindingKind::PeerConflict,
                        Some(v),
                        format!("golang-migrate records version {v}, but no migration file has that version; migrate from the directory this database was migrated from"),
                    )]);
                }
            }
            // golang-migrate moves one step at a time from the version it records: up
            // applies every file above it, down reverts every file above the target.
            let ours_max = ours.iter().next_back().copied();
            let mut peer = ours.clone();
            match (current, ours_max) {
                (Some(v), Some(max)) if v > max => {
                    peer.extend(set.migrations.iter().map(|m| m.version).filter(|x| *x > max && *x <= v));
                }
                (Some(v), None) => peer.extend(set.migrations.iter().map(|m| m.version).filter(|x| *x <= v)),
                (Some(v), Some(max)) if v < max => peer.retain(|x| *x <= v),
                (None, Some(_)) => peer.clear(),
                _ => {}
            }
            peer
        }
        LegacyTable::Sqlx { rows } => {
            if let Some(bad) = rows.iter().find(|r| !r.success) {
                return Err(vec![finding(
                    FindingKind::PeerDirty,
                    Some(bad.version),
                    format!(
                        "sqlx marks migration {} as failed (success = false): it ran part-way; check the schema, then force version {} if it is fully applied or the version before it if none of it is",
                        bad.version, bad.version
                    ),
                )]);
            }
            rows.iter().map(|r| r.version).collect()
        }
        LegacyTable::Dbmate { versions } => {
            let mut parsed = BTreeSet::new();
            let mut findings = Vec::new();
            for text in versions {
                match text.parse::<i64>() {
                    Ok(v) => {
                        parsed.insert(v);
                    }
                    Err(_) => {
                        findings.push(finding(
                            FindingKind::PeerConflict,
                            None,
                            format!("dbmate's schema_migrations holds {text:?}, which is not a version number"),
                        ));
                    }
                }
            }
            if !findings.is_empty() {
                return Err(findings);
            }
            parsed
        }
    };
    Ok(peer)
}

/// History rows for the versions a peer applied: adopted, not run again; a sqlx row whose
/// checksum is not the file's keeps the mismatch visible.
fn adopted_rows(table: &LegacyTable, set: &MigrationSet, added: &[i64]) -> Vec<HistoryRow> {
    let tool = table.tool();
    let mut adopted = Vec::new();
    for &v in added {
        let m = set.get(v);
        let checksum = match (table, m) {
            (LegacyTable::Sqlx { rows }, Some(m)) => {
                let recorded = rows.iter().find(|r| r.version == v).map(|r| r.checksum.as_slice());
                if recorded == Some(m.sqlx_checksum.as_slice()) {
                    m.checksum.clone()
                } else {
                    MISMATCH_AT_ADOPTION.to_string()
                }
            }
            (_, Some(m)) => m.checksum.clone(),
            (_, None) => String::new(),
        };
        adopted.push(HistoryRow {
            version: v,
            name: m.map(|m| m.name.clone()).unwrap_or_else(|| "(no file)".into()),
            checksum,
            state: RowState::Adopted,
            applied_at: Utc::now(),
            execution_ms: 0,
            applied_by: tool.to_string(),
            statements_done: 0,
            error: None,
        });
    }
    adopted
}

fn list(versions: &[i64]) -> String {
    let words: Vec<String> = versions.iter().map(i64::to_string).collect();
    format!("{} {}", if versions.len() == 1 { "migration" } else { "migrations" }, words.join(", "))
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
            LegacyTable::Dbmate { .. } if applied => {
                LegacySync::DbmateInsert { version: set.get(version).map_or(version.to_string(), version_text) }
            }
            LegacyTable::Dbmate { versions } => {
                // Delete the row as dbmate spelled it, whatever the padding.
                let text = versions
                    .iter()
                    .find(|t| t.parse::<i64>().ok() == Some(version))
                    .cloned()
                    .unwrap_or_else(|| set.get(version).map_or(version.to_string(), version_text));
                LegacySync::DbmateDelete { version: text }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dialect;

    fn set() -> MigrationSet {
        MigrationSet::from_embedded(
            &[("001_a.up.sql", "SELECT 1;"), ("002_b.up.sql", "SELECT 2;"), ("003_c.up.sql", "SELECT 3;")],
            Dialect::Postgres,
        )
    }

    fn history(versions: &[i64]) -> Vec<HistoryRow> {
        let s = set();
        versions
            .iter()
            .map(|v| HistoryRow {
                version: *v,
                name: String::new(),
                checksum: s.get(*v).unwrap().checksum.clone(),
                state: RowState::Applied,
                applied_at: Utc::now(),
                execution_ms: 0,
                applied_by: "me".into(),
                statements_done: 0,
                error: None,
            })
            .collect()
    }

    #[test]
    fn golang_version_adopts_everything_up_to_it() {
        let r = reconcile(&[LegacyTable::GolangMigrate { version: Some(2), dirty: false }], &set(), &[]);
        assert_eq!(r.add.iter().map(|r| r.version).collect::<Vec<_>>(), [1, 2]);
        assert!(r.add.iter().all(|r| r.state == RowState::Adopted && r.applied_by == "golang-migrate"));
    }

    #[test]
    fn golang_steps_since_the_last_run_are_followed() {
        let up = reconcile(&[LegacyTable::GolangMigrate { version: Some(3), dirty: false }], &set(), &history(&[1, 2]));
        assert_eq!(up.add.iter().map(|r| r.version).collect::<Vec<_>>(), [3]);
        let down =
            reconcile(&[LegacyTable::GolangMigrate { version: Some(1), dirty: false }], &set(), &history(&[1, 2, 3]));
        assert_eq!(down.remove, [2, 3]);
        let none = reconcile(&[LegacyTable::GolangMigrate { version: None, dirty: false }], &set(), &history(&[1]));
        assert_eq!(none.remove, [1]);
    }

    #[test]
    fn dirty_golang_table_needs_an_operator() {
        let r = reconcile(&[LegacyTable::GolangMigrate { version: Some(2), dirty: true }], &set(), &[]);
        let f = r.blocking().unwrap();
        assert!(f.message.contains("force version 2") && f.message.contains("version 1 if none"), "{}", f.message);
    }

    #[test]
    fn golang_dirty_row_of_our_own_interrupted_run_does_not_block_its_resumption() {
        let mut ours = history(&[1]);
        ours.push(HistoryRow { version: 2, state: RowState::Running, ..ours[0].clone() });
        let r = reconcile(&[LegacyTable::GolangMigrate { version: Some(2), dirty: true }], &set(), &ours);
        assert!(r.blocking().is_none());
        assert!(r.add.is_empty() && r.remove.is_empty());
    }

    #[test]
    fn sqlx_and_dbmate_rows_are_followed_and_gaps_are_conflicts() {
        let s = set();
        let rows = vec![
            SqlxRow { version: 1, success: true, checksum: s.get(1).unwrap().sqlx_checksum.clone() },
            SqlxRow { version: 2, success: true, checksum: vec![0; 48] },
        ];
        let r = reconcile(&[LegacyTable::Sqlx { rows }], &s, &[]);
        assert_eq!(r.add[0].checksum, s.get(1).unwrap().checksum);
        assert_eq!(r.add[1].checksum, MISMATCH_AT_ADOPTION);
        let r = reconcile(&[LegacyTable::Dbmate { versions: vec!["001".into()] }], &s, &history(&[1, 2]));
        assert_eq!(r.remove, [2]);
        let r =
            reconcile(&[LegacyTable::Dbmate { versions: vec!["001".into(), "003".into()] }], &s, &history(&[1, 2, 3]));
        assert!(r.remove.is_empty());
        assert_eq!(r.findings[0].kind, FindingKind::PeerConflict);
        let failed = vec![SqlxRow { version: 1, success: false, checksum: vec![] }];
        assert!(reconcile(&[LegacyTable::Sqlx { rows: failed }], &s, &[]).blocking().is_some());
    }

    #[test]
    fn dbmate_rows_keep_the_file_names_padding() {
        let s = set();
        let sync = sync_for(&[LegacyTable::Dbmate { versions: vec![] }], &s, 2, true, &[1, 2], 0);
        assert_eq!(sync, [LegacySync::DbmateInsert { version: "002".into() }]);
        let sync = sync_for(&[LegacyTable::Dbmate { versions: vec!["2".into()] }], &s, 2, false, &[1], 0);
        assert_eq!(sync, [LegacySync::DbmateDelete { version: "2".into() }]);
    }
}
