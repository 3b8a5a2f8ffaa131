//! The Sync Manager: `prmsync status`, `pause`, `resume`.

use std::process::ExitCode;

use anyhow::Result;
use prmsync_engine::run::{CRM_SIDE, PRM_SIDE};
use prmsync_engine::store::LogFilter;
use prmsync_mapping::{Integration, Level};
use serde_json::{json, Value};

use crate::connect::{load_mapping, open_store};
use crate::{IntegrationArg, Target};

pub async fn run(target: Target, as_json: bool) -> Result<ExitCode> {
    let store = open_store(&target).await?;
    let mapping = load_mapping(&target)?;
    let mut rows = Vec::new();
    for integration in Integration::ALL {
        let paused = store.is_paused(integration).await?;
        let last = store.last_run(integration).await?;
        let unacked = store
            .entries(&LogFilter {
                integration: Some(integration),
                min_level: Some(Level::Error),
                unacknowledged: true,
                ..Default::default()
            })
            .await?
            .len();
        let links = store.count_links(integration.object()).await?;
        rows.push(json!({
            "integration": integration.as_str(),
            "state": if paused { "paused" } else { "active" },
            "schedule": mapping.sync.schedule,
            "last_run": last.map(|r| json!({
                "run_id": r.run_id, "started_at": r.started_at, "finished_at": r.finished_at,
                "mode": r.mode, "status": r.status, "counts": r.counts,
            })),
            "cursor": {
                "crm": store.cursor(integration, CRM_SIDE).await?,
                "prm": store.cursor(integration, PRM_SIDE).await?,
            },
            "unacknowledged_errors": unacked,
            "links": links,
        }));
    }
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
    println!("schedule: {}", mapping.sync.schedule);
    Ok(ExitCode::SUCCESS)
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
