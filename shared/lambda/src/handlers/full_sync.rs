//! `full-sync`: plans the runs of organizations and people and queues their chunks (hourly,
//! or by hand with `{"integration", "mode", "dry_run"}`). Deals are `deal-import`'s alone.
//! An `all` run plans organizations first; its people are planned when the workers have
//! synced the organizations (the worker that closes the organizations run invokes this
//! function with `{"integration": "people", "mode"}`), so people match within linked
//! organizations as on one machine. A run that would not finish planning before the
//! invocation's deadline stores its checkpoint and invokes the function again with
//! `{"integration", "continue_run": "<run id>"}`.

use std::time::Instant;

use prmsync_engine::planner::{plan_run, InvocationLimit, PlanRequest, PlanStatus};
use prmsync_engine::{EngineError, FailureClass};
use prmsync_mapping::Integration;
use serde_json::{json, Map, Value};

use crate::payload::{parse, PayloadError};
use crate::Deps;

/// Integrations this function plans (`all`); deals are deal-import's.
pub const INTEGRATIONS: &[Integration] = &[Integration::Organizations, Integration::People];

/// Why the invocation failed. The Lambda reports it as an error whose type names the
/// failure class (`Prmsync.Setup`, `Prmsync.Transient`, ...; see [`super::error_type`]), so
/// an alarm or a retry policy can tell a setup to fix from an outage to wait out.
#[derive(Debug, thiserror::Error)]
pub enum FullSyncError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("{integration}: {source}")]
    Run {
        integration: Integration,
        source: EngineError,
    },
    /// The function could not invoke itself to carry a run on; the checkpoint is stored
    /// and the next scheduled invocation carries it on.
    #[error("{integration}: {message}")]
    Relaunch {
        integration: Integration,
        message: String,
    },
}

impl FullSyncError {
    /// The failure class, in the words of [`prmsync_engine::FailureClass`]; a payload
    /// error is the caller's.
    pub fn error_type(&self) -> String {
        match self {
            FullSyncError::Payload(_) => "Prmsync.Payload".into(),
            FullSyncError::Run { source, .. } => super::error_type(source.class()),
            FullSyncError::Relaunch { .. } => super::error_type(FailureClass::Transient),
        }
    }
}

impl From<FullSyncError> for lambda_runtime::Diagnostic {
    fn from(e: FullSyncError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.error_type(),
            error_message: e.to_string(),
        }
    }
}

/// Plans with no time limit (local runs and tests).
pub async fn handle(deps: &Deps, payload: Value) -> Result<Value, FullSyncError> {
    handle_within(deps, payload, InvocationLimit::UNLIMITED).await
}

/// Plans within `limit`; integrations that are unfinished or not started when it runs
/// out go on in new invocations.
pub async fn handle_within(
    deps: &Deps,
    payload: Value,
    limit: InvocationLimit,
) -> Result<Value, FullSyncError> {
    let request = parse(&payload, INTEGRATIONS)?;
    let run_id = request
        .run_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let ctx = &deps.ctx;
    let queue = (!request.dry_run).then_some(deps.queue.as_ref());
    let mut out = Map::new();
    // In an `all` run people follow organizations once these are synced.
    let chained = !request.dry_run
        && request.continue_run.is_none()
        && request.integrations.contains(&Integration::Organizations)
        && request.integrations.contains(&Integration::People);
    for integration in request.integrations {
        let name = integration.as_str();
        if chained && integration == Integration::People {
            let organizations = out
                .get(Integration::Organizations.as_str())
                .and_then(|o| o.get("status"))
                .and_then(Value::as_str);
            if matches!(
                organizations,
                // A run that closed at once ("finished") lets people go now.
                Some("queued" | "continues" | "continues_on_next_run")
            ) {
                out.insert(name.into(), json!({"status": "after_organizations"}));
                continue;
            }
        }
        let past_deadline = limit.deadline.is_some_and(|d| Instant::now() >= d);
        if past_deadline && !request.dry_run && deps.relaunch.is_some() {
            // No time left for this one: a fresh invocation starts it (the whole `all`
            // run, when it is its first integration, so that people still follow).
            let target = if chained { "all" } else { name };
            let mut next = json!({"integration": target, "mode": request.mode.as_str()});
            if request.allow_mass_change {
                next["allow_mass_change"] = json!(true);
            }
            let status = relaunch(deps, integration, &next).await?;
            out.insert(name.into(), json!({"status": status}));
            continue;
        }
        let then = if chained && integration == Integration::Organizations {
            vec![Integration::People]
        } else {
            Vec::new()
        };
        let plan = PlanRequest {
            integration,
            mode: request.mode,
            run_id: run_id.clone(),
            limit,
            continue_run: request.continue_run.clone(),
            then,
            allow_mass_change: request.allow_mass_change,
        };
        let report = plan_run(ctx, queue, &plan)
            .await
            .map_err(|source| FullSyncError::Run {
                integration,
                source,
            })?;
        let mut status = match report.status {
            PlanStatus::Queued => "queued",
            PlanStatus::Finished => "finished",
            PlanStatus::Continues => "continues",
            PlanStatus::Planned => "planned",
            PlanStatus::Waiting => "waiting",
            PlanStatus::Skipped => "skipped",
        };
        if report.status == PlanStatus::Continues {
            let next = json!({"integration": name, "continue_run": report.run_id});
            status = relaunch(deps, integration, &next).await?;
        }
        tracing::info!(
            run_id = report.run_id.as_str(),
            integration = name,
            code = match report.status {
                PlanStatus::Skipped | PlanStatus::Waiting => "run_skipped",
                PlanStatus::Continues => "run_continued",
                _ => "run_queued",
            },
            chunks = report.chunks,
            records = report.records,
            mode = report.mode.as_str(),
            message = report.message.as_deref().unwrap_or("")
        );
        out.insert(
            name.into(),
            json!({
                "status": status,
                "run_id": report.run_id,
                "mode": report.mode,
                "chunks": report.chunks,
                "records": report.records,
                "run_chunks": report.run_chunks,
                "run_records": report.run_records,
                "invocations": report.invocations,
                "message": report.message,
            }),
        );
    }
    Ok(json!({"run_id": run_id, "dry_run": request.dry_run, "integrations": out}))
}

/// Invokes the function again for `integration`; without a way to (outside Lambda) the
/// checkpoint waits for the next run.
async fn relaunch(
    deps: &Deps,
    integration: Integration,
    payload: &Value,
) -> Result<&'static str, FullSyncError> {
    let Some(relaunch) = &deps.relaunch else {
        return Ok("continues_on_next_run");
    };
    relaunch
        .relaunch(payload)
        .await
        .map_err(|message| FullSyncError::Relaunch {
            integration,
            message,
        })?;
    Ok("continues")
}
