//! Links (table `links`), the pairs whose children must be read (`children_pending`), and
//! the versions of records rejected for their data (`rejections`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::store::{Link, LinkIds, LinkState, Links, Rejections, StoreError};
use prmsync_mapping::ObjectKind;
use rusqlite::{params, params_from_iter, Connection};

use crate::codec::{backend, link_state, ts, LinkRow};
use crate::{SqliteStore, IN_CHUNK};

#[async_trait]
impl Links for SqliteStore {
    async fn find_links(
        &self,
        object: ObjectKind,
        crm_ids: &[String],
        prm_ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        let (crm_ids, prm_ids) = (crm_ids.to_vec(), prm_ids.to_vec());
        let rows = self
            .call("find_links", move |conn| {
                select_by_ids(conn, LINK_COLUMNS, object, &crm_ids, &prm_ids, |row| {
                    let link = LinkRow::read(row)?;
                    Ok((link.prm_id.clone(), link))
                })
            })
            .await?;
        // Decoded (the snapshots' JSON) once the connection is free for other calls.
        rows.into_values().map(LinkRow::into_link).collect()
    }

    async fn find_link_ids(
        &self,
        object: ObjectKind,
        crm_ids: &[String],
        prm_ids: &[String],
    ) -> Result<Vec<LinkIds>, StoreError> {
        let (crm_ids, prm_ids) = (crm_ids.to_vec(), prm_ids.to_vec());
        self.call("find_link_ids", move |conn| {
            let rows = select_by_ids(
                conn,
                "prm_id, crm_id, state",
                object,
                &crm_ids,
                &prm_ids,
                |row| {
                    let prm_id: String = row.get(0)?;
                    Ok((
                        prm_id.clone(),
                        (prm_id, row.get(1)?, row.get::<_, String>(2)?),
                    ))
                },
            )?;
            rows.into_values()
                .map(|(prm_id, crm_id, state)| {
                    let state = link_state(object.as_str(), &prm_id, &state)?;
                    Ok(LinkIds {
                        prm_id,
                        crm_id,
                        state,
                    })
                })
                .collect()
        })
        .await
    }

    async fn save_link(&self, link: &Link) -> Result<Link, StoreError> {
        let link = Encoded::new(link.clone())?;
        self.call("save_link", move |conn| save_link_on(conn, link))
            .await
    }

    async fn save_links(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        let count = links.len();
        // Encoded before the connection is taken: other calls wait less for it.
        let links: Vec<Result<Encoded, StoreError>> =
            links.iter().cloned().map(Encoded::new).collect();
        let saved = self
            .call("save_links", move |conn| {
                let tx = conn.transaction().map_err(backend)?;
                let out: Vec<Result<Link, StoreError>> =
                    links.into_iter().map(|l| save_link_on(&tx, l?)).collect();
                tx.commit().map_err(backend)?;
                Ok(out)
            })
            .await;
        match saved {
            Ok(out) => out,
            // Nothing is saved when the transaction cannot begin or commit.
            Err(e) => vec![Err(e); count],
        }
    }

    async fn delete_link(&self, object: ObjectKind, prm_id: &str) -> Result<bool, StoreError> {
        let prm_id = prm_id.to_string();
        self.call("delete_link", move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM links WHERE object = ?1 AND prm_id = ?2",
                    params![object.as_str(), prm_id],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn links_to_retry(&self, object: ObjectKind) -> Result<Vec<Link>, StoreError> {
        self.call("links_to_retry", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT object, prm_id, crm_id, state, snapshot, crm_modstamp, prm_version, version, retry, updated_at FROM links WHERE object = ?1 AND retry = 1")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![object.as_str()], LinkRow::read)
                .map_err(backend)?;
            rows.map(|row| row.map_err(backend)?.into_link()).collect()
        })
        .await
    }

    async fn count_links(&self, object: ObjectKind) -> Result<BTreeMap<String, u64>, StoreError> {
        self.call("count_links", move |conn| {
            let mut stmt = conn
                .prepare("SELECT state, COUNT(*) FROM links WHERE object = ?1 GROUP BY state")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![object.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })
                .map_err(backend)?;
            rows.collect::<Result<BTreeMap<_, _>, _>>().map_err(backend)
        })
        .await
    }

