//! The Integration Log: one partition per UTC day, open warnings and errors on an index.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};
use prmsync_engine::store::{IntegrationLog, LogEntry, LogFilter, StoreError};
use prmsync_mapping::Level;

use super::codec::{
    corrupt, decode, key, key_text, log_pk, sv, to_item, ts, KeyOnly, LogItem, OpenEntry,
};
use super::{
    aws_error, build_err, is_condition_failure, parallel, DynamoStore, Table, BY_OPEN,
    LOG_MAX_DAYS_BACK, LOG_RETENTION_DAYS, PARALLEL,
};

/// What to do about a log entry that cannot be read.
const LOG_FIX: &str = "delete the item (one entry of the Integration Log)";

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
        let item: LogItem = decode(&table, item, "log entry", LOG_FIX)?;
        if log_matches(&item, &filter) {
            let key = key_text(&table, &item.pk, &item.sk);
            out.push(
                item.into_entry()
                    .map_err(|why| corrupt("log entry", key, &why, LOG_FIX))?,
            );
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
            let e: OpenEntry = decode(&self.log_table, item, "log entry", LOG_FIX)?;
            out.push((e.pk, e.sk, e.id));
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
            let k: KeyOnly = decode(&self.log_table, item, "log entry", LOG_FIX)?;
            stored.insert((k.pk, k.sk));
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
            let k: KeyOnly = decode(&self.log_table, item, "log entry", LOG_FIX)?;
            keys.push(key(k.pk, k.sk));
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
