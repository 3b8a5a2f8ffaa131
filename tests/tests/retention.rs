//! End-to-end: a cursor older than a side keeps its deletes (Salesforce's recycle bin 15
//! days, the PRM's tombstones 30 days) makes the next incremental run full, with a
//! `cursor_expired` entry, on one machine and through the planner and workers.

mod common;

use chrono::{Duration, Utc};
use common::*;
use prmsync_engine::store::{Cursors, Links};
use prmsync_engine::{LinkState, RunMode};
use prmsync_mapping::{Integration, Level, LogCode, ObjectKind};
use prmsync_simulators::prm::Collection;
use serde_json::json;

const BOTH: [Integration; 2] = [Integration::Organizations, Integration::People];

/// Sets one side's cursor of both integrations `days` old.
async fn age_cursor(h: &Harness, side: &str, days: i64) {
    for i in BOTH {
        h.store
            .set_cursor(i, side, Utc::now() - Duration::days(days))
            .await
            .unwrap();
    }
}

/// A linked Account with one Contact; returns (Contact Id, PRM person id).
async fn linked_contact(h: &Harness) -> (String, String) {
    let acc = h.account("Fabrikam", Some("Active Partner"), json!({}));
    let con = h.contact(&acc, "Old", "Cursor", "old@fabrikam.example");
    assert_succeeded(&h.sync().await);
    let person = h.sf_str("Contact", &con, "PRM_Id__c").unwrap();
    (con, person)
}

/// The Contact's deletion reached the PRM side as sync rule 7 says: the PRM person is
/// kept, the link disconnected and the deletion logged.
async fn assert_deleted_in_crm(h: &Harness, person: &str) {
    let p = h.prm_get(Collection::People, person);
    assert!(p["deleted_at"].is_null(), "the PRM person is kept");
    let links = h
        .store
        .find_links(ObjectKind::Person, &[], &[person.to_string()])
        .await
        .unwrap();
    assert_eq!(links[0].state, LinkState::Disconnected);
    let logged = h.log(LogCode::DeletedInCrm).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].prm_id.as_deref(), Some(person));
}

#[tokio::test]
async fn a_salesforce_cursor_older_than_the_recycle_bin_makes_the_next_run_full_and_logs_it() {
    // GIVEN a synced Contact deleted in Salesforce, and Salesforce cursors 16 days old
    let h = Harness::new().await;
    let (con, person) = linked_contact(&h).await;
    h.sf.delete("Contact", &con);
    age_cursor(&h, "crm", 16).await;

    // WHEN the next incremental run comes
    let reports = h.sync().await;

    // THEN both runs read everything, and say why
    assert_succeeded(&reports);
    for r in &reports {
        assert_eq!(r.mode, RunMode::Full, "{} run", r.integration);
    }
    let logged = h.log(LogCode::CursorExpired).await;
    assert_eq!(logged.len(), 2, "one entry per integration: {logged:?}");
    for e in &logged {
        assert_eq!(e.level, Level::Warning);
        assert!(e.message.contains("Salesforce cursor"), "{}", e.message);
        assert!(e.message.contains("16 days old"), "{}", e.message);
        assert!(e.message.contains("15 days"), "{}", e.message);
        assert!(e.message.contains("miss deletes"), "{}", e.message);
        assert!(e.message.contains("reads everything"), "{}", e.message);
        assert_eq!(e.details["expired"][0]["side"], "crm");
        assert!(!e.fix.is_empty());
    }
    // AND the Contact deleted in that period is handled as a delete
    assert_eq!(total(&reports, |c| c.disconnected), 1);
    assert_deleted_in_crm(&h, &person).await;

    // AND the cursors moved: the run after is incremental again, with nothing to log
    let again = h.sync().await;
    assert_succeeded(&again);
    for r in &again {
        assert_eq!(r.mode, RunMode::Incremental, "{} run", r.integration);
    }
    assert_eq!(h.log(LogCode::CursorExpired).await.len(), 2);
    assert_eq!(total(&again, |c| c.writes()), 0);
}

#[tokio::test]
async fn a_prm_cursor_older_than_its_tombstones_makes_the_next_run_full() {
    let h = Harness::new().await;
    linked_contact(&h).await;
    // 16 days is inside the PRM's 30: still incremental
    age_cursor(&h, "prm", 16).await;
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert!(reports.iter().all(|r| r.mode == RunMode::Incremental));
    assert!(h.log(LogCode::CursorExpired).await.is_empty());

    age_cursor(&h, "prm", 31).await;
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert!(reports.iter().all(|r| r.mode == RunMode::Full));
    let logged = h.log(LogCode::CursorExpired).await;
    assert_eq!(logged.len(), 2);
    assert!(
        logged[0].message.contains("PRM cursor") && logged[0].message.contains("30 days"),
        "{}",
        logged[0].message
    );
    assert_eq!(logged[0].details["expired"][0]["side"], "prm");
}

