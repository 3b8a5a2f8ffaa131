//! `prmsync mapping default|check`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use prmsync_mapping::config::DEFAULT_MAPPING;

#[derive(Subcommand, Debug)]
pub enum MappingCommand {
    /// Print the built-in mapping file, to copy and edit.
    Default,
    /// Check a mapping file and say what is wrong with it.
    Check {
        /// The mapping file.
        file: PathBuf,
    },
}

pub async fn run(command: MappingCommand) -> Result<ExitCode> {
    match command {
        MappingCommand::Default => {
            print!("{DEFAULT_MAPPING}");
            Ok(ExitCode::SUCCESS)
        }
        MappingCommand::Check { file } => {
            let m = crate::connect::read_mapping(&file)?;
            println!(
                "{}: valid — {} organization fields, {} person fields",
                file.display(),
                m.organizations.fields.len(),
                m.people.fields.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
