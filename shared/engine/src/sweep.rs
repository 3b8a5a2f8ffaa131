//! A one-machine run of organizations or people, page by page (sync rule 2 in
//! `docs/sync-rules.md`), so that its
//! memory stays flat however many records changed:
//!
//! 1. The PRM's changes are read first into a [`PrmChanges`] index: every changed id, and
//!    for each unlinked record what can pair it with a Salesforce record (its `crm_id`, or
//!    a 128-bit hash of its match key). The first `[sync] held_prm_records` are kept whole.
//! 2. On an incremental people run, the people of newly linked organizations are synced
//!    first; the sweep then skips those records.
//! 3. Salesforce's changes are read page by page ([`Crm::sweep_page`]: REST pages of 2,000,
//!    or a Bulk API query job's result sets) and each page is synced in one pass together
//!    with the changed PRM records that pair with it: linked ones, ones named by id on
//!    either side, and match-key candidates. A candidate an earlier page already linked
//!    makes the record ambiguous ([`PassInput::claimed`]), as it would be in one pass.
//! 4. The changed PRM records no page took are synced in batches of [`PRM_BATCH`].
//! 5. A last pass takes the links marked for a retry before the run that no page touched,
//!    and the links whose reference pointed at a record a later page linked. Only the
//!    references still unresolved then get their Integration Log entry.
//!
//! Each pass writes every Salesforce update of a pair linked before, in Collections of 200:
//! an update held for a later, fuller Collection would overwrite any edit a Salesforce
//! user made meanwhile. A large run (more pages to come, or a page above `[salesforce]
//! bulk_ingest_threshold`) holds the write-backs of the links its passes create instead,
//! up to `[salesforce] bulk_ingest_job_records` or [`HELD_UPDATES_WAIT`], and writes them
//! in one ingest job (`pass/held.rs`) while its next passes run; the last pass runs after
//! they are written.
//!
//! Each Salesforce record is read once; the next page is read (on another thread) while
//! the current one syncs. PRM records are read by the index and again by id when not
//! held, which costs PRM calls, never Salesforce calls. A pass's log entries are written
//! while the next pass runs.
//!
//! [`Crm::sweep_page`]: crate::ports::Crm::sweep_page

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use prmsync_mapping::{CrmRecord, Integration, ObjectKind, PrmRecord};
use tokio_util::task::AbortOnDropHandle;

use crate::breaker::{crm_page, judge, survey, Gate, Read, ReadAhead, Survey};
use crate::context::RunMode;
use crate::context::{people_of_pending, SyncContext};
use crate::error::{During, EngineError};
use crate::frame::{RunFrame, Window};
use crate::objects::ObjectSpec;
use crate::pairing::{pair_page, PrmChanges};
use crate::pass::{run_pass, settle_held_updates, HeldUpdates, PassInput, PassOutcome};
use crate::ports::ChangePage;
use crate::report::{Counts, PlannedWrite};
use crate::retry::keep_failed;
use crate::store::{LinkState, LogEntry, StoreError};

/// Salesforce records per pass: a REST query page.
pub const CRM_BATCH: usize = 2_000;
/// PRM records per pass once the Salesforce pages are done.
pub const PRM_BATCH: usize = 1_000;
/// Organizations whose people one pass reads on an incremental people run.
const PENDING_BATCH: usize = 200;

/// The longest a held Salesforce update waits for its job: a Salesforce user's edit of the
/// same fields in that time is overwritten, as by any write made just after it.
pub const HELD_UPDATES_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether the passes of a Salesforce page hold their updates for one ingest job of
/// several passes (see `pass/held.rs`): ingest jobs are on (`[salesforce]
/// bulk_ingest_threshold` above 0) and the run is large (a page of more records than the
/// threshold, or more pages to come), or updates are held already. A small run writes each
/// pass's updates at once. No I/O.
pub fn holds_updates(ingest_threshold: u64, page: usize, more_pages: bool, holding: bool) -> bool {
    ingest_threshold > 0 && (holding || more_pages || page as u64 > ingest_threshold)
}

