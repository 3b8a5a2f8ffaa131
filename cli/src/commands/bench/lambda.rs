//! The Lambda deployment's path in one process, for `prmsync bench --deployment lambda`:
//! full-sync's planner queues a run's chunks, and workers sync them as sync-worker does
//! (batches of [`BATCH`] messages, [`CONCURRENCY`] chunks at a time). A worker that closes
//! a run plans what follows it (an `all` run's people), as the closing worker asks
//! full-sync to. Deals run in one go, as deal-import runs them.
//!
//! The queue is in memory and keeps the chunks as the JSON bodies SQS would carry; delays
//! pass at once. The state is DynamoDB when `AWS_ENDPOINT_URL` is set and this build has
//! the `aws` feature (fresh tables, removed afterwards), SQLite in memory otherwise.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use async_trait::async_trait;
use prmsync_engine::chunk::Chunk;
use prmsync_engine::planner::{plan_run, PlanRequest, PlanStatus};
use prmsync_engine::ports::{FailureClass, Queue, System};
use prmsync_engine::worker::{work_chunks, ChunkVerdict, Delivery};
use prmsync_engine::{
    run_integration, PortError, RunMode, RunOptions, RunReport, Store, SyncContext,
};
use prmsync_mapping::Integration;
use prmsync_state_sqlite::SqliteStore;

/// Messages in one SQS batch handed to a worker (the template's BatchSize).
pub const BATCH: usize = 10;
/// Chunks a worker syncs at once (sync-worker's `CONCURRENCY`).
pub const CONCURRENCY: usize = 4;
/// Deliveries of a message before SQS moves it to the dead-letter queue (maxReceiveCount).
const MAX_RECEIVES: u32 = 5;

/// A work queue in memory: message bodies with their receive count, and those sent with a
/// delay, delivered once nothing else is left.
#[derive(Default)]
pub struct BenchQueue {
    ready: Mutex<VecDeque<(String, u32)>>,
    delayed: Mutex<Vec<String>>,
}

impl BenchQueue {
    /// The next batch of up to `n` messages; the delayed ones when nothing else is left.
    fn batch(&self, n: usize) -> Vec<(String, u32)> {
        let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        if ready.is_empty() {
            let delayed =
                std::mem::take(&mut *self.delayed.lock().unwrap_or_else(|e| e.into_inner()));
            ready.extend(delayed.into_iter().map(|b| (b, 1)));
        }
        let n = n.min(ready.len());
        ready.drain(..n).collect()
    }

    /// A message whose outcome could not be recorded comes back, as SQS delivers it again.
    fn redeliver(&self, body: String, receive_count: u32) {
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((body, receive_count));
    }
}

fn body(chunk: &Chunk) -> Result<String, PortError> {
    serde_json::to_string(chunk).map_err(|e| PortError {
        system: System::Prm,
        class: FailureClass::Transient,
        message: format!("the bench's queue: encoding a chunk: {e}"),
    })
}

#[async_trait]
impl Queue for BenchQueue {
    async fn send(&self, chunks: &[Chunk]) -> Result<(), PortError> {
        let bodies = chunks.iter().map(body).collect::<Result<Vec<_>, _>>()?;
        self.ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(bodies.into_iter().map(|b| (b, 1)));
        Ok(())
    }

    async fn send_later(
        &self,
        chunk: &Chunk,
        _delay: std::time::Duration,
    ) -> Result<(), PortError> {
        let b = body(chunk)?;
        self.delayed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(b);
        Ok(())
    }
}

/// Plans `integration` as full-sync does; the status when it queued or finished.
async fn plan(
    ctx: &SyncContext,
    queue: &BenchQueue,
    integration: Integration,
    mode: RunMode,
    then: Vec<Integration>,
) -> Result<PlanStatus> {
    let request = PlanRequest {
        then,
        ..PlanRequest::new(integration, mode, uuid::Uuid::new_v4().to_string())
    };
    let report = plan_run(ctx, Some(queue), &request)
        .await
        .map_err(|e| anyhow!("planning the {integration} run: {e}"))?;
    match report.status {
        PlanStatus::Queued | PlanStatus::Finished => Ok(report.status),
        other => bail!(
            "planning the {integration} run: the planner answered {other:?}: {}",
            report.message.unwrap_or_default()
        ),
    }
}

