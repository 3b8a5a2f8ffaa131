//! Failures.

use chrono::Utc;
use prmsync_mapping::transform::UnmappedValue;
use prmsync_mapping::LogCode;
use serde_json::{json, Value};

use super::*;
use crate::ports::{FailureClass, PortError, RecordFailure};
use crate::retry::FailedRecord;
use crate::store::LogEntry;

/// other failure (credentials, setup, the API limit) stops the pass.
pub(super) fn record_failure_of(e: PortError) -> Result<RecordFailure, PassError> {
    if e.class == FailureClass::Transient {
        Ok(RecordFailure {
            class: FailureClass::Transient,
            code: "call_failed".into(),
            message: e.message,
            fields: Vec::new(),
        })
    } else {
        Err(PassError::Port(e))
    }
}

impl<'a> Pass<'a> {
    pub(super) fn crm_failure(
        &mut self,
        failure: &RecordFailure,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
        action: &str,
    ) -> Result<(), PassError> {
        self.out.counts.errors += 1;
        let obj = self.spec.crm_object();
        let record = match (action, crm_id, prm_id) {
            ("create", _, Some(p)) => format!("the new {obj} for PRM {} {p}", self.spec.kind),
            (_, Some(c), _) => format!("the update of {obj} {c}"),
            _ => format!("a write to {obj}"),
        };
        let fields = if failure.fields.is_empty() {
            String::new()
        } else {
            format!(" (field {})", failure.fields.join(", "))
        };
        if failure.class == FailureClass::Transient {
            self.out.failed.push(FailedRecord {
                crm_id: crm_id.map(str::to_string),
                prm_id: prm_id.map(str::to_string),
                message: format!("Salesforce: {} {}", failure.code, failure.message),
            });
        }
        let code = match failure.class {
            FailureClass::Setup => LogCode::CrmSetupError,
            FailureClass::Gone => LogCode::CrmRecordGone,
            FailureClass::Transient => LogCode::TransientError,
            _ => LogCode::CrmDataError,
        };
        self.log(
            code,
            crm_id,
            prm_id,
            format!(
                "Salesforce rejected {record}{fields}: {} {}",
                failure.code, failure.message
            ),
            json!({"errorCode": failure.code, "message": failure.message, "fields": failure.fields}),
        );
        if failure.class == FailureClass::Auth {
            return Err(PassError::Port(PortError {
                system: crate::ports::System::Salesforce,
                class: FailureClass::Auth,
                message: failure.message.clone(),
            }));
        }
        Ok(())
    }

    pub(super) fn prm_failure(
        &mut self,
        failure: &RecordFailure,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
        action: &str,
    ) -> Result<(), PassError> {
        self.out.counts.errors += 1;
        let kind = self.spec.kind;
        let record = match (action, crm_id, prm_id) {
            ("create", Some(c), _) => {
                format!("the new PRM {kind} for {} {c}", self.spec.crm_object())
            }
            (_, _, Some(p)) => format!("the update of PRM {kind} {p}"),
            _ => format!("a write of a PRM {kind}"),
        };
        let fields = if failure.fields.is_empty() {
            String::new()
        } else {
            format!(" (field {})", failure.fields.join("; "))
        };
        if failure.class == FailureClass::Transient {
            self.out.failed.push(FailedRecord {
                crm_id: crm_id.map(str::to_string),
                prm_id: prm_id.map(str::to_string),
                message: format!("PRM: {}", failure.message),
            });
        }
        let code = match failure.class {
            FailureClass::Transient | FailureClass::VersionConflict => LogCode::TransientError,
            _ => LogCode::PrmValidationFailed,
        };
        self.log(
            code,
            crm_id,
            prm_id,
            format!("The PRM rejected {record}{fields}: {}", failure.message),
            json!({"code": failure.code, "message": failure.message, "fields": failure.fields}),
        );
        if failure.class == FailureClass::Auth {
            return Err(PassError::Port(PortError {
                system: crate::ports::System::Prm,
                class: FailureClass::Auth,
                message: failure.message.clone(),
            }));
        }
        Ok(())
    }

    pub(super) fn unmapped(
        &mut self,
        e: &UnmappedValue,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
    ) {
        self.out.counts.errors += 1;
        let record = crm_id
            .map(|c| format!("{} {c}", self.spec.crm_object()))
            .or_else(|| prm_id.map(|p| format!("PRM {} {p}", self.spec.kind)))
            .unwrap_or_default();
        self.log(
            LogCode::UnmappedValue,
            crm_id,
            prm_id,
            format!("{record}: {e}"),
            json!({"field": e.field, "value": e.value, "accepted": e.accepted}),
        );
    }

    /// The Salesforce API reserve (DESIGN 11): stop before it is eaten.
    pub(super) fn reserve_reached(&mut self) -> Option<String> {
        let message = crate::context::reserve_message(self.ctx)?;
        let usage = self.ctx.crm.usage();
        self.log(
            LogCode::ApiReserveReached,
            None,
            None,
            message.clone(),
            json!({"used": usage.map(|u| u.used), "max": usage.map(|u| u.max)}),
        );
        Some(message)
    }

    pub(super) fn log(
        &mut self,
        code: LogCode,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
        message: String,
        details: Value,
    ) {
        let link = crm_id.and_then(|c| self.ctx.crm.record_url(self.spec.crm_object(), c));
        self.out.log.push(LogEntry {
            // Time-ordered (UUIDv7): a log's id index grows at its end.
            id: uuid::Uuid::now_v7().to_string(),
            time: Utc::now(),
            run_id: self.run_id.clone(),
            integration: self.integration,
            level: code.level(),
            code,
            object: Some(self.spec.kind),
            crm_id: crm_id.map(str::to_string),
            prm_id: prm_id.map(str::to_string),
            link,
            message,
            fix: code.fix().to_string(),
            details,
            acknowledged: false,
        });
    }
}
