//! One record is never written twice in one call: a pair held by two passes of one run (a
//! link marked for a retry whose record also changed) is merged into one write.

mod common;

use common::*;
use prmsync_mapping::LogCode;
use prmsync_simulators::prm::Collection;
use serde_json::json;

#[tokio::test]
async fn a_contact_waiting_for_its_account_that_changes_again_is_written_once() {
    // GIVEN a Contact linked to a PRM person, and a second Account linked to a PRM
    // organization.
    let h = Harness::new().await;
    let home = h.account("Home Co", Some("Active Partner"), json!({}));
    let next = h.account("Next Co", Some("Active Partner"), json!({}));
    let contact = h.contact(&home, "Ada", "Lovelace", "ada@home.example");
    assert_succeeded(&h.sync().await);
    let next_org = h.sf_str("Account", &next, "PRM_Id__c").expect("linked");
    let person = h.sf_str("Contact", &contact, "PRM_Id__c").expect("linked");

    // The second Account stops syncing; the person moves to its organization in the PRM
    // while the Contact changes in Salesforce: the Contact waits for its Account (marked
    // for a retry).
    h.sf.update("Account", &next, obj(json!({"PRM_Sync__c": false})));
    assert_succeeded(&h.sync().await);
    h.prm.update(
        Collection::People,
        &person,
        json!({"organization_id": next_org}),
    );
    h.sf.update("Contact", &contact, obj(json!({"Title": "Engineer"})));
    // A later change moves the Contacts cursor past the Contact's, so the next run does
    // not read the Contact again as a change.
    h.sf.advance_clock(chrono::Duration::minutes(10));
    h.contact(&home, "Bob", "Later", "bob@home.example");
    assert_succeeded(&h.sync().await);
    assert_eq!(h.log(LogCode::AccountNotLinked).await.len(), 1);
    assert_eq!(
        h.sf_str("Contact", &contact, "AccountId").as_deref(),
        Some(home.as_str())
    );

    // WHEN the Account syncs again and the person changes in the PRM once more.
    h.sf.update("Account", &next, obj(json!({"PRM_Sync__c": true})));
    h.prm
        .update(Collection::People, &person, json!({"phone": "+1 555 0199"}));
    h.sf.reset_api_calls();
    let reports = h.sync().await;

    // THEN the Contact is written once, with both changes, and nothing failed.
    assert_succeeded(&reports);
    let c = h.sf_get("Contact", &contact);
    assert_eq!(c["AccountId"], json!(next));
    assert_eq!(c["Phone"], json!("+1 555 0199"));
    assert!(h.log(LogCode::CrmDataError).await.is_empty());
    assert_eq!(total(&reports, |c| c.errors), 0);
    let people = &reports[1].counts;
    assert_eq!(people.updated.crm, 1);
    let calls = h.sf.api_calls();
    assert_eq!(
        calls.kind("composite_update"),
        1,
        "one Collection, the Contact once: {:?}",
        calls.by_kind
    );

    // And a run after it writes nothing.
    h.sf.reset_api_calls();
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.updated.crm + c.updated.prm), 0);
    assert_eq!(h.sf.api_calls().kind("composite_update"), 0);
}
