//! Salesforce simulator: an axum server that behaves like a Salesforce org for the REST API
//! subset prmsync uses (OAuth token, query/queryAll with paging, sObject rows and upsert,
//! sObject Collections, describe, getDeleted, limits, Bulk API 2.0 query jobs), with API-call
//! accounting and fault injection. Tests use it in-process ([`SalesforceSim::start`]) or on a
//! fixed address.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use prmsync_simulators::salesforce::SalesforceSim;
//! let sim = SalesforceSim::new();
//! let base_url = sim.start().await?; // login url and instance url
//! let mut fields = serde_json::Map::new();
//! fields.insert("Name".into(), "Acme".into());
//! let id = sim.insert("Account", fields);
//! assert!(sim.get("Account", &id).is_some());
//! # let _ = base_url; Ok(()) }
//! ```

mod auth;
mod bulk;
pub mod cdc;
mod error;
mod faults;
mod ingest;
mod routes;
mod schema;
mod soql;
mod store;
mod time;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use auth::OAuthError;
pub use bulk::DEFAULT_MAX_RECORDS as BULK_DEFAULT_MAX_RECORDS;
pub use error::{ApiError, RecordError, WriteFail};
pub use faults::Faults;
pub use ingest::{
    error_text as bulk_ingest_error_text, MAX_UPLOAD_BYTES as BULK_INGEST_MAX_UPLOAD,
};
pub use schema::{FieldDef, FieldType, ObjectDef, Schema};
pub use soql::{parse as parse_soql, Query, SoqlError};

use auth::AuthState;
use store::Store;

/// Default connected-app credentials of a new simulator.
pub const DEFAULT_CLIENT_ID: &str = "sandbox-client";
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-secret";
/// Default daily API request allocation.
pub const DEFAULT_DAILY_API_LIMIT: u64 = 100_000;

/// API calls served so far.
///
/// `total` counts the calls billed against the daily allocation (every REST call under
/// `/services/data`, failed ones included); `by_kind` counts them per kind and also holds
/// `"auth"` for token requests, which are not billed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCalls {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
}

impl ApiCalls {
    /// Calls of one kind (0 when none).
    pub fn kind(&self, kind: &str) -> u64 {
        self.by_kind.get(kind).copied().unwrap_or(0)
    }
}

/// A query result set kept for `nextRecordsUrl` paging.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    rows: Vec<Value>,
    batch: usize,
}

/// Most cursors kept at once; older ones expire.
const MAX_CURSORS: usize = 256;

#[derive(Debug)]
pub(crate) struct Inner {
    store: Store,
    auth: AuthState,
    calls: ApiCalls,
    daily_limit: u64,
    cursors: BTreeMap<u64, Cursor>,
    locators: HashMap<String, u64>,
    next_locator: u64,
    bulk: bulk::BulkJobs,
    ingest: ingest::IngestJobs,
}

/// What [`SalesforceSim::save`] writes.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    store: Store,
    client_id: String,
    client_secret: String,
    daily_limit: u64,
}

/// A simulated Salesforce org. Cheap to clone; clones share the org.
#[derive(Clone)]
pub struct SalesforceSim {
    inner: Arc<Mutex<Inner>>,
    faults: Faults,
}

impl Default for SalesforceSim {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SalesforceSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceSim").finish_non_exhaustive()
    }
}

