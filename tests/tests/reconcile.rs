//! End-to-end: the reconcile (sync rule 13). Changes the cursors cannot see — a Salesforce
//! value that changed without moving SystemModstamp (a formula field), a PRM change whose
//! `updated_at` is older than the cursor window (a late commit) — are missed by the
//! incremental runs; a reconcile reads both sides of everything, repairs them, reports the
//! drift per object in its report, its run record and the Integration Log, and never
//! moves a cursor back. On one machine and through the planner and workers.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::drift::*;
use common::*;
use prmsync_engine::frame::READ_ALL_MARK;
use prmsync_engine::reconcile::scheduled_mode;
use prmsync_engine::store::{Cursors, Runs};
use prmsync_engine::RunMode;
use prmsync_mapping::{Integration, Level, LogCode, MappingConfig};
use prmsync_simulators::prm::Collection;

/// Nothing of the drift has reached the other side.
fn assert_not_repaired(h: &Harness, l: &Linked) {
    assert_eq!(
        h.prm_get(Collection::Organizations, &l.org_a)["phone"],
        "+1 555 0100"
    );
    assert!(h.prm_get(Collection::People, &l.person_a)["title"].is_null());
    assert_eq!(
        h.sf_str("Account", &l.acc_b, "Phone").as_deref(),
        Some("+1 555 0200")
    );
    assert_eq!(h.sf_str("Contact", &l.con_b, "Title"), None);
}

/// Every drifted value is on both sides.
fn assert_repaired(h: &Harness, l: &Linked) {
    assert_eq!(
        h.prm_get(Collection::Organizations, &l.org_a)["phone"],
        "+1 555 0199"
    );
    assert_eq!(
        h.prm_get(Collection::People, &l.person_a)["title"],
        "Countess"
    );
    assert_eq!(
        h.sf_str("Account", &l.acc_b, "Phone").as_deref(),
        Some("+1 555 0299")
    );
    assert_eq!(
        h.sf_str("Contact", &l.con_b, "Title").as_deref(),
        Some("Foreman")
    );
}

async fn cursors(h: &Harness) -> Vec<Option<DateTime<Utc>>> {
    let mut out = Vec::new();
    for i in BOTH {
        for side in ["crm", "prm"] {
            out.push(h.store.cursor(i, side).await.unwrap());
        }
    }
    out
}

async fn marks(h: &Harness) -> Vec<Option<DateTime<Utc>>> {
    let mut out = Vec::new();
    for i in BOTH {
        out.push(h.store.cursor(i, READ_ALL_MARK).await.unwrap());
    }
    out
}

/// The `reconcile_drift` entries, one per object, each with its drift.
async fn drift_entries(h: &Harness) -> Vec<(Integration, Level, u64)> {
    let mut out: Vec<_> = h
        .log(LogCode::ReconcileDrift)
        .await
        .into_iter()
        .map(|e| {
            assert!(!e.fix.is_empty());
            (e.integration, e.level, e.details["drift"].as_u64().unwrap())
        })
        .collect();
    out.sort_by_key(|(i, _, _)| i.as_str());
    out
}

