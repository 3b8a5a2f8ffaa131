//! Merge planning: what one linked pair needs written. Every mapped field is merged three
//! ways against the link's snapshot, the reference (parent, or a person's organization) is
//! merged in PRM-id space, and the values the sync rules keep (Salesforce's PRM Id and
//! Record Status, the PRM's `crm_id`, a person's kind) are set. Sync rules 3 (three-way
//! merge), 4 (no echoes: only differing values are written), 6 (a person syncs while its
//! organization does) and 9 (hierarchy) of `docs/sync-rules.md`.
//!
//! [`plan_pair`] decides, without any I/O; `Pass::plan_work_pair` applies its plan to the
//! pair in work and logs what it found.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prmsync_mapping::config::{MappingConfig, Side};
use prmsync_mapping::merge::{merge_field, Conflict, FieldRule, MergeInput, Recency};
use prmsync_mapping::transform::UnmappedValue;
use prmsync_mapping::transform::{read_crm_cow, read_prm_cow, write_crm, write_prm};
use prmsync_mapping::{rules, CrmRecord, Fields, LogCode, ObjectKind, PrmRecord};
use serde_json::{json, Value};

use super::pair::pair_versions_of;
use super::references::OrgLinks;
use super::{Pass, PassError, WorkPair};
use crate::objects::{keys, ObjectSpec};
use crate::store::{Link, LinkState};

/// What a plan needs besides the pair: the mapping's merge rules, the object pair's rules
/// and the organization links references translate through.
#[derive(Debug, Clone, Copy)]
pub struct PlanRules<'a> {
    pub mapping: &'a MappingConfig,
    pub spec: &'a ObjectSpec,
    pub org_links: &'a OrgLinks,
}

/// What one linked pair needs: the patch for each side, the link's new snapshot and
/// versions, and what the merge found on the way (conflicts, unmapped values, a reference
/// not linked yet).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PairPlan {
    pub crm_patch: Fields,
    pub prm_patch: Fields,
    /// Snapshot keys whose new value goes to Salesforce (restored if that write fails).
    pub crm_snapshot_keys: Vec<String>,
    /// Snapshot keys whose new value goes to the PRM (restored if that write fails).
    pub prm_snapshot_keys: Vec<String>,
    /// The link's snapshot after the merge.
    pub snapshot: BTreeMap<String, Value>,
    /// The versions seen: the link's, or the newer ones read.
    pub crm_modstamp: Option<DateTime<Utc>>,
    pub prm_version: Option<i64>,
    /// The link differs from the stored one (snapshot, versions or retry flag) and is saved.
    pub link_changed: bool,
    /// The link is to be tried again on a later run (its reference is not linked yet).
    pub retry: bool,
    /// A value could not be mapped: the pair is not retried until a record changes.
    pub rejected: bool,
    /// In the order they were found; each becomes one log entry.
    pub findings: Vec<PlanFinding>,
}

/// Something the merge of a pair found that the Integration Log reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanFinding {
    /// A value with no entry in its field's value table; the field is left alone.
    Unmapped(UnmappedValue),
    /// A field changed differently on both sides; the conflict rule picked the winner.
    Conflict {
        key: String,
        prm_field: String,
        crm_field: String,
        conflict: Conflict,
    },
    /// The Salesforce record refers to `account_id` in `field`, an organization that does
    /// not sync yet. Reported once: not again while the link waits for its retry.
    ReferenceNotLinked {
        account_id: String,
        field: &'static str,
        required: bool,
    },
}

