//! The one-machine state of prmsync: links, cursors, leases, pause flags, runs, run chunks,
//! the retry set and the Integration Log in an embedded SQLite database
//! (`<state dir>/state.db`).
//!
//! Every write is its own transaction in WAL mode, so a crash mid-run leaves each link,
//! cursor and log entry either fully written or not at all. Opening a database made by an
//! earlier version adds the tables it lacks and moves its runs to the current key.

mod codec;
mod links;
mod log;
mod runs;
mod schema;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prmsync_engine::store::{Link, StoreError};
use prmsync_mapping::ObjectKind;
use rusqlite::{params, Connection};

use crate::codec::{backend, LinkRow};
use crate::schema::{migrate_runs, SCHEMA};

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
            .query_map(params![object.as_str()], LinkRow::read)
            .map_err(backend)?;
        rows.map(|row| row.map_err(backend)?.into_link()).collect()
    }

    /// Runs SQL on the database as is (tests that write rows the store would not).
    #[cfg(test)]
    pub(crate) fn raw_sql(&self, sql: &str) {
        self.conn().execute_batch(sql).expect("raw SQL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use prmsync_engine::store::{Cursors, Links, Pauses};
    use prmsync_mapping::Integration;

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
}
