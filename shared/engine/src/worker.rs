//! A worker's use case on AWS (sync rules 10 and 12 in `docs/sync-rules.md`): sync one
//! [`Chunk`], keep what failed in the retry set, and close the run when its last chunk is
//! done.
//!
//! - The records come with the chunk while they are fresh (first delivery, read within
//!   the overlap window); otherwise they are read again by id (deleted ones included).
//! - People whose organization is not linked yet sync it first, so chunks run in any
//!   order and on any number of workers.
//! - A record whose write fails for a passing reason is kept in the retry set and handed
//!   out again on its own, with a growing delay; after `[sync] retry_attempts` it is parked with
//!   an `record_parked` entry and waits until it changes or is synced on demand. The rest
//!   of its chunk is done.
//! - A chunk that cannot be read or written at all for a passing reason is handed out
//!   again the same way; after its last attempt its records go to the retry set.
//! - Salesforce's org-wide API limit stops every worker's writes: the store keeps a hold,
//!   chunks wait in the queue (sent again with a delay), and none reaches the DLQ.
//! - Every numbered chunk is marked done exactly once; the worker that marks the last one
//!   closes the run ([`crate::frame::close_run`]), writing first the write-backs of new
//!   links its chunks held (one ingest job for the run): only then do the cursors move. A
//!   close that fails fails its message, whose redelivery closes the run.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use futures::StreamExt;
use prmsync_mapping::{CrmRecord, Integration, LogCode, ObjectKind, PrmRecord};
use serde_json::json;

use crate::chunk::{Chunk, ChunkRecords};
use crate::context::{entry, fetch_by_ids, SyncContext};
use crate::error::EngineError;
use crate::objects::ObjectSpec;
use crate::pass::gone::fetch_or_gone;
use crate::pass::{run_pass, HeldUpdate, PassInput};
use crate::ports::{FailureClass, Queue};
use crate::report::Counts;
use crate::retry::{
    delay, hold_setup_failed, keep_failed, max_attempts, send_later, FailedRecord, SetupFailure,
};
use crate::store::{Link, LinkState, StoreError};

/// How long workers write nothing once Salesforce refused a call for the org's API limit.
pub const LIMIT_HOLD_MINUTES: i64 = 15;

/// How the message that carries a chunk arrived.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery {
    /// SQS's `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
}

/// What syncing a chunk's records did.
#[derive(Debug, Default)]
pub struct ChunkSync {
    pub counts: Counts,
    /// Records that failed for a passing reason.
    pub failed: Vec<FailedRecord>,
    /// Set when a pass stopped early to keep the API reserve.
    pub stopped: Option<String>,
    /// Records the setup refused to write, by the integration of their pass (a people
    /// chunk syncs organizations first).
    pub setup: Vec<(Integration, SetupFailure)>,
    /// The write-backs the chunk's pass held for its run's ingest job, kept with the
    /// chunk when it is done ([`crate::store::ChunkRecord::held`]).
    pub held: Vec<HeldUpdate>,
}

/// Syncs a chunk's records: the fresh ones it carries, or read again by id. Writes the
/// passes' Integration Log entries. Safe to run twice, or on two workers at once. With
/// `hold`, the chunk's own pass holds the write-backs of the links it creates
/// ([`ChunkSync::held`]).
pub async fn sync_chunk(
    ctx: &SyncContext,
    chunk: &Chunk,
    delivery: Delivery,
    hold: bool,
) -> Result<ChunkSync, EngineError> {
    let kind = chunk.integration.object();
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let (crm, prm) = records(ctx, &spec, chunk, delivery).await?;
    let mut log = Vec::new();
    let mut out = ChunkSync::default();
    if kind == ObjectKind::Person {
        let (org_crm, org_prm) = unlinked_organizations(ctx, &crm, &prm).await?;
        if !org_crm.is_empty() || !org_prm.is_empty() {
            let input = PassInput {
                crm: org_crm,
                prm: org_prm,
                ..Default::default()
            };
            let pass = run_pass(ctx, ObjectKind::Organization, &chunk.run_id, false, input).await?;
            log.extend(pass.log);
            out.failed.extend(pass.failed);
            out.setup
                .extend(pass.setup.map(|s| (Integration::Organizations, s)));
        }
    }
    let claimed = chunk
        .claimed
        .iter()
        .map(|c| (c.crm_id.clone(), Link::new(kind, &c.prm_id, &c.taken_by)))
        .collect();
    let input = PassInput {
        crm,
        prm,
        full: chunk.full,
        retry_rejected: chunk.full,
        claimed,
        hold_crm_updates: hold,
        ..Default::default()
    };
    let mut pass = run_pass(ctx, kind, &chunk.run_id, false, input).await?;
    out.held = std::mem::take(&mut pass.held_updates);
    out.counts.add(&pass.counts);
    out.failed.extend(pass.failed);
    out.stopped = pass.stopped;
    out.setup.extend(pass.setup.map(|s| (chunk.integration, s)));
    log.extend(pass.log);
    crate::store::record_log(ctx.store.as_ref(), &log).await?;
    Ok(out)
}

