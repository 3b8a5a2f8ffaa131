//! `prmsync bench`: seeds the simulators with N Accounts and M Contacts (and K flagged
//! Opportunities), then measures a full first import, an unchanged incremental run, and a
//! run after changing 1% of the records on each side: wall time, records per second,
//! Salesforce calls (reads and writes) beside the minimum possible, PRM calls, peak memory.
//!
//! The simulators run in a child process (this binary with `--serve-simulators`), on
//! loopback, so the peak memory measured is the engine's alone. The child answers one-line
//! commands on stdin: `reset` (call counts and its peak memory), `calls`, `change`; it
//! cannot seed again, so each deployment measured gets a child of its own.
//!
//! `--deployment` picks the path measured: `one-machine` (`run_integration` with SQLite,
//! as `prmsync sync` runs), `lambda` (the planner and the workers in this process, as the
//! Lambda functions run them: `bench/lambda.rs`), or `both`, side by side with the ratio of
//! Salesforce calls.

use std::collections::BTreeMap;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use prmsync_engine::{run_integration, RunMode, RunOptions, RunReport, Store, SyncContext};
use prmsync_mapping::{Integration, MappingConfig};
use prmsync_prm::{PrmClient, PrmConfig};
use prmsync_salesforce::{Auth, SalesforceClient, SalesforceConfig};
use prmsync_simulators::prm::{Collection, PrmSim};
use prmsync_simulators::salesforce::{ApiCalls, SalesforceSim};
use prmsync_state_sqlite::SqliteStore;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Mutex;

mod lambda;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Flagged Accounts to import.
    #[arg(long, default_value_t = 5_000)]
    pub accounts: u64,
    /// Contacts, spread over the Accounts.
    #[arg(long, default_value_t = 20_000)]
    pub contacts: u64,
    /// Flagged Opportunities (imported as deals).
    #[arg(long, default_value_t = 0)]
    pub opportunities: u64,
    /// The simulated PRM offers batch writes of this many records (`"batch": {"max": N}` in
    /// its settings); 0 = a PRM without batches, written record by record.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub prm_batch_max: usize,
    /// `[salesforce] bulk_ingest_threshold` of the run: a pass writing more Salesforce
    /// records of one object than this writes them through a Bulk API 2.0 ingest job;
    /// 0 = Collections of 200 only.
    #[arg(long, default_value_t = prmsync_mapping::config::DEFAULT_BULK_INGEST_THRESHOLD, value_name = "N")]
    pub bulk_ingest_threshold: u64,
    /// `[salesforce] bulk_ingest_job_records` of the run: a large run's held write-backs
    /// go out in ingest jobs of at most this many records (1 to 150000).
    #[arg(long, default_value_t = prmsync_mapping::config::DEFAULT_BULK_INGEST_JOB_RECORDS, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=150_000))]
    pub bulk_ingest_job_records: u32,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The path measured: one-machine (`prmsync sync` with SQLite), lambda (the planner and
    /// the workers in this process, as the Lambda functions run them; DynamoDB when
    /// AWS_ENDPOINT_URL is set and this build has the aws feature, SQLite in memory
    /// otherwise), or both, side by side.
    #[arg(long, value_enum, default_value_t = Deployment::OneMachine)]
    pub deployment: Deployment,
    /// Serve seeded simulators for a bench running in another process (the bench starts
    /// itself with this flag).
    #[arg(long, hide = true)]
    pub serve_simulators: bool,
}

/// Which deployment's path a bench measures.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// `run_integration` with SQLite, as `prmsync sync` runs.
    OneMachine,
    /// The planner and the workers in this process, as the Lambda functions run them.
    Lambda,
    /// One machine, then Lambda, each on freshly seeded simulators.
    Both,
}

impl Deployment {
    fn key(self) -> &'static str {
        match self {
            Deployment::OneMachine => "one_machine",
            Deployment::Lambda => "lambda",
            Deployment::Both => "both",
        }
    }
}

