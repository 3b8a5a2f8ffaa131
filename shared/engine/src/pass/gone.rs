//! Records gone without a trace (sync rules 2 and 7 in `docs/sync-rules.md`): a
//! Salesforce record purged from the recycle bin (15 days, or emptied by hand) and a PRM
//! record whose tombstone expired (30 days) are returned by no read, not even as deleted.
//! A run that reads everything looks up the live links whose records it did not see
//! ([`unseen_links`]); a read by id of linked records that does not return one takes it as
//! deleted ([`fetch_or_gone`]), so its link follows the delete as for any other instead of
//! waiting forever. A pass of such a run holding one record of a live link reads the other
//! the same way (`Pass::read_other_sides`, which also reads the record a mapping change
//! needs). Both deployments use all three.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use prmsync_mapping::{CrmRecord, ObjectKind, PrmRecord};

use super::PassError;
use crate::context::{fetch_by_ids, SyncContext};
use crate::objects::ObjectSpec;
use crate::store::{Link, LinkState, StoreError};

/// The Salesforce Ids and PRM ids of live links, untouched since `started` (the run's
/// start), whose records a run that read everything did not see (`seen_crm`, `seen_prm`).
pub(crate) async fn unseen_links(
    ctx: &SyncContext,
    kind: ObjectKind,
    started: DateTime<Utc>,
    seen_crm: impl Fn(&str) -> bool,
    seen_prm: impl Fn(&str) -> bool,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let mut crm = Vec::new();
    let mut prm = Vec::new();
    for (p, c) in ctx.store.linked_ids(kind, started).await? {
        if !seen_crm(&c) {
            crm.push(c);
        }
        if !seen_prm(&p) {
            prm.push(p);
        }
    }
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
) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), PassError> {
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
    for l in links.iter().filter(|l| l.state == LinkState::Linked) {
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
pub fn expired_tombstone(link: &Link) -> PrmRecord {
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

impl super::Pass<'_> {
    /// Reads, in one call per side, the record each pair lacks when `missing` names that
    /// side, through [`fetch_or_gone`]. `keep_deleted`: a record read as deleted (or gone)
    /// joins its pair, for the lifecycle phase to follow; otherwise it is left out (the
    /// lifecycle phase is over).
    pub(super) async fn read_other_sides(
        &mut self,
        pairs: &mut [super::WorkPair],
        missing: impl Fn(&super::WorkPair) -> Option<prmsync_mapping::config::Side>,
        keep_deleted: bool,
    ) -> Result<(), PassError> {
        use prmsync_mapping::config::Side;
        let (mut crm_ids, mut prm_ids) = (Vec::new(), Vec::new());
        for pair in pairs.iter() {
            match missing(pair) {
                Some(Side::Crm) => crm_ids.push(pair.link.crm_id.clone()),
                Some(Side::Prm) => prm_ids.push(pair.link.prm_id.clone()),
                None => {}
            }
        }
        if crm_ids.is_empty() && prm_ids.is_empty() {
            return Ok(());
        }
        let (crm, prm) = fetch_or_gone(self.ctx, &self.spec, &crm_ids, &prm_ids).await?;
        let mut crm: std::collections::HashMap<String, CrmRecord> = crm
            .into_iter()
            .filter(|r| keep_deleted || !r.deleted)
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut prm: std::collections::HashMap<String, PrmRecord> = prm
            .into_iter()
            .filter(|r| keep_deleted || !r.deleted)
            .map(|r| (r.id.clone(), r))
            .collect();
        for pair in pairs.iter_mut() {
            match missing(pair) {
                Some(Side::Crm) => pair.crm = crm.remove(&pair.link.crm_id),
                Some(Side::Prm) => pair.prm = prm.remove(&pair.link.prm_id),
                None => {}
            }
        }
        Ok(())
    }
}
