//! The engine's state: links, cursors, leases, runs, pause flags and the Integration Log.
//! SQLite (one machine) and DynamoDB (AWS) implement these traits.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_mapping::{Integration, Level, LogCode, ObjectKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why the state could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another writer changed the link first (optimistic lock); re-read and try again.
    #[error("the link of {object} {prm_id} was changed by another worker; it is retried")]
    Conflict { object: ObjectKind, prm_id: String },
    #[error("state store: {0}")]
    Backend(String),
    /// A stored row or item that cannot be read back: never replaced by a default.
    #[error(
        "the {what} stored under {key} cannot be read: {problem}; fix or delete that entry \
         in the state store, then run again"
    )]
    Corrupt {
        /// What the entry holds ("link", "cursor", "run record", ...).
        what: &'static str,
        /// The entry's key (never a record's values).
        key: String,
        problem: String,
    },
}

/// The life of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// The pair syncs.
    Linked,
    /// The Salesforce record was unflagged (or its Account was): sync stopped, link kept.
    Unselected,
    /// The Salesforce record was deleted: the PRM record is kept, sync stopped.
    Disconnected,
    /// The PRM record was deleted: Salesforce shows it in Record Status, sync stopped.
    DeletedInPrm,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Linked => "linked",
            LinkState::Unselected => "unselected",
            LinkState::Disconnected => "disconnected",
            LinkState::DeletedInPrm => "deleted_in_prm",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Linked,
            Self::Unselected,
            Self::Disconnected,
            Self::DeletedInPrm,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// One record pair (sync rule 1 in `docs/sync-rules.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub object: ObjectKind,
    pub prm_id: String,
    pub crm_id: String,
    pub state: LinkState,
    /// Canonical value of every mapped field as last written to both sides.
    pub snapshot: BTreeMap<String, Value>,
    /// SystemModstamp of the Salesforce record version last merged.
    pub crm_modstamp: Option<DateTime<Utc>>,
    /// Version of the PRM record last merged or written.
    pub prm_version: Option<i64>,
    /// Optimistic lock: 0 for a link not stored yet, then +1 on every save.
    pub version: i64,
    /// Re-read both records on the next run (a parent not linked yet, a lost race...).
    pub retry: bool,
    pub updated_at: DateTime<Utc>,
}

impl Link {
    pub fn new(object: ObjectKind, prm_id: &str, crm_id: &str) -> Self {
        Self {
            object,
            prm_id: prm_id.to_string(),
            crm_id: crm_id.to_string(),
            state: LinkState::Linked,
            snapshot: BTreeMap::new(),
            crm_modstamp: None,
            prm_version: None,
            version: 0,
            retry: false,
            updated_at: Utc::now(),
        }
    }
}

/// A link's ids and state without its snapshot: what translating a reference needs.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkIds {
    pub prm_id: String,
    pub crm_id: String,
    pub state: LinkState,
}

impl From<&Link> for LinkIds {
    fn from(link: &Link) -> Self {
        LinkIds {
            prm_id: link.prm_id.clone(),
            crm_id: link.crm_id.clone(),
            state: link.state,
        }
    }
}

#[async_trait]
pub trait Links: Send + Sync {
    /// Links of `object` with any of these Salesforce or PRM ids.
    async fn find_links(
        &self,
        object: ObjectKind,
        crm_ids: &[String],
        prm_ids: &[String],
    ) -> Result<Vec<Link>, StoreError>;

    /// [`find_links`](Self::find_links) without the snapshots (the references of a page of
    /// people name thousands of organizations). Stores that can read fewer columns
    /// override it.
    async fn find_link_ids(
        &self,
        object: ObjectKind,
        crm_ids: &[String],
        prm_ids: &[String],
    ) -> Result<Vec<LinkIds>, StoreError> {
        let links = self.find_links(object, crm_ids, prm_ids).await?;
        Ok(links.iter().map(LinkIds::from).collect())
    }

    /// Saves a link if its `version` is still the stored one (0 = must not exist yet) and
    /// returns it with the new version. Fails with [`StoreError::Conflict`] otherwise.
    async fn save_link(&self, link: &Link) -> Result<Link, StoreError>;

