//! First-import matching: unlinked records are paired by the ids the sides hold of each
//! other, then by match key; the rest are created on the other side. Sync rule 8 (first
//! import without duplicates) of `docs/sync-rules.md`: a match key with several candidates
//! on either side is ambiguous and nothing is created or linked, also when an earlier page
//! of this run linked the candidate to another record.
//!
//! [`match_records`] decides, without any I/O; `Pass::match_unlinked` gathers the
//! candidates, logs the ambiguities and links the pairs found.

use std::collections::{BTreeMap, HashMap};

use prmsync_mapping::{CrmRecord, LogCode, PrmRecord};
use serde_json::{json, Value};

use super::pair::crm_version;
use super::{Pass, PassError, WorkPair};
use crate::store::{Link, StoreError};

/// How the unlinked records of a pass pair up.
#[derive(Debug, Default)]
pub struct MatchOutcome {
    /// Records of both sides that belong together.
    pub pairs: Vec<(CrmRecord, PrmRecord)>,
    /// Salesforce records with no partner: to create in the PRM.
    pub to_prm: Vec<CrmRecord>,
    /// PRM records with no partner: to create in Salesforce.
    pub to_crm: Vec<PrmRecord>,
    /// Records left alone because their match is ambiguous, in the order found.
    pub ambiguous: Vec<Ambiguous>,
}

/// A record whose match is ambiguous: nothing is created or linked for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ambiguous {
    /// A Salesforce record whose PRM candidate an earlier page of this run linked to
    /// another Salesforce record (`link`).
    Claimed {
        crm_id: String,
        crm_version: String,
        link: Link,
    },
    /// A Salesforce record with several candidates by `key` (on either side).
    Crm {
        crm_id: String,
        crm_version: String,
        key: String,
        crm_candidates: Vec<String>,
        prm_candidates: Vec<String>,
    },
    /// A PRM record with several candidates by `key` (on either side).
    Prm {
        prm_id: String,
        prm_version: i64,
        key: String,
        crm_candidates: Vec<String>,
        prm_candidates: Vec<String>,
    },
}