/// What one sync through the planner and the workers did.
pub struct LambdaSync {
    /// The closed runs' reports (deals' too).
    pub reports: Vec<RunReport>,
    /// Chunk messages worked, every delivery counted.
    pub chunks: u64,
    /// Time spent planning (the planner runs before the workers here; on AWS the workers
    /// start on the first chunks while it reads on).
    pub plan_ms: u64,
}

/// One sync of every integration through the planner and the workers (see the module
/// doc).
pub async fn sync(
    ctx: &SyncContext,
    queue: &BenchQueue,
    mode: RunMode,
    deals: bool,
) -> Result<LambdaSync> {
    let mut open: HashSet<Integration> = HashSet::new();
    let mut reports = Vec::new();
    let mut planning = std::time::Duration::ZERO;
    let started = Instant::now();
    let status = plan(
        ctx,
        queue,
        Integration::Organizations,
        mode,
        vec![Integration::People],
    )
    .await?;
    if status == PlanStatus::Finished {
        // Nothing changed: the run closed at once, and people are planned now.
        if plan(ctx, queue, Integration::People, mode, Vec::new()).await? == PlanStatus::Queued {
            open.insert(Integration::People);
        }
    } else {
        open.insert(Integration::Organizations);
    }
    planning += started.elapsed();
    let mut worked = 0u64;
    loop {
        let batch = queue.batch(BATCH);
        if batch.is_empty() {
            break;
        }
        // Messages that are not chunks fail as in sync-worker; the others are worked as
        // one batch (their Salesforce updates written together).
        let mut results = Vec::new();
        let mut chunks = Vec::new();
        let mut bodies = Vec::new();
        for (body, receives) in batch {
            match serde_json::from_str::<Chunk>(&body) {
                Ok(chunk) => {
                    chunks.push((
                        chunk,
                        Delivery {
                            receive_count: receives,
                        },
                    ));
                    bodies.push((body, receives));
                }
                Err(e) => results.push((
                    body,
                    receives,
                    Err(anyhow!("a queued message is not a chunk ({e})")),
                )),
            }
        }
        let outcomes = work_chunks(ctx, queue, &chunks, CONCURRENCY).await;
        for (((body, receives), (chunk, _)), report) in
            bodies.into_iter().zip(&chunks).zip(outcomes)
        {
            let report = report.map_err(|e| {
                anyhow!(
                    "chunk {:?} of the {} run {}: {e}",
                    chunk.number,
                    chunk.integration,
                    chunk.run_id
                )
            });
            results.push((body, receives, report));
        }
        for (body, receives, result) in results {
            worked += 1;
            let report = match result {
                Ok(r) => r,
                Err(e) if receives < MAX_RECEIVES => {
                    tracing::warn!("{e:#}; the message is delivered again");
                    queue.redeliver(body, receives + 1);
                    continue;
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "the message failed all its {MAX_RECEIVES} deliveries (in the deployment it would rest in the dead-letter queue)"
                    )))
                }
            };
            if report.verdict == ChunkVerdict::Deferred {
                bail!(
                    "a worker deferred a chunk: Salesforce refused calls for the org's API limit (or the API reserve was reached), \
                     and workers write nothing for {} minutes; the bench does not wait: raise the simulator's limit or the [sync] api_reserve_percent",
                    prmsync_engine::worker::LIMIT_HOLD_MINUTES
                );
            }
            if let Some(closed) = report.closed {
                anyhow::ensure!(
                    closed.report.status == prmsync_engine::RunStatus::Succeeded,
                    "the {} run closed {}: {:?}",
                    closed.report.integration,
                    closed.report.status,
                    closed.report.message
                );
                open.remove(&closed.report.integration);
                for next in closed.then {
                    let started = Instant::now();
                    if plan(ctx, queue, next, closed.mode, Vec::new()).await? == PlanStatus::Queued
                    {
                        open.insert(next);
                    }
                    planning += started.elapsed();
                }
                reports.push(closed.report);
            }
        }
    }
    if let Some(i) = open.iter().next() {
        bail!("the queue is empty but the {i} run did not close: a chunk was lost or never marked done");
    }
    if deals {
        // deal-import's run, in one invocation.
        let r = run_integration(
            ctx,
            Integration::Deals,
            RunOptions {
                mode,
                dry_run: false,
                run_id: None,
                allow_mass_change: false,
            },
        )
        .await;
        anyhow::ensure!(
            r.status == prmsync_engine::RunStatus::Succeeded,
            "the deals run {}: {:?}",
            r.status,
            r.message
        );
        reports.push(r);
    }
    Ok(LambdaSync {
        reports,
        chunks: worked,
        plan_ms: planning.as_millis() as u64,
    })
}

