//! Contract tests every Store implementation passes.
//!
//! Each function takes a fresh (empty) store and panics with a message naming the broken
//! rule. The functions use disjoint keys (objects, integrations, ids), so [`all`] may run
//! them one after another on the same store. An implementation's own tests call them:
//!
//! ```ignore
//! #[tokio::test]
//! async fn contract() {
//!     prmsync_engine::store_contract::all(&MyStore::new()).await;
//! }
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use prmsync_mapping::{Integration, Level, LogCode, ObjectKind};
use serde_json::json;

use crate::ports::ChangeFrom;
use crate::report::{Counts, PerSide, RunStatus};
use crate::store::{
    ChunkRecord, Link, LinkState, LogEntry, LogFilter, PlanCheckpoint, RetryEntry, RunRecord,
    SideProgress, Store, StoreError,
};
use crate::RunMode;

/// Every contract, one after another.
pub async fn all(store: &dyn Store) {
    links(store).await;
    links_in_batches(store).await;
    children_pending(store).await;
    cursors(store).await;
    checkpoints(store).await;
    leases(store).await;
    pauses(store).await;
    runs(store).await;
    log(store).await;
    rejections(store).await;
    take_checkpoint(store).await;
    run_chunks(store).await;
    retry_set(store).await;
    api_hold(store).await;
}

/// `t` truncated to microseconds: what every store keeps of a time.
pub fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1))
        .expect("time truncates to microseconds")
}

