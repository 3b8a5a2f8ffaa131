//! The frame of every run, one-machine or planned (sync rule 12 in
//! `docs/sync-rules.md`): the pause flag, the lease,
//! the run record and its run-started entry when it opens; the run-finished (or
//! run-failed) entry, the run record, the cursors and the lease when it closes. A
//! one-machine run ([`crate::run`]) opens and closes it in one process; a planned run
//! ([`crate::planner`]) opens it, queues its chunks and lets the lease go, and the worker
//! that finishes its last chunk ([`crate::worker`]) closes it. `sync-record` takes only
//! the lease. Each rule of a run is written here once.

//!
//! The lease kept while the run is open is in `lease.rs`; where a run reads from (its
//! mode and change windows, and the delete-retention rule) in `window.rs`.

mod lease;
mod window;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prmsync_mapping::{Integration, LogCode};
use serde_json::{json, Value};

use crate::context::{entry, RunMode, SyncContext, CRM_SIDE, PRM_SIDE};
use crate::error::EngineError;
use crate::ports::FailureClass;
use crate::report::{Counts, RunReport, RunStatus};
use crate::store::PlanCheckpoint;
use crate::store::{LogEntry, RunRecord, StoreError};

pub use lease::LeaseKeeper;
pub use lease::LEASE_RENEWALS_PER_TTL;
use lease::{GuardedCrm, GuardedPrm};
pub(crate) use window::{read_window, Window};
pub use window::{
    window_mode, ExpiredCursor, WindowMode, CRM_DELETE_RETENTION_DAYS, PRM_DELETE_RETENTION_DAYS,
};

/// What opening a run takes and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A run of an integration: pause flag, lease, run record, run-started entry.
    Run,
    /// An operator's sync of one record: the lease only (no run record: the Sync
    /// Manager's last run stays the last scheduled or manual run).
    Record,
    /// A planner invocation that carries on a run it opened before: the pause flag and
    /// the lease (the run record and its first entry exist).
    Continuation,
}

/// An open run.
#[derive(Debug, Clone)]
pub struct RunFrame {
    pub run_id: String,
    pub integration: Integration,
    pub mode: RunMode,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    kind: FrameKind,
    /// The lease this frame holds, renewed until it is released.
    lease: Option<Arc<LeaseKeeper>>,
}

impl RunFrame {
    /// Opens a run, or returns the report of a run that did not start (paused, lease
    /// held, state unreadable), its entry written.
    pub async fn open(
        ctx: &SyncContext,
        integration: Integration,
        run_id: &str,
        mode: RunMode,
        dry_run: bool,
        kind: FrameKind,
    ) -> Result<RunFrame, RunReport> {
        let mut frame = RunFrame {
            run_id: run_id.to_string(),
            integration,
            mode,
            dry_run,
            started_at: Utc::now(),
            kind,
            lease: None,
        };
        let store = &ctx.store;
        if kind != FrameKind::Record {
            match store.is_paused(integration).await {
                Ok(false) => {}
                Ok(true) => {
                    let m = format!(
                        "{integration} is paused; `prmsync resume {integration}` starts it again"
                    );
                    return Err(frame
                        .skipped(ctx, RunStatus::SkippedPaused, LogCode::RunSkippedPaused, m)
                        .await);
                }
                Err(e) => {
                    return Err(frame.report_failed(
                        EngineError::from(e).during("could not read the pause flag"),
                    ))
                }
            }
        }
        let until = Utc::now() + ctx.lease_ttl;
        match store.acquire_lease(integration, &ctx.holder, until).await {
            Ok(true) => frame.lease = Some(LeaseKeeper::start(ctx, &frame, until)),
            Ok(false) => {
                let m = match kind {
                    FrameKind::Record => {
                        format!("a {integration} run is in progress; try again when it ends")
                    }
                    _ => format!("another {integration} run holds the lease; this run did nothing"),
                };
                let code = (kind != FrameKind::Record).then_some(LogCode::RunSkippedLeaseHeld);
                let mut report = frame.report();
                report.status = RunStatus::SkippedLeaseHeld;
                report.message = Some(m.clone());
                if let Some(code) = code {
                    frame
                        .record_log_or_trace(ctx, vec![frame.entry(code, m, Value::Null)])
                        .await;
                }
                return Err(report);
            }
            Err(e) => {
                return Err(
                    frame.report_failed(EngineError::from(e).during("could not take the lease"))
                )
            }
        }
        if kind == FrameKind::Run {
            frame.begin(ctx).await;
        }
        Ok(frame)
    }

