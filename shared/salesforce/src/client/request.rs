//! The one request path: the cached OAuth token and its refresh, the API reserve check,
//! `Sforce-Limit-Info` tracking, and [`SalesforceClient::send`] with its retries.

use std::sync::atomic::Ordering;

use reqwest::header::{HeaderMap, ACCEPT};
use reqwest::Method;
use serde_json::Value;

use super::SalesforceClient;
use crate::auth::{parse_token, token_error, Token};
use crate::error::{api_error_from_body, ErrorClass, SfError};
use crate::types::ApiUsage;

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

impl SalesforceClient {
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

    pub(super) async fn token(&self) -> Result<Token, SfError> {
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
                            let t = parse_token(&body, &self.inner.login_url)?;
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

    /// Send one REST request with token handling and retries.
    ///
    /// An absolute `path` must be on the instance the token belongs to. `path` is either a path on
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
        self.send_body(
            method,
            path,
            query,
            body.map(Body::Json),
            headers,
            idempotent,
        )
        .await
    }

    /// [`send`](Self::send) with a JSON or a CSV body (a Bulk API 2.0 upload).
    pub(crate) async fn send_body(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body<'_>>,
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
                same_origin(path, &token.instance_url)?;
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
            rb = rb.header(
                "Sforce-Call-Options",
                format!("client={}", self.inner.cfg.client_name),
            );
            if !query.is_empty() {
                rb = rb.query(query);
            }
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            match &body {
                Some(Body::Json(b)) => rb = rb.json(b),
                Some(Body::Csv(b)) => {
                    rb = rb
                        .header(reqwest::header::CONTENT_TYPE, "text/csv")
                        .body((*b).clone())
                }
                None => {}
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

/// A request body.
pub(crate) enum Body<'a> {
    Json(&'a Value),
    /// CSV bytes (cheap to clone for a re-send).
    Csv(&'a bytes::Bytes),
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

/// The origin (scheme, host, port) of `url`, as text.
fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?
    ))
}

/// Refuses an absolute URL that is not on `instance_url`: the bearer token goes to the
/// org's own instance only, whatever a response links to.
fn same_origin(url: &str, instance_url: &str) -> Result<(), SfError> {
    let target = origin(url);
    if target.is_some() && target == origin(instance_url) {
        return Ok(());
    }
    Err(SfError::ForeignUrl {
        host: url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| "an unreadable URL".into()),
        instance: instance_url.to_string(),
    })
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn the_token_goes_to_absolute_urls_on_its_own_instance_only() {
        let instance = "https://acme.my.salesforce.com";
        for ok in [
            "https://acme.my.salesforce.com/services/data/v62.0/query/01g-2000",
            "https://ACME.my.salesforce.com:443/x",
        ] {
            assert!(same_origin(ok, instance).is_ok(), "{ok}");
        }
        for bad in [
            "https://evil.example/services/data",
            "http://acme.my.salesforce.com/x",
            "https://acme.my.salesforce.com:8443/x",
            "https://acme.my.salesforce.com.evil.example/x",
            "https://user@evil.example/x",
        ] {
            let err = same_origin(bad, instance).unwrap_err();
            assert!(matches!(err, SfError::ForeignUrl { .. }), "{bad}");
            assert_eq!(err.class(), ErrorClass::Setup);
        }
    }
}
