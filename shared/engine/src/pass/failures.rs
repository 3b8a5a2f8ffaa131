//! Failed writes, one record at a time: what a failure does to the pair's link (retry,
//! disconnect, remembered as rejected) and how it is reported (log code, retry set, or a
//! stop of the whole pass). Sync rule 10 (failures, one record at a time) of
//! `docs/sync-rules.md`: a data error waits until the record changes; a passing failure
//! fails its record alone and goes to the retry set; credentials stop the pass.
//!
//! [`classify_failure`] decides, without any I/O; `Pass::report_failure` writes the
//! entry.
//!
//! A setup failure (a field the integration user may not edit, a field deleted in
//! Salesforce) is not the record's fault: it is never remembered as a rejection. The pass
//! gathers every record it held back into one [`SetupFailure`]; the caller keeps them in
//! the retry set, due at once, writes one entry for the run, and stops (see
//! [`crate::retry::hold_setup_failed`]). Once the operator fixes the setup, the next run
//! syncs them, with no full run needed.

use prmsync_mapping::config::Side;
use prmsync_mapping::LogCode;
use serde_json::{json, Value};

use super::pair::{restore_snapshot_keys, SideRecord};
use super::race::PRM_UPDATE_ATTEMPTS;
use super::{Pass, PassError, WorkPair};
use crate::ports::{FailureClass, PortError, RecordFailure, System};
use crate::retry::{FailedRecord, SetupFailure};
use crate::store::LinkState;

/// A whole call that failed for a passing reason fails only the records it carried; any
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

/// The write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAction {
    /// A new record for one of the other side.
    Create,
    /// An update of a linked record.
    Update,
}

/// What a failed write does to its pair (for a create: to the record it came from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Nothing beyond the log entry.
    Nothing,
    /// The link is synced again on the next run.
    Retry,
    /// The record is gone: the link is disconnected.
    Disconnect,
    /// Rejected for its data: not tried again until a record changes.
    Rejected,
}

/// "<system> rejected <record>": an error entry with this log code. A passing failure
/// also holds the record in the retry set; a credentials failure stops the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub code: LogCode,
    pub to_retry_set: bool,
    pub stops_pass: bool,
}

/// How a failed write is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReport {
    /// An error entry: see [`Rejection`].
    Rejected(Rejection),
    /// The PRM record changed while it was synced (`If-Match`), and again each time it was
    /// read and merged anew within the pass (race.rs): read again next run.
    ChangedMeanwhile,
    /// The PRM record no longer exists.
    PrmRecordGone,
    /// The setup refused the write: held with the pass's [`SetupFailure`], no entry of
    /// its own.
    SetupHeld,
}

/// What a failed write to `side` means, by its failure class.
pub fn classify_failure(
    side: Side,
    action: WriteAction,
    class: FailureClass,
) -> (AfterFailure, FailureReport) {
    let after = match (action, side, class) {
        (WriteAction::Create, _, FailureClass::Data) => AfterFailure::Rejected,
        (WriteAction::Update, _, FailureClass::Setup) => AfterFailure::Retry,
        (WriteAction::Create, _, _) => AfterFailure::Nothing,
        (WriteAction::Update, _, FailureClass::Transient) => AfterFailure::Retry,
        (WriteAction::Update, _, FailureClass::Gone) => AfterFailure::Disconnect,
        (WriteAction::Update, Side::Crm, FailureClass::Data) => AfterFailure::Rejected,
        (WriteAction::Update, Side::Crm, _) => AfterFailure::Nothing,
        (WriteAction::Update, Side::Prm, FailureClass::VersionConflict) => AfterFailure::Retry,
        (WriteAction::Update, Side::Prm, _) => AfterFailure::Rejected,
    };
    // A PRM update has two outcomes of its own; everything else is a rejection entry.
    let report = match (action, side, class) {
        (_, _, FailureClass::Setup) => FailureReport::SetupHeld,
        (WriteAction::Update, Side::Prm, FailureClass::VersionConflict) => {
            FailureReport::ChangedMeanwhile
        }
        (WriteAction::Update, Side::Prm, FailureClass::Gone) => FailureReport::PrmRecordGone,
        _ => FailureReport::Rejected(rejection(side, class)),
    };
    (after, report)
}