    /// Records the run as running and writes its run-started entry ([`FrameKind::Run`]
    /// does it on opening; a planner does it once it knows the run is new).
    pub async fn begin(&self, ctx: &SyncContext) {
        let _ = ctx
            .store
            .save_run(&self.record(ctx, RunStatus::Running, Counts::default()))
            .await;
        let m = format!(
            "{} run of {} started{}",
            self.mode,
            self.integration,
            if self.dry_run { " (dry run)" } else { "" }
        );
        self.record_log_or_trace(ctx, vec![self.entry(LogCode::RunStarted, m, Value::Null)])
            .await;
    }

    /// A report of this run, nothing done yet.
    pub fn report(&self) -> RunReport {
        RunReport {
            run_id: self.run_id.clone(),
            integration: self.integration,
            mode: self.mode,
            dry_run: self.dry_run,
            status: RunStatus::Succeeded,
            counts: Counts::default(),
            message: None,
            failure: None,
            planned: Vec::new(),
        }
    }

    fn report_failed(&self, e: EngineError) -> RunReport {
        let mut report = self.report();
        report.fail(&e);
        report
    }

    async fn skipped(
        &self,
        ctx: &SyncContext,
        status: RunStatus,
        code: LogCode,
        message: String,
    ) -> RunReport {
        let mut report = self.report();
        report.status = status;
        report.message = Some(message.clone());
        self.record_log_or_trace(ctx, vec![self.entry(code, message, Value::Null)])
            .await;
        report
    }

    /// A run-level entry of this run.
    pub fn entry(&self, code: LogCode, message: String, details: Value) -> LogEntry {
        entry(&self.run_id, self.integration, code, message, details)
    }

    async fn record_log_or_trace(&self, ctx: &SyncContext, entries: Vec<LogEntry>) {
        if let Err(e) = crate::store::record_log(ctx.store.as_ref(), &entries).await {
            tracing::error!(
                run_id = self.run_id.as_str(),
                integration = self.integration.as_str(),
                "could not write the Integration Log: {e}"
            );
        }
    }

    /// The run record as it stands, with Salesforce's API usage last seen.
    fn record(&self, ctx: &SyncContext, status: RunStatus, counts: Counts) -> RunRecord {
        RunRecord {
            run_id: self.run_id.clone(),
            integration: self.integration,
            mode: self.mode,
            dry_run: self.dry_run,
            started_at: self.started_at,
            finished_at: (status != RunStatus::Running).then(Utc::now),
            status,
            counts,
            api_usage: ctx.crm.usage(),
        }
    }

    /// Saves the run's counts so far to its run record, still running (`mode` as its
    /// read window decided), so that the Sync Manager shows how far it has gone. A run
    /// reports after each pass of records (at most a page of them); a record that cannot
    /// be saved is left for the next report or the end of the run.
    pub async fn progress(&self, ctx: &SyncContext, mode: RunMode, counts: &Counts) {
        if self.kind != FrameKind::Run {
            return;
        }
        let mut counts = counts.clone();
        keep_drift_of(mode, &mut counts);
        let mut record = self.record(ctx, RunStatus::Running, counts);
        record.mode = mode;
        if let Err(e) = ctx.store.save_run(&record).await {
            tracing::warn!(
                run_id = self.run_id.as_str(),
                integration = self.integration.as_str(),
                "could not save the run's progress: {e}"
            );
        }
    }

