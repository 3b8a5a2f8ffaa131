//! Ports: what the engine needs of the two systems, in domain terms. Adapters implement them
//! (the Salesforce REST client, the PRM API client); tests wrap them to inject faults.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_mapping::{CrmRecord, Fields, PrmRecord};
use serde::{Deserialize, Serialize};

/// Which system a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    Salesforce,
    Prm,
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            System::Salesforce => "Salesforce",
            System::Prm => "PRM",
        })
    }
}

/// How the engine treats a failure. The Salesforce adapter maps its error codes and HTTP
/// statuses to these classes (`prmsync_salesforce::classify`); the exit status of the
/// CLI and the error type of the Lambda functions follow from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Credentials rejected: the run stops.
    Auth,
    /// Worth retrying later (lock, outage): the record is retried on its own, later.
    Transient,
    /// The org's daily API limit (or the configured reserve) is reached: every write to
    /// Salesforce stops until it clears; nothing is the record's fault.
    Limit,
    /// The record's data was rejected: logged, retried when the record changes.
    Data,
    /// The record is gone on that side: the link is disconnected.
    Gone,
    /// A field or permission is missing: the integration stops.
    Setup,
    /// The record changed under us (PRM If-Match): re-read and merge again.
    VersionConflict,
}

/// One record's write failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordFailure {
    pub class: FailureClass,
    /// The remote error code (`STRING_TOO_LONG`, `validation_failed`, ...).
    pub code: String,
    pub message: String,
    /// Fields the error names.
    pub fields: Vec<String>,
}

/// A whole call failed (after the adapter's own retries).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{system} call failed: {message}")]
pub struct PortError {
    pub system: System,
    pub class: FailureClass,
    pub message: String,
}

/// The result of writing one record.
pub type WriteOutcome = Result<WriteOk, RecordFailure>;

#[derive(Debug, Clone, PartialEq)]
pub struct WriteOk {
    pub id: String,
    pub created: bool,
}

/// Which Salesforce records a change query reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// Every record.
    All,
    /// Records with every flag ticked or a PRM Id (linked), so unflagging is seen and
    /// unflagged, never-linked records are left alone.
    FlaggedOrLinked { flags: Vec<String>, prm_id: String },
    /// Records whose `field` is not null (Contacts with an Account).
    NotNull(String),
}

/// Where a paged read of changes starts: records changed at or after `since`, and strictly
/// after the `(timestamp, id)` key `after` in the read's order. Both survive a process:
/// a planner that runs out of time stores them and the next invocation carries on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeFrom {
    pub since: Option<DateTime<Utc>>,
    pub after: Option<(DateTime<Utc>, String)>,
}

/// One page of a change read and the token of the next page within the same read
/// (Salesforce `nextRecordsUrl`, PRM `next_cursor`); `None` at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage<R> {
    pub records: Vec<R>,
    pub next: Option<String>,
    /// Records of the page the adapter could not read (a malformed PRM record): they are
    /// left out of `records` so that the rest of the page syncs, and the engine logs them.
    pub rejected: Vec<Rejected>,
}

/// A record of a page that could not be read: what could be read of its id and of its
/// change time, and why it was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub problem: String,
}

impl ChangeFrom {
    /// Whether a record with this `(timestamp, id)` key comes strictly after `after` (every
    /// record does when there is no `after`).
    pub fn admits(&self, at: Option<DateTime<Utc>>, id: &str) -> bool {
        match &self.after {
            None => true,
            Some((after_at, after_id)) => (at, id) > (Some(*after_at), after_id.as_str()),
        }
    }
}

