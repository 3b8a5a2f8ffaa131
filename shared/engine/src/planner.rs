//! The planner of a run on AWS (README "Running on AWS"; sync rules 2, 10 and 12 in
//! `docs/sync-rules.md`): it reads what changed on both
//! sides, pairs the records that must sync together exactly as a one-machine run pairs
//! them ([`crate::pairing`]), and queues them in [`Chunk`]s that workers sync on their own
//! ([`crate::worker`]).
//!
//! 1. The run opens ([`crate::frame`]): pause flag, lease, run record, run-started entry.
//! 2. The PRM's changes are read into an index; Salesforce's changes are read page by
//!    page (resumable by `(SystemModstamp, Id)`), and each page's records go into chunks
//!    with their PRM partners: a record's link, the records naming it, and every
//!    match-key candidate, so no match is split between two chunks and no worker creates
//!    a record another chunk would have matched. The chunks carry the records read, so a
//!    worker reads Salesforce again only when they are stale.
//! 3. The PRM changes no page took, the links and records of the retry set, and (people)
//!    the people of newly linked organizations follow.
//! 4. Every chunk is recorded in the store before it is queued; after each page a
//!    checkpoint says where each side's read resumes. When the invocation's [`InvocationLimit`]
//!    runs out it stops, and the next invocation carries the same run on.
//! 5. Once everything is queued the lease goes; the run stays open until its last chunk
//!    is done, and the worker that finishes it closes the run: only then do the cursors
//!    move. A run whose chunks are still being synced makes the next planner wait.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{Duration, Utc};
use prmsync_mapping::{Integration, LogCode, ObjectKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod sender;

use sender::Sender;

use crate::breaker::{Gate, Read, ReadAhead};
use crate::chunk::{Chunk, CHUNK_SIZE};
use crate::context::{people_of_pending, reserve_message, RunMode, SyncContext};
use crate::error::EngineError;
use crate::frame::Window;
use crate::frame::{read_window, FrameKind, RunFrame};
use crate::objects::ObjectSpec;
use crate::pairing::PrmChanges;
use crate::ports::{ChangeFrom, FailureClass, Queue};
use crate::report::RunStatus;
use crate::store::{PlanCheckpoint, RetryEntry, SideProgress};

/// How long a planned run may wait for its chunks before the planner stops waiting: the
/// records of the chunks still open then go to the retry set, and the run closes.
pub const DRAIN_LIMIT_HOURS: i64 = 6;

/// How much one planner invocation may do before it hands over to a continuation.
#[derive(Debug, Clone, Copy, Default)]
pub struct InvocationLimit {
    /// No new page is read after this instant (the Lambda deadline minus a margin).
    pub deadline: Option<Instant>,
    /// No more than this many pages per invocation (at least one is always read).
    pub max_pages: Option<u32>,
}

impl InvocationLimit {
    /// No limit: the run finishes in this invocation.
    pub const UNLIMITED: InvocationLimit = InvocationLimit {
        deadline: None,
        max_pages: None,
    };

    fn spent(&self, pages: u32) -> bool {
        pages > 0
            && (self.max_pages.is_some_and(|m| pages >= m)
                || self.deadline.is_some_and(|d| Instant::now() >= d))
    }
}

/// How a planner invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// Everything that changed is queued; the run closes when its chunks are done.
    Queued,
    /// Nothing changed: the run closed at once (the caller plans what follows it).
    Finished,
    /// The limit ran out: the checkpoint is stored and a new invocation carries on.
    Continues,
    /// A dry run: counted, nothing queued, nothing moved.
    Planned,
    /// The integration's last run is still being synced by the workers: see `message`.
    Waiting,
    /// Nothing done (paused, lease held, API reserve): see `message`.
    Skipped,
}