    /// Lets the lease go (its renewals stop first); the run stays open (a planner whose
    /// chunks are queued).
    pub async fn release(&self, ctx: &SyncContext) {
        if let Some(lease) = &self.lease {
            lease.stop().await;
        }
        let _ = ctx.store.release_lease(self.integration, &ctx.holder).await;
    }

    /// `ctx` with its Salesforce and PRM ports guarded by this frame's lease: a write is
    /// refused once the lease is lost ([`LeaseKeeper`]), so a run that lost its lease to
    /// another run stops before its next write.
    pub fn guard(&self, ctx: &SyncContext) -> SyncContext {
        let Some(lease) = &self.lease else {
            return ctx.clone();
        };
        let mut guarded = ctx.clone();
        guarded.crm = Arc::new(GuardedCrm {
            inner: ctx.crm.clone(),
            lease: lease.state.clone(),
        });
        guarded.prm = Arc::new(GuardedPrm {
            inner: ctx.prm.clone(),
            lease: lease.state.clone(),
        });
        guarded
    }

    /// Ok while this frame holds its lease (renewing it now if its last renewal has
    /// expired); the error a run that lost it fails with.
    pub async fn check_lease(&self) -> Result<(), EngineError> {
        match &self.lease {
            Some(lease) => {
                lease
                    .state
                    .ensure_held()
                    .await
                    .map_err(|message| EngineError::Reported {
                        class: FailureClass::Transient,
                        message,
                    })
            }
            None => Ok(()),
        }
    }

    /// True once a renewal found the lease taken by another run.
    pub fn lease_lost(&self) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|l| l.state.lost.load(Ordering::SeqCst))
    }

    /// Closes the run: writes `log` and the run-finished entry with the report's counts
    /// (run-failed when the report failed), saves the run record, and lets the lease go.
    /// A report whose log cannot be written ends failed.
    pub async fn close(&self, ctx: &SyncContext, report: &mut RunReport, mut log: Vec<LogEntry>) {
        keep_drift_of_reconcile(report);
        if self.kind == FrameKind::Run {
            log.extend(finished_entries(&self.run_id, report));
        }
        if let Err(e) = crate::store::record_log(ctx.store.as_ref(), &log).await {
            report.fail(&EngineError::from(e).during("could not write the Integration Log"));
        }
        if self.kind == FrameKind::Run {
            let mut record = self.record(ctx, report.status, report.counts.clone());
            record.mode = report.mode;
            let _ = ctx.store.save_run(&record).await;
        }
        self.release(ctx).await;
    }
}

/// Only a reconcile reports drift: other runs close with 0 (see `Counts::drift`).
fn keep_drift_of_reconcile(report: &mut RunReport) {
    keep_drift_of(report.mode, &mut report.counts);
}

fn keep_drift_of(mode: RunMode, counts: &mut Counts) {
    if mode != RunMode::Reconcile {
        counts.drift = 0;
    }
}

/// The entries that end a run: a reconcile's drift entry ([`drift_entry`]), then
/// run-finished with its counts, or run-failed.
pub(crate) fn finished_entries(run_id: &str, report: &RunReport) -> Vec<LogEntry> {
    let mut out = Vec::new();
    if report.mode == RunMode::Reconcile && report.status != RunStatus::Failed {
        out.push(drift_entry(run_id, report));
    }
    out.push(finished_entry(run_id, report));
    out
}

/// A reconcile's `reconcile_drift` entry for its object: the pairs it repaired and the
/// records it created or linked (what the incremental runs missed). Info when there was
/// none, a warning otherwise.
pub fn drift_entry(run_id: &str, report: &RunReport) -> LogEntry {
    let integration = report.integration;
    let drift = report.counts.drift;
    let object = integration.object();
    let message = if drift == 0 {
        format!(
            "reconcile of {integration}{}: no drift, every linked {object} was in step",
            if report.dry_run { " (dry run)" } else { "" }
        )
    } else {
        format!(
            "reconcile of {integration}: {drift} {object} records {} drifted since the incremental runs (pairs out of step, or records not created or linked)",
            if report.dry_run { "would be repaired: they" } else { "repaired: they had" }
        )
    };
    let mut e = entry(
        run_id,
        integration,
        LogCode::ReconcileDrift,
        message,
        json!({"drift": drift, "object": object.as_str(), "dry_run": report.dry_run}),
    );
    if drift == 0 {
        e.level = prmsync_mapping::Level::Info;
    }
    e
}

