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
//! - An item that cannot be read back is a [`StoreError::Corrupt`] naming its table and key
//!   (never its values) and what to do; it is never replaced by a default.

mod codec;
mod links;
mod log;
mod runs;
mod schema;
mod state;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::time::Duration as StdDuration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use prmsync_engine::store::StoreError;
use prmsync_mapping::ObjectKind;

pub use schema::{BY_CRM_KEY, BY_OPEN, BY_RETRY_KEY, LOG_RETENTION_DAYS};

use codec::sv;

/// Environment variable naming the state table.
pub const STATE_TABLE_ENV: &str = "PRMSYNC_STATE_TABLE";
/// Environment variable naming the Integration Log table.
pub const LOG_TABLE_ENV: &str = "PRMSYNC_LOG_TABLE";

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
                // No responses (or none for the table): none of these keys has an item.
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

    /// A transaction on a link's items: a lost condition (or a lost race) is a
    /// [`StoreError::Conflict`] on the link.
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
