//! The console over the AWS deployment (`prmsync console --aws`): Run Now invokes the
//! function that owns the integration with the operator's own credentials, then follows
//! the run's record in the state table until the workers close it; Sync Now puts the
//! record on the work queue, as `prmsync sync-record --aws` does.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use prmsync_aws::deployment::{started, Deployment, RunAsk, Started};
use prmsync_engine::report::{Counts, RunMode, RunReport, RunStatus};
use prmsync_engine::store::{RunRecord, Store};
use prmsync_engine::RecordRef;
use prmsync_mapping::Integration;

use crate::runs::{RecordSync, Runner};

/// Runs on the AWS deployment, followed in its state table.
pub struct DeploymentRunner {
    deployment: Deployment,
    store: Arc<dyn Store>,
    /// How often the run record is read while the workers sync.
    pub poll: Duration,
    /// How long a run is followed before the page is told to look again later.
    pub give_up: Duration,
}

impl DeploymentRunner {
    pub fn new(deployment: Deployment, store: Arc<dyn Store>) -> Self {
        Self {
            deployment,
            store,
            poll: Duration::from_secs(2),
            give_up: Duration::from_secs(2 * 3600),
        }
    }

    /// Reads the run record until the run has ended.
    async fn follow(
        &self,
        mut report: RunReport,
        begun: chrono::DateTime<chrono::Utc>,
    ) -> RunReport {
        let until = tokio::time::Instant::now() + self.give_up;
        loop {
            match self.store.last_run(report.integration).await {
                Ok(Some(r)) if r.run_id == report.run_id && r.status != RunStatus::Running => {
                    return ended(report, &r);
                }
                // the next run already started: this one ended before it
                Ok(Some(r)) if r.run_id != report.run_id && r.started_at > begun => {
                    report.message = Some(format!(
                        "run {} has ended; run {} followed it",
                        report.run_id, r.run_id
                    ));
                    return report;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(code = "console_follow_failed", run_id = report.run_id.as_str(), message = %e)
                }
            }
            if tokio::time::Instant::now() >= until {
                report.status = RunStatus::Running;
                report.message = Some(format!(
                    "still running after {} minutes: the Sync Manager shows its counts when the workers close it",
                    self.give_up.as_secs() / 60
                ));
                return report;
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// The report of a run from its closed record.
fn ended(mut report: RunReport, record: &RunRecord) -> RunReport {
    report.status = record.status;
    report.counts = record.counts.clone();
    report.mode = record.mode;
    report
}

#[async_trait]
impl Runner for DeploymentRunner {
    async fn run(&self, integration: Integration, mode: RunMode, run_id: String) -> RunReport {
        let mut report = RunReport {
            run_id: run_id.clone(),
            integration,
            mode,
            dry_run: false,
            status: RunStatus::Running,
            counts: Counts::default(),
            message: None,
            failure: None,
            planned: Vec::new(),
        };
        let ask = RunAsk {
            mode,
            dry_run: false,
            allow_mass_change: false,
            run_id: Some(run_id),
        };
        let begun = chrono::Utc::now();
        let answer = match self.deployment.run(Some(integration), &ask).await {
            Ok(mut answers) if !answers.is_empty() => answers.remove(0).1,
            Ok(_) => Default::default(),
            Err(e) => {
                report.status = RunStatus::Failed;
                report.failure = Some(e.class());
                report.message = Some(e.to_string());
                return report;
            }
        };
        match started(integration, &answer) {
            Ok(Started::Queued { .. }) => self.follow(report, begun).await,
            Ok(Started::Ended {
                status,
                counts,
                message,
                ..
            }) => {
                report.status = status;
                report.counts = serde_json::from_value(counts).unwrap_or_default();
                report.message = message;
                report
            }
            Err(e) => {
                report.status = RunStatus::Failed;
                report.message = Some(e);
                report
            }
        }
    }

    async fn sync_record(&self, record: &RecordRef) -> RecordSync {
        match self.deployment.queue_record(record).await {
            Ok(run_id) => RecordSync::Queued { run_id },
            Err(e) => RecordSync::Failed(e.to_string()),
        }
    }
}
