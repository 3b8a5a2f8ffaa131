//! Rows to domain values and back: stored times, enums and JSON columns, and the decoding
//! of the rows of `links`, `cursors`, `checkpoints`, `runs`, `run_chunks`, `retries`,
//! `api_hold` and `log`. A row that cannot be decoded is a [`StoreError::Corrupt`] naming
//! its key, never replaced by a default.

use chrono::{DateTime, SecondsFormat, Utc};
use prmsync_engine::report::Counts;
use prmsync_engine::store::{
    ChunkRecord, Link, LinkState, LogEntry, PlanCheckpoint, RetryEntry, RunRecord, StoreError,
};
use prmsync_mapping::{Integration, Level, ObjectKind};
use serde::de::DeserializeOwned;

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(backend)
}

pub(crate) fn level_rank(level: Level) -> i64 {
    match level {
        Level::Info => 0,
        Level::Warning => 1,
        Level::Error => 2,
    }
}

/// One stored row being decoded: what it holds and its key, so that whatever cannot be
/// decoded is an error naming the row.
pub(crate) struct Stored {
    what: &'static str,
    key: String,
}

impl Stored {
    pub(crate) fn new(what: &'static str, key: impl Into<String>) -> Self {
        Self {
            what,
            key: key.into(),
        }
    }

    pub(crate) fn corrupt(&self, problem: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            what: self.what,
            key: self.key.clone(),
            problem: problem.into(),
        }
    }

    /// A time column (RFC 3339, as [`ts`] writes it).
    pub(crate) fn time(&self, column: &str, text: &str) -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| self.corrupt(format!("{column} {text:?} is not an RFC 3339 time")))
    }

    /// A JSON column. The problem names the column and where the JSON breaks, never the
    /// values it holds (they may be a record's).
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        column: &str,
        text: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "does not have the expected shape",
                _ => "is not valid JSON",
            };
            self.corrupt(format!(
                "{column} {what} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// A count or number that must fit a u32.
    pub(crate) fn count(&self, column: &str, n: i64) -> Result<u32, StoreError> {
        u32::try_from(n).map_err(|_| self.corrupt(format!("{column} {n} is not a count")))
    }
}

/// The `state` column of the link `object prm_id`.
pub(crate) fn link_state(object: &str, prm_id: &str, state: &str) -> Result<LinkState, StoreError> {
    LinkState::parse(state).ok_or_else(|| {
        Stored::new("link", format!("{object} {prm_id}")).corrupt(format!(
            "state `{state}` is not linked/unselected/disconnected/deleted_in_prm"
        ))
    })
}

/// A `links` row as stored (columns in this order).
pub(crate) struct LinkRow {
    pub(crate) object: String,
    pub(crate) prm_id: String,
    pub(crate) crm_id: String,
    pub(crate) state: String,
    pub(crate) snapshot: String,
    pub(crate) crm_modstamp: Option<String>,
    pub(crate) prm_version: Option<i64>,
    pub(crate) version: i64,
    pub(crate) retry: i64,
    pub(crate) updated_at: String,
}

impl LinkRow {
    /// Reads `object, prm_id, crm_id, state, snapshot, crm_modstamp, prm_version, version,
    /// retry, updated_at`.
    pub(crate) fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            object: row.get(0)?,
            prm_id: row.get(1)?,
            crm_id: row.get(2)?,
            state: row.get(3)?,
            snapshot: row.get(4)?,
            crm_modstamp: row.get(5)?,
            prm_version: row.get(6)?,
            version: row.get(7)?,
            retry: row.get(8)?,
            updated_at: row.get(9)?,
        })
    }

    pub(crate) fn into_link(self) -> Result<Link, StoreError> {
        let row = Stored::new("link", format!("{} {}", self.object, self.prm_id));
        let object = ObjectKind::parse(&self.object).ok_or_else(|| {
            row.corrupt(format!(
                "object `{}` is not organization/person/deal",
                self.object
            ))
        })?;
        let state = link_state(&self.object, &self.prm_id, &self.state)?;
        Ok(Link {
            object,
            state,
            snapshot: row.json("snapshot", &self.snapshot)?,
            crm_modstamp: self
                .crm_modstamp
                .as_deref()
                .map(|t| row.time("crm_modstamp", t))
                .transpose()?,
            updated_at: row.time("updated_at", &self.updated_at)?,
            prm_version: self.prm_version,
            version: self.version,
            retry: self.retry != 0,
            prm_id: self.prm_id,
            crm_id: self.crm_id,
        })
    }
}

/// A `cursors` row's time.
pub(crate) fn read_cursor(
    integration: Integration,
    side: &str,
    at: &str,
) -> Result<DateTime<Utc>, StoreError> {
    Stored::new("cursor", format!("{integration} {side}")).time("at", at)
}

/// A `checkpoints` row's checkpoint.
pub(crate) fn read_checkpoint(
    integration: Integration,
    text: &str,
) -> Result<PlanCheckpoint, StoreError> {
    Stored::new("checkpoint", integration.as_str()).json("checkpoint", text)
}

