//! Least privilege, checked against what the functions do. Each function is built the way
//! its cold start builds it (`Deps::load`, `WebhookDeps::load`) over an AWS configuration
//! whose HTTP client records every call (service, action, resource), on moto and the
//! sandbox simulators, and its handlers are driven through their paths: a first import
//! with a continuation, the workers draining the queue (a record re-queued after a passing
//! failure included), an incremental run, a reconcile, the deal import with its rejections,
//! and the webhook taking, dropping and failing to queue a notification. The role the
//! translated SAM template gives each function must grant exactly those actions on exactly
//! those resources: a grant no call uses fails, a call no grant allows fails, and so does
//! any `Resource: "*"` or a managed policy.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use prmsync_engine::planner::InvocationLimit;
use prmsync_lambda::handlers::prm_webhook::{self, WebhookDeps};
use prmsync_lambda::handlers::{deal_import, full_sync};
use prmsync_lambda::relaunch::Relaunch;
use prmsync_lambda::{Deps, FunctionEnv, WebhookEnv};
use prmsync_simulators::prm::Collection;
use prmsync_simulators::sandbox::{Sandbox, PRM_TOKEN, SF_CLIENT_ID, SF_CLIENT_SECRET};
use serde_json::{json, Value};

/// One AWS call as IAM sees it: `dynamodb:PutItem` on `StateTable`.
type Grant = (String, String);

/// The logical resource (template name) of each physical name this test created.
#[derive(Default)]
struct Names(BTreeMap<String, String>);

impl Names {
    fn logical(&self, physical: &str) -> String {
        self.0
            .iter()
            .find(|(p, _)| physical == p.as_str() || physical.ends_with(&format!("/{p}")))
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| format!("unknown resource {physical}"))
    }
}

/// Every AWS call made through one function's configuration.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeSet<Grant>>>);

impl Calls {
    fn add(&self, action: &str, resource: String) {
        self.0
            .lock()
            .unwrap()
            .insert((action.to_string(), resource));
    }

    fn taken(&self) -> BTreeSet<Grant> {
        self.0.lock().unwrap().clone()
    }
}

struct Recording {
    inner: SharedHttpConnector,
    calls: Calls,
    names: Arc<Names>,
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recording")
    }
}

impl HttpConnector for Recording {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        for (action, resource) in iam_calls(&request) {
            self.calls.add(&action, self.names.logical(&resource));
        }
        self.inner.call(request)
    }
}

