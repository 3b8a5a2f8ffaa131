//! The parity matrix: each end-to-end scenario is written once and run through both
//! deployments on the same data — the one-machine run on SQLite, and the AWS functions'
//! handlers (full-sync, sync-worker) on DynamoDB and SQS (moto), the queue drained the
//! way Lambda's event source does — and both must reach the same end state on both
//! systems, with the same record-level Integration Log entries.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::aws::{endpoint, Invocations, Moto};
use common::*;
use prmsync_engine::store::LogFilter;
use prmsync_engine::Store;
use prmsync_lambda::handlers::full_sync;
use prmsync_lambda::Deps;
use prmsync_mapping::{LogCode, MappingConfig};
use prmsync_simulators::prm::Collection;
use serde_json::{json, Value};

/// A scenario: data to start from, then edits, each followed by a sync on both sides.
struct Scenario {
    name: &'static str,
    seed: fn(&Harness),
    /// Edits between syncs; the harness runs a sync before the first and after each.
    edits: Vec<fn(&Harness)>,
    /// Syncs after the last edit (a record that failed for a passing reason needs one more).
    settle: usize,
    /// Compare after every sync, not only at the end. A record that failed for a passing
    /// reason is retried within the same run on AWS (alone, after its delay) and by the next
    /// run on one machine, so with such faults only the end states compare.
    each_sync: bool,
    /// Deliver every queue message twice on AWS (at-least-once delivery).
    twice: bool,
}

/// The AWS deployment of one scenario: the functions' handlers over DynamoDB and SQS.
struct Aws {
    moto: Moto,
    deps: Deps,
    invocations: Arc<Invocations>,
}

impl Aws {
    async fn new(h: &Harness) -> Self {
        let moto = Moto::new(5).await;
        let (deps, invocations) = moto.deps(h.ctx());
        Aws {
            moto,
            deps,
            invocations,
        }
    }

    /// The hourly run: full-sync's scheduled invocation, then workers until the queue is
    /// empty (the full-sync invocations they ask for included), nothing dead at the end.
    async fn sync(&self, twice: bool) {
        let out = full_sync::handle(&self.deps, json!({"source": "aws.events"}))
            .await
            .unwrap();
        let status = &out["integrations"]["organizations"]["status"];
        assert!(
            status == "queued" || status == "finished",
            "full-sync: {out}"
        );
        self.moto.drain(&self.deps, &self.invocations, twice).await;
        assert!(
            self.moto.dead_letters().await.is_empty(),
            "nothing reaches the dead-letter queue"
        );
    }
}

/// Record-level entries of the Integration Log by code (run-level and delivery entries,
/// which the deployments write differently, left out).
async fn record_codes(store: &dyn Store) -> BTreeMap<String, usize> {
    let run_level = [
        LogCode::RunStarted,
        LogCode::RunFinished,
        LogCode::RunQueued,
        LogCode::RunContinued,
        LogCode::ChunkRetried,
        LogCode::RecordRetried,
        LogCode::TransientError,
    ];
    let mut out = BTreeMap::new();
    for e in store
        .entries(&LogFilter {
            limit: Some(100_000),
            ..Default::default()
        })
        .await
        .unwrap()
    {
        if !run_level.contains(&e.code) {
            *out.entry(e.code.as_str().to_string()).or_default() += 1;
        }
    }
    out
}

