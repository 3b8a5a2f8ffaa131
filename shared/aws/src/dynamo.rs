//! DynamoDB state store: the engine's [`Store`](prmsync_engine::Store) in the two tables of
//! `docs/dynamodb.md` (the state table and the Integration Log table).
//!
//! - Links are written with a condition on their optimistic-lock `version`
//!   (`attribute_not_exists(pk)` for a new link), in one transaction with the claim item of
//!   their Salesforce Id, so a Salesforce record belongs to one link; moving a link to another
//!   Salesforce Id (a merge) releases the old claim in the same transaction.
//! - Links are found by PRM id with `BatchGetItem` and by Salesforce Id on the `by_crm_key`
//!   index; links to retry on the sparse `by_retry_key` index.
//! - Log entries live in one partition per UTC day and expire through the table's TTL
//!   (`expires_at`, 90 days); open warnings and errors are on the sparse `by_open` index.
//! - The chunks of a planned run are one partition per run, beside a counter of the chunks
//!   done that moves in the same transaction as a chunk's `done` flag, so a redelivered
//!   chunk is counted once and the worker that finishes the last chunk knows it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, PutRequest,
    ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
    TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use prmsync_engine::report::Counts;
use prmsync_engine::store::{
    ChunkRecord, Cursors, IntegrationLog, Leases, Link, LinkState, Links, LogEntry, LogFilter,
    Pauses, PlanCheckpoint, Rejections, RetryEntry, RetrySet, RunChunks, RunRecord, Runs,
    StoreError,
};
use prmsync_mapping::{Integration, Level, LogCode, ObjectKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Environment variable naming the state table.
pub const STATE_TABLE_ENV: &str = "PRMSYNC_STATE_TABLE";
/// Environment variable naming the Integration Log table.
pub const LOG_TABLE_ENV: &str = "PRMSYNC_LOG_TABLE";
/// How long log entries are kept (the log table's TTL).
pub const LOG_RETENTION_DAYS: i64 = 90;

/// Index of links by `crm_key` = `<object>#<crm_id>`.
pub const BY_CRM_KEY: &str = "by_crm_key";
/// Sparse index of links to retry by `retry_key` = `<object>`.
pub const BY_RETRY_KEY: &str = "by_retry_key";
/// Sparse index of open (unacknowledged) warnings and errors.
pub const BY_OPEN: &str = "by_open";

/// Largest number of keys in one `BatchGetItem`.
const BATCH_GET: usize = 100;
/// Largest number of requests in one `BatchWriteItem`.
const BATCH_WRITE: usize = 25;
/// Queries run at once (Salesforce Id lookups, log days).
const PARALLEL: usize = 16;
/// Attempts at the unprocessed part of a batch before giving up.
const BATCH_ATTEMPTS: u32 = 8;
/// Attempts at deleting a link that keeps changing under us.
const DELETE_ATTEMPTS: u32 = 5;
/// Attempts at a chunk's transaction that loses to concurrent ones (workers finishing
/// chunks of one run at once all move its counter).
const CHUNK_ATTEMPTS: u32 = 10;
/// The farthest back a log listing reads, whatever `since` says.
const LOG_MAX_DAYS_BACK: i64 = 366;

type Item = HashMap<String, AttributeValue>;

/// Why the store could not be configured from the environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set: set it to the name of the DynamoDB table (an output of the deployed stack)")]
    Missing(&'static str),
}

/// The engine's state in DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    state_table: String,
    log_table: String,
}

#[derive(Clone, Copy)]
enum Table {
    State,
    Log,
}

// ---------------------------------------------------------------------------------------
// Items

#[derive(Debug, Serialize, Deserialize)]
struct LinkItem {
    pk: String,
    sk: String,
    object: ObjectKind,
    prm_id: String,
    crm_id: String,
    crm_key: String,
    state: LinkState,
    #[serde(default)]
    snapshot: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crm_modstamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prm_version: Option<i64>,
    version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_key: Option<String>,
    updated_at: String,
}

impl LinkItem {
    fn new(link: &Link, version: i64) -> Self {
        Self {
            pk: link_pk(link.object, &link.prm_id),
            sk: "LINK".into(),
            object: link.object,
            prm_id: link.prm_id.clone(),
            crm_id: link.crm_id.clone(),
            crm_key: crm_key(link.object, &link.crm_id),
            state: link.state,
            snapshot: link.snapshot.clone(),
            crm_modstamp: link.crm_modstamp.map(ts),
            prm_version: link.prm_version,
            version,
            retry_key: link.retry.then(|| link.object.as_str().to_string()),
            updated_at: ts(link.updated_at),
        }
    }

