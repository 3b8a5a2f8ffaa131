//! Runs as an operator sees them: leases, the API reserve, expired tokens, transient faults,
//! and links repaired by hand.

mod common;

use common::*;
use prmsync_engine::store::{Leases, Links};
use prmsync_engine::{run_integration, Link, LinkState, RunMode, RunOptions};
use prmsync_mapping::{Integration, LogCode, ObjectKind};
use prmsync_simulators::prm::Collection;
use serde_json::json;

#[tokio::test]
async fn a_run_finding_the_lease_held_does_nothing_and_says_so() {
    let h = Harness::new().await;
    h.account("Leased", Some("Active Partner"), json!({}));
    let until = chrono::Utc::now() + chrono::Duration::minutes(5);
    assert!(h
        .store
        .acquire_lease(Integration::Organizations, "another-worker", until)
        .await
        .unwrap());

    let report = run_integration(
        &h.ctx(),
        Integration::Organizations,
        RunOptions {
            mode: RunMode::Incremental,
            dry_run: false,
            run_id: None,
            allow_mass_change: false,
        },
    )
    .await;

    assert_eq!(report.status, "skipped_lease_held");
    assert!(h.prm.list(Collection::Organizations).is_empty());
    assert_eq!(h.log(LogCode::RunSkippedLeaseHeld).await.len(), 1);
    // once released, the next run goes ahead
    h.store
        .release_lease(Integration::Organizations, "another-worker")
        .await
        .unwrap();
    assert_succeeded(&h.sync().await);
    assert_eq!(h.prm.list(Collection::Organizations).len(), 1);
}

#[tokio::test]
async fn a_run_stops_cleanly_before_the_api_reserve_and_resumes_later() {
    let h = Harness::new().await;
    for i in 0..3 {
        h.account(&format!("Budget {i}"), Some("Active Partner"), json!({}));
    }
    // 100 calls a day, 20% reserve: the run may use up to 80; 79 are gone already.
    h.sf.set_daily_api_limit(100);
    for _ in 0..79 {
        h.crm_client.limits().await.unwrap();
    }
    let reports = h.sync().await;
    assert_eq!(reports[0].status, "stopped", "{:?}", reports[0].message);
    assert!(reports[0].message.as_deref().unwrap().contains("reserve"));
    assert_eq!(
        reports[1].status, "stopped",
        "people do not start inside the reserve"
    );
    assert_eq!(h.log(LogCode::ApiReserveReached).await.len(), 2);
    // no Salesforce write was made inside the reserve
    assert!(h
        .sf_records("Account")
        .iter()
        .all(|a| a.get("PRM_Id__c").is_none_or(|v| v.is_null())));

    // a new day: the run picks up where it stopped
    h.sf.reset_api_calls();
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(
        h.prm.list(Collection::Organizations).len(),
        3,
        "no duplicates from the stopped run"
    );
    assert!(h
        .sf_records("Account")
        .iter()
        .all(|a| a.get("PRM_Id__c").is_some_and(|v| v.is_string())));
}

#[tokio::test]
async fn expired_tokens_and_transient_faults_are_retried_within_the_run() {
    let h = Harness::new().await;
    let acc = h.account("Faulty", Some("Active Partner"), json!({}));
    h.contact(&acc, "Tran", "Sient", "t@faulty.example");
    assert_succeeded(&h.sync().await);
    let org = h.sf_str("Account", &acc, "PRM_Id__c").unwrap();

    h.sf.update("Account", &acc, obj(json!({"Phone": "42"})));
    h.prm
        .update(Collection::Organizations, &org, json!({"city": "Leeds"}));
    h.sf.expire_tokens();
    h.sf.faults()
        .fail_nth(Some("composite_update"), 1, 503, "SERVER_UNAVAILABLE");
    h.prm.faults().fail_nth(Some("update"), 1, 503, "internal");
    h.prm.faults().rate_limit_next(1, 1);
    let reports = h.sync().await;

    assert_succeeded(&reports);
    assert_eq!(h.prm_get(Collection::Organizations, &org)["phone"], "42");
    assert_eq!(
        h.sf_str("Account", &acc, "BillingCity").as_deref(),
        Some("Leeds")
    );
    assert_eq!(
        h.sf.api_calls().kind("auth"),
        2,
        "one token refresh: {:?}",
        h.sf.api_calls().by_kind
    );
}

#[tokio::test]
async fn a_link_repaired_by_hand_merges_on_the_next_run() {
    let h = Harness::new().await;
    let acc = h.account("Restored", Some("Active Partner"), json!({"Phone": "1"}));
    assert_succeeded(&h.sync().await);
    let org = h.sf_str("Account", &acc, "PRM_Id__c").unwrap();
    h.sf.delete("Account", &acc);
    h.sync().await;
    let links = h
        .store
        .find_links(ObjectKind::Organization, &[], std::slice::from_ref(&org))
        .await
        .unwrap();
    assert_eq!(links[0].state, LinkState::Disconnected);

    // the operator recreates the Account and links it (what `prmsync relink` does)
    let again = h.account(
        "Restored Again",
        Some("Active Partner"),
        json!({"Phone": "2"}),
    );
    h.store
        .delete_link(ObjectKind::Organization, &org)
        .await
        .unwrap();
    let mut link = Link::new(ObjectKind::Organization, &org, &again);
    link.retry = true;
    h.store.save_link(&link).await.unwrap();
    let reports = h.sync().await;

    assert_succeeded(&reports);
    let o = h.prm_get(Collection::Organizations, &org);
    assert_eq!(o["crm_id"], json!(again));
    assert_eq!(
        o["name"], "Restored Again",
        "first-link rule: Salesforce wins"
    );
    assert_eq!(h.sf_str("Account", &again, "PRM_Id__c"), Some(org.clone()));
    assert_eq!(h.prm.list(Collection::Organizations).len(), 1);
}