/// What a planner invocation did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    /// The run's id: a continuation keeps the id of the run it carries on.
    pub run_id: String,
    pub integration: Integration,
    pub mode: RunMode,
    pub status: PlanStatus,
    pub message: Option<String>,
    /// Chunks and record references queued (or, on a dry run, planned) by this invocation.
    pub chunks: u64,
    pub records: u64,
    /// The same for the whole run so far, across its invocations.
    pub run_chunks: u64,
    pub run_records: u64,
    /// Invocations the run has taken, this one included.
    pub invocations: u32,
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub integration: Integration,
    pub mode: RunMode,
    /// The id of a new run (a run carried on from a checkpoint keeps its own).
    pub run_id: String,
    pub limit: InvocationLimit,
    /// Set by a continuation: carry on this run, and do nothing if it has finished since.
    pub continue_run: Option<String>,
    /// Integrations to plan once this run has closed (an `all` run plans people once its
    /// organizations are linked).
    pub then: Vec<Integration>,
    /// The operator lets a mass change through the breaker ([`crate::breaker`]).
    pub allow_mass_change: bool,
}

impl PlanRequest {
    pub fn new(integration: Integration, mode: RunMode, run_id: impl Into<String>) -> Self {
        Self {
            integration,
            mode,
            run_id: run_id.into(),
            limit: InvocationLimit::UNLIMITED,
            continue_run: None,
            then: Vec::new(),
            allow_mass_change: false,
        }
    }
}

/// Plans a run and queues its chunks (see the module doc). Without a queue it is a dry
/// run: it counts the chunks and changes nothing.
#[tracing::instrument(name = "plan", skip_all, fields(
    run_id = request.run_id.as_str(),
    integration = request.integration.as_str(),
    mode = request.mode.as_str(),
))]
pub async fn plan_run(
    ctx: &SyncContext,
    queue: Option<&dyn Queue>,
    request: &PlanRequest,
) -> Result<PlanReport, EngineError> {
    let integration = request.integration;
    let dry_run = queue.is_none();
    let mut report = PlanReport {
        run_id: request.run_id.clone(),
        integration,
        mode: request.mode,
        status: PlanStatus::Skipped,
        message: None,
        chunks: 0,
        records: 0,
        run_chunks: 0,
        run_records: 0,
        invocations: 1,
    };
    let mut frame = match RunFrame::open(
        ctx,
        integration,
        &request.run_id,
        request.mode,
        dry_run,
        FrameKind::Continuation,
    )
    .await
    {
        Ok(frame) => frame,
        Err(skipped) => {
            if skipped.status == RunStatus::Failed {
                return Err(EngineError::Reported {
                    class: skipped.failure.unwrap_or(FailureClass::Transient),
                    message: skipped.message.unwrap_or_default(),
                });
            }
            report.message = skipped.message;
            return Ok(report);
        }
    };
    let result = plan_locked(ctx, queue, request, &mut frame, &mut report).await;
    // Whatever happened, the lease goes: a continuation takes it again, and a stored
    // checkpoint lets whichever run takes it next carry on.
    frame.release(ctx).await;
    if let Err(e) = &result {
        let entry = frame.entry(LogCode::RunFailed, e.to_string(), serde_json::Value::Null);
        let _ = crate::store::record_log(ctx.store.as_ref(), &[entry]).await;
    }
    result.map(|()| report)
}