/// A field as Salesforce describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldInfo {
    pub name: String,
    /// The label shown in Setup (Object Manager > Fields & Relationships).
    #[serde(default)]
    pub label: String,
    pub field_type: String,
    pub updateable: bool,
    pub createable: bool,
    pub picklist_values: Vec<String>,
    pub restricted_picklist: bool,
    /// The External ID attribute: the field can key an upsert.
    #[serde(default)]
    pub external_id: bool,
    /// The Unique attribute: no two records hold the same value.
    #[serde(default)]
    pub unique: bool,
    /// Unique with "Treat "ABC" and "abc" as different values": values differing only in
    /// case are different values, for uniqueness and for upsert matching.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Decimal places a number field keeps (None for other types): Salesforce rounds a
    /// value with more when it saves it.
    #[serde(default)]
    pub scale: Option<u32>,
}

/// The PRM's settings a deal import needs (`GET /v1/settings`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PrmSettings {
    pub distributor_module_enabled: bool,
    pub partner_email_optional_for_distributor_owned: bool,
    pub deal_fields: Vec<PrmFieldSpec>,
}

/// A PRM field: required or not, and its picklist values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrmFieldSpec {
    pub name: String,
    pub required: bool,
    pub values: Option<Vec<String>>,
}

/// A PRM partner or distributor group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrmGroup {
    pub id: String,
    pub kind: String,
    pub modules: Vec<String>,
}

/// Daily API usage as Salesforce reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

/// Salesforce, as the engine needs it. Reads return every page; writes go out in
/// sObject Collections of up to 200 records.
#[async_trait]
pub trait Crm: Send + Sync {
    /// Records of `object` whose SystemModstamp is at or after `since` (all when None),
    /// deleted rows included, ordered by SystemModstamp then Id.
    async fn changed(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        scope: &Scope,
    ) -> Result<Vec<CrmRecord>, PortError>;

    /// One page of [`changed`](Self::changed): the first page of a read from `from` when
    /// `page` is None, else the page that token names. Adapters that cannot page return
    /// everything at once.
    async fn changed_page(
        &self,
        object: &str,
        fields: &[String],
        from: &ChangeFrom,
        page: Option<&str>,
        scope: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        let _ = page;
        let all = self.changed(object, fields, from.since, scope).await?;
        Ok(ChangePage {
            records: all
                .into_iter()
                .filter(|r| from.admits(r.modstamp, &r.id))
                .collect(),
            next: None,
            rejected: Vec::new(),
        })
    }

    /// One page of a read of every change since `since` (all when None), deleted rows
    /// included, in no set order: the first page when `page` is None, else the page the
    /// token names. Unlike [`changed_page`](Self::changed_page) it has no resume key, so
    /// an adapter may serve it from a Bulk API query job when that takes fewer calls.
    async fn sweep_page(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
        scope: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        let from = ChangeFrom { since, after: None };
        self.changed_page(object, fields, &from, page, scope).await
    }

    /// Records whose `field` is one of `values` (Ids, emails...), live rows only.
    async fn find(
        &self,
        object: &str,
        fields: &[String],
        field: &str,
        values: &[String],
    ) -> Result<Vec<CrmRecord>, PortError>;

