//! `prmsync mapping default|check`.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use prmsync_engine::check::mapping_problems;
use prmsync_engine::objects::ObjectSpec;
use prmsync_engine::Crm;
use prmsync_mapping::config::DEFAULT_MAPPING;
use prmsync_mapping::{MappingConfig, ObjectKind};

use crate::Target;

#[derive(Subcommand, Debug)]
pub enum MappingCommand {
    /// Print the built-in mapping file, to copy and edit.
    Default,
    /// Check a mapping file and say what is wrong with it; with --config or --sandbox, also
    /// against the Salesforce org's describe (fields, picklist values, and the PRM Id fields
    /// being External ID, Unique and case-sensitive), as the first full run does.
    Check {
        /// The mapping file (with --config, the one the connection file names when absent).
        #[arg(
            required_unless_present_any = ["aws", "location", "config", "sandbox"],
            conflicts_with_all = ["aws", "location"]
        )]
        file: Option<PathBuf>,
        /// Also check the mapping against the Salesforce org of this connection file (and
        /// the SALESFORCE_* environment variables); no PRM settings are needed.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["aws", "location", "sandbox"])]
        config: Option<PathBuf>,
        /// Also check the mapping against the sandbox's simulated Salesforce org.
        #[arg(long, conflicts_with_all = ["aws", "location"])]
        sandbox: bool,
        /// Where the sandbox keeps its data (with --sandbox).
        #[arg(
            long,
            value_name = "DIR",
            default_value = ".prmsync",
            env = "PRMSYNC_STATE_DIR"
        )]
        state_dir: PathBuf,
        /// Check the AWS deployment's mapping file: the S3 object in PRMSYNC_MAPPING_FILE
        /// (the stack output MappingLocation), or the one given with --location.
        #[arg(long)]
        aws: bool,
        /// The deployment's mapping file, s3://BUCKET/KEY, instead of PRMSYNC_MAPPING_FILE
        /// (implies --aws).
        #[arg(long, value_name = "S3_URI")]
        location: Option<String>,
    },
}

pub async fn run(command: MappingCommand) -> Result<ExitCode> {
    match command {
        MappingCommand::Default => {
            print!("{DEFAULT_MAPPING}");
            Ok(ExitCode::SUCCESS)
        }
        MappingCommand::Check {
            file,
            config,
            sandbox,
            state_dir,
            location,
            ..
        } => {
            if config.is_some() || sandbox {
                let target = Target {
                    sandbox,
                    config,
                    aws: false,
                    state_dir,
                };
                return check_against_salesforce(&target, file).await;
            }
            let (origin, m) = match file {
                Some(file) => (
                    file.display().to_string(),
                    crate::connect::read_mapping(&file)?,
                ),
                None => deployed(location).await?,
            };
            report(&origin, &m);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Checks the mapping (`file`, else the connection's) against the describe of the
/// target's Salesforce org: every problem a first full run would stop on, by object.
async fn check_against_salesforce(target: &Target, file: Option<PathBuf>) -> Result<ExitCode> {
    let (origin, m) = match &file {
        Some(file) => (
            file.display().to_string(),
            crate::connect::read_mapping(file)?,
        ),
        None => match &target.config {
            Some(config) => (
                format!("the mapping of {}", config.display()),
                crate::connect::load_mapping(target)?,
            ),
            None => ("the built-in mapping".to_string(), MappingConfig::default()),
        },
    };
    report(&origin, &m);
    let (crm, org): (Arc<dyn Crm>, &str) = match &target.config {
        Some(config) => (
            Arc::new(crate::connect::salesforce_client(config, &m)?),
            "Salesforce",
        ),
        None => (
            crate::connect::connect(target).await?.ctx.crm,
            "the sandbox's Salesforce",
        ),
    };
    let mut problems = 0;
    for kind in [
        ObjectKind::Organization,
        ObjectKind::Person,
        ObjectKind::Deal,
    ] {
        let spec = ObjectSpec::new(kind, &m);
        let object = spec.crm_object();
        let described = crm
            .describe(object)
            .await
            .map_err(|e| anyhow!("describing {object} in {org}: {e}"))?;
        let found = mapping_problems(&spec, &described);
        if found.is_empty() {
            println!("{object}: fits {org}");
        } else {
            println!(
                "{object}: the mapping does not fit {org}:\n  - {}",
                found.join("\n  - ")
            );
            problems += found.len();
        }
    }
    if problems == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{problems} problem(s) to fix in Salesforce or in the mapping file: a full run stops on them"
        );
        Ok(ExitCode::from(crate::exit::SETUP))
    }
}

/// What a valid mapping file gets, wherever it was read from.
fn report(origin: &str, m: &MappingConfig) {
    println!(
        "{origin}: valid — {} organization fields, {} person fields",
        m.organizations.fields.len(),
        m.people.fields.len()
    );
}

/// The mapping the deployment's functions use: from `PRMSYNC_MAPPING_FILE` when it names
/// S3, else the built-in one (a stack deployed without MappingLocation).
#[cfg(feature = "aws")]
pub async fn deployed_or_default() -> Result<MappingConfig> {
    use prmsync_aws::mapping_source::{MappingLocation, MAPPING_ENV};
    let given = std::env::var(MAPPING_ENV).unwrap_or_default();
    match MappingLocation::parse(&given)? {
        Some(MappingLocation::S3 { .. }) => Ok(deployed(Some(given)).await?.1),
        _ => Ok(MappingConfig::default()),
    }
}

#[cfg(not(feature = "aws"))]
async fn deployed(_location: Option<String>) -> Result<(String, MappingConfig)> {
    bail!("{}", crate::connect::NO_AWS)
}

/// Reads the deployment's mapping from S3 the way the functions do at cold start.
#[cfg(feature = "aws")]
async fn deployed(location: Option<String>) -> Result<(String, MappingConfig)> {
    use prmsync_aws::mapping_source::{MappingLocation, MAPPING_ENV};

    let given = location.unwrap_or_else(|| std::env::var(MAPPING_ENV).unwrap_or_default());
    let location = match MappingLocation::parse(&given)? {
        Some(l @ MappingLocation::S3 { .. }) => l,
        Some(MappingLocation::File(path)) => bail!(
            "{MAPPING_ENV}={given} is a file in the function package, not in S3: check your copy of it with `prmsync mapping check {}`",
            path.display()
        ),
        None => bail!(
            "no mapping location: set {MAPPING_ENV} to the stack output MappingLocation (s3://BUCKET/KEY) or give --location s3://BUCKET/KEY; a stack deployed without MappingLocation uses the built-in mapping (`prmsync mapping default`)"
        ),
    };
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let (mapping, _) = location.load(&aws).await?;
    Ok((location.to_string(), mapping))
}