/// The three-way merge plan of one linked pair: the patches for each side, the new
/// snapshot and versions of the link, and the conflicts and problems found. No I/O.
///
/// `None` when the pair does not sync now: its link is not live, neither record is in
/// hand, or (people) its organization does not sync.
pub fn plan_pair(
    rules: PlanRules<'_>,
    link: &Link,
    crm: Option<&CrmRecord>,
    prm: Option<&PrmRecord>,
) -> Option<PairPlan> {
    if link.state != LinkState::Linked || (crm.is_none() && prm.is_none()) {
        return None;
    }
    if rules.spec.kind == ObjectKind::Person {
        // A person syncs while its organization does.
        let org_syncs = match (crm, prm) {
            (Some(c), _) if c.str_field("AccountId").is_some() => {
                rules.org_links.org_of_contact(c).is_some()
            }
            (_, Some(p)) => rules.org_links.account_of_person(p).is_some(),
            _ => true,
        };
        if !org_syncs {
            return None;
        }
    }
    // A retry is served by this merge; the reference may ask for another one.
    let was_retry = link.retry;
    let mut plan = PairPlan {
        snapshot: link.snapshot.clone(),
        crm_modstamp: link.crm_modstamp,
        prm_version: link.prm_version,
        link_changed: was_retry,
        ..PairPlan::default()
    };
    let recency = Recency {
        prm: prm.map(|p| p.updated_at),
        crm: crm.and_then(|c| c.modstamp),
    };
    plan_fields(rules, crm, prm, recency, &mut plan);
    plan_reference(rules, crm, prm, recency, was_retry, &mut plan);
    plan_setup_values(rules.spec, link, crm, prm, &mut plan);
    // Versions seen.
    if let Some(ms) = crm.and_then(|c| c.modstamp) {
        if plan.crm_modstamp != Some(ms) {
            plan.crm_modstamp = Some(ms);
            plan.link_changed = true;
        }
    }
    if let Some(v) = prm.map(|p| p.version) {
        if plan.prm_version != Some(v) {
            plan.prm_version = Some(v);
            plan.link_changed = true;
        }
    }
    Some(plan)
}

/// The side a linked pair must read before it is planned, when it holds only one: a
/// mapped field this link never settled (no snapshot entry, because the field was mapped
/// after the link was made) is settled from both sides as on a first link, never from a
/// missing snapshot, whatever its direction. No I/O.
pub fn side_to_read(
    spec: &ObjectSpec,
    link: &Link,
    crm: Option<&CrmRecord>,
    prm: Option<&PrmRecord>,
) -> Option<Side> {
    if link.state != LinkState::Linked {
        return None;
    }
    let missing = match (crm, prm) {
        (Some(_), None) => Side::Prm,
        (None, Some(_)) => Side::Crm,
        _ => return None,
    };
    spec.fields
        .iter()
        .any(|f| f.fixed.is_none() && !link.snapshot.contains_key(&f.key()))
        .then_some(missing)
}

/// The merge rule of fields without one of their own.
fn default_rule(mapping: &MappingConfig) -> FieldRule {
    FieldRule {
        direction: Default::default(),
        conflict: mapping.sync.default_conflict,
        initial_winner: mapping.sync.initial_link_winner,
    }
}

/// The three-way merge of every mapped field.
fn plan_fields(
    rules: PlanRules<'_>,
    crm: Option<&CrmRecord>,
    prm: Option<&PrmRecord>,
    recency: Recency,
    plan: &mut PairPlan,
) {
    let rule_base = default_rule(rules.mapping);
    for f in rules.spec.fields.iter() {
        if f.fixed.is_some() {
            continue;
        }
        let key = f.key();
        if (crm.is_none() || prm.is_none()) && !plan.snapshot.contains_key(&key) {
            // Never settled and one side unknown: left alone (see [`side_to_read`]).
            continue;
        }
        let crm_value = match crm.map(|c| read_crm_cow(f, &c.fields)) {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                plan.findings.push(PlanFinding::Unmapped(e));
                plan.rejected = true;
                continue;
            }
            None => None,
        };
        let prm_value = prm.map(|p| read_prm_cow(f, &p.fields));
        let rule = FieldRule {
            direction: f.direction,
            conflict: rules.mapping.conflict_rule(f),
            ..rule_base
        };
        let m = merge_field(
            rule,
            MergeInput {
                snapshot: plan.snapshot.get(&key),
                prm: prm_value.as_deref(),
                crm: crm_value.as_deref(),
            },
            recency,
        );
        if m.write_crm {
            if let Err(e) = write_crm(f, &m.value, &mut plan.crm_patch) {
                plan.findings.push(PlanFinding::Unmapped(e));
                plan.rejected = true;
                continue;
            }
            plan.crm_snapshot_keys.push(key.clone());
        }
        if m.write_prm {
            write_prm(f, &m.value, &mut plan.prm_patch);
            plan.prm_snapshot_keys.push(key.clone());
        }
        if let Some(conflict) = m.conflict {
            plan.findings.push(PlanFinding::Conflict {
                key: key.clone(),
                prm_field: f.prm.as_deref().unwrap_or("-").to_string(),
                crm_field: f.crm.as_deref().unwrap_or("-").to_string(),
                conflict,
            });
        }
        if plan.snapshot.get(&key) != Some(&m.value) {
            plan.snapshot.insert(key, m.value);
            plan.link_changed = true;
        }
    }
}

