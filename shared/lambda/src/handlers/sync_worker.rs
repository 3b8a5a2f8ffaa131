//! `sync-worker`: works the chunks of an SQS batch, a few at a time, their Salesforce
//! updates written together ([`prmsync_engine::worker::work_chunks`]). Every chunk that could be read is done with
//! (synced, handed out again after a delay, or held in the retry set), so only a message
//! that is not a chunk, or whose outcome the state store could not record, is reported
//! failed (`ReportBatchItemFailures`): after the queue's maxReceiveCount a malformed
//! message rests in the dead-letter queue; it never fails its neighbours. A chunk that
//! closes its run starts the integrations planned after it (an `all` run's people).
//!
//! Salesforce change events (Change Data Capture through Event Relay and an EventBridge
//! rule, `docs/salesforce-setup.md`) arrive on the same queue: the records a batch of them
//! names are read fresh and synced as chunks ([`prmsync_engine::change_events`]).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use prmsync_engine::change_events;
use prmsync_engine::chunk::Chunk;
use prmsync_engine::context::entry;
use prmsync_engine::store::record_log;
use prmsync_engine::worker::{work_chunk, work_chunks, ClosedRun, Delivery};
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
    // Salesforce change events are gathered across the batch (one read per object);
    // everything else is a chunk.
    let mut changes = Vec::new();
    let mut messages = Vec::new();
    for message in event.records {
        let body = message.body.as_deref().unwrap_or_default();
        match change_events::parse(body) {
            Some(Ok(e)) => changes.push((message, e)),
            Some(Err(e)) => {
                let id = message.message_id.clone().unwrap_or_default();
                tracing::error!(
                    code = "change_event_malformed",
                    message_id = id.as_str(),
                    "{e}"
                );
                messages.push(message);
            }
            None => messages.push(message),
        }
    }
    let mut results = work(deps, messages).await;
    if !changes.is_empty() {
        results.extend(work_changes(deps, changes).await);
    }
    let mut response = SqsBatchResponse::default();
    for (id, ok) in results {
        if !ok {
            response.add_failure(id);
        }
    }
    response
}

/// Syncs the records a batch of change events names, read fresh (one read per object and
/// side per 200 records), as chunks: prmsync's own changes are dropped before any call,
/// an overflow runs its object soon. A message is reported failed only when a chunk with
/// its records could not be recorded.
async fn work_changes(
    deps: &Deps,
    changes: Vec<(SqsMessage, change_events::ChangeEvent)>,
) -> Vec<(String, bool)> {
    let ids: Vec<String> = changes
        .iter()
        .map(|(m, _)| m.message_id.clone().unwrap_or_default())
        .collect();
    let receive = changes
        .iter()
        .map(|(m, _)| receive_count(m))
        .max()
        .unwrap_or(1);
    let events: Vec<(usize, change_events::ChangeEvent)> = changes
        .into_iter()
        .enumerate()
        .map(|(i, (_, e))| (i, e))
        .collect();
    let batch = change_events::gather(&events, &deps.ctx.mapping.salesforce.client_name);
    let run_id = format!(
        "changes-{}",
        ids.first().map(String::as_str).unwrap_or("batch")
    );
    let mut failed = std::collections::BTreeSet::new();
    for (chunk, from) in change_events::chunks(&batch, &run_id) {
        let outcome = work_chunk(
            &deps.ctx,
            deps.queue.as_ref(),
            &chunk,
            Delivery {
                receive_count: receive,
            },
        )
        .await;
        if let Err(e) = outcome {
            tracing::error!(
                code = "chunk_not_recorded",
                run_id = run_id.as_str(),
                "{e}; the change events are delivered again"
            );
            failed.extend(from);
        }
    }
    for kind in &batch.overflow {
        run_soon(deps, *kind).await;
    }
    tracing::info!(
        code = "change_events_worked",
        run_id = run_id.as_str(),
        events = ids.len(),
        echoes = batch.echoes,
        records = batch.records.values().map(|(r, _)| r.len()).sum::<usize>(),
        overflow = batch.overflow.len(),
        other_objects = batch.other_objects,
        bad_ids = batch.bad_ids
    );
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| (id, !failed.contains(&i)))
        .collect()
}

