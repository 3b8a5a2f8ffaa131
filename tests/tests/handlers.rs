//! The Lambda handlers with real event shapes: scheduled and manual invocations, an SQS
//! batch with a malformed body and a duplicate;
//! the webhook has its own tests (`webhook.rs`).
//! The state is SQLite and the queue a list here; the DynamoDB and SQS adapters have their
//! own tests against moto.

mod common;

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use common::{Harness, ListQueue, Relaunches};
use prmsync_engine::chunk::Chunk;
use prmsync_engine::planner::{plan_run, InvocationLimit, PlanRequest, PlanStatus};
use prmsync_engine::RunMode;
use prmsync_lambda::handlers::{deal_import, full_sync, sync_worker};
use prmsync_lambda::Deps;
use prmsync_mapping::{Integration, MappingConfig};
use prmsync_simulators::prm::Collection;
use serde_json::{json, Value};

/// The harness, its Salesforce client reading queries in pages of `batch` records, with an
/// Account and its Contact in Salesforce and an organization in the PRM; and the functions'
/// dependencies over its context and a list queue. Keep the harness alive: it serves the
/// simulators.
async fn seeded(batch: u32) -> (Harness, Arc<ListQueue>, Deps) {
    let h = Harness::with_query_page(MappingConfig::default(), batch).await;
    let acc = h.account("Queued Co", Some("Active Partner"), json!({}));
    h.contact(&acc, "Wanda", "Worker", "w@queued.example");
    h.org("partner", "active", "From PRM");
    let queue = Arc::new(ListQueue::default());
    let deps = h.deps(queue.clone());
    (h, queue, deps)
}

fn sqs_event(chunks: &[Chunk]) -> SqsEvent {
    let records: Vec<Value> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"messageId": format!("m-{i}"), "body": serde_json::to_string(c).unwrap(), "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({"Records": records})).unwrap()
}