/// The run's state: carried on from a checkpoint, or new from the cursors (its run record
/// and run-started entry written). A full run asked for while an incremental one is
/// unplanned starts over as full (it covers more). None when there is nothing to plan: a
/// continuation whose run finished, or a run still being synced by the workers.
async fn start_or_resume(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    dry_run: bool,
    request: &PlanRequest,
    frame: &mut RunFrame,
    report: &mut PlanReport,
) -> Result<Option<PlanCheckpoint>, EngineError> {
    let integration = report.integration;
    let mode = request.mode;
    let stored = if dry_run {
        None
    } else {
        ctx.store.checkpoint(integration).await?
    };
    if let Some(wanted) = &request.continue_run {
        let message = match &stored {
            Some(c) if &c.run_id == wanted && !c.planned => None,
            Some(c) if &c.run_id == wanted => Some(format!(
                "run {wanted} of {integration} is queued already; nothing to continue"
            )),
            _ => Some(format!(
                "run {wanted} of {integration} has finished; nothing to continue"
            )),
        };
        if message.is_some() {
            report.message = message;
            return Ok(None);
        }
    }
    if let Some(mut cp) = stored {
        if cp.planned {
            if !drain_or_wait(ctx, &cp, report).await? {
                return Ok(None);
            }
        } else if !mode.reads_all() || cp.mode.reads_all() || request.continue_run.is_some() {
            // A run that reads everything asked for while an incremental one is unplanned
            // starts over (it covers more); otherwise the stored run carries on.
            cp.invocations += 1;
            frame.run_id = cp.run_id.clone();
            return Ok(Some(cp));
        }
    }
    let w = read_window(ctx, integration, &frame.run_id, spec, mode).await?;
    frame.mode = w.mode;
    if !dry_run {
        frame.begin(ctx).await;
        if let Some(e) = &w.expired {
            crate::store::record_log(ctx.store.as_ref(), std::slice::from_ref(e)).await?;
        }
    }
    Ok(Some(PlanCheckpoint {
        run_id: frame.run_id.clone(),
        mode: w.mode,
        started_at: frame.started_at,
        crm: SideProgress {
            from: ChangeFrom {
                since: w.crm_since,
                after: None,
            },
            newest: w.crm_cursor,
            done: false,
            page: None,
        },
        prm: SideProgress {
            from: ChangeFrom {
                since: w.prm_since,
                after: None,
            },
            newest: w.prm_cursor,
            done: false,
            page: None,
        },
        records: 0,
        chunks: 0,
        invocations: 1,
        planned: false,
        then: request.then.clone(),
        allow_mass_change: request.allow_mass_change,
    }))
}

