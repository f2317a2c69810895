//! Pure planning and validation: what the files say against what the database recorded.
//! No I/O happens here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{Error, HistoryRow, Migration, MigrationSet, RowState};

/// How far `up`, `down` or `goto` should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Up: every pending migration. Down: every applied migration.
    Latest,
    /// This many migrations.
    Steps(u32),
    /// Up: apply through this version. Down: revert everything above it (0 reverts all).
    Version(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A file that looks like a migration but cannot be read as one.
    Unparsable,
    /// A name that looks like a migration but leads to no file: a dangling symlink or a
    /// symlink loop.
    Unreadable,
    /// Two files claim one version.
    DuplicateVersion,
    /// An applied migration's file changed since it was applied.
    Edited,
    /// An applied migration has no file any more.
    Missing,
    /// A file older than the newest applied migration has not been applied.
    OutOfOrder,
    /// A no-transaction migration stopped part-way; `up` resumes it.
    Partial,
    /// Another tool (golang-migrate, sqlx) left a migration dirty or failed; nothing runs
    /// until an operator has looked and used `force`.
    PeerDirty,
    /// Another tool's table records something none of its commands could have left beside
    /// our history (a gap, a version without a file); neither record is changed.
    PeerConflict,
}

/// One problem found by validation. Findings are data: validation reports all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub message: String,
}

