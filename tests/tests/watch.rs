//! `prmsync watch` in-process, over the sandbox's simulators: a Salesforce edit reaches the
//! PRM within one interval; a signed PRM notification is synced at once (an hour's
//! interval, so nothing else can explain it), its replay is a repeat that writes nothing,
//! and a bad signature gets 401 and hands nothing on; a quiet cycle costs one query per
//! object on each side and writes nothing. (`cli/tests/watch.rs` starts and stops the
//! binary.)

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::obj;
use prmsync_engine::watch::{watch, WatchEvent, WatchOptions, WatchSummary};
use prmsync_engine::{run_integration, RecordRef, RunMode, RunOptions, SyncContext};
use prmsync_mapping::{Integration, MappingConfig};
use prmsync_prm::notification::{self, WebhookSecrets};
use prmsync_prm::receiver::{self, Receiver};
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};
use prmsync_simulators::prm::Collection;
use prmsync_simulators::sandbox::{self, Sandbox};
use prmsync_state_sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const ALL: [Integration; 3] = [
    Integration::Organizations,
    Integration::People,
    Integration::Deals,
];

/// The sandbox's sample data on both simulators, the real clients, a fresh store, every
/// record linked by a first sync (and a second that reads its own writes back).
struct Watched {
    sandbox: Sandbox,
    ctx: SyncContext,
    store: Arc<SqliteStore>,
}

impl Watched {
    async fn synced() -> Self {
        let sandbox = Sandbox::seeded();
        let sf_url = sandbox.salesforce.start().await.unwrap();
        let prm_url = sandbox.prm.start().await.unwrap();
        let mut cfg = SalesforceConfig::new(
            sf_url,
            Auth::ClientCredentials {
                client_id: sandbox::SF_CLIENT_ID.into(),
                client_secret: sandbox::SF_CLIENT_SECRET.into(),
            },
        );
        cfg.retry_base = Duration::from_millis(5);
        let crm = Arc::new(SalesforceClient::new(cfg).unwrap());
        let prm = Arc::new(PrmClient::new(PrmConfig::new(prm_url, sandbox::PRM_TOKEN)).unwrap());
        let store = Arc::new(SqliteStore::in_memory());
        let ctx = prmsync_connect::sync_context(
            crm,
            prm,
            store.clone(),
            MappingConfig::default(),
            "watch-test",
        );
        for _ in 0..2 {
            for i in ALL {
                let options = RunOptions {
                    mode: RunMode::Incremental,
                    dry_run: false,
                    run_id: None,
                    allow_mass_change: false,
                };
                run_integration(&ctx, i, options).await;
            }
        }
        Self {
            sandbox,
            ctx,
            store,
        }
    }

    /// A linked organization: its Salesforce Id and PRM id.
    fn linked_org(&self) -> (String, String) {
        self.sandbox
            .salesforce
            .records("Account")
            .into_iter()
            .find_map(|a| {
                let prm = a.get("PRM_Id__c")?.as_str()?.to_string();
                let id = a.get("Id")?.as_str()?.to_string();
                Some((id, prm))
            })
            .expect("a linked account")
    }

    fn sf_name(&self, account: &str) -> Option<String> {
        self.sandbox
            .salesforce
            .get("Account", account)
            .and_then(|a| a.get("Name").and_then(Value::as_str).map(str::to_string))
    }

    fn prm_name(&self, org: &str) -> Option<String> {
        self.sandbox
            .prm
            .get(Collection::Organizations, org)
            .and_then(|o| o["name"].as_str().map(str::to_string))
    }

    /// Starts the loop; the events it logs go to the list returned.
    fn start(&self, interval: Duration) -> Running {
        let (records_tx, records_rx) = mpsc::channel(100);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let ctx = self.ctx.clone();
        let options = WatchOptions {
            interval,
            integrations: ALL.to_vec(),
        };
        let task = tokio::spawn(async move {
            watch(
                &ctx,
                &options,
                records_rx,
                async {
                    let _ = stop_rx.await;
                },
                move |e| seen.lock().unwrap().push(e),
            )
            .await
        });
        Running {
            records: records_tx,
            stop: stop_tx,
            events,
            task,
        }
    }
}