async fn plan_locked(
    ctx: &SyncContext,
    queue: Option<&dyn Queue>,
    request: &PlanRequest,
    frame: &mut RunFrame,
    report: &mut PlanReport,
) -> Result<(), EngineError> {
    let integration = report.integration;
    let kind = integration.object();
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let dry_run = queue.is_none();
    let Some(mut cp) = start_or_resume(ctx, &spec, dry_run, request, frame, report).await? else {
        return Ok(());
    };
    report.run_id = cp.run_id.clone();
    report.mode = cp.mode;
    report.invocations = cp.invocations;
    report.run_chunks = cp.chunks;
    report.run_records = cp.records;
    if let Some(m) = reserve_message(ctx) {
        let entry = frame.entry(
            LogCode::ApiReserveReached,
            m.clone(),
            serde_json::Value::Null,
        );
        crate::store::record_log(ctx.store.as_ref(), &[entry]).await?;
        report.message = Some(m);
        return Ok(());
    }
    let mut prm = PrmChanges::read(
        ctx,
        &spec,
        cp.prm.from.since,
        ctx.mapping.sync.held_prm_records as usize,
    )
    .await?;
    if cp.invocations == 1 {
        // The PRM side's cursor-to-be is what the run's first read saw: a record that
        // changes while a continuation re-reads the index stays newer than the cursor, so
        // the next run reads it again (its queued chunk may carry the older version).
        cp.prm.newest = cp.prm.newest.max(prm.newest);
        // PRM records that could not be read are logged once per run (a continuation
        // reads them again); the rest of their pages is queued.
        let malformed = prm.rejected_entries(&cp.run_id, &spec, ctx.mapping.log.values());
        crate::store::record_log(ctx.store.as_ref(), &malformed).await?;
    }
    let mut queued_crm: HashSet<String> = HashSet::new();
    if cp.chunks > 0 && !dry_run {
        // A continuation: what earlier invocations queued is not queued again.
        for c in ctx.store.run_chunks(integration, &cp.run_id).await? {
            prm.mark_taken(&c.prm_ids);
            queued_crm.extend(c.crm_ids);
        }
    }
    let retries = ctx.store.all_retries(kind).await?;
    let mut sender = Sender {
        ctx,
        queue,
        run_id: cp.run_id.clone(),
        integration,
        full: cp.mode.reads_all(),
        retrying: retries.iter().map(|e| e.id.clone()).collect(),
        taken_by: HashMap::new(),
        queued_crm,
    };
    let fields = spec.crm_fields();
    let scope = spec.scope();
    let mut pages = 0u32;
    // A continuation reads on from the page its run had reached.
    let mut next: Option<String> = cp.crm.page.clone();
    // Pages the mass-change breaker read ahead, taken from here.
    let mut ahead = ReadAhead::default();
    while !cp.crm.done {
        if request.limit.spent(pages) {
            return hand_over(ctx, frame, &cp, dry_run, report).await;
        }
        // The same read as a one-machine run's: REST pages of 2,000, or a Bulk API query
        // job's result sets when that takes fewer calls.
        let read = match ahead.page(&next) {
            Some(page) => Ok(page),
            None => {
                ctx.crm
                    .sweep_page(
                        spec.crm_object(),
                        &fields,
                        cp.crm.from.since,
                        next.as_deref(),
                        &scope,
                    )
                    .await
            }
        };
        let page = match read {
            Ok(page) => page,
            Err(e)
                if next.is_some()
                    && !matches!(e.class, FailureClass::Transient | FailureClass::Limit) =>
            {
                // The read's token expired (a REST query locator lasts minutes): read the
                // window again from its start; records queued already are queued again,
                // which changes nothing.
                tracing::warn!(
                    run_id = cp.run_id.as_str(),
                    integration = integration.as_str(),
                    "the page token of the run's Salesforce read is gone ({e}); reading again from the start"
                );
                next = None;
                cp.crm.page = None;
                continue;
            }
            Err(e) => {
                return Err(EngineError::from(e)
                    .during(format!("reading changed {} records", spec.crm_object())))
            }
        };
        if pages == 0 && cp.invocations == 1 && cp.chunks == 0 && !dry_run {
            // Before the run queues anything: the mass-change breaker, on what the run
            // has read so far (the same rule as a one-machine run's).
            let gate = Gate {
                prm_changes: prm.ids.len(),
                crm_first_page: page.records.len(),
                crm_more_pages: page.next.is_some(),
                retries: retries.len() + ctx.store.links_to_retry(kind).await?.len(),
            };
            let window = Window {
                mode: cp.mode,
                crm_cursor: cp.crm.newest,
                prm_cursor: cp.prm.newest,
                crm_since: cp.crm.from.since,
                prm_since: cp.prm.from.since,
                expired: None,
            };
            let read = Read {
                crm: &page,
                prm_changed: prm.linked_changed(),
            };
            ahead = crate::sweep::mass_change_check(
                ctx,
                integration,
                &cp.run_id,
                &window,
                gate,
                read,
                request.allow_mass_change,
            )
            .await?;
        }
        pages += 1;
        cp.crm.newest = cp
            .crm
            .newest
            .max(page.records.iter().filter_map(|r| r.modstamp).max());
        next = page.next.clone();
        let chunks = sender.page_chunks(&spec, &mut prm, page.records).await?;
        // Nothing is queued once another planner took the lease over: it carries the
        // run on from the last checkpoint.
        frame.check_lease().await?;
        sender.send(chunks, &mut cp, report).await?;
        cp.crm.page = next.clone();
        cp.crm.done = next.is_none();
        save(ctx, integration, &cp, dry_run).await?;
    }
    // The PRM changes no Salesforce record took.
    let read_at = Utc::now();
    let rest = prm.untaken();
    let mut chunks = Vec::new();
    for part in rest.chunks(CHUNK_SIZE) {
        let (held, ids) = prm.take_refs(part.iter().copied());
        chunks.push(sender.chunk(Vec::new(), held, ids, Vec::new(), read_at));
    }
    frame.check_lease().await?;
    sender.send(chunks, &mut cp, report).await?;
    cp.prm.done = true;
    // The retry set and the people of newly linked organizations: references only.
    let full = cp.mode.reads_all();
    let (mut crm_ids, mut prm_ids, pending_orgs) = extras(ctx, kind, full, &retries).await?;
    if full && !dry_run {
        // A run that read everything also looks for the linked records it did not see:
        // the workers take those gone without a trace as deletes.
        let (crm, prm_gone) = crate::pass::gone::unseen_links(
            ctx,
            kind,
            cp.started_at,
            |c| sender.queued_crm.contains(c),
            |p| prm.position(p).is_some(),
        )
        .await?;
        crm_ids.extend(crm);
        prm_ids.extend(prm_gone);
    }
    let crm_ids: Vec<String> = crm_ids
        .into_iter()
        .filter(|c| sender.queued_crm.insert(c.clone()))
        .collect();
    let prm_ids: Vec<String> = prm_ids
        .into_iter()
        .filter(|p| prm.position(p).is_none_or(|pos| !prm.taken[pos as usize]))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut chunks = Vec::new();
    for part in crm_ids.chunks(CHUNK_SIZE) {
        chunks.push(sender.chunk(Vec::new(), Vec::new(), Vec::new(), part.to_vec(), read_at));
    }
    for part in prm_ids.chunks(CHUNK_SIZE) {
        chunks.push(sender.chunk(Vec::new(), Vec::new(), part.to_vec(), Vec::new(), read_at));
    }
    frame.check_lease().await?;
    sender.send(chunks, &mut cp, report).await?;
    if dry_run {
        report.status = PlanStatus::Planned;
        return Ok(());
    }
    if !pending_orgs.is_empty() {
        ctx.store
            .clear_children_pending(ObjectKind::Organization, &pending_orgs)
            .await?;
    }
    cp.planned = true;
    save(ctx, integration, &cp, false).await?;
    let invocations = if cp.invocations > 1 {
        format!(" over {} invocations", cp.invocations)
    } else {
        String::new()
    };
    let entry = frame.entry(
        LogCode::RunQueued,
        format!(
            "{} run of {integration} queued {} records in {} chunks{invocations}; it finishes when the workers have synced them",
            cp.mode, cp.records, cp.chunks
        ),
        json!({"chunks": cp.chunks, "records": cp.records, "invocations": cp.invocations}),
    );
    crate::store::record_log(ctx.store.as_ref(), &[entry]).await?;
    report.status = PlanStatus::Queued;
    if cp.chunks == 0 {
        // Nothing to wait for: the run closes now.
        crate::frame::close_run(ctx, integration, &cp.run_id).await?;
        report.status = PlanStatus::Finished;
    }
    Ok(())
}