    async fn linked_ids(
        &self,
        object: ObjectKind,
        untouched_since: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let since = ts(untouched_since);
        self.call("linked_ids", move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT prm_id, crm_id FROM links WHERE object = ?1 AND state = ?2 \
                     AND updated_at < ?3 ORDER BY prm_id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![object.as_str(), LinkState::Linked.as_str(), since],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn mark_children_pending(
        &self,
        object: ObjectKind,
        prm_id: &str,
        crm_id: &str,
    ) -> Result<(), StoreError> {
        let (prm_id, crm_id) = (prm_id.to_string(), crm_id.to_string());
        self.call("mark_children_pending", move |conn| {
            conn.execute(
                "INSERT INTO children_pending (object, prm_id, crm_id) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (object, prm_id) DO UPDATE SET crm_id = excluded.crm_id",
                params![object.as_str(), prm_id, crm_id],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn children_pending(
        &self,
        object: ObjectKind,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.call("children_pending", move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT prm_id, crm_id FROM children_pending WHERE object = ?1 ORDER BY prm_id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![object.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn clear_children_pending(
        &self,
        object: ObjectKind,
        prm_ids: &[String],
    ) -> Result<(), StoreError> {
        let prm_ids = prm_ids.to_vec();
        self.call("clear_children_pending", move |conn| {
            for chunk in prm_ids.chunks(IN_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(",");
                let args =
                    std::iter::once(object.as_str().to_string()).chain(chunk.iter().cloned());
                conn.execute(
                    &format!(
                        "DELETE FROM children_pending WHERE object = ? AND prm_id IN ({marks})"
                    ),
                    params_from_iter(args),
                )
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Rejections for SqliteStore {
    async fn rejected_versions(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let (side, ids) = (side.to_string(), ids.to_vec());
        self.call("rejected_versions", move |conn| {
            let mut out = BTreeMap::new();
            for chunk in ids.chunks(IN_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!("SELECT id, version FROM rejections WHERE object = ? AND side = ? AND id IN ({marks})");
                let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
                let args = [object.as_str().to_string(), side.clone()]
                    .into_iter()
                    .chain(chunk.iter().cloned());
                let rows = stmt
                    .query_map(params_from_iter(args), |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(backend)?;
                for row in rows {
                    let (id, version) = row.map_err(backend)?;
                    out.insert(id, version);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn remember_rejection(
        &self,
        object: ObjectKind,
        side: &str,
        id: &str,
        version: &str,
    ) -> Result<(), StoreError> {
        let (side, id, version) = (side.to_string(), id.to_string(), version.to_string());
        self.call("remember_rejection", move |conn| {
            conn.execute(
                "INSERT INTO rejections (object, side, id, version) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (object, side, id) DO UPDATE SET version = excluded.version",
                params![object.as_str(), side, id, version],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

/// The columns of a whole link, in the order [`LinkRow::read`] reads them.
const LINK_COLUMNS: &str =
    "object, prm_id, crm_id, state, snapshot, crm_modstamp, prm_version, version, retry, updated_at";

/// `columns` of the links of `object` with any of these Salesforce or PRM ids, each row
/// read by `read` into (PRM id, value): one row per link, whichever id found it.
fn select_by_ids<T>(
    conn: &Connection,
    columns: &str,
    object: ObjectKind,
    crm_ids: &[String],
    prm_ids: &[String],
    read: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<(String, T)>,
) -> Result<BTreeMap<String, T>, StoreError> {
    let mut out = BTreeMap::new();
    for (column, ids) in [("crm_id", crm_ids), ("prm_id", prm_ids)] {
        for chunk in ids.chunks(IN_CHUNK) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql =
                format!("SELECT {columns} FROM links WHERE object = ? AND {column} IN ({marks})");
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let args = std::iter::once(object.as_str()).chain(chunk.iter().map(String::as_str));
            let rows = stmt
                .query_map(params_from_iter(args), &read)
                .map_err(backend)?;
            for row in rows {
                let (key, value) = row.map_err(backend)?;
                out.insert(key, value);
            }
        }
    }
    Ok(out)
}

/// Saves one link on a connection or inside a transaction (see [`Links::save_link`]) and
/// returns it with its new version.
/// A link to save with its snapshot's JSON.
struct Encoded {
    link: Link,
    snapshot: String,
}

impl Encoded {
    fn new(link: Link) -> Result<Self, StoreError> {
        let snapshot = serde_json::to_string(&link.snapshot).map_err(backend)?;
        Ok(Self { link, snapshot })
    }
}

fn save_link_on(conn: &Connection, encoded: Encoded) -> Result<Link, StoreError> {
    let Encoded { mut link, snapshot } = encoded;
    let args = params![
        link.object.as_str(),
        link.prm_id,
        link.crm_id,
        link.state.as_str(),
        snapshot,
        link.crm_modstamp.map(ts),
        link.prm_version,
        link.version + 1,
        link.retry as i64,
        ts(link.updated_at),
        link.version,
    ];
    let sql = if link.version == 0 {
        "INSERT INTO links (object, prm_id, crm_id, state, snapshot, crm_modstamp, prm_version, version, retry, updated_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 WHERE ?11 = 0"
    } else {
        "UPDATE links SET crm_id = ?3, state = ?4, snapshot = ?5, crm_modstamp = ?6, prm_version = ?7, version = ?8, retry = ?9, updated_at = ?10 \
         WHERE object = ?1 AND prm_id = ?2 AND version = ?11"
    };
    let result = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(args));
    let conflict = |link: Link| StoreError::Conflict {
        object: link.object,
        prm_id: link.prm_id,
    };
    match result {
        Ok(1) => {
            link.version += 1;
            Ok(link)
        }
        Ok(_) => Err(conflict(link)),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(conflict(link))
        }
        Err(e) => Err(backend(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn links_are_found_by_either_id_and_locked_optimistically() {
        let s = SqliteStore::in_memory();
        let link = Link::new(ObjectKind::Organization, "org_1", "001A");
        let saved = s.save_link(&link).await.unwrap();
        assert_eq!(saved.version, 1);
        // A second insert of the same pair loses.
        assert!(matches!(
            s.save_link(&link).await,
            Err(StoreError::Conflict { .. })
        ));
        let by_crm = s
            .find_links(ObjectKind::Organization, &["001A".into()], &[])
            .await
            .unwrap();
        let by_prm = s
            .find_links(ObjectKind::Organization, &[], &["org_1".into()])
            .await
            .unwrap();
        assert_eq!(by_crm, by_prm);
        assert_eq!(by_crm.len(), 1);
        // Two writers holding version 1: the first wins, the second gets a conflict.
        let mut a = saved.clone();
        a.state = LinkState::Unselected;
        let a = s.save_link(&a).await.unwrap();
        assert_eq!(a.version, 2);
        assert!(matches!(
            s.save_link(&saved).await,
            Err(StoreError::Conflict { .. })
        ));
        // Another PRM record cannot take the same Salesforce Id.
        let other = Link::new(ObjectKind::Organization, "org_2", "001A");
        assert!(matches!(
            s.save_link(&other).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(s
            .find_links(ObjectKind::Person, &["001A".into()], &[])
            .await
            .unwrap()
            .is_empty());
    }
}
