//! Salesforce change events on AWS (Change Data Capture, as Event Relay puts them on
//! EventBridge and a rule sends them to the work queue), on moto's SQS and DynamoDB with
//! the simulators: a Salesforce edit becomes a change event, the event reaches the worker
//! through SQS and the PRM has the value; prmsync's own writes raise events that are
//! dropped without an API call; a gap event leads to a fresh read; a dropped event is
//! repaired by the next scheduled run; a repeated or reordered event writes nothing more;
//! an overflow plans its object; a delete disconnects the link.

mod common;

use std::sync::Arc;

use common::aws::{endpoint, Invocations, Moto};
use prmsync_lambda::handlers::full_sync;
use prmsync_lambda::Deps;
use prmsync_mapping::{MappingConfig, ObjectKind};
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};
use prmsync_simulators::prm::{Collection, PrmSim};
use prmsync_simulators::salesforce::cdc::ChangeEventFaults;
use prmsync_simulators::salesforce::SalesforceSim;
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

struct World {
    sf: SalesforceSim,
    prm: PrmSim,
    aws: Moto,
    deps: Deps,
    invocations: Arc<Invocations>,
}

/// Three flagged Accounts with a Contact each, synced to the PRM by a first full run on
/// AWS, with Change Data Capture on for the three objects.
async fn world() -> World {
    let sf = SalesforceSim::new();
    sf.enable_change_events(&["Account", "Contact", "Opportunity"]);
    let prm = PrmSim::new("t");
    for i in 0..3 {
        let acc = sf.insert("Account", obj(json!({"Name": format!("Acc {i}"), "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})));
        sf.insert("Contact", obj(json!({"AccountId": acc, "FirstName": "F", "LastName": format!("C{i}"), "Email": format!("c{i}@acc{i}.example")})));
    }
    let mut cfg = SalesforceConfig::new(
        sf.start().await.unwrap(),
        Auth::ClientCredentials {
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
        },
    );
    cfg.client_name = MappingConfig::default().salesforce.client_name;
    let crm = Arc::new(SalesforceClient::new(cfg).unwrap());
    let prm_client =
        Arc::new(PrmClient::new(PrmConfig::new(prm.start().await.unwrap(), "t")).unwrap());
    let aws = Moto::new(3).await;
    let ctx = prmsync_connect::sync_context(
        crm,
        prm_client,
        aws.store.clone(),
        MappingConfig::default(),
        "test",
    );
    let (deps, invocations) = aws.deps(ctx);
    // the users' own inserts are not what the tests look at
    sf.take_change_events();
    full_sync::handle(&deps, json!({"integration": "all", "mode": "full"}))
        .await
        .unwrap();
    aws.drain(&deps, &invocations, false).await;
    assert_eq!(prm.list(Collection::Organizations).len(), 3);
    World {
        sf,
        prm,
        aws,
        deps,
        invocations,
    }
}

impl World {
    /// The change events published since the last call, sent to the work queue as the
    /// EventBridge rule sends them (the whole event as the message body); then the
    /// workers drain it. Returns how many were sent.
    async fn relay_and_work(&self) -> usize {
        let events = self.sf.take_change_events();
        for e in &events {
            self.aws.send(&e.to_string()).await;
        }
        self.aws.drain(&self.deps, &self.invocations, false).await;
        events.len()
    }

    fn reset_calls(&self) {
        self.sf.reset_api_calls();
        self.prm.reset_api_calls();
    }

    /// A synced Account and its PRM organization.
    fn account(&self, n: usize) -> (String, String) {
        let org = &self.prm.list(Collection::Organizations)[n];
        (
            org["crm_id"].as_str().unwrap().to_string(),
            org["id"].as_str().unwrap().to_string(),
        )
    }

    fn prm_name(&self, org: &str) -> Value {
        self.prm.get(Collection::Organizations, org).unwrap()["name"].clone()
    }

    fn rename(&self, account: &str, name: &str) {
        self.sf
            .update("Account", account, obj(json!({ "Name": name })));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reaches_the_prm_through_its_change_event_and_prmsyncs_own_writes_cost_nothing() {
    if endpoint().is_none() {
        return;
    }
    let w = world().await;
    // prmsync's own writes of the first run (Record Status, PRM ids...) raised events:
    // they name its client and are dropped before any API call
    let own = w.sf.take_change_events();
    assert!(!own.is_empty(), "the first run wrote to Salesforce");
    assert!(own.iter().all(
        |e| e["detail"]["payload"]["ChangeEventHeader"]["changeOrigin"]
            .as_str()
            .unwrap()
            .ends_with(";client=prmsync")
    ));
    w.reset_calls();
    for e in &own {
        w.aws.send(&e.to_string()).await;
    }
    w.aws.drain(&w.deps, &w.invocations, false).await;
    assert_eq!(
        w.sf.api_calls().total,
        0,
        "an echo costs no Salesforce call"
    );
    assert_eq!(w.prm.api_calls().total, 0, "an echo costs no PRM call");

    // a user's edit in Salesforce: one event, one read of Salesforce, the PRM updated
    let (account, org) = w.account(0);
    w.rename(&account, "Renamed in Salesforce");
    w.reset_calls();
    assert_eq!(w.relay_and_work().await, 1);
    assert_eq!(w.prm_name(&org), "Renamed in Salesforce");
    let sf = w.sf.api_calls();
    assert_eq!(
        sf.kind("query") + sf.kind("query_all"),
        1,
        "one read per batch: {sf:?}"
    );
    assert_eq!(w.prm.api_calls().count("update"), 1);

    // the same event again (at-least-once delivery): nothing more is written
    w.rename(&account, "Renamed again");
    let again = w.sf.take_change_events();
    assert_eq!(again.len(), 1);
    for _ in 0..2 {
        w.aws.send(&again[0].to_string()).await;
    }
    w.reset_calls();
    w.aws.drain(&w.deps, &w.invocations, false).await;
    assert_eq!(w.prm_name(&org), "Renamed again");
    assert_eq!(w.prm.api_calls().writes(), 1, "the repeat writes nothing");
    assert_eq!(
        w.sf.api_calls().kind("composite_update") + w.sf.api_calls().kind("sobject_update"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_drops_reorders_overflows_and_deletes_all_end_in_step() {
    if endpoint().is_none() {
        return;
    }
    let w = world().await;
    w.sf.take_change_events();
    let (a0, o0) = w.account(0);
    let (a1, o1) = w.account(1);
    let (a2, o2) = w.account(2);

    // a gap event carries no values: the record is read fresh
    w.rename(&a0, "Changed behind a gap");
    w.sf.take_change_events();
    w.sf.publish_gap_event("Account", std::slice::from_ref(&a0), "UPDATE");
    assert_eq!(w.relay_and_work().await, 1);
    assert_eq!(w.prm_name(&o0), "Changed behind a gap");

    // events out of order: the record is read fresh, so the last value wins
    w.rename(&a1, "First");
    w.rename(&a1, "Second");
    w.sf.set_change_event_faults(ChangeEventFaults {
        reorder: true,
        ..Default::default()
    });
    assert_eq!(w.relay_and_work().await, 2);
    assert_eq!(w.prm_name(&o1), "Second");

    // a dropped event: the next scheduled run reads the change by SystemModstamp
    w.rename(&a2, "Lost event");
    w.sf.set_change_event_faults(ChangeEventFaults {
        drop: 1,
        ..Default::default()
    });
    assert_eq!(w.relay_and_work().await, 0, "the event was lost");
    assert_ne!(w.prm_name(&o2), "Lost event");
    let scheduled: Value = serde_json::from_str(include_str!(
        "../../shared/lambda/tests/fixtures/scheduled-event.json"
    ))
    .unwrap();
    full_sync::handle(&w.deps, scheduled).await.unwrap();
    w.aws.drain(&w.deps, &w.invocations, false).await;
    assert_eq!(w.prm_name(&o2), "Lost event");

    // an overflow names no record: the worker asks the planner for a run of the object
    w.rename(&a0, "Overflowed");
    w.sf.take_change_events();
    w.sf.publish_overflow_event("Account");
    let events = w.sf.take_change_events();
    w.aws.send(&events[0].to_string()).await;
    let batch = w.aws.worker_batch(&w.deps).await;
    assert_eq!(batch.len(), 1);
    let asked = w.invocations.0.lock().unwrap().clone();
    assert_eq!(
        asked,
        vec![json!({"integration": "organizations", "mode": "incremental"})]
    );
    w.aws.drain(&w.deps, &w.invocations, false).await;
    assert_eq!(w.prm_name(&o0), "Overflowed");

    // a delete in Salesforce: the PRM record is kept and the link disconnected
    w.sf.delete("Account", &a1);
    assert!(w.relay_and_work().await >= 1);
    assert!(w.prm.get(Collection::Organizations, &o1).is_some());
    let links = w
        .deps
        .ctx
        .store
        .find_links(ObjectKind::Organization, &[], std::slice::from_ref(&o1))
        .await
        .unwrap();
    assert!(
        links.is_empty() || links[0].state != prmsync_engine::LinkState::Linked,
        "{links:?}"
    );
}
