//! Where change detection resumes (tables `cursors` and `checkpoints`), the record of each
//! run (`runs`) and the chunks of planned runs (`run_chunks`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::pass::HeldUpdate;
use prmsync_engine::report::Counts;
use prmsync_engine::store::{
    ChunkRecord, Cursors, PlanCheckpoint, RunChunks, RunRecord, Runs, StoreError, RUNS_LISTED,
};
use prmsync_mapping::Integration;
use rusqlite::{params, OptionalExtension};

use crate::codec::{backend, read_checkpoint, read_cursor, read_run, to_json, ts, ChunkRow};
use crate::SqliteStore;

#[async_trait]
impl Cursors for SqliteStore {
    async fn cursor(
        &self,
        integration: Integration,
        side: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let side = side.to_string();
        self.call("cursor", move |conn| {
            let at: Option<String> = conn
                .query_row(
                    "SELECT at FROM cursors WHERE integration = ?1 AND side = ?2",
                    params![integration.as_str(), side],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            at.map(|at| read_cursor(integration, &side, &at))
                .transpose()
        })
        .await
    }

    async fn set_cursor(
        &self,
        integration: Integration,
        side: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let side = side.to_string();
        self.call("set_cursor", move |conn| {
            conn.execute(
                "INSERT INTO cursors (integration, side, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (integration, side) DO UPDATE SET at = excluded.at",
                params![integration.as_str(), side, ts(at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn checkpoint(
        &self,
        integration: Integration,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        self.call("checkpoint", move |conn| {
            let text: Option<String> = conn
                .query_row(
                    "SELECT checkpoint FROM checkpoints WHERE integration = ?1",
                    params![integration.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            text.map(|t| read_checkpoint(integration, &t)).transpose()
        })
        .await
    }

    async fn set_checkpoint(
        &self,
        integration: Integration,
        checkpoint: Option<&PlanCheckpoint>,
    ) -> Result<(), StoreError> {
        let text = checkpoint
            .map(|c| serde_json::to_string(c).map_err(backend))
            .transpose()?;
        self.call("set_checkpoint", move |conn| {
            match text {
                Some(text) => conn.execute(
                    "INSERT INTO checkpoints (integration, checkpoint) VALUES (?1, ?2) \
                     ON CONFLICT (integration) DO UPDATE SET checkpoint = excluded.checkpoint",
                    params![integration.as_str(), text],
                ),
                None => conn.execute(
                    "DELETE FROM checkpoints WHERE integration = ?1",
                    params![integration.as_str()],
                ),
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_checkpoint(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let run_id = run_id.to_string();
        self.call("take_checkpoint", move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let text: Option<String> = tx
                .query_row(
                    "SELECT checkpoint FROM checkpoints WHERE integration = ?1",
                    params![integration.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let Some(text) = text else { return Ok(None) };
            let checkpoint = read_checkpoint(integration, &text)?;
            if checkpoint.run_id != run_id {
                return Ok(None);
            }
            tx.execute(
                "DELETE FROM checkpoints WHERE integration = ?1",
                params![integration.as_str()],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Some(checkpoint))
        })
        .await
    }
}

#[async_trait]
impl Runs for SqliteStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(run).map_err(backend)?;
        let (run_id, integration, started_at) =
            (run.run_id.clone(), run.integration, run.started_at);
        self.call("save_run", move |conn| {
            conn.execute(
                "INSERT INTO runs (run_id, integration, started_at, record) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (run_id, integration) DO UPDATE SET started_at = excluded.started_at, record = excluded.record",
                params![run_id, integration.as_str(), ts(started_at), record],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn last_run(&self, integration: Integration) -> Result<Option<RunRecord>, StoreError> {
        self.call("last_run", move |conn| {
            let row: Option<(String, String)> = conn
                .query_row(
                    "SELECT run_id, record FROM runs WHERE integration = ?1 ORDER BY started_at DESC LIMIT 1",
                    params![integration.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            row.map(|(run_id, record)| read_run(integration, &run_id, &record))
                .transpose()
        })
        .await
    }

    async fn runs_since(
        &self,
        integration: Integration,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let limit = limit.min(RUNS_LISTED) as i64;
        self.call("runs_since", move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT run_id, record FROM runs WHERE integration = ?1 AND started_at >= ?2 \
                     ORDER BY started_at DESC LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![integration.as_str(), ts(since), limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            rows.iter()
                .map(|(run_id, record)| read_run(integration, run_id, record))
                .collect()
        })
        .await
    }
}

#[async_trait]
impl RunChunks for SqliteStore {
    async fn chunk_done(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
    ) -> Result<Option<bool>, StoreError> {
        let run_id = run_id.to_string();
        self.call("chunk_done", move |conn| {
            conn.query_row(
                "SELECT done FROM run_chunks WHERE integration = ?1 AND run_id = ?2 AND number = ?3",
                params![integration.as_str(), run_id, number],
                |r| r.get::<_, bool>(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn add_chunks(&self, chunks: &[ChunkRecord]) -> Result<(), StoreError> {
        let chunks = chunks.to_vec();
        self.call("add_chunks", move |conn| {
            let tx = conn.transaction().map_err(backend)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO run_chunks (integration, run_id, number, crm_ids, prm_ids, done, counts) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                         ON CONFLICT (integration, run_id, number) DO UPDATE SET crm_ids = excluded.crm_ids, \
                         prm_ids = excluded.prm_ids, done = excluded.done, counts = excluded.counts, \
                         held = excluded.held",
                    )
                    .map_err(backend)?;
                for c in &chunks {
                    stmt.execute(params![
                        c.integration.as_str(),
                        c.run_id,
                        c.number,
                        to_json(&c.crm_ids)?,
                        to_json(&c.prm_ids)?,
                        c.done as i64,
                        to_json(&c.counts)?,
                    ])
                    .map_err(backend)?;
                }
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn finish_chunk(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
        counts: &Counts,
        held: &[HeldUpdate],
    ) -> Result<Option<u64>, StoreError> {
        let counts = to_json(counts)?;
        let held = to_json(&held)?;
        let run_id = run_id.to_string();
        self.call("finish_chunk", move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let marked = tx
                .execute(
                    "UPDATE run_chunks SET done = 1, counts = ?4, held = ?5 \
                     WHERE integration = ?1 AND run_id = ?2 AND number = ?3 AND done = 0",
                    params![integration.as_str(), run_id, number, counts, held],
                )
                .map_err(backend)?;
            if marked == 0 {
                // Done already (a redelivery) or never added: nothing changes.
                return Ok(None);
            }
            let done: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM run_chunks WHERE integration = ?1 AND run_id = ?2 AND done = 1",
                    params![integration.as_str(), run_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Some(done as u64))
        })
        .await
    }

    async fn run_chunks(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Vec<ChunkRecord>, StoreError> {
        let run_id = run_id.to_string();
        self.call("run_chunks", move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT number, crm_ids, prm_ids, done, counts, held FROM run_chunks \
                     WHERE integration = ?1 AND run_id = ?2 ORDER BY number",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![integration.as_str(), run_id], |r| {
                    Ok(ChunkRow {
                        integration,
                        run_id: run_id.clone(),
                        number: r.get(0)?,
                        crm_ids: r.get(1)?,
                        prm_ids: r.get(2)?,
                        done: r.get(3)?,
                        counts: r.get(4)?,
                        held: r.get(5)?,
                    })
                })
                .map_err(backend)?;
            let rows = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
            rows.into_iter().map(ChunkRow::into_chunk).collect()
        })
        .await
    }

    async fn clear_chunks(&self, integration: Integration, run_id: &str) -> Result<(), StoreError> {
        let run_id = run_id.to_string();
        self.call("clear_chunks", move |conn| {
            conn.execute(
                "DELETE FROM run_chunks WHERE integration = ?1 AND run_id = ?2",
                params![integration.as_str(), run_id],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