fn is_conflict(r: &Result<Link, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

fn ids(links: &[Link]) -> Vec<String> {
    let mut v: Vec<String> = links.iter().map(|l| l.prm_id.clone()).collect();
    v.sort();
    v
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A link with every field set, times in microseconds.
fn full_link(object: ObjectKind, prm_id: &str, crm_id: &str) -> Link {
    let mut link = Link::new(object, prm_id, crm_id);
    link.snapshot = BTreeMap::from([
        ("Name".to_string(), json!("Acme Ltd")),
        ("NumberOfEmployees".to_string(), json!(250)),
        ("AnnualRevenue".to_string(), json!(1250000.5)),
        ("Active__c".to_string(), json!(true)),
        ("Website".to_string(), json!(null)),
        ("Tags".to_string(), json!(["a", "b"])),
        (
            "Address".to_string(),
            json!({"city": "Lyon", "zip": "69001"}),
        ),
    ]);
    link.crm_modstamp = Some(micros(Utc::now() - Duration::minutes(3)));
    link.prm_version = Some(7);
    link.updated_at = micros(Utc::now());
    link
}

/// Saving several links at once: each is saved or refused on its own, in order, as
/// `save_link` would; a conflict does not stop the others. Uses `Deal` links only.
pub async fn links_in_batches(store: &dyn Store) {
    let deal = ObjectKind::Deal;
    let a = full_link(deal, "batch_a", "006A");
    let saved = store.save_link(&a).await.expect("first link saved");
    let b = full_link(deal, "batch_b", "006B");
    let mut stale_a = a.clone();
    stale_a.snapshot.insert("Name".into(), json!("lost"));
    let mut a2 = saved.clone();
    a2.snapshot.insert("Name".into(), json!("kept"));
    let c = full_link(deal, "batch_c", "006C");
    let results = store
        .save_links(&[b.clone(), stale_a, c.clone(), a2.clone()])
        .await;
    assert_eq!(results.len(), 4, "one result per link");
    assert_eq!(results[0].as_ref().expect("new link b saved").version, 1);
    assert!(
        is_conflict(&results[1]),
        "a link saved with a stale version is refused: {:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().expect("new link c saved").version, 1);
    assert_eq!(
        results[3].as_ref().expect("current version saved").version,
        saved.version + 1
    );
    let found = store
        .find_links(deal, &[], &s(&["batch_a", "batch_b", "batch_c"]))
        .await
        .expect("find");
    assert_eq!(ids(&found), s(&["batch_a", "batch_b", "batch_c"]));
    let a_now = found.iter().find(|l| l.prm_id == "batch_a").unwrap();
    assert_eq!(a_now.snapshot["Name"], json!("kept"));
    assert!(store.save_links(&[]).await.is_empty());
}

/// Links: found by either id, optimistic lock, one link per Salesforce Id, merges, retry
/// listing, counts per state, delete.
pub async fn links(store: &dyn Store) {
    let org = ObjectKind::Organization;

    // Insert, then a second insert of the same pair loses.
    let link = full_link(org, "org_1", "001A");
    let saved = store.save_link(&link).await.expect("save a new link");
    assert_eq!(saved.version, 1, "a new link is saved with version 1");
    assert!(
        is_conflict(&store.save_link(&link).await),
        "saving a link with version 0 twice must fail with Conflict (it must not exist yet)"
    );

    // Found by either id, with every field round-tripped.
    let by_crm = store
        .find_links(org, &s(&["001A"]), &[])
        .await
        .expect("find by crm id");
    let by_prm = store
        .find_links(org, &[], &s(&["org_1"]))
        .await
        .expect("find by prm id");
    assert_eq!(by_crm.len(), 1, "find_links by crm id finds the link");
    assert_eq!(by_prm.len(), 1, "find_links by prm id finds the link");
    assert_eq!(by_crm[0], saved, "the stored link round-trips every field");
    assert_eq!(by_prm[0], saved, "the stored link round-trips every field");
    let both = store
        .find_links(org, &s(&["001A"]), &s(&["org_1"]))
        .await
        .expect("find by both ids");
    assert_eq!(both.len(), 1, "a link matched by both ids is returned once");
    assert!(
        store
            .find_links(ObjectKind::Person, &s(&["001A"]), &s(&["org_1"]))
            .await
            .expect("find other object")
            .is_empty(),
        "links are per object: a Person lookup must not find an Organization link"
    );
    assert!(
        store
            .find_links(org, &s(&["001NONE"]), &s(&["org_none"]))
            .await
            .expect("find unknown ids")
            .is_empty(),
        "unknown ids find nothing"
    );
    assert!(
        store
            .find_links(org, &[], &[])
            .await
            .expect("find no ids")
            .is_empty(),
        "no ids find nothing"
    );

    // Two writers holding version 1: one wins, the other gets a conflict.
    let mut a = saved.clone();
    a.state = LinkState::Unselected;
    a.snapshot.insert("Name".into(), json!("Acme Inc"));
    let mut b = saved.clone();
    b.prm_version = Some(8);
    let a = store.save_link(&a).await.expect("first writer wins");
    assert_eq!(a.version, 2, "an update returns the link with version + 1");
    assert!(
        is_conflict(&store.save_link(&b).await),
        "a second writer with the same (now stale) version must get Conflict"
    );
    let stored = store
        .find_links(org, &[], &s(&["org_1"]))
        .await
        .expect("re-read");
    assert_eq!(
        stored,
        vec![a.clone()],
        "the winner's write is stored, the loser's is not"
    );
    let mut future = a.clone();
    future.version = 5;
    assert!(
        is_conflict(&store.save_link(&future).await),
        "a version ahead of the stored one is a Conflict too"
    );
    let mut ghost = full_link(org, "org_ghost", "001GHOST");
    ghost.version = 3;
    assert!(
        is_conflict(&store.save_link(&ghost).await),
        "updating a link that does not exist (version > 0) is a Conflict"
    );

    // One link per Salesforce Id.
    let other = full_link(org, "org_2", "001A");
    assert!(
        is_conflict(&store.save_link(&other).await),
        "a second link claiming a Salesforce Id another link has must get Conflict"
    );
    assert!(
        store
            .find_links(org, &[], &s(&["org_2"]))
            .await
            .expect("find loser")
            .is_empty(),
        "a link refused for its Salesforce Id must not be stored"
    );
    let person = store
        .save_link(&full_link(ObjectKind::Person, "per_1", "001A"))
        .await
        .expect("the same id string under another object is another claim");
    assert_eq!(person.version, 1);
    let org2 = store
        .save_link(&full_link(org, "org_2", "001B"))
        .await
        .expect("a free Salesforce Id can be linked");
    let mut steal = org2.clone();
    steal.crm_id = "001A".into();
    assert!(
        is_conflict(&store.save_link(&steal).await),
        "moving a link onto a Salesforce Id another link has must get Conflict"
    );
    assert_eq!(
        ids(&store
            .find_links(org, &s(&["001B"]), &[])
            .await
            .expect("find 001B")),
        s(&["org_2"]),
        "a refused move leaves the link on its old Salesforce Id"
    );

    // A merge moves a link to the surviving record: the old id is freed, the new claimed.
    let mut merged = a.clone();
    merged.crm_id = "001M".into();
    let merged = store
        .save_link(&merged)
        .await
        .expect("move a link's crm_id");
    assert_eq!(merged.version, 3);
    assert!(
        store
            .find_links(org, &s(&["001A"]), &[])
            .await
            .expect("find old id")
            .is_empty(),
        "after a move the old Salesforce Id finds nothing"
    );
    assert_eq!(
        ids(&store
            .find_links(org, &s(&["001M"]), &[])
            .await
            .expect("find new id")),
        s(&["org_1"]),
        "after a move the new Salesforce Id finds the link"
    );
    let reuse = store
        .save_link(&full_link(org, "org_3", "001A"))
        .await
        .expect("the Salesforce Id freed by a move can be linked again");
    let intruder = full_link(org, "org_4", "001M");
    assert!(
        is_conflict(&store.save_link(&intruder).await),
        "the Salesforce Id taken by a move is claimed"
    );

    // Many ids at once (batching), with duplicates.
    let mut many_prm: Vec<String> = (0..230).map(|i| format!("org_missing_{i}")).collect();
    many_prm.extend(s(&["org_1", "org_2", "org_3", "org_1"]));
    let mut many_crm: Vec<String> = (0..120).map(|i| format!("001MISSING{i}")).collect();
    many_crm.extend(s(&["001M", "001B", "001B"]));
    assert_eq!(
        ids(&store
            .find_links(org, &many_crm, &many_prm)
            .await
            .expect("find many")),
        s(&["org_1", "org_2", "org_3"]),
        "find_links with hundreds of ids (and duplicates) returns each match once"
    );

    // Retry listing.
    assert!(
        store
            .links_to_retry(org)
            .await
            .expect("retry list")
            .is_empty(),
        "no link is marked for retry yet"
    );
    let mut r = reuse.clone();
    r.retry = true;
    let r = store.save_link(&r).await.expect("mark retry");
    let listed = store.links_to_retry(org).await.expect("retry list");
    assert_eq!(
        listed,
        vec![r.clone()],
        "a link saved with retry = true is listed"
    );
    assert!(
        store
            .links_to_retry(ObjectKind::Person)
            .await
            .expect("retry list")
            .is_empty(),
        "the retry list is per object"
    );
    let mut r2 = r.clone();
    r2.retry = false;
    store.save_link(&r2).await.expect("clear retry");
    assert!(
        store
            .links_to_retry(org)
            .await
            .expect("retry list")
            .is_empty(),
        "a link saved with retry = false is no longer listed"
    );

    // Counts per state.
    let mut d = org2.clone();
    d.state = LinkState::Disconnected;
    store.save_link(&d).await.expect("disconnect");
    let counts = store.count_links(org).await.expect("count");
    let want: BTreeMap<String, u64> = BTreeMap::from([
        ("linked".to_string(), 1),
        ("unselected".to_string(), 1),
        ("disconnected".to_string(), 1),
    ]);
    assert_eq!(counts, want, "count_links counts links per state");
    assert!(
        store
            .count_links(ObjectKind::Deal)
            .await
            .expect("count")
            .values()
            .all(|n| *n == 0),
        "no deal links: counts are empty (or zero)"
    );

    // Delete (unlink) frees the Salesforce Id.
    assert!(
        store.delete_link(org, "org_3").await.expect("delete"),
        "delete_link returns true when there was a link"
    );
    assert!(
        !store.delete_link(org, "org_3").await.expect("delete again"),
        "delete_link returns false when there was none"
    );
    assert!(
        store
            .find_links(org, &s(&["001A"]), &s(&["org_3"]))
            .await
            .expect("find deleted")
            .is_empty(),
        "a deleted link is not found"
    );
    let relinked = store
        .save_link(&full_link(org, "org_5", "001A"))
        .await
        .expect("a deleted link's Salesforce Id can be linked again");
    assert_eq!(relinked.version, 1);
    let again = store
        .save_link(&full_link(org, "org_3", "001C"))
        .await
        .expect("a deleted link's pair can be saved again with version 0");
    assert_eq!(again.version, 1);
    assert!(
        !store
            .delete_link(ObjectKind::Deal, "org_1")
            .await
            .expect("delete other object"),
        "delete_link is per object"
    );
}

/// Children pending: mark, list in PRM id order, re-mark updates, clear.
pub async fn children_pending(store: &dyn Store) {
    let org = ObjectKind::Organization;
    assert!(
        store.children_pending(org).await.expect("list").is_empty(),
        "nothing is pending at first"
    );
    store
        .mark_children_pending(org, "org_b", "001B")
        .await
        .expect("mark");
    store
        .mark_children_pending(org, "org_a", "001A")
        .await
        .expect("mark");
    store
        .mark_children_pending(org, "org_c", "001C")
        .await
        .expect("mark");
    store
        .mark_children_pending(org, "org_a", "001Z")
        .await
        .expect("mark again");
    store
        .mark_children_pending(ObjectKind::Person, "per_a", "003A")
        .await
        .expect("mark person");
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        store.children_pending(org).await.expect("list"),
        pairs(&[("org_a", "001Z"), ("org_b", "001B"), ("org_c", "001C")]),
        "children_pending lists (prm id, crm id) by prm id, once each, with the latest crm id"
    );
    store
        .clear_children_pending(org, &s(&["org_a", "org_c", "org_unknown", "org_a"]))
        .await
        .expect("clear");
    assert_eq!(
        store.children_pending(org).await.expect("list"),
        pairs(&[("org_b", "001B")]),
        "clear_children_pending removes the named pairs only"
    );
    store
        .clear_children_pending(org, &[])
        .await
        .expect("clear none");
    assert_eq!(
        store
            .children_pending(ObjectKind::Person)
            .await
            .expect("list person"),
        pairs(&[("per_a", "003A")]),
        "children pending are per object"
    );
}

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

/// Leases: exclusion, same-holder renewal, release only by the holder, expiry.
pub async fn leases(store: &dyn Store) {
    let i = Integration::People;
    let soon = Utc::now() + Duration::minutes(5);
    assert!(
        store.acquire_lease(i, "a", soon).await.expect("acquire"),
        "a free lease is taken"
    );
    assert!(
        !store.acquire_lease(i, "b", soon).await.expect("acquire"),
        "a lease held by another holder is refused"
    );
    assert!(
        store
            .acquire_lease(Integration::Organizations, "b", soon)
            .await
            .expect("acquire"),
        "leases are per integration"
    );
    assert!(
        store
            .acquire_lease(i, "a", soon + Duration::minutes(5))
            .await
            .expect("renew"),
        "the holder renews its own lease"
    );
    store.release_lease(i, "b").await.expect("release by other");
    assert!(
        !store.acquire_lease(i, "c", soon).await.expect("acquire"),
        "release by another holder must not free the lease"
    );
    store.release_lease(i, "a").await.expect("release");
    assert!(
        store
            .acquire_lease(i, "b", Utc::now() - Duration::seconds(1))
            .await
            .expect("acquire"),
        "a released lease is free"
    );
    assert!(
        store.acquire_lease(i, "c", soon).await.expect("acquire"),
        "an expired lease is taken by anyone"
    );
    assert!(
        !store.acquire_lease(i, "b", soon).await.expect("acquire"),
        "the new holder of a taken-over lease excludes the old one"
    );
    store
        .release_lease(Integration::Deals, "nobody")
        .await
        .expect("releasing a lease nobody holds is not an error");
}

/// Pause flags: false by default, per integration.
pub async fn pauses(store: &dyn Store) {
    for i in Integration::ALL {
        assert!(
            !store.is_paused(i).await.expect("is_paused"),
            "{i} is not paused by default"
        );
    }
    store
        .set_paused(Integration::Deals, true)
        .await
        .expect("pause");
    assert!(store
        .is_paused(Integration::Deals)
        .await
        .expect("is_paused"));
    assert!(
        !store
            .is_paused(Integration::People)
            .await
            .expect("is_paused"),
        "pause flags are per integration"
    );
    store
        .set_paused(Integration::Deals, false)
        .await
        .expect("resume");
    assert!(
        !store
            .is_paused(Integration::Deals)
            .await
            .expect("is_paused"),
        "set_paused(false) resumes"
    );
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
    done.finished_at = Some(micros(now));
    done.counts = Counts {
        created: PerSide { crm: 3, prm: 1 },
        updated: PerSide { crm: 2, prm: 5 },
        deleted_marked: 1,
        disconnected: 2,
        conflicts: 4,
        unchanged: 900,
        errors: 6,
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

#[allow(clippy::too_many_arguments)]
fn entry(
    id: &str,
    time: DateTime<Utc>,
    integration: Integration,
    code: LogCode,
    run_id: &str,
    object: Option<ObjectKind>,
    crm_id: Option<&str>,
    prm_id: Option<&str>,
) -> LogEntry {
    LogEntry {
        id: id.into(),
        time: micros(time),
        run_id: run_id.into(),
        integration,
        level: code.level(),
        code,
        object,
        crm_id: crm_id.map(Into::into),
        prm_id: prm_id.map(Into::into),
        link: crm_id.map(|c| format!("https://example.my.salesforce.com/{c}")),
        message: format!("entry {id}"),
        fix: code.fix().into(),
        details: json!({"status": 400, "errors": [{"field": "Name", "message": "too long"}]}),
        acknowledged: false,
    }
}

async fn listed(store: &dyn Store, filter: LogFilter) -> Vec<String> {
    store
        .entries(&filter)
        .await
        .unwrap_or_else(|e| panic!("entries({filter:?}): {e}"))
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Integration Log: idempotent append, newest first, every filter, acknowledgement by id
/// and of all errors and warnings, prune.
pub async fn log(store: &dyn Store) {
    let now = Utc::now();
    let org = Some(ObjectKind::Organization);
    let mut e5 = entry(
        "log-5",
        now - Duration::hours(1),
        Integration::Organizations,
        LogCode::RecordUpdated,
        "run-b",
        org,
        Some("001X"),
        Some("org_9"),
    );
    e5.details = serde_json::Value::Null;
    e5.link = None;
    let entries = vec![
        entry(
            "log-1",
            now - Duration::days(30),
            Integration::Organizations,
            LogCode::CrmDataError,
            "run-a",
            org,
            Some("001X"),
            None,
        ),
        entry(
            "log-2",
            now - Duration::days(2),
            Integration::People,
            LogCode::Conflict,
            "run-a",
            Some(ObjectKind::Person),
            None,
            Some("per_9"),
        ),
        entry(
            "log-3",
            now - Duration::hours(3),
            Integration::Deals,
            LogCode::DealImported,
            "run-b",
            Some(ObjectKind::Deal),
            Some("006B"),
            Some("deal_1"),
        ),
        entry(
            "log-4",
            now - Duration::hours(2),
            Integration::Deals,
            LogCode::DealNoAccount,
            "run-b",
            Some(ObjectKind::Deal),
            Some("006A"),
            None,
        ),
        e5,
    ];
    assert!(
        listed(store, LogFilter::default()).await.is_empty(),
        "the log is empty at first"
    );
    store.append(&entries).await.expect("append");
    store.append(&[]).await.expect("append nothing");
    let every = s(&["log-5", "log-4", "log-3", "log-2", "log-1"]);
    assert_eq!(
        listed(store, LogFilter::default()).await,
        every,
        "entries are listed newest first"
    );
    store
        .append(&entries[1..3])
        .await
        .expect("append the same entries again");
    assert_eq!(
        listed(store, LogFilter::default()).await,
        every,
        "append is idempotent by entry id"
    );
    let got = store.entries(&LogFilter::default()).await.expect("entries");
    let mut want = entries.clone();
    want.reverse();
    assert_eq!(got, want, "log entries round-trip every field");

    let f = LogFilter::default;
    assert_eq!(
        listed(
            store,
            LogFilter {
                integration: Some(Integration::Deals),
                ..f()
            }
        )
        .await,
        s(&["log-4", "log-3"]),
        "filter by integration"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                min_level: Some(Level::Warning),
                ..f()
            }
        )
        .await,
        s(&["log-4", "log-2", "log-1"]),
        "min_level warning lists warnings and errors"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                min_level: Some(Level::Error),
                ..f()
            }
        )
        .await,
        s(&["log-4", "log-1"]),
        "min_level error lists errors"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                min_level: Some(Level::Info),
                ..f()
            }
        )
        .await,
        every,
        "min_level info lists everything"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                code: Some(LogCode::DealNoAccount),
                ..f()
            }
        )
        .await,
        s(&["log-4"]),
        "filter by code"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                run_id: Some("run-a".into()),
                ..f()
            }
        )
        .await,
        s(&["log-2", "log-1"]),
        "filter by run id"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                record_id: Some("001X".into()),
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-1"]),
        "record_id matches the Salesforce Id"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                record_id: Some("per_9".into()),
                ..f()
            }
        )
        .await,
        s(&["log-2"]),
        "record_id matches the PRM id"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                since: Some(now - Duration::days(1)),
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-4", "log-3"]),
        "since lists entries at or after the time"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                since: Some(micros(now - Duration::hours(2))),
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-4"]),
        "since includes an entry at exactly that time"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                integration: Some(Integration::Deals),
                since: Some(now - Duration::minutes(150)),
                ..f()
            }
        )
        .await,
        s(&["log-4"]),
        "filters combine"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                limit: Some(2),
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-4"]),
        "limit keeps the newest entries"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                limit: Some(2),
                min_level: Some(Level::Warning),
                ..f()
            }
        )
        .await,
        s(&["log-4", "log-2"]),
        "limit applies after the filters"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                unacknowledged: true,
                ..f()
            }
        )
        .await,
        every,
        "every entry is unacknowledged at first"
    );
    let open = || LogFilter {
        unacknowledged: true,
        min_level: Some(Level::Warning),
        ..f()
    };
    assert_eq!(
        listed(store, open()).await,
        s(&["log-4", "log-2", "log-1"]),
        "unacknowledged warnings and errors"
    );

    // Acknowledge by id.
    assert_eq!(
        store
            .acknowledge(Some(&s(&["log-4"])))
            .await
            .expect("acknowledge"),
        1,
        "acknowledging one open error by id returns 1"
    );
    assert_eq!(
        store
            .acknowledge(Some(&s(&["log-4", "log-unknown"])))
            .await
            .expect("acknowledge again"),
        0,
        "acknowledging an acknowledged or unknown entry returns 0"
    );
    assert_eq!(
        listed(store, open()).await,
        s(&["log-2", "log-1"]),
        "an acknowledged entry is no longer unacknowledged"
    );
    store
        .append(&entries[3..4])
        .await
        .expect("append an acknowledged entry again");
    assert_eq!(
        listed(store, open()).await,
        s(&["log-2", "log-1"]),
        "appending an entry again (a redelivery) does not reopen it once acknowledged"
    );
    let e4 = store
        .entries(&LogFilter {
            code: Some(LogCode::DealNoAccount),
            ..f()
        })
        .await
        .expect("entries");
    assert!(
        e4.len() == 1 && e4[0].acknowledged,
        "an acknowledged entry is listed with acknowledged = true"
    );
    assert_eq!(
        listed(
            store,
            LogFilter {
                unacknowledged: true,
                ..f()
            }
        )
        .await,
        s(&["log-5", "log-3", "log-2", "log-1"]),
        "unacknowledged without a level excludes acknowledged entries only"
    );

    // Acknowledge every open warning and error; info entries stay as they are.
    assert_eq!(
        store.acknowledge(None).await.expect("acknowledge all"),
        2,
        "acknowledge(None) acknowledges every open warning and error and returns how many"
    );
    assert!(
        listed(store, open()).await.is_empty(),
        "no open warnings or errors after acknowledge(None)"
    );
    let all_now = store.entries(&LogFilter::default()).await.expect("entries");
    for e in &all_now {
        assert_eq!(
            e.acknowledged,
            e.level != Level::Info,
            "after acknowledge(None), {} ({:?}) acknowledged = {}",
            e.id,
            e.level,
            e.acknowledged
        );
    }
    assert_eq!(
        store
            .acknowledge(None)
            .await
            .expect("acknowledge all again"),
        0,
        "acknowledge(None) with nothing open returns 0"
    );

    // Prune.
    assert_eq!(
        store.prune(now - Duration::days(20)).await.expect("prune"),
        1,
        "prune deletes the entries older than `before` and returns how many"
    );
    assert_eq!(
        listed(store, LogFilter::default()).await,
        s(&["log-5", "log-4", "log-3", "log-2"]),
        "pruned entries are gone, newer ones stay"
    );
    assert_eq!(
        store
            .prune(now - Duration::days(20))
            .await
            .expect("prune again"),
        0,
        "prune with nothing older returns 0"
    );
}

