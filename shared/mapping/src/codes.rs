//! The catalogue of Integration Log codes: one per reason, each with its level and the fix
//! an operator should apply. Codes are stable and snake_case.

use serde::{Deserialize, Serialize};

/// How much an entry matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Level::Info),
            "warning" | "warn" => Some(Level::Warning),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

macro_rules! catalogue {
    ($( $variant:ident => $code:literal, $level:ident, $fix:literal; )*) => {
        /// Every reason prmsync writes an Integration Log entry for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum LogCode { $( $variant, )* }

        impl LogCode {
            pub const ALL: &'static [LogCode] = &[ $( LogCode::$variant, )* ];

            /// The stable snake_case code.
            pub fn as_str(self) -> &'static str {
                match self { $( LogCode::$variant => $code, )* }
            }

            /// The level entries with this code carry.
            pub fn level(self) -> Level {
                match self { $( LogCode::$variant => Level::$level, )* }
            }

            /// What the operator should do about it.
            pub fn fix(self) -> &'static str {
                match self { $( LogCode::$variant => $fix, )* }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|c| c.as_str() == s)
            }
        }
    };
}

catalogue! {
    RunStarted => "run_started", Info, "";
    RunFinished => "run_finished", Info, "";
    RunFailed => "run_failed", Error, "Read the message: fix the connection or setup it names, then run `prmsync sync` again; the run resumes from its last checkpoint.";
    RunSkippedLeaseHeld => "run_skipped_lease_held", Warning, "Another run of this integration is in progress; wait for it to finish. A lease left by a crashed run expires on its own.";
    LeaseLost => "lease_lost", Warning, "Nothing to do unless it repeats: the run could not renew its lease (the state store was out of reach, or the process stalled, for longer than the lease lasts) and another run took the integration over. The run stopped before its next write and its cursors did not move, so the run holding the lease reads the same changes. If it repeats, check the state store's health and that the process is not starved.";
    RunContinued => "run_continued", Info, "";
    MassChangeHeld => "mass_change_held", Error, "The run stopped before writing anything because it would change or blank more than the configured share of one side's linked records (the message gives the counts, the fields and example records). Check the change at its source (a data load, a mass update, an import gone wrong). If it is wrong, undo it there: the next run syncs only what is left. If it is intended, let it through once with `prmsync sync --allow-mass-change` (on AWS, invoke the full-sync function with {\"allow_mass_change\": true}); the thresholds are mass_change_percent and mass_change_min_records in the mapping's [sync] section.";
    CursorExpired => "cursor_expired", Warning, "Nothing to do: the integration had not run for longer than a side keeps its deletes (Salesforce's recycle bin 15 days, PRM tombstones 30 days), so this run read everything instead of the changes. If it happens often, check that the schedule runs and that the integration is not left paused.";
    ReconcileDrift => "reconcile_drift", Warning, "Nothing to do for the records named: the reconcile re-read both sides of every linked record and repaired the ones the incremental runs had missed (the entry is info when there was none). A little drift now and then is expected. If it is frequent or large, look for its cause: late commits (a transaction that commits after its change time, beyond overlap_seconds: raise it), formula or rollup fields mapped to the PRM (their changes do not move SystemModstamp: map the fields they depend on instead, or keep the daily reconcile), and lost PRM webhooks (check the webhook's delivery log and the prm-webhook function's errors).";
    RunSkippedPaused => "run_skipped_paused", Info, "The integration is paused; `prmsync resume <integration>` starts it again.";
    RecordCreated => "record_created", Info, "";
    RecordUpdated => "record_updated", Info, "";
    RecordLinked => "record_linked", Info, "";
    Conflict => "conflict", Warning, "Both systems changed this field since the last sync; the conflict rule chose the value shown. If the other value is right, set it in either system and the next run carries it over.";
    AmbiguousMatch => "ambiguous_match", Warning, "Several records match on the other side. Set the PRM Id field on the Salesforce record (or crm_id in the PRM) to the one it belongs to, or merge the duplicates, then run the sync again.";
    DeletedInPrm => "deleted_in_prm", Info, "Nothing to do: the Salesforce record is kept and its Record Status shows the deletion.";
    DeletedInCrm => "deleted_in_crm", Warning, "The PRM record is kept and no longer syncs. If the deletion was a mistake, restore the Salesforce record from the recycle bin, then `prmsync relink prm:<object>:<id> <Salesforce Id>`; otherwise nothing to do.";
    MergedInCrm => "merged_in_crm", Info, "Nothing to do: the link now follows the surviving Salesforce record.";
    SyncStoppedUnflagged => "sync_stopped_unflagged", Warning, "The Account's Sync with PRM box was cleared or its Organization Status emptied, so it no longer syncs. Tick the box and set the status again to resume.";
    SyncResumed => "sync_resumed", Info, "";
    ParentNotLinked => "parent_not_linked", Info, "The parent record is not synced yet; flag the parent Account (or create it in the PRM) and the hierarchy follows on a later run.";
    ParentCycle => "parent_cycle", Error, "The parents set in Salesforce and in the PRM would make these organizations each other's ancestors (the message names the loop in order), so the parent was not written; their other fields still sync. Correct the parent of one of them (Parent Account in Salesforce, or the parent organization in the PRM): the parents are written when the records change, or on the next full run.";
    AccountNotLinked => "account_not_linked", Info, "The Contact's Account does not sync with the PRM; flag the Account with Sync with PRM and an Organization Status.";
    UnmappedValue => "unmapped_value", Error, "Add the value to the field's `values` table in the mapping file, or change the record to a value that is mapped.";
    CrmDataError => "crm_data_error", Error, "Correct the value in the record (or the mapping) as the message says; the record is retried when it changes.";
    CrmSetupError => "crm_setup_error", Error, "A field or permission prmsync needs is missing in Salesforce (the message names the object and fields): create the field or give the integration user Edit access to it (Set Field-Level Security), or make the field one-way to the PRM in the mapping. The records that waited are in the retry set; the next run syncs them, with no full run.";
    CrmRecordGone => "crm_record_gone", Warning, "The Salesforce record no longer exists; the link was disconnected. If it was restored from the recycle bin, `prmsync relink` links it again.";
    PrmValidationFailed => "prm_validation_failed", Error, "Correct the value in the record as the message says (or map it to one the PRM accepts); the record is retried when it changes.";
    PrmRecordMalformed => "prm_record_malformed", Error, "The PRM sent a record prmsync cannot read (the message names the field and the record id): correct the field in the PRM, or ask the PRM's administrator to. The rest of the page synced; this record is read again, and synced, once it changes in the PRM.";
    PrmRecordGone => "prm_record_gone", Warning, "The PRM record no longer exists; the link was disconnected.";
    TransientError => "transient_error", Warning, "Nothing to do unless it repeats: the record is kept in the retry set and tried again without waiting for it to change (on AWS on its own after a growing delay, on one machine by the next run); after `retry_attempts` failures in a row it is parked (see record_parked).";
    BulkJobFellBack => "bulk_job_fell_back", Warning, "Nothing to do for the records: a Bulk API 2.0 ingest job failed as a whole, or Salesforce refused to run one, and the records it did not write went through sObject Collections instead, with their own entries in this log. If it repeats, look the job up by its Id under Setup > Bulk Data Load Jobs; a refused job means the Bulk API is not open to the integration user (it needs API Enabled and Create and Edit on the object), or set bulk_ingest_threshold = 0 in the mapping's [salesforce] section to write through Collections only.";
    ApiReserveReached => "api_reserve_reached", Warning, "The run stopped to keep the configured share of the daily Salesforce API allocation; it resumes on the next run. Raise the org's allocation or lower api_reserve_percent if this happens often.";
    QueueMessageMalformed => "queue_message_malformed", Error, "A queue message is not a sync chunk (sent by hand, or by another program). It goes to the dead-letter queue after its retries; inspect it there and delete it.";
    ChunkRetried => "chunk_retried", Warning, "Nothing to do unless it repeats: a worker could not read or write a chunk for a passing reason (the message says which), and the chunk is handed out again after a delay. After its last attempt its records are kept in the retry set and the run goes on without them.";
    RunQueued => "run_queued", Info, "";
    RecordRetried => "record_retried", Warning, "Nothing to do unless it repeats: the record failed for a passing reason (the message says which) and is tried again on its own after the delay named; the rest of its chunk synced.";
    RecordParked => "record_parked", Error, "The record failed every attempt for a passing reason (the message gives the last one). It is tried again when it changes on either side, on the next full run, or now with `prmsync sync-record <id>`; if the failure names a lock or an outage, check that it has cleared first.";
    ApiLimitHold => "api_limit_hold", Warning, "Salesforce refused calls for the org's daily API limit: workers write nothing until the time named, and their chunks wait in the queue without losing a change. Nothing to do unless it happens often: then raise the org's allocation or lower the sync's share (api_reserve_percent).";
    MappingInvalid => "mapping_invalid", Error, "Correct the mapping file as the message says; `prmsync mapping check FILE` validates it, `prmsync mapping check FILE --config prmsync.toml` checks it against Salesforce as the next full run does.";
    DealImported => "deal_imported", Info, "";
    DealRejectedByPrm => "deal_rejected_by_prm", Error, "The PRM refused the deal (422): correct the Opportunity fields named in the message in Salesforce, or map them to values the PRM accepts in the mapping file's deal fields.";
    DealNoAccount => "deal_no_account", Error, "In Salesforce, set the Opportunity's Account to the customer's Account.";
    DealNoPrimaryContact => "deal_no_primary_contact", Error, "In Salesforce, add a Contact Role to the Opportunity (Contact Roles related list) and mark it Primary.";
    DealOwnerTypeUnknown => "deal_owner_type_unknown", Error, "In Salesforce, set the Opportunity's PRM Deal Owner Type to Partner-Owned or Distributor-Owned, or clear it (blank means Partner-Owned).";
    DealDistributorModuleDisabled => "deal_distributor_module_disabled", Error, "Turn the distributor module on in the PRM settings, or in Salesforce set the Opportunity's PRM Deal Owner Type to Partner-Owned (with the module off, a distributor email is ignored).";
    DealPartnerEmailMissing => "deal_partner_email_missing", Error, "In Salesforce, enter the email of the PRM partner user who registers the deal in the Opportunity's PRM Partner Email field. For Distributor-Owned deals the PRM can make it optional (distributor module setting partner_email_optional_for_distributor_owned).";
    DealDistributorEmailMissing => "deal_distributor_email_missing", Error, "In Salesforce, enter the email of the PRM distributor user in the Opportunity's PRM Distributor Email field, or set PRM Deal Owner Type to Partner-Owned.";
    DealUserNotFound => "deal_user_not_found", Error, "Correct the email on the Opportunity in Salesforce to that of an existing PRM user, or create a user with that email in the PRM.";
    DealUserAmbiguous => "deal_user_ambiguous", Error, "Several PRM people share this email: in the PRM give them distinct emails or delete the duplicates, or put another user's email on the Opportunity in Salesforce.";
    DealUserIsContact => "deal_user_is_contact", Error, "The person is a PRM contact without portal access: promote them to a user in the PRM (active, in a group with Deal Registration), or put a user's email on the Opportunity in Salesforce.";
    DealUserInactive => "deal_user_inactive", Error, "Activate the user in the PRM (status active, or restore the deleted user), or put the email of an active PRM user on the Opportunity in Salesforce.";
    DealUserLacksDealRegistration => "deal_user_lacks_deal_registration", Error, "In the PRM, add the user to a group of their kind (partner or distributor) whose modules include Deal Registration, or enable Deal Registration on one of their groups; or put another user's email on the Opportunity.";
    DealUserInDistributorOrg => "deal_user_in_distributor_org", Error, "The partner email must be a user of a partner organization: in Salesforce put a partner user's email in PRM Partner Email; if the deal belongs to the distributor, set PRM Deal Owner Type to Distributor-Owned and move this email to PRM Distributor Email.";
    DealUserInPartnerOrg => "deal_user_in_partner_org", Error, "The distributor email must be a user of a distributor organization: in Salesforce put a distributor user's email in PRM Distributor Email; if the deal belongs to the partner, move this email to PRM Partner Email.";
    DealUserOrganizationUnknown => "deal_user_organization_unknown", Error, "The user's organization is missing or deleted in the PRM: move the user to an active partner or distributor organization in the PRM, or put another user's email on the Opportunity.";
    DealRequiredFieldEmpty => "deal_required_field_empty", Error, "In Salesforce, fill the Opportunity field named in the message: the PRM requires the deal field it maps to.";
    DealValueUnmapped => "deal_value_unmapped", Error, "Add the value to the field's `values` table in the mapping file, or change the Opportunity in Salesforce to a value that is mapped.";
    DealValueNotAccepted => "deal_value_not_accepted", Error, "Map the Salesforce value to one the PRM accepts in the field's `values` table in the mapping file, add the value to the PRM's picklist for the deal field, or change the Opportunity.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_errors_have_fixes() {
        let mut seen = std::collections::BTreeSet::new();
        for c in LogCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert!(c
                .as_str()
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch == '_'));
            assert_eq!(LogCode::parse(c.as_str()), Some(*c));
            if c.level() != Level::Info {
                assert!(!c.fix().is_empty(), "{} needs a fix", c.as_str());
            }
        }
    }
}

#[cfg(test)]
mod doc_tests {
    use super::LogCode;

    #[test]
    fn every_code_is_documented_for_operators() {
        let doc = include_str!("../../../docs/integration-log.md");
        for c in LogCode::ALL {
            assert!(
                doc.contains(&format!("`{}`", c.as_str())),
                "docs/integration-log.md lacks {}",
                c.as_str()
            );
        }
    }
}
