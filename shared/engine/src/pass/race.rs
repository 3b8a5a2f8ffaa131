//! Version races: a PRM update is sent with `If-Match` on the version read, and the PRM
//! refuses it (`412`) when the record changed between the read and the `PATCH` (someone
//! edited it in the PRM meanwhile). Optimistic locking is then used as meant: within the
//! same pass the record is read again, the pair is merged again with it (an edit made
//! meanwhile is merged by the normal rules: a field changed on both sides is a conflict the
//! conflict rule decides, logged as one), and the update is sent again with the new
//! version, at most [`PRM_UPDATE_ATTEMPTS`] times in all. After the last attempt the pair
//! is left to the next run as before (a `transient_error` entry, the link marked for a
//! retry); a record deleted meanwhile follows the "PRM record gone" path. Sync rule 10 of
//! `docs/sync-rules.md`.
//!
//! The decisions here are pure; `write.rs` reads, writes and logs around them.
//!
//! The Salesforce writes of a pass come before its PRM writes, so a merge again that finds
//! a PRM edit for Salesforce cannot join them. It is written by one more Collection call
//! after the PRM updates (`Pass::write_prm_updates`), only for the pairs that need it, so
//! the edit reaches Salesforce in the run that read it and a conflict is decided and logged
//! once. Left to the next run instead (with its snapshot keys restored, so nothing is
//! lost) are the pairs whose first Salesforce write failed (its failure already decides
//! when they are tried again: writing again would repeat a rejection) and the pairs whose
//! PRM update is given up or whose record is gone (the record in hand is stale).

use prmsync_mapping::config::Side;
use prmsync_mapping::PrmRecord;

use super::pair::restore_snapshot_keys;
use super::plan::{plan_pair, take_plan, PlanFinding, PlanRules};
use super::WorkPair;

/// Attempts of one PRM update in one pass, the first included. A record edited so often
/// that three reads in a row are outdated by the time of their `PATCH` waits for the next
/// run rather than holding the pass. A constant, not a `[sync]` setting: it bounds a
/// protocol (read, merge, write), not a cost an operator weighs, and the retry set
/// (`[sync] retry_attempts`) already governs the runs after.
pub const PRM_UPDATE_ATTEMPTS: u32 = 3;

/// Whether an update refused for its version after `attempts` attempts is tried again in
/// this pass (read again, merged again, sent again). No I/O.
pub fn read_again(attempts: u32) -> bool {
    attempts < PRM_UPDATE_ATTEMPTS
}

/// The record `id` as read again: the newest version among `fetched`; `None` when it is
/// gone (unknown, or a tombstone: an update would meet `404` or `409 deleted`). No I/O.
pub fn fresh_record(id: &str, fetched: &[PrmRecord]) -> Option<PrmRecord> {
    fetched
        .iter()
        .filter(|r| r.id == id)
        .max_by_key(|r| r.version)
        .filter(|r| !r.deleted)
        .cloned()
}

