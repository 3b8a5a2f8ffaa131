//! End-to-end: Salesforce Ids in their 15-character form name the same records as their
//! 18-character form.

mod common;

use common::*;
use prmsync_engine::store::Links;
use prmsync_mapping::ObjectKind;
use prmsync_simulators::prm::Collection;
use serde_json::json;

#[tokio::test]
async fn a_crm_id_typed_in_fifteen_characters_links_to_its_account() {
    // GIVEN a flagged Account and a PRM organization whose crm_id holds the 15-character
    // form of the Account's Id (typed by hand), with nothing else in common
    let h = Harness::new().await;
    let acc = h.account(
        "Northwind Traders",
        Some("Active Partner"),
        json!({"Website": "https://northwind.example"}),
    );
    assert_eq!(acc.len(), 18);
    let org = h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "NW Trading (EMEA)",
               "website": "nw-emea.example", "crm_id": &acc[..15]}),
    );

    // WHEN the sync runs
    let reports = h.sync().await;

    // THEN the organization is linked to that Account: no twin on either side
    assert_succeeded(&reports);
    assert_eq!(h.sf_records("Account").len(), 1, "no twin Account");
    assert_eq!(
        h.prm.list(Collection::Organizations).len(),
        1,
        "no twin organization"
    );
    assert_eq!(h.sf_str("Account", &acc, "PRM_Id__c"), Some(org.clone()));
    // and the link holds the 18-character Id
    let links = h
        .store
        .find_links(ObjectKind::Organization, &[], std::slice::from_ref(&org))
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].crm_id, acc);
    let by_long = h
        .store
        .find_links(ObjectKind::Organization, std::slice::from_ref(&acc), &[])
        .await
        .unwrap();
    assert_eq!(by_long.len(), 1);

    // WHEN it runs again over unchanged data THEN nothing is written
    let again = h.sync().await;
    assert_succeeded(&again);
    assert_eq!(total(&again, |c| c.created.crm + c.created.prm), 0);
    assert_eq!(total(&again, |c| c.updated.crm + c.updated.prm), 0);
    assert_eq!(h.sf_records("Account").len(), 1);
}
