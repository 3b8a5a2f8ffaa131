//! `sync-worker`: syncs the chunks of an SQS batch, a few at a time, and reports the ones
//! to hand out again (`ReportBatchItemFailures`). A malformed message is logged and
//! reported failed, so after the queue's maxReceiveCount it rests in the dead-letter
//! queue; it never fails its neighbours.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use futures::StreamExt;
use prmsync_engine::distributed::{sync_chunk, Chunk};
use prmsync_engine::store::record_log;
use prmsync_mapping::LogCode;

use crate::Deps;

/// Chunks synced at once by one invocation.
pub const CONCURRENCY: usize = 4;

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let results: Vec<(String, bool)> = futures::stream::iter(event.records.into_iter().map(|message| async move {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.unwrap_or_default();
        let chunk: Chunk = match serde_json::from_str(&body) {
            Ok(c) => c,
            Err(e) => {
                let entry = prmsync_engine::run::entry(
                    &format!("message-{id}"),
                    prmsync_mapping::Integration::Organizations,
                    LogCode::QueueMessageMalformed,
                    format!("queue message {id} is not a sync chunk ({e}); it goes to the dead-letter queue after its retries"),
                    serde_json::json!({"message_id": id, "body": body.chars().take(500).collect::<String>()}),
                );
                let _ = record_log(deps.ctx.store.as_ref(), &[entry]).await;
                return (id, false);
            }
        };
        match sync_chunk(&deps.ctx, &chunk).await {
            Ok(report) => {
                tracing::info!(
                    message_id = id.as_str(),
                    run_id = chunk.run_id.as_str(),
                    integration = chunk.integration.as_str(),
                    code = "chunk_synced",
                    records = chunk.crm_ids.len() + chunk.prm_ids.len(),
                    writes = report.counts.writes(),
                    errors = report.counts.errors
                );
                (id, true)
            }
            Err(e) => {
                let entry = prmsync_engine::run::entry(
                    &chunk.run_id,
                    chunk.integration,
                    LogCode::ChunkRetried,
                    format!("queue message {id}: {e}"),
                    serde_json::json!({"message_id": id, "crm_ids": chunk.crm_ids, "prm_ids": chunk.prm_ids}),
                );
                let _ = record_log(deps.ctx.store.as_ref(), &[entry]).await;
                (id, false)
            }
        }
    }))
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