/// The entry that ends a run: run-finished with its counts, or run-failed.
pub(crate) fn finished_entry(run_id: &str, report: &RunReport) -> LogEntry {
    let integration = report.integration;
    if report.status == RunStatus::Failed {
        return entry(
            run_id,
            integration,
            LogCode::RunFailed,
            report.message.clone().unwrap_or_default(),
            Value::Null,
        );
    }
    let c = &report.counts;
    entry(
        run_id,
        integration,
        LogCode::RunFinished,
        format!(
            "{} run of {integration} {}: created {} in Salesforce and {} in the PRM, updated {} and {}, {} unchanged, {} conflicts, {} errors",
            report.mode,
            report.status,
            c.created.crm,
            c.created.prm,
            c.updated.crm,
            c.updated.prm,
            c.unchanged,
            c.conflicts,
            c.errors
        ),
        finished_details(report),
    )
}

/// The counts of a run-finished entry; a reconcile's carry its drift, 0 included.
fn finished_details(report: &RunReport) -> Value {
    let mut details = json!(report.counts);
    if report.mode == RunMode::Reconcile {
        details["drift"] = json!(report.counts.drift);
    }
    details
}

/// Closes a planned run whose chunks are all done (or held in the retry set): the
/// cursors move, the run record gets the chunks' counts, and the run-finished entry is
/// written. `started_at` is when the run opened; its lease went when it was planned.
pub(crate) async fn close_planned(
    ctx: &SyncContext,
    record: RunRecord,
    crm_cursor: DateTime<Utc>,
    prm_cursor: DateTime<Utc>,
) -> Result<RunReport, StoreError> {
    move_cursors(ctx, record.integration, crm_cursor, prm_cursor).await?;
    mark_read_all(ctx, record.integration, record.mode, record.started_at).await?;
    let mut record = record;
    keep_drift_of(record.mode, &mut record.counts);
    let report = RunReport {
        run_id: record.run_id.clone(),
        integration: record.integration,
        mode: record.mode,
        dry_run: false,
        status: record.status,
        counts: record.counts.clone(),
        message: None,
        failure: None,
        planned: Vec::new(),
    };
    ctx.store.save_run(&record).await?;
    crate::store::record_log(
        ctx.store.as_ref(),
        &finished_entries(&record.run_id, &report),
    )
    .await?;
    Ok(report)
}

/// A planned run that was closed (by its last chunk's worker, or by a planner), and what to plan after it.
#[derive(Debug, Clone)]
pub struct ClosedRun {
    pub report: RunReport,
    pub then: Vec<Integration>,
    pub mode: RunMode,
    /// The operator let a mass change through the breaker for this run and those in
    /// `then`.
    pub allow_mass_change: bool,
}

/// Closes a planned run (once, whoever calls it): writes the write-backs its chunks held
/// ([`write_held`]), takes its checkpoint, adds up its chunks' counts, moves the cursors,
/// records the run and forgets its chunks. None when another caller closed it first.
pub async fn close_run(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
) -> Result<Option<ClosedRun>, StoreError> {
    let mut chunks = ctx.store.run_chunks(integration, run_id).await?;
    let held = chunks.iter_mut().map(|c| std::mem::take(&mut c.held));
    let mut counts = write_held(ctx, integration, run_id, held).await?;
    let Some(cp) = ctx.store.take_checkpoint(integration, run_id).await? else {
        return Ok(None);
    };
    for c in &chunks {
        counts.add(&c.counts);
    }
    let record = RunRecord {
        run_id: cp.run_id.clone(),
        integration,
        mode: cp.mode,
        dry_run: false,
        started_at: cp.started_at,
        finished_at: Some(Utc::now()),
        status: RunStatus::Succeeded,
        counts,
        api_usage: ctx.crm.usage(),
    };
    let report = close_planned(
        ctx,
        record,
        cursor_to_be(cp.crm.newest, &cp),
        cursor_to_be(cp.prm.newest, &cp),
    )
    .await?;
    ctx.store.clear_chunks(integration, run_id).await?;
    Ok(Some(ClosedRun {
        report,
        then: cp.then.clone(),
        mode: cp.mode,
        allow_mass_change: cp.allow_mass_change,
    }))
}