/// Pairs unlinked records: first by the ids they hold (the PRM's `crm_id`, then
/// Salesforce's PRM Id field `prm_id_field`), then by match key (`crm_key`, `prm_key`);
/// a key with more than one candidate on either side is ambiguous, and so is a Salesforce
/// record in `claimed` (its candidate was linked to another record earlier in this run).
/// A record with an id of the other side is never matched by key. No I/O.
pub fn match_records(
    crm: Vec<CrmRecord>,
    prm: Vec<PrmRecord>,
    prm_id_field: &str,
    claimed: &HashMap<String, Link>,
    crm_key: impl Fn(&CrmRecord) -> Option<String>,
    prm_key: impl Fn(&PrmRecord) -> Option<String>,
) -> MatchOutcome {
    let mut pairs = Vec::new();
    let mut ambiguous = Vec::new();
    // 1. Explicit ids: the PRM's crm_id, then Salesforce's PRM Id field.
    let crm_pos: HashMap<&str, usize> = crm
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let prm_pos: HashMap<&str, usize> = prm
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut crm_taken = vec![false; crm.len()];
    let mut prm_taken = vec![false; prm.len()];
    for (pi, p) in prm.iter().enumerate() {
        if let Some(&ci) = p.crm_id.as_deref().and_then(|c| crm_pos.get(c)) {
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
        if let Some(&pi) = c.str_field(prm_id_field).and_then(|p| prm_pos.get(p)) {
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
        let Some(link) = claimed.get(&c.id) else {
            continue;
        };
        if crm_taken[ci] || c.str_field(prm_id_field).is_some() {
            continue;
        }
        crm_taken[ci] = true;
        ambiguous.push(Ambiguous::Claimed {
            crm_id: c.id.clone(),
            crm_version: crm_version(c),
            link: link.clone(),
        });
    }
    let mut crm_by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (ci, c) in crm.iter().enumerate() {
        // A record with a PRM Id of its own is not matched by key.
        if !crm_taken[ci] && c.str_field(prm_id_field).is_none() {
            if let Some(k) = crm_key(c) {
                crm_by_key.entry(k).or_default().push(ci);
            }
        }
    }
    let mut prm_by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (pi, p) in prm.iter().enumerate() {
        if !prm_taken[pi] && p.crm_id.is_none() {
            if let Some(k) = prm_key(p) {
                prm_by_key.entry(k).or_default().push(pi);
            }
        }
    }
    for (key, cis) in &crm_by_key {
        let Some(pis) = prm_by_key.get(key) else {
            continue;
        };
        for &ci in cis {
            crm_taken[ci] = true;
        }
        for &pi in pis {
            prm_taken[pi] = true;
        }
        if let ([ci], [pi]) = (&cis[..], &pis[..]) {
            pairs.push((*ci, *pi));
            continue;
        }
        let crm_candidates: Vec<String> = cis.iter().map(|&i| crm[i].id.clone()).collect();
        let prm_candidates: Vec<String> = pis.iter().map(|&i| prm[i].id.clone()).collect();
        ambiguous.extend(cis.iter().map(|&ci| Ambiguous::Crm {
            crm_id: crm[ci].id.clone(),
            crm_version: crm_version(&crm[ci]),
            key: key.clone(),
            crm_candidates: crm_candidates.clone(),
            prm_candidates: prm_candidates.clone(),
        }));
        ambiguous.extend(pis.iter().map(|&pi| Ambiguous::Prm {
            prm_id: prm[pi].id.clone(),
            prm_version: prm[pi].version,
            key: key.clone(),
            crm_candidates: crm_candidates.clone(),
            prm_candidates: prm_candidates.clone(),
        }));
    }
    // Move records out: pairs, then the rest to create.
    let mut crm_slots: Vec<Option<CrmRecord>> = crm.into_iter().map(Some).collect();
    let mut prm_slots: Vec<Option<PrmRecord>> = prm.into_iter().map(Some).collect();
    let mut out = MatchOutcome {
        ambiguous,
        ..MatchOutcome::default()
    };
    for (ci, pi) in pairs {
        if let (Some(c), Some(p)) = (crm_slots[ci].take(), prm_slots[pi].take()) {
            out.pairs.push((c, p));
        }
    }
    out.to_prm = untaken(crm_slots, &crm_taken);
    out.to_crm = untaken(prm_slots, &prm_taken);
    out
}

/// The records no match took.
fn untaken<R>(slots: Vec<Option<R>>, taken: &[bool]) -> Vec<R> {
    slots
        .into_iter()
        .zip(taken)
        .filter(|(_, &t)| !t)
        .filter_map(|(r, _)| r)
        .collect()
}

impl<'a> Pass<'a> {
    /// Pairs the unlinked records of the pass ([`match_records`]) and logs the ambiguous
    /// ones, remembering them as rejected until they change.
    pub(super) async fn match_unlinked(
        &mut self,
        crm: Vec<CrmRecord>,
        prm: Vec<PrmRecord>,
        full: bool,
    ) -> Result<MatchOutcome, PassError> {
        let (crm, prm) = self.match_candidates(crm, prm, full).await?;
        let mut outcome = match_records(
            crm,
            prm,
            self.spec.prm_id_field(),
            &self.claimed,
            |r| {
                self.spec
                    .crm_match_key(r, |account| self.org_links.prm_id_of(account))
            },
            |r| self.spec.prm_match_key(r),
        );
        for a in std::mem::take(&mut outcome.ambiguous) {
            self.report_ambiguous(a);
        }
        Ok(outcome)
    }

    fn report_ambiguous(&mut self, a: Ambiguous) {
        let obj = self.spec.crm_object();
        let kind = self.spec.kind;
        match a {
            Ambiguous::Claimed {
                crm_id,
                crm_version,
                link,
            } => {
                self.rejected.push(("crm", crm_id.clone(), crm_version));
                self.log(
                    LogCode::AmbiguousMatch,
                    Some(&crm_id),
                    None,
                    format!(
                        "{obj} {crm_id} matches PRM {kind} {}, which this run linked to {obj} {} by the same key; nothing was created or linked",
                        link.prm_id, link.crm_id
                    ),
                    json!({"crm_candidates": [crm_id, link.crm_id], "prm_candidates": [link.prm_id]}),
                );
            }
            Ambiguous::Crm {
                crm_id,
                crm_version,
                key,
                crm_candidates,
                prm_candidates,
            } => {
                self.rejected.push(("crm", crm_id.clone(), crm_version));
                self.log(
                    LogCode::AmbiguousMatch,
                    Some(&crm_id),
                    None,
                    format!(
                        "{obj} {crm_id} matches {} PRM {kind}s ({}); nothing was created or linked",
                        prm_candidates.len(),
                        prm_candidates.join(", ")
                    ),
                    json!({"key": self.values().value(&json!(key)), "crm_candidates": crm_candidates, "prm_candidates": prm_candidates}),
                );
            }
            Ambiguous::Prm {
                prm_id,
                prm_version,
                key,
                crm_candidates,
                prm_candidates,
            } => {
                self.rejected
                    .push(("prm", prm_id.clone(), prm_version.to_string()));
                self.log(
                    LogCode::AmbiguousMatch,
                    None,
                    Some(&prm_id),
                    format!(
                        "PRM {kind} {prm_id} matches {} Salesforce {obj}s ({}); nothing was created or linked",
                        crm_candidates.len(),
                        crm_candidates.join(", ")
                    ),
                    json!({"key": self.values().value(&json!(key)), "crm_candidates": crm_candidates, "prm_candidates": prm_candidates}),
                );
            }
        }
    }

    /// Links the pairs matching found, each saved at once (on a conflict another worker's
    /// link stands), and returns them as pairs in work.
    pub(super) async fn link_matched(
        &mut self,
        matched: Vec<(CrmRecord, PrmRecord)>,
    ) -> Result<Vec<WorkPair>, PassError> {
        let kind = self.spec.kind;
        let mut out = Vec::with_capacity(matched.len());
        for (crm, prm) in matched {
            let mut link = Link::new(kind, &prm.id, &crm.id);
            link.crm_modstamp = crm.modstamp;
            link.prm_version = Some(prm.version);
            self.log(
                LogCode::RecordLinked,
                Some(&crm.id),
                Some(&prm.id),
                format!(
                    "Linked existing {kind} {} with Salesforce {} {} (first-import match)",
                    prm.id,
                    self.spec.crm_object(),
                    crm.id
                ),
                Value::Null,
            );
            if !self.dry_run {
                match self.ctx.store.save_link(&link).await {
                    Ok(saved) => link = saved,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            self.add_org_link(&link);
            self.children_pending(&link).await?;
            let mut pair = WorkPair::new(link);
            pair.crm = Some(crm);
            pair.prm = Some(prm);
            pair.dirty = true;
            pair.matched = true;
            out.push(pair);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::testkit::{at, crm, prm};
    use prmsync_mapping::ObjectKind;

    /// Matches by the `key` field both sides carry, with `PRM_Id__c` as the id field.
    fn by_key(
        crm: Vec<CrmRecord>,
        prm: Vec<PrmRecord>,
        claimed: &HashMap<String, Link>,
    ) -> MatchOutcome {
        match_records(
            crm,
            prm,
            "PRM_Id__c",
            claimed,
            |r| r.str_field("key").map(str::to_string),
            |r| r.str_field("key").map(str::to_string),
        )
    }

    fn c(id: &str, key: &str) -> CrmRecord {
        crm(id, at(9, 0), json!({"key": key}))
    }

    fn p(id: &str, key: &str) -> PrmRecord {
        prm(id, 1, at(9, 0), json!({"key": key}))
    }

    fn ids(pairs: &[(CrmRecord, PrmRecord)]) -> Vec<(&str, &str)> {
        pairs
            .iter()
            .map(|(c, p)| (c.id.as_str(), p.id.as_str()))
            .collect()
    }

    #[test]
    fn a_unique_match_key_pairs_the_two_records() {
        let out = by_key(
            vec![c("001A", "north"), c("001B", "south")],
            vec![p("org_1", "north")],
            &HashMap::new(),
        );
        assert_eq!(ids(&out.pairs), vec![("001A", "org_1")]);
        assert_eq!(out.to_prm.len(), 1);
        assert_eq!(out.to_prm[0].id, "001B");
        assert!(out.to_crm.is_empty());
        assert!(out.ambiguous.is_empty());
    }

    #[test]
    fn a_match_key_with_several_candidates_is_ambiguous_and_nothing_is_created() {
        let out = by_key(
            vec![c("001A", "north"), c("001B", "north")],
            vec![p("org_1", "north")],
            &HashMap::new(),
        );
        assert!(out.pairs.is_empty());
        assert!(out.to_prm.is_empty() && out.to_crm.is_empty());
        let who: Vec<String> = out
            .ambiguous
            .iter()
            .map(|a| match a {
                Ambiguous::Crm {
                    crm_id,
                    prm_candidates,
                    ..
                } => {
                    assert_eq!(prm_candidates, &vec!["org_1".to_string()]);
                    crm_id.clone()
                }
                Ambiguous::Prm {
                    prm_id,
                    crm_candidates,
                    ..
                } => {
                    assert_eq!(crm_candidates.len(), 2);
                    prm_id.clone()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(who, vec!["001A", "001B", "org_1"]);
    }

    #[test]
    fn no_candidate_means_a_create_on_the_other_side() {
        let out = by_key(
            vec![c("001A", "north")],
            vec![p("org_1", "south")],
            &HashMap::new(),
        );
        assert!(out.pairs.is_empty());
        assert_eq!(out.to_prm[0].id, "001A");
        assert_eq!(out.to_crm[0].id, "org_1");
    }

    #[test]
    fn ids_held_of_the_other_side_pair_before_match_keys() {
        let mut named = p("org_1", "other");
        named.crm_id = Some("001A".into());
        let mut by_prm_id = c("001B", "other");
        by_prm_id.fields.insert("PRM_Id__c".into(), json!("org_2"));
        let out = by_key(
            vec![c("001A", "north"), by_prm_id],
            vec![named, p("org_2", "south"), p("org_3", "north")],
            &HashMap::new(),
        );
        assert_eq!(ids(&out.pairs), vec![("001A", "org_1"), ("001B", "org_2")]);
        assert_eq!(out.to_crm.len(), 1, "org_3's candidate was taken by its id");
    }

    #[test]
    fn a_record_with_an_id_of_the_other_side_is_never_matched_by_key() {
        let mut named = c("001A", "north");
        named.fields.insert("PRM_Id__c".into(), json!("org_gone"));
        let out = by_key(vec![named], vec![p("org_1", "north")], &HashMap::new());
        assert!(out.pairs.is_empty());
        assert_eq!(out.to_prm.len(), 1);
        assert_eq!(out.to_crm.len(), 1);
    }

    #[test]
    fn a_candidate_an_earlier_page_linked_makes_the_record_ambiguous() {
        let claimed = HashMap::from([(
            "001B".to_string(),
            Link::new(ObjectKind::Organization, "org_1", "001A"),
        )]);
        let out = by_key(vec![c("001B", "north")], vec![], &claimed);
        assert!(out.pairs.is_empty() && out.to_prm.is_empty());
        assert!(matches!(
            &out.ambiguous[..],
            [Ambiguous::Claimed { crm_id, link, .. }] if crm_id == "001B" && link.crm_id == "001A"
        ));
    }
}
