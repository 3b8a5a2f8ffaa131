//! Parent cycles: parents set on both sides that would loop once merged are not written;
//! the loop is logged, the other fields sync, and the records wait until they change.

mod common;

use common::*;
use prmsync_mapping::LogCode;
use prmsync_simulators::prm::Collection;
use serde_json::{json, Value};

#[tokio::test]
async fn parents_that_would_loop_are_logged_not_written_and_not_tried_again_until_changed() {
    // GIVEN two linked organizations without parents.
    let h = Harness::new().await;
    let a = h.account("Alpha Co", Some("Active Partner"), json!({}));
    let b = h.account("Beta Co", Some("Active Partner"), json!({}));
    assert_succeeded(&h.sync().await);
    let org_a = h.sf_str("Account", &a, "PRM_Id__c").expect("linked");
    let org_b = h.sf_str("Account", &b, "PRM_Id__c").expect("linked");

    // A's parent becomes B in Salesforce, B's parent becomes A in the PRM: neither side
    // loops alone, their merge would. Each record also changes a plain field.
    h.sf.update(
        "Account",
        &a,
        obj(json!({"ParentId": b, "Phone": "+1 555 0101"})),
    );
    h.prm.update(
        Collection::Organizations,
        &org_b,
        json!({"parent_id": org_a, "phone": "+1 555 0102"}),
    );

    // WHEN the organizations sync.
    let reports = h.sync().await;

    // THEN no parent is written, the loop is logged for both records naming both, and
    // the other fields synced.
    assert_succeeded(&reports);
    assert_eq!(
        h.prm_get(Collection::Organizations, &org_a)["parent_id"],
        Value::Null
    );
    assert_eq!(h.sf_str("Account", &b, "ParentId"), None);
    assert_eq!(
        h.prm_get(Collection::Organizations, &org_a)["phone"],
        json!("+1 555 0101")
    );
    assert_eq!(
        h.sf_str("Account", &b, "Phone").as_deref(),
        Some("+1 555 0102")
    );
    let entries = h.log(LogCode::ParentCycle).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let mut named: Vec<&str> = entries.iter().filter_map(|e| e.crm_id.as_deref()).collect();
    named.sort();
    let mut both = vec![a.as_str(), b.as_str()];
    both.sort();
    assert_eq!(named, both);
    for e in &entries {
        for id in [&a, &b, &org_a, &org_b] {
            assert!(e.message.contains(id.as_str()), "{}", e.message);
        }
    }
    assert!(h.log(LogCode::CrmDataError).await.is_empty());
    assert!(h.log(LogCode::PrmValidationFailed).await.is_empty());
    assert_eq!(total(&reports, |c| c.errors), 2);

    // WHEN nothing changes, the loop is not tried again: no write, no new entry (a run
    // reads its own writes back once).
    for _ in 0..2 {
        h.sf.reset_api_calls();
        h.prm.reset_api_calls();
        assert_succeeded(&h.sync().await);
    }
    assert_eq!(h.sf.api_calls().kind("composite_update"), 0);
    assert_eq!(h.prm.api_calls().writes(), 0);
    assert_eq!(h.log(LogCode::ParentCycle).await.len(), 2);

    // WHEN the loop is broken in Salesforce (A has no parent) and a full run reads
    // everything, B's parent from the PRM goes to Salesforce.
    h.sf.update("Account", &a, obj(json!({"ParentId": null})));
    assert_succeeded(&h.sync_full().await);
    assert_eq!(
        h.sf_str("Account", &b, "ParentId").as_deref(),
        Some(a.as_str())
    );
    assert_eq!(
        h.prm_get(Collection::Organizations, &org_a)["parent_id"],
        Value::Null
    );
    assert_eq!(h.log(LogCode::ParentCycle).await.len(), 2);
}

#[tokio::test]
async fn a_parent_that_closes_a_longer_loop_through_synced_parents_is_not_written() {
    // GIVEN A under B under C, synced.
    let h = Harness::new().await;
    let c = h.account("Gamma Co", Some("Active Partner"), json!({}));
    let b = h.account("Beta Co", Some("Active Partner"), json!({"ParentId": c}));
    let a = h.account("Alpha Co", Some("Active Partner"), json!({"ParentId": b}));
    assert_succeeded(&h.sync().await);
    let org_a = h.sf_str("Account", &a, "PRM_Id__c").expect("linked");
    let org_c = h.sf_str("Account", &c, "PRM_Id__c").expect("linked");
    assert_eq!(
        h.prm_get(Collection::Organizations, &org_a)["parent_id"],
        json!(h.sf_str("Account", &b, "PRM_Id__c").unwrap())
    );

    // WHEN C's parent becomes A in Salesforce (only C changed).
    h.sf.update("Account", &c, obj(json!({"ParentId": a})));
    let reports = h.sync().await;

    // THEN the PRM keeps C at the top, and the loop of three is logged once.
    assert_succeeded(&reports);
    assert_eq!(
        h.prm_get(Collection::Organizations, &org_c)["parent_id"],
        Value::Null
    );
    assert!(h.log(LogCode::PrmValidationFailed).await.is_empty());
    let entries = h.log(LogCode::ParentCycle).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].crm_id.as_deref(), Some(c.as_str()));
    for id in [&a, &b, &c] {
        assert!(
            entries[0].message.contains(id.as_str()),
            "{}",
            entries[0].message
        );
    }
    h.prm.reset_api_calls();
    assert_succeeded(&h.sync().await);
    assert_eq!(h.prm.api_calls().writes(), 0);
    assert_eq!(h.log(LogCode::ParentCycle).await.len(), 1);
}