/// Merges the reference (parent organization or a person's organization) in PRM-id
/// space, translating through the organization links.
/// `was_retry`: the link was marked for a retry already, so its finding was reported.
fn plan_reference(
    rules: PlanRules<'_>,
    crm: Option<&CrmRecord>,
    prm: Option<&PrmRecord>,
    recency: Recency,
    was_retry: bool,
    plan: &mut PairPlan,
) {
    let Some(reference) = rules.spec.reference else {
        return;
    };
    let links = rules.org_links;
    let mut not_linked = None;
    let crm_value = crm.and_then(|c| match c.str_field(reference.crm_field) {
        None => Some(Value::Null),
        Some(raw) => match links.prm_id_of(raw) {
            Some(p) => Some(json!(p)),
            None => {
                not_linked = Some(raw.to_string());
                None
            }
        },
    });
    let prm_value = prm.map(|p| {
        p.str_field(reference.prm_field)
            .map(|s| json!(s))
            .unwrap_or(Value::Null)
    });
    let snapshot = plan.snapshot.get(keys::REFERENCE).cloned();
    let m = merge_field(
        default_rule(rules.mapping),
        MergeInput {
            snapshot: snapshot.as_ref(),
            prm: prm_value.as_ref(),
            crm: crm_value.as_ref(),
        },
        recency,
    );
    let mut value = m.value.clone();
    if m.write_crm {
        let target = match &m.value {
            Value::String(p) => links.crm_id_of(p).map(|c| json!(c)),
            _ if reference.required => None,
            _ => Some(Value::Null),
        };
        match target {
            Some(t) => {
                plan.crm_patch.insert(reference.crm_field.into(), t);
                plan.crm_snapshot_keys.push(keys::REFERENCE.into());
            }
            None => {
                value = snapshot.clone().unwrap_or(Value::Null);
                not_linked = m.value.as_str().map(str::to_string);
            }
        }
    }
    if m.write_prm && !(reference.required && m.value.is_null()) {
        plan.prm_patch
            .insert(reference.prm_field.into(), m.value.clone());
        plan.prm_snapshot_keys.push(keys::REFERENCE.into());
    }
    if snapshot.as_ref() != Some(&value) {
        plan.snapshot.insert(keys::REFERENCE.into(), value);
        plan.link_changed = true;
    }
    if let Some(account_id) = not_linked {
        if !was_retry {
            plan.findings.push(PlanFinding::ReferenceNotLinked {
                account_id,
                field: reference.crm_field,
                required: reference.required,
            });
        }
        // Retried later, without counting the retry flag as a change of the record.
        plan.retry = true;
        plan.link_changed = true;
    }
}

