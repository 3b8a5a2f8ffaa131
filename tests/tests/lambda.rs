//! The Lambda deployment's planner and workers, in one process over the simulators: a
//! first import over records that exist on both sides creates no twin (also with two
//! workers at once), a record that fails for a passing reason is retried alone and parked
//! after its last attempt without holding its chunk back, and the org's API limit stops
//! every worker's writes until it clears, losing nothing.

mod common;

use common::*;
use prmsync_engine::store::{Cursors, Pauses, RetrySet};
use prmsync_engine::worker::{work_chunk, ChunkVerdict, Delivery};
use prmsync_engine::{RunMode, SyncContext};
use prmsync_mapping::{Integration, LogCode, MappingConfig, ObjectKind};
use prmsync_simulators::prm::Collection;
use serde_json::json;

/// Companies that exist on both sides with one name and website, their people on both
/// sides with one email; plus one record on each side alone.
fn seed_both_sides(h: &Harness, companies: usize) {
    for i in 0..companies {
        let acc = h.account(
            &format!("Company {i:03}, Inc."),
            Some("Active Partner"),
            json!({"Website": format!("https://www.company{i:03}.example")}),
        );
        let org = h.prm.insert(
            Collection::Organizations,
            json!({"kind": "partner", "status": "active", "name": format!("COMPANY {i:03}"), "website": format!("company{i:03}.example")}),
        );
        for j in 0..2 {
            h.contact(
                &acc,
                "Pat",
                &format!("Person{i}{j}"),
                &format!("person{j}@company{i:03}.example"),
            );
            h.prm.insert(
                Collection::People,
                json!({"organization_id": org, "kind": "contact", "first_name": "Pat", "last_name": format!("Person{i}{j}"), "email": format!("Person{j}@Company{i:03}.example")}),
            );
        }
    }
    h.account("Salesforce Only", Some("Active Partner"), json!({}));
    h.org("distributor", "active", "PRM Only");
}

fn assert_no_twins(h: &Harness, companies: usize) {
    assert_eq!(h.sf_records("Account").len(), companies + 2, "Accounts");
    assert_eq!(
        h.prm.list(Collection::Organizations).len(),
        companies + 2,
        "organizations"
    );
    assert_eq!(h.sf_records("Contact").len(), companies * 2, "Contacts");
    assert_eq!(
        h.prm.list(Collection::People).len(),
        companies * 2,
        "people"
    );
    for a in h.sf_records("Account") {
        let id = a["Id"].as_str().unwrap();
        let prm_id = a["PRM_Id__c"].as_str().unwrap_or_else(|| panic!("{a:?}"));
        assert_eq!(
            h.prm_get(Collection::Organizations, prm_id)["crm_id"],
            json!(id)
        );
    }
    for c in h.sf_records("Contact") {
        assert!(c["PRM_Id__c"].as_str().is_some(), "{c:?}");
    }
}

#[tokio::test]
async fn a_first_import_over_records_on_both_sides_creates_no_twin_and_matches_the_one_machine_run()
{
    // GIVEN the same records on both sides, twice
    let local = Harness::new().await;
    seed_both_sides(&local, 30);
    let lambda = Harness::new().await;
    seed_both_sides(&lambda, 30);

    // WHEN one runs on one machine and the other through the planner and workers
    assert_succeeded(&local.sync().await);
    let out = lambda
        .lambda_sync(&lambda.ctx(), RunMode::Incremental)
        .await;

    // THEN neither made a twin, and both reached the same state
    assert_no_twins(&local, 30);
    assert_no_twins(&lambda, 30);
    assert_eq!(state(&lambda), state(&local));
    assert_eq!(out.closed.len(), 2, "organizations, then people: {out:?}");
    assert_eq!(
        out.closed[1].report.integration,
        Integration::People,
        "people are planned once the organizations are linked"
    );
    assert_eq!(
        lambda.log(LogCode::RecordLinked).await.len(),
        local.log(LogCode::RecordLinked).await.len()
    );
    assert_eq!(lambda.log(LogCode::RecordLinked).await.len(), 90);
}