/// Merges `pair` again with `fresh`, its PRM record read again after a version conflict,
/// and the Salesforce record as Salesforce now holds it (the record read, with the first
/// write of this pass if it went through). The snapshot merged from keeps what each side
/// holds: the values this pass wrote to Salesforce, not those of the PRM update refused
/// (nor those of a Salesforce write an earlier merge again left pending). Afterwards
/// `prm_patch` is the update to send with `fresh`'s version, and `crm_patch` what
/// Salesforce still needs (the PRM edit made meanwhile), empty when the first Salesforce
/// write failed (that failure decides when the pair is tried again). Returns the findings
/// not logged yet. No I/O.
pub fn merge_again(
    rules: PlanRules<'_>,
    pair: &mut WorkPair,
    fresh: PrmRecord,
) -> Vec<PlanFinding> {
    restore_snapshot_keys(pair, Side::Prm);
    if pair.raced {
        // Pending since the last merge again, not written.
        restore_snapshot_keys(pair, Side::Crm);
    } else {
        if !pair.crm_failed {
            if let Some(crm) = pair.crm.as_mut() {
                crm.fields
                    .extend(pair.crm_patch.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        // Failed writes restore from here on: what each side holds now.
        pair.old_snapshot = pair.link.snapshot.clone();
        pair.raced = true;
    }
    pair.crm_patch.clear();
    pair.crm_snapshot_keys.clear();
    pair.prm_patch.clear();
    pair.prm_snapshot_keys.clear();
    pair.dirty = true;
    // A retry asked for by a failed write stands; the merge serves only its own.
    let retry = pair.link.retry;
    let plan = plan_pair(rules, &pair.link, pair.crm.as_ref(), Some(&fresh));
    pair.prm = Some(fresh);
    let Some(plan) = plan else {
        // The link is no longer live (its Salesforce record is gone): nothing to write.
        return Vec::new();
    };
    let findings = take_plan(pair, plan);
    pair.link.retry |= retry;
    if pair.crm_failed {
        drop_pending_crm_write(pair);
    }
    findings
}

/// Leaves the Salesforce write a merge again planned to the next run: its snapshot keys
/// keep what Salesforce holds, so the next run sees the difference again. For a pair whose
/// PRM update was given up or whose PRM record is gone. No I/O.
pub fn drop_pending_crm_write(pair: &mut WorkPair) {
    if pair.raced && !pair.crm_patch.is_empty() {
        restore_snapshot_keys(pair, Side::Crm);
        pair.crm_patch.clear();
        pair.crm_snapshot_keys.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::ObjectSpec;
    use crate::pass::plan::PairPlan;
    use crate::pass::references::OrgLinks;
    use crate::pass::testkit::{at, crm, link_in, prm, spec};
    use crate::store::LinkState;
    use prmsync_mapping::config::MappingConfig;
    use prmsync_mapping::ObjectKind;
    use serde_json::json;

    #[test]
    fn an_update_is_tried_three_times_in_all() {
        assert!(read_again(1));
        assert!(read_again(2));
        assert!(!read_again(3));
        assert_eq!(PRM_UPDATE_ATTEMPTS, 3);
    }

    #[test]
    fn the_record_read_again_is_its_newest_live_version() {
        let fetched = vec![
            prm("org_1", 4, at(10, 0), json!({"n": 4})),
            prm("org_2", 9, at(10, 0), json!({})),
            prm("org_1", 5, at(11, 0), json!({"n": 5})),
        ];
        assert_eq!(fresh_record("org_1", &fetched).map(|r| r.version), Some(5));
        assert_eq!(fresh_record("org_3", &fetched), None, "unknown: gone");
        let mut tombstone = prm("org_1", 6, at(12, 0), json!({}));
        tombstone.deleted = true;
        assert_eq!(fresh_record("org_1", &[tombstone]), None, "deleted: gone");
    }

    /// A linked organization in sync (phone and website), as its link saw it at 09:00.
    fn synced(mapping: &MappingConfig, spec: &ObjectSpec, links: &OrgLinks) -> WorkPair {
        let c = crm(
            "001A",
            at(9, 0),
            json!({"Name": "Northwind", "PRM_Organization_Status__c": "Active Partner",
                   "Website": "https://northwind.example", "Phone": "+49 30 1",
                   "PRM_Sync__c": true, "PRM_Id__c": "org_1",
                   "PRM_Record_Status__c": "Active Partner"}),
        );
        let mut p = prm(
            "org_1",
            1,
            at(9, 0),
            json!({"name": "Northwind", "kind": "partner", "status": "active",
                   "website": "https://northwind.example", "phone": "+49 30 1"}),
        );
        p.crm_id = Some("001A".into());
        let mut link = link_in(LinkState::Linked, ObjectKind::Organization, "org_1", "001A");
        let rules = PlanRules {
            mapping,
            spec,
            org_links: links,
        };
        let plan: PairPlan = plan_pair(rules, &link, Some(&c), Some(&p)).unwrap();
        assert!(
            plan.crm_patch.is_empty() && plan.prm_patch.is_empty(),
            "{plan:?}"
        );
        link.snapshot = plan.snapshot;
        link.crm_modstamp = plan.crm_modstamp;
        link.prm_version = plan.prm_version;
        WorkPair::new(link)
    }

    /// The pair after this pass read a Salesforce change of the phone at 10:00 (and the
    /// PRM record as the link saw it) and planned the PRM update.
    fn planned_phone_change(rules: PlanRules<'_>, pair: &mut WorkPair) {
        let mut c = crm(
            "001A",
            at(10, 0),
            json!({"Name": "Northwind", "PRM_Organization_Status__c": "Active Partner",
                   "Website": "https://northwind.example", "Phone": "+49 30 2",
                   "PRM_Sync__c": true, "PRM_Id__c": "org_1",
                   "PRM_Record_Status__c": "Active Partner"}),
        );
        c.modstamp = Some(at(10, 0));
        let mut p = prm(
            "org_1",
            1,
            at(9, 0),
            json!({"name": "Northwind", "kind": "partner", "status": "active",
                   "website": "https://northwind.example", "phone": "+49 30 1"}),
        );
        p.crm_id = Some("001A".into());
        let plan = plan_pair(rules, &pair.link, Some(&c), Some(&p)).unwrap();
        pair.crm = Some(c);
        pair.prm = Some(p);
        assert!(take_plan(pair, plan).is_empty());
        assert_eq!(pair.prm_patch.get("phone"), Some(&json!("+49 30 2")));
    }

    /// The PRM record read again: version 2, edited at 11:00 with `edit`.
    fn edited(edit: serde_json::Value) -> PrmRecord {
        let mut fields = json!({"name": "Northwind", "kind": "partner", "status": "active",
                   "website": "https://northwind.example", "phone": "+49 30 1"});
        for (k, v) in edit.as_object().unwrap() {
            fields[k] = v.clone();
        }
        let mut p = prm("org_1", 2, at(11, 0), fields);
        p.crm_id = Some("001A".into());
        p
    }

    #[test]
    fn an_edit_of_another_field_meanwhile_is_merged_and_goes_to_salesforce() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let mut pair = synced(&mapping, &spec, &links);
        planned_phone_change(rules, &mut pair);

        let findings = merge_again(
            rules,
            &mut pair,
            edited(json!({"website": "https://northwind.example/new"})),
        );

        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(
            pair.prm_patch.into_iter().collect::<Vec<_>>(),
            vec![("phone".to_string(), json!("+49 30 2"))],
            "the sync's change, sent again"
        );
        assert_eq!(
            pair.crm_patch.get("Website"),
            Some(&json!("https://northwind.example/new")),
            "the PRM edit, for Salesforce"
        );
        assert_eq!(pair.crm_patch.len(), 1);
        assert_eq!(pair.link.prm_version, Some(2));
        assert_eq!(pair.link.snapshot["phone"], json!("+49 30 2"));
        assert_eq!(
            pair.link.snapshot["website"],
            json!("https://northwind.example/new")
        );
        assert!(pair.raced && pair.dirty);
    }

    #[test]
    fn an_edit_of_the_same_field_meanwhile_is_a_conflict_for_the_conflict_rule() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let mut pair = synced(&mapping, &spec, &links);
        planned_phone_change(rules, &mut pair);

        let findings = merge_again(rules, &mut pair, edited(json!({"phone": "+49 30 3"})));

        // The newest change wins (the default rule): the PRM edit at 11:00.
        match &findings[..] {
            [PlanFinding::Conflict { key, conflict, .. }] => {
                assert_eq!(key, "phone");
                assert_eq!(conflict.winner, Side::Prm);
            }
            other => panic!("one conflict expected, got {other:?}"),
        }
        assert!(pair.prm_patch.is_empty(), "{:?}", pair.prm_patch);
        assert_eq!(pair.crm_patch.get("Phone"), Some(&json!("+49 30 3")));
        assert_eq!(pair.link.snapshot["phone"], json!("+49 30 3"));
        // Merged again with the same record, the conflict is not logged twice.
        let mut again = pair.clone();
        again.raced = true;
        assert!(merge_again(rules, &mut again, edited(json!({"phone": "+49 30 3"}))).is_empty());
    }

    #[test]
    fn what_the_pass_wrote_to_salesforce_is_neither_written_back_nor_again() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let mut pair = synced(&mapping, &spec, &links);
        // The PRM changed the website (read by this pass); Salesforce changed the phone.
        let mut c = crm(
            "001A",
            at(10, 0),
            json!({"Name": "Northwind", "PRM_Organization_Status__c": "Active Partner",
                   "Website": "https://northwind.example", "Phone": "+49 30 2",
                   "PRM_Sync__c": true, "PRM_Id__c": "org_1",
                   "PRM_Record_Status__c": "Active Partner"}),
        );
        c.modstamp = Some(at(10, 0));
        let p = edited(json!({"website": "https://w.example"}));
        let plan = plan_pair(rules, &pair.link, Some(&c), Some(&p)).unwrap();
        pair.crm = Some(c);
        pair.prm = Some(p);
        take_plan(&mut pair, plan);
        assert_eq!(
            pair.crm_patch.get("Website"),
            Some(&json!("https://w.example"))
        );
        // Salesforce took the website; the PRM update of the phone met a newer version
        // (a name edited meanwhile).
        let mut fresh = edited(json!({"website": "https://w.example", "name": "Northwind AG"}));
        fresh.version = 3;

        merge_again(rules, &mut pair, fresh.clone());

        assert_eq!(
            pair.crm_patch.into_iter().collect::<Vec<_>>(),
            vec![("Name".to_string(), json!("Northwind AG"))]
        );
        assert_eq!(
            pair.prm_patch.into_iter().collect::<Vec<_>>(),
            vec![("phone".to_string(), json!("+49 30 2"))]
        );
    }

    #[test]
    fn a_second_race_restores_the_salesforce_write_left_pending() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let mut pair = synced(&mapping, &spec, &links);
        planned_phone_change(rules, &mut pair);
        merge_again(
            rules,
            &mut pair,
            edited(json!({"website": "https://a.example"})),
        );
        assert!(pair.crm_patch.contains_key("Website"));

        // Edited again before the second PATCH: the website once more.
        let mut fresh = edited(json!({"website": "https://b.example"}));
        fresh.version = 3;
        merge_again(rules, &mut pair, fresh);
        assert_eq!(
            pair.crm_patch.get("Website"),
            Some(&json!("https://b.example")),
            "a change of the PRM, not a conflict"
        );
        assert_eq!(pair.prm_patch.get("phone"), Some(&json!("+49 30 2")));

        // Given up: the snapshot keeps what Salesforce holds, so the next run writes it.
        drop_pending_crm_write(&mut pair);
        assert!(pair.crm_patch.is_empty());
        assert_eq!(
            pair.link.snapshot["website"],
            json!("https://northwind.example")
        );
    }

    #[test]
    fn after_a_failed_salesforce_write_the_merge_again_leaves_salesforce_to_its_retry() {
        let (mapping, spec) = spec(ObjectKind::Organization);
        let links = OrgLinks::default();
        let rules = PlanRules {
            mapping: &mapping,
            spec: &spec,
            org_links: &links,
        };
        let mut pair = synced(&mapping, &spec, &links);
        planned_phone_change(rules, &mut pair);
        pair.crm_failed = true;
        pair.link.retry = true;

        merge_again(
            rules,
            &mut pair,
            edited(json!({"website": "https://a.example"})),
        );

        assert!(pair.crm_patch.is_empty(), "{:?}", pair.crm_patch);
        assert_eq!(
            pair.link.snapshot["website"],
            json!("https://northwind.example"),
            "Salesforce still holds the old website"
        );
        assert_eq!(pair.prm_patch.get("phone"), Some(&json!("+49 30 2")));
        assert!(pair.link.retry, "the failed write's retry stands");
    }
}
