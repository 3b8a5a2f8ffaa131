//! `prmsync sync`: run the integrations now and print what they did.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prmsync_engine::{run_integration, RunMode, RunOptions, RunReport};
use serde_json::{json, Map, Value};

use crate::connect::connect;
use crate::{IntegrationArg, Target};

#[derive(Args, Debug)]
pub struct SyncArgs {
    #[command(flatten)]
    pub target: Target,
    /// Which integration to run.
    #[arg(long, value_enum, default_value = "all")]
    pub integration: IntegrationArg,
    /// Read every selected record on both sides instead of the changes since the last run
    /// ("Run Full Sync Now").
    #[arg(long)]
    pub full: bool,
    /// Work out and print the writes without making them.
    #[arg(long)]
    pub dry_run: bool,
    /// Let a run through that the mass-change breaker held (it would change or blank more
    /// than `[sync] mass_change_percent` of one side's linked records): check the
    /// `mass_change_held` entry first.
    #[arg(long)]
    pub allow_mass_change: bool,
    /// Print exactly one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: SyncArgs) -> Result<ExitCode> {
    run_as(args, None).await
}

/// Runs the integrations of `args` in `forced` mode (`prmsync reconcile`), or else full
/// with `--full`, or else as scheduled: incremental, or a reconcile when one is due
/// (`[sync] reconcile`, [`prmsync_engine::reconcile::scheduled_mode`]).
pub async fn run_as(args: SyncArgs, forced: Option<RunMode>) -> Result<ExitCode> {
    if args.target.aws {
        let mode = forced.unwrap_or(if args.full {
            RunMode::Full
        } else {
            RunMode::Incremental
        });
        return invoke_full_sync(&args, mode).await;
    }
    let integrations = super::integrations(args.integration);
    let started = Instant::now();
    let conn = connect(&args.target).await?;
    let progress = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let run_id = uuid_like();
    let mut reports = Vec::new();
    for integration in integrations {
        if let Some(bar) = &progress {
            bar.set_message(format!("syncing {integration}…"));
        }
        let mode = match forced {
            Some(mode) => mode,
            None if args.full => RunMode::Full,
            None => prmsync_engine::reconcile::scheduled_mode(&conn.ctx, integration)
                .await
                .unwrap_or(RunMode::Incremental),
        };
        let options = RunOptions {
            mode,
            dry_run: args.dry_run,
            run_id: Some(run_id.clone()),
            allow_mass_change: args.allow_mass_change,
        };
        reports.push(run_integration(&conn.ctx, integration, options).await);
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    conn.save()?;
    // A dry run's planned writes are printed with their values as the mapping's `[log]
    // values` says (masked by default).
    let values = conn.ctx.mapping.log.values();
    for r in &mut reports {
        r.planned = r.planned.iter().map(|w| w.shown(values)).collect();
    }
    let summary = summary(
        &run_id,
        args.dry_run,
        &reports,
        &conn,
        started.elapsed().as_millis() as u64,
    );
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        crate::output::print_sync(&summary, &reports);
    }
    Ok(crate::exit::exit_code(&reports))
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("run-{:x}-{:x}", nanos, std::process::id())
}

/// The `--json` summary: one object for the whole command.
pub fn summary(
    run_id: &str,
    dry_run: bool,
    reports: &[RunReport],
    conn: &crate::connect::Connection,
    duration_ms: u64,
) -> Value {
    let mode = if reports.iter().any(|r| r.mode == RunMode::Reconcile) {
        "reconcile"
    } else if reports.iter().any(|r| r.mode == RunMode::Full) {
        "full"
    } else {
        "incremental"
    };
    let mut integrations = Map::new();
    for r in reports {
        let c = &r.counts;
        let mut entry = json!({
            "status": r.status,
            "created": {"crm": c.created.crm, "prm": c.created.prm},
            "updated": {"crm": c.updated.crm, "prm": c.updated.prm},
            "deleted_marked": c.deleted_marked,
            "disconnected": c.disconnected,
            "conflicts": c.conflicts,
            "unchanged": c.unchanged,
            "errors": c.errors,
        });
        if let Some(m) = &r.message {
            entry["message"] = json!(m);
        }
        entry["mode"] = json!(r.mode);
        if r.mode == RunMode::Reconcile {
            // What the incremental runs had missed (or, dry, what would be repaired).
            entry["drift"] = json!(c.drift);
        }
        if dry_run {
            entry["planned"] = json!(r.planned);
        }
        integrations.insert(r.integration.as_str().into(), entry);
    }
    json!({
        "run_id": run_id,
        "mode": mode,
        "dry_run": dry_run,
        "integrations": integrations,
        "api_calls": {"salesforce": conn.ctx.crm.calls(), "prm": conn.ctx.prm.calls()},
        "duration_ms": duration_ms,
    })
}

