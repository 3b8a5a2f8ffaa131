//! The pair being worked on.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use prmsync_mapping::config::Side;
use prmsync_mapping::{CrmRecord, Fields, PrmRecord};
use serde_json::Value;

use crate::store::Link;

/// A linked pair being worked on.
#[derive(Debug, Clone)]
pub struct WorkPair {
    pub(super) link: Link,
    pub(super) crm: Option<CrmRecord>,
    pub(super) prm: Option<PrmRecord>,
    /// The side this run created the record on.
    pub(super) created: Option<Side>,
    pub(super) crm_patch: Fields,
    pub(super) prm_patch: Fields,
    /// Snapshot keys whose value goes to each side, to restore if that write fails.
    pub(super) crm_snapshot_keys: Vec<String>,
    pub(super) prm_snapshot_keys: Vec<String>,
    pub(super) old_snapshot: BTreeMap<String, Value>,
    pub(super) dirty: bool,
    /// Set when the PRM record was deleted: the Record Status write marks the deletion.
    pub(super) marks_deleted: bool,
    /// A write of this pair was rejected for its data: not retried until a record changes.
    pub(super) rejected: bool,
}

impl WorkPair {
    pub(super) fn new(link: Link) -> Self {
        let old_snapshot = link.snapshot.clone();
        Self {
            link,
            crm: None,
            prm: None,
            created: None,
            crm_patch: Fields::new(),
            prm_patch: Fields::new(),
            crm_snapshot_keys: Vec::new(),
            prm_snapshot_keys: Vec::new(),
            old_snapshot,
            dirty: false,
            marks_deleted: false,
            rejected: false,
        }
    }
}

/// The version of a Salesforce record a rejection is remembered by.
pub(super) fn crm_version(r: &CrmRecord) -> String {
    r.modstamp.map(|m| m.to_rfc3339()).unwrap_or_default()
}

/// The versions of a linked pair a rejection is remembered by.
pub(super) fn pair_version(crm: Option<DateTime<Utc>>, prm: Option<i64>) -> String {
    format!(
        "{}|{}",
        crm.map(|m| m.to_rfc3339()).unwrap_or_default(),
        prm.map(|v| v.to_string()).unwrap_or_default()
    )
}

pub(super) fn pair_versions_of(item: &WorkPair) -> String {
    pair_version(
        item.crm
            .as_ref()
            .and_then(|c| c.modstamp)
            .or(item.link.crm_modstamp),
        item.prm
            .as_ref()
            .map(|p| p.version)
            .or(item.link.prm_version),
    )
}

/// After a failed write to `side`, the snapshot keeps what that side still holds, so the
/// next run sees the difference and tries again.
pub(super) fn restore_snapshot_keys(item: &mut WorkPair, side: Side) {
    let keys = match side {
        Side::Crm => &item.crm_snapshot_keys,
        Side::Prm => &item.prm_snapshot_keys,
    };
    for key in keys {
        match item.old_snapshot.get(key) {
            Some(v) => item.link.snapshot.insert(key.clone(), v.clone()),
            None => item.link.snapshot.remove(key),
        };
    }
    item.dirty = true;
}

/// Keeps the newest version of each record (by `id`); `newer(a, b)` says whether `a`
/// replaces `b` (a later version, or the same one read again).
fn dedupe<R>(records: Vec<R>, id: impl Fn(&R) -> &str, newer: impl Fn(&R, &R) -> bool) -> Vec<R> {
    let mut pos: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<R> = Vec::with_capacity(records.len());
    for r in records {
        match pos.get(id(&r)) {
            Some(&i) => {
                if newer(&r, &out[i]) {
                    out[i] = r;
                }
            }
            None => {
                pos.insert(id(&r).to_string(), out.len());
                out.push(r);
            }
        }
    }
    out
}

/// Keeps the newest version of each Salesforce record, by SystemModstamp.
pub(super) fn dedupe_crm(records: Vec<CrmRecord>) -> Vec<CrmRecord> {
    dedupe(
        records,
        |r| &r.id,
        |a, b| match (a.modstamp, b.modstamp) {
            (Some(a), Some(b)) => a >= b,
            (Some(_), None) => true,
            _ => false,
        },
    )
}

/// Keeps the newest version of each PRM record, by version.
pub(super) fn dedupe_prm(records: Vec<PrmRecord>) -> Vec<PrmRecord> {
    dedupe(records, |r| &r.id, |a, b| a.version >= b.version)
}
