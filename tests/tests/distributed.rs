//! The Lambda shape of a run (planner + chunk workers) ends in the same state as the
//! one-machine run, whatever order the chunks run in and however often they are delivered.

mod common;

use common::*;
use prmsync_engine::chunk::Chunk;
use prmsync_engine::planner::{plan_run, InvocationLimit, PlanRequest, PlanStatus};
use prmsync_engine::store::{Cursors, Leases};
use prmsync_engine::worker::{work_chunk, Delivery};
use prmsync_engine::RunMode;
use prmsync_mapping::Integration;
use prmsync_simulators::prm::Collection;
use serde_json::json;

fn seed(h: &Harness) {
    for i in 0..4 {
        let acc = h.account(
            &format!("SF Org {i}"),
            Some("Active Partner"),
            json!({"Website": format!("https://sf{i}.example")}),
        );
        for j in 0..3 {
            h.contact(
                &acc,
                "Sf",
                &format!("P{i}{j}"),
                &format!("sf{i}{j}@sf{i}.example"),
            );
        }
        let org = h.org(
            if i % 2 == 0 { "partner" } else { "distributor" },
            "active",
            &format!("PRM Org {i}"),
        );
        for j in 0..3 {
            h.prm.insert(
                Collection::People,
                json!({"organization_id": org, "kind": "contact", "first_name": "Prm", "last_name": format!("Q{i}{j}")}),
            );
        }
    }
}

/// Plans every integration of `integrations` to the end with no limit; returns the chunks.
async fn plan_all(
    ctx: &prmsync_engine::SyncContext,
    integrations: &[Integration],
    run_id: &str,
) -> Vec<Chunk> {
    let queue = ListQueue::default();
    for &integration in integrations {
        let report = plan_run(
            ctx,
            Some(&queue),
            &PlanRequest::new(integration, RunMode::Incremental, run_id),
        )
        .await
        .unwrap();
        assert_eq!(report.status, PlanStatus::Queued, "{report:?}");
    }
    queue.take()
}

#[tokio::test]
async fn chunks_in_any_order_and_delivered_twice_reach_the_one_machine_state() {
    let local = Harness::new().await;
    seed(&local);
    assert_succeeded(&local.sync().await);

    let lambda = Harness::new().await;
    seed(&lambda);
    let ctx = lambda.ctx();
    let queue = ListQueue::default();
    for integration in [Integration::Organizations, Integration::People] {
        let report = plan_run(
            &ctx,
            Some(&queue),
            &PlanRequest::new(integration, RunMode::Incremental, "run-1"),
        )
        .await
        .unwrap();
        assert_eq!(report.status, PlanStatus::Queued);
        assert_eq!(report.mode, "full", "the first run is full");
        assert_eq!(report.invocations, 1);
    }
    let mut chunks = queue.take();
    // people first, then organizations; every chunk twice
    chunks.reverse();
    let mut closed = 0;
    for chunk in chunks.iter().chain(chunks.iter()) {
        let report = work_chunk(&ctx, &queue, chunk, Delivery::default())
            .await
            .unwrap();
        closed += usize::from(report.closed.is_some());
    }
    assert_eq!(
        closed, 2,
        "each run closes once, when its last chunk is done"
    );
    assert!(queue.take().is_empty() && queue.delayed().is_empty());

    assert_eq!(state(&lambda), state(&local));
    assert_eq!(lambda.sf_records("Contact").len(), 24);

    // the next planned run finds only the echoes of its own writes and writes nothing
    lambda.sf.reset_api_calls();
    lambda.prm.reset_api_calls();
    let chunks = plan_all(
        &ctx,
        &[Integration::Organizations, Integration::People],
        "run-2",
    )
    .await;
    let queue = ListQueue::default();
    for chunk in &chunks {
        let report = work_chunk(&ctx, &queue, chunk, Delivery::default())
            .await
            .unwrap();
        assert_eq!(report.counts.writes(), 0, "{:?}", report.counts);
    }
    assert_eq!(lambda.prm.api_calls().writes(), 0);
    assert_eq!(state(&lambda), state(&local));
}

#[tokio::test]
async fn a_second_planner_finds_the_lease_and_does_nothing() {
    let h = Harness::new().await;
    seed(&h);
    let ctx = h.ctx();
    let queue = ListQueue::default();
    // The first invocation is planning (it holds the lease) when the second starts.
    assert!(h
        .store
        .acquire_lease(
            Integration::Organizations,
            "first-invocation",
            chrono::Utc::now() + chrono::Duration::minutes(5)
        )
        .await
        .unwrap());
    let second = plan_run(
        &ctx,
        Some(&queue),
        &PlanRequest::new(Integration::Organizations, RunMode::Full, "run-b"),
    )
    .await
    .unwrap();
    assert_eq!(second.status, PlanStatus::Skipped);
    assert!(second.message.as_deref().unwrap().contains("lease"));
    assert!(queue.take().is_empty(), "nothing queued");
    assert_eq!(
        h.log(prmsync_mapping::LogCode::RunSkippedLeaseHeld)
            .await
            .len(),
        1
    );
    assert_eq!(
        h.store
            .cursor(Integration::Organizations, "crm")
            .await
            .unwrap(),
        None,
        "no cursor moved"
    );
    h.store
        .release_lease(Integration::Organizations, "first-invocation")
        .await
        .unwrap();
    let third = plan_run(
        &ctx,
        Some(&queue),
        &PlanRequest::new(Integration::Organizations, RunMode::Incremental, "run-c"),
    )
    .await
    .unwrap();
    assert_eq!(
        third.status,
        PlanStatus::Queued,
        "the lease is free once the first planner is done"
    );
    assert_eq!(third.records, 8, "4 Accounts and 4 organizations");
}

