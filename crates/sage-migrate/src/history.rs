//! The history table: one row per applied migration.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The table SAGE DB records migrations in, unless told otherwise.
pub const DEFAULT_HISTORY_TABLE: &str = "sage_schema_history";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowState {
    /// Applied by SAGE DB.
    Applied,
    /// A no-transaction migration in progress (or interrupted): `statements_done` says how
    /// far it got.
    Running,
    /// A no-transaction migration that stopped at a failing statement.
    Failed,
    /// Recorded by `baseline` for a schema created before SAGE DB managed it.
    Baseline,
    /// Taken over from golang-migrate, sqlx or dbmate bookkeeping.
    Adopted,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Applied => "applied",
            RowState::Running => "running",
            RowState::Failed => "failed",
            RowState::Baseline => "baseline",
            RowState::Adopted => "adopted",
        }
    }

    pub fn parse(s: &str) -> Option<RowState> {
        Some(match s {
            "applied" => RowState::Applied,
            "running" => RowState::Running,
            "failed" => RowState::Failed,
            "baseline" => RowState::Baseline,
            "adopted" => RowState::Adopted,
            _ => return None,
        })
    }

    /// Whether the migration's effects are in the database.
    pub fn is_complete(self) -> bool {
        matches!(self, RowState::Applied | RowState::Baseline | RowState::Adopted)
    }
}

/// One row of the history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    pub state: RowState,
    pub applied_at: DateTime<Utc>,
    pub execution_ms: i64,
    pub applied_by: String,
    /// For no-transaction migrations: how many statements have completed.
    pub statements_done: i32,
    pub error: Option<String>,
}

/// The checksum recorded for a migration adopted from a tool whose own checksum did not
/// match the file: it never equals a real checksum, so the file shows as edited.
pub(crate) const MISMATCH_AT_ADOPTION: &str = "mismatch-at-adoption";
