//! Pairing through links: the records a pass read are deduplicated and put with their
//! links, each linked pair becoming a [`WorkPair`] that the later phases fill in; a
//! record without a link goes on to matching. Sync rules 1 (links: one per record pair,
//! found by either id) and 2 (change detection: a record read twice, or older than the
//! version its link saw, is not merged again) of `docs/sync-rules.md`.
//!
//! [`SideRecord`] is what the pass needs to know of a record of either side, so pairing,
//! deduplication and remembering rejections are written once for both.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use prmsync_mapping::config::Side;
use prmsync_mapping::{CrmRecord, Fields, PrmRecord};
use serde_json::Value;

use super::plan::PlanFinding;
use super::{Pass, PassError};
use crate::store::Link;

/// A linked pair being worked on: its link (with the snapshot being merged into), the
/// records of both sides this pass holds, and what the pass will write to each side.
#[derive(Debug, Clone)]
pub struct WorkPair {
    pub(super) link: Link,
    pub(super) crm: Option<CrmRecord>,
    pub(super) prm: Option<PrmRecord>,
    /// The side this run created the record on.
    pub(super) created: Option<Side>,
    /// The fields to update in Salesforce.
    pub(super) crm_patch: Fields,
    /// The fields to update in the PRM.
    pub(super) prm_patch: Fields,
    /// Snapshot keys whose new value goes to Salesforce, restored if that write fails.
    pub(super) crm_snapshot_keys: Vec<String>,
    /// Snapshot keys whose new value goes to the PRM, restored if that write fails.
    pub(super) prm_snapshot_keys: Vec<String>,
    /// The snapshot as stored before this pass.
    pub(super) old_snapshot: BTreeMap<String, Value>,
    /// The link changed and is saved at the end of the pass.
    pub(super) dirty: bool,
    /// Set when the PRM record was deleted: the Record Status write marks the deletion.
    pub(super) marks_deleted: bool,
    /// A write of this pair was rejected for its data: not retried until a record changes.
    pub(super) rejected: bool,
    /// The pair was merged in this pass (not skipped as rejected before, nor out of sync).
    pub(super) planned: bool,
    /// The Salesforce write of this pass failed (or was held back for the API reserve).
    pub(super) crm_failed: bool,
    /// The PRM update met a version conflict and the pair was merged again with the PRM
    /// record read anew (race.rs): `crm_patch` now holds only what that merge still has to
    /// write to Salesforce, the first Salesforce write being done.
    pub(super) raced: bool,
    /// The findings of this pass's merges already logged, so a merge again logs only new ones.
    pub(super) reported: Vec<PlanFinding>,
    /// The pair was linked by a match in this pass (not linked before).
    pub(super) matched: bool,
    /// The link as this pass stored it on creating the pair, in the form a held
    /// write-back leaves it (marked for a retry): `held::hold` saves nothing more when
    /// the pair is that again.
    pub(super) stored_held: Option<Box<Link>>,
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
            planned: false,
            crm_failed: false,
            raced: false,
            reported: Vec::new(),
            matched: false,
            stored_held: None,
        }
    }
}

/// A record of either side, as the pass pairs, deduplicates and remembers it.
pub trait SideRecord: Sized {
    /// The side the record lives on.
    const SIDE: Side;
    /// The record's own id on its side.
    fn id(&self) -> &str;
    /// The record's fields (for masking the values a remote error may echo).
    fn fields(&self) -> &prmsync_mapping::Fields;
    /// This side's id in a link.
    fn id_in(link: &Link) -> &str;
    /// The version a rejection of the record is remembered by.
    fn rejection_version(&self) -> String;
    /// Whether `self` replaces `other`, the same record read again (a later version, or
    /// the same one).
    fn supersedes(&self, other: &Self) -> bool;
    /// Read before the version its link last saw (a stale page): not merged again.
    fn older_than(&self, link: &Link) -> bool;
    /// This side's record of a pair in work.
    fn slot(pair: &mut WorkPair) -> &mut Option<Self>;
}