/// Ids of one side across chunks, each once.
fn ids(chunks: &[Chunk], crm: bool) -> Vec<String> {
    let mut out: Vec<String> = chunks
        .iter()
        .flat_map(|c| {
            if crm {
                c.crm_ids.clone()
            } else {
                c.prm_ids.clone()
            }
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_run_out_of_time_continues_from_its_checkpoint_and_misses_nothing() {
    // Salesforce pages of 200: 450 Accounts are three pages, one per invocation; every
    // invocation indexes the PRM's 130 organizations.
    let h = Harness::with_query_page(prmsync_mapping::MappingConfig::default(), 200).await;
    let mut accounts = Vec::new();
    for i in 0..450 {
        accounts.push(h.account(&format!("Paged {i:03}"), Some("Active Partner"), json!({})));
    }
    let mut orgs = Vec::new();
    for i in 0..130 {
        orgs.push(h.org("partner", "active", &format!("Prm paged {i:03}")));
    }
    let ctx = h.ctx();
    let queue = ListQueue::default();
    let limit = InvocationLimit {
        deadline: None,
        max_pages: Some(1),
    };
    let first = PlanRequest {
        limit,
        ..PlanRequest::new(Integration::Organizations, RunMode::Incremental, "run-1")
    };
    h.sf.reset_api_calls();
    let mut reports = vec![plan_run(&ctx, Some(&queue), &first).await.unwrap()];
    while reports.last().unwrap().status == PlanStatus::Continues {
        assert!(reports.len() < 10, "the run keeps going: {reports:?}");
        let last = reports.last().unwrap();
        let cp = h
            .store
            .checkpoint(Integration::Organizations)
            .await
            .unwrap()
            .expect("a checkpoint between invocations");
        assert_eq!(cp.run_id, "run-1");
        assert_eq!(cp.records, last.run_records);
        assert_eq!(
            h.store
                .cursor(Integration::Organizations, "crm")
                .await
                .unwrap(),
            None,
            "cursors move only when the run is done"
        );
        // A continuation: another invocation (another lease holder), same run.
        let mut next_ctx = h.ctx();
        next_ctx.holder = format!("invocation-{}", reports.len() + 1);
        let next = PlanRequest {
            continue_run: Some(last.run_id.clone()),
            limit,
            ..PlanRequest::new(Integration::Organizations, RunMode::Incremental, "unused")
        };
        reports.push(plan_run(&next_ctx, Some(&queue), &next).await.unwrap());
    }
    // The PRM's changes are indexed by every invocation; Salesforce's three pages take
    // one invocation each.
    let statuses: Vec<PlanStatus> = reports.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            PlanStatus::Continues,
            PlanStatus::Continues,
            PlanStatus::Queued
        ]
    );
    assert!(reports
        .iter()
        .all(|r| r.run_id == "run-1" && r.mode == "full"));
    assert_eq!(reports[2].invocations, 3);
    assert_eq!(reports[2].run_records, 580);
    let chunks = queue.take();
    let mut want_crm = accounts.clone();
    want_crm.sort();
    let mut want_prm = orgs.clone();
    want_prm.sort();
    assert_eq!(ids(&chunks, true), want_crm, "every Account queued once");
    assert_eq!(
        ids(&chunks, false),
        want_prm,
        "every organization queued once"
    );
    // One query, and each continuation reads on from the page token its checkpoint
    // kept: no page is read twice.
    let calls = h.sf.api_calls();
    assert_eq!(
        (calls.kind("query_all"), calls.kind("query_more")),
        (1, 2),
        "{calls:?}"
    );
    let cp = h
        .store
        .checkpoint(Integration::Organizations)
        .await
        .unwrap()
        .expect("a queued run keeps its checkpoint until its chunks are done");
    assert!(cp.planned);
    assert_eq!(
        h.store
            .cursor(Integration::Organizations, "crm")
            .await
            .unwrap(),
        None,
        "the cursors wait for the workers"
    );
    assert_eq!(h.log(prmsync_mapping::LogCode::RunContinued).await.len(), 2);
    let queued = h.log(prmsync_mapping::LogCode::RunQueued).await;
    assert!(
        queued[0].message.contains("580 records") && queued[0].message.contains("3 invocations"),
        "{}",
        queued[0].message
    );

    // The chunks sync to the same state as a run in one go, and the last one closes the run.
    let mut closed = Vec::new();
    for chunk in &chunks {
        let report = work_chunk(&ctx, &queue, chunk, Delivery::default())
            .await
            .unwrap();
        closed.extend(report.closed);
    }
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].report.counts.created.prm, 450);
    assert_eq!(closed[0].report.counts.created.crm, 130);
    assert_eq!(h.sf_records("Account").len(), 450 + 130);
    assert_eq!(h.prm.list(Collection::Organizations).len(), 450 + 130);
    assert_eq!(
        h.store
            .checkpoint(Integration::Organizations)
            .await
            .unwrap(),
        None,
        "the closed run clears its checkpoint"
    );
    assert!(h
        .store
        .cursor(Integration::Organizations, "crm")
        .await
        .unwrap()
        .is_some());
    let finished = h.log(prmsync_mapping::LogCode::RunFinished).await;
    assert_eq!(finished.len(), 1);
    assert!(
        finished[0]
            .message
            .contains("created 130 in Salesforce and 450 in the PRM"),
        "{}",
        finished[0].message
    );

    // A continuation that arrives after its run finished does nothing.
    let late = PlanRequest {
        continue_run: Some("run-1".into()),
        ..PlanRequest::new(Integration::Organizations, RunMode::Incremental, "late")
    };
    let report = plan_run(&ctx, Some(&queue), &late).await.unwrap();
    assert_eq!(report.status, PlanStatus::Skipped);
    assert!(report.message.unwrap().contains("has finished"));
    assert!(queue.take().is_empty());
}