/// The chunk's records: those it carries while fresh, the others read by id.
async fn records(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    chunk: &Chunk,
    delivery: Delivery,
) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), EngineError> {
    let overlap = Duration::seconds(i64::from(ctx.mapping.sync.overlap_seconds));
    let fresh = chunk.records.as_ref().filter(|r| {
        chunk.attempt == 0 && delivery.receive_count <= 1 && Utc::now() - r.read_at <= overlap
    });
    let Some(ChunkRecords { crm, prm, read_at }) = fresh.cloned() else {
        return Ok(fetch_or_gone(ctx, spec, &chunk.crm_ids, &chunk.prm_ids).await?);
    };
    // A record whose link was saved since it was read (this chunk ran before, or another
    // chunk synced it) is read again: its copy would look like a change back.
    let resynced: HashSet<String> = ctx
        .store
        .find_links(spec.kind, &chunk.crm_ids, &chunk.prm_ids)
        .await?
        .into_iter()
        .filter(|l| l.updated_at >= read_at)
        .flat_map(|l| [l.crm_id, l.prm_id])
        .collect();
    let crm: Vec<CrmRecord> = crm
        .into_iter()
        .filter(|r| !resynced.contains(&r.id))
        .collect();
    let prm: Vec<PrmRecord> = prm
        .into_iter()
        .filter(|r| !resynced.contains(&r.id))
        .collect();
    let have_crm: HashSet<&str> = crm.iter().map(|r| r.id.as_str()).collect();
    let have_prm: HashSet<&str> = prm.iter().map(|r| r.id.as_str()).collect();
    let crm_ids: Vec<String> = chunk
        .crm_ids
        .iter()
        .filter(|i| !have_crm.contains(i.as_str()))
        .cloned()
        .collect();
    let prm_ids: Vec<String> = chunk
        .prm_ids
        .iter()
        .filter(|i| !have_prm.contains(i.as_str()))
        .cloned()
        .collect();
    let (more_crm, more_prm) = fetch_or_gone(ctx, spec, &crm_ids, &prm_ids).await?;
    Ok((
        crm.into_iter().chain(more_crm).collect(),
        prm.into_iter().chain(more_prm).collect(),
    ))
}

/// The organizations of these people that are not linked yet, read by id.
async fn unlinked_organizations(
    ctx: &SyncContext,
    crm: &[CrmRecord],
    prm: &[PrmRecord],
) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), EngineError> {
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
        .await?;
    let live: HashSet<&str> = linked
        .iter()
        .filter(|l| l.state == LinkState::Linked)
        .flat_map(|l| [l.crm_id.as_str(), l.prm_id.as_str()])
        .collect();
    let missing = |ids: &[String]| -> Vec<String> {
        ids.iter()
            .filter(|a| !live.contains(a.as_str()))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let (missing_accounts, missing_orgs) = (missing(&accounts), missing(&orgs));
    if missing_accounts.is_empty() && missing_orgs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let org_spec = ObjectSpec::new(ObjectKind::Organization, &ctx.mapping);
    Ok(fetch_by_ids(ctx, &org_spec, &missing_accounts, &missing_orgs).await?)
}

/// What became of a chunk; the message that carried it is done with in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkVerdict {
    /// Synced (records that failed are in the retry set and handed out on their own).
    Synced,
    /// Could not be synced for a passing reason: handed out again after a delay.
    Requeued,
    /// Failed every attempt: its records are in the retry set, and the run goes on.
    Held,
    /// Waits for Salesforce's API limit to clear: handed out again after a delay.
    Deferred,
    /// Done already (a message delivered again): skipped without a call.
    Redelivered,
}

pub use crate::frame::ClosedRun;

/// What a worker did with one chunk.
#[derive(Debug)]
pub struct ChunkReport {
    pub verdict: ChunkVerdict,
    pub counts: Counts,
    /// Records handed out again on their own, and records parked.
    pub retried: u64,
    pub parked: u64,
    pub closed: Option<ClosedRun>,
}

/// Works one chunk off the queue (see the module doc). Fails only when the state store
/// cannot record what happened: the message is then delivered again.
pub async fn work_chunk(
    ctx: &SyncContext,
    queue: &dyn Queue,
    chunk: &Chunk,
    delivery: Delivery,
) -> Result<ChunkReport, StoreError> {
    let mut reports = work_chunks(ctx, queue, &[(chunk.clone(), delivery)], 1).await;
    reports
        .pop()
        .unwrap_or_else(|| unreachable!("one report per chunk"))
}

