//! One sync pass of an object pair (organizations ↔ Accounts, people ↔ Contacts): the
//! records changed on each side are paired through their links, merged field by field,
//! matched or created when unlinked, and written back in batches.
//!
//! Order of a pass, chosen so that a crash between any two steps converges on the next run:
//! 1. creates: PRM records with `Idempotency-Key` = Salesforce Id and `crm_id` set;
//!    Salesforce records by upsert on the PRM Id field; each link saved right away;
//! 2. the merge of every linked pair (including the ones just created, which writes the PRM
//!    Id, Record Status, `crm_id` and parents back);
//! 3. Salesforce updates in Collections, then PRM updates with `If-Match`;
//! 4. the links with their new snapshots.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use prmsync_mapping::config::Side;
use prmsync_mapping::merge::{merge_field, FieldRule, MergeInput, Recency};
use prmsync_mapping::transform::{
    read_crm, read_crm_cow, read_prm, read_prm_cow, write_crm, write_prm, UnmappedValue,
};
use prmsync_mapping::value::canonical;
use prmsync_mapping::{rules, CrmRecord, Fields, Integration, LogCode, ObjectKind, PrmRecord};
use serde_json::{json, Value};

use crate::objects::{keys, ObjectSpec};

mod deal_import;
use crate::context::SyncContext;
use crate::ports::{FailureClass, PortError, RecordFailure, WriteOutcome};
use crate::report::{Counts, PlannedWrite};
use crate::retry::FailedRecord;
use crate::store::{Link, LinkState, LogEntry, StoreError};

/// PRM writes in flight at once (`[sync] prm_concurrency`).
fn prm_concurrency(ctx: &SyncContext) -> usize {
    usize::from(ctx.mapping.sync.prm_concurrency.max(1))
}

/// The records a pass works on.
#[derive(Debug, Default, Clone)]
pub struct PassInput {
    pub crm: Vec<CrmRecord>,
    pub prm: Vec<PrmRecord>,
    /// Every record of both sides is in hand (a full run): matching needs no look-ups.
    pub full: bool,
    /// Try records rejected before even if they did not change (a full run, or an
    /// operator's `sync-record`).
    pub retry_rejected: bool,
    /// Links marked for a retry: their records are read when not in hand, and synced.
    pub retry: Vec<Link>,
    /// Unlinked Salesforce records whose match key is that of a PRM record this run has
    /// already linked to another record, by Salesforce Id: reported as ambiguous.
    pub claimed: HashMap<String, Link>,
    /// Hold back the entries for references to records not linked yet: a later page of
    /// the same run may link them. They go to [`PassOutcome::held`].
    pub hold_unresolved: bool,
    /// Pairs an earlier pass planned but did not write yet ([`PassOutcome::carry`]).
    pub carry: Carry,
    /// Leave the Salesforce updates that do not fill a Collection of 200 to the next pass
    /// (in [`PassOutcome::carry`]), so a run of many pages writes in full Collections.
    pub carry_partial: bool,
}

/// Planned pairs waiting for a full Collection: handed from one pass to the next.
#[derive(Debug, Default, Clone)]
pub struct Carry(Vec<Item>);