#[tokio::test]
async fn a_reconcile_repairs_what_the_incremental_runs_missed_and_reports_the_drift() {
    // GIVEN linked records, and per object a Salesforce value changed without moving
    // SystemModstamp and a PRM value committed late
    let h = Harness::new().await;
    let l = linked(&h).await;
    drift(&h, &l);

    // WHEN an incremental run comes, THEN it misses them
    let incremental = h.sync().await;
    assert_succeeded(&incremental);
    assert!(incremental.iter().all(|r| r.mode == RunMode::Incremental));
    assert_eq!(total(&incremental, |c| c.writes()), 0);
    assert_eq!(
        total(&incremental, |c| c.drift),
        0,
        "only a reconcile reports drift"
    );
    assert_not_repaired(&h, &l);

    // WHEN a reconcile runs
    let before = cursors(&h).await;
    let reports = reconcile(&h, false).await;

    // THEN it repairs all four, and reports a drift of 2 per object
    assert_succeeded(&reports);
    assert_repaired(&h, &l);
    for r in &reports {
        assert_eq!(r.mode, RunMode::Reconcile, "{}", r.integration);
        assert_eq!(r.counts.drift, 2, "{}: {:?}", r.integration, r.counts);
        assert_eq!(r.counts.updated.crm, 1, "{}", r.integration);
        assert_eq!(r.counts.updated.prm, 1, "{}", r.integration);
        // AND the run history keeps it as a reconcile with its drift
        let run = h.store.last_run(r.integration).await.unwrap().unwrap();
        assert_eq!((run.mode, run.counts.drift), (RunMode::Reconcile, 2));
    }
    // AND the Integration Log has one warning per object saying so, and its run-finished
    // entries carry the drift
    assert_eq!(
        drift_entries(&h).await,
        vec![
            (Integration::Organizations, Level::Warning, 2),
            (Integration::People, Level::Warning, 2),
        ]
    );
    let finished = h.log(LogCode::RunFinished).await;
    let reconciled: Vec<_> = finished
        .iter()
        .filter(|e| e.message.starts_with("reconcile run"))
        .collect();
    assert_eq!(reconciled.len(), 2, "{finished:?}");
    assert!(reconciled.iter().all(|e| e.details["drift"] == 2));
    // AND no cursor moved back
    let after = cursors(&h).await;
    for (b, a) in before.iter().zip(&after) {
        assert!(a >= b, "a cursor moved back: {before:?} -> {after:?}");
    }

    // WHEN the next incremental run comes, THEN it finds everything in step
    let next = h.sync().await;
    assert_succeeded(&next);
    assert_repaired(&h, &l);
}

#[tokio::test]
async fn a_reconcile_without_drift_reports_zero_and_writes_nothing() {
    // GIVEN linked records in step
    let h = Harness::new().await;
    let _l = linked(&h).await;
    let state_before = state(&h);
    let prm_writes = h.prm.api_calls().writes();
    let sf_calls = h.sf.api_calls();

    // WHEN a reconcile runs
    let reports = reconcile(&h, false).await;

    // THEN it reports no drift, writes nothing, and logs an info per object
    assert_succeeded(&reports);
    for r in &reports {
        assert_eq!(r.mode, RunMode::Reconcile);
        assert_eq!(r.counts.drift, 0);
        assert_eq!(r.counts.writes(), 0, "{:?}", r.counts);
        assert!(r.counts.unchanged > 0);
    }
    assert_eq!(state(&h), state_before);
    assert_eq!(h.prm.api_calls().writes(), prm_writes);
    let sf_after = h.sf.api_calls();
    for kind in ["composite_update", "composite_create", "composite_upsert"] {
        assert_eq!(sf_after.kind(kind), sf_calls.kind(kind), "{kind}");
    }
    assert_eq!(
        drift_entries(&h).await,
        vec![
            (Integration::Organizations, Level::Info, 0),
            (Integration::People, Level::Info, 0),
        ]
    );
}

#[tokio::test]
async fn a_dry_run_reconcile_reports_what_it_would_repair_and_writes_nothing() {
    // GIVEN drift the incremental runs missed
    let h = Harness::new().await;
    let l = linked(&h).await;
    drift(&h, &l);
    assert_succeeded(&h.sync().await);
    let state_before = state(&h);
    let cursors_before = cursors(&h).await;
    let marks_before = marks(&h).await;

    // WHEN a reconcile runs dry
    let reports = reconcile(&h, true).await;

    // THEN it counts the drift and plans the four repairs, and changes nothing
    assert_succeeded(&reports);
    for r in &reports {
        assert!(r.dry_run);
        assert_eq!(r.counts.drift, 2, "{}: {:?}", r.integration, r.counts);
        assert_eq!(r.planned.len(), 2, "{}: {:?}", r.integration, r.planned);
    }
    let planned: Vec<_> = reports.iter().flat_map(|r| &r.planned).collect();
    let ids: Vec<&str> = planned.iter().filter_map(|w| w.id.as_deref()).collect();
    for id in [&l.org_a, &l.person_a, &l.acc_b, &l.con_b] {
        assert!(ids.contains(&id.as_str()), "{id} not planned: {planned:?}");
    }
    assert_eq!(state(&h), state_before);
    assert_not_repaired(&h, &l);
    assert_eq!(cursors(&h).await, cursors_before);
    let entries = drift_entries(&h).await;
    assert_eq!(entries.len(), 2);
    assert!(entries
        .iter()
        .all(|(_, level, d)| *level == Level::Warning && *d == 2));
    // AND a dry run is no reconcile: the time of the last one stays
    assert_eq!(marks(&h).await, marks_before);

    // WHEN the reconcile runs for real, THEN it repairs the same drift
    let reports = reconcile(&h, false).await;
    assert_succeeded(&reports);
    assert!(reports.iter().all(|r| r.counts.drift == 2));
    assert_repaired(&h, &l);
}