/// The values the sync rules keep: Salesforce's PRM Id and Record Status, the PRM's
/// crm_id, a person's kind.
fn plan_setup_values(
    spec: &ObjectSpec,
    link: &Link,
    crm: Option<&CrmRecord>,
    prm: Option<&PrmRecord>,
    plan: &mut PairPlan,
) {
    if let Some(kind) = prm.and_then(|p| p.str_field("kind")) {
        if spec.kind == ObjectKind::Person && plan.snapshot.get(keys::KIND) != Some(&json!(kind)) {
            plan.snapshot.insert(keys::KIND.into(), json!(kind));
            plan.link_changed = true;
        }
    }
    let merged: Fields = plan.snapshot.clone().into_iter().collect();
    let expected_status = spec
        .status_label(&merged)
        .map(|label| rules::record_status(&label, false));
    let mut want_crm = vec![(
        keys::PRM_ID,
        spec.prm_id_field().to_string(),
        json!(link.prm_id),
    )];
    if let Some(status) = expected_status {
        want_crm.push((
            keys::RECORD_STATUS,
            spec.setup.record_status.clone(),
            json!(status),
        ));
    }
    for (key, field, expected) in want_crm {
        let current = match crm {
            Some(c) => c.fields.get(&field).cloned().unwrap_or(Value::Null),
            None => plan.snapshot.get(key).cloned().unwrap_or(Value::Null),
        };
        if current != expected && !plan.crm_patch.contains_key(&field) {
            plan.crm_patch.insert(field, expected.clone());
            plan.crm_snapshot_keys.push(key.into());
        }
        if plan.snapshot.get(key) != Some(&expected) {
            plan.snapshot.insert(key.into(), expected);
            plan.link_changed = true;
        }
    }
    let expected = json!(link.crm_id);
    let current = match prm {
        Some(p) => json!(p.crm_id),
        None => plan
            .snapshot
            .get(keys::CRM_ID)
            .cloned()
            .unwrap_or(Value::Null),
    };
    if current != expected {
        plan.prm_patch.insert("crm_id".into(), expected.clone());
        plan.prm_snapshot_keys.push(keys::CRM_ID.into());
    }
    if plan.snapshot.get(keys::CRM_ID) != Some(&expected) {
        plan.snapshot.insert(keys::CRM_ID.into(), expected);
        plan.link_changed = true;
    }
}

/// Takes a plan into the pair in work: its patches, snapshot, versions and flags. Returns
/// the findings not logged for this pair yet in this pass (a merge again after a version
/// conflict finds again what the first merge found), which are remembered as logged. No I/O.
pub(super) fn take_plan(pair: &mut WorkPair, plan: PairPlan) -> Vec<PlanFinding> {
    pair.crm_patch.extend(plan.crm_patch);
    pair.prm_patch.extend(plan.prm_patch);
    pair.crm_snapshot_keys.extend(plan.crm_snapshot_keys);
    pair.prm_snapshot_keys.extend(plan.prm_snapshot_keys);
    pair.link.snapshot = plan.snapshot;
    pair.link.crm_modstamp = plan.crm_modstamp;
    pair.link.prm_version = plan.prm_version;
    pair.link.retry = plan.retry;
    pair.dirty |= plan.link_changed;
    pair.rejected |= plan.rejected;
    pair.planned = true;
    let new: Vec<PlanFinding> = plan
        .findings
        .into_iter()
        .filter(|f| !pair.reported.contains(f))
        .collect();
    pair.reported.extend(new.iter().cloned());
    new
}

impl<'a> Pass<'a> {
    /// Plans every pair in work. A pair whose last write was rejected for its data waits
    /// until either record changes (a full run, or `sync-record`, tries it again).
    pub(super) async fn plan_pairs(&mut self, pairs: &mut [WorkPair]) -> Result<(), PassError> {
        let pair_ids: Vec<String> = pairs.iter().map(|p| p.link.prm_id.clone()).collect();
        let rejected_pairs = if self.retry_rejected || pair_ids.is_empty() {
            BTreeMap::new()
        } else {
            self.ctx
                .store
                .rejected_versions(self.spec.kind, "link", &pair_ids)
                .await?
        };
        // A field this link never settled is settled from both sides: the record not in
        // hand is read first ([`side_to_read`]); one found deleted is left out, and the
        // pair's unsettled fields wait.
        let spec = self.spec.clone();
        self.read_other_sides(
            pairs,
            |p| {
                (!p.marks_deleted)
                    .then(|| side_to_read(&spec, &p.link, p.crm.as_ref(), p.prm.as_ref()))
                    .flatten()
            },
            false,
        )
        .await?;
        for pair in pairs.iter_mut() {
            if pair.created.is_none()
                && rejected_pairs.get(&pair.link.prm_id) == Some(&pair_versions_of(pair))
            {
                continue;
            }
            self.plan_work_pair(pair);
        }
        Ok(())
    }