impl Carry {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Salesforce Collections take 200 records.
const COLLECTION: usize = 200;

/// Takes out the pairs whose Salesforce update would only part-fill the last Collection,
/// with everything they still have to write.
fn carry_partial_collection(items: &mut Vec<Item>) -> Carry {
    let updates = items.iter().filter(|i| !i.crm_patch.is_empty()).count();
    let mut left = updates % COLLECTION;
    if left == 0 {
        return Carry::default();
    }
    let mut carried = Vec::with_capacity(left);
    let mut i = items.len();
    while left > 0 && i > 0 {
        i -= 1;
        if !items[i].crm_patch.is_empty() {
            carried.push(items.swap_remove(i));
            left -= 1;
        }
    }
    carried.reverse();
    Carry(carried)
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassOutcome {
    pub counts: Counts,
    pub log: Vec<LogEntry>,
    pub planned: Vec<PlannedWrite>,
    /// Set when the pass stopped early to keep the API reserve.
    pub stopped: Option<String>,
    /// Entries held back by [`PassInput::hold_unresolved`].
    pub held: Vec<LogEntry>,
    /// Pairs left for the next pass by [`PassInput::carry_partial`].
    pub carry: Carry,
    /// Records whose write failed for a passing reason: the caller keeps them in the retry
    /// set (and a worker hands each out again on its own).
    pub failed: Vec<FailedRecord>,
}

/// A whole call that failed for a passing reason fails only the records it carried; any
/// other failure (credentials, setup, the API limit) stops the pass.
fn record_failure_of(e: PortError) -> Result<RecordFailure, PassError> {
    if e.class == FailureClass::Transient {
        Ok(RecordFailure {
            class: FailureClass::Transient,
            code: "call_failed".into(),
            message: e.message,
            fields: Vec::new(),
        })
    } else {
        Err(PassError::Port(e))
    }
}

/// A pass that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A linked pair being worked on.
#[derive(Debug, Clone)]
pub struct Item {
    link: Link,
    crm: Option<CrmRecord>,
    prm: Option<PrmRecord>,
    /// The side this run created the record on.
    created: Option<Side>,
    crm_patch: Fields,
    prm_patch: Fields,
    /// Snapshot keys whose value goes to each side, to restore if that write fails.
    crm_keys: Vec<String>,
    prm_keys: Vec<String>,
    old_snapshot: BTreeMap<String, Value>,
    dirty: bool,
    /// Set when the PRM record was deleted: the Record Status write marks the deletion.
    marks_deleted: bool,
    /// A write of this pair was rejected for its data: not retried until a record changes.
    rejected: bool,
}

impl Item {
    fn new(link: Link) -> Self {
        let old_snapshot = link.snapshot.clone();
        Self {
            link,
            crm: None,
            prm: None,
            created: None,
            crm_patch: Fields::new(),
            prm_patch: Fields::new(),
            crm_keys: Vec::new(),
            prm_keys: Vec::new(),
            old_snapshot,
            dirty: false,
            marks_deleted: false,
            rejected: false,
        }
    }
}

/// Runs one pass over the records in `input`.
pub async fn run_pass(
    ctx: &SyncContext,
    kind: ObjectKind,
    run_id: &str,
    dry_run: bool,
    input: PassInput,
) -> Result<PassOutcome, PassError> {
    let mut pass = Pass {
        ctx,
        spec: ObjectSpec::new(kind, &ctx.mapping),
        run_id: run_id.to_string(),
        integration: match kind {
            ObjectKind::Organization => Integration::Organizations,
            ObjectKind::Person => Integration::People,
            ObjectKind::Deal => Integration::Deals,
        },
        dry_run,
        out: PassOutcome::default(),
        ref_by_crm: HashMap::new(),
        ref_by_prm: HashMap::new(),
        full: input.full,
        retry_rejected: input.full || input.retry_rejected,
        rejected: Vec::new(),
        claimed: HashMap::new(),
        hold_unresolved: input.hold_unresolved,
        carry_partial: input.carry_partial,
    };
    pass.run(input).await?;
    Ok(pass.out)
}

struct Pass<'a> {
    ctx: &'a SyncContext,
    spec: ObjectSpec,
    run_id: String,
    integration: Integration,
    dry_run: bool,
    out: PassOutcome,
    /// Organization links used to translate references, by Salesforce Id and PRM id.
    ref_by_crm: HashMap<String, Link>,
    ref_by_prm: HashMap<String, Link>,
    /// Every record is in hand and re-evaluated, earlier rejections included.
    #[allow(dead_code)]
    full: bool,
    /// Records rejected before are tried again.
    retry_rejected: bool,
    /// Rejections to remember at the end of the pass: (side, id, version).
    rejected: Vec<(&'static str, String, String)>,
    /// See [`PassInput::claimed`].
    claimed: HashMap<String, Link>,
    /// See [`PassInput::hold_unresolved`].
    hold_unresolved: bool,
    /// See [`PassInput::carry_partial`].
    carry_partial: bool,
}

/// The version of a Salesforce record a rejection is remembered by.
fn crm_version(r: &CrmRecord) -> String {
    r.modstamp.map(|m| m.to_rfc3339()).unwrap_or_default()
}

/// The versions of a linked pair a rejection is remembered by.
fn pair_version(crm: Option<DateTime<Utc>>, prm: Option<i64>) -> String {
    format!(
        "{}|{}",
        crm.map(|m| m.to_rfc3339()).unwrap_or_default(),
        prm.map(|v| v.to_string()).unwrap_or_default()
    )
}

fn item_version(item: &Item) -> String {
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

impl<'a> Pass<'a> {
    async fn run(&mut self, input: PassInput) -> Result<(), PassError> {
        let kind = self.spec.kind;
        let store = &self.ctx.store;
        let PassInput {
            crm: crm_in,
            prm: prm_in,
            full,
            retry,
            claimed,
            carry,
            ..
        } = input;
        self.claimed = claimed;
        let mut crm_records: Vec<CrmRecord> = dedupe_crm(crm_in);
        let mut prm_records: Vec<PrmRecord> = dedupe_prm(prm_in);

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

        // Pair the records through their links.
        let mut items: Vec<Item> = Vec::new();
        let mut by_prm: HashMap<String, usize> = HashMap::new();
        let mut by_crm: HashMap<String, usize> = HashMap::new();
        for link in links {
            by_prm.insert(link.prm_id.clone(), items.len());
            by_crm.insert(link.crm_id.clone(), items.len());
            items.push(Item::new(link));
        }
        let mut unlinked_crm = Vec::new();
        for r in crm_records {
            match by_crm.get(&r.id) {
                Some(&i) => {
                    let stale = matches!((r.modstamp, items[i].link.crm_modstamp), (Some(a), Some(b)) if a < b);
                    if !stale {
                        items[i].crm = Some(r);
                    }
                }
                None => unlinked_crm.push(r),
            }
        }
        let mut unlinked_prm = Vec::new();
        for r in prm_records {
            match by_prm.get(&r.id) {
                Some(&i) => {
                    let stale = matches!(items[i].link.prm_version, Some(v) if r.version < v);
                    if !stale {
                        items[i].prm = Some(r);
                    }
                }
                None => unlinked_prm.push(r),
            }
        }
        items.retain(|i| i.crm.is_some() || i.prm.is_some() || i.link.retry);

        // Deletes, merges and unflagging of linked records. A link that followed a merge
        // takes the master's record if this pass read it.
        self.handle_lifecycle(&mut items).await?;
        for item in items.iter_mut().filter(|i| i.link.retry && i.crm.is_none()) {
            if let Some(pos) = unlinked_crm
                .iter()
                .position(|r: &CrmRecord| r.id == item.link.crm_id)
            {
                item.crm = Some(unlinked_crm.swap_remove(pos));
            }
        }

        // Unlinked records: match, or create on the other side.
        let (pairs, to_prm, to_crm) = self
            .match_unlinked(unlinked_crm, unlinked_prm, full)
            .await?;
        for (crm, prm) in pairs {
            let mut link = Link::new(kind, &prm.id, &crm.id);
            link.crm_modstamp = crm.modstamp;
            link.prm_version = Some(prm.version);
            self.log(
                LogCode::RecordLinked,
                Some(&crm.id),
                Some(&prm.id),
                format!(
                    "Linked existing {} {} with Salesforce {} {} (first-import match)",
                    kind,
                    prm.id,
                    self.spec.crm_object(),
                    crm.id
                ),
                Value::Null,
            );
            if !self.dry_run {
                match store.save_link(&link).await {
                    Ok(saved) => link = saved,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            self.add_ref(&link);
            self.children_pending(&link).await?;
            let mut item = Item::new(link);
            item.crm = Some(crm);
            item.prm = Some(prm);
            item.dirty = true;
            items.push(item);
        }
        if kind == ObjectKind::Deal {
            // Opportunities become deals by the import rules; deals never become
            // Opportunities.
            let _ = to_crm;
            let imported = self.import_deals(to_prm).await?;
            items.extend(imported);
        } else {
            let created = self.create_in_prm(to_prm).await?;
            items.extend(created);
            let created = self.create_in_crm(to_crm).await?;
            items.extend(created);
        }

        // Merge every linked pair, then write. A pair whose last write was rejected for
        // its data waits until either record changes.
        let pair_ids: Vec<String> = items.iter().map(|i| i.link.prm_id.clone()).collect();
        let rejected_pairs = if self.retry_rejected || pair_ids.is_empty() {
            BTreeMap::new()
        } else {
            store.rejected_versions(kind, "link", &pair_ids).await?
        };
        for item in items.iter_mut() {
            if item.created.is_none()
                && rejected_pairs.get(&item.link.prm_id) == Some(&item_version(item))
            {
                continue;
            }
            self.plan_item(item);
        }
        // Pairs planned by an earlier pass that waited for a full Collection.
        items.extend(carry.0);
        if self.carry_partial {
            self.out.carry = carry_partial_collection(&mut items);
        }
        self.write_crm_updates(&mut items).await?;
        self.write_prm_updates(&mut items).await?;
        self.save_links(&mut items).await?;
        if !self.dry_run {
            for (side, id, version) in std::mem::take(&mut self.rejected) {
                store.remember_rejection(kind, side, &id, &version).await?;
            }
        }
        Ok(())
    }

    // ----- references -------------------------------------------------------------------

    async fn load_references(
        &mut self,
        crm: &[CrmRecord],
        prm: &[PrmRecord],
        links: &[Link],
    ) -> Result<(), PassError> {
        let Some(reference) = self.spec.reference else {
            return Ok(());
        };
        let mut crm_ids: Vec<String> = crm
            .iter()
            .filter_map(|r| r.str_field(reference.crm_field).map(str::to_string))
            .collect();
        let mut prm_ids: Vec<String> = prm
            .iter()
            .filter_map(|r| r.str_field(reference.prm_field).map(str::to_string))
            .collect();
        prm_ids.extend(links.iter().filter_map(|l| {
            l.snapshot
                .get(keys::REFERENCE)
                .and_then(Value::as_str)
                .map(str::to_string)
        }));
        if self.spec.kind == ObjectKind::Organization {
            // The records of this pass are references of each other too.
            crm_ids.extend(links.iter().map(|l| l.crm_id.clone()));
            prm_ids.extend(links.iter().map(|l| l.prm_id.clone()));
        }
        crm_ids.sort();
        crm_ids.dedup();
        prm_ids.sort();
        prm_ids.dedup();
        if crm_ids.is_empty() && prm_ids.is_empty() {
            return Ok(());
        }
        for l in self
            .ctx
            .store
            .find_links(ObjectKind::Organization, &crm_ids, &prm_ids)
            .await?
        {
            self.add_ref(&l);
        }
        Ok(())
    }

    /// A newly linked (or resumed) organization: its people are read on the next people
    /// pass.
    async fn children_pending(&self, link: &Link) -> Result<(), PassError> {
        if self.spec.kind == ObjectKind::Organization && !self.dry_run {
            self.ctx
                .store
                .mark_children_pending(ObjectKind::Organization, &link.prm_id, &link.crm_id)
                .await?;
        }
        Ok(())
    }

    fn add_ref(&mut self, link: &Link) {
        if link.object != ObjectKind::Organization || self.spec.reference.is_none() {
            return;
        }
        self.ref_by_crm.insert(link.crm_id.clone(), link.clone());
        self.ref_by_prm.insert(link.prm_id.clone(), link.clone());
    }

    /// The linked organization's PRM id for a Salesforce reference.
    fn ref_to_prm(&self, crm_id: &str) -> Option<String> {
        self.ref_by_crm
            .get(crm_id)
            .filter(|l| l.state == LinkState::Linked)
            .map(|l| l.prm_id.clone())
    }

    fn ref_to_crm(&self, prm_id: &str) -> Option<String> {
        self.ref_by_prm
            .get(prm_id)
            .filter(|l| l.state == LinkState::Linked)
            .map(|l| l.crm_id.clone())
    }

    /// Whether a person's organization syncs (its link is live).
    fn person_org_linked_crm(&self, r: &CrmRecord) -> Option<String> {
        r.str_field("AccountId").and_then(|a| self.ref_to_prm(a))
    }

    fn person_org_linked_prm(&self, r: &PrmRecord) -> Option<String> {
        r.str_field("organization_id")
            .and_then(|o| self.ref_to_crm(o))
    }

    // ----- lifecycle: deletes, merges, unflagging --------------------------------------

    async fn handle_lifecycle(&mut self, items: &mut [Item]) -> Result<(), PassError> {
        // Masters of merged records: find their links in one call.
        let masters: Vec<String> = items
            .iter()
            .filter_map(|i| {
                i.crm
                    .as_ref()
                    .filter(|c| c.deleted)
                    .and_then(|c| c.master_id.clone())
            })
            .collect();
        let master_links: HashSet<String> = if masters.is_empty() {
            HashSet::new()
        } else {
            self.ctx
                .store
                .find_links(self.spec.kind, &masters, &[])
                .await?
                .into_iter()
                .map(|l| l.crm_id)
                .collect()
        };
        let obj = self.spec.crm_object();
        for item in items.iter_mut() {
            let link_state = item.link.state;
            if matches!(
                link_state,
                LinkState::Disconnected | LinkState::DeletedInPrm
            ) {
                continue;
            }
            let crm_id = item.link.crm_id.clone();
            let prm_id = item.link.prm_id.clone();
            if let Some(crm) = item.crm.as_ref().filter(|c| c.deleted) {
                match crm.master_id.clone() {
                    Some(master) if !master_links.contains(&master) => {
                        item.link.crm_id = master.clone();
                        item.link.retry = true;
                        item.link.crm_modstamp = None;
                        item.crm = None;
                        item.dirty = true;
                        self.log(
                            LogCode::MergedInCrm,
                            Some(&master),
                            Some(&prm_id),
                            format!(
                                "{obj} {crm_id} was merged into {master} in Salesforce; the link of {} {prm_id} now follows {master}",
                                self.spec.kind
                            ),
                            json!({"loser": crm_id, "master": master}),
                        );
                    }
                    master => {
                        item.link.state = LinkState::Disconnected;
                        item.dirty = true;
                        item.crm = None;
                        item.prm = None;
                        self.out.counts.disconnected += 1;
                        let message = match master {
                            Some(m) => format!(
                                "{obj} {crm_id} was merged into {m}, which is already linked to another {}; {} {prm_id} is kept in the PRM and no longer syncs",
                                self.spec.kind, self.spec.kind
                            ),
                            None => format!(
                                "{obj} {crm_id} was deleted in Salesforce; {} {prm_id} is kept in the PRM and no longer syncs",
                                self.spec.kind
                            ),
                        };
                        self.log(
                            LogCode::DeletedInCrm,
                            Some(&crm_id),
                            Some(&prm_id),
                            message,
                            Value::Null,
                        );
                    }
                }
                continue;
            }
            if item.prm.as_ref().is_some_and(|p| p.deleted) {
                let mut merged: Fields = item.link.snapshot.clone().into_iter().collect();
                if let Some(kind) = item.prm.as_ref().and_then(|p| p.str_field("kind")) {
                    merged.insert(keys::KIND.into(), json!(kind));
                }
                if let Some(label) = self.spec.status_label(&merged) {
                    let status = rules::record_status(&label, true);
                    item.crm_patch
                        .insert(self.spec.setup.record_status.clone(), json!(status));
                    item.link
                        .snapshot
                        .insert(keys::RECORD_STATUS.into(), json!(status));
                    item.crm_keys.push(keys::RECORD_STATUS.into());
                } else {
                    // Nothing to mark in Salesforce (deals): the link ends here.
                    item.link.state = LinkState::DeletedInPrm;
                    self.log(
                        LogCode::DeletedInPrm,
                        Some(&crm_id),
                        Some(&prm_id),
                        format!(
                            "PRM {} {prm_id} was deleted; {} {crm_id} is kept and no longer syncs",
                            self.spec.kind,
                            self.spec.crm_object()
                        ),
                        Value::Null,
                    );
                }
                item.marks_deleted = true;
                item.dirty = true;
                continue;
            }
            if self.spec.kind == ObjectKind::Organization {
                if let Some(crm) = &item.crm {
                    let selected = self.spec.crm_selected(crm);
                    if !selected && link_state == LinkState::Linked {
                        item.link.state = LinkState::Unselected;
                        item.dirty = true;
                        self.log(
                            LogCode::SyncStoppedUnflagged,
                            Some(&crm_id),
                            Some(&prm_id),
                            format!(
                                "Account {crm_id} is no longer flagged for the PRM (Sync with PRM or Organization Status cleared); organization {prm_id} stops syncing"
                            ),
                            Value::Null,
                        );
                    } else if selected && link_state == LinkState::Unselected {
                        item.link.state = LinkState::Linked;
                        item.dirty = true;
                        self.children_pending(&item.link).await?;
                        self.log(
                            LogCode::SyncResumed,
                            Some(&crm_id),
                            Some(&prm_id),
                            format!("Account {crm_id} is flagged again; organization {prm_id} syncs again"),
                            Value::Null,
                        );
                    }
                }
            }
        }
        Ok(())
    }

    // ----- matching ---------------------------------------------------------------------

    fn crm_eligible(&self, r: &CrmRecord) -> bool {
        if r.deleted || !self.spec.crm_selected(r) {
            return false;
        }
        self.spec.kind != ObjectKind::Person || self.person_org_linked_crm(r).is_some()
    }

    fn prm_eligible(&self, r: &PrmRecord) -> bool {
        if r.deleted {
            return false;
        }
        self.spec.kind != ObjectKind::Person || self.person_org_linked_prm(r).is_some()
    }

    fn match_key_crm(&self, r: &CrmRecord) -> Option<String> {
        self.spec
            .crm_match_key(r, |account| self.ref_to_prm(account))
    }

    fn match_key_prm(&self, r: &PrmRecord) -> Option<String> {
        self.spec.prm_match_key(r)
    }

    /// Pairs unlinked records (by explicit ids, then by match key) and returns the pairs,
    /// the Salesforce records to create in the PRM and the PRM records to create in
    /// Salesforce (DESIGN 8).
    #[allow(clippy::type_complexity)]
    async fn match_unlinked(
        &mut self,
        crm: Vec<CrmRecord>,
        prm: Vec<PrmRecord>,
        full: bool,
    ) -> Result<(Vec<(CrmRecord, PrmRecord)>, Vec<CrmRecord>, Vec<PrmRecord>), PassError> {
        let prm_id_field = self.spec.prm_id_field().to_string();
        // Records rejected before are left alone until they change (a full run retries all).
        let (crm, prm) = if self.retry_rejected {
            (crm, prm)
        } else {
            let ids: Vec<String> = crm.iter().map(|r| r.id.clone()).collect();
            let rejected = self
                .ctx
                .store
                .rejected_versions(self.spec.kind, "crm", &ids)
                .await?;
            let crm: Vec<CrmRecord> = crm
                .into_iter()
                .filter(|r| rejected.get(&r.id) != Some(&crm_version(r)))
                .collect();
            let ids: Vec<String> = prm.iter().map(|r| r.id.clone()).collect();
            let rejected = self
                .ctx
                .store
                .rejected_versions(self.spec.kind, "prm", &ids)
                .await?;
            let prm: Vec<PrmRecord> = prm
                .into_iter()
                .filter(|r| rejected.get(&r.id) != Some(&r.version.to_string()))
                .collect();
            (crm, prm)
        };
        let mut crm: Vec<CrmRecord> = crm.into_iter().filter(|r| self.crm_eligible(r)).collect();
        let mut prm: Vec<PrmRecord> = prm.into_iter().filter(|r| self.prm_eligible(r)).collect();

        // Records named by the other side's id field but not in hand (a crash between a
        // create and its link, or an id set by hand).
        if !full {
            let have_prm: HashSet<&str> = prm.iter().map(|r| r.id.as_str()).collect();
            let want_prm: Vec<String> = crm
                .iter()
                .filter_map(|r| r.str_field(&prm_id_field))
                .filter(|id| !have_prm.contains(id))
                .map(str::to_string)
                .collect();
            let have_crm: HashSet<&str> = crm.iter().map(|r| r.id.as_str()).collect();
            let want_crm: Vec<String> = prm
                .iter()
                .filter_map(|r| r.crm_id.as_deref())
                .filter(|id| !have_crm.contains(id))
                .map(str::to_string)
                .collect();
            let linked_prm: HashSet<String> = self
                .ctx
                .store
                .find_links(self.spec.kind, &[], &want_prm)
                .await?
                .into_iter()
                .map(|l| l.prm_id)
                .collect();
            let want_prm: Vec<String> = want_prm
                .into_iter()
                .filter(|id| !linked_prm.contains(id))
                .collect();
            if !want_prm.is_empty() {
                let fetched = self
                    .ctx
                    .prm
                    .fetch(self.spec.prm_collection(), &want_prm)
                    .await?;
                prm.extend(fetched.into_iter().filter(|r| self.prm_eligible(r)));
            }
            let linked_crm: HashSet<String> = self
                .ctx
                .store
                .find_links(self.spec.kind, &want_crm, &[])
                .await?
                .into_iter()
                .map(|l| l.crm_id)
                .collect();
            let want_crm: Vec<String> = want_crm
                .into_iter()
                .filter(|id| !linked_crm.contains(id))
                .collect();
            if !want_crm.is_empty() {
                let fields = self.spec.crm_fields();
                let fetched = self
                    .ctx
                    .crm
                    .find(self.spec.crm_object(), &fields, "Id", &want_crm)
                    .await?;
                crm.extend(fetched.into_iter().filter(|r| self.crm_eligible(r)));
            }
            // People: look up unlinked records by email on the other side.
            if self.spec.kind == ObjectKind::Person {
                let have: HashSet<String> = crm.iter().map(|r| r.id.clone()).collect();
                let emails: Vec<String> = prm
                    .iter()
                    .filter(|r| r.crm_id.is_none())
                    .filter_map(|r| rules::person_match_key(r.str_field("email")))
                    .collect();
                if !emails.is_empty() {
                    let fields = self.spec.crm_fields();
                    let found = self
                        .ctx
                        .crm
                        .find("Contact", &fields, "Email", &emails)
                        .await?;
                    let ids: Vec<String> = found.iter().map(|r| r.id.clone()).collect();
                    let linked: HashSet<String> = self
                        .ctx
                        .store
                        .find_links(self.spec.kind, &ids, &[])
                        .await?
                        .into_iter()
                        .map(|l| l.crm_id)
                        .collect();
                    crm.extend(found.into_iter().filter(|r| {
                        !have.contains(&r.id) && !linked.contains(&r.id) && self.crm_eligible(r)
                    }));
                }
                let have: HashSet<String> = prm.iter().map(|r| r.id.clone()).collect();
                let lookups: Vec<String> = crm
                    .iter()
                    .filter(|r| r.str_field(&prm_id_field).is_none())
                    .filter_map(|r| rules::person_match_key(r.str_field("Email")))
                    .collect();
                for email in lookups {
                    let found = self.ctx.prm.people_by_email(&email).await?;
                    let ids: Vec<String> = found.iter().map(|r| r.id.clone()).collect();
                    let linked: HashSet<String> = self
                        .ctx
                        .store
                        .find_links(self.spec.kind, &[], &ids)
                        .await?
                        .into_iter()
                        .map(|l| l.prm_id)
                        .collect();
                    for r in found {
                        if !have.contains(&r.id) && !linked.contains(&r.id) && self.prm_eligible(&r)
                        {
                            prm.push(r);
                        }
                    }
                }
            }
        }
        let mut crm = dedupe_crm(crm);
        let mut prm = dedupe_prm(prm);

        let mut pairs = Vec::new();
        // 1. Explicit ids: the PRM's crm_id, then Salesforce's PRM Id field.
        let crm_pos: HashMap<String, usize> = crm
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let prm_pos: HashMap<String, usize> = prm
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let mut crm_taken = vec![false; crm.len()];
        let mut prm_taken = vec![false; prm.len()];
        for (pi, p) in prm.iter().enumerate() {
            if let Some(&ci) = p.crm_id.as_ref().and_then(|c| crm_pos.get(c)) {
                if !crm_taken[ci] {
                    crm_taken[ci] = true;
                    prm_taken[pi] = true;
                    pairs.push((ci, pi));
                }
            }
        }
        for (ci, c) in crm.iter().enumerate() {
            if crm_taken[ci] {
                continue;
            }
            if let Some(&pi) = c.str_field(&prm_id_field).and_then(|p| prm_pos.get(p)) {
                if !prm_taken[pi] {
                    crm_taken[ci] = true;
                    prm_taken[pi] = true;
                    pairs.push((ci, pi));
                }
            }
        }
        // 2. Match keys; a key with several candidates on either side is ambiguous, also
        // when an earlier page of this run linked the PRM record to another record.
        for (ci, c) in crm.iter().enumerate() {
            let Some(link) = self.claimed.get(&c.id).cloned() else {
                continue;
            };
            if crm_taken[ci] || c.str_field(&prm_id_field).is_some() {
                continue;
            }
            crm_taken[ci] = true;
            self.rejected.push(("crm", c.id.clone(), crm_version(c)));
            self.log(
                LogCode::AmbiguousMatch,
                Some(&c.id),
                None,
                format!(
                    "{} {} matches PRM {} {}, which this run linked to {} {} by the same key; nothing was created or linked",
                    self.spec.crm_object(),
                    c.id,
                    self.spec.kind,
                    link.prm_id,
                    self.spec.crm_object(),
                    link.crm_id
                ),
                json!({"crm_candidates": [c.id, link.crm_id], "prm_candidates": [link.prm_id]}),
            );
        }
        let mut crm_by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (ci, c) in crm.iter().enumerate() {
            // A record with a PRM Id of its own is not matched by key.
            if !crm_taken[ci] && c.str_field(&prm_id_field).is_none() {
                if let Some(k) = self.match_key_crm(c) {
                    crm_by_key.entry(k).or_default().push(ci);
                }
            }
        }
        let mut prm_by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (pi, p) in prm.iter().enumerate() {
            if !prm_taken[pi] && p.crm_id.is_none() {
                if let Some(k) = self.match_key_prm(p) {
                    prm_by_key.entry(k).or_default().push(pi);
                }
            }
        }
        for (key, cis) in &crm_by_key {
            let Some(pis) = prm_by_key.get(key) else {
                continue;
            };
            if cis.len() == 1 && pis.len() == 1 {
                crm_taken[cis[0]] = true;
                prm_taken[pis[0]] = true;
                pairs.push((cis[0], pis[0]));
                continue;
            }
            let crm_list: Vec<String> = cis.iter().map(|&i| crm[i].id.clone()).collect();
            let prm_list: Vec<String> = pis.iter().map(|&i| prm[i].id.clone()).collect();
            for &ci in cis {
                crm_taken[ci] = true;
                self.rejected
                    .push(("crm", crm[ci].id.clone(), crm_version(&crm[ci])));
                self.log(
                    LogCode::AmbiguousMatch,
                    Some(&crm[ci].id),
                    None,
                    format!(
                        "{} {} matches {} PRM {}s ({}); nothing was created or linked",
                        self.spec.crm_object(),
                        crm[ci].id,
                        prm_list.len(),
                        self.spec.kind,
                        prm_list.join(", ")
                    ),
                    json!({"key": key, "crm_candidates": crm_list, "prm_candidates": prm_list}),
                );
            }
            for &pi in pis {
                prm_taken[pi] = true;
                self.rejected
                    .push(("prm", prm[pi].id.clone(), prm[pi].version.to_string()));
                self.log(
                    LogCode::AmbiguousMatch,
                    None,
                    Some(&prm[pi].id),
                    format!(
                        "PRM {} {} matches {} Salesforce {}s ({}); nothing was created or linked",
                        self.spec.kind,
                        prm[pi].id,
                        crm_list.len(),
                        self.spec.crm_object(),
                        crm_list.join(", ")
                    ),
                    json!({"key": key, "crm_candidates": crm_list, "prm_candidates": prm_list}),
                );
            }
        }
        // Move records out: pairs, then the rest to create.
        let mut crm_slots: Vec<Option<CrmRecord>> = crm.drain(..).map(Some).collect();
        let mut prm_slots: Vec<Option<PrmRecord>> = prm.drain(..).map(Some).collect();
        let mut out_pairs = Vec::new();
        for (ci, pi) in pairs {
            if let (Some(c), Some(p)) = (crm_slots[ci].take(), prm_slots[pi].take()) {
                out_pairs.push((c, p));
            }
        }
        let to_prm = crm_slots
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !crm_taken[*i])
            .filter_map(|(_, c)| c)
            .collect();
        let to_crm = prm_slots
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !prm_taken[*i])
            .filter_map(|(_, p)| p)
            .collect();
        Ok((out_pairs, to_prm, to_crm))
    }

    // ----- creates ----------------------------------------------------------------------

    /// Creates PRM records for new Salesforce records, with the Salesforce Id as
    /// `Idempotency-Key` and `crm_id`, and saves each link at once.
    async fn create_in_prm(&mut self, records: Vec<CrmRecord>) -> Result<Vec<Item>, PassError> {
        let mut bodies = Vec::new();
        for crm in records {
            if let Some((body, snapshot)) = self.prm_create_body(&crm) {
                bodies.push((crm, body, snapshot));
            }
        }
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        if self.dry_run {
            for (crm, body, _) in bodies {
                self.out.counts.created.prm += 1;
                self.plan_write("create", Side::Prm, None, Some(crm.id), body);
            }
            return Ok(Vec::new());
        }
        let collection = self.spec.prm_collection();
        let prm = self.ctx.prm.clone();
        let results: Vec<_> =
            futures::stream::iter(bodies.into_iter().map(|(crm, body, snapshot)| {
                let prm = prm.clone();
                async move {
                    let key = crm.id.clone();
                    let r = prm.create(collection, &key, body).await;
                    (crm, snapshot, r)
                }
            }))
            .buffered(prm_concurrency(self.ctx))
            .collect()
            .await;
        let mut items = Vec::new();
        let mut stop = None;
        for (crm, snapshot, result) in results {
            let result = match result.map_err(record_failure_of) {
                Ok(r) => r,
                Err(Ok(failure)) => Err(failure),
                Err(Err(e)) => {
                    stop = Some(e);
                    break;
                }
            };
            match result {
                Ok(created) => {
                    self.out.counts.created.prm += 1;
                    let mut link = Link::new(self.spec.kind, &created.id, &crm.id);
                    link.snapshot = snapshot;
                    link.prm_version = Some(created.version);
                    link.crm_modstamp = crm.modstamp;
                    self.log(
                        LogCode::RecordCreated,
                        Some(&crm.id),
                        Some(&created.id),
                        format!(
                            "Created PRM {} {} from {} {}",
                            self.spec.kind,
                            created.id,
                            self.spec.crm_object(),
                            crm.id
                        ),
                        Value::Null,
                    );
                    let mut item = Item::new(link);
                    item.crm = Some(crm);
                    item.prm = Some(created);
                    item.created = Some(Side::Prm);
                    items.push(item);
                }
                Err(failure) => {
                    if failure.class == FailureClass::Data {
                        self.rejected
                            .push(("crm", crm.id.clone(), crm_version(&crm)));
                    }
                    if let Err(e) = self.prm_failure(&failure, Some(&crm.id), None, "create") {
                        stop = Some(e);
                        break;
                    }
                }
            }
        }
        self.save_created(items, stop).await
    }

    /// Saves the links of records this pass just created, in one store call, and returns
    /// the items whose link was saved (on a conflict another worker's link stands). When
    /// the creates stopped on an error (`stop`), the records created so far keep their
    /// links and the error is returned.
    async fn save_created(
        &mut self,
        created: Vec<Item>,
        stop: Option<PassError>,
    ) -> Result<Vec<Item>, PassError> {
        if self.dry_run || created.is_empty() {
            return stop.map_or(Ok(created), Err);
        }
        let links: Vec<Link> = created.iter().map(|i| i.link.clone()).collect();
        let results = self.ctx.store.save_links(&links).await;
        let mut out = Vec::with_capacity(created.len());
        for (mut item, result) in created.into_iter().zip(results) {
            match result {
                Ok(saved) => item.link = saved,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            self.add_ref(&item.link);
            self.children_pending(&item.link).await?;
            out.push(item);
        }
        stop.map_or(Ok(out), Err)
    }

    fn prm_create_body(&mut self, crm: &CrmRecord) -> Option<(Fields, BTreeMap<String, Value>)> {
        let mut body = Fields::new();
        let mut snapshot = BTreeMap::new();
        for f in self.spec.fields.iter() {
            let v = match (&f.fixed, &f.crm) {
                (Some(fixed), _) if f.prm.is_some() => canonical(f.field_type, f.max_length, fixed),
                (Some(_), _) => continue,
                (None, _) => match read_crm(f, &crm.fields) {
                    Ok(v) => v,
                    Err(e) => {
                        self.unmapped(&e, Some(&crm.id), None);
                        self.rejected
                            .push(("crm", crm.id.clone(), crm_version(crm)));
                        return None;
                    }
                },
            };
            if f.prm.is_some() && !v.is_null() {
                write_prm(f, &v, &mut body);
            }
            snapshot.insert(f.key(), v);
        }
        body.insert("crm_id".into(), json!(crm.id));
        snapshot.insert(keys::CRM_ID.into(), json!(crm.id));
        match self.spec.kind {
            ObjectKind::Organization => {
                let parent = crm.str_field("ParentId").and_then(|p| self.ref_to_prm(p));
                if self.spec.reference.is_some() {
                    if let Some(p) = &parent {
                        body.insert("parent_id".into(), json!(p));
                    }
                    snapshot.insert(keys::REFERENCE.into(), json!(parent));
                }
            }
            _ => {
                let org = self.person_org_linked_crm(crm)?;
                body.insert("organization_id".into(), json!(org));
                body.insert("kind".into(), json!("contact"));
                snapshot.insert(keys::REFERENCE.into(), json!(org));
                snapshot.insert(keys::KIND.into(), json!("contact"));
            }
        }
        Some((body, snapshot))
    }

    /// Creates Salesforce records for new PRM records by upsert on the PRM Id field, in
    /// Collections, and saves each link at once.
    async fn create_in_crm(&mut self, records: Vec<PrmRecord>) -> Result<Vec<Item>, PassError> {
        let mut rows = Vec::new();
        for prm in records {
            if let Some((body, snapshot)) = self.crm_create_body(&prm) {
                rows.push((prm, body, snapshot));
            }
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if self.dry_run {
            for (prm, body, _) in rows {
                self.out.counts.created.crm += 1;
                self.plan_write("create", Side::Crm, None, Some(prm.id), body);
            }
            return Ok(Vec::new());
        }
        if let Some(message) = self.reserve_reached() {
            self.out.stopped = Some(message);
            return Ok(Vec::new());
        }
        let bodies: Vec<Fields> = rows.iter().map(|(_, b, _)| b.clone()).collect();
        let results = match self
            .ctx
            .crm
            .upsert(self.spec.crm_object(), self.spec.prm_id_field(), bodies)
            .await
        {
            Ok(results) => results,
            Err(e) => vec![Err(record_failure_of(e)?); rows.len()],
        };
        let mut items = Vec::new();
        let mut stop = None;
        for ((prm, body, snapshot), result) in rows.into_iter().zip(results) {
            match result {
                Ok(ok) => {
                    if ok.created {
                        self.out.counts.created.crm += 1;
                    } else {
                        self.out.counts.updated.crm += 1;
                    }
                    self.log(
                        LogCode::RecordCreated,
                        Some(&ok.id),
                        Some(&prm.id),
                        format!(
                            "Created Salesforce {} {} from PRM {} {}",
                            self.spec.crm_object(),
                            ok.id,
                            self.spec.kind,
                            prm.id
                        ),
                        Value::Null,
                    );
                    let mut link = Link::new(self.spec.kind, &prm.id, &ok.id);
                    link.snapshot = snapshot;
                    link.prm_version = Some(prm.version);
                    let mut item = Item::new(link);
                    let mut fields = body;
                    fields.insert("Id".into(), json!(ok.id));
                    item.crm = Some(CrmRecord {
                        id: ok.id.clone(),
                        fields,
                        modstamp: None,
                        deleted: false,
                        master_id: None,
                    });
                    item.prm = Some(prm);
                    item.created = Some(Side::Crm);
                    items.push(item);
                }
                Err(failure) => {
                    if failure.class == FailureClass::Data {
                        self.rejected
                            .push(("prm", prm.id.clone(), prm.version.to_string()));
                    }
                    if let Err(e) = self.crm_failure(&failure, None, Some(&prm.id), "create") {
                        stop = Some(e);
                        break;
                    }
                }
            }
        }
        self.save_created(items, stop).await
    }

    fn crm_create_body(&mut self, prm: &PrmRecord) -> Option<(Fields, BTreeMap<String, Value>)> {
        let mut body = Fields::new();
        let mut snapshot = BTreeMap::new();
        for f in self.spec.fields.iter() {
            let v = match &f.fixed {
                Some(fixed) if f.crm.is_some() => canonical(f.field_type, f.max_length, fixed),
                Some(_) => continue,
                None => read_prm(f, &prm.fields),
            };
            if f.crm.is_some() {
                if let Err(e) = write_crm(f, &v, &mut body) {
                    self.unmapped(&e, None, Some(&prm.id));
                    self.rejected
                        .push(("prm", prm.id.clone(), prm.version.to_string()));
                    return None;
                }
            }
            snapshot.insert(f.key(), v);
        }
        let setup = self.spec.setup.clone();
        body.insert(self.spec.prm_id_field().to_string(), json!(prm.id));
        snapshot.insert(keys::PRM_ID.into(), json!(prm.id));
        match self.spec.kind {
            ObjectKind::Organization => {
                body.insert(setup.sync_flag.clone(), json!(true));
                if self.spec.reference.is_some() {
                    let parent = prm
                        .str_field("parent_id")
                        .and_then(|p| self.ref_to_crm(p).map(|c| (p.to_string(), c)));
                    if let Some((_, crm_parent)) = &parent {
                        body.insert("ParentId".into(), json!(crm_parent));
                    }
                    snapshot.insert(keys::REFERENCE.into(), json!(parent.map(|(p, _)| p)));
                }
            }
            _ => {
                let account = self.person_org_linked_prm(prm)?;
                body.insert("AccountId".into(), json!(account));
                body.insert(setup.sync_flag.clone(), json!(true));
                snapshot.insert(
                    keys::REFERENCE.into(),
                    json!(prm.str_field("organization_id")),
                );
                snapshot.insert(
                    keys::KIND.into(),
                    json!(prm.str_field("kind").unwrap_or("contact")),
                );
            }
        }
        let merged: Fields = snapshot.clone().into_iter().collect();
        if let Some(label) = self.spec.status_label(&merged) {
            let status = rules::record_status(&label, false);
            body.insert(setup.record_status.clone(), json!(status));
            snapshot.insert(keys::RECORD_STATUS.into(), json!(status));
        }
        Some((body, snapshot))
    }

    // ----- merge ------------------------------------------------------------------------

    /// Works out what a linked pair needs: the three-way merge of every mapped field, the
    /// reference, and the values the sync rules keep (PRM Id, Record Status, crm_id).
    fn plan_item(&mut self, item: &mut Item) {
        if item.link.state != LinkState::Linked || item.marks_deleted {
            return;
        }
        if item.crm.is_none() && item.prm.is_none() {
            return;
        }
        let kind = self.spec.kind;
        if kind == ObjectKind::Person {
            // A person syncs while its organization does.
            let org_ok = match (&item.crm, &item.prm) {
                (Some(c), _) if c.str_field("AccountId").is_some() => {
                    self.person_org_linked_crm(c).is_some()
                }
                (_, Some(p)) => self.person_org_linked_prm(p).is_some(),
                _ => true,
            };
            if !org_ok {
                return;
            }
        }
        // A retry is served by this merge; the reference may ask for another one.
        let was_retry = std::mem::take(&mut item.link.retry);
        if was_retry {
            item.dirty = true;
        }
        let rule_base = FieldRule {
            direction: Default::default(),
            conflict: self.ctx.mapping.sync.default_conflict,
            initial_winner: self.ctx.mapping.sync.initial_link_winner,
        };
        let recency = Recency {
            prm: item.prm.as_ref().map(|p| p.updated_at),
            crm: item.crm.as_ref().and_then(|c| c.modstamp),
        };
        let crm_id = item.link.crm_id.clone();
        let prm_id = item.link.prm_id.clone();
        let fields = std::sync::Arc::clone(&self.spec.fields);
        for f in fields.iter() {
            if f.fixed.is_some() {
                continue;
            }
            let key = f.key();
            let crm_value = match item.crm.as_ref().map(|c| read_crm_cow(f, &c.fields)) {
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    self.unmapped(&e, Some(&crm_id), Some(&prm_id));
                    item.rejected = true;
                    continue;
                }
                None => None,
            };
            let prm_value = item.prm.as_ref().map(|p| read_prm_cow(f, &p.fields));
            let rule = FieldRule {
                direction: f.direction,
                conflict: self.ctx.mapping.conflict_rule(f),
                ..rule_base
            };
            let m = merge_field(
                rule,
                MergeInput {
                    snapshot: item.link.snapshot.get(&key),
                    prm: prm_value.as_deref(),
                    crm: crm_value.as_deref(),
                },
                recency,
            );
            if m.write_crm {
                if let Err(e) = write_crm(f, &m.value, &mut item.crm_patch) {
                    self.unmapped(&e, Some(&crm_id), Some(&prm_id));
                    item.rejected = true;
                    continue;
                }
                item.crm_keys.push(key.clone());
            }
            if m.write_prm {
                write_prm(f, &m.value, &mut item.prm_patch);
                item.prm_keys.push(key.clone());
            }
            if let Some(c) = &m.conflict {
                self.out.counts.conflicts += 1;
                self.log(
                    LogCode::Conflict,
                    Some(&crm_id),
                    Some(&prm_id),
                    format!(
                        "{} changed on both sides: PRM `{}` = {}, Salesforce `{}` = {}; the {} value was kept",
                        key,
                        f.prm.as_deref().unwrap_or("-"),
                        c.prm,
                        f.crm.as_deref().unwrap_or("-"),
                        c.crm,
                        if c.winner == Side::Prm { "PRM" } else { "Salesforce" }
                    ),
                    json!({"field": key, "prm": c.prm, "crm": c.crm, "winner": c.winner.as_str()}),
                );
            }
            if item.link.snapshot.get(&key) != Some(&m.value) {
                item.link.snapshot.insert(key, m.value);
                item.dirty = true;
            }
        }
        self.plan_reference(item, was_retry);
        self.plan_setup_values(item);
        // Versions seen.
        if let Some(ms) = item.crm.as_ref().and_then(|c| c.modstamp) {
            if item.link.crm_modstamp != Some(ms) {
                item.link.crm_modstamp = Some(ms);
                item.dirty = true;
            }
        }
        if let Some(v) = item.prm.as_ref().map(|p| p.version) {
            if item.link.prm_version != Some(v) {
                item.link.prm_version = Some(v);
                item.dirty = true;
            }
        }
    }

    /// Merges the reference (parent organization or a person's organization) in PRM-id
    /// space, translating through the organization links.
    /// `was_retry`: the link was marked for a retry already, so its entry was written.
    fn plan_reference(&mut self, item: &mut Item, was_retry: bool) {
        let Some(reference) = self.spec.reference else {
            return;
        };
        let crm_id = item.link.crm_id.clone();
        let prm_id = item.link.prm_id.clone();
        let mut unresolved = None;
        let crm_value = item
            .crm
            .as_ref()
            .and_then(|c| match c.str_field(reference.crm_field) {
                None => Some(Value::Null),
                Some(raw) => match self.ref_to_prm(raw) {
                    Some(p) => Some(json!(p)),
                    None => {
                        unresolved = Some(raw.to_string());
                        None
                    }
                },
            });
        let prm_value = item.prm.as_ref().map(|p| {
            p.str_field(reference.prm_field)
                .map(|s| json!(s))
                .unwrap_or(Value::Null)
        });
        let snapshot = item.link.snapshot.get(keys::REFERENCE).cloned();
        let m = merge_field(
            FieldRule {
                direction: Default::default(),
                conflict: self.ctx.mapping.sync.default_conflict,
                initial_winner: self.ctx.mapping.sync.initial_link_winner,
            },
            MergeInput {
                snapshot: snapshot.as_ref(),
                prm: prm_value.as_ref(),
                crm: crm_value.as_ref(),
            },
            Recency {
                prm: item.prm.as_ref().map(|p| p.updated_at),
                crm: item.crm.as_ref().and_then(|c| c.modstamp),
            },
        );
        let mut value = m.value.clone();
        if m.write_crm {
            let target = match &m.value {
                Value::String(p) => self.ref_to_crm(p).map(|c| json!(c)),
                _ if reference.required => None,
                _ => Some(Value::Null),
            };
            match target {
                Some(t) => {
                    item.crm_patch.insert(reference.crm_field.into(), t);
                    item.crm_keys.push(keys::REFERENCE.into());
                }
                None => {
                    value = snapshot.clone().unwrap_or(Value::Null);
                    unresolved = m.value.as_str().map(str::to_string);
                }
            }
        }
        if m.write_prm && !(reference.required && m.value.is_null()) {
            item.prm_patch
                .insert(reference.prm_field.into(), m.value.clone());
            item.prm_keys.push(keys::REFERENCE.into());
        }
        if snapshot.as_ref() != Some(&value) {
            item.link.snapshot.insert(keys::REFERENCE.into(), value);
            item.dirty = true;
        }
        if let Some(raw) = unresolved {
            if !was_retry {
                let code = if reference.required {
                    LogCode::AccountNotLinked
                } else {
                    LogCode::ParentNotLinked
                };
                self.log(
                    code,
                    Some(&crm_id),
                    Some(&prm_id),
                    format!(
                        "{} {crm_id} refers to {raw} in `{}`, which does not sync with the PRM yet; the reference is set once it does",
                        self.spec.crm_object(),
                        reference.crm_field
                    ),
                    json!({"reference": raw}),
                );
                if self.hold_unresolved {
                    if let Some(held) = self.out.log.pop() {
                        self.out.held.push(held);
                    }
                }
            }
            // Retried later, without counting the retry flag as a change of the record.
            item.link.retry = true;
            item.dirty = true;
        }
    }

    /// The values the sync rules keep: Salesforce's PRM Id and Record Status, the PRM's
    /// crm_id, a person's kind.
    fn plan_setup_values(&mut self, item: &mut Item) {
        let setup = self.spec.setup.clone();
        if let Some(kind) = item.prm.as_ref().and_then(|p| p.str_field("kind")) {
            if self.spec.kind == ObjectKind::Person
                && item.link.snapshot.get(keys::KIND) != Some(&json!(kind))
            {
                item.link.snapshot.insert(keys::KIND.into(), json!(kind));
                item.dirty = true;
            }
        }
        let merged: Fields = item.link.snapshot.clone().into_iter().collect();
        let expected_status = self
            .spec
            .status_label(&merged)
            .map(|label| rules::record_status(&label, false));
        let mut want_crm = vec![(
            keys::PRM_ID,
            self.spec.prm_id_field().to_string(),
            json!(item.link.prm_id),
        )];
        if let Some(status) = expected_status {
            want_crm.push((
                keys::RECORD_STATUS,
                setup.record_status.clone(),
                json!(status),
            ));
        }
        for (key, field, expected) in want_crm {
            let current = match &item.crm {
                Some(c) => c.fields.get(&field).cloned().unwrap_or(Value::Null),
                None => item.link.snapshot.get(key).cloned().unwrap_or(Value::Null),
            };
            if current != expected && !item.crm_patch.contains_key(&field) {
                item.crm_patch.insert(field, expected.clone());
                item.crm_keys.push(key.into());
            }
            if item.link.snapshot.get(key) != Some(&expected) {
                item.link.snapshot.insert(key.into(), expected);
                item.dirty = true;
            }
        }
        let expected = json!(item.link.crm_id);
        let current = match &item.prm {
            Some(p) => json!(p.crm_id),
            None => item
                .link
                .snapshot
                .get(keys::CRM_ID)
                .cloned()
                .unwrap_or(Value::Null),
        };
        if current != expected {
            item.prm_patch.insert("crm_id".into(), expected.clone());
            item.prm_keys.push(keys::CRM_ID.into());
        }
        if item.link.snapshot.get(keys::CRM_ID) != Some(&expected) {
            item.link.snapshot.insert(keys::CRM_ID.into(), expected);
            item.dirty = true;
        }
    }

    // ----- writes -----------------------------------------------------------------------

    async fn write_crm_updates(&mut self, items: &mut [Item]) -> Result<(), PassError> {
        let indices: Vec<usize> = (0..items.len())
            .filter(|&i| !items[i].crm_patch.is_empty())
            .collect();
        if indices.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            for &i in &indices {
                self.count_crm_write(&items[i]);
                let (id, source, fields) = (
                    items[i].link.crm_id.clone(),
                    items[i].link.prm_id.clone(),
                    items[i].crm_patch.clone(),
                );
                self.plan_write("update", Side::Crm, Some(id), Some(source), fields);
            }
            return Ok(());
        }
        if let Some(message) = self.reserve_reached() {
            self.out.stopped = Some(message);
            for &i in &indices {
                // Nothing was written: keep the old snapshot so the next run writes again.
                items[i].link.snapshot = items[i].old_snapshot.clone();
                items[i].link.retry = true;
            }
            return Ok(());
        }
        let rows: Vec<(String, Fields)> = indices
            .iter()
            .map(|&i| (items[i].link.crm_id.clone(), items[i].crm_patch.clone()))
            .collect();
        let count = rows.len();
        let results = match self.ctx.crm.update(self.spec.crm_object(), rows).await {
            Ok(results) => results,
            Err(e) => vec![Err(record_failure_of(e)?); count],
        };
        for (&i, result) in indices.iter().zip(results) {
            match result {
                Ok(_) => {
                    self.count_crm_write(&items[i]);
                    if items[i].created.is_none() && !items[i].marks_deleted {
                        let (c, p) = (items[i].link.crm_id.clone(), items[i].link.prm_id.clone());
                        let fields: Vec<String> = items[i].crm_patch.keys().cloned().collect();
                        self.log(
                            LogCode::RecordUpdated,
                            Some(&c),
                            Some(&p),
                            format!(
                                "Updated {} {c} from PRM {} {p}: {}",
                                self.spec.crm_object(),
                                self.spec.kind,
                                fields.join(", ")
                            ),
                            json!({"fields": items[i].crm_patch}),
                        );
                    }
                    if items[i].marks_deleted {
                        items[i].link.state = LinkState::DeletedInPrm;
                        let (c, p) = (items[i].link.crm_id.clone(), items[i].link.prm_id.clone());
                        self.log(
                            LogCode::DeletedInPrm,
                            Some(&c),
                            Some(&p),
                            format!(
                                "PRM {} {p} was deleted; {} {c} is kept with Record Status `{}`",
                                self.spec.kind,
                                self.spec.crm_object(),
                                items[i]
                                    .crm_patch
                                    .get(&self.spec.setup.record_status)
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                            ),
                            Value::Null,
                        );
                    }
                }
                Err(failure) => {
                    let item = &mut items[i];
                    restore_keys(item, Side::Crm);
                    let (c, p) = (item.link.crm_id.clone(), item.link.prm_id.clone());
                    if failure.class == FailureClass::Gone {
                        item.link.state = LinkState::Disconnected;
                        item.dirty = true;
                        self.out.counts.disconnected += 1;
                    }
                    if failure.class == FailureClass::Transient {
                        item.link.retry = true;
                        item.dirty = true;
                    }
                    if matches!(failure.class, FailureClass::Data | FailureClass::Setup) {
                        item.rejected = true;
                    }
                    self.crm_failure(&failure, Some(&c), Some(&p), "update")?;
                }
            }
        }
        Ok(())
    }

    /// Records a write a dry run would make.
    fn plan_write(
        &mut self,
        action: &str,
        side: Side,
        id: Option<String>,
        source_id: Option<String>,
        fields: Fields,
    ) {
        let (side, object) = match side {
            Side::Crm => ("crm", self.spec.crm_object()),
            Side::Prm => ("prm", self.spec.prm_collection()),
        };
        self.out.planned.push(PlannedWrite {
            action: action.into(),
            side: side.into(),
            object: object.into(),
            id,
            source_id,
            fields,
        });
    }

    fn count_crm_write(&mut self, item: &Item) {
        if item.marks_deleted {
            self.out.counts.deleted_marked += 1;
        } else if item.created.is_none() {
            self.out.counts.updated.crm += 1;
        }
    }

    async fn write_prm_updates(&mut self, items: &mut [Item]) -> Result<(), PassError> {
        let indices: Vec<usize> = (0..items.len())
            .filter(|&i| !items[i].prm_patch.is_empty())
            .collect();
        if indices.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            for &i in &indices {
                if items[i].created.is_none() {
                    self.out.counts.updated.prm += 1;
                }
                let (id, source, fields) = (
                    items[i].link.prm_id.clone(),
                    items[i].link.crm_id.clone(),
                    items[i].prm_patch.clone(),
                );
                self.plan_write("update", Side::Prm, Some(id), Some(source), fields);
            }
            return Ok(());
        }
        let collection = self.spec.prm_collection();
        let prm = self.ctx.prm.clone();
        let calls: Vec<(usize, String, i64, Fields)> = indices
            .iter()
            .map(|&i| {
                let item = &items[i];
                let version = item
                    .prm
                    .as_ref()
                    .map(|p| p.version)
                    .or(item.link.prm_version)
                    .unwrap_or(0);
                (i, item.link.prm_id.clone(), version, item.prm_patch.clone())
            })
            .collect();
        let results: Vec<_> =
            futures::stream::iter(calls.into_iter().map(|(i, id, version, patch)| {
                let prm = prm.clone();
                async move { (i, prm.update(collection, &id, version, patch).await) }
            }))
            .buffered(prm_concurrency(self.ctx))
            .collect()
            .await;
        for (i, result) in results {
            let result = match result {
                Ok(r) => r,
                Err(e) => Err(record_failure_of(e)?),
            };
            match result {
                Ok(updated) => {
                    if items[i].created.is_none() {
                        self.out.counts.updated.prm += 1;
                        let (c, p) = (items[i].link.crm_id.clone(), items[i].link.prm_id.clone());
                        let fields: Vec<String> = items[i].prm_patch.keys().cloned().collect();
                        self.log(
                            LogCode::RecordUpdated,
                            Some(&c),
                            Some(&p),
                            format!(
                                "Updated PRM {} {p} from {} {c}: {}",
                                self.spec.kind,
                                self.spec.crm_object(),
                                fields.join(", ")
                            ),
                            json!({"fields": items[i].prm_patch}),
                        );
                    }
                    items[i].link.prm_version = Some(updated.version);
                    items[i].dirty = true;
                }
                Err(failure) => {
                    let item = &mut items[i];
                    restore_keys(item, Side::Prm);
                    let (c, p) = (item.link.crm_id.clone(), item.link.prm_id.clone());
                    match failure.class {
                        FailureClass::Transient => {
                            item.link.retry = true;
                            item.dirty = true;
                            self.prm_failure(&failure, Some(&c), Some(&p), "update")?;
                        }
                        FailureClass::VersionConflict => {
                            // Changed in the PRM since it was read: read it again next run.
                            item.link.retry = true;
                            item.dirty = true;
                            self.log(
                                LogCode::TransientError,
                                Some(&c),
                                Some(&p),
                                format!(
                                    "PRM {} {p} changed while it was being synced ({}); it is synced again on the next run",
                                    self.spec.kind, failure.message
                                ),
                                json!({"code": failure.code}),
                            );
                        }
                        FailureClass::Gone => {
                            item.link.state = LinkState::Disconnected;
                            item.dirty = true;
                            self.out.counts.disconnected += 1;
                            self.log(
                                LogCode::PrmRecordGone,
                                Some(&c),
                                Some(&p),
                                format!(
                                    "PRM {} {p} no longer exists ({}); the link was disconnected",
                                    self.spec.kind, failure.message
                                ),
                                json!({"code": failure.code}),
                            );
                        }
                        _ => {
                            item.rejected = true;
                            self.prm_failure(&failure, Some(&c), Some(&p), "update")?
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn save_links(&mut self, items: &mut [Item]) -> Result<(), PassError> {
        let mut to_save = Vec::new();
        for (i, item) in items.iter_mut().enumerate() {
            let wrote = !item.crm_patch.is_empty() || !item.prm_patch.is_empty();
            if !wrote
                && item.created.is_none()
                && item.link.state == LinkState::Linked
                && !item.marks_deleted
            {
                self.out.counts.unchanged += 1;
            }
            if item.rejected {
                let version = pair_version(item.link.crm_modstamp, item.link.prm_version);
                self.rejected
                    .push(("link", item.link.prm_id.clone(), version));
            }
            if self.dry_run || !(item.dirty || wrote) {
                continue;
            }
            item.link.updated_at = Utc::now();
            to_save.push(i);
        }
        if to_save.is_empty() {
            return Ok(());
        }
        let links: Vec<Link> = to_save.iter().map(|&i| items[i].link.clone()).collect();
        let results = self.ctx.store.save_links(&links).await;
        for (&i, result) in to_save.iter().zip(results) {
            match result {
                Ok(saved) => items[i].link = saved,
                Err(StoreError::Conflict { .. }) => {
                    // Another worker saved this pair first; its result stands and the
                    // next run merges again from there.
                    let (c, p) = (items[i].link.crm_id.clone(), items[i].link.prm_id.clone());
                    self.log(
                        LogCode::TransientError,
                        Some(&c),
                        Some(&p),
                        format!("{} {p} was synced by another worker at the same time; the next run checks it again", self.spec.kind),
                        Value::Null,
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    // ----- failures, budget, log --------------------------------------------------------

    fn crm_failure(
        &mut self,
        failure: &RecordFailure,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
        action: &str,
    ) -> Result<(), PassError> {
        self.out.counts.errors += 1;
        let obj = self.spec.crm_object();
        let record = match (action, crm_id, prm_id) {
            ("create", _, Some(p)) => format!("the new {obj} for PRM {} {p}", self.spec.kind),
            (_, Some(c), _) => format!("the update of {obj} {c}"),
            _ => format!("a write to {obj}"),
        };
        let fields = if failure.fields.is_empty() {
            String::new()
        } else {
            format!(" (field {})", failure.fields.join(", "))
        };
        if failure.class == FailureClass::Transient {
            self.out.failed.push(FailedRecord {
                crm_id: crm_id.map(str::to_string),
                prm_id: prm_id.map(str::to_string),
                message: format!("Salesforce: {} {}", failure.code, failure.message),
            });
        }
        let code = match failure.class {
            FailureClass::Setup => LogCode::CrmSetupError,
            FailureClass::Gone => LogCode::CrmRecordGone,
            FailureClass::Transient => LogCode::TransientError,
            _ => LogCode::CrmDataError,
        };
        self.log(
            code,
            crm_id,
            prm_id,
            format!(
                "Salesforce rejected {record}{fields}: {} {}",
                failure.code, failure.message
            ),
            json!({"errorCode": failure.code, "message": failure.message, "fields": failure.fields}),
        );
        if failure.class == FailureClass::Auth {
            return Err(PassError::Port(PortError {
                system: crate::ports::System::Salesforce,
                class: FailureClass::Auth,
                message: failure.message.clone(),
            }));
        }
        Ok(())
    }

    fn prm_failure(
        &mut self,
        failure: &RecordFailure,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
        action: &str,
    ) -> Result<(), PassError> {
        self.out.counts.errors += 1;
        let kind = self.spec.kind;
        let record = match (action, crm_id, prm_id) {
            ("create", Some(c), _) => {
                format!("the new PRM {kind} for {} {c}", self.spec.crm_object())
            }
            (_, _, Some(p)) => format!("the update of PRM {kind} {p}"),
            _ => format!("a write of a PRM {kind}"),
        };
        let fields = if failure.fields.is_empty() {
            String::new()
        } else {
            format!(" (field {})", failure.fields.join("; "))
        };
        if failure.class == FailureClass::Transient {
            self.out.failed.push(FailedRecord {
                crm_id: crm_id.map(str::to_string),
                prm_id: prm_id.map(str::to_string),
                message: format!("PRM: {}", failure.message),
            });
        }
        let code = match failure.class {
            FailureClass::Transient | FailureClass::VersionConflict => LogCode::TransientError,
            _ => LogCode::PrmValidationFailed,
        };
        self.log(
            code,
            crm_id,
            prm_id,
            format!("The PRM rejected {record}{fields}: {}", failure.message),
            json!({"code": failure.code, "message": failure.message, "fields": failure.fields}),
        );
        if failure.class == FailureClass::Auth {
            return Err(PassError::Port(PortError {
                system: crate::ports::System::Prm,
                class: FailureClass::Auth,
                message: failure.message.clone(),
            }));
        }
        Ok(())
    }

    fn unmapped(&mut self, e: &UnmappedValue, crm_id: Option<&str>, prm_id: Option<&str>) {
        self.out.counts.errors += 1;
        let record = crm_id
            .map(|c| format!("{} {c}", self.spec.crm_object()))
            .or_else(|| prm_id.map(|p| format!("PRM {} {p}", self.spec.kind)))
            .unwrap_or_default();
        self.log(
            LogCode::UnmappedValue,
            crm_id,
            prm_id,
            format!("{record}: {e}"),
            json!({"field": e.field, "value": e.value, "accepted": e.accepted}),
        );
    }

    /// The Salesforce API reserve (DESIGN 11): stop before it is eaten.
    fn reserve_reached(&mut self) -> Option<String> {
        let message = crate::context::reserve_message(self.ctx)?;
        let usage = self.ctx.crm.usage();
        self.log(
            LogCode::ApiReserveReached,
            None,
            None,
            message.clone(),
            json!({"used": usage.map(|u| u.used), "max": usage.map(|u| u.max)}),
        );
        Some(message)
    }

    fn log(
        &mut self,
        code: LogCode,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
        message: String,
        details: Value,
    ) {
        let link = crm_id.and_then(|c| self.ctx.crm.record_url(self.spec.crm_object(), c));
        self.out.log.push(LogEntry {
            // Time-ordered (UUIDv7): a log's id index grows at its end.
            id: uuid::Uuid::now_v7().to_string(),
            time: Utc::now(),
            run_id: self.run_id.clone(),
            integration: self.integration,
            level: code.level(),
            code,
            object: Some(self.spec.kind),
            crm_id: crm_id.map(str::to_string),
            prm_id: prm_id.map(str::to_string),
            link,
            message,
            fix: code.fix().to_string(),
            details,
            acknowledged: false,
        });
    }
}

/// After a failed write to `side`, the snapshot keeps what that side still holds, so the
/// next run sees the difference and tries again.
fn restore_keys(item: &mut Item, side: Side) {
    let keys = match side {
        Side::Crm => &item.crm_keys,
        Side::Prm => &item.prm_keys,
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
fn dedupe_crm(records: Vec<CrmRecord>) -> Vec<CrmRecord> {
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
fn dedupe_prm(records: Vec<PrmRecord>) -> Vec<PrmRecord> {
    dedupe(records, |r| &r.id, |a, b| a.version >= b.version)
}

fn _assert_send(_: &WriteOutcome) {}