impl SideRecord for CrmRecord {
    const SIDE: Side = Side::Crm;

    fn id(&self) -> &str {
        &self.id
    }

    fn fields(&self) -> &prmsync_mapping::Fields {
        &self.fields
    }

    fn id_in(link: &Link) -> &str {
        &link.crm_id
    }

    /// By SystemModstamp.
    fn rejection_version(&self) -> String {
        self.modstamp.map(|m| m.to_rfc3339()).unwrap_or_default()
    }

    fn supersedes(&self, other: &Self) -> bool {
        match (self.modstamp, other.modstamp) {
            (Some(a), Some(b)) => a >= b,
            (Some(_), None) => true,
            _ => false,
        }
    }

    fn older_than(&self, link: &Link) -> bool {
        matches!((self.modstamp, link.crm_modstamp), (Some(a), Some(b)) if a < b)
    }

    fn slot(pair: &mut WorkPair) -> &mut Option<Self> {
        &mut pair.crm
    }
}

impl SideRecord for PrmRecord {
    const SIDE: Side = Side::Prm;

    fn id(&self) -> &str {
        &self.id
    }

    fn fields(&self) -> &prmsync_mapping::Fields {
        &self.fields
    }

    fn id_in(link: &Link) -> &str {
        &link.prm_id
    }

    /// By version.
    fn rejection_version(&self) -> String {
        self.version.to_string()
    }

    fn supersedes(&self, other: &Self) -> bool {
        self.version >= other.version
    }

    fn older_than(&self, link: &Link) -> bool {
        matches!(link.prm_version, Some(v) if self.version < v)
    }

    fn slot(pair: &mut WorkPair) -> &mut Option<Self> {
        &mut pair.prm
    }
}

/// The version of a Salesforce record a rejection is remembered by.
pub(super) fn crm_version(r: &CrmRecord) -> String {
    r.rejection_version()
}

/// The versions of a linked pair a rejection is remembered by.
pub(super) fn pair_version(crm: Option<DateTime<Utc>>, prm: Option<i64>) -> String {
    format!(
        "{}|{}",
        crm.map(|m| m.to_rfc3339()).unwrap_or_default(),
        prm.map(|v| v.to_string()).unwrap_or_default()
    )
}

/// The versions of a pair in work: of the records in hand, else the ones its link saw.
pub(super) fn pair_versions_of(pair: &WorkPair) -> String {
    pair_version(
        pair.crm
            .as_ref()
            .and_then(|c| c.modstamp)
            .or(pair.link.crm_modstamp),
        pair.prm
            .as_ref()
            .map(|p| p.version)
            .or(pair.link.prm_version),
    )
}

/// After a failed write to `side`, the snapshot keeps what that side still holds, so the
/// next run sees the difference and tries again.
pub(super) fn restore_snapshot_keys(pair: &mut WorkPair, side: Side) {
    let keys = match side {
        Side::Crm => &pair.crm_snapshot_keys,
        Side::Prm => &pair.prm_snapshot_keys,
    };
    for key in keys {
        match pair.old_snapshot.get(key) {
            Some(v) => pair.link.snapshot.insert(key.clone(), v.clone()),
            None => pair.link.snapshot.remove(key),
        };
    }
    pair.dirty = true;
}

/// Keeps the newest version of each record (by id), in the order first read.
pub fn dedupe<R: SideRecord>(records: Vec<R>) -> Vec<R> {
    let mut pos: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<R> = Vec::with_capacity(records.len());
    for r in records {
        match pos.get(r.id()) {
            Some(&i) => {
                if r.supersedes(&out[i]) {
                    out[i] = r;
                }
            }
            None => {
                pos.insert(r.id().to_string(), out.len());
                out.push(r);
            }
        }
    }
    out
}

