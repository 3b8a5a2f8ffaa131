//! The one-machine state of prmsync: links, cursors, leases, pause flags, runs, run chunks,
//! the retry set and the Integration Log in an embedded SQLite database
//! (`<state dir>/state.db`).
//!
//! Every write is its own transaction in WAL mode, so a crash mid-run leaves each link,
//! cursor and log entry either fully written or not at all. Opening a database made by an
//! earlier version adds the tables it lacks and moves its runs to the current key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use prmsync_engine::report::Counts;
use prmsync_engine::store::{
    ChunkRecord, Cursors, IntegrationLog, Leases, Link, LinkState, Links, LogEntry, LogFilter,
    Pauses, PlanCheckpoint, Rejections, RetryEntry, RetrySet, RunChunks, RunRecord, Runs,
    StoreError,
};
use prmsync_mapping::{Integration, Level, ObjectKind};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS links (
    object TEXT NOT NULL,
    prm_id TEXT NOT NULL,
    crm_id TEXT NOT NULL,
    state TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    crm_modstamp TEXT,
    prm_version INTEGER,
    version INTEGER NOT NULL,
    retry INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (object, prm_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS links_by_crm ON links (object, crm_id);
CREATE INDEX IF NOT EXISTS links_to_retry ON links (object) WHERE retry = 1;
CREATE TABLE IF NOT EXISTS cursors (
    integration TEXT NOT NULL,
    side TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (integration, side)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    integration TEXT PRIMARY KEY,
    checkpoint TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    integration TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pauses (
    integration TEXT PRIMARY KEY,
    paused INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT NOT NULL,
    integration TEXT NOT NULL,
    started_at TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, integration)
);
CREATE INDEX IF NOT EXISTS runs_by_integration ON runs (integration, started_at);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    run_id TEXT NOT NULL,
    integration TEXT NOT NULL,
    level INTEGER NOT NULL,
    code TEXT NOT NULL,
    crm_id TEXT,
    prm_id TEXT,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_by_time ON log (time);
CREATE TABLE IF NOT EXISTS children_pending (
    object TEXT NOT NULL,
    prm_id TEXT NOT NULL,
    crm_id TEXT NOT NULL,
    PRIMARY KEY (object, prm_id)
);
CREATE TABLE IF NOT EXISTS rejections (
    object TEXT NOT NULL,
    side TEXT NOT NULL,
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (object, side, id)
);
CREATE TABLE IF NOT EXISTS run_chunks (
    integration TEXT NOT NULL,
    run_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    crm_ids TEXT NOT NULL,
    prm_ids TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    counts TEXT NOT NULL,
    PRIMARY KEY (integration, run_id, number)
);
CREATE TABLE IF NOT EXISTS retries (
    object TEXT NOT NULL,
    side TEXT NOT NULL,
    id TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_at TEXT NOT NULL,
    parked INTEGER NOT NULL,
    error TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (object, side, id)
);
CREATE TABLE IF NOT EXISTS api_hold (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    until TEXT NOT NULL
);
"#;

/// Moves the runs of a database made before runs were keyed by run id and integration
/// (when one run id of a sync of every integration kept a single row). Each row goes under
/// the integration its record names.
const MIGRATE_RUNS: &str = r#"
ALTER TABLE runs RENAME TO runs_by_run_id;
CREATE TABLE runs (
    run_id TEXT NOT NULL,
    integration TEXT NOT NULL,
    started_at TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, integration)
);
INSERT OR REPLACE INTO runs (run_id, integration, started_at, record)
    SELECT run_id,
           COALESCE(CASE WHEN json_valid(record) THEN json_extract(record, '$.integration') END, integration),
           started_at,
           record
    FROM runs_by_run_id;
DROP TABLE runs_by_run_id;
CREATE INDEX IF NOT EXISTS runs_by_integration ON runs (integration, started_at);
"#;

/// Largest number of ids in one `IN (...)`.
const IN_CHUNK: usize = 500;

/// Why the state database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "cannot create the state directory {path}: {source}; check --state-dir and its permissions"
    )]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the state database {path}: {source}; check that no other program holds it and that the disk is writable")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// SQLite-backed state.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A stored time, or why it is not one.
