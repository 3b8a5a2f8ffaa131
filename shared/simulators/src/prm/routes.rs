//! The HTTP face of the PRM simulator (axum).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::error::SimError;
use super::faults::Injected;
use super::query::ListFilter;
use super::store::Collection;
use super::validate::Mode;
use super::PrmSim;

const MAX_IDEMPOTENCY_KEY: usize = 255;

pub(crate) fn router(sim: PrmSim) -> Router {
    Router::new()
        .route(
            "/v1/:collection",
            get(list).post(create).fallback(method_not_allowed),
        )
        .route(
            "/v1/:collection/:id",
            get(get_one)
                .post(batch)
                .patch(patch_one)
                .delete(delete_one)
                .fallback(method_not_allowed),
        )
        .fallback(unknown_path)
        .with_state(sim)
}

/// An error answer: the contract's error body, and `Retry-After` for rate limits.
pub(crate) struct Refusal {
    error: SimError,
    retry_after_secs: Option<u64>,
}

impl From<SimError> for Refusal {
    fn from(error: SimError) -> Self {
        Self {
            error,
            retry_after_secs: None,
        }
    }
}

impl From<Injected> for Refusal {
    fn from(i: Injected) -> Self {
        match i {
            Injected::Fail { status, code } => {
                SimError::new(status, &code, format!("injected fault: {code}")).into()
            }
            Injected::RateLimited { retry_after_secs } => Self {
                error: SimError::new(
                    429,
                    "rate_limited",
                    format!("too many requests; retry after {retry_after_secs} s"),
                ),
                retry_after_secs: Some(retry_after_secs),
            },
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(self.error.body())).into_response();
        if let Some(secs) = self.retry_after_secs {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

type Answer = Result<Response, Refusal>;

fn not_found_path() -> Refusal {
    SimError::new(404, "not_found", "no such path in the PRM API v1").into()
}

async fn unknown_path() -> Refusal {
    not_found_path()
}

async fn method_not_allowed() -> Refusal {
    SimError::new(
        405,
        "method_not_allowed",
        "this method is not supported on this path",
    )
    .into()
}

/// What every API call goes through: counting, latency, auth, injected faults.
/// Returns the collection (`None` for `settings` and unknown segments).
async fn begin(
    sim: &PrmSim,
    headers: &HeaderMap,
    segment: &str,
    kind: &str,
) -> Result<Option<Collection>, Refusal> {
    let coll = Collection::from_path(segment);
    let kind = match (segment, coll) {
        ("settings", _) => "settings",
        (_, Some(Collection::Groups)) => "groups",
        _ => kind,
    };
    let op = format!("{segment}.{kind}");
    sim.count_call(kind, &op);
    let latency = sim.faults().latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if !sim.authorized(headers) {
        return Err(SimError::unauthorized().into());
    }
    match sim.faults().before(kind, &op) {
        Some(i) => Err(i.into()),
        None => Ok(coll),
    }
}

/// Applies an "after write" fault: the write stays, the client sees an error.
fn finish(sim: &PrmSim, segment: &str, kind: &str, ok: Response) -> Answer {
    match sim.faults().after_write(kind, &format!("{segment}.{kind}")) {
        Some(i) => Err(i.into()),
        None => Ok(ok),
    }
}

fn writable(coll: Option<Collection>, segment: &str) -> Result<Collection, Refusal> {
    match coll {
        Some(Collection::Groups) => {
            Err(SimError::new(405, "method_not_allowed", "groups are read-only").into())
        }
        Some(c) => Ok(c),
        None if segment == "settings" => {
            Err(SimError::new(405, "method_not_allowed", "settings are read-only").into())
        }
        None => Err(not_found_path()),
    }
}

fn parse_body(bytes: &Bytes) -> Result<Map<String, Value>, SimError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(SimError::field("body", "must be a JSON object")),
        Err(e) => Err(SimError::field("body", format!("is not valid JSON: {e}"))),
    }
}

async fn list(
    State(sim): State<PrmSim>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    let Some(c) = begin(&sim, &headers, &segment, "list").await? else {
        if segment != "settings" {
            return Err(not_found_path());
        }
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            let name = q.split('=').next().unwrap_or_default().to_string();
            return Err(SimError::field(&name, "is not a known query parameter").into());
        }
        return Ok(Json(sim.settings_json()).into_response());
    };
    let filter = ListFilter::parse(c, query.as_deref())?;
    let (data, next) = sim.with_store(|s| s.list(c, &filter));
    Ok(Json(json!({"data": data, "next_cursor": next})).into_response())
}

async fn get_one(
    State(sim): State<PrmSim>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let c = begin(&sim, &headers, &segment, "get")
        .await?
        .ok_or_else(not_found_path)?;
    match sim.get(c, &id) {
        Some(rec) => Ok(Json(rec).into_response()),
        None => Err(SimError::not_found(c.noun(), &id).into()),
    }
}