    /// [`save_link`](Self::save_link) for each link, in order; one link's conflict does not
    /// stop the others. Stores that can write several at once override it.
    async fn save_links(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        let mut out = Vec::with_capacity(links.len());
        for link in links {
            out.push(self.save_link(link).await);
        }
        out
    }

    /// Removes a link (unlink); true if there was one.
    async fn delete_link(&self, object: ObjectKind, prm_id: &str) -> Result<bool, StoreError>;

    /// Links marked for a retry.
    async fn links_to_retry(&self, object: ObjectKind) -> Result<Vec<Link>, StoreError>;

    /// Number of links per state.
    async fn count_links(&self, object: ObjectKind) -> Result<BTreeMap<String, u64>, StoreError>;

    /// The (PRM id, Salesforce Id) of every live (`linked`) link of `object` not saved since
    /// `untouched_since`: what a run that read everything checks for records gone without
    /// a trace (a link the run saved had its records in hand).
    async fn linked_ids(
        &self,
        object: ObjectKind,
        untouched_since: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Marks a pair whose children (an organization's people) must be read on the next
    /// pass of their integration: it was just linked or resumed, and its people may not
    /// have changed since long ago.
    async fn mark_children_pending(
        &self,
        object: ObjectKind,
        prm_id: &str,
        crm_id: &str,
    ) -> Result<(), StoreError>;

    /// Pairs marked by [`Links::mark_children_pending`], as (PRM id, Salesforce Id).
    async fn children_pending(
        &self,
        object: ObjectKind,
    ) -> Result<Vec<(String, String)>, StoreError>;

    async fn clear_children_pending(
        &self,
        object: ObjectKind,
        prm_ids: &[String],
    ) -> Result<(), StoreError>;
}

/// Where a planner run that ran out of time stands, so that the next invocation (its own
/// continuation, or the next scheduled one) carries on from there instead of starting over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCheckpoint {
    pub run_id: String,
    pub mode: crate::report::RunMode,
    pub started_at: DateTime<Utc>,
    /// Salesforce side: where its read resumes, the newest SystemModstamp queued so far,
    /// and whether its read is finished.
    pub crm: SideProgress,
    /// PRM side: the same, by `(updated_at, id)`.
    pub prm: SideProgress,
    /// References and chunks queued so far.
    pub records: u64,
    pub chunks: u64,
    /// Invocations the run has taken so far.
    pub invocations: u32,
    /// Both sides are read to the end and every chunk is queued: the run waits for its
    /// chunks, and finishes (cursors, run record) when the last one is done.
    #[serde(default)]
    pub planned: bool,
    /// Integrations to plan once this run has finished (an `all` run plans people after
    /// its organizations are linked, as a one-machine run does).
    #[serde(default)]
    pub then: Vec<Integration>,
    /// The operator let a mass change through the breaker: the runs in `then` are let
    /// through too.
    #[serde(default)]
    pub allow_mass_change: bool,
}

/// One side of a [`PlanCheckpoint`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SideProgress {
    pub from: crate::ports::ChangeFrom,
    /// The newest change queued so far: the side's cursor once the run finishes.
    pub newest: Option<DateTime<Utc>>,
    pub done: bool,
    /// The token of the next page of the read under way (a REST query locator, or a Bulk
    /// API query job's next result set), so that a continuation reads on from there.
    #[serde(default)]
    pub page: Option<String>,
}

