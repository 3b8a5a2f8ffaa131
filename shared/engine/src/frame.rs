//! The frame of every run, one-machine or planned (sync rule 12 in
//! `docs/sync-rules.md`): the pause flag, the lease,
//! the run record and its run-started entry when it opens; the run-finished (or
//! run-failed) entry, the run record, the cursors and the lease when it closes. A
//! one-machine run ([`crate::run`]) opens and closes it in one process; a planned run
//! ([`crate::planner`]) opens it, queues its chunks and lets the lease go, and the worker
//! that finishes its last chunk ([`crate::worker`]) closes it. `sync-record` takes only
//! the lease. Each rule of a run is written here once.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use prmsync_mapping::{CrmRecord, Fields, Integration, LogCode, PrmRecord};
use serde_json::{json, Value};

use crate::context::{entry, RunMode, SyncContext, CRM_SIDE, PRM_SIDE};
use crate::error::EngineError;
use crate::objects::ObjectSpec;
use crate::ports::{
    ApiUsage, ChangeFrom, ChangePage, Crm, FailureClass, FieldInfo, PortError, Prm, PrmGroup,
    PrmSettings, RecordFailure, Scope, System, WriteOutcome,
};
use crate::report::{Counts, RunReport, RunStatus};
use crate::store::PlanCheckpoint;
use crate::store::{LogEntry, RunRecord, Store, StoreError};

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
            .save_run(&self.record(RunStatus::Running, Counts::default()))
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

    fn record(&self, status: RunStatus, counts: Counts) -> RunRecord {
        RunRecord {
            run_id: self.run_id.clone(),
            integration: self.integration,
            mode: self.mode,
            dry_run: self.dry_run,
            started_at: self.started_at,
            finished_at: (status != RunStatus::Running).then(Utc::now),
            status,
            counts,
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
        if self.kind == FrameKind::Run {
            log.push(finished_entry(&self.run_id, report));
        }
        if let Err(e) = crate::store::record_log(ctx.store.as_ref(), &log).await {
            report.fail(&EngineError::from(e).during("could not write the Integration Log"));
        }
        if self.kind == FrameKind::Run {
            let mut record = self.record(report.status, report.counts.clone());
            record.mode = report.mode;
            let _ = ctx.store.save_run(&record).await;
        }
        self.release(ctx).await;
    }
}

/// How many times a lease is renewed within its TTL: every third of it, so a renewal that
/// fails (or comes late) leaves time for the next before the lease expires.
pub const LEASE_RENEWALS_PER_TTL: i32 = 3;

/// Keeps an open frame's lease: a task renews it (the same holder acquiring it again
/// extends it) every [`LEASE_RENEWALS_PER_TTL`]th of the TTL until the frame lets it go,
/// so a run longer than the TTL keeps other runs out. A renewal that finds the lease taken
/// by another holder marks it lost and logs `lease_lost`; the run's guarded ports
/// ([`RunFrame::guard`]) then refuse its next write, and the run fails without moving its
/// cursors: two runs writing the same records at once could overwrite each other's
/// changes and snapshots, while a run that stops loses nothing (the run holding the lease
/// reads the same changes).
pub struct LeaseKeeper {
    state: Arc<LeaseState>,
    stop: Arc<tokio::sync::Notify>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("integration", &self.state.integration)
            .field("holder", &self.state.holder)
            .field("lost", &self.state.lost)
            .finish()
    }
}

