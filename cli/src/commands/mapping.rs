//! `prmsync mapping default|check`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use prmsync_mapping::config::DEFAULT_MAPPING;
use prmsync_mapping::MappingConfig;

#[derive(Subcommand, Debug)]
pub enum MappingCommand {
    /// Print the built-in mapping file, to copy and edit.
    Default,
    /// Check a mapping file and say what is wrong with it.
    Check {
        /// The mapping file.
        #[arg(
            required_unless_present_any = ["aws", "location"],
            conflicts_with_all = ["aws", "location"]
        )]
        file: Option<PathBuf>,
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
            file: Some(file), ..
        } => {
            let m = crate::connect::read_mapping(&file)?;
            report(&file.display().to_string(), &m);
            Ok(ExitCode::SUCCESS)
        }
        MappingCommand::Check {
            file: None,
            location,
            ..
        } => {
            let (origin, m) = deployed(location).await?;
            report(&origin, &m);
            Ok(ExitCode::SUCCESS)
        }
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
