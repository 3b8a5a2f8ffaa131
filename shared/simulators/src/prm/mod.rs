//! PRM simulator: an in-memory PRM that serves the v1 contract (`docs/prm-api.yaml`) on
//! loopback, with direct access for tests, call counting, fault injection and snapshots.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use prmsync_simulators::prm::{Collection, PrmSim};
//! let sim = PrmSim::new("secret-token");
//! let org = sim.insert(Collection::Organizations, serde_json::json!({"name": "Acme", "kind": "partner"}));
//! let base_url = sim.start().await?; // "http://127.0.0.1:PORT"
//! # let _ = (org, base_url); Ok(()) }
//! ```

mod error;
mod faults;
pub mod notify;
mod query;
mod routes;
mod store;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{header, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use error::{FieldError, SimError};
pub use faults::Faults;
pub use store::{format_ts, Collection, DistributorModule, FieldSpec, Settings};

use store::Store;
use validate::Mode;

/// API calls the simulator has served since the last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCalls {
    /// Every request that reached the API, failed or not.
    pub total: u64,
    /// By kind: `list`, `get`, `create`, `update`, `delete`, `settings`, `groups`.
    pub by_kind: BTreeMap<String, u64>,
    /// By collection and kind, e.g. `people.create`.
    pub by_operation: BTreeMap<String, u64>,
}

impl ApiCalls {
    /// Calls of one kind (`"create"`) or operation (`"people.create"`).
    pub fn count(&self, kind: &str) -> u64 {
        self.by_kind
            .get(kind)
            .or_else(|| self.by_operation.get(kind))
            .copied()
            .unwrap_or(0)
    }

    /// Creates, updates and deletes.
    pub fn writes(&self) -> u64 {
        ["create", "update", "delete"]
            .iter()
            .map(|k| self.count(k))
            .sum()
    }
}

struct Inner {
    token: String,
    store: Mutex<Store>,
    calls: Mutex<ApiCalls>,
    faults: Faults,
    /// The secrets change notifications are signed with ([`PrmSim::enable_notifications`]).
    webhook_secrets: Mutex<Vec<String>>,
}

/// A simulated PRM. Clones share the same state.
#[derive(Clone)]
pub struct PrmSim {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PrmSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrmSim").finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    store: Store,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn object(value: Value) -> Result<Map<String, Value>, SimError> {
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(SimError::field("body", "must be a JSON object")),
    }
}

impl PrmSim {
    /// An empty PRM that accepts `Authorization: Bearer <token>`, with default settings.
    pub fn new(token: &str) -> Self {
        Self::from_store(Store::default(), token)
    }