#[tokio::test]
async fn the_planner_reads_everything_after_an_expired_cursor_too() {
    // GIVEN an integration synced by the planner and workers, a Contact deleted in
    // Salesforce, and Salesforce cursors 16 days old
    let h = Harness::new().await;
    let acc = h.account("Contoso", Some("Active Partner"), json!({}));
    let con = h.contact(&acc, "Plan", "Ned", "planned@contoso.example");
    h.lambda_sync(&h.ctx(), RunMode::Incremental).await;
    let person = h.sf_str("Contact", &con, "PRM_Id__c").unwrap();
    h.sf.delete("Contact", &con);
    age_cursor(&h, "crm", 16).await;

    // WHEN the next incremental run is planned and worked
    let out = h.lambda_sync(&h.ctx(), RunMode::Incremental).await;

    // THEN both planned runs are full and logged, and the delete reaches the link
    assert_eq!(out.plans.len(), 2, "{:?}", out.plans);
    for p in &out.plans {
        assert_eq!(p.mode, RunMode::Full, "{} plan", p.integration);
    }
    // (people are planned as a follow-up of the organizations run, in its mode: full
    // was asked for, so only the organizations run has an expired cursor to report)
    let logged = h.log(LogCode::CursorExpired).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].integration, Integration::Organizations);
    assert_eq!(logged[0].run_id, out.plans[0].run_id);
    assert!(logged[0].message.contains("16 days old"));
    let disconnected: u64 = out
        .closed
        .iter()
        .map(|c| c.report.counts.disconnected)
        .sum();
    assert_eq!(disconnected, 1);
    assert_deleted_in_crm(&h, &person).await;
}

/// A Contact deleted in Salesforce and purged from the recycle bin (16 days later), with
/// Salesforce cursors as old: no read returns it any more, not even as a delete.
async fn purged_contact(h: &Harness) -> String {
    let (con, person) = linked_contact(h).await;
    h.sf.delete("Contact", &con);
    // past the recycle bin: queryAll no longer returns it
    h.sf.advance_clock(Duration::days(16));
    age_cursor(h, "crm", 16).await;
    person
}

#[tokio::test]
async fn a_record_purged_from_the_recycle_bin_is_found_by_the_run_that_reads_everything() {
    // GIVEN a linked Contact deleted and purged while the sync did not run
    let h = Harness::new().await;
    let person = purged_contact(&h).await;

    // WHEN the next run comes (full: its cursor is older than the recycle bin)
    let reports = h.sync().await;

    // THEN the link is disconnected and the deletion logged, as for any delete
    assert_succeeded(&reports);
    assert_eq!(reports[1].mode, RunMode::Full);
    assert_deleted_in_crm(&h, &person).await;
    // and the run after it does not log it again
    assert_succeeded(&h.sync().await);
    assert_eq!(h.log(LogCode::DeletedInCrm).await.len(), 1);
}

#[tokio::test]
async fn through_the_planner_and_workers_a_purged_record_is_found_by_a_full_run() {
    // GIVEN the same purged Contact
    let h = Harness::new().await;
    let person = purged_contact(&h).await;

    // WHEN the Lambda deployment runs (full: its cursor is older than the recycle bin)
    let out = h.lambda_sync(&h.ctx(), RunMode::Incremental).await;

    // THEN the workers disconnect its link and log the deletion
    assert!(out.closed.len() >= 2, "{:?}", out.closed.len());
    assert_deleted_in_crm(&h, &person).await;
}

/// A PRM person deleted while the sync did not run, whose tombstone expired (31 days), and
/// PRM cursors as old: no read returns it any more. Returns its Contact.
async fn person_gone_for_good(h: &Harness) -> String {
    let (con, person) = linked_contact(h).await;
    h.prm.delete(Collection::People, &person);
    h.prm.expire_tombstone(Collection::People, &person);
    assert!(h.prm.get(Collection::People, &person).is_none());
    age_cursor(h, "prm", 31).await;
    con
}

#[tokio::test]
async fn a_prm_record_whose_tombstone_expired_is_marked_deleted_by_the_run_that_reads_everything() {
    // GIVEN a linked person deleted in the PRM, its tombstone expired
    let h = Harness::new().await;
    let con = person_gone_for_good(&h).await;

    // WHEN the next run comes (full: its PRM cursor is older than the tombstones)
    let reports = h.sync().await;

    // THEN the Contact is kept and marked deleted, as for any PRM delete
    assert_succeeded(&reports);
    assert_eq!(reports[1].mode, RunMode::Full);
    assert_eq!(
        h.sf_str("Contact", &con, "PRM_Record_Status__c").as_deref(),
        Some("Contact (Deleted)")
    );
    assert_eq!(h.log(LogCode::DeletedInPrm).await.len(), 1);
}

#[tokio::test]
async fn through_the_planner_and_workers_an_expired_tombstone_is_marked_deleted_too() {
    let h = Harness::new().await;
    let con = person_gone_for_good(&h).await;
    h.lambda_sync(&h.ctx(), RunMode::Incremental).await;
    assert_eq!(
        h.sf_str("Contact", &con, "PRM_Record_Status__c").as_deref(),
        Some("Contact (Deleted)")
    );
    assert_eq!(h.log(LogCode::DeletedInPrm).await.len(), 1);
}