async fn create(
    State(sim): State<PrmSim>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let coll = begin(&sim, &headers, &segment, "create").await?;
    let c = writable(coll, &segment)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(SimError::field(
            "Idempotency-Key",
            format!("header is required: 1 to {MAX_IDEMPOTENCY_KEY} characters"),
        )
        .into());
    }
    let body = parse_body(&body)?;
    match sim.with_store(|s| s.create_idempotent(c, &key, &body))? {
        (true, rec) => Ok((StatusCode::OK, Json(rec)).into_response()),
        (false, rec) => finish(
            &sim,
            &segment,
            "create",
            (StatusCode::CREATED, Json(rec)).into_response(),
        ),
    }
}

fn parse_if_match(headers: &HeaderMap) -> Result<i64, SimError> {
    let raw = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let unquoted = raw.trim_start_matches("W/").trim_matches('"');
    unquoted.parse::<i64>().map_err(|_| {
        SimError::field(
            "If-Match",
            "header is required: the version the change is based on",
        )
    })
}

async fn patch_one(
    State(sim): State<PrmSim>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let coll = begin(&sim, &headers, &segment, "update").await?;
    let c = writable(coll, &segment)?;
    // Unknown and deleted records answer 404/409 before the headers and body are judged.
    match sim.with_store(|s| s.liveness(c, &id)) {
        None => return Err(SimError::not_found(c.noun(), &id).into()),
        Some(false) => return Err(SimError::deleted(&id).into()),
        Some(true) => {}
    }
    let version = parse_if_match(&headers)?;
    let body = parse_body(&body)?;
    let rec = sim.with_store(|s| s.patch(c, &id, Some(version), &body, Mode::Api))?;
    finish(&sim, &segment, "update", Json(rec).into_response())
}

async fn delete_one(
    State(sim): State<PrmSim>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let coll = begin(&sim, &headers, &segment, "delete").await?;
    let c = writable(coll, &segment)?;
    sim.with_store(|s| s.delete(c, &id))?;
    finish(
        &sim,
        &segment,
        "delete",
        StatusCode::NO_CONTENT.into_response(),
    )
}

/// `POST /v1/{collection}/batch`: up to `max` creates and updates, each applied (or refused)
/// on its own, one result per item in order; the batch is never rolled back.
async fn batch(
    State(sim): State<PrmSim>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    if id != "batch" {
        return Err(method_not_allowed().await);
    }
    let coll = begin(&sim, &headers, &segment, "batch").await?;
    let c = writable(coll, &segment)?;
    let Some(max) = sim.with_store(|s| s.settings.batch.map(|b| b.max)) else {
        return Err(not_found_path());
    };
    let items = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(mut m)) => match m.remove("items") {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => {
                return Err(
                    SimError::field("items", format!("must be a list of 1 to {max} items")).into(),
                )
            }
        },
        _ => return Err(SimError::field("body", "must be a JSON object with `items`").into()),
    };
    if items.len() > max {
        return Err(SimError::new(
            413,
            "payload_too_large",
            format!("{} items; a batch takes at most {max}", items.len()),
        )
        .into());
    }
    let results: Vec<Value> = items
        .iter()
        .map(|item| match batch_item(&sim, c, item) {
            Ok((status, rec)) => json!({"status": status, "record": rec}),
            Err(e) => json!({"status": e.status, "error": e.body()["error"]}),
        })
        .collect();
    finish(
        &sim,
        &segment,
        "batch",
        Json(json!({ "results": results })).into_response(),
    )
}

/// One item of a batch: its status and record, or its error (as the single operation's).
fn batch_item(sim: &PrmSim, c: Collection, item: &Value) -> Result<(u16, Value), SimError> {
    let record = match item.get("record") {
        Some(Value::Object(m)) => m.clone(),
        _ => return Err(SimError::field("record", "must be a JSON object")),
    };
    match item.get("op").and_then(Value::as_str) {
        Some("create") => {
            let key = item
                .get("idempotency_key")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
                return Err(SimError::field(
                    "idempotency_key",
                    format!("is required: 1 to {MAX_IDEMPOTENCY_KEY} characters"),
                ));
            }
            let (replayed, rec) = sim.with_store(|s| s.create_idempotent(c, key, &record))?;
            Ok((if replayed { 200 } else { 201 }, rec))
        }
        Some("update") => {
            let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
            match sim.with_store(|s| s.liveness(c, id)) {
                None => return Err(SimError::not_found(c.noun(), id)),
                Some(false) => return Err(SimError::deleted(id)),
                Some(true) => {}
            }
            let version = item
                .get("if_match")
                .and_then(Value::as_i64)
                .ok_or_else(|| {
                    SimError::field(
                        "if_match",
                        "is required: the version the change is based on",
                    )
                })?;
            let rec = sim.with_store(|s| s.patch(c, id, Some(version), &record, Mode::Api))?;
            Ok((200, rec))
        }
        _ => Err(SimError::field("op", "must be create or update")),
    }
}
