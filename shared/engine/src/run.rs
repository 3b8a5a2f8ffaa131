//! A run of an integration: pause flag, lease, cursors with overlap, the pass, the run
//! record and its Integration Log entries (DESIGN 2, 11, 12).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use prmsync_mapping::{CrmRecord, Integration, LogCode, MappingConfig, ObjectKind, PrmRecord};
use serde_json::{json, Value};

use crate::objects::ObjectSpec;
use crate::pass::{run_pass, PassError, PassInput};
use crate::ports::{Crm, PortError, Prm};
use crate::report::{Counts, RunReport};
#[allow(unused_imports)]
use crate::store::{IntegrationLog, Leases, Links};
use crate::store::{LogEntry, RunRecord, Store};

/// What a run reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Changes since the cursors (minus the overlap window).
    Incremental,
    /// Every selected record on both sides.
    Full,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Incremental => "incremental",
            RunMode::Full => "full",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: RunMode,
    pub dry_run: bool,
    /// The run id to use (several integrations of one `sync` share it); a new one if None.
    pub run_id: Option<String>,
}

/// Everything a run needs, built once per process.
#[derive(Clone)]
pub struct SyncContext {
    pub crm: Arc<dyn Crm>,
    pub prm: Arc<dyn Prm>,
    pub store: Arc<dyn Store>,
    pub mapping: Arc<MappingConfig>,
    /// Who holds leases taken by this process (host and process id, or the Lambda request).
    pub holder: String,
    /// How long a lease lasts before another run may take it over.
    pub lease_ttl: Duration,
}

/// Cursor names per side.
pub const CRM_SIDE: &str = "crm";
pub const PRM_SIDE: &str = "prm";

/// Runs one integration once and records what it did. Organizations and people are
/// supported here; deals have their own use case.
pub async fn run_integration(
    ctx: &SyncContext,
    integration: Integration,
    options: RunOptions,
) -> RunReport {
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut report = RunReport {
        run_id: run_id.clone(),
        integration,
        mode: options.mode.as_str().into(),
        dry_run: options.dry_run,
        status: "succeeded".into(),
        counts: Counts::default(),
        message: None,
        planned: Vec::new(),
    };
    let store = &ctx.store;
    match store.is_paused(integration).await {
        Ok(true) => {
            report.status = "skipped_paused".into();
            report.message = Some(format!(
                "{integration} is paused; `prmsync resume {integration}` starts it again"
            ));
            let _ = crate::store::record_log(
                store.as_ref(),
                &[entry(
                    &run_id,
                    integration,
                    LogCode::RunSkippedPaused,
                    report.message.clone().unwrap_or_default(),
                    Value::Null,
                )],
            )
            .await;
            return report;
        }
        Ok(false) => {}
        Err(e) => return failed(report, format!("could not read the pause flag: {e}")),
    }
    let until = Utc::now() + ctx.lease_ttl;
    match store.acquire_lease(integration, &ctx.holder, until).await {
        Ok(true) => {}
        Ok(false) => {
            report.status = "skipped_lease_held".into();
            report.message = Some(format!(
                "another {integration} run holds the lease; this run did nothing"
            ));
            let _ = crate::store::record_log(
                store.as_ref(),
                &[entry(
                    &run_id,
                    integration,
                    LogCode::RunSkippedLeaseHeld,
                    report.message.clone().unwrap_or_default(),
                    Value::Null,
                )],
            )
            .await;
            return report;
        }
        Err(e) => return failed(report, format!("could not take the lease: {e}")),
    }
    let started_at = Utc::now();
    let mut record = RunRecord {
        run_id: run_id.clone(),
        integration,
        mode: options.mode.as_str().into(),
        dry_run: options.dry_run,
        started_at,
        finished_at: None,
        status: "running".into(),
        counts: Counts::default(),
    };
    let _ = store.save_run(&record).await;
    let _ = crate::store::record_log(
        store.as_ref(),
        &[entry(
            &run_id,
            integration,
            LogCode::RunStarted,
            format!(
                "{} run of {integration} started{}",
                options.mode.as_str(),
                if options.dry_run { " (dry run)" } else { "" }
            ),
            Value::Null,
        )],
    )
    .await;

    let outcome = run_object(ctx, integration, &options, &run_id).await;
    match outcome {
        Ok((mode, counts, planned, stopped, mut log)) => {
            report.mode = mode.as_str().into();
            report.counts = counts;
            report.planned = planned;
            if let Some(m) = stopped {
                report.status = "stopped".into();
                report.message = Some(m);
            }
            log.push(entry(
                &run_id,
                integration,
                LogCode::RunFinished,
                format!(
                    "{} run of {integration} {}: created {} in Salesforce and {} in the PRM, updated {} and {}, {} unchanged, {} conflicts, {} errors",
                    report.mode,
                    report.status,
                    report.counts.created.crm,
                    report.counts.created.prm,
                    report.counts.updated.crm,
                    report.counts.updated.prm,
                    report.counts.unchanged,
                    report.counts.conflicts,
                    report.counts.errors
                ),
                json!(report.counts),
            ));
            if let Err(e) = crate::store::record_log(store.as_ref(), &log).await {
                report.status = "failed".into();
                report.message = Some(format!("could not write the Integration Log: {e}"));
            }
        }
        Err(message) => {
            report.status = "failed".into();
            report.message = Some(message.clone());
            let _ = crate::store::record_log(
                store.as_ref(),
                &[entry(
                    &run_id,
                    integration,
                    LogCode::RunFailed,
                    message,
                    Value::Null,
                )],
            )
            .await;
        }
    }
    record.finished_at = Some(Utc::now());
    record.status = report.status.clone();
    record.counts = report.counts.clone();
    record.mode = report.mode.clone();
    let _ = store.save_run(&record).await;
    let _ = store.release_lease(integration, &ctx.holder).await;
    report
}

