//! Bulk API 2.0 ingest jobs (`/services/data/vXX.X/jobs/ingest`).
//!
//! What the simulator does, following the Bulk API 2.0 developer guide:
//!
//! - `POST /jobs/ingest` with `{"object", "operation": "insert"|"update"|"upsert",
//!   "externalIdFieldName" (upsert), "contentType": "CSV", "columnDelimiter", "lineEnding"}`
//!   opens a job (state `Open`). An unknown object, an upsert field that is not an External
//!   ID, or an operation the simulator does not take is refused with 400.
//! - `PUT /jobs/ingest/{id}/batches` (`text/csv`) takes the job's data: 201, no body. More
//!   than the upload limit (150 MB of base64, so 100 MB of CSV; see
//!   [`SalesforceSim::set_bulk_ingest_max_upload`]) is refused with 413. Data can be
//!   uploaded once: a job given two uploads fails at close with Salesforce's "Found multiple
//!   contents for job" message.
//! - `PATCH /jobs/ingest/{id}` `{"state": "UploadComplete"}` closes the job, `{"state":
//!   "Aborted"}` aborts it (its rows are then unprocessed).
//! - `GET /jobs/ingest/{id}` is a poll: `UploadComplete`, then `InProgress` until the
//!   configured number of polls ([`SalesforceSim::set_bulk_ingest_polls`], default 1); at
//!   that poll the rows are written and the job is `JobComplete` (or `Failed`, see
//!   [`SalesforceSim::fail_next_bulk_ingest`]).
//! - `GET /jobs/ingest/{id}/successfulResults`, `/failedResults` and `/unprocessedrecords`
//!   answer CSV: `sf__Id`, `sf__Created` (successes) or `sf__Error` (failures, as
//!   `CODE:message:fields --`), then the row's columns as uploaded. Rows are in upload
//!   order here; the guide does not promise any order.
//! - `DELETE /jobs/ingest/{id}` deletes a finished job; `GET /jobs/ingest` lists the jobs.
//!
//! CSV parsing follows the guide: a header row of field API names (matched ignoring case;
//! an unknown one fails the job with `InvalidBatch : Field name not found`), an empty value
//! leaves the field as it is, `#N/A` sets it to null, everything else is text the field's
//! type must parse (checkboxes `true`/`false`, numbers, dates `2026-12-01`, datetimes in
//! ISO 8601). A row with a different number of columns, or unbalanced quotes, fails the whole
//! job (`InvalidBatch : Failed to parse CSV`).
//!
//! Rows are written in chunks of 200, as Salesforce processes bulk data (a trigger sees 200
//! records at a time), each chunk in one transaction with the same per-record rules as an
//! sObject Collection: an Id (update) or external id value (upsert) given twice in one
//! chunk fails every copy with `DUPLICATE_VALUE`, and the record faults of
//! [`Faults::fail_record_write`](super::Faults::fail_record_write) (a row lock) apply.
//!
//! Every request goes through the same accounting, daily limit, authentication and fault
//! injection as the other REST calls; the kinds are `bulk_ingest_create`,
//! `bulk_ingest_upload`, `bulk_ingest_state`, `bulk_ingest_info`, `bulk_ingest_successful`,
//! `bulk_ingest_failed`, `bulk_ingest_unprocessed`, `bulk_ingest_delete` and
//! `bulk_ingest_list`.

use std::collections::BTreeMap;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, RecordError};
use super::routes::{CollectionOp, Req};
use super::store::Record;
use super::time::format_datetime;
use super::{Inner, SalesforceSim};

/// The most data one upload takes: 150 MB of base64, that is 100 MB of CSV (the guide's
/// advice); larger uploads are refused with 413.
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;

/// Rows Salesforce writes in one transaction.
const CHUNK: usize = 200;

/// Most ingest jobs kept at once; the oldest are deleted first.
const MAX_JOBS: usize = 1_000;

/// A Bulk API 2.0 ingest resource, parsed from the path after the version.
#[derive(Debug)]
pub(super) enum IngestRoute {
    Create,
    List,
    Info(String),
    Upload(String),
    State(String),
    Successful(String),
    Failed(String),
    Unprocessed(String),
    Delete(String),
}