/// The retry set's due records, the links marked for a retry, and (people) the people of
/// newly linked organizations: Salesforce Ids, PRM ids, and the organizations whose
/// people they are.
async fn extras(
    ctx: &SyncContext,
    kind: ObjectKind,
    full: bool,
    retries: &[RetryEntry],
) -> Result<(Vec<String>, Vec<String>, Vec<String>), EngineError> {
    let now = Utc::now();
    let mut crm_ids = Vec::new();
    let mut prm_ids = Vec::new();
    for e in retries.iter().filter(|e| !e.parked && e.next_at <= now) {
        match e.side.as_str() {
            "crm" => crm_ids.push(e.id.clone()),
            _ => prm_ids.push(e.id.clone()),
        }
    }
    for l in ctx.store.links_to_retry(kind).await? {
        crm_ids.push(l.crm_id);
        prm_ids.push(l.prm_id);
    }
    let mut pending_orgs = Vec::new();
    if kind == ObjectKind::Person {
        let pending = ctx.store.children_pending(ObjectKind::Organization).await?;
        if full {
            // A full run read every person already: the marks only need clearing.
            pending_orgs = pending.into_iter().map(|(p, _)| p).collect();
        } else if !pending.is_empty() {
            let (contacts, people) = people_of_pending(ctx, &["Id".into()], &pending).await?;
            crm_ids.extend(contacts.into_iter().map(|c| c.id));
            prm_ids.extend(people.into_iter().map(|p| p.id));
            pending_orgs = pending.into_iter().map(|(p, _)| p).collect();
        }
    }
    Ok((crm_ids, prm_ids, pending_orgs))
}