/// `prmsync sync-record`: sync one record now and say what happened to it.
pub async fn sync_record(
    target: Target,
    record: String,
    dry_run: bool,
    as_json: bool,
) -> Result<ExitCode> {
    let r = super::links::parse_ref(&record)?;
    if target.aws {
        return queue_record(&target, &r, dry_run, as_json).await;
    }
    let conn = connect(&target).await?;
    let mut report = prmsync_engine::sync_record(&conn.ctx, &r, dry_run).await;
    conn.save()?;
    let values = conn.ctx.mapping.log.values();
    report.planned = report.planned.iter().map(|w| w.shown(values)).collect();
    let entries = {
        conn.ctx
            .store
            .entries(&prmsync_engine::LogFilter {
                run_id: Some(report.run_id.clone()),
                ..Default::default()
            })
            .await?
    };
    if as_json {
        let lines: Vec<Value> = entries.iter().map(super::log::json_line).collect();
        println!(
            "{}",
            json!({"record": record, "integration": report.integration, "status": report.status,
                   "message": report.message, "counts": report.counts, "planned": report.planned, "log": lines})
        );
    } else {
        println!("{record}: {} ({})", report.status, report.integration);
        if let Some(m) = &report.message {
            println!("  {m}");
        }
        for e in entries.iter().rev() {
            println!(
                "  {:<7} {:<26} {}",
                e.level.as_str(),
                e.code.as_str(),
                e.message
            );
            if e.level != prmsync_mapping::Level::Info {
                println!("          fix: {}", e.fix);
            }
        }
        for w in &report.planned {
            println!(
                "  would {} {} {}: {}",
                w.action,
                w.side,
                w.object,
                serde_json::to_string(&w.fields).unwrap_or_default()
            );
        }
        let c = &report.counts;
        if entries.is_empty()
            && report.planned.is_empty()
            && c.writes() == 0
            && report.status == prmsync_engine::RunStatus::Succeeded
        {
            println!("  already in step: nothing to do");
        }
    }
    Ok(crate::exit::exit_code(std::slice::from_ref(&report)))
}

/// `prmsync sync --aws`: "Run Full Sync Now" on the deployment — invokes the function
/// that owns each integration asked for and prints its answer: full-sync (named by
/// `PRMSYNC_FULL_SYNC_FUNCTION`) for organizations and people, deal-import (named by
/// `PRMSYNC_DEAL_IMPORT_FUNCTION`) for deals; both are stack outputs.
#[cfg(not(feature = "aws"))]
async fn invoke_full_sync(_args: &SyncArgs, _mode: RunMode) -> Result<ExitCode> {
    anyhow::bail!("{}", crate::connect::NO_AWS)
}

#[cfg(feature = "aws")]
async fn invoke_full_sync(args: &SyncArgs, mode: RunMode) -> Result<ExitCode> {
    use prmsync_aws::deployment::{Deployment, RunAsk};
    let deployment = Deployment::from_env(&crate::connect::aws_config().await);
    let ask = RunAsk {
        mode,
        dry_run: args.dry_run,
        allow_mass_change: args.allow_mass_change,
        run_id: None,
    };
    let integration = match args.integration {
        crate::IntegrationArg::All => None,
        crate::IntegrationArg::Organizations => Some(prmsync_mapping::Integration::Organizations),
        crate::IntegrationArg::People => Some(prmsync_mapping::Integration::People),
        crate::IntegrationArg::Deals => Some(prmsync_mapping::Integration::Deals),
    };
    for (_, answer) in deployment.run(integration, &ask).await? {
        println!("{answer}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `prmsync sync-record --aws`: puts the record on the deployment's work queue
/// (`PRMSYNC_QUEUE_URL`); a worker syncs it within seconds, and its outcome is in the
/// Integration Log under the run id printed.
#[cfg(not(feature = "aws"))]
async fn queue_record(
    _target: &Target,
    _record: &prmsync_engine::RecordRef,
    _dry_run: bool,
    _as_json: bool,
) -> Result<ExitCode> {
    anyhow::bail!("{}", crate::connect::NO_AWS)
}

#[cfg(feature = "aws")]
async fn queue_record(
    target: &Target,
    record: &prmsync_engine::RecordRef,
    dry_run: bool,
    as_json: bool,
) -> Result<ExitCode> {
    if target.sandbox || target.config.is_some() {
        anyhow::bail!("--aws queues the record on the deployment; drop --sandbox and --config");
    }
    if dry_run {
        anyhow::bail!("--dry-run works out the writes on this machine, which --aws does not: drop --aws (and give --config) to see them, or drop --dry-run to queue the record");
    }
    let deployment =
        prmsync_aws::deployment::Deployment::from_env(&crate::connect::aws_config().await);
    let run_id = deployment.queue_record(record).await?;
    if as_json {
        println!(
            "{}",
            json!({"record": record.text(), "queued": true, "run_id": run_id})
        );
    } else {
        println!(
            "{}: queued for the workers (run {run_id}); `prmsync log --aws --run {run_id}` shows what they did",
            record.text()
        );
    }
    Ok(ExitCode::SUCCESS)
}
