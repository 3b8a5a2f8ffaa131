//! `prmsync reconcile`: a reconcile now, as `sync` runs one when `[sync] reconcile` says it
//! is due: both sides of every linked record are read again, what drifted is repaired and
//! the drift is reported per object.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use prmsync_engine::RunMode;

use super::sync::SyncArgs;
use crate::{IntegrationArg, Target};

#[derive(Args, Debug)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub target: Target,
    /// Which integration to reconcile.
    #[arg(long, value_enum, default_value = "all")]
    pub integration: IntegrationArg,
    /// Count the drift and print the repairs without making them.
    #[arg(long)]
    pub dry_run: bool,
    /// Let through a reconcile the mass-change breaker held (its repairs would change more
    /// than `[sync] mass_change_percent` of one side's linked records).
    #[arg(long)]
    pub allow_mass_change: bool,
    /// Print exactly one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ReconcileArgs) -> Result<ExitCode> {
    let sync = SyncArgs {
        target: args.target,
        integration: args.integration,
        full: false,
        dry_run: args.dry_run,
        allow_mass_change: args.allow_mass_change,
        json: args.json,
    };
    super::sync::run_as(sync, Some(RunMode::Reconcile)).await
}
