//! Which records of the two sides must sync together (sync rule 8 in
//! `docs/sync-rules.md`), for both deployments: a
//! one-machine run syncs a Salesforce page with its PRM partners in one pass
//! ([`crate::sweep`]); the planner puts a Salesforce record and its partners in one chunk
//! ([`crate::planner`]). Both read the PRM's changes first into a [`PrmChanges`] index and
//! ask it, page by page, for each Salesforce record's partners: the PRM record it is linked
//! to, the one it names or that names it, and its match-key candidates. Matching therefore
//! gives the same links whichever deployment runs it.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use chrono::{DateTime, Utc};
use indexmap::IndexSet;
use prmsync_mapping::{CrmRecord, LogCode, LogValues, ObjectKind, PrmRecord};

use crate::context::{entry, integration_of, SyncContext};
use crate::objects::ObjectSpec;
use crate::ports::{ChangeFrom, PortError, Rejected};
use crate::store::{LinkState, LogEntry, StoreError};

/// Why the PRM's changes could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    #[error("reading changed PRM {collection}: {source}")]
    Read {
        collection: &'static str,
        source: PortError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hash a match key is indexed by: two independent 64-bit SipHashes, so two different
/// keys share one only with a chance of about 2^-128 per pair.
pub fn key_hash(key: &str) -> u128 {
    let mut a = DefaultHasher::new();
    key.hash(&mut a);
    let mut b = DefaultHasher::new();
    (0x9e37_79b9_u32, key).hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The PRM's changes of a run, indexed by what pairs them with Salesforce records.
#[derive(Default)]
pub struct PrmChanges {
    /// Every changed id, in read order; a record's position is its number below.
    pub ids: IndexSet<Box<str>>,
    /// Synced (or queued) already, or being synced by the current pass.
    pub taken: Vec<bool>,
    /// Unlinked records naming a Salesforce Id in `crm_id`.
    pub by_crm: HashMap<Box<str>, u32>,
    /// Unlinked records without `crm_id`, by the hash of their match key.
    pub by_key: HashMap<u128, Vec<u32>>,
    /// Records kept whole, up to `hold`.
    held: HashMap<u32, PrmRecord>,
    hold: usize,
    pub newest: Option<DateTime<Utc>>,
    /// Changed records the PRM sent that could not be read: left out of the index (the
    /// rest syncs without them) and logged by the run.
    pub rejected: Vec<Rejected>,
    /// Linked records whose version is not their link's: changed since the sync last
    /// wrote or read them (the sync's own writes read back are not), by position.
    changed_linked: HashSet<u32>,
}

impl PrmChanges {
    /// Linked records changed since their link's version: the PRM changes that could
    /// write to Salesforce (the sync's own writes read back are not counted).
    pub fn linked_changed(&self) -> usize {
        self.changed_linked.len()
    }

    /// Reads every PRM change since `since` (all when None); keeps the first `hold`
    /// records whole.
    pub async fn read(
        ctx: &SyncContext,
        spec: &ObjectSpec,
        since: Option<DateTime<Utc>>,
        hold: usize,
    ) -> Result<Self, PairingError> {
        let mut index = PrmChanges {
            hold,
            ..Default::default()
        };
        let from = ChangeFrom { since, after: None };
        let mut next: Option<String> = None;
        loop {
            let page = ctx
                .prm
                .changed_page(spec.prm_collection(), &from, next.as_deref())
                .await
                .map_err(|source| PairingError::Read {
                    collection: spec.prm_collection(),
                    source,
                })?;
            let ids: Vec<String> = page.records.iter().map(|r| r.id.clone()).collect();
            let linked: HashMap<String, Option<i64>> = if ids.is_empty() {
                HashMap::new()
            } else {
                ctx.store
                    .find_links(spec.kind, &[], &ids)
                    .await?
                    .into_iter()
                    .map(|l| (l.prm_id, l.prm_version))
                    .collect()
            };
            for r in page.records {
                let link_version = linked.get(&r.id).copied();
                let changed = link_version.is_some_and(|v| r.deleted || v != Some(r.version));
                let pos = index.add(spec, r, link_version.is_some());
                if changed {
                    index.changed_linked.insert(pos);
                }
            }
            // A record that cannot be read does not hold the cursor back: like a record
            // whose data a write rejected, it is logged and read again once it changes
            // in the PRM (which moves its updated_at past the cursor).
            for m in &page.rejected {
                index.newest = index.newest.max(m.updated_at);
            }
            index.rejected.extend(page.rejected);
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(index),
            }
        }
    }

    fn add(&mut self, spec: &ObjectSpec, r: PrmRecord, linked: bool) -> u32 {
        self.newest = self.newest.max(Some(r.updated_at));
        let (pos, fresh) = self.ids.insert_full(r.id.as_str().into());
        if fresh {
            self.taken.push(false);
        }
        let pos = pos as u32;
        if !linked && !r.deleted {
            match r.crm_id.as_deref() {
                Some(c) => {
                    self.by_crm.insert(c.into(), pos);
                }
                None => {
                    if let Some(k) = spec.prm_match_key(&r) {
                        self.by_key.entry(key_hash(&k)).or_default().push(pos);
                    }
                }
            }
        }
        if self.held.len() < self.hold || self.held.contains_key(&pos) {
            self.held.insert(pos, r);
        }
        pos
    }

    /// The Integration Log entries of the records the read could not use: one each, with
    /// its id when readable, the problem (with the values it quotes shown as `values`
    /// says) and the fix.
    pub fn rejected_entries(
        &self,
        run_id: &str,
        spec: &ObjectSpec,
        values: LogValues,
    ) -> Vec<LogEntry> {
        malformed_entries(
            run_id,
            spec.kind,
            spec.prm_collection(),
            &self.rejected,
            values,
        )
    }

    pub fn position(&self, id: &str) -> Option<u32> {
        self.ids.get_index_of(id).map(|p| p as u32)
    }

    pub fn id(&self, position: u32) -> &str {
        &self.ids[position as usize]
    }

    /// Marks records synced without handing them out (a pass read them itself, or an
    /// earlier invocation of the planner queued them).
    pub fn mark_taken(&mut self, ids: impl IntoIterator<Item = impl AsRef<str>>) {
        for id in ids {
            if let Some(p) = self.position(id.as_ref()) {
                self.taken[p as usize] = true;
                self.held.remove(&p);
            }
        }
    }

    /// Takes the records at these positions: the held ones whole, the others as ids to
    /// read again. Records taken before are left out.
    pub fn take_refs(
        &mut self,
        positions: impl IntoIterator<Item = u32>,
    ) -> (Vec<PrmRecord>, Vec<String>) {
        let mut held = Vec::new();
        let mut ids = Vec::new();
        for p in positions {
            if std::mem::replace(&mut self.taken[p as usize], true) {
                continue;
            }
            match self.held.remove(&p) {
                Some(r) => held.push(r),
                None => ids.push(self.ids[p as usize].to_string()),
            }
        }
        (held, ids)
    }

    /// [`take_refs`](Self::take_refs), the records not held read again by id (200 per
    /// PRM call).
    pub async fn take(
        &mut self,
        ctx: &SyncContext,
        spec: &ObjectSpec,
        positions: impl IntoIterator<Item = u32>,
    ) -> Result<Vec<PrmRecord>, PortError> {
        let (mut out, ids) = self.take_refs(positions);
        if !ids.is_empty() {
            out.extend(ctx.prm.fetch(spec.prm_collection(), &ids).await?);
        }
        Ok(out)
    }

    pub fn untaken(&self) -> Vec<u32> {
        (0..self.ids.len() as u32)
            .filter(|p| !self.taken[*p as usize])
            .collect()
    }
}

/// The `prm_record_malformed` entries of records a PRM read could not use.
pub fn malformed_entries(
    run_id: &str,
    kind: ObjectKind,
    collection: &str,
    rejected: &[Rejected],
    values: LogValues,
) -> Vec<LogEntry> {
    rejected
        .iter()
        .map(|r| {
            let problem = values.remote(&r.problem, []);
            let what = match &r.id {
                Some(id) => format!("PRM {collection} record {id}"),
                None => format!("a PRM {collection} record without a readable id"),
            };
            let mut e = entry(
                run_id,
                integration_of(kind),
                LogCode::PrmRecordMalformed,
                format!("{what} could not be read and was not synced: {problem}"),
                serde_json::json!({
                    "collection": collection,
                    "id": r.id,
                    "updated_at": r.updated_at,
                    "problem": problem,
                }),
            );
            e.object = Some(kind);
            e.prm_id = r.id.clone();
            e
        })
        .collect()
}

/// Salesforce records that must sync together with the same PRM records: a record with
/// the PRM records it pairs with, or every record of one match key with every candidate.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Unit {
    /// Positions in the Salesforce page.
    pub crm: Vec<usize>,
    /// Positions in the [`PrmChanges`] index.
    pub prm: Vec<u32>,
}