fn stored_ts(s: &str) -> Result<DateTime<Utc>, String> {
    parse_ts(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 time"))
}

/// A row that cannot be decoded: names it and says what to do.
fn unreadable(what: impl std::fmt::Display, why: impl std::fmt::Display, fix: &str) -> StoreError {
    StoreError::Backend(format!("the stored {what} cannot be read ({why}); {fix}"))
}

impl SqliteStore {
    /// Opens (or creates) `<dir>/state.db`.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("state.db");
        let conn = Connection::open(&path).map_err(|source| OpenError::Db {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, Some(path))
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Self {
        Self::init(
            Connection::open_in_memory().expect("in-memory SQLite"),
            None,
        )
        .expect("in-memory schema")
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Self, OpenError> {
        let db_path = path.clone().unwrap_or_default();
        let err = |source| OpenError::Db {
            path: db_path.clone(),
            source,
        };
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        migrate_runs(&conn).map_err(err)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// Where the database lives, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every link of an object (status and tests).
    pub fn all_links(&self, object: ObjectKind) -> Result<Vec<Link>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT object, prm_id, crm_id, state, snapshot, crm_modstamp, prm_version, version, retry, updated_at FROM links WHERE object = ?1 ORDER BY prm_id")
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![object.as_str()], row_to_link)
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }
}

/// Moves a `runs` table keyed by run id alone to the key (run id, integration), in one
/// transaction; nothing to do on a current database.
fn migrate_runs(conn: &Connection) -> rusqlite::Result<()> {
    let keyed_by_run_id = |c: &Connection| -> rusqlite::Result<bool> {
        let integration_in_key: i64 = c.query_row(
            "SELECT pk FROM pragma_table_info('runs') WHERE name = 'integration'",
            [],
            |r| r.get(0),
        )?;
        Ok(integration_in_key == 0)
    };
    if !keyed_by_run_id(conn)? {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    // Another process opening the database at the same time may have moved them first.
    if keyed_by_run_id(&tx)? {
        tx.execute_batch(MIGRATE_RUNS)?;
    }
    tx.commit()
}

fn row_to_link(row: &rusqlite::Row<'_>) -> rusqlite::Result<Link> {
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

#[async_trait]
impl Links for SqliteStore {
    async fn find_links(
        &self,
        object: ObjectKind,
        crm_ids: &[String],
        prm_ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        let conn = self.conn();
        let mut out: BTreeMap<String, Link> = BTreeMap::new();
        for (column, ids) in [("crm_id", crm_ids), ("prm_id", prm_ids)] {
            for chunk in ids.chunks(IN_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!(
                    "SELECT object, prm_id, crm_id, state, snapshot, crm_modstamp, prm_version, version, retry, updated_at FROM links WHERE object = ? AND {column} IN ({marks})"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
                let args =
                    std::iter::once(object.as_str().to_string()).chain(chunk.iter().cloned());
                let rows = stmt
                    .query_map(params_from_iter(args), row_to_link)
                    .map_err(backend)?;
                for link in rows {
                    let link = link.map_err(backend)?;
                    out.insert(link.prm_id.clone(), link);
                }
            }
        }
        Ok(out.into_values().collect())
    }

    async fn save_link(&self, link: &Link) -> Result<Link, StoreError> {
        save_link_on(&self.conn(), link)
    }

    async fn save_links(&self, links: &[Link]) -> Vec<Result<Link, StoreError>> {
        // Nothing is saved when the transaction cannot begin or commit.
        let none_saved = |e: rusqlite::Error| {
            let e = backend(e);
            links.iter().map(|_| Err(e.clone())).collect()
        };
        let mut conn = self.conn();
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => return none_saved(e),
        };
        let out: Vec<Result<Link, StoreError>> =
            links.iter().map(|l| save_link_on(&tx, l)).collect();
        match tx.commit() {
            Ok(()) => out,
            Err(e) => none_saved(e),
        }
    }

    async fn delete_link(&self, object: ObjectKind, prm_id: &str) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM links WHERE object = ?1 AND prm_id = ?2",
                params![object.as_str(), prm_id],
            )
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn links_to_retry(&self, object: ObjectKind) -> Result<Vec<Link>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT object, prm_id, crm_id, state, snapshot, crm_modstamp, prm_version, version, retry, updated_at FROM links WHERE object = ?1 AND retry = 1")
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![object.as_str()], row_to_link)
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    async fn count_links(&self, object: ObjectKind) -> Result<BTreeMap<String, u64>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT state, COUNT(*) FROM links WHERE object = ?1 GROUP BY state")
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![object.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(backend)?;
        rows.collect::<Result<BTreeMap<_, _>, _>>().map_err(backend)
    }

    async fn mark_children_pending(
        &self,
        object: ObjectKind,
        prm_id: &str,
        crm_id: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO children_pending (object, prm_id, crm_id) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (object, prm_id) DO UPDATE SET crm_id = excluded.crm_id",
                params![object.as_str(), prm_id, crm_id],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn children_pending(
        &self,
        object: ObjectKind,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
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
    }

    async fn clear_children_pending(
        &self,
        object: ObjectKind,
        prm_ids: &[String],
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        for chunk in prm_ids.chunks(IN_CHUNK) {
            let marks = vec!["?"; chunk.len()].join(",");
            let args = std::iter::once(object.as_str().to_string()).chain(chunk.iter().cloned());
            conn.execute(
                &format!("DELETE FROM children_pending WHERE object = ? AND prm_id IN ({marks})"),
                params_from_iter(args),
            )
            .map_err(backend)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Cursors for SqliteStore {
    async fn cursor(
        &self,
        integration: Integration,
        side: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> = self
            .conn()
            .query_row(
                "SELECT at FROM cursors WHERE integration = ?1 AND side = ?2",
                params![integration.as_str(), side],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        Ok(at.as_deref().and_then(parse_ts))
    }

    async fn set_cursor(
        &self,
        integration: Integration,
        side: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO cursors (integration, side, at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (integration, side) DO UPDATE SET at = excluded.at",
                params![integration.as_str(), side, ts(at)],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn checkpoint(
        &self,
        integration: Integration,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT checkpoint FROM checkpoints WHERE integration = ?1",
                params![integration.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        text.map(|t| read_checkpoint(integration, &t)).transpose()
    }

    async fn set_checkpoint(
        &self,
        integration: Integration,
        checkpoint: Option<&PlanCheckpoint>,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        match checkpoint {
            Some(c) => {
                let text = serde_json::to_string(c).map_err(backend)?;
                conn.execute(
                    "INSERT INTO checkpoints (integration, checkpoint) VALUES (?1, ?2) \
                     ON CONFLICT (integration) DO UPDATE SET checkpoint = excluded.checkpoint",
                    params![integration.as_str(), text],
                )
            }
            None => conn.execute(
                "DELETE FROM checkpoints WHERE integration = ?1",
                params![integration.as_str()],
            ),
        }
        .map_err(backend)?;
        Ok(())
    }

    async fn take_checkpoint(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let mut conn = self.conn();
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
    }
}

fn read_checkpoint(integration: Integration, text: &str) -> Result<PlanCheckpoint, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Backend(format!(
            "the stored checkpoint of {integration} cannot be read ({e}); \
             `prmsync sync --integration {integration} --full` starts the run over"
        ))
    })
}

#[async_trait]
impl Leases for SqliteStore {
    async fn acquire_lease(
        &self,
        integration: Integration,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = self
            .conn()
            .execute(
                "INSERT INTO leases (integration, holder, until) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (integration) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leases.until < ?4 OR leases.holder = excluded.holder",
                params![integration.as_str(), holder, ts(until), ts(Utc::now())],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn release_lease(
        &self,
        integration: Integration,
        holder: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "DELETE FROM leases WHERE integration = ?1 AND holder = ?2",
                params![integration.as_str(), holder],
            )
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Pauses for SqliteStore {
    async fn is_paused(&self, integration: Integration) -> Result<bool, StoreError> {
        let paused: Option<i64> = self
            .conn()
            .query_row(
                "SELECT paused FROM pauses WHERE integration = ?1",
                params![integration.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        Ok(paused.unwrap_or(0) != 0)
    }

    async fn set_paused(&self, integration: Integration, paused: bool) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO pauses (integration, paused) VALUES (?1, ?2) \
                 ON CONFLICT (integration) DO UPDATE SET paused = excluded.paused",
                params![integration.as_str(), paused as i64],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn hold_api(&self, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO api_hold (id, until) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET until = excluded.until",
                params![ts(until)],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn api_hold(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let until: Option<String> = self
            .conn()
            .query_row("SELECT until FROM api_hold WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(backend)?;
        until
            .map(|u| {
                stored_ts(&u).map_err(|e| {
                    unreadable(
                        "API hold",
                        e,
                        "delete the row of table api_hold (the next refusal of Salesforce sets it again)",
                    )
                })
            })
            .transpose()
    }
}

#[async_trait]
impl Runs for SqliteStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let record = serde_json::to_string(run).map_err(backend)?;
        self.conn()
            .execute(
                "INSERT INTO runs (run_id, integration, started_at, record) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (run_id, integration) DO UPDATE SET started_at = excluded.started_at, record = excluded.record",
                params![run.run_id, run.integration.as_str(), ts(run.started_at), record],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn last_run(&self, integration: Integration) -> Result<Option<RunRecord>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT run_id, record FROM runs WHERE integration = ?1 ORDER BY started_at DESC LIMIT 1",
                params![integration.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        row.map(|(run_id, record)| {
            serde_json::from_str(&record).map_err(|e| {
                StoreError::Backend(format!(
                    "the stored record of run {run_id} of {integration} cannot be read ({e}); \
                     delete its row of table runs (the next run records itself again)"
                ))
            })
        })
        .transpose()
    }
}

/// A `run_chunks` row as stored.
struct ChunkRow {
    integration: Integration,
    run_id: String,
    number: i64,
    crm_ids: String,
    prm_ids: String,
    done: i64,
    counts: String,
}

impl ChunkRow {
    fn into_chunk(self) -> Result<ChunkRecord, StoreError> {
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

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(backend)
}

#[async_trait]
impl RunChunks for SqliteStore {
    async fn chunk_done(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
    ) -> Result<Option<bool>, StoreError> {
        self.conn()
            .query_row(
                "SELECT done FROM run_chunks WHERE integration = ?1 AND run_id = ?2 AND number = ?3",
                params![integration.as_str(), run_id, number],
                |r| r.get::<_, bool>(0),
            )
            .optional()
            .map_err(backend)
    }

    async fn add_chunks(&self, chunks: &[ChunkRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO run_chunks (integration, run_id, number, crm_ids, prm_ids, done, counts) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (integration, run_id, number) DO UPDATE SET crm_ids = excluded.crm_ids, \
                     prm_ids = excluded.prm_ids, done = excluded.done, counts = excluded.counts",
                )
                .map_err(backend)?;
            for c in chunks {
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
    }

    async fn finish_chunk(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
        counts: &Counts,
    ) -> Result<Option<u64>, StoreError> {
        let counts = to_json(counts)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(backend)?;
        let marked = tx
            .execute(
                "UPDATE run_chunks SET done = 1, counts = ?4 \
                 WHERE integration = ?1 AND run_id = ?2 AND number = ?3 AND done = 0",
                params![integration.as_str(), run_id, number, counts],
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
    }

    async fn run_chunks(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Vec<ChunkRecord>, StoreError> {
        let rows = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT number, crm_ids, prm_ids, done, counts FROM run_chunks \
                     WHERE integration = ?1 AND run_id = ?2 ORDER BY number",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![integration.as_str(), run_id], |r| {
                    Ok(ChunkRow {
                        integration,
                        run_id: run_id.to_string(),
                        number: r.get(0)?,
                        crm_ids: r.get(1)?,
                        prm_ids: r.get(2)?,
                        done: r.get(3)?,
                        counts: r.get(4)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)?
        };
        rows.into_iter().map(ChunkRow::into_chunk).collect()
    }

    async fn clear_chunks(&self, integration: Integration, run_id: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "DELETE FROM run_chunks WHERE integration = ?1 AND run_id = ?2",
                params![integration.as_str(), run_id],
            )
            .map_err(backend)?;
        Ok(())
    }
}

/// A `retries` row as stored.
struct RetryRow {
    object: ObjectKind,
    side: String,
    id: String,
    attempts: i64,
    next_at: String,
    parked: i64,
    error: String,
    updated_at: String,
}

impl RetryRow {
    fn read(object: ObjectKind, r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
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

    fn into_entry(self) -> Result<RetryEntry, StoreError> {
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

const RETRY_COLUMNS: &str = "side, id, attempts, next_at, parked, error, updated_at";

#[async_trait]
impl RetrySet for SqliteStore {
    async fn retry_entries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<Vec<RetryEntry>, StoreError> {
        let mut rows = Vec::new();
        {
            let conn = self.conn();
            for chunk in ids.chunks(IN_CHUNK) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!(
                    "SELECT {RETRY_COLUMNS} FROM retries WHERE object = ? AND side = ? AND id IN ({marks})"
                );
                let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
                let args = [object.as_str().to_string(), side.to_string()]
                    .into_iter()
                    .chain(chunk.iter().cloned());
                let found = stmt
                    .query_map(params_from_iter(args), |r| RetryRow::read(object, r))
                    .map_err(backend)?;
                for row in found {
                    rows.push(row.map_err(backend)?);
                }
            }
        }
        // An id asked twice is listed once.
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows.dedup_by(|a, b| a.id == b.id);
        rows.into_iter().map(RetryRow::into_entry).collect()
    }

    async fn all_retries(&self, object: ObjectKind) -> Result<Vec<RetryEntry>, StoreError> {
        let rows = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {RETRY_COLUMNS} FROM retries WHERE object = ?1 ORDER BY side, id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![object.as_str()], |r| RetryRow::read(object, r))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)?
        };
        rows.into_iter().map(RetryRow::into_entry).collect()
    }

    async fn hold_retries(&self, entries: &[RetryEntry]) -> Result<(), StoreError> {
        let mut conn = self.conn();
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
            for e in entries {
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
    }

    async fn clear_retries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        for chunk in ids.chunks(IN_CHUNK) {
            let marks = vec!["?"; chunk.len()].join(",");
            let args = [object.as_str().to_string(), side.to_string()]
                .into_iter()
                .chain(chunk.iter().cloned());
            tx.execute(
                &format!("DELETE FROM retries WHERE object = ? AND side = ? AND id IN ({marks})"),
                params_from_iter(args),
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

fn level_rank(level: Level) -> i64 {
    match level {
        Level::Info => 0,
        Level::Warning => 1,
        Level::Error => 2,
    }
}

#[async_trait]
impl IntegrationLog for SqliteStore {
    async fn append(&self, entries: &[LogEntry]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO log (id, time, run_id, integration, level, code, crm_id, prm_id, acknowledged, entry) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(backend)?;
            for e in entries {
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
    }

    async fn entries(&self, filter: &LogFilter) -> Result<Vec<LogEntry>, StoreError> {
        let mut sql = String::from("SELECT entry, acknowledged FROM log WHERE 1 = 1");
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
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (json, ack) = row.map_err(backend)?;
            let mut e: LogEntry = serde_json::from_str(&json).map_err(backend)?;
            e.acknowledged = ack != 0;
            out.push(e);
        }
        Ok(out)
    }

    async fn acknowledge(&self, ids: Option<&[String]>) -> Result<u64, StoreError> {
        let conn = self.conn();
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
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM log WHERE time < ?1", params![ts(before)])
            .map_err(backend)?;
        Ok(n as u64)
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
        let conn = self.conn();
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT id, version FROM rejections WHERE object = ? AND side = ? AND id IN ({marks})");
            let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
            let args = [object.as_str().to_string(), side.to_string()]
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
    }

    async fn remember_rejection(
        &self,
        object: ObjectKind,
        side: &str,
        id: &str,
        version: &str,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO rejections (object, side, id, version) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (object, side, id) DO UPDATE SET version = excluded.version",
                params![object.as_str(), side, id, version],
            )
            .map_err(backend)?;
        Ok(())
    }
}

/// Saves one link on a connection or inside a transaction (see [`Links::save_link`]).
fn save_link_on(conn: &Connection, link: &Link) -> Result<Link, StoreError> {
    let snapshot = serde_json::to_string(&link.snapshot).map_err(backend)?;
    let conflict = || StoreError::Conflict {
        object: link.object,
        prm_id: link.prm_id.clone(),
    };
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
    match result {
        Ok(1) => {
            let mut saved = link.clone();
            saved.version += 1;
            Ok(saved)
        }
        Ok(_) => Err(conflict()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(conflict())
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

    #[tokio::test]
    async fn cursors_pauses_and_state_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let at = Utc::now();
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            s.set_cursor(Integration::Organizations, "crm", at)
                .await
                .unwrap();
            s.set_paused(Integration::Deals, true).await.unwrap();
            s.save_link(&Link::new(ObjectKind::Person, "per_1", "003A"))
                .await
                .unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let got = s
            .cursor(Integration::Organizations, "crm")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.timestamp_micros(), at.timestamp_micros());
        assert!(s.is_paused(Integration::Deals).await.unwrap());
        assert!(!s.is_paused(Integration::People).await.unwrap());
        assert_eq!(s.all_links(ObjectKind::Person).unwrap().len(), 1);
    }

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

    #[tokio::test]
    async fn runs_of_a_database_keyed_by_run_id_move_to_one_row_per_integration() {
        let dir = tempfile::tempdir().unwrap();
        let started = Utc::now() - chrono::Duration::hours(1);
        let record = |integration: Integration, created: u64| {
            let mut counts = Counts::default();
            counts.created.prm = created;
            RunRecord {
                run_id: "run-old".into(),
                integration,
                mode: prmsync_engine::RunMode::Incremental,
                dry_run: false,
                started_at: started,
                finished_at: None,
                status: prmsync_engine::RunStatus::Succeeded,
                counts,
            }
        };
        // GIVEN a database of the earlier layout, where the last integration's record of a
        // sync overwrote the row of the first
        {
            let conn = Connection::open(dir.path().join("state.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE runs (run_id TEXT PRIMARY KEY, integration TEXT NOT NULL, \
                 started_at TEXT NOT NULL, record TEXT NOT NULL);
                 CREATE INDEX runs_by_integration ON runs (integration, started_at);",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO runs VALUES ('run-old', 'organizations', ?1, ?2)",
                params![
                    ts(started),
                    serde_json::to_string(&record(Integration::Deals, 3)).unwrap()
                ],
            )
            .unwrap();
        }
        // WHEN it is opened
        let s = SqliteStore::open(dir.path()).unwrap();
        // THEN the row is under the integration its record names, and each integration of
        // a run id keeps its own row from now on
        assert_eq!(
            s.last_run(Integration::Deals)
                .await
                .unwrap()
                .unwrap()
                .counts
                .created
                .prm,
            3
        );
        assert_eq!(s.last_run(Integration::Organizations).await.unwrap(), None);
        s.save_run(&record(Integration::Organizations, 1))
            .await
            .unwrap();
        s.save_run(&record(Integration::People, 2)).await.unwrap();
        for (i, n) in [
            (Integration::Organizations, 1),
            (Integration::People, 2),
            (Integration::Deals, 3),
        ] {
            let last = s.last_run(i).await.unwrap().unwrap();
            assert_eq!((last.integration, last.counts.created.prm), (i, n));
        }
        drop(s);
        // Opening it again changes nothing.
        let s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(
            s.last_run(Integration::People)
                .await
                .unwrap()
                .unwrap()
                .counts
                .created
                .prm,
            2
        );
    }

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
