//! The one-machine state of prmsync: links, cursors, leases, pause flags, runs, run chunks,
//! the retry set and the Integration Log in an embedded SQLite database
//! (`<state dir>/state.db`).
//!
//! Every write is its own transaction in WAL mode, so a crash mid-run leaves each link,
//! cursor and log entry either fully written or not at all. Opening a database made by an
//! earlier version adds the tables it lacks and moves its runs to the current key.
//!
//! Each store method runs its statements on the store's own thread, which owns the
//! connection, through `SqliteStore::call`; a row that cannot be decoded is a [`StoreError::Corrupt`] naming
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
use std::sync::mpsc;

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
    #[error(
        "cannot start the state store's thread: {source}; the machine is out of threads or memory"
    )]
    Thread { source: std::io::Error },
}

/// One store method's statements, run on the store's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// SQLite-backed state. The connection lives on a thread of its own that runs the store
/// methods' statements one after the other (see `SqliteStore::call`), never on the async
/// worker threads; callers await the answer without holding a thread. One thread, not
/// tokio's blocking pool: the pool would spread the calls over many threads, and each
/// would keep its own allocator arena (tens of MiB more at the peak of a large run).
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
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
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("prmsync-sqlite".into())
            .spawn(move || serve(conn, queue))
            .map_err(|source| OpenError::Thread { source })?;
        Ok(Self { jobs, path })
    }

    /// Where the database lives, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs one store method's statements on the connection, on the store's thread, so
    /// that SQLite (disk writes, `busy_timeout` waits) never holds up an async worker
    /// thread. Every store method goes through here, once: its statements and transaction
    /// run together in `f`, and calls run in the order they are made. `name` names the
    /// method when it does not finish. A panic in `f` rolls back any transaction `f` had
    /// open and fails this call alone; the store goes on.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        name: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have given up; the call still runs to its end.
            let _ = answer.send(f(conn));
        });
        let unfinished =
            || StoreError::Backend(format!("the state store call {name} did not finish"));
        self.jobs.send(job).map_err(|_| unfinished())?;
        answered.await.map_err(|_| unfinished())?
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
        let (done, wait) = mpsc::channel();
        let sql = sql.to_string();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = done.send(conn.execute_batch(&sql));
            }))
            .expect("the store's thread runs");
        wait.recv().expect("an answer").expect("raw SQL");
    }
}

/// The store's thread: runs the jobs in order until the store is dropped. A job that panics
/// drops its answer (its caller gets an error) and the thread goes on with the next.
fn serve(mut conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(job) = queue.recv() {
        let conn = &mut conn;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || job(conn)));
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

    #[tokio::test]
    async fn calls_run_on_the_stores_thread_under_the_current_thread_runtime() {
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
