//! Where change detection resumes (cursors, planner checkpoints and taking them), the record
//! of each run, and the chunks of planned runs.

use chrono::{DateTime, Duration, Utc};
use prmsync_mapping::Integration;

use super::{micros, s};
use crate::ports::{ApiUsage, ChangeFrom};
use crate::report::{Counts, PerSide, RunStatus};
use crate::store::{ChunkRecord, PlanCheckpoint, RunRecord, SideProgress, Store};
use crate::RunMode;

/// Cursors: absent at first, round trip to the microsecond, per integration and side.
pub async fn cursors(store: &dyn Store) {
    let i = Integration::Organizations;
    assert_eq!(
        store.cursor(i, "crm").await.expect("cursor"),
        None,
        "no cursor at first"
    );
    let at = micros(Utc::now() - Duration::minutes(10)) + Duration::microseconds(123);
    let at = micros(at);
    store.set_cursor(i, "crm", at).await.expect("set cursor");
    assert_eq!(
        store.cursor(i, "crm").await.expect("cursor"),
        Some(at),
        "a cursor round-trips with microsecond precision"
    );
    assert_eq!(
        store.cursor(i, "prm").await.expect("cursor"),
        None,
        "cursors are per side"
    );
    assert_eq!(
        store
            .cursor(Integration::People, "crm")
            .await
            .expect("cursor"),
        None,
        "cursors are per integration"
    );
    let later = micros(Utc::now());
    store
        .set_cursor(i, "crm", later)
        .await
        .expect("move cursor");
    store
        .set_cursor(i, "prm", at)
        .await
        .expect("set prm cursor");
    assert_eq!(
        store.cursor(i, "crm").await.expect("cursor"),
        Some(later),
        "set_cursor overwrites"
    );
    assert_eq!(store.cursor(i, "prm").await.expect("cursor"), Some(at));
}

/// Planner checkpoints: absent at first, round trip whole, per integration, cleared.
pub async fn checkpoints(store: &dyn Store) {
    let i = Integration::People;
    assert_eq!(store.checkpoint(i).await.expect("checkpoint"), None);
    let at = micros(Utc::now() - Duration::minutes(3));
    let cp = PlanCheckpoint {
        run_id: "run-7".into(),
        mode: RunMode::Full,
        started_at: at,
        crm: SideProgress {
            from: ChangeFrom {
                since: None,
                after: Some((at, "003000000000042AAA".into())),
            },
            newest: Some(at),
            done: false,
            page: Some("/services/data/v61.0/query/01gXX0000000001-2000".into()),
        },
        prm: SideProgress::default(),
        records: 2000,
        chunks: 10,
        invocations: 1,
        planned: false,
        then: Vec::new(),
        allow_mass_change: true,
    };
    store.set_checkpoint(i, Some(&cp)).await.expect("set");
    assert_eq!(
        store.checkpoint(i).await.expect("checkpoint"),
        Some(cp.clone()),
        "a checkpoint round-trips whole"
    );
    assert_eq!(
        store
            .checkpoint(Integration::Organizations)
            .await
            .expect("checkpoint"),
        None,
        "checkpoints are per integration"
    );
    let next = PlanCheckpoint {
        records: 4000,
        invocations: 2,
        planned: true,
        then: vec![Integration::People, Integration::Deals],
        ..cp
    };
    store.set_checkpoint(i, Some(&next)).await.expect("update");
    assert_eq!(store.checkpoint(i).await.expect("checkpoint"), Some(next));
    store.set_checkpoint(i, None).await.expect("clear");
    assert_eq!(store.checkpoint(i).await.expect("checkpoint"), None);
    store
        .set_checkpoint(i, None)
        .await
        .expect("clearing twice is fine");
}

fn run(run_id: &str, integration: Integration, started_at: DateTime<Utc>) -> RunRecord {
    RunRecord {
        run_id: run_id.into(),
        integration,
        mode: RunMode::Incremental,
        dry_run: false,
        started_at: micros(started_at),
        finished_at: None,
        status: RunStatus::Running,
        counts: Counts::default(),
        api_usage: None,
    }
}

