//! Bulk API 2.0 query jobs (`/services/data/vXX.X/jobs/query`).
//!
//! What the simulator does, following the Bulk API 2.0 developer guide:
//!
//! - `POST /jobs/query` with `{"operation": "query"|"queryAll", "query": "...",
//!   "contentType": "CSV", "columnDelimiter": ..., "lineEnding": "LF"|"CRLF"}` checks the
//!   query with the simulator's SOQL engine and evaluates it at once (a snapshot; `queryAll`
//!   also sees the recycle bin, as `/queryAll` does). The answer is the job info in state
//!   `UploadComplete`. Queries with what Bulk API 2.0 does not support (aggregate functions
//!   such as `COUNT()`, `GROUP BY`, `OFFSET`, `TYPEOF`, parent-to-child subqueries) are
//!   refused with 400. `ORDER BY` and `LIMIT` are accepted (the guide only warns that they
//!   disable PK chunking).
//! - `GET /jobs/query/{id}` is a poll: `InProgress` until the configured number of polls
//!   ([`SalesforceSim::set_bulk_query_polls`], default 1), then `JobComplete` (or `Failed`
//!   with `errorMessage`, see [`SalesforceSim::fail_next_bulk_query`]).
//! - `GET /jobs/query/{id}/results?maxRecords=N&locator=L` answers one set of CSV rows with
//!   the `Sforce-NumberOfRecords` and `Sforce-Locator` headers (`null` when it is the last
//!   set). The locator is opaque and can be reused while the job exists.
//! - `PATCH /jobs/query/{id}` with `{"state": "Aborted"}` aborts, `DELETE /jobs/query/{id}`
//!   deletes, `GET /jobs/query` lists the jobs.
//!
//! CSV: a header row of the selected fields' API names in SELECT order, every value quoted
//! (quotes doubled), null as an empty unquoted field, checkboxes `true`/`false`, numbers of
//! double and currency fields with a decimal point (`100.0`), datetimes in UTC with `Z`
//! (`2026-11-22T10:00:00.000Z`), as the real Bulk API 2.0 writes them.
//!
//! Every bulk request goes through the same accounting, daily limit, authentication and
//! fault injection as the other REST calls; the kinds are `bulk_query_create`,
//! `bulk_query_info`, `bulk_query_results`, `bulk_query_abort`, `bulk_query_delete` and
//! `bulk_query_list`.

use std::collections::BTreeMap;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::base64_decode;
use super::error::ApiError;
use super::routes::Req;
use super::schema::FieldType;
use super::soql::{self, Select};
use super::store::Record;
use super::time::{format_datetime, parse_datetime};
use super::{Inner, SalesforceSim};

/// Records in one result set when the request has no `maxRecords`. The guide only says the
/// server picks "a default value based on the service"; this is large enough that small
/// jobs come back in one set.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;

/// Most query jobs kept at once; the oldest are deleted first.
const MAX_JOBS: usize = 1_000;

/// A Bulk API 2.0 query resource, parsed from the path after `jobs/query`.
#[derive(Debug)]
pub(super) enum BulkRoute {
    Create,
    List,
    Info(String),
    Results(String),
    Abort(String),
    Delete(String),
}

impl BulkRoute {
    /// `segs` is the path after the version segment; `None` when it is not a bulk query
    /// resource.
    pub(super) fn parse(method: &Method, segs: &[&str]) -> Option<BulkRoute> {
        let owned = |s: &str| s.to_string();
        Some(match (method.as_str(), segs) {
            ("POST", ["jobs", "query"]) => BulkRoute::Create,
            ("GET", ["jobs", "query"]) => BulkRoute::List,
            ("GET", ["jobs", "query", id]) => BulkRoute::Info(owned(id)),
            ("GET", ["jobs", "query", id, "results"]) => BulkRoute::Results(owned(id)),
            ("PATCH", ["jobs", "query", id]) => BulkRoute::Abort(owned(id)),
            ("DELETE", ["jobs", "query", id]) => BulkRoute::Delete(owned(id)),
            _ => return None,
        })
    }

    /// The accounting kind of the call.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            BulkRoute::Create => "bulk_query_create",
            BulkRoute::List => "bulk_query_list",
            BulkRoute::Info(_) => "bulk_query_info",
            BulkRoute::Results(_) => "bulk_query_results",
            BulkRoute::Abort(_) => "bulk_query_abort",
            BulkRoute::Delete(_) => "bulk_query_delete",
        }
    }
}