impl LeaseKeeper {
    /// Starts renewing the lease `frame` took until `until`.
    fn start(ctx: &SyncContext, frame: &RunFrame, until: DateTime<Utc>) -> Arc<LeaseKeeper> {
        let state = Arc::new(LeaseState {
            store: ctx.store.clone(),
            integration: frame.integration,
            holder: ctx.holder.clone(),
            run_id: frame.run_id.clone(),
            ttl: ctx.lease_ttl,
            until_ms: AtomicI64::new(until.timestamp_millis()),
            lost: AtomicBool::new(false),
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let every = (ctx.lease_ttl / LEASE_RENEWALS_PER_TTL)
            .to_std()
            .unwrap_or_default()
            .max(std::time::Duration::from_millis(10));
        let task = tokio::spawn(renew_until_stopped(state.clone(), stop.clone(), every));
        Arc::new(LeaseKeeper {
            state,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the renewals, and waits for one under way to end (so none lands after the
    /// lease is released).
    async fn stop(&self) {
        self.stop.notify_one();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // A frame dropped without being closed (its run's future was cancelled): its
        // renewals stop, and the lease expires on its own.
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

async fn renew_until_stopped(
    state: Arc<LeaseState>,
    stop: Arc<tokio::sync::Notify>,
    every: std::time::Duration,
) {
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match state.renew().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(
                run_id = state.run_id.as_str(),
                integration = state.integration.as_str(),
                "could not renew the lease (tried again in {every:?}): {e}"
            ),
        }
    }
}

/// What the renewals and the guarded ports share.
struct LeaseState {
    store: Arc<dyn Store>,
    integration: Integration,
    holder: String,
    run_id: String,
    ttl: Duration,
    /// Until when the lease is ours: the `until` of the last renewal the store took
    /// (milliseconds since the epoch).
    until_ms: AtomicI64,
    /// A renewal found the lease taken by another holder.
    lost: AtomicBool,
}

impl LeaseState {
    /// Renews the lease: true when it is still ours, false when another holder has it
    /// (then it is marked lost and `lease_lost` logged, once).
    async fn renew(&self) -> Result<bool, StoreError> {
        if self.lost.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let until = Utc::now() + self.ttl;
        if self
            .store
            .acquire_lease(self.integration, &self.holder, until)
            .await?
        {
            self.until_ms
                .fetch_max(until.timestamp_millis(), Ordering::SeqCst);
            return Ok(true);
        }
        if !self.lost.swap(true, Ordering::SeqCst) {
            let message = format!(
                "another {} run took over this run's lease: this run stops before its next write and fails, and its cursors do not move",
                self.integration
            );
            tracing::warn!(
                run_id = self.run_id.as_str(),
                integration = self.integration.as_str(),
                "{message}"
            );
            let e = entry(
                &self.run_id,
                self.integration,
                LogCode::LeaseLost,
                message,
                json!({ "holder": self.holder }),
            );
            if let Err(e) = crate::store::record_log(self.store.as_ref(), &[e]).await {
                tracing::error!("could not write the Integration Log: {e}");
            }
        }
        Ok(false)
    }

    /// Ok while the lease is ours: its last renewal has not expired, or renewing it now
    /// succeeds. Else why not.
    async fn ensure_held(&self) -> Result<(), String> {
        let lost = || {
            format!(
                "the {} lease was lost to another run; this run stopped before its next write",
                self.integration
            )
        };
        if self.lost.load(Ordering::SeqCst) {
            return Err(lost());
        }
        if Utc::now().timestamp_millis() < self.until_ms.load(Ordering::SeqCst) {
            return Ok(());
        }
        match self.renew().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(lost()),
            Err(e) => Err(format!(
                "the {} lease expired and could not be renewed ({e}); this run stopped before its next write",
                self.integration
            )),
        }
    }

    async fn check(&self, system: System) -> Result<(), PortError> {
        self.ensure_held().await.map_err(|message| PortError {
            system,
            // Not a passing failure of the records: the run stops.
            class: FailureClass::Setup,
            message,
        })
    }
}

/// Salesforce, its writes refused once the run's lease is lost.
struct GuardedCrm {
    inner: Arc<dyn Crm>,
    lease: Arc<LeaseState>,
}

#[async_trait]
impl Crm for GuardedCrm {
    async fn changed(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        scope: &Scope,
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.inner.changed(object, fields, since, scope).await
    }
    async fn changed_page(
        &self,
        object: &str,
        fields: &[String],
        from: &ChangeFrom,
        page: Option<&str>,
        scope: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        self.inner
            .changed_page(object, fields, from, page, scope)
            .await
    }
    async fn sweep_page(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
        scope: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        self.inner
            .sweep_page(object, fields, since, page, scope)
            .await
    }
    async fn find(
        &self,
        object: &str,
        fields: &[String],
        field: &str,
        values: &[String],
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.inner.find(object, fields, field, values).await
    }
    async fn fetch(
        &self,
        object: &str,
        fields: &[String],
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.inner.fetch(object, fields, ids).await
    }
    async fn create(
        &self,
        object: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.lease.check(System::Salesforce).await?;
        self.inner.create(object, records).await
    }
    async fn update(
        &self,
        object: &str,
        records: Vec<(String, Fields)>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.lease.check(System::Salesforce).await?;
        self.inner.update(object, records).await
    }
    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.lease.check(System::Salesforce).await?;
        self.inner.upsert(object, external_id_field, records).await
    }
    async fn describe(&self, object: &str) -> Result<Vec<FieldInfo>, PortError> {
        self.inner.describe(object).await
    }
    fn record_url(&self, object: &str, id: &str) -> Option<String> {
        self.inner.record_url(object, id)
    }
    fn usage(&self) -> Option<ApiUsage> {
        self.inner.usage()
    }
    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}

/// The PRM, its writes refused once the run's lease is lost.
struct GuardedPrm {
    inner: Arc<dyn Prm>,
    lease: Arc<LeaseState>,
}

#[async_trait]
impl Prm for GuardedPrm {
    async fn changed(
        &self,
        collection: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.changed(collection, since).await
    }
    async fn changed_page(
        &self,
        collection: &str,
        from: &ChangeFrom,
        page: Option<&str>,
    ) -> Result<ChangePage<PrmRecord>, PortError> {
        self.inner.changed_page(collection, from, page).await
    }
    async fn fetch(&self, collection: &str, ids: &[String]) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.fetch(collection, ids).await
    }
    async fn people_by_email(&self, email: &str) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.people_by_email(email).await
    }
    async fn people_of_organization(
        &self,
        organization_id: &str,
    ) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.people_of_organization(organization_id).await
    }
    async fn create(
        &self,
        collection: &str,
        idempotency_key: &str,
        body: Fields,
    ) -> Result<Result<PrmRecord, RecordFailure>, PortError> {
        self.lease.check(System::Prm).await?;
        self.inner.create(collection, idempotency_key, body).await
    }
    async fn update(
        &self,
        collection: &str,
        id: &str,
        version: i64,
        patch: Fields,
    ) -> Result<Result<PrmRecord, RecordFailure>, PortError> {
        self.lease.check(System::Prm).await?;
        self.inner.update(collection, id, version, patch).await
    }
    async fn settings(&self) -> Result<PrmSettings, PortError> {
        self.inner.settings().await
    }
    async fn groups(&self) -> Result<Vec<PrmGroup>, PortError> {
        self.inner.groups().await
    }
    fn calls(&self) -> u64 {
        self.inner.calls()
    }
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
        json!(c),
    )
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
        &[finished_entry(&record.run_id, &report)],
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
}