/// Runs: upsert by run id; the last run is the one started last.
pub async fn runs(store: &dyn Store) {
    let i = Integration::Organizations;
    assert_eq!(
        store.last_run(i).await.expect("last run"),
        None,
        "no run at first"
    );
    let now = Utc::now();
    let r2 = run("run-2", i, now - Duration::hours(1));
    store
        .save_run(&run("run-1", i, now - Duration::hours(2)))
        .await
        .expect("save");
    store.save_run(&r2).await.expect("save");
    store
        .save_run(&run("run-0", i, now - Duration::hours(3)))
        .await
        .expect("save an older run last");
    store
        .save_run(&run("run-x", Integration::Deals, now))
        .await
        .expect("save");
    assert_eq!(
        store.last_run(i).await.expect("last run"),
        Some(r2.clone()),
        "last_run is the run with the newest started_at, not the last saved"
    );
    let mut done = r2.clone();
    done.status = RunStatus::Succeeded;
    done.dry_run = true;
    done.mode = RunMode::Reconcile;
    done.finished_at = Some(micros(now));
    done.api_usage = Some(ApiUsage {
        used: 4_321,
        max: 15_000,
    });
    done.counts = Counts {
        created: PerSide { crm: 3, prm: 1 },
        updated: PerSide { crm: 2, prm: 5 },
        deleted_marked: 1,
        disconnected: 2,
        conflicts: 4,
        unchanged: 900,
        errors: 6,
        drift: 3,
    };
    store.save_run(&done).await.expect("update run");
    assert_eq!(
        store.last_run(i).await.expect("last run"),
        Some(done),
        "save_run updates a run by run_id and round-trips every field"
    );
    assert_eq!(
        store
            .last_run(Integration::People)
            .await
            .expect("last run")
            .map(|r| r.run_id),
        None,
        "runs are per integration"
    );

    // One sync of every integration: one run id, a record per integration.
    let started = micros(now + Duration::minutes(1));
    let mut all_run = Vec::new();
    for (n, integration) in (1u64..).zip(Integration::ALL) {
        let mut r = run("run-all", integration, started);
        r.counts.created.prm = 10 * n;
        r.counts.unchanged = 100 * n;
        store
            .save_run(&r)
            .await
            .expect("save one run id per integration");
        all_run.push(r);
    }
    // Saved again when finished (same started_at): each record is updated in place.
    for r in &mut all_run {
        r.status = RunStatus::Succeeded;
        r.finished_at = Some(micros(now + Duration::minutes(2)));
        r.counts.updated.crm = r.counts.created.prm + 1;
        store
            .save_run(r)
            .await
            .expect("update one run id per integration");
    }
    for r in &all_run {
        assert_eq!(
            store.last_run(r.integration).await.expect("last run"),
            Some(r.clone()),
            "a run id shared by every integration keeps one record per integration: {} has its own",
            r.integration
        );
    }
}

/// Listing the runs since a time: an integration's own, started at or after it, newest
/// first, at most as many as asked, each whole (its API usage too). Uses `People`, ten
/// days ahead (no other contract saves runs then).
pub async fn runs_since(store: &dyn Store) {
    let i = Integration::People;
    let base = micros(Utc::now() + Duration::days(10));
    let since = base - Duration::hours(24);
    assert_eq!(
        store.runs_since(i, since, 10).await.expect("runs since"),
        Vec::new(),
        "no run at first"
    );
    // Older than `since`, another integration's, then five runs from `since` on.
    store
        .save_run(&run("run-s-old", i, since - Duration::microseconds(1)))
        .await
        .expect("save");
    store
        .save_run(&run("run-s-deals", Integration::Deals, base))
        .await
        .expect("save");
    let mut saved = Vec::new();
    for n in 0..5 {
        let mut r = run(&format!("run-s-{n}"), i, since + Duration::hours(4 * n));
        r.status = RunStatus::Succeeded;
        r.finished_at = Some(r.started_at + Duration::minutes(1));
        r.counts.updated.crm = n as u64;
        r.counts.errors = 1;
        r.api_usage = Some(ApiUsage {
            used: 100 * (n as u64 + 1),
            max: 15_000,
        });
        store.save_run(&r).await.expect("save");
        saved.push(r);
    }
    saved.reverse();
    assert_eq!(
        store.runs_since(i, since, 10).await.expect("runs since"),
        saved,
        "the runs started at or after `since`, newest first, whole; not older ones, not \
         another integration's"
    );
    assert_eq!(
        store.runs_since(i, since, 2).await.expect("runs since"),
        saved[..2].to_vec(),
        "at most `limit` runs: the newest"
    );
    // A run saved again as it advances is listed once, as saved last.
    let mut going = saved[0].clone();
    going.status = RunStatus::Running;
    going.finished_at = None;
    going.counts.unchanged = 7;
    store.save_run(&going).await.expect("update");
    let listed = store.runs_since(i, since, 10).await.expect("runs since");
    assert_eq!(listed.len(), 5, "one record per run: {listed:?}");
    assert_eq!(listed[0], going, "a run's record is as saved last");
}