    fn into_link(self) -> Result<Link, StoreError> {
        Ok(Link {
            object: self.object,
            crm_modstamp: self.crm_modstamp.as_deref().map(parse_ts).transpose()?,
            updated_at: parse_ts(&self.updated_at)?,
            prm_id: self.prm_id,
            crm_id: self.crm_id,
            state: self.state,
            snapshot: self.snapshot,
            prm_version: self.prm_version,
            version: self.version,
            retry: self.retry_key.is_some(),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ClaimItem {
    pk: String,
    sk: String,
    prm_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CursorItem {
    pk: String,
    sk: String,
    at: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointItem {
    pk: String,
    sk: String,
    /// The [`PlanCheckpoint`] as JSON.
    checkpoint: String,
    /// The checkpoint's run id, for the condition of `take_checkpoint` (absent on items
    /// written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChunkItem {
    pk: String,
    sk: String,
    integration: Integration,
    run_id: String,
    number: u32,
    crm_ids: Vec<String>,
    prm_ids: Vec<String>,
    done: bool,
    counts: Counts,
}

impl ChunkItem {
    fn new(c: &ChunkRecord) -> Self {
        Self {
            pk: chunk_pk(c.integration, &c.run_id),
            sk: chunk_sk(c.number),
            integration: c.integration,
            run_id: c.run_id.clone(),
            number: c.number,
            crm_ids: c.crm_ids.clone(),
            prm_ids: c.prm_ids.clone(),
            done: c.done,
            counts: c.counts.clone(),
        }
    }

    fn into_chunk(self) -> ChunkRecord {
        ChunkRecord {
            integration: self.integration,
            run_id: self.run_id,
            number: self.number,
            crm_ids: self.crm_ids,
            prm_ids: self.prm_ids,
            done: self.done,
            counts: self.counts,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ChunkCounterItem {
    pk: String,
    sk: String,
    done: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct RetryItem {
    pk: String,
    sk: String,
    object: ObjectKind,
    side: String,
    id: String,
    attempts: u32,
    next_at: String,
    parked: bool,
    error: String,
    updated_at: String,
}

impl RetryItem {
    fn new(e: &RetryEntry) -> Self {
        Self {
            pk: retry_pk(e.object),
            sk: retry_sk(&e.side, &e.id),
            object: e.object,
            side: e.side.clone(),
            id: e.id.clone(),
            attempts: e.attempts,
            next_at: ts(e.next_at),
            parked: e.parked,
            error: e.error.clone(),
            updated_at: ts(e.updated_at),
        }
    }

    fn into_entry(self) -> Result<RetryEntry, StoreError> {
        Ok(RetryEntry {
            next_at: parse_ts(&self.next_at)?,
            updated_at: parse_ts(&self.updated_at)?,
            object: self.object,
            side: self.side,
            id: self.id,
            attempts: self.attempts,
            parked: self.parked,
            error: self.error,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ApiHoldItem {
    pk: String,
    sk: String,
    until: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct LeaseItem {
    pk: String,
    sk: String,
    holder: String,
    until: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PauseItem {
    pk: String,
    sk: String,
    paused: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct RunItem {
    pk: String,
    sk: String,
    record: RunRecord,
}

#[derive(Debug, Serialize, Deserialize)]
struct RejectionItem {
    pk: String,
    sk: String,
    version: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PendingItem {
    pk: String,
    sk: String,
    crm_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct LogItem {
    pk: String,
    sk: String,
    id: String,
    time: String,
    run_id: String,
    integration: Integration,
    level: Level,
    code: LogCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    object: Option<ObjectKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crm_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prm_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    message: String,
    fix: String,
    #[serde(default)]
    details: Value,
    acknowledged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open: Option<String>,
    expires_at: i64,
}

impl LogItem {
    fn new(e: &LogEntry) -> Self {
        let open = (!e.acknowledged && e.level >= Level::Warning).then(|| "OPEN".to_string());
        Self {
            pk: log_pk(e.time.date_naive()),
            sk: log_sk(e.time, &e.id),
            id: e.id.clone(),
            time: ts(e.time),
            run_id: e.run_id.clone(),
            integration: e.integration,
            level: e.level,
            code: e.code,
            object: e.object,
            crm_id: e.crm_id.clone(),
            prm_id: e.prm_id.clone(),
            link: e.link.clone(),
            message: e.message.clone(),
            fix: e.fix.clone(),
            details: e.details.clone(),
            acknowledged: e.acknowledged,
            open,
            expires_at: (e.time + Duration::days(LOG_RETENTION_DAYS)).timestamp(),
        }
    }

    fn into_entry(self) -> Result<LogEntry, StoreError> {
        Ok(LogEntry {
            time: parse_ts(&self.time)?,
            id: self.id,
            run_id: self.run_id,
            integration: self.integration,
            level: self.level,
            code: self.code,
            object: self.object,
            crm_id: self.crm_id,
            prm_id: self.prm_id,
            link: self.link,
            message: self.message,
            fix: self.fix,
            details: self.details,
            acknowledged: self.acknowledged,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Keys and small helpers

/// A time as stored: RFC 3339 UTC with microseconds, fixed width, so strings sort as times.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("stored time {s:?} is not RFC 3339: {e}")))
}

fn link_pk(object: ObjectKind, prm_id: &str) -> String {
    format!("LINK#{}#{prm_id}", object.as_str())
}

fn crm_key(object: ObjectKind, crm_id: &str) -> String {
    format!("{}#{crm_id}", object.as_str())
}

fn claim_pk(object: ObjectKind, crm_id: &str) -> String {
    format!("CRMID#{}#{crm_id}", object.as_str())
}

/// The partition of a run's chunks.
fn chunk_pk(integration: Integration, run_id: &str) -> String {
    format!("CHUNK#{}#{run_id}", integration.as_str())
}

/// A chunk's number, zero-padded to the width of the largest `u32` so that the partition
/// sorts by number.
fn chunk_sk(number: u32) -> String {
    format!("{number:010}")
}

/// The counter of a run's chunks done.
fn chunk_counter_key(integration: Integration, run_id: &str) -> Item {
    key(format!("CHUNKS#{}#{run_id}", integration.as_str()), "DONE")
}

fn retry_pk(object: ObjectKind) -> String {
    format!("RETRY#{}", object.as_str())
}

fn retry_sk(side: &str, id: &str) -> String {
    format!("{side}#{id}")
}

fn api_hold_key() -> Item {
    key("APIHOLD", "APIHOLD")
}

fn log_pk(day: NaiveDate) -> String {
    format!("LOG#{}", day.format("%Y-%m-%d"))
}

fn log_sk(time: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", ts(time))
}

fn sv(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn nv(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), sv(pk)), ("sk".to_string(), sv(sk))])
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
        .map_err(|e| StoreError::Backend(format!("cannot encode a DynamoDB item: {e}")))
}

fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|e| {
        StoreError::Backend(format!(
            "a DynamoDB item does not have the expected layout ({e}); check that the tables follow docs/dynamodb.md"
        ))
    })
}

/// An item of the state table that cannot be decoded: names it (by its key) and says what
/// to do.
fn decode<T: for<'de> Deserialize<'de>>(
    table: &str,
    item: Item,
    what: &str,
    fix: &str,
) -> Result<T, StoreError> {
    decode_into(table, item, what, fix, Ok)
}

/// [`decode`], then `convert`; a failure of either names the item and says what to do.
fn decode_into<T: for<'de> Deserialize<'de>, U>(
    table: &str,
    item: Item,
    what: &str,
    fix: &str,
    convert: impl FnOnce(T) -> Result<U, StoreError>,
) -> Result<U, StoreError> {
    let key_of = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => "?".to_string(),
    };
    let (pk, sk) = (key_of("pk"), key_of("sk"));
    let unreadable = |why: String| {
        StoreError::Backend(format!(
            "the {what} item (pk {pk}, sk {sk}) of table {table} cannot be read ({why}); {fix}"
        ))
    };
    let value: T =
        serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|e| unreadable(e.to_string()))?;
    convert(value).map_err(|e| {
        unreadable(match e {
            StoreError::Backend(why) => why,
            other => other.to_string(),
        })
    })
}

fn build_err(e: BuildError) -> StoreError {
    StoreError::Backend(format!("cannot build a DynamoDB request: {e}"))
}

fn dedupe(ids: &[String]) -> Vec<String> {
    ids.iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect()
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// A cancelled transaction that lost on a condition or to a concurrent transaction.
fn is_transaction_conflict<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e.as_service_error() {
        Some(E::TransactionCanceledException(tc)) => {
            let reasons = tc.cancellation_reasons();
            reasons.is_empty()
                || reasons.iter().any(|r| {
                    matches!(
                        r.code(),
                        Some("ConditionalCheckFailed") | Some("TransactionConflict")
                    )
                }) && reasons.iter().all(|r| {
                    matches!(
                        r.code(),
                        None | Some("None")
                            | Some("ConditionalCheckFailed")
                            | Some("TransactionConflict")
                    )
                })
        }
        _ => false,
    }
}

/// The reasons of a cancelled transaction, one per item in order; None for another error.
fn cancellation_reasons<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Vec<String>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    match e.as_service_error() {
        Some(E::TransactionCanceledException(tc)) => Some(
            tc.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// Whether a cancelled transaction lost to a concurrent one or to throttling (worth
/// another attempt), as opposed to a failed condition.
fn is_transient_cancellation(reasons: &[String]) -> bool {
    reasons.iter().any(|r| {
        matches!(
            r.as_str(),
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
        )
    }) && !reasons.iter().any(|r| r == "ConditionalCheckFailed")
}

async fn backoff(attempt: u32) {
    let ms = 25u64 << attempt.min(6);
    tokio::time::sleep(StdDuration::from_millis(ms)).await;
}

// ---------------------------------------------------------------------------------------
// The store

impl DynamoStore {
    pub fn new(
        client: Client,
        state_table: impl Into<String>,
        log_table: impl Into<String>,
    ) -> Self {
        Self {
            client,
            state_table: state_table.into(),
            log_table: log_table.into(),
        }
    }

    /// The tables named by `PRMSYNC_STATE_TABLE` and `PRMSYNC_LOG_TABLE`, with the SDK's
    /// default configuration (region, credentials, `AWS_ENDPOINT_URL`).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let state_table = var(STATE_TABLE_ENV)?;
        let log_table = var(LOG_TABLE_ENV)?;
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Ok(Self::new(Client::new(&config), state_table, log_table))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn state_table(&self) -> &str {
        &self.state_table
    }

    pub fn log_table(&self) -> &str {
        &self.log_table
    }

    fn table(&self, t: Table) -> &str {
        match t {
            Table::State => &self.state_table,
            Table::Log => &self.log_table,
        }
    }

    /// An AWS error as a [`StoreError::Backend`] naming the table and what to do.
    fn aws<E, R>(&self, t: Table, op: &str, e: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        aws_error(self.table(t), t, op, e)
    }

    /// Creates both tables (keys, indexes, on-demand billing, TTL on the log table) unless
    /// they exist, and waits until they are active. For tests and local use: deployments
    /// create them with the stack.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_err)
        };
        let key_el = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build_err)
        };
        let all = Projection::builder()
            .projection_type(ProjectionType::All)
            .build();
        let gsi = |name: &str, hash: &str, range: Option<&str>| -> Result<_, StoreError> {
            let mut b = GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key_el(hash, KeyType::Hash)?)
                .projection(all.clone());
            if let Some(range) = range {
                b = b.key_schema(key_el(range, KeyType::Range)?);
            }
            b.build().map_err(build_err)
        };

        let state = self
            .client
            .create_table()
            .table_name(&self.state_table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("crm_key")?)
            .attribute_definitions(attr("retry_key")?)
            .key_schema(key_el("pk", KeyType::Hash)?)
            .key_schema(key_el("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi(BY_CRM_KEY, "crm_key", None)?)
            .global_secondary_indexes(gsi(BY_RETRY_KEY, "retry_key", None)?)
            .send()
            .await;
        self.created(Table::State, state).await?;

        let log = self
            .client
            .create_table()
            .table_name(&self.log_table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("open")?)
            .key_schema(key_el("pk", KeyType::Hash)?)
            .key_schema(key_el("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi(BY_OPEN, "open", Some("sk"))?)
            .send()
            .await;
        self.created(Table::Log, log).await?;

        self.wait_active(Table::State).await?;
        self.wait_active(Table::Log).await?;

        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.log_table)
            .send()
            .await
            .map_err(|e| self.aws(Table::Log, "DescribeTimeToLive", e))?;
        let on = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status())
            .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        if !on {
            let spec = TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .map_err(build_err)?;
            self.client
                .update_time_to_live()
                .table_name(&self.log_table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| self.aws(Table::Log, "UpdateTimeToLive", e))?;
        }
        Ok(())
    }

    async fn created<T, E, R>(
        &self,
        t: Table,
        result: Result<T, SdkError<E, R>>,
    ) -> Result<(), StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(self.aws(t, "CreateTable", e)),
        }
    }

    async fn wait_active(&self, t: Table) -> Result<(), StoreError> {
        for attempt in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(self.table(t))
                .send()
                .await
                .map_err(|e| self.aws(t, "DescribeTable", e))?;
            let ready = out.table().is_some_and(|d| {
                d.table_status() == Some(&TableStatus::Active)
                    && d.global_secondary_indexes().iter().all(|g| {
                        g.index_status()
                            .is_none_or(|s| s == &aws_sdk_dynamodb::types::IndexStatus::Active)
                    })
            });
            if ready {
                return Ok(());
            }
            backoff(attempt.min(4)).await;
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
        Err(StoreError::Backend(format!(
            "table {} did not become active in time; check it in the DynamoDB console",
            self.table(t)
        )))
    }

    // --- generic operations ------------------------------------------------------------

    async fn get(&self, t: Table, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table(t))
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.aws(t, "GetItem", e))?;
        Ok(out.item)
    }

    async fn put(&self, t: Table, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.table(t))
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.aws(t, "PutItem", e))?;
        Ok(())
    }

    /// Every item of these keys (deduplicated), 100 per request, unprocessed keys retried.
    async fn batch_get(&self, t: Table, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        self.batch_get_projected(t, keys, None).await
    }

    /// [`Self::batch_get`] reading only the attributes of `projection`.
    async fn batch_get_projected(
        &self,
        t: Table,
        keys: Vec<Item>,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let table = self.table(t).to_string();
        let mut out = Vec::new();
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .set_projection_expression(projection.map(String::from))
                .consistent_read(true)
                .build()
                .map_err(build_err)?;
            let mut attempt = 0;
            loop {
                let resp = self
                    .client
                    .batch_get_item()
                    .request_items(&table, pending)
                    .send()
                    .await
                    .map_err(|e| self.aws(t, "BatchGetItem", e))?;
                if let Some(mut items) = resp.responses {
                    out.extend(items.remove(&table).unwrap_or_default());
                }
                match resp
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&table))
                    .filter(|k| !k.keys().is_empty())
                {
                    None => break,
                    Some(rest) => {
                        attempt += 1;
                        if attempt >= BATCH_ATTEMPTS {
                            return Err(StoreError::Backend(format!(
                                "DynamoDB kept throttling BatchGetItem on table {table}; it is retried on the next run"
                            )));
                        }
                        backoff(attempt).await;
                        pending = rest;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Writes these requests 25 at a time, unprocessed items retried.
    async fn batch_write(&self, t: Table, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let table = self.table(t).to_string();
        for chunk in requests.chunks(BATCH_WRITE) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            loop {
                let resp = self
                    .client
                    .batch_write_item()
                    .request_items(&table, pending)
                    .send()
                    .await
                    .map_err(|e| self.aws(t, "BatchWriteItem", e))?;
                match resp
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&table))
                    .filter(|r| !r.is_empty())
                {
                    None => break,
                    Some(rest) => {
                        attempt += 1;
                        if attempt >= BATCH_ATTEMPTS {
                            return Err(StoreError::Backend(format!(
                                "DynamoDB kept throttling BatchWriteItem on table {table}; it is retried on the next run"
                            )));
                        }
                        backoff(attempt).await;
                        pending = rest;
                    }
                }
            }
        }
        Ok(())
    }

    fn delete_request(key: Item) -> Result<WriteRequest, StoreError> {
        Ok(WriteRequest::builder()
            .delete_request(
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(build_err)?,
            )
            .build())
    }

    /// Every item of one partition of the state table, in sort key order.
    async fn query_partition(&self, pk: &str) -> Result<Vec<Item>, StoreError> {
        self.client
            .query()
            .table_name(&self.state_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", sv(pk))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.aws(Table::State, "Query", e))
    }

    /// Every item of one partition of an index.
    async fn query_index(
        &self,
        t: Table,
        index: &str,
        attr: &str,
        value: &str,
    ) -> Result<Vec<Item>, StoreError> {
        query_index(&self.client, self.table(t), t, index, attr, value).await
    }

    // --- links -------------------------------------------------------------------------

    async fn link_item(
        &self,
        object: ObjectKind,
        prm_id: &str,
    ) -> Result<Option<LinkItem>, StoreError> {
        self.get(Table::State, key(link_pk(object, prm_id), "LINK"))
            .await?
            .map(from_item)
            .transpose()
    }

    fn claim_put(
        &self,
        object: ObjectKind,
        crm_id: &str,
        prm_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let claim = ClaimItem {
            pk: claim_pk(object, crm_id),
            sk: "CLAIM".into(),
            prm_id: prm_id.to_string(),
        };
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.state_table)
                    .set_item(Some(to_item(&claim)?))
                    .condition_expression("attribute_not_exists(pk) OR #prm_id = :prm_id")
                    .expression_attribute_names("#prm_id", "prm_id")
                    .expression_attribute_values(":prm_id", sv(prm_id))
                    .build()
                    .map_err(build_err)?,
            )
            .build())
    }

    fn claim_delete(
        &self,
        object: ObjectKind,
        crm_id: &str,
        prm_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.state_table)
                    .set_key(Some(key(claim_pk(object, crm_id), "CLAIM")))
                    // Only our own claim: never free a Salesforce Id another link holds.
                    .condition_expression("attribute_not_exists(pk) OR #prm_id = :prm_id")
                    .expression_attribute_names("#prm_id", "prm_id")
                    .expression_attribute_values(":prm_id", sv(prm_id))
                    .build()
                    .map_err(build_err)?,
            )
            .build())
    }

    async fn transact(
        &self,
        object: ObjectKind,
        prm_id: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_transaction_conflict(&e) => Err(StoreError::Conflict {
                object,
                prm_id: prm_id.to_string(),
            }),
            Err(e) => Err(self.aws(Table::State, "TransactWriteItems", e)),
        }
    }
}

fn aws_error<E, R>(table: &str, t: Table, op: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug,
{
    let env = match t {
        Table::State => STATE_TABLE_ENV,
        Table::Log => LOG_TABLE_ENV,
    };
    let code = e.code().unwrap_or_default().to_string();
    let message = e.message().unwrap_or_default().to_string();
    let text = match code.as_str() {
        "ResourceNotFoundException" => format!(
            "table {table} (or one of its indexes) does not exist: deploy the stack or set {env} to the name of the deployed table ({op})"
        ),
        "AccessDeniedException" | "UnrecognizedClientException" | "InvalidSignatureException"
        | "ExpiredTokenException" | "MissingAuthenticationTokenException" => format!(
            "DynamoDB refused {op} on table {table} ({code}): check the AWS credentials and that the function's role may use the table and its indexes"
        ),
        "ProvisionedThroughputExceededException" | "ThrottlingException"
        | "RequestLimitExceeded" => format!(
            "DynamoDB throttled {op} on table {table}; the work is retried on the next run"
        ),
        "ValidationException" => format!(
            "DynamoDB rejected {op} on table {table}: {message}; check that the table has the keys and indexes of docs/dynamodb.md"
        ),
        "" => match &e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
                "cannot reach DynamoDB for {op} on table {table}: {}; check the network, AWS_REGION and AWS_ENDPOINT_URL",
                DisplayErrorContext(&e)
            ),
            // A body that is not DynamoDB's (a proxy's or an endpoint's HTML error page):
            // say so instead of dumping the raw response into the Integration Log.
            SdkError::ResponseError(_) | SdkError::ServiceError(_) => format!(
                "DynamoDB {op} on table {table} got a response that is not DynamoDB's; it is retried. If it keeps happening, check AWS_ENDPOINT_URL and the network between the function and DynamoDB"
            ),
            _ => format!("DynamoDB {op} on table {table} failed: {}", DisplayErrorContext(&e)),
        },
        _ => format!("DynamoDB {op} on table {table} failed: {code}: {message}"),
    };
    StoreError::Backend(text)
}

