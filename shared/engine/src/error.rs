//! Why a use case (a run, a plan, a chunk) could not go on. The error keeps the failure
//! class of its cause — a port's call, the state store, the setup — so that the Lambda
//! response and the CLI's exit code can say what kind of trouble it is (retry later, fix a
//! record, fix the setup, wait for the API limit), not just print a message.

use crate::pairing::PairingError;
use crate::pass::PassError;
use crate::ports::{FailureClass, PortError};
use crate::report::{RunReport, RunStatus};
use crate::store::StoreError;

/// Why a run, a plan or a chunk stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// A whole call to Salesforce or the PRM failed (after the adapter's own retries).
    #[error(transparent)]
    Port(#[from] PortError),
    /// The state store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mapping does not fit the org, or the deployment is set up wrong; the message
    /// names what and the fix.
    #[error("{0}")]
    Setup(String),
    /// A run that its frame already failed and reported (the pause flag or the lease could
    /// not be read), with the class of what failed it.
    #[error("{message}")]
    Reported {
        class: FailureClass,
        message: String,
    },
    /// What the engine was doing when `source` happened ("reading changed Account
    /// records: ...").
    #[error("{doing}: {source}")]
    During {
        doing: String,
        #[source]
        source: Box<EngineError>,
    },
}

impl EngineError {
    /// The failure class of the cause: what the operator (or the queue) does about it.
    pub fn class(&self) -> FailureClass {
        match self {
            EngineError::Port(p) => p.class,
            EngineError::Store(s) => store_class(s),
            EngineError::Setup(_) => FailureClass::Setup,
            EngineError::Reported { class, .. } => *class,
            EngineError::During { source, .. } => source.class(),
        }
    }

    /// This error, said to have happened while `doing` something.
    pub fn during(self, doing: impl Into<String>) -> Self {
        EngineError::During {
            doing: doing.into(),
            source: Box::new(self),
        }
    }
}

impl RunReport {
    /// Marks the run failed by `e`, keeping its class.
    pub fn fail(&mut self, e: &EngineError) {
        self.status = RunStatus::Failed;
        self.message = Some(e.to_string());
        self.failure = Some(e.class());
    }
}

/// A store that cannot be reached or lost a race is worth another try; an entry that
/// cannot be read back needs the operator.
fn store_class(e: &StoreError) -> FailureClass {
    match e {
        StoreError::Conflict { .. } | StoreError::Backend(_) => FailureClass::Transient,
        StoreError::Corrupt { .. } => FailureClass::Setup,
    }
}

impl From<PassError> for EngineError {
    fn from(e: PassError) -> Self {
        match e {
            PassError::Port(p) => EngineError::Port(p),
            PassError::Store(s) => EngineError::Store(s),
        }
    }
}

impl From<PairingError> for EngineError {
    fn from(e: PairingError) -> Self {
        match e {
            PairingError::Read { collection, source } => {
                EngineError::Port(source).during(format!("reading changed PRM {collection}"))
            }
            PairingError::Store(s) => EngineError::Store(s),
        }
    }
}

/// `result.during(|| "...")`: names what was being done when an error happened.
pub trait During<T> {
    fn during(self, doing: impl FnOnce() -> String) -> Result<T, EngineError>;
}

impl<T, E: Into<EngineError>> During<T> for Result<T, E> {
    fn during(self, doing: impl FnOnce() -> String) -> Result<T, EngineError> {
        self.map_err(|e| e.into().during(doing()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::System;
    use prmsync_mapping::ObjectKind;

    fn port(class: FailureClass) -> EngineError {
        EngineError::Port(PortError {
            system: System::Salesforce,
            class,
            message: "REQUEST_LIMIT_EXCEEDED".into(),
        })
    }

    #[test]
    fn the_class_of_the_cause_survives_any_context() {
        let e = port(FailureClass::Limit)
            .during("reading changed Account records")
            .during("planning organizations");
        assert_eq!(e.class(), FailureClass::Limit);
        assert_eq!(
            e.to_string(),
            "planning organizations: reading changed Account records: Salesforce call failed: REQUEST_LIMIT_EXCEEDED"
        );
    }

    #[test]
    fn store_errors_are_transient_unless_an_entry_is_unreadable() {
        let conflict = EngineError::from(StoreError::Conflict {
            object: ObjectKind::Organization,
            prm_id: "org_1".into(),
        });
        assert_eq!(conflict.class(), FailureClass::Transient);
        let backend = EngineError::from(StoreError::Backend("throttled".into()));
        assert_eq!(backend.class(), FailureClass::Transient);
        let corrupt = EngineError::from(StoreError::Corrupt {
            what: "link",
            key: "organization/org_1".into(),
            problem: "state `maybe` is unknown".into(),
        });
        assert_eq!(corrupt.class(), FailureClass::Setup);
        assert!(corrupt.to_string().contains("organization/org_1"));
    }

    #[test]
    fn setup_and_pairing_errors_keep_their_class() {
        assert_eq!(
            EngineError::Setup("the mapping does not fit".into()).class(),
            FailureClass::Setup
        );
        let read = PairingError::Read {
            collection: "organizations",
            source: PortError {
                system: System::Prm,
                class: FailureClass::Auth,
                message: "401".into(),
            },
        };
        let e = EngineError::from(read);
        assert_eq!(e.class(), FailureClass::Auth);
        assert_eq!(
            e.to_string(),
            "reading changed PRM organizations: PRM call failed: 401"
        );
        let r: Result<(), StoreError> = Err(StoreError::Backend("gone".into()));
        let e = r.during(|| "saving the run".into()).unwrap_err();
        assert_eq!(e.to_string(), "saving the run: state store: gone");
    }
}
