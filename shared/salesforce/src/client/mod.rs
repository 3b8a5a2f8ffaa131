//! The REST client: configuration, the shared client state and its accessors.
//!
//! The API calls live beside it by role: [`request`] is the one request path (token,
//! reserve check, retries), [`query`] SOQL paging and single-record reads, [`collections`]
//! sObject Collections writes, [`describe`] describe, getDeleted and limits.

mod collections;
mod describe;
mod query;
pub(crate) mod request;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::auth::{Auth, Authenticator, Token};
use crate::error::SfError;
use crate::retry::Backoff;
use crate::types::{ApiUsage, CallCounts, Describe};

pub(crate) use collections::record_error_from;
pub use collections::COLLECTION_CHUNK;
pub(crate) use request::Resp;

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
    /// A write ([`Crm::update`](prmsync_engine::ports::Crm::update) or `upsert`) of more
    /// records than this goes through a Bulk API 2.0 ingest job; 0 = never.
    pub bulk_ingest_threshold: u64,
    /// Sizing and polling of those jobs.
    pub bulk_ingest: crate::IngestOptions,
    /// Sent on every call as `Sforce-Call-Options: client=<name>`; Change Data Capture
    /// names it in `changeOrigin`.
    pub client_name: String,
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
            bulk_ingest_threshold: prmsync_mapping::config::DEFAULT_BULK_INGEST_THRESHOLD,
            bulk_ingest: crate::IngestOptions::default(),
            client_name: "prmsync".into(),
        }
    }
}

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
    /// Salesforce refused to create an ingest job (Bulk API off for the org or the user):
    /// this client writes through Collections from then on.
    ingest_refused: std::sync::atomic::AtomicBool,
    /// What the operator should hear of (see [`SalesforceClient::take_notices`]).
    notices: Mutex<Vec<String>>,
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

impl SalesforceClient {
    /// Build a client. Validates the configuration (URL, credentials present, PEM key);
    /// no network call is made until the first request.
    pub fn new(cfg: SalesforceConfig) -> Result<Self, SfError> {
        let login_url = cfg.login_url.trim().trim_end_matches('/').to_string();
        prmsync_transport::secure_url("Salesforce login URL", &login_url)?;
        let version = cfg.api_version.trim().trim_start_matches(['v', 'V']);
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(SfError::Config(format!(
                "api_version {:?} is not a version like 62.0",
                cfg.api_version
            )));
        }
        if !prmsync_mapping::config::is_client_name(&cfg.client_name) {
            return Err(SfError::Config(format!(
                "client_name {:?} is not a Salesforce client name: use 1 to 40 letters, digits, `_` or `-`",
                cfg.client_name
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
                ingest_refused: std::sync::atomic::AtomicBool::new(false),
                notices: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Set once Salesforce refused to create an ingest job: writes go through Collections.
    pub(crate) fn ingest_refused(&self) -> &std::sync::atomic::AtomicBool {
        &self.inner.ingest_refused
    }

    /// What this client did on its own that the operator should hear of since the last
    /// call (a Bulk API 2.0 ingest job that failed whole and was written through Collections).
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.inner.notices.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn notice(&self, message: String) {
        self.inner
            .notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
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

    pub(crate) fn data_path(&self, rest: &str) -> String {
        format!("{}{}", self.inner.data_prefix, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("PRM_Id__c"), "PRM_Id__c");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }
}
