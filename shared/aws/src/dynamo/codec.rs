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

// Absent attributes: an `Option` field written with `skip_serializing_if` is left out when
// it is None, so there (and only there) `#[serde(default)]` reads an absent attribute as
// None; every other attribute must be present.

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LinkItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) object: ObjectKind,
    pub(super) prm_id: String,
    pub(super) crm_id: String,
    pub(super) crm_key: String,
    pub(super) state: LinkState,
    /// Always written (an empty map included): an item without it is not read as empty.
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

    pub(super) fn into_link(self) -> Result<Link, String> {
        Ok(Link {
            object: self.object,
            crm_modstamp: self
                .crm_modstamp
                .as_deref()
                .map(|t| parse_ts("crm_modstamp", t))
                .transpose()?,
            updated_at: parse_ts("updated_at", &self.updated_at)?,
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
    /// The write-backs the chunk's pass held, as JSON text (absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) held: Option<String>,
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
            held: None,
        }
    }

    /// The chunk; fails when its held write-backs are not what a worker writes.
    pub(super) fn into_chunk(self) -> Result<ChunkRecord, String> {
        let held = match &self.held {
            None => Vec::new(),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| format!("its `held` write-backs cannot be read ({e})"))?,
        };
        Ok(ChunkRecord {
            held,
            integration: self.integration,
            run_id: self.run_id,
            number: self.number,
            crm_ids: self.crm_ids,
            prm_ids: self.prm_ids,
            done: self.done,
            counts: self.counts,
        })
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

    pub(super) fn into_entry(self) -> Result<RetryEntry, String> {
        Ok(RetryEntry {
            next_at: parse_ts("next_at", &self.next_at)?,
            updated_at: parse_ts("updated_at", &self.updated_at)?,
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

// Parts of items, as read by requests that need (or project) only these attributes.

/// The `done` flag of a chunk item.
#[derive(Debug, Deserialize)]
pub(super) struct ChunkDone {
    pub(super) done: bool,
}

/// The `state` of a link item.
#[derive(Debug, Deserialize)]
pub(super) struct LinkStateOnly {
    pub(super) state: LinkState,
}

/// The two ids of a link item.
#[derive(Debug, Deserialize)]
pub(super) struct LinkIdsOnly {
    pub(super) prm_id: String,
    pub(super) crm_id: String,
}

/// The key of an item.
#[derive(Debug, Deserialize)]
pub(super) struct KeyOnly {
    pub(super) pk: String,
    pub(super) sk: String,
}

/// The key and id of an open log entry (on the `by_open` index).
#[derive(Debug, Deserialize)]
pub(super) struct OpenEntry {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) id: String,
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
    /// Always written (`NULL` included): an item without it is not read as null.
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

    pub(super) fn into_entry(self) -> Result<LogEntry, String> {
        Ok(LogEntry {
            time: parse_ts("time", &self.time)?,
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

/// A stored time; the error names the attribute, not its value.
pub(super) fn parse_ts(attribute: &str, s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{attribute}` is not an RFC 3339 time ({e})"))
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

/// What to do about an unreadable item when nothing more specific is known.
pub(super) const CHECK_LAYOUT: &str = "check the item against docs/dynamodb.md";

/// How errors name an item: its table and key, never its values. A key attribute that is
/// missing or not a string shows as `?` (only in the message).
pub(super) fn item_key(table: &str, item: &Item) -> String {
    let key_of = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.as_str(),
        _ => "?",
    };
    key_text(table, key_of("pk"), key_of("sk"))
}

pub(super) fn key_text(table: &str, pk: &str, sk: &str) -> String {
    format!("pk {pk}, sk {sk} in table {table}")
}

/// A [`StoreError::Corrupt`] for the item named by `key`: why it cannot be read (without
/// the stored values a decoder's message may quote) and what to do.
pub(super) fn corrupt(what: &'static str, key: String, why: &str, fix: &str) -> StoreError {
    StoreError::Corrupt {
        what,
        key,
        problem: format!("{}; {fix}", redact(why)),
    }
}

/// An item as `T`; an item that cannot be decoded is a [`StoreError::Corrupt`] naming it
/// (by table and key) and saying what to do.
pub(super) fn decode<T: for<'de> Deserialize<'de>>(
    table: &str,
    item: Item,
    what: &'static str,
    fix: &str,
) -> Result<T, StoreError> {
    decode_into(table, item, what, fix, Ok)
}

/// [`decode`], then `convert`; a failure of either names the item and says what to do.
pub(super) fn decode_into<T: for<'de> Deserialize<'de>, U>(
    table: &str,
    item: Item,
    what: &'static str,
    fix: &str,
    convert: impl FnOnce(T) -> Result<U, String>,
) -> Result<U, StoreError> {
    let key = item_key(table, &item);
    match serde_dynamo::aws_sdk_dynamodb_1::from_item(item) {
        Ok(value) => convert(value).map_err(|why| corrupt(what, key, &why, fix)),
        Err(e) => Err(corrupt(what, key, &e.to_string(), fix)),
    }
}

/// A decoder's message without the stored values it may quote: a string in double quotes,
/// a number, character or enum variant in backticks, the text that failed to parse as a
/// number. Field names (`missing field `x``) are kept.
pub(super) fn redact(message: &str) -> String {
    const VALUE_BEFORE_BACKTICK: [&str; 4] =
        ["integer ", "floating point ", "character ", "variant "];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        match c {
            '"' => {
                // To the closing quote, past escaped ones (the value is quoted with `{:?}`).
                let mut escaped = false;
                let end = rest
                    .char_indices()
                    .find(|&(_, ch)| {
                        let close = ch == '"' && !escaped;
                        escaped = ch == '\\' && !escaped;
                        close
                    })
                    .map_or(rest.len(), |(i, _)| i + 1);
                rest = &rest[end..];
                out.push_str("\"…\"");
            }
            '\'' if out.ends_with("parse ") => {
                // serde_dynamo: "Failed to parse '<text>' as an integer: ...".
                let end = rest.rfind("' as ").map_or(rest.len(), |i| i + 1);
                rest = &rest[end..];
                out.push_str("'…'");
            }
            '`' if VALUE_BEFORE_BACKTICK.iter().any(|p| out.ends_with(p)) => {
                let end = rest.find('`').map_or(rest.len(), |i| i + 1);
                rest = &rest[end..];
                out.push_str("`…`");
            }
            c => out.push(c),
        }
    }
    out
}
pub(super) fn checkpoint_key(integration: Integration) -> Item {
    key(format!("CHECKPOINT#{}", integration.as_str()), "PLAN")
}

/// The plan checkpoint kept as JSON in a checkpoint item of `table`.
pub(super) fn parse_checkpoint(
    table: &str,
    integration: Integration,
    text: &str,
) -> Result<PlanCheckpoint, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(
            "plan checkpoint",
            key_text(
                table,
                &format!("CHECKPOINT#{}", integration.as_str()),
                "PLAN",
            ),
            &format!("`checkpoint` is not a plan checkpoint's JSON ({e})"),
            &checkpoint_fix(integration),
        )
    })
}

/// What to do about a checkpoint that cannot be read.
pub(super) fn checkpoint_fix(integration: Integration) -> String {
    format!("`prmsync sync --aws --integration {integration} --full` starts the run over")
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use super::*;

    const TABLE: &str = "prmsync-state-test";

    fn link_item() -> Item {
        let mut link = Link::new(ObjectKind::Person, "per_1", "003A");
        link.snapshot
            .insert("LastName".into(), Value::String("Doe".into()));
        to_item(&LinkItem::new(&link, 1)).expect("encode")
    }

    fn log_item() -> Item {
        let entry = LogEntry {
            id: "log_1".into(),
            time: DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
            run_id: "run-1".into(),
            integration: Integration::People,
            level: Level::Error,
            code: LogCode::ALL[0],
            object: None,
            crm_id: None,
            prm_id: None,
            link: None,
            message: "m".into(),
            fix: "f".into(),
            details: Value::Null,
            acknowledged: false,
        };
        to_item(&LogItem::new(&entry)).expect("encode")
    }

    fn read_link(item: Item) -> Result<Link, StoreError> {
        decode_into(TABLE, item, "link", CHECK_LAYOUT, LinkItem::into_link)
    }

    /// The parts of a [`StoreError::Corrupt`], and its text.
    fn corrupt_parts(r: Result<impl Debug, StoreError>) -> (&'static str, String, String) {
        match r {
            Err(e @ StoreError::Corrupt { .. }) => {
                let text = e.to_string();
                let StoreError::Corrupt { what, key, .. } = e else {
                    unreachable!()
                };
                (what, key, text)
            }
            other => panic!("expected a Corrupt error, got {other:?}"),
        }
    }

    #[test]
    fn items_as_written_are_read_back() {
        let link = read_link(link_item()).expect("a link item as written");
        assert_eq!((link.prm_id.as_str(), link.version), ("per_1", 1));
        let log: LogItem = decode(TABLE, log_item(), "log entry", CHECK_LAYOUT).expect("decode");
        let entry = log.into_entry().expect("a log item as written");
        assert_eq!(entry.details, Value::Null);
    }

    #[test]
    fn a_retry_item_missing_attributes_is_corrupt_naming_its_key_and_the_fix() {
        let item = HashMap::from([
            ("pk".to_string(), AttributeValue::S("RETRY#deal".into())),
            ("sk".to_string(), AttributeValue::S("crm#006BAD".into())),
            ("id".to_string(), AttributeValue::S("006BAD".into())),
        ]);
        let fix = "delete the item (the record syncs again when it changes)";
        let r = decode_into(TABLE, item, "retry entry", fix, RetryItem::into_entry);
        let (what, key, text) = corrupt_parts(r);
        assert_eq!(what, "retry entry");
        assert_eq!(
            key,
            "pk RETRY#deal, sk crm#006BAD in table prmsync-state-test"
        );
        assert!(
            text.contains("missing field") && text.contains(fix),
            "says why and what to do: {text}"
        );
    }

    #[test]
    fn a_run_item_saved_before_api_usage_was_kept_reads_back_without_it() {
        let record = RunRecord {
            run_id: "run-1".into(),
            integration: Integration::Deals,
            mode: prmsync_engine::RunMode::Incremental,
            dry_run: false,
            started_at: DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
                .expect("time")
                .with_timezone(&Utc),
            finished_at: None,
            status: prmsync_engine::RunStatus::Running,
            counts: Default::default(),
            api_usage: Some(prmsync_engine::ports::ApiUsage { used: 1, max: 2 }),
        };
        let item = |record: &RunRecord| {
            to_item(&RunItem {
                pk: "RUN#deals".into(),
                sk: "2026-12-01T10:00:00.000000Z#run-1".into(),
                record: record.clone(),
            })
            .expect("encode")
        };
        let mut old = item(&record);
        let Some(AttributeValue::M(map)) = old.get_mut("record") else {
            panic!("the record is a map: {old:?}")
        };
        assert!(map.remove("api_usage").is_some(), "api_usage is kept");
        let read = decode::<RunItem>(TABLE, old, "run record", CHECK_LAYOUT).expect("decode");
        assert_eq!(read.record.api_usage, None);
        assert_eq!(read.record.run_id, "run-1");
        let read = decode::<RunItem>(TABLE, item(&record), "run record", CHECK_LAYOUT);
        assert_eq!(read.expect("decode").record, record, "round trip");
    }

    #[test]
    fn a_link_item_with_an_unknown_state_is_corrupt_without_quoting_the_value() {
        let mut item = link_item();
        item.insert("state".into(), AttributeValue::S("Jane Roe".into()));
        let (what, key, text) = corrupt_parts(read_link(item));
        assert_eq!(what, "link");
        assert!(
            key.contains("LINK#person#per_1") && key.contains("sk LINK"),
            "{key}"
        );
        assert!(
            !text.contains("Jane"),
            "no stored value in the error: {text}"
        );
    }

    #[test]
    fn a_stored_time_that_is_not_a_time_names_the_attribute_not_the_value() {
        let mut item = link_item();
        item.insert("updated_at".into(), AttributeValue::S("Jane Roe".into()));
        let (_, key, text) = corrupt_parts(read_link(item));
        assert!(key.contains("LINK#person#per_1"), "{key}");
        assert!(text.contains("`updated_at`"), "names the attribute: {text}");
        assert!(
            !text.contains("Jane"),
            "no stored value in the error: {text}"
        );
    }

    #[test]
    fn a_link_item_without_its_snapshot_is_corrupt_not_empty() {
        let mut item = link_item();
        item.remove("snapshot");
        let (what, _, text) = corrupt_parts(read_link(item));
        assert_eq!(what, "link");
        assert!(text.contains("snapshot"), "{text}");
    }

    #[test]
    fn a_log_item_without_its_details_is_corrupt_not_null() {
        let mut item = log_item();
        item.remove("details");
        let r = decode::<LogItem>(TABLE, item, "log entry", CHECK_LAYOUT);
        let (what, key, _) = corrupt_parts(r);
        assert_eq!(what, "log entry");
        assert!(key.starts_with("pk LOG#2026-12-01, sk 2026-12-01T10:00:00.000000Z#log_1"));
    }

    #[test]
    fn a_chunk_whose_done_is_not_a_flag_is_corrupt() {
        let mut item = key("CHUNK#people#run-1", chunk_sk(3));
        item.insert("done".into(), AttributeValue::S("yes".into()));
        let r = decode::<ChunkDone>(TABLE, item, "run chunk", CHECK_LAYOUT);
        let (what, key, _) = corrupt_parts(r);
        assert_eq!(what, "run chunk");
        assert!(key.contains("CHUNK#people#run-1") && key.contains("0000000003"));
    }

    #[test]
    fn a_link_state_that_is_not_a_state_is_corrupt() {
        let mut item = key("LINK#person#per_1", "LINK");
        item.insert("state".into(), AttributeValue::S("paused".into()));
        let r = decode::<LinkStateOnly>(TABLE, item, "link", CHECK_LAYOUT);
        assert_eq!(corrupt_parts(r).0, "link");
    }

    #[test]
    fn a_log_item_without_an_id_is_corrupt() {
        let mut item = log_item();
        item.remove("id");
        let r = decode::<OpenEntry>("prmsync-log-test", item, "log entry", CHECK_LAYOUT);
        let (_, key, _) = corrupt_parts(r);
        assert!(key.ends_with("in table prmsync-log-test"), "{key}");
    }

    #[test]
    fn a_checkpoint_that_is_not_json_names_its_key_and_the_fix() {
        let r = parse_checkpoint(TABLE, Integration::Organizations, "{\"run_id\": 1");
        let (what, key, text) = corrupt_parts(r);
        assert_eq!(what, "plan checkpoint");
        assert_eq!(
            key,
            "pk CHECKPOINT#organizations, sk PLAN in table prmsync-state-test"
        );
        assert!(text.contains("--full"), "{text}");
    }

    #[test]
    fn an_item_without_its_key_is_named_with_question_marks() {
        let item = HashMap::from([("pk".to_string(), AttributeValue::N("1".into()))]);
        assert_eq!(
            item_key(TABLE, &item),
            "pk ?, sk ? in table prmsync-state-test"
        );
    }

    #[test]
    fn redact_hides_values_and_keeps_field_names() {
        let cases = [
            (
                r#"invalid type: string "Jane \"J\" Roe", expected u32"#,
                r#"invalid type: string "…", expected u32"#,
            ),
            (
                "unknown variant `Jane`, expected one of `linked`, `unselected`",
                "unknown variant `…`, expected one of `linked`, `unselected`",
            ),
            (
                "invalid value: integer `-4`, expected u32",
                "invalid value: integer `…`, expected u32",
            ),
            (
                "Failed to parse 'Jane's 12' as an integer: invalid digit found in string",
                "Failed to parse '…' as an integer: invalid digit found in string",
            ),
            ("missing field `object`", "missing field `object`"),
        ];
        for (message, redacted) in cases {
            assert_eq!(redact(message), redacted);
        }
    }
}