/// Where change detection resumes, per integration and side.
#[async_trait]
pub trait Cursors: Send + Sync {
    async fn cursor(
        &self,
        integration: Integration,
        side: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    async fn set_cursor(
        &self,
        integration: Integration,
        side: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The unfinished planner run of an integration, if any.
    async fn checkpoint(
        &self,
        integration: Integration,
    ) -> Result<Option<PlanCheckpoint>, StoreError>;
    /// Stores (Some) or clears (None) the integration's planner checkpoint.
    async fn set_checkpoint(
        &self,
        integration: Integration,
        checkpoint: Option<&PlanCheckpoint>,
    ) -> Result<(), StoreError>;
    /// Removes the integration's checkpoint if it belongs to `run_id` and returns it; None
    /// when there is none or it belongs to another run. Of several callers at once exactly
    /// one gets it: the one that finishes the run.
    async fn take_checkpoint(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Option<PlanCheckpoint>, StoreError>;
}

/// A Salesforce update a pass planned and left to a later ingest job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldUpdate {
    pub crm_id: String,
    pub prm_id: String,
    /// The fields to write, in a list rather than a map (a map's node takes about ten
    /// times the room of two fields; tens of thousands of rows wait), stored as a JSON
    /// object.
    #[serde(with = "fields_as_object")]
    pub patch: Vec<(String, Value)>,
    /// The snapshot keys the write carries, with their values once it is written.
    pub snapshot: Vec<(String, Value)>,
    /// The side the pass created the record on (a created pair logs no update).
    pub created: Option<prmsync_mapping::config::Side>,
    /// The link was marked for a retry before the write was held (a reference not linked
    /// yet...): the mark stays after the write.
    pub retry: bool,
}

impl HeldUpdate {
    /// Takes a later update of the same pair into this one: its fields and snapshot values
    /// win. No I/O.
    pub fn absorb(&mut self, later: HeldUpdate) {
        overwrite(&mut self.patch, later.patch);
        overwrite(&mut self.snapshot, later.snapshot);
        self.created = self.created.or(later.created);
    }
}

/// Takes `later`'s values into `pairs`, replacing those of the same key.
fn overwrite(pairs: &mut Vec<(String, Value)>, later: Vec<(String, Value)>) {
    for (key, value) in later {
        match pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => pairs.push((key, value)),
        }
    }
}

/// (field, value) pairs (de)serialized as one JSON object.
mod fields_as_object {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::{Map, Value};

