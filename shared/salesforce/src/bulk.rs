//! Bulk API 2.0 query jobs: create a job, poll it until Salesforce has run the query, then
//! read the CSV result sets (following `Sforce-Locator`) into the same [`SObject`]s that the
//! REST query returns.
//!
//! Every request goes through the client's `send` (token refresh, retries of transient
//! errors, API usage tracking, [`SalesforceClient::calls`]): one create (a write), one read
//! per status poll and one read per result set.
//!
//! Values are typed with the object's describe so that a record read here equals the same
//! record read by [`SalesforceClient::query`]:
//!
//! | describe type | CSV | value |
//! |---|---|---|
//! | any | empty | `null` |
//! | `boolean` | `true` / `false` | JSON bool |
//! | `int`, `long`, `double`, `currency`, `percent` | `100.0`, `0.25` | JSON number; integral values as integers (`100`), as REST writes them |
//! | `datetime` | `2026-11-22T10:00:00.000Z` | `2026-11-22T10:00:00.000+0000`, REST's spelling |
//! | anything else | text | JSON string |
//!
//! Relationship columns (`Account.Name`) become nested objects (`{"Account": {"Name": ..}}`)
//! as in REST results, `null` when all their columns are empty; their values are strings
//! (the describe passed in is the queried object's only).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::client::SalesforceClient;
use crate::error::{ErrorClass, SfError};
use crate::types::{parse_datetime, Describe, Fields, SObject};

/// How a bulk query job is waited for and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkQueryOptions {
    /// Records per result set (`maxRecords`); `None` lets Salesforce choose.
    pub max_records: Option<u32>,
    /// Wait before the first status poll; each further wait doubles, up to `poll_max`.
    pub poll_initial: Duration,
    /// Longest wait between two status polls.
    pub poll_max: Duration,
    /// Longest time from creating the job to its completion. Past it the job is aborted and
    /// [`BulkJobError::Timeout`] is returned.
    pub deadline: Duration,
}

impl Default for BulkQueryOptions {
    /// Sets of 10,000 records (a set is read and parsed whole, so its size bounds the
    /// memory of a read; 50 result calls for 500,000 records, where REST takes 250 pages);
    /// polls after 500 ms, 1 s, 2 s, ... up to every 10 s; gives up after 10 minutes.
    fn default() -> Self {
        BulkQueryOptions {
            max_records: Some(10_000),
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(10),
            deadline: Duration::from_secs(600),
        }
    }
}

/// Why a bulk query job gave no results. `Display` names the job and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkJobError {
    /// The job ended in state `Failed`.
    #[error(
        "Salesforce Bulk API 2.0 query job {job_id} failed: {message}. Fix: check the query \
         (object and field names, and none of GROUP BY, OFFSET, TYPEOF, COUNT() or nested \
         SELECT, which Bulk API 2.0 does not run); if Salesforce reports a timeout, add a \
         selective WHERE filter or drop ORDER BY/LIMIT (they turn off PK chunking), then run \
         again. The job is listed under Setup > Bulk Data Load Jobs"
    )]
    Failed { job_id: String, message: String },

    /// The job ended in state `Aborted` (by someone else).
    #[error(
        "Salesforce Bulk API 2.0 query job {job_id} was aborted before it finished{}. Fix: it \
         was aborted in Setup > Bulk Data Load Jobs or through the API; run again",
        if message.is_empty() { String::new() } else { format!(" ({message})") }
    )]
    Aborted { job_id: String, message: String },

    /// The job did not finish within [`BulkQueryOptions::deadline`]; prmsync asked Salesforce
    /// to abort it.
    #[error(
        "Salesforce Bulk API 2.0 job {job_id} was still {state} after {waited_secs} s, \
         so prmsync stopped waiting and asked Salesforce to abort it. Fix: the org's bulk \
         queue is busy or the query is slow; run again later, add a selective WHERE filter, or \
         allow more time (BulkQueryOptions::deadline)"
    )]
    Timeout {
        job_id: String,
        state: String,
        waited_secs: u64,
    },
}

impl BulkJobError {
    /// The job's Id.
    pub fn job_id(&self) -> &str {
        match self {
            BulkJobError::Failed { job_id, .. }
            | BulkJobError::Aborted { job_id, .. }
            | BulkJobError::Timeout { job_id, .. } => job_id,
        }
    }

    /// Timeouts are worth trying again later; failed and aborted jobs need a look first.
    pub fn class(&self) -> ErrorClass {
        match self {
            BulkJobError::Timeout { .. } => ErrorClass::Transient,
            BulkJobError::Failed { .. } | BulkJobError::Aborted { .. } => ErrorClass::Other,
        }
    }
}

