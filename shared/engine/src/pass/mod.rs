//! One sync pass of an object pair (organizations ↔ Accounts, people ↔ Contacts, deals ↔
//! Opportunities): the records changed on each side are paired through their links,
//! merged field by field, matched or created when unlinked, and written back in batches.
//! Sync rules 3 to 11 of `docs/sync-rules.md` are decided here.
//!
//! Order of a pass, chosen so that a crash between any two steps converges on the next run
//! (rule 5):
//! 1. creates: PRM records with `Idempotency-Key` = Salesforce Id and `crm_id` set;
//!    Salesforce records by upsert on the PRM Id field; each link saved right away;
//! 2. the merge of every linked pair (including the ones just created, which writes the PRM
//!    Id, Record Status, `crm_id` and parents back);
//! 3. Salesforce updates in Collections, then PRM updates with `If-Match` (one refused for
//!    its version is read, merged and sent again; a Salesforce write that merge finds
//!    follows in one more Collection);
//! 4. the links with their new snapshots.
//!
//! One file per phase, in the order `Pass::run` calls them. Each phase's decision is a
//! pure function over records, links and the mapping, unit-tested beside it; the pass
//! around it reads, writes and logs:
//! - `pair.rs`: the pair in work ([`WorkPair`]); dedupe and pairing through links
//!   (`dedupe`, `pair_through_links`), written once for both sides over `SideRecord`;
//! - [`references`]: organization links that references translate through ([`references::OrgLinks`]);
//! - `lifecycle.rs`: deletes, merges, unflagging (`lifecycle_change`);
//! - `candidates.rs` and `matching.rs`: first-import matching (`match_records`);
//! - [`create_body`] and `create.rs`: creates on the other side
//!   ([`create_body::prm_create_body`], [`create_body::crm_create_body`]); deals are imported
//!   by `deal_import.rs` instead;
//! - [`plan`]: the three-way merge plan of one pair ([`plan::plan_pair`], also what the
//!   merge benchmark measures);
//! - `cycles.rs`: parents that would close a loop are held back and logged
//!   (`parent_cycles`);
//! - `write.rs`: batched writes and the links; `held.rs`: Salesforce updates held for one
//!   ingest job of several passes; `failures.rs`: what a failed write does
//!   (`classify_failure`); `race.rs`: a PRM update refused for its version is read, merged
//!   and sent again within the pass (`merge_again`); `log.rs`: Integration Log entries and
//!   dry-run writes.

use std::collections::HashMap;

use prmsync_mapping::{CrmRecord, Integration, ObjectKind, PrmRecord};

use crate::objects::ObjectSpec;

mod candidates;
mod create;
pub mod create_body;
mod cycles;
mod deal_import;
mod failures;
pub(crate) mod gone;
mod held;
mod lifecycle;
mod log;
mod matching;
mod pair;
pub mod plan;
mod race;
pub mod references;
#[cfg(test)]
mod testkit;
mod write;

use failures::record_failure_of;
pub use held::{HeldUpdate, HeldUpdates};
use lifecycle::take_master_records;
use pair::crm_version;
pub use pair::WorkPair;
use references::OrgLinks;

use crate::context::SyncContext;
use crate::ports::PortError;
use crate::report::{Counts, PlannedWrite};
use crate::retry::{FailedRecord, SetupFailure};
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
    /// the same run may link them. They go to [`PassOutcome::held_back_entries`].
    pub hold_unresolved: bool,
    /// Hand the Salesforce updates of plain pairs to the caller instead of writing them
    /// ([`PassOutcome::held_updates`]), to go out in one ingest job with those of later
    /// passes ([`settle_held_updates`]).
    pub hold_crm_updates: bool,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassOutcome {
    pub counts: Counts,
    pub log: Vec<LogEntry>,
    pub planned: Vec<PlannedWrite>,
    /// Set when the pass stopped early to keep the API reserve.
    pub stopped: Option<String>,
    /// Log entries held back by [`PassInput::hold_unresolved`] (references not linked yet);
    /// not to be confused with the retry set, which keeps records.
    pub held_back_entries: Vec<LogEntry>,
    /// Records whose write failed for a passing reason: the caller keeps them in the retry
    /// set (and a worker hands each out again on its own).
    pub failed: Vec<FailedRecord>,
    /// Records the setup refused to write (see failures.rs): the caller holds them and
    /// stops ([`crate::retry::hold_setup_failed`]).
    pub setup: Option<SetupFailure>,
    /// The Salesforce updates held by [`PassInput::hold_crm_updates`]: their links are
    /// saved as if the write had failed for a passing reason (marked for a retry, the
    /// snapshot keeping what Salesforce holds) until [`settle_held_updates`] writes them.
    pub held_updates: Vec<HeldUpdate>,
}

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
    let mut pass = Pass::new(ctx, kind, run_id, dry_run);
    pass.retry_rejected = input.full || input.retry_rejected;
    pass.hold_unresolved = input.hold_unresolved;
    pass.hold_crm_updates = input.hold_crm_updates && !dry_run;
    pass.run(input).await?;
    Ok(pass.out)
}

