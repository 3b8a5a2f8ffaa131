//! `prmsync sandbox serve|reset`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use prmsync_simulators::sandbox::{self, Sandbox};

#[derive(Subcommand, Debug)]
pub enum SandboxCommand {
    /// Serve the sandbox's Salesforce and PRM on loopback until Ctrl-C.
    Serve {
        /// Port of the Salesforce simulator (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        salesforce_port: u16,
        /// Port of the PRM simulator (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        prm_port: u16,
        #[arg(
            long,
            value_name = "DIR",
            default_value = ".prmsync",
            env = "PRMSYNC_STATE_DIR"
        )]
        state_dir: PathBuf,
    },
    /// Delete the sandbox's data and state: the next sandbox run starts from the sample data.
    Reset {
        #[arg(
            long,
            value_name = "DIR",
            default_value = ".prmsync",
            env = "PRMSYNC_STATE_DIR"
        )]
        state_dir: PathBuf,
    },
}

pub async fn run(command: SandboxCommand) -> Result<ExitCode> {
    match command {
        SandboxCommand::Serve {
            salesforce_port,
            prm_port,
            state_dir,
        } => {
            let data = state_dir.join("sandbox").join("data");
            let sb = Sandbox::load_or_seed(&data)
                .with_context(|| format!("loading {}", data.display()))?;
            let sf = sb
                .salesforce
                .start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, salesforce_port)))
                .await
                .with_context(|| format!("starting the Salesforce simulator on port {salesforce_port}: is the port free?"))?;
            let prm = sb
                .prm
                .start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, prm_port)))
                .await
                .with_context(|| {
                    format!("starting the PRM simulator on port {prm_port}: is the port free?")
                })?;
            println!(
                "Salesforce simulator: {sf}  (client id {}, client secret {})",
                sandbox::SF_CLIENT_ID,
                sandbox::SF_CLIENT_SECRET
            );
            println!(
                "PRM simulator:        {prm}  (API token {})",
                sandbox::PRM_TOKEN
            );
            println!("data kept in {}; Ctrl-C stops and saves", data.display());
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            sb.save(&data)?;
            println!("saved");
            Ok(ExitCode::SUCCESS)
        }
        SandboxCommand::Reset { state_dir } => {
            let dir = state_dir.join("sandbox");
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
                println!("sandbox reset: {} removed; the next `prmsync sync --sandbox` starts from the sample data", dir.display());
            } else {
                println!("nothing to reset: {} does not exist", dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