/// An unlinked Salesforce record whose match-key candidates an earlier page (or chunk)
/// took already.
#[derive(Debug, Clone, PartialEq)]
pub struct Spent {
    /// Position in the Salesforce page.
    pub crm: usize,
    pub key: u128,
    /// Positions of the candidates in the [`PrmChanges`] index.
    pub candidates: Vec<u32>,
}

/// A page's pairing: its units, in page order, and its spent records.
#[derive(Debug, Default)]
pub struct Pairing {
    pub units: Vec<Unit>,
    pub spent: Vec<Spent>,
}

/// For people: the PRM id of the organization linked to each Account of these records.
pub async fn organizations_of(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    records: &[&CrmRecord],
) -> Result<HashMap<String, String>, StoreError> {
    if spec.kind != ObjectKind::Person {
        return Ok(HashMap::new());
    }
    let accounts: Vec<String> = records
        .iter()
        .filter_map(|r| r.str_field("AccountId").map(str::to_string))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    Ok(ctx
        .store
        .find_links(ObjectKind::Organization, &accounts, &[])
        .await?
        .into_iter()
        .filter(|l| l.state == LinkState::Linked)
        .map(|l| (l.crm_id, l.prm_id))
        .collect())
}

/// The partners of a page of Salesforce records among the PRM's changes: the PRM record
/// each is linked to, the one it names in its PRM id field, the one naming it in
/// `crm_id`, and, for unlinked records without a PRM id, its match-key candidates. A
/// record whose candidates were all taken before is `spent`. Positions of records taken
/// before are left in the units; [`PrmChanges::take_refs`] skips them.
pub async fn pair_page(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    prm: &PrmChanges,
    page: &[CrmRecord],
) -> Result<Pairing, StoreError> {
    let prm_id_field = spec.prm_id_field();
    let crm_ids: Vec<String> = page.iter().map(|r| r.id.clone()).collect();
    let named: Vec<String> = page
        .iter()
        .filter_map(|r| r.str_field(prm_id_field).map(str::to_string))
        .collect();
    let links = if page.is_empty() {
        Vec::new()
    } else {
        ctx.store.find_links(spec.kind, &crm_ids, &named).await?
    };
    let linked_prm: HashMap<&str, &str> = links
        .iter()
        .map(|l| (l.crm_id.as_str(), l.prm_id.as_str()))
        .collect();
    let unkeyed: Vec<&CrmRecord> = page
        .iter()
        .filter(|r| {
            !r.deleted
                && !linked_prm.contains_key(r.id.as_str())
                && r.str_field(prm_id_field).is_none()
        })
        .collect();
    let org_of = if prm.by_key.is_empty() || unkeyed.is_empty() {
        HashMap::new()
    } else {
        organizations_of(ctx, spec, &unkeyed).await?
    };
    let mut out = Pairing::default();
    let mut unit_of_key: HashMap<u128, usize> = HashMap::new();
    let mut unit_of_prm: HashMap<u32, usize> = HashMap::new();
    for (i, r) in page.iter().enumerate() {
        let mut partners: Vec<u32> = Vec::new();
        partners.extend(linked_prm.get(r.id.as_str()).and_then(|p| prm.position(p)));
        partners.extend(r.str_field(prm_id_field).and_then(|n| prm.position(n)));
        partners.extend(prm.by_crm.get(r.id.as_str()).copied());
        let mut key = None;
        let keyed = !prm.by_key.is_empty()
            && !r.deleted
            && !linked_prm.contains_key(r.id.as_str())
            && r.str_field(prm_id_field).is_none();
        if keyed {
            let hash = spec
                .crm_match_key(r, |account| org_of.get(account).cloned())
                .map(|k| key_hash(&k));
            if let Some((hash, candidates)) = hash.and_then(|h| prm.by_key.get(&h).map(|c| (h, c)))
            {
                if candidates.iter().all(|p| prm.taken[*p as usize]) {
                    out.spent.push(Spent {
                        crm: i,
                        key: hash,
                        candidates: candidates.clone(),
                    });
                } else {
                    key = Some(hash);
                    partners.extend(candidates.iter().copied());
                }
            }
        }
        // The unit this record joins: the one of its key, or of any of its partners.
        let existing = key
            .and_then(|k| unit_of_key.get(&k).copied())
            .or_else(|| partners.iter().find_map(|p| unit_of_prm.get(p).copied()));
        let u = match existing {
            Some(u) => u,
            None => {
                out.units.push(Unit::default());
                out.units.len() - 1
            }
        };
        out.units[u].crm.push(i);
        for p in partners {
            if unit_of_prm.insert(p, u).is_none() {
                out.units[u].prm.push(p);
            }
        }
        if let Some(k) = key {
            unit_of_key.insert(k, u);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hashes_differ_for_different_keys_and_agree_for_one() {
        assert_eq!(key_hash("acme|acme.com"), key_hash("acme|acme.com"));
        assert_ne!(key_hash("acme|acme.com"), key_hash("acme|acme.org"));
    }
}