#[tokio::test]
async fn two_workers_at_once_create_no_twin() {
    let h = Harness::new().await;
    seed_both_sides(&h, 25);
    let ctx = h.ctx();
    let queue = ListQueue::default();
    let mut out = LambdaOutcome::default();
    let first = plan(
        &ctx,
        &queue,
        Integration::Organizations,
        vec![Integration::People],
    )
    .await;
    out.plans.push(first);
    // Every chunk is delivered twice, to two workers working at the same time.
    for _ in 0..20 {
        let chunks = queue.take();
        if chunks.is_empty() {
            break;
        }
        let twice: Vec<_> = chunks.iter().chain(chunks.iter()).cloned().collect();
        let (a, b) = twice.split_at(chunks.len());
        let worker = |part: Vec<prmsync_engine::chunk::Chunk>, ctx: SyncContext| {
            let queue = &queue;
            async move {
                let mut closed = Vec::new();
                for c in part {
                    let r = work_chunk(&ctx, queue, &c, Delivery { receive_count: 1 })
                        .await
                        .unwrap();
                    closed.extend(r.closed);
                }
                closed
            }
        };
        let (x, y) = tokio::join!(
            worker(a.to_vec(), ctx.clone()),
            worker(b.to_vec(), ctx.clone())
        );
        for closed in x.into_iter().chain(y) {
            for &next in &closed.then {
                out.plans.push(plan(&ctx, &queue, next, Vec::new()).await);
            }
            out.closed.push(closed);
        }
    }
    assert_eq!(
        out.closed.len(),
        2,
        "each run closes once: {:?}",
        out.closed
    );
    assert_no_twins(&h, 25);
}

async fn plan(
    ctx: &SyncContext,
    queue: &ListQueue,
    integration: Integration,
    then: Vec<Integration>,
) -> prmsync_engine::planner::PlanReport {
    let mut request = prmsync_engine::planner::PlanRequest::new(
        integration,
        RunMode::Incremental,
        uuid::Uuid::new_v4().to_string(),
    );
    request.then = then;
    prmsync_engine::planner::plan_run(ctx, Some(queue), &request)
        .await
        .unwrap()
}

/// Salesforce refuses the write of this record (by Id or PRM id) `calls` times in a row
/// with a row lock; the client tries a locked record 5 times within one call.
fn lock(h: &Harness, key: &str, calls: usize) {
    for _ in 0..calls * 5 {
        h.sf.faults().fail_record_write(
            key,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access",
        );
    }
}

fn prm_orgs(h: &Harness, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| h.org("partner", "active", &format!("Retry Org {i}")))
        .collect()
}

#[tokio::test]
async fn a_record_that_fails_for_a_passing_reason_is_retried_alone_and_its_chunk_completes() {
    // GIVEN five new PRM organizations; Salesforce locks the third for one call
    let h = Harness::new().await;
    let orgs = prm_orgs(&h, 5);
    lock(&h, &orgs[2], 1);
    let ctx = h.ctx();
    let queue = ListQueue::default();

    // WHEN the run is planned and its chunk worked (the delayed retry not yet due)
    let out = lambda_run(
        &ctx,
        &queue,
        Integration::Organizations,
        Vec::new(),
        RunMode::Incremental,
        false,
    )
    .await;

    // THEN the four others are synced, the chunk is done and the run closed
    assert_eq!(out.chunks.len(), 1);
    assert_eq!(out.chunks[0].verdict, ChunkVerdict::Synced);
    assert_eq!(out.chunks[0].retried, 1);
    assert_eq!(h.sf_records("Account").len(), 4);
    assert_eq!(out.closed.len(), 1);
    // the failed one is in the retry set and handed out again on its own, after a delay
    let held = h
        .store
        .retry_entries(ObjectKind::Organization, "prm", &[orgs[2].clone()])
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].attempts, held[0].parked), (1, false));
    let delayed = queue.delayed();
    assert_eq!(delayed.len(), 1);
    assert_eq!(delayed[0].0.prm_ids, vec![orgs[2].clone()]);
    assert_eq!(delayed[0].1.as_secs(), 30, "the first retry waits 30 s");
    let retried = h.log(LogCode::RecordRetried).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].prm_id.as_deref(), Some(orgs[2].as_str()));

    // WHEN the delay has passed
    let mut again = LambdaOutcome::default();
    drain(&ctx, &queue, true, &mut again).await;

    // THEN it is synced and leaves the retry set
    assert_eq!(h.sf_records("Account").len(), 5);
    assert!(h
        .store
        .all_retries(ObjectKind::Organization)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_record_that_keeps_failing_is_parked_and_logged_and_synced_when_it_changes() {
    // GIVEN three attempts before parking, and two organizations Salesforce keeps locking
    // (no overlap window, so the next run reads only what changed since this one)
    let mut mapping = MappingConfig::default();
    mapping.sync.retry_attempts = 3;
    mapping.sync.overlap_seconds = 0;
    let h = Harness::with_mapping(mapping).await;
    let orgs = prm_orgs(&h, 4);
    lock(&h, &orgs[1], 3);
    lock(&h, &orgs[2], 3);
    let ctx = h.ctx();
    let queue = ListQueue::default();

    // WHEN the run and every retry are worked
    let out = lambda_run(
        &ctx,
        &queue,
        Integration::Organizations,
        Vec::new(),
        RunMode::Incremental,
        true,
    )
    .await;

    // THEN the others synced at once, and both are parked after their third attempt
    assert_eq!(h.sf_records("Account").len(), 2);
    assert_eq!(
        out.chunks.len(),
        5,
        "the chunk, then two retries of each alone"
    );
    assert_eq!(out.chunks.iter().map(|c| c.parked).sum::<u64>(), 2);
    let held = h.store.all_retries(ObjectKind::Organization).await.unwrap();
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|e| e.parked && e.attempts == 3), "{held:?}");
    let parked = h.log(LogCode::RecordParked).await;
    assert_eq!(parked.len(), 2);
    assert!(
        parked.iter().any(|e| e.message.contains(&orgs[1])),
        "{parked:?}"
    );
    assert!(!parked[0].fix.is_empty());
    assert!(
        queue.delayed().is_empty(),
        "a parked record is not handed out again"
    );
    assert_eq!(
        out.closed.len(),
        1,
        "the run closed without waiting for them"
    );

    // WHEN one changes in the PRM (the lock has cleared), the next run syncs it
    h.prm.update(
        Collection::Organizations,
        &orgs[1],
        json!({"name": "Retry Org 1 (renamed)"}),
    );
    lambda_run(
        &ctx,
        &queue,
        Integration::Organizations,
        Vec::new(),
        RunMode::Incremental,
        true,
    )
    .await;
    assert_eq!(h.sf_records("Account").len(), 3);
    // and the other is synced on demand
    let report = prmsync_engine::sync_record(
        &ctx,
        &prmsync_engine::RecordRef::Prm(ObjectKind::Organization, orgs[2].clone()),
        false,
    )
    .await;
    assert_eq!(report.counts.created.crm, 1, "{report:?}");
    assert_eq!(h.sf_records("Account").len(), 4);
    assert!(
        h.store
            .all_retries(ObjectKind::Organization)
            .await
            .unwrap()
            .is_empty(),
        "synced records leave the retry set"
    );
}