#[tokio::test]
async fn a_scheduled_event_queues_chunks_that_workers_drain() {
    let (h, queue, mut deps) = seeded(2000).await;
    let planner = Arc::new(Relaunches::default());
    deps.relaunch = Some(planner.clone());
    let scheduled: Value = serde_json::from_str(include_str!(
        "../../shared/lambda/tests/fixtures/scheduled-event.json"
    ))
    .unwrap();
    let out = full_sync::handle(&deps, scheduled).await.unwrap();
    assert_eq!(
        out["integrations"]["organizations"]["status"], "queued",
        "{out}"
    );
    assert_eq!(
        out["integrations"]["organizations"]["mode"], "full",
        "first run"
    );
    assert_eq!(
        out["integrations"]["people"]["status"], "after_organizations",
        "{out}"
    );
    assert!(
        out["integrations"].get("deals").is_none(),
        "deals are deal-import's: {out}"
    );
    let chunks = std::mem::take(&mut *queue.0.lock().unwrap());
    assert!(!chunks.is_empty());
    let response = sync_worker::handle(&deps, sqs_event(&chunks)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    assert_eq!(h.prm.list(Collection::Organizations).len(), 2);
    // the worker that closed the organizations run asked the planner for people
    let next = std::mem::take(&mut *planner.0.lock().unwrap());
    assert_eq!(next, vec![json!({"integration": "people", "mode": "full"})]);
    let out = full_sync::handle(&deps, next[0].clone()).await.unwrap();
    assert_eq!(out["integrations"]["people"]["status"], "queued", "{out}");
    let chunks = std::mem::take(&mut *queue.0.lock().unwrap());
    let response = sync_worker::handle(&deps, sqs_event(&chunks)).await;
    assert!(response.batch_item_failures.is_empty());
    let entries = deps
        .ctx
        .store
        .entries(&prmsync_engine::LogFilter::default())
        .await
        .unwrap();
    assert_eq!(
        h.prm.list(Collection::People).len(),
        1,
        "{:#?}",
        entries
            .iter()
            .map(|e| (e.code.as_str(), e.message.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(h.sf.records("Account").len(), 2);
    // a second scheduled run queues only the echoes, which change nothing
    queue.0.lock().unwrap().clear();
    full_sync::handle(&deps, json!({})).await.unwrap();
    let chunks = queue.0.lock().unwrap().clone();
    let before = h.prm.api_calls().writes();
    let response = sync_worker::handle(&deps, sqs_event(&chunks)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.prm.api_calls().writes(), before);
}

#[tokio::test]
async fn a_malformed_message_fails_alone_and_a_duplicate_changes_nothing() {
    let (h, queue, deps) = seeded(2000).await;
    let report = plan_run(
        &deps.ctx,
        Some(queue.as_ref()),
        &PlanRequest::new(Integration::Organizations, RunMode::Full, "r1"),
    )
    .await
    .unwrap();
    assert_eq!(report.status, PlanStatus::Queued);
    // The Account's chunk (the PRM organization's is the second one).
    let first = queue.0.lock().unwrap()[0].clone();
    assert_eq!(first.crm_ids.len(), 1);
    let chunk = serde_json::to_string(&first).unwrap();
    let raw = include_str!("../../shared/lambda/tests/fixtures/sqs-batch.json")
        .replace("\"CHUNK\"", &serde_json::to_string(&chunk).unwrap());
    let event: SqsEvent = serde_json::from_str(&raw).unwrap();
    let response = sync_worker::handle(&deps, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        vec!["22222222-2222-2222-2222-222222222222"],
        "only the malformed body"
    );
    assert_eq!(
        h.prm.list(Collection::Organizations).len(),
        2,
        "the Account's organization, once: the duplicate created nothing more"
    );
    assert_eq!(h.sf.records("Account").len(), 1);
}

#[tokio::test]
async fn manual_payloads_dry_run_and_bad_input() {
    let (_h, queue, deps) = seeded(2000).await;
    let out = full_sync::handle(
        &deps,
        json!({"integration": "organizations", "mode": "full", "dry_run": true}),
    )
    .await
    .unwrap();
    assert_eq!(out["integrations"]["organizations"]["status"], "planned");
    assert!(
        out["integrations"]["organizations"]["records"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(
        queue.0.lock().unwrap().is_empty(),
        "a dry run queues nothing"
    );
    // the lease was released: a real run goes ahead
    let out = full_sync::handle(&deps, json!({"integration": "organizations"}))
        .await
        .unwrap();
    assert_eq!(out["integrations"]["organizations"]["status"], "queued");
    let err = full_sync::handle(&deps, json!({"integration": "contacts"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("contacts") && err.contains("organizations|people|deals|all"),
        "{err}"
    );
    // deals are deal-import's alone
    let err = full_sync::handle(&deps, json!({"integration": "deals"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("organizations, people"), "{err}");
    // the deal import runs in one invocation
    let out = deal_import::handle(&deps, json!({"mode": "full"}))
        .await
        .unwrap();
    assert_eq!(out["status"], "succeeded", "{out}");
    assert!(deal_import::handle(&deps, json!({"integration": "people"}))
        .await
        .is_err());
}

#[tokio::test]
async fn a_run_out_of_time_invokes_itself_again_until_everything_is_queued() {
    // Salesforce pages of 200: the Account of the world and 200 more make two pages.
    let (h, queue, mut deps) = seeded(200).await;
    for i in 0..200 {
        h.sf.insert("Account", json!({"Name": format!("Paged {i:03}"), "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"}).as_object().unwrap().clone());
    }
    for i in 0..5 {
        h.prm.insert(
            Collection::Organizations,
            json!({"kind": "partner", "status": "active", "name": format!("More {i}")}),
        );
    }
    let relaunches = Arc::new(Relaunches::default());
    deps.relaunch = Some(relaunches.clone());
    // One Salesforce page per invocation.
    let limit = InvocationLimit {
        deadline: None,
        max_pages: Some(1),
    };
    let out = full_sync::handle_within(&deps, json!({"integration": "organizations"}), limit)
        .await
        .unwrap();
    let org = &out["integrations"]["organizations"];
    assert_eq!(org["status"], "continues", "{out}");
    assert_eq!(org["records"], 200, "the first Account page");
    let run_id = org["run_id"].as_str().unwrap().to_string();
    let payloads = std::mem::take(&mut *relaunches.0.lock().unwrap());
    assert_eq!(
        payloads,
        vec![json!({"integration": "organizations", "continue_run": run_id})]
    );
    // The continuation, as Lambda would deliver it.
    let out = full_sync::handle_within(&deps, payloads[0].clone(), limit)
        .await
        .unwrap();
    let org = &out["integrations"]["organizations"];
    assert_eq!(org["status"], "queued", "{out}");
    assert_eq!(
        (org["run_id"].as_str(), org["invocations"].as_u64()),
        (Some(run_id.as_str()), Some(2))
    );
    assert_eq!(org["run_records"], 207, "201 Accounts and 6 organizations");
    assert!(
        relaunches.0.lock().unwrap().is_empty(),
        "done: no more invocations"
    );
    let queued: usize = queue
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.crm_ids.len() + c.prm_ids.len())
        .sum();
    assert_eq!(queued, 207);
    // Replayed (Lambda retries an async invocation), the continuation does nothing.
    let chunks = queue.0.lock().unwrap().len();
    let out = full_sync::handle_within(&deps, payloads[0].clone(), limit)
        .await
        .unwrap();
    assert_eq!(out["integrations"]["organizations"]["status"], "skipped");
    assert_eq!(queue.0.lock().unwrap().len(), chunks);
}

#[tokio::test]
async fn integrations_not_started_by_the_deadline_go_to_a_new_invocation() {
    let (_h, queue, mut deps) = seeded(2000).await;
    let relaunches = Arc::new(Relaunches::default());
    deps.relaunch = Some(relaunches.clone());
    let past = InvocationLimit {
        deadline: Some(std::time::Instant::now()),
        max_pages: None,
    };
    let out = full_sync::handle_within(&deps, json!({"mode": "full"}), past)
        .await
        .unwrap();
    assert_eq!(
        out["integrations"]["organizations"]["status"], "continues",
        "{out}"
    );
    assert_eq!(
        out["integrations"]["people"]["status"], "after_organizations",
        "{out}"
    );
    assert!(queue.0.lock().unwrap().is_empty());
    assert_eq!(
        *relaunches.0.lock().unwrap(),
        vec![json!({"integration": "all", "mode": "full"})],
        "the whole run starts again, so people still follow organizations"
    );
    // A people run on its own goes to its own invocation.
    relaunches.0.lock().unwrap().clear();
    let out = full_sync::handle_within(&deps, json!({"integration": "people"}), past)
        .await
        .unwrap();
    assert_eq!(
        out["integrations"]["people"]["status"], "continues",
        "{out}"
    );
    assert_eq!(
        *relaunches.0.lock().unwrap(),
        vec![json!({"integration": "people", "mode": "incremental"})]
    );
}