/// The job info fields the client reads (query and ingest jobs).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobInfo {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) object: String,
    #[serde(default)]
    pub(crate) error_message: Option<String>,
    #[serde(default)]
    pub(crate) column_delimiter: Option<String>,
    #[serde(default)]
    pub(crate) number_records_processed: u64,
    #[serde(default)]
    pub(crate) number_records_failed: u64,
}

/// Where the reading of a finished query job's result sets stands. It survives as a
/// short token ([`token`](Self::token), [`from_token`](Self::from_token)), so a read can
/// hand its next page out like a REST `nextRecordsUrl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkResults {
    job_id: String,
    delimiter: u8,
    locator: Option<String>,
    done: bool,
}

impl BulkResults {
    const PREFIX: &'static str = "bulk-query:";

    /// The job's id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// Every result set is read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// `bulk-query:<job id>:<delimiter byte>:<locator>`.
    pub fn token(&self) -> String {
        format!(
            "{}{}:{}:{}",
            Self::PREFIX,
            self.job_id,
            self.delimiter,
            self.locator.as_deref().unwrap_or("")
        )
    }

    /// Reads a [`token`](Self::token) back; `None` for anything else (a REST page URL).
    pub fn from_token(token: &str) -> Option<Self> {
        let rest = token.strip_prefix(Self::PREFIX)?;
        let mut parts = rest.splitn(3, ':');
        let job_id = parts.next().filter(|j| !j.is_empty())?.to_string();
        let delimiter = parts.next()?.parse::<u8>().ok()?;
        let locator = parts.next()?;
        Some(BulkResults {
            job_id,
            delimiter,
            locator: (!locator.is_empty()).then(|| locator.to_string()),
            done: false,
        })
    }
}

/// The byte of a `columnDelimiter` value.
pub(crate) fn delimiter_byte(name: Option<&str>) -> Result<u8, SfError> {
    Ok(match name.unwrap_or("COMMA") {
        "COMMA" => b',',
        "TAB" => b'\t',
        "SEMICOLON" => b';',
        "PIPE" => b'|',
        "CARET" => b'^',
        "BACKQUOTE" => b'`',
        other => {
            return Err(SfError::decode(
                "a Bulk API 2.0 query job",
                format!("unknown columnDelimiter {other}"),
            ))
        }
    })
}

impl SalesforceClient {
    /// Runs `soql` as a Bulk API 2.0 query job (`queryAll` when `all`: deleted and archived
    /// rows too) with [`BulkQueryOptions::default`], and hands each result set to `on_page`.
    /// `describe` is the queried object's describe; it types the CSV values so that each
    /// record equals the one REST returns: empty is null, `boolean` a bool, `int`, `double`,
    /// `currency` and `percent` numbers (integral ones as integers), `datetime` in REST's
    /// `...+0000` spelling, the rest strings; `Account.Name` columns become nested objects.
    /// Select `Id` to get [`SObject::id`].
    ///
    /// Bulk API 2.0 refuses `GROUP BY`, `OFFSET`, `TYPEOF`, aggregate functions such as
    /// `COUNT()` and parent-to-child subqueries; `ORDER BY` and `LIMIT` work but make the
    /// job slower.
    pub async fn bulk_query_pages(
        &self,
        soql: &str,
        all: bool,
        describe: &Describe,
        on_page: impl FnMut(Vec<SObject>),
    ) -> Result<(), SfError> {
        self.bulk_query_pages_with(soql, all, describe, &BulkQueryOptions::default(), on_page)
            .await
    }

    /// [`bulk_query_pages`](Self::bulk_query_pages) with explicit polling and paging
    /// options.
    pub async fn bulk_query_pages_with(
        &self,
        soql: &str,
        all: bool,
        describe: &Describe,
        options: &BulkQueryOptions,
        mut on_page: impl FnMut(Vec<SObject>),
    ) -> Result<(), SfError> {
        let mut results = self.bulk_query_start(soql, all, describe, options).await?;
        while let Some(records) = self
            .bulk_query_next(&mut results, describe, options)
            .await?
        {
            on_page(records);
        }
        Ok(())
    }

