//! The Integration Log entries of a pass (every entry carries the run, the object and a
//! link to the Salesforce record) and the writes a dry run reports instead of making.
//! Sync rule 11 (budget: stop before the API reserve) of `docs/sync-rules.md` is checked
//! here, before every Salesforce write.

use chrono::Utc;
use prmsync_mapping::config::Side;
use prmsync_mapping::transform::UnmappedValue;
use prmsync_mapping::{Fields, LogCode, LogValues};
use serde_json::{json, Value};

use super::Pass;
use crate::report::PlannedWrite;
use crate::store::LogEntry;

impl<'a> Pass<'a> {
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
            // A value of a field with a `values` table is the mapping's vocabulary, not a
            // person's data: shown, so that the mapping can be fixed (docs/integration-log.md).
            format!("{record}: {e}"),
            json!({"field": e.field, "value": e.value, "accepted": e.accepted}),
        );
    }

    /// The Salesforce API reserve (sync rule 11 in docs/sync-rules.md): stop before it is eaten.
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

    /// How record values appear in this pass's entries (`[log] values` of the mapping).
    pub(super) fn values(&self) -> LogValues {
        self.ctx.mapping.log.values()
    }

    /// An entry for each thing the Salesforce adapter did on its own during the last write
    /// (a Bulk API 2.0 ingest job that failed whole, its records written through
    /// Collections).
    pub(super) fn log_crm_notices(&mut self) {
        for message in self.ctx.crm.take_notices() {
            self.log(LogCode::BulkJobFellBack, None, None, message, Value::Null);
        }
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

    /// Records a write a dry run would make.
    pub(super) fn plan_write(
        &mut self,
        action: &str,
        side: Side,
        id: Option<String>,
        source_id: Option<String>,
        fields: Fields,
    ) {
        let (side, object) = match side {
            Side::Crm => ("crm", self.spec.crm_object()),
            Side::Prm => ("prm", self.spec.prm_collection()),
        };
        self.out.planned.push(PlannedWrite {
            action: action.into(),
            side: side.into(),
            object: object.into(),
            id,
            source_id,
            fields,
        });
    }
}