/// Works the chunks of one queue batch, `concurrency` at a time, and reports on each in
/// order (see [`work_chunk`]).
pub async fn work_chunks(
    ctx: &SyncContext,
    queue: &dyn Queue,
    chunks: &[(Chunk, Delivery)],
    concurrency: usize,
) -> Vec<Result<ChunkReport, StoreError>> {
    // The futures are made first: a stream mapping over borrowed chunks would not be
    // `Send` for the handler's spawned task.
    let works: Vec<_> = chunks
        .iter()
        .map(|(chunk, delivery)| Box::pin(work_one(ctx, queue, chunk, *delivery)))
        .collect();
    futures::stream::iter(works)
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Works one chunk: skipped (delivered again, waiting for the API limit), or synced and
/// finished.
#[tracing::instrument(name = "chunk", skip_all, fields(
    run_id = chunk.run_id.as_str(),
    integration = chunk.integration.as_str(),
    chunk = chunk.number,
    records = chunk.len(),
))]
async fn work_one(
    ctx: &SyncContext,
    queue: &dyn Queue,
    chunk: &Chunk,
    delivery: Delivery,
) -> Result<ChunkReport, StoreError> {
    if let Some(report) = skipped(ctx, queue, chunk).await? {
        return Ok(report);
    }
    // A planned run's chunk holds the write-backs of the links its pass creates for the
    // run's ingest job (see `ChunkRecord::held`); change events' chunks write at once.
    let hold = chunk.number.is_some() && ctx.mapping.salesforce.bulk_ingest_threshold > 0;
    let synced = sync_chunk(ctx, chunk, delivery, hold).await;
    finish_chunk(ctx, queue, chunk, synced).await
}

fn report_of(verdict: ChunkVerdict) -> ChunkReport {
    ChunkReport {
        verdict,
        counts: Counts::default(),
        retried: 0,
        parked: 0,
        closed: None,
    }
}

/// The report of a chunk not to sync: delivered again (a run still open with every chunk
/// done lost its close, and this delivery closes it), or waiting for the API limit. None
/// for a chunk to sync.
async fn skipped(
    ctx: &SyncContext,
    queue: &dyn Queue,
    chunk: &Chunk,
) -> Result<Option<ChunkReport>, StoreError> {
    if let Some(number) = chunk.number {
        let done = ctx
            .store
            .chunk_done(chunk.integration, &chunk.run_id, number)
            .await?;
        if done != Some(false) {
            // A redelivery of a chunk already synced, or of a run closed since: nothing to
            // sync, and no call made. A run still open with every chunk done lost its close
            // (the closer failed, see `close_after_last`): this one closes it.
            let mut report = report_of(ChunkVerdict::Redelivered);
            if done == Some(true) {
                let chunks = ctx
                    .store
                    .run_chunks(chunk.integration, &chunk.run_id)
                    .await?;
                let done = chunks.iter().filter(|c| c.done).count() as u64;
                report.closed = close_after_last(ctx, chunk, done).await?;
            }
            return Ok(Some(report));
        }
    }
    let now = Utc::now();
    if let Some(until) = ctx.store.api_hold().await?.filter(|u| *u > now) {
        defer(queue, chunk, until - now).await?;
        return Ok(Some(report_of(ChunkVerdict::Deferred)));
    }
    Ok(None)
}

