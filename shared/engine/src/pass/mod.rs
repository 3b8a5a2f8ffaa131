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

use prmsync_mapping::{CrmRecord, Integration, ObjectKind, PrmRecord};

use crate::objects::ObjectSpec;

mod candidates;
mod create;
pub mod create_body;
mod deal_import;
mod failures;
mod lifecycle;
mod log;
mod matching;
mod pair;
pub mod plan;
pub mod references;
#[cfg(test)]
mod testkit;
mod write;

use failures::record_failure_of;
pub use pair::WorkPair;
use pair::{crm_version, dedupe, pair_through_links, pair_version, pair_versions_of};
use references::OrgLinks;
use write::carry_partial_collection;

use crate::context::SyncContext;
use crate::ports::PortError;
use crate::report::{Counts, PlannedWrite};
use crate::retry::FailedRecord;
use crate::store::{Link, LogEntry, StoreError};

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
pub struct Carry(Vec<WorkPair>);

impl Carry {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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

/// A pass that could not go on.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
        org_links: OrgLinks::default(),
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
    org_links: OrgLinks,
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
        let mut crm_records: Vec<CrmRecord> = dedupe(crm_in);
        let mut prm_records: Vec<PrmRecord> = dedupe(prm_in);

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
        let (mut items, mut unlinked_crm, unlinked_prm) =
            pair_through_links(links, crm_records, prm_records);

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
        let matched = self
            .match_unlinked(unlinked_crm, unlinked_prm, full)
            .await?;
        let (to_prm, to_crm) = (matched.to_prm, matched.to_crm);
        let linked = self.link_matched(matched.pairs).await?;
        items.extend(linked);
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
                && rejected_pairs.get(&item.link.prm_id) == Some(&pair_versions_of(item))
            {
                continue;
            }
            self.plan_work_pair(item);
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
}
