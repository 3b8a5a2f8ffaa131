//! The same sync, split for AWS Lambda (DESIGN "Shape", 10, 12): a planner reads what
//! changed and hands out [`Chunk`]s of record references sized for batched calls; workers
//! sync each chunk on their own. One-machine runs do both in one process ([`crate::run`]).
//!
//! - [`plan_run`] takes the integration's lease, reads the changed ids (Salesforce `Id` and
//!   `SystemModstamp` only) page by page, groups the two sides of a link into the same
//!   chunk and queues each page's chunks. It stores a checkpoint after every page; when its
//!   [`Budget`] runs out it stops, and the next invocation carries the same run on. The
//!   cursors move once both sides are read to the end.
//! - [`sync_chunk`] fetches the chunk's records (deleted ones included) and runs the pass.
//!   People whose organization is not linked yet sync it first, so chunks can run in any
//!   order and on any number of workers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use prmsync_mapping::{Integration, LogCode, ObjectKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::objects::ObjectSpec;
use crate::pass::{run_pass, PassError, PassInput};
use crate::ports::{ChangeFrom, ChangePage, Queue};
use crate::report::Counts;
use crate::run::{
    entry, fetch_by_ids, people_of_pending, read_window, reserve_message, RunMode, SyncContext,
    CRM_SIDE, PRM_SIDE,
};
use crate::store::{LinkState, PlanCheckpoint, RunRecord, SideProgress};

/// Records per chunk: one `IN` query of 200 Ids per side, one Collection call of 200.
pub const CHUNK_SIZE: usize = 200;

/// A unit of work for a worker: references to records of one integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub run_id: String,
    pub integration: Integration,
    #[serde(default)]
    pub crm_ids: Vec<String>,
    #[serde(default)]
    pub prm_ids: Vec<String>,
    /// How many times this chunk was handed out again after a transient failure.
    #[serde(default)]
    pub attempt: u32,
}

/// How much one planner invocation may do before it hands over to a continuation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    /// No new page is read after this instant (the Lambda deadline minus a margin).
    pub deadline: Option<Instant>,
    /// No more than this many pages per invocation (at least one is always read).
    pub max_pages: Option<u32>,
}

impl Budget {
    /// No limit: the run finishes in this invocation.
    pub const UNLIMITED: Budget = Budget {
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
    /// Everything that changed is queued and the cursors moved.
    Queued,
    /// The budget ran out: the checkpoint is stored and a new invocation carries on.
    Continues,
    /// A dry run: counted, nothing queued, nothing moved.
    Planned,
    /// Nothing done (paused, lease held, API reserve): see `message`.
    Skipped,
}

/// What a planner invocation did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    /// The run's id: a continuation keeps the id of the run it carries on.
    pub run_id: String,
    pub integration: Integration,
    pub mode: String,
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
    pub budget: Budget,
    /// Set by a continuation: carry on this run, and do nothing if it has finished since.
    pub continue_run: Option<String>,
}

