//! The Sync Manager: `prmsync status`, `pause`, `resume`.
//!
//! Status shows, per integration, its last recorded run and, while a run is unfinished
//! (a planner checkpoint is stored), where it stands: planning still under way, or every
//! chunk queued and the workers draining them.

use std::process::ExitCode;

use anyhow::Result;
use prmsync_mapping::Integration;
use serde_json::{json, Value};

use crate::connect::{load_mapping, open_store};
use crate::{IntegrationArg, Target};

pub async fn run(target: Target, as_json: bool) -> Result<ExitCode> {
    let store = open_store(&target).await?;
    let mapping = load_mapping(&target)?;
    let rows = prmsync_console::status::rows(store.as_ref(), &mapping).await?;
    if as_json {
        println!("{}", json!({"integrations": rows}));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<14} {:<7} {:<21} {:<12} {:<10} {:>8} {:>7} {:>7}  cursor (Salesforce)",
        "integration", "state", "last run", "mode", "status", "links", "errors", "unacked"
    );
    for r in &rows {
        let last = &r["last_run"];
        let time = last["started_at"]
            .as_str()
            .map(|t| t.chars().take(19).collect::<String>())
            .unwrap_or_else(|| "never".into());
        let linked: u64 = r["links"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        println!(
            "{:<14} {:<7} {:<21} {:<12} {:<10} {:>8} {:>7} {:>7}  {}",
            r["integration"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            time.replace('T', " "),
            last["mode"].as_str().unwrap_or("-"),
            last["status"].as_str().unwrap_or("-"),
            linked,
            last["counts"]["errors"].as_u64().unwrap_or(0),
            r["unacknowledged_errors"],
            r["cursor"]["crm"].as_str().unwrap_or("-"),
        );
    }
    let unfinished: Vec<&Value> = rows
        .iter()
        .filter(|r| !r["run_in_progress"].is_null())
        .collect();
    if !unfinished.is_empty() {
        println!("runs in progress:");
        for r in unfinished {
            println!(
                "  {:<14} {}",
                r["integration"].as_str().unwrap_or(""),
                progress_line(&r["run_in_progress"])
            );
        }
    }
    println!(
        "schedule: {}; reconcile: {}",
        mapping.sync.schedule, mapping.sync.reconcile
    );
    Ok(ExitCode::SUCCESS)
}

/// One line of a run in progress: its chunks done of queued once planned, otherwise that
/// planning is under way.
fn progress_line(p: &Value) -> String {
    let started = p["started_at"]
        .as_str()
        .map(|t| t.chars().take(19).collect::<String>().replace('T', " "))
        .unwrap_or_default();
    let run_id = p["run_id"].as_str().unwrap_or("");
    let queued = p["chunks_queued"].as_u64().unwrap_or(0);
    let records = p["records_queued"].as_u64().unwrap_or(0);
    match p["chunks_done"].as_u64() {
        Some(done) => format!(
            "run {run_id} ({} mode, started {started} UTC): {done} of {queued} chunks done, {records} records queued",
            p["mode"].as_str().unwrap_or("-")
        ),
        None => format!(
            "run {run_id} ({} mode, started {started} UTC): planning under way, {queued} chunks and {records} records queued so far ({} invocations)",
            p["mode"].as_str().unwrap_or("-"),
            p["invocations"].as_u64().unwrap_or(0)
        ),
    }
}

pub async fn pause(target: Target, integration: IntegrationArg, paused: bool) -> Result<ExitCode> {
    let store = open_store(&target).await?;
    let list = match integration {
        IntegrationArg::All => Integration::ALL.to_vec(),
        other => super::integrations(other),
    };
    for i in list {
        store.set_paused(i, paused).await?;
        if paused {
            println!("{i} paused: neither the schedule nor `prmsync sync` runs it until `prmsync resume {i}`");
        } else {
            println!("{i} resumed: it runs on the next schedule or `prmsync sync`");
        }
    }
    Ok(ExitCode::SUCCESS)
}
