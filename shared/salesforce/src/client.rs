//! The REST client: token handling, retries, limits tracking and the API calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, ACCEPT};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{parse_token, token_error, Auth, Authenticator, Token};
use crate::error::{api_error_from_body, classify, ErrorClass, SfError};
use crate::retry::Backoff;
use crate::types::{
    parse_datetime, ApiUsage, CallCounts, DeletedRecord, DeletedResult, Describe, Fields,
    RecordError, RecordResult, SObject, WireRecordResult,
};

/// Records per sObject Collections call (the API maximum).
pub const COLLECTION_CHUNK: usize = 200;

/// Characters left as-is in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Client configuration.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// `https://login.salesforce.com`, `https://test.salesforce.com` or the My Domain URL
    /// (the client-credentials flow needs My Domain).
    pub login_url: String,
    /// API version without the `v`, e.g. `62.0`.
    pub api_version: String,
    pub auth: Auth,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries of a transient failure (not counting the first attempt).
    pub max_retries: u32,
    /// `Sforce-Query-Options: batchSize=N` (clamped to 200..=2000).
    pub query_batch_size: u32,
    /// Base delay of the exponential backoff (full jitter).
    pub retry_base: Duration,
    /// Upper bound of one backoff delay.
    pub retry_max: Duration,
    /// Keep this percentage of the daily API allocation unused: once the last seen
    /// `Sforce-Limit-Info` shows less left, requests fail with `SfError::LimitReserve`
    /// before being sent. `None` = no check.
    pub api_reserve_percent: Option<u8>,
    /// JWT `aud` claim; defaults to `login_url` (`https://login.salesforce.com` or
    /// `https://test.salesforce.com` for real orgs).
    pub jwt_audience: Option<String>,
    /// A full change read of more records than this goes through a Bulk API 2.0 query job
    /// when that takes fewer calls than REST pages; 0 = never.
    pub bulk_query_threshold: u64,
    /// Polling and result paging of those jobs.
    pub bulk_query: crate::BulkQueryOptions,
}

impl SalesforceConfig {
    /// Defaults: API v62.0, 60 s timeout, 4 retries from 500 ms up to 30 s, pages of 2000,
    /// no reserve check.
    pub fn new(login_url: impl Into<String>, auth: Auth) -> Self {
        SalesforceConfig {
            login_url: login_url.into(),
            api_version: "62.0".into(),
            auth,
            timeout: Duration::from_secs(60),
            max_retries: 4,
            query_batch_size: 2000,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            api_reserve_percent: None,
            jwt_audience: None,
            bulk_query_threshold: 10_000,
            bulk_query: crate::BulkQueryOptions::default(),
        }
    }
}

/// How long [`SalesforceClient::describe_cached`] reuses a describe.
pub const DESCRIBE_TTL: Duration = Duration::from_secs(300);

struct Inner {
    cfg: SalesforceConfig,
    describes: Mutex<std::collections::HashMap<String, (std::time::Instant, Describe)>>,
    login_url: String,
    data_prefix: String,
    http: reqwest::Client,
    authn: Authenticator,
    backoff: Backoff,
    token: tokio::sync::Mutex<Option<Token>>,
    instance: Mutex<Option<String>>,
    usage: Mutex<Option<ApiUsage>>,
    total: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    auth_calls: AtomicU64,
}

/// Salesforce REST client. Cheap to clone (shares the token, counters and HTTP pool).
#[derive(Clone)]
pub struct SalesforceClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SalesforceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceClient")
            .field("login_url", &self.inner.login_url)
            .field("api_version", &self.inner.cfg.api_version)
            .field("auth", &self.inner.cfg.auth)
            .field("instance_url", &self.instance_url())
            .finish()
    }
}

/// One HTTP response that was not an error.
pub(crate) struct Resp {
    pub(crate) body: Vec<u8>,
    pub(crate) headers: HeaderMap,
}