type ObjectOutcome = (
    RunMode,
    Counts,
    Vec<crate::report::PlannedWrite>,
    Option<String>,
    Vec<LogEntry>,
);

async fn run_object(
    ctx: &SyncContext,
    integration: Integration,
    options: &RunOptions,
    run_id: &str,
) -> Result<ObjectOutcome, String> {
    let spec = ObjectSpec::new(integration.object(), &ctx.mapping);
    let window = read_window(ctx, integration, &spec, options.mode).await?;
    let mode = window.mode;
    if let Some(message) = reserve_message(ctx) {
        let log = vec![entry(
            run_id,
            integration,
            LogCode::ApiReserveReached,
            message.clone(),
            Value::Null,
        )];
        return Ok((mode, Counts::default(), Vec::new(), Some(message), log));
    }
    let out = crate::sweep::sweep(ctx, integration, run_id, options.dry_run, &window).await?;
    if !options.dry_run && out.stopped.is_none() {
        // Checkpoint: the cursors move only once every record read is done. Without any
        // record read, the cursor starts from the run's start so the next run is
        // incremental.
        let now = Utc::now();
        let crm = out.crm_newest.or(window.crm_cursor).unwrap_or(now);
        let prm = out.prm_newest.or(window.prm_cursor).unwrap_or(now);
        ctx.store
            .set_cursor(integration, CRM_SIDE, crm)
            .await
            .map_err(|e| e.to_string())?;
        ctx.store
            .set_cursor(integration, PRM_SIDE, prm)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok((mode, out.counts, out.planned, out.stopped, Vec::new()))
}

/// Set when the last known Salesforce usage is inside the API reserve (DESIGN 11).
pub fn reserve_message(ctx: &SyncContext) -> Option<String> {
    let usage = ctx.crm.usage()?;
    let reserve = u64::from(ctx.mapping.sync.api_reserve_percent);
    if usage.max == 0 || usage.used * 100 < usage.max * (100 - reserve) {
        return None;
    }
    Some(format!(
        "Salesforce API usage is {}/{} today, inside the {}% reserve; the run stopped and resumes on the next run",
        usage.used, usage.max, reserve
    ))
}

/// Where a run reads from: its mode (the first run of an integration is full, and a full
/// run first checks the mapping against Salesforce) and each side's change window (its
/// cursor less the overlap; None reads everything).
pub(crate) struct Window {
    pub mode: RunMode,
    pub crm_cursor: Option<DateTime<Utc>>,
    pub prm_cursor: Option<DateTime<Utc>>,
    pub crm_since: Option<DateTime<Utc>>,
    pub prm_since: Option<DateTime<Utc>>,
}

pub(crate) async fn read_window(
    ctx: &SyncContext,
    integration: Integration,
    spec: &ObjectSpec,
    requested: RunMode,
) -> Result<Window, String> {
    let crm_cursor = ctx
        .store
        .cursor(integration, CRM_SIDE)
        .await
        .map_err(|e| e.to_string())?;
    let prm_cursor = ctx
        .store
        .cursor(integration, PRM_SIDE)
        .await
        .map_err(|e| e.to_string())?;
    let mode = if crm_cursor.is_none() || prm_cursor.is_none() {
        RunMode::Full
    } else {
        requested
    };
    if mode == RunMode::Full {
        crate::check::check_mapping(ctx, spec).await?;
    }
    let overlap = Duration::seconds(i64::from(ctx.mapping.sync.overlap_seconds));
    let (crm_since, prm_since) = match mode {
        RunMode::Full => (None, None),
        RunMode::Incremental => (
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
    })
}

/// Reads records of one object pair by id on both sides (Salesforce rows deleted ones
/// included); an empty list costs no call.
pub(crate) async fn fetch_by_ids(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    crm_ids: &[String],
    prm_ids: &[String],
) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), PortError> {
    let crm = if crm_ids.is_empty() {
        Vec::new()
    } else {
        ctx.crm
            .fetch(spec.crm_object(), &spec.crm_fields(), crm_ids)
            .await?
    };
    let prm = if prm_ids.is_empty() {
        Vec::new()
    } else {
        ctx.prm.fetch(spec.prm_collection(), prm_ids).await?
    };
    Ok((crm, prm))
}

