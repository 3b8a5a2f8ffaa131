//! End-to-end: the Salesforce field holding the PRM id keys every upsert, so it must be an
//! External ID, Unique and case-sensitive. A field Salesforce matches ignoring case stops
//! the first full run before anything is written (one-machine run and the Lambda
//! planner alike); with the right field, PRM ids differing only in case are two Accounts.

mod common;

use std::sync::Arc;

use common::*;
use prmsync_lambda::handlers::full_sync;
use prmsync_mapping::LogCode;
use prmsync_simulators::prm::Collection;
use prmsync_simulators::salesforce::{FieldDef, FieldType};
use serde_json::json;

/// Account's PRM Id as an org might have created it: External ID and Unique, but with
/// Salesforce's default "Treat "ABC" and "abc" as duplicate values (case insensitive)".
fn case_insensitive_prm_id() -> FieldDef {
    FieldDef::new("PRM_Id__c", FieldType::String)
        .label("PRM Id")
        .external_id()
}

/// What the run's failure must say: the object, the field, what is missing and where to
/// fix it.
fn assert_names_the_fix(message: &str) {
    assert!(
        message.contains("Account field PRM_Id__c is not Case-sensitive"),
        "{message}"
    );
    assert!(
        message.contains("Setup > Object Manager > Account > Fields & Relationships > PRM Id"),
        "{message}"
    );
    assert!(
        message.contains(
            "'Unique' with 'Treat \"ABC\" and \"abc\" as different values (case sensitive)'"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_case_insensitive_prm_id_field_stops_the_first_full_run_and_writes_nothing() {
    // GIVEN an org whose Account PRM Id field matches values ignoring case, a flagged
    // Account and two PRM organizations whose ids differ only in case
    let h = Harness::new().await;
    h.sf.add_field("Account", case_insensitive_prm_id());
    let acc = h.account("Flagged Co", Some("Active Partner"), json!({}));
    for (id, name) in [("org-abc1", "Lower Co"), ("ORG-ABC1", "Upper Co")] {
        h.prm.insert(
            Collection::Organizations,
            json!({"id": id, "kind": "partner", "status": "active", "name": name}),
        );
    }
    let accounts_before = h.sf_records("Account");
    let orgs_before = h.prm.list(Collection::Organizations);

    // WHEN the first run starts (full by itself)
    let reports = h.sync().await;

    // THEN the organizations run fails naming the field and the fix
    assert_eq!(reports[0].status, "failed", "{:?}", reports[0]);
    assert_names_the_fix(reports[0].message.as_deref().unwrap_or_default());
    let failed = h.log(LogCode::RunFailed).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_names_the_fix(&failed[0].message);
    // and nothing is written on either side
    assert_eq!(h.sf_records("Account"), accounts_before);
    assert_eq!(h.sf_str("Account", &acc, "PRM_Id__c"), None);
    assert_eq!(h.prm.list(Collection::Organizations), orgs_before);
    assert_eq!(total(&reports, |c| c.created.crm + c.created.prm), 0);
    assert_eq!(total(&reports, |c| c.updated.crm + c.updated.prm), 0);

    // WHEN the field is fixed in Salesforce THEN the next run goes ahead
    h.sf.add_field("Account", case_insensitive_prm_id().case_sensitive());
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(h.sf_records("Account").len(), 3, "one per organization");
}

#[tokio::test]
async fn the_lambda_planner_stops_on_a_case_insensitive_prm_id_field_and_queues_nothing() {
    // GIVEN the same org, and the full-sync function's dependencies over a list queue
    let h = Harness::new().await;
    h.sf.add_field("Account", case_insensitive_prm_id());
    h.account("Flagged Co", Some("Active Partner"), json!({}));
    h.org("partner", "active", "From PRM");
    let accounts_before = h.sf_records("Account");
    let orgs_before = h.prm.list(Collection::Organizations);
    let queue = Arc::new(ListQueue::default());
    let deps = h.deps(queue.clone());

    // WHEN the full-sync function plans the first run
    let err = full_sync::handle(&deps, json!({"integration": "organizations"}))
        .await
        .unwrap_err();

    // THEN it fails as a setup problem naming the field and the fix
    assert_eq!(err.error_type(), "Prmsync.Setup");
    assert_names_the_fix(&err.to_string());
    let failed = h.log(LogCode::RunFailed).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_names_the_fix(&failed[0].message);
    // and queues and writes nothing
    assert!(queue.take().is_empty(), "no chunk queued");
    assert_eq!(h.sf_records("Account"), accounts_before);
    assert_eq!(h.prm.list(Collection::Organizations), orgs_before);
}

#[tokio::test]
async fn prm_ids_differing_only_in_case_are_two_accounts_that_never_touch_each_other() {
    // GIVEN the standard PRM Id field (External ID, Unique, case-sensitive) and two PRM
    // organizations whose ids differ only in case
    let h = Harness::new().await;
    let lower = h.prm.insert(
        Collection::Organizations,
        json!({"id": "org-abc1", "kind": "partner", "status": "active", "name": "Lower Co"}),
    );
    let upper = h.prm.insert(
        Collection::Organizations,
        json!({"id": "ORG-ABC1", "kind": "partner", "status": "active", "name": "Upper Co"}),
    );

    // WHEN the first run syncs them
    let reports = h.sync().await;

    // THEN each has its own Account holding its own id
    assert_succeeded(&reports);
    let accounts = h.sf_records("Account");
    assert_eq!(accounts.len(), 2, "{accounts:?}");
    let account_of = |prm_id: &str| -> String {
        let linked = h.prm_get(Collection::Organizations, prm_id)["crm_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{prm_id} has no crm_id"))
            .to_string();
        assert_eq!(
            h.sf_str("Account", &linked, "PRM_Id__c").as_deref(),
            Some(prm_id)
        );
        linked
    };
    let lower_acc = account_of(&lower);
    let upper_acc = account_of(&upper);
    assert_ne!(lower_acc, upper_acc);
    assert_eq!(
        h.sf_str("Account", &lower_acc, "Name").as_deref(),
        Some("Lower Co")
    );
    assert_eq!(
        h.sf_str("Account", &upper_acc, "Name").as_deref(),
        Some("Upper Co")
    );
    let upper_before = h.sf_get("Account", &upper_acc);

    // WHEN one of them changes in the PRM
    h.sf.advance_clock(chrono::Duration::minutes(5));
    h.prm.update(
        Collection::Organizations,
        &lower,
        json!({"name": "Lower Co Renamed"}),
    );
    let reports = h.sync().await;

    // THEN only its Account is updated: the other is untouched, stamps included
    assert_succeeded(&reports);
    assert_eq!(
        h.sf_str("Account", &lower_acc, "Name").as_deref(),
        Some("Lower Co Renamed")
    );
    assert_eq!(h.sf_get("Account", &upper_acc), upper_before);
    assert_eq!(h.sf_records("Account").len(), 2);
    assert_eq!(
        h.prm_get(Collection::Organizations, &upper)["name"],
        "Upper Co"
    );

    // AND a full run over them changes nothing more
    let reports = h.sync_full().await;
    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.created.crm + c.created.prm), 0);
    assert_eq!(h.sf_get("Account", &upper_acc), upper_before);
}
