//! `prmsync`: the operator CLI — run a sync, the Sync Manager, the Integration Log and the
//! sandbox.

/// The allocator of the CLI and its simulators: a sync allocates and frees many small
/// strings and maps per record, where mimalloc spends a fraction of glibc malloc's time
/// (`docs/benchmarks.md`, "Large imports").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod connect;
mod exit;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "prmsync",
    version,
    about = "Keeps a partner portal (PRM) and Salesforce in step"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where to connect and keep state; shared by every command that touches the systems.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// Use the sandbox: a simulated Salesforce org and PRM with sample data, kept under
    /// the state directory.
    #[arg(long)]
    pub sandbox: bool,
    /// Connection file (TOML) for a real Salesforce org and PRM; secrets come from the
    /// environment.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Use the AWS deployment's tables (and, for `sync`, invoke its full-sync function).
    #[arg(long)]
    pub aws: bool,
    /// Where links, cursors, runs and the Integration Log are kept.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".prmsync",
        env = "PRMSYNC_STATE_DIR"
    )]
    pub state_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum IntegrationArg {
    Organizations,
    People,
    Deals,
    All,
}

#[derive(Subcommand)]
enum Command {
    /// Run a sync now (incremental by default; the first run of an integration is full).
    Sync(commands::sync::SyncArgs),
    /// Keep syncing: an incremental run every interval, and (with --webhook-listen) each
    /// record the PRM notifies synced at once, until Ctrl-C.
    Watch(commands::watch::WatchArgs),
    /// Reconcile now: re-read both sides of every linked record, repair what drifted and
    /// report the drift per object (`[sync] reconcile` runs one daily on its own).
    Reconcile(commands::reconcile::ReconcileArgs),
    /// The Sync Manager: each integration's state, last run, cursor and open errors.
    Status {
        #[command(flatten)]
        target: Target,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Pause an integration: neither the schedule nor `sync` runs it until `resume`.
    Pause {
        #[arg(value_enum)]
        integration: IntegrationArg,
        #[command(flatten)]
        target: Target,
    },
    /// Resume a paused integration.
    Resume {
        #[arg(value_enum)]
        integration: IntegrationArg,
        #[command(flatten)]
        target: Target,
    },
    /// Sync one record now: a Salesforce Id or `prm:<organization|person|deal>:<id>`.
    SyncRecord {
        record: String,
        #[command(flatten)]
        target: Target,
        /// Work out and print the writes without making them.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Remove a link (a PRM reference `prm:<organization|person|deal>:<id>` or a Salesforce Id).
    Unlink {
        record: String,
        #[command(flatten)]
        target: Target,
    },
    /// Link a PRM record to a Salesforce record by hand; the next sync merges them.
    Relink {
        /// `prm:<organization|person|deal>:<id>`
        prm: String,
        /// The Salesforce Id.
        salesforce_id: String,
        #[command(flatten)]
        target: Target,
    },
    /// The Integration Log: what happened, what failed and how to fix it.
    Log(commands::log::LogArgs),
    /// The Sync Manager and the Integration Log as web pages (loopback by default).
    Console(commands::console::ConsoleArgs),
    /// The sandbox: simulated Salesforce and PRM with sample data.
    Sandbox {
        #[command(subcommand)]
        command: commands::sandbox::SandboxCommand,
    },
    /// Measure a first import, an unchanged run and a 1% change against the simulators.
    Bench(commands::bench::BenchArgs),
    /// The mapping file: print the built-in one or check one.
    Mapping {
        #[command(subcommand)]
        command: commands::mapping::MappingCommand,
    },
}

/// Output piped into `head` or `less` ends quietly when the reader goes away, as with any
/// Unix tool, instead of panicking on a broken pipe.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to its default before any thread starts.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Sync(args) => commands::sync::run(args).await,
            Command::Watch(args) => commands::watch::run(args).await,
            Command::Reconcile(args) => commands::reconcile::run(args).await,
            Command::Status { target, json } => commands::status::run(target, json).await,
            Command::Pause {
                integration,
                target,
            } => commands::status::pause(target, integration, true).await,
            Command::Resume {
                integration,
                target,
            } => commands::status::pause(target, integration, false).await,
            Command::Log(args) => commands::log::run(args).await,
            Command::Console(args) => commands::console::run(args).await,
            Command::SyncRecord {
                record,
                target,
                dry_run,
                json,
            } => commands::sync::sync_record(target, record, dry_run, json).await,
            Command::Unlink { record, target } => commands::links::unlink(target, record).await,
            Command::Relink {
                prm,
                salesforce_id,
                target,
            } => commands::links::relink(target, prm, salesforce_id).await,
            Command::Sandbox { command } => commands::sandbox::run(command).await,
            Command::Mapping { command } => commands::mapping::run(command).await,
            Command::Bench(args) => commands::bench::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}