async fn query_index(
    client: &Client,
    table: &str,
    t: Table,
    index: &str,
    attr: &str,
    value: &str,
) -> Result<Vec<Item>, StoreError> {
    client
        .query()
        .table_name(table)
        .index_name(index)
        .key_condition_expression("#k = :v")
        .expression_attribute_names("#k", attr)
        .expression_attribute_values(":v", sv(value))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_error(table, t, "Query", e))
}

/// Runs `f` on each input, up to [`PARALLEL`] at once, results in input order.
async fn parallel<I, T, F, Fut>(inputs: Vec<I>, f: F) -> Result<Vec<T>, StoreError>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let mut out = Vec::with_capacity(inputs.len());
    let mut inputs = inputs.into_iter().peekable();
    while inputs.peek().is_some() {
        let handles: Vec<_> = inputs
            .by_ref()
            .take(PARALLEL)
            .map(|i| tokio::spawn(f(i)))
            .collect();
        for h in handles {
            let r = h
                .await
                .map_err(|e| StoreError::Backend(format!("a DynamoDB request task failed: {e}")))?;
            out.push(r?);
        }
    }
    Ok(out)
}

#[async_trait]
impl Links for DynamoStore {
    async fn find_links(
        &self,
        object: ObjectKind,
        crm_ids: &[String],
        prm_ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        let mut found: BTreeMap<String, Link> = BTreeMap::new();
        let keys: Vec<Item> = dedupe(prm_ids)
            .iter()
            .map(|id| key(link_pk(object, id), "LINK"))
            .collect();
        for item in self.batch_get(Table::State, keys).await? {
            let link = from_item::<LinkItem>(item)?.into_link()?;
            found.insert(link.prm_id.clone(), link);
        }
        let wanted: Vec<String> = dedupe(crm_ids);
        let client = self.client.clone();
        let table = self.state_table.clone();
        let per_id = parallel(wanted.clone(), |crm_id| {
            let client = client.clone();
            let table = table.clone();
            async move {
                query_index(
                    &client,
                    &table,
                    Table::State,
                    BY_CRM_KEY,
                    "crm_key",
                    &crm_key(object, &crm_id),
                )
                .await
            }
        })
        .await?;
        for item in per_id.into_iter().flatten() {
            let link = from_item::<LinkItem>(item)?.into_link()?;
            // The index is eventually consistent: keep what is really on the asked id.
            if link.object == object && wanted.binary_search(&link.crm_id).is_ok() {
                found.entry(link.prm_id.clone()).or_insert(link);
            }
        }
        Ok(found.into_values().collect())
    }