async fn run(scenario: &Scenario) {
    let Some(_) = endpoint() else { return };
    // Records that failed for a passing reason are handed out again without a delay, so
    // the workers need not wait (one machine tries them on its next run either way).
    let mut mapping = MappingConfig::default();
    mapping.sync.retry_delay_seconds = 0;
    let local = Harness::with_mapping(mapping.clone()).await;
    let lambda = Harness::with_mapping(mapping).await;
    (scenario.seed)(&local);
    (scenario.seed)(&lambda);
    let aws = Aws::new(&lambda).await;
    let syncs = 1 + scenario.edits.len() + scenario.settle;
    let mut edits = scenario.edits.iter();
    for step in 0..syncs {
        assert_succeeded(&local.sync().await);
        aws.sync(scenario.twice).await;
        if scenario.each_sync || step + 1 == syncs {
            assert_eq!(
                labelled_state(&lambda.sf, &lambda.prm),
                labelled_state(&local.sf, &local.prm),
                "{}: after sync {step}",
                scenario.name
            );
        }
        if let Some(edit) = edits.next() {
            edit(&local);
            edit(&lambda);
        }
    }
    // Both runs of the last sync closed: nothing is left open.
    use prmsync_engine::store::Cursors;
    for i in [
        prmsync_mapping::Integration::Organizations,
        prmsync_mapping::Integration::People,
    ] {
        assert_eq!(
            aws.moto.store.checkpoint(i).await.unwrap(),
            None,
            "{}: the {i} run closed",
            scenario.name
        );
    }
    assert_eq!(
        record_codes(aws.moto.store.as_ref()).await,
        record_codes(local.store.as_ref()).await,
        "{}: the Integration Log",
        scenario.name
    );
}

fn find(h: &Harness, object: &str, name: &str) -> String {
    h.sf_records(object)
        .into_iter()
        .find(|r| r.get("Name").and_then(Value::as_str) == Some(name))
        .unwrap_or_else(|| panic!("no {object} named {name}"))["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn find_org(h: &Harness, name: &str) -> String {
    h.prm
        .list(Collection::Organizations)
        .into_iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no organization named {name}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn companies(h: &Harness) {
    for i in 0..4 {
        let acc = h.account(
            &format!("Both {i}"),
            Some("Active Partner"),
            json!({"Website": format!("https://both{i}.example"), "Phone": "+1 555 0100"}),
        );
        let org = h.prm.insert(
            Collection::Organizations,
            json!({"kind": "partner", "status": "active", "name": format!("Both {i}"), "website": format!("both{i}.example")}),
        );
        h.contact(
            &acc,
            "Ann",
            &format!("Both{i}"),
            &format!("ann@both{i}.example"),
        );
        h.prm.insert(
            Collection::People,
            json!({"organization_id": org, "kind": "user", "status": "active", "first_name": "Ann", "last_name": format!("Both{i}"), "email": format!("ann@both{i}.example")}),
        );
        let sf_only = h.account(&format!("Sf {i}"), Some("Active Partner"), json!({}));
        h.contact(
            &sf_only,
            "Sam",
            &format!("Sf{i}"),
            &format!("sam@sf{i}.example"),
        );
        let prm_only = h.org("distributor", "active", &format!("Prm {i}"));
        h.prm.insert(
            Collection::People,
            json!({"organization_id": prm_only, "kind": "contact", "first_name": "Pat", "last_name": format!("Prm{i}"), "email": format!("pat@prm{i}.example")}),
        );
    }
    // twins: one Account, two organizations of one key
    h.account(
        "Dup Co",
        Some("Active Partner"),
        json!({"Website": "https://dup.example"}),
    );
    h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Dup Co", "website": "dup.example"}),
    );
    h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "DUP CO.", "website": "https://dup.example/"}),
    );
    // an Account that is not flagged
    h.account("Not Synced", None, json!({}));
}

#[tokio::test]
async fn first_import_matches_creates_and_reports_twins_alike() {
    run(&Scenario {
        name: "first import",
        seed: companies,
        edits: vec![],
        settle: 1,
        each_sync: true,
        twice: false,
    })
    .await;
}

#[tokio::test]
async fn changes_and_conflicts_flow_alike() {
    run(&Scenario {
        name: "changes both ways",
        seed: companies,
        edits: vec![|h| {
            let a = find(h, "Account", "Both 0");
            h.sf.update("Account", &a, obj(json!({"Phone": "+1 555 0199"})));
            let o = find_org(h, "Both 1");
            h.prm.update(Collection::Organizations, &o, json!({"phone": "+1 555 0111"}));
            // both sides change one field of one pair: the conflict rule (newest) decides;
            // the Salesforce edit is a minute newer, so the outcome does not hang on which
            // edit a clock saw first
            let o = find_org(h, "Both 2");
            h.prm.update(Collection::Organizations, &o, json!({"phone": "+1 555 0133"}));
            h.sf.advance_clock(chrono::Duration::minutes(1));
            let c = find(h, "Account", "Both 2");
            h.sf.update("Account", &c, obj(json!({"Phone": "+1 555 0122"})));
            // new records on both sides, under linked organizations
            let acc = find(h, "Account", "Both 3");
            h.contact(&acc, "New", "Sfperson", "new@both3.example");
            let org = find_org(h, "Both 3");
            h.prm.insert(
                Collection::People,
                json!({"organization_id": org, "kind": "contact", "first_name": "New", "last_name": "Prmperson", "email": "newprm@both3.example"}),
            );
        }],
        settle: 1,
        each_sync: true,
        twice: false,
    })
    .await;
}