/// How a rejected write to `side` is reported. Salesforce names setup problems and missing
/// records apart; the PRM reports every refusal as a validation failure.
pub fn rejection(side: Side, class: FailureClass) -> Rejection {
    let code = match (side, class) {
        (_, FailureClass::Transient) => LogCode::TransientError,
        (Side::Crm, FailureClass::Setup) => LogCode::CrmSetupError,
        (Side::Crm, FailureClass::Gone) => LogCode::CrmRecordGone,
        (Side::Crm, _) => LogCode::CrmDataError,
        (Side::Prm, FailureClass::VersionConflict) => LogCode::TransientError,
        (Side::Prm, _) => LogCode::PrmValidationFailed,
    };
    Rejection {
        code,
        to_retry_set: class == FailureClass::Transient,
        stops_pass: class == FailureClass::Auth,
    }
}

impl<'a> Pass<'a> {
    /// Remembers a record rejected for its data (at the end of the pass): it is left
    /// alone until it changes.
    pub(super) fn remember_rejected<R: SideRecord>(&mut self, record: &R) {
        self.rejected.push((
            R::SIDE.as_str(),
            record.id().to_string(),
            record.rejection_version(),
        ));
    }

    /// Saves the rejections of this pass (not in a dry run).
    pub(super) async fn save_rejections(&mut self) -> Result<(), PassError> {
        if !self.dry_run {
            for (side, id, version) in std::mem::take(&mut self.rejected) {
                self.ctx
                    .store
                    .remember_rejection(self.spec.kind, side, &id, &version)
                    .await?;
            }
        }
        Ok(())
    }

    /// The records not rejected before in the version in hand.
    pub(super) async fn without_rejected<R: SideRecord>(
        &self,
        records: Vec<R>,
    ) -> Result<Vec<R>, PassError> {
        let ids: Vec<String> = records.iter().map(|r| r.id().to_string()).collect();
        let rejected = self
            .ctx
            .store
            .rejected_versions(self.spec.kind, R::SIDE.as_str(), &ids)
            .await?;
        Ok(records
            .into_iter()
            .filter(|r| rejected.get(r.id()) != Some(&r.rejection_version()))
            .collect())
    }

    /// Logs a write that `side` rejected and counts it as an error; a passing failure
    /// goes to the retry set, a credentials failure stops the pass (`Err`).
    pub(super) fn report_failure(
        &mut self,
        side: Side,
        failure: &RecordFailure,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
        action: WriteAction,
    ) -> Result<(), PassError> {
        self.out.counts.errors += 1;
        let Rejection {
            code,
            to_retry_set,
            stops_pass,
        } = rejection(side, failure.class);
        let record = self.failed_record_name(side, action, crm_id, prm_id);
        let (message, retry_message, details) = match side {
            Side::Crm => {
                let fields = if failure.fields.is_empty() {
                    String::new()
                } else {
                    format!(" (field {})", failure.fields.join(", "))
                };
                (
                    format!(
                        "Salesforce rejected {record}{fields}: {} {}",
                        failure.code, failure.message
                    ),
                    format!("Salesforce: {} {}", failure.code, failure.message),
                    json!({"errorCode": failure.code, "message": failure.message, "fields": failure.fields}),
                )
            }
            Side::Prm => {
                let fields = if failure.fields.is_empty() {
                    String::new()
                } else {
                    format!(" (field {})", failure.fields.join("; "))
                };
                (
                    format!("The PRM rejected {record}{fields}: {}", failure.message),
                    format!("PRM: {}", failure.message),
                    json!({"code": failure.code, "message": failure.message, "fields": failure.fields}),
                )
            }
        };
        if to_retry_set {
            self.out.failed.push(FailedRecord {
                crm_id: crm_id.map(str::to_string),
                prm_id: prm_id.map(str::to_string),
                message: retry_message,
            });
        }
        self.log(code, crm_id, prm_id, message, details);
        if stops_pass {
            return Err(PassError::Port(PortError {
                system: match side {
                    Side::Crm => System::Salesforce,
                    Side::Prm => System::Prm,
                },
                class: FailureClass::Auth,
                message: failure.message.clone(),
            }));
        }
        Ok(())
    }