/// Taking a checkpoint: only with its own run id, whole, once. Uses `Deals`.
pub async fn take_checkpoint(store: &dyn Store) {
    let i = Integration::Deals;
    assert_eq!(
        store.take_checkpoint(i, "run-t").await.expect("take"),
        None,
        "there is nothing to take at first"
    );
    let at = micros(Utc::now() - Duration::minutes(2));
    let cp = PlanCheckpoint {
        run_id: "run-t".into(),
        mode: RunMode::Incremental,
        started_at: at,
        crm: SideProgress {
            from: ChangeFrom {
                since: Some(at),
                after: None,
            },
            newest: Some(at),
            done: true,
            page: None,
        },
        prm: SideProgress {
            from: ChangeFrom::default(),
            newest: None,
            done: true,
            page: None,
        },
        records: 400,
        chunks: 2,
        invocations: 3,
        planned: true,
        then: vec![Integration::People],
        allow_mass_change: false,
    };
    store.set_checkpoint(i, Some(&cp)).await.expect("set");
    assert_eq!(
        store.take_checkpoint(i, "run-other").await.expect("take"),
        None,
        "another run's id takes nothing"
    );
    assert_eq!(
        store
            .take_checkpoint(Integration::Organizations, "run-t")
            .await
            .expect("take"),
        None,
        "checkpoints are taken per integration"
    );
    assert_eq!(
        store.checkpoint(i).await.expect("checkpoint"),
        Some(cp.clone()),
        "a checkpoint asked for with another run id stays"
    );
    assert_eq!(
        store.take_checkpoint(i, "run-t").await.expect("take"),
        Some(cp.clone()),
        "the run's own id takes the checkpoint, whole"
    );
    assert_eq!(
        store.checkpoint(i).await.expect("checkpoint"),
        None,
        "a taken checkpoint is gone"
    );
    assert_eq!(
        store.take_checkpoint(i, "run-t").await.expect("take again"),
        None,
        "a checkpoint is taken once"
    );
    // Replaced by a later run's checkpoint: only the later run takes it.
    let later = PlanCheckpoint {
        run_id: "run-u".into(),
        planned: false,
        ..cp
    };
    store.set_checkpoint(i, Some(&later)).await.expect("set");
    assert_eq!(
        store.take_checkpoint(i, "run-t").await.expect("take"),
        None,
        "a replaced checkpoint is not taken by the run it replaced"
    );
    assert_eq!(
        store.take_checkpoint(i, "run-u").await.expect("take"),
        Some(later),
        "the replacing run takes it"
    );
}

fn chunk(
    integration: Integration,
    run_id: &str,
    number: u32,
    crm: &[&str],
    prm: &[&str],
) -> ChunkRecord {
    ChunkRecord {
        integration,
        run_id: run_id.into(),
        number,
        crm_ids: s(crm),
        prm_ids: s(prm),
        done: false,
        counts: Counts::default(),
        held: Vec::new(),
    }
}