    /// Creates a Bulk API 2.0 query job for `soql` and waits until Salesforce has run it;
    /// [`bulk_query_next`](Self::bulk_query_next) then reads its result sets one at a time.
    pub async fn bulk_query_start(
        &self,
        soql: &str,
        all: bool,
        describe: &Describe,
        options: &BulkQueryOptions,
    ) -> Result<BulkResults, SfError> {
        let job = self.bulk_create(soql, all).await?;
        if !job.object.is_empty() && !job.object.eq_ignore_ascii_case(&describe.name) {
            return Err(SfError::Config(format!(
                "bulk query job {} reads {} but the describe passed to type its values is \
                 {}'s; pass the describe of the queried object",
                job.id, job.object, describe.name
            )));
        }
        let done = self
            .bulk_wait(
                "query",
                &job.id,
                options.poll_initial,
                options.poll_max,
                options.deadline,
            )
            .await?;
        let delimiter = delimiter_byte(
            done.column_delimiter
                .as_deref()
                .or(job.column_delimiter.as_deref()),
        )?;
        Ok(BulkResults {
            job_id: job.id,
            delimiter,
            locator: None,
            done: false,
        })
    }

    /// The next result set of a finished job (`GET /jobs/query/{id}/results`, following
    /// `Sforce-Locator`); `None` once every set is read.
    pub async fn bulk_query_next(
        &self,
        results: &mut BulkResults,
        describe: &Describe,
        options: &BulkQueryOptions,
    ) -> Result<Option<Vec<SObject>>, SfError> {
        if results.done {
            return Ok(None);
        }
        let path = self.data_path(&format!("/jobs/query/{}/results", results.job_id));
        let accept = [("Accept", "text/csv".to_string())];
        let mut query: Vec<(&str, String)> = Vec::with_capacity(2);
        if let Some(n) = options.max_records {
            query.push(("maxRecords", n.to_string()));
        }
        if let Some(l) = &results.locator {
            query.push(("locator", l.clone()));
        }
        let resp = self
            .send(Method::GET, &path, &query, None, &accept, true)
            .await?;
        let what = || format!("the results of Bulk API 2.0 query job {}", results.job_id);
        let records = parse_results(&resp.body, results.delimiter, describe, &describe.name)
            .map_err(|e| SfError::decode(what(), e))?;
        let header = |name: &str| {
            resp.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        if let Some(n) = header("Sforce-NumberOfRecords").and_then(|n| n.parse::<usize>().ok()) {
            if records.len() != n {
                return Err(SfError::decode(
                    what(),
                    format!(
                        "Sforce-NumberOfRecords says {n} records but the CSV holds {}",
                        records.len()
                    ),
                ));
            }
        }
        let next = header("Sforce-Locator")
            .filter(|l| !l.eq_ignore_ascii_case("null"))
            .map(str::to_string);
        match next {
            Some(l) if results.locator.as_deref() == Some(l.as_str()) => {
                return Err(SfError::decode(
                    what(),
                    format!("Sforce-Locator {l} points at the set just read"),
                ))
            }
            Some(l) => results.locator = Some(l),
            None => results.done = true,
        }
        Ok(Some(records))
    }

    /// `POST /jobs/query`.
    async fn bulk_create(&self, soql: &str, all: bool) -> Result<JobInfo, SfError> {
        let body = json!({
            "operation": if all { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        let path = self.data_path("/jobs/query");
        // Creating a query job changes no data; re-sending it after a timeout at worst
        // leaves one extra job behind, so it is retried like a read.
        let job: JobInfo = self
            .send(Method::POST, &path, &[], Some(&body), &[], true)
            .await?
            .json("the creation of a Bulk API 2.0 query job")?;
        tracing::debug!(job_id = %job.id, state = %job.state, "bulk query job created");
        Ok(job)
    }

    /// Polls `GET /jobs/{kind}/{id}` (`kind` is `query` or `ingest`) with a doubling wait,
    /// from `poll_initial` up to `poll_max`, until the job is `JobComplete`; a `Failed` or
    /// `Aborted` job is a [`BulkJobError`], and so is one still running at `deadline`
    /// (which is then aborted).
    pub(crate) async fn bulk_wait(
        &self,
        kind: &str,
        job_id: &str,
        poll_initial: Duration,
        poll_max: Duration,
        deadline: Duration,
    ) -> Result<JobInfo, SfError> {
        let path = self.data_path(&format!("/jobs/{kind}/{job_id}"));
        let started = Instant::now();
        let mut wait = poll_initial;
        let mut state = String::from("UploadComplete");
        loop {
            let elapsed = started.elapsed();
            if elapsed >= deadline {
                self.bulk_abort(kind, job_id).await;
                return Err(BulkJobError::Timeout {
                    job_id: job_id.to_string(),
                    state,
                    waited_secs: elapsed.as_secs(),
                }
                .into());
            }
            let pause = wait.min(deadline - elapsed);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let info: JobInfo = self
                .send(Method::GET, &path, &[], None, &[], true)
                .await?
                .json("a Bulk API 2.0 job")?;
            tracing::debug!(job_id, kind, state = %info.state, "bulk job polled");
            match info.state.as_str() {
                "JobComplete" => return Ok(info),
                "Failed" => {
                    return Err(BulkJobError::Failed {
                        job_id: job_id.to_string(),
                        message: info
                            .error_message
                            .filter(|m| !m.trim().is_empty())
                            .unwrap_or_else(|| "Salesforce gave no error message".into()),
                    }
                    .into())
                }
                "Aborted" => {
                    return Err(BulkJobError::Aborted {
                        job_id: job_id.to_string(),
                        message: info.error_message.unwrap_or_default(),
                    }
                    .into())
                }
                // UploadComplete, InProgress (and states added later): still running.
                _ => state = info.state,
            }
            wait = wait.saturating_mul(2).min(poll_max.max(poll_initial));
        }
    }

    /// Best-effort `PATCH /jobs/{kind}/{id}` `{"state": "Aborted"}` (errors are only logged).
    pub(crate) async fn bulk_abort(&self, kind: &str, job_id: &str) {
        let path = self.data_path(&format!("/jobs/{kind}/{job_id}"));
        let body = json!({"state": "Aborted"});
        if let Err(e) = self
            .send(Method::PATCH, &path, &[], Some(&body), &[], false)
            .await
        {
            tracing::warn!(job_id, kind, error = %e, "could not abort the bulk job");
        }
    }
}

/// How one CSV column becomes a field value.
struct Column {
    /// Field path: `["Name"]`, or `["Account", "Name"]` for a relationship column.
    path: Vec<String>,
    /// Lower-case describe type of a root field (`""` when unknown).
    kind: String,
}

fn columns(headers: &csv::StringRecord, describe: &Describe) -> Vec<Column> {
    headers
        .iter()
        .map(|h| {
            let h = h.trim_start_matches('\u{feff}');
            let mut path: Vec<String> = h.split('.').map(str::to_string).collect();
            let mut kind = String::new();
            if path.len() == 1 {
                if let Some(f) = describe.field(h) {
                    path[0] = f.name.clone();
                    kind = f.field_type.to_ascii_lowercase();
                }
            }
            Column { path, kind }
        })
        .collect()
}

/// One result set as records of `object`.
fn parse_results(
    body: &[u8],
    delimiter: u8,
    describe: &Describe,
    object: &str,
) -> Result<Vec<SObject>, csv::Error> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(body);
    let cols = columns(reader.headers()?, describe);
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row?;
        let mut fields = Fields::new();
        for (col, raw) in cols.iter().zip(row.iter()) {
            insert_path(&mut fields, &col.path, convert(&col.kind, raw));
        }
        for v in fields.values_mut() {
            null_empty_parents(v);
        }
        let id = fields
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        out.push(SObject {
            object: object.to_string(),
            id,
            fields,
        });
    }
    Ok(out)
}

/// A CSV value typed by the describe type of its field.
fn convert(kind: &str, raw: &str) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    match kind {
        "boolean" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_string()),
        },
        "int" | "long" | "double" | "currency" | "percent" => number(raw),
        "datetime" => match parse_datetime(raw) {
            Some(t) => Value::String(t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()),
            None => Value::String(raw.to_string()),
        },
        _ => Value::String(raw.to_string()),
    }
}

