//! End-to-end: a one-machine run renews its lease while it lives, so a run longer than
//! the lease's TTL still keeps other runs out; a run whose lease another run took over
//! stops before its next write.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use common::*;
use prmsync_engine::ports::Crm;
use prmsync_engine::store::{Cursors, Leases};
use prmsync_engine::{run_integration, RunMode, RunOptions, RunStatus, SyncContext};
use prmsync_mapping::{Integration, LogCode};
use prmsync_simulators::prm::Collection;
use serde_json::json;
use tokio::sync::Notify;

/// The lease's TTL in these tests: runs are held far longer than this.
const TTL_MS: i64 = 300;

#[async_trait]
impl CrmHooks for Gate {
    async fn before_change_read(&self) {
        self.gate().await;
    }
}

/// Where Salesforce's change reads wait until the test opens it: a run held there is
/// alive, between its reads and its writes, for as long as the test likes.
struct Gate {
    /// Set once a read reached the gate.
    reached: AtomicBool,
    open: Notify,
    opened: AtomicBool,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            reached: AtomicBool::new(false),
            open: Notify::new(),
            opened: AtomicBool::new(false),
        })
    }

    async fn gate(&self) {
        self.reached.store(true, Ordering::SeqCst);
        while !self.opened.load(Ordering::SeqCst) {
            let notified = self.open.notified();
            if self.opened.load(Ordering::SeqCst) {
                break;
            }
            notified.await;
        }
    }

    fn open(&self) {
        self.opened.store(true, Ordering::SeqCst);
        self.open.notify_waiters();
    }

    /// Waits (polling, with a deadline) until a run is held at the gate.
    async fn wait_reached(&self) {
        poll("the run to reach the gate", || {
            self.reached.load(Ordering::SeqCst)
        })
        .await;
    }
}

/// Polls `done` until it holds, failing the test after 10 seconds.
async fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A context of `holder` with a lease of [`TTL_MS`].
fn ctx_of(h: &Harness, crm: Arc<dyn Crm>, holder: &str) -> SyncContext {
    let mut ctx = h.ctx_with(crm, h.prm_client.clone());
    ctx.holder = holder.into();
    ctx.lease_ttl = chrono::Duration::milliseconds(TTL_MS);
    ctx
}

fn options() -> RunOptions {
    RunOptions {
        mode: RunMode::Incremental,
        dry_run: false,
        run_id: None,
        allow_mass_change: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_its_lease_keeps_it_and_a_second_run_is_skipped() {
    // GIVEN a run of organizations held between its reads and its writes
    let h = Harness::new().await;
    h.account("Litware", Some("Active Partner"), json!({}));
    let gated = Gate::new();
    let first_ctx = ctx_of(
        &h,
        HookedCrm::wrap(h.crm_client.clone(), gated.clone()),
        "first",
    );
    let first = tokio::spawn(async move {
        run_integration(&first_ctx, Integration::Organizations, options()).await
    });
    gated.wait_reached().await;

    // WHEN several TTLs pass and a second run starts
    let ttl = Duration::from_millis(TTL_MS as u64);
    tokio::time::sleep(ttl * 4).await;
    let second_ctx = ctx_of(&h, h.crm_client.clone(), "second");
    let second = run_integration(&second_ctx, Integration::Organizations, options()).await;

    // THEN the second run is skipped: the first one's lease was renewed
    assert_eq!(
        second.status,
        RunStatus::SkippedLeaseHeld,
        "{:?}",
        second.message
    );
    assert_eq!(h.log(LogCode::RunSkippedLeaseHeld).await.len(), 1);

    // AND the first run, let go, finishes and writes
    gated.open();
    let first = first.await.unwrap();
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.message);
    assert_eq!(first.counts.created.prm, 1);
    assert!(h.log(LogCode::LeaseLost).await.is_empty());
    assert_eq!(h.prm.list(Collection::Organizations).len(), 1);

    // AND its lease went with it: the next run runs (and its renewals have stopped, or
    // the second holder would be refused)
    let third = run_integration(&second_ctx, Integration::Organizations, options()).await;
    assert_eq!(third.status, RunStatus::Succeeded, "{:?}", third.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_taken_over_stops_before_its_next_write() {
    // GIVEN a run of organizations held between its reads and its writes
    let h = Harness::new().await;
    let acc = h.account("Adatum", Some("Active Partner"), json!({}));
    let gated = Gate::new();
    let first_ctx = ctx_of(
        &h,
        HookedCrm::wrap(h.crm_client.clone(), gated.clone()),
        "first",
    );
    let first = tokio::spawn(async move {
        run_integration(&first_ctx, Integration::Organizations, options()).await
    });
    gated.wait_reached().await;

    // WHEN another holder takes its lease over (as after a stall longer than the TTL)
    let i = Integration::Organizations;
    h.store.release_lease(i, "first").await.unwrap();
    let later = Utc::now() + chrono::Duration::minutes(5);
    assert!(h.store.acquire_lease(i, "other", later).await.unwrap());
    // the first run's next renewal finds it taken
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.log(LogCode::LeaseLost).await.is_empty() {
        assert!(Instant::now() < deadline, "no lease_lost entry");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gated.open();
    let first = first.await.unwrap();

    // THEN the run failed without writing anything, and its cursors did not move
    assert_eq!(first.status, RunStatus::Failed);
    let message = first.message.unwrap_or_default();
    assert!(message.contains("lease was lost"), "{message}");
    assert_eq!(first.counts.writes(), 0);
    assert!(h.prm.list(Collection::Organizations).is_empty());
    assert!(h.sf_str("Account", &acc, "PRM_Id__c").is_none());
    assert_eq!(h.store.cursor(i, "crm").await.unwrap(), None);
    let lost = h.log(LogCode::LeaseLost).await;
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].run_id, first.run_id);
    assert!(lost[0].message.contains("before its next write"));
    assert_eq!(h.log(LogCode::RunFailed).await.len(), 1);

    // AND the lease stays with the run that took it over
    assert!(!h.store.acquire_lease(i, "first", later).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planner_whose_lease_is_taken_over_queues_nothing_more() {
    // GIVEN a planner held at its Salesforce read
    let h = Harness::new().await;
    h.account("Tailspin", Some("Active Partner"), json!({}));
    let gated = Gate::new();
    let ctx = ctx_of(
        &h,
        HookedCrm::wrap(h.crm_client.clone(), gated.clone()),
        "planner",
    );
    let queue = Arc::new(ListQueue::default());
    let plan = {
        let queue = queue.clone();
        tokio::spawn(async move {
            let request = prmsync_engine::planner::PlanRequest::new(
                Integration::Organizations,
                RunMode::Incremental,
                "plan-1",
            );
            prmsync_engine::planner::plan_run(&ctx, Some(queue.as_ref()), &request).await
        })
    };
    gated.wait_reached().await;

    // WHEN another planner takes its lease over
    let i = Integration::Organizations;
    h.store.release_lease(i, "planner").await.unwrap();
    let later = Utc::now() + chrono::Duration::minutes(5);
    assert!(h.store.acquire_lease(i, "other", later).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.log(LogCode::LeaseLost).await.is_empty() {
        assert!(Instant::now() < deadline, "no lease_lost entry");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gated.open();

    // THEN it fails without queueing the page it read
    let err = plan.await.unwrap().expect_err("the planner fails");
    assert!(err.to_string().contains("lease was lost"), "{err}");
    assert!(queue.take().is_empty());
    assert_eq!(h.log(LogCode::RunFailed).await.len(), 1);
}