/// What became of a synced chunk (see the module doc); marks it done and closes its run
/// after its last chunk.
async fn finish_chunk(
    ctx: &SyncContext,
    queue: &dyn Queue,
    chunk: &Chunk,
    synced: Result<ChunkSync, EngineError>,
) -> Result<ChunkReport, StoreError> {
    let mut report = report_of(ChunkVerdict::Synced);
    let mut held = Vec::new();
    match synced {
        Ok(mut sync) => {
            held = std::mem::take(&mut sync.held);
            if sync.stopped.is_some() {
                // The API reserve: the pass marked what it did not write for a retry;
                // the other workers stop writing too.
                hold_api(ctx, chunk, sync.stopped.clone().unwrap_or_default()).await?;
            }
            report.counts = sync.counts;
            let (mut setup, mut setup_ids) = (None, HashSet::new());
            for (integration, s) in &sync.setup {
                if *integration == chunk.integration {
                    setup = Some(s);
                } else {
                    setup_ids.extend(hold_setup_failed(ctx, &chunk.run_id, *integration, s).await?);
                }
            }
            let mut retrying = chunk.retrying.clone();
            retrying.retain(|i| !setup_ids.contains(i));
            let held = keep_failed(
                ctx,
                Some(queue),
                &chunk.run_id,
                chunk.integration,
                &sync.failed,
                setup,
                &retrying,
            )
            .await?;
            report.retried = held.retried;
            report.parked = held.parked;
        }
        Err(e) if e.class() == FailureClass::Limit => {
            hold_api(ctx, chunk, e.to_string()).await?;
            defer(queue, chunk, Duration::minutes(LIMIT_HOLD_MINUTES)).await?;
            report.verdict = ChunkVerdict::Deferred;
            return Ok(report);
        }
        Err(e) => {
            let attempt = chunk.attempt + 1;
            let max = max_attempts(ctx);
            if attempt < max {
                let delay = delay(ctx, attempt);
                let mut again = chunk.clone();
                again.attempt = attempt;
                again.records = None;
                send_later(queue, &again, delay).await?;
                record_chunk_log(
                    ctx,
                    chunk,
                    LogCode::ChunkRetried,
                    format!(
                        "a chunk of {} records could not be synced ({e}); attempt {} of {max} follows in {} s",
                        chunk.len(),
                        attempt + 1,
                        delay.num_seconds()
                    ),
                )
                .await?;
                report.verdict = ChunkVerdict::Requeued;
                return Ok(report);
            }
            crate::retry::hold_chunk(ctx, chunk, &e.to_string()).await?;
            report.verdict = ChunkVerdict::Held;
        }
    }
    if let Some(number) = chunk.number {
        let finished = ctx
            .store
            .finish_chunk(
                chunk.integration,
                &chunk.run_id,
                number,
                &report.counts,
                &held,
            )
            .await?;
        match finished {
            Some(done) => report.closed = close_after_last(ctx, chunk, done).await?,
            // Another delivery of the chunk finished it first, or its run closed: the
            // run's close will not see these write-backs, so they are written now.
            None if !held.is_empty() => {
                crate::frame::write_held(ctx, chunk.integration, &chunk.run_id, [held].into_iter())
                    .await?;
            }
            None => {}
        }
    }
    Ok(report)
}

/// Sends the chunk again after `delay` (at most 15 minutes), references only.
async fn defer(queue: &dyn Queue, chunk: &Chunk, delay: Duration) -> Result<(), StoreError> {
    let mut again = chunk.clone();
    again.records = None;
    send_later(queue, &again, delay).await
}

/// Sets the API hold (once: a hold already in force is left as it is) and says so.
async fn hold_api(ctx: &SyncContext, chunk: &Chunk, why: String) -> Result<(), StoreError> {
    let now = Utc::now();
    if ctx.store.api_hold().await?.is_some_and(|u| u > now) {
        return Ok(());
    }
    let until = now + Duration::minutes(LIMIT_HOLD_MINUTES);
    ctx.store.hold_api(until).await?;
    record_chunk_log(
        ctx,
        chunk,
        LogCode::ApiLimitHold,
        format!(
            "Salesforce refused calls for the org's API limit ({why}); workers write nothing until {}",
            until.format("%Y-%m-%d %H:%M UTC")
        ),
    )
    .await
}

/// Records one Integration Log entry about `chunk` (its number and attempt in the details).
async fn record_chunk_log(
    ctx: &SyncContext,
    chunk: &Chunk,
    code: LogCode,
    message: String,
) -> Result<(), StoreError> {
    let e = entry(
        &chunk.run_id,
        chunk.integration,
        code,
        message,
        json!({"chunk": chunk.number, "attempt": chunk.attempt}),
    );
    crate::store::record_log(ctx.store.as_ref(), &[e]).await
}

/// Closes the chunk's run when `done` chunks are all it queued. A close that fails (its
/// held write-backs could not be written, the state store failed) is said in the
/// Integration Log and fails the message: delivered again, the chunk (done by then) closes
/// the run, as would the planner's next invocation.
async fn close_after_last(
    ctx: &SyncContext,
    chunk: &Chunk,
    done: u64,
) -> Result<Option<ClosedRun>, StoreError> {
    match close_if_done(ctx, chunk.integration, &chunk.run_id, done).await {
        Ok(closed) => Ok(closed),
        Err(e) => {
            record_chunk_log(
                ctx,
                chunk,
                LogCode::ChunkRetried,
                format!(
                    "run {} could not close ({e}); the message of its last chunk is delivered again and closes it",
                    chunk.run_id
                ),
            )
            .await?;
            Err(e)
        }
    }
}

/// Closes the run when `done` chunks are all it queued.
async fn close_if_done(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
    done: u64,
) -> Result<Option<ClosedRun>, StoreError> {
    let Some(cp) = ctx.store.checkpoint(integration).await? else {
        return Ok(None);
    };
    if cp.run_id != run_id || !cp.planned || done < cp.chunks {
        return Ok(None);
    }
    crate::frame::close_run(ctx, integration, run_id).await
}