/// Whether held updates go out now rather than with later passes' ones: a job's worth
/// (`job_records`, `[salesforce] bulk_ingest_job_records`), or the oldest has waited long
/// enough. No I/O.
pub fn settle_now(held: usize, waited: std::time::Duration, job_records: u32) -> bool {
    held >= job_records as usize || (held > 0 && waited >= HELD_UPDATES_WAIT)
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepOutcome {
    pub counts: Counts,
    pub planned: Vec<PlannedWrite>,
    /// Set when a pass stopped early to keep the API reserve; the cursors stay.
    pub stopped: Option<String>,
    /// The newest change read on each side, for the cursors.
    pub crm_newest: Option<DateTime<Utc>>,
    pub prm_newest: Option<DateTime<Utc>>,
}

/// One run's sweep of an object pair.
struct Sweep<'a> {
    ctx: &'a SyncContext,
    spec: ObjectSpec,
    run_id: &'a str,
    dry_run: bool,
    /// Planning for the mass-change breaker: no log entry is written either.
    quiet: bool,
    /// When the sweep began: links saved since had their records in hand.
    started: DateTime<Utc>,
    /// Salesforce pages the breaker read ahead: taken from here, not read again.
    ahead: Cow<'a, ReadAhead>,
    full: bool,
    prm: PrmChanges,
    /// Salesforce records this run has synced (pending people, pages): skipped by the
    /// later pages and by the retry set's last pass.
    done_crm: HashSet<String>,
    /// Entries held back by passes until the last one shows whether they still apply.
    held: Vec<LogEntry>,
    /// The write of the last pass's log entries, running beside the next pass.
    log_write: Option<tokio::task::JoinHandle<Result<(), crate::store::StoreError>>>,
    /// Links marked for a retry when the run began and not touched by a pass since, by
    /// Salesforce Id and PRM id.
    retry_crm: HashSet<String>,
    retry_prm: HashSet<String>,
    /// Ids in the retry set when the run began (either side), and the due ones.
    retry_set: HashSet<String>,
    due_crm: Vec<String>,
    due_prm: Vec<String>,
    out: SweepOutcome,
    /// The run whose record shows the counts so far after each pass (none when planning).
    progress: Option<&'a RunFrame>,
    mode: RunMode,
    /// The passes of this Salesforce page hold their updates ([`holds_updates`]).
    hold: bool,
    /// The Salesforce updates held for one ingest job ([`settle_held_updates`]).
    held_updates: HeldUpdates,
    /// The job of held updates written while the next pages sync (one at a time).
    settling: Option<Settling>,
}

/// Held updates being written and settled beside the sweep's next passes
/// ([`Sweep::settle_held`]): the job's wait and its links' saves overlap the next pages'
/// work. The settle takes only links earlier passes created and marked for a retry, which
/// no later page of the run needs whole; one a later pass does take (a record changed
/// again meanwhile) is saved by whichever comes first, the other finding a newer version,
/// as with any lost race. Dropped unfinished (the run failed), the task is aborted: the
/// links it did not settle stay marked for a retry, as after a crash.
struct Settling {
    task: AbortOnDropHandle<Result<PassOutcome, crate::pass::PassError>>,
    /// The ids of its rows in the retry set when the run began.
    retrying: Vec<String>,
}

/// The next Salesforce page of a sweep: read ahead by the breaker, or being read beside
/// the current page's passes (aborted when the sweep ends first).
enum NextPage {
    Ready(ChangePage<CrmRecord>),
    Reading(AbortOnDropHandle<Result<ChangePage<CrmRecord>, EngineError>>),
}

/// What a sweep does with its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SweepWrites {
    /// Writes, after the mass-change breaker ([`crate::breaker`]) let it (or the
    /// operator allowed a mass change).
    Make { allow_mass_change: bool },
    /// A dry run: the planned writes are reported, and the log entries written.
    DryRun,
    /// The breaker's plan: planned writes only, nothing written, not even a log entry.
    PlanOnly,
}

/// The writes a run would make, without making them or logging: what the mass-change
/// breaker counts. Salesforce's pages come from `ahead` as far as it read them.
pub(crate) async fn plan_only(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
    window: &Window,
    ahead: &ReadAhead,
) -> Result<SweepOutcome, EngineError> {
    Box::pin(sweep_with(
        ctx,
        integration,
        run_id,
        SweepWrites::PlanOnly,
        window,
        Cow::Borrowed(ahead),
        None,
    ))
    .await
}