/// A `runs` row's record.
pub(crate) fn read_run(
    integration: Integration,
    run_id: &str,
    record: &str,
) -> Result<RunRecord, StoreError> {
    Stored::new("run record", format!("{run_id} {integration}")).json("record", record)
}

/// The `api_hold` row's time.
pub(crate) fn read_api_hold(until: &str) -> Result<DateTime<Utc>, StoreError> {
    Stored::new("API hold", "1").time("until", until)
}

/// A `log` row: its entry, acknowledged as the column says.
pub(crate) fn read_log_entry(
    id: &str,
    entry: &str,
    acknowledged: i64,
) -> Result<LogEntry, StoreError> {
    let mut e: LogEntry = Stored::new("log entry", id).json("entry", entry)?;
    e.acknowledged = acknowledged != 0;
    Ok(e)
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
    pub(crate) held: String,
}

impl ChunkRow {
    pub(crate) fn into_chunk(self) -> Result<ChunkRecord, StoreError> {
        let row = Stored::new(
            "run chunk",
            format!("{} {} {}", self.integration, self.run_id, self.number),
        );
        Ok(ChunkRecord {
            number: row.count("number", self.number)?,
            crm_ids: row.json::<Vec<String>>("crm_ids", &self.crm_ids)?,
            prm_ids: row.json::<Vec<String>>("prm_ids", &self.prm_ids)?,
            done: self.done != 0,
            counts: row.json::<Counts>("counts", &self.counts)?,
            held: row.json("held", &self.held)?,
            integration: self.integration,
            run_id: self.run_id,
        })
    }
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
        let row = Stored::new(
            "retry entry",
            format!("{} {} {}", self.object, self.side, self.id),
        );
        Ok(RetryEntry {
            attempts: row.count("attempts", self.attempts)?,
            next_at: row.time("next_at", &self.next_at)?,
            updated_at: row.time("updated_at", &self.updated_at)?,
            parked: self.parked != 0,
            object: self.object,
            side: self.side,
            id: self.id,
            error: self.error,
        })
    }
}