/// One measured phase.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub records: u64,
    pub wall_ms: u64,
    pub records_per_s: u64,
    pub salesforce_calls: u64,
    pub salesforce_reads: u64,
    pub salesforce_writes: u64,
    pub salesforce_min_calls: u64,
    pub prm_calls: u64,
    /// The engine's process: clients, engine and SQLite state.
    pub peak_rss_mb: f64,
    /// The simulators' process.
    pub simulators_peak_rss_mb: f64,
    /// The Lambda path: chunk messages worked (every delivery to a worker).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u64>,
    /// The Lambda path: of `wall_ms`, the time spent planning (the planner runs before the
    /// workers here; on AWS the workers start while it reads on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_ms: Option<u64>,
    /// Salesforce calls by the simulator's kind (with --deployment lambda or both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salesforce_by_kind: Option<BTreeMap<String, u64>>,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Peak resident memory of this process since the last reset, in MiB (Linux).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

/// Resets the peak so each phase reports its own (Linux `clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn pages(n: u64, size: u64) -> u64 {
    n.div_ceil(size)
}

/// The seeded simulators in their child process.
struct Simulators {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Simulators {
    /// Starts `prmsync bench --serve-simulators` with the same sizes and reads the two
    /// addresses it prints once seeded.
    async fn spawn(args: &BenchArgs) -> Result<(Self, String, String)> {
        let exe =
            std::env::current_exe().context("finding this program to start the simulators")?;
        let mut child = tokio::process::Command::new(exe)
            .args([
                "bench",
                "--serve-simulators",
                "--accounts",
                &args.accounts.to_string(),
                "--contacts",
                &args.contacts.to_string(),
                "--opportunities",
                &args.opportunities.to_string(),
                "--prm-batch-max",
                &args.prm_batch_max.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the simulators' process")?;
        let stdin = child.stdin.take().context("the simulators' stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("the simulators' stdout")?).lines();
        let mut sims = Simulators {
            child,
            stdin,
            stdout,
        };
        let ready = sims.read().await?;
        let url = |k: &str| {
            ready[k].as_str().map(str::to_string).with_context(|| {
                format!("the simulators' process did not say where {k} is: {ready}")
            })
        };
        let (sf, prm) = (url("salesforce")?, url("prm")?);
        Ok((sims, sf, prm))
    }

    async fn read(&mut self) -> Result<Value> {
        let line = self
            .stdout
            .next_line()
            .await
            .context("reading from the simulators' process")?
            .context("the simulators' process ended early; its error is above")?;
        serde_json::from_str(&line)
            .with_context(|| format!("the simulators' process answered {line:?}"))
    }

    async fn ask(&mut self, command: &str) -> Result<Value> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .context("writing to the simulators' process")?;
        self.stdin
            .flush()
            .await
            .context("writing to the simulators' process")?;
        self.read().await
    }

    async fn stop(mut self) {
        drop(self.stdin);
        let _ = self.child.wait().await;
    }
}

/// The child's side: seeded simulators on loopback, answering commands until stdin closes.
async fn serve_simulators(args: &BenchArgs) -> Result<ExitCode> {
    let sf = SalesforceSim::new();
    let prm = PrmSim::new("bench");
    prm.set_batches((args.prm_batch_max > 0).then_some(args.prm_batch_max));
    let sf_url = sf
        .start()
        .await
        .context("starting the Salesforce simulator")?;
    let prm_url = prm.start().await.context("starting the PRM simulator")?;
    seed(&sf, &prm, args);
    let mut out = tokio::io::stdout();
    let say = |v: Value| format!("{v}\n");
    out.write_all(say(json!({"salesforce": sf_url, "prm": prm_url})).as_bytes())
        .await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let answer = match line.trim() {
            "reset" => {
                sf.reset_api_calls();
                prm.reset_api_calls();
                reset_peak_rss();
                json!({})
            }
            "calls" => json!({"salesforce": sf.api_calls(), "peak_rss_mb": peak_rss_mb()}),
            "change" => json!({"changed": change_one_percent(&sf, &prm)}),
            other => json!({"error": format!("unknown command {other:?}")}),
        };
        out.write_all(say(answer).as_bytes()).await?;
        out.flush().await?;
    }
    Ok(ExitCode::SUCCESS)
}

struct Bench {
    sims: Mutex<Simulators>,
    ctx: SyncContext,
    integrations: Vec<Integration>,
    /// The Lambda path's queue; None on one machine.
    queue: Option<lambda::BenchQueue>,
    /// Report Salesforce calls by kind.
    by_kind: bool,
}

impl Bench {
    async fn run(
        &self,
        name: &str,
        mode: RunMode,
        min_calls: impl Fn(&Self, &[RunReport]) -> u64,
    ) -> Result<(Phase, Vec<RunReport>)> {
        self.sims.lock().await.ask("reset").await?;
        let prm_before = self.ctx.prm.calls();
        reset_peak_rss();
        let started = Instant::now();
        let (reports, chunks, plan_ms) = match &self.queue {
            None => (self.one_machine(name, mode).await?, None, None),
            Some(queue) => {
                let done = lambda::sync(
                    &self.ctx,
                    queue,
                    mode,
                    self.integrations.contains(&Integration::Deals),
                )
                .await
                .with_context(|| format!("{name} through the planner and workers"))?;
                (done.reports, Some(done.chunks), Some(done.plan_ms))
            }
        };
        let wall = started.elapsed();
        let engine_peak = peak_rss_mb();
        let answer = self.sims.lock().await.ask("calls").await?;
        let calls: ApiCalls = serde_json::from_value(answer["salesforce"].clone())
            .with_context(|| format!("the simulators' call counts: {answer}"))?;
        // Bulk API query jobs (create, status polls, result sets) read records too.
        let reads = [
            "query",
            "query_all",
            "query_more",
            "describe",
            "sobject_get",
        ]
        .iter()
        .map(|k| calls.kind(k))
        .sum::<u64>()
            + calls
                .by_kind
                .iter()
                .filter(|(k, _)| k.starts_with("bulk_query"))
                .map(|(_, v)| v)
                .sum::<u64>();
        let writes = calls
            .by_kind
            .iter()
            .filter(|(k, _)| {
                k.starts_with("composite")
                    || k.starts_with("bulk_ingest")
                    || k.starts_with("sobject_c")
                    || k.starts_with("sobject_u")
            })
            .map(|(_, v)| v)
            .sum::<u64>();
        let auth = calls.kind("auth");
        let records: u64 = reports
            .iter()
            .map(|r| r.counts.unchanged + r.counts.writes() + r.counts.errors)
            .sum();
        let wall_ms = wall.as_millis() as u64;
        let phase = Phase {
            name: name.into(),
            records,
            wall_ms,
            records_per_s: (records * 1000).checked_div(wall_ms).unwrap_or(0),
            salesforce_calls: calls.total + auth,
            salesforce_reads: reads,
            salesforce_writes: writes,
            salesforce_min_calls: min_calls(self, &reports),
            prm_calls: self.ctx.prm.calls() - prm_before,
            peak_rss_mb: engine_peak,
            simulators_peak_rss_mb: answer["peak_rss_mb"].as_f64().unwrap_or(0.0),
            chunks,
            plan_ms,
            salesforce_by_kind: self.by_kind.then(|| calls.by_kind.clone()),
        };
        Ok((phase, reports))
    }