/// `100.0` -> `100`, `0.25` -> `0.25`; text that is not a number stays text.
///
/// Decimals are read with serde_json's float parser, the one that reads REST query results,
/// so that the same digits give the same `f64` both ways.
fn number(raw: &str) -> Value {
    let raw = raw.trim();
    if let Ok(i) = raw.parse::<i64>() {
        return Value::from(i);
    }
    let parsed = serde_json::from_str::<f64>(raw).or_else(|_| raw.parse::<f64>());
    match parsed {
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
        Ok(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    }
}

fn insert_path(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(child) = entry {
                insert_path(child, rest, value);
            }
        }
    }
}

/// A relationship object whose values are all null is a null parent (REST writes
/// `"Account": null` when there is no Account).
fn null_empty_parents(v: &mut Value) {
    if let Value::Object(m) = v {
        for child in m.values_mut() {
            null_empty_parents(child);
        }
        if m.values().all(Value::is_null) {
            *v = Value::Null;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FieldDescribe;

    fn describe() -> Describe {
        let field = |name: &str, t: &str| {
            serde_json::from_value::<FieldDescribe>(json!({"name": name, "type": t})).unwrap()
        };
        Describe {
            name: "Opportunity".into(),
            label: "Opportunity".into(),
            fields: vec![
                field("Id", "id"),
                field("Name", "string"),
                field("Amount", "currency"),
                field("Probability", "percent"),
                field("Seats__c", "int"),
                field("IsWon", "boolean"),
                field("CloseDate", "date"),
                field("SystemModstamp", "datetime"),
            ],
        }
    }

    #[test]
    fn values_are_typed_like_rest() {
        let csv = "\"ID\",\"name\",\"Amount\",\"Probability\",\"Seats__c\",\"IsWon\",\"CloseDate\",\"SystemModstamp\",\"Account.Name\",\"Account.Owner.Email\"\n\
                   \"006A\",\"Smith, \"\"Jr\"\"\nline 2\",\"100.0\",\"12.5\",\"-3\",\"false\",\"2026-12-01\",\"2026-11-22T10:15:30.123Z\",\"Acme\",\n\
                   \"006B\",,,,,\"true\",,,,\n";
        let recs = parse_results(csv.as_bytes(), b',', &describe(), "Opportunity").unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].object, "Opportunity");
        assert_eq!(recs[0].id, "006A");
        assert_eq!(
            Value::Object(recs[0].fields.clone()),
            json!({
                "Id": "006A", "Name": "Smith, \"Jr\"\nline 2", "Amount": 100, "Probability": 12.5,
                "Seats__c": -3, "IsWon": false, "CloseDate": "2026-12-01",
                "SystemModstamp": "2026-11-22T10:15:30.123+0000",
                "Account": {"Name": "Acme", "Owner": null}
            })
        );
        assert_eq!(
            Value::Object(recs[1].fields.clone()),
            json!({
                "Id": "006B", "Name": null, "Amount": null, "Probability": null,
                "Seats__c": null, "IsWon": true, "CloseDate": null, "SystemModstamp": null,
                "Account": null
            })
        );
        // The fields read equal what REST answers for the same record.
        let rest = SObject::from_json(json!({
            "attributes": {"type": "Opportunity", "url": "/services/data/v62.0/sobjects/Opportunity/006A"},
            "Id": "006A", "Name": "Smith, \"Jr\"\nline 2", "Amount": 100, "Probability": 12.5,
            "Seats__c": -3, "IsWon": false, "CloseDate": "2026-12-01",
            "SystemModstamp": "2026-11-22T10:15:30.123+0000",
            "Account": {"attributes": {"type": "Account"}, "Name": "Acme", "Owner": null}
        }))
        .unwrap();
        assert_eq!(recs[0], rest);
    }

    #[test]
    fn numbers_and_odd_values() {
        assert_eq!(number("100.0"), json!(100));
        assert_eq!(number("1.0E7"), json!(10_000_000));
        assert_eq!(number("0.25"), json!(0.25));
        assert_eq!(number("abc"), json!("abc"));
        assert_eq!(convert("boolean", "maybe"), json!("maybe"));
        assert_eq!(convert("datetime", "not a date"), json!("not a date"));
        assert_eq!(convert("string", ""), Value::Null);
    }

    #[test]
    fn empty_and_ragged_sets() {
        let recs = parse_results(b"\"Id\",\"Name\"\n", b',', &describe(), "Opportunity").unwrap();
        assert!(recs.is_empty());
        assert!(parse_results(b"", b',', &describe(), "Opportunity")
            .unwrap()
            .is_empty());
        assert!(parse_results(
            b"\"Id\",\"Name\"\n\"1\"\n",
            b',',
            &describe(),
            "Opportunity"
        )
        .is_err());
        let recs = parse_results(b"Id|Name\r\n1|a\r\n", b'|', &describe(), "Opportunity").unwrap();
        assert_eq!(recs[0].str("Name"), Some("a"));
    }

    #[test]
    fn errors_name_the_job_and_the_fix() {
        let e = SfError::from(BulkJobError::Failed {
            job_id: "750X".into(),
            message: "QUERY_TIMEOUT".into(),
        });
        let text = e.to_string();
        assert!(text.contains("750X") && text.contains("QUERY_TIMEOUT") && text.contains("Fix:"));
        assert_eq!(e.class(), ErrorClass::Other);
        let e = SfError::from(BulkJobError::Timeout {
            job_id: "750Y".into(),
            state: "InProgress".into(),
            waited_secs: 600,
        });
        assert!(e.to_string().contains("750Y") && e.to_string().contains("InProgress"));
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(BulkJobError::Aborted {
            job_id: "750Z".into(),
            message: String::new()
        }
        .to_string()
        .contains("750Z was aborted before it finished. Fix:"));
    }
}