impl Finding {
    pub(crate) fn file(kind: FindingKind, file: &str, message: String) -> Finding {
        Finding { kind, severity: Severity::Error, version: None, file: Some(file.to_string()), message }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Where one migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationState {
    Applied,
    Baseline,
    Adopted,
    Pending,
    Edited,
    Missing,
    OutOfOrder,
    Partial,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Applied => "applied",
            MigrationState::Baseline => "baseline",
            MigrationState::Adopted => "adopted",
            MigrationState::Pending => "pending",
            MigrationState::Edited => "edited",
            MigrationState::Missing => "missing",
            MigrationState::OutOfOrder => "out-of-order",
            MigrationState::Partial => "partial",
        }
    }
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusEntry {
    pub version: i64,
    pub name: String,
    pub state: MigrationState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_ms: Option<i64>,
}

/// Every migration known to the files or the history, in version order, with its state.
pub fn status(set: &MigrationSet, history: &[HistoryRow]) -> Vec<StatusEntry> {
    let rows: BTreeMap<i64, &HistoryRow> = history.iter().map(|r| (r.version, r)).collect();
    let newest_complete = history.iter().filter(|r| r.state.is_complete()).map(|r| r.version).max();
    let mut versions: Vec<i64> = set.migrations.iter().map(|m| m.version).chain(rows.keys().copied()).collect();
    versions.sort_unstable();
    versions.dedup();
    versions
        .into_iter()
        .map(|version| {
            let file = set.get(version);
            let row = rows.get(&version).copied();
            let state = match (file, row) {
                (Some(_), Some(r)) if !r.state.is_complete() => MigrationState::Partial,
                (Some(m), Some(r)) if r.checksum != m.checksum => MigrationState::Edited,
                (Some(_), Some(r)) => match r.state {
                    RowState::Baseline => MigrationState::Baseline,
                    RowState::Adopted => MigrationState::Adopted,
                    _ => MigrationState::Applied,
                },
                (None, Some(_)) => MigrationState::Missing,
                (Some(_), None) if newest_complete.is_some_and(|n| version < n) => MigrationState::OutOfOrder,
                (Some(_), None) => MigrationState::Pending,
                (None, None) => unreachable!("version came from the files or the history"),
            };
            StatusEntry {
                version,
                name: file.map(|m| m.name.clone()).or_else(|| row.map(|r| r.name.clone())).unwrap_or_default(),
                state,
                file: file.map(|m| m.label().to_string()),
                applied_at: row.map(|r| r.applied_at),
                execution_ms: row.map(|r| r.execution_ms),
            }
        })
        .collect()
}

/// Every problem with the files and the history, all at once.
pub fn findings(set: &MigrationSet, history: &[HistoryRow], allow_out_of_order: bool) -> Vec<Finding> {
    let mut out = set.problems.clone();
    let rows: BTreeMap<i64, &HistoryRow> = history.iter().map(|r| (r.version, r)).collect();
    for entry in status(set, history) {
        let file = entry.file.clone();
        let finding = |kind, severity, message: String| Finding {
            kind,
            severity,
            version: Some(entry.version),
            file: file.clone(),
            message,
        };
        match entry.state {
            MigrationState::Edited => out.push(finding(
                FindingKind::Edited,
                Severity::Error,
                "changed after it was applied (its checksum differs from the recorded one); revert the edit, or accept it with a repair".into(),
            )),
            MigrationState::Missing => out.push(Finding {
                kind: FindingKind::Missing,
                severity: Severity::Warning,
                version: Some(entry.version),
                file: None,
                message: format!(
                    "version {} ({}) is applied but its file is missing from the migration directory",
                    entry.version, entry.name
                ),
            }),
            MigrationState::OutOfOrder => out.push(finding(
                FindingKind::OutOfOrder,
                if allow_out_of_order { Severity::Warning } else { Severity::Error },
                "is older than the newest applied migration but was never applied; renumber it, or apply it out of order".into(),
            )),
            MigrationState::Partial => {
                let row = rows[&entry.version];
                out.push(finding(
                    FindingKind::Partial,
                    Severity::Warning,
                    format!(
                        "stopped after {} statement(s){}; migrating up resumes it",
                        row.statements_done,
                        row.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                ))
            }
            _ => {}
        }
    }
    out
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Apply a migration, skipping the first `resume_at` statements of a no-transaction
    /// migration that stopped part-way.
    Apply {
        version: i64,
        resume_at: usize,
    },
    Revert {
        version: i64,
    },
}

/// The migrations `up` applies, in order. Refuses while there are errors among the findings.
pub fn plan_up(
    set: &MigrationSet,
    history: &[HistoryRow],
    target: Target,
    allow_out_of_order: bool,
) -> Result<Vec<Step>, Error> {
    refuse_on_errors(set, history, allow_out_of_order)?;
    if let Target::Version(v) = target {
        if set.get(v).is_none() {
            return Err(Error::UnknownVersion { version: v, zero_allowed: false });
        }
    }
    let rows: BTreeMap<i64, &HistoryRow> = history.iter().map(|r| (r.version, r)).collect();
    let mut steps = Vec::new();
    for m in &set.migrations {
        if let Target::Version(v) = target {
            if m.version > v {
                break;
            }
        }
        if let Target::Steps(n) = target {
            if steps.len() >= n as usize {
                break;
            }
        }
        match rows.get(&m.version) {
            Some(r) if r.state.is_complete() => {}
            Some(r) => steps.push(Step::Apply { version: m.version, resume_at: resume_point(m, r) }),
            None => steps.push(Step::Apply { version: m.version, resume_at: 0 }),
        }
    }
    Ok(steps)
}

/// A no-transaction migration resumes where it stopped, unless its file changed since: then
/// the recorded progress no longer maps onto its statements and it starts over.
fn resume_point(m: &Migration, row: &HistoryRow) -> usize {
    if row.checksum == m.checksum {
        row.statements_done.max(0) as usize
    } else {
        0
    }
}

/// The migrations `down` reverts, newest first. Every one must have a down script.
pub fn plan_down(set: &MigrationSet, history: &[HistoryRow], target: Target) -> Result<Vec<Step>, Error> {
    let mut applied: Vec<&HistoryRow> = history.iter().filter(|r| r.state.is_complete()).collect();
    applied.sort_by_key(|r| std::cmp::Reverse(r.version));
    let chosen: Vec<&HistoryRow> = match target {
        Target::Latest => applied,
        Target::Steps(n) => applied.into_iter().take(n as usize).collect(),
        Target::Version(v) => {
            if v != 0 && set.get(v).is_none() && !history.iter().any(|r| r.version == v) {
                return Err(Error::UnknownVersion { version: v, zero_allowed: false });
            }
            applied.into_iter().filter(|r| r.version > v).collect()
        }
    };
    let mut problems = Vec::new();
    for row in &chosen {
        match set.get(row.version) {
            None => problems.push(format!("version {} ({}): its file is missing", row.version, row.name)),
            Some(m) if m.down.is_none() => problems.push(format!("{}: has no down script", m.label())),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(Error::CannotRevert { problems });
    }
    Ok(chosen.into_iter().map(|r| Step::Revert { version: r.version }).collect())
}

/// `goto V`: up to V when V is ahead, down to V when it is behind.
pub fn plan_goto(
    set: &MigrationSet,
    history: &[HistoryRow],
    version: i64,
    allow_out_of_order: bool,
) -> Result<Vec<Step>, Error> {
    if version != 0 && set.get(version).is_none() {
        return Err(Error::UnknownVersion { version, zero_allowed: false });
    }
    let mut steps = plan_down(set, history, Target::Version(version))?;
    if version > 0 {
        steps.extend(plan_up(set, history, Target::Version(version), allow_out_of_order)?);
    }
    Ok(steps)
}

fn refuse_on_errors(set: &MigrationSet, history: &[HistoryRow], allow_out_of_order: bool) -> Result<(), Error> {
    let errors: Vec<Finding> =
        findings(set, history, allow_out_of_order).into_iter().filter(|f| f.severity == Severity::Error).collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::Refused { findings: errors })
}

/// The version a database is at: the newest complete migration.
pub fn current_version(history: &[HistoryRow]) -> Option<i64> {
    history.iter().filter(|r| r.state.is_complete()).map(|r| r.version).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dialect;
    use chrono::Utc;

    fn set(files: &[(&str, &str)]) -> MigrationSet {
        MigrationSet::from_embedded(files, Dialect::Postgres)
    }

    fn three() -> MigrationSet {
        set(&[
            ("1_a.up.sql", "SELECT 1;"),
            ("1_a.down.sql", "SELECT -1;"),
            ("2_b.up.sql", "SELECT 2;"),
            ("2_b.down.sql", "SELECT -2;"),
            ("3_c.up.sql", "SELECT 3;"),
            ("3_c.down.sql", "SELECT -3;"),
        ])
    }

    fn row(set: &MigrationSet, version: i64) -> HistoryRow {
        HistoryRow {
            version,
            name: set.get(version).map(|m| m.name.clone()).unwrap_or_default(),
            checksum: set.get(version).map(|m| m.checksum.clone()).unwrap_or_default(),
            state: RowState::Applied,
            applied_at: Utc::now(),
            execution_ms: 1,
            applied_by: "t".into(),
            statements_done: 0,
            error: None,
        }
    }

    #[test]
    fn up_applies_pending_in_order_and_respects_targets() {
        let s = three();
        let h = vec![row(&s, 1)];
        let apply = |v| Step::Apply { version: v, resume_at: 0 };
        assert_eq!(plan_up(&s, &h, Target::Latest, false).unwrap(), [apply(2), apply(3)]);
        assert_eq!(plan_up(&s, &h, Target::Steps(1), false).unwrap(), [apply(2)]);
        assert_eq!(plan_up(&s, &h, Target::Version(2), false).unwrap(), [apply(2)]);
        assert_eq!(plan_up(&s, &[row(&s, 1), row(&s, 2), row(&s, 3)], Target::Latest, false).unwrap(), []);
    }

    #[test]
    fn down_reverts_newest_first() {
        let s = three();
        let h = vec![row(&s, 1), row(&s, 2), row(&s, 3)];
        let revert = |v| Step::Revert { version: v };
        assert_eq!(plan_down(&s, &h, Target::Steps(1)).unwrap(), [revert(3)]);
        assert_eq!(plan_down(&s, &h, Target::Version(1)).unwrap(), [revert(3), revert(2)]);
        assert_eq!(plan_down(&s, &h, Target::Latest).unwrap(), [revert(3), revert(2), revert(1)]);
    }

    #[test]
    fn goto_goes_either_way() {
        let s = three();
        let h = vec![row(&s, 1), row(&s, 2)];
        assert_eq!(plan_goto(&s, &h, 3, false).unwrap(), [Step::Apply { version: 3, resume_at: 0 }]);
        assert_eq!(plan_goto(&s, &h, 1, false).unwrap(), [Step::Revert { version: 2 }]);
        assert!(plan_goto(&s, &h, 9, false).is_err());
    }

    #[test]
    fn down_without_down_script_is_refused_up_front() {
        let s = set(&[("1_a.up.sql", "SELECT 1;"), ("2_b.up.sql", "SELECT 2;"), ("2_b.down.sql", "SELECT 2;")]);
        let h = vec![row(&s, 1), row(&s, 2)];
        let err = plan_down(&s, &h, Target::Latest).unwrap_err();
        assert!(err.to_string().contains("1_a.up.sql (embedded): has no down script"), "{err}");
    }

    #[test]
    fn edited_missing_and_out_of_order_are_all_reported() {
        let s = three();
        let mut edited = row(&s, 1);
        edited.checksum = "0".repeat(64);
        let gone = HistoryRow { version: 9, name: "gone".into(), ..row(&s, 3) };
        let h = vec![edited, row(&s, 3), gone];
        let found = findings(&s, &h, false);
        let kinds: Vec<_> = found.iter().map(|f| (f.kind, f.version)).collect();
        assert_eq!(
            kinds,
            [(FindingKind::Edited, Some(1)), (FindingKind::OutOfOrder, Some(2)), (FindingKind::Missing, Some(9))]
        );
        let err = plan_up(&s, &h, Target::Latest, false).unwrap_err();
        assert!(err.to_string().contains("1_a.up.sql") && err.to_string().contains("2_b.up.sql"), "{err}");
    }

    #[test]
    fn out_of_order_applies_when_allowed() {
        let s = three();
        let h = vec![row(&s, 1), row(&s, 3)];
        assert_eq!(plan_up(&s, &h, Target::Latest, true).unwrap(), [Step::Apply { version: 2, resume_at: 0 }]);
    }

    #[test]
    fn partial_no_transaction_migration_resumes() {
        let s = three();
        let mut partial = row(&s, 2);
        partial.state = RowState::Running;
        partial.statements_done = 2;
        let h = vec![row(&s, 1), partial.clone()];
        assert_eq!(plan_up(&s, &h, Target::Steps(1), false).unwrap(), [Step::Apply { version: 2, resume_at: 2 }]);
        partial.checksum = "changed".into();
        let h = vec![row(&s, 1), partial];
        assert_eq!(plan_up(&s, &h, Target::Steps(1), false).unwrap(), [Step::Apply { version: 2, resume_at: 0 }]);
    }
}