    /// A failed create of a record for `source` on the other side: a data error is
    /// remembered against `source` ([`classify_failure`]), and the failure is logged.
    pub(super) fn create_failed<R: SideRecord>(
        &mut self,
        source: &R,
        failure: &RecordFailure,
    ) -> Result<(), PassError> {
        let (target, crm_id, prm_id) = match R::SIDE {
            Side::Crm => (Side::Prm, Some(source.id()), None),
            Side::Prm => (Side::Crm, None, Some(source.id())),
        };
        let (after, report) = classify_failure(target, WriteAction::Create, failure.class);
        if after == AfterFailure::Rejected {
            self.remember_rejected(source);
        }
        if report == FailureReport::SetupHeld {
            self.hold_for_setup(target, failure, crm_id, prm_id);
            return Ok(());
        }
        let failure = self.shown_failure(failure, [&Value::Object(source.fields().clone())]);
        self.report_failure(target, &failure, crm_id, prm_id, WriteAction::Create)
    }

    /// A failed update of a linked pair on `side`: the snapshot keeps what that side still
    /// holds, the link is retried, disconnected or remembered as rejected
    /// ([`classify_failure`]), and the failure is logged.
    pub(super) fn update_failed(
        &mut self,
        side: Side,
        pair: &mut WorkPair,
        failure: &RecordFailure,
    ) -> Result<(), PassError> {
        restore_snapshot_keys(pair, side);
        if side == Side::Crm {
            pair.crm_failed = true;
        }
        let (c, p) = (pair.link.crm_id.clone(), pair.link.prm_id.clone());
        let (after, report) = classify_failure(side, WriteAction::Update, failure.class);
        match after {
            AfterFailure::Nothing => {}
            AfterFailure::Retry => {
                pair.link.retry = true;
                pair.dirty = true;
            }
            AfterFailure::Disconnect => {
                pair.link.state = LinkState::Disconnected;
                pair.dirty = true;
                self.out.counts.disconnected += 1;
            }
            AfterFailure::Rejected => pair.rejected = true,
        }
        let kind = self.spec.kind;
        // What the pair carried: the values sent and both records as read.
        let sent = [
            Value::Object(pair.crm_patch.clone()),
            Value::Object(pair.prm_patch.clone()),
            Value::Object(
                pair.crm
                    .as_ref()
                    .map(|r| r.fields.clone())
                    .unwrap_or_default(),
            ),
            Value::Object(
                pair.prm
                    .as_ref()
                    .map(|r| r.fields.clone())
                    .unwrap_or_default(),
            ),
        ];
        let shown = self.shown_failure(failure, &sent);
        match report {
            FailureReport::Rejected(_) => {
                self.report_failure(side, &shown, Some(&c), Some(&p), WriteAction::Update)?
            }
            FailureReport::ChangedMeanwhile => self.log(
                LogCode::TransientError,
                Some(&c),
                Some(&p),
                format!(
                    "PRM {kind} {p} changed while it was being synced, before each of {PRM_UPDATE_ATTEMPTS} attempts to update it ({}); it is synced again on the next run",
                    shown.message
                ),
                json!({"code": failure.code}),
            ),
            FailureReport::SetupHeld => self.hold_for_setup(side, failure, Some(&c), Some(&p)),
            FailureReport::PrmRecordGone => self.log(
                LogCode::PrmRecordGone,
                Some(&c),
                Some(&p),
                format!(
                    "PRM {kind} {p} no longer exists ({}); the link was disconnected",
                    shown.message
                ),
                json!({"code": failure.code}),
            ),
        }
        Ok(())
    }