/// The mass-change breaker for a run about to write, one machine's or a planner's
/// ([`crate::breaker`]): Ok with the Salesforce pages it read ahead for the run to take,
/// or the error the run stops with. Plans the run without writing only when the counts
/// and the records read cannot rule a trip out.
pub(crate) async fn mass_change_check(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
    window: &Window,
    gate: Gate,
    read: Read<'_>,
    allow: bool,
) -> Result<ReadAhead, EngineError> {
    match survey(ctx, integration, window, gate, read, allow).await? {
        Survey::Clear(ahead) => Ok(ahead),
        Survey::Plan {
            ahead,
            linked,
            allowed,
        } => {
            let plan = plan_only(ctx, integration, run_id, window, &ahead).await?;
            judge(ctx, integration, run_id, &plan.planned, linked, allowed).await?;
            Ok(ahead)
        }
    }
}

/// Runs the pass of `integration` over everything that changed in `window`, page by page.
/// `frame`'s run record shows the counts so far after each pass.
pub(crate) async fn sweep(
    ctx: &SyncContext,
    integration: Integration,
    frame: &RunFrame,
    writes: SweepWrites,
    window: &Window,
) -> Result<SweepOutcome, EngineError> {
    sweep_with(
        ctx,
        integration,
        &frame.run_id,
        writes,
        window,
        Cow::Owned(ReadAhead::default()),
        Some(frame),
    )
    .await
}

async fn sweep_with<'a>(
    ctx: &'a SyncContext,
    integration: Integration,
    run_id: &'a str,
    writes: SweepWrites,
    window: &Window,
    ahead: Cow<'a, ReadAhead>,
    progress: Option<&'a RunFrame>,
) -> Result<SweepOutcome, EngineError> {
    let dry_run = !matches!(writes, SweepWrites::Make { .. });
    let spec = ObjectSpec::new(integration.object(), &ctx.mapping);
    let prm = PrmChanges::read(
        ctx,
        &spec,
        window.prm_since,
        ctx.mapping.sync.held_prm_records as usize,
    )
    .await?;
    let mut s = Sweep {
        ctx,
        spec,
        run_id,
        dry_run,
        quiet: writes == SweepWrites::PlanOnly,
        started: Utc::now(),
        ahead,
        full: window.mode.reads_all(),
        prm,
        done_crm: HashSet::new(),
        held: Vec::new(),
        log_write: None,
        retry_crm: HashSet::new(),
        retry_prm: HashSet::new(),
        retry_set: HashSet::new(),
        due_crm: Vec::new(),
        due_prm: Vec::new(),
        out: SweepOutcome::default(),
        progress: progress.filter(|_| writes != SweepWrites::PlanOnly),
        mode: window.mode,
        hold: false,
        held_updates: HeldUpdates::default(),
        settling: None,
    };
    // On one machine runs are as far apart as their schedule: every record of the retry
    // set that is not parked is due.
    for e in ctx.store.all_retries(s.spec.kind).await? {
        if !e.parked {
            match e.side.as_str() {
                "crm" => s.due_crm.push(e.id.clone()),
                _ => s.due_prm.push(e.id.clone()),
            }
        }
        s.retry_set.insert(e.id);
    }
    s.out.prm_newest = s.prm.newest;
    // PRM records that could not be read sync no further: each gets its entry, and the
    // rest of their pages syncs.
    let malformed = s
        .prm
        .rejected_entries(run_id, &s.spec, ctx.mapping.log.values());
    if !malformed.is_empty() && !s.quiet {
        s.out.counts.errors += malformed.len() as u64;
        crate::store::record_log(ctx.store.as_ref(), &malformed)
            .await
            .during(|| "could not write the Integration Log".into())?;
    }
    for l in ctx.store.links_to_retry(s.spec.kind).await? {
        s.retry_crm.insert(l.crm_id);
        s.retry_prm.insert(l.prm_id);
    }
    // The first page of Salesforce's changes, read before anything is written: with the
    // PRM's changes it tells the mass-change breaker whether the run could trip it.
    let first = crm_page(ctx, &s.spec, &s.ahead, window.crm_since, None).await?;
    if let SweepWrites::Make { allow_mass_change } = writes {
        let gate = Gate {
            prm_changes: s.prm.ids.len(),
            crm_first_page: first.records.len(),
            crm_more_pages: first.next.is_some(),
            retries: s.due_crm.len() + s.due_prm.len() + s.retry_crm.len(),
        };
        let read = Read {
            crm: &first,
            prm_changed: s.prm.linked_changed(),
        };
        let ahead = mass_change_check(
            ctx,
            integration,
            run_id,
            window,
            gate,
            read,
            allow_mass_change,
        )
        .await?;
        s.ahead = Cow::Owned(ahead);
    }
    let pending = s.pending_people().await?;
    if s.out.stopped.is_none() {
        s.salesforce_pages(window.crm_since, first).await?;
    }
    if s.out.stopped.is_none() {
        s.prm_leftovers().await?;
    }
    // The held updates are written before the last pass, which may take their links. A
    // job written beside the passes is settled whatever stopped the run.
    if s.out.stopped.is_none() {
        s.settle_held(false).await?;
    } else {
        s.settled().await?;
    }
    s.hold = false;
    if s.out.stopped.is_none() {
        s.retries().await?;
    }
    s.log_written().await?;
    if s.out.stopped.is_some() && !s.held.is_empty() && !s.quiet {
        // The run stopped before it could tell which references a later page resolves:
        // say what is unresolved now (the links stay marked for a retry).
        let held = std::mem::take(&mut s.held);
        crate::store::record_log(ctx.store.as_ref(), &held)
            .await
            .during(|| "could not write the Integration Log".into())?;
    }
    if s.out.stopped.is_none() && !dry_run && !pending.is_empty() {
        ctx.store
            .clear_children_pending(ObjectKind::Organization, &pending)
            .await?;
    }
    Ok(s.out)
}

