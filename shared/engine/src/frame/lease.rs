//! The lease of an open run: renewed while the run is alive, and the ports that refuse a
//! write once it is lost (sync rule 12).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use prmsync_mapping::{CrmRecord, Fields, Integration, LogCode, PrmRecord};
use serde_json::json;

use super::RunFrame;
use crate::context::{entry, SyncContext};
use crate::ports::{
    ApiUsage, ChangeFrom, ChangePage, Crm, FailureClass, FieldInfo, PortError, Prm, PrmGroup,
    PrmSettings, RecordFailure, Scope, System, WriteOutcome,
};
use crate::store::{Store, StoreError};

/// How many times a lease is renewed within its TTL: every third of it, so a renewal that
/// fails (or comes late) leaves time for the next before the lease expires.
pub const LEASE_RENEWALS_PER_TTL: i32 = 3;

/// Keeps an open frame's lease: a task renews it (the same holder acquiring it again
/// extends it) every [`LEASE_RENEWALS_PER_TTL`]th of the TTL until the frame lets it go,
/// so a run longer than the TTL keeps other runs out. A renewal that finds the lease taken
/// by another holder marks it lost and logs `lease_lost`; the run's guarded ports
/// ([`RunFrame::guard`]) then refuse its next write, and the run fails without moving its
/// cursors: two runs writing the same records at once could overwrite each other's
/// changes and snapshots, while a run that stops loses nothing (the run holding the lease
/// reads the same changes).
pub struct LeaseKeeper {
    pub(super) state: Arc<LeaseState>,
    pub(super) stop: Arc<tokio::sync::Notify>,
    pub(super) task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper")
            .field("integration", &self.state.integration)
            .field("holder", &self.state.holder)
            .field("lost", &self.state.lost)
            .finish()
    }
}

