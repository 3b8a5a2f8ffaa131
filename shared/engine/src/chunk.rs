//! The unit of work the planner hands to workers (sync rules 2 and 10 in
//! `docs/sync-rules.md`): references to the records of one integration that sync together,
//! and, while they are fresh, the records themselves.

use chrono::{DateTime, Utc};
use prmsync_mapping::{CrmRecord, Integration, PrmRecord};
use serde::{Deserialize, Serialize};

/// Records per chunk: one `IN` query of 200 Ids per side, one Collection call of 200.
pub const CHUNK_SIZE: usize = 200;

/// The largest message a chunk is sent as: SQS takes 256 KiB, less room for the
/// message's attributes. A chunk whose records do not fit goes with references only.
pub const MAX_MESSAGE_BYTES: usize = 250 * 1024;

/// A queue message: references to records of one integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub run_id: String,
    pub integration: Integration,
    /// The chunk's number in its run, which tracks it until it is done. None for a record
    /// handed out again on its own after a passing failure (the retry set holds it).
    #[serde(default)]
    pub number: Option<u32>,
    #[serde(default)]
    pub crm_ids: Vec<String>,
    #[serde(default)]
    pub prm_ids: Vec<String>,
    /// How many times this chunk was handed out again after a passing failure.
    #[serde(default)]
    pub attempt: u32,
    /// The run read every selected record of both sides, and the planner put every match
    /// candidate in the chunk of its partner: matching needs no look-ups (a full run).
    #[serde(default)]
    pub full: bool,
    /// The records as the planner read them; a worker uses them only while they are fresh
    /// (first delivery, read within the overlap window) and reads them again otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<ChunkRecords>,
    /// Unlinked Salesforce records whose match-key partner an earlier chunk of the run took:
    /// reported as ambiguous, as a one-machine run reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claimed: Vec<Claim>,
    /// Ids of this chunk (either side) that are in the retry set: cleared once they sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retrying: Vec<String>,
}

/// Records read by the planner with the chunk's references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecords {
    pub read_at: DateTime<Utc>,
    #[serde(default)]
    pub crm: Vec<CrmRecord>,
    #[serde(default)]
    pub prm: Vec<PrmRecord>,
}

/// An unlinked Salesforce record whose match-key partner another record took first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub crm_id: String,
    pub prm_id: String,
    /// The Salesforce record the partner went to.
    pub taken_by: String,
}

impl Chunk {
    /// A chunk of references only.
    pub fn refs(
        run_id: &str,
        integration: Integration,
        crm_ids: Vec<String>,
        prm_ids: Vec<String>,
    ) -> Self {
        Self {
            run_id: run_id.to_string(),
            integration,
            number: None,
            crm_ids,
            prm_ids,
            attempt: 0,
            full: false,
            records: None,
            claimed: Vec::new(),
            retrying: Vec::new(),
        }
    }

    /// References in the chunk, both sides.
    pub fn len(&self) -> usize {
        self.crm_ids.len() + self.prm_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the records read when the message would be too large for the queue: the
    /// worker reads them by id instead.
    pub fn fit_message(&mut self) {
        if self.records.is_some()
            && serde_json::to_vec(self).map_or(true, |b| b.len() > MAX_MESSAGE_BYTES)
        {
            self.records = None;
        }
    }
}