#[tokio::test]
async fn through_the_planner_and_workers_a_reconcile_repairs_what_the_incremental_run_missed() {
    // GIVEN linked records, and drift the cursors miss
    let h = Harness::new().await;
    let l = linked(&h).await;
    drift(&h, &l);
    let ctx = h.ctx();

    // WHEN the deployment's hourly run comes, THEN it misses the drift
    let hourly = h.lambda_sync(&ctx, RunMode::Incremental).await;
    assert_eq!(hourly.closed.len(), 2, "{:?}", hourly.plans);
    assert_not_repaired(&h, &l);

    // WHEN its daily reconcile comes ({"integration":"all","mode":"reconcile"})
    let before = cursors(&h).await;
    let daily = h.lambda_sync(&ctx, RunMode::Reconcile).await;

    // THEN organizations, then people, are reconciled and repaired, with a drift of 2 each
    let closed: Vec<_> = daily
        .closed
        .iter()
        .map(|c| (c.report.integration, c.report.mode, c.report.counts.drift))
        .collect();
    assert_eq!(
        closed,
        vec![
            (Integration::Organizations, RunMode::Reconcile, 2),
            (Integration::People, RunMode::Reconcile, 2),
        ]
    );
    assert_repaired(&h, &l);
    assert_eq!(
        drift_entries(&h).await,
        vec![
            (Integration::Organizations, Level::Warning, 2),
            (Integration::People, Level::Warning, 2),
        ]
    );
    for i in BOTH {
        let run = h.store.last_run(i).await.unwrap().unwrap();
        assert_eq!((run.mode, run.counts.drift), (RunMode::Reconcile, 2));
    }
    let after = cursors(&h).await;
    for (b, a) in before.iter().zip(&after) {
        assert!(a >= b, "a cursor moved back: {before:?} -> {after:?}");
    }
}

#[tokio::test]
async fn a_scheduled_run_reconciles_a_day_after_the_last_run_that_read_everything() {
    // GIVEN an integration whose first (full) run just finished
    let h = Harness::new().await;
    let ctx = h.ctx();
    for i in BOTH {
        assert_eq!(
            scheduled_mode(&ctx, i).await.unwrap(),
            RunMode::Incremental,
            "never ran"
        );
    }
    let _l = linked(&h).await;

    // THEN the next scheduled run is incremental: the full run counts as a reconcile
    for i in BOTH {
        assert!(h.store.cursor(i, READ_ALL_MARK).await.unwrap().is_some());
        assert_eq!(scheduled_mode(&ctx, i).await.unwrap(), RunMode::Incremental);
    }

    // WHEN a day has passed since
    for i in BOTH {
        h.store
            .set_cursor(i, READ_ALL_MARK, Utc::now() - Duration::hours(25))
            .await
            .unwrap();
    }

    // THEN the scheduled run is a reconcile, and after it the next one is incremental
    for i in BOTH {
        assert_eq!(scheduled_mode(&ctx, i).await.unwrap(), RunMode::Reconcile);
    }
    let reports = reconcile(&h, false).await;
    assert_succeeded(&reports);
    for i in BOTH {
        assert_eq!(scheduled_mode(&ctx, i).await.unwrap(), RunMode::Incremental);
    }

    // AND with `[sync] reconcile = "off"` no scheduled run reconciles
    let mut mapping = MappingConfig::default();
    mapping.sync.reconcile = "off".into();
    let mut off = h.ctx();
    off.mapping = std::sync::Arc::new(mapping);
    for i in BOTH {
        h.store
            .set_cursor(i, READ_ALL_MARK, Utc::now() - Duration::days(9))
            .await
            .unwrap();
        assert_eq!(scheduled_mode(&off, i).await.unwrap(), RunMode::Incremental);
    }
}