/// Closes a planned run (once, whoever calls it): takes its checkpoint, adds up its
/// chunks' counts, moves the cursors, records the run and forgets its chunks. None when
/// another caller closed it first.
pub async fn close_run(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
) -> Result<Option<ClosedRun>, StoreError> {
    let Some(cp) = ctx.store.take_checkpoint(integration, run_id).await? else {
        return Ok(None);
    };
    let mut counts = Counts::default();
    for c in ctx.store.run_chunks(integration, run_id).await? {
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
    }))
}

/// A side's cursor once its run closes: its newest change read, or the run's start when
/// it read none (changes made while the workers drained it are read by the next run).
fn cursor_to_be(newest: Option<DateTime<Utc>>, cp: &PlanCheckpoint) -> DateTime<Utc> {
    newest.unwrap_or(cp.started_at)
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

/// How long Salesforce keeps a deleted record in the recycle bin, where `queryAll` (and
/// getDeleted) still return it with `IsDeleted`. An incremental read from a Salesforce
/// cursor older than this could miss a delete: a full run is read instead.
pub const CRM_DELETE_RETENTION_DAYS: i64 = 15;

/// How long the PRM keeps a deleted record as a tombstone (`deleted_at` set) in its change
/// lists (at least 30 days, `docs/prm-api.yaml`). An incremental read from a PRM cursor
/// older than this could miss a delete: a full run is read instead.
pub const PRM_DELETE_RETENTION_DAYS: i64 = 30;

/// A side's cursor older than the time that side keeps its deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredCursor {
    /// [`CRM_SIDE`] or [`PRM_SIDE`].
    pub side: &'static str,
    pub cursor: DateTime<Utc>,
    /// How old the cursor was when the run started.
    pub age: Duration,
    /// How long the side keeps its deletes.
    pub retention: Duration,
}