#[tokio::test]
async fn deletes_merges_and_unflagging_end_alike() {
    run(&Scenario {
        name: "deletes, merges, unflagging",
        seed: companies,
        edits: vec![|h| {
            // deleted in the PRM: Record Status in Salesforce
            let o = find_org(h, "Prm 0");
            h.prm.delete(Collection::Organizations, &o);
            // deleted in Salesforce: the PRM record stays, disconnected
            let a = find(h, "Account", "Sf 1");
            h.sf.delete("Account", &a);
            // merged in Salesforce: the link follows the master
            let master = find(h, "Account", "Not Synced");
            let loser = find(h, "Account", "Sf 2");
            h.sf.update(
                "Account",
                &master,
                obj(json!({"PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})),
            );
            h.sf.merge("Account", &master, &loser);
            // unflagged: sync stops, link kept
            let u = find(h, "Account", "Sf 3");
            h.sf.update("Account", &u, obj(json!({"PRM_Sync__c": false})));
        }],
        settle: 1,
        each_sync: true,
        twice: false,
    })
    .await;
}

#[tokio::test]
async fn bad_data_and_passing_faults_end_alike() {
    run(&Scenario {
        name: "bad data and faults",
        each_sync: false,
        twice: false,
        seed: |h| {
            companies(h);
            // a street Salesforce rejects, a status with no picklist value
            h.prm.insert(Collection::Organizations, json!({"kind": "partner", "status": "active", "name": "Long Street", "street": "x".repeat(300)}));
            h.org("distributor", "prospective", "Prospect Dist");
            // a new organization Salesforce keeps locked for one call
            let locked = h.org("partner", "active", "Locked Org");
            for _ in 0..5 {
                h.sf.faults().fail_record_write(
                    &locked,
                    "UNABLE_TO_LOCK_ROW",
                    "unable to obtain exclusive access",
                );
            }
        },
        edits: vec![|h| {
            let o = find_org(h, "Long Street");
            h.prm.update(Collection::Organizations, &o, json!({"street": "1 Short Street"}));
        }],
        settle: 1,
    })
    .await;
}

#[tokio::test]
async fn hierarchy_ends_alike() {
    run(&Scenario {
        name: "hierarchy",
        seed: |h| {
            let parent = h.account("Parent Co", Some("Active Partner"), json!({}));
            h.account(
                "Child Co",
                Some("Active Partner"),
                json!({"ParentId": parent}),
            );
            let org = h.org("partner", "active", "Prm Parent");
            h.prm.insert(
                Collection::Organizations,
                json!({"kind": "partner", "status": "active", "name": "Prm Child", "parent_id": org}),
            );
        },
        edits: vec![|h| {
            // the child moves under another parent in the PRM
            let child = find_org(h, "Prm Child");
            let other = find_org(h, "Parent Co");
            h.prm.update(Collection::Organizations, &child, json!({"parent_id": other}));
        }],
        settle: 1,
        each_sync: true,
        twice: false,
    })
    .await;
}

#[tokio::test]
async fn every_message_delivered_twice_ends_alike() {
    run(&Scenario {
        name: "redelivery",
        seed: companies,
        edits: vec![|h| {
            let a = find(h, "Account", "Both 0");
            h.sf.update("Account", &a, obj(json!({"Phone": "+1 555 0177"})));
            let o = find_org(h, "Prm 1");
            h.prm
                .update(Collection::Organizations, &o, json!({"city": "Lisbon"}));
        }],
        settle: 1,
        each_sync: true,
        twice: true,
    })
    .await;
}