pub(crate) const RETRY_COLUMNS: &str = "side, id, attempts, next_at, parked, error, updated_at";

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_engine::store::{
        Cursors, IntegrationLog, Links, LogFilter, Pauses, RetrySet, RunChunks, Runs,
    };

    use crate::SqliteStore;

    /// The error is `Corrupt` for this entry; returns its problem.
    fn corrupt(result: Result<impl std::fmt::Debug, StoreError>, what: &str, key: &str) -> String {
        match result {
            Err(StoreError::Corrupt {
                what: w,
                key: k,
                problem,
            }) => {
                assert_eq!((w, k.as_str()), (what, key), "{problem}");
                problem
            }
            other => panic!("expected the {what} {key} to be corrupt, got {other:?}"),
        }
    }

    const LINK: &str = "INSERT INTO links (object, prm_id, crm_id, state, snapshot, crm_modstamp, \
                        prm_version, version, retry, updated_at) VALUES ";

    #[tokio::test]
    async fn a_corrupt_link_is_an_error_naming_it() {
        let s = SqliteStore::in_memory();
        s.raw_sql(&format!(
            "{LINK} ('organization', 'org_1', '001A', 'lnked', '{{}}', NULL, 1, 1, 0, '2026-01-01T00:00:00Z');
             {LINK} ('organization', 'org_2', '001B', 'linked', 'not json', NULL, 1, 1, 1, '2026-01-01T00:00:00Z');
             {LINK} ('person', 'per_1', '003A', 'linked', '{{}}', 'noon', 1, 1, 0, '2026-01-01T00:00:00Z');
             {LINK} ('deal', 'deal_1', '006A', 'linked', '{{}}', NULL, 1, 1, 0, 'today');"
        ));
        let org = ObjectKind::Organization;
        let problem = corrupt(
            s.find_links(org, &["001A".into()], &[]).await,
            "link",
            "organization org_1",
        );
        assert!(problem.contains("state `lnked`"), "{problem}");
        let problem = corrupt(s.links_to_retry(org).await, "link", "organization org_2");
        assert!(problem.contains("snapshot is not valid JSON"), "{problem}");
        let problem = corrupt(
            s.all_links(ObjectKind::Person).await,
            "link",
            "person per_1",
        );
        assert!(problem.contains("crm_modstamp \"noon\""), "{problem}");
        let problem = corrupt(
            s.find_links(ObjectKind::Deal, &[], &["deal_1".into()])
                .await,
            "link",
            "deal deal_1",
        );
        assert!(problem.contains("updated_at \"today\""), "{problem}");
        // An object no query asks for is still never read as another.
        let row = LinkRow {
            object: "orgs".into(),
            prm_id: "org_9".into(),
            crm_id: "001Z".into(),
            state: "linked".into(),
            snapshot: "{}".into(),
            crm_modstamp: None,
            prm_version: None,
            version: 1,
            retry: 0,
            updated_at: "2026-01-01T00:00:00Z".into(),
        };
        let problem = corrupt(row.into_link(), "link", "orgs org_9");
        assert!(
            problem.contains("object `orgs` is not organization/person/deal"),
            "{problem}"
        );
    }

    #[tokio::test]
    async fn a_corrupt_cursor_is_an_error_naming_it() {
        let s = SqliteStore::in_memory();
        s.raw_sql("INSERT INTO cursors VALUES ('people', 'crm', 'last tuesday')");
        let problem = corrupt(
            s.cursor(Integration::People, "crm").await,
            "cursor",
            "people crm",
        );
        assert!(
            problem.contains("\"last tuesday\" is not an RFC 3339 time"),
            "{problem}"
        );
        assert_eq!(s.cursor(Integration::People, "prm").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_corrupt_checkpoint_is_an_error_naming_it() {
        let s = SqliteStore::in_memory();
        s.raw_sql("INSERT INTO checkpoints VALUES ('deals', '{\"run_id\": \"run-3\"}')");
        let problem = corrupt(
            s.checkpoint(Integration::Deals).await,
            "checkpoint",
            "deals",
        );
        assert!(
            problem.contains("checkpoint does not have the expected shape"),
            "{problem}"
        );
        corrupt(
            s.take_checkpoint(Integration::Deals, "run-3").await,
            "checkpoint",
            "deals",
        );
    }

    #[tokio::test]
    async fn a_corrupt_run_record_is_an_error_naming_it() {
        let s = SqliteStore::in_memory();
        s.raw_sql(
            "INSERT INTO runs VALUES ('run-7', 'people', '2026-01-01T00:00:00Z', 'not json')",
        );
        let problem = corrupt(
            s.last_run(Integration::People).await,
            "run record",
            "run-7 people",
        );
        assert!(problem.contains("record is not valid JSON"), "{problem}");
    }

    #[tokio::test]
    async fn a_corrupt_run_chunk_is_an_error_naming_it() {
        let s = SqliteStore::in_memory();
        s.raw_sql(
            "INSERT INTO run_chunks VALUES ('deals', 'run-9', 4, 'not json', '[]', 0, '{}', '[]');
             INSERT INTO run_chunks VALUES ('people', 'run-9', -1, '[]', '[]', 0, '{}', '[]');",
        );
        let problem = corrupt(
            s.run_chunks(Integration::Deals, "run-9").await,
            "run chunk",
            "deals run-9 4",
        );
        assert!(problem.contains("crm_ids is not valid JSON"), "{problem}");
        let problem = corrupt(
            s.run_chunks(Integration::People, "run-9").await,
            "run chunk",
            "people run-9 -1",
        );
        assert!(problem.contains("number -1"), "{problem}");
    }

    #[tokio::test]
    async fn a_corrupt_retry_entry_is_an_error_naming_it() {
        let s = SqliteStore::in_memory();
        s.raw_sql(
            "INSERT INTO retries VALUES ('deal', 'crm', '006Z', 1, 'yesterday', 0, 'timeout', 'yesterday');
             INSERT INTO retries VALUES ('person', 'prm', 'per_1', -2, '2026-01-01T00:00:00Z', 0, 'timeout', '2026-01-01T00:00:00Z');",
        );
        let problem = corrupt(
            s.all_retries(ObjectKind::Deal).await,
            "retry entry",
            "deal crm 006Z",
        );
        assert!(problem.contains("next_at \"yesterday\""), "{problem}");
        let problem = corrupt(
            s.retry_entries(ObjectKind::Person, "prm", &["per_1".into()])
                .await,
            "retry entry",
            "person prm per_1",
        );
        assert!(problem.contains("attempts -2"), "{problem}");
    }

    #[tokio::test]
    async fn a_corrupt_api_hold_is_an_error_naming_it() {
        let s = SqliteStore::in_memory();
        s.raw_sql("INSERT INTO api_hold VALUES (1, 'soon')");
        let problem = corrupt(s.api_hold().await, "API hold", "1");
        assert!(problem.contains("until \"soon\""), "{problem}");
    }

    #[tokio::test]
    async fn a_corrupt_log_entry_is_an_error_naming_it() {
        let s = SqliteStore::in_memory();
        s.raw_sql(
            "INSERT INTO log (id, time, run_id, integration, level, code, acknowledged, entry) \
             VALUES ('entry-1', '2026-01-01T00:00:00Z', 'run-1', 'deals', 2, 'x', 0, '{\"message\": \"Jane\"}')",
        );
        let problem = corrupt(
            s.entries(&LogFilter::default()).await,
            "log entry",
            "entry-1",
        );
        assert!(
            problem.contains("entry does not have the expected shape"),
            "{problem}"
        );
        assert!(!problem.contains("Jane"), "{problem}");
    }
}
