//! The HTTP client of the PRM API v1.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::SecondsFormat;
use reqwest::header::{HeaderMap, ACCEPT, IF_MATCH};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::config::PrmConfig;
use crate::error::{FieldError, PrmError};
use crate::model::{
    read_records, Collection, Group, ListQuery, Malformed, PrmRecord, Settings, MAX_IDS,
};
use crate::retry;

/// Client of one PRM. Every request carries the bearer token; transient failures are
/// retried (see [`PrmConfig::max_retries`]).
pub struct PrmClient {
    http: reqwest::Client,
    base: Url,
    token: String,
    max_retries: u32,
    page_size: u32,
    calls: AtomicU64,
    /// The largest batch the PRM takes, from its settings, read once.
    batch_max: tokio::sync::OnceCell<Option<usize>>,
}

/// One write of a batch (`POST /v1/{collection}/batch`).
#[derive(Debug, Clone, Copy)]
pub enum BatchWrite<'a> {
    Create {
        idempotency_key: &'a str,
        record: &'a Map<String, Value>,
    },
    Update {
        id: &'a str,
        if_match: i64,
        record: &'a Map<String, Value>,
    },
}

impl BatchWrite<'_> {
    fn item(&self) -> Value {
        match self {
            BatchWrite::Create {
                idempotency_key,
                record,
            } => {
                serde_json::json!({"op": "create", "idempotency_key": idempotency_key, "record": record})
            }
            BatchWrite::Update {
                id,
                if_match,
                record,
            } => {
                serde_json::json!({"op": "update", "id": id, "if_match": if_match, "record": record})
            }
        }
    }
}

#[derive(Deserialize)]
struct BatchReply {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    status: u16,
    #[serde(default)]
    record: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

impl std::fmt::Debug for PrmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrmClient")
            .field("base_url", &self.base.as_str())
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

/// The body of a successful answer.
struct Reply {
    body: Vec<u8>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<FieldError>,
}

/// One page of a list as [`PrmClient::read_page`] reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct ListPage {
    pub records: Vec<PrmRecord>,
    /// Records of the page that could not be read, each refused alone.
    pub malformed: Vec<Malformed>,
    /// The cursor of the next page; `None` at the end.
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// Maps an error answer to a [`PrmError`].
fn error_from(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> PrmError {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .map(|e| e.error);
    let code = parsed.as_ref().map(|e| e.code.as_str()).unwrap_or_default();
    let message = parsed
        .as_ref()
        .map(|e| e.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("unexpected answer")
                .to_string()
        });
    match (status.as_u16(), code) {
        (401, _) | (_, "unauthorized") => PrmError::Unauthorized,
        (412, _) | (_, "version_conflict") => PrmError::VersionConflict,
        (409, _) | (_, "deleted") => PrmError::Deleted,
        (404, _) => PrmError::NotFound,
        (422, _) => PrmError::Validation {
            message,
            fields: parsed.map(|e| e.fields).unwrap_or_default(),
        },
        (429, _) => PrmError::RateLimited {
            retry_after: retry::retry_after(headers),
        },
        (status, _) => PrmError::Server { status, message },
    }
}

/// A transport error in words, without the URL (which the caller knows) or any header.
fn transport(method: &Method, path: &str, e: &reqwest::Error) -> PrmError {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    PrmError::Transport(format!("{method} {path}: {text}"))
}

fn decode<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, PrmError> {
    serde_json::from_slice(body).map_err(|e| PrmError::Decode(format!("{what}: {e}")))
}

fn record(body: &[u8]) -> Result<PrmRecord, PrmError> {
    let value: Value = decode("record", body)?;
    PrmRecord::from_json(value)
}

/// Whether `record` already carries every value of `patch` (used after an ambiguous retry).
fn patch_applied(record: &PrmRecord, patch: &Map<String, Value>) -> bool {
    patch.iter().all(|(k, v)| {
        let current = match k.as_str() {
            "id" | "version" | "created_at" | "updated_at" | "deleted_at" => return true,
            "crm_id" => record
                .crm_id
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
            _ => record.field(k).clone(),
        };
        match (k.as_str(), v, &current) {
            ("custom" | "customer", Value::Object(p), Value::Object(c)) => p
                .iter()
                .all(|(pk, pv)| c.get(pk).unwrap_or(&Value::Null) == pv),
            _ => &current == v,
        }
    })
}

impl PrmClient {
    pub fn new(cfg: PrmConfig) -> Result<Self, PrmError> {
        let base = prmsync_transport::secure_url("PRM API URL", &cfg.base_url)?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("prmsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PrmError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            token: cfg.token,
            max_retries: cfg.max_retries,
            page_size: cfg.page_size.clamp(1, 1000),
            calls: AtomicU64::new(0),
            batch_max: tokio::sync::OnceCell::new(),
        })
    }

