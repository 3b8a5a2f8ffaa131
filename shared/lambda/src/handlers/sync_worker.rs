//! `sync-worker`: works the chunks of an SQS batch, a few at a time
//! ([`prmsync_engine::worker::work_chunk`]). Every chunk that could be read is done with
//! (synced, handed out again after a delay, or held in the retry set), so only a message
//! that is not a chunk, or whose outcome the state store could not record, is reported
//! failed (`ReportBatchItemFailures`): after the queue's maxReceiveCount a malformed
//! message rests in the dead-letter queue; it never fails its neighbours. A chunk that
//! closes its run starts the integrations planned after it (an `all` run's people).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use prmsync_engine::chunk::Chunk;
use prmsync_engine::context::entry;
use prmsync_engine::store::record_log;
use prmsync_engine::worker::{work_chunk, ClosedRun, Delivery};
use prmsync_mapping::LogCode;
use serde_json::json;

use crate::Deps;

/// Chunks synced at once by one invocation.
pub const CONCURRENCY: usize = 4;

/// SQS's count of deliveries of a message (1 the first time).
fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1)
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let results: Vec<(String, bool)> = futures::stream::iter(
        event
            .records
            .into_iter()
            .map(|message| async move { work(deps, message).await }),
    )
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    let mut response = SqsBatchResponse::default();
    for (id, ok) in results {
        if !ok {
            response.add_failure(id);
        }
    }
    response
}

/// Works one message; false when it must be delivered again.
async fn work(deps: &Deps, message: SqsMessage) -> (String, bool) {
    let id = message.message_id.clone().unwrap_or_default();
    let delivery = Delivery {
        receive_count: receive_count(&message),
    };
    let body = message.body.unwrap_or_default();
    let chunk: Chunk = match serde_json::from_str(&body) {
        Ok(c) => c,
        Err(e) => {
            let entry = entry(
                &format!("message-{id}"),
                prmsync_mapping::Integration::Organizations,
                LogCode::QueueMessageMalformed,
                format!("queue message {id} is not a sync chunk ({e}); it goes to the dead-letter queue after its retries"),
                json!({"message_id": id, "bytes": body.len()}),
            );
            let _ = record_log(deps.ctx.store.as_ref(), &[entry]).await;
            return (id, false);
        }
    };
    // The engine's `chunk` span (run id, integration, chunk number) nests in this one.
    let span = tracing::info_span!("message", message_id = id.as_str());
    let _guard = span.enter();
    match work_chunk(&deps.ctx, deps.queue.as_ref(), &chunk, delivery).await {
        Ok(report) => {
            tracing::info!(
                code = "chunk_worked",
                verdict = ?report.verdict,
                records = chunk.len(),
                writes = report.counts.writes(),
                errors = report.counts.errors,
                retried = report.retried,
                parked = report.parked
            );
            if let Some(closed) = report.closed {
                start_next(deps, &closed).await;
            }
            (id, true)
        }
        Err(e) => {
            tracing::error!(
                code = "chunk_not_recorded",
                failure = crate::handlers::error_type(
                    prmsync_engine::EngineError::from(e.clone()).class()
                ),
                "{e}; the message is delivered again"
            );
            (id, false)
        }
    }
}

/// A closed run's follow-up integrations are planned by the planner function; without
/// one (outside Lambda) the next scheduled run plans them.
async fn start_next(deps: &Deps, closed: &ClosedRun) {
    tracing::info!(
        code = "run_finished",
        run_id = closed.report.run_id.as_str(),
        integration = closed.report.integration.as_str(),
        mode = closed.report.mode.as_str(),
        writes = closed.report.counts.writes(),
        errors = closed.report.counts.errors,
        drift = (closed.report.mode == prmsync_engine::RunMode::Reconcile)
            .then_some(closed.report.counts.drift)
    );
    for integration in &closed.then {
        let mut payload =
            json!({"integration": integration.as_str(), "mode": closed.mode.as_str()});
        if closed.allow_mass_change {
            payload["allow_mass_change"] = json!(true);
        }
        match &deps.relaunch {
            Some(planner) => {
                if let Err(e) = planner.relaunch(&payload).await {
                    tracing::error!(code = "plan_not_started", integration = integration.as_str(), "{e}");
                }
            }
            None => tracing::warn!(
                code = "plan_not_started",
                integration = integration.as_str(),
                "no planner function to invoke (PRMSYNC_FULL_SYNC_FUNCTION); the next scheduled run plans it"
            ),
        }
    }
}
