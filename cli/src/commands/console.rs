//! `prmsync console`: the Sync Manager and the Integration Log as web pages, over the same
//! store and engine as the other commands.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use prmsync_console::runs::EngineRunner;
use prmsync_console::{Console, TOKEN_ENV};

use crate::connect::connect;
use crate::Target;

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(flatten)]
    pub target: Target,
    /// Where to listen. Anything but a loopback address needs PRMSYNC_CONSOLE_TOKEN.
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

pub async fn run(args: ConsoleArgs) -> Result<ExitCode> {
    let token = std::env::var(TOKEN_ENV).ok();
    // refused before anything is opened
    prmsync_console::check_listen(args.listen, token.as_deref())?;
    let connection = connect(&args.target).await?;
    let source = if args.target.sandbox {
        "sandbox".to_string()
    } else {
        args.target
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "environment".into())
    };
    let ctx = connection.ctx.clone();
    let console = Console::new(
        ctx.store.clone(),
        ctx.mapping.clone(),
        Arc::new(EngineRunner(ctx)),
        &source,
        token,
    );
    let bound = console.bind(args.listen).await?;
    eprintln!(
        "prmsync console on http://{}/ (Ctrl-C stops it)",
        bound.local_addr()
    );
    bound
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the console stopped")?;
    connection.save()?;
    Ok(ExitCode::SUCCESS)
}
