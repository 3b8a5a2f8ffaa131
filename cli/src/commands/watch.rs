//! `prmsync watch`: an incremental run of each integration every interval, and the PRM's
//! notified records synced as they come (`--webhook-listen`), until Ctrl-C or SIGTERM. The
//! loop and its decisions are `prmsync_engine::watch`; the receiver is
//! `prmsync_prm::receiver`, with the same answers as the prm-webhook function.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use prmsync_engine::watch::{parse_interval, quiet_calls_per_day, watch, WatchOptions};
use prmsync_prm::notification::WebhookSecrets;
use prmsync_prm::receiver::{self, Receiver};
use tokio::sync::{mpsc, watch as signal_watch};

use crate::connect::connect;
use crate::{IntegrationArg, Target};

/// Records notified and not yet synced, at most: beyond, the PRM is answered 503 and
/// retries later.
const NOTIFIED_BACKLOG: usize = 1_000;

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub target: Target,
    /// Time between the starts of two cycles: 10s at least; each quiet cycle costs one
    /// query per integration on each side.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub interval: String,
    /// Which integrations each cycle runs.
    #[arg(long, value_enum, default_value = "all")]
    pub integration: IntegrationArg,
    /// Receive the PRM's change notifications on this address (e.g. 127.0.0.1:8787) and
    /// sync each notified record at once; off when absent. Needs PRM_WEBHOOK_SECRET (the
    /// sandbox has its own).
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub webhook_listen: Option<SocketAddr>,
}

/// Resolves once Ctrl-C (SIGINT) or SIGTERM arrives.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run(args: WatchArgs) -> Result<ExitCode> {
    let interval = parse_interval(&args.interval).map_err(anyhow::Error::msg)?;
    if args.target.aws {
        bail!("watch runs the sync on this machine; on AWS the schedule and the prm-webhook function do this: drop --aws and give --sandbox or --config");
    }
    let integrations = super::integrations(args.integration);
    let conn = connect(&args.target).await?;
    // Listening for the stop signal before anything starts, so an early one is not lost.
    let (stop_tx, stop_rx) = signal_watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: signal_watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let (records_tx, records_rx) = mpsc::channel(NOTIFIED_BACKLOG);
    let mut server = None;
    let listening = match args.webhook_listen {
        None => "no webhook (give --webhook-listen 127.0.0.1:8787 to sync PRM changes at once)"
            .to_string(),
        Some(addr) => {
            let Some(secrets) = conn.webhook_secret.as_deref().and_then(|s| {
                let previous = std::env::var("PRM_WEBHOOK_SECRET_PREVIOUS").ok();
                WebhookSecrets::new(s, previous.as_deref())
            }) else {
                bail!("--webhook-listen needs the secret the PRM signs its notifications with: set PRM_WEBHOOK_SECRET, or drop --webhook-listen to sync every --interval only");
            };
            let (listener, local) = receiver::bind(addr).await?;
            let receiver = Receiver {
                secrets: Some(secrets),
                deliveries: conn.ctx.store.clone(),
                records: records_tx,
                log: Some(std::sync::Arc::new(|line| eprintln!("{line}"))),
            };
            server = Some(tokio::spawn(receiver::serve(
                listener,
                receiver,
                stopped(stop_rx.clone()),
            )));
            format!("PRM notifications on http://{local}/")
        }
    };
    let objects = integrations.len() as u64;
    eprintln!(
        "prmsync watch: {} every {} s; a quiet cycle costs {objects} Salesforce and {objects} PRM calls ({} of each a day); {listening}; Ctrl-C stops",
        integrations
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        interval.as_secs(),
        quiet_calls_per_day(objects, interval),
    );
    let options = WatchOptions {
        interval,
        integrations,
    };
    let summary = watch(&conn.ctx, &options, records_rx, stopped(stop_rx), |event| {
        eprintln!("{}", event.line);
        if event.wrote {
            // the sandbox keeps what each cycle wrote, in case the process is killed
            if let Err(e) = conn.save() {
                eprintln!("warning: {e:#}");
            }
        }
    })
    .await;
    if let Some(server) = server {
        let _ = server.await;
    }
    conn.save()?;
    let count = |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "prmsync watch stopped: {}, {}",
        count(summary.cycles, "cycle"),
        count(summary.records, "notified record")
    );
    Ok(ExitCode::SUCCESS)
}
