//! A setup problem is not the record's fault: a field the integration user may not edit
//! (field-level security) stops the sync with one clear entry, rejects no record, and once
//! the operator fixes it the next run syncs what waited, without a full run. On one
//! machine and through the Lambda deployment's planner and workers.

mod common;

use common::*;
use prmsync_engine::ports::FailureClass;
use prmsync_engine::{RunMode, RunStatus};
use prmsync_mapping::LogCode;
use prmsync_simulators::prm::Collection;
use serde_json::json;

/// Three organizations linked to their Accounts; then the integration user loses Edit
/// access to Account.Phone, their phones change in the PRM and a fourth organization
/// with a phone is created. Returns the three linked organizations and the new one.
async fn phones_changed_without_access(h: &Harness) -> (Vec<String>, String) {
    let orgs: Vec<String> = (0..3)
        .map(|i| h.org("partner", "active", &format!("Org {i}")))
        .collect();
    assert_succeeded(&h.sync().await);
    h.sf.set_field_editable("Account", "Phone", false);
    for (i, o) in orgs.iter().enumerate() {
        h.prm.update(
            Collection::Organizations,
            o,
            json!({"phone": format!("+1 555 010{i}")}),
        );
    }
    let new = h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Org New", "phone": "+1 555 0109"}),
    );
    (orgs, new)
}

fn account_of(h: &Harness, org: &str) -> Option<String> {
    h.prm_get(Collection::Organizations, org)["crm_id"]
        .as_str()
        .map(str::to_string)
}

/// The phones reached their Accounts, the new organization has its Account, and the log
/// holds no record rejection.
async fn assert_phones_synced(h: &Harness, orgs: &[String], new: &str) {
    for (i, o) in orgs.iter().enumerate() {
        let account = account_of(h, o).expect("linked");
        assert_eq!(
            h.sf_str("Account", &account, "Phone"),
            Some(format!("+1 555 010{i}"))
        );
    }
    let account = account_of(h, new).expect("the new organization has its Account");
    assert_eq!(
        h.sf_str("Account", &account, "Phone").as_deref(),
        Some("+1 555 0109")
    );
    assert_eq!(h.sf_records("Account").len(), 4, "no twin");
    assert!(h.log(LogCode::CrmDataError).await.is_empty());
}

/// Exactly one setup entry, naming the object, the field and the fix, and no value.
async fn assert_one_setup_entry(h: &Harness) {
    let setup = h.log(LogCode::CrmSetupError).await;
    assert_eq!(setup.len(), 1, "one entry, not one per record: {setup:#?}");
    let m = &setup[0].message;
    assert!(m.contains("Phone") && m.contains("Account"), "{m}");
    assert!(
        m.contains(" record(s) (INVALID_FIELD_FOR_INSERT_UPDATE"),
        "{m}"
    );
    assert!(m.contains("Field-Level Security"), "{m}");
    assert!(!m.contains("+1 555"), "no value in the entry: {m}");
    assert!(h.log(LogCode::CrmDataError).await.is_empty());
}

#[tokio::test]
async fn a_field_the_user_may_not_edit_stops_the_run_once_and_the_next_run_after_the_fix_syncs_it()
{
    // GIVEN phones changed in the PRM while the integration user may not edit Phone
    let h = Harness::new().await;
    let (orgs, new) = phones_changed_without_access(&h).await;

    // WHEN the organizations sync runs
    let reports = h.sync().await;

    // THEN it stops failed for its setup, with one entry; no Account changed
    let orgs_run = &reports[0];
    assert_eq!(orgs_run.status, RunStatus::Failed, "{:?}", orgs_run.message);
    assert_eq!(orgs_run.failure, Some(FailureClass::Setup));
    assert_one_setup_entry(&h).await;
    for o in &orgs {
        let account = account_of(&h, o).unwrap();
        assert_eq!(h.sf_str("Account", &account, "Phone"), None);
    }
    assert_eq!(h.sf_records("Account").len(), 3);

    // WHEN the operator gives the access back and the next ordinary run goes
    h.sf.set_field_editable("Account", "Phone", true);
    let reports = h.sync().await;

    // THEN everything that waited is written, with no full run and nothing rejected
    assert_succeeded(&reports);
    assert_eq!(reports[0].mode, RunMode::Incremental);
    assert_phones_synced(&h, &orgs, &new).await;
    // and a run after it has nothing left to do
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.updated.crm + c.created.crm), 0);
}

#[tokio::test]
async fn through_the_lambda_workers_a_refused_field_is_one_entry_and_synced_after_the_fix() {
    // GIVEN the same refusal
    let h = Harness::new().await;
    let (orgs, new) = phones_changed_without_access(&h).await;

    // WHEN the Lambda deployment plans and works the run
    let out = h.lambda_sync(&h.ctx(), RunMode::Incremental).await;

    // THEN its workers wrote one setup entry, no Account changed, and the run closed
    // without dead chunks
    assert!(!out.closed.is_empty());
    assert_one_setup_entry(&h).await;
    assert_eq!(h.sf_records("Account").len(), 3);

    // WHEN access comes back and the next scheduled run goes
    h.sf.set_field_editable("Account", "Phone", true);
    h.lambda_sync(&h.ctx(), RunMode::Incremental).await;

    // THEN what waited is written
    assert_phones_synced(&h, &orgs, &new).await;
    assert_eq!(h.log(LogCode::CrmSetupError).await.len(), 1);
}