impl Resp {
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, SfError> {
        serde_json::from_slice(&self.body).map_err(|e| SfError::decode(what, e))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    #[serde(default)]
    done: bool,
    #[serde(default, rename = "totalSize")]
    total_size: u64,
    #[serde(default)]
    records: Vec<Value>,
    #[serde(default)]
    next_records_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDeleted {
    #[serde(default)]
    deleted_records: Vec<WireDeletedRecord>,
    #[serde(default)]
    earliest_date_available: Option<String>,
    #[serde(default)]
    latest_date_covered: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDeletedRecord {
    id: String,
    deleted_date: String,
}

impl SalesforceClient {
    /// Build a client. Validates the configuration (URL, credentials present, PEM key);
    /// no network call is made until the first request.
    pub fn new(cfg: SalesforceConfig) -> Result<Self, SfError> {
        let login_url = cfg.login_url.trim().trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&login_url).map_err(|_| {
            SfError::Config(format!(
                "login_url {login_url:?} is not a URL; use https://login.salesforce.com, \
                 https://test.salesforce.com or your My Domain URL"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SfError::Config(format!(
                "login_url {login_url:?} must start with https://"
            )));
        }
        let version = cfg.api_version.trim().trim_start_matches(['v', 'V']);
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(SfError::Config(format!(
                "api_version {:?} is not a version like 62.0",
                cfg.api_version
            )));
        }
        let data_prefix = format!("/services/data/v{version}");
        let audience = cfg
            .jwt_audience
            .clone()
            .unwrap_or_else(|| login_url.clone());
        let authn = Authenticator::new(cfg.auth.clone(), audience)?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .user_agent(concat!("prmsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SfError::Config(format!("could not build the HTTP client: {e}")))?;
        let backoff = Backoff {
            max_retries: cfg.max_retries,
            base: cfg.retry_base,
            max_delay: cfg.retry_max.max(cfg.retry_base),
        };
        Ok(SalesforceClient {
            inner: Arc::new(Inner {
                cfg,
                describes: Mutex::new(std::collections::HashMap::new()),
                login_url,
                data_prefix,
                http,
                authn,
                backoff,
                token: tokio::sync::Mutex::new(None),
                instance: Mutex::new(None),
                usage: Mutex::new(None),
                total: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                writes: AtomicU64::new(0),
                auth_calls: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &SalesforceConfig {
        &self.inner.cfg
    }

    /// Last API usage seen in a `Sforce-Limit-Info` header or `/limits`.
    pub fn usage(&self) -> Option<ApiUsage> {
        *self.inner.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// HTTP requests sent so far (retries included).
    pub fn calls(&self) -> CallCounts {
        let i = &self.inner;
        CallCounts {
            total: i.total.load(Ordering::Relaxed),
            reads: i.reads.load(Ordering::Relaxed),
            writes: i.writes.load(Ordering::Relaxed),
            auth: i.auth_calls.load(Ordering::Relaxed),
        }
    }

    /// The instance URL from the last token response (`None` before the first call).
    pub fn instance_url(&self) -> Option<String> {
        self.inner
            .instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Link to a record in the Salesforce UI, e.g. for the Integration Log.
    pub fn record_url(&self, id: &str) -> Option<String> {
        self.instance_url().map(|i| format!("{i}/{}", seg(id)))
    }

    /// Fetch a token now (normally done lazily) — useful to check credentials at start-up.
    pub async fn authenticate(&self) -> Result<(), SfError> {
        self.token().await.map(|_| ())
    }

    // ---------------------------------------------------------------- queries

    /// Run a SOQL query and follow `nextRecordsUrl` to the end.
    pub async fn query(&self, soql: &str) -> Result<Vec<SObject>, SfError> {
        let mut out = Vec::new();
        self.query_pages(soql, false, |page| out.extend(page))
            .await?;
        Ok(out)
    }

    /// Like [`query`](Self::query) through `/queryAll` (includes deleted and archived rows).
    pub async fn query_all(&self, soql: &str) -> Result<Vec<SObject>, SfError> {
        let mut out = Vec::new();
        self.query_pages(soql, true, |page| out.extend(page))
            .await?;
        Ok(out)
    }

    /// Run a query and hand each page (up to `query_batch_size` records) to `on_page`.
    pub async fn query_pages(
        &self,
        soql: &str,
        all: bool,
        mut on_page: impl FnMut(Vec<SObject>),
    ) -> Result<(), SfError> {
        let (mut records, mut next) = self.query_first_page(soql, all).await?;
        loop {
            on_page(records);
            match next {
                Some(url) => (records, next) = self.query_next_page(&url).await?,
                None => return Ok(()),
            }
        }
    }

    fn query_options(&self) -> [(&'static str, String); 1] {
        let batch = self.inner.cfg.query_batch_size.clamp(200, 2000);
        [("Sforce-Query-Options", format!("batchSize={batch}"))]
    }

    /// The first page of a query (`/queryAll` when `all`), and the `nextRecordsUrl` of the
    /// next page when there is one.
    pub async fn query_first_page(
        &self,
        soql: &str,
        all: bool,
    ) -> Result<(Vec<SObject>, Option<String>), SfError> {
        let (records, next, _) = self.query_first_page_sized(soql, all).await?;
        Ok((records, next))
    }

    /// [`query_first_page`](Self::query_first_page) with the query's `totalSize`.
    pub async fn query_first_page_sized(
        &self,
        soql: &str,
        all: bool,
    ) -> Result<(Vec<SObject>, Option<String>, u64), SfError> {
        let path = self.data_path(if all { "/queryAll" } else { "/query" });
        let resp = self
            .send(
                Method::GET,
                &path,
                &[("q", soql.to_string())],
                None,
                &self.query_options(),
                true,
            )
            .await?;
        let page: QueryPage = resp.json("a query")?;
        let total = page.total_size;
        let (records, next) = Self::page_records(page)?;
        Ok((records, next, total))
    }

    /// The page a `nextRecordsUrl` names, and the next one's address.
    pub async fn query_next_page(
        &self,
        next_records_url: &str,
    ) -> Result<(Vec<SObject>, Option<String>), SfError> {
        let resp = self
            .send(
                Method::GET,
                next_records_url,
                &[],
                None,
                &self.query_options(),
                true,
            )
            .await?;
        Self::query_page(resp)
    }

    fn query_page(resp: Resp) -> Result<(Vec<SObject>, Option<String>), SfError> {
        Self::page_records(resp.json("a query")?)
    }

    fn page_records(page: QueryPage) -> Result<(Vec<SObject>, Option<String>), SfError> {
        let records = page
            .records
            .into_iter()
            .map(SObject::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        let next = page
            .next_records_url
            .filter(|next| !page.done && !next.is_empty());
        Ok((records, next))
    }

    // ---------------------------------------------------------------- single records

    /// `GET /sobjects/{object}/{id}` (all fields when `fields` is empty).
    /// `Ok(None)` when the record does not exist or was deleted.
    pub async fn get(
        &self,
        object: &str,
        id: &str,
        fields: &[&str],
    ) -> Result<Option<SObject>, SfError> {
        let path = self.data_path(&format!("/sobjects/{}/{}", seg(object), seg(id)));
        let query: Vec<(&str, String)> = if fields.is_empty() {
            vec![]
        } else {
            vec![("fields", fields.join(","))]
        };
        match self.send(Method::GET, &path, &query, None, &[], true).await {
            Ok(resp) => {
                let v: Value = resp.json("a record read")?;
                let mut o = SObject::from_json(v)?;
                if o.object.is_empty() {
                    o.object = object.to_string();
                }
                if o.id.is_empty() {
                    o.id = id.to_string();
                }
                Ok(Some(o))
            }
            Err(e) if e.class() == ErrorClass::Gone => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---------------------------------------------------------------- collections

    /// Create records with sObject Collections (`POST /composite/sobjects`, `allOrNone`
    /// false), 200 per call, sequentially. Results are in input order; per-record errors are
    /// in the results. See [`Self::update`] for how request-level failures are reported.
    ///
    /// Creates are not idempotent, so a request that may have reached Salesforce (timeout,
    /// 500) is not re-sent; only requests Salesforce rejected outright (503, request limit,
    /// connection refused) and per-record `UNABLE_TO_LOCK_ROW` failures are retried.
    pub async fn create(
        &self,
        object: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<RecordResult>, SfError> {
        let body: Vec<Value> = records
            .into_iter()
            .map(|f| record_body(object, None, f))
            .collect();
        let path = self.data_path("/composite/sobjects");
        self.collection(Method::POST, &path, body, false).await
    }

    /// Update records by Id (`PATCH /composite/sobjects`), 200 per call, sequentially.
    ///
    /// Results are in input order. If the first call fails as a whole, the error is
    /// returned. If a later call fails as a whole, the results of the calls that went
    /// through are kept, and each record of the failed and remaining calls gets one
    /// `RecordError` whose `status_code` carries the failure's class (e.g.
    /// `SERVER_UNAVAILABLE`/`REQUEST_LIMIT_EXCEEDED` for transient ones) and whose message
    /// is the request error.
    pub async fn update(
        &self,
        object: &str,
        records: Vec<(String, Fields)>,
    ) -> Result<Vec<RecordResult>, SfError> {
        let body: Vec<Value> = records
            .into_iter()
            .map(|(id, f)| record_body(object, Some(id), f))
            .collect();
        let path = self.data_path("/composite/sobjects");
        self.collection(Method::PATCH, &path, body, true).await
    }

    /// Upsert on an external ID field (`PATCH /composite/sobjects/{object}/{field}`),
    /// 200 per call, sequentially. Each record must carry `external_id_field`.
    /// `RecordResult::created` tells created (true) from updated (false).
    pub async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<RecordResult>, SfError> {
        let body: Vec<Value> = records
            .into_iter()
            .map(|f| record_body(object, None, f))
            .collect();
        let path = self.data_path(&format!(
            "/composite/sobjects/{}/{}",
            seg(object),
            seg(external_id_field)
        ));
        self.collection(Method::PATCH, &path, body, true).await
    }

    async fn collection(
        &self,
        method: Method,
        path: &str,
        records: Vec<Value>,
        idempotent: bool,
    ) -> Result<Vec<RecordResult>, SfError> {
        let mut out: Vec<RecordResult> = Vec::with_capacity(records.len());
        let mut chunks = records.chunks(COLLECTION_CHUNK);
        while let Some(chunk) = chunks.next() {
            match self
                .collection_chunk(method.clone(), path, chunk, idempotent)
                .await
            {
                Ok(r) => out.extend(r),
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "sObject Collections call failed after earlier calls succeeded");
                    let err = record_error_from(&e);
                    let remaining = chunk.len() + chunks.map(<[Value]>::len).sum::<usize>();
                    out.extend((0..remaining).map(|_| RecordResult::failed(err.clone())));
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One ≤200-record call, then re-send records that failed only with transient
    /// per-record errors (row locks) with backoff.
    async fn collection_chunk(
        &self,
        method: Method,
        path: &str,
        chunk: &[Value],
        idempotent: bool,
    ) -> Result<Vec<RecordResult>, SfError> {
        let mut results: Vec<Option<RecordResult>> = vec![None; chunk.len()];
        let mut pending: Vec<usize> = (0..chunk.len()).collect();
        let mut attempt = 0u32;
        loop {
            let body = json!({
                "allOrNone": false,
                "records": pending.iter().map(|&i| chunk[i].clone()).collect::<Vec<_>>(),
            });
            let resp = match self
                .send(method.clone(), path, &[], Some(&body), &[], idempotent)
                .await
            {
                Ok(r) => r,
                // The first call's failure is the caller's; a failed re-send keeps the
                // per-record errors of the previous attempt.
                Err(e) if attempt == 0 => return Err(e),
                Err(_) => break,
            };
            let items: Vec<WireRecordResult> = resp.json("an sObject Collections call")?;
            if items.len() != pending.len() {
                return Err(SfError::decode(
                    "an sObject Collections call",
                    format!("{} results for {} records", items.len(), pending.len()),
                ));
            }
            let mut retry = Vec::new();
            for (&idx, item) in pending.iter().zip(items) {
                let r = RecordResult::from(item);
                if !r.is_success() && r.errors.iter().all(|e| e.class() == ErrorClass::Transient) {
                    retry.push(idx);
                }
                results[idx] = Some(r);
            }
            if retry.is_empty() || attempt >= self.inner.backoff.max_retries {
                break;
            }
            self.inner.backoff.sleep(attempt).await;
            attempt += 1;
            pending = retry;
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every record has a result"))
            .collect())
    }

    // ---------------------------------------------------------------- metadata, deletes, limits

    /// `GET /sobjects/{object}/describe`, typed subset.
    pub async fn describe(&self, object: &str) -> Result<Describe, SfError> {
        let path = self.data_path(&format!("/sobjects/{}/describe", seg(object)));
        let d: Describe = self
            .send(Method::GET, &path, &[], None, &[], true)
            .await?
            .json("a describe")?;
        if let Ok(mut cache) = self.inner.describes.lock() {
            cache.insert(object.to_string(), (std::time::Instant::now(), d.clone()));
        }
        Ok(d)
    }

    /// A describe read by this client in the last [`DESCRIBE_TTL`], or a fresh one.
    pub async fn describe_cached(&self, object: &str) -> Result<Describe, SfError> {
        let hit = self.inner.describes.lock().ok().and_then(|cache| {
            cache
                .get(object)
                .filter(|(at, _)| at.elapsed() < DESCRIBE_TTL)
                .map(|(_, d)| d.clone())
        });
        match hit {
            Some(d) => Ok(d),
            None => self.describe(object).await,
        }
    }

    /// Records deleted between `start` and `end` (getDeleted; reaches back 15 days).
    pub async fn get_deleted(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<DeletedRecord>, SfError> {
        Ok(self.get_deleted_result(object, start, end).await?.records)
    }

    /// getDeleted with `earliestDateAvailable` and `latestDateCovered`.
    pub async fn get_deleted_result(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<DeletedResult, SfError> {
        let fmt = |d: DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
        let path = self.data_path(&format!("/sobjects/{}/deleted/", seg(object)));
        let w: WireDeleted = self
            .send(
                Method::GET,
                &path,
                &[("start", fmt(start)), ("end", fmt(end))],
                None,
                &[],
                true,
            )
            .await?
            .json("getDeleted")?;
        let records = w
            .deleted_records
            .into_iter()
            .map(|r| {
                let deleted_date = parse_datetime(&r.deleted_date).ok_or_else(|| {
                    SfError::decode("getDeleted", format!("bad deletedDate {}", r.deleted_date))
                })?;
                Ok(DeletedRecord {
                    id: r.id,
                    deleted_date,
                })
            })
            .collect::<Result<Vec<_>, SfError>>()?;
        Ok(DeletedResult {
            records,
            earliest_date_available: w
                .earliest_date_available
                .as_deref()
                .and_then(parse_datetime),
            latest_date_covered: w.latest_date_covered.as_deref().and_then(parse_datetime),
        })
    }

    /// `GET /limits` → daily API requests used/max (also updates [`usage`](Self::usage)).
    pub async fn limits(&self) -> Result<ApiUsage, SfError> {
        let path = self.data_path("/limits");
        let v: Value = self
            .send(Method::GET, &path, &[], None, &[], true)
            .await?
            .json("/limits")?;
        let d = v
            .get("DailyApiRequests")
            .ok_or_else(|| SfError::decode("/limits", "no DailyApiRequests"))?;
        let max = d.get("Max").and_then(Value::as_u64);
        let remaining = d.get("Remaining").and_then(Value::as_u64);
        let (Some(max), Some(remaining)) = (max, remaining) else {
            return Err(SfError::decode(
                "/limits",
                "DailyApiRequests without Max/Remaining",
            ));
        };
        let usage = ApiUsage {
            used: max.saturating_sub(remaining),
            max,
        };
        *self.inner.usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(usage);
        Ok(usage)
    }

    // ---------------------------------------------------------------- plumbing

    pub(crate) fn data_path(&self, rest: &str) -> String {
        format!("{}{}", self.inner.data_prefix, rest)
    }

    fn track(&self, headers: &HeaderMap) {
        if let Some(u) = headers
            .get("Sforce-Limit-Info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse_header)
        {
            *self.inner.usage.lock().unwrap_or_else(|e| e.into_inner()) = Some(u);
        }
    }

    fn check_reserve(&self) -> Result<(), SfError> {
        let Some(pct) = self.inner.cfg.api_reserve_percent else {
            return Ok(());
        };
        let Some(u) = self.usage() else {
            return Ok(());
        };
        let reserve = u.max.saturating_mul(u64::from(pct.min(100))) / 100;
        if u.max > 0 && u.remaining() <= reserve {
            return Err(SfError::LimitReserve {
                used: u.used,
                max: u.max,
                reserve_percent: pct,
            });
        }
        Ok(())
    }

    async fn token(&self) -> Result<Token, SfError> {
        let mut guard = self.inner.token.lock().await;
        if let Some(t) = guard.as_ref() {
            return Ok(t.clone());
        }
        let t = self.fetch_token().await?;
        *guard = Some(t.clone());
        Ok(t)
    }

    /// Replace the token that failed with `stale` (unless another task already did).
    async fn refresh(&self, stale: &str) -> Result<Token, SfError> {
        let mut guard = self.inner.token.lock().await;
        if let Some(t) = guard.as_ref() {
            if t.access_token != stale {
                return Ok(t.clone());
            }
        }
        *guard = None;
        let t = self.fetch_token().await?;
        *guard = Some(t.clone());
        Ok(t)
    }

    async fn fetch_token(&self) -> Result<Token, SfError> {
        let url = format!("{}/services/oauth2/token", self.inner.login_url);
        let mut attempt = 0u32;
        loop {
            let form = self.inner.authn.form()?;
            self.inner.total.fetch_add(1, Ordering::Relaxed);
            self.inner.auth_calls.fetch_add(1, Ordering::Relaxed);
            let err = match self
                .inner
                .http
                .post(&url)
                .header(ACCEPT, "application/json")
                .form(&form)
                .send()
                .await
            {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) if (200..300).contains(&status) => {
                            let t = parse_token(&body)?;
                            *self
                                .inner
                                .instance
                                .lock()
                                .unwrap_or_else(|e| e.into_inner()) = Some(t.instance_url.clone());
                            tracing::debug!(instance_url = %t.instance_url, "salesforce token obtained");
                            return Ok(t);
                        }
                        Ok(body) if status >= 500 || status == 429 => token_error(status, &body),
                        Ok(body) => return Err(token_error(status, &body)),
                        Err(e) => transport_error("POST /services/oauth2/token", &e),
                    }
                }
                Err(e) => transport_error("POST /services/oauth2/token", &e),
            };
            if attempt >= self.inner.backoff.max_retries {
                return Err(err);
            }
            tracing::warn!(error = %err, attempt, "salesforce token request failed; retrying");
            self.inner.backoff.sleep(attempt).await;
            attempt += 1;
        }
    }

    /// Send one REST request with token handling and retries. `path` is either a path on
    /// the instance (`/services/data/...`) or an absolute URL. Returns 2xx responses (and
    /// 300, which Salesforce uses for ambiguous external IDs); everything else is `Err`.
    /// `Accept: application/json` is sent unless `headers` names another `Accept`.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        headers: &[(&str, String)],
        idempotent: bool,
    ) -> Result<Resp, SfError> {
        let is_read = method == Method::GET || method == Method::HEAD;
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let mut attempt = 0u32;
        let mut refreshed = false;
        let mut token = self.token().await?;
        let own_accept = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"));
        loop {
            self.check_reserve()?;
            let url = if path.starts_with("http://") || path.starts_with("https://") {
                path.to_string()
            } else {
                format!("{}{}", token.instance_url, path)
            };
            let mut rb = self
                .inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(&token.access_token);
            if !own_accept {
                rb = rb.header(ACCEPT, "application/json");
            }
            if !query.is_empty() {
                rb = rb.query(query);
            }
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            self.inner.total.fetch_add(1, Ordering::Relaxed);
            if is_read {
                self.inner.reads.fetch_add(1, Ordering::Relaxed);
            } else {
                self.inner.writes.fetch_add(1, Ordering::Relaxed);
            }
            let (err, may_retry) = match rb.send().await {
                Err(e) => {
                    let safe = idempotent || e.is_connect();
                    (transport_error(&what, &e), safe)
                }
                Ok(resp) => {
                    self.track(resp.headers());
                    let status = resp.status().as_u16();
                    let resp_headers = resp.headers().clone();
                    match resp.bytes().await {
                        Err(e) => (transport_error(&what, &e), idempotent),
                        Ok(bytes) if (200..300).contains(&status) || status == 300 => {
                            return Ok(Resp {
                                body: bytes.to_vec(),
                                headers: resp_headers,
                            })
                        }
                        Ok(bytes) => {
                            let err = api_error_from_body(status, &bytes);
                            if status == 401 && !refreshed {
                                refreshed = true;
                                tracing::debug!("salesforce session expired; refreshing token");
                                token = self.refresh(&token.access_token).await?;
                                continue;
                            }
                            let safe = idempotent || rejected_before_processing(status, &err);
                            (err, safe)
                        }
                    }
                }
            };
            let retry = may_retry && err.class() == ErrorClass::Transient;
            if !retry || attempt >= self.inner.backoff.max_retries {
                return Err(err);
            }
            tracing::warn!(error = %err, attempt, request = %what, "transient salesforce error; retrying");
            self.inner.backoff.sleep(attempt).await;
            attempt += 1;
        }
    }
}

/// Errors where Salesforce did not process the request, so even a create can be re-sent.
fn rejected_before_processing(status: u16, err: &SfError) -> bool {
    status == 503
        || status == 429
        || matches!(
            err.code(),
            Some("REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE")
        )
}

fn transport_error(what: &str, e: &reqwest::Error) -> SfError {
    let mut message = format!("{what}: ");
    let mut src: Option<&dyn std::error::Error> = Some(e);
    let mut first = true;
    while let Some(s) = src {
        if !first {
            message.push_str(": ");
        }
        first = false;
        message.push_str(&s.to_string());
        src = s.source();
    }
    SfError::Transport {
        message,
        timeout: e.is_timeout(),
    }
}

/// Per-record stand-in for a request-level error, keeping its class.
fn record_error_from(e: &SfError) -> RecordError {
    let code = match e {
        SfError::Api { code, class, .. } if classify(None, code) == *class => code.clone(),
        _ => match e.class() {
            ErrorClass::Auth => "INVALID_SESSION_ID",
            ErrorClass::Transient if e.is_limit() => "REQUEST_LIMIT_EXCEEDED",
            ErrorClass::Transient => "SERVER_UNAVAILABLE",
            ErrorClass::Gone => "NOT_FOUND",
            ErrorClass::Setup => "INVALID_TYPE",
            ErrorClass::Data | ErrorClass::Other => e.code().unwrap_or("UNKNOWN_EXCEPTION"),
        }
        .to_string(),
    };
    let fields = match e {
        SfError::Api { fields, .. } => fields.clone(),
        _ => vec![],
    };
    RecordError {
        status_code: code,
        message: e.to_string(),
        fields,
    }
}

/// Build one collections record: `attributes.type`, optional `id`, the fields without
/// `attributes`/`Id`.
fn record_body(object: &str, id: Option<String>, mut fields: Fields) -> Value {
    fields.remove("attributes");
    fields.remove("Id");
    fields.remove("id");
    let mut m = serde_json::Map::with_capacity(fields.len() + 2);
    m.insert("attributes".into(), json!({ "type": object }));
    if let Some(id) = id {
        m.insert("id".into(), Value::String(id));
    }
    m.extend(fields);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_body_shape() {
        let mut f = Fields::new();
        f.insert("Id".into(), json!("x"));
        f.insert("Name".into(), json!("Acme"));
        assert_eq!(
            record_body("Account", Some("001".into()), f),
            json!({"attributes": {"type": "Account"}, "id": "001", "Name": "Acme"})
        );
    }

    #[test]
    fn record_error_keeps_class() {
        let e = SfError::Transport {
            message: "x".into(),
            timeout: true,
        };
        assert_eq!(record_error_from(&e).class(), ErrorClass::Transient);
        let e = SfError::LimitReserve {
            used: 9,
            max: 10,
            reserve_percent: 20,
        };
        let r = record_error_from(&e);
        assert_eq!(r.status_code, "REQUEST_LIMIT_EXCEEDED");
        let e = api_error_from_body(502, b"");
        assert_eq!(record_error_from(&e).class(), ErrorClass::Transient);
        let e = api_error_from_body(400, br#"[{"errorCode":"INVALID_FIELD","message":"m"}]"#);
        assert_eq!(record_error_from(&e).status_code, "INVALID_FIELD");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("PRM_Id__c"), "PRM_Id__c");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
