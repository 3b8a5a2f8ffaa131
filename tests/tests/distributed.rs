//! The Lambda shape of a run (planner + chunk workers) ends in the same state as the
//! one-machine run, whatever order the chunks run in and however often they are delivered.

mod common;

use common::*;
use prmsync_engine::distributed::{commit_plan, plan_run, sync_chunk};
use prmsync_engine::RunMode;
use prmsync_mapping::Integration;
use prmsync_simulators::prm::Collection;
use serde_json::{json, Map, Value};

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

/// A system's records without the fields that differ by timing.
fn normalise(records: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let mut out: Vec<Map<String, Value>> = records
        .into_iter()
        .map(|mut r| {
            for k in [
                "SystemModstamp",
                "LastModifiedDate",
                "CreatedDate",
                "updated_at",
                "created_at",
                "version",
            ] {
                r.remove(k);
            }
            r
        })
        .collect();
    out.sort_by_key(|r| serde_json::to_string(r).unwrap());
    out
}

fn state(h: &Harness) -> Vec<Vec<Map<String, Value>>> {
    let prm = |c| {
        h.prm
            .list(c)
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    };
    vec![
        normalise(h.sf_records("Account")),
        normalise(h.sf_records("Contact")),
        normalise(prm(Collection::Organizations)),
        normalise(prm(Collection::People)),
    ]
}

#[tokio::test]
async fn chunks_in_any_order_and_delivered_twice_reach_the_one_machine_state() {
    let local = Harness::new().await;
    seed(&local);
    assert_succeeded(&local.sync().await);

    let lambda = Harness::new().await;
    seed(&lambda);
    let ctx = lambda.ctx();
    let mut chunks = Vec::new();
    for integration in [Integration::Organizations, Integration::People] {
        let plan = plan_run(&ctx, integration, RunMode::Incremental, "run-1")
            .await
            .unwrap();
        assert!(plan.skipped.is_none());
        assert_eq!(plan.mode, "full", "the first run is full");
        commit_plan(&ctx, &plan).await.unwrap();
        chunks.extend(plan.chunks);
    }
    // people first, then organizations; every chunk twice
    chunks.reverse();
    for chunk in chunks.iter().chain(chunks.iter()) {
        sync_chunk(&ctx, chunk).await.unwrap();
    }

    assert_eq!(state(&lambda), state(&local));
    assert_eq!(lambda.sf_records("Contact").len(), 24);

    // the next planned run finds only the echoes of its own writes and writes nothing
    lambda.sf.reset_api_calls();
    lambda.prm.reset_api_calls();
    for integration in [Integration::Organizations, Integration::People] {
        let plan = plan_run(&ctx, integration, RunMode::Incremental, "run-2")
            .await
            .unwrap();
        commit_plan(&ctx, &plan).await.unwrap();
        for chunk in &plan.chunks {
            let report = sync_chunk(&ctx, chunk).await.unwrap();
            assert_eq!(report.counts.writes(), 0, "{:?}", report.counts);
        }
    }
    assert_eq!(lambda.prm.api_calls().writes(), 0);
    assert_eq!(state(&lambda), state(&local));
}

#[tokio::test]
async fn a_second_planner_finds_the_lease_and_does_nothing() {
    let h = Harness::new().await;
    seed(&h);
    let ctx = h.ctx();
    let first = plan_run(&ctx, Integration::Organizations, RunMode::Full, "run-a")
        .await
        .unwrap();
    assert!(first.skipped.is_none());
    let mut other = h.ctx();
    other.holder = "another-invocation".into();
    let second = plan_run(&other, Integration::Organizations, RunMode::Full, "run-b")
        .await
        .unwrap();
    assert!(second.skipped.as_deref().unwrap().contains("lease"));
    assert!(second.chunks.is_empty());
    assert_eq!(
        h.log(prmsync_mapping::LogCode::RunSkippedLeaseHeld)
            .await
            .len(),
        1
    );
    commit_plan(&ctx, &first).await.unwrap();
    let third = plan_run(
        &other,
        Integration::Organizations,
        RunMode::Incremental,
        "run-c",
    )
    .await
    .unwrap();
    assert!(
        third.skipped.is_none(),
        "the lease is free once the first plan is committed"
    );
}
