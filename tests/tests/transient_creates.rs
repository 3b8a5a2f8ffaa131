//! A create that keeps failing for a passing reason is retried through the durable retry
//! set until it lands, though the record never changes again: a new PRM organization whose
//! Account Salesforce keeps locked (`UNABLE_TO_LOCK_ROW`), and a new flagged Account whose
//! PRM create keeps getting 503. On one machine the next runs take it; through the Lambda
//! workers it is handed out again on its own. Either way exactly one record is created.

mod common;

use common::*;
use prmsync_engine::store::RetrySet;
use prmsync_engine::RunMode;
use prmsync_mapping::{LogCode, MappingConfig, ObjectKind};
use prmsync_simulators::prm::Collection;
use serde_json::json;

/// Client-level attempts of one engine-level write (the clients' own retries included).
const CALLS_PER_ATTEMPT: usize = 5;

enum Direction {
    /// A new PRM organization, its Account upsert locked.
    ToSalesforce,
    /// A new flagged Account, its PRM create answered 503.
    ToPrm,
}

fn harness_mapping() -> MappingConfig {
    let mut mapping = MappingConfig::default();
    mapping.sync.retry_delay_seconds = 0;
    mapping
}

/// One linked pair first (so the runs after it are incremental), then the new record
/// whose create fails `attempts` engine-level attempts in a row. Returns its id.
async fn new_record_that_keeps_failing(
    h: &Harness,
    direction: &Direction,
    attempts: usize,
) -> String {
    h.org("partner", "active", "Settled Org");
    assert_succeeded(&h.sync().await);
    match direction {
        Direction::ToSalesforce => {
            let org = h.org("partner", "active", "Locked Org");
            for _ in 0..attempts * CALLS_PER_ATTEMPT {
                h.sf.faults().fail_record_write(
                    &org,
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access to this record",
                );
            }
            org
        }
        Direction::ToPrm => {
            let account = h.account("Busy Co", Some("Active Partner"), json!({}));
            for _ in 0..attempts * CALLS_PER_ATTEMPT {
                h.prm
                    .faults()
                    .fail_nth(Some("organizations.create"), 1, 503, "internal");
            }
            account
        }
    }
}

/// Exactly one record on the other side, linked both ways; each failed attempt logged
/// with a fix that says what happens; the retry set empty; nothing more to do.
async fn assert_created_once(h: &Harness, direction: &Direction, id: &str, failed: usize) {
    match direction {
        Direction::ToSalesforce => {
            let accounts: Vec<_> = h
                .sf_records("Account")
                .into_iter()
                .filter(|a| a["PRM_Id__c"] == json!(id))
                .collect();
            assert_eq!(accounts.len(), 1, "one Account for the organization");
            assert_eq!(
                h.prm_get(Collection::Organizations, id)["crm_id"],
                accounts[0]["Id"]
            );
        }
        Direction::ToPrm => {
            let orgs = h.prm_by_crm(Collection::Organizations, id);
            assert_eq!(orgs.len(), 1, "one PRM organization for the Account");
            assert_eq!(
                h.sf_str("Account", id, "PRM_Id__c").as_deref(),
                orgs[0]["id"].as_str()
            );
        }
    }
    assert_eq!(h.sf_records("Account").len(), 2);
    assert_eq!(h.prm.list(Collection::Organizations).len(), 2);
    let retried = h.log(LogCode::RecordRetried).await;
    assert_eq!(retried.len(), failed, "{retried:#?}");
    let transient = h.log(LogCode::TransientError).await;
    assert_eq!(transient.len(), failed);
    assert!(
        transient[0].fix.contains("retry set") && transient[0].fix.contains("parked"),
        "the fix says what really happens: {}",
        transient[0].fix
    );
    assert!(h.log(LogCode::RecordParked).await.is_empty());
    assert!(h
        .store
        .all_retries(ObjectKind::Organization)
        .await
        .unwrap()
        .is_empty());
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.writes()), 0);
}

async fn on_one_machine(direction: Direction) {
    // GIVEN a new record whose create fails on two runs in a row
    let h = Harness::with_mapping(harness_mapping()).await;
    let id = new_record_that_keeps_failing(&h, &direction, 2).await;

    // WHEN three ordinary runs go, the record changing in none of them
    for run in 1..=3 {
        let reports = h.sync().await;
        assert_succeeded(&reports);
        let created = total(&reports, |c| c.created.crm + c.created.prm);
        assert_eq!(created, u64::from(run == 3), "run {run}");
    }

    // THEN the third created it, once
    assert_created_once(&h, &direction, &id, 2).await;
}

async fn through_lambda(direction: Direction) {
    // GIVEN the same record
    let h = Harness::with_mapping(harness_mapping()).await;
    let id = new_record_that_keeps_failing(&h, &direction, 2).await;

    // WHEN one scheduled run is planned and the workers work the queue, retries included
    let out = h.lambda_sync(&h.ctx(), RunMode::Incremental).await;

    // THEN the record was handed out again on its own until it landed
    assert_eq!(out.chunks.iter().map(|c| c.retried).sum::<u64>(), 2);
    assert_created_once(&h, &direction, &id, 2).await;
}

#[tokio::test]
async fn a_locked_account_create_is_retried_by_the_next_runs_until_it_lands() {
    on_one_machine(Direction::ToSalesforce).await;
}

#[tokio::test]
async fn a_prm_create_answered_503_is_retried_by_the_next_runs_until_it_lands() {
    on_one_machine(Direction::ToPrm).await;
}

#[tokio::test]
async fn through_the_workers_a_locked_account_create_is_handed_out_again_until_it_lands() {
    through_lambda(Direction::ToSalesforce).await;
}

#[tokio::test]
async fn through_the_workers_a_prm_create_answered_503_is_handed_out_again_until_it_lands() {
    through_lambda(Direction::ToPrm).await;
}
