//! The one-machine state of prmsync: links, cursors, leases, pause flags, runs, run chunks,
//! the retry set and the Integration Log in an embedded SQLite database
//! (`<state dir>/state.db`).
//!
//! Every write is its own transaction in WAL mode, so a crash mid-run leaves each link,
//! cursor and log entry either fully written or not at all. Opening a database made by an
//! earlier version adds the tables it lacks and moves its runs to the current key.
//!
//! Each store method runs its statements off the async worker threads, through
//! `SqliteStore::call`; a row that cannot be decoded is a [`StoreError::Corrupt`] naming
//! it. This file opens the database; the rest is by role: `schema` (tables, migration),
//! `codec` (rows to values and back), `links` (links, children pending, rejections),
//! `runs` (cursors, checkpoints, runs, run chunks), `state` (leases, pauses, API hold,
//! retry set) and `log` (the Integration Log).

mod codec;
mod links;
mod log;
mod runs;
mod schema;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use prmsync_engine::store::{Link, StoreError};
use prmsync_mapping::ObjectKind;
use rusqlite::{params, Connection};

use crate::codec::{backend, LinkRow};
use crate::schema::{migrate_chunks, migrate_runs, SCHEMA};

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
    #[error("cannot make the state database {path} readable by its owner only: {source}; check that you own the file and that the disk is writable")]
    Private {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the state database {path}: {source}; check that no other program holds it and that the disk is writable")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// Creates `dir` (and its missing parents) readable by its owner only, and tightens it
/// when it exists with a looser mode.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Creates the database file with mode 0600 before SQLite opens it, whatever the umask
/// (SQLite gives its `-wal`, `-shm` and journal files the database's mode), and tightens
/// the database and any side file made looser earlier.
fn private_files(db: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(db)?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            let file = PathBuf::from(name);
            match std::fs::metadata(&file) {
                Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

/// SQLite-backed state. Store methods run their statements off the async worker threads
/// (see `SqliteStore::call`): under tokio's multi-thread runtime (the CLI, the Lambda
/// functions) in place, with the worker handing its other tasks to another thread while
/// SQLite works (`block_in_place`: no thread hop per call, which a first import of
/// 25,000 links would pay 25,000 times); under a current-thread runtime (tests) on the
/// blocking pool. One call at a time holds the connection.
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (or creates) `<dir>/state.db`. The folder and the database are readable by
    /// their owner only (on Unix 0700 and 0600, tightened when made looser earlier), and
    /// so are SQLite's `-wal`, `-shm` and journal files, which take the database's mode.
    pub fn open(dir: &Path) -> Result<Self, OpenError> {
        private_dir(dir).map_err(|source| OpenError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("state.db");
        private_files(&path).map_err(|source| OpenError::Private {
            path: path.clone(),
            source,
        })?;
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
        migrate_chunks(&conn).map_err(err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// Where the database lives, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs one store method's statements on the connection so that SQLite (disk writes,
    /// `busy_timeout` waits) never holds up the async tasks: under the multi-thread runtime
    /// with `block_in_place` (the worker's other tasks move to another thread meanwhile),
    /// under a current-thread runtime on the blocking pool. Every store method goes through
    /// here, once: its statements and transaction run together in `f`, one call at a time.
    /// `name` names the method when it does not finish. A panic in `f` rolls back any
    /// transaction `f` had open and fails this call alone; the store goes on.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        name: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        // A panic in `f` rolls back its transaction (dropped while unwinding) and fails
        // this call alone: the lock is taken again past its poison.
        let run = move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut conn))).unwrap_or_else(
                |_| {
                    Err(StoreError::Backend(format!(
                        "the state store call {name} did not finish"
                    )))
                },
            )
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => tokio::task::spawn_blocking(run).await.map_err(|e| {
                StoreError::Backend(format!("the state store call {name} did not finish: {e}"))
            })?,
        }
    }

    /// Every link of an object (status and tests).
    pub async fn all_links(&self, object: ObjectKind) -> Result<Vec<Link>, StoreError> {
        self.call("all_links", move |conn| {
            let mut stmt = conn
                .prepare("SELECT object, prm_id, crm_id, state, snapshot, crm_modstamp, prm_version, version, retry, updated_at FROM links WHERE object = ?1 ORDER BY prm_id")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![object.as_str()], LinkRow::read)
                .map_err(backend)?;
            rows.map(|row| row.map_err(backend)?.into_link()).collect()
        })
        .await
    }

    /// Runs SQL on the database as is (tests that write rows the store would not).
    #[cfg(test)]
    pub(crate) fn raw_sql(&self, sql: &str) {
        self.conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .execute_batch(sql)
            .expect("raw SQL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use prmsync_engine::store::{Cursors, Leases, Links, Pauses};
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
        assert_eq!(s.all_links(ObjectKind::Person).await.unwrap().len(), 1);
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// The folder, the database and SQLite's side files as an open store with a write
    /// leaves them.
    #[cfg(unix)]
    async fn modes_after_a_write(dir: &Path) -> [u32; 4] {
        let s = SqliteStore::open(dir).unwrap();
        s.set_paused(Integration::Deals, true).await.unwrap();
        let db = dir.join("state.db");
        let side = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
        [
            mode(dir),
            mode(&db),
            mode(&side("-wal")),
            mode(&side("-shm")),
        ]
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_state_is_readable_by_its_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state").join("nested");
        assert_eq!(
            modes_after_a_write(&dir).await,
            [0o700, 0o600, 0o600, 0o600]
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_state_made_looser_earlier_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        drop(SqliteStore::open(&dir).unwrap());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let db = dir.join("state.db");
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!((mode(&dir), mode(&db)), (0o755, 0o644));
        assert_eq!(
            modes_after_a_write(&dir).await,
            [0o700, 0o600, 0o600, 0o600]
        );
    }

    #[tokio::test]
    async fn calls_run_on_the_blocking_pool_under_the_current_thread_runtime() {
        let s = SqliteStore::in_memory();
        let here = std::thread::current().id();
        let there = s
            .call("thread", |_| Ok(std::thread::current().id()))
            .await
            .unwrap();
        assert_ne!(here, there);
        s.set_paused(Integration::People, true).await.unwrap();
        assert!(s.is_paused(Integration::People).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_under_the_multi_thread_runtime() {
        let s = std::sync::Arc::new(SqliteStore::in_memory());
        let saves = (0..16).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.save_link(&Link::new(
                    ObjectKind::Organization,
                    &format!("org_{i}"),
                    &format!("001{i}"),
                ))
                .await
            })
        });
        let leases = (0..8).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let until = Utc::now() + chrono::Duration::minutes(5);
                s.acquire_lease(Integration::Deals, &format!("holder-{i}"), until)
                    .await
            })
        });
        let saves: Vec<_> = saves.collect();
        let leases: Vec<_> = leases.collect();
        for save in saves {
            assert_eq!(save.await.unwrap().unwrap().version, 1);
        }
        let mut won = 0;
        for lease in leases {
            won += usize::from(lease.await.unwrap().unwrap());
        }
        assert_eq!(won, 1, "exactly one holder takes the lease");
        assert_eq!(
            s.all_links(ObjectKind::Organization).await.unwrap().len(),
            16
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_store_contract_holds_under_the_multi_thread_runtime() {
        prmsync_engine::store_contract::all(&SqliteStore::in_memory()).await;
    }

    #[tokio::test]
    async fn a_call_that_panics_is_an_error_naming_it_and_the_store_goes_on() {
        let s = SqliteStore::in_memory();
        let err = s
            .call("exploding", |_| -> Result<(), StoreError> {
                panic!("exploding on purpose")
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("exploding")),
            "{err}"
        );
        s.set_cursor(Integration::Deals, "crm", Utc::now())
            .await
            .unwrap();
        assert!(s.cursor(Integration::Deals, "crm").await.unwrap().is_some());
    }
}