async fn save(
    ctx: &SyncContext,
    integration: Integration,
    cp: &PlanCheckpoint,
    dry_run: bool,
) -> Result<(), EngineError> {
    if dry_run {
        return Ok(());
    }
    ctx.store
        .set_checkpoint(integration, Some(cp))
        .await
        .map_err(EngineError::from)
}

/// The limit ran out: the checkpoint is stored (after the last page); log it and say so.
async fn hand_over(
    ctx: &SyncContext,
    frame: &RunFrame,
    cp: &PlanCheckpoint,
    dry_run: bool,
    report: &mut PlanReport,
) -> Result<(), EngineError> {
    let integration = report.integration;
    if dry_run {
        // Nothing is stored for a dry run, so there is nothing to carry on: say it is partial.
        report.status = PlanStatus::Planned;
        report.message = Some(format!(
            "dry run of {integration} stopped at its time limit: {} records in {} chunks counted so far, more would follow",
            cp.records, cp.chunks
        ));
        return Ok(());
    }
    let m = format!(
        "{} run of {integration}: {} records in {} chunks queued so far (invocation {}); \
         it continues in a new invocation",
        cp.mode, cp.records, cp.chunks, cp.invocations
    );
    let entry = frame.entry(
        LogCode::RunContinued,
        m.clone(),
        json!({"records": cp.records, "chunks": cp.chunks, "invocation": cp.invocations}),
    );
    crate::store::record_log(ctx.store.as_ref(), &[entry]).await?;
    report.message = Some(m);
    report.status = PlanStatus::Continues;
    Ok(())
}

/// A planner found its integration's last run planned and not closed. Closes it when all
/// its chunks are done (a lost close), or when it has waited [`DRAIN_LIMIT_HOURS`]
/// (the records of its open chunks go to the retry set first): true, plan a new run.
/// Otherwise says how far the workers are: false, wait.
async fn drain_or_wait(
    ctx: &SyncContext,
    cp: &PlanCheckpoint,
    report: &mut PlanReport,
) -> Result<bool, EngineError> {
    let integration = report.integration;
    let chunks = ctx.store.run_chunks(integration, &cp.run_id).await?;
    let open: Vec<_> = chunks.iter().filter(|c| !c.done).collect();
    if open.is_empty() {
        crate::frame::close_run(ctx, integration, &cp.run_id).await?;
        return Ok(true);
    }
    if run_age(cp) >= Duration::hours(DRAIN_LIMIT_HOURS) {
        for c in &open {
            let chunk = Chunk::refs(
                &cp.run_id,
                integration,
                c.crm_ids.clone(),
                c.prm_ids.clone(),
            );
            crate::retry::hold_chunk(
                ctx,
                &chunk,
                &format!(
                    "not synced within {} hours of its run's start",
                    DRAIN_LIMIT_HOURS
                ),
            )
            .await?;
            ctx.store
                .finish_chunk(
                    integration,
                    &cp.run_id,
                    c.number,
                    &crate::report::Counts::default(),
                    &[],
                )
                .await?;
        }
        crate::frame::close_run(ctx, integration, &cp.run_id).await?;
        return Ok(true);
    }
    report.run_id = cp.run_id.clone();
    report.mode = cp.mode;
    report.status = PlanStatus::Waiting;
    report.run_chunks = cp.chunks;
    report.run_records = cp.records;
    report.message = Some(format!(
        "the {} run {} of {integration} is still being synced: {} of {} chunks done; this run waits for it",
        cp.mode,
        cp.run_id,
        cp.chunks as usize - open.len(),
        cp.chunks
    ));
    Ok(false)
}

/// How long a planned run has been open.
pub(crate) fn run_age(cp: &PlanCheckpoint) -> Duration {
    Utc::now() - cp.started_at
}