/// An overflow event names no record: organizations and people are planned now by the
/// planner function (an incremental run reads what changed); deals wait for deal-import's
/// next scheduled run, which reads them the same way.
async fn run_soon(deps: &Deps, kind: prmsync_mapping::ObjectKind) {
    let integration = prmsync_engine::context::integration_of(kind);
    if super::full_sync::INTEGRATIONS.contains(&integration) {
        let payload = json!({"integration": integration.as_str(), "mode": "incremental"});
        if plan(deps, integration, &payload).await {
            tracing::info!(
                code = "change_overflow_planned",
                integration = integration.as_str()
            );
        }
        return;
    }
    tracing::warn!(
        code = "change_overflow_scheduled",
        integration = integration.as_str(),
        "too many {} changes for change events: the next scheduled run reads them",
        kind.crm_object()
    );
}

/// Asks the planner function for a run of `integration` (`payload`); true when invoked.
/// Without a planner (outside Lambda) or when the invocation fails, the next scheduled
/// run plans it.
async fn plan(
    deps: &Deps,
    integration: prmsync_mapping::Integration,
    payload: &serde_json::Value,
) -> bool {
    match &deps.relaunch {
        Some(planner) => match planner.relaunch(payload).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    code = "plan_not_started",
                    integration = integration.as_str(),
                    "{e}"
                );
                false
            }
        },
        None => {
            tracing::warn!(
                code = "plan_not_started",
                integration = integration.as_str(),
                "no planner function to invoke (PRMSYNC_FULL_SYNC_FUNCTION); the next scheduled run plans it"
            );
            false
        }
    }
}

/// Works the batch's chunk messages ([`work_chunks`]: their Salesforce updates written
/// together); false for a message that must be delivered again.
async fn work(deps: &Deps, messages: Vec<SqsMessage>) -> Vec<(String, bool)> {
    let mut results = Vec::new();
    let mut chunks = Vec::new();
    let mut ids = Vec::new();
    for message in messages {
        let id = message.message_id.clone().unwrap_or_default();
        let delivery = Delivery {
            receive_count: receive_count(&message),
        };
        let body = message.body.unwrap_or_default();
        match serde_json::from_str::<Chunk>(&body) {
            Ok(chunk) => {
                chunks.push((chunk, delivery));
                ids.push(id);
            }
            Err(e) => {
                let entry = entry(
                    &format!("message-{id}"),
                    prmsync_mapping::Integration::Organizations,
                    LogCode::QueueMessageMalformed,
                    format!("queue message {id} is not a sync chunk ({e}); it goes to the dead-letter queue after its retries"),
                    json!({"message_id": id, "bytes": body.len()}),
                );
                let _ = record_log(deps.ctx.store.as_ref(), &[entry]).await;
                results.push((id, false));
            }
        }
    }
    let reports = work_chunks(&deps.ctx, deps.queue.as_ref(), &chunks, CONCURRENCY).await;
    for ((id, (chunk, _)), report) in ids.into_iter().zip(&chunks).zip(reports) {
        match report {
            Ok(report) => {
                tracing::info!(
                    code = "chunk_worked",
                    message_id = id.as_str(),
                    run_id = chunk.run_id.as_str(),
                    integration = chunk.integration.as_str(),
                    chunk = chunk.number,
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
                results.push((id, true));
            }
            Err(e) => {
                tracing::error!(
                    code = "chunk_not_recorded",
                    message_id = id.as_str(),
                    run_id = chunk.run_id.as_str(),
                    failure = crate::handlers::error_type(
                        prmsync_engine::EngineError::from(e.clone()).class()
                    ),
                    "{e}; the message is delivered again"
                );
                results.push((id, false));
            }
        }
    }
    results
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
        plan(deps, *integration, &payload).await;
    }
}