/// Writes the write-backs a planned run's chunks held (the links their passes created),
/// all of the run's in one ingest job per `[salesforce] bulk_ingest_job_records`, as the
/// one-machine sweep writes them: each record settled on its link, logged, failed ones in
/// the retry set. Before the checkpoint is taken: a closer that stops meanwhile leaves
/// the run open, and the next one (or the planner's next invocation) writes them again,
/// the same values. Returns what the writes did.
pub(crate) async fn write_held(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
    chunks: impl Iterator<Item = Vec<crate::store::HeldUpdate>>,
) -> Result<Counts, StoreError> {
    let mut counts = Counts::default();
    let mut held = crate::store::HeldUpdates::default();
    for rows in chunks {
        held.add(rows);
    }
    let mut held = held.take().into_iter();
    loop {
        let job_records = ctx.mapping.salesforce.bulk_ingest_job_records as usize;
        let part: Vec<_> = held.by_ref().take(job_records).collect();
        if part.is_empty() {
            break;
        }
        let out = crate::pass::settle_held_updates(ctx, integration.object(), run_id, part)
            .await
            .map_err(|e| match e {
                crate::pass::PassError::Store(e) => e,
                crate::pass::PassError::Port(e) => StoreError::Backend(format!(
                    "the write-backs the chunks of run {run_id} of {integration} held could not be written ({e}); the run stays open, and the planner's next invocation closes it"
                )),
            })?;
        crate::store::record_log(ctx.store.as_ref(), &out.log).await?;
        crate::retry::keep_failed(
            ctx,
            None,
            run_id,
            integration,
            &out.failed,
            out.setup.as_ref(),
            &[],
        )
        .await?;
        counts.add(&out.counts);
        if out.stopped.is_some() {
            // The API reserve: the rest stay marked for a retry.
            break;
        }
    }
    Ok(counts)
}

/// A side's cursor once its run closes: its newest change read, or the run's start when
/// it read none (changes made while the workers drained it are read by the next run).
fn cursor_to_be(newest: Option<DateTime<Utc>>, cp: &PlanCheckpoint) -> DateTime<Utc> {
    newest.unwrap_or(cp.started_at)
}

/// The name under which the start of an integration's last run that read everything
/// (full or reconcile) is kept with its cursors: when the next reconcile is due.
pub const READ_ALL_MARK: &str = "reconcile";

/// Remembers when a run that read everything started ([`READ_ALL_MARK`]), once it
/// succeeded: a full run repairs drift as a reconcile does, so the next reconcile is due a
/// day after either.
pub(crate) async fn mark_read_all(
    ctx: &SyncContext,
    integration: Integration,
    mode: RunMode,
    started_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    if !mode.reads_all() {
        return Ok(());
    }
    ctx.store
        .set_cursor(integration, READ_ALL_MARK, started_at)
        .await
}

/// The cursors move: only once every change read is done or held in the retry set.
pub(crate) async fn move_cursors(
    ctx: &SyncContext,
    integration: Integration,
    crm: DateTime<Utc>,
    prm: DateTime<Utc>,
) -> Result<(), StoreError> {
    ctx.store.set_cursor(integration, CRM_SIDE, crm).await?;
    ctx.store.set_cursor(integration, PRM_SIDE, prm).await
}
