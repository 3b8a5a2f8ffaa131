//! Items of the tables and their keys: domain values to items and back.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use prmsync_engine::report::Counts;
use prmsync_engine::store::{
    ChunkRecord, Link, LinkState, LogEntry, PlanCheckpoint, RetryEntry, RunRecord, StoreError,
};
use prmsync_mapping::{Integration, Level, LogCode, ObjectKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Item, LOG_RETENTION_DAYS};

// ---------------------------------------------------------------------------------------
// Items

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LinkItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) object: ObjectKind,
    pub(super) prm_id: String,
    pub(super) crm_id: String,
    pub(super) crm_key: String,
    pub(super) state: LinkState,
    #[serde(default)]
    pub(super) snapshot: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) crm_modstamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) prm_version: Option<i64>,
    pub(super) version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) retry_key: Option<String>,
    pub(super) updated_at: String,
}

impl LinkItem {
    pub(super) fn new(link: &Link, version: i64) -> Self {
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

    pub(super) fn into_link(self) -> Result<Link, StoreError> {
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
pub(super) struct ClaimItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) prm_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CursorItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) at: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct CheckpointItem {
    pub(super) pk: String,
    pub(super) sk: String,
    /// The [`PlanCheckpoint`] as JSON.
    pub(super) checkpoint: String,
    /// The checkpoint's run id, for the condition of `take_checkpoint` (absent on items
    /// written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) run_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ChunkItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) integration: Integration,
    pub(super) run_id: String,
    pub(super) number: u32,
    pub(super) crm_ids: Vec<String>,
    pub(super) prm_ids: Vec<String>,
    pub(super) done: bool,
    pub(super) counts: Counts,
}

impl ChunkItem {
    pub(super) fn new(c: &ChunkRecord) -> Self {
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

    pub(super) fn into_chunk(self) -> ChunkRecord {
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
pub(super) struct ChunkCounterItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) done: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RetryItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) object: ObjectKind,
    pub(super) side: String,
    pub(super) id: String,
    pub(super) attempts: u32,
    pub(super) next_at: String,
    pub(super) parked: bool,
    pub(super) error: String,
    pub(super) updated_at: String,
}

impl RetryItem {
    pub(super) fn new(e: &RetryEntry) -> Self {
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

    pub(super) fn into_entry(self) -> Result<RetryEntry, StoreError> {
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
pub(super) struct ApiHoldItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) until: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LeaseItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) holder: String,
    pub(super) until: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PauseItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) paused: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RunItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) record: RunRecord,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct RejectionItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) version: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PendingItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) crm_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LogItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) id: String,
    pub(super) time: String,
    pub(super) run_id: String,
    pub(super) integration: Integration,
    pub(super) level: Level,
    pub(super) code: LogCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) object: Option<ObjectKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) crm_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) prm_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) link: Option<String>,
    pub(super) message: String,
    pub(super) fix: String,
    #[serde(default)]
    pub(super) details: Value,
    pub(super) acknowledged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) open: Option<String>,
    pub(super) expires_at: i64,
}

impl LogItem {
    pub(super) fn new(e: &LogEntry) -> Self {
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

    pub(super) fn into_entry(self) -> Result<LogEntry, StoreError> {
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
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Backend(format!("stored time {s:?} is not RFC 3339: {e}")))
}

pub(super) fn link_pk(object: ObjectKind, prm_id: &str) -> String {
    format!("LINK#{}#{prm_id}", object.as_str())
}

pub(super) fn crm_key(object: ObjectKind, crm_id: &str) -> String {
    format!("{}#{crm_id}", object.as_str())
}

pub(super) fn claim_pk(object: ObjectKind, crm_id: &str) -> String {
    format!("CRMID#{}#{crm_id}", object.as_str())
}

/// The partition of a run's chunks.
pub(super) fn chunk_pk(integration: Integration, run_id: &str) -> String {
    format!("CHUNK#{}#{run_id}", integration.as_str())
}

/// A chunk's number, zero-padded to the width of the largest `u32` so that the partition
/// sorts by number.
pub(super) fn chunk_sk(number: u32) -> String {
    format!("{number:010}")
}

/// The counter of a run's chunks done.
pub(super) fn chunk_counter_key(integration: Integration, run_id: &str) -> Item {
    key(format!("CHUNKS#{}#{run_id}", integration.as_str()), "DONE")
}

pub(super) fn retry_pk(object: ObjectKind) -> String {
    format!("RETRY#{}", object.as_str())
}

pub(super) fn retry_sk(side: &str, id: &str) -> String {
    format!("{side}#{id}")
}

pub(super) fn api_hold_key() -> Item {
    key("APIHOLD", "APIHOLD")
}

pub(super) fn log_pk(day: NaiveDate) -> String {
    format!("LOG#{}", day.format("%Y-%m-%d"))
}

pub(super) fn log_sk(time: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", ts(time))
}

pub(super) fn sv(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn nv(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

pub(super) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), sv(pk)), ("sk".to_string(), sv(sk))])
}

pub(super) fn to_item<T: Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(value)
        .map_err(|e| StoreError::Backend(format!("cannot encode a DynamoDB item: {e}")))
}

pub(super) fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item).map_err(|e| {
        StoreError::Backend(format!(
            "a DynamoDB item does not have the expected layout ({e}); check that the tables follow docs/dynamodb.md"
        ))
    })
}

/// An item of the state table that cannot be decoded: names it (by its key) and says what
/// to do.
pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    table: &str,
    item: Item,
    what: &str,
    fix: &str,
) -> Result<T, StoreError> {
    decode_into(table, item, what, fix, Ok)
}

/// [`decode`], then `convert`; a failure of either names the item and says what to do.
pub(super) fn decode_into<T: for<'de> Deserialize<'de>, U>(
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

pub(super) fn checkpoint_key(integration: Integration) -> Item {
    key(format!("CHECKPOINT#{}", integration.as_str()), "PLAN")
}

pub(super) fn parse_checkpoint(
    integration: Integration,
    text: &str,
) -> Result<PlanCheckpoint, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Backend(format!(
            "the stored checkpoint of {integration} cannot be read ({e}); \
             `prmsync sync --aws --integration {integration} --full` starts the run over"
        ))
    })
}