    async fn save_link(&self, link: &Link) -> Result<Link, StoreError> {
        let conflict = || StoreError::Conflict {
            object: link.object,
            prm_id: link.prm_id.clone(),
        };
        let item = to_item(&LinkItem::new(link, link.version + 1))?;
        if link.version == 0 {
            let put = Put::builder()
                .table_name(&self.state_table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_err)?;
            self.transact(
                link.object,
                &link.prm_id,
                vec![
                    TransactWriteItem::builder().put(put).build(),
                    self.claim_put(link.object, &link.crm_id, &link.prm_id)?,
                ],
            )
            .await?;
        } else {
            let current = self
                .link_item(link.object, &link.prm_id)
                .await?
                .ok_or_else(conflict)?;
            if current.version != link.version {
                return Err(conflict());
            }
            if current.crm_id == link.crm_id {
                let r = self
                    .client
                    .put_item()
                    .table_name(&self.state_table)
                    .set_item(Some(item))
                    .condition_expression("#version = :expected")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":expected", nv(link.version))
                    .send()
                    .await;
                match r {
                    Ok(_) => {}
                    Err(e) if is_condition_failure(&e) => return Err(conflict()),
                    Err(e) => return Err(self.aws(Table::State, "PutItem", e)),
                }
            } else {
                let put = Put::builder()
                    .table_name(&self.state_table)
                    .set_item(Some(item))
                    .condition_expression("#version = :expected")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":expected", nv(link.version))
                    .build()
                    .map_err(build_err)?;
                self.transact(
                    link.object,
                    &link.prm_id,
                    vec![
                        TransactWriteItem::builder().put(put).build(),
                        self.claim_put(link.object, &link.crm_id, &link.prm_id)?,
                        self.claim_delete(link.object, &current.crm_id, &link.prm_id)?,
                    ],
                )
                .await?;
            }
        }
        let mut saved = link.clone();
        saved.version += 1;
        Ok(saved)
    }

    async fn delete_link(&self, object: ObjectKind, prm_id: &str) -> Result<bool, StoreError> {
        for _ in 0..DELETE_ATTEMPTS {
            let Some(current) = self.link_item(object, prm_id).await? else {
                return Ok(false);
            };
            let delete = Delete::builder()
                .table_name(&self.state_table)
                .set_key(Some(key(link_pk(object, prm_id), "LINK")))
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", nv(current.version))
                .build()
                .map_err(build_err)?;
            match self
                .transact(
                    object,
                    prm_id,
                    vec![
                        TransactWriteItem::builder().delete(delete).build(),
                        self.claim_delete(object, &current.crm_id, prm_id)?,
                    ],
                )
                .await
            {
                Ok(()) => return Ok(true),
                // Changed (or deleted) meanwhile: read it again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict {
            object,
            prm_id: prm_id.to_string(),
        })
    }

    async fn links_to_retry(&self, object: ObjectKind) -> Result<Vec<Link>, StoreError> {
        let mut links = self
            .query_index(Table::State, BY_RETRY_KEY, "retry_key", object.as_str())
            .await?
            .into_iter()
            .map(|i| from_item::<LinkItem>(i)?.into_link())
            .collect::<Result<Vec<_>, _>>()?;
        links.sort_by(|a, b| a.prm_id.cmp(&b.prm_id));
        Ok(links)
    }

    async fn count_links(&self, object: ObjectKind) -> Result<BTreeMap<String, u64>, StoreError> {
        // No index by object and state: a status read scans the links of the table.
        let prefix = format!("LINK#{}#", object.as_str());
        let mut counts = BTreeMap::new();
        let mut items = self
            .client
            .scan()
            .table_name(&self.state_table)
            .filter_expression("begins_with(pk, :prefix) AND sk = :sk")
            .projection_expression("#state")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":prefix", sv(&prefix))
            .expression_attribute_values(":sk", sv("LINK"))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| self.aws(Table::State, "Scan", e))?;
            if let Some(AttributeValue::S(state)) = item.get("state") {
                *counts.entry(state.clone()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    async fn mark_children_pending(
        &self,
        object: ObjectKind,
        prm_id: &str,
        crm_id: &str,
    ) -> Result<(), StoreError> {
        let item = PendingItem {
            pk: format!("PENDING#{}", object.as_str()),
            sk: prm_id.to_string(),
            crm_id: crm_id.to_string(),
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn children_pending(
        &self,
        object: ObjectKind,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.query_partition(&format!("PENDING#{}", object.as_str()))
            .await?
            .into_iter()
            .map(|i| from_item::<PendingItem>(i).map(|p| (p.sk, p.crm_id)))
            .collect()
    }

    async fn clear_children_pending(
        &self,
        object: ObjectKind,
        prm_ids: &[String],
    ) -> Result<(), StoreError> {
        let pk = format!("PENDING#{}", object.as_str());
        let requests = dedupe(prm_ids)
            .into_iter()
            .map(|id| Self::delete_request(key(pk.clone(), id)))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(Table::State, requests).await
    }
}

#[async_trait]
impl Cursors for DynamoStore {
    async fn cursor(
        &self,
        integration: Integration,
        side: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let item = self
            .get(
                Table::State,
                key(format!("CURSOR#{}", integration.as_str()), side),
            )
            .await?;
        match item {
            None => Ok(None),
            Some(item) => Ok(Some(parse_ts(&from_item::<CursorItem>(item)?.at)?)),
        }
    }

    async fn set_cursor(
        &self,
        integration: Integration,
        side: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = CursorItem {
            pk: format!("CURSOR#{}", integration.as_str()),
            sk: side.to_string(),
            at: ts(at),
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn checkpoint(
        &self,
        integration: Integration,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let item = self.get(Table::State, checkpoint_key(integration)).await?;
        let Some(item) = item else { return Ok(None) };
        let item = self.checkpoint_item(integration, item)?;
        parse_checkpoint(integration, &item.checkpoint).map(Some)
    }

    async fn set_checkpoint(
        &self,
        integration: Integration,
        checkpoint: Option<&PlanCheckpoint>,
    ) -> Result<(), StoreError> {
        match checkpoint {
            Some(c) => {
                let item = CheckpointItem {
                    pk: format!("CHECKPOINT#{}", integration.as_str()),
                    sk: "PLAN".into(),
                    checkpoint: serde_json::to_string(c).map_err(|e| {
                        StoreError::Backend(format!("cannot encode the checkpoint: {e}"))
                    })?,
                    run_id: Some(c.run_id.clone()),
                };
                self.put(Table::State, to_item(&item)?).await
            }
            None => self
                .client
                .delete_item()
                .table_name(&self.state_table)
                .set_key(Some(checkpoint_key(integration)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.aws(Table::State, "DeleteItem", e)),
        }
    }

    async fn take_checkpoint(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.state_table)
            .set_key(Some(checkpoint_key(integration)))
            .condition_expression("#run_id = :run_id")
            .expression_attribute_names("#run_id", "run_id")
            .expression_attribute_values(":run_id", sv(run_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => match out.attributes.filter(|a| !a.is_empty()) {
                Some(item) => {
                    let item = self.checkpoint_item(integration, item)?;
                    parse_checkpoint(integration, &item.checkpoint).map(Some)
                }
                None => Ok(None),
            },
            // None, another run's, or written before the run id was kept beside it.
            Err(e) if is_condition_failure(&e) => {
                self.take_checkpoint_without_run_id(integration, run_id)
                    .await
            }
            Err(e) => Err(self.aws(Table::State, "DeleteItem", e)),
        }
    }
}

impl DynamoStore {
    fn checkpoint_item(
        &self,
        integration: Integration,
        item: Item,
    ) -> Result<CheckpointItem, StoreError> {
        decode(
            &self.state_table,
            item,
            &format!("checkpoint of {integration}"),
            &format!("`prmsync sync --aws --integration {integration} --full` starts the run over"),
        )
    }

    /// [`Cursors::take_checkpoint`] of a checkpoint item without a `run_id` attribute:
    /// deleted if its JSON names the run, on the condition that it is still that text.
    async fn take_checkpoint_without_run_id(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let Some(item) = self.get(Table::State, checkpoint_key(integration)).await? else {
            return Ok(None);
        };
        let item = self.checkpoint_item(integration, item)?;
        if item.run_id.is_some() {
            return Ok(None);
        }
        let checkpoint = parse_checkpoint(integration, &item.checkpoint)?;
        if checkpoint.run_id != run_id {
            return Ok(None);
        }
        let r = self
            .client
            .delete_item()
            .table_name(&self.state_table)
            .set_key(Some(checkpoint_key(integration)))
            .condition_expression("attribute_not_exists(#run_id) AND #checkpoint = :checkpoint")
            .expression_attribute_names("#run_id", "run_id")
            .expression_attribute_names("#checkpoint", "checkpoint")
            .expression_attribute_values(":checkpoint", sv(item.checkpoint))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(checkpoint)),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(self.aws(Table::State, "DeleteItem", e)),
        }
    }
}

fn checkpoint_key(integration: Integration) -> Item {
    key(format!("CHECKPOINT#{}", integration.as_str()), "PLAN")
}

fn parse_checkpoint(integration: Integration, text: &str) -> Result<PlanCheckpoint, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Backend(format!(
            "the stored checkpoint of {integration} cannot be read ({e}); \
             `prmsync sync --aws --integration {integration} --full` starts the run over"
        ))
    })
}

#[async_trait]
impl Leases for DynamoStore {
    async fn acquire_lease(
        &self,
        integration: Integration,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = LeaseItem {
            pk: format!("LEASE#{}", integration.as_str()),
            sk: "LEASE".into(),
            holder: holder.to_string(),
            until: ts(until),
        };
        let r = self
            .client
            .put_item()
            .table_name(&self.state_table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk) OR #until < :now OR #holder = :holder")
            .expression_attribute_names("#until", "until")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_values(":now", sv(ts(Utc::now())))
            .expression_attribute_values(":holder", sv(holder))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.aws(Table::State, "PutItem", e)),
        }
    }

    async fn release_lease(
        &self,
        integration: Integration,
        holder: &str,
    ) -> Result<(), StoreError> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.state_table)
            .set_key(Some(key(
                format!("LEASE#{}", integration.as_str()),
                "LEASE",
            )))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_values(":holder", sv(holder))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            // Not ours (or already gone): nothing to release.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(self.aws(Table::State, "DeleteItem", e)),
        }
    }
}

