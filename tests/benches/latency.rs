//! Latency of the event paths: how long a change on one side takes to show on the other,
//! on moto (SQS, DynamoDB) with the simulators, through the functions' handlers.
//!
//! `cargo bench -p prmsync-e2e --bench latency` with moto running (`AWS_ENDPOINT_URL`
//! etc., as `./scripts/test.sh` sets them). It makes 200 changes per path, five at a time,
//! and prints p50, p95 and max from the change to the value on the other side, and the
//! Salesforce calls per change and per worker batch:
//!
//! - **Salesforce change events**: an Account renamed in Salesforce; its change event
//!   (as Event Relay puts it on EventBridge) sent to the work queue as the rule sends it;
//!   the worker (polled as Lambda's event source polls SQS) syncs it to the PRM.
//! - **PRM webhook**: an organization renamed in the PRM; its signed notification handled
//!   by the prm-webhook function, queued, synced to Salesforce by the worker.
//! - **`prmsync watch`** (one machine, SQLite): an Account renamed in Salesforce, synced at
//!   the next cycle (10 s, the shortest interval); an organization renamed in the PRM and
//!   notified, synced at once.
//!
//! Salesforce's own publishing delay and Event Relay's and EventBridge's delivery are not
//! simulated (in AWS they add well under a second); the queue polling is included.
//! Under `cargo test` (which builds every target) it does nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use common::aws::{Invocations, Moto};
use prmsync_lambda::handlers::full_sync;
use prmsync_lambda::handlers::prm_webhook::{self, WebhookDeps, WebhookKeys};
use prmsync_lambda::Deps;
use prmsync_mapping::MappingConfig;
use prmsync_prm::notification::WebhookSecrets;
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};
use prmsync_simulators::prm::{Collection, PrmSim};
use prmsync_simulators::salesforce::SalesforceSim;
use serde_json::{json, Map, Value};

const ACCOUNTS: usize = 40;
const AT_ONCE: usize = 5;
const CHANGES: usize = 200;
const SECRET: &str = "whsec-bench";

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn sf_reads(sf: &SalesforceSim) -> u64 {
    let c = sf.api_calls();
    c.kind("query") + c.kind("query_all") + c.kind("query_more")
}

struct Figures {
    path: &'static str,
    latencies: Vec<Duration>,
    sf_calls: u64,
    sf_reads: u64,
    batches: u64,
}

impl Figures {
    fn print(&mut self) {
        self.latencies.sort();
        let at = |q: f64| {
            let i =
                ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
            self.latencies[i - 1].as_secs_f64() * 1000.0
        };
        let batches = if self.batches == 0 {
            String::new()
        } else {
            format!(
                "  reads/worker batch {:.2} ({} batches)",
                self.sf_reads as f64 / self.batches as f64,
                self.batches
            )
        };
        println!(
            "{:<26} changes {:>4}  p50 {:>6.0} ms  p95 {:>6.0} ms  max {:>6.0} ms  Salesforce calls/change {:.2}{batches}",
            self.path,
            self.latencies.len(),
            at(0.50),
            at(0.95),
            at(1.0),
            self.sf_calls as f64 / self.latencies.len() as f64,
        );
    }
}