#[tokio::test]
async fn a_lost_continuation_is_carried_on_by_the_next_scheduled_run() {
    let h = Harness::with_query_page(prmsync_mapping::MappingConfig::default(), 200).await;
    for i in 0..250 {
        h.account(&format!("Lost {i:03}"), Some("Active Partner"), json!({}));
    }
    let ctx = h.ctx();
    let queue = ListQueue::default();
    let first = PlanRequest {
        limit: InvocationLimit {
            deadline: None,
            max_pages: Some(1),
        },
        ..PlanRequest::new(Integration::Organizations, RunMode::Incremental, "run-1")
    };
    let r = plan_run(&ctx, Some(&queue), &first).await.unwrap();
    assert_eq!(r.status, PlanStatus::Continues);
    // An Account already queued changes before the run finishes.
    let changed = queue.0.lock().unwrap()[0].crm_ids[0].clone();
    h.sf.update("Account", &changed, obj(json!({"Phone": "+1 555 0100"})));
    // The continuation was lost; the next scheduled (incremental) run carries run-1 on
    // from the page it had reached.
    let scheduled = PlanRequest::new(Integration::Organizations, RunMode::Incremental, "run-2");
    let r = plan_run(&ctx, Some(&queue), &scheduled).await.unwrap();
    assert_eq!((r.status, r.run_id.as_str()), (PlanStatus::Queued, "run-1"));
    let chunks = queue.take();
    let crm = ids(&chunks, true);
    let mut unique = crm.clone();
    unique.dedup();
    assert_eq!(unique.len(), 250, "every Account queued");
    assert_eq!(crm.len(), 250, "each once");
    // The change came after its page was read: the run's cursor stays below it, so the
    // next run reads it, and the PRM gets the new phone.
    for chunk in &chunks {
        work_chunk(&ctx, &queue, chunk, Delivery::default())
            .await
            .unwrap();
    }
    let next = plan_run(
        &ctx,
        Some(&queue),
        &PlanRequest::new(Integration::Organizations, RunMode::Incremental, "run-3"),
    )
    .await
    .unwrap();
    assert_eq!(next.status, PlanStatus::Queued, "{next:?}");
    let chunks = queue.take();
    assert!(
        ids(&chunks, true).contains(&changed),
        "the changed Account is read again"
    );
    for chunk in &chunks {
        work_chunk(&ctx, &queue, chunk, Delivery::default())
            .await
            .unwrap();
    }
    let org = h.sf_str("Account", &changed, "PRM_Id__c").unwrap();
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["phone"],
        "+1 555 0100"
    );
}

#[tokio::test]
async fn a_dry_run_out_of_time_says_it_is_partial_and_stores_nothing() {
    let h = Harness::with_query_page(prmsync_mapping::MappingConfig::default(), 200).await;
    for i in 0..250 {
        h.account(&format!("Dry {i:03}"), Some("Active Partner"), json!({}));
    }
    let request = PlanRequest {
        limit: InvocationLimit {
            deadline: None,
            max_pages: Some(1),
        },
        ..PlanRequest::new(Integration::Organizations, RunMode::Incremental, "dry")
    };
    let report = plan_run(&h.ctx(), None, &request).await.unwrap();
    assert_eq!(report.status, PlanStatus::Planned);
    assert_eq!(report.records, 200, "one page counted");
    assert!(
        report
            .message
            .as_deref()
            .unwrap()
            .contains("more would follow"),
        "{report:?}"
    );
    assert_eq!(
        h.store
            .checkpoint(Integration::Organizations)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        h.store
            .cursor(Integration::Organizations, "crm")
            .await
            .unwrap(),
        None
    );
}