#[async_trait]
impl Pauses for DynamoStore {
    async fn is_paused(&self, integration: Integration) -> Result<bool, StoreError> {
        let item = self
            .get(
                Table::State,
                key(format!("PAUSE#{}", integration.as_str()), "PAUSE"),
            )
            .await?;
        match item {
            None => Ok(false),
            Some(item) => Ok(from_item::<PauseItem>(item)?.paused),
        }
    }

    async fn set_paused(&self, integration: Integration, paused: bool) -> Result<(), StoreError> {
        let item = PauseItem {
            pk: format!("PAUSE#{}", integration.as_str()),
            sk: "PAUSE".into(),
            paused,
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn hold_api(&self, until: DateTime<Utc>) -> Result<(), StoreError> {
        let item = ApiHoldItem {
            pk: "APIHOLD".into(),
            sk: "APIHOLD".into(),
            until: ts(until),
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn api_hold(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(item) = self.get(Table::State, api_hold_key()).await? else {
            return Ok(None);
        };
        let fix = "delete the item (the next refusal of Salesforce sets it again)";
        decode_into(
            &self.state_table,
            item,
            "API hold",
            fix,
            |i: ApiHoldItem| parse_ts(&i.until).map(Some),
        )
    }
}

#[async_trait]
impl Runs for DynamoStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let item = RunItem {
            pk: format!("RUN#{}", run.integration.as_str()),
            sk: format!("{}#{}", ts(run.started_at), run.run_id),
            record: run.clone(),
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn last_run(&self, integration: Integration) -> Result<Option<RunRecord>, StoreError> {
        let resp = self
            .client
            .query()
            .table_name(&self.state_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", sv(format!("RUN#{}", integration.as_str())))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.aws(Table::State, "Query", e))?;
        resp.items
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|i| from_item::<RunItem>(i).map(|r| r.record))
            .transpose()
    }
}

#[async_trait]
impl RunChunks for DynamoStore {
    async fn chunk_done(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
    ) -> Result<Option<bool>, StoreError> {
        let Some(item) = self
            .get(
                Table::State,
                key(chunk_pk(integration, run_id), chunk_sk(number)),
            )
            .await?
        else {
            return Ok(None);
        };
        match item.get("done") {
            Some(AttributeValue::Bool(done)) => Ok(Some(*done)),
            _ => Err(StoreError::Backend(format!(
                "the item {} / {} (chunk {number} of run {run_id} of {integration}) has no readable `done`; delete it and start the run over with `prmsync sync --aws --integration {integration}`",
                chunk_pk(integration, run_id),
                chunk_sk(number)
            ))),
        }
    }

    async fn add_chunks(&self, chunks: &[ChunkRecord]) -> Result<(), StoreError> {
        // One write per chunk (the last of a number named twice), so that replacing a done
        // chunk moves its run's counter in the same transaction.
        let mut by_key: BTreeMap<(Integration, &str, u32), &ChunkRecord> = BTreeMap::new();
        for c in chunks {
            by_key.insert((c.integration, c.run_id.as_str(), c.number), c);
        }
        let writes = by_key
            .into_values()
            .map(|c| Ok((to_item(&ChunkItem::new(c))?, c.clone())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let client = self.client.clone();
        let table = self.state_table.clone();
        parallel(writes, |(item, chunk)| {
            put_chunk(client.clone(), table.clone(), item, chunk)
        })
        .await?;
        Ok(())
    }

    async fn finish_chunk(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
        counts: &Counts,
    ) -> Result<Option<u64>, StoreError> {
        let counts = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(counts)
            .map_err(|e| StoreError::Backend(format!("cannot encode a chunk's counts: {e}")))?;
        let chunk = Update::builder()
            .table_name(&self.state_table)
            .set_key(Some(key(chunk_pk(integration, run_id), chunk_sk(number))))
            .update_expression("SET #done = :true, #counts = :counts")
            .condition_expression("attribute_exists(pk) AND #done = :false")
            .expression_attribute_names("#done", "done")
            .expression_attribute_names("#counts", "counts")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":counts", counts)
            .build()
            .map_err(build_err)?;
        let counter = counter_add(&self.state_table, integration, run_id, 1)?;
        let items = vec![
            TransactWriteItem::builder().update(chunk).build(),
            TransactWriteItem::builder().update(counter).build(),
        ];
        let what = format!("chunk {number} of run {run_id} of {integration}");
        match transact_chunk(&self.client, &self.state_table, items, &what).await? {
            // Done already (a redelivered message) or never added.
            ChunkWrite::ConditionFailed => return Ok(None),
            ChunkWrite::Written => {}
        }
        let counter_key = chunk_counter_key(integration, run_id);
        let fix = format!(
            "the run cannot tell when it is done: start it over with `prmsync sync --aws --integration {integration}`"
        );
        let Some(item) = self.get(Table::State, counter_key).await? else {
            return Err(StoreError::Backend(format!(
                "the counter of chunks done of run {run_id} of {integration} is missing from table {} right after {what} was counted; {fix}",
                self.state_table
            )));
        };
        let counter: ChunkCounterItem = decode(
            &self.state_table,
            item,
            &format!("counter of chunks done of run {run_id} of {integration}"),
            &fix,
        )?;
        u64::try_from(counter.done).map(Some).map_err(|_| {
            StoreError::Backend(format!(
                "the counter of chunks done of run {run_id} of {integration} in table {} is {}; {fix}",
                self.state_table, counter.done
            ))
        })
    }

    async fn run_chunks(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Vec<ChunkRecord>, StoreError> {
        let what = format!("chunk of run {run_id} of {integration}");
        let fix = format!(
            "delete the items of partition {} and start the run over with `prmsync sync --aws --integration {integration}`",
            chunk_pk(integration, run_id)
        );
        let mut chunks = self
            .query_partition(&chunk_pk(integration, run_id))
            .await?
            .into_iter()
            .map(|i| {
                decode::<ChunkItem>(&self.state_table, i, &what, &fix).map(ChunkItem::into_chunk)
            })
            .collect::<Result<Vec<_>, _>>()?;
        chunks.sort_by_key(|c| c.number);
        Ok(chunks)
    }

    async fn clear_chunks(&self, integration: Integration, run_id: &str) -> Result<(), StoreError> {
        let pk = chunk_pk(integration, run_id);
        let mut keys: Vec<Item> = self
            .client
            .query()
            .table_name(&self.state_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", sv(&pk))
            .projection_expression("pk, sk")
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.aws(Table::State, "Query", e))?;
        keys.push(chunk_counter_key(integration, run_id));
        let requests = keys
            .into_iter()
            .map(Self::delete_request)
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(Table::State, requests).await
    }
}

/// What a chunk's transaction did.
enum ChunkWrite {
    Written,
    /// The chunk item's condition failed: it is not in the state the write expected.
    ConditionFailed,
}

/// `ADD done :delta` on a run's counter of chunks done.
fn counter_add(
    table: &str,
    integration: Integration,
    run_id: &str,
    delta: i64,
) -> Result<Update, StoreError> {
    Update::builder()
        .table_name(table)
        .set_key(Some(chunk_counter_key(integration, run_id)))
        .update_expression("ADD #done :delta")
        .expression_attribute_names("#done", "done")
        .expression_attribute_values(":delta", nv(delta))
        .build()
        .map_err(build_err)
}

/// Runs a transaction whose first item is a chunk's, again while it loses to concurrent
/// transactions (workers finishing chunks of one run at once all move its counter).
async fn transact_chunk(
    client: &Client,
    table: &str,
    items: Vec<TransactWriteItem>,
    what: &str,
) -> Result<ChunkWrite, StoreError> {
    for attempt in 0..CHUNK_ATTEMPTS {
        let r = client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await;
        let e = match r {
            Ok(_) => return Ok(ChunkWrite::Written),
            Err(e) => e,
        };
        match cancellation_reasons(&e) {
            Some(reasons)
                if reasons
                    .first()
                    .is_some_and(|r| r == "ConditionalCheckFailed") =>
            {
                return Ok(ChunkWrite::ConditionFailed)
            }
            Some(reasons) if is_transient_cancellation(&reasons) => backoff(attempt).await,
            _ if e.code() == Some("TransactionInProgressException")
                || e.code() == Some("ThrottlingException")
                || e.code() == Some("ProvisionedThroughputExceededException") =>
            {
                backoff(attempt).await
            }
            _ => return Err(aws_error(table, Table::State, "TransactWriteItems", e)),
        }
    }
    Err(StoreError::Backend(format!(
        "{what} kept losing to concurrent writes in table {table} ({CHUNK_ATTEMPTS} attempts); the message is delivered again"
    )))
}

/// Writes one chunk item, keeping its run's counter equal to the number of its chunks
/// done: a plain conditional put when the chunk's `done` does not change (a new chunk, or
/// one replaced in the same state), a transaction with the counter when it does.
async fn put_chunk(
    client: Client,
    table: String,
    item: Item,
    chunk: ChunkRecord,
) -> Result<(), StoreError> {
    let what = format!(
        "chunk {} of run {} of {}",
        chunk.number, chunk.run_id, chunk.integration
    );
    let done = AttributeValue::Bool(chunk.done);
    let not_done = AttributeValue::Bool(!chunk.done);
    // The condition under which the stored chunk is in the same state as the new one.
    let same = if chunk.done {
        "attribute_exists(pk) AND #done = :done"
    } else {
        "attribute_not_exists(pk) OR #done = :done"
    };
    let other = if chunk.done {
        "attribute_not_exists(pk) OR #done = :other"
    } else {
        "attribute_exists(pk) AND #done = :other"
    };
    for attempt in 0..CHUNK_ATTEMPTS {
        let r = client
            .put_item()
            .table_name(&table)
            .set_item(Some(item.clone()))
            .condition_expression(same)
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":done", done.clone())
            .send()
            .await;
        match r {
            Ok(_) => return Ok(()),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(aws_error(&table, Table::State, "PutItem", e)),
        }
        // The stored chunk is in the other state: replace it and move the counter.
        let put = Put::builder()
            .table_name(&table)
            .set_item(Some(item.clone()))
            .condition_expression(other)
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":other", not_done.clone())
            .build()
            .map_err(build_err)?;
        let delta = if chunk.done { 1 } else { -1 };
        let counter = counter_add(&table, chunk.integration, &chunk.run_id, delta)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(counter).build(),
        ];
        match transact_chunk(&client, &table, items, &what).await? {
            ChunkWrite::Written => return Ok(()),
            // Changed back meanwhile: try the plain put again.
            ChunkWrite::ConditionFailed => backoff(attempt).await,
        }
    }
    Err(StoreError::Backend(format!(
        "{what} kept changing while it was added to table {table} ({CHUNK_ATTEMPTS} attempts); the planner tries again"
    )))
}

#[async_trait]
impl RetrySet for DynamoStore {
    async fn retry_entries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<Vec<RetryEntry>, StoreError> {
        let keys = dedupe(ids)
            .into_iter()
            .map(|id| key(retry_pk(object), retry_sk(side, &id)))
            .collect();
        let mut entries = self
            .batch_get(Table::State, keys)
            .await?
            .into_iter()
            .map(|i| self.retry_entry(object, i))
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    async fn all_retries(&self, object: ObjectKind) -> Result<Vec<RetryEntry>, StoreError> {
        self.query_partition(&retry_pk(object))
            .await?
            .into_iter()
            .map(|i| self.retry_entry(object, i))
            .collect()
    }

    async fn hold_retries(&self, entries: &[RetryEntry]) -> Result<(), StoreError> {
        // A batch may not name an item twice: the last entry of a key wins.
        let mut by_key: BTreeMap<(ObjectKind, &str, &str), &RetryEntry> = BTreeMap::new();
        for e in entries {
            by_key.insert((e.object, e.side.as_str(), e.id.as_str()), e);
        }
        let mut requests = Vec::with_capacity(by_key.len());
        for e in by_key.into_values() {
            let put = PutRequest::builder()
                .set_item(Some(to_item(&RetryItem::new(e))?))
                .build()
                .map_err(build_err)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(Table::State, requests).await
    }

    async fn clear_retries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let requests = dedupe(ids)
            .into_iter()
            .map(|id| Self::delete_request(key(retry_pk(object), retry_sk(side, &id))))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(Table::State, requests).await
    }
}

impl DynamoStore {
    fn retry_entry(&self, object: ObjectKind, item: Item) -> Result<RetryEntry, StoreError> {
        decode_into(
            &self.state_table,
            item,
            &format!("retry entry of {object}"),
            "delete the item (the record syncs again when it changes)",
            RetryItem::into_entry,
        )
    }
}

/// Whether a log entry passes the filter (all but `since`, which the key condition applies).
fn log_matches(e: &LogItem, f: &LogFilter) -> bool {
    f.integration.is_none_or(|i| e.integration == i)
        && f.min_level.is_none_or(|l| e.level >= l)
        && f.code.is_none_or(|c| e.code == c)
        && f.run_id.as_ref().is_none_or(|r| &e.run_id == r)
        && f.record_id
            .as_ref()
            .is_none_or(|r| e.crm_id.as_ref() == Some(r) || e.prm_id.as_ref() == Some(r))
        && (!f.unacknowledged || !e.acknowledged)
}

/// Entries of one query (a day partition or the open index), newest first, filtered, at
/// most `cap`.
async fn query_log(
    client: Client,
    table: String,
    index: Option<&'static str>,
    partition: (&'static str, String),
    since: Option<String>,
    filter: std::sync::Arc<LogFilter>,
    cap: Option<usize>,
) -> Result<Vec<LogEntry>, StoreError> {
    let mut out = Vec::new();
    let condition = if since.is_some() {
        "#p = :p AND sk >= :since"
    } else {
        "#p = :p"
    };
    let mut values = HashMap::from([(":p".to_string(), sv(&partition.1))]);
    if let Some(s) = &since {
        values.insert(":since".to_string(), sv(s));
    }
    let mut items = client
        .query()
        .table_name(&table)
        .set_index_name(index.map(String::from))
        .key_condition_expression(condition)
        .expression_attribute_names("#p", partition.0)
        .set_expression_attribute_values(Some(values))
        .scan_index_forward(false)
        .set_consistent_read(index.is_none().then_some(true))
        .into_paginator()
        .items()
        .send();
    while let Some(item) = items.next().await {
        let item = item.map_err(|e| aws_error(&table, Table::Log, "Query", e))?;
        let item: LogItem = from_item(item)?;
        if log_matches(&item, &filter) {
            out.push(item.into_entry()?);
            if cap.is_some_and(|c| out.len() >= c) {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

impl DynamoStore {
    /// Keys (pk, sk, id) of every open warning and error.
    async fn open_entries(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .query_index(Table::Log, BY_OPEN, "open", "OPEN")
            .await?
        {
            let get = |k: &str| match item.get(k) {
                Some(AttributeValue::S(s)) => Some(s.clone()),
                _ => None,
            };
            if let (Some(pk), Some(sk), Some(id)) = (get("pk"), get("sk"), get("id")) {
                out.push((pk, sk, id));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl IntegrationLog for DynamoStore {
    async fn append(&self, entries: &[LogEntry]) -> Result<(), StoreError> {
        // Idempotent by entry id: an entry already stored (a redelivered append) is left as
        // it is, acknowledgement included. A batch may not name an item twice either.
        let mut seen = BTreeSet::new();
        let items: Vec<LogItem> = entries
            .iter()
            .filter(|e| seen.insert(e.id.as_str()))
            .map(LogItem::new)
            .collect();
        let mut stored = BTreeSet::new();
        let keys = items
            .iter()
            .map(|i| key(i.pk.clone(), i.sk.clone()))
            .collect();
        for item in self
            .batch_get_projected(Table::Log, keys, Some("pk, sk"))
            .await?
        {
            if let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                (item.get("pk"), item.get("sk"))
            {
                stored.insert((pk.clone(), sk.clone()));
            }
        }
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            if stored.contains(&(item.pk.clone(), item.sk.clone())) {
                continue;
            }
            let put = PutRequest::builder()
                .set_item(Some(to_item(&item)?))
                .build()
                .map_err(build_err)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(Table::Log, requests).await
    }

    async fn entries(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StoreError> {
        if filter.limit == Some(0) {
            return Ok(Vec::new());
        }
        let shared = std::sync::Arc::new(filter.clone());
        let since = filter.since.map(ts);
        // Open warnings and errors are on their own index.
        if filter.unacknowledged && filter.min_level.is_some_and(|l| l >= Level::Warning) {
            return query_log(
                self.client.clone(),
                self.log_table.clone(),
                Some(BY_OPEN),
                ("open", "OPEN".to_string()),
                since,
                shared,
                filter.limit,
            )
            .await;
        }
        // Otherwise one partition per day, newest first: from tomorrow (clock skew) back
        // to the day of `since`, or the retention period.
        let now = Utc::now();
        let oldest = filter
            .since
            .unwrap_or(now - Duration::days(LOG_RETENTION_DAYS))
            .max(now - Duration::days(LOG_MAX_DAYS_BACK))
            .date_naive();
        let mut days = Vec::new();
        let mut day = (now + Duration::days(1)).date_naive();
        while day >= oldest {
            days.push(day);
            day = match day.pred_opt() {
                Some(d) => d,
                None => break,
            };
        }
        let mut out: Vec<LogEntry> = Vec::new();
        // Without a limit every day is read; with one, a few days at a time until full.
        let window = if filter.limit.is_some() { 4 } else { PARALLEL };
        for chunk in days.chunks(window) {
            let client = self.client.clone();
            let table = self.log_table.clone();
            let remaining = filter.limit.map(|l| l - out.len());
            let per_day = parallel(chunk.to_vec(), |day| {
                query_log(
                    client.clone(),
                    table.clone(),
                    None,
                    ("pk", log_pk(day)),
                    since.clone(),
                    shared.clone(),
                    remaining,
                )
            })
            .await?;
            for entries in per_day {
                out.extend(entries);
            }
            if let Some(limit) = filter.limit {
                if out.len() >= limit {
                    out.truncate(limit);
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn acknowledge(&self, ids: Option<&[String]>) -> Result<u64, StoreError> {
        // Only open warnings and errors are acknowledged (info entries are never open).
        let wanted: Option<BTreeSet<&str>> =
            ids.map(|ids| ids.iter().map(String::as_str).collect());
        let mut n = 0;
        for (pk, sk, id) in self.open_entries().await? {
            if wanted.as_ref().is_some_and(|w| !w.contains(id.as_str())) {
                continue;
            }
            let r = self
                .client
                .update_item()
                .table_name(&self.log_table)
                .set_key(Some(key(pk, sk)))
                .update_expression("SET #ack = :true REMOVE #open")
                .condition_expression("attribute_exists(#open)")
                .expression_attribute_names("#ack", "acknowledged")
                .expression_attribute_names("#open", "open")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .send()
                .await;
            match r {
                Ok(_) => n += 1,
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(self.aws(Table::Log, "UpdateItem", e)),
            }
        }
        Ok(n)
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // The table's TTL removes entries after the retention period; an explicit prune
        // (rare, operator-driven) scans for older entries and deletes them now.
        let mut keys = Vec::new();
        let mut items = self
            .client
            .scan()
            .table_name(&self.log_table)
            .filter_expression("#time < :before")
            .projection_expression("pk, sk")
            .expression_attribute_names("#time", "time")
            .expression_attribute_values(":before", sv(ts(before)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| self.aws(Table::Log, "Scan", e))?;
            if let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                (item.get("pk"), item.get("sk"))
            {
                keys.push(key(pk.clone(), sk.clone()));
            }
        }
        let n = keys.len() as u64;
        let requests = keys
            .into_iter()
            .map(Self::delete_request)
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(Table::Log, requests).await?;
        Ok(n)
    }
}

#[async_trait]
impl Rejections for DynamoStore {
    async fn rejected_versions(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let pk = format!("REJECT#{}#{side}", object.as_str());
        let keys = dedupe(ids)
            .into_iter()
            .map(|id| key(pk.clone(), id))
            .collect();
        self.batch_get(Table::State, keys)
            .await?
            .into_iter()
            .map(|i| from_item::<RejectionItem>(i).map(|r| (r.sk, r.version)))
            .collect()
    }

    async fn remember_rejection(
        &self,
        object: ObjectKind,
        side: &str,
        id: &str,
        version: &str,
    ) -> Result<(), StoreError> {
        let item = RejectionItem {
            pk: format!("REJECT#{}#{side}", object.as_str()),
            sk: id.to_string(),
            version: version.to_string(),
        };
        self.put(Table::State, to_item(&item)?).await
    }
}
