//! Each integration's state as the Sync Manager shows it (the page and `prmsync status`):
//! paused or active, its last run, cursors, links, open errors and the run in progress.

use prmsync_engine::context::{CRM_SIDE, PRM_SIDE};
use prmsync_engine::store::{LogFilter, Store, StoreError};
use prmsync_mapping::{Integration, Level, MappingConfig};
use serde_json::{json, Value};

/// One row per integration, as JSON (the `prmsync status --json` shape).
pub async fn rows(store: &dyn Store, mapping: &MappingConfig) -> Result<Vec<Value>, StoreError> {
    let mut rows = Vec::new();
    for integration in Integration::ALL {
        let paused = store.is_paused(integration).await?;
        let last = store.last_run(integration).await?;
        let unacked = store
            .entries(&LogFilter {
                integration: Some(integration),
                min_level: Some(Level::Error),
                unacknowledged: true,
                ..Default::default()
            })
            .await?
            .len();
        let links = store.count_links(integration.object()).await?;
        let in_progress = run_in_progress(store, integration).await?;
        rows.push(json!({
            "integration": integration.as_str(),
            "state": if paused { "paused" } else { "active" },
            "schedule": mapping.sync.schedule,
            "last_run": last.map(|r| json!({
                "run_id": r.run_id, "started_at": r.started_at, "finished_at": r.finished_at,
                "mode": r.mode, "status": r.status, "counts": r.counts,
            })),
            "cursor": {
                "crm": store.cursor(integration, CRM_SIDE).await?,
                "prm": store.cursor(integration, PRM_SIDE).await?,
            },
            "reconcile": {
                "setting": mapping.sync.reconcile,
                // The start of the last run that read everything (reconcile or full).
                "last": store.cursor(integration, prmsync_engine::frame::READ_ALL_MARK).await?,
            },
            "unacknowledged_errors": unacked,
            "links": links,
            "run_in_progress": in_progress,
        }));
    }
    Ok(rows)
}

/// The unfinished run of an integration (its planner checkpoint), with its chunks done
/// once every chunk is queued; null when there is none.
async fn run_in_progress(store: &dyn Store, integration: Integration) -> Result<Value, StoreError> {
    let Some(cp) = store.checkpoint(integration).await? else {
        return Ok(Value::Null);
    };
    let chunks_done = if cp.planned {
        let chunks = store.run_chunks(integration, &cp.run_id).await?;
        Some(chunks.iter().filter(|c| c.done).count() as u64)
    } else {
        None
    };
    Ok(json!({
        "run_id": cp.run_id,
        "mode": cp.mode,
        "started_at": cp.started_at,
        "planned": cp.planned,
        "chunks_queued": cp.chunks,
        "chunks_done": chunks_done,
        "records_queued": cp.records,
        "invocations": cp.invocations,
    }))
}