impl IngestRoute {
    pub(super) fn parse(method: &Method, segs: &[&str]) -> Option<IngestRoute> {
        let owned = |s: &str| s.to_string();
        Some(match (method.as_str(), segs) {
            ("POST", ["jobs", "ingest"]) => IngestRoute::Create,
            ("GET", ["jobs", "ingest"]) => IngestRoute::List,
            ("GET", ["jobs", "ingest", id]) => IngestRoute::Info(owned(id)),
            ("PUT", ["jobs", "ingest", id, "batches"]) => IngestRoute::Upload(owned(id)),
            ("PATCH", ["jobs", "ingest", id]) => IngestRoute::State(owned(id)),
            ("GET", ["jobs", "ingest", id, "successfulResults"]) => {
                IngestRoute::Successful(owned(id))
            }
            ("GET", ["jobs", "ingest", id, "failedResults"]) => IngestRoute::Failed(owned(id)),
            ("GET", ["jobs", "ingest", id, "unprocessedrecords"]) => {
                IngestRoute::Unprocessed(owned(id))
            }
            ("DELETE", ["jobs", "ingest", id]) => IngestRoute::Delete(owned(id)),
            _ => return None,
        })
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            IngestRoute::Create => "bulk_ingest_create",
            IngestRoute::List => "bulk_ingest_list",
            IngestRoute::Info(_) => "bulk_ingest_info",
            IngestRoute::Upload(_) => "bulk_ingest_upload",
            IngestRoute::State(_) => "bulk_ingest_state",
            IngestRoute::Successful(_) => "bulk_ingest_successful",
            IngestRoute::Failed(_) => "bulk_ingest_failed",
            IngestRoute::Unprocessed(_) => "bulk_ingest_unprocessed",
            IngestRoute::Delete(_) => "bulk_ingest_delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Open => "Open",
            State::UploadComplete => "UploadComplete",
            State::InProgress => "InProgress",
            State::JobComplete => "JobComplete",
            State::Failed => "Failed",
            State::Aborted => "Aborted",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, State::JobComplete | State::Failed | State::Aborted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Insert,
    Update,
    Upsert,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
        }
    }
}

/// What became of one uploaded row.
#[derive(Debug, Clone)]
enum RowResult {
    Unprocessed,
    Success {
        id: String,
        created: bool,
    },
    Failed {
        id: Option<String>,
        error: RecordError,
    },
}

/// How a job is to fail whole (see [`SalesforceSim::fail_next_bulk_ingest`]).
#[derive(Debug, Clone)]
struct Failure {
    message: String,
    after_rows: usize,
}

#[derive(Debug)]
struct Job {
    id: String,
    object: String,
    operation: Operation,
    external_id: Option<String>,
    version: String,
    created: String,
    modstamp: String,
    created_by: String,
    state: State,
    polls: u32,
    fail_with: Option<Failure>,
    error_message: Option<String>,
    column_delimiter: String,
    line_ending: String,
    uploads: Vec<Vec<u8>>,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    results: Vec<RowResult>,
}

impl Job {
    fn info(&self) -> Value {
        let processed = self
            .results
            .iter()
            .filter(|r| !matches!(r, RowResult::Unprocessed))
            .count();
        let failed = self
            .results
            .iter()
            .filter(|r| matches!(r, RowResult::Failed { .. }))
            .count();
        let mut v = json!({
            "id": self.id,
            "operation": self.operation.as_str(),
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "state": self.state.as_str(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.version.trim_start_matches('v').parse::<f64>().ok(),
            "jobType": "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": processed,
            "numberRecordsFailed": failed,
            "retries": 0,
            "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0,
            "apexProcessingTime": 0,
        });
        if let Some(f) = &self.external_id {
            v["externalIdFieldName"] = Value::String(f.clone());
        }
        if self.state == State::Open {
            v["contentUrl"] = Value::String(format!(
                "services/data/{}/jobs/ingest/{}/batches",
                self.version, self.id
            ));
        }
        if let Some(m) = &self.error_message {
            v["errorMessage"] = Value::String(m.clone());
        }
        v
    }
}

/// Ingest jobs of the org and the knobs tests turn.
#[derive(Debug)]
pub(super) struct IngestJobs {
    jobs: BTreeMap<u64, Job>,
    next: u64,
    polls_to_complete: u32,
    failures: Vec<Failure>,
    max_upload: usize,
}

impl Default for IngestJobs {
    fn default() -> Self {
        IngestJobs {
            jobs: BTreeMap::new(),
            next: 0,
            polls_to_complete: 1,
            failures: Vec::new(),
            max_upload: MAX_UPLOAD_BYTES,
        }
    }
}

impl IngestJobs {
    /// The key of the job with this Id (404 when there is none).
    fn key(&self, id: &str) -> Result<u64, ApiError> {
        self.jobs
            .iter()
            .find(|(_, j)| j.id.eq_ignore_ascii_case(id))
            .map(|(k, _)| *k)
            .ok_or_else(ApiError::not_found)
    }