/// The records that came with a pass, put with their links: the pairs in work (a link
/// with a record in hand, or marked for a retry), and the records of each side without a
/// link. A record older than its link's version stays out. No I/O.
pub fn pair_through_links(
    links: Vec<Link>,
    crm: Vec<CrmRecord>,
    prm: Vec<PrmRecord>,
) -> (Vec<WorkPair>, Vec<CrmRecord>, Vec<PrmRecord>) {
    let mut pairs: Vec<WorkPair> = links.into_iter().map(WorkPair::new).collect();
    let unlinked_crm = attach(&mut pairs, crm);
    let unlinked_prm = attach(&mut pairs, prm);
    pairs.retain(|p| p.crm.is_some() || p.prm.is_some() || p.link.retry);
    (pairs, unlinked_crm, unlinked_prm)
}

/// Puts each record with the pair of its link; returns the records without one.
fn attach<R: SideRecord>(pairs: &mut [WorkPair], records: Vec<R>) -> Vec<R> {
    let by_id: HashMap<String, usize> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| (R::id_in(&p.link).to_string(), i))
        .collect();
    let mut unlinked = Vec::new();
    for r in records {
        match by_id.get(r.id()) {
            Some(&i) => {
                if !r.older_than(&pairs[i].link) {
                    *R::slot(&mut pairs[i]) = Some(r);
                }
            }
            None => unlinked.push(r),
        }
    }
    unlinked
}

/// The pairs in work and the unlinked records of each side.
type Paired = (Vec<WorkPair>, Vec<CrmRecord>, Vec<PrmRecord>);

impl<'a> Pass<'a> {
    /// Pairs the records of the pass with their links: reads the records of links marked
    /// for a retry that are not in hand, the links of every record and of every id they
    /// point at, and the organization links their references need.
    pub(super) async fn pair_records(
        &mut self,
        crm: Vec<CrmRecord>,
        prm: Vec<PrmRecord>,
        retry: &[Link],
    ) -> Result<Paired, PassError> {
        let kind = self.spec.kind;
        let store = &self.ctx.store;
        let mut crm_records: Vec<CrmRecord> = dedupe(crm);
        let mut prm_records: Vec<PrmRecord> = dedupe(prm);

        // Links marked for a retry bring their records along.
        if !retry.is_empty() {
            let have_crm: HashSet<&str> = crm_records.iter().map(|r| r.id.as_str()).collect();
            let crm_ids: Vec<String> = retry
                .iter()
                .filter(|l| !have_crm.contains(l.crm_id.as_str()))
                .map(|l| l.crm_id.clone())
                .collect();
            let have_prm: HashSet<&str> = prm_records.iter().map(|r| r.id.as_str()).collect();
            let prm_ids: Vec<String> = retry
                .iter()
                .filter(|l| !have_prm.contains(l.prm_id.as_str()))
                .map(|l| l.prm_id.clone())
                .collect();
            if !crm_ids.is_empty() {
                let fields = self.spec.crm_fields();
                crm_records.extend(
                    self.ctx
                        .crm
                        .find(self.spec.crm_object(), &fields, "Id", &crm_ids)
                        .await?,
                );
            }
            if !prm_ids.is_empty() {
                prm_records.extend(
                    self.ctx
                        .prm
                        .fetch(self.spec.prm_collection(), &prm_ids)
                        .await?,
                );
            }
        }

        // Links of the records in hand, and of every id they point at.
        let mut crm_ids: Vec<String> = crm_records.iter().map(|r| r.id.clone()).collect();
        crm_ids.extend(prm_records.iter().filter_map(|r| r.crm_id.clone()));
        crm_ids.extend(retry.iter().map(|l| l.crm_id.clone()));
        let mut prm_ids: Vec<String> = prm_records.iter().map(|r| r.id.clone()).collect();
        prm_ids.extend(
            crm_records
                .iter()
                .filter_map(|r| r.str_field(self.spec.prm_id_field()).map(str::to_string)),
        );
        prm_ids.extend(retry.iter().map(|l| l.prm_id.clone()));
        let links = store.find_links(kind, &crm_ids, &prm_ids).await?;
        self.load_references(&crm_records, &prm_records, &links)
            .await?;
        Ok(pair_through_links(links, crm_records, prm_records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::testkit::{at, crm, link_in, prm};
    use crate::store::LinkState;
    use prmsync_mapping::ObjectKind;
    use serde_json::json;

    #[test]
    fn dedupe_keeps_the_latest_salesforce_version_in_first_read_order() {
        let records = vec![
            crm("001A", at(9, 0), json!({"n": 1})),
            crm("001B", at(9, 0), json!({})),
            crm("001A", at(10, 0), json!({"n": 2})),
            crm("001A", at(8, 0), json!({"n": 3})),
        ];
        let out = dedupe(records);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id, "001A");
        assert_eq!(out[0].fields["n"], json!(2));
        assert_eq!(out[1].id, "001B");
    }

    #[test]
    fn dedupe_keeps_the_highest_prm_version_and_the_last_read_of_equal_ones() {
        let records = vec![
            prm("org_1", 2, at(9, 0), json!({"n": 1})),
            prm("org_1", 1, at(9, 0), json!({"n": 2})),
            prm("org_1", 2, at(9, 0), json!({"n": 3})),
        ];
        let out = dedupe(records);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].fields["n"], json!(3));
    }