    /// Records asked for per page of the engine's reads ([`PrmConfig::page_size`]).
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Every HTTP request sent so far, retries included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    /// Sends a request, retrying transient failures. `ambiguous` becomes true when an
    /// attempt failed in a way that leaves unknown whether the PRM applied it.
    async fn execute(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Option<&Map<String, Value>>,
        ambiguous: &mut bool,
    ) -> Result<Reply, PrmError> {
        let path = url.path().to_string();
        let mut attempt = 0;
        loop {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.token)
                .header(ACCEPT, "application/json");
            for (name, value) in headers {
                req = req.header(*name, value);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let err = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let resp_headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(bytes) if status.is_success() => {
                            tracing::debug!(%method, path, status = status.as_u16(), "PRM call");
                            return Ok(Reply {
                                body: bytes.to_vec(),
                            });
                        }
                        Ok(bytes) => error_from(status, &resp_headers, &bytes),
                        Err(e) => transport(&method, &path, &e),
                    }
                }
                Err(e) => transport(&method, &path, &e),
            };
            if matches!(err, PrmError::Transport(_) | PrmError::Server { .. }) {
                *ambiguous = true;
            }
            if !err.is_transient() || attempt >= self.max_retries {
                return Err(err);
            }
            let wait = match &err {
                PrmError::RateLimited { retry_after } => *retry_after,
                _ => retry::backoff(attempt),
            };
            tracing::warn!(%method, path, attempt, wait_ms = wait.as_millis() as u64, error = %err, "PRM call failed, retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Option<&Map<String, Value>>,
    ) -> Result<Reply, PrmError> {
        self.execute(method, url, headers, body, &mut false).await
    }

    /// One page of a list; returns the records and the cursor of the next page. A record
    /// that cannot be read fails the page: [`read_page`](Self::read_page) reads the others.
    pub async fn list_page(
        &self,
        c: Collection,
        q: &ListQuery,
        cursor: Option<&str>,
    ) -> Result<(Vec<PrmRecord>, Option<String>), PrmError> {
        let page = self.read_page(c, q, cursor).await?;
        if let Some(m) = page.malformed.into_iter().next() {
            return Err(PrmError::Decode(m.problem));
        }
        Ok((page.records, page.next))
    }

    /// One page of a list: the records read, those that could not be read (each refused
    /// alone), and the cursor of the next page.
    pub async fn read_page(
        &self,
        c: Collection,
        q: &ListQuery,
        cursor: Option<&str>,
    ) -> Result<ListPage, PrmError> {
        if q.ids.len() > MAX_IDS {
            return Err(PrmError::Validation {
                message: format!("a page can filter on at most {MAX_IDS} ids"),
                fields: vec![FieldError {
                    field: "ids".into(),
                    message: format!("lists {} ids; use list() to split them", q.ids.len()),
                }],
            });
        }
        let mut url = self.url(&[c.path()]);
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(t) = q.updated_since {
                pairs.append_pair(
                    "updated_since",
                    &t.to_rfc3339_opts(SecondsFormat::Millis, true),
                );
            }
            if let Some(limit) = q.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
            if !q.ids.is_empty() {
                pairs.append_pair("ids", &q.ids.join(","));
            }
            for (name, value) in [
                ("crm_id", &q.crm_id),
                ("email", &q.email),
                ("organization_id", &q.organization_id),
            ] {
                if let Some(v) = value {
                    pairs.append_pair(name, v);
                }
            }
            if let Some(cursor) = cursor {
                pairs.append_pair("cursor", cursor);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let reply = self.send(Method::GET, url, &[], None).await?;
        let page: Page<Value> = decode("list page", &reply.body)?;
        let (records, malformed) = read_records(page.data);
        Ok(ListPage {
            records,
            malformed,
            next: page.next_cursor.filter(|c| !c.is_empty()),
        })
    }

    /// Every record matching `q`, following cursors to the end. More than 200 ids are
    /// split into several requests; the result is ordered by `(updated_at, id)`. A record
    /// that cannot be read fails the list: [`read_all`](Self::read_all) reads the others.
    pub async fn list(&self, c: Collection, q: &ListQuery) -> Result<Vec<PrmRecord>, PrmError> {
        let (records, malformed) = self.read_all(c, q).await?;
        if let Some(m) = malformed.into_iter().next() {
            return Err(PrmError::Decode(m.problem));
        }
        Ok(records)
    }

    /// [`list`](Self::list), with the records that could not be read set aside instead of
    /// failing the list.
    pub async fn read_all(
        &self,
        c: Collection,
        q: &ListQuery,
    ) -> Result<(Vec<PrmRecord>, Vec<Malformed>), PrmError> {
        if q.ids.len() <= MAX_IDS {
            return self.list_all(c, q).await;
        }
        let mut out: Vec<PrmRecord> = Vec::new();
        let mut refused = Vec::new();
        for chunk in q.ids.chunks(MAX_IDS) {
            let part = ListQuery {
                ids: chunk.to_vec(),
                ..q.clone()
            };
            let (records, malformed) = self.list_all(c, &part).await?;
            out.extend(records);
            refused.extend(malformed);
        }
        out.sort_by(|a, b| (a.updated_at, &a.id).cmp(&(b.updated_at, &b.id)));
        out.dedup_by(|a, b| a.id == b.id);
        Ok((out, refused))
    }

    async fn list_all(
        &self,
        c: Collection,
        q: &ListQuery,
    ) -> Result<(Vec<PrmRecord>, Vec<Malformed>), PrmError> {
        let mut out = Vec::new();
        let mut refused = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.read_page(c, q, cursor.as_deref()).await?;
            out.extend(page.records);
            refused.extend(page.malformed);
            let next = page.next;
            match next {
                Some(n) if cursor.as_deref() == Some(n.as_str()) => {
                    return Err(PrmError::Decode(format!(
                        "the PRM returned the same cursor twice while listing {c}"
                    )));
                }
                Some(n) => cursor = Some(n),
                None => return Ok((out, refused)),
            }
        }
    }

    /// A record by id (tombstones included); `None` when the PRM never had it.
    pub async fn get(&self, c: Collection, id: &str) -> Result<Option<PrmRecord>, PrmError> {
        match self
            .send(Method::GET, self.url(&[c.path(), id]), &[], None)
            .await
        {
            Ok(reply) => record(&reply.body).map(Some),
            Err(PrmError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a record. The same `idempotency_key` within 24 h returns the record made the
    /// first time, so a retried create never makes a duplicate.
    pub async fn create(
        &self,
        c: Collection,
        idempotency_key: &str,
        body: &Map<String, Value>,
    ) -> Result<PrmRecord, PrmError> {
        let headers = [("Idempotency-Key", idempotency_key.to_string())];
        let reply = self
            .send(Method::POST, self.url(&[c.path()]), &headers, Some(body))
            .await?;
        record(&reply.body)
    }

    /// Applies a partial update if the record is still at version `if_match`.
    ///
    /// When an attempt failed without an answer and the retry meets `412`, the record is
    /// read again: if it is at `if_match + 1` and carries the patch, the first attempt went
    /// through and that record is returned.
    pub async fn update(
        &self,
        c: Collection,
        id: &str,
        if_match: i64,
        patch: &Map<String, Value>,
    ) -> Result<PrmRecord, PrmError> {
        let headers = [(IF_MATCH.as_str(), if_match.to_string())];
        let mut ambiguous = false;
        let result = self
            .execute(
                Method::PATCH,
                self.url(&[c.path(), id]),
                &headers,
                Some(patch),
                &mut ambiguous,
            )
            .await;
        match result {
            Ok(reply) => record(&reply.body),
            Err(PrmError::VersionConflict) if ambiguous => match self.get(c, id).await? {
                Some(r) if r.version == if_match + 1 && patch_applied(&r, patch) => Ok(r),
                _ => Err(PrmError::VersionConflict),
            },
            Err(e) => Err(e),
        }
    }

    /// Deletes a record (it becomes a tombstone).
    pub async fn delete(&self, c: Collection, id: &str) -> Result<(), PrmError> {
        self.send(Method::DELETE, self.url(&[c.path(), id]), &[], None)
            .await
            .map(|_| ())
    }

    /// Every group, following cursors.
    pub async fn groups(&self) -> Result<Vec<Group>, PrmError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(&["groups"]);
            if let Some(c) = &cursor {
                url.query_pairs_mut().append_pair("cursor", c);
            }
            let reply = self.send(Method::GET, url, &[], None).await?;
            let page: Page<Group> = decode("groups page", &reply.body)?;
            out.extend(page.data);
            match page.next_cursor.filter(|c| !c.is_empty()) {
                Some(n) if cursor.as_deref() == Some(n.as_str()) => {
                    return Err(PrmError::Decode(
                        "the PRM returned the same cursor twice while listing groups".into(),
                    ));
                }
                Some(n) => cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// The PRM settings: distributor module and field lists.
    pub async fn settings(&self) -> Result<Settings, PrmError> {
        let reply = self
            .send(Method::GET, self.url(&["settings"]), &[], None)
            .await?;
        let settings: Settings = decode("settings", &reply.body)?;
        let max = settings.batch.map(|b| b.max).filter(|m| *m > 0);
        let _ = self.batch_max.set(max);
        Ok(settings)
    }

    /// The largest batch the PRM takes (its settings, read once per client), or None when
    /// it offers no batches.
    pub async fn batch_max(&self) -> Result<Option<usize>, PrmError> {
        if let Some(max) = self.batch_max.get() {
            return Ok(*max);
        }
        self.settings().await?;
        Ok(self.batch_max.get().copied().flatten())
    }

    /// Sends `writes` as one batch: one result per write, in order, each as the single
    /// operation would give it. Items are independent; a batch sent again after a lost
    /// answer is safe (a create replays its key; an update that went through answers 412,
    /// and the record is then read to see whether it carries the change).
    pub async fn batch(
        &self,
        c: Collection,
        writes: &[BatchWrite<'_>],
    ) -> Result<Vec<Result<PrmRecord, PrmError>>, PrmError> {
        let mut body = Map::new();
        body.insert(
            "items".into(),
            Value::Array(writes.iter().map(BatchWrite::item).collect()),
        );
        let mut ambiguous = false;
        let reply = self
            .execute(
                Method::POST,
                self.url(&[c.path(), "batch"]),
                &[],
                Some(&body),
                &mut ambiguous,
            )
            .await?;
        let reply: BatchReply = decode("batch", &reply.body)?;
        if reply.results.len() != writes.len() {
            return Err(PrmError::Decode(format!(
                "the batch of {} writes answered {} results",
                writes.len(),
                reply.results.len()
            )));
        }
        let mut out = Vec::with_capacity(writes.len());
        for (write, result) in writes.iter().zip(reply.results) {
            let one = match (result.status, result.record) {
                (200 | 201, Some(rec)) => PrmRecord::from_json(rec),
                (status, _) => {
                    let error = serde_json::json!({ "error": result.error.unwrap_or(Value::Null) });
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                    Err(error_from(
                        status,
                        &HeaderMap::new(),
                        error.to_string().as_bytes(),
                    ))
                }
            };
            let one = match (one, write) {
                // sent again after a lost answer: the update may be the one that went through
                (
                    Err(PrmError::VersionConflict),
                    BatchWrite::Update {
                        id,
                        if_match,
                        record,
                    },
                ) if ambiguous => match self.get(c, id).await? {
                    Some(r) if r.version == if_match + 1 && patch_applied(&r, record) => Ok(r),
                    _ => Err(PrmError::VersionConflict),
                },
                (one, _) => one,
            };
            out.push(one);
        }
        Ok(out)
    }
}