impl Sweep<'_> {
    /// Runs one pass and writes its log entries; false once a pass stopped the run.
    async fn pass(&mut self, input: PassInput) -> Result<bool, EngineError> {
        let input = PassInput {
            full: self.full,
            retry_rejected: self.full,
            hold_unresolved: true,
            hold_crm_updates: self.hold,
            ..input
        };
        let retrying = self.retrying(
            input
                .crm
                .iter()
                .map(|r| &r.id)
                .chain(input.prm.iter().map(|r| &r.id))
                .chain(input.retry.iter().flat_map(|l| [&l.crm_id, &l.prm_id])),
        );
        let mut out = run_pass(self.ctx, self.spec.kind, self.run_id, self.dry_run, input).await?;
        self.held_updates.add(std::mem::take(&mut out.held_updates));
        if !self.take_outcome(out, &retrying).await? {
            return Ok(false);
        }
        if self.settling.as_ref().is_some_and(|s| s.task.is_finished()) && !self.settled().await? {
            return Ok(false);
        }
        let job_records = self.ctx.mapping.salesforce.bulk_ingest_job_records;
        if settle_now(
            self.held_updates.len(),
            self.held_updates.waited(),
            job_records,
        ) {
            return self.settle_held(true).await;
        }
        Ok(true)
    }

    /// Writes the Salesforce updates passes held in one job ([`settle_held_updates`]),
    /// once the job before it is settled, and takes its outcome as a pass's: `beside` the
    /// next passes (on another thread; [`Sweep::settled`] takes it later), or now. False
    /// once a job stopped the run.
    async fn settle_held(&mut self, beside: bool) -> Result<bool, EngineError> {
        if !self.settled().await? {
            return Ok(false);
        }
        let held = self.held_updates.take();
        if held.is_empty() {
            return Ok(true);
        }
        let retrying = self.retrying(held.iter().flat_map(|h| [&h.crm_id, &h.prm_id]));
        let (ctx, kind, run_id) = (self.ctx.clone(), self.spec.kind, self.run_id.to_string());
        let task = AbortOnDropHandle::new(tokio::spawn(async move {
            settle_held_updates(&ctx, kind, &run_id, held).await
        }));
        self.settling = Some(Settling { task, retrying });
        if beside {
            Ok(true)
        } else {
            self.settled().await
        }
    }

    /// Waits for the job of held updates written beside the passes, if any, and takes its
    /// outcome as a pass's; false once it stopped the run.
    async fn settled(&mut self) -> Result<bool, EngineError> {
        let Some(mut settling) = self.settling.take() else {
            return Ok(true);
        };
        let out = match (&mut settling.task).await {
            Ok(out) => out?,
            Err(e) => {
                return Err(EngineError::Store(StoreError::Backend(format!(
                    "writing the held Salesforce updates stopped: {e}"
                ))))
            }
        };
        let retrying = std::mem::take(&mut settling.retrying);
        self.take_outcome(out, &retrying).await
    }

    /// The ids among `ids` that were in the retry set when the run began.
    fn retrying<'i>(&self, ids: impl Iterator<Item = &'i String>) -> Vec<String> {
        if self.retry_set.is_empty() {
            return Vec::new();
        }
        ids.filter(|i| self.retry_set.contains(*i))
            .cloned()
            .collect()
    }

    /// Takes a pass's outcome into the sweep's: its failed records to the retry set, its
    /// counts, planned writes and held-back entries, its log entries written while the
    /// next pass runs. False once the pass stopped the run.
    async fn take_outcome(
        &mut self,
        mut out: PassOutcome,
        retrying: &[String],
    ) -> Result<bool, EngineError> {
        let integration = crate::context::integration_of(self.spec.kind);
        let setup = out.setup.take();
        if !self.dry_run {
            keep_failed(
                self.ctx,
                None,
                self.run_id,
                integration,
                &out.failed,
                setup.as_ref(),
                retrying,
            )
            .await?;
        }
        self.out.counts.add(&out.counts);
        if let Some(frame) = self.progress {
            frame.progress(self.ctx, self.mode, &self.out.counts).await;
        }
        self.out.planned.extend(out.planned);
        self.held.extend(out.held_back_entries);
        // The pass's entries are written while the next pass runs; one write at a time.
        self.log_written().await?;
        let store = self.ctx.store.clone();
        let entries = if self.quiet { Vec::new() } else { out.log };
        self.log_write = Some(tokio::spawn(async move {
            crate::store::record_log(store.as_ref(), &entries).await
        }));
        if let Some(setup) = setup {
            // The setup refused a write: the run stops here, failed for its setup, with the
            // one entry `keep_failed` wrote; the refused records wait in the retry set.
            self.log_written().await?;
            return Err(EngineError::Reported {
                class: crate::ports::FailureClass::Setup,
                message: format!(
                    "the {integration} sync stopped: Salesforce refused to write {} on {} (see the crm_setup_error entry for the fix)",
                    if setup.fields.is_empty() { "a field".to_string() } else { setup.fields.join(", ") },
                    setup.object
                ),
            });
        }
        if out.stopped.is_some() {
            self.out.stopped = out.stopped;
            return Ok(false);
        }
        Ok(true)
    }

    /// Waits for the last pass's Integration Log entries to be written.
    async fn log_written(&mut self) -> Result<(), EngineError> {
        let Some(write) = self.log_write.take() else {
            return Ok(());
        };
        match write.await {
            Ok(result) => result.during(|| "could not write the Integration Log".into()),
            Err(e) => Err(EngineError::Store(StoreError::Backend(format!(
                "writing the Integration Log stopped: {e}"
            )))),
        }
    }

    /// On an incremental people run, syncs the people of organizations linked since the
    /// last one. Returns the organizations whose marks are cleared once the run is through.
    async fn pending_people(&mut self) -> Result<Vec<String>, EngineError> {
        let kind = self.spec.kind;
        if kind != ObjectKind::Person {
            return Ok(Vec::new());
        }
        let pending = self
            .ctx
            .store
            .children_pending(ObjectKind::Organization)
            .await?;
        if !self.full {
            // A full run reads every person anyway.
            let fields = self.spec.crm_fields();
            for part in pending.chunks(PENDING_BATCH) {
                let (crm, prm) = people_of_pending(self.ctx, &fields, part).await?;
                self.done_crm.extend(crm.iter().map(|r| r.id.clone()));
                self.prm.mark_taken(prm.iter().map(|r| r.id.clone()));
                if !self
                    .pass(PassInput {
                        crm,
                        prm,
                        ..Default::default()
                    })
                    .await?
                {
                    return Ok(Vec::new());
                }
            }
        }
        Ok(pending.into_iter().map(|(p, _)| p).collect())
    }

    /// Syncs Salesforce's changes page by page, from the `first` page read, each page
    /// with its PRM partners.
    async fn salesforce_pages(
        &mut self,
        since: Option<DateTime<Utc>>,
        first: ChangePage<CrmRecord>,
    ) -> Result<(), EngineError> {
        let (ctx, spec) = (self.ctx, self.spec.clone());
        let ahead = std::mem::take(&mut self.ahead);
        let mut page = first;
        loop {
            self.out.crm_newest = self
                .out
                .crm_newest
                .max(page.records.iter().filter_map(|r| r.modstamp).max());
            let records: Vec<CrmRecord> = page
                .records
                .into_iter()
                .filter(|r| !self.done_crm.contains(&r.id))
                .collect();
            // A due record of the retry set read here is tried once in the run, not again
            // by the last pass.
            self.done_crm.extend(records.iter().map(|r| r.id.clone()));
            self.hold = !self.dry_run
                && holds_updates(
                    self.ctx.mapping.salesforce.bulk_ingest_threshold,
                    records.len(),
                    page.next.is_some(),
                    !self.held_updates.is_empty(),
                );
            // The next page is read (and decoded) on another thread while this one syncs.
            let next = page.next.map(|token| {
                let token = Some(token);
                match ahead.page(&token) {
                    Some(read_ahead) => NextPage::Ready(read_ahead),
                    None => {
                        let (ctx, spec) = (ctx.clone(), spec.clone());
                        NextPage::Reading(AbortOnDropHandle::new(tokio::spawn(async move {
                            crm_page(&ctx, &spec, &ReadAhead::default(), since, token).await
                        })))
                    }
                }
            });
            if !self.sync_page(records).await? {
                return Ok(());
            }
            page = match next {
                Some(NextPage::Ready(p)) => p,
                Some(NextPage::Reading(task)) => task.await.map_err(|e| {
                    EngineError::Store(StoreError::Backend(format!(
                        "reading the next page of changed {} records stopped: {e}",
                        spec.crm_object()
                    )))
                })??,
                None => return Ok(()),
            }
        }
    }

    /// Syncs a page of Salesforce records with their PRM partners, in passes of
    /// [`CRM_BATCH`]. False once a pass stopped the run.
    async fn sync_page(&mut self, records: Vec<CrmRecord>) -> Result<bool, EngineError> {
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let crm: Vec<CrmRecord> = records.by_ref().take(CRM_BATCH).collect();
            let (prm, claimed) = self.partners(&crm).await?;
            let input = PassInput {
                crm,
                prm,
                claimed,
                ..Default::default()
            };
            if !self.pass(input).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The changed PRM records that pair with a page of Salesforce records, and the
    /// records whose match key an earlier page already claimed.
    async fn partners(
        &mut self,
        page: &[CrmRecord],
    ) -> Result<(Vec<PrmRecord>, HashMap<String, crate::store::Link>), EngineError> {
        let pairing = pair_page(self.ctx, &self.spec, &self.prm, page).await?;
        // A spent record is ambiguous when its candidate is linked to another record now.
        let mut claimed = HashMap::new();
        if !pairing.spent.is_empty() {
            let ids: Vec<String> = pairing
                .spent
                .iter()
                .flat_map(|s| s.candidates.iter().map(|p| self.prm.id(*p).to_string()))
                .collect();
            let by_prm: HashMap<String, crate::store::Link> = self
                .ctx
                .store
                .find_links(self.spec.kind, &[], &ids)
                .await?
                .into_iter()
                .filter(|l| l.state == LinkState::Linked)
                .map(|l| (l.prm_id.clone(), l))
                .collect();
            for spent in &pairing.spent {
                let crm_id = &page[spent.crm].id;
                let link = spent
                    .candidates
                    .iter()
                    .find_map(|p| by_prm.get(self.prm.id(*p)));
                if let Some(link) = link.filter(|l| &l.crm_id != crm_id) {
                    claimed.insert(crm_id.clone(), link.clone());
                }
            }
        }
        let mut want: Vec<u32> = pairing.units.into_iter().flat_map(|u| u.prm).collect();
        want.sort_unstable();
        want.dedup();
        let prm = self.prm.take(self.ctx, &self.spec, want).await?;
        Ok((prm, claimed))
    }

    /// Syncs the changed PRM records that no Salesforce page took, in batches.
    async fn prm_leftovers(&mut self) -> Result<(), EngineError> {
        // Updates held by the pages' passes keep company.
        self.hold = !self.held_updates.is_empty();
        let rest = self.prm.untaken();
        for part in rest.chunks(PRM_BATCH) {
            let prm = self
                .prm
                .take(self.ctx, &self.spec, part.iter().copied())
                .await?;
            if prm.is_empty() {
                continue;
            }
            if !self
                .pass(PassInput {
                    prm,
                    ..Default::default()
                })
                .await?
            {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The Salesforce Ids and PRM ids of live links this run neither read nor saved (it
    /// read everything): gone without a trace, or out of the read's scope.
    async fn unseen_linked(&self) -> Result<(Vec<String>, Vec<String>), EngineError> {
        Ok(crate::pass::gone::unseen_links(
            self.ctx,
            self.spec.kind,
            self.started,
            |c| self.done_crm.contains(c),
            |p| self.prm.position(p).is_some(),
        )
        .await?)
    }

    /// The last pass: links marked for a retry before the run that no pass touched, and
    /// links whose reference pointed at a record not linked then (a later page may have
    /// linked it). Then the held entries of references still unresolved are written.
    async fn retries(&mut self) -> Result<(), EngineError> {
        let prm_ids: Vec<String> = self.held.iter().filter_map(|e| e.prm_id.clone()).collect();
        let held: HashSet<&str> = prm_ids.iter().map(String::as_str).collect();
        let retry: Vec<_> = self
            .ctx
            .store
            .links_to_retry(self.spec.kind)
            .await?
            .into_iter()
            .filter(|l| {
                held.contains(l.prm_id.as_str())
                    || (self.retry_crm.contains(&l.crm_id) && self.retry_prm.contains(&l.prm_id))
            })
            .collect();
        // The retry set's due records that no pass took.
        let due_crm: Vec<String> = std::mem::take(&mut self.due_crm)
            .into_iter()
            .filter(|i| !self.done_crm.contains(i))
            .collect();
        let due_prm: Vec<String> = std::mem::take(&mut self.due_prm)
            .into_iter()
            .filter(|i| {
                self.prm
                    .position(i)
                    .is_none_or(|p| !self.prm.taken[p as usize])
            })
            .collect();
        // A run that read everything also looks for the linked Salesforce records it did
        // not see: purged ones come back as deletes (their links are disconnected).
        let (mut due_crm, mut due_prm) = (due_crm, due_prm);
        if self.full && !self.dry_run {
            let (crm, prm) = self.unseen_linked().await?;
            due_crm.extend(crm);
            due_prm.extend(prm);
        }
        let (crm, prm) =
            crate::pass::gone::fetch_or_gone(self.ctx, &self.spec, &due_crm, &due_prm).await?;
        if (!retry.is_empty() || !crm.is_empty() || !prm.is_empty())
            && !self
                .pass(PassInput {
                    retry,
                    crm,
                    prm,
                    ..Default::default()
                })
                .await?
        {
            return Ok(());
        }
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        let still: HashSet<String> = self
            .ctx
            .store
            .find_links(self.spec.kind, &[], &prm_ids)
            .await?
            .into_iter()
            .filter(|l| l.retry || self.dry_run)
            .map(|l| l.prm_id)
            .collect();
        let due: Vec<LogEntry> = held
            .into_iter()
            .filter(|e| {
                e.prm_id
                    .as_ref()
                    .is_some_and(|p| still.contains(p) || self.dry_run)
            })
            .collect();
        if self.quiet {
            return Ok(());
        }
        crate::store::record_log(self.ctx.store.as_ref(), &due)
            .await
            .during(|| "could not write the Integration Log".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_run_holds_its_updates_for_one_ingest_job() {
        // a Bulk API result set of 10,000, or more pages to come
        assert!(holds_updates(2_000, 10_000, false, false));
        assert!(holds_updates(2_000, 2_000, true, false));
        // a run of one page no larger than the threshold writes each pass at once
        assert!(!holds_updates(2_000, 2_000, false, false));
        assert!(!holds_updates(2_000, 150, false, false));
        // the last page of a large run keeps holding
        assert!(holds_updates(2_000, 150, false, true));
        // 0 = never
        assert!(!holds_updates(0, 10_000, true, true));
    }

    #[test]
    fn held_updates_settle_when_too_many_or_waiting_too_long() {
        use std::time::Duration;
        assert!(!settle_now(0, Duration::from_secs(3_600), 500));
        assert!(!settle_now(499, Duration::from_secs(1), 500));
        assert!(settle_now(500, Duration::ZERO, 500));
        assert!(settle_now(1, HELD_UPDATES_WAIT, 500));
    }
}
