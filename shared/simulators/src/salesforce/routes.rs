//! HTTP layer: routing, authentication and accounting of every call, and the handlers.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};

use super::bulk::BulkRoute;
use super::error::{ApiError, RecordError, WriteFail};
use super::ingest::IngestRoute;
use super::schema::{FieldDef, ObjectDef};
use super::soql::{self, Select};
use super::store::{Record, RECYCLE_BIN_DAYS};
use super::time::{format_datetime, parse_datetime};
use super::{Cursor, Inner, SalesforceSim, MAX_CURSORS};

/// Most records in one sObject Collections request.
const MAX_COLLECTION: usize = 200;
const DEFAULT_BATCH: usize = 2000;

pub(crate) fn router(sim: SalesforceSim) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data/*rest", any(dispatch))
        .fallback(|| async { ApiError::not_found() })
        // Salesforce takes an ingest job's upload up to 150 MB (what the job then accepts is
        // `set_bulk_ingest_max_upload`); the framework's default of 2 MB would refuse less.
        .layer(axum::extract::DefaultBodyLimit::max(150 * 1024 * 1024))
        .with_state(sim)
}

async fn token(State(sim): State<SalesforceSim>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let host = header(&headers, HOST.as_str()).unwrap_or("127.0.0.1");
    let instance_url = format!("http://{host}");
    let basic = header(&headers, AUTHORIZATION.as_str());
    let now = chrono::Utc::now().timestamp();
    let mut inner = sim.lock();
    *inner.calls.by_kind.entry("auth".into()).or_default() += 1;
    match inner.auth.token(&form, basic, &instance_url, now) {
        Ok(body) => Json(body).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(e.body())).into_response(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// One REST resource, parsed from the method and the path after the version segment.
#[derive(Debug)]
enum Route {
    Limits,
    Query { all: bool },
    QueryMore(String),
    Describe(String),
    GetDeleted(String),
    Create(String),
    Get(String, String),
    Update(String, String),
    Delete(String, String),
    GetByExternalId(String, String, String),
    Upsert(String, String, String),
    CollectionCreate,
    CollectionUpdate,
    CollectionUpsert(String, String),
    Bulk(BulkRoute),
    Ingest(IngestRoute),
    Unknown,
}

impl Route {
    fn parse(method: &Method, segs: &[String]) -> Route {
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let owned = |i: usize| segs[i].clone();
        match (method.as_str(), s.as_slice()) {
            ("GET", ["limits"]) => Route::Limits,
            ("GET", ["query"]) => Route::Query { all: false },
            ("GET", ["queryAll"]) => Route::Query { all: true },
            ("GET", ["query" | "queryAll", _]) => Route::QueryMore(owned(1)),
            ("GET", ["sobjects", _, "describe"]) => Route::Describe(owned(1)),
            ("GET", ["sobjects", _, "deleted"]) => Route::GetDeleted(owned(1)),
            ("POST", ["sobjects", _]) => Route::Create(owned(1)),
            ("GET", ["sobjects", _, _]) => Route::Get(owned(1), owned(2)),
            ("PATCH", ["sobjects", _, _]) => Route::Update(owned(1), owned(2)),
            ("DELETE", ["sobjects", _, _]) => Route::Delete(owned(1), owned(2)),
            ("GET", ["sobjects", _, _, _]) => Route::GetByExternalId(owned(1), owned(2), owned(3)),
            ("PATCH", ["sobjects", _, _, _]) => Route::Upsert(owned(1), owned(2), owned(3)),
            ("POST", ["composite", "sobjects"]) => Route::CollectionCreate,
            ("PATCH", ["composite", "sobjects"]) => Route::CollectionUpdate,
            ("PATCH", ["composite", "sobjects", _, _]) => {
                Route::CollectionUpsert(owned(2), owned(3))
            }
            (_, ["jobs", "ingest", ..]) => {
                IngestRoute::parse(method, &s).map_or(Route::Unknown, Route::Ingest)
            }
            (_, ["jobs", ..]) => BulkRoute::parse(method, &s).map_or(Route::Unknown, Route::Bulk),
            _ => Route::Unknown,
        }
    }

    /// The accounting kind of the call.
    fn kind(&self) -> &'static str {
        match self {
            Route::Limits => "limits",
            Route::Query { all: false } => "query",
            Route::Query { all: true } => "query_all",
            Route::QueryMore(_) => "query_more",
            Route::Describe(_) => "describe",
            Route::GetDeleted(_) => "get_deleted",
            Route::Create(_) => "sobject_create",
            Route::Get(..) | Route::GetByExternalId(..) => "sobject_get",
            Route::Update(..) => "sobject_update",
            Route::Delete(..) => "sobject_delete",
            Route::Upsert(..) => "sobject_upsert",
            Route::CollectionCreate => "composite_create",
            Route::CollectionUpdate => "composite_update",
            Route::CollectionUpsert(..) => "composite_upsert",
            Route::Bulk(b) => b.kind(),
            Route::Ingest(i) => i.kind(),
            Route::Unknown => "unknown",
        }
    }
}

fn is_version(s: &str) -> bool {
    s.strip_prefix('v')
        .and_then(|v| v.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.chars().all(|c| c.is_ascii_digit())
                && b.chars().all(|c| c.is_ascii_digit())
        })
}

/// Request context handed to the handlers.
pub(super) struct Req<'a> {
    pub(super) version: String,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl Req<'_> {
    pub(super) fn param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub(super) fn body(&self) -> &[u8] {
        self.body
    }

    pub(super) fn json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(self.body).map_err(|e| ApiError::json_parse(e.to_string()))
    }

    fn record_url(&self, object: &str, id: &str) -> String {
        format!("/services/data/{}/sobjects/{object}/{id}", self.version)
    }

    fn batch_size(&self) -> usize {
        header(self.headers, "sforce-query-options")
            .and_then(|h| {
                h.split(',').find_map(|part| {
                    let (k, v) = part.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("batchSize")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
            })
            .map_or(DEFAULT_BATCH, |n| n.clamp(200, DEFAULT_BATCH))
    }
}

async fn dispatch(
    State(sim): State<SalesforceSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rest = uri.path().strip_prefix("/services/data/").unwrap_or("");
    let mut segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    if segs.is_empty() || !is_version(&segs[0]) {
        return ApiError::not_found().into_response();
    }
    let version = segs.remove(0);
    let route = Route::parse(&method, &segs);
    let mut response = match sim.begin(route.kind(), &headers).await {
        Err(e) => e.into_response(),
        Ok(()) => {
            let req = Req {
                version,
                uri: &uri,
                headers: &headers,
                body: &body,
            };
            let response = sim
                .handle(route, &req)
                .unwrap_or_else(IntoResponse::into_response);
            // writes made outside the API (the tests' own) are a user's in the UI
            sim.lock().store.changes.set_origin(String::new());
            response
        }
    };
    let usage = {
        let inner = sim.lock();
        format!("api-usage={}/{}", inner.calls.total, inner.daily_limit)
    };
    if let Ok(v) = HeaderValue::from_str(&usage) {
        response.headers_mut().insert("sforce-limit-info", v);
    }
    response
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// Maps a single-record write failure to the REST error response.
fn single_write_error(fail: WriteFail, req: &Req<'_>, object: &str) -> Response {
    match fail {
        WriteFail::Request(e) => e.into_response(),
        WriteFail::Record(e) => ApiError::from(e).into_response(),
        WriteFail::NotFound => ApiError::not_found().into_response(),
        WriteFail::Deleted => ApiError::deleted().into_response(),
        WriteFail::Ambiguous(ids) => {
            let urls: Vec<String> = ids.iter().map(|id| req.record_url(object, id)).collect();
            json_response(StatusCode::MULTIPLE_CHOICES, json!(urls))
        }
    }
}

/// Maps a write failure to the per-record error of a collection result.
fn collection_error(fail: WriteFail, ext_field: Option<&str>) -> RecordError {
    match fail {
        WriteFail::Record(e) => e,
        WriteFail::Request(e) => RecordError::new(&e.code, e.message, e.fields),
        WriteFail::NotFound => RecordError::new(
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            vec![],
        ),
        WriteFail::Deleted => RecordError::new("ENTITY_IS_DELETED", "entity is deleted", vec![]),
        WriteFail::Ambiguous(ids) => RecordError::new(
            "DUPLICATE_EXTERNAL_ID",
            format!(
                "{}: more than one record found for external id field: [{}]",
                ext_field.unwrap_or("Id"),
                ids.join(", ")
            ),
            ext_field.map(|f| vec![f.to_string()]).unwrap_or_default(),
        ),
    }
}

/// External id values (and the Id) of a request record: the keys of record faults.
fn fault_keys(obj: &ObjectDef, rec: &Record) -> Vec<String> {
    rec.iter()
        .filter(|(k, _)| {
            k.eq_ignore_ascii_case("Id") || obj.field(k).is_some_and(|d| d.external_id)
        })
        .filter_map(|(_, v)| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

impl SalesforceSim {
    /// Latency, accounting, limit, authentication and injected faults of one API call.
    async fn begin(&self, kind: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        let latency = self.faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        {
            let mut inner = self.lock();
            inner.calls.total += 1;
            *inner.calls.by_kind.entry(kind.to_string()).or_default() += 1;
            if inner.calls.total > inner.daily_limit {
                return Err(ApiError::new(
                    403,
                    "REQUEST_LIMIT_EXCEEDED",
                    "TotalRequests Limit exceeded.",
                ));
            }
            if !inner
                .auth
                .check_header(header(headers, AUTHORIZATION.as_str()))
            {
                return Err(ApiError::invalid_session());
            }
        }
        match self.faults.on_call(kind) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn handle(&self, route: Route, req: &Req<'_>) -> Result<Response, ApiError> {
        let mut inner = self.lock();
        // what this request writes is published with its client's changeOrigin
        let origin =
            super::cdc::api_origin(&req.version, header(req.headers, "sforce-call-options"));
        inner.store.changes.set_origin(origin);
        match route {
            Route::Limits => {
                let remaining = inner.daily_limit.saturating_sub(inner.calls.total);
                Ok(Json(json!({
                    "DailyApiRequests": {"Max": inner.daily_limit, "Remaining": remaining}
                }))
                .into_response())
            }
            // Result pages are serialized after the org is unlocked.
            Route::Query { all } => {
                let body = inner.query(req, all)?;
                drop(inner);
                Ok(Json(body).into_response())
            }
            Route::QueryMore(locator) => {
                let body = inner.query_more(req, &locator)?;
                drop(inner);
                Ok(Json(body).into_response())
            }
            Route::Describe(object) => {
                let obj = inner.object(&object)?;
                Ok(Json(obj.describe()).into_response())
            }
            Route::GetDeleted(object) => inner.get_deleted(req, &object),
            Route::Create(object) => Ok(inner.create_one(req, &object, &self.faults)),
            Route::Get(object, id) => inner.get_one(req, &object, &id),
            Route::Update(object, id) => Ok(inner.update_one(req, &object, &id, &self.faults)),
            Route::Delete(object, id) => {
                let obj = inner.object(&object)?;
                Ok(match inner.store.delete(&obj.name, &id) {
                    Ok(()) => StatusCode::NO_CONTENT.into_response(),
                    Err(fail) => single_write_error(fail, req, &obj.name),
                })
            }
            Route::GetByExternalId(object, field, value) => {
                inner.get_by_external_id(req, &object, &field, &value)
            }
            Route::Upsert(object, field, value) => {
                Ok(inner.upsert_one(req, &object, &field, &value, &self.faults))
            }
            Route::CollectionCreate => inner.collection(req, CollectionOp::Create, &self.faults),
            Route::CollectionUpdate => inner.collection(req, CollectionOp::Update, &self.faults),
            Route::CollectionUpsert(object, field) => {
                inner.collection(req, CollectionOp::Upsert { object, field }, &self.faults)
            }
            Route::Bulk(bulk) => inner.bulk(bulk, req),
            Route::Ingest(ingest) => inner.ingest(ingest, req, &self.faults),
            Route::Unknown => Err(ApiError::not_found()),
        }
    }
}

#[derive(Debug)]
pub(super) enum CollectionOp {
    Create,
    Update,
    Upsert { object: String, field: String },
}

/// Outcome of one record in a collection.
pub(super) struct Outcome {
    pub(super) id: Option<String>,
    pub(super) result: Result<Option<bool>, RecordError>,
}

impl Inner {
    /// The object definition for a REST path segment (404 when unknown).
    fn object(&self, name: &str) -> Result<ObjectDef, ApiError> {
        self.store
            .object(name)
            .cloned()
            .ok_or_else(ApiError::not_found)
    }

    fn project(&self, req: &Req<'_>, obj: &ObjectDef, rec: &Record, fields: &[String]) -> Value {
        let id = rec.get("Id").and_then(Value::as_str).unwrap_or_default();
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            json!({"type": obj.name, "url": req.record_url(&obj.name, id)}),
        );
        for f in fields {
            out.insert(f.clone(), rec.get(f).cloned().unwrap_or(Value::Null));
        }
        Value::Object(out)
    }

    fn query(&mut self, req: &Req<'_>, all: bool) -> Result<Value, ApiError> {
        let q = req
            .param("q")
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| {
                ApiError::new(400, "MALFORMED_QUERY", "A query string has to be specified")
            })?;
        let parsed = soql::parse(&q)?;
        let obj = parsed.validate(&self.store.schema)?.clone();
        let rows: Vec<&Record> = if all {
            self.store.live_and_recent_deleted(&obj.name).collect()
        } else {
            self.store.live(&obj.name).collect()
        };
        let matched = soql::execute(&parsed, &obj, rows.into_iter());
        let fields = match &parsed.select {
            Select::Count => {
                return Ok(json!({"totalSize": matched.len(), "done": true, "records": []}))
            }
            Select::Fields(fields) => {
                let mut names: Vec<String> = Vec::new();
                for f in fields {
                    let name = obj.field(f).map(|d| d.name.clone()).unwrap_or(f.clone());
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                names
            }
        };
        let records: Vec<Value> = matched
            .iter()
            .map(|r| self.project(req, &obj, r, &fields))
            .collect();
        Ok(self.first_page(req, records))
    }

    fn first_page(&mut self, req: &Req<'_>, records: Vec<Value>) -> Value {
        let batch = req.batch_size();
        if records.len() <= batch {
            return page_body(records.len(), None, records);
        }
        self.next_locator += 1;
        let n = self.next_locator;
        let locator = format!("01gSm{n:010}AAA");
        let total = records.len();
        let first: Vec<Value> = records[..batch].to_vec();
        self.cursors.insert(
            n,
            Cursor {
                rows: records,
                batch,
            },
        );
        self.locators.insert(locator.clone(), n);
        while self.cursors.len() > MAX_CURSORS {
            if let Some((&oldest, _)) = self.cursors.iter().next() {
                self.cursors.remove(&oldest);
                self.locators.retain(|_, v| *v != oldest);
            }
        }
        let next = format!("/services/data/{}/query/{locator}-{batch}", req.version);
        page_body(total, Some(next), first)
    }

    fn query_more(&mut self, req: &Req<'_>, locator: &str) -> Result<Value, ApiError> {
        let invalid = || ApiError::new(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
        let (loc, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
        let offset: usize = offset.parse().map_err(|_| invalid())?;
        let n = *self.locators.get(loc).ok_or_else(invalid)?;
        let cursor = self.cursors.get(&n).ok_or_else(invalid)?;
        if offset == 0 || offset > cursor.rows.len() {
            return Err(invalid());
        }
        let end = (offset + cursor.batch).min(cursor.rows.len());
        let page: Vec<Value> = cursor.rows[offset..end].to_vec();
        let next = (end < cursor.rows.len())
            .then(|| format!("/services/data/{}/query/{loc}-{end}", req.version));
        Ok(page_body(cursor.rows.len(), next, page))
    }

    fn get_deleted(&self, req: &Req<'_>, object: &str) -> Result<Response, ApiError> {
        let obj = self.object(object)?;
        let parse = |name: &str| -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
            let raw = req.param(name).ok_or_else(|| {
                ApiError::new(
                    400,
                    "MISSING_ARGUMENT",
                    format!("{name} parameter is required"),
                )
            })?;
            parse_datetime(&raw).ok_or_else(|| {
                ApiError::new(
                    400,
                    "INVALID_REPLICATION_DATE",
                    format!("{name}: invalid date/time: {raw}"),
                )
            })
        };
        let start = parse("start")?;
        let end = parse("end")?;
        if start >= end {
            return Err(ApiError::new(
                400,
                "INVALID_REPLICATION_DATE",
                "startDate must chronologically precede endDate",
            ));
        }
        let now = self.store.now();
        let earliest = now - chrono::Duration::days(RECYCLE_BIN_DAYS);
        if start < earliest {
            return Err(ApiError::new(
                400,
                "INVALID_REPLICATION_DATE",
                format!(
                    "startDate is before the earliest date available ({}); records deleted more than {RECYCLE_BIN_DAYS} days ago are not available",
                    format_datetime(earliest)
                ),
            ));
        }
        let covered = end.min(self.store.latest());
        let deleted: Vec<Value> = self
            .store
            .deleted_between(&obj.name, start, covered)
            .into_iter()
            .map(|(id, date)| json!({"id": id, "deletedDate": date}))
            .collect();
        Ok(Json(json!({
            "deletedRecords": deleted,
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(covered),
        }))
        .into_response())
    }

    fn get_one(&self, req: &Req<'_>, object: &str, id: &str) -> Result<Response, ApiError> {
        let obj = self.object(object)?;
        let rec = self
            .store
            .get(&obj.name, id)
            .ok_or_else(ApiError::not_found)?;
        if super::store::is_deleted(rec) {
            return Err(ApiError::deleted());
        }
        let fields = self.selected_fields(req, &obj)?;
        Ok(Json(self.project(req, &obj, rec, &fields)).into_response())
    }

    /// `?fields=a,b` or every field of the object.
    fn selected_fields(&self, req: &Req<'_>, obj: &ObjectDef) -> Result<Vec<String>, ApiError> {
        match req.param("fields") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(|f| {
                    obj.field(f)
                        .map(|d| d.name.clone())
                        .ok_or_else(|| ApiError::unknown_field(f, &obj.name))
                })
                .collect(),
            None => Ok(obj.fields.iter().map(|f| f.name.clone()).collect()),
        }
    }

    fn get_by_external_id(
        &self,
        req: &Req<'_>,
        object: &str,
        field: &str,
        value: &str,
    ) -> Result<Response, ApiError> {
        let obj = self.object(object)?;
        let def = obj.field(field).ok_or_else(ApiError::not_found)?;
        let ids = self.store.find_by_field(&obj.name, def, value);
        match ids.as_slice() {
            [] => Err(ApiError::not_found()),
            [id] => self.get_one(req, &obj.name, id),
            many => {
                let urls: Vec<String> = many
                    .iter()
                    .map(|id| req.record_url(&obj.name, id))
                    .collect();
                Ok(json_response(StatusCode::MULTIPLE_CHOICES, json!(urls)))
            }
        }
    }

    fn body_record(req: &Req<'_>) -> Result<Record, ApiError> {
        match req.json()? {
            Value::Object(map) => Ok(map),
            _ => Err(ApiError::json_parse("expected a JSON object")),
        }
    }

    fn create_one(&mut self, req: &Req<'_>, object: &str, faults: &super::Faults) -> Response {
        let result = (|| {
            let obj = self.object(object)?;
            let body = Self::body_record(req)?;
            if let Some(e) =
                faults.take_record_fault(fault_keys(&obj, &body).iter().map(String::as_str))
            {
                return Err(ApiError::from(e));
            }
            match self.store.create(&obj.name, &body) {
                Ok(id) => Ok(json_response(
                    StatusCode::CREATED,
                    json!({"id": id, "success": true, "errors": []}),
                )),
                Err(fail) => Ok(single_write_error(fail, req, &obj.name)),
            }
        })();
        result.unwrap_or_else(IntoResponse::into_response)
    }

    fn update_one(
        &mut self,
        req: &Req<'_>,
        object: &str,
        id: &str,
        faults: &super::Faults,
    ) -> Response {
        let result = (|| {
            let obj = self.object(object)?;
            let body = Self::body_record(req)?;
            let mut keys = fault_keys(&obj, &body);
            keys.push(id.to_string());
            if let Some(e) = faults.take_record_fault(keys.iter().map(String::as_str)) {
                return Err(ApiError::from(e));
            }
            Ok(match self.store.update(&obj.name, id, &body) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(fail) => single_write_error(fail, req, &obj.name),
            })
        })();
        result.unwrap_or_else(IntoResponse::into_response)
    }

    fn upsert_one(
        &mut self,
        req: &Req<'_>,
        object: &str,
        field: &str,
        value: &str,
        faults: &super::Faults,
    ) -> Response {
        let result = (|| {
            let obj = self.object(object)?;
            if obj.field(field).is_none() {
                return Err(ApiError::not_found());
            }
            let body = Self::body_record(req)?;
            let mut keys = fault_keys(&obj, &body);
            keys.push(value.to_string());
            if let Some(e) = faults.take_record_fault(keys.iter().map(String::as_str)) {
                return Err(ApiError::from(e));
            }
            Ok(match self.store.upsert(&obj.name, field, value, &body) {
                Ok((id, created)) => json_response(
                    if created {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    json!({"id": id, "success": true, "errors": [], "created": created}),
                ),
                Err(fail) => single_write_error(fail, req, &obj.name),
            })
        })();
        result.unwrap_or_else(IntoResponse::into_response)
    }

    fn collection(
        &mut self,
        req: &Req<'_>,
        op: CollectionOp,
        faults: &super::Faults,
    ) -> Result<Response, ApiError> {
        let body = req.json()?;
        let all_or_none = body
            .get("allOrNone")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let records = body
            .get("records")
            .and_then(Value::as_array)
            .ok_or_else(|| ApiError::json_parse("records is required"))?;
        if records.len() > MAX_COLLECTION {
            return Err(ApiError::new(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            ));
        }
        let ext = match &op {
            CollectionOp::Upsert { object, field } => {
                let obj = self.store.object(object).cloned().ok_or_else(|| {
                    ApiError::new(
                        400,
                        "INVALID_TYPE",
                        format!("sObject type '{object}' is not supported."),
                    )
                })?;
                let def = obj
                    .field(field)
                    .ok_or_else(|| ApiError::unknown_field(field, &obj.name))?;
                if !def.external_id {
                    return Err(ApiError::new(
                        400,
                        "INVALID_FIELD",
                        format!(
                            "Field name provided, {} is not an External ID or indexed field for {}",
                            def.name, obj.name
                        ),
                    ));
                }
                Some((obj.clone(), def.name.clone()))
            }
            _ => None,
        };
        // Request-level checks first: every record is an object with a known type.
        let mut typed: Vec<(String, &Record)> = Vec::with_capacity(records.len());
        for r in records {
            let rec = r
                .as_object()
                .ok_or_else(|| ApiError::json_parse("each record must be a JSON object"))?;
            let type_name = rec
                .get("attributes")
                .and_then(|a| a.get("type"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::new(
                        400,
                        "INVALID_TYPE",
                        "Must specify a type in the attributes map",
                    )
                })?;
            let obj = self.store.object(type_name).ok_or_else(|| {
                ApiError::new(
                    400,
                    "INVALID_TYPE",
                    format!("sObject type '{type_name}' is not supported."),
                )
            })?;
            if let Some((ext_obj, _)) = &ext {
                if ext_obj.name != obj.name {
                    return Err(ApiError::new(
                        400,
                        "INVALID_TYPE",
                        format!("records must all be of type {}", ext_obj.name),
                    ));
                }
            }
            typed.push((obj.name.clone(), rec));
        }
        let duplicates = duplicates(&op, ext.as_ref(), &typed);

        self.store.begin();
        let mut outcomes = Vec::with_capacity(typed.len());
        for (i, (object, rec)) in typed.iter().enumerate() {
            let outcome = match self.write_collection_record(
                &op,
                object,
                rec,
                ext.as_ref(),
                duplicates[..].contains(&i),
                faults,
            ) {
                Ok(o) => o,
                Err(request_error) => {
                    self.store.rollback();
                    return Err(request_error);
                }
            };
            outcomes.push(outcome);
        }
        let failed = outcomes.iter().any(|o| o.result.is_err());
        if all_or_none && failed {
            self.store.rollback();
            for o in &mut outcomes {
                if o.result.is_ok() {
                    o.result = Err(RecordError::rolled_back());
                    if matches!(op, CollectionOp::Create) {
                        o.id = None;
                    }
                }
            }
        } else {
            self.store.commit();
        }
        let upsert = matches!(op, CollectionOp::Upsert { .. });
        let results: Vec<Value> = outcomes
            .into_iter()
            .map(|o| {
                let mut v = Map::new();
                if let Some(id) = o.id {
                    v.insert("id".into(), id.into());
                }
                match o.result {
                    Ok(created) => {
                        v.insert("success".into(), true.into());
                        v.insert("errors".into(), json!([]));
                        if upsert {
                            v.insert("created".into(), created.unwrap_or(false).into());
                        }
                    }
                    Err(e) => {
                        v.insert("success".into(), false.into());
                        v.insert("errors".into(), json!([e]));
                        if upsert {
                            v.insert("created".into(), false.into());
                        }
                    }
                }
                Value::Object(v)
            })
            .collect();
        Ok(Json(Value::Array(results)).into_response())
    }

    /// One record of a collection. `Err` only for request-level errors (the whole request
    /// fails and nothing is written).
    pub(super) fn write_collection_record(
        &mut self,
        op: &CollectionOp,
        object: &str,
        rec: &Record,
        ext: Option<&(ObjectDef, String)>,
        duplicate: bool,
        faults: &super::Faults,
    ) -> Result<Outcome, ApiError> {
        let given_id = rec
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("id"))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_string);
        let fail = |id: Option<String>, e: RecordError| Ok(Outcome { id, result: Err(e) });
        let ext_field = ext.map(|(_, f)| f.as_str());
        if duplicate {
            // Salesforce answers DUPLICATE_VALUE for both: an Id or an external id value
            // given more than once in one call.
            return match ext_field {
                Some(f) => fail(
                    None,
                    RecordError::new(
                        "DUPLICATE_VALUE",
                        format!(
                            "Duplicate external id specified: {}",
                            external_value(rec, f).unwrap_or_default()
                        ),
                        vec![f.to_string()],
                    ),
                ),
                None => fail(
                    given_id.clone(),
                    RecordError::new(
                        "DUPLICATE_VALUE",
                        format!(
                            "Duplicate id specified: {}",
                            given_id.as_deref().unwrap_or_default()
                        ),
                        vec![],
                    ),
                ),
            };
        }
        let keys = match self.store.object(object) {
            Some(obj) => fault_keys(obj, rec),
            None => Vec::new(),
        };
        if let Some(e) = faults.take_record_fault(keys.iter().map(String::as_str)) {
            return fail(given_id, e);
        }
        let result = match op {
            CollectionOp::Create => self.store.create(object, rec).map(|id| (id, None)),
            CollectionOp::Update => {
                let Some(id) = given_id.clone() else {
                    return fail(
                        None,
                        RecordError::new(
                            "MISSING_ARGUMENT",
                            "Id not specified in an update call",
                            vec![],
                        ),
                    );
                };
                // Salesforce answers with the 18-character Id, whichever form was given.
                self.store.update(object, &id, rec).map(|()| {
                    let full = self
                        .store
                        .get(object, &id)
                        .and_then(|r| r.get("Id"))
                        .and_then(Value::as_str)
                        .map_or(id, str::to_string);
                    (full, None)
                })
            }
            CollectionOp::Upsert { field, .. } => {
                let Some(value) = external_value(rec, field) else {
                    return fail(
                        None,
                        RecordError::new(
                            "MISSING_ARGUMENT",
                            format!("{field} not specified"),
                            vec![field.clone()],
                        ),
                    );
                };
                self.store
                    .upsert(object, field, &value, rec)
                    .map(|(id, created)| (id, Some(created)))
            }
        };
        match result {
            Ok((id, created)) => Ok(Outcome {
                id: Some(id),
                result: Ok(created),
            }),
            Err(WriteFail::Request(e)) => Err(e),
            Err(other) => {
                let id = match op {
                    CollectionOp::Update => given_id,
                    _ => None,
                };
                fail(id, collection_error(other, ext_field))
            }
        }
    }
}

/// A query result page; `done` when there is no next page. Built without copying the
/// records again (which `json!` would do).
fn page_body(total: usize, next: Option<String>, records: Vec<Value>) -> Value {
    let mut body = Map::new();
    body.insert("totalSize".into(), total.into());
    body.insert("done".into(), next.is_none().into());
    if let Some(next) = next {
        body.insert("nextRecordsUrl".into(), next.into());
    }
    body.insert("records".into(), Value::Array(records));
    Value::Object(body)
}

/// The positions of records named twice in one request (or one chunk of an ingest job):
/// each copy fails, the others go on.
pub(super) fn duplicates(
    op: &CollectionOp,
    ext: Option<&(ObjectDef, String)>,
    typed: &[(String, &Record)],
) -> Vec<usize> {
    match (op, ext) {
        (_, Some((obj, field))) => match obj.field(field) {
            Some(def) => duplicate_external_ids(typed, def),
            None => Vec::new(),
        },
        (CollectionOp::Update, None) => duplicate_ids(typed),
        _ => Vec::new(),
    }
}

/// The external id value of a record (field name matched ignoring case).
fn external_value(rec: &Record, field: &str) -> Option<String> {
    rec.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field))
        .and_then(|(_, v)| match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// Indexes of records whose Id appears more than once in an update request (a 15- and an
/// 18-character form of one Id are the same record).
fn duplicate_ids(records: &[(String, &Record)]) -> Vec<usize> {
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, (_, rec)) in records.iter().enumerate() {
        let id = rec
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("id"))
            .and_then(|(_, v)| v.as_str());
        if let Some(id) = id {
            seen.entry(super::store::id_key(id)).or_default().push(i);
        }
    }
    let mut dups: Vec<usize> = seen
        .into_values()
        .filter(|v| v.len() > 1)
        .flatten()
        .collect();
    dups.sort_unstable();
    dups
}

/// Indexes of records whose external id value appears more than once in the request
/// (ignoring case unless the field is case-sensitive).
fn duplicate_external_ids(records: &[(String, &Record)], field: &FieldDef) -> Vec<usize> {
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, (_, rec)) in records.iter().enumerate() {
        if let Some(v) = external_value(rec, &field.name) {
            let key = if field.case_sensitive {
                v
            } else {
                v.to_lowercase()
            };
            seen.entry(key).or_default().push(i);
        }
    }
    let mut dups: Vec<usize> = seen
        .into_values()
        .filter(|v| v.len() > 1)
        .flatten()
        .collect();
    dups.sort_unstable();
    dups
}
