//! End to end on moto (DynamoDB and SQS on 127.0.0.1) and the simulators: full-sync queues
//! work, workers drain the queue the way Lambda's SQS event source does, and both systems
//! end in the state the one-machine run reaches on the same data. A message that keeps
//! failing rests in the dead-letter queue after maxReceiveCount and is logged; redelivered
//! messages change nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use prmsync_aws::dynamo::DynamoStore;
use prmsync_aws::sqs::SqsQueue;
use prmsync_engine::{run_integration, LogFilter, RunMode, RunOptions, SyncContext};
use prmsync_lambda::handlers::{full_sync, sync_worker};
use prmsync_lambda::Deps;
use prmsync_mapping::{Integration, LogCode, MappingConfig};
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};
use prmsync_simulators::prm::{Collection, PrmSim};
use prmsync_simulators::salesforce::SalesforceSim;
use prmsync_state_sqlite::SqliteStore;
use serde_json::{json, Map, Value};

/// The moto endpoint, or None (loudly) when a plain `cargo test` has none.
fn endpoint() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PRMSYNC_REQUIRE_AWS").is_ok() => {
            panic!("AWS_ENDPOINT_URL is not set: run ./scripts/test.sh, which starts moto")
        }
        _ => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "WARNING: AWS end-to-end tests did NOT run: AWS_ENDPOINT_URL is not set (./scripts/test.sh starts moto)");
            None
        }
    }
}

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

/// Full-sync invocations the workers asked for (a closed run's follow-up integrations),
/// made by [`drain`] as Lambda would make them.
#[derive(Default)]
struct Invocations(std::sync::Mutex<Vec<Value>>);

#[async_trait::async_trait]
impl prmsync_lambda::relaunch::Relaunch for Invocations {
    async fn relaunch(&self, payload: &Value) -> Result<(), String> {
        self.0.lock().unwrap().push(payload.clone());
        Ok(())
    }
}

fn deps(s: &Systems, aws: &Aws, mapping: MappingConfig) -> (Deps, Arc<Invocations>) {
    let invocations = Arc::new(Invocations::default());
    let mut ctx = ctx(s, aws.store.clone());
    ctx.mapping = Arc::new(mapping);
    (
        Deps {
            ctx,
            queue: Arc::new(SqsQueue::new(aws.sqs.clone(), aws.queue_url.clone())),
            webhook_secret: None,
            relaunch: Some(invocations.clone()),
        },
        invocations,
    )
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

/// Both systems' records, with the PRM's own ids (which depend on creation order) replaced by
/// the Salesforce Ids they are linked to, and timing fields left out.
fn state(s: &Systems) -> Vec<Vec<String>> {
    let orgs = s.prm.list(Collection::Organizations);
    let people = s.prm.list(Collection::People);
    let crm_of: std::collections::HashMap<String, Value> = orgs
        .iter()
        .chain(people.iter())
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["crm_id"].clone()))
        .collect();
    let link = |v: &Value| {
        v.as_str()
            .and_then(|id| crm_of.get(id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let norm = |records: Vec<Map<String, Value>>, refs: &[&str]| {
        let mut v: Vec<String> = records
            .into_iter()
            .map(|mut r| {
                for k in [
                    "SystemModstamp",
                    "LastModifiedDate",
                    "CreatedDate",
                    "updated_at",
                    "created_at",
                    "version",
                ] {
                    r.remove(k);
                }
                for k in refs {
                    if let Some(v) = r.get(*k).cloned() {
                        r.insert(k.to_string(), link(&v));
                    }
                }
                serde_json::to_string(&r).unwrap()
            })
            .collect();
        v.sort();
        v
    };
    let objs = |v: Vec<Value>| {
        v.into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect::<Vec<_>>()
    };
    vec![
        norm(s.sf.records("Account"), &["PRM_Id__c"]),
        norm(s.sf.records("Contact"), &["PRM_Id__c"]),
        norm(objs(orgs), &["id", "parent_id"]),
        norm(objs(people), &["id", "organization_id"]),
    ]
}

struct Aws {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
    store: Arc<DynamoStore>,
}

async fn aws() -> Aws {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        format!("state-{suffix}"),
        format!("log-{suffix}"),
    );
    store.create_tables().await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("dlq-{suffix}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("work-{suffix}"))
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Aws {
        sqs,
        queue_url,
        dlq_url,
        store: Arc::new(store),
    }
}

/// Delivers the queue to two workers at once as Lambda's event source mapping does:
/// batches of up to ten with their receive counts; succeeded messages are deleted,
/// reported failures become visible again. The full-sync invocations the workers ask for
/// are made once the queue is empty. Returns the bodies delivered.
async fn drain(deps: &Deps, aws: &Aws, invocations: &Invocations) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut bodies = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "the queue did not drain within 120 s"
        );
        let (a, b) = tokio::join!(worker_batch(deps, aws), worker_batch(deps, aws));
        if a.is_empty() && b.is_empty() {
            let next = std::mem::take(&mut *invocations.0.lock().unwrap());
            if next.is_empty() {
                return bodies;
            }
            for payload in next {
                full_sync::handle(deps, payload).await.unwrap();
            }
            continue;
        }
        bodies.extend(a);
        bodies.extend(b);
    }
}