    fn find(&mut self, id: &str) -> Result<&mut Job, ApiError> {
        let key = self.key(id)?;
        Ok(self.jobs.get_mut(&key).expect("the key was just found"))
    }
}

impl SalesforceSim {
    /// How many status polls a closed ingest job takes to finish; its rows are written at
    /// the last one. Default 1; 0 counts as 1.
    pub fn set_bulk_ingest_polls(&self, polls: u32) {
        self.lock().ingest.polls_to_complete = polls.max(1);
    }

    /// The next ingest job closed ends `Failed` with this `errorMessage` after writing its
    /// first `after_rows` rows (0: none); the rest are unprocessed. Once per call.
    pub fn fail_next_bulk_ingest(&self, message: &str, after_rows: usize) {
        self.lock().ingest.failures.push(Failure {
            message: message.to_string(),
            after_rows,
        });
    }

    /// The most bytes one upload takes (default [`MAX_UPLOAD_BYTES`]).
    pub fn set_bulk_ingest_max_upload(&self, bytes: usize) {
        self.lock().ingest.max_upload = bytes;
    }

    /// Ingest jobs the org holds, as `(object, operation, state, rows)`, oldest first.
    pub fn bulk_ingest_jobs(&self) -> Vec<(String, String, String, usize)> {
        self.lock()
            .ingest
            .jobs
            .values()
            .map(|j| {
                (
                    j.object.clone(),
                    j.operation.as_str().to_string(),
                    j.state.as_str().to_string(),
                    j.rows.len(),
                )
            })
            .collect()
    }
}

fn invalid_state(job: &Job, wanted: &str) -> ApiError {
    ApiError::new(
        400,
        "INVALIDJOBSTATE",
        format!(
            "InvalidJobState : Job {} is {}; {wanted}",
            job.id,
            job.state.as_str()
        ),
    )
}

/// The byte of a `columnDelimiter` name (the query jobs' list).
fn delimiter(name: &str) -> Option<u8> {
    super::bulk::delimiter(name).map(|c| c as u8)
}

impl Inner {
    pub(super) fn ingest(
        &mut self,
        route: IngestRoute,
        req: &Req<'_>,
        faults: &super::Faults,
    ) -> Result<Response, ApiError> {
        let now = format_datetime(self.store.now());
        match route {
            IngestRoute::Create => self.ingest_create(req),
            IngestRoute::List => {
                let records: Vec<Value> = self.ingest.jobs.values().map(Job::info).collect();
                Ok(
                    Json(json!({"done": true, "records": records, "nextRecordsUrl": null}))
                        .into_response(),
                )
            }
            IngestRoute::Upload(id) => {
                let max = self.ingest.max_upload;
                let job = self.ingest.find(&id)?;
                if job.state != State::Open {
                    return Err(invalid_state(
                        job,
                        "data can only be uploaded to an Open job",
                    ));
                }
                if req.body().len() > max {
                    return Err(ApiError::new(
                        413,
                        "REQUEST_ENTITY_TOO_LARGE",
                        format!(
                            "The job data is {} bytes; an upload takes at most {max} bytes. \
                             Split the data over several jobs",
                            req.body().len()
                        ),
                    ));
                }
                job.uploads.push(req.body().to_vec());
                job.modstamp = now;
                Ok(StatusCode::CREATED.into_response())
            }
            IngestRoute::State(id) => {
                let wanted = req.json()?;
                let wanted = wanted.get("state").and_then(Value::as_str).unwrap_or("");
                let key = self.ingest.key(&id)?;
                let IngestJobs { jobs, failures, .. } = &mut self.ingest;
                let job = jobs.get_mut(&key).expect("the key was just found");
                match wanted {
                    "UploadComplete" => {
                        if job.state != State::Open {
                            return Err(invalid_state(job, "only an Open job can be closed"));
                        }
                        job.state = State::UploadComplete;
                        job.modstamp = now;
                        job.fail_with = (!failures.is_empty()).then(|| failures.remove(0));
                        close(job);
                    }
                    "Aborted" => {
                        if job.state.is_final() {
                            return Err(invalid_state(job, "it can no longer be aborted"));
                        }
                        job.state = State::Aborted;
                        job.modstamp = now;
                    }
                    other => {
                        return Err(ApiError::new(
                            400,
                            "INVALIDJOBSTATE",
                            format!("InvalidJobState : a job cannot be set to '{other}'"),
                        ))
                    }
                }
                Ok(Json(job.info()).into_response())
            }
            IngestRoute::Info(id) => {
                let polls_to_complete = self.ingest.polls_to_complete;
                let job = self.ingest.find(&id)?;
                let mut process = false;
                if matches!(job.state, State::UploadComplete | State::InProgress) {
                    job.polls += 1;
                    job.modstamp = now;
                    if job.polls < polls_to_complete {
                        job.state = State::InProgress;
                    } else {
                        process = true;
                    }
                }
                if process {
                    let key = self.ingest.key(&id)?;
                    let mut job = self.ingest.jobs.remove(&key).expect("found above");
                    self.process(&mut job, faults);
                    self.ingest.jobs.insert(key, job);
                }
                Ok(Json(self.ingest.find(&id)?.info()).into_response())
            }
            IngestRoute::Successful(id) => results(self.ingest.find(&id)?, Kind::Successful),
            IngestRoute::Failed(id) => results(self.ingest.find(&id)?, Kind::Failed),
            IngestRoute::Unprocessed(id) => results(self.ingest.find(&id)?, Kind::Unprocessed),
            IngestRoute::Delete(id) => {
                let key = self.ingest.key(&id)?;
                let job = self.ingest.find(&id)?;
                if !job.state.is_final() && job.state != State::Open {
                    return Err(invalid_state(
                        job,
                        "a job being processed cannot be deleted",
                    ));
                }
                self.ingest.jobs.remove(&key);
                Ok(StatusCode::NO_CONTENT.into_response())
            }
        }
    }

