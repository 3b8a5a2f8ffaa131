//! A one-machine run of an integration (sync rules 2, 11 and 12 in `docs/sync-rules.md`):
//! the run frame around a sweep of both sides' changes, page by page ([`crate::sweep`]),
//! and `sync-record`.

use prmsync_mapping::{Integration, LogCode, ObjectKind};
use serde_json::Value;

use crate::context::{
    entry, fetch_by_ids, integration_of, reserve_message, RunOptions, SyncContext,
};
use crate::error::{During, EngineError};
use crate::frame::{mark_read_all, move_cursors, read_window, FrameKind, RunFrame};
use crate::objects::ObjectSpec;
use crate::pass::{run_pass, PassInput};
use crate::report::{Counts, RunReport, RunStatus};
use crate::retry::keep_failed;
use crate::store::LogEntry;
use crate::sweep::SweepWrites;

pub use crate::context::RunMode;

/// Runs one integration once and records what it did. Its log lines carry the run's
/// span (run id, integration, mode).
#[tracing::instrument(name = "run", skip_all, fields(
    integration = integration.as_str(),
    mode = options.mode.as_str(),
    run_id = tracing::field::Empty,
))]
pub async fn run_integration(
    ctx: &SyncContext,
    integration: Integration,
    options: RunOptions,
) -> RunReport {
    let run_id = options
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    tracing::Span::current().record("run_id", run_id.as_str());
    let frame = match RunFrame::open(
        ctx,
        integration,
        &run_id,
        options.mode,
        options.dry_run,
        FrameKind::Run,
    )
    .await
    {
        Ok(frame) => frame,
        Err(report) => return report,
    };
    let mut report = frame.report();
    // Its writes stop once its lease is lost to another run.
    let guarded = frame.guard(ctx);
    let log = match run_object(&guarded, integration, &options, &frame).await {
        Ok((mode, counts, planned, stopped, log)) => {
            report.mode = mode;
            report.counts = counts;
            report.planned = planned;
            if let Some(m) = stopped {
                report.status = RunStatus::Stopped;
                report.message = Some(m);
            }
            log
        }
        Err(e) => {
            report.fail(&e);
            Vec::new()
        }
    };
    lost_lease_fails(&frame, &mut report).await;
    frame.close(ctx, &mut report, log).await;
    report
}

/// A run whose lease another run took over fails, saying so (whatever error its refused
/// write raised on the way out).
async fn lost_lease_fails(frame: &RunFrame, report: &mut RunReport) {
    if frame.lease_lost() {
        if let Err(e) = frame.check_lease().await {
            report.fail(&e);
        }
    }
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
    frame: &RunFrame,
) -> Result<ObjectOutcome, EngineError> {
    let run_id = frame.run_id.as_str();
    let spec = ObjectSpec::new(integration.object(), &ctx.mapping);
    let window = read_window(ctx, integration, run_id, &spec, options.mode).await?;
    let mode = window.mode;
    if let Some(e) = &window.expired {
        crate::store::record_log(ctx.store.as_ref(), std::slice::from_ref(e))
            .await
            .during(|| "could not write the Integration Log".into())?;
    }
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
    let writes = if options.dry_run {
        SweepWrites::DryRun
    } else {
        SweepWrites::Make {
            allow_mass_change: options.allow_mass_change,
        }
    };
    let out = crate::sweep::sweep(ctx, integration, frame, writes, &window).await?;
    if !options.dry_run && out.stopped.is_none() {
        // Checkpoint: the cursors move only once every record read is done. Without any
        // record read, the cursor starts from the run's start so the next run is
        // incremental.
        // A reconcile never moves a cursor back (its newest record may be older than
        // the cursor, when the newest one left the scope).
        let to_be = |newest: Option<_>, cursor: Option<_>| {
            if mode == RunMode::Reconcile {
                newest.max(cursor)
            } else {
                newest.or(cursor)
            }
        };
        let crm = to_be(out.crm_newest, window.crm_cursor).unwrap_or(frame.started_at);
        let prm = to_be(out.prm_newest, window.prm_cursor).unwrap_or(frame.started_at);
        // Only while the lease is ours: a run that lost it leaves the cursors to the run
        // that holds it.
        frame.check_lease().await?;
        move_cursors(ctx, integration, crm, prm).await?;
        mark_read_all(ctx, integration, mode, frame.started_at).await?;
    }
    Ok((mode, out.counts, out.planned, out.stopped, Vec::new()))
}

/// A record named by the operator.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordRef {
    /// A Salesforce record of the object this kind syncs with.
    Crm(ObjectKind, String),
    /// A PRM record.
    Prm(ObjectKind, String),
}

/// Why a text does not name a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordRefError {
    #[error("`{0}` is not a PRM reference: write prm:organization:<id>, prm:person:<id> or prm:deal:<id>")]
    NotPrmReference(String),
    #[error("unknown PRM object `{kind}` in `{text}`: use organization, person or deal")]
    UnknownObject { kind: String, text: String },
    #[error("`{0}` has no id after the object")]
    NoId(String),
    #[error("`{0}` is neither a Salesforce Id (15 or 18 letters and digits) nor a PRM reference (prm:organization:<id>)")]
    Neither(String),
    #[error("`{text}` starts with {prefix}, which is not an Account (001), Contact (003) or Opportunity (006)")]
    UnknownPrefix { text: String, prefix: String },
    #[error("`{0}` is not a Salesforce Id: its last 3 characters cannot be the case check of the first 15 (copy the Id again, or give its 15-character form)")]
    BadChecksum(String),
}