    pub fn serialize<S: Serializer>(pairs: &[(String, Value)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Value)>, D::Error> {
        Ok(Map::<String, Value>::deserialize(d)?.into_iter().collect())
    }
}

/// The Salesforce updates passes hold for one ingest job, one per pair (a later
/// pass's update of a pair is taken into the earlier one).
#[derive(Debug, Default)]
pub struct HeldUpdates {
    rows: Vec<HeldUpdate>,
    by_pair: std::collections::HashMap<(String, String), usize>,
    since: Option<std::time::Instant>,
}

impl HeldUpdates {
    pub fn add(&mut self, held: Vec<HeldUpdate>) {
        for h in held {
            self.since.get_or_insert_with(std::time::Instant::now);
            match self.by_pair.get(&(h.crm_id.clone(), h.prm_id.clone())) {
                Some(&i) => self.rows[i].absorb(h),
                None => {
                    self.by_pair
                        .insert((h.crm_id.clone(), h.prm_id.clone()), self.rows.len());
                    self.rows.push(h);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// How long the oldest update has been held.
    pub fn waited(&self) -> std::time::Duration {
        self.since.map(|t| t.elapsed()).unwrap_or_default()
    }

    pub fn take(&mut self) -> Vec<HeldUpdate> {
        let rows = std::mem::take(&mut self.rows);
        *self = HeldUpdates::default();
        rows
    }
}

/// One chunk of a planned run, tracked from before it is queued until a worker has synced
/// it, so that the run knows when it is done (its cursors move only then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub integration: Integration,
    pub run_id: String,
    /// The chunk's number within its run, from 0.
    pub number: u32,
    pub crm_ids: Vec<String>,
    pub prm_ids: Vec<String>,
    pub done: bool,
    /// What the worker did with it, once done.
    #[serde(default)]
    pub counts: crate::report::Counts,
    /// The write-backs of the links its pass created, held for the run's ingest job: the
    /// worker that closes the run writes those of every chunk together
    /// ([`crate::frame::close_run`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldUpdate>,
}

/// The chunks of planned runs (AWS: a planner queues them, workers finish them).
#[async_trait]
pub trait RunChunks: Send + Sync {
    /// Records chunks a planner is about to queue (before they are sent). Adding a chunk
    /// that exists already (same integration, run and number) replaces it.
    async fn add_chunks(&self, chunks: &[ChunkRecord]) -> Result<(), StoreError>;
    /// Marks a chunk done with its counts and its held write-backs. Only the first call
    /// for a chunk counts: it returns `Some(n)`, `n` being the number of the run's chunks
    /// done so far (this one included); a later call for the same chunk (a redelivered
    /// message), or a call for a chunk never added, returns None and changes nothing.
    async fn finish_chunk(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
        counts: &crate::report::Counts,
        held: &[HeldUpdate],
    ) -> Result<Option<u64>, StoreError>;
    /// Whether a chunk is done: Some(true) once [`finish_chunk`](Self::finish_chunk)
    /// counted it, Some(false) before, None for a chunk never added (or whose run closed).
    async fn chunk_done(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
    ) -> Result<Option<bool>, StoreError>;
    /// Every chunk of a run, by number.
    async fn run_chunks(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Vec<ChunkRecord>, StoreError>;
    /// Forgets a finished run's chunks.
    async fn clear_chunks(&self, integration: Integration, run_id: &str) -> Result<(), StoreError>;
}

/// A record whose last sync failed for a passing reason, kept until it syncs (the retry
/// set, sync rule 10): later runs pick it up whatever their cursors say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryEntry {
    pub object: ObjectKind,
    /// `crm` (a Salesforce Id) or `prm` (a PRM id).
    pub side: String,
    pub id: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not tried again before this time.
    pub next_at: DateTime<Utc>,
    /// Failed too often: tried again only when the record changes or on demand.
    pub parked: bool,
    /// The last failure, in plain words (no record values).
    pub error: String,
    pub updated_at: DateTime<Utc>,
}

#[async_trait]
pub trait RetrySet: Send + Sync {
    /// The entries of these ids of one side.
    async fn retry_entries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<Vec<RetryEntry>, StoreError>;
    /// Every entry of an object, parked ones included.
    async fn all_retries(&self, object: ObjectKind) -> Result<Vec<RetryEntry>, StoreError>;
    /// Inserts or replaces entries (by object, side and id).
    async fn hold_retries(&self, entries: &[RetryEntry]) -> Result<(), StoreError>;
    /// Removes the entries of these ids; unknown ids are ignored.
    async fn clear_retries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<(), StoreError>;
}

/// One run per integration at a time.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease if it is free or expired; false if another holder has it.
    async fn acquire_lease(
        &self,
        integration: Integration,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    async fn release_lease(&self, integration: Integration, holder: &str)
        -> Result<(), StoreError>;
}

/// Pause flags of the Sync Manager, and the hold every integration keeps after Salesforce
/// refused a call for the org's API limit.
#[async_trait]
pub trait Pauses: Send + Sync {
    async fn is_paused(&self, integration: Integration) -> Result<bool, StoreError>;
    async fn set_paused(&self, integration: Integration, paused: bool) -> Result<(), StoreError>;
    /// Workers write nothing to Salesforce before `until` (the org's API limit was hit).
    /// A later hold replaces an earlier one.
    async fn hold_api(&self, until: DateTime<Utc>) -> Result<(), StoreError>;
    /// The hold set by [`hold_api`](Self::hold_api), if any (past ones included).
    async fn api_hold(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// The PRM change notifications taken, by `event_id`: the PRM retries a notification that
/// got no 2xx, so one event may arrive more than once, and a repeat within its window is
/// answered and dropped.
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// Takes `event_id` until `until`, unless it is already taken and that window has not
    /// passed at `now`: true when this is the first delivery (an atomic check-and-set, so
    /// two deliveries at once see one `true`).
    async fn take_delivery(
        &self,
        event_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Lets `event_id` be taken again: its record could not be queued, so the PRM's retry
    /// must not be dropped.
    async fn release_delivery(&self, event_id: &str) -> Result<(), StoreError>;
}

/// A run of an integration as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub integration: Integration,
    pub mode: crate::report::RunMode,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: crate::report::RunStatus,
    /// What the run has done: its counts so far while it runs (saved as it advances),
    /// then its final counts.
    pub counts: crate::report::Counts,
    /// Salesforce's daily API usage as last seen when the record was saved (the
    /// `Sforce-Limit-Info` header of the run's last call): None when no call reported it.
    /// Records saved before it was kept read back without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_usage: Option<crate::ports::ApiUsage>,
}

/// The most run records [`Runs::runs_since`] returns for one integration.
pub const RUNS_LISTED: usize = 500;

#[async_trait]
pub trait Runs: Send + Sync {
    /// Saves a run record, replacing the one of the same run id and integration.
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError>;
    async fn last_run(&self, integration: Integration) -> Result<Option<RunRecord>, StoreError>;
    /// The runs of `integration` started at or after `since`, newest first, at most
    /// `limit` of them (never more than [`RUNS_LISTED`]).
    async fn runs_since(
        &self,
        integration: Integration,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError>;
}

/// One Integration Log entry (`docs/integration-log.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub id: String,
    pub time: DateTime<Utc>,
    pub run_id: String,
    pub integration: Integration,
    pub level: Level,
    pub code: LogCode,
    pub object: Option<ObjectKind>,
    pub crm_id: Option<String>,
    pub prm_id: Option<String>,
    /// Address of the Salesforce record.
    pub link: Option<String>,
    pub message: String,
    pub fix: String,
    /// The remote error (code, fields, message scrubbed) or the values involved, masked
    /// unless `[log] values` shows them in full (`prmsync_mapping::mask`).
    pub details: Value,
    pub acknowledged: bool,
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub integration: Option<Integration>,
    pub min_level: Option<Level>,
    pub code: Option<LogCode>,
    pub run_id: Option<String>,
    pub record_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub unacknowledged: bool,
    pub limit: Option<usize>,
}

#[async_trait]
pub trait IntegrationLog: Send + Sync {
    async fn append(&self, entries: &[LogEntry]) -> Result<(), StoreError>;
    /// Newest first.
    async fn entries(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StoreError>;
    /// Acknowledges entries by id, or every error when `ids` is None; returns how many.
    async fn acknowledge(&self, ids: Option<&[String]>) -> Result<u64, StoreError>;
    /// Deletes entries older than `before`; returns how many.
    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Records whose last attempt was rejected for their data (or matched ambiguously), by
/// the version that was rejected: they are not tried again until they change (sync rule 10).
#[async_trait]
pub trait Rejections: Send + Sync {
    /// The rejected version of each of these ids that has one. `side` is `crm`, `prm` or
    /// `link` (a linked pair, by PRM id).
    async fn rejected_versions(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, String>, StoreError>;
    async fn remember_rejection(
        &self,
        object: ObjectKind,
        side: &str,
        id: &str,
        version: &str,
    ) -> Result<(), StoreError>;
}

/// Everything the engine keeps.
pub trait Store:
    Links
    + Cursors
    + Leases
    + Pauses
    + Runs
    + IntegrationLog
    + Rejections
    + RunChunks
    + RetrySet
    + Deliveries
{
}
impl<
        T: Links
            + Cursors
            + Leases
            + Pauses
            + Runs
            + IntegrationLog
            + Rejections
            + RunChunks
            + RetrySet
            + Deliveries,
    > Store for T
{
}

/// Appends entries to the Integration Log and emits each as a structured log event
/// (`run_id`, `integration`, `level`, `code`, `crm_id`, `prm_id`, `message`, and `drift`
/// on a reconcile's `reconcile_drift` and `run_finished` entries), which the Lambda
/// functions print as JSON lines for CloudWatch Logs Insights.
pub async fn record_log(log: &dyn IntegrationLog, entries: &[LogEntry]) -> Result<(), StoreError> {
    for e in entries {
        let (crm_id, prm_id) = (
            e.crm_id.as_deref().unwrap_or(""),
            e.prm_id.as_deref().unwrap_or(""),
        );
        let drift = e.details.get("drift").and_then(serde_json::Value::as_u64);
        match e.level {
            prmsync_mapping::Level::Error => tracing::error!(
                run_id = e.run_id.as_str(),
                integration = e.integration.as_str(),
                code = e.code.as_str(),
                crm_id,
                prm_id,
                drift,
                "{}",
                e.message
            ),
            prmsync_mapping::Level::Warning => tracing::warn!(
                run_id = e.run_id.as_str(),
                integration = e.integration.as_str(),
                code = e.code.as_str(),
                crm_id,
                prm_id,
                drift,
                "{}",
                e.message
            ),
            prmsync_mapping::Level::Info => tracing::info!(
                run_id = e.run_id.as_str(),
                integration = e.integration.as_str(),
                code = e.code.as_str(),
                crm_id,
                prm_id,
                drift,
                "{}",
                e.message
            ),
        }
    }
    log.append(entries).await
}
