//! `full-sync`: plans each integration's run and queues its chunks (hourly, or by hand with
//! `{"integration", "mode", "dry_run"}`).

use prmsync_engine::distributed::{commit_plan, plan_run};
use prmsync_mapping::Integration;
use serde_json::{json, Map, Value};

use crate::payload::{parse, PayloadError};
use crate::Deps;

/// Integrations `all` covers here.
pub const INTEGRATIONS: &[Integration] = &[
    Integration::Organizations,
    Integration::People,
    Integration::Deals,
];

/// Why the invocation failed (the Lambda reports it as an error).
#[derive(Debug, thiserror::Error)]
pub enum FullSyncError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("{integration}: {message}")]
    Run {
        integration: Integration,
        message: String,
    },
}

pub async fn handle(deps: &Deps, payload: Value) -> Result<Value, FullSyncError> {
    let request = parse(&payload, INTEGRATIONS)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let ctx = &deps.ctx;
    let mut out = Map::new();
    for integration in request.integrations {
        let plan = plan_run(ctx, integration, request.mode, &run_id)
            .await
            .map_err(|message| FullSyncError::Run {
                integration,
                message,
            })?;
        if let Some(reason) = &plan.skipped {
            tracing::warn!(
                run_id,
                integration = integration.as_str(),
                code = "run_skipped",
                message = reason.as_str()
            );
            out.insert(
                integration.as_str().into(),
                json!({"status": "skipped", "message": reason}),
            );
            continue;
        }
        if request.dry_run {
            let _ = ctx.store.release_lease(integration, &ctx.holder).await;
            out.insert(
                integration.as_str().into(),
                json!({"status": "planned", "mode": plan.mode, "chunks": plan.chunks.len(), "records": plan.records()}),
            );
            continue;
        }
        if let Err(e) = deps.queue.send(&plan.chunks).await {
            // Nothing moves: the next run reads the same changes again.
            let _ = ctx.store.release_lease(integration, &ctx.holder).await;
            return Err(FullSyncError::Run {
                integration,
                message: e.to_string(),
            });
        }
        commit_plan(ctx, &plan)
            .await
            .map_err(|message| FullSyncError::Run {
                integration,
                message,
            })?;
        tracing::info!(
            run_id,
            integration = integration.as_str(),
            code = "run_queued",
            chunks = plan.chunks.len(),
            records = plan.records(),
            mode = plan.mode.as_str()
        );
        out.insert(
            integration.as_str().into(),
            json!({"status": "queued", "mode": plan.mode, "chunks": plan.chunks.len(), "records": plan.records()}),
        );
    }
    Ok(json!({"run_id": run_id, "dry_run": request.dry_run, "integrations": out}))
}