/// `JobStateEnum` of a query job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }

    fn is_final(self) -> bool {
        matches!(
            self,
            JobState::JobComplete | JobState::Failed | JobState::Aborted
        )
    }
}

/// `columnDelimiter` values of the guide.
pub(super) fn delimiter(name: &str) -> Option<char> {
    Some(match name {
        "COMMA" => ',',
        "TAB" => '\t',
        "SEMICOLON" => ';',
        "PIPE" => '|',
        "CARET" => '^',
        "BACKQUOTE" => '`',
        _ => return None,
    })
}

/// One query job and its result snapshot.
#[derive(Debug)]
struct Job {
    id: String,
    all: bool,
    object: String,
    version: String,
    created: String,
    modstamp: String,
    created_by: String,
    state: JobState,
    polls: u32,
    /// Set when the job is to end `Failed` with this message.
    fail_with: Option<String>,
    column_delimiter: String,
    line_ending: String,
    /// Selected fields (API names, SELECT order) and their types.
    columns: Vec<(String, FieldType)>,
    rows: Vec<Vec<Value>>,
}

impl Job {
    fn info(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "operation": if self.all { "queryAll" } else { "query" },
            "object": self.object,
            "createdById": self.created_by,
            "createdDate": self.created,
            "systemModstamp": self.modstamp,
            "state": self.state.as_str(),
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": api_version(&self.version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": if self.state == JobState::JobComplete { self.rows.len() } else { 0 },
            "retries": 0,
            "totalProcessingTime": 0,
            "isPkChunkingSupported": true,
        });
        if let (JobState::Failed, Some(message)) = (self.state, &self.fail_with) {
            v["errorMessage"] = Value::String(message.clone());
        }
        v
    }
}

/// `62.0` from `v62.0`.
fn api_version(version: &str) -> Value {
    version
        .trim_start_matches('v')
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// Query jobs of the org and the knobs tests turn.
#[derive(Debug)]
pub(super) struct BulkJobs {
    jobs: BTreeMap<u64, Job>,
    next: u64,
    /// Polls of `GET /jobs/query/{id}` until a job is finished (at least 1).
    polls_to_complete: u32,
    /// Messages of the next jobs to fail, first one first.
    failures: Vec<String>,
}

impl Default for BulkJobs {
    fn default() -> Self {
        BulkJobs {
            jobs: BTreeMap::new(),
            next: 0,
            polls_to_complete: 1,
            failures: Vec::new(),
        }
    }
}

impl BulkJobs {
    fn find(&mut self, id: &str) -> Result<&mut Job, ApiError> {
        self.jobs
            .values_mut()
            .find(|j| j.id.eq_ignore_ascii_case(id))
            .ok_or_else(ApiError::not_found)
    }
}

impl SalesforceSim {
    /// How many status polls (`GET /jobs/query/{id}`) a new Bulk API 2.0 query job takes to
    /// finish: the polls before it answer `InProgress`, that one `JobComplete`. Default 1
    /// (complete on the first poll); 0 counts as 1.
    pub fn set_bulk_query_polls(&self, polls: u32) {
        self.lock().bulk.polls_to_complete = polls.max(1);
    }

    /// The next Bulk API 2.0 query job created ends `Failed` with this `errorMessage` (once,
    /// at the poll where it would have completed).
    pub fn fail_next_bulk_query(&self, message: &str) {
        self.lock().bulk.failures.push(message.to_string());
    }

    /// The number of Bulk API 2.0 query jobs the org holds (not deleted).
    pub fn bulk_query_jobs(&self) -> usize {
        self.lock().bulk.jobs.len()
    }
}

/// What the body of `POST /jobs/query` may hold.
struct CreateRequest {
    all: bool,
    query: String,
    column_delimiter: String,
    line_ending: String,
}

fn parse_create(body: &Value) -> Result<CreateRequest, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::json_parse("expected a JSON object"))?;
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::json_parse(format!(
                "Cannot deserialize value of {name} from {other}"
            ))),
        }
    };
    let bad_enum = |name: &str, value: &str, allowed: &str| {
        ApiError::json_parse(format!(
            "Cannot deserialize value of {name} from String \"{value}\": value not one of declared Enum instance names: [{allowed}]"
        ))
    };
    let all = match text("operation")?.as_deref() {
        Some("query") => false,
        Some("queryAll") => true,
        Some(other) => return Err(bad_enum("operation", other, "query, queryAll")),
        None => {
            return Err(ApiError::new(
                400,
                "INVALIDJOB",
                "InvalidJob : Operation is required",
            ))
        }
    };
    let query = text("query")?
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| ApiError::new(400, "INVALIDJOB", "InvalidJob : Query is required"))?;
    if let Some(ct) = text("contentType")? {
        if ct != "CSV" {
            return Err(bad_enum("contentType", &ct, "CSV"));
        }
    }
    let column_delimiter = text("columnDelimiter")?.unwrap_or_else(|| "COMMA".into());
    if delimiter(&column_delimiter).is_none() {
        return Err(bad_enum(
            "columnDelimiter",
            &column_delimiter,
            "BACKQUOTE, CARET, COMMA, PIPE, SEMICOLON, TAB",
        ));
    }
    let line_ending = text("lineEnding")?.unwrap_or_else(|| "LF".into());
    if line_ending != "LF" && line_ending != "CRLF" {
        return Err(bad_enum("lineEnding", &line_ending, "LF, CRLF"));
    }
    Ok(CreateRequest {
        all,
        query,
        column_delimiter,
        line_ending,
    })
}