    #[test]
    fn a_salesforce_record_without_modstamp_never_replaces_one_with() {
        let mut undated = crm("001A", at(9, 0), json!({"n": 2}));
        undated.modstamp = None;
        let out = dedupe(vec![crm("001A", at(9, 0), json!({"n": 1})), undated]);
        assert_eq!(out[0].fields["n"], json!(1));
    }

    #[test]
    fn records_are_paired_through_their_links_and_the_rest_stay_unlinked() {
        let links = vec![
            link_in(LinkState::Linked, ObjectKind::Organization, "org_1", "001A"),
            link_in(LinkState::Linked, ObjectKind::Organization, "org_2", "001B"),
        ];
        let (pairs, crm_left, prm_left) = pair_through_links(
            links,
            vec![
                crm("001A", at(9, 0), json!({})),
                crm("001C", at(9, 0), json!({})),
            ],
            vec![prm("org_2", 1, at(9, 0), json!({}))],
        );
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].crm.as_ref().map(|r| r.id.as_str()), Some("001A"));
        assert!(pairs[0].prm.is_none());
        assert_eq!(pairs[1].prm.as_ref().map(|r| r.id.as_str()), Some("org_2"));
        assert_eq!(crm_left.len(), 1);
        assert_eq!(crm_left[0].id, "001C");
        assert!(prm_left.is_empty());
    }

    #[test]
    fn a_record_older_than_its_link_is_not_paired_and_a_link_with_nothing_in_hand_is_dropped() {
        let mut seen = link_in(LinkState::Linked, ObjectKind::Organization, "org_1", "001A");
        seen.crm_modstamp = Some(at(10, 0));
        seen.prm_version = Some(5);
        let mut retry = link_in(LinkState::Linked, ObjectKind::Organization, "org_2", "001B");
        retry.retry = true;
        let idle = link_in(LinkState::Linked, ObjectKind::Organization, "org_3", "001C");
        let (pairs, crm_left, prm_left) = pair_through_links(
            vec![seen, retry, idle],
            vec![crm("001A", at(9, 0), json!({}))],
            vec![prm("org_1", 4, at(9, 0), json!({}))],
        );
        let ids: Vec<&str> = pairs.iter().map(|p| p.link.prm_id.as_str()).collect();
        assert_eq!(
            ids,
            vec!["org_2"],
            "stale records dropped, retry kept, idle link dropped"
        );
        assert!(crm_left.is_empty() && prm_left.is_empty());
    }
}
