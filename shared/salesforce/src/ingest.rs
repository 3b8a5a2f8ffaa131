//! Bulk API 2.0 ingest jobs: many record writes for a handful of calls, with the same
//! per-record results as sObject Collections.
//!
//! One write becomes one job per object and operation (more when the CSV would pass the
//! upload limit): create (`POST /jobs/ingest`), upload (`PUT .../batches`, the CSV streamed
//! from one buffer), close (`PATCH` `UploadComplete`), status polled with a doubling wait,
//! then only the result sets needed: none for an update job whose every record succeeded,
//! `successfulResults` for the Ids an upsert gave, `failedResults` when any failed and
//! `unprocessedrecords` when the job failed as a whole. Six calls at most per job, whatever
//! its size, where Collections take one per 200 records.
//!
//! Each record gets the [`RecordResult`] that Collections would give it:
//! - `sf__Id` and `sf__Created` of a success are its `id` and `created`;
//! - `sf__Error` (`CODE:message:fields --`) of a failure is its `RecordError`, same code,
//!   message and fields;
//! - records that failed only with a passing error (`UNABLE_TO_LOCK_ROW`), and the records
//!   of a job that failed as a whole, was aborted, or could not be run (its creation refused,
//!   a lost connection), are written again through Collections, which retry row locks as
//!   they always do. A whole-job failure is logged with the job's Id and Salesforce's
//!   message.
//!
//! Results are matched to records by the key column (`Id` for updates, the external ID
//! field for upserts), since Salesforce does not keep the upload's order in them.
//!
//! Values are written as Bulk API 2.0 reads them: null and the empty string as `#N/A`
//! (an empty CSV value would leave the field unchanged, where REST sets it to null),
//! checkboxes `true`/`false`, numbers as JSON writes them, datetimes in UTC with `Z`, dates
//! and text as they are; a field a record does not carry is an empty value, which leaves
//! it as it is.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::bulk::{delimiter_byte, BulkJobError, JobInfo};
use crate::client::record_error_from;
use crate::client::request::Body;
use crate::client::SalesforceClient;
use crate::error::{ErrorClass, SfError};
use crate::types::{parse_datetime, Describe, Fields, RecordError, RecordResult};

/// How ingest jobs are sized and waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    /// Wait before the first status poll; each further wait doubles, up to `poll_max`.
    pub poll_initial: Duration,
    /// Longest wait between two status polls.
    pub poll_max: Duration,
    /// Longest time from closing a job to its end. Past it the job is aborted and its
    /// unprocessed records go through Collections.
    pub deadline: Duration,
    /// Most CSV bytes in one job; more records make more jobs. Salesforce takes 150 MB of
    /// base64 per upload, which is 100 MB of CSV.
    pub max_upload_bytes: usize,
}

impl Default for IngestOptions {
    /// Polls after 200 ms, 400 ms, 800 ms, ... up to every 10 s; gives up after 30
    /// minutes; jobs of up to 100 MB.
    fn default() -> Self {
        IngestOptions {
            poll_initial: Duration::from_millis(200),
            poll_max: Duration::from_secs(10),
            deadline: Duration::from_secs(1800),
            max_upload_bytes: 100 * 1024 * 1024,
        }
    }
}

/// What an ingest job does to each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOperation<'a> {
    /// Update by `Id` (each record carries its Id).
    Update,
    /// Upsert on this External ID field (each record carries its value).
    Upsert { external_id_field: &'a str },
}

impl IngestOperation<'_> {
    fn name(self) -> &'static str {
        match self {
            IngestOperation::Update => "update",
            IngestOperation::Upsert { .. } => "upsert",
        }
    }
}

/// The CSV of a write: the header, and each record's cells.
#[derive(Debug)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The columns of `records` (the key first, then every other field in the order first
/// seen) and each record's cells. No I/O.
fn table(records: &[Fields], key: &str, describe: &Describe) -> Table {
    let mut header: Vec<String> = vec![key.to_string()];
    let mut at: HashMap<String, usize> = HashMap::from([(key.to_ascii_lowercase(), 0)]);
    for r in records {
        for k in r.keys() {
            if k == "attributes" {
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) =
                at.entry(k.to_ascii_lowercase())
            {
                slot.insert(header.len());
                header.push(k.clone());
            }
        }
    }
    let kinds: Vec<String> = header
        .iter()
        .map(|h| {
            describe
                .field(h)
                .map(|f| f.field_type.to_ascii_lowercase())
                .unwrap_or_default()
        })
        .collect();
    let rows = records
        .iter()
        .map(|r| {
            let mut row = vec![String::new(); header.len()];
            for (k, v) in r {
                if let Some(&i) = at.get(&k.to_ascii_lowercase()) {
                    if k != "attributes" {
                        row[i] = cell(&kinds[i], v);
                    }
                }
            }
            row
        })
        .collect();
    Table { header, rows }
}

