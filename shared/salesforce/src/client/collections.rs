//! sObject Collections writes (create, update, upsert) in chunks of
//! [`COLLECTION_CHUNK`], with per-record re-sends of row-lock failures.

use reqwest::Method;
use serde_json::{json, Value};

use super::{seg, SalesforceClient};
use crate::error::{classify, ErrorClass, SfError};
use crate::types::{Fields, RecordError, RecordResult, WireRecordResult};

/// Records per sObject Collections call (the API maximum).
pub const COLLECTION_CHUNK: usize = 200;

impl SalesforceClient {
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
}

/// Per-record stand-in for a request-level error, keeping its class.
pub(crate) fn record_error_from(e: &SfError) -> RecordError {
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
    use crate::error::api_error_from_body;

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
}
