//! What every use case runs with: the [`SyncContext`] built once per process, the run
//! modes, and the reads several use cases share (records by id, the people of newly
//! linked organizations, the API reserve).

use std::sync::Arc;

use chrono::{Duration, Utc};
use prmsync_mapping::{CrmRecord, Integration, LogCode, MappingConfig, ObjectKind, PrmRecord};
use serde_json::Value;

use crate::objects::ObjectSpec;
use crate::ports::{Crm, PortError, Prm};
use crate::store::{LogEntry, Store};

pub use crate::report::RunMode;

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: RunMode,
    pub dry_run: bool,
    /// The run id to use (several integrations of one `sync` share it); a new one if None.
    pub run_id: Option<String>,
    /// The operator lets a mass change through the breaker ([`crate::breaker`]).
    pub allow_mass_change: bool,
}

/// Everything a run needs, built once per process.
#[derive(Clone)]
pub struct SyncContext {
    pub crm: Arc<dyn Crm>,
    pub prm: Arc<dyn Prm>,
    pub store: Arc<dyn Store>,
    pub mapping: Arc<MappingConfig>,
    /// Who holds leases taken by this process (host and process id, or the Lambda request).
    pub holder: String,
    /// How long a lease lasts before another run may take it over.
    pub lease_ttl: Duration,
}

/// Cursor names per side.
pub const CRM_SIDE: &str = "crm";
pub const PRM_SIDE: &str = "prm";

/// The integration an object kind syncs in.
pub fn integration_of(kind: ObjectKind) -> Integration {
    match kind {
        ObjectKind::Organization => Integration::Organizations,
        ObjectKind::Person => Integration::People,
        ObjectKind::Deal => Integration::Deals,
    }
}

/// Set when the last known Salesforce usage is inside the API reserve (sync rule 11).
pub fn reserve_message(ctx: &SyncContext) -> Option<String> {
    let usage = ctx.crm.usage()?;
    let reserve = u64::from(ctx.mapping.sync.api_reserve_percent);
    if usage.max == 0 || usage.used * 100 < usage.max * (100 - reserve) {
        return None;
    }
    Some(format!(
        "Salesforce API usage is {}/{} today, inside the {}% reserve; the run stopped and resumes on the next run",
        usage.used, usage.max, reserve
    ))
}

/// Reads records of one object pair by id on both sides (Salesforce rows deleted ones
/// included); an empty list costs no call.
pub(crate) async fn fetch_by_ids(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    crm_ids: &[String],
    prm_ids: &[String],
) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), PortError> {
    let crm = if crm_ids.is_empty() {
        Vec::new()
    } else {
        ctx.crm
            .fetch(spec.crm_object(), &spec.crm_fields(), crm_ids)
            .await?
    };
    let prm = if prm_ids.is_empty() {
        Vec::new()
    } else {
        ctx.prm.fetch(spec.prm_collection(), prm_ids).await?
    };
    Ok((crm, prm))
}

/// The people of organizations linked since the last people run (`pending`, as (PRM id,
/// Salesforce Id) pairs): their Contacts (with `fields`) and their PRM people, tombstones
/// included: one `AccountId IN (...)` read, and one PRM call per organization.
pub(crate) async fn people_of_pending(
    ctx: &SyncContext,
    fields: &[String],
    pending: &[(String, String)],
) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), PortError> {
    let accounts: Vec<String> = pending.iter().map(|(_, c)| c.clone()).collect();
    let crm = ctx
        .crm
        .find(
            ObjectKind::Person.crm_object(),
            fields,
            "AccountId",
            &accounts,
        )
        .await?;
    let mut prm = Vec::new();
    for (org, _) in pending {
        prm.extend(ctx.prm.people_of_organization(org).await?);
    }
    Ok((crm, prm))
}

/// A run-level Integration Log entry.
pub fn entry(
    run_id: &str,
    integration: Integration,
    code: LogCode,
    message: String,
    details: Value,
) -> LogEntry {
    LogEntry {
        // Time-ordered (UUIDv7): a log's id index grows at its end.
        id: uuid::Uuid::now_v7().to_string(),
        time: Utc::now(),
        run_id: run_id.to_string(),
        integration,
        level: code.level(),
        code,
        object: None,
        crm_id: None,
        prm_id: None,
        link: None,
        message,
        fix: code.fix().to_string(),
        details,
        acknowledged: false,
    }
}
