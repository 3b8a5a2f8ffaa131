//! `deal-import`: runs the deals integration in one invocation (hourly, or by hand like
//! full-sync). Deal volumes are small; the import reads its facts in batches.

use prmsync_engine::{run_integration, RunOptions};
use prmsync_mapping::Integration;
use serde_json::{json, Value};

use crate::payload::{parse, PayloadError};
use crate::Deps;

pub async fn handle(deps: &Deps, payload: Value) -> Result<Value, PayloadError> {
    let request = parse(&payload, &[Integration::Deals])?;
    let report = run_integration(
        &deps.ctx,
        Integration::Deals,
        RunOptions {
            mode: request.mode,
            dry_run: request.dry_run,
            run_id: request.run_id.clone(),
            allow_mass_change: request.allow_mass_change,
        },
    )
    .await;
    tracing::info!(
        run_id = report.run_id.as_str(),
        integration = "deals",
        code = "run_finished",
        status = report.status.as_str(),
        failure = report.failure.map(super::error_type).unwrap_or_default(),
        created = report.counts.created.prm,
        errors = report.counts.errors
    );
    Ok(
        json!({"run_id": report.run_id, "status": report.status, "mode": report.mode, "message": report.message, "failure": report.failure, "counts": report.counts}),
    )
}