/// One worker invocation: a batch of up to ten messages. Returns their bodies.
async fn worker_batch(deps: &Deps, aws: &Aws) -> Vec<String> {
    let out = aws
        .sqs
        .receive_message()
        .queue_url(&aws.queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return Vec::new();
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let count = m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .cloned()
                .unwrap_or_else(|| "1".into());
            json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "eventSource": "aws:sqs", "attributes": {"ApproximateReceiveCount": count}})
        })
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({"Records": records})).unwrap();
    let response = sync_worker::handle(deps, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let mut bodies = Vec::new();
    for m in &messages {
        bodies.push(m.body().unwrap_or_default().to_string());
        let handle = m.receipt_handle().unwrap();
        if failed.contains(&m.message_id().unwrap_or_default()) {
            aws.sqs
                .change_message_visibility()
                .queue_url(&aws.queue_url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        } else {
            aws.sqs
                .delete_message()
                .queue_url(&aws.queue_url)
                .receipt_handle(handle)
                .send()
                .await
                .unwrap();
        }
    }
    bodies
}

/// Messages in the dead-letter queue.
async fn dead_letters(aws: &Aws) -> Vec<String> {
    aws.sqs
        .receive_message()
        .queue_url(&aws.dlq_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| m.body().unwrap_or_default().to_string())
        .collect()
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
            },
        )
        .await;
        assert_eq!(r.status, "succeeded");
    }
    let remote = systems().await;
    let aws = aws().await;
    let (deps, invocations) = deps(&remote, &aws, MappingConfig::default());

    // WHEN the scheduled full-sync runs and the workers drain the queue
    let scheduled: Value =
        serde_json::from_str(include_str!("fixtures/scheduled-event.json")).unwrap();
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
    let delivered = drain(&deps, &aws, &invocations).await;
    assert!(!delivered.is_empty());

    // THEN both systems match the one-machine result, with no twin of the companies
    // that were on both sides
    assert_eq!(state(&remote), state(&local));
    assert_eq!(remote.sf.records("Account").len(), 9);
    assert_eq!(remote.prm.list(Collection::Organizations).len(), 9);
    assert_eq!(remote.sf.records("Contact").len(), 18);
    assert_eq!(remote.prm.list(Collection::People).len(), 18);
    assert!(dead_letters(&aws).await.is_empty());
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
        aws.sqs
            .send_message()
            .queue_url(&aws.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    drain(&deps, &aws, &invocations).await;
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
    assert_eq!(state(&remote), state(&local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_rests_in_the_dead_letter_queue_and_is_logged() {
    if endpoint().is_none() {
        return;
    }
    let remote = systems().await;
    let aws = aws().await;
    let (deps, invocations) = deps(&remote, &aws, MappingConfig::default());
    aws.sqs
        .send_message()
        .queue_url(&aws.queue_url)
        .message_body("{\"not\": \"a chunk\"}")
        .send()
        .await
        .unwrap();
    drain(&deps, &aws, &invocations).await;

    let dead = aws
        .sqs
        .receive_message()
        .queue_url(&aws.dlq_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let dead = dead.messages.unwrap_or_default();
    assert_eq!(dead.len(), 1, "the message rests in the dead-letter queue");
    assert_eq!(dead[0].body(), Some("{\"not\": \"a chunk\"}"));
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
    let aws = aws().await;
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
    drain(&deps, &aws, &invocations).await;

    // THEN the record synced on its second attempt, alone, and nothing is dead
    assert_eq!(remote.sf.records("Account").len(), 9);
    assert_eq!(remote.sf.records("Contact").len(), 18);
    assert!(dead_letters(&aws).await.is_empty());
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
    let aws = aws().await;
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
    drain(&deps, &aws, &invocations).await;

    // THEN nothing was written, nothing is dead: the chunks wait in the queue, delayed
    assert_eq!(remote.sf.records("Account").len(), 6);
    assert!(dead_letters(&aws).await.is_empty());
    let attrs = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&aws.queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        attrs[&QueueAttributeName::ApproximateNumberOfMessagesDelayed],
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
