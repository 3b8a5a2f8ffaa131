//! The sandbox's console on a free loopback port, and a client for its pages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prmsync_console::runs::EngineRunner;
use prmsync_console::Console;
use prmsync_engine::store::Store;
use prmsync_engine::Crm;
use prmsync_mapping::MappingConfig;
use prmsync_prm::PrmClient;
use prmsync_salesforce::SalesforceClient;
use prmsync_simulators::sandbox::{Sandbox, PRM_TOKEN, SF_CLIENT_ID, SF_CLIENT_SECRET};
use prmsync_state_sqlite::SqliteStore;
use serde_json::Value;

use super::{CrmHooks, HookedCrm};

pub struct Served {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    pub _sandbox: Sandbox,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The sandbox's console on a free loopback port, with this access token, over a SQLite
/// state.
pub async fn served(token: Option<&str>) -> Served {
    served_on(Arc::new(SqliteStore::in_memory()), token).await
}

/// The sandbox's console over `store` (the DynamoDB tables on moto, for the AWS
/// deployment's state).
pub async fn served_on(store: Arc<dyn Store>, token: Option<&str>) -> Served {
    served_with(store, token, Engine::default()).await
}

/// What a test changes about the engine behind the console.
#[derive(Default)]
pub struct Engine {
    /// Salesforce as these hooks change it.
    pub crm_hooks: Option<Arc<dyn CrmHooks>>,
    /// Records per page of a Salesforce query (200 to 2,000; 2,000 when None).
    pub query_batch_size: Option<u32>,
    /// The mapping (the default one when None).
    pub mapping: Option<MappingConfig>,
}

/// The sandbox's console over `store`, its engine changed as `engine` says.
pub async fn served_with(store: Arc<dyn Store>, token: Option<&str>, engine: Engine) -> Served {
    let (sandbox, ctx) = sandbox_context(store.clone(), engine).await;
    let console = Console::new(
        store.clone(),
        ctx.mapping.clone(),
        Arc::new(EngineRunner(ctx)),
        "sandbox",
        token.map(str::to_string),
    );
    serve(console, store, sandbox).await
}

/// The seeded sandbox's simulators, started, and a context over them and `store`, its
/// engine changed as `engine` says.
pub async fn sandbox_context(
    store: Arc<dyn Store>,
    engine: Engine,
) -> (Sandbox, prmsync_engine::SyncContext) {
    let sandbox = Sandbox::seeded();
    let connection = prmsync_connect::Connection {
        salesforce_login_url: sandbox.salesforce.start().await.unwrap(),
        salesforce_client_id: SF_CLIENT_ID.into(),
        salesforce_client_secret: Some(SF_CLIENT_SECRET.into()),
        salesforce_username: None,
        salesforce_jwt_key: None,
        salesforce_jwt_audience: None,
        prm_api_url: sandbox.prm.start().await.unwrap(),
        prm_api_token: PRM_TOKEN.into(),
        prm_webhook_secret: None,
    };
    let mapping = engine.mapping.unwrap_or_default();
    let mut sf = connection.salesforce_config(&mapping).unwrap();
    if let Some(n) = engine.query_batch_size {
        sf.query_batch_size = n;
    }
    let mut crm: Arc<dyn Crm> = Arc::new(SalesforceClient::new(sf).unwrap());
    if let Some(hooks) = engine.crm_hooks {
        crm = HookedCrm::wrap(crm, hooks);
    }
    let prm = Arc::new(PrmClient::new(connection.prm_config().unwrap()).unwrap());
    let ctx = prmsync_connect::sync_context(crm, prm, store, mapping, "console-test");
    (sandbox, ctx)
}

/// `console` on a free loopback port until the [`Served`] is dropped.
pub async fn serve(console: Console, store: Arc<dyn Store>, sandbox: Sandbox) -> Served {
    let bound = console.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let base = format!("http://{}", bound.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    Served {
        base,
        store,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _sandbox: sandbox,
        _stop: stop,
    }
}

impl Served {
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> u16 {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Posts a form and returns the status and where it redirects to (decoded).
    pub async fn post_to(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default();
        let query = location.split_once('?').map_or("", |(_, q)| q);
        let decoded: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (r.status().as_u16(), decoded.join("&"))
    }

    /// The CSRF token in the page's forms.
    pub async fn csrf(&self) -> String {
        let (_, page) = self.get("/").await;
        let at = page
            .find(r#"name="csrf" value=""#)
            .expect("a form with its token")
            + 19;
        page[at..at + 64].to_string()
    }

    /// Follows a run started from the page until it ends (at most 4 minutes: moto serves one request at a time, and the suite runs beside it).
    pub async fn finished_run(&self, integration: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let (_, body) = self.get("/runs.json").await;
            let runs: Value = serde_json::from_str(&body).unwrap();
            if !runs[integration]["finished_at"].is_null() {
                return runs[integration].clone();
            }
            assert!(
                Instant::now() < deadline,
                "the {integration} run did not end: {runs}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The open warnings and errors the Integration Log page counts.
    pub async fn open_count(&self) -> u64 {
        let (_, page) = self.get("/log").await;
        let at = page.find("by reason (").expect("the open count") + 11;
        page[at..].split(')').next().unwrap().parse().unwrap()
    }

    /// Acknowledges the newest open deal error through the page's form; the status.
    pub async fn acknowledge_an_open_deal_error(&self, csrf: &str) -> u16 {
        let open = self
            .store
            .entries(&prmsync_engine::store::LogFilter {
                integration: Some(prmsync_mapping::Integration::Deals),
                unacknowledged: true,
                min_level: Some(prmsync_mapping::Level::Error),
                ..Default::default()
            })
            .await
            .unwrap();
        let id = &open.first().expect("an open deal error").id;
        self.post("/log/ack", &[("csrf", csrf), ("id", id)]).await
    }
}