/// The SOQL features Bulk API 2.0 query refuses, found on the words of the query outside
/// string literals. `None` when the query has none of them.
fn unsupported_feature(soql: &str) -> Option<&'static str> {
    // Words and parentheses outside quotes, upper-cased.
    let mut toks: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut chars = soql.chars();
    let flush = |word: &mut String, toks: &mut Vec<String>| {
        if !word.is_empty() {
            toks.push(std::mem::take(word).to_uppercase());
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                flush(&mut word, &mut toks);
                // Skip the literal, honouring backslash escapes.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '\'' => break,
                        _ => {}
                    }
                }
            }
            '(' | ')' => {
                flush(&mut word, &mut toks);
                toks.push(c.to_string());
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => word.push(c),
            _ => flush(&mut word, &mut toks),
        }
    }
    flush(&mut word, &mut toks);
    const AGGREGATES: [&str; 6] = ["COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"];
    for (i, t) in toks.iter().enumerate() {
        let next = toks.get(i + 1).map(String::as_str);
        match t.as_str() {
            "GROUP" if next == Some("BY") => return Some("GROUP BY clauses"),
            "OFFSET" => return Some("OFFSET clauses"),
            "TYPEOF" => return Some("TYPEOF clauses"),
            "(" if next == Some("SELECT") => {
                return Some("parent-to-child relationship queries (nested SELECT)")
            }
            a if AGGREGATES.contains(&a) && next == Some("(") => {
                return Some("aggregate functions such as COUNT()")
            }
            _ => {}
        }
    }
    None
}

impl Inner {
    pub(super) fn bulk(&mut self, route: BulkRoute, req: &Req<'_>) -> Result<Response, ApiError> {
        match route {
            BulkRoute::Create => self.bulk_create(req),
            BulkRoute::List => {
                let records: Vec<Value> = self.bulk.jobs.values().map(Job::info).collect();
                Ok(
                    Json(json!({"done": true, "records": records, "nextRecordsUrl": null}))
                        .into_response(),
                )
            }
            BulkRoute::Info(id) => {
                let now = format_datetime(self.store.now());
                let polls_to_complete = self.bulk.polls_to_complete;
                let job = self.bulk.find(&id)?;
                if !job.state.is_final() {
                    job.polls += 1;
                    job.modstamp = now;
                    job.state = if job.polls < polls_to_complete {
                        JobState::InProgress
                    } else if job.fail_with.is_some() {
                        JobState::Failed
                    } else {
                        JobState::JobComplete
                    };
                }
                Ok(Json(job.info()).into_response())
            }
            BulkRoute::Results(id) => {
                let job = self.bulk.find(&id)?;
                results(job, req)
            }
            BulkRoute::Abort(id) => {
                let body = req.json()?;
                let now = format_datetime(self.store.now());
                let job = self.bulk.find(&id)?;
                if body.get("state").and_then(Value::as_str) != Some("Aborted") {
                    return Err(ApiError::new(
                        400,
                        "INVALIDJOBSTATE",
                        "InvalidJobState : a query job can only be set to Aborted",
                    ));
                }
                if job.state.is_final() {
                    return Err(ApiError::new(
                        400,
                        "INVALIDJOBSTATE",
                        format!(
                            "InvalidJobState : Job {} is already {}",
                            job.id,
                            job.state.as_str()
                        ),
                    ));
                }
                job.state = JobState::Aborted;
                job.modstamp = now;
                job.rows.clear();
                Ok(Json(job.info()).into_response())
            }
            BulkRoute::Delete(id) => {
                let key = self
                    .bulk
                    .jobs
                    .iter()
                    .find(|(_, j)| j.id.eq_ignore_ascii_case(&id))
                    .map(|(k, _)| *k)
                    .ok_or_else(ApiError::not_found)?;
                self.bulk.jobs.remove(&key);
                Ok(StatusCode::NO_CONTENT.into_response())
            }
        }
    }

