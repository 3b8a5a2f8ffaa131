//! End to end on moto (DynamoDB and SQS on 127.0.0.1) and the simulators, through the
//! functions' handlers: full-sync queues work, two workers at once drain the queue the way
//! Lambda's SQS event source does (`common::aws`), and both systems
//! end in the state the one-machine run reaches on the same data. A message that keeps
//! failing rests in the dead-letter queue after maxReceiveCount and is logged; redelivered
//! messages change nothing.

mod common;

use std::sync::Arc;

use common::aws::{endpoint, Invocations, Moto};
use prmsync_engine::{run_integration, LogFilter, RunMode, RunOptions, SyncContext};
use prmsync_lambda::handlers::full_sync;
use prmsync_lambda::Deps;
use prmsync_mapping::{Integration, LogCode, MappingConfig};
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};
use prmsync_simulators::prm::{Collection, PrmSim};
use prmsync_simulators::salesforce::SalesforceSim;
use prmsync_state_sqlite::SqliteStore;
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

struct Systems {
    sf: SalesforceSim,
    prm: PrmSim,
    crm: Arc<SalesforceClient>,
    prm_client: Arc<PrmClient>,
}

async fn systems() -> Systems {
    let sf = SalesforceSim::new();
    let prm = PrmSim::new("t");
    let crm = SalesforceClient::new(SalesforceConfig::new(
        sf.start().await.unwrap(),
        Auth::ClientCredentials {
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
        },
    ))
    .unwrap();
    let prm_client = PrmClient::new(PrmConfig::new(prm.start().await.unwrap(), "t")).unwrap();
    for i in 0..3 {
        let acc = sf.insert("Account", obj(json!({"Name": format!("Acc {i}"), "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})));
        for j in 0..3 {
            sf.insert("Contact", obj(json!({"AccountId": acc, "FirstName": "F", "LastName": format!("C{i}{j}"), "Email": format!("c{i}{j}@acc{i}.example")})));
        }
        let org = prm.insert(
            Collection::Organizations,
            json!({"kind": "distributor", "status": "active", "name": format!("Org {i}")}),
        );
        prm.insert(Collection::People, json!({"organization_id": org, "kind": "contact", "first_name": "P", "last_name": format!("Q{i}")}));
    }
    // Companies that exist on both sides already (one name and website, people with one
    // email): a first import links them and creates no twin.
    for i in 0..3 {
        let acc = sf.insert("Account", obj(json!({"Name": format!("Both {i}, Inc."), "Website": format!("https://www.both{i}.example"), "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})));
        let org = prm.insert(
            Collection::Organizations,
            json!({"kind": "partner", "status": "active", "name": format!("BOTH {i}"), "website": format!("both{i}.example")}),
        );
        for j in 0..2 {
            sf.insert("Contact", obj(json!({"AccountId": acc, "FirstName": "B", "LastName": format!("B{i}{j}"), "Email": format!("b{j}@both{i}.example")})));
            prm.insert(Collection::People, json!({"organization_id": org, "kind": "contact", "first_name": "B", "last_name": format!("B{i}{j}"), "email": format!("B{j}@Both{i}.example")}));
        }
    }
    Systems {
        crm: Arc::new(crm),
        prm_client: Arc::new(prm_client),
        sf,
        prm,
    }
}

/// The functions' dependencies over fresh tables and queues, with `mapping`.
fn deps(s: &Systems, aws: &Moto, mapping: MappingConfig) -> (Deps, Arc<Invocations>) {
    let mut ctx = ctx(s, aws.store.clone());
    ctx.mapping = Arc::new(mapping);
    aws.deps(ctx)
}

fn ctx(s: &Systems, store: Arc<dyn prmsync_engine::Store>) -> SyncContext {
    SyncContext {
        crm: s.crm.clone(),
        prm: s.prm_client.clone(),
        store,
        mapping: Arc::new(MappingConfig::default()),
        holder: "test".into(),
        lease_ttl: chrono::Duration::minutes(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_and_workers_on_aws_reach_the_one_machine_state() {
    if endpoint().is_none() {
        return;
    }
    // GIVEN the same data twice
    let local = systems().await;
    let local_ctx = ctx(&local, Arc::new(SqliteStore::in_memory()));
    for i in [Integration::Organizations, Integration::People] {
        let r = run_integration(
            &local_ctx,
            i,
            RunOptions {
                mode: RunMode::Incremental,
                dry_run: false,
                run_id: None,
                allow_mass_change: false,
            },
        )
        .await;
        assert_eq!(r.status, "succeeded");
    }
    let remote = systems().await;
    let aws = Moto::new(2).await;
    let (deps, invocations) = deps(&remote, &aws, MappingConfig::default());

    // WHEN the scheduled full-sync runs and the workers drain the queue
    let scheduled: Value = serde_json::from_str(include_str!(
        "../../shared/lambda/tests/fixtures/scheduled-event.json"
    ))
    .unwrap();
    let out = full_sync::handle(&deps, scheduled).await.unwrap();
    assert_eq!(
        out["integrations"]["organizations"]["status"], "queued",
        "{out}"
    );
    assert_eq!(
        out["integrations"]["people"]["status"], "after_organizations",
        "people are planned once the organizations are linked: {out}"
    );
    assert!(
        out["integrations"].get("deals").is_none(),
        "deals are deal-import's: {out}"
    );
    let delivered = aws.drain(&deps, &invocations, false).await;
    assert!(!delivered.is_empty());

    // THEN both systems match the one-machine result, with no twin of the companies
    // that were on both sides
    assert_eq!(
        common::labelled_state(&remote.sf, &remote.prm),
        common::labelled_state(&local.sf, &local.prm)
    );
    assert_eq!(remote.sf.records("Account").len(), 9);
    assert_eq!(remote.prm.list(Collection::Organizations).len(), 9);
    assert_eq!(remote.sf.records("Contact").len(), 18);
    assert_eq!(remote.prm.list(Collection::People).len(), 18);
    assert!(aws.dead_letters().await.is_empty());
    // and each integration's run is recorded on its own, closed by its last chunk
    use prmsync_engine::store::Runs;
    for i in [Integration::Organizations, Integration::People] {
        let run = aws.store.last_run(i).await.unwrap().expect("a run");
        assert_eq!((run.integration, run.status.as_str()), (i, "succeeded"));
    }
    assert_eq!(
        aws.store
            .last_run(Integration::People)
            .await
            .unwrap()
            .unwrap()
            .counts
            .created,
        prmsync_engine::report::PerSide { crm: 3, prm: 9 }
    );

    // and delivering every message again changes nothing
    let writes_sf = remote.sf.api_calls().kind("composite_update")
        + remote.sf.api_calls().kind("composite_upsert");
    let writes_prm = remote.prm.api_calls().writes();
    for body in &delivered {
        aws.send(body).await;
    }
    aws.drain(&deps, &invocations, false).await;
    assert_eq!(
        remote.prm.api_calls().writes(),
        writes_prm,
        "redelivery wrote to the PRM"
    );
    assert_eq!(
        remote.sf.api_calls().kind("composite_update")
            + remote.sf.api_calls().kind("composite_upsert"),
        writes_sf,
        "redelivery wrote to Salesforce"
    );
    assert_eq!(
        common::labelled_state(&remote.sf, &remote.prm),
        common::labelled_state(&local.sf, &local.prm)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_rests_in_the_dead_letter_queue_and_is_logged() {
    if endpoint().is_none() {
        return;
    }
    let remote = systems().await;
    let aws = Moto::new(2).await;
    let (deps, invocations) = deps(&remote, &aws, MappingConfig::default());
    aws.send("{\"not\": \"a chunk\"}").await;
    aws.drain(&deps, &invocations, false).await;

    let dead = aws.dead_letters().await;
    assert_eq!(
        dead,
        vec!["{\"not\": \"a chunk\"}".to_string()],
        "the message rests in the dead-letter queue"
    );
    let logged = aws
        .store
        .entries(&LogFilter {
            code: Some(LogCode::QueueMessageMalformed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        logged.len(),
        2,
        "one entry per delivery (maxReceiveCount = 2)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_fails_for_a_passing_reason_is_retried_alone_and_nothing_reaches_the_dlq() {
    if endpoint().is_none() {
        return;
    }
    // GIVEN a first import where Salesforce keeps one new Account locked for one call
    // (retries without a delay, so the test need not wait)
    let remote = systems().await;
    let aws = Moto::new(2).await;
    let mut mapping = MappingConfig::default();
    mapping.sync.retry_delay_seconds = 0;
    let (deps, invocations) = deps(&remote, &aws, mapping);
    let org = remote
        .prm
        .list(Collection::Organizations)
        .into_iter()
        .find(|o| o["name"] == "Org 1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..5 {
        remote.sf.faults().fail_record_write(
            &org,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access",
        );
    }

    // WHEN the run is planned and the workers drain the queue
    full_sync::handle(&deps, json!({"integration": "all"}))
        .await
        .unwrap();
    aws.drain(&deps, &invocations, false).await;

    // THEN the record synced on its second attempt, alone, and nothing is dead
    assert_eq!(remote.sf.records("Account").len(), 9);
    assert_eq!(remote.sf.records("Contact").len(), 18);
    assert!(aws.dead_letters().await.is_empty());
    let retried = aws
        .store
        .entries(&LogFilter {
            code: Some(LogCode::RecordRetried),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].prm_id.as_deref(), Some(org.as_str()));
    use prmsync_engine::store::RetrySet;
    assert!(aws
        .store
        .all_retries(prmsync_mapping::ObjectKind::Organization)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_org_wide_api_limit_sends_nothing_to_the_dlq() {
    if endpoint().is_none() {
        return;
    }
    // GIVEN a planned first import
    let remote = systems().await;
    let aws = Moto::new(2).await;
    let (deps, invocations) = deps(&remote, &aws, MappingConfig::default());
    let out = full_sync::handle(&deps, json!({"integration": "organizations"}))
        .await
        .unwrap();
    let chunks = out["integrations"]["organizations"]["chunks"].to_string();
    assert_eq!(
        chunks, "2",
        "the Accounts with their partners, then the other organizations"
    );

    // WHEN Salesforce refuses every call for the org's daily limit while workers drain
    remote
        .sf
        .faults()
        .fail_rate(None, 1.0, 403, "REQUEST_LIMIT_EXCEEDED");
    aws.drain(&deps, &invocations, false).await;

    // THEN nothing was written, nothing is dead: the chunks wait in the queue, delayed
    assert_eq!(remote.sf.records("Account").len(), 6);
    assert!(aws.dead_letters().await.is_empty());
    assert_eq!(
        aws.delayed().await,
        chunks,
        "both chunks wait for the limit to clear"
    );
    use prmsync_engine::store::Pauses;
    assert!(aws.store.api_hold().await.unwrap().is_some());
    let held = aws
        .store
        .entries(&LogFilter {
            code: Some(LogCode::ApiLimitHold),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
}

use prmsync_engine::store::IntegrationLog;