/// The Lambda path's state store.
pub enum LambdaStore {
    Sqlite(Arc<SqliteStore>),
    #[cfg(feature = "aws")]
    Dynamo {
        store: Arc<prmsync_aws::dynamo::DynamoStore>,
        endpoint: String,
    },
}

impl LambdaStore {
    /// DynamoDB tables of their own at `AWS_ENDPOINT_URL` (moto) when it is set and this
    /// build has the aws feature; SQLite in memory otherwise.
    pub async fn open() -> Result<Self> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.trim().is_empty());
        match endpoint {
            #[cfg(feature = "aws")]
            Some(endpoint) => {
                use anyhow::Context as _;
                let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .load()
                    .await;
                let suffix = uuid::Uuid::new_v4().simple().to_string();
                let store = prmsync_aws::dynamo::DynamoStore::new(
                    aws_sdk_dynamodb::Client::new(&aws),
                    format!("prmsync-bench-state-{}", &suffix[..12]),
                    format!("prmsync-bench-log-{}", &suffix[..12]),
                );
                store.create_tables().await.with_context(|| {
                    format!(
                        "creating the bench's DynamoDB tables at AWS_ENDPOINT_URL={endpoint}: start moto there \
                         (python3 scripts/moto-serial.py -H 127.0.0.1 -p PORT) with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY \
                         and AWS_REGION set, or unset AWS_ENDPOINT_URL to measure with SQLite in memory"
                    )
                })?;
                Ok(LambdaStore::Dynamo {
                    store: Arc::new(store),
                    endpoint,
                })
            }
            #[cfg(not(feature = "aws"))]
            Some(_) => {
                tracing::warn!(
                    "AWS_ENDPOINT_URL is set but this prmsync has no DynamoDB support: the Lambda path keeps its state in SQLite in memory \
                     (cargo build --release --features aws --bin prmsync measures DynamoDB)"
                );
                Ok(LambdaStore::Sqlite(Arc::new(SqliteStore::in_memory())))
            }
            None => Ok(LambdaStore::Sqlite(Arc::new(SqliteStore::in_memory()))),
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            LambdaStore::Sqlite(s) => s.clone(),
            #[cfg(feature = "aws")]
            LambdaStore::Dynamo { store, .. } => store.clone(),
        }
    }

    /// What the state was kept in, for the report.
    pub fn describe(&self) -> String {
        match self {
            LambdaStore::Sqlite(_) => "sqlite (in memory)".into(),
            #[cfg(feature = "aws")]
            LambdaStore::Dynamo { endpoint, .. } => format!("dynamodb ({endpoint})"),
        }
    }

    /// Deletes the bench's DynamoDB tables (nothing to do for SQLite).
    pub async fn remove(&self) {
        #[cfg(feature = "aws")]
        if let LambdaStore::Dynamo { store, .. } = self {
            for table in [store.state_table(), store.log_table()] {
                if let Err(e) = store.client().delete_table().table_name(table).send().await {
                    tracing::warn!(
                        "could not delete the bench's table {table}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    );
                }
            }
        }
    }
}
