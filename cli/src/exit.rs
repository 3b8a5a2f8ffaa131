//! The exit status of `prmsync sync` and `prmsync sync-record`: 0 when every run did its
//! work (a run stopped to keep the API reserve, or skipped, counts as done), otherwise the
//! failure class of the worst failed run, so a scheduler can tell "try again later" from
//! "fix the setup".

use std::process::ExitCode;

use prmsync_engine::{FailureClass, RunReport, RunStatus};

/// A run failed for a reason the engine did not classify, or a record's data.
pub const FAILED: u8 = 1;
/// The command could not start: a bad argument, config or mapping file (printed).
pub const USAGE: u8 = 2;
/// The setup needs fixing: a mapped field, a permission, an unreadable state entry.
pub const SETUP: u8 = 3;
/// Credentials were rejected.
pub const AUTH: u8 = 4;
/// The Salesforce API limit (or the configured reserve) is reached.
pub const LIMIT: u8 = 5;
/// A passing failure (an outage, a timeout, a lock): run again later (EX_TEMPFAIL).
pub const TRANSIENT: u8 = 75;

/// The code for a failure of `class`.
pub fn code_of(class: Option<FailureClass>) -> u8 {
    match class {
        Some(FailureClass::Setup) => SETUP,
        Some(FailureClass::Auth) => AUTH,
        Some(FailureClass::Limit) => LIMIT,
        Some(FailureClass::Transient | FailureClass::VersionConflict) => TRANSIENT,
        Some(FailureClass::Data | FailureClass::Gone) | None => FAILED,
    }
}

/// The status of a command that ran `reports`: the most pressing failure's code (setup
/// and credentials before the limit, the limit before a passing failure).
pub fn status_of(reports: &[RunReport]) -> u8 {
    let rank = |code: u8| match code {
        SETUP => 5,
        AUTH => 4,
        FAILED => 3,
        LIMIT => 2,
        TRANSIENT => 1,
        _ => 0,
    };
    reports
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .map(|r| code_of(r.failure))
        .max_by_key(|&c| rank(c))
        .unwrap_or(0)
}

pub fn exit_code(reports: &[RunReport]) -> ExitCode {
    ExitCode::from(status_of(reports))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_engine::{Counts, RunMode};
    use prmsync_mapping::Integration;

    fn report(status: RunStatus, failure: Option<FailureClass>) -> RunReport {
        RunReport {
            run_id: "run-1".into(),
            integration: Integration::Organizations,
            mode: RunMode::Incremental,
            dry_run: false,
            status,
            counts: Counts::default(),
            message: None,
            failure,
            planned: Vec::new(),
        }
    }

    #[test]
    fn runs_that_did_their_work_exit_zero() {
        let reports = [
            report(RunStatus::Succeeded, None),
            report(RunStatus::Stopped, None),
            report(RunStatus::SkippedLeaseHeld, None),
        ];
        assert_eq!(status_of(&reports), 0);
    }

    #[test]
    fn a_failed_run_exits_with_its_class() {
        let one = |c| status_of(&[report(RunStatus::Failed, Some(c))]);
        assert_eq!(one(FailureClass::Setup), SETUP);
        assert_eq!(one(FailureClass::Auth), AUTH);
        assert_eq!(one(FailureClass::Limit), LIMIT);
        assert_eq!(one(FailureClass::Transient), TRANSIENT);
        assert_eq!(status_of(&[report(RunStatus::Failed, None)]), FAILED);
    }

    #[test]
    fn the_setup_wins_over_a_passing_failure() {
        let reports = [
            report(RunStatus::Failed, Some(FailureClass::Transient)),
            report(RunStatus::Failed, Some(FailureClass::Setup)),
            report(RunStatus::Succeeded, None),
        ];
        assert_eq!(status_of(&reports), SETUP);
    }
}
