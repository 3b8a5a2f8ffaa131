//! The database's tables and indexes, and the migration of a database made by an earlier
//! version (its `runs` keyed by run id alone).

use rusqlite::Connection;

pub(crate) const SCHEMA: &str = r#"
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
    held TEXT NOT NULL DEFAULT '[]',
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
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT PRIMARY KEY,
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

/// Moves a `runs` table keyed by run id alone to the key (run id, integration), in one
/// transaction; nothing to do on a current database.
pub(crate) fn migrate_runs(conn: &Connection) -> rusqlite::Result<()> {
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

/// Gives `run_chunks` of a database made before chunks kept their held write-backs its
/// `held` column (empty); nothing to do on a current database.
pub(crate) fn migrate_chunks(conn: &Connection) -> rusqlite::Result<()> {
    let has_held = |c: &Connection| -> rusqlite::Result<bool> {
        c.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('run_chunks') WHERE name = 'held'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    if has_held(conn)? {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    // Another process opening the database at the same time may have added it first.
    if !has_held(&tx)? {
        tx.execute_batch("ALTER TABLE run_chunks ADD COLUMN held TEXT NOT NULL DEFAULT '[]';")?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use prmsync_engine::report::Counts;
    use prmsync_engine::store::{RunRecord, Runs};
    use prmsync_mapping::Integration;
    use rusqlite::params;

    use crate::codec::ts;
    use crate::SqliteStore;

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
                api_usage: None,
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
    async fn chunks_of_a_database_made_before_held_write_backs_get_an_empty_list() {
        use prmsync_engine::store::RunChunks;
        let dir = tempfile::tempdir().unwrap();
        // GIVEN a database whose run_chunks has no `held` column, with a chunk of a run
        {
            let conn = Connection::open(dir.path().join("state.db")).unwrap();
            conn.execute_batch(
                "CREATE TABLE run_chunks (integration TEXT NOT NULL, run_id TEXT NOT NULL, \
                 number INTEGER NOT NULL, crm_ids TEXT NOT NULL, prm_ids TEXT NOT NULL, \
                 done INTEGER NOT NULL DEFAULT 0, counts TEXT NOT NULL, \
                 PRIMARY KEY (integration, run_id, number));",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO run_chunks VALUES ('people', 'run-old', 0, '[\"003A\"]', '[]', 0, ?1)",
                params![serde_json::to_string(&Counts::default()).unwrap()],
            )
            .unwrap();
        }
        // WHEN it is opened (twice: the second changes nothing)
        drop(SqliteStore::open(dir.path()).unwrap());
        let s = SqliteStore::open(dir.path()).unwrap();
        // THEN the chunk reads with no held write-back, and finishing it keeps them
        let chunks = s.run_chunks(Integration::People, "run-old").await.unwrap();
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].held.is_empty());
        let held = prmsync_engine::pass::HeldUpdate {
            crm_id: "003A".into(),
            prm_id: "per-1".into(),
            patch: vec![("PRM_Id__c".to_string(), serde_json::json!("per-1"))],
            snapshot: vec![("prm_id".into(), serde_json::json!("per-1"))],
            created: Some(prmsync_mapping::config::Side::Prm),
            retry: false,
        };
        let finished = s
            .finish_chunk(
                Integration::People,
                "run-old",
                0,
                &Counts::default(),
                std::slice::from_ref(&held),
            )
            .await
            .unwrap();
        assert_eq!(finished, Some(1));
        let chunks = s.run_chunks(Integration::People, "run-old").await.unwrap();
        assert_eq!(chunks[0].held, vec![held]);
    }
}