#[tokio::test]
async fn the_org_wide_api_limit_stops_every_worker_and_the_run_resumes_when_it_clears() {
    // GIVEN 450 new PRM organizations: three chunks
    let h = Harness::new().await;
    prm_orgs(&h, 450);
    let ctx = h.ctx();
    let queue = ListQueue::default();
    let report = plan(&ctx, &queue, Integration::Organizations, Vec::new()).await;
    assert_eq!(report.chunks, 3);
    let chunks = queue.take();

    // WHEN the first chunk syncs, then Salesforce answers every call with the daily limit
    let first = work_chunk(&ctx, &queue, &chunks[0], Delivery { receive_count: 1 })
        .await
        .unwrap();
    assert_eq!(first.verdict, ChunkVerdict::Synced);
    h.sf.faults()
        .fail_rate(None, 1.0, 403, "REQUEST_LIMIT_EXCEEDED");
    let second = work_chunk(&ctx, &queue, &chunks[1], Delivery { receive_count: 1 })
        .await
        .unwrap();
    let calls = h.sf.api_calls().total;
    let third = work_chunk(&ctx, &queue, &chunks[2], Delivery { receive_count: 1 })
        .await
        .unwrap();

    // THEN both wait in the queue; the third made no Salesforce call at all
    assert_eq!(second.verdict, ChunkVerdict::Deferred);
    assert_eq!(third.verdict, ChunkVerdict::Deferred);
    assert_eq!(
        h.sf.api_calls().total,
        calls,
        "no call while the hold lasts"
    );
    assert!(h.store.api_hold().await.unwrap().is_some());
    assert_eq!(h.log(LogCode::ApiLimitHold).await.len(), 1);
    assert_eq!(queue.delayed().len(), 2);
    assert_eq!(
        h.store
            .cursor(Integration::Organizations, "crm")
            .await
            .unwrap(),
        None,
        "the run is not closed"
    );

    // WHEN the limit clears (the hold has run out)
    h.sf.faults().clear();
    h.store
        .hold_api(chrono::Utc::now() - chrono::Duration::seconds(1))
        .await
        .unwrap();
    let mut rest = LambdaOutcome::default();
    drain(&ctx, &queue, true, &mut rest).await;

    // THEN every organization is in Salesforce once, and the run closed
    assert_eq!(h.sf_records("Account").len(), 450);
    assert_eq!(rest.closed.len(), 1);
    assert_eq!(
        rest.closed[0].report.counts.created.crm, 450,
        "the run's counts add up its chunks'"
    );
    assert!(h
        .store
        .cursor(Integration::Organizations, "crm")
        .await
        .unwrap()
        .is_some());
}