    /// One run of each integration, as `prmsync sync` runs them.
    async fn one_machine(&self, name: &str, mode: RunMode) -> Result<Vec<RunReport>> {
        let mut reports = Vec::new();
        for i in &self.integrations {
            let r = run_integration(
                &self.ctx,
                *i,
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
                "{name}: {} run {}: {:?}",
                i,
                r.status,
                r.message
            );
            reports.push(r);
        }
        Ok(reports)
    }
}

/// What one deployment's bench measured.
struct Measured {
    deployment: Deployment,
    /// The state store the engine used.
    store: String,
    changed_records: u64,
    phases: Vec<Phase>,
}

impl Measured {
    fn json(&self) -> Value {
        json!({"deployment": self.deployment.key(), "store": self.store, "changed_records": self.changed_records, "phases": self.phases})
    }
}

pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    if args.serve_simulators {
        return serve_simulators(&args).await;
    }
    let (accounts, contacts, opportunities) = (args.accounts, args.contacts, args.opportunities);
    let by_kind = args.deployment != Deployment::OneMachine;
    let mut measured = Vec::new();
    if args.deployment != Deployment::Lambda {
        measured.push(measure(&args, Deployment::OneMachine, by_kind).await?);
    }
    if args.deployment != Deployment::OneMachine {
        measured.push(measure(&args, Deployment::Lambda, by_kind).await?);
    }
    let comparison = match measured.as_slice() {
        [one, lambda] => Some(compare(one, lambda)),
        _ => None,
    };
    if args.json {
        let out = match (args.deployment, measured.as_slice()) {
            // Today's shape, unchanged.
            (Deployment::OneMachine, [one]) => {
                json!({"accounts": accounts, "contacts": contacts, "opportunities": opportunities, "changed_records": one.changed_records, "phases": one.phases})
            }
            (Deployment::Lambda, [lambda]) => {
                let mut v = obj(
                    json!({"accounts": accounts, "contacts": contacts, "opportunities": opportunities}),
                );
                v.extend(obj(lambda.json()));
                Value::Object(v)
            }
            _ => {
                let mut deployments = Map::new();
                for m in &measured {
                    deployments.insert(m.deployment.key().into(), m.json());
                }
                json!({"accounts": accounts, "contacts": contacts, "opportunities": opportunities, "deployments": deployments, "comparison": comparison})
            }
        };
        println!("{out}");
    } else {
        println!("{accounts} Accounts, {contacts} Contacts, {opportunities} Opportunities");
        for m in &measured {
            if args.deployment == Deployment::Both || m.deployment == Deployment::Lambda {
                let path = match m.deployment {
                    Deployment::Lambda => "Lambda path (planner and workers in this process)",
                    _ => "one machine",
                };
                println!("\n{path}, state in {}:", m.store);
            }
            print_table(&m.phases);
        }
        println!("(peak resident memory: the engine's process, and the simulators' process)");
        if let Some(rows) = &comparison {
            print_comparison(rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Seeds a fresh child of simulators and measures the three phases through `deployment`.
async fn measure(args: &BenchArgs, deployment: Deployment, by_kind: bool) -> Result<Measured> {
    let (sims, sf_url, prm_url) = Simulators::spawn(args).await?;
    let state = std::env::temp_dir().join(format!("prmsync-bench-{}", std::process::id()));
    let (store, store_name, lambda_store): (Arc<dyn Store>, String, Option<lambda::LambdaStore>) =
        match deployment {
            Deployment::Lambda => {
                let s = lambda::LambdaStore::open().await?;
                (s.store(), s.describe(), Some(s))
            }
            _ => (
                Arc::new(SqliteStore::open(&state)?),
                "sqlite (file)".into(),
                None,
            ),
        };
    let mut crm_config = SalesforceConfig::new(
        sf_url,
        Auth::ClientCredentials {
            client_id: "sandbox-client".into(),
            client_secret: "sandbox-secret".into(),
        },
    );
    crm_config.bulk_ingest_threshold = args.bulk_ingest_threshold;
    let crm = SalesforceClient::new(crm_config)?;
    let mut mapping = MappingConfig::default();
    mapping.salesforce.bulk_ingest_threshold = args.bulk_ingest_threshold;
    mapping.salesforce.bulk_ingest_job_records = args.bulk_ingest_job_records;
    let prm_client = PrmClient::new(PrmConfig::new(prm_url, "bench"))?;
    let mut integrations = vec![Integration::Organizations, Integration::People];
    if args.opportunities > 0 {
        integrations.push(Integration::Deals);
    }
    let bench = Bench {
        sims: Mutex::new(sims),
        ctx: prmsync_connect::sync_context(
            Arc::new(crm),
            Arc::new(prm_client),
            store,
            mapping,
            "bench",
        ),
        integrations,
        queue: lambda_store.as_ref().map(|_| lambda::BenchQueue::default()),
        by_kind,
    };
    let phases = phases(&bench, args).await;
    let _ = std::fs::remove_dir_all(&state);
    if let Some(s) = lambda_store {
        s.remove().await;
    }
    let (phases, changed_records) = phases?;
    bench.sims.into_inner().stop().await;
    Ok(Measured {
        deployment,
        store: store_name,
        changed_records,
        phases,
    })
}

/// The three phases: a first import, an unchanged run, a run after changing 1%.
async fn phases(bench: &Bench, args: &BenchArgs) -> Result<(Vec<Phase>, u64)> {
    let (accounts, contacts, opportunities) = (args.accounts, args.contacts, args.opportunities);
    // Reads a first import cannot avoid: every record in pages of 2,000 per object, and for
    // deals the contact roles, Contacts and Accounts of the Opportunities (one query each).
    let read_min = pages(accounts, 2000)
        + pages(contacts, 2000)
        + if opportunities > 0 {
            pages(opportunities, 2000) + 3
        } else {
            0
        };
    // Minimum: every record read in pages of 2,000 per object, every write in Collections of
    // 200 per object, one token. Describe calls are extra.
    let (first, _) = bench
        .run("first_import", RunMode::Full, |_, reports| {
            // Per object: upserts of records new in Salesforce, and one update batch for the
            // ids written back and the changed fields.
            let writes: u64 = reports
                .iter()
                .map(|r| {
                    pages(r.counts.created.crm, 200)
                        + pages(r.counts.created.prm + r.counts.updated.crm, 200)
                })
                .sum();
            1 + read_min + writes
        })
        .await?;
    let (unchanged, _) = bench
        .run("unchanged", RunMode::Incremental, |_, reports| {
            // What the run had to read again: the echoes of its own writes; nothing to write.
            reports
                .iter()
                .map(|r| pages(r.counts.unchanged.max(1), 2000))
                .sum()
        })
        .await?;
    let changed_records = bench.sims.lock().await.ask("change").await?["changed"]
        .as_u64()
        .unwrap_or(0);
    let (changed, _) = bench
        .run("one_percent_changed", RunMode::Incremental, |_, reports| {
            let read: u64 = reports
                .iter()
                .map(|r| pages((r.counts.unchanged + r.counts.writes()).max(1), 2000))
                .sum();
            let writes: u64 = reports
                .iter()
                .map(|r| pages(r.counts.updated.crm, 200))
                .sum();
            read + writes
        })
        .await?;
    Ok((vec![first, unchanged, changed], changed_records))
}

/// Per phase: the Lambda path's Salesforce calls beside the one machine's, their ratio, and
/// the call kinds whose counts differ.
fn compare(one: &Measured, lambda: &Measured) -> Vec<Value> {
    one.phases
        .iter()
        .zip(&lambda.phases)
        .map(|(o, l)| {
            let ratio = if o.salesforce_calls == 0 {
                Value::Null
            } else {
                json!(
                    (l.salesforce_calls as f64 / o.salesforce_calls as f64 * 100.0).round() / 100.0
                )
            };
            let mut differ = Map::new();
            if let (Some(ok), Some(lk)) = (&o.salesforce_by_kind, &l.salesforce_by_kind) {
                let kinds: std::collections::BTreeSet<&String> =
                    ok.keys().chain(lk.keys()).collect();
                for k in kinds {
                    let (a, b) = (
                        ok.get(k).copied().unwrap_or(0),
                        lk.get(k).copied().unwrap_or(0),
                    );
                    if a != b {
                        differ.insert(k.clone(), json!({"one_machine": a, "lambda": b}));
                    }
                }
            }
            json!({
                "phase": o.name,
                "one_machine_salesforce_calls": o.salesforce_calls,
                "lambda_salesforce_calls": l.salesforce_calls,
                "ratio": ratio,
                "one_machine_prm_calls": o.prm_calls,
                "lambda_prm_calls": l.prm_calls,
                "one_machine_records_per_s": o.records_per_s,
                "lambda_records_per_s": l.records_per_s,
                "lambda_chunks": l.chunks,
                "salesforce_kinds_that_differ": differ,
            })
        })
        .collect()
}

fn print_table(phases: &[Phase]) {
    let lambda = phases.iter().any(|p| p.chunks.is_some());
    print!(
        "{:<22} {:>9} {:>9} {:>10} {:>9} {:>6} {:>6} {:>8} {:>9} {:>10} {:>9}",
        "phase",
        "records",
        "wall ms",
        "records/s",
        "SF calls",
        "reads",
        "writes",
        "SF min",
        "PRM calls",
        "engine MiB",
        "sims MiB"
    );
    println!(
        "{}",
        if lambda {
            format!(" {:>7}", "chunks")
        } else {
            String::new()
        }
    );
    for p in phases {
        print!(
            "{:<22} {:>9} {:>9} {:>10} {:>9} {:>6} {:>6} {:>8} {:>9} {:>10.1} {:>9.1}",
            p.name,
            p.records,
            p.wall_ms,
            p.records_per_s,
            p.salesforce_calls,
            p.salesforce_reads,
            p.salesforce_writes,
            p.salesforce_min_calls,
            p.prm_calls,
            p.peak_rss_mb,
            p.simulators_peak_rss_mb
        );
        println!(
            "{}",
            p.chunks.map(|c| format!(" {c:>7}")).unwrap_or_default()
        );
    }
}

fn print_comparison(rows: &[Value]) {
    println!("\nSalesforce calls, Lambda path / one machine:");
    println!(
        "{:<22} {:>12} {:>9} {:>7}  kinds that differ (one machine → lambda)",
        "phase", "one machine", "lambda", "ratio"
    );
    for r in rows {
        let differ: Vec<String> = r["salesforce_kinds_that_differ"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {} → {}", v["one_machine"], v["lambda"]))
                    .collect()
            })
            .unwrap_or_default();
        let n = |k: &str| r[k].to_string();
        println!(
            "{:<22} {:>12} {:>9} {:>7}  {}",
            r["phase"].as_str().unwrap_or_default(),
            n("one_machine_salesforce_calls"),
            n("lambda_salesforce_calls"),
            n("ratio"),
            differ.join(", ")
        );
    }
}

fn seed(sf: &SalesforceSim, prm: &PrmSim, args: &BenchArgs) {
    let mut accounts = Vec::with_capacity(args.accounts as usize);
    for i in 0..args.accounts {
        accounts.push(sf.insert(
            "Account",
            obj(json!({"Name": format!("Bench Account {i}"), "Website": format!("https://a{i}.example"), "Phone": format!("+1 555 {i:07}"),
                       "BillingCity": "Austin", "PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})),
        ));
    }
    for j in 0..args.contacts {
        let acc = &accounts[(j % args.accounts.max(1)) as usize];
        sf.insert(
            "Contact",
            obj(json!({"AccountId": acc, "FirstName": "Bench", "LastName": format!("Contact {j}"), "Email": format!("c{j}@bench.example")})),
        );
    }
    if args.opportunities > 0 {
        let org = prm.insert(
            Collection::Organizations,
            json!({"kind": "partner", "status": "active", "name": "Bench Partner"}),
        );
        let group = prm.insert(
            Collection::Groups,
            json!({"kind": "partner", "name": "DR", "modules": ["deal_registration"]}),
        );
        prm.insert(
            Collection::People,
            json!({"organization_id": org, "kind": "user", "status": "active", "first_name": "B", "last_name": "User", "email": "bench@partner.example", "group_ids": [group]}),
        );
        let contact = sf.insert(
            "Contact",
            obj(json!({"AccountId": accounts[0], "FirstName": "Pri", "LastName": "Mary"})),
        );
        for k in 0..args.opportunities {
            let opp = sf.insert(
                "Opportunity",
                obj(json!({"Name": format!("Bench deal {k}"), "StageName": "Prospecting", "Amount": 1000 + k, "CloseDate": "2026-12-31",
                           "AccountId": accounts[(k % args.accounts.max(1)) as usize], "PRM_Sync__c": true, "PRM_Export_Deal__c": true,
                           "PRM_Partner_Email__c": "bench@partner.example"})),
            );
            sf.insert(
                "OpportunityContactRole",
                obj(json!({"OpportunityId": opp, "ContactId": contact, "IsPrimary": true})),
            );
        }
    }
}

/// Changes 1% of the Accounts and Contacts in Salesforce and 1% of the organizations and
/// people in the PRM; returns how many records changed.
fn change_one_percent(sf: &SalesforceSim, prm: &PrmSim) -> u64 {
    let mut n = 0;
    for object in ["Account", "Contact"] {
        let records = sf.records(object);
        for r in records.iter().step_by(100) {
            sf.update(
                object,
                r["Id"].as_str().unwrap_or_default(),
                obj(json!({"Phone": "+1 555 9999"})),
            );
            n += 1;
        }
    }
    for c in [Collection::Organizations, Collection::People] {
        let records = prm.list(c);
        for r in records.iter().skip(50).step_by(100) {
            prm.update(
                c,
                r["id"].as_str().unwrap_or_default(),
                json!({"phone": "+44 20 0000 0000"}),
            );
            n += 1;
        }
    }
    n
}