    /// Plans a linked pair ([`plan_pair`]) and takes the plan into the pair in work; logs
    /// the conflicts, unmapped values and references not linked yet it found.
    pub(super) fn plan_work_pair(&mut self, pair: &mut WorkPair) {
        if pair.marks_deleted {
            // The lifecycle phase planned its one write: the Record Status.
            return;
        }
        let rules = PlanRules {
            mapping: &self.ctx.mapping,
            spec: &self.spec,
            org_links: &self.org_links,
        };
        let Some(plan) = plan_pair(rules, &pair.link, pair.crm.as_ref(), pair.prm.as_ref()) else {
            return;
        };
        let findings = take_plan(pair, plan);
        self.report_findings(pair, findings);
    }

    /// Logs the findings of a merge of `pair`.
    pub(super) fn report_findings(&mut self, pair: &WorkPair, findings: Vec<PlanFinding>) {
        for finding in findings {
            self.report_finding(&pair.link.crm_id, &pair.link.prm_id, finding);
        }
    }

    fn report_finding(&mut self, crm_id: &str, prm_id: &str, finding: PlanFinding) {
        match finding {
            PlanFinding::Unmapped(e) => self.unmapped(&e, Some(crm_id), Some(prm_id)),
            PlanFinding::Conflict {
                key,
                prm_field,
                crm_field,
                conflict: c,
            } => {
                self.out.counts.conflicts += 1;
                let values = self.values();
                self.log(
                    LogCode::Conflict,
                    Some(crm_id),
                    Some(prm_id),
                    format!(
                        "{} changed on both sides: PRM `{}` = {}, Salesforce `{}` = {}; the {} value was kept",
                        key,
                        prm_field,
                        values.show(&c.prm),
                        crm_field,
                        values.show(&c.crm),
                        if c.winner == prmsync_mapping::config::Side::Prm { "PRM" } else { "Salesforce" }
                    ),
                    json!({"field": key, "prm": values.value(&c.prm), "crm": values.value(&c.crm), "winner": c.winner.as_str()}),
                );
            }
            PlanFinding::ReferenceNotLinked {
                account_id,
                field,
                required,
            } => {
                let code = if required {
                    LogCode::AccountNotLinked
                } else {
                    LogCode::ParentNotLinked
                };
                self.log(
                    code,
                    Some(crm_id),
                    Some(prm_id),
                    format!(
                        "{} {crm_id} refers to {account_id} in `{field}`, which does not sync with the PRM yet; the reference is set once it does",
                        self.spec.crm_object(),
                    ),
                    json!({"reference": account_id}),
                );
                if self.hold_unresolved {
                    // A later page of this run may link it: held back for the caller.
                    if let Some(entry) = self.out.log.pop() {
                        self.out.held_back_entries.push(entry);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::testkit::{at, crm, link_in, prm, spec};

    /// An Account and a PRM organization holding the same values, linked but never merged.
    fn organization_pair() -> (Link, CrmRecord, PrmRecord) {
        let crm = crm(
            "001A",
            at(9, 0),
            json!({"Name": "Northwind", "PRM_Organization_Status__c": "Active Partner",
                   "Website": "https://northwind.example", "Phone": "+49 30 1", "PRM_Sync__c": true}),
        );
        let prm = prm(
            "org_1",
            1,
            at(9, 0),
            json!({"name": "Northwind", "kind": "partner", "status": "active",
                   "website": "https://northwind.example", "phone": "+49 30 1"}),
        );
        (
            link_in(LinkState::Linked, ObjectKind::Organization, "org_1", "001A"),
            crm,
            prm,
        )
    }

    /// What the writes of a plan leave in both systems and the link.
    fn written(plan: &PairPlan, link: &mut Link, crm: &mut CrmRecord, prm: &mut PrmRecord) {
        crm.fields.extend(plan.crm_patch.clone());
        for (k, v) in &plan.prm_patch {
            if k == "crm_id" {
                prm.crm_id = v.as_str().map(str::to_string);
            } else {
                prm.fields.insert(k.clone(), v.clone());
            }
        }
        link.snapshot = plan.snapshot.clone();
        link.crm_modstamp = plan.crm_modstamp;
        link.prm_version = plan.prm_version;
        link.retry = plan.retry;
    }

    /// The organization pair after its first merge was written.
    fn synced_organization(
        mapping: &MappingConfig,
        spec: &ObjectSpec,
        links: &OrgLinks,
    ) -> (Link, CrmRecord, PrmRecord) {
        let (mut link, mut c, mut p) = organization_pair();
        let rules = PlanRules {
            mapping,
            spec,
            org_links: links,
        };
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).expect("a live pair");
        written(&plan, &mut link, &mut c, &mut p);
        (link, c, p)
    }

    #[test]
    fn first_merge_writes_the_ids_and_record_status_the_sync_rules_keep() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let (link, c, p) = organization_pair();
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert_eq!(plan.crm_patch["PRM_Id__c"], json!("org_1"));
        assert_eq!(
            plan.crm_patch["PRM_Record_Status__c"],
            json!("Active Partner")
        );
        assert_eq!(plan.prm_patch["crm_id"], json!("001A"));
        assert_eq!(plan.prm_patch.len(), 1, "{:?}", plan.prm_patch);
        assert!(plan.findings.is_empty(), "{:?}", plan.findings);
        assert!(plan.link_changed);
        assert_eq!(plan.snapshot["name"], json!("Northwind"));
    }

    #[test]
    fn planning_again_after_the_writes_writes_nothing() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let (link, c, p) = synced_organization(&mapping, &spec, &links);
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert!(plan.crm_patch.is_empty(), "{:?}", plan.crm_patch);
        assert!(plan.prm_patch.is_empty(), "{:?}", plan.prm_patch);
        assert!(!plan.link_changed);
        assert_eq!(plan.snapshot, link.snapshot);
    }

    #[test]
    fn a_field_mapped_after_the_link_was_made_is_never_settled_from_one_side() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let (mut link, mut c, p) = synced_organization(&mapping, &spec, &links);
        // Phone was mapped after the link was made: its snapshot has no entry.
        link.snapshot.remove("phone");
        c.fields.insert("Name".into(), json!("Northwind AG"));
        c.modstamp = Some(at(10, 0));
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        // Only Salesforce changed: the pair must read its PRM record first.
        assert_eq!(side_to_read(&spec, &link, Some(&c), None), Some(Side::Prm));
        assert_eq!(side_to_read(&spec, &link, None, Some(&p)), Some(Side::Crm));
        assert_eq!(side_to_read(&spec, &link, Some(&c), Some(&p)), None);
        // Planned without it anyway, Phone is left alone on both sides (no null written)
        // and stays unsettled; the change that was read still goes.
        let plan = plan_pair(rules, &link, Some(&c), None).unwrap();
        assert!(
            !plan.crm_patch.contains_key("Phone"),
            "{:?}",
            plan.crm_patch
        );
        assert!(
            !plan.prm_patch.contains_key("phone"),
            "{:?}",
            plan.prm_patch
        );
        assert!(!plan.snapshot.contains_key("phone"));
        assert_eq!(plan.prm_patch.get("name"), Some(&json!("Northwind AG")));
        // With both sides in hand it settles as on a first link: equal values, no write.
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert_eq!(plan.snapshot["phone"], json!("+49 30 1"));
        assert!(!plan.crm_patch.contains_key("Phone"));
        // A link settled on every field needs no read.
        let (settled, c, _) = synced_organization(&mapping, &spec, &links);
        assert_eq!(side_to_read(&spec, &settled, Some(&c), None), None);
    }

    #[test]
    fn a_change_on_one_side_goes_to_the_other() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let (link, mut c, p) = synced_organization(&mapping, &spec, &links);
        c.fields.insert("Phone".into(), json!("+49 30 2"));
        c.modstamp = Some(at(10, 0));
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert!(plan.crm_patch.is_empty(), "{:?}", plan.crm_patch);
        assert_eq!(plan.prm_patch.get("phone"), Some(&json!("+49 30 2")));
        assert_eq!(plan.prm_snapshot_keys, vec!["phone".to_string()]);
        assert_eq!(plan.snapshot["phone"], json!("+49 30 2"));
        assert_eq!(plan.crm_modstamp, Some(at(10, 0)));
        assert!(plan.findings.is_empty());
    }

