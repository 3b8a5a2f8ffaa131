//! Rows to domain values and back: stored times, enums and JSON columns, and the decoding
//! of `links`, `checkpoints`, `run_chunks`, `retries` rows.

use chrono::{DateTime, SecondsFormat, Utc};
use prmsync_engine::report::Counts;
use prmsync_engine::store::{ChunkRecord, Link, LinkState, PlanCheckpoint, RetryEntry, StoreError};
use prmsync_mapping::{Integration, Level, ObjectKind};

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A stored time, or why it is not one.
pub(crate) fn stored_ts(s: &str) -> Result<DateTime<Utc>, String> {
    parse_ts(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 time"))
}

/// A row that cannot be decoded: names it and says what to do.
pub(crate) fn unreadable(
    what: impl std::fmt::Display,
    why: impl std::fmt::Display,
    fix: &str,
) -> StoreError {
    StoreError::Backend(format!("the stored {what} cannot be read ({why}); {fix}"))
}

pub(crate) fn row_to_link(row: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
    let object: String = row.get(0)?;
    let state: String = row.get(3)?;
    let snapshot: String = row.get(4)?;
    let crm_modstamp: Option<String> = row.get(5)?;
    let updated_at: String = row.get(9)?;
    Ok(Link {
        object: ObjectKind::parse(&object).unwrap_or(ObjectKind::Organization),
        prm_id: row.get(1)?,
        crm_id: row.get(2)?,
        state: LinkState::parse(&state).unwrap_or(LinkState::Linked),
        snapshot: serde_json::from_str(&snapshot).unwrap_or_default(),
        crm_modstamp: crm_modstamp.as_deref().and_then(parse_ts),
        prm_version: row.get(6)?,
        version: row.get(7)?,
        retry: row.get::<_, i64>(8)? != 0,
        updated_at: parse_ts(&updated_at).unwrap_or_else(Utc::now),
    })
}

pub(crate) fn read_checkpoint(
    integration: Integration,
    text: &str,
) -> Result<PlanCheckpoint, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Backend(format!(
            "the stored checkpoint of {integration} cannot be read ({e}); \
             `prmsync sync --integration {integration} --full` starts the run over"
        ))
    })
}

/// A `run_chunks` row as stored.
pub(crate) struct ChunkRow {
    pub(crate) integration: Integration,
    pub(crate) run_id: String,
    pub(crate) number: i64,
    pub(crate) crm_ids: String,
    pub(crate) prm_ids: String,
    pub(crate) done: i64,
    pub(crate) counts: String,
}

impl ChunkRow {
    pub(crate) fn into_chunk(self) -> Result<ChunkRecord, StoreError> {
        let what = format!(
            "chunk {} of run {} of {}",
            self.number, self.run_id, self.integration
        );
        let fix = format!(
            "delete the rows of run {} from table run_chunks and start the run over with `prmsync sync --integration {}`",
            self.run_id, self.integration
        );
        let ids = |text: &str, side: &str| {
            serde_json::from_str::<Vec<String>>(text)
                .map_err(|e| unreadable(&what, format!("{side} ids: {e}"), &fix))
        };
        Ok(ChunkRecord {
            number: u32::try_from(self.number)
                .map_err(|e| unreadable(&what, format!("number: {e}"), &fix))?,
            crm_ids: ids(&self.crm_ids, "Salesforce")?,
            prm_ids: ids(&self.prm_ids, "PRM")?,
            done: self.done != 0,
            counts: serde_json::from_str::<Counts>(&self.counts)
                .map_err(|e| unreadable(&what, format!("counts: {e}"), &fix))?,
            integration: self.integration,
            run_id: self.run_id,
        })
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(backend)
}

/// A `retries` row as stored.
pub(crate) struct RetryRow {
    pub(crate) object: ObjectKind,
    pub(crate) side: String,
    pub(crate) id: String,
    pub(crate) attempts: i64,
    pub(crate) next_at: String,
    pub(crate) parked: i64,
    pub(crate) error: String,
    pub(crate) updated_at: String,
}

impl RetryRow {
    pub(crate) fn read(object: ObjectKind, r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            object,
            side: r.get(0)?,
            id: r.get(1)?,
            attempts: r.get(2)?,
            next_at: r.get(3)?,
            parked: r.get(4)?,
            error: r.get(5)?,
            updated_at: r.get(6)?,
        })
    }

    pub(crate) fn into_entry(self) -> Result<RetryEntry, StoreError> {
        let what = format!("retry entry of {} {} {}", self.object, self.side, self.id);
        let fix = "delete its row from table retries (the record syncs again when it changes)";
        let time = |s: &str| stored_ts(s).map_err(|e| unreadable(&what, e, fix));
        Ok(RetryEntry {
            attempts: u32::try_from(self.attempts)
                .map_err(|e| unreadable(&what, format!("attempts: {e}"), fix))?,
            next_at: time(&self.next_at)?,
            updated_at: time(&self.updated_at)?,
            parked: self.parked != 0,
            object: self.object,
            side: self.side,
            id: self.id,
            error: self.error,
        })
    }
}

pub(crate) const RETRY_COLUMNS: &str = "side, id, attempts, next_at, parked, error, updated_at";

pub(crate) fn level_rank(level: Level) -> i64 {
    match level {
        Level::Info => 0,
        Level::Warning => 1,
        Level::Error => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_engine::store::{Pauses, RetrySet, RunChunks};

    use crate::SqliteStore;

    #[tokio::test]
    async fn unreadable_rows_are_errors_that_name_them() {
        let s = SqliteStore::in_memory();
        s.conn()
            .execute_batch(
                "INSERT INTO run_chunks VALUES ('deals', 'run-9', 4, 'not json', '[]', 0, '{}');
                 INSERT INTO retries VALUES ('deal', 'crm', '006Z', 1, 'yesterday', 0, 'timeout', 'yesterday');
                 INSERT INTO api_hold VALUES (1, 'soon');",
            )
            .unwrap();
        let chunks = s.run_chunks(Integration::Deals, "run-9").await.unwrap_err();
        assert!(
            chunks.to_string().contains("chunk 4 of run run-9 of deals"),
            "{chunks}"
        );
        let retries = s.all_retries(ObjectKind::Deal).await.unwrap_err();
        assert!(
            retries.to_string().contains("retry entry of deal crm 006Z"),
            "{retries}"
        );
        let hold = s.api_hold().await.unwrap_err();
        assert!(hold.to_string().contains("API hold"), "{hold}");
    }
}