impl RecordRef {
    /// Reads `prm:<organization|person|deal>:<id>` or a Salesforce Id (its object from the
    /// key prefix: 001 Account, 003 Contact, 006 Opportunity; a 15-character Id becomes the
    /// 18-character one that links use).
    pub fn parse(s: &str) -> Result<Self, RecordRefError> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("prm:") {
            let (kind, id) = rest
                .split_once(':')
                .ok_or_else(|| RecordRefError::NotPrmReference(s.to_string()))?;
            let kind = ObjectKind::parse(kind).ok_or_else(|| RecordRefError::UnknownObject {
                kind: kind.to_string(),
                text: s.to_string(),
            })?;
            if id.is_empty() {
                return Err(RecordRefError::NoId(s.to_string()));
            }
            return Ok(RecordRef::Prm(kind, id.to_string()));
        }
        let valid =
            (s.len() == 15 || s.len() == 18) && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid {
            return Err(RecordRefError::Neither(s.to_string()));
        }
        let kind = match &s[..3] {
            "001" => ObjectKind::Organization,
            "003" => ObjectKind::Person,
            "006" => ObjectKind::Deal,
            p => {
                return Err(RecordRefError::UnknownPrefix {
                    text: s.to_string(),
                    prefix: p.to_string(),
                })
            }
        };
        let id = prmsync_mapping::sfid::canonical_id(s)
            .ok_or_else(|| RecordRefError::BadChecksum(s.to_string()))?;
        Ok(RecordRef::Crm(kind, id))
    }

    /// The kind of record named.
    pub fn kind(&self) -> ObjectKind {
        match self {
            RecordRef::Crm(k, _) | RecordRef::Prm(k, _) => *k,
        }
    }

    /// A queue message naming this record alone (a PRM notification, `sync-record --aws`,
    /// the console's Sync Now on AWS): a worker reads it and its linked partner fresh and
    /// syncs them as a chunk, so a repeated or late message does no harm.
    pub fn chunk(&self, run_id: &str) -> crate::chunk::Chunk {
        let (crm_ids, prm_ids) = match self {
            RecordRef::Crm(_, id) => (vec![id.clone()], Vec::new()),
            RecordRef::Prm(_, id) => (Vec::new(), vec![id.clone()]),
        };
        crate::chunk::Chunk::refs(run_id, integration_of(self.kind()), crm_ids, prm_ids)
    }

    /// The text [`parse`](Self::parse) reads back.
    pub fn text(&self) -> String {
        match self {
            RecordRef::Crm(_, id) => id.clone(),
            RecordRef::Prm(kind, id) => format!("prm:{}:{id}", kind.as_str()),
        }
    }
}

/// Syncs one record now ("sync-record"): reads it and its linked counterpart, runs the
/// pass on just them (rejected before or not), and records the run like any other. The
/// cursors do not move.
#[tracing::instrument(name = "record", skip_all, fields(record = ?record, run_id = tracing::field::Empty))]
pub async fn sync_record(ctx: &SyncContext, record: &RecordRef, dry_run: bool) -> RunReport {
    let kind = match record {
        RecordRef::Crm(k, _) | RecordRef::Prm(k, _) => *k,
    };
    let run_id = uuid::Uuid::new_v4().to_string();
    tracing::Span::current().record("run_id", run_id.as_str());
    let frame = match RunFrame::open(
        ctx,
        integration_of(kind),
        &run_id,
        RunMode::Record,
        dry_run,
        FrameKind::Record,
    )
    .await
    {
        Ok(frame) => frame,
        Err(report) => return report,
    };
    let mut report = frame.report();
    let guarded = frame.guard(ctx);
    let log = match sync_one(&guarded, kind, record, &run_id, dry_run).await {
        Ok((counts, planned, log, found)) => {
            report.counts = counts;
            report.planned = planned;
            if !found {
                report.status = RunStatus::NotFound;
                report.message = Some("no such record on either side".into());
            }
            log
        }
        Err(e) => {
            report.fail(&e);
            Vec::new()
        }
    };
    lost_lease_fails(&frame, &mut report).await;
    frame.close(ctx, &mut report, log).await;
    report
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
) -> Result<OneOutcome, EngineError> {
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let (crm_ids, prm_ids) = match record {
        RecordRef::Crm(_, id) => {
            let links = ctx
                .store
                .find_links(kind, std::slice::from_ref(id), &[])
                .await?;
            (
                vec![id.clone()],
                links.into_iter().map(|l| l.prm_id).collect::<Vec<_>>(),
            )
        }
        RecordRef::Prm(_, id) => {
            let links = ctx
                .store
                .find_links(kind, &[], std::slice::from_ref(id))
                .await?;
            (
                links.into_iter().map(|l| l.crm_id).collect::<Vec<_>>(),
                vec![id.clone()],
            )
        }
    };
    let (crm, prm) = fetch_by_ids(ctx, &spec, &crm_ids, &prm_ids).await?;
    let found = !crm.is_empty() || !prm.is_empty();
    let input = PassInput {
        crm,
        prm,
        full: false,
        retry_rejected: true,
        ..Default::default()
    };
    let out = run_pass(ctx, kind, run_id, dry_run, input).await?;
    if !dry_run {
        // On demand is one way out of the retry set: synced, the record leaves it (parked
        // or not); failed again for a passing reason, it stays with one attempt more.
        let ids: Vec<String> = crm_ids.into_iter().chain(prm_ids).collect();
        keep_failed(
            ctx,
            None,
            run_id,
            integration_of(kind),
            &out.failed,
            out.setup.as_ref(),
            &ids,
        )
        .await?;
    }
    Ok((out.counts, out.planned, out.log, found))
}