    fn ingest_create(&mut self, req: &Req<'_>) -> Result<Response, ApiError> {
        let body = req.json()?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let object = text("object")
            .ok_or_else(|| ApiError::new(400, "INVALIDJOB", "InvalidJob : object is required"))?;
        let obj = self.store.object(&object).cloned().ok_or_else(|| {
            ApiError::new(
                400,
                "INVALIDJOB",
                format!("InvalidJob : Unable to find object: {object}"),
            )
        })?;
        let operation = match text("operation").as_deref() {
            Some("insert") => Operation::Insert,
            Some("update") => Operation::Update,
            Some("upsert") => Operation::Upsert,
            other => {
                return Err(ApiError::new(
                    400,
                    "INVALIDJOB",
                    format!(
                        "InvalidJob : operation {} is not one the simulator takes (insert, \
                         update, upsert)",
                        other.unwrap_or("(none)")
                    ),
                ))
            }
        };
        let external_id = match operation {
            Operation::Upsert => {
                let name = text("externalIdFieldName").ok_or_else(|| {
                    ApiError::new(
                        400,
                        "INVALIDJOB",
                        "InvalidJob : externalIdFieldName is required for upsert",
                    )
                })?;
                let def = obj.field(&name).filter(|d| d.external_id).ok_or_else(|| {
                    ApiError::new(
                        400,
                        "INVALIDJOB",
                        format!(
                            "InvalidJob : The field {name} is not an External ID field of {}",
                            obj.name
                        ),
                    )
                })?;
                Some(def.name.clone())
            }
            _ => None,
        };
        if let Some(ct) = text("contentType") {
            if ct != "CSV" {
                return Err(ApiError::new(
                    400,
                    "INVALIDJOB",
                    format!("InvalidJob : contentType {ct} is not supported; use CSV"),
                ));
            }
        }
        let column_delimiter = text("columnDelimiter").unwrap_or_else(|| "COMMA".into());
        if delimiter(&column_delimiter).is_none() {
            return Err(ApiError::new(
                400,
                "INVALIDJOB",
                format!("InvalidJob : unknown columnDelimiter {column_delimiter}"),
            ));
        }
        let line_ending = text("lineEnding").unwrap_or_else(|| "LF".into());
        if line_ending != "LF" && line_ending != "CRLF" {
            return Err(ApiError::new(
                400,
                "INVALIDJOB",
                format!("InvalidJob : unknown lineEnding {line_ending}"),
            ));
        }
        let now = format_datetime(self.store.now());
        let created_by = self
            .store
            .live("User")
            .next()
            .and_then(|u| u.get("Id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let jobs = &mut self.ingest;
        jobs.next += 1;
        let n = jobs.next;
        let job = Job {
            id: format!("750Si{n:010}AAA"),
            object: obj.name.clone(),
            operation,
            external_id,
            version: req.version.clone(),
            created: now.clone(),
            modstamp: now,
            created_by,
            state: State::Open,
            polls: 0,
            fail_with: None,
            error_message: None,
            column_delimiter,
            line_ending,
            uploads: Vec::new(),
            header: Vec::new(),
            rows: Vec::new(),
            results: Vec::new(),
        };
        let info = job.info();
        jobs.jobs.insert(n, job);
        while jobs.jobs.len() > MAX_JOBS {
            jobs.jobs.pop_first();
        }
        Ok((StatusCode::OK, Json(info)).into_response())
    }

    /// Writes a closed job's rows, in chunks of 200 with the Collections' per-record rules.
    fn process(&mut self, job: &mut Job, faults: &super::Faults) {
        if job.state == State::Failed {
            return;
        }
        let Some(obj) = self.store.object(&job.object).cloned() else {
            job.state = State::Failed;
            job.error_message = Some(format!(
                "InvalidJob : Unable to find object: {}",
                job.object
            ));
            return;
        };
        // Header names as the object spells them; an unknown one fails the job.
        let mut names = Vec::with_capacity(job.header.len());
        for h in &job.header {
            match obj.field(h) {
                Some(def) => names.push(def.name.clone()),
                None => {
                    job.state = State::Failed;
                    job.error_message = Some(format!("InvalidBatch : Field name not found : {h}"));
                    return;
                }
            }
        }
        let op = match job.operation {
            Operation::Insert => CollectionOp::Create,
            Operation::Update => CollectionOp::Update,
            Operation::Upsert => CollectionOp::Upsert {
                object: obj.name.clone(),
                field: job.external_id.clone().unwrap_or_default(),
            },
        };
        let ext = job.external_id.as_ref().map(|f| (obj.clone(), f.clone()));
        let limit = job
            .fail_with
            .as_ref()
            .map_or(job.rows.len(), |f| f.after_rows.min(job.rows.len()));
        for start in (0..limit).step_by(CHUNK) {
            let end = (start + CHUNK).min(limit);
            let records: Vec<Record> = job.rows[start..end]
                .iter()
                .map(|row| row_record(&obj.name, &names, row))
                .collect();
            let typed: Vec<(String, &Record)> =
                records.iter().map(|r| (obj.name.clone(), r)).collect();
            let duplicates = super::routes::duplicates(&op, ext.as_ref(), &typed);
            self.store.begin();
            for (k, rec) in records.iter().enumerate() {
                let result = self.write_collection_record(
                    &op,
                    &obj.name,
                    rec,
                    ext.as_ref(),
                    duplicates.contains(&k),
                    faults,
                );
                job.results[start + k] = match result {
                    Ok(outcome) => match (outcome.result, outcome.id) {
                        (Ok(created), Some(id)) => RowResult::Success {
                            id,
                            created: created.unwrap_or(false)
                                || matches!(job.operation, Operation::Insert),
                        },
                        (Ok(_), None) => RowResult::Failed {
                            id: None,
                            error: RecordError::new("UNKNOWN_EXCEPTION", "no Id", vec![]),
                        },
                        (Err(error), id) => RowResult::Failed { id, error },
                    },
                    // What fails a whole Collection fails the row here.
                    Err(e) => RowResult::Failed {
                        id: None,
                        error: RecordError::new(&e.code, e.message, e.fields),
                    },
                };
            }
            self.store.commit();
        }
        match job.fail_with.take() {
            Some(f) => {
                job.state = State::Failed;
                job.error_message = Some(f.message);
            }
            None => job.state = State::JobComplete,
        }
    }
}

/// Reads the upload at close; a job whose data cannot be read fails whole.
fn close(job: &mut Job) {
    let fail = |job: &mut Job, message: String| {
        job.state = State::Failed;
        job.error_message = Some(message);
    };
    match job.uploads.len() {
        0 => return fail(job, "InvalidBatch : No data was uploaded to the job".into()),
        1 => {}
        _ => {
            return fail(
                job,
                format!(
                    "Found multiple contents for job: <{}>, please 'Close' / 'Abort' / \
                     'Delete' the current Job then create a new Job and make sure you only do \
                     'PUT' once on a given Job.",
                    job.id
                ),
            )
        }
    }
    let delim = delimiter(&job.column_delimiter).unwrap_or(b',');
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(true)
        .flexible(false)
        .from_reader(job.uploads[0].as_slice());
    let header = match reader.headers() {
        Ok(h) => h
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').to_string())
            .collect::<Vec<_>>(),
        Err(e) => {
            return fail(
                job,
                format!("InvalidBatch : Failed to parse CSV header: {e}"),
            )
        }
    };
    if header.is_empty() || header.iter().any(String::is_empty) {
        return fail(
            job,
            "InvalidBatch : Failed to parse CSV header: an empty column name".into(),
        );
    }
    let mut rows = Vec::new();
    for row in reader.records() {
        match row {
            Ok(r) => rows.push(r.iter().map(str::to_string).collect::<Vec<_>>()),
            Err(e) => return fail(job, format!("InvalidBatch : Failed to parse CSV: {e}")),
        }
    }
    job.results = vec![RowResult::Unprocessed; rows.len()];
    job.header = header;
    job.rows = rows;
    job.uploads.clear();
}

/// One CSV row as a record to write: an empty value leaves the field out (unchanged),
/// `#N/A` is null, the rest is text the field's type parses.
fn row_record(object: &str, names: &[String], row: &[String]) -> Record {
    let mut rec = Record::new();
    rec.insert("attributes".into(), json!({ "type": object }));
    for (name, raw) in names.iter().zip(row) {
        if raw.is_empty() {
            continue;
        }
        let value = if raw == "#N/A" {
            Value::Null
        } else {
            Value::String(raw.clone())
        };
        rec.insert(name.clone(), value);
    }
    rec
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Successful,
    Failed,
    Unprocessed,
}

/// `sf__Error` as Salesforce writes it: `CODE:message:fields --`.
pub fn error_text(e: &RecordError) -> String {
    format!("{}:{}:{} --", e.status_code, e.message, e.fields.join(","))
}

/// One of the three result sets of a finished job, as CSV.
fn results(job: &Job, kind: Kind) -> Result<Response, ApiError> {
    if !job.state.is_final() {
        return Err(invalid_state(
            job,
            "results are available once it is finished",
        ));
    }
    let delim = delimiter(&job.column_delimiter).unwrap_or(b',');
    let mut w = csv::WriterBuilder::new()
        .delimiter(delim)
        .quote_style(csv::QuoteStyle::Always)
        .terminator(if job.line_ending == "CRLF" {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(Vec::new());
    let lead: &[&str] = match kind {
        Kind::Successful => &["sf__Id", "sf__Created"],
        Kind::Failed => &["sf__Id", "sf__Error"],
        Kind::Unprocessed => &[],
    };
    let write_err = |e: csv::Error| ApiError::new(500, "UNKNOWN_EXCEPTION", e.to_string());
    if !job.header.is_empty() {
        w.write_record(
            lead.iter()
                .copied()
                .chain(job.header.iter().map(String::as_str)),
        )
        .map_err(write_err)?;
    }
    // A job aborted or failed before close never read its data: every row is unprocessed,
    // and there are none to list.
    for (row, result) in job.rows.iter().zip(&job.results) {
        let lead: Vec<String> = match (kind, result) {
            (Kind::Successful, RowResult::Success { id, created }) => {
                vec![id.clone(), created.to_string()]
            }
            (Kind::Failed, RowResult::Failed { id, error }) => {
                vec![id.clone().unwrap_or_default(), error_text(error)]
            }
            (Kind::Unprocessed, RowResult::Unprocessed) => Vec::new(),
            _ => continue,
        };
        w.write_record(
            lead.iter()
                .map(String::as_str)
                .chain(row.iter().map(String::as_str)),
        )
        .map_err(write_err)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| ApiError::new(500, "UNKNOWN_EXCEPTION", e.to_string()))?;
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_code_message_fields() {
        let e = RecordError::new(
            "STRING_TOO_LONG",
            "Name: data value too large: x",
            vec!["Name".into()],
        );
        assert_eq!(
            error_text(&e),
            "STRING_TOO_LONG:Name: data value too large: x:Name --"
        );
    }

    #[test]
    fn a_row_leaves_empty_values_out_and_nulls_na() {
        let names = vec!["Id".to_string(), "Name".to_string(), "Phone".to_string()];
        let row = vec!["001".to_string(), String::new(), "#N/A".to_string()];
        let rec = row_record("Account", &names, &row);
        assert_eq!(rec.get("Id"), Some(&json!("001")));
        assert!(!rec.contains_key("Name"));
        assert_eq!(rec.get("Phone"), Some(&Value::Null));
    }
}