/// Rejections: remembered per object, side and id; upsert; map of the ids that have one.
pub async fn rejections(store: &dyn Store) {
    let org = ObjectKind::Organization;
    assert!(
        store
            .rejected_versions(org, "crm", &s(&["001A"]))
            .await
            .expect("rejected")
            .is_empty(),
        "nothing is rejected at first"
    );
    store
        .remember_rejection(org, "crm", "001A", "2024-05-01T10:00:00.000Z")
        .await
        .expect("remember");
    store
        .remember_rejection(org, "crm", "001B", "v1")
        .await
        .expect("remember");
    store
        .remember_rejection(org, "prm", "001A", "prm-v")
        .await
        .expect("remember other side");
    store
        .remember_rejection(ObjectKind::Person, "crm", "001B", "person-v")
        .await
        .expect("remember other object");
    store
        .remember_rejection(org, "crm", "001B", "v2")
        .await
        .expect("remember again");
    let mut asked: Vec<String> = (0..150).map(|i| format!("001Q{i}")).collect();
    asked.extend(s(&["001A", "001B", "001C", "001A"]));
    let got = store
        .rejected_versions(org, "crm", &asked)
        .await
        .expect("rejected");
    let want = BTreeMap::from([
        ("001A".to_string(), "2024-05-01T10:00:00.000Z".to_string()),
        ("001B".to_string(), "v2".to_string()),
    ]);
    assert_eq!(
        got, want,
        "rejected_versions maps each id with a rejection to its latest version, per object and side"
    );
    assert_eq!(
        store
            .rejected_versions(org, "link", &s(&["001A"]))
            .await
            .expect("rejected"),
        BTreeMap::new(),
        "rejections are per side"
    );
    assert!(
        store
            .rejected_versions(org, "crm", &[])
            .await
            .expect("rejected none")
            .is_empty(),
        "no ids: empty map"
    );
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
    };
    let other = Counts {
        unchanged: 5,
        ..Counts::default()
    };
    let finish = |integration: Integration, run_id: &'static str, number: u32, counts: Counts| async move {
        store
            .finish_chunk(integration, run_id, number, &counts)
            .await
            .unwrap_or_else(|e| panic!("finish_chunk({integration}, {run_id}, {number}): {e}"))
    };
    assert_eq!(
        finish(i, "plan-1", 2, counts.clone()).await,
        Some(1),
        "the first finish of a chunk counts it: 1 chunk of the run done"
    );
    assert_eq!(
        finish(i, "plan-1", 2, other.clone()).await,
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
    assert_eq!(
        store.run_chunks(i, "plan-1").await.expect("list"),
        vec![c0_done.clone(), c1.clone(), c2_done.clone(), c10.clone()],
        "a done chunk keeps the counts of its first finish; the others are not done"
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

fn retry(object: ObjectKind, side: &str, id: &str, attempts: u32, parked: bool) -> RetryEntry {
    let now = Utc::now();
    RetryEntry {
        object,
        side: side.into(),
        id: id.into(),
        attempts,
        next_at: micros(now + Duration::minutes(5 * i64::from(attempts))),
        parked,
        error: format!("attempt {attempts}: Salesforce did not answer in time"),
        updated_at: micros(now),
    }
}

fn by_key(mut entries: Vec<RetryEntry>) -> Vec<RetryEntry> {
    entries.sort_by(|a, b| (&a.side, &a.id).cmp(&(&b.side, &b.id)));
    entries
}

/// The retry set: entries by object, side and id; held (inserted or replaced), listed by
/// ids and side or whole (parked ones included), cleared. Uses ids `006R*`.
pub async fn retry_set(store: &dyn Store) {
    let deal = ObjectKind::Deal;
    assert!(
        store.all_retries(deal).await.expect("all").is_empty(),
        "the retry set is empty at first"
    );
    assert!(store
        .retry_entries(deal, "crm", &s(&["006R1"]))
        .await
        .expect("entries")
        .is_empty());
    let a = retry(deal, "crm", "006R1", 1, false);
    let b = retry(deal, "crm", "006R2", 2, false);
    let c = retry(deal, "prm", "006R1", 1, false);
    let d = retry(deal, "crm", "006R3", 9, true);
    let e = retry(ObjectKind::Person, "crm", "006R1", 1, false);
    store
        .hold_retries(&[a.clone(), b.clone(), c.clone(), d.clone(), e.clone()])
        .await
        .expect("hold");
    store.hold_retries(&[]).await.expect("hold nothing");
    let mut asked: Vec<String> = (0..150).map(|n| format!("006RQ{n}")).collect();
    asked.extend(s(&["006R1", "006R3", "006R9", "006R1"]));
    assert_eq!(
        by_key(
            store
                .retry_entries(deal, "crm", &asked)
                .await
                .expect("entries")
        ),
        vec![a.clone(), d.clone()],
        "retry_entries returns the held entries of the asked ids of one side (parked ones too), every field round-tripped"
    );
    assert_eq!(
        store
            .retry_entries(deal, "prm", &s(&["006R1"]))
            .await
            .expect("entries"),
        vec![c.clone()],
        "entries are per side"
    );
    assert!(
        store
            .retry_entries(deal, "crm", &[])
            .await
            .expect("entries")
            .is_empty(),
        "no ids: no entries"
    );

    // Held again: replaced by object, side and id.
    let a2 = RetryEntry {
        attempts: 2,
        parked: true,
        error: "attempt 2: the PRM answered 503".into(),
        next_at: micros(Utc::now() + Duration::hours(1)),
        ..a.clone()
    };
    store
        .hold_retries(std::slice::from_ref(&a2))
        .await
        .expect("hold again");
    assert_eq!(
        store
            .retry_entries(deal, "crm", &s(&["006R1"]))
            .await
            .expect("entries"),
        vec![a2.clone()],
        "holding an entry again replaces it"
    );
    assert_eq!(
        by_key(store.all_retries(deal).await.expect("all")),
        vec![a2.clone(), b.clone(), d.clone(), c.clone()],
        "all_retries lists every entry of the object, parked ones included"
    );
    assert_eq!(
        store.all_retries(ObjectKind::Person).await.expect("all"),
        vec![e.clone()],
        "the retry set is per object"
    );

    // Cleared by ids of one side; unknown ids are ignored.
    store
        .clear_retries(deal, "crm", &s(&["006R1", "006R9"]))
        .await
        .expect("clear");
    store
        .clear_retries(deal, "crm", &[])
        .await
        .expect("clear none");
    assert_eq!(
        by_key(store.all_retries(deal).await.expect("all")),
        vec![b, d, c],
        "clear_retries removes the named entries of that side only"
    );
    assert_eq!(
        store.all_retries(ObjectKind::Person).await.expect("all"),
        vec![e],
        "clear_retries removes the entries of that object only"
    );
}

/// The API hold: none at first, a later hold replaces an earlier one (even a shorter one),
/// past holds are returned.
pub async fn api_hold(store: &dyn Store) {
    assert_eq!(
        store.api_hold().await.expect("api_hold"),
        None,
        "no hold at first"
    );
    let until = micros(Utc::now() + Duration::minutes(30));
    store.hold_api(until).await.expect("hold");
    assert_eq!(
        store.api_hold().await.expect("api_hold"),
        Some(until),
        "the hold round-trips to the microsecond"
    );
    let past = micros(Utc::now() - Duration::minutes(1));
    store.hold_api(past).await.expect("hold again");
    assert_eq!(
        store.api_hold().await.expect("api_hold"),
        Some(past),
        "a later hold replaces an earlier one, and a past hold is still returned"
    );
}