    #[test]
    fn a_change_on_both_sides_is_a_conflict_won_by_the_newest() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let (link, mut c, mut p) = synced_organization(&mapping, &spec, &links);
        c.fields.insert("Phone".into(), json!("+49 30 2"));
        c.modstamp = Some(at(10, 0));
        p.fields.insert("phone".into(), json!("+49 30 3"));
        p.updated_at = at(11, 0);
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert_eq!(plan.crm_patch.get("Phone"), Some(&json!("+49 30 3")));
        assert!(plan.prm_patch.is_empty());
        match &plan.findings[..] {
            [PlanFinding::Conflict { key, conflict, .. }] => {
                assert_eq!(key, "phone");
                assert_eq!(conflict.winner, prmsync_mapping::config::Side::Prm);
            }
            other => panic!("one conflict expected, got {other:?}"),
        }
    }

    #[test]
    fn an_unmapped_value_is_reported_and_rejects_the_pair() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let (link, mut c, p) = synced_organization(&mapping, &spec, &links);
        c.fields
            .insert("PRM_Organization_Status__c".into(), json!("Bogus"));
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert!(plan.rejected);
        assert!(matches!(&plan.findings[..], [PlanFinding::Unmapped(_)]));
        assert!(plan.prm_patch.is_empty(), "{:?}", plan.prm_patch);
    }

    #[test]
    fn a_parent_not_linked_is_reported_once_and_retried() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let (mut link, mut c, p) = synced_organization(&mapping, &spec, &links);
        c.fields.insert("ParentId".into(), json!("001P"));
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert!(plan.retry);
        assert_eq!(
            plan.findings,
            vec![PlanFinding::ReferenceNotLinked {
                account_id: "001P".into(),
                field: "ParentId",
                required: false,
            }]
        );
        link.retry = true;
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert!(plan.retry, "still waiting for the parent");
        assert!(plan.findings.is_empty(), "reported once");
    }

    #[test]
    fn a_linked_parent_is_translated_to_the_other_side() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let mut links = OrgLinks::default();
        links.add(&link_in(
            LinkState::Linked,
            ObjectKind::Organization,
            "org_P",
            "001P",
        ));
        let (link, mut c, p) = synced_organization(&mapping, &spec, &links);
        c.fields.insert("ParentId".into(), json!("001P"));
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let plan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert_eq!(plan.prm_patch.get("parent_id"), Some(&json!("org_P")));
        assert_eq!(plan.snapshot[keys::REFERENCE], json!("org_P"));
        assert!(!plan.retry);
    }

    #[test]
    fn a_link_that_is_not_live_is_not_planned() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let (mut link, c, p) = organization_pair();
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        for state in [
            LinkState::Unselected,
            LinkState::Disconnected,
            LinkState::DeletedInPrm,
        ] {
            link.state = state;
            assert_eq!(
                plan_pair(rules, &link, Some(&c), Some(&p)),
                None,
                "{state:?}"
            );
        }
        link.state = LinkState::Linked;
        assert_eq!(plan_pair(rules, &link, None, None), None);
    }

    #[test]
    fn a_person_whose_organization_does_not_sync_is_not_planned() {
        let (mapping, spec) = spec(ObjectKind::Person);
        let links = OrgLinks::default();
        let link = link_in(LinkState::Linked, ObjectKind::Person, "per_1", "003A");
        let c = crm(
            "003A",
            at(9, 0),
            json!({"AccountId": "001A", "Email": "a@b.example"}),
        );
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        assert_eq!(plan_pair(rules, &link, Some(&c), None), None);
    }
}
