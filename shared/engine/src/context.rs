//! What every use case runs with: the [`SyncContext`] built once per process, the run
//! modes, and the reads several use cases share (records by id, the people of newly
//! linked organizations, the API reserve).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use prmsync_mapping::{CrmRecord, Integration, LogCode, MappingConfig, ObjectKind, PrmRecord};
use serde_json::Value;

use crate::error::EngineError;
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

/// [`fetch_by_ids`], and for each linked record the read did not return at all a deleted
/// one, so that its link follows the delete as for any other instead of waiting forever:
/// a Salesforce record purged from the recycle bin (15 days, or emptied by hand), a PRM
/// record whose tombstone expired (30 days).
pub(crate) async fn fetch_or_gone(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    crm_ids: &[String],
    prm_ids: &[String],
) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), EngineError> {
    let (mut crm, mut prm) = fetch_by_ids(ctx, spec, crm_ids, prm_ids).await?;
    let missing = |asked: &[String], found: HashSet<&str>| -> Vec<String> {
        asked
            .iter()
            .filter(|i| !found.contains(i.as_str()))
            .cloned()
            .collect()
    };
    let missing_crm = missing(crm_ids, crm.iter().map(|r| r.id.as_str()).collect());
    let missing_prm = missing(prm_ids, prm.iter().map(|r| r.id.as_str()).collect());
    if missing_crm.is_empty() && missing_prm.is_empty() {
        return Ok((crm, prm));
    }
    let links = ctx
        .store
        .find_links(spec.kind, &missing_crm, &missing_prm)
        .await?;
    for l in links
        .iter()
        .filter(|l| l.state == crate::store::LinkState::Linked)
    {
        if missing_crm.contains(&l.crm_id) {
            crm.push(purged_record(&l.crm_id));
        }
        if missing_prm.contains(&l.prm_id) {
            prm.push(expired_tombstone(l));
        }
    }
    Ok((crm, prm))
}

/// A PRM record of `link` that no read returns any more: deleted, its tombstone expired.
/// A version past the link's, so it is not taken for a stale read. No I/O.
pub fn expired_tombstone(link: &crate::store::Link) -> PrmRecord {
    PrmRecord {
        id: link.prm_id.clone(),
        version: link.prm_version.unwrap_or(0) + 1,
        updated_at: Utc::now(),
        deleted: true,
        crm_id: Some(link.crm_id.clone()),
        fields: prmsync_mapping::Fields::new(),
    }
}

/// A Salesforce record that no read returns any more: deleted, its delete no longer
/// visible. No I/O.
pub fn purged_record(id: &str) -> CrmRecord {
    let mut fields = prmsync_mapping::Fields::new();
    fields.insert("Id".into(), serde_json::json!(id));
    CrmRecord {
        id: id.to_string(),
        fields,
        modstamp: None,
        deleted: true,
        master_id: None,
    }
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