impl PlanRequest {
    pub fn new(integration: Integration, mode: RunMode, run_id: impl Into<String>) -> Self {
        Self {
            integration,
            mode,
            run_id: run_id.into(),
            budget: Budget::UNLIMITED,
            continue_run: None,
        }
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Plans a run and queues its chunks: takes the lease, reads what changed on both sides
/// since the cursors (everything when `mode` is full or on the first run) page by page,
/// groups each page's references into chunks and sends them. Without a queue it is a dry
/// run: it counts the chunks and changes nothing.
///
/// After each page it stores a checkpoint (where each side's read resumes, by
/// `(timestamp, id)`). When the budget runs out it returns [`PlanStatus::Continues`] and
/// the next invocation, a continuation or the next scheduled run, carries the same run on
/// from there. The cursors move only when both sides are read to the end.
pub async fn plan_run(
    ctx: &SyncContext,
    queue: Option<&dyn Queue>,
    request: &PlanRequest,
) -> Result<PlanReport, String> {
    let store = &ctx.store;
    let integration = request.integration;
    let run_id = request.run_id.as_str();
    let mut report = PlanReport {
        run_id: run_id.to_string(),
        integration,
        mode: request.mode.as_str().into(),
        status: PlanStatus::Skipped,
        message: None,
        chunks: 0,
        records: 0,
        run_chunks: 0,
        run_records: 0,
        invocations: 1,
    };
    if store.is_paused(integration).await.map_err(err)? {
        let m = format!("{integration} is paused; `prmsync resume {integration}` starts it again");
        log_run(
            ctx,
            run_id,
            integration,
            LogCode::RunSkippedPaused,
            &m,
            Value::Null,
        )
        .await?;
        report.message = Some(m);
        return Ok(report);
    }
    if !store
        .acquire_lease(integration, &ctx.holder, Utc::now() + ctx.lease_ttl)
        .await
        .map_err(err)?
    {
        let m = format!("another {integration} run holds the lease; this invocation did nothing");
        log_run(
            ctx,
            run_id,
            integration,
            LogCode::RunSkippedLeaseHeld,
            &m,
            Value::Null,
        )
        .await?;
        report.message = Some(m);
        return Ok(report);
    }
    let result = plan_locked(ctx, queue, request, &mut report).await;
    // Whatever happened, the lease goes: a continuation takes it again, and a stored
    // checkpoint lets whichever run takes it next carry on.
    let released = store.release_lease(integration, &ctx.holder).await;
    match result {
        Ok(()) => {
            released.map_err(err)?;
            Ok(report)
        }
        Err(e) => {
            let _ = log_run(
                ctx,
                &report.run_id,
                integration,
                LogCode::RunFailed,
                &e,
                Value::Null,
            )
            .await;
            Err(e)
        }
    }
}

async fn log_run(
    ctx: &SyncContext,
    run_id: &str,
    integration: Integration,
    code: LogCode,
    message: &str,
    details: Value,
) -> Result<(), String> {
    crate::store::record_log(
        ctx.store.as_ref(),
        &[entry(
            run_id,
            integration,
            code,
            message.to_string(),
            details,
        )],
    )
    .await
    .map_err(err)
}

/// The run's state: carried on from a checkpoint, or new from the cursors. A full run
/// asked for while an incremental one is unfinished starts over as full (it covers more).
/// A continuation whose run has finished meanwhile (the next scheduled run took it on)
/// gets None and does nothing.
async fn start_or_resume(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    dry_run: bool,
    request: &PlanRequest,
    report: &mut PlanReport,
) -> Result<Option<PlanCheckpoint>, String> {
    let integration = report.integration;
    let mode = request.mode;
    let stored = if dry_run {
        None
    } else {
        ctx.store.checkpoint(integration).await.map_err(err)?
    };
    if let Some(wanted) = &request.continue_run {
        if stored.as_ref().map(|c| &c.run_id) != Some(wanted) {
            report.message = Some(format!(
                "run {wanted} of {integration} has finished; nothing to continue"
            ));
            return Ok(None);
        }
    }
    if let Some(mut cp) = stored {
        if !(mode == RunMode::Full && cp.mode != RunMode::Full.as_str())
            || request.continue_run.is_some()
        {
            cp.invocations += 1;
            return Ok(Some(cp));
        }
    }
    let w = read_window(ctx, integration, spec, mode).await?;
    Ok(Some(PlanCheckpoint {
        run_id: report.run_id.clone(),
        mode: w.mode.as_str().into(),
        started_at: Utc::now(),
        crm: SideProgress {
            from: ChangeFrom {
                since: w.crm_since,
                after: None,
            },
            newest: w.crm_cursor,
            done: false,
        },
        prm: SideProgress {
            from: ChangeFrom {
                since: w.prm_since,
                after: None,
            },
            newest: w.prm_cursor,
            done: false,
        },
        records: 0,
        chunks: 0,
        invocations: 1,
    }))
}

/// Where a page of changes ends: its last `(timestamp, id)` key, its newest change and
/// the token of the next page.
struct PageEnd {
    last: Option<(DateTime<Utc>, String)>,
    newest: Option<DateTime<Utc>>,
    next: Option<String>,
}

/// A page's record ids, in order, and where it ends; `key` gives a record's timestamp and id.
fn page_refs<R>(
    page: ChangePage<R>,
    key: impl Fn(R) -> (Option<DateTime<Utc>>, String),
) -> (Vec<String>, PageEnd) {
    let keys: Vec<(Option<DateTime<Utc>>, String)> = page.records.into_iter().map(key).collect();
    let end = PageEnd {
        last: keys
            .last()
            .and_then(|(at, id)| at.map(|at| (at, id.clone()))),
        newest: keys.iter().filter_map(|(at, _)| *at).max(),
        next: page.next,
    };
    (keys.into_iter().map(|(_, id)| id).collect(), end)
}

impl PageEnd {
    /// One side of the read moves past the page: the next query starts strictly after its
    /// last record, its newest change becomes the side's cursor-to-be, and the side is done
    /// when no page follows. Returns the next page's token.
    fn advance(self, side: &mut SideProgress) -> Option<String> {
        if let Some((at, id)) = self.last {
            side.from = ChangeFrom {
                since: Some(at),
                after: Some((at, id)),
            };
        }
        side.newest = side.newest.max(self.newest);
        side.done = self.next.is_none();
        self.next
    }
}

async fn plan_locked(
    ctx: &SyncContext,
    queue: Option<&dyn Queue>,
    request: &PlanRequest,
    report: &mut PlanReport,
) -> Result<(), String> {
    let store = &ctx.store;
    let integration = report.integration;
    let budget = request.budget;
    let kind = integration.object();
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let dry_run = queue.is_none();
    let Some(mut cp) = start_or_resume(ctx, &spec, dry_run, request, report).await? else {
        return Ok(());
    };
    report.run_id = cp.run_id.clone();
    report.mode = cp.mode.clone();
    report.invocations = cp.invocations;
    if let Some(m) = reserve_message(ctx) {
        log_run(
            ctx,
            &cp.run_id,
            integration,
            LogCode::ApiReserveReached,
            &m,
            Value::Null,
        )
        .await?;
        report.message = Some(m);
        return Ok(());
    }
    let mut sender = Sender {
        ctx,
        queue,
        kind,
        run_id: cp.run_id.clone(),
        integration,
        planned_crm: HashSet::new(),
        planned_prm: HashSet::new(),
    };
    let crm_fields = ["Id".to_string(), "SystemModstamp".to_string()];
    let scope = spec.scope();
    let mut pages = 0u32;
    let mut next: Option<String> = None;
    while !cp.crm.done {
        if budget.spent(pages) {
            return hand_over(ctx, &cp, dry_run, report).await;
        }
        let page = ctx
            .crm
            .changed_page(
                spec.crm_object(),
                &crm_fields,
                &cp.crm.from,
                next.as_deref(),
                &scope,
            )
            .await
            .map_err(|e| format!("reading changed {} records: {e}", spec.crm_object()))?;
        pages += 1;
        let (ids, end) = page_refs(page, |r| (r.modstamp, r.id));
        let sent = sender.crm_page(ids).await?;
        count(&mut cp, report, sent);
        next = end.advance(&mut cp.crm);
        save(ctx, integration, &cp, dry_run).await?;
    }
    next = None;
    while !cp.prm.done {
        if budget.spent(pages) {
            return hand_over(ctx, &cp, dry_run, report).await;
        }
        let page = ctx
            .prm
            .changed_page(spec.prm_collection(), &cp.prm.from, next.as_deref())
            .await
            .map_err(|e| format!("reading changed PRM {}: {e}", spec.prm_collection()))?;
        pages += 1;
        let (ids, end) = page_refs(page, |r| (Some(r.updated_at), r.id));
        let sent = sender.prm_page(ids).await?;
        count(&mut cp, report, sent);
        next = end.advance(&mut cp.prm);
        save(ctx, integration, &cp, dry_run).await?;
    }
    // Links whose last sync failed for a passing reason, and the people of organizations
    // linked since the last people run.
    let mut crm_ids = Vec::new();
    let mut prm_ids = Vec::new();
    for l in store.links_to_retry(kind).await.map_err(err)? {
        crm_ids.push(l.crm_id);
        prm_ids.push(l.prm_id);
    }
    let mut pending_orgs = Vec::new();
    if kind == ObjectKind::Person {
        let pending = store
            .children_pending(ObjectKind::Organization)
            .await
            .map_err(err)?;
        if !pending.is_empty() {
            let (contacts, people) = people_of_pending(ctx, &["Id".into()], &pending)
                .await
                .map_err(err)?;
            crm_ids.extend(contacts.into_iter().map(|c| c.id));
            prm_ids.extend(people.into_iter().map(|p| p.id));
            pending_orgs = pending.into_iter().map(|(p, _)| p).collect();
        }
    }
    let sent = sender.crm_page(crm_ids).await?;
    count(&mut cp, report, sent);
    let sent = sender.prm_page(prm_ids).await?;
    count(&mut cp, report, sent);
    if dry_run {
        report.status = PlanStatus::Planned;
        return Ok(());
    }
    finish(ctx, integration, &cp, &pending_orgs).await?;
    report.status = PlanStatus::Queued;
    Ok(())
}

/// Adds what a page queued to the run's and the invocation's totals.
fn count(cp: &mut PlanCheckpoint, report: &mut PlanReport, (chunks, records): (u64, u64)) {
    cp.chunks += chunks;
    cp.records += records;
    report.chunks += chunks;
    report.records += records;
    report.run_chunks = cp.chunks;
    report.run_records = cp.records;
}

async fn save(
    ctx: &SyncContext,
    integration: Integration,
    cp: &PlanCheckpoint,
    dry_run: bool,
) -> Result<(), String> {
    if dry_run {
        return Ok(());
    }
    ctx.store
        .set_checkpoint(integration, Some(cp))
        .await
        .map_err(err)
}
/// The budget ran out: the checkpoint is stored (after the last page); log it and say so.
async fn hand_over(
    ctx: &SyncContext,
    cp: &PlanCheckpoint,
    dry_run: bool,
    report: &mut PlanReport,
) -> Result<(), String> {
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
    if report.message.is_none() {
        let m = format!(
            "{} run of {integration}: {} records in {} chunks queued so far (invocation {}); \
             it continues in a new invocation",
            cp.mode, cp.records, cp.chunks, cp.invocations
        );
        log_run(
            ctx,
            &cp.run_id,
            integration,
            LogCode::RunContinued,
            &m,
            json!({"records": cp.records, "chunks": cp.chunks, "invocation": cp.invocations}),
        )
        .await?;
        report.message = Some(m);
    }
    report.status = PlanStatus::Continues;
    Ok(())
}

/// Both sides are read to the end and everything is queued: the cursors move, the
/// organizations whose people were planned are cleared, the checkpoint goes and the run
/// is recorded.
async fn finish(
    ctx: &SyncContext,
    integration: Integration,
    cp: &PlanCheckpoint,
    pending_orgs: &[String],
) -> Result<(), String> {
    let store = &ctx.store;
    let now = Utc::now();
    store
        .set_cursor(integration, CRM_SIDE, cp.crm.newest.unwrap_or(now))
        .await
        .map_err(err)?;
    store
        .set_cursor(integration, PRM_SIDE, cp.prm.newest.unwrap_or(now))
        .await
        .map_err(err)?;
    if !pending_orgs.is_empty() {
        store
            .clear_children_pending(ObjectKind::Organization, pending_orgs)
            .await
            .map_err(err)?;
    }
    store.set_checkpoint(integration, None).await.map_err(err)?;
    store
        .save_run(&RunRecord {
            run_id: cp.run_id.clone(),
            integration,
            mode: cp.mode.clone(),
            dry_run: false,
            started_at: cp.started_at,
            finished_at: Some(Utc::now()),
            status: "queued".into(),
            counts: Counts::default(),
        })
        .await
        .map_err(err)?;
    let invocations = if cp.invocations > 1 {
        format!(" over {} invocations", cp.invocations)
    } else {
        String::new()
    };
    log_run(
        ctx,
        &cp.run_id,
        integration,
        LogCode::RunStarted,
        &format!(
            "{} run of {integration} queued {} records in {} chunks{invocations}",
            cp.mode, cp.records, cp.chunks
        ),
        json!({"chunks": cp.chunks, "records": cp.records, "invocations": cp.invocations}),
    )
    .await
}

/// Turns pages of references into chunks and queues them (or only counts them on a dry
/// run). Both records of a link go in one chunk: a Salesforce page brings the linked PRM
/// ids along, and PRM ids already queued that way in this invocation are not sent again.
struct Sender<'a> {
    ctx: &'a SyncContext,
    queue: Option<&'a dyn Queue>,
    kind: ObjectKind,
    run_id: String,
    integration: Integration,
    planned_crm: HashSet<String>,
    planned_prm: HashSet<String>,
}

impl Sender<'_> {
    async fn crm_page(&mut self, ids: Vec<String>) -> Result<(u64, u64), String> {
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|i| self.planned_crm.insert(i.clone()))
            .collect();
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let links = self
            .ctx
            .store
            .find_links(self.kind, &ids, &[])
            .await
            .map_err(err)?;
        let prm_of: HashMap<&str, &str> = links
            .iter()
            .map(|l| (l.crm_id.as_str(), l.prm_id.as_str()))
            .collect();
        let units: Vec<(Option<String>, Option<String>)> = ids
            .iter()
            .map(|c| {
                let p = prm_of
                    .get(c.as_str())
                    .filter(|p| self.planned_prm.insert(p.to_string()))
                    .map(|p| p.to_string());
                (Some(c.clone()), p)
            })
            .collect();
        self.send(units).await
    }

    async fn prm_page(&mut self, ids: Vec<String>) -> Result<(u64, u64), String> {
        let units: Vec<(Option<String>, Option<String>)> = ids
            .into_iter()
            .filter(|i| self.planned_prm.insert(i.clone()))
            .map(|p| (None, Some(p)))
            .collect();
        self.send(units).await
    }

    async fn send(
        &self,
        units: Vec<(Option<String>, Option<String>)>,
    ) -> Result<(u64, u64), String> {
        let chunks: Vec<Chunk> = units
            .chunks(CHUNK_SIZE)
            .map(|part| Chunk {
                run_id: self.run_id.clone(),
                integration: self.integration,
                crm_ids: part.iter().filter_map(|(c, _)| c.clone()).collect(),
                prm_ids: part.iter().filter_map(|(_, p)| p.clone()).collect(),
                attempt: 0,
            })
            .collect();
        let records: usize = chunks
            .iter()
            .map(|c| c.crm_ids.len() + c.prm_ids.len())
            .sum();
        if let (Some(queue), false) = (self.queue, chunks.is_empty()) {
            queue.send(&chunks).await.map_err(|e| {
                format!(
                    "queuing {} chunks of {}: {e}; the run carries on from its last checkpoint \
                     on the next invocation",
                    chunks.len(),
                    self.integration
                )
            })?;
        }
        Ok((chunks.len() as u64, records as u64))
    }
}

