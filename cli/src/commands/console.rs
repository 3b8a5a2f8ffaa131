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
    if args.target.aws {
        let console = aws_console(&args, token).await?;
        serve(console, args.listen).await?;
        return Ok(ExitCode::SUCCESS);
    }
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
    serve(console, args.listen).await?;
    connection.save()?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(console: Console, listen: SocketAddr) -> Result<()> {
    let bound = console.bind(listen).await?;
    eprintln!(
        "prmsync console on http://{}/ (Ctrl-C stops it)",
        bound.local_addr()
    );
    bound
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("the console stopped")
}

/// The console over the AWS deployment: its DynamoDB tables, Run Now through its
/// functions and Sync Now through its work queue, with the operator's own credentials.
#[cfg(feature = "aws")]
async fn aws_console(args: &ConsoleArgs, token: Option<String>) -> Result<Console> {
    use prmsync_aws::deployment::Deployment;
    use prmsync_console::deployment::DeploymentRunner;

    let store = crate::connect::open_store(&args.target).await?;
    let mapping = super::mapping::deployed_or_default().await?;
    let aws = crate::connect::aws_config().await;
    let runner = DeploymentRunner::new(Deployment::from_env(&aws), store.clone());
    Ok(Console::new(
        store,
        Arc::new(mapping),
        Arc::new(runner),
        "AWS",
        token,
    ))
}

#[cfg(not(feature = "aws"))]
async fn aws_console(_args: &ConsoleArgs, _token: Option<String>) -> Result<Console> {
    anyhow::bail!("{}", crate::connect::NO_AWS)
}