/// How a run reads, decided from its cursors: its mode, and the cursors that forced a full
/// run because they are older than their side's delete retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowMode {
    pub mode: RunMode,
    pub expired: Vec<ExpiredCursor>,
}

/// Decides a run's mode (no I/O): the first run of an integration (a cursor missing) is
/// full; an incremental run whose Salesforce cursor is older than
/// [`CRM_DELETE_RETENTION_DAYS`] or whose PRM cursor is older than
/// [`PRM_DELETE_RETENTION_DAYS`] becomes full, since the deletes made since the cursor may
/// no longer be in that side's change lists; otherwise the mode asked for.
pub fn window_mode(
    requested: RunMode,
    crm_cursor: Option<DateTime<Utc>>,
    prm_cursor: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> WindowMode {
    let (Some(crm), Some(prm)) = (crm_cursor, prm_cursor) else {
        return WindowMode {
            mode: RunMode::Full,
            expired: Vec::new(),
        };
    };
    if requested == RunMode::Full {
        return WindowMode {
            mode: RunMode::Full,
            expired: Vec::new(),
        };
    }
    let expired: Vec<ExpiredCursor> = [
        (CRM_SIDE, crm, CRM_DELETE_RETENTION_DAYS),
        (PRM_SIDE, prm, PRM_DELETE_RETENTION_DAYS),
    ]
    .into_iter()
    .filter_map(|(side, cursor, days)| {
        let retention = Duration::days(days);
        let age = now - cursor;
        (age > retention).then_some(ExpiredCursor {
            side,
            cursor,
            age,
            retention,
        })
    })
    .collect();
    WindowMode {
        mode: if expired.is_empty() {
            requested
        } else {
            RunMode::Full
        },
        expired,
    }
}

/// The `cursor_expired` entry of a run made full by expired cursors.
fn expired_entry(run_id: &str, integration: Integration, expired: &[ExpiredCursor]) -> LogEntry {
    let sides: Vec<String> = expired
        .iter()
        .map(|e| {
            let (name, keeps) = if e.side == CRM_SIDE {
                ("Salesforce", "its recycle bin keeps deleted records")
            } else {
                ("PRM", "it keeps tombstones of deleted records")
            };
            format!(
                "the {name} cursor ({}) is {} days old and {keeps} {} days",
                e.cursor.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                e.age.num_days(),
                e.retention.num_days()
            )
        })
        .collect();
    let details: Vec<Value> = expired
        .iter()
        .map(|e| {
            json!({
                "side": e.side,
                "cursor": e.cursor,
                "age_days": e.age.num_days(),
                "retention_days": e.retention.num_days(),
            })
        })
        .collect();
    entry(
        run_id,
        integration,
        LogCode::CursorExpired,
        format!(
            "{integration}: {}; an incremental run could miss deletes, so this run is full: it reads everything",
            sides.join(", and ")
        ),
        json!({ "expired": details }),
    )
}

/// Where a run reads from: its mode (the first run of an integration is full, so is one
/// whose cursor is older than its side keeps deletes, and a full run first checks the
/// mapping against Salesforce) and each side's change window (its cursor less the
/// overlap; None reads everything).
pub(crate) struct Window {
    pub mode: RunMode,
    pub crm_cursor: Option<DateTime<Utc>>,
    pub prm_cursor: Option<DateTime<Utc>>,
    pub crm_since: Option<DateTime<Utc>>,
    pub prm_since: Option<DateTime<Utc>>,
    /// The `cursor_expired` entry when expired cursors made the run full ([`window_mode`]),
    /// for the caller to write once the run has started.
    pub expired: Option<LogEntry>,
}

/// Reads the cursors and decides the run's [`Window`] ([`window_mode`]); `run_id` names
/// the run in its `cursor_expired` entry.
pub(crate) async fn read_window(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
    spec: &ObjectSpec,
    requested: RunMode,
) -> Result<Window, EngineError> {
    let crm_cursor = ctx.store.cursor(integration, CRM_SIDE).await?;
    let prm_cursor = ctx.store.cursor(integration, PRM_SIDE).await?;
    let decided = window_mode(requested, crm_cursor, prm_cursor, Utc::now());
    let mode = decided.mode;
    let expired =
        (!decided.expired.is_empty()).then(|| expired_entry(run_id, integration, &decided.expired));
    if let Some(e) = &expired {
        tracing::warn!(run_id, integration = integration.as_str(), "{}", e.message);
    }
    if mode == RunMode::Full {
        crate::check::check_mapping(ctx, spec).await?;
    }
    let overlap = Duration::seconds(i64::from(ctx.mapping.sync.overlap_seconds));
    let (crm_since, prm_since) = match mode {
        RunMode::Full => (None, None),
        RunMode::Incremental | RunMode::Record => (
            crm_cursor.map(|c| c - overlap),
            prm_cursor.map(|c| c - overlap),
        ),
    };
    Ok(Window {
        mode,
        crm_cursor,
        prm_cursor,
        crm_since,
        prm_since,
        expired,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
    }

    fn days_ago(days: i64) -> Option<DateTime<Utc>> {
        Some(now() - Duration::days(days))
    }

    #[test]
    fn recent_cursors_keep_the_mode_asked_for() {
        let d = window_mode(RunMode::Incremental, days_ago(1), days_ago(1), now());
        assert_eq!(d.mode, RunMode::Incremental);
        assert!(d.expired.is_empty());
        // just inside both windows
        let d = window_mode(RunMode::Incremental, days_ago(15), days_ago(30), now());
        assert_eq!(d.mode, RunMode::Incremental);
        assert!(d.expired.is_empty());
    }

    #[test]
    fn a_missing_cursor_is_a_first_run_not_an_expired_one() {
        for (crm, prm) in [(None, days_ago(1)), (days_ago(40), None), (None, None)] {
            let d = window_mode(RunMode::Incremental, crm, prm, now());
            assert_eq!(d.mode, RunMode::Full);
            assert!(d.expired.is_empty());
        }
    }

    #[test]
    fn a_salesforce_cursor_older_than_the_recycle_bin_forces_a_full_run() {
        let d = window_mode(RunMode::Incremental, days_ago(16), days_ago(16), now());
        assert_eq!(d.mode, RunMode::Full);
        assert_eq!(
            d.expired,
            vec![ExpiredCursor {
                side: CRM_SIDE,
                cursor: days_ago(16).unwrap(),
                age: Duration::days(16),
                retention: Duration::days(CRM_DELETE_RETENTION_DAYS),
            }],
            "the PRM keeps tombstones 30 days: its cursor is not expired"
        );
        let just = now() - Duration::days(15) - Duration::seconds(1);
        let d = window_mode(RunMode::Incremental, Some(just), days_ago(1), now());
        assert_eq!(d.mode, RunMode::Full);
    }

    #[test]
    fn a_prm_cursor_older_than_its_tombstones_forces_a_full_run() {
        let d = window_mode(RunMode::Incremental, days_ago(1), days_ago(31), now());
        assert_eq!(d.mode, RunMode::Full);
        assert_eq!(d.expired.len(), 1);
        assert_eq!(d.expired[0].side, PRM_SIDE);
        let d = window_mode(RunMode::Incremental, days_ago(31), days_ago(31), now());
        assert_eq!(
            d.expired.iter().map(|e| e.side).collect::<Vec<_>>(),
            vec![CRM_SIDE, PRM_SIDE]
        );
    }

    #[test]
    fn a_full_run_asked_for_needs_no_reason() {
        let d = window_mode(RunMode::Full, days_ago(40), days_ago(40), now());
        assert_eq!(d.mode, RunMode::Full);
        assert!(d.expired.is_empty());
    }

    #[test]
    fn the_entry_names_the_side_its_age_and_why_the_run_is_full() {
        let d = window_mode(RunMode::Incremental, days_ago(16), days_ago(2), now());
        let e = expired_entry("r1", Integration::People, &d.expired);
        assert_eq!(e.code, LogCode::CursorExpired);
        assert_eq!(e.level, prmsync_mapping::Level::Warning);
        assert!(e.message.contains("Salesforce cursor"), "{}", e.message);
        assert!(e.message.contains("16 days old"), "{}", e.message);
        assert!(e.message.contains("15 days"), "{}", e.message);
        assert!(e.message.contains("reads everything"), "{}", e.message);
        assert!(e.message.contains("deletes"), "{}", e.message);
        assert_eq!(e.details["expired"][0]["side"], "crm");
        assert_eq!(e.details["expired"][0]["age_days"], 16);
    }
}