struct Running {
    records: mpsc::Sender<RecordRef>,
    stop: oneshot::Sender<()>,
    events: Arc<Mutex<Vec<WatchEvent>>>,
    task: JoinHandle<WatchSummary>,
}

impl Running {
    fn lines(&self, prefix: &str) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.line.starts_with(prefix))
            .map(|e| e.line.clone())
            .collect()
    }

    async fn stop(self) -> (WatchSummary, Vec<WatchEvent>) {
        let _ = self.stop.send(());
        let summary = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the loop stops")
            .unwrap();
        let events = self.events.lock().unwrap().clone();
        (summary, events)
    }
}

/// Waits for `ready`, polling, failing after `within`.
async fn until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_salesforce_edit_reaches_the_prm_within_one_interval() {
    let w = Watched::synced().await;
    let (account, org) = w.linked_org();
    let interval = Duration::from_secs(2);
    let running = w.start(interval);
    until("the first cycle", Duration::from_secs(10), || {
        !running.lines("cycle 1:").is_empty()
    })
    .await;

    w.sandbox.salesforce.update(
        "Account",
        &account,
        obj(json!({"Name": "Renamed while watched"})),
    );
    let edited = Instant::now();
    until(
        "the PRM organization renamed",
        interval + Duration::from_secs(3),
        || w.prm_name(&org).as_deref() == Some("Renamed while watched"),
    )
    .await;
    assert!(edited.elapsed() <= interval + Duration::from_secs(3));

    let (summary, events) = running.stop().await;
    assert!(summary.cycles >= 2, "{summary:?}");
    assert!(
        events
            .iter()
            .any(|e| e.wrote && e.line.contains("organizations 1 updated in the PRM")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_signed_notification_is_synced_at_once_its_replay_is_a_repeat_and_a_bad_signature_is_refused(
) {
    const SECRET: &str = sandbox::PRM_WEBHOOK_SECRET;
    let w = Watched::synced().await;
    let (account, org) = w.linked_org();
    // an hour between cycles: only the notification can explain a sync after the first
    let running = w.start(Duration::from_secs(3600));
    until("the first cycle", Duration::from_secs(10), || {
        !running.lines("cycle 1:").is_empty()
    })
    .await;
    let (listener, local) = receiver::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let refusals = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = refusals.clone();
    let (server_stop, server_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(receiver::serve(
        listener,
        Receiver {
            secrets: WebhookSecrets::new(SECRET, None),
            deliveries: w.store.clone(),
            records: running.records.clone(),
            log: Some(Arc::new(move |line| refused.lock().unwrap().push(line))),
        },
        async {
            let _ = server_stopped.await;
        },
    ));
    let url = format!("http://{local}/");
    let http = reqwest::Client::new();
    let post = |body: String, signature: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-prm-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // WHEN the organization is renamed in the PRM and the PRM notifies it.
    w.sandbox.prm.enable_notifications(&[SECRET]);
    w.sandbox.prm.update(
        Collection::Organizations,
        &org,
        json!({"name": "Renamed in the PRM"}),
    );
    let mut sent = w.sandbox.prm.take_notifications();
    assert_eq!(sent.len(), 1);
    let note = sent.remove(0);
    let (status, body) = post(note.body.clone(), note.signature.clone()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["integration"], json!("organizations"));

    // THEN Salesforce has the new name at once, with no cycle in between.
    until("the Account renamed", Duration::from_secs(10), || {
        w.sf_name(&account).as_deref() == Some("Renamed in the PRM")
    })
    .await;
    until("the record's line", Duration::from_secs(5), || {
        running.lines("notified ").len() == 1
    })
    .await;
    let line = &running.lines("notified ")[0];
    assert!(
        line.starts_with(&format!(
            "notified prm:organization:{org} (organizations): 1 updated in Salesforce;"
        )),
        "{line}"
    );

    // WHEN the same notification comes again: a repeat, nothing written.
    let writes_before = w.sandbox.salesforce.api_calls().kind("composite_update");
    let (status, body) = post(note.body.clone(), note.signature.clone()).await;
    assert_eq!(
        (status, body),
        (200, json!({"queued": false, "repeat": true}))
    );

    // WHEN a change comes with a bad signature: 401, nothing handed on.
    w.sandbox.prm.update(
        Collection::Organizations,
        &org,
        json!({"name": "Forged name"}),
    );
    let forged = w.sandbox.prm.take_notifications().remove(0);
    let now = chrono::Utc::now().timestamp();
    let bad = notification::sign(&["not-the-secret"], now, forged.body.as_bytes());
    let (status, body) = post(forged.body.clone(), bad).await;
    assert_eq!((status, body), (401, json!({"error": "unauthorized"})));

    // A good notification of another record after them: the loop takes records in order,
    // so by its line anything handed on before it would have been synced.
    let person = w
        .sandbox
        .prm
        .list(Collection::People)
        .into_iter()
        .find(|p| p["crm_id"].is_string())
        .expect("a linked person");
    let person_id = person["id"].as_str().unwrap().to_string();
    w.sandbox.prm.update(
        Collection::People,
        &person_id,
        json!({"phone": "+1 555 0199"}),
    );
    let other = w.sandbox.prm.take_notifications().remove(0);
    let (status, _) = post(other.body.clone(), other.signature.clone()).await;
    assert_eq!(status, 202);
    until("the person's line", Duration::from_secs(10), || {
        running.lines("notified ").len() >= 2
    })
    .await;
    let lines = running.lines("notified ");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains(&person_id), "{lines:?}");
    // the repeat and the forgery wrote nothing: Salesforce kept the notified name, and
    // only the person's update was written since
    assert_eq!(w.sf_name(&account).as_deref(), Some("Renamed in the PRM"));
    assert_eq!(
        w.sandbox.salesforce.api_calls().kind("composite_update"),
        writes_before + 1
    );

    // each answer but the two taken was logged, saying why
    let logged = refusals.lock().unwrap().clone();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(
        logged[0].starts_with("notification answered 200 (repeat):"),
        "{logged:?}"
    );
    assert!(
        logged[1].starts_with("notification answered 401 (bad_signature):"),
        "{logged:?}"
    );
    let _ = server_stop.send(());
    server.await.unwrap().unwrap();
    let (summary, _) = running.stop().await;
    assert_eq!(summary.cycles, 1, "no cycle but the first: {summary:?}");
    assert_eq!(summary.records, 2);
}

#[tokio::test]
async fn a_quiet_cycle_makes_one_query_per_object_on_each_side_and_no_write() {
    let w = Watched::synced().await;
    w.sandbox.salesforce.reset_api_calls();
    w.sandbox.prm.reset_api_calls();
    let running = w.start(Duration::from_millis(100));
    until("three cycles", Duration::from_secs(20), || {
        running.lines("cycle ").len() >= 3
    })
    .await;
    let (summary, events) = running.stop().await;
    let n = summary.cycles;
    assert!(n >= 3, "{summary:?}");

    let sf = w.sandbox.salesforce.api_calls();
    let prm = w.sandbox.prm.api_calls();
    assert_eq!(sf.total, 3 * n, "{sf:?}");
    assert_eq!(sf.kind("query_all") + sf.kind("query"), 3 * n, "{sf:?}");
    assert_eq!(prm.total, 3 * n, "{prm:?}");
    for op in ["organizations.list", "people.list", "deals.list"] {
        assert_eq!(prm.by_operation.get(op).copied(), Some(n), "{prm:?}");
    }
    assert_eq!(prm.writes(), 0);
    for e in &events {
        assert!(!e.wrote, "{}", e.line);
        assert!(
            e.line.contains(
                ": organizations no change, people no change, deals no change; 3 Salesforce calls, 3 PRM calls; "
            ),
            "{}",
            e.line
        );
    }
}
