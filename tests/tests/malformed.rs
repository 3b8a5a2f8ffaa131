//! End-to-end: a PRM record the engine cannot read fails alone. It is logged with its id,
//! the rest of its page syncs, and the cursor moves past the good records.

mod common;

use common::*;
use prmsync_engine::context::{RunMode, PRM_SIDE};
use prmsync_engine::store::Cursors;
use prmsync_mapping::{Integration, Level, LogCode};
use prmsync_simulators::prm::Collection;
use serde_json::json;

fn account_named(h: &Harness, name: &str) -> bool {
    h.sf_records("Account")
        .iter()
        .any(|a| a["Name"].as_str() == Some(name))
}

#[tokio::test]
async fn a_malformed_prm_record_fails_alone_and_the_rest_of_its_page_syncs() {
    // GIVEN four PRM organizations on one page, two of which the PRM serves malformed:
    // a crm_id that is a number, and an updated_at that is not a timestamp (no overlap,
    // so that a record before the cursor is not read again)
    let mut mapping = prmsync_mapping::MappingConfig::default();
    mapping.sync.overlap_seconds = 0;
    let h = Harness::with_mapping(mapping).await;
    h.org("partner", "active", "Alpha");
    let bad_crm = h.org("partner", "active", "Bravo");
    let bad_time = h.org("partner", "active", "Charlie");
    let delta = h.org("partner", "active", "Delta");
    h.prm
        .set_raw(Collection::Organizations, &bad_crm, "crm_id", json!(5));
    h.prm.set_raw(
        Collection::Organizations,
        &bad_time,
        "updated_at",
        json!("yesterday"),
    );

    let delta_at: chrono::DateTime<chrono::Utc> = h.prm_get(Collection::Organizations, &delta)
        ["updated_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // WHEN the sync runs
    let reports = h.sync().await;

    // THEN the run succeeds and the good records of the page are in Salesforce
    assert_succeeded(&reports);
    assert!(account_named(&h, "Alpha"));
    assert!(account_named(&h, "Delta"));
    assert!(!account_named(&h, "Bravo"));
    assert!(!account_named(&h, "Charlie"));
    assert_eq!(reports[0].counts.errors, 2, "{:?}", reports[0].counts);
    // and each malformed record has its entry, with its id, the problem and the fix
    let entries = h.log(LogCode::PrmRecordMalformed).await;
    assert_eq!(entries.len(), 2, "{entries:#?}");
    // the field named, the value it held masked (docs/integration-log.md)
    for (id, problem) in [(&bad_crm, "crm_id"), (&bad_time, "updated_at 'y***'")] {
        let e = entries
            .iter()
            .find(|e| e.prm_id.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no entry for {id}: {entries:#?}"));
        assert_eq!(e.level, Level::Error);
        assert_eq!(e.integration, Integration::Organizations);
        assert!(e.message.contains(id.as_str()), "{}", e.message);
        assert!(e.message.contains(problem), "{}", e.message);
        assert!(!e.fix.is_empty());
    }
    // and the PRM cursor moved to the newest record read
    let cursor = h
        .store
        .cursor(Integration::Organizations, PRM_SIDE)
        .await
        .unwrap();
    assert_eq!(cursor, Some(delta_at));

    // WHEN the first record is corrected in the PRM and the sync runs again
    h.prm
        .update(Collection::Organizations, &bad_crm, json!({"crm_id": null}));
    let reports = h.sync().await;

    // THEN it syncs, and the record still malformed (not changed since) is not read again
    assert_succeeded(&reports);
    assert!(account_named(&h, "Bravo"));
    assert!(!account_named(&h, "Charlie"));
    assert_eq!(h.log(LogCode::PrmRecordMalformed).await.len(), 2);
}

#[tokio::test]
async fn a_malformed_prm_record_fails_alone_when_the_planner_reads_it() {
    // GIVEN two PRM organizations, one with a crm_id that is a number
    let h = Harness::new().await;
    h.org("partner", "active", "Alpha");
    let bad = h.org("partner", "active", "Bravo");
    h.prm
        .set_raw(Collection::Organizations, &bad, "crm_id", json!(["001"]));

    // WHEN a run on AWS plans and works it
    let out = h.lambda_sync(&h.ctx(), RunMode::Incremental).await;

    // THEN the good record syncs, the bad one is logged once with its id, the run closes
    assert!(!out.closed.is_empty(), "{:?}", out.plans);
    assert!(account_named(&h, "Alpha"));
    assert!(!account_named(&h, "Bravo"));
    let entries = h.log(LogCode::PrmRecordMalformed).await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].prm_id.as_deref(), Some(bad.as_str()));
}