/// What a worker did with a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkReport {
    pub counts: Counts,
    pub stopped: Option<String>,
}

/// Why a chunk must be handed out again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("chunk of {integration} run {run_id} failed and is retried: {message}")]
pub struct ChunkError {
    pub run_id: String,
    pub integration: Integration,
    pub message: String,
}

/// Syncs one chunk: fetches its records (deleted ones included) and runs the pass on them.
/// Safe to run twice, or on two workers at once.
pub async fn sync_chunk(ctx: &SyncContext, chunk: &Chunk) -> Result<ChunkReport, ChunkError> {
    let fail = |message: String| ChunkError {
        run_id: chunk.run_id.clone(),
        integration: chunk.integration,
        message,
    };
    let kind = chunk.integration.object();
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let (crm, prm) = fetch_by_ids(ctx, &spec, &chunk.crm_ids, &chunk.prm_ids)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut counts = Counts::default();
    let mut log = Vec::new();
    if kind == ObjectKind::Person {
        // Organizations this chunk's people belong to, not linked yet: sync them first.
        let accounts: Vec<String> = crm
            .iter()
            .filter_map(|c| c.str_field("AccountId").map(str::to_string))
            .collect();
        let orgs: Vec<String> = prm
            .iter()
            .filter_map(|p| p.str_field("organization_id").map(str::to_string))
            .collect();
        let linked = ctx
            .store
            .find_links(ObjectKind::Organization, &accounts, &orgs)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let live: BTreeSet<&str> = linked
            .iter()
            .filter(|l| l.state == LinkState::Linked)
            .flat_map(|l| [l.crm_id.as_str(), l.prm_id.as_str()])
            .collect();
        let missing_accounts: Vec<String> = accounts
            .iter()
            .filter(|a| !live.contains(a.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let missing_orgs: Vec<String> = orgs
            .iter()
            .filter(|o| !live.contains(o.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing_accounts.is_empty() || !missing_orgs.is_empty() {
            let org_spec = ObjectSpec::new(ObjectKind::Organization, &ctx.mapping);
            let (org_crm, org_prm) = fetch_by_ids(ctx, &org_spec, &missing_accounts, &missing_orgs)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let input = PassInput {
                crm: org_crm,
                prm: org_prm,
                full: false,
                retry_rejected: false,
                ..Default::default()
            };
            let out = run_pass(ctx, ObjectKind::Organization, &chunk.run_id, false, input)
                .await
                .map_err(|e| fail(pass_message(e)))?;
            log.extend(out.log);
        }
    }
    let input = PassInput {
        crm,
        prm,
        full: false,
        retry_rejected: false,
        ..Default::default()
    };
    let out = run_pass(ctx, kind, &chunk.run_id, false, input)
        .await
        .map_err(|e| fail(pass_message(e)))?;
    counts.add(&out.counts);
    log.extend(out.log);
    crate::store::record_log(ctx.store.as_ref(), &log)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(ChunkReport {
        counts,
        stopped: out.stopped,
    })
}

fn pass_message(e: PassError) -> String {
    match e {
        PassError::Port(p) => p.to_string(),
        PassError::Store(s) => s.to_string(),
    }
}