/// The people of organizations linked since the last people run (`pending`, as (PRM id,
/// Salesforce Id) pairs): their Contacts (with `fields`) and their PRM people, tombstones
/// included: one `AccountId IN (...)` read, and one PRM call per organization.
pub(crate) async fn people_of_pending(
    ctx: &SyncContext,
    fields: &[String],
    pending: &[(String, String)],
) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), PortError> {
    let accounts: Vec<String> = pending.iter().map(|(_, c)| c.clone()).collect();
    let crm = ctx
        .crm
        .find(
            ObjectKind::Person.crm_object(),
            fields,
            "AccountId",
            &accounts,
        )
        .await?;
    let mut prm = Vec::new();
    for (org, _) in pending {
        prm.extend(ctx.prm.people_of_organization(org).await?);
    }
    Ok((crm, prm))
}

fn failed(mut report: RunReport, message: String) -> RunReport {
    report.status = "failed".into();
    report.message = Some(message);
    report
}

/// A run-level Integration Log entry.
pub fn entry(
    run_id: &str,
    integration: Integration,
    code: LogCode,
    message: String,
    details: Value,
) -> LogEntry {
    LogEntry {
        // Time-ordered (UUIDv7): a log's id index grows at its end.
        id: uuid::Uuid::now_v7().to_string(),
        time: Utc::now(),
        run_id: run_id.to_string(),
        integration,
        level: code.level(),
        code,
        object: None,
        crm_id: None,
        prm_id: None,
        link: None,
        message,
        fix: code.fix().to_string(),
        details,
        acknowledged: false,
    }
}

/// A record named by the operator.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordRef {
    /// A Salesforce record of the object this kind syncs with.
    Crm(ObjectKind, String),
    /// A PRM record.
    Prm(ObjectKind, String),
}

/// Syncs one record now ("sync-record"): reads it and its linked counterpart, runs the
/// pass on just them (rejected before or not), and records the run like any other. The
/// cursors do not move.
pub async fn sync_record(ctx: &SyncContext, record: &RecordRef, dry_run: bool) -> RunReport {
    let kind = match record {
        RecordRef::Crm(k, _) | RecordRef::Prm(k, _) => *k,
    };
    let integration = match kind {
        ObjectKind::Organization => Integration::Organizations,
        ObjectKind::Person => Integration::People,
        ObjectKind::Deal => Integration::Deals,
    };
    let run_id = uuid::Uuid::new_v4().to_string();
    let mut report = RunReport {
        run_id: run_id.clone(),
        integration,
        mode: "record".into(),
        dry_run,
        status: "succeeded".into(),
        counts: Counts::default(),
        message: None,
        planned: Vec::new(),
    };
    let until = Utc::now() + ctx.lease_ttl;
    match ctx
        .store
        .acquire_lease(integration, &ctx.holder, until)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            report.status = "skipped_lease_held".into();
            report.message = Some(format!(
                "a {integration} run is in progress; try again when it ends"
            ));
            return report;
        }
        Err(e) => return failed(report, e.to_string()),
    }
    let result = sync_one(ctx, kind, record, &run_id, dry_run).await;
    let _ = ctx.store.release_lease(integration, &ctx.holder).await;
    match result {
        Ok((counts, planned, log, found)) => {
            report.counts = counts;
            report.planned = planned;
            if !found {
                report.status = "not_found".into();
                report.message = Some("no such record on either side".into());
            }
            if let Err(e) = crate::store::record_log(ctx.store.as_ref(), &log).await {
                return failed(report, format!("could not write the Integration Log: {e}"));
            }
            report
        }
        Err(message) => failed(report, message),
    }
}

type OneOutcome = (
    Counts,
    Vec<crate::report::PlannedWrite>,
    Vec<LogEntry>,
    bool,
);

async fn sync_one(
    ctx: &SyncContext,
    kind: ObjectKind,
    record: &RecordRef,
    run_id: &str,
    dry_run: bool,
) -> Result<OneOutcome, String> {
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let (crm_ids, prm_ids) = match record {
        RecordRef::Crm(_, id) => {
            let links = ctx
                .store
                .find_links(kind, std::slice::from_ref(id), &[])
                .await
                .map_err(|e| e.to_string())?;
            (
                vec![id.clone()],
                links.into_iter().map(|l| l.prm_id).collect::<Vec<_>>(),
            )
        }
        RecordRef::Prm(_, id) => {
            let links = ctx
                .store
                .find_links(kind, &[], std::slice::from_ref(id))
                .await
                .map_err(|e| e.to_string())?;
            (
                links.into_iter().map(|l| l.crm_id).collect::<Vec<_>>(),
                vec![id.clone()],
            )
        }
    };
    let (crm, prm) = fetch_by_ids(ctx, &spec, &crm_ids, &prm_ids)
        .await
        .map_err(|e| e.to_string())?;
    let found = !crm.is_empty() || !prm.is_empty();
    let input = PassInput {
        crm,
        prm,
        full: false,
        retry_rejected: true,
        ..Default::default()
    };
    let out = run_pass(ctx, kind, run_id, dry_run, input)
        .await
        .map_err(|e| match e {
            PassError::Port(p) => p.to_string(),
            PassError::Store(s) => s.to_string(),
        })?;
    Ok((out.counts, out.planned, out.log, found))
}
