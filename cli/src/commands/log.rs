//! `prmsync log`: the Integration Log, filtered, as a table or JSON lines; `log ack`.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use chrono::Utc;
use clap::{Args, Subcommand};
use prmsync_engine::store::{LogEntry, LogFilter};
use prmsync_mapping::{Integration, Level, LogCode};
use serde_json::json;

use crate::connect::open_store;
use crate::output::cut;
use crate::Target;

/// Entries older than this are pruned.
pub const RETENTION_DAYS: i64 = 90;

#[derive(Args, Debug)]
pub struct LogArgs {
    #[command(subcommand)]
    pub command: Option<LogCommand>,
    #[command(flatten)]
    pub target: Target,
    /// organizations, people or deals
    #[arg(long)]
    pub integration: Option<String>,
    /// Lowest level shown: info, warning or error.
    #[arg(long)]
    pub level: Option<String>,
    /// Only this code (e.g. ambiguous_match).
    #[arg(long)]
    pub code: Option<String>,
    /// Only this run.
    #[arg(long)]
    pub run: Option<String>,
    /// Only entries about this Salesforce Id or PRM id.
    #[arg(long)]
    pub record: Option<String>,
    /// Only entries newer than this (30m, 2h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Only errors and warnings not acknowledged yet.
    #[arg(long)]
    pub unacknowledged: bool,
    /// At most this many entries (newest first).
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Acknowledge errors so they leave `--unacknowledged` and the status count.
    Ack {
        /// Entry ids to acknowledge.
        ids: Vec<String>,
        /// Acknowledge every error and warning.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: Target,
    },
}

pub async fn run(args: LogArgs) -> Result<ExitCode> {
    if let Some(LogCommand::Ack { ids, all, target }) = args.command {
        let store = open_store(&target).await?;
        let n = match (all, ids.is_empty()) {
            (true, _) => store.acknowledge(None).await?,
            (false, false) => store.acknowledge(Some(&ids)).await?,
            (false, true) => {
                bail!("give the entry ids to acknowledge (from `prmsync log --json`), or --all")
            }
        };
        println!("{n} entries acknowledged");
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(&args.target).await?;
    store
        .prune(Utc::now() - chrono::Duration::days(RETENTION_DAYS))
        .await?;
    let filter = LogFilter {
        integration: args
            .integration
            .as_deref()
            .map(|i| {
                Integration::parse(i).ok_or_else(|| {
                    anyhow!("unknown integration `{i}`: use organizations, people or deals")
                })
            })
            .transpose()?,
        min_level: args
            .level
            .as_deref()
            .map(|l| {
                Level::parse(l)
                    .ok_or_else(|| anyhow!("unknown level `{l}`: use info, warning or error"))
            })
            .transpose()?,
        code: args
            .code
            .as_deref()
            .map(|c| {
                LogCode::parse(c).ok_or_else(|| {
                    anyhow!("unknown code `{c}`: see docs/integration-log.md for the codes")
                })
            })
            .transpose()?,
        run_id: args.run.clone(),
        record_id: args.record.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| {
                prmsync_mapping::duration::parse(s)
                    .map(|d| Utc::now() - d)
                    .map_err(|e| anyhow!(e))
            })
            .transpose()?,
        unacknowledged: args.unacknowledged,
        limit: Some(args.limit),
    };
    let entries = store.entries(&filter).await?;
    if args.json {
        for e in &entries {
            println!("{}", json_line(e));
        }
    } else {
        print_table(&entries);
    }
    Ok(ExitCode::SUCCESS)
}

/// One entry as the JSON line `log --json` prints.
pub fn json_line(e: &LogEntry) -> serde_json::Value {
    json!({
        "id": e.id, "time": e.time, "run_id": e.run_id, "integration": e.integration,
        "level": e.level, "code": e.code, "object": e.object, "crm_id": e.crm_id,
        "prm_id": e.prm_id, "link": e.link, "message": e.message, "fix": e.fix,
        "details": e.details, "acknowledged": e.acknowledged,
    })
}

fn print_table(entries: &[LogEntry]) {
    if entries.is_empty() {
        println!("no entries match");
        return;
    }
    let wide = std::io::stdout().is_terminal();
    for e in entries {
        println!(
            "{} {:<7} {:<13} {:<24} {}",
            e.time.format("%Y-%m-%d %H:%M:%S"),
            e.level.as_str(),
            e.integration.as_str(),
            e.code.as_str(),
            if wide {
                cut(&e.message, 120)
            } else {
                e.message.clone()
            }
        );
        if e.level != Level::Info {
            if let Some(link) = &e.link {
                println!("    record: {link}");
            }
            println!("    fix: {}", e.fix);
            println!(
                "    id: {}{}",
                e.id,
                if e.acknowledged {
                    " (acknowledged)"
                } else {
                    ""
                }
            );
        }
    }
}