impl SalesforceSim {
    /// An empty org with the default schema and credentials `sandbox-client` /
    /// `sandbox-secret`. It has one User (the integration user) that owns new records.
    pub fn new() -> Self {
        Self::from_store(
            Store::default(),
            AuthState::new(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            DEFAULT_DAILY_API_LIMIT,
        )
    }

    fn from_store(store: Store, auth: AuthState, daily_limit: u64) -> Self {
        SalesforceSim {
            inner: Arc::new(Mutex::new(Inner {
                store,
                auth,
                calls: ApiCalls::default(),
                daily_limit,
                cursors: BTreeMap::new(),
                locators: HashMap::new(),
                next_locator: 0,
                bulk: bulk::BulkJobs::default(),
                ingest: ingest::IngestJobs::default(),
            })),
            faults: Faults::default(),
        }
    }

    /// Replaces the connected-app credentials.
    pub fn with_credentials(self, client_id: &str, client_secret: &str) -> Self {
        {
            let mut inner = self.lock();
            inner.auth.client_id = client_id.to_string();
            inner.auth.client_secret = client_secret.to_string();
        }
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves the org on `127.0.0.1` with a free port; returns the base url
    /// (`http://127.0.0.1:PORT`), which is both the login url and the instance url.
    pub async fn start(&self) -> std::io::Result<String> {
        self.start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves the org on `addr`; returns the base url.
    pub async fn start_on(&self, addr: SocketAddr) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = routes::router(self.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "salesforce simulator stopped");
            }
        });
        Ok(format!("http://{local}"))
    }

    // ---------------------------------------------------------------------------------
    // Direct data access (not counted as API calls)

    /// Inserts a record without validation (test setup) and returns its 18-character Id.
    /// Sets CreatedDate, LastModifiedDate, SystemModstamp, IsDeleted = false and defaults.
    ///
    /// # Panics
    /// When `object` is not in the schema (a mistake in the test, not input data).
    pub fn insert(&self, object: &str, fields: Map<String, Value>) -> String {
        self.lock()
            .store
            .insert_raw(object, fields)
            .unwrap_or_else(|| panic!("unknown sObject type {object}"))
    }

    /// Inserts a record with the same validation as the API.
    pub fn try_insert(
        &self,
        object: &str,
        fields: Map<String, Value>,
    ) -> Result<String, WriteFail> {
        self.lock().store.create(object, &fields)
    }

    /// Updates a record without validation (deleted ones too) and bumps SystemModstamp and
    /// LastModifiedDate. Unknown records are ignored.
    pub fn update(&self, object: &str, id: &str, fields: Map<String, Value>) {
        self.lock().store.update_raw(object, id, fields);
    }

    /// Updates a record without validation and without moving SystemModstamp or
    /// LastModifiedDate: a value that changes as a formula field's does, which a change
    /// read by SystemModstamp never sees. Unknown records are ignored.
    pub fn update_silently(&self, object: &str, id: &str, fields: Map<String, Value>) {
        self.lock().store.update_silently(object, id, fields);
    }

    /// A record by Id (15 or 18 characters), deleted ones included.
    pub fn get(&self, object: &str, id: &str) -> Option<Map<String, Value>> {
        self.lock().store.get(object, id).cloned()
    }

    /// The live records of an object in insertion order.
    pub fn records(&self, object: &str) -> Vec<Map<String, Value>> {
        self.lock().store.live(object).cloned().collect()
    }

    /// All records of an object in insertion order, deleted ones included.
    pub fn all_records(&self, object: &str) -> Vec<Map<String, Value>> {
        self.lock().store.rows(object).cloned().collect()
    }

    /// Moves a record to the recycle bin (IsDeleted = true). Deleting an Account also deletes
    /// its Contacts and Opportunities. Unknown or deleted records are ignored.
    pub fn delete(&self, object: &str, id: &str) {
        let _ = self.lock().store.delete(object, id);
    }

    /// Merges `loser_id` into `master_id`: the loser is deleted with MasterRecordId set and
    /// its Contacts and Opportunities (for Accounts) move to the master.
    pub fn merge(&self, object: &str, master_id: &str, loser_id: &str) {
        let _ = self.lock().store.merge(object, master_id, loser_id);
    }

    /// Turns on Change Data Capture for these objects (`Account`, `Contact`,
    /// `Opportunity`): every committed write publishes a change event
    /// ([`take_change_events`](Self::take_change_events)).
    pub fn enable_change_events(&self, objects: &[&str]) {
        self.lock().store.changes.enable(objects);
    }

    /// The change events published since the last call, as Event Relay puts them on the
    /// EventBridge partner event bus (faults set by
    /// [`set_change_event_faults`](Self::set_change_event_faults) applied).
    pub fn take_change_events(&self) -> Vec<Value> {
        self.lock().store.changes.take()
    }

    /// Loses, repeats or reorders the next change events taken.
    pub fn set_change_event_faults(&self, faults: cdc::ChangeEventFaults) {
        self.lock().store.changes.set_faults(faults);
    }

    /// Publishes a gap event (`GAP_<change_type>`, e.g. `UPDATE`) for these records: they
    /// changed, with no field values in the event.
    pub fn publish_gap_event(&self, object: &str, ids: &[String], change_type: &str) {
        let mut inner = self.lock();
        let now = inner.store.now().timestamp_millis();
        inner.store.changes.gap(object, ids, change_type, now);
    }

    /// Publishes an overflow event (`GAP_OVERFLOW`) for an object.
    pub fn publish_overflow_event(&self, object: &str) {
        let mut inner = self.lock();
        let now = inner.store.now().timestamp_millis();
        inner.store.changes.overflow(object, now);
    }

    /// Takes a record out of the recycle bin (IsDeleted = false), as a user's undelete.
    pub fn undelete(&self, object: &str, id: &str) {
        let mut fields = Map::new();
        fields.insert("IsDeleted".into(), false.into());
        self.lock().store.update_raw(object, id, fields);
    }

    /// Adds (or replaces) a field of an object, e.g. a custom field.
    pub fn add_field(&self, object: &str, field: FieldDef) {
        let mut inner = self.lock();
        if let Some(obj) = inner.store.schema.object_mut(object) {
            obj.add_field(field);
            inner.store.reindex();
        }
    }

    /// Field-level security for the integration user: `editable` false makes the field
    /// read-only (describe says so, and a write naming it fails with
    /// `INVALID_FIELD_FOR_INSERT_UPDATE`), as when an admin removes Edit access.
    pub fn set_field_editable(&self, object: &str, field: &str, editable: bool) {
        let mut inner = self.lock();
        let def = inner.store.schema.object_mut(object).and_then(|o| {
            o.fields
                .iter_mut()
                .find(|f| f.name.eq_ignore_ascii_case(field))
        });
        if let Some(def) = def {
            def.createable = editable;
            def.updateable = editable;
        }
        inner.store.reindex();
    }

    /// Adds (or replaces) an object.
    pub fn add_object(&self, object: ObjectDef) {
        let mut inner = self.lock();
        let schema = &mut inner.store.schema;
        schema
            .objects
            .retain(|o| !o.name.eq_ignore_ascii_case(&object.name));
        schema.objects.push(object);
        inner.store.reindex();
    }

    /// Moves the simulated clock (SystemModstamp, getDeleted window, recycle bin) forward.
    pub fn advance_clock(&self, by: chrono::Duration) {
        self.lock().store.advance_clock(by);
    }

    /// Holds the clock: while held, every write (of the API or of [`SalesforceSim::insert`])
    /// gets the same SystemModstamp, as the records of one Salesforce transaction do; `false`
    /// releases it. For ties on SystemModstamp in tests.
    pub fn hold_clock(&self, hold: bool) {
        self.lock().store.hold_clock(hold);
    }

    /// The Id of the integration user that owns records created without OwnerId.
    pub fn default_owner_id(&self) -> Option<String> {
        let inner = self.lock();
        let id = inner
            .store
            .live("User")
            .next()?
            .get("Id")?
            .as_str()?
            .to_string();
        Some(id)
    }

    // ---------------------------------------------------------------------------------
    // Accounting, limits, faults

    pub fn api_calls(&self) -> ApiCalls {
        self.lock().calls.clone()
    }

    /// Resets the call counters, and with them the daily usage.
    pub fn reset_api_calls(&self) {
        self.lock().calls = ApiCalls::default();
    }

    /// The fault-injection handle.
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// Invalidates every issued access token (next calls get 401 INVALID_SESSION_ID).
    pub fn expire_tokens(&self) {
        self.lock().auth.expire_all();
    }

    /// Sets the daily API request allocation (default 100,000).
    pub fn set_daily_api_limit(&self, max: u64) {
        self.lock().daily_limit = max;
    }

    // ---------------------------------------------------------------------------------
    // Persistence

    /// Writes a JSON snapshot of the schema, all records, the Id counters and credentials.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = {
            let inner = self.lock();
            let snapshot = Snapshot {
                store: inner.store.clone(),
                client_id: inner.auth.client_id.clone(),
                client_secret: inner.auth.client_secret.clone(),
                daily_limit: inner.daily_limit,
            };
            serde_json::to_vec_pretty(&snapshot)?
        };
        std::fs::write(path, json)
    }

    /// Loads a snapshot written by [`SalesforceSim::save`].
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let mut snapshot: Snapshot = serde_json::from_slice(&bytes)?;
        snapshot.store.reindex();
        Ok(Self::from_store(
            snapshot.store,
            AuthState::new(&snapshot.client_id, &snapshot.client_secret),
            snapshot.daily_limit,
        ))
    }
}

#[cfg(test)]
mod tests;