/// The IAM actions and physical resources of one HTTP request to an AWS API.
fn iam_calls(request: &HttpRequest) -> Vec<(String, String)> {
    let body: Value = request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let Some(target) = request.headers().get("x-amz-target") else {
        // REST APIs: S3 (path style on moto)
        let path = request
            .uri()
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split_once('/'))
            .map(|(_, p)| p.split('?').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        let action = match request.method() {
            "GET" => "s3:GetObject",
            other => panic!("an unexpected REST call: {other} /{path}"),
        };
        return vec![(action.into(), path)];
    };
    let (service, op) = target.split_once('.').expect("Service.Operation");
    match service {
        "DynamoDB_20120810" => {
            let on = |table: &Value, index: bool| {
                let t = text(table);
                if index {
                    format!("{t}/index")
                } else {
                    t
                }
            };
            match op {
                "TransactWriteItems" => body["TransactItems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|item| item.as_object().cloned().unwrap_or_default())
                    .map(|(kind, spec)| {
                        let action = match kind.as_str() {
                            "Put" => "dynamodb:PutItem",
                            "Update" => "dynamodb:UpdateItem",
                            "Delete" => "dynamodb:DeleteItem",
                            "ConditionCheck" => "dynamodb:ConditionCheckItem",
                            other => panic!("unknown transaction item {other}"),
                        };
                        (action.to_string(), on(&spec["TableName"], false))
                    })
                    .collect(),
                "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(table, _)| (format!("dynamodb:{op}"), table.clone()))
                    .collect(),
                _ => vec![(
                    format!("dynamodb:{op}"),
                    on(&body["TableName"], body.get("IndexName").is_some()),
                )],
            }
        }
        // SendMessageBatch is allowed by sqs:SendMessage
        "AmazonSQS" => vec![(
            format!("sqs:{}", op.replace("SendMessageBatch", "SendMessage")),
            text(&body["QueueUrl"]),
        )],
        "secretsmanager" => vec![(format!("secretsmanager:{op}"), text(&body["SecretId"]))],
        other => panic!("a call to an unexpected service: {other}.{op}"),
    }
}

/// The AWS configuration of one function: moto, with every call recorded in `calls`.
async fn recorded(calls: &Calls, names: &Arc<Names>) -> aws_config::SdkConfig {
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    // moto is plain HTTP on loopback
    let inner = aws_smithy_http_client::Builder::new().build_http();
    let (calls, names) = (calls.clone(), names.clone());
    let client = http_client_fn(move |settings, components| {
        SharedHttpConnector::new(Recording {
            inner: inner.http_connector(settings, components),
            calls: calls.clone(),
            names: names.clone(),
        })
    });
    base.into_builder().http_client(client).build()
}

/// The continuation and the people run a function asks for: the production adapter
/// invokes full-sync (`lambda:InvokeFunction`), recorded here as that call.
#[derive(Default)]
struct Invoked {
    calls: Calls,
    payloads: Mutex<Vec<Value>>,
}

#[async_trait]
impl Relaunch for Invoked {
    async fn relaunch(&self, payload: &Value) -> Result<(), String> {
        self.calls
            .add("lambda:InvokeFunction", "FullSyncFunction".into());
        self.payloads.lock().unwrap().push(payload.clone());
        Ok(())
    }
}

struct World {
    _sandbox: Sandbox,
    names: Arc<Names>,
    functions: BTreeMap<&'static str, Calls>,
    full_sync: Deps,
    full_sync_invoked: Arc<Invoked>,
    worker: Deps,
    worker_invoked: Arc<Invoked>,
    deal_import: Deps,
    webhook: WebhookDeps,
    webhook_secret: String,
    moto: common::aws::Moto,
    queue_url: String,
    env: FunctionEnv,
    webhook_env: WebhookEnv,
}

async fn world() -> World {
    let plain = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let sfx = uuid::Uuid::new_v4().simple().to_string();
    let mut names = Names::default();

    // the stack's resources, on moto
    let moto = common::aws::Moto::new(5).await;
    let (state, log, queue_url) = (
        moto.state_table.clone(),
        moto.log_table.clone(),
        moto.queue_url.clone(),
    );
    let sandbox = Sandbox::seeded();
    let sf_url = sandbox.salesforce.start().await.unwrap();
    let prm_url = sandbox.prm.start().await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&plain);
    let connection = format!("connection-{sfx}");
    secrets
        .create_secret()
        .name(&connection)
        .secret_string(
            json!({
                "salesforce_login_url": sf_url,
                "salesforce_client_id": SF_CLIENT_ID,
                "salesforce_client_secret": SF_CLIENT_SECRET,
                "prm_api_url": prm_url,
                "prm_api_token": PRM_TOKEN,
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let webhook_secret = format!("webhook-{sfx}");
    secrets
        .create_secret()
        .name(&webhook_secret)
        .secret_string(json!({"current": "whsec-lp", "previous": ""}).to_string())
        .send()
        .await
        .unwrap();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&plain)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("mapping-{sfx}");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("mapping.toml")
        .body(
            prmsync_mapping::config::DEFAULT_MAPPING
                .as_bytes()
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    for (physical, logical) in [
        (state.clone(), "StateTable"),
        (format!("{state}/index"), "StateTable/index"),
        (log.clone(), "LogTable"),
        (format!("{log}/index"), "LogTable/index"),
        (queue_url.clone(), "WorkQueue"),
        // the work queue while it cannot be reached (the webhook's failure path)
        (format!("{queue_url}-gone"), "WorkQueue"),
        (connection.clone(), "ConnectionSecret"),
        (webhook_secret.clone(), "WebhookSecret"),
        (format!("{bucket}/mapping.toml"), "MappingObject"),
    ] {
        names.0.insert(physical, logical.to_string());
    }
    let names = Arc::new(names);

    let env = FunctionEnv {
        secret_arn: connection,
        state_table: state.clone(),
        log_table: log,
        queue_url: queue_url.clone(),
        mapping: format!("s3://{bucket}/mapping.toml"),
    };
    let webhook_env = WebhookEnv {
        secret_arn: webhook_secret,
        state_table: state,
        queue_url: queue_url.clone(),
    };
    let mut functions = BTreeMap::new();
    let mut build = |name: &'static str| {
        let calls = Calls::default();
        functions.insert(name, calls.clone());
        calls
    };
    let (fs_calls, w_calls, d_calls, h_calls) = (
        build("FullSyncFunction"),
        build("SyncWorkerFunction"),
        build("DealImportFunction"),
        build("PrmWebhookFunction"),
    );
    let full_sync_invoked = Arc::new(Invoked {
        calls: fs_calls.clone(),
        ..Invoked::default()
    });
    let worker_invoked = Arc::new(Invoked {
        calls: w_calls.clone(),
        ..Invoked::default()
    });
    let full_sync = Deps::load(
        &recorded(&fs_calls, &names).await,
        &env,
        Some(full_sync_invoked.clone()),
    )
    .await
    .unwrap();
    let worker = Deps::load(
        &recorded(&w_calls, &names).await,
        &env,
        Some(worker_invoked.clone()),
    )
    .await
    .unwrap();
    let deal_import = Deps::load(&recorded(&d_calls, &names).await, &env, None)
        .await
        .unwrap();
    let webhook = WebhookDeps::load(&recorded(&h_calls, &names).await, &webhook_env)
        .await
        .unwrap();
    World {
        _sandbox: sandbox,
        names,
        functions,
        full_sync,
        full_sync_invoked,
        worker,
        worker_invoked,
        deal_import,
        webhook,
        webhook_secret: "whsec-lp".into(),
        moto,
        queue_url,
        env,
        webhook_env,
    }
}

impl World {
    /// Works the queue as Lambda's event source does (the kit's worker batches), running
    /// the full-sync invocations asked for once it is empty, until nothing is left.
    async fn drain(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the queue did not drain"
            );
            if !self.moto.worker_batch(&self.worker).await.is_empty() {
                continue;
            }
            let next: Vec<Value> = [&self.full_sync_invoked, &self.worker_invoked]
                .iter()
                .flat_map(|i| std::mem::take(&mut *i.payloads.lock().unwrap()))
                .collect();
            if next.is_empty() {
                return;
            }
            for payload in next {
                full_sync::handle(&self.full_sync, payload).await.unwrap();
            }
        }
    }
}

