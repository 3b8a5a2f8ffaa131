//! The mass-change breaker: a data-load accident in Salesforce (Phone blanked on most
//! Accounts) does not flow to the PRM in one run. The run stops before writing anything,
//! logs what it would do with counts, fields and examples, keeps its cursors, and goes on
//! only when the operator allows it. On one machine and through the Lambda planner and
//! workers; an ordinary run pays no extra call for the check.

mod common;

use common::*;
use prmsync_engine::planner::{plan_run, PlanRequest};
use prmsync_engine::ports::FailureClass;
use prmsync_engine::{run_integration, RunMode, RunOptions, RunStatus};
use prmsync_mapping::{Integration, LogCode, MappingConfig};
use prmsync_simulators::prm::Collection;
use serde_json::json;

/// 100 Accounts with a phone, linked to their PRM organizations.
async fn linked_accounts(h: &Harness) -> Vec<String> {
    let accounts: Vec<String> = (0..100)
        .map(|i| {
            h.account(
                &format!("Co {i:03}"),
                Some("Active Partner"),
                json!({"Phone": format!("+1 555 {i:04}")}),
            )
        })
        .collect();
    assert_succeeded(&h.sync().await);
    accounts
}

fn org_of(h: &Harness, account: &str) -> String {
    h.sf_str("Account", account, "PRM_Id__c").expect("linked")
}

fn phones_in_prm(h: &Harness, accounts: &[String]) -> usize {
    accounts
        .iter()
        .filter(|a| {
            h.prm_get(Collection::Organizations, &org_of(h, a))["phone"]
                .as_str()
                .is_some()
        })
        .count()
}

/// The organizations run of one machine, the operator allowing a mass change or not.
async fn organizations_run(h: &Harness, allow: bool) -> prmsync_engine::RunReport {
    run_integration(
        &h.ctx(),
        Integration::Organizations,
        RunOptions {
            mode: RunMode::Incremental,
            dry_run: false,
            run_id: None,
            allow_mass_change: allow,
        },
    )
    .await
}

async fn assert_held_once(h: &Harness) {
    let held = h.log(LogCode::MassChangeHeld).await;
    assert_eq!(held.len(), 1, "{held:#?}");
    let m = &held[0].message;
    assert!(
        m.contains(
            "it would change 60 of 100 linked PRM organizations (60 of them blanking a field)"
        ),
        "{m}"
    );
    assert!(m.contains("fields: phone (60)"), "{m}");
    assert!(m.contains("at most 49"), "{m}");
    assert!(!m.contains("+1 555"), "no value in the entry: {m}");
    assert_eq!(held[0].details["prm"]["records"], json!(60));
    assert_eq!(
        held[0].details["prm"]["examples"].as_array().unwrap().len(),
        5
    );
}

#[tokio::test]
async fn blanking_most_phones_in_salesforce_is_held_until_the_operator_allows_it() {
    // GIVEN 100 linked Accounts, 60 of them blanked by a data load
    let h = Harness::new().await;
    let accounts = linked_accounts(&h).await;
    for a in &accounts[..60] {
        h.sf.update("Account", a, obj(json!({"Phone": null})));
    }

    // WHEN the organizations run goes
    let report = organizations_run(&h, false).await;

    // THEN it stopped before writing anything, failed for its data, with one entry
    assert_eq!(report.status, RunStatus::Failed, "{:?}", report.message);
    assert_eq!(report.failure, Some(FailureClass::Data));
    assert!(report
        .message
        .as_deref()
        .unwrap()
        .contains("--allow-mass-change"));
    assert_eq!(report.counts.writes(), 0);
    assert_eq!(
        phones_in_prm(&h, &accounts),
        100,
        "no phone blanked in the PRM"
    );
    assert_held_once(&h).await;

    // WHEN the next scheduled run goes: the cursor did not move, so it holds again
    let report = organizations_run(&h, false).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(phones_in_prm(&h, &accounts), 100);
    assert_eq!(h.log(LogCode::MassChangeHeld).await.len(), 2);

    // WHEN the operator allows it
    let report = organizations_run(&h, true).await;

    // THEN the change goes through, and the run after it is ordinary
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.message);
    assert_eq!(report.counts.updated.prm, 60);
    assert_eq!(phones_in_prm(&h, &accounts), 40);
    let report = organizations_run(&h, false).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.counts.writes(), 0);
}

/// An ordinary run's calls (Salesforce, PRM) after 10 of 100 phones were blanked, with the
/// given mapping.
async fn ordinary_run_calls(mapping: MappingConfig) -> (u64, u64) {
    let h = Harness::with_mapping(mapping).await;
    let accounts = linked_accounts(&h).await;
    // A settled hour: the first import's own writes read back once.
    assert_succeeded(&h.sync().await);
    h.sf.advance_clock(chrono::Duration::minutes(10));
    for a in &accounts[..10] {
        h.sf.update("Account", a, obj(json!({"Phone": null})));
    }
    h.sf.reset_api_calls();
    h.prm.reset_api_calls();
    let report = organizations_run(&h, false).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.message);
    assert_eq!(report.counts.updated.prm, 10);
    assert_eq!(phones_in_prm(&h, &accounts), 90);
    assert!(h.log(LogCode::MassChangeHeld).await.is_empty());
    (h.sf.api_calls().total, h.prm.api_calls().total)
}

#[tokio::test]
async fn an_ordinary_run_passes_and_pays_no_extra_call_for_the_breaker() {
    // GIVEN 10 of 100 linked Accounts edited: fewer than the breaker lets through
    // WHEN the organizations run goes with the breaker on, and with it off
    // (no overlap window: the runs of a test are seconds apart, not an hour)
    let mut on = MappingConfig::default();
    on.sync.overlap_seconds = 0;
    let mut off = on.clone();
    let on = ordinary_run_calls(on).await;
    off.sync.mass_change_percent = 100;
    let off = ordinary_run_calls(off).await;

    // THEN both wrote them with the same calls: the check read nothing more
    assert_eq!(on, off);
}

#[tokio::test]
async fn the_lambda_planner_holds_the_run_before_queueing_and_lets_it_through_when_allowed() {
    // GIVEN the same accident
    let h = Harness::new().await;
    let accounts = linked_accounts(&h).await;
    for a in &accounts[..60] {
        h.sf.update("Account", a, obj(json!({"Phone": null})));
    }
    let ctx = h.ctx();

    // WHEN full-sync plans the organizations run
    let queue = ListQueue::default();
    let request = PlanRequest::new(Integration::Organizations, RunMode::Incremental, "run-held");
    let e = plan_run(&ctx, Some(&queue), &request).await.unwrap_err();

    // THEN nothing is queued, nothing written, and the entry says why
    assert_eq!(e.class(), FailureClass::Data);
    assert!(queue.take().is_empty());
    assert_eq!(phones_in_prm(&h, &accounts), 100);
    assert_held_once(&h).await;

    // WHEN the operator invokes it with allow_mass_change
    let mut request = PlanRequest::new(
        Integration::Organizations,
        RunMode::Incremental,
        "run-allowed",
    );
    request.allow_mass_change = true;
    plan_run(&ctx, Some(&queue), &request).await.unwrap();
    let mut out = LambdaOutcome::default();
    drain(&ctx, &queue, true, &mut out).await;

    // THEN the workers write it, and the run closes
    assert_eq!(out.closed.len(), 1);
    assert_eq!(phones_in_prm(&h, &accounts), 40);
    assert_eq!(h.log(LogCode::MassChangeHeld).await.len(), 1);
}