/// The worker, polling the queue as Lambda's event source does, until `stop`.
fn workers(
    aws: Arc<Moto>,
    deps: Arc<Deps>,
    stop: Arc<AtomicBool>,
    batches: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            if aws.worker_batch(&deps).await.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            } else {
                batches.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

/// Waits until `done(i)` for every change of a round; the time each took.
async fn observe(started: Instant, n: usize, done: impl Fn(usize) -> bool) -> Vec<Duration> {
    let mut out = vec![None; n];
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.iter().any(Option::is_none) {
        for (i, o) in out.iter_mut().enumerate() {
            if o.is_none() && done(i) {
                *o = Some(started.elapsed());
            }
        }
        assert!(
            Instant::now() < deadline,
            "a change did not arrive within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out.into_iter().map(Option::unwrap).collect()
}

fn webhook_request(body: &str, signature: &str) -> LambdaFunctionUrlRequest {
    let mut raw: Value = serde_json::from_str(include_str!(
        "../../shared/lambda/tests/fixtures/webhook.json"
    ))
    .unwrap();
    raw["body"] = json!(body);
    raw["headers"]["x-prm-signature"] = json!(signature);
    serde_json::from_value(raw).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --all-targets`: nothing to measure there
    }
    if common::aws::endpoint().is_none() {
        eprintln!("latency: start moto and set AWS_ENDPOINT_URL (./scripts/test.sh shows how)");
        std::process::exit(2);
    }
    let (sf, prm, crm, prm_client) = systems("Account").await;
    sf.enable_change_events(&["Account", "Contact", "Opportunity"]);
    let aws = Arc::new(Moto::new(5).await);
    let ctx = prmsync_connect::sync_context(
        crm,
        prm_client,
        aws.store.clone(),
        MappingConfig::default(),
        "bench",
    );
    let (deps, invocations): (Deps, Arc<Invocations>) = aws.deps(ctx);
    full_sync::handle(
        &deps,
        json!({"integration": "organizations", "mode": "full"}),
    )
    .await
    .unwrap();
    aws.drain(&deps, &invocations, false).await;
    let orgs: Vec<(String, String)> = prm
        .list(Collection::Organizations)
        .iter()
        .map(|o| {
            (
                o["crm_id"].as_str().unwrap().to_string(),
                o["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(orgs.len(), ACCOUNTS);
    sf.take_change_events();
    let deps = Arc::new(deps);

    // 1. Salesforce change events: the relay sends each event to the queue as the rule does
    let relay_cdc = {
        let (sf, aws) = (sf.clone(), aws.clone());
        move || {
            let (sf, aws) = (sf.clone(), aws.clone());
            async move {
                for e in sf.take_change_events() {
                    aws.send(&e.to_string()).await;
                }
            }
        }
    };
    let rename_in_salesforce = |(account, _): &(String, String), name: &str| {
        sf.update("Account", account, obj(json!({ "Name": name })));
    };
    let in_the_prm = |(_, org): &(String, String), name: &str| {
        prm.get(Collection::Organizations, org)
            .is_some_and(|o| o["name"] == name)
    };
    measure(
        "Salesforce change events",
        &Bench {
            sf: &sf,
            aws: &aws,
            deps: &deps,
            orgs: &orgs,
        },
        relay_cdc,
        rename_in_salesforce,
        in_the_prm,
    )
    .await
    .print();

    // 2. PRM webhook: the relay delivers each signed notification to the function
    prm.enable_notifications(&[SECRET]);
    prm.take_notifications();
    let receiver = Arc::new(WebhookDeps {
        keys: WebhookKeys::fixed(WebhookSecrets::new(SECRET, None)),
        deliveries: aws.store.clone(),
        queue: Arc::new(prmsync_aws::sqs::SqsQueue::new(
            aws.sqs.clone(),
            aws.queue_url.clone(),
        )),
    });
    let relay_hook = {
        let prm = prm.clone();
        move || {
            let (prm, receiver) = (prm.clone(), receiver.clone());
            async move {
                for n in prm.take_notifications() {
                    let answer =
                        prm_webhook::handle(&receiver, webhook_request(&n.body, &n.signature))
                            .await;
                    assert_eq!(answer.status_code, 202, "{:?}", answer.body);
                }
            }
        }
    };
    let rename_in_the_prm = |(_, org): &(String, String), name: &str| {
        prm.update(Collection::Organizations, org, json!({ "name": name }));
    };
    let in_salesforce = |(account, _): &(String, String), name: &str| {
        sf.get("Account", account)
            .is_some_and(|a| a["Name"] == name)
    };
    measure(
        "PRM webhook",
        &Bench {
            sf: &sf,
            aws: &aws,
            deps: &deps,
            orgs: &orgs,
        },
        relay_hook,
        rename_in_the_prm,
        in_salesforce,
    )
    .await
    .print();

    watch_paths().await;
}

/// `prmsync watch` on one machine (SQLite): a Salesforce edit waits for the next cycle
/// (every 10 s, the shortest interval watch takes); a record the PRM notifies is synced at
/// once (handed to the loop as its local receiver hands it on).
async fn watch_paths() {
    use prmsync_engine::watch::{watch, WatchOptions};
    use prmsync_engine::RecordRef;
    use prmsync_mapping::{Integration, ObjectKind};

    let (sf, prm, crm, prm_client) = systems("Watched").await;
    let store = Arc::new(prmsync_state_sqlite::SqliteStore::in_memory());
    let ctx =
        prmsync_connect::sync_context(crm, prm_client, store, MappingConfig::default(), "bench");
    let (notes, notified) = tokio::sync::mpsc::channel(1000);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = WatchOptions {
        interval: Duration::from_secs(10),
        integrations: vec![Integration::Organizations],
    };
    let looped = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            watch(
                &ctx,
                &options,
                notified,
                async {
                    let _ = stopped.await;
                },
                |_| {},
            )
            .await
        })
    };
    // the first cycle links the records
    let deadline = Instant::now() + Duration::from_secs(60);
    while prm.list(Collection::Organizations).len() < ACCOUNTS {
        assert!(
            Instant::now() < deadline,
            "the first cycle did not import the Accounts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let orgs: Vec<(String, String)> = loop {
        let orgs: Vec<(String, String)> = prm
            .list(Collection::Organizations)
            .iter()
            .filter_map(|o| {
                Some((
                    o["crm_id"].as_str()?.to_string(),
                    o["id"].as_str()?.to_string(),
                ))
            })
            .collect();
        if orgs.len() == ACCOUNTS {
            break orgs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for (path, from_salesforce) in [
        ("watch: Salesforce edit", true),
        ("watch: PRM notification", false),
    ] {
        sf.reset_api_calls();
        let mut latencies = Vec::new();
        for round in 0..CHANGES / AT_ONCE {
            let picked: Vec<&(String, String)> = (0..AT_ONCE)
                .map(|k| &orgs[(round * AT_ONCE + k) % ACCOUNTS])
                .collect();
            let names: Vec<String> = (0..AT_ONCE)
                .map(|k| format!("{path} {round}-{k}"))
                .collect();
            let started = Instant::now();
            for ((account, org), name) in picked.iter().zip(&names) {
                if from_salesforce {
                    sf.update("Account", account, obj(json!({ "Name": name })));
                } else {
                    prm.update(Collection::Organizations, org, json!({ "name": name }));
                    notes
                        .send(RecordRef::Prm(ObjectKind::Organization, org.clone()))
                        .await
                        .unwrap();
                }
            }
            latencies.extend(
                observe(started, AT_ONCE, |i| {
                    let (account, org) = picked[i];
                    if from_salesforce {
                        prm.get(Collection::Organizations, org)
                            .is_some_and(|o| o["name"] == names[i].as_str())
                    } else {
                        sf.get("Account", account)
                            .is_some_and(|a| a["Name"] == names[i].as_str())
                    }
                })
                .await,
            );
        }
        Figures {
            path,
            latencies,
            sf_calls: sf.api_calls().total,
            sf_reads: sf_reads(&sf),
            batches: 0,
        }
        .print();
    }
    let _ = stop.send(());
    let _ = looped.await;
}

/// Both simulators started, with [`ACCOUNTS`] flagged Accounts named `<name> <n>`, and
/// the clients that reach them.
async fn systems(name: &str) -> (SalesforceSim, PrmSim, Arc<SalesforceClient>, Arc<PrmClient>) {
    let sf = SalesforceSim::new();
    let prm = PrmSim::new("t");
    for i in 0..ACCOUNTS {
        sf.insert("Account", obj(json!({"Name": format!("{name} {i}"), "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})));
    }
    let crm = Arc::new(
        SalesforceClient::new(SalesforceConfig::new(
            sf.start().await.unwrap(),
            Auth::ClientCredentials {
                client_id: "sandbox-client".into(),
                client_secret: "sandbox-secret".into(),
            },
        ))
        .unwrap(),
    );
    let prm_client =
        Arc::new(PrmClient::new(PrmConfig::new(prm.start().await.unwrap(), "t")).unwrap());
    (sf, prm, crm, prm_client)
}

struct Bench<'a> {
    sf: &'a SalesforceSim,
    aws: &'a Arc<Moto>,
    deps: &'a Arc<Deps>,
    /// The linked pairs: (Account Id, PRM organization id).
    orgs: &'a [(String, String)],
}

/// Makes [`CHANGES`] changes, [`AT_ONCE`] at a time, with `change`, while `relay` carries
/// the notices of change to the queue and the worker works it; the time until `arrived`.
async fn measure<R, F>(
    path: &'static str,
    b: &Bench<'_>,
    relay: R,
    change: impl Fn(&(String, String), &str),
    arrived: impl Fn(&(String, String), &str) -> bool,
) -> Figures
where
    R: Fn() -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicU64::new(0));
    let worker = workers(b.aws.clone(), b.deps.clone(), stop.clone(), batches.clone());
    let relay = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                relay().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    b.sf.reset_api_calls();
    let mut latencies = Vec::new();
    for round in 0..CHANGES / AT_ONCE {
        let picked: Vec<&(String, String)> = (0..AT_ONCE)
            .map(|k| &b.orgs[(round * AT_ONCE + k) % b.orgs.len()])
            .collect();
        let names: Vec<String> = (0..AT_ONCE)
            .map(|k| format!("{path} {round}-{k}"))
            .collect();
        let started = Instant::now();
        for (pair, name) in picked.iter().zip(&names) {
            change(pair, name);
        }
        latencies.extend(observe(started, AT_ONCE, |i| arrived(picked[i], &names[i])).await);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::join!(worker, relay);
    Figures {
        path,
        latencies,
        sf_calls: b.sf.api_calls().total,
        sf_reads: sf_reads(b.sf),
        batches: batches.load(Ordering::Relaxed),
    }
}
