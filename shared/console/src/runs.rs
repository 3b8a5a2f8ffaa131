//! Runs started from the console: each runs in the background, and the page follows it
//! (status, errors so far, then its counts) until it is done. A [`Runner`] is how the
//! console reaches a deployment: the engine in this process ([`EngineRunner`]) or, with
//! the `aws` feature, the AWS functions and work queue (`crate::deployment`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::inspect::PairView;
use prmsync_engine::report::{RunMode, RunReport};
use prmsync_engine::RecordRef;
use prmsync_mapping::Integration;
use serde::Serialize;

/// What the console asks of a deployment: runs, one record synced now, and (where the
/// console holds the connection) both records of a pair read live.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Runs `integration` in `mode` under `run_id` and reports how it ended.
    async fn run(&self, integration: Integration, mode: RunMode, run_id: String) -> RunReport;
    /// Syncs one record now ("Sync Now" on its page).
    async fn sync_record(&self, record: &RecordRef) -> RecordSync;
    /// Both records of `record`'s pair, read now; None where this console cannot read
    /// them (on AWS it holds no Salesforce or PRM connection).
    async fn read_pair(&self, _record: &RecordRef) -> Option<Result<PairView, String>> {
        None
    }
    /// People with this email on either side; None where this console cannot search.
    async fn people_by_email(&self, _email: &str) -> Option<Result<Vec<RecordRef>, String>> {
        None
    }
}

/// What "Sync Now" did.
#[derive(Debug, Clone)]
pub enum RecordSync {
    /// Synced here: the run's report.
    Done(RunReport),
    /// Put on the deployment's work queue: a worker syncs it under this run id.
    Queued { run_id: String },
    /// It could not be queued.
    Failed(String),
}

/// Runs an integration with the engine, in this process (the one-machine deployment).
pub struct EngineRunner(pub prmsync_engine::SyncContext);

#[async_trait]
impl Runner for EngineRunner {
    async fn run(&self, integration: Integration, mode: RunMode, run_id: String) -> RunReport {
        prmsync_engine::run_integration(
            &self.0,
            integration,
            prmsync_engine::RunOptions {
                mode,
                dry_run: false,
                run_id: Some(run_id),
                allow_mass_change: false,
            },
        )
        .await
    }

    async fn sync_record(&self, record: &RecordRef) -> RecordSync {
        RecordSync::Done(prmsync_engine::sync_record(&self.0, record, false).await)
    }

    async fn read_pair(&self, record: &RecordRef) -> Option<Result<PairView, String>> {
        Some(
            prmsync_engine::inspect::read_pair(&self.0, record)
                .await
                .map_err(|e| e.to_string()),
        )
    }

    async fn people_by_email(&self, email: &str) -> Option<Result<Vec<RecordRef>, String>> {
        Some(
            prmsync_engine::inspect::people_by_email(&self.0, email)
                .await
                .map_err(|e| e.to_string()),
        )
    }
}

/// A run started from the console.
#[derive(Debug, Clone, Serialize)]
pub struct StartedRun {
    pub run_id: String,
    pub integration: Integration,
    pub mode: RunMode,
    pub started_at: DateTime<Utc>,
    /// Set once the run has ended.
    pub report: Option<RunReport>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The runs started from this console, the latest per integration.
#[derive(Default, Clone)]
pub struct StartedRuns(Arc<Mutex<BTreeMap<&'static str, StartedRun>>>);

impl StartedRuns {
    /// Starts `integration` unless a run of it started here is still going; returns the
    /// run id, or None when one is going.
    pub fn start(
        &self,
        runner: Arc<dyn Runner>,
        integration: Integration,
        mode: RunMode,
    ) -> Option<String> {
        let run_id = uuid::Uuid::new_v4().to_string();
        {
            let mut runs = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if runs
                .get(integration.as_str())
                .is_some_and(|r| r.report.is_none())
            {
                return None;
            }
            runs.insert(
                integration.as_str(),
                StartedRun {
                    run_id: run_id.clone(),
                    integration,
                    mode,
                    started_at: Utc::now(),
                    report: None,
                    finished_at: None,
                },
            );
        }
        let runs = self.clone();
        let id = run_id.clone();
        tokio::spawn(async move {
            let report = runner.run(integration, mode, id.clone()).await;
            let mut map = runs.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = map.get_mut(integration.as_str()).filter(|r| r.run_id == id) {
                r.report = Some(report);
                r.finished_at = Some(Utc::now());
            }
        });
        Some(run_id)
    }

    /// Every run started here, by integration.
    pub fn all(&self) -> BTreeMap<&'static str, StartedRun> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
