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
    }

    pub fn writes(&self) -> u64 {
        self.created.crm + self.created.prm + self.updated.crm + self.updated.prm
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

/// The outcome of one integration's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub integration: prmsync_mapping::Integration,
    pub mode: String,
    pub dry_run: bool,
    /// succeeded, failed, stopped, skipped_paused, skipped_lease_held
    pub status: String,
    pub counts: Counts,
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub planned: Vec<PlannedWrite>,
}