    /// A record's failure as the logs show it: the values its message and fields may echo
    /// masked ([`prmsync_mapping::LogValues::remote`]); `sent` are the values the record carried.
    fn shown_failure<'v>(
        &self,
        failure: &RecordFailure,
        sent: impl IntoIterator<Item = &'v Value> + Clone,
    ) -> RecordFailure {
        let values = self.values();
        RecordFailure {
            message: values.remote(&failure.message, sent.clone()),
            fields: failure
                .fields
                .iter()
                .map(|f| values.remote(f, sent.clone()))
                .collect(),
            ..failure.clone()
        }
    }

    /// Holds a record whose write the setup refused: no entry of its own, one
    /// [`SetupFailure`] for the pass.
    fn hold_for_setup(
        &mut self,
        side: Side,
        failure: &RecordFailure,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
    ) {
        self.out.counts.errors += 1;
        let object = match side {
            Side::Crm => self.spec.crm_object().to_string(),
            Side::Prm => format!("PRM {}", self.spec.kind),
        };
        let setup = self.out.setup.get_or_insert_with(|| SetupFailure {
            object,
            code: failure.code.clone(),
            message: failure.message.clone(),
            fields: failure.fields.clone(),
            records: Vec::new(),
        });
        for f in &failure.fields {
            if !setup.fields.contains(f) {
                setup.fields.push(f.clone());
            }
        }
        setup.records.push(FailedRecord {
            crm_id: crm_id.map(str::to_string),
            prm_id: prm_id.map(str::to_string),
            message: format!("{}: {}", failure.code, failure.message),
        });
    }

    /// The record a failed write was for, as the log names it.
    fn failed_record_name(
        &self,
        side: Side,
        action: WriteAction,
        crm_id: Option<&str>,
        prm_id: Option<&str>,
    ) -> String {
        let obj = self.spec.crm_object();
        let kind = self.spec.kind;
        match (side, action, crm_id, prm_id) {
            (Side::Crm, WriteAction::Create, _, Some(p)) => {
                format!("the new {obj} for PRM {kind} {p}")
            }
            (Side::Crm, _, Some(c), _) => format!("the update of {obj} {c}"),
            (Side::Crm, _, _, _) => format!("a write to {obj}"),
            (Side::Prm, WriteAction::Create, Some(c), _) => {
                format!("the new PRM {kind} for {obj} {c}")
            }
            (Side::Prm, _, _, Some(p)) => format!("the update of PRM {kind} {p}"),
            (Side::Prm, _, _, _) => format!("a write of a PRM {kind}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use AfterFailure::*;
    use FailureClass::*;

    fn rejected(code: LogCode) -> FailureReport {
        FailureReport::Rejected(Rejection {
            code,
            to_retry_set: false,
            stops_pass: false,
        })
    }

    #[test]
    fn a_salesforce_update_failure_retries_disconnects_or_rejects_by_class() {
        let update = |class| classify_failure(Side::Crm, WriteAction::Update, class);
        assert_eq!(
            update(Transient),
            (
                Retry,
                FailureReport::Rejected(Rejection {
                    code: LogCode::TransientError,
                    to_retry_set: true,
                    stops_pass: false
                })
            )
        );
        assert_eq!(update(Gone), (Disconnect, rejected(LogCode::CrmRecordGone)));
        assert_eq!(update(Data), (Rejected, rejected(LogCode::CrmDataError)));
        assert_eq!(update(Setup), (Retry, FailureReport::SetupHeld));
    }

    #[test]
    fn a_prm_update_failure_retries_disconnects_or_rejects_by_class() {
        let update = |class| classify_failure(Side::Prm, WriteAction::Update, class);
        assert_eq!(
            update(VersionConflict),
            (Retry, FailureReport::ChangedMeanwhile)
        );
        assert_eq!(update(Gone), (Disconnect, FailureReport::PrmRecordGone));
        assert_eq!(
            update(Data),
            (Rejected, rejected(LogCode::PrmValidationFailed))
        );
        assert!(matches!(
            update(Transient),
            (
                Retry,
                FailureReport::Rejected(Rejection {
                    code: LogCode::TransientError,
                    to_retry_set: true,
                    ..
                })
            )
        ));
    }

    #[test]
    fn a_create_failure_remembers_only_data_rejections() {
        for side in [Side::Crm, Side::Prm] {
            assert_eq!(
                classify_failure(side, WriteAction::Create, Data).0,
                Rejected
            );
            assert_eq!(
                classify_failure(side, WriteAction::Create, Setup),
                (Nothing, FailureReport::SetupHeld)
            );
            for class in [Transient, Gone, Setup, VersionConflict, Auth] {
                assert_eq!(
                    classify_failure(side, WriteAction::Create, class).0,
                    Nothing,
                    "{side:?} {class:?}"
                );
            }
        }
    }

    #[test]
    fn a_setup_failure_is_never_remembered_as_a_rejection() {
        for side in [Side::Crm, Side::Prm] {
            for action in [WriteAction::Create, WriteAction::Update] {
                let (after, report) = classify_failure(side, action, Setup);
                assert_ne!(after, Rejected, "{side:?} {action:?}");
                assert_eq!(report, FailureReport::SetupHeld, "{side:?} {action:?}");
            }
        }
    }

    #[test]
    fn rejected_credentials_stop_the_pass_on_either_side() {
        for side in [Side::Crm, Side::Prm] {
            for action in [WriteAction::Create, WriteAction::Update] {
                assert!(matches!(
                    classify_failure(side, action, Auth).1,
                    FailureReport::Rejected(Rejection {
                        stops_pass: true,
                        ..
                    })
                ));
            }
        }
    }
}
