//! One module per function.

pub mod deal_import;
pub mod full_sync;
pub mod prm_webhook;
pub mod sync_worker;

use prmsync_engine::FailureClass;

/// The error type a function reports for a failure of `class`: `Prmsync.` and the class
/// (`Prmsync.Transient`, `Prmsync.Setup`, `Prmsync.Limit`, `Prmsync.Auth`, `Prmsync.Data`).
pub fn error_type(class: FailureClass) -> String {
    let name = match class {
        FailureClass::Auth => "Auth",
        FailureClass::Transient | FailureClass::VersionConflict => "Transient",
        FailureClass::Limit => "Limit",
        FailureClass::Data | FailureClass::Gone => "Data",
        FailureClass::Setup => "Setup",
    };
    format!("Prmsync.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_an_error_type() {
        assert_eq!(error_type(FailureClass::Setup), "Prmsync.Setup");
        assert_eq!(error_type(FailureClass::Limit), "Prmsync.Limit");
        assert_eq!(error_type(FailureClass::Transient), "Prmsync.Transient");
        assert_eq!(error_type(FailureClass::Auth), "Prmsync.Auth");
    }
}
