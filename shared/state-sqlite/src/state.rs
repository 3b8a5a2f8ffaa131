//! Run control: leases (table `leases`), pause flags (`pauses`), the API-limit hold
//! (`api_hold`), the retry set (`retries`) and the webhook deliveries taken (`deliveries`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::store::{Deliveries, Leases, Pauses, RetryEntry, RetrySet, StoreError};
use prmsync_mapping::{Integration, ObjectKind};
use rusqlite::{params, params_from_iter, OptionalExtension};

use crate::codec::{backend, read_api_hold, ts, RetryRow, RETRY_COLUMNS};
use crate::{SqliteStore, IN_CHUNK};

#[async_trait]
impl Leases for SqliteStore {
    async fn acquire_lease(
        &self,
        integration: Integration,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let holder = holder.to_string();
        self.call("acquire_lease", move |conn| {
            let n = conn
                .execute(
                    "INSERT INTO leases (integration, holder, until) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (integration) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE leases.until < ?4 OR leases.holder = excluded.holder",
                    params![integration.as_str(), holder, ts(until), ts(Utc::now())],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn release_lease(
        &self,
        integration: Integration,
        holder: &str,
    ) -> Result<(), StoreError> {
        let holder = holder.to_string();
        self.call("release_lease", move |conn| {
            conn.execute(
                "DELETE FROM leases WHERE integration = ?1 AND holder = ?2",
                params![integration.as_str(), holder],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Pauses for SqliteStore {
    async fn is_paused(&self, integration: Integration) -> Result<bool, StoreError> {
        self.call("is_paused", move |conn| {
            let paused: Option<i64> = conn
                .query_row(
                    "SELECT paused FROM pauses WHERE integration = ?1",
                    params![integration.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            // No row: the integration was never paused (not a decoding default).
            Ok(paused.unwrap_or(0) != 0)
        })
        .await
    }

    async fn set_paused(&self, integration: Integration, paused: bool) -> Result<(), StoreError> {
        self.call("set_paused", move |conn| {
            conn.execute(
                "INSERT INTO pauses (integration, paused) VALUES (?1, ?2) \
                 ON CONFLICT (integration) DO UPDATE SET paused = excluded.paused",
                params![integration.as_str(), paused as i64],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn hold_api(&self, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.call("hold_api", move |conn| {
            conn.execute(
                "INSERT INTO api_hold (id, until) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET until = excluded.until",
                params![ts(until)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn api_hold(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.call("api_hold", move |conn| {
            let until: Option<String> = conn
                .query_row("SELECT until FROM api_hold WHERE id = 1", [], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            until.map(|u| read_api_hold(&u)).transpose()
        })
        .await
    }
}

#[async_trait]
impl RetrySet for SqliteStore {
    async fn retry_entries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<Vec<RetryEntry>, StoreError> {
        let (side, ids) = (side.to_string(), ids.to_vec());
        self.call("retry_entries", move |conn| {
            let mut rows = Vec::new();
            for chunk in ids.chunks(IN_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!(
                    "SELECT {RETRY_COLUMNS} FROM retries WHERE object = ? AND side = ? AND id IN ({marks})"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
                let args = [object.as_str().to_string(), side.clone()]
                    .into_iter()
                    .chain(chunk.iter().cloned());
                let found = stmt
                    .query_map(params_from_iter(args), |r| RetryRow::read(object, r))
                    .map_err(backend)?;
                for row in found {
                    rows.push(row.map_err(backend)?);
                }
            }
            // An id asked twice is listed once.
            rows.sort_by(|a, b| a.id.cmp(&b.id));
            rows.dedup_by(|a, b| a.id == b.id);
            rows.into_iter().map(RetryRow::into_entry).collect()
        })
        .await
    }

    async fn all_retries(&self, object: ObjectKind) -> Result<Vec<RetryEntry>, StoreError> {
        self.call("all_retries", move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {RETRY_COLUMNS} FROM retries WHERE object = ?1 ORDER BY side, id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![object.as_str()], |r| RetryRow::read(object, r))
                .map_err(backend)?;
            let rows = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
            rows.into_iter().map(RetryRow::into_entry).collect()
        })
        .await
    }

    async fn hold_retries(&self, entries: &[RetryEntry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.call("hold_retries", move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO retries (object, side, id, attempts, next_at, parked, error, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                         ON CONFLICT (object, side, id) DO UPDATE SET attempts = excluded.attempts, \
                         next_at = excluded.next_at, parked = excluded.parked, error = excluded.error, \
                         updated_at = excluded.updated_at",
                    )
                    .map_err(backend)?;
                for e in &entries {
                    stmt.execute(params![
                        e.object.as_str(),
                        e.side,
                        e.id,
                        e.attempts,
                        ts(e.next_at),
                        e.parked as i64,
                        e.error,
                        ts(e.updated_at),
                    ])
                    .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn clear_retries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let (side, ids) = (side.to_string(), ids.to_vec());
        self.call("clear_retries", move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            for chunk in ids.chunks(IN_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(",");
                let args = [object.as_str().to_string(), side.clone()]
                    .into_iter()
                    .chain(chunk.iter().cloned());
                tx.execute(
                    &format!(
                        "DELETE FROM retries WHERE object = ? AND side = ? AND id IN ({marks})"
                    ),
                    params_from_iter(args),
                )
                .map_err(backend)?;
            }
            tx.commit().map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl Deliveries for SqliteStore {
    async fn take_delivery(
        &self,
        event_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let event_id = event_id.to_string();
        self.call("take_delivery", move |conn| {
            // One statement: taken when new, or when the one kept has expired.
            let changed = conn
                .execute(
                    "INSERT INTO deliveries (event_id, until) VALUES (?1, ?2) \
                     ON CONFLICT (event_id) DO UPDATE SET until = excluded.until \
                     WHERE deliveries.until < ?3",
                    params![event_id, ts(until), ts(now)],
                )
                .map_err(backend)?;
            // expired ones go with any take, so the table stays small
            conn.execute("DELETE FROM deliveries WHERE until < ?1", params![ts(now)])
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release_delivery(&self, event_id: &str) -> Result<(), StoreError> {
        let event_id = event_id.to_string();
        self.call("release_delivery", move |conn| {
            conn.execute(
                "DELETE FROM deliveries WHERE event_id = ?1",
                params![event_id],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leases_exclude_other_holders_until_expiry() {
        let s = SqliteStore::in_memory();
        let soon = Utc::now() + chrono::Duration::minutes(5);
        assert!(s
            .acquire_lease(Integration::People, "a", soon)
            .await
            .unwrap());
        assert!(!s
            .acquire_lease(Integration::People, "b", soon)
            .await
            .unwrap());
        assert!(s
            .acquire_lease(Integration::Organizations, "b", soon)
            .await
            .unwrap());
        s.release_lease(Integration::People, "a").await.unwrap();
        assert!(s
            .acquire_lease(
                Integration::People,
                "b",
                Utc::now() - chrono::Duration::seconds(1)
            )
            .await
            .unwrap());
        // Expired: anyone may take it.
        assert!(s
            .acquire_lease(Integration::People, "c", soon)
            .await
            .unwrap());
    }
}