fn webhook_request(secret: &str, event_id: &str) -> LambdaFunctionUrlRequest {
    let body = json!({"event_id": event_id, "type": "organization.updated", "id": "org_lp", "occurred_at": "2026-12-06T00:00:00.000Z"}).to_string();
    let signature =
        prmsync_prm::notification::sign(&[secret], chrono::Utc::now().timestamp(), body.as_bytes());
    serde_json::from_value(json!({
        "version": "2.0", "rawPath": "/", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-prm-signature": signature},
        "requestContext": {"http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "prm"}, "requestId": "r", "routeKey": "$default", "stage": "$default", "accountId": "anonymous", "apiId": "a", "domainName": "a", "domainPrefix": "a", "time": "06/Dec/2026:00:00:00 +0000", "timeEpoch": 0},
        "body": body, "isBase64Encoded": false
    }))
    .unwrap()
}

/// Drives every function through its paths and returns the calls each made.
async fn calls_made() -> (World, BTreeMap<&'static str, BTreeSet<Grant>>) {
    let w = world().await;
    // a first import, one Salesforce page per planner invocation (a continuation)
    let first = full_sync::handle_within(
        &w.full_sync,
        json!({"integration": "all", "mode": "incremental"}),
        InvocationLimit {
            deadline: Some(std::time::Instant::now()),
            max_pages: Some(1),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        first["integrations"]["organizations"]["status"], "continues",
        "{first}"
    );
    w.drain().await;
    // the deal import, with the sandbox's rejections, and every Opportunity's write-back
    // locked through its attempts (the deals wait in the retry set)
    let sf = &w._sandbox.salesforce;
    for opp in sf.records("Opportunity") {
        for _ in 0..5 {
            sf.faults().fail_record_write(
                opp["Id"].as_str().unwrap(),
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access",
            );
        }
    }
    let deals = deal_import::handle(
        &w.deal_import,
        json!({"integration": "deals", "mode": "incremental"}),
    )
    .await
    .unwrap();
    assert_eq!(deals["status"], "succeeded", "{deals}");
    // the deals held are tried again and refused for the org's setup: the import stops
    // with the setup class, having logged the refusal once
    sf.faults().clear();
    for opp in sf.records("Opportunity") {
        sf.faults().fail_record_write(
            opp["Id"].as_str().unwrap(),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "Unable to create/update fields: PRM_Deal_Id__c",
        );
    }
    let refused = deal_import::handle(
        &w.deal_import,
        json!({"integration": "deals", "mode": "incremental"}),
    )
    .await
    .unwrap();
    assert_eq!(
        (refused["status"].as_str(), refused["failure"].as_str()),
        (Some("failed"), Some("setup")),
        "{refused}"
    );
    // edits on both sides, a passing Salesforce failure on the next write, then the
    // hourly run and the workers
    sf.faults().clear();
    let prm = &w._sandbox.prm;
    let linked: Vec<(String, String)> = prm
        .list(Collection::Organizations)
        .into_iter()
        .filter(|o| o["crm_id"].is_string() && o["deleted_at"].is_null())
        .take(2)
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["crm_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (org_id, _) in &linked {
        prm.update(
            Collection::Organizations,
            org_id,
            json!({"phone": "+1 555 0100"}),
        );
    }
    let (account, refused) = (linked[0].1.clone(), linked[1].1.clone());
    // one refused for the org's setup in the worker
    sf.faults().fail_record_write(
        &refused,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "Unable to create/update fields: Phone",
    );
    // locked through the worker's own attempts: the record is sent back to the queue
    for _ in 0..5 {
        sf.faults().fail_record_write(
            &account,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access",
        );
    }
    full_sync::handle(
        &w.full_sync,
        json!({"integration": "all", "mode": "incremental"}),
    )
    .await
    .unwrap();
    w.drain().await;
    // the daily reconciles
    full_sync::handle(
        &w.full_sync,
        json!({"integration": "all", "mode": "reconcile"}),
    )
    .await
    .unwrap();
    w.drain().await;
    deal_import::handle(
        &w.deal_import,
        json!({"integration": "deals", "mode": "reconcile"}),
    )
    .await
    .unwrap();
    // the webhook: taken, dropped as a repeat, and one it cannot queue (released)
    let ok = prm_webhook::handle(&w.webhook, webhook_request(&w.webhook_secret, "ev-lp-1")).await;
    assert_eq!(ok.status_code, 202);
    let again =
        prm_webhook::handle(&w.webhook, webhook_request(&w.webhook_secret, "ev-lp-1")).await;
    assert_eq!(again.status_code, 200);
    let no_queue = WebhookDeps::load(
        &recorded(&w.functions["PrmWebhookFunction"], &w.names).await,
        &WebhookEnv {
            queue_url: format!("{}-gone", w.queue_url),
            ..w.webhook_env.clone()
        },
    )
    .await
    .unwrap();
    let failed =
        prm_webhook::handle(&no_queue, webhook_request(&w.webhook_secret, "ev-lp-2")).await;
    assert_eq!(failed.status_code, 503);
    w.drain().await;
    let calls = w
        .functions
        .iter()
        .map(|(name, c)| (*name, c.taken()))
        .collect();
    (w, calls)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The template translated to CloudFormation (by `infra/lint.sh`, which also lints it).
fn translated(template: &Path) -> Value {
    let out =
        std::env::temp_dir().join(format!("prmsync-lp-{}.json", uuid::Uuid::new_v4().simple()));
    let run = std::process::Command::new("bash")
        .arg("infra/lint.sh")
        .arg(template)
        .arg(&out)
        .current_dir(workspace_root())
        .output()
        .expect("run infra/lint.sh");
    assert!(
        run.status.success(),
        "the template does not lint: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let cfn = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    cfn
}

/// The logical resource a policy statement's resource names.
fn resource_name(r: &Value) -> Result<String, String> {
    let form = || format!("a resource form this check does not know: {r}");
    if r.as_str() == Some("*") {
        return Err("Resource \"*\"".into());
    }
    if let Some(att) = r.get("Fn::GetAtt").and_then(Value::as_array) {
        if att.get(1).and_then(Value::as_str) == Some("Arn") {
            return Ok(att[0].as_str().ok_or_else(form)?.to_string());
        }
    }
    if let Some(name) = r.get("Ref").and_then(Value::as_str) {
        return Ok(name.to_string());
    }
    if let Some(sub) = r.get("Fn::Sub") {
        let text = sub
            .as_str()
            .or_else(|| sub.get(0).and_then(Value::as_str))
            .ok_or_else(form)?;
        if let Some(rest) = text.strip_prefix("${") {
            if let Some((name, tail)) = rest.split_once(".Arn}") {
                return match tail {
                    "/index/*" => Ok(format!("{name}/index")),
                    _ => Err(form()),
                };
            }
        }
        if text.starts_with("arn:${AWS::Partition}:s3:::") {
            return Ok("MappingObject".into());
        }
    }
    Err(form())
}

/// What the template lets each function do: `(action, resource)` per function, and every
/// problem found on the way (wildcards, managed policies, unknown forms).
fn granted(cfn: &Value) -> (BTreeMap<String, BTreeSet<Grant>>, Vec<String>) {
    let resources = cfn["Resources"].as_object().unwrap();
    let mut problems = Vec::new();
    // role -> function
    let mut role_of = BTreeMap::new();
    for (name, r) in resources {
        if r["Type"] == "AWS::Lambda::Function" {
            let role = &r["Properties"]["Role"]["Fn::GetAtt"][0];
            role_of.insert(role.as_str().unwrap_or("?").to_string(), name.to_string());
        }
    }
    let mut grants: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    let mut statements = |role: &str, doc: &Value, where_: &str, problems: &mut Vec<String>| {
        let Some(function) = role_of.get(role) else {
            problems.push(format!("{where_} is on {role}, which no function uses"));
            return;
        };
        let list = match &doc["Statement"] {
            Value::Array(a) => a.clone(),
            one => vec![one.clone()],
        };
        for st in list {
            if st["Effect"] != "Allow" {
                continue;
            }
            let actions: Vec<String> = match &st["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            };
            let res = match &st["Resource"] {
                Value::Array(a) => a.clone(),
                one => vec![one.clone()],
            };
            for a in &actions {
                if a.contains('*') {
                    problems.push(format!("{where_} grants the wildcard action {a}"));
                }
            }
            for r in &res {
                match resource_name(r) {
                    Ok(name) => {
                        for a in &actions {
                            grants
                                .entry(function.clone())
                                .or_default()
                                .insert((a.clone(), name.clone()));
                        }
                    }
                    Err(e) => problems.push(format!("{where_}: {e}")),
                }
            }
        }
    };
    let unwrap_if = |p: &Value| -> Value {
        // a policy under a condition: the branch taken when the mapping is an S3 object
        match p.get("Fn::If").and_then(Value::as_array) {
            Some(branches) => branches[1].clone(),
            None => p.clone(),
        }
    };
    for (name, r) in resources {
        match r["Type"].as_str() {
            Some("AWS::IAM::Role") => {
                if let Some(m) = r["Properties"].get("ManagedPolicyArns") {
                    problems.push(format!("{name} has managed policies {m}: grant what the function calls, on its resources"));
                }
                for p in r["Properties"]["Policies"].as_array().into_iter().flatten() {
                    let p = unwrap_if(p);
                    statements(name, &p["PolicyDocument"], name, &mut problems);
                }
            }
            Some("AWS::IAM::Policy") => {
                for role in r["Properties"]["Roles"].as_array().into_iter().flatten() {
                    let role = role["Ref"].as_str().unwrap_or("?");
                    statements(
                        role,
                        &r["Properties"]["PolicyDocument"],
                        name,
                        &mut problems,
                    );
                }
            }
            _ => {}
        }
    }
    (grants, problems)
}

/// Calls a function makes on paths this test does not drive, each with the path: they are
/// granted, and counted as calls.
const NOT_DRIVEN: &[(&str, &str, &str, &str)] = &[(
    "FullSyncFunction",
    "dynamodb:UpdateItem",
    "StateTable",
    "the planner finishes a chunk left open past the drain limit (planner::drain_or_wait -> \
     finish_chunk), and a re-plan over a chunk a worker finished moves its counter \
     (sender::add_chunks -> put_chunk)",
)];

/// What the Lambda service does with a function's role, from the template: writes its log
/// group, and polls the queue of its event source mapping.
fn service_calls(cfn: &Value) -> BTreeMap<String, BTreeSet<Grant>> {
    let resources = cfn["Resources"].as_object().unwrap();
    let mut calls: BTreeMap<String, BTreeSet<Grant>> = BTreeMap::new();
    for (name, r) in resources {
        match r["Type"].as_str() {
            Some("AWS::Lambda::Function") => {
                let group = r["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} has no log group of its own"));
                for a in ["logs:CreateLogStream", "logs:PutLogEvents"] {
                    calls
                        .entry(name.clone())
                        .or_default()
                        .insert((a.into(), group.into()));
                }
            }
            Some("AWS::Lambda::EventSourceMapping") => {
                let function = r["Properties"]["FunctionName"]["Ref"].as_str().unwrap();
                let queue = r["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
                    .as_str()
                    .unwrap();
                for a in [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ] {
                    calls
                        .entry(function.into())
                        .or_default()
                        .insert((a.into(), queue.into()));
                }
            }
            _ => {}
        }
    }
    calls
}

/// The difference between what a function calls and what its role grants, as lines.
fn mismatches(
    calls: &BTreeMap<&'static str, BTreeSet<Grant>>,
    grants: &BTreeMap<String, BTreeSet<Grant>>,
) -> Vec<String> {
    let empty = BTreeSet::new();
    let mut lines = Vec::new();
    for (function, made) in calls {
        let given = grants.get(*function).unwrap_or(&empty);
        for (a, r) in given.difference(made) {
            lines.push(format!(
                "{function} is granted {a} on {r} but never calls it"
            ));
        }
        for (a, r) in made.difference(given) {
            lines.push(format!("{function} calls {a} on {r} but is not granted it"));
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_grants_exactly_what_its_function_calls() {
    if common::aws::endpoint().is_none() {
        return;
    }
    let (w, calls) = calls_made().await;
    // the paths were really driven: each function used AWS beyond its cold start
    for (f, expected) in [
        ("FullSyncFunction", ("sqs:SendMessage", "WorkQueue")),
        (
            "FullSyncFunction",
            ("lambda:InvokeFunction", "FullSyncFunction"),
        ),
        ("SyncWorkerFunction", ("sqs:SendMessage", "WorkQueue")),
        (
            "DealImportFunction",
            ("dynamodb:BatchWriteItem", "StateTable"),
        ),
        ("PrmWebhookFunction", ("dynamodb:DeleteItem", "StateTable")),
    ] {
        let made = &calls[f];
        assert!(
            made.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{f} did not call {expected:?}: {made:#?}"
        );
    }
    let _ = (&w.env, &w.full_sync, &w.worker, &w.deal_import);

    let cfn = translated(&workspace_root().join("infra/template.yaml"));
    let mut calls = calls;
    for (f, service) in service_calls(&cfn) {
        let f: &'static str =
            calls.keys().find(|k| **k == f).copied().unwrap_or_else(|| {
                panic!("the template has a function {f} this check does not drive")
            });
        calls.get_mut(f).unwrap().extend(service);
    }
    for (f, action, resource, _path) in NOT_DRIVEN {
        let made = calls.get_mut(f).expect("a function of the template");
        assert!(
            made.insert((action.to_string(), resource.to_string())),
            "{f} now calls {action} on {resource} on a driven path: drop it from NOT_DRIVEN"
        );
    }
    let (grants, problems) = granted(&cfn);
    let wrong = mismatches(&calls, &grants);
    assert!(
        problems.is_empty() && wrong.is_empty(),
        "the roles do not match the calls:\n{}\n{}\ncalls made: {calls:#?}",
        problems.join("\n"),
        wrong.join("\n")
    );

    // and a deliberately widened policy fails the check: the webhook given Scan
    let widened_dir =
        std::env::temp_dir().join(format!("prmsync-lp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&widened_dir).unwrap();
    let template = std::fs::read_to_string(workspace_root().join("infra/template.yaml")).unwrap();
    let marker = "# webhook: deliveries taken";
    assert_eq!(template.matches(marker).count(), 1);
    let widened = template.replacen(
        marker,
        &format!("{marker}\n                  - dynamodb:Scan"),
        1,
    );
    let path = widened_dir.join("template.yaml");
    std::fs::write(&path, widened).unwrap();
    let (grants, _) = granted(&translated(&path));
    let wrong = mismatches(&calls, &grants);
    let _ = std::fs::remove_dir_all(&widened_dir);
    assert_eq!(
        wrong,
        vec![
            "PrmWebhookFunction is granted dynamodb:Scan on StateTable but never calls it"
                .to_string()
        ]
    );
}