impl LeaseKeeper {
    /// Starts renewing the lease `frame` took until `until`.
    pub(super) fn start(
        ctx: &SyncContext,
        frame: &RunFrame,
        until: DateTime<Utc>,
    ) -> Arc<LeaseKeeper> {
        let state = Arc::new(LeaseState {
            store: ctx.store.clone(),
            integration: frame.integration,
            holder: ctx.holder.clone(),
            run_id: frame.run_id.clone(),
            ttl: ctx.lease_ttl,
            until_ms: AtomicI64::new(until.timestamp_millis()),
            lost: AtomicBool::new(false),
        });
        let stop = Arc::new(tokio::sync::Notify::new());
        let every = (ctx.lease_ttl / LEASE_RENEWALS_PER_TTL)
            .to_std()
            .unwrap_or_default()
            .max(std::time::Duration::from_millis(10));
        let task = tokio::spawn(renew_until_stopped(state.clone(), stop.clone(), every));
        Arc::new(LeaseKeeper {
            state,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the renewals, and waits for one under way to end (so none lands after the
    /// lease is released).
    pub(super) async fn stop(&self) {
        self.stop.notify_one();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // A frame dropped without being closed (its run's future was cancelled): its
        // renewals stop, and the lease expires on its own.
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

async fn renew_until_stopped(
    state: Arc<LeaseState>,
    stop: Arc<tokio::sync::Notify>,
    every: std::time::Duration,
) {
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match state.renew().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(
                run_id = state.run_id.as_str(),
                integration = state.integration.as_str(),
                "could not renew the lease (tried again in {every:?}): {e}"
            ),
        }
    }
}

/// What the renewals and the guarded ports share.
pub(super) struct LeaseState {
    pub(super) store: Arc<dyn Store>,
    pub(super) integration: Integration,
    pub(super) holder: String,
    pub(super) run_id: String,
    pub(super) ttl: Duration,
    /// Until when the lease is ours: the `until` of the last renewal the store took
    /// (milliseconds since the epoch).
    pub(super) until_ms: AtomicI64,
    /// A renewal found the lease taken by another holder.
    pub(super) lost: AtomicBool,
}

impl LeaseState {
    /// Renews the lease: true when it is still ours, false when another holder has it
    /// (then it is marked lost and `lease_lost` logged, once).
    async fn renew(&self) -> Result<bool, StoreError> {
        if self.lost.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let until = Utc::now() + self.ttl;
        if self
            .store
            .acquire_lease(self.integration, &self.holder, until)
            .await?
        {
            self.until_ms
                .fetch_max(until.timestamp_millis(), Ordering::SeqCst);
            return Ok(true);
        }
        if !self.lost.swap(true, Ordering::SeqCst) {
            let message = format!(
                "another {} run took over this run's lease: this run stops before its next write and fails, and its cursors do not move",
                self.integration
            );
            tracing::warn!(
                run_id = self.run_id.as_str(),
                integration = self.integration.as_str(),
                "{message}"
            );
            let e = entry(
                &self.run_id,
                self.integration,
                LogCode::LeaseLost,
                message,
                json!({ "holder": self.holder }),
            );
            if let Err(e) = crate::store::record_log(self.store.as_ref(), &[e]).await {
                tracing::error!("could not write the Integration Log: {e}");
            }
        }
        Ok(false)
    }

    /// Ok while the lease is ours: its last renewal has not expired, or renewing it now
    /// succeeds. Else why not.
    pub(super) async fn ensure_held(&self) -> Result<(), String> {
        let lost = || {
            format!(
                "the {} lease was lost to another run; this run stopped before its next write",
                self.integration
            )
        };
        if self.lost.load(Ordering::SeqCst) {
            return Err(lost());
        }
        if Utc::now().timestamp_millis() < self.until_ms.load(Ordering::SeqCst) {
            return Ok(());
        }
        match self.renew().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(lost()),
            Err(e) => Err(format!(
                "the {} lease expired and could not be renewed ({e}); this run stopped before its next write",
                self.integration
            )),
        }
    }

    async fn check(&self, system: System) -> Result<(), PortError> {
        self.ensure_held().await.map_err(|message| PortError {
            system,
            // Not a passing failure of the records: the run stops.
            class: FailureClass::Setup,
            message,
        })
    }
}

/// Salesforce, its writes refused once the run's lease is lost.
pub(super) struct GuardedCrm {
    pub(super) inner: Arc<dyn Crm>,
    pub(super) lease: Arc<LeaseState>,
}

#[async_trait]
impl Crm for GuardedCrm {
    async fn changed(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        scope: &Scope,
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.inner.changed(object, fields, since, scope).await
    }
    async fn changed_page(
        &self,
        object: &str,
        fields: &[String],
        from: &ChangeFrom,
        page: Option<&str>,
        scope: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        self.inner
            .changed_page(object, fields, from, page, scope)
            .await
    }
    async fn sweep_page(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
        scope: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        self.inner
            .sweep_page(object, fields, since, page, scope)
            .await
    }
    async fn find(
        &self,
        object: &str,
        fields: &[String],
        field: &str,
        values: &[String],
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.inner.find(object, fields, field, values).await
    }
    async fn fetch(
        &self,
        object: &str,
        fields: &[String],
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, PortError> {
        self.inner.fetch(object, fields, ids).await
    }
    async fn create(
        &self,
        object: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.lease.check(System::Salesforce).await?;
        self.inner.create(object, records).await
    }
    async fn update(
        &self,
        object: &str,
        records: Vec<(String, Fields)>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.lease.check(System::Salesforce).await?;
        self.inner.update(object, records).await
    }
    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        self.lease.check(System::Salesforce).await?;
        self.inner.upsert(object, external_id_field, records).await
    }
    async fn describe(&self, object: &str) -> Result<Vec<FieldInfo>, PortError> {
        self.inner.describe(object).await
    }
    fn record_url(&self, object: &str, id: &str) -> Option<String> {
        self.inner.record_url(object, id)
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

/// The PRM, its writes refused once the run's lease is lost.
pub(super) struct GuardedPrm {
    pub(super) inner: Arc<dyn Prm>,
    pub(super) lease: Arc<LeaseState>,
}

#[async_trait]
impl Prm for GuardedPrm {
    async fn changed(
        &self,
        collection: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.changed(collection, since).await
    }
    async fn changed_page(
        &self,
        collection: &str,
        from: &ChangeFrom,
        page: Option<&str>,
    ) -> Result<ChangePage<PrmRecord>, PortError> {
        self.inner.changed_page(collection, from, page).await
    }
    async fn fetch(&self, collection: &str, ids: &[String]) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.fetch(collection, ids).await
    }
    async fn people_by_email(&self, email: &str) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.people_by_email(email).await
    }
    async fn people_of_organization(
        &self,
        organization_id: &str,
    ) -> Result<Vec<PrmRecord>, PortError> {
        self.inner.people_of_organization(organization_id).await
    }
    async fn create(
        &self,
        collection: &str,
        idempotency_key: &str,
        body: Fields,
    ) -> Result<Result<PrmRecord, RecordFailure>, PortError> {
        self.lease.check(System::Prm).await?;
        self.inner.create(collection, idempotency_key, body).await
    }
    async fn update(
        &self,
        collection: &str,
        id: &str,
        version: i64,
        patch: Fields,
    ) -> Result<Result<PrmRecord, RecordFailure>, PortError> {
        self.lease.check(System::Prm).await?;
        self.inner.update(collection, id, version, patch).await
    }
    async fn create_many(
        &self,
        collection: &str,
        items: Vec<(String, Fields)>,
        concurrency: usize,
    ) -> Vec<Result<Result<PrmRecord, RecordFailure>, PortError>> {
        if let Err(e) = self.lease.check(System::Prm).await {
            return items.iter().map(|_| Err(e.clone())).collect();
        }
        self.inner.create_many(collection, items, concurrency).await
    }
    async fn update_many(
        &self,
        collection: &str,
        items: Vec<(String, i64, Fields)>,
        concurrency: usize,
    ) -> Vec<Result<Result<PrmRecord, RecordFailure>, PortError>> {
        if let Err(e) = self.lease.check(System::Prm).await {
            return items.iter().map(|_| Err(e.clone())).collect();
        }
        self.inner.update_many(collection, items, concurrency).await
    }
    async fn settings(&self) -> Result<PrmSettings, PortError> {
        self.inner.settings().await
    }
    async fn groups(&self) -> Result<Vec<PrmGroup>, PortError> {
        self.inner.groups().await
    }
    fn calls(&self) -> u64 {
        self.inner.calls()
    }
}
