//! What a run did, as counts per integration and as the CLI's JSON summary.

use serde::{Deserialize, Serialize};

/// Created or updated records per side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSide {
    pub crm: u64,
    pub prm: u64,
}

/// Counts of one integration's run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: PerSide,
    pub updated: PerSide,
    pub deleted_marked: u64,
    pub disconnected: u64,
    pub conflicts: u64,
    pub unchanged: u64,
    pub errors: u64,
    /// Linked pairs the run wrote to (either side) plus records it created or linked: on
    /// a reconcile, the drift it repaired, that is what the incremental runs missed. Only
    /// a reconcile reports it (other runs close with 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drift: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.created.crm += other.created.crm;
        self.created.prm += other.created.prm;
        self.updated.crm += other.updated.crm;
        self.updated.prm += other.updated.prm;
        self.deleted_marked += other.deleted_marked;
        self.disconnected += other.disconnected;
        self.conflicts += other.conflicts;
        self.unchanged += other.unchanged;
        self.errors += other.errors;
        self.drift += other.drift;
    }

    pub fn writes(&self) -> u64 {
        self.created.crm + self.created.prm + self.updated.crm + self.updated.prm
    }

    /// The records a run has dealt with: its writes (a pair written both ways counts
    /// twice), the records marked deleted or disconnected, those left unchanged and those
    /// that failed. What the console shows of a run in progress.
    pub fn records_done(&self) -> u64 {
        self.writes() + self.deleted_marked + self.disconnected + self.unchanged + self.errors
    }
}

/// A write the run made, or would make with `--dry-run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedWrite {
    /// `create` or `update`
    pub action: String,
    /// `crm` or `prm`
    pub side: String,
    pub object: String,
    /// The record's id on the written side, when it has one.
    pub id: Option<String>,
    /// The linked record on the other side.
    pub source_id: Option<String>,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl PlannedWrite {
    /// The write as output shows it: its values masked unless `[log] values` shows them
    /// in full ([`prmsync_mapping::mask`]); field names and ids are kept.
    pub fn shown(&self, values: prmsync_mapping::LogValues) -> PlannedWrite {
        PlannedWrite {
            fields: self
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), values.value(v)))
                .collect(),
            ..self.clone()
        }
    }
}

/// The outcome of one integration's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub integration: prmsync_mapping::Integration,
    pub mode: RunMode,
    pub dry_run: bool,
    pub status: RunStatus,
    pub counts: Counts,
    pub message: Option<String>,
    /// The class of the error that failed the run: what the operator does about it (the
    /// CLI's exit code and the Lambda's error type follow it).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure: Option<crate::ports::FailureClass>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub planned: Vec<PlannedWrite>,
}

/// What a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Changes since the cursors (minus the overlap window).
    Incremental,
    /// Every selected record on both sides.
    Full,
    /// One record named by id (`prmsync sync-record`, the webhook): no cursor moves.
    Record,
    /// Every selected record on both sides, as a full run, on a schedule (`[sync]
    /// reconcile`) or by `prmsync reconcile`: it repairs what the incremental runs missed
    /// and reports it as drift. The cursors never move back.
    Reconcile,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Incremental => "incremental",
            RunMode::Full => "full",
            RunMode::Record => "record",
            RunMode::Reconcile => "reconcile",
        }
    }

    /// A run that reads every selected record on both sides (full or reconcile).
    pub fn reads_all(self) -> bool {
        matches!(self, RunMode::Full | RunMode::Reconcile)
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "incremental" => Some(RunMode::Incremental),
            "full" => Some(RunMode::Full),
            "reconcile" => Some(RunMode::Reconcile),
            _ => None,
        }
    }
}

impl std::fmt::Display for RunMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for RunMode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RunMode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Where a run stands, in run records and reports (stored and printed in snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished (a run record only).
    Running,
    Succeeded,
    /// Stopped by an error; the report's message says which and what to do.
    Failed,
    /// Stopped early to keep the Salesforce API reserve.
    Stopped,
    /// The integration is paused (`prmsync resume` starts it again).
    SkippedPaused,
    /// Another run of the integration holds the lease.
    SkippedLeaseHeld,
    /// `sync-record` named a record that exists on neither side.
    NotFound,
}

impl RunStatus {
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Stopped,
        RunStatus::SkippedPaused,
        RunStatus::SkippedLeaseHeld,
        RunStatus::NotFound,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
            RunStatus::SkippedPaused => "skipped_paused",
            RunStatus::SkippedLeaseHeld => "skipped_lease_held",
            RunStatus::NotFound => "not_found",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for RunStatus {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RunStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_done_counts_each_write_deletion_unchanged_record_and_error_once() {
        let c = Counts {
            created: PerSide { crm: 1, prm: 2 },
            updated: PerSide { crm: 3, prm: 4 },
            deleted_marked: 5,
            disconnected: 6,
            conflicts: 7,
            unchanged: 8,
            errors: 9,
            drift: 10,
        };
        // conflicts are resolved by a write, counted there; drift restates writes
        assert_eq!(c.records_done(), 1 + 2 + 3 + 4 + 5 + 6 + 8 + 9);
        assert_eq!(Counts::default().records_done(), 0);
    }

    #[test]
    fn run_status_reads_back_what_it_writes() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::json!(status.as_str()));
        }
        assert_eq!(RunStatus::parse("done"), None);
    }

    #[test]
    fn a_reconcile_reads_back_what_it_writes_and_reads_everything() {
        let mode = RunMode::Reconcile;
        assert_eq!(RunMode::parse(mode.as_str()), Some(mode));
        assert_eq!(
            serde_json::to_value(mode).unwrap(),
            serde_json::json!("reconcile")
        );
        assert!(mode.reads_all() && RunMode::Full.reads_all());
        assert!(!RunMode::Incremental.reads_all() && !RunMode::Record.reads_all());
    }

    #[test]
    fn drift_adds_up_and_is_left_out_of_the_json_when_zero() {
        let mut c = Counts::default();
        assert!(serde_json::to_value(&c).unwrap().get("drift").is_none());
        c.add(&Counts {
            drift: 2,
            ..Counts::default()
        });
        assert_eq!(serde_json::to_value(&c).unwrap()["drift"], 2);
        let back: Counts = serde_json::from_str(r#"{"created":{"crm":0,"prm":0},"updated":{"crm":0,"prm":0},"deleted_marked":0,"disconnected":0,"conflicts":0,"unchanged":0,"errors":0}"#).unwrap();
        assert_eq!(back.drift, 0);
    }
}