/// Run chunks: listed by number per integration and run, the first finish of a chunk
/// counts it, redeliveries and unknown chunks count nothing, replace, clear. Uses the runs
/// `plan-1`, `plan-2` and `plan-3`.
pub async fn run_chunks(store: &dyn Store) {
    let i = Integration::Organizations;
    assert!(
        store
            .run_chunks(i, "plan-1")
            .await
            .expect("list")
            .is_empty(),
        "a run has no chunks at first"
    );
    let c0 = chunk(i, "plan-1", 0, &["001C0"], &[]);
    let c1 = chunk(i, "plan-1", 1, &[], &["org_c1a", "org_c1b"]);
    let c2 = chunk(i, "plan-1", 2, &["001C2a", "001C2b"], &["org_c2"]);
    let c10 = chunk(i, "plan-1", 10, &[], &[]);
    store
        .add_chunks(&[c10.clone(), c2.clone(), c0.clone()])
        .await
        .expect("add chunks");
    store
        .add_chunks(std::slice::from_ref(&c1))
        .await
        .expect("add a chunk");
    store.add_chunks(&[]).await.expect("add no chunk");
    store
        .add_chunks(&[
            chunk(i, "plan-2", 0, &["001X"], &[]),
            chunk(Integration::People, "plan-1", 0, &["003X"], &[]),
        ])
        .await
        .expect("add chunks of other runs");
    assert_eq!(
        store.run_chunks(i, "plan-1").await.expect("list"),
        vec![c0.clone(), c1.clone(), c2.clone(), c10.clone()],
        "run_chunks lists the run's own chunks by number (10 after 2), every field round-tripped"
    );
    assert_eq!(
        store.chunk_done(i, "plan-1", 1).await.expect("chunk_done"),
        Some(false),
        "an added chunk is not done"
    );
    assert_eq!(
        store.chunk_done(i, "plan-1", 7).await.expect("chunk_done"),
        None,
        "a chunk never added is unknown"
    );
    let c1 = chunk(i, "plan-1", 1, &["001C1"], &["org_c1a"]);
    store
        .add_chunks(std::slice::from_ref(&c1))
        .await
        .expect("add again");
    assert_eq!(
        store.run_chunks(i, "plan-1").await.expect("list")[1],
        c1,
        "adding a chunk that exists replaces it"
    );

    let counts = Counts {
        created: PerSide { crm: 2, prm: 1 },
        updated: PerSide { crm: 3, prm: 4 },
        deleted_marked: 1,
        disconnected: 1,
        conflicts: 2,
        unchanged: 187,
        errors: 1,
        drift: 2,
    };
    let other = Counts {
        unchanged: 5,
        ..Counts::default()
    };
    let finish = |integration: Integration, run_id: &'static str, number: u32, counts: Counts| async move {
        store
            .finish_chunk(integration, run_id, number, &counts, &[])
            .await
            .unwrap_or_else(|e| panic!("finish_chunk({integration}, {run_id}, {number}): {e}"))
    };
    // The write-backs a chunk's pass held, kept with the chunk.
    let held = |crm: &str, value: &str| crate::pass::HeldUpdate {
        crm_id: crm.into(),
        prm_id: format!("org-{crm}"),
        patch: vec![
            ("PRM_Id__c".to_string(), serde_json::json!(value)),
            ("Rating".to_string(), serde_json::Value::Null),
        ],
        snapshot: vec![("prm_id".into(), serde_json::json!(value))],
        created: Some(prmsync_mapping::config::Side::Prm),
        retry: true,
    };
    let kept = vec![held("001A", "org-1"), held("001B", "org-2")];
    assert_eq!(
        store
            .finish_chunk(i, "plan-1", 2, &counts, &kept)
            .await
            .expect("finish with held write-backs"),
        Some(1),
        "the first finish of a chunk counts it: 1 chunk of the run done"
    );
    assert_eq!(
        store
            .finish_chunk(i, "plan-1", 2, &other, &[held("001C", "org-3")])
            .await
            .expect("finish again"),
        None,
        "finishing a chunk again (a redelivered message) counts nothing"
    );
    assert_eq!(
        finish(i, "plan-1", 99, counts.clone()).await,
        None,
        "finishing a chunk never added counts nothing"
    );
    assert_eq!(
        finish(i, "plan-9", 0, counts.clone()).await,
        None,
        "finishing a chunk of an unknown run counts nothing"
    );
    assert_eq!(
        finish(Integration::Deals, "plan-1", 0, counts.clone()).await,
        None,
        "chunks are per integration: deals has no run plan-1"
    );
    assert!(
        store
            .run_chunks(Integration::Deals, "plan-1")
            .await
            .expect("list")
            .is_empty(),
        "finishing an unknown chunk creates nothing"
    );
    assert_eq!(
        finish(i, "plan-1", 0, Counts::default()).await,
        Some(2),
        "a second chunk of the run done: 2"
    );
    assert_eq!(
        finish(i, "plan-2", 0, other.clone()).await,
        Some(1),
        "chunks done are counted per run"
    );
    assert_eq!(
        finish(Integration::People, "plan-1", 0, other.clone()).await,
        Some(1),
        "chunks done are counted per integration"
    );
    let mut c0_done = c0.clone();
    c0_done.done = true;
    let mut c2_done = c2.clone();
    c2_done.done = true;
    c2_done.counts = counts.clone();
    c2_done.held = kept.clone();
    assert_eq!(
        store.run_chunks(i, "plan-1").await.expect("list"),
        vec![c0_done.clone(), c1.clone(), c2_done.clone(), c10.clone()],
        "a done chunk keeps the counts and held write-backs of its first finish; the others are not done"
    );
    assert_eq!(
        store.chunk_done(i, "plan-1", 2).await.expect("chunk_done"),
        Some(true),
        "a finished chunk is done"
    );
    assert_eq!(finish(i, "plan-1", 1, other.clone()).await, Some(3));
    assert_eq!(finish(i, "plan-1", 10, other.clone()).await, Some(4));

    // A planner that adds a chunk again (it starts its invocation over) replaces it: the
    // chunk is no longer done, and counts once more when it is finished again.
    store
        .add_chunks(std::slice::from_ref(&c10))
        .await
        .expect("add again");
    assert!(
        !store.run_chunks(i, "plan-1").await.expect("list")[3].done,
        "a chunk added again is not done"
    );
    assert_eq!(
        finish(i, "plan-1", 10, counts.clone()).await,
        Some(4),
        "a chunk added again after it was done counts once when finished again"
    );
    // A chunk added as done counts as done.
    let mut c11 = chunk(i, "plan-1", 11, &["001C11"], &[]);
    c11.done = true;
    c11.counts = other.clone();
    store
        .add_chunks(&[c11.clone()])
        .await
        .expect("add a done chunk");
    assert_eq!(
        finish(i, "plan-1", 11, counts.clone()).await,
        None,
        "a chunk added as done is not finished again"
    );
    store
        .add_chunks(&[chunk(i, "plan-1", 12, &[], &["org_c12"])])
        .await
        .expect("add");
    assert_eq!(
        finish(i, "plan-1", 12, other.clone()).await,
        Some(6),
        "a chunk added as done is counted among the done ones"
    );

    // Clear: the run's chunks (and its count) go, other runs stay.
    store.clear_chunks(i, "plan-1").await.expect("clear");
    assert!(
        store
            .run_chunks(i, "plan-1")
            .await
            .expect("list")
            .is_empty(),
        "clear_chunks forgets the run's chunks"
    );
    assert_eq!(
        finish(i, "plan-1", 0, counts.clone()).await,
        None,
        "a cleared chunk is unknown"
    );
    assert_eq!(
        store.run_chunks(i, "plan-2").await.expect("list").len(),
        1,
        "clear_chunks leaves other runs alone"
    );
    assert_eq!(
        store
            .run_chunks(Integration::People, "plan-1")
            .await
            .expect("list")
            .len(),
        1,
        "clear_chunks leaves other integrations alone"
    );
    store
        .clear_chunks(i, "plan-1")
        .await
        .expect("clearing twice is fine");
    store
        .add_chunks(&[chunk(i, "plan-1", 0, &["001C0"], &[])])
        .await
        .expect("add after clear");
    assert_eq!(
        finish(i, "plan-1", 0, counts.clone()).await,
        Some(1),
        "a run cleared and planned again counts from 0"
    );
    store.clear_chunks(i, "plan-1").await.expect("clear");

    // Many chunks at once.
    let many: Vec<ChunkRecord> = (0..60)
        .map(|n| chunk(i, "plan-3", n, &[&format!("001M{n}")], &[]))
        .collect();
    store.add_chunks(&many).await.expect("add 60 chunks");
    assert_eq!(
        store.run_chunks(i, "plan-3").await.expect("list"),
        many,
        "60 chunks added at once are listed by number"
    );
    store.clear_chunks(i, "plan-3").await.expect("clear");
    assert!(store
        .run_chunks(i, "plan-3")
        .await
        .expect("list")
        .is_empty());
}