/// A value as Bulk API 2.0 reads it.
fn cell(kind: &str, v: &Value) -> String {
    match v {
        Value::Null => "#N/A".into(),
        Value::String(s) if s.is_empty() => "#N/A".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if kind == "datetime" => parse_datetime(s)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| s.clone()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows `range` of `table` as one upload.
fn csv_bytes(table: &Table, range: std::ops::Range<usize>) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(&table.header)?;
    for row in &table.rows[range] {
        w.write_record(row)?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// Consecutive row ranges whose CSV stays within `max_bytes` (a row larger than that alone
/// still makes a job of its own: Salesforce refuses it, and Collections take it).
fn job_ranges(table: &Table, max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let size = |cells: &[String]| cells.iter().map(|c| c.len() * 2 + 3).sum::<usize>() + 1;
    let header = size(&table.header);
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, header);
    for (i, row) in table.rows.iter().enumerate() {
        let n = size(row);
        if i > start && bytes + n > max_bytes {
            out.push(start..i);
            start = i;
            bytes = header;
        }
        bytes += n;
    }
    if start < table.rows.len() {
        out.push(start..table.rows.len());
    }
    out
}

/// `sf__Error` read back into a per-record error: `CODE:message:fields --`.
pub fn parse_error_text(text: &str) -> RecordError {
    let text = text.trim();
    let body = text.strip_suffix("--").map_or(text, str::trim_end);
    let (code, rest) = body.split_once(':').unwrap_or((body, ""));
    let (message, fields) = match rest.rsplit_once(':') {
        Some((m, f)) if f.split(',').all(|n| is_api_name(n.trim())) => (m, f),
        _ => (rest, ""),
    };
    RecordError {
        status_code: code.trim().to_string(),
        message: message.to_string(),
        fields: fields
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

fn is_api_name(s: &str) -> bool {
    s.is_empty()
        || (s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && s.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// One row of a result set: its key cell, and what Salesforce said of it.
#[derive(Debug, PartialEq)]
struct ResultRow {
    key: String,
    result: RecordResult,
}

/// A `successfulResults` or `failedResults` set. `key` is the key column's name.
fn parse_results(body: &[u8], delimiter: u8, key: &str) -> Result<Vec<ResultRow>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(body);
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
    };
    let key_at = col(key).ok_or_else(|| format!("no {key} column"))?;
    let (id_at, created_at, error_at) = (col("sf__Id"), col("sf__Created"), col("sf__Error"));
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| e.to_string())?;
        let get = |i: Option<usize>| i.and_then(|i| row.get(i)).filter(|v| !v.is_empty());
        let id = get(id_at).map(str::to_string);
        let result = match get(error_at) {
            Some(e) => RecordResult {
                id,
                created: None,
                errors: vec![parse_error_text(e)],
            },
            None if error_at.is_some() => RecordResult {
                id,
                created: None,
                errors: vec![RecordError {
                    status_code: "UNKNOWN_EXCEPTION".into(),
                    message: "Salesforce listed the record as failed without an error".into(),
                    fields: vec![],
                }],
            },
            None => RecordResult {
                id,
                created: get(created_at).map(|c| c.eq_ignore_ascii_case("true")),
                errors: vec![],
            },
        };
        out.push(ResultRow {
            key: row.get(key_at).unwrap_or_default().to_string(),
            result,
        });
    }
    Ok(out)
}

impl SalesforceClient {
    /// Writes `records` of `object` through Bulk API 2.0 ingest jobs (see the module
    /// documentation): one result per record, in order, as Collections give them. Records
    /// of an update carry their `Id`; those of an upsert their external ID value.
    pub async fn ingest(
        &self,
        object: &str,
        operation: IngestOperation<'_>,
        records: Vec<Fields>,
        options: &IngestOptions,
    ) -> Result<Vec<RecordResult>, SfError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let describe = self.describe_cached(object).await?;
        let key = match operation {
            IngestOperation::Upsert { external_id_field } => external_id_field,
            IngestOperation::Update => "Id",
        };
        let table = table(&records, key, &describe);
        let mut results: Vec<Option<RecordResult>> = vec![None; records.len()];
        for range in job_ranges(&table, options.max_upload_bytes) {
            if self.ingest_refused().load(Ordering::Relaxed) {
                break;
            }
            let count = range.len();
            if let Err(e) = self
                .ingest_job(object, operation, &table, range, &mut results, options)
                .await
            {
                tracing::warn!(
                    object,
                    operation = operation.name(),
                    records = count,
                    error = %e,
                    "a Bulk API 2.0 ingest job did not finish; its records not processed go \
                     through sObject Collections"
                );
                self.notice(format!(
                    "A Salesforce Bulk API 2.0 ingest job ({} of {count} {object} records) \
                     could not be completed ({}); the records it did not settle went through \
                     sObject Collections",
                    operation.name(),
                    e.code().unwrap_or("the call failed")
                ));
                // The org's limit or a rejected session stops the next jobs too; the
                // Collections below meet it and report it as they always do.
                if e.is_limit() || e.class() == ErrorClass::Auth {
                    break;
                }
            }
        }
        // Row locks, and records no job settled, go again through Collections.
        let again: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| match r {
                None => true,
                Some(r) => {
                    !r.is_success() && r.errors.iter().all(|e| e.class() == ErrorClass::Transient)
                }
            })
            .map(|(i, _)| i)
            .collect();
        if !again.is_empty() {
            let mut rows: Vec<Option<Fields>> = records.into_iter().map(Some).collect();
            let taken: Vec<Fields> = again.iter().filter_map(|&i| rows[i].take()).collect();
            let written = match operation {
                IngestOperation::Update => {
                    let by_id = taken
                        .into_iter()
                        .map(|mut f| {
                            let id = f
                                .remove("Id")
                                .and_then(|v| v.as_str().map(str::to_string))
                                .unwrap_or_default();
                            (id, f)
                        })
                        .collect();
                    self.update(object, by_id).await
                }
                IngestOperation::Upsert { external_id_field } => {
                    self.upsert(object, external_id_field, taken).await
                }
            };
            // As with Collections: a call failing as a whole is the caller's error unless
            // some records were written, which keep their results.
            let written = match written {
                Ok(w) => w,
                Err(e) if results.iter().flatten().any(RecordResult::is_success) => {
                    let error = record_error_from(&e);
                    vec![RecordResult::failed(error); again.len()]
                }
                Err(e) => return Err(e),
            };
            for (i, r) in again.into_iter().zip(written) {
                results[i] = Some(r);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every record has a result"))
            .collect())
    }

    /// One job over rows `range` of `table`; fills `results` for the rows Salesforce
    /// processed. An error leaves the rest unset.
    async fn ingest_job(
        &self,
        object: &str,
        operation: IngestOperation<'_>,
        table: &Table,
        range: std::ops::Range<usize>,
        results: &mut [Option<RecordResult>],
        options: &IngestOptions,
    ) -> Result<(), SfError> {
        let csv = csv_bytes(table, range.clone())
            .map_err(|e| SfError::decode("the CSV of a Bulk API 2.0 ingest job", e))?;
        let mut body = json!({
            "object": object,
            "operation": operation.name(),
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        if let IngestOperation::Upsert { external_id_field } = operation {
            body["externalIdFieldName"] = Value::String(external_id_field.to_string());
        }
        // Creating a job writes nothing; a re-sent creation leaves an empty job at worst.
        let path = self.data_path("/jobs/ingest");
        let created = self
            .send(Method::POST, &path, &[], Some(&body), &[], true)
            .await;
        if let Err(e) = &created {
            if matches!(
                e.class(),
                ErrorClass::Setup | ErrorClass::Data | ErrorClass::Other | ErrorClass::Gone
            ) && !e.is_limit()
                && !self.ingest_refused().swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    object,
                    error = %e,
                    "Salesforce refused a Bulk API 2.0 ingest job, so this client writes \
                     through sObject Collections only from now on. Fix: Bulk API 2.0 needs the \
                     integration user's \"API Enabled\" permission and the object's create and \
                     edit rights; or set [salesforce] bulk_ingest_threshold = 0 in the mapping \
                     to stop trying"
                );
            }
        }
        let job: JobInfo = created?.json("the creation of a Bulk API 2.0 ingest job")?;
        let job_id = job.id;
        let data = bytes::Bytes::from(csv);
        // The upload and the close are not re-sent after a lost answer: a second upload
        // fails the job, a second close is refused.
        let sent = async {
            self.send_body(
                Method::PUT,
                &self.data_path(&format!("/jobs/ingest/{job_id}/batches")),
                &[],
                Some(Body::Csv(&data)),
                &[],
                false,
            )
            .await?;
            self.send(
                Method::PATCH,
                &self.data_path(&format!("/jobs/ingest/{job_id}")),
                &[],
                Some(&json!({"state": "UploadComplete"})),
                &[],
                false,
            )
            .await
        }
        .await;
        drop(data);
        if let Err(e) = sent {
            self.bulk_abort("ingest", &job_id).await;
            return Err(e);
        }
        let info = self
            .bulk_wait(
                "ingest",
                &job_id,
                options.poll_initial,
                options.poll_max,
                options.deadline,
            )
            .await;
        // Which result sets to read: a finished job's counts tell; a job that failed or was
        // aborted may have written some records, so all three are read.
        let (complete, read_successes, read_failures, all_updated) = match &info {
            Ok(i) => (
                true,
                i.number_records_processed > i.number_records_failed,
                i.number_records_failed > 0,
                i.number_records_failed == 0
                    && i.number_records_processed == range.len() as u64
                    && operation == IngestOperation::Update,
            ),
            Err(SfError::BulkJob(e)) => {
                tracing::warn!(
                    job_id,
                    object,
                    error = %e,
                    "a Bulk API 2.0 ingest job failed as a whole; the records it did not \
                     process go through sObject Collections"
                );
                let why = match e {
                    BulkJobError::Failed { message, .. } => format!("failed: {message}"),
                    BulkJobError::Aborted { .. } => "was aborted".to_string(),
                    BulkJobError::Timeout { waited_secs, .. } => {
                        format!("was still running after {waited_secs} s and was aborted")
                    }
                };
                self.notice(format!(
                    "Salesforce Bulk API 2.0 ingest job {job_id} ({} of {} {object} records) \
                     {why}; the records it did not write went through sObject Collections",
                    operation.name(),
                    range.len()
                ));
                (false, true, true, false)
            }
            Err(_) => return info.map(|_| ()),
        };
        // Every record of an update job succeeded: its Ids are the ones sent, no result set
        // to read.
        if all_updated {
            for i in range {
                results[i] = Some(RecordResult {
                    id: Some(table.rows[i][0].clone()),
                    created: None,
                    errors: vec![],
                });
            }
            return Ok(());
        }
        let key = table.header[0].as_str();
        // Which rows of this job a key cell names (one key may name several rows when it
        // is repeated; they are answered in order).
        let mut by_key: HashMap<&str, VecDeque<usize>> = HashMap::new();
        for i in range.clone() {
            by_key
                .entry(table.rows[i][0].as_str())
                .or_default()
                .push_back(i);
        }
        let mut take = |set: Vec<ResultRow>, results: &mut [Option<RecordResult>]| {
            for row in set {
                if let Some(i) = by_key
                    .get_mut(row.key.as_str())
                    .and_then(VecDeque::pop_front)
                {
                    results[i] = Some(row.result);
                }
            }
        };
        if read_successes {
            let set = self
                .ingest_results(&job_id, "successfulResults", key)
                .await?;
            take(set, results);
        }
        if read_failures {
            let set = self.ingest_results(&job_id, "failedResults", key).await?;
            take(set, results);
        }
        if !complete {
            let unprocessed = self
                .ingest_results(&job_id, "unprocessedrecords", key)
                .await?;
            tracing::info!(
                job_id,
                unprocessed = unprocessed.len(),
                "records a failed Bulk API 2.0 ingest job left go through sObject Collections"
            );
        }
        Ok(())
    }

    /// One result set of a finished ingest job.
    async fn ingest_results(
        &self,
        job_id: &str,
        set: &str,
        key: &str,
    ) -> Result<Vec<ResultRow>, SfError> {
        let path = self.data_path(&format!("/jobs/ingest/{job_id}/{set}"));
        let accept = [("Accept", "text/csv".to_string())];
        let resp = self
            .send(Method::GET, &path, &[], None, &accept, true)
            .await?;
        let delimiter = delimiter_byte(Some("COMMA"))?;
        parse_results(&resp.body, delimiter, key).map_err(|e| {
            SfError::decode(format!("the {set} of Bulk API 2.0 ingest job {job_id}"), e)
        })
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
            name: "Account".into(),
            label: "Account".into(),
            fields: vec![
                field("Id", "id"),
                field("Name", "string"),
                field("Seats__c", "double"),
                field("Active__c", "boolean"),
                field("Seen__c", "datetime"),
                field("PRM_Id__c", "string"),
            ],
        }
    }

    fn fields(v: Value) -> Fields {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn cells_are_written_as_bulk_api_reads_them() {
        let records = vec![
            fields(
                json!({"Id": "001A", "Name": "Smith, \"Jr\"", "Seats__c": 2.5, "Active__c": true}),
            ),
            fields(
                json!({"Id": "001B", "Name": null, "Seen__c": "2026-12-01T10:00:00.000+0000", "Phone": ""}),
            ),
        ];
        let t = table(&records, "Id", &describe());
        // The key first, then the fields in the order first seen (the maps keep names
        // sorted).
        assert_eq!(
            t.header,
            ["Id", "Active__c", "Name", "Seats__c", "Phone", "Seen__c"]
        );
        assert_eq!(t.rows[0], ["001A", "true", "Smith, \"Jr\"", "2.5", "", ""]);
        assert_eq!(
            t.rows[1],
            ["001B", "", "#N/A", "", "#N/A", "2026-12-01T10:00:00.000Z"]
        );
        let csv = String::from_utf8(csv_bytes(&t, 0..2).unwrap()).unwrap();
        assert_eq!(
            csv,
            "Id,Active__c,Name,Seats__c,Phone,Seen__c\n001A,true,\"Smith, \"\"Jr\"\"\",2.5,,\n001B,,#N/A,,#N/A,2026-12-01T10:00:00.000Z\n"
        );
    }

    #[test]
    fn jobs_are_cut_before_the_upload_limit() {
        let records: Vec<Fields> = (0..10)
            .map(|i| fields(json!({"Id": format!("001{i:015}"), "Name": "x".repeat(40)})))
            .collect();
        let t = table(&records, "Id", &describe());
        assert_eq!(job_ranges(&t, usize::MAX), vec![0..10]);
        let ranges = job_ranges(&t, 400);
        assert!(ranges.len() > 1);
        assert_eq!(ranges.first().unwrap().start, 0);
        assert_eq!(ranges.last().unwrap().end, 10);
        for r in &ranges {
            assert!(csv_bytes(&t, r.clone()).unwrap().len() <= 400, "{r:?}");
        }
        // A single row over the limit still makes a job.
        assert_eq!(job_ranges(&t, 10).len(), 10);
    }

    #[test]
    fn errors_are_read_back_as_collections_give_them() {
        let e = parse_error_text("STRING_TOO_LONG:Name: data value too large: xxx:Name --");
        assert_eq!(e.status_code, "STRING_TOO_LONG");
        assert_eq!(e.message, "Name: data value too large: xxx");
        assert_eq!(e.fields, ["Name"]);
        let e = parse_error_text(
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record: --",
        );
        assert_eq!(e.status_code, "UNABLE_TO_LOCK_ROW");
        assert_eq!(
            e.message,
            "unable to obtain exclusive access to this record"
        );
        assert!(e.fields.is_empty());
        assert_eq!(e.class(), ErrorClass::Transient);
        let e = parse_error_text(
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName,Email --",
        );
        assert_eq!(e.fields, ["LastName", "Email"]);
        assert_eq!(e.message, "Required fields are missing: [LastName]");
    }

    #[test]
    fn result_sets_are_read_by_their_key() {
        let ok = b"\"sf__Id\",\"sf__Created\",\"PRM_Id__c\",\"Name\"\n\"001A\",\"true\",\"org-1\",\"A\"\n\"001B\",\"false\",\"org-2\",\"B\"\n";
        let rows = parse_results(ok, b',', "PRM_Id__c").unwrap();
        assert_eq!(rows[0].key, "org-1");
        assert_eq!(rows[0].result.id.as_deref(), Some("001A"));
        assert_eq!(rows[0].result.created, Some(true));
        assert_eq!(rows[1].result.created, Some(false));
        let failed = b"\"sf__Id\",\"sf__Error\",\"Id\",\"Name\"\n\"001C\",\"DUPLICATE_VALUE:Duplicate id specified: 001C: --\",\"001C\",\"C\"\n";
        let rows = parse_results(failed, b',', "Id").unwrap();
        assert_eq!(rows[0].result.errors[0].status_code, "DUPLICATE_VALUE");
        assert!(parse_results(b"", b',', "Id").unwrap().is_empty());
        assert!(parse_results(b"a,b\n1,2\n", b',', "Id").is_err());
    }
}