    fn from_store(store: Store, token: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                token: token.to_string(),
                store: Mutex::new(store),
                calls: Mutex::new(ApiCalls::default()),
                faults: Faults::default(),
                webhook_secrets: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The axum router, for embedding the simulator in another server.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Serves on a free loopback port; returns the base URL (`http://127.0.0.1:PORT`).
    pub async fn start(&self) -> std::io::Result<String> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves on `addr` in a background task; returns the base URL.
    pub async fn start_on(&self, addr: SocketAddr) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "PRM simulator stopped");
            }
        });
        Ok(format!("http://{local}"))
    }

    pub(crate) fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut lock(&self.inner.store))
    }

    pub(crate) fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        match value.split_once(' ') {
            Some((scheme, token)) => {
                scheme.eq_ignore_ascii_case("bearer")
                    && !self.inner.token.is_empty()
                    && token.trim() == self.inner.token
            }
            None => false,
        }
    }

    pub(crate) fn count_call(&self, kind: &str, op: &str) {
        let mut calls = lock(&self.inner.calls);
        calls.total += 1;
        *calls.by_kind.entry(kind.to_string()).or_default() += 1;
        *calls.by_operation.entry(op.to_string()).or_default() += 1;
    }

    pub(crate) fn settings_json(&self) -> Value {
        self.with_store(|s| serde_json::to_value(&s.settings).unwrap_or(Value::Null))
    }

    /// Offers batch writes of up to `max` items (`POST /v1/{collection}/batch`), advertised
    /// in the settings as `"batch": {"max": max}`; None withdraws them.
    pub fn set_batches(&self, max: Option<usize>) {
        self.with_store(|s| s.settings.batch = max.map(|max| store::BatchSettings { max }));
    }

    /// Creates a record directly (not counted as an API call) and returns its id.
    /// Validated like the API, except that `registration_status` and a chosen `id` are allowed.
    ///
    /// # Panics
    /// When the record is invalid; use [`PrmSim::try_insert`] to get the error.
    pub fn insert(&self, collection: Collection, record: Value) -> String {
        match self.try_insert(collection, record) {
            Ok(id) => id,
            Err(e) => panic!("PrmSim::insert into {}: {e}", collection.path()),
        }
    }

    pub fn try_insert(&self, collection: Collection, record: Value) -> Result<String, SimError> {
        let body = object(record)?;
        let created = self.with_store(|s| s.create(collection, &body, Mode::Direct))?;
        Ok(created["id"].as_str().unwrap_or_default().to_string())
    }

    /// Applies a partial update like `PATCH` without `If-Match`.
    ///
    /// # Panics
    /// When the record is unknown, deleted or the patch invalid; see [`PrmSim::try_update`].
    pub fn update(&self, collection: Collection, id: &str, patch: Value) {
        if let Err(e) = self.try_update(collection, id, patch) {
            panic!("PrmSim::update {}/{id}: {e}", collection.path());
        }
    }

    /// Applies a partial update; returns the record as it is afterwards.
    pub fn try_update(
        &self,
        collection: Collection,
        id: &str,
        patch: Value,
    ) -> Result<Value, SimError> {
        let body = object(patch)?;
        self.with_store(|s| s.patch(collection, id, None, &body, Mode::Direct))
    }

    /// Applies a partial update like [`PrmSim::update`] (the version moves) whose
    /// `updated_at` is `at`, in the past: a late commit, whose change time is older than
    /// the changes read since, so that a change list read from a later cursor misses it.
    ///
    /// # Panics
    /// When the record is unknown, deleted or the patch invalid.
    pub fn update_late(
        &self,
        collection: Collection,
        id: &str,
        patch: Value,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        self.update(collection, id, patch);
        self.with_store(|s| s.backdate(collection, id, at));
    }

    /// Sets one field of a record to any JSON value without validation, as a faulty PRM
    /// would serve it (a `updated_at` that is not a timestamp, a `crm_id` that is a
    /// number): for tests of malformed records. The record keeps its place in the list
    /// order and its version.
    ///
    /// # Panics
    /// When the record is unknown.
    pub fn set_raw(&self, collection: Collection, id: &str, field: &str, value: Value) {
        if !self.with_store(|s| s.set_raw(collection, id, field, value)) {
            panic!("PrmSim::set_raw {}/{id}: no such record", collection.path());
        }
    }

    /// Makes a record a tombstone. Unknown ids are ignored.
    pub fn delete(&self, collection: Collection, id: &str) {
        let _ = self.with_store(|s| s.delete(collection, id));
    }

    /// Removes a record's tombstone, as the PRM does 30 days after the delete: the record
    /// is gone from every read. A live record is left alone.
    pub fn expire_tombstone(&self, collection: Collection, id: &str) {
        self.with_store(|s| s.expire_tombstone(collection, id));
    }

    /// A record, tombstones included.
    pub fn get(&self, collection: Collection, id: &str) -> Option<Value> {
        self.with_store(|s| s.get(collection, id).map(|r| Value::Object(r.data.clone())))
    }

    /// The live records of a collection, in id order.
    pub fn list(&self, collection: Collection) -> Vec<Value> {
        self.with_store(|s| s.live(collection))
    }

    /// Sets a deal's `registration_status` as the PRM would (bumps version and updated_at).
    ///
    /// # Panics
    /// When the deal is unknown or deleted, or the status is not one of
    /// `pending`, `approved`, `denied`, `expired`.
    pub fn set_registration_status(&self, deal_id: &str, status: &str) {
        self.update(
            Collection::Deals,
            deal_id,
            json!({ "registration_status": status }),
        );
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.with_store(|s| s.settings.clone())
    }

    /// Merges `settings` into the current settings: objects merge key by key, lists replace.
    ///
    /// # Panics
    /// When the result is not a valid settings document; see [`PrmSim::try_set_settings`].
    pub fn set_settings(&self, settings: Value) {
        if let Err(e) = self.try_set_settings(settings) {
            panic!("PrmSim::set_settings: {e}");
        }
    }

    pub fn try_set_settings(&self, settings: Value) -> Result<(), SimError> {
        self.with_store(|s| {
            let mut current = serde_json::to_value(&s.settings).unwrap_or(Value::Null);
            deep_merge(&mut current, settings);
            s.settings = serde_json::from_value(current)
                .map_err(|e| SimError::field("settings", e.to_string()))?;
            Ok(())
        })
    }

    pub fn api_calls(&self) -> ApiCalls {
        lock(&self.inner.calls).clone()
    }

    pub fn reset_api_calls(&self) {
        *lock(&self.inner.calls) = ApiCalls::default();
    }

    /// Holds the clock: while held, every write (of the API or of [`PrmSim::insert`]) gets
    /// the same `updated_at`; `false` releases it. For ties on `updated_at` in tests.
    pub fn hold_clock(&self, hold: bool) {
        self.with_store(|s| s.hold_clock(hold));
    }

    /// The fault-injection handle (shared with the server).
    pub fn faults(&self) -> Faults {
        self.inner.faults.clone()
    }

    /// Writes a JSON snapshot of every record, the settings and the idempotency keys.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let snapshot = self.with_store(|s| Snapshot {
            format: 1,
            store: s.clone(),
        });
        let bytes = serde_json::to_vec_pretty(&snapshot).map_err(std::io::Error::other)?;
        std::fs::write(path, bytes)
    }

    /// A simulator restored from [`PrmSim::save`]; calls and faults start empty.
    pub fn load(path: &Path, token: &str) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let mut snapshot: Snapshot = serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        snapshot.store.reindex();
        Ok(Self::from_store(snapshot.store, token))
    }
}

fn deep_merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                deep_merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

#[cfg(test)]
mod tests;