    fn bulk_create(&mut self, req: &Req<'_>) -> Result<Response, ApiError> {
        let create = parse_create(&req.json()?)?;
        if let Some(feature) = unsupported_feature(&create.query) {
            return Err(ApiError::new(
                400,
                "FUNCTIONALITY_NOT_ENABLED",
                format!("Bulk API 2.0 query does not support {feature}; run such a query with the REST query resource instead"),
            ));
        }
        let parsed = soql::parse(&create.query)?;
        let obj = parsed.validate(&self.store.schema)?.clone();
        let Select::Fields(selected) = &parsed.select else {
            // COUNT() is refused above; kept for completeness.
            return Err(ApiError::new(
                400,
                "FUNCTIONALITY_NOT_ENABLED",
                "Bulk API 2.0 query does not support aggregate functions such as COUNT()",
            ));
        };
        let mut columns: Vec<(String, FieldType)> = Vec::new();
        for f in selected {
            if let Some(def) = obj.field(f) {
                if !columns.iter().any(|(n, _)| n == &def.name) {
                    columns.push((def.name.clone(), def.field_type));
                }
            }
        }
        let rows: Vec<&Record> = if create.all {
            self.store.live_and_recent_deleted(&obj.name).collect()
        } else {
            self.store.live(&obj.name).collect()
        };
        let rows: Vec<Vec<Value>> = soql::execute(&parsed, &obj, rows.into_iter())
            .into_iter()
            .map(|r| {
                columns
                    .iter()
                    .map(|(name, _)| r.get(name).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();

        let now = format_datetime(self.store.now());
        let created_by = self
            .store
            .live("User")
            .next()
            .and_then(|u| u.get("Id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let bulk = &mut self.bulk;
        bulk.next += 1;
        let n = bulk.next;
        let fail_with = (!bulk.failures.is_empty()).then(|| bulk.failures.remove(0));
        let job = Job {
            id: format!("750Sm{n:010}AAA"),
            all: create.all,
            object: obj.name.clone(),
            version: req.version.clone(),
            created: now.clone(),
            modstamp: now,
            created_by,
            state: JobState::UploadComplete,
            polls: 0,
            fail_with,
            column_delimiter: create.column_delimiter,
            line_ending: create.line_ending,
            columns,
            rows,
        };
        let info = job.info();
        bulk.jobs.insert(n, job);
        while bulk.jobs.len() > MAX_JOBS {
            bulk.jobs.pop_first();
        }
        Ok((StatusCode::OK, Json(info)).into_response())
    }
}

/// One result set of a finished job.
fn results(job: &Job, req: &Req<'_>) -> Result<Response, ApiError> {
    if job.state != JobState::JobComplete {
        return Err(ApiError::new(
            400,
            "INVALIDJOBSTATE",
            format!(
                "InvalidJobState : Job {} is {}; results are available when it is JobComplete",
                job.id,
                job.state.as_str()
            ),
        ));
    }
    let max = match req.param("maxRecords") {
        None => DEFAULT_MAX_RECORDS,
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(ApiError::new(
                    400,
                    "INVALIDREQUEST",
                    format!("maxRecords must be a positive integer, got '{raw}'"),
                ))
            }
        },
    };
    let start = match req.param("locator") {
        None => 0,
        Some(loc) => decode_locator(&loc)
            .filter(|&o| o <= job.rows.len())
            .ok_or_else(|| ApiError::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator"))?,
    };
    let end = start.saturating_add(max).min(job.rows.len());
    let next = if end < job.rows.len() {
        encode_locator(end)
    } else {
        "null".to_string()
    };
    let delim = delimiter(&job.column_delimiter).unwrap_or(',');
    let eol = if job.line_ending == "CRLF" {
        "\r\n"
    } else {
        "\n"
    };
    let body = to_csv(&job.columns, &job.rows[start..end], delim, eol);
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=UTF-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&next) {
        headers.insert("sforce-locator", v);
    }
    headers.insert("sforce-numberofrecords", HeaderValue::from(end - start));
    Ok(resp)
}

/// A header row and the rows, every value quoted, null empty.
fn to_csv(columns: &[(String, FieldType)], rows: &[Vec<Value>], delim: char, eol: &str) -> String {
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = Option<String>>| {
        let mut first = true;
        for cell in cells {
            if !first {
                out.push(delim);
            }
            first = false;
            if let Some(text) = cell {
                out.push('"');
                out.push_str(&text.replace('"', "\"\""));
                out.push('"');
            }
        }
        out.push_str(eol);
    };
    line(&mut columns.iter().map(|(name, _)| Some(name.clone())));
    for row in rows {
        line(&mut row.iter().zip(columns).map(|(v, (_, t))| csv_value(*t, v)));
    }
    out
}

/// A stored value as Bulk API 2.0 writes it (`None` for null).
fn csv_value(t: FieldType, v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(match (t, n.as_i64()) {
            (FieldType::Int, Some(i)) => i.to_string(),
            _ => {
                let f = n.as_f64().unwrap_or_default();
                if f.fract() == 0.0 && f.abs() < 1e15 {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                }
            }
        }),
        Value::String(s) if t == FieldType::Datetime => Some(
            parse_datetime(s)
                .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_else(|| s.clone()),
        ),
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// An opaque locator: the offset of the next set, base64-encoded (like the guide's
/// `MTAwMDA` example).
fn encode_locator(offset: usize) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = offset.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn decode_locator(locator: &str) -> Option<usize> {
    let bytes = base64_decode(locator.trim())?;
    String::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip() {
        assert_eq!(encode_locator(10000), "MTAwMDA");
        for n in [0, 1, 7, 200, 12345, 1_000_000] {
            assert_eq!(decode_locator(&encode_locator(n)), Some(n));
        }
        assert_eq!(decode_locator("not a locator!"), None);
    }

    #[test]
    fn unsupported_features_outside_literals() {
        let f = unsupported_feature;
        assert!(f("SELECT Id FROM Account ORDER BY Name LIMIT 5").is_none());
        assert!(f("SELECT Id FROM Account WHERE Name = 'count(x) group by offset'").is_none());
        assert!(f(r"SELECT Id FROM Account WHERE Name = 'it\'s (select'").is_none());
        assert!(f("SELECT COUNT() FROM Account").is_some());
        assert!(f("SELECT Id FROM Account LIMIT 5 OFFSET 10").is_some());
        assert!(f("SELECT Industry, count(Id) FROM Account GROUP BY Industry").is_some());
        assert!(f("SELECT Id, (SELECT Id FROM Contacts) FROM Account").is_some());
        assert!(f("SELECT TYPEOF What WHEN Account THEN Name END FROM Event").is_some());
    }

    #[test]
    fn csv_values_as_bulk_writes_them() {
        assert_eq!(
            csv_value(FieldType::Currency, &json!(100)),
            Some("100.0".into())
        );
        assert_eq!(
            csv_value(FieldType::Double, &json!(0.25)),
            Some("0.25".into())
        );
        assert_eq!(csv_value(FieldType::Int, &json!(-7)), Some("-7".into()));
        assert_eq!(
            csv_value(FieldType::Boolean, &json!(false)),
            Some("false".into())
        );
        assert_eq!(
            csv_value(FieldType::Datetime, &json!("2026-11-22T10:00:00.000+0000")),
            Some("2026-11-22T10:00:00.000Z".into())
        );
        assert_eq!(csv_value(FieldType::String, &Value::Null), None);
        let cols = vec![
            ("Id".to_string(), FieldType::Id),
            ("Name".to_string(), FieldType::String),
        ];
        let rows = vec![
            vec![json!("001"), json!("a \"b\", c\nd")],
            vec![json!("002"), Value::Null],
        ];
        assert_eq!(
            to_csv(&cols, &rows, ',', "\n"),
            "\"Id\",\"Name\"\n\"001\",\"a \"\"b\"\", c\nd\"\n\"002\",\n"
        );
    }
}
