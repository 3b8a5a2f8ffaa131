//! Matching.

use std::collections::{BTreeMap, HashMap, HashSet};

use prmsync_mapping::{rules, CrmRecord, LogCode, ObjectKind, PrmRecord};
use serde_json::json;

use super::*;

impl<'a> Pass<'a> {
    pub(super) fn crm_eligible(&self, r: &CrmRecord) -> bool {
        if r.deleted || !self.spec.crm_selected(r) {
            return false;
        }
        self.spec.kind != ObjectKind::Person || self.org_links.org_of_contact(r).is_some()
    }

    pub(super) fn prm_eligible(&self, r: &PrmRecord) -> bool {
        if r.deleted {
            return false;
        }
        self.spec.kind != ObjectKind::Person || self.org_links.account_of_person(r).is_some()
    }

    pub(super) fn match_key_crm(&self, r: &CrmRecord) -> Option<String> {
        self.spec
            .crm_match_key(r, |account| self.org_links.prm_id_of(account))
    }

    pub(super) fn match_key_prm(&self, r: &PrmRecord) -> Option<String> {
        self.spec.prm_match_key(r)
    }

    /// Pairs unlinked records (by explicit ids, then by match key) and returns the pairs,
    /// the Salesforce records to create in the PRM and the PRM records to create in
    /// Salesforce (DESIGN 8).
    #[allow(clippy::type_complexity)]
    pub(super) async fn match_unlinked(
        &mut self,
        crm: Vec<CrmRecord>,
        prm: Vec<PrmRecord>,
        full: bool,
    ) -> Result<(Vec<(CrmRecord, PrmRecord)>, Vec<CrmRecord>, Vec<PrmRecord>), PassError> {
        let prm_id_field = self.spec.prm_id_field().to_string();
        // Records rejected before are left alone until they change (a full run retries all).
        let (crm, prm) = if self.retry_rejected {
            (crm, prm)
        } else {
            let ids: Vec<String> = crm.iter().map(|r| r.id.clone()).collect();
            let rejected = self
                .ctx
                .store
                .rejected_versions(self.spec.kind, "crm", &ids)
                .await?;
            let crm: Vec<CrmRecord> = crm
                .into_iter()
                .filter(|r| rejected.get(&r.id) != Some(&crm_version(r)))
                .collect();
            let ids: Vec<String> = prm.iter().map(|r| r.id.clone()).collect();
            let rejected = self
                .ctx
                .store
                .rejected_versions(self.spec.kind, "prm", &ids)
                .await?;
            let prm: Vec<PrmRecord> = prm
                .into_iter()
                .filter(|r| rejected.get(&r.id) != Some(&r.version.to_string()))
                .collect();
            (crm, prm)
        };
        let mut crm: Vec<CrmRecord> = crm.into_iter().filter(|r| self.crm_eligible(r)).collect();
        let mut prm: Vec<PrmRecord> = prm.into_iter().filter(|r| self.prm_eligible(r)).collect();

        // Records named by the other side's id field but not in hand (a crash between a
        // create and its link, or an id set by hand).
        if !full {
            let have_prm: HashSet<&str> = prm.iter().map(|r| r.id.as_str()).collect();
            let want_prm: Vec<String> = crm
                .iter()
                .filter_map(|r| r.str_field(&prm_id_field))
                .filter(|id| !have_prm.contains(id))
                .map(str::to_string)
                .collect();
            let have_crm: HashSet<&str> = crm.iter().map(|r| r.id.as_str()).collect();
            let want_crm: Vec<String> = prm
                .iter()
                .filter_map(|r| r.crm_id.as_deref())
                .filter(|id| !have_crm.contains(id))
                .map(str::to_string)
                .collect();
            let linked_prm: HashSet<String> = self
                .ctx
                .store
                .find_links(self.spec.kind, &[], &want_prm)
                .await?
                .into_iter()
                .map(|l| l.prm_id)
                .collect();
            let want_prm: Vec<String> = want_prm
                .into_iter()
                .filter(|id| !linked_prm.contains(id))
                .collect();
            if !want_prm.is_empty() {
                let fetched = self
                    .ctx
                    .prm
                    .fetch(self.spec.prm_collection(), &want_prm)
                    .await?;
                prm.extend(fetched.into_iter().filter(|r| self.prm_eligible(r)));
            }
            let linked_crm: HashSet<String> = self
                .ctx
                .store
                .find_links(self.spec.kind, &want_crm, &[])
                .await?
                .into_iter()
                .map(|l| l.crm_id)
                .collect();
            let want_crm: Vec<String> = want_crm
                .into_iter()
                .filter(|id| !linked_crm.contains(id))
                .collect();
            if !want_crm.is_empty() {
                let fields = self.spec.crm_fields();
                let fetched = self
                    .ctx
                    .crm
                    .find(self.spec.crm_object(), &fields, "Id", &want_crm)
                    .await?;
                crm.extend(fetched.into_iter().filter(|r| self.crm_eligible(r)));
            }
            // People: look up unlinked records by email on the other side.
            if self.spec.kind == ObjectKind::Person {
                let have: HashSet<String> = crm.iter().map(|r| r.id.clone()).collect();
                let emails: Vec<String> = prm
                    .iter()
                    .filter(|r| r.crm_id.is_none())
                    .filter_map(|r| rules::person_match_key(r.str_field("email")))
                    .collect();
                if !emails.is_empty() {
                    let fields = self.spec.crm_fields();
                    let found = self
                        .ctx
                        .crm
                        .find("Contact", &fields, "Email", &emails)
                        .await?;
                    let ids: Vec<String> = found.iter().map(|r| r.id.clone()).collect();
                    let linked: HashSet<String> = self
                        .ctx
                        .store
                        .find_links(self.spec.kind, &ids, &[])
                        .await?
                        .into_iter()
                        .map(|l| l.crm_id)
                        .collect();
                    crm.extend(found.into_iter().filter(|r| {
                        !have.contains(&r.id) && !linked.contains(&r.id) && self.crm_eligible(r)
                    }));
                }
                let have: HashSet<String> = prm.iter().map(|r| r.id.clone()).collect();
                let lookups: Vec<String> = crm
                    .iter()
                    .filter(|r| r.str_field(&prm_id_field).is_none())
                    .filter_map(|r| rules::person_match_key(r.str_field("Email")))
                    .collect();
                for email in lookups {
                    let found = self.ctx.prm.people_by_email(&email).await?;
                    let ids: Vec<String> = found.iter().map(|r| r.id.clone()).collect();
                    let linked: HashSet<String> = self
                        .ctx
                        .store
                        .find_links(self.spec.kind, &[], &ids)
                        .await?
                        .into_iter()
                        .map(|l| l.prm_id)
                        .collect();
                    for r in found {
                        if !have.contains(&r.id) && !linked.contains(&r.id) && self.prm_eligible(&r)
                        {
                            prm.push(r);
                        }
                    }
                }
            }
        }
        let mut crm = dedupe_crm(crm);
        let mut prm = dedupe_prm(prm);

        let mut pairs = Vec::new();
        // 1. Explicit ids: the PRM's crm_id, then Salesforce's PRM Id field.
        let crm_pos: HashMap<String, usize> = crm
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let prm_pos: HashMap<String, usize> = prm
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let mut crm_taken = vec![false; crm.len()];
        let mut prm_taken = vec![false; prm.len()];
        for (pi, p) in prm.iter().enumerate() {
            if let Some(&ci) = p.crm_id.as_ref().and_then(|c| crm_pos.get(c)) {
                if !crm_taken[ci] {
                    crm_taken[ci] = true;
                    prm_taken[pi] = true;
                    pairs.push((ci, pi));
                }
            }
        }
        for (ci, c) in crm.iter().enumerate() {
            if crm_taken[ci] {
                continue;
            }
            if let Some(&pi) = c.str_field(&prm_id_field).and_then(|p| prm_pos.get(p)) {
                if !prm_taken[pi] {
                    crm_taken[ci] = true;
                    prm_taken[pi] = true;
                    pairs.push((ci, pi));
                }
            }
        }
        // 2. Match keys; a key with several candidates on either side is ambiguous, also
        // when an earlier page of this run linked the PRM record to another record.
        for (ci, c) in crm.iter().enumerate() {
            let Some(link) = self.claimed.get(&c.id).cloned() else {
                continue;
            };
            if crm_taken[ci] || c.str_field(&prm_id_field).is_some() {
                continue;
            }
            crm_taken[ci] = true;
            self.rejected.push(("crm", c.id.clone(), crm_version(c)));
            self.log(
                LogCode::AmbiguousMatch,
                Some(&c.id),
                None,
                format!(
                    "{} {} matches PRM {} {}, which this run linked to {} {} by the same key; nothing was created or linked",
                    self.spec.crm_object(),
                    c.id,
                    self.spec.kind,
                    link.prm_id,
                    self.spec.crm_object(),
                    link.crm_id
                ),
                json!({"crm_candidates": [c.id, link.crm_id], "prm_candidates": [link.prm_id]}),
            );
        }
        let mut crm_by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (ci, c) in crm.iter().enumerate() {
            // A record with a PRM Id of its own is not matched by key.
            if !crm_taken[ci] && c.str_field(&prm_id_field).is_none() {
                if let Some(k) = self.match_key_crm(c) {
                    crm_by_key.entry(k).or_default().push(ci);
                }
            }
        }
        let mut prm_by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (pi, p) in prm.iter().enumerate() {
            if !prm_taken[pi] && p.crm_id.is_none() {
                if let Some(k) = self.match_key_prm(p) {
                    prm_by_key.entry(k).or_default().push(pi);
                }
            }
        }
        for (key, cis) in &crm_by_key {
            let Some(pis) = prm_by_key.get(key) else {
                continue;
            };
            if cis.len() == 1 && pis.len() == 1 {
                crm_taken[cis[0]] = true;
                prm_taken[pis[0]] = true;
                pairs.push((cis[0], pis[0]));
                continue;
            }
            let crm_list: Vec<String> = cis.iter().map(|&i| crm[i].id.clone()).collect();
            let prm_list: Vec<String> = pis.iter().map(|&i| prm[i].id.clone()).collect();
            for &ci in cis {
                crm_taken[ci] = true;
                self.rejected
                    .push(("crm", crm[ci].id.clone(), crm_version(&crm[ci])));
                self.log(
                    LogCode::AmbiguousMatch,
                    Some(&crm[ci].id),
                    None,
                    format!(
                        "{} {} matches {} PRM {}s ({}); nothing was created or linked",
                        self.spec.crm_object(),
                        crm[ci].id,
                        prm_list.len(),
                        self.spec.kind,
                        prm_list.join(", ")
                    ),
                    json!({"key": key, "crm_candidates": crm_list, "prm_candidates": prm_list}),
                );
            }
            for &pi in pis {
                prm_taken[pi] = true;
                self.rejected
                    .push(("prm", prm[pi].id.clone(), prm[pi].version.to_string()));
                self.log(
                    LogCode::AmbiguousMatch,
                    None,
                    Some(&prm[pi].id),
                    format!(
                        "PRM {} {} matches {} Salesforce {}s ({}); nothing was created or linked",
                        self.spec.kind,
                        prm[pi].id,
                        crm_list.len(),
                        self.spec.crm_object(),
                        crm_list.join(", ")
                    ),
                    json!({"key": key, "crm_candidates": crm_list, "prm_candidates": prm_list}),
                );
            }
        }
        // Move records out: pairs, then the rest to create.
        let mut crm_slots: Vec<Option<CrmRecord>> = crm.drain(..).map(Some).collect();
        let mut prm_slots: Vec<Option<PrmRecord>> = prm.drain(..).map(Some).collect();
        let mut out_pairs = Vec::new();
        for (ci, pi) in pairs {
            if let (Some(c), Some(p)) = (crm_slots[ci].take(), prm_slots[pi].take()) {
                out_pairs.push((c, p));
            }
        }
        let to_prm = crm_slots
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !crm_taken[*i])
            .filter_map(|(_, c)| c)
            .collect();
        let to_crm = prm_slots
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !prm_taken[*i])
            .filter_map(|(_, p)| p)
            .collect();
        Ok((out_pairs, to_prm, to_crm))
    }
}