    /// Records by Id, deleted ones included (`queryAll`), for a worker handed ids.
    async fn fetch(
        &self,
        object: &str,
        fields: &[String],
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, PortError>;

    async fn create(
        &self,
        object: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError>;

    async fn update(
        &self,
        object: &str,
        records: Vec<(String, Fields)>,
    ) -> Result<Vec<WriteOutcome>, PortError>;

    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError>;

    async fn describe(&self, object: &str) -> Result<Vec<FieldInfo>, PortError>;

    /// The Lightning address of a record, for log entries.
    fn record_url(&self, object: &str, id: &str) -> Option<String>;

    /// Last known daily API usage.
    fn usage(&self) -> Option<ApiUsage>;

    /// API calls made so far by this client.
    fn calls(&self) -> u64;

    /// What the adapter did on its own that the operator should find in the Integration
    /// Log: a Bulk API 2.0 ingest job that failed as a whole (its records then written
    /// through Collections). Each message is handed out once.
    fn take_notices(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The PRM API, as the engine needs it.
#[async_trait]
pub trait Prm: Send + Sync {
    /// Records changed at or after `since` (all when None), tombstones included, in
    /// `(updated_at, id)` order.
    async fn changed(
        &self,
        collection: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<PrmRecord>, PortError>;

    /// One page of [`changed`](Self::changed): the first page from `from` when `page` is
    /// None, else the page that cursor names. Adapters that cannot page return everything.
    async fn changed_page(
        &self,
        collection: &str,
        from: &ChangeFrom,
        page: Option<&str>,
    ) -> Result<ChangePage<PrmRecord>, PortError> {
        let _ = page;
        let all = self.changed(collection, from.since).await?;
        Ok(ChangePage {
            records: all
                .into_iter()
                .filter(|r| from.admits(Some(r.updated_at), &r.id))
                .collect(),
            next: None,
            rejected: Vec::new(),
        })
    }

    /// Records by id (tombstones included); unknown ids are left out.
    async fn fetch(&self, collection: &str, ids: &[String]) -> Result<Vec<PrmRecord>, PortError>;

    /// People with this email (case-insensitive).
    async fn people_by_email(&self, email: &str) -> Result<Vec<PrmRecord>, PortError>;

    /// People of an organization, tombstones included.
    async fn people_of_organization(
        &self,
        organization_id: &str,
    ) -> Result<Vec<PrmRecord>, PortError>;

    /// Creates a record; the same key again returns the first record.
    async fn create(
        &self,
        collection: &str,
        idempotency_key: &str,
        body: Fields,
    ) -> Result<Result<PrmRecord, RecordFailure>, PortError>;

    /// Partial update guarded by the record's version.
    async fn update(
        &self,
        collection: &str,
        id: &str,
        version: i64,
        patch: Fields,
    ) -> Result<Result<PrmRecord, RecordFailure>, PortError>;

    /// Creates records (idempotency key, body): one result per item, in order, each as
    /// [`create`](Self::create) gives it. A PRM that offers batch writes takes them in
    /// batches; otherwise one request each, `concurrency` at a time ([`one_by_one`]).
    async fn create_many(
        &self,
        collection: &str,
        items: Vec<(String, Fields)>,
        concurrency: usize,
    ) -> Vec<Result<Result<PrmRecord, RecordFailure>, PortError>> {
        one_by_one(items, concurrency, |(key, body)| async move {
            self.create(collection, &key, body).await
        })
        .await
    }

    /// Updates records (id, version, patch): one result per item, in order, each as
    /// [`update`](Self::update) gives it; in batches where the PRM offers them.
    async fn update_many(
        &self,
        collection: &str,
        items: Vec<(String, i64, Fields)>,
        concurrency: usize,
    ) -> Vec<Result<Result<PrmRecord, RecordFailure>, PortError>> {
        one_by_one(items, concurrency, |(id, version, patch)| async move {
            self.update(collection, &id, version, patch).await
        })
        .await
    }

    /// The settings deal import follows.
    async fn settings(&self) -> Result<PrmSettings, PortError>;

    /// Every partner and distributor group.
    async fn groups(&self) -> Result<Vec<PrmGroup>, PortError>;

    /// API calls made so far by this client.
    fn calls(&self) -> u64;
}

/// Writes one request per item, `concurrency` at a time, the results in the items' order.
pub async fn one_by_one<I, F, Fut>(items: Vec<I>, concurrency: usize, write: F) -> Vec<Fut::Output>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future,
{
    use futures::StreamExt;
    futures::stream::iter(items.into_iter().map(write))
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Where planned work goes: SQS in AWS, a list in tests.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends every chunk; fails if any could not be sent (the run then keeps its cursors).
    async fn send(&self, chunks: &[crate::chunk::Chunk]) -> Result<(), PortError>;
    /// Sends one chunk to be delivered no sooner than `delay` from now (at most 15
    /// minutes: SQS's limit on a message's delay).
    async fn send_later(
        &self,
        chunk: &crate::chunk::Chunk,
        delay: std::time::Duration,
    ) -> Result<(), PortError>;
}