/// Writes the Salesforce updates that passes held ([`PassInput::hold_crm_updates`]) in one
/// call of the `Crm` port (an ingest job above `[salesforce] bulk_ingest_threshold`), then
/// settles each as the pass would have: logged, counted, its link saved with the snapshot
/// Salesforce now holds, or failed as a write of that pass fails (held.rs).
pub async fn settle_held_updates(
    ctx: &SyncContext,
    kind: ObjectKind,
    run_id: &str,
    held: Vec<HeldUpdate>,
) -> Result<PassOutcome, PassError> {
    let mut pass = Pass::new(ctx, kind, run_id, false);
    pass.settle_held(held).await?;
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
    /// Records rejected before are tried again.
    retry_rejected: bool,
    /// Rejections to remember at the end of the pass: (side, id, version).
    rejected: Vec<(&'static str, String, String)>,
    /// See [`PassInput::claimed`].
    claimed: HashMap<String, Link>,
    /// See [`PassInput::hold_unresolved`].
    hold_unresolved: bool,
    /// See [`PassInput::hold_crm_updates`].
    hold_crm_updates: bool,
}

impl<'a> Pass<'a> {
    fn new(ctx: &'a SyncContext, kind: ObjectKind, run_id: &str, dry_run: bool) -> Self {
        Pass {
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
            retry_rejected: false,
            rejected: Vec::new(),
            claimed: HashMap::new(),
            hold_unresolved: false,
            hold_crm_updates: false,
        }
    }

    /// The phases of a pass, in the order that converges after a crash between any two.
    async fn run(&mut self, input: PassInput) -> Result<(), PassError> {
        let PassInput {
            crm,
            prm,
            full,
            retry,
            claimed,
            ..
        } = input;
        self.claimed = claimed;

        // Pairing: the records in hand, and those of links marked for a retry, with
        // their links (pair.rs).
        let (mut pairs, mut unlinked_crm, unlinked_prm) =
            self.pair_records(crm, prm, &retry).await?;
        // A run that reads everything holding one record of a live link: the other is
        // gone without a trace, or out of the read's scope (gone.rs).
        if full {
            let live = |p: &WorkPair| p.link.state == crate::store::LinkState::Linked;
            self.read_other_sides(
                &mut pairs,
                |p| match (&p.crm, &p.prm) {
                    (None, Some(_)) if live(p) => Some(prmsync_mapping::config::Side::Crm),
                    (Some(_), None) if live(p) => Some(prmsync_mapping::config::Side::Prm),
                    _ => None,
                },
                true,
            )
            .await?;
        }
        // Lifecycle: deletes, merges and unflagging of linked records (lifecycle.rs). A
        // link that followed a merge takes the master's record if this pass read it.
        self.handle_lifecycle(&mut pairs).await?;
        take_master_records(&mut pairs, &mut unlinked_crm);

        // Unlinked records: match (matching.rs), or create on the other side (create.rs).
        let matched = self
            .match_unlinked(unlinked_crm, unlinked_prm, full)
            .await?;
        pairs.extend(self.link_matched(matched.pairs).await?);
        pairs.extend(
            self.create_unmatched(matched.to_prm, matched.to_crm)
                .await?,
        );

        // The merge plan of every linked pair (plan.rs).
        self.plan_pairs(&mut pairs).await?;

        // Writes (write.rs): Salesforce, then the PRM, then the links.
        // Parents that would close a loop are held back (cycles.rs).
        self.hold_parent_cycles(&mut pairs).await?;
        self.write_crm_updates(&mut pairs).await?;
        self.write_prm_updates(&mut pairs).await?;
        self.save_links(&mut pairs).await?;
        // Records created on either side are drift too (see `Counts::drift`).
        self.out.counts.drift += self.out.counts.created.crm + self.out.counts.created.prm;
        self.save_rejections().await
    }
}
