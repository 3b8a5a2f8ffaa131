//! The Integration Log (table `log`): each entry as JSON, with the columns it is filtered
//! by.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::store::{IntegrationLog, LogEntry, LogFilter, StoreError};
use rusqlite::{params, params_from_iter};

use crate::codec::{backend, level_rank, read_log_entry, ts};
use crate::{SqliteStore, IN_CHUNK};

#[async_trait]
impl IntegrationLog for SqliteStore {
    async fn append(&self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.call("append", move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO log (id, time, run_id, integration, level, code, crm_id, prm_id, acknowledged, entry) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )
                    .map_err(backend)?;
                for e in &entries {
                    let json = serde_json::to_string(e).map_err(backend)?;
                    stmt.execute(params![
                        e.id,
                        ts(e.time),
                        e.run_id,
                        e.integration.as_str(),
                        level_rank(e.level),
                        e.code.as_str(),
                        e.crm_id,
                        e.prm_id,
                        e.acknowledged as i64,
                        json
                    ])
                    .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn entries(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StoreError> {
        let mut sql = String::from("SELECT id, entry, acknowledged FROM log WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        if let Some(i) = filter.integration {
            sql.push_str(" AND integration = ?");
            args.push(i.as_str().into());
        }
        if let Some(l) = filter.min_level {
            sql.push_str(&format!(" AND level >= {}", level_rank(l)));
        }
        if let Some(c) = filter.code {
            sql.push_str(" AND code = ?");
            args.push(c.as_str().into());
        }
        if let Some(r) = &filter.run_id {
            sql.push_str(" AND run_id = ?");
            args.push(r.clone());
        }
        if let Some(r) = &filter.record_id {
            sql.push_str(" AND (crm_id = ? OR prm_id = ?)");
            args.push(r.clone());
            args.push(r.clone());
        }
        if let Some(s) = filter.since {
            sql.push_str(" AND time >= ?");
            args.push(ts(s));
        }
        if filter.unacknowledged {
            sql.push_str(" AND acknowledged = 0");
        }
        sql.push_str(" ORDER BY seq DESC");
        if let Some(n) = filter.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        self.call("entries", move |conn| {
            let mut stmt = conn.prepare(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(params_from_iter(args), |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, json, ack) = row.map_err(backend)?;
                out.push(read_log_entry(&id, &json, ack)?);
            }
            Ok(out)
        })
        .await
    }

    async fn acknowledge(&self, ids: Option<&[String]>) -> Result<u64, StoreError> {
        let ids = ids.map(<[String]>::to_vec);
        self.call("acknowledge", move |conn| {
            let n = match ids {
                None => conn
                    .execute(
                        "UPDATE log SET acknowledged = 1 WHERE acknowledged = 0 AND level >= 1",
                        [],
                    )
                    .map_err(backend)?,
                Some(ids) => {
                    let mut n = 0;
                    for chunk in ids.chunks(IN_CHUNK) {
                        let marks = vec!["?"; chunk.len()].join(",");
                        n += conn
                            .execute(
                                &format!("UPDATE log SET acknowledged = 1 WHERE acknowledged = 0 AND id IN ({marks})"),
                                params_from_iter(chunk.iter()),
                            )
                            .map_err(backend)?;
                    }
                    n
                }
            };
            Ok(n as u64)
        })
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.call("prune", move |conn| {
            let n = conn
                .execute("DELETE FROM log WHERE time < ?1", params![ts(before)])
                .map_err(backend)?;
            Ok(n as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_mapping::{Integration, Level, ObjectKind};

    fn entry(code: prmsync_mapping::LogCode, crm_id: &str, age_days: i64) -> LogEntry {
        LogEntry {
            id: uuid_like(crm_id, age_days),
            time: Utc::now() - chrono::Duration::days(age_days),
            run_id: "run-1".into(),
            integration: Integration::Deals,
            level: code.level(),
            code,
            object: Some(ObjectKind::Deal),
            crm_id: Some(crm_id.into()),
            prm_id: None,
            link: None,
            message: format!("about {crm_id}"),
            fix: code.fix().into(),
            details: serde_json::Value::Null,
            acknowledged: false,
        }
    }

    fn uuid_like(a: &str, b: i64) -> String {
        format!("{a}-{b}")
    }

    #[tokio::test]
    async fn log_filters_acknowledgement_and_retention() {
        use prmsync_mapping::LogCode;
        let s = SqliteStore::in_memory();
        s.append(&[
            entry(LogCode::DealNoAccount, "006A", 0),
            entry(LogCode::DealImported, "006B", 0),
            entry(LogCode::DealUserInactive, "006C", 100),
        ])
        .await
        .unwrap();
        let errors = LogFilter {
            min_level: Some(Level::Error),
            ..Default::default()
        };
        assert_eq!(s.entries(&errors).await.unwrap().len(), 2);
        let by_record = LogFilter {
            record_id: Some("006B".into()),
            ..Default::default()
        };
        assert_eq!(
            s.entries(&by_record).await.unwrap()[0].code,
            LogCode::DealImported
        );
        let recent = LogFilter {
            since: Some(Utc::now() - chrono::Duration::days(1)),
            ..Default::default()
        };
        assert_eq!(s.entries(&recent).await.unwrap().len(), 2);
        // acknowledging by id, then all
        assert_eq!(
            s.acknowledge(Some(&["006A-0".to_string()])).await.unwrap(),
            1
        );
        let open = LogFilter {
            unacknowledged: true,
            min_level: Some(Level::Error),
            ..Default::default()
        };
        assert_eq!(s.entries(&open).await.unwrap().len(), 1);
        assert_eq!(s.acknowledge(None).await.unwrap(), 1);
        assert!(s.entries(&open).await.unwrap().is_empty());
        // retention
        assert_eq!(
            s.prune(Utc::now() - chrono::Duration::days(90))
                .await
                .unwrap(),
            1
        );
        assert_eq!(s.entries(&LogFilter::default()).await.unwrap().len(), 2);
    }
}
