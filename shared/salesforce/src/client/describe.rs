//! Describe (with a short-lived cache), getDeleted and `/limits`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{seg, SalesforceClient};
use crate::error::SfError;
use crate::types::{parse_datetime, ApiUsage, DeletedRecord, DeletedResult, Describe};

/// How long [`SalesforceClient::describe_cached`] reuses a describe.
pub const DESCRIBE_TTL: Duration = Duration::from_secs(300);

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

    /// A describe read by this client in the last `DESCRIBE_TTL` (five minutes), or a fresh one.
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
}
