//! The end-to-end harness: both simulators on loopback, the real clients, a fresh SQLite
//! state, and helpers to run integrations and read both sides.

#![allow(dead_code)]

pub mod aws;
pub mod browser;
pub mod console;
pub mod drift;
pub mod lambda_api;
pub mod log_lines;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::chunk::Chunk;
use prmsync_engine::planner::{plan_run, PlanReport, PlanRequest};
use prmsync_engine::ports::{
    ApiUsage, ChangeFrom, ChangePage, Crm, FailureClass, FieldInfo, PortError, Prm, Queue,
    RecordFailure, Scope, System, WriteOutcome,
};
use prmsync_engine::store::{IntegrationLog, LogEntry, LogFilter};
use prmsync_engine::worker::{work_chunks, ChunkReport, ClosedRun, Delivery};
use prmsync_engine::{run_integration, RunMode, RunOptions, RunReport, SyncContext};
use prmsync_lambda::relaunch::Relaunch;
use prmsync_lambda::Deps;
use prmsync_mapping::{CrmRecord, Fields, Integration, LogCode, MappingConfig, PrmRecord};
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};
use prmsync_simulators::prm::{Collection, PrmSim};
use prmsync_simulators::salesforce::SalesforceSim;
use prmsync_state_sqlite::SqliteStore;
use serde_json::{Map, Value};

pub const TOKEN: &str = "test-token";

pub struct Harness {
    pub sf: SalesforceSim,
    pub prm: PrmSim,
    pub crm_client: Arc<SalesforceClient>,
    pub prm_client: Arc<PrmClient>,
    pub store: Arc<SqliteStore>,
    pub mapping: MappingConfig,
}

pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_mapping(MappingConfig::default()).await
    }

    pub async fn with_mapping(mapping: MappingConfig) -> Self {
        Self::with_query_page(mapping, 2000).await
    }

    /// A harness whose Salesforce client reads queries in pages of `batch` records
    /// (200 to 2,000).
    pub async fn with_query_page(mapping: MappingConfig, batch: u32) -> Self {
        Self::with_secrets(mapping, batch, TOKEN, "sandbox-secret").await
    }

    /// A harness whose PRM takes `prm_token` and whose Salesforce connected app has
    /// `client_secret` (the clients use them).
    pub async fn with_secrets(
        mapping: MappingConfig,
        batch: u32,
        prm_token: &str,
        client_secret: &str,
    ) -> Self {
        let sf = SalesforceSim::new().with_credentials("sandbox-client", client_secret);
        let prm = PrmSim::new(prm_token);
        let sf_url = sf.start().await.unwrap();
        let prm_url = prm.start().await.unwrap();
        let mut cfg = SalesforceConfig::new(
            sf_url,
            Auth::ClientCredentials {
                client_id: "sandbox-client".into(),
                client_secret: client_secret.into(),
            },
        );
        cfg.retry_base = Duration::from_millis(5);
        cfg.retry_max = Duration::from_millis(20);
        cfg.query_batch_size = batch;
        let crm_client = Arc::new(SalesforceClient::new(cfg).unwrap());
        let prm_client = Arc::new(PrmClient::new(PrmConfig::new(prm_url, prm_token)).unwrap());
        Self {
            sf,
            prm,
            crm_client,
            prm_client,
            store: Arc::new(SqliteStore::in_memory()),
            mapping,
        }
    }

    /// A harness whose passes write more than `threshold` Salesforce records of one object
    /// through Bulk API 2.0 ingest jobs (0 = never), polled every few milliseconds.
    pub async fn with_ingest_threshold(threshold: u64) -> Self {
        Self::with_ingest(threshold, 2000).await
    }

    /// [`Harness::with_ingest_threshold`], reading queries in pages of `batch` records.
    pub async fn with_ingest(threshold: u64, batch: u32) -> Self {
        let mut mapping = MappingConfig::default();
        mapping.salesforce.bulk_ingest_threshold = threshold;
        let mut h = Self::with_query_page(mapping, batch).await;
        let mut cfg = h.crm_client.config().clone();
        cfg.bulk_ingest_threshold = threshold;
        cfg.bulk_ingest.poll_initial = Duration::from_millis(2);
        cfg.bulk_ingest.poll_max = Duration::from_millis(20);
        h.crm_client = Arc::new(SalesforceClient::new(cfg).unwrap());
        h
    }

    pub fn ctx(&self) -> SyncContext {
        self.ctx_with(self.crm_client.clone(), self.prm_client.clone())
    }

    /// A context whose clients count writes and crash after the one `crash` names.
    pub fn crashing_ctx(&self, crash: &Arc<Crash>) -> SyncContext {
        self.ctx_with(
            crashing_crm(self.crm_client.clone(), crash),
            crashing_prm(self.prm_client.clone(), crash),
        )
    }

    /// The Lambda functions' dependencies over [`Harness::ctx`]: `queue` as the work queue;
    /// no relaunch (set `relaunch` to a [`Relaunches`] to keep the invocations a handler
    /// asks for).
    pub fn deps(&self, queue: Arc<dyn Queue>) -> Deps {
        Deps {
            ctx: self.ctx(),
            queue,
            relaunch: None,
        }
    }

    pub fn ctx_with(&self, crm: Arc<dyn Crm>, prm: Arc<dyn Prm>) -> SyncContext {
        SyncContext {
            crm,
            prm,
            store: self.store.clone(),
            mapping: Arc::new(self.mapping.clone()),
            holder: "test".into(),
            lease_ttl: chrono::Duration::minutes(5),
        }
    }

    /// Runs organizations then people, incrementally (the first run is full by itself).
    pub async fn sync(&self) -> Vec<RunReport> {
        self.sync_ctx(&self.ctx(), RunMode::Incremental).await
    }

    /// Runs the deals integration once.
    pub async fn sync_deals(&self) -> RunReport {
        let options = RunOptions {
            mode: RunMode::Incremental,
            dry_run: false,
            run_id: None,
            allow_mass_change: false,
        };
        run_integration(&self.ctx(), Integration::Deals, options).await
    }

    pub async fn sync_full(&self) -> Vec<RunReport> {
        self.sync_ctx(&self.ctx(), RunMode::Full).await
    }

    pub async fn sync_ctx(&self, ctx: &SyncContext, mode: RunMode) -> Vec<RunReport> {
        let mut out = Vec::new();
        for i in [Integration::Organizations, Integration::People] {
            let options = RunOptions {
                mode,
                dry_run: false,
                run_id: None,
                allow_mass_change: false,
            };
            out.push(run_integration(ctx, i, options).await);
        }
        out
    }

    // ---- Salesforce side ----

    pub fn account(&self, name: &str, status: Option<&str>, extra: Value) -> String {
        let mut f = obj(serde_json::json!({"Name": name, "PRM_Sync__c": status.is_some()}));
        if let Some(s) = status {
            f.insert("PRM_Organization_Status__c".into(), Value::String(s.into()));
        }
        if let Value::Object(m) = extra {
            f.extend(m);
        }
        self.sf.insert("Account", f)
    }

    pub fn contact(&self, account: &str, first: &str, last: &str, email: &str) -> String {
        self.sf.insert(
            "Contact",
            obj(serde_json::json!({"AccountId": account, "FirstName": first, "LastName": last, "Email": email})),
        )
    }

    pub fn sf_get(&self, object: &str, id: &str) -> Map<String, Value> {
        self.sf
            .get(object, id)
            .unwrap_or_else(|| panic!("{object} {id} not in Salesforce"))
    }

    pub fn sf_str(&self, object: &str, id: &str, field: &str) -> Option<String> {
        self.sf_get(object, id)
            .get(field)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// The live Salesforce records of an object.
    pub fn sf_records(&self, object: &str) -> Vec<Map<String, Value>> {
        self.sf.records(object)
    }

    // ---- PRM side ----

    pub fn org(&self, kind: &str, status: &str, name: &str) -> String {
        self.prm.insert(
            Collection::Organizations,
            serde_json::json!({"kind": kind, "status": status, "name": name}),
        )
    }

    pub fn prm_get(&self, c: Collection, id: &str) -> Value {
        self.prm
            .get(c, id)
            .unwrap_or_else(|| panic!("{id} not in the PRM"))
    }

    /// The PRM record linked to a Salesforce Id.
    pub fn prm_by_crm(&self, c: Collection, crm_id: &str) -> Vec<Value> {
        self.prm
            .list(c)
            .into_iter()
            .filter(|r| r["crm_id"].as_str() == Some(crm_id))
            .collect()
    }

    // ---- log ----

    pub async fn log(&self, code: LogCode) -> Vec<LogEntry> {
        self.store
            .entries(&LogFilter {
                code: Some(code),
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

/// Sum of a count over the reports.
pub fn total(reports: &[RunReport], f: impl Fn(&prmsync_engine::Counts) -> u64) -> u64 {
    reports.iter().map(|r| f(&r.counts)).sum()
}

pub fn assert_succeeded(reports: &[RunReport]) {
    for r in reports {
        assert_eq!(
            r.status, "succeeded",
            "{} run: {:?}",
            r.integration, r.message
        );
    }
}

/// Counts write calls on both ports and, on the chosen one, performs it and then fails
/// as if the process died before hearing the answer.
pub struct Crash {
    pub writes: AtomicU64,
    pub fail_at: u64,
}

impl Crash {
    pub fn new(fail_at: u64) -> Arc<Self> {
        Arc::new(Self {
            writes: AtomicU64::new(0),
            fail_at,
        })
    }

    fn hit(&self) -> bool {
        self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at
    }

    /// The crash: a failure the engine cannot work around, so the run stops there as a
    /// process that died would (a passing failure would only fail the records of the
    /// call, which the retry set then holds).
    fn error(system: System) -> PortError {
        PortError {
            system,
            class: FailureClass::Setup,
            message: "injected crash after the write".into(),
        }
    }
}

/// What a test changes about the Salesforce it wraps in a [`HookedCrm`]; every hook left
/// out does nothing, so the wrapper forwards the call as is.
#[async_trait]
pub trait CrmHooks: Send + Sync {
    /// Before a change read (`changed`, `changed_page`, `sweep_page`) is made.
    async fn before_change_read(&self) {}
    /// The records a change read of `object` hands the engine.
    fn change_read(&self, _object: &str, _records: &[CrmRecord]) {}
    /// A record body about to be written (`create`, `update`, `upsert`).
    fn write_body(&self, _body: &mut Fields) {}
    /// After a write call: an error here replaces its answer (a crash after the write).
    fn after_write(&self) -> Option<PortError> {
        None
    }
}

/// What a test changes about the PRM it wraps in a [`HookedPrm`].
pub trait PrmHooks: Send + Sync {
    /// The records a change read of `collection` hands the engine.
    fn change_read(&self, _collection: &str, _records: &[PrmRecord]) {}
    /// Before records are read by id (`fetch`).
    fn before_fetch(&self, _collection: &str, _ids: &[String]) {}
    /// Before an update of record `id` guarded by `version` is sent (to edit the record in
    /// the simulator first, so that `If-Match` fails as in a real race).
    fn before_update(&self, _collection: &str, _id: &str, _version: i64) {}
    /// After a write call: an error here replaces its answer (a crash after the write).
    fn after_write(&self) -> Option<PortError> {
        None
    }
}

/// Salesforce as the test's hooks change it; every call goes to `inner`.
pub struct HookedCrm {
    pub inner: Arc<dyn Crm>,
    pub hooks: Arc<dyn CrmHooks>,
}

impl HookedCrm {
    pub fn wrap(inner: Arc<dyn Crm>, hooks: Arc<dyn CrmHooks>) -> Arc<dyn Crm> {
        Arc::new(Self { inner, hooks })
    }

    fn written<T>(&self, out: Result<T, PortError>) -> Result<T, PortError> {
        match self.hooks.after_write() {
            Some(e) => Err(e),
            None => out,
        }
    }
}

#[async_trait]
impl Crm for HookedCrm {
    async fn changed(
        &self,
        o: &str,
        f: &[String],
        s: Option<DateTime<Utc>>,
        sc: &Scope,
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.hooks.before_change_read().await;
        let out = self.inner.changed(o, f, s, sc).await?;
        self.hooks.change_read(o, &out);
        Ok(out)
    }
    async fn changed_page(
        &self,
        o: &str,
        f: &[String],
        from: &ChangeFrom,
        page: Option<&str>,
        sc: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        self.hooks.before_change_read().await;
        let out = self.inner.changed_page(o, f, from, page, sc).await?;
        self.hooks.change_read(o, &out.records);
        Ok(out)
    }
    async fn sweep_page(
        &self,
        o: &str,
        f: &[String],
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
        sc: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        self.hooks.before_change_read().await;
        let out = self.inner.sweep_page(o, f, since, page, sc).await?;
        self.hooks.change_read(o, &out.records);
        Ok(out)
    }
    async fn find(
        &self,
        o: &str,
        f: &[String],
        field: &str,
        v: &[String],
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.inner.find(o, f, field, v).await
    }
    async fn fetch(
        &self,
        o: &str,
        f: &[String],
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.inner.fetch(o, f, ids).await
    }
    async fn create(&self, o: &str, mut r: Vec<Fields>) -> Result<Vec<WriteOutcome>, PortError> {
        r.iter_mut().for_each(|b| self.hooks.write_body(b));
        let out = self.inner.create(o, r).await;
        self.written(out)
    }
    async fn update(
        &self,
        o: &str,
        mut r: Vec<(String, Fields)>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        r.iter_mut().for_each(|(_, b)| self.hooks.write_body(b));
        let out = self.inner.update(o, r).await;
        self.written(out)
    }
    async fn upsert(
        &self,
        o: &str,
        e: &str,
        mut r: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        r.iter_mut().for_each(|b| self.hooks.write_body(b));
        let out = self.inner.upsert(o, e, r).await;
        self.written(out)
    }
    async fn describe(&self, o: &str) -> Result<Vec<FieldInfo>, PortError> {
        self.inner.describe(o).await
    }
    fn record_url(&self, o: &str, id: &str) -> Option<String> {
        self.inner.record_url(o, id)
    }
    fn usage(&self) -> Option<ApiUsage> {
        self.inner.usage()
    }
    fn calls(&self) -> u64 {
        self.inner.calls()
    }
    fn take_notices(&self) -> Vec<String> {
        self.inner.take_notices()
    }
}

/// The PRM as the test's hooks change it; every call goes to `inner`.
pub struct HookedPrm {
    pub inner: Arc<dyn Prm>,
    pub hooks: Arc<dyn PrmHooks>,
}

impl HookedPrm {
    pub fn wrap(inner: Arc<dyn Prm>, hooks: Arc<dyn PrmHooks>) -> Arc<dyn Prm> {
        Arc::new(Self { inner, hooks })
    }

    fn written<T>(&self, out: Result<T, PortError>) -> Result<T, PortError> {
        match self.hooks.after_write() {
            Some(e) => Err(e),
            None => out,
        }
    }
}

#[async_trait]
impl Prm for HookedPrm {
    async fn changed(
        &self,
        c: &str,
        s: Option<DateTime<Utc>>,
    ) -> Result<Vec<PrmRecord>, PortError> {
        let out = self.inner.changed(c, s).await?;
        self.hooks.change_read(c, &out);
        Ok(out)
    }
    async fn changed_page(
        &self,
        c: &str,
        from: &ChangeFrom,
        page: Option<&str>,
    ) -> Result<ChangePage<PrmRecord>, PortError> {
        let out = self.inner.changed_page(c, from, page).await?;
        self.hooks.change_read(c, &out.records);
        Ok(out)
    }
    async fn fetch(&self, c: &str, ids: &[String]) -> Result<Vec<PrmRecord>, PortError> {
        self.hooks.before_fetch(c, ids);
        self.inner.fetch(c, ids).await
    }
    async fn people_by_email(&self, e: &str) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.people_by_email(e).await
    }
    async fn people_of_organization(&self, o: &str) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.people_of_organization(o).await
    }
    async fn settings(&self) -> Result<prmsync_engine::ports::PrmSettings, PortError> {
        self.inner.settings().await
    }
    async fn groups(&self) -> Result<Vec<prmsync_engine::ports::PrmGroup>, PortError> {
        self.inner.groups().await
    }
    async fn create(
        &self,
        c: &str,
        k: &str,
        b: Fields,
    ) -> Result<Result<PrmRecord, RecordFailure>, PortError> {
        let out = self.inner.create(c, k, b).await;
        self.written(out)
    }
    async fn update(
        &self,
        c: &str,
        id: &str,
        v: i64,
        p: Fields,
    ) -> Result<Result<PrmRecord, RecordFailure>, PortError> {
        self.hooks.before_update(c, id, v);
        let out = self.inner.update(c, id, v, p).await;
        self.written(out)
    }
    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}

/// A crash after the write it counts to, on either side.
pub struct CrashAfter {
    pub crash: Arc<Crash>,
    pub system: System,
}

#[async_trait]
impl CrmHooks for CrashAfter {
    fn after_write(&self) -> Option<PortError> {
        self.crash.hit().then(|| Crash::error(self.system))
    }
}

impl PrmHooks for CrashAfter {
    fn after_write(&self) -> Option<PortError> {
        self.crash.hit().then(|| Crash::error(self.system))
    }
}

/// Salesforce that crashes after the write `crash` counts to.
pub fn crashing_crm(inner: Arc<dyn Crm>, crash: &Arc<Crash>) -> Arc<dyn Crm> {
    HookedCrm::wrap(
        inner,
        Arc::new(CrashAfter {
            crash: crash.clone(),
            system: System::Salesforce,
        }),
    )
}

/// The PRM that crashes after the write `crash` counts to.
pub fn crashing_prm(inner: Arc<dyn Prm>, crash: &Arc<Crash>) -> Arc<dyn Prm> {
    HookedPrm::wrap(
        inner,
        Arc::new(CrashAfter {
            crash: crash.clone(),
            system: System::Prm,
        }),
    )
}

/// Fields whose values depend on when a record was written, left out of comparisons.
pub const TIMING_FIELDS: [&str; 6] = [
    "SystemModstamp",
    "LastModifiedDate",
    "CreatedDate",
    "updated_at",
    "created_at",
    "version",
];

/// A system's records without the fields that differ by timing.
pub fn normalise(records: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    let mut out: Vec<Map<String, Value>> = records
        .into_iter()
        .map(|mut r| {
            for k in TIMING_FIELDS {
                r.remove(k);
            }
            r
        })
        .collect();
    out.sort_by_key(|r| serde_json::to_string(r).unwrap());
    out
}

pub fn state(h: &Harness) -> Vec<Vec<Map<String, Value>>> {
    let prm = |c| {
        h.prm
            .list(c)
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    };
    vec![
        normalise(h.sf_records("Account")),
        normalise(h.sf_records("Contact")),
        normalise(prm(Collection::Organizations)),
        normalise(prm(Collection::People)),
    ]
}

/// A record's label: what names it on both sides whatever its ids (ids depend on the
/// order records were created in, which differs between the deployments).
fn label(r: &Map<String, Value>) -> String {
    for k in ["Email", "email"] {
        if let Some(e) = r.get(k).and_then(Value::as_str) {
            return format!("person:{}", e.to_lowercase());
        }
    }
    for k in ["Name", "name"] {
        if let Some(n) = r.get(k).and_then(Value::as_str) {
            return format!("org:{n}");
        }
    }
    let last = ["LastName", "last_name"]
        .iter()
        .find_map(|k| r.get(*k).and_then(Value::as_str))
        .unwrap_or("?");
    format!("person:{last}")
}

/// Both systems' records (deleted Salesforce rows left out), ids replaced by the labels
/// of the records they name, timing fields left out, sorted.
pub fn labelled_state(sf: &SalesforceSim, prm: &PrmSim) -> Vec<Vec<String>> {
    let sets: Vec<Vec<Map<String, Value>>> = vec![
        sf.records("Account"),
        sf.records("Contact"),
        prm.list(Collection::Organizations)
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect(),
        prm.list(Collection::People)
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect(),
    ];
    let mut names: HashMap<String, String> = HashMap::new();
    for set in &sets {
        for r in set {
            for k in ["Id", "id"] {
                if let Some(id) = r.get(k).and_then(Value::as_str) {
                    names.insert(id.to_string(), label(r));
                }
            }
        }
    }
    let refs = [
        "Id",
        "id",
        "PRM_Id__c",
        "AccountId",
        "ParentId",
        "crm_id",
        "organization_id",
        "parent_id",
        "MasterRecordId",
        "OwnerId",
    ];
    sets.into_iter()
        .map(|set| {
            let mut out: Vec<String> = set
                .into_iter()
                .map(|mut r| {
                    for k in TIMING_FIELDS {
                        r.remove(k);
                    }
                    for k in refs {
                        if let Some(Value::String(id)) = r.get(k).cloned() {
                            let named = names.get(&id).cloned().unwrap_or(format!("unknown:{id}"));
                            r.insert(k.to_string(), Value::String(named));
                        }
                    }
                    serde_json::to_string(&r).unwrap()
                })
                .collect();
            out.sort();
            out
        })
        .collect()
}

/// A work queue that keeps what is sent, in order: chunks to deliver now (`.0`) and
/// chunks sent with a delay (`.1`), which [`ListQueue::take`] leaves until
/// [`ListQueue::release_delayed`] (the delay has passed).
#[derive(Default)]
pub struct ListQueue(
    pub std::sync::Mutex<Vec<Chunk>>,
    pub std::sync::Mutex<Vec<(Chunk, Duration)>>,
);

impl ListQueue {
    pub fn take(&self) -> Vec<Chunk> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// Chunks sent with a delay, not delivered yet.
    pub fn delayed(&self) -> Vec<(Chunk, Duration)> {
        self.1.lock().unwrap().clone()
    }

    /// The delays pass: delayed chunks are ready to deliver. Returns how many.
    pub fn release_delayed(&self) -> usize {
        let delayed = std::mem::take(&mut *self.1.lock().unwrap());
        let n = delayed.len();
        self.0
            .lock()
            .unwrap()
            .extend(delayed.into_iter().map(|(c, _)| c));
        n
    }
}

#[async_trait]
impl Queue for ListQueue {
    async fn send(&self, chunks: &[Chunk]) -> Result<(), PortError> {
        self.0.lock().unwrap().extend_from_slice(chunks);
        Ok(())
    }

    async fn send_later(&self, chunk: &Chunk, delay: Duration) -> Result<(), PortError> {
        self.1.lock().unwrap().push((chunk.clone(), delay));
        Ok(())
    }
}

/// Keeps the payloads a Lambda function asks to be invoked with (a planner's own
/// continuation, or full-sync for a closed run's follow-up integrations), for the test to
/// make those invocations itself.
#[derive(Default)]
pub struct Relaunches(pub Mutex<Vec<Value>>);

#[async_trait]
impl Relaunch for Relaunches {
    async fn relaunch(&self, payload: &Value) -> Result<(), String> {
        self.0.lock().unwrap().push(payload.clone());
        Ok(())
    }
}

/// What the Lambda deployment did, in one process: every planner invocation, every chunk
/// worked, and the runs closed.
#[derive(Debug, Default)]
pub struct LambdaOutcome {
    pub plans: Vec<PlanReport>,
    pub chunks: Vec<ChunkReport>,
    pub closed: Vec<ClosedRun>,
}

/// Plans `integration` as full-sync does and works its chunks as the workers do, until
/// the queue is empty (delayed chunks included when `wait_delays`); a closed run's
/// follow-up integrations are planned the way the closing worker asks full-sync to.
pub async fn lambda_run(
    ctx: &SyncContext,
    queue: &ListQueue,
    integration: Integration,
    then: Vec<Integration>,
    mode: RunMode,
    wait_delays: bool,
) -> LambdaOutcome {
    let mut out = LambdaOutcome::default();
    let mut request = PlanRequest::new(integration, mode, uuid::Uuid::new_v4().to_string());
    request.then = then.clone();
    let report = plan_run(ctx, Some(queue), &request).await.unwrap();
    let finished = report.status == prmsync_engine::planner::PlanStatus::Finished;
    out.plans.push(report);
    if finished {
        // Nothing changed: the run closed at once, and what follows it is planned now.
        for next in then {
            let request = PlanRequest::new(next, mode, uuid::Uuid::new_v4().to_string());
            out.plans
                .push(plan_run(ctx, Some(queue), &request).await.unwrap());
        }
    }
    drain(ctx, queue, wait_delays, &mut out).await;
    out
}

/// Works every chunk in the queue (and the runs it leads to), oldest first.
pub async fn drain(
    ctx: &SyncContext,
    queue: &ListQueue,
    wait_delays: bool,
    out: &mut LambdaOutcome,
) {
    for _ in 0..10_000 {
        let mut chunks = queue.take();
        if chunks.is_empty() && wait_delays && queue.release_delayed() > 0 {
            chunks = queue.take();
        }
        if chunks.is_empty() {
            return;
        }
        // In batches of 10, as sync-worker takes them off SQS, one chunk at a time (the
        // Lambda functions' tests on moto run sync-worker's own concurrency). Four at a
        // time, a full run's people chunk holding a PRM person and the one holding its
        // purged Contact (found unseen) both log the deletion: the planner puts the two
        // ids of one link in two chunks.
        let mut reports = Vec::new();
        for batch in chunks.chunks(10) {
            let batch: Vec<(Chunk, Delivery)> = batch
                .iter()
                .map(|c| (c.clone(), Delivery { receive_count: 1 }))
                .collect();
            for ((chunk, _), report) in batch.iter().zip(work_chunks(ctx, queue, &batch, 1).await) {
                match report {
                    Ok(report) => reports.push(report),
                    // The message fails: SQS delivers it again.
                    Err(_) => queue.0.lock().unwrap().push(chunk.clone()),
                }
            }
        }
        for report in reports {
            if let Some(closed) = &report.closed {
                for &next in &closed.then {
                    let request =
                        PlanRequest::new(next, closed.mode, uuid::Uuid::new_v4().to_string());
                    out.plans
                        .push(plan_run(ctx, Some(queue), &request).await.unwrap());
                }
                out.closed.push(closed.clone());
            }
            out.chunks.push(report);
        }
    }
    panic!("the queue did not drain");
}

impl Harness {
    /// The Lambda deployment's `all` run in one process: organizations, then people once
    /// the organizations run has closed.
    pub async fn lambda_sync(&self, ctx: &SyncContext, mode: RunMode) -> LambdaOutcome {
        let queue = ListQueue::default();
        lambda_run(
            ctx,
            &queue,
            Integration::Organizations,
            vec![Integration::People],
            mode,
            true,
        )
        .await
    }
}
