//! Salesforce updates held for one ingest job of several passes.
//!
//! A Bulk API 2.0 ingest job costs about four calls whatever its size, so a large run
//! writes fewest calls when the updates of many passes go out in one job; holding whole
//! pairs across passes would break the run's memory target, so a pass hands out only what
//! the write needs ([`HeldUpdate`]: the ids, the fields and the snapshot values they
//! carry, about the size of the fields) and saves its links as after a write that failed
//! for a passing reason: marked for a retry, the snapshot keeping what Salesforce holds.
//! A crash before the job's results leaves nothing half-written: the next run reads the
//! pair again and either finds Salesforce written (both sides now agree) or writes it.
//!
//! [`Pass::settle_held`] then sends the rows in one call and settles each on its stored
//! link through the pass's own Salesforce write (`send_crm_updates`, `apply_crm_results`):
//! the same reserve check, outcomes, Integration Log entries, counts and failures as a
//! pass's own write. On AWS the rows wait with their chunk until the run closes
//! (`crate::frame::close_run`).
//!
//! Only the write-backs of pairs a pass created are held (a first import writes one per
//! record): not an update of a pair linked before, which would overwrite a Salesforce
//! user's edit made while it waited; not a deletion mark, nor a pair with a PRM update in
//! the same pass (a PRM update refused for its version merges again from the Salesforce
//! write, see race.rs), nor a dry run's.

use std::collections::HashMap;

use prmsync_mapping::config::Side;

use super::pair::restore_snapshot_keys;
use super::write::repeated;
use super::{Pass, PassError, WorkPair};
pub use crate::store::{HeldUpdate, HeldUpdates};
use crate::store::{Link, LinkState};

/// Held updates settled on their links at a time, after the one call that writes them all:
/// the pairs of a slice are held whole, as a pass's are.
pub const SETTLE_SLICE: usize = 2_000;

/// Whether a pair's Salesforce update may wait for a later job: the write-back of a pair
/// this pass created (the PRM id, Record Status and what else the new link owes the
/// Salesforce record), with nothing to write to the PRM in the same pass. An update of a
/// pair linked before is written by its own pass: held, it would overwrite a Salesforce
/// user's edit made meanwhile. No I/O.
pub(super) fn holdable(pair: &WorkPair) -> bool {
    pair.created.is_some()
        && !pair.crm_patch.is_empty()
        && pair.prm_patch.is_empty()
        && !pair.marks_deleted
        && !pair.raced
        && pair.link.state == LinkState::Linked
}

/// Takes the Salesforce update out of `pair` for a later job, leaving the pair as after a
/// write that failed for a passing reason. No I/O.
pub(super) fn hold(pair: &mut WorkPair) -> HeldUpdate {
    let snapshot = pair
        .crm_snapshot_keys
        .iter()
        .filter_map(|k| pair.link.snapshot.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    let held = HeldUpdate {
        crm_id: pair.link.crm_id.clone(),
        prm_id: pair.link.prm_id.clone(),
        patch: std::mem::take(&mut pair.crm_patch).into_iter().collect(),
        snapshot,
        created: pair.created,
        retry: pair.link.retry,
    };
    restore_snapshot_keys(pair, Side::Crm);
    pair.link.retry = true;
    // Stored in this form already when the pair was created (`Pass::save_created`):
    // nothing more to save.
    pair.dirty = pair.stored_held.as_deref() != Some(&pair.link);
    held
}

/// The form a created pair's link is stored in when its write-back may be held: marked
/// for a retry, as [`hold`] leaves it, so that holding saves it no second time (and a
/// crash before the write-back reads the pair again). `None` for a pair whose write-back
/// is not held. No I/O.
pub(super) fn held_form(pair: &WorkPair, holding: bool) -> Option<Link> {
    (holding && pair.created == Some(Side::Prm)).then(|| Link {
        retry: true,
        ..pair.link.clone()
    })
}

/// The pair a held update is settled on: the link as stored (its snapshot keeping what
/// Salesforce held), with the update's fields and snapshot values as the pass planned
/// them. No I/O.
pub(super) fn pair_of(link: Link, held: HeldUpdate) -> WorkPair {
    let mut pair = WorkPair::new(link);
    for (key, value) in held.snapshot {
        pair.link.snapshot.insert(key.clone(), value);
        pair.crm_snapshot_keys.push(key);
    }
    pair.crm_patch = held.patch.into_iter().collect();
    pair.created = held.created;
    pair.link.retry = held.retry;
    pair.dirty = true;
    pair
}

impl Pass<'_> {
    /// Hands the holdable updates among `indices` to [`super::PassOutcome::held_updates`];
    /// returns the indices still to write now.
    pub(super) fn hold_crm_rows(
        &mut self,
        pairs: &mut [WorkPair],
        indices: Vec<usize>,
    ) -> Vec<usize> {
        let mut now = Vec::new();
        for i in indices {
            if holdable(&pairs[i]) {
                let held = hold(&mut pairs[i]);
                self.out.held_updates.push(held);
            } else {
                now.push(i);
            }
        }
        now
    }

    /// Writes held updates in one call of the port, then settles each on its stored link,
    /// [`SETTLE_SLICE`] links at a time (a slice's pairs are held whole). An update whose
    /// link is gone or no longer live meanwhile is left out: the next run merges that pair
    /// afresh. Nothing is sent once the API reserve is reached: the links stay marked for
    /// a retry.
    pub(super) async fn settle_held(&mut self, held: Vec<HeldUpdate>) -> Result<(), PassError> {
        if held.is_empty() {
            return Ok(());
        }
        if let Some(message) = self.reserve_reached() {
            self.out.stopped = Some(message);
            return Ok(());
        }
        // Two links of one record (after a merge in Salesforce) would write it twice in
        // one job, which fails both: the second waits for the next run, as in a pass.
        let again: std::collections::HashSet<usize> =
            repeated(held.iter().map(|h| h.crm_id.as_str()))
                .into_iter()
                .collect();
        let held: Vec<HeldUpdate> = held
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !again.contains(i))
            .map(|(_, h)| h)
            .collect();
        let rows = held
            .iter()
            .map(|h| (h.crm_id.clone(), h.patch.iter().cloned().collect()))
            .collect();
        let mut results = self.send_crm_updates(rows).await?.into_iter();
        let mut held = held.into_iter();
        loop {
            let slice: Vec<HeldUpdate> = held.by_ref().take(SETTLE_SLICE).collect();
            if slice.is_empty() {
                break;
            }
            let outcomes: Vec<_> = results.by_ref().take(slice.len()).collect();
            let ids: Vec<String> = slice.iter().map(|h| h.crm_id.clone()).collect();
            let mut links: HashMap<(String, String), Link> = self
                .ctx
                .store
                .find_links(self.spec.kind, &ids, &[])
                .await?
                .into_iter()
                .filter(|l| l.state == LinkState::Linked)
                .map(|l| ((l.crm_id.clone(), l.prm_id.clone()), l))
                .collect();
            let (mut pairs, outcomes): (Vec<WorkPair>, Vec<_>) = slice
                .into_iter()
                .zip(outcomes)
                .filter_map(|(h, outcome)| {
                    let link = links.remove(&(h.crm_id.clone(), h.prm_id.clone()))?;
                    Some((pair_of(link, h), outcome))
                })
                .unzip();
            let indices: Vec<usize> = (0..pairs.len()).collect();
            self.apply_crm_results(&mut pairs, &indices, outcomes)?;
            // The passes that held these pairs counted their drift already.
            let drift = self.out.counts.drift;
            self.save_links(&mut pairs).await?;
            self.out.counts.drift = drift;
        }
        self.save_rejections().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_mapping::Fields;
    use serde_json::{json, Value};

    fn fields(v: Value) -> Fields {
        v.as_object().unwrap().clone()
    }

    fn patch(held: &HeldUpdate) -> Fields {
        held.patch.iter().cloned().collect()
    }

    #[test]
    fn a_held_row_is_stored_with_its_fields_as_one_object() {
        let held = hold(&mut pair_with_update());
        let stored = serde_json::to_value(&held).unwrap();
        assert_eq!(
            stored["patch"],
            json!({"Name": "New", "PRM_Id__c": "org_1"})
        );
        let back: HeldUpdate = serde_json::from_value(stored).unwrap();
        assert_eq!(patch(&back), patch(&held));
    }

    fn pair_with_update() -> WorkPair {
        let mut link = Link::new(prmsync_mapping::ObjectKind::Organization, "org_1", "001A");
        link.snapshot.insert("name".into(), json!("Old"));
        link.version = 3;
        let mut pair = WorkPair::new(link);
        pair.link.snapshot.insert("name".into(), json!("New"));
        pair.link.snapshot.insert("prm_id".into(), json!("org_1"));
        pair.crm_snapshot_keys = vec!["name".into(), "prm_id".into()];
        pair.crm_patch = fields(json!({"Name": "New", "PRM_Id__c": "org_1"}));
        pair.created = Some(Side::Prm);
        pair
    }

    #[test]
    fn a_held_update_leaves_the_link_as_after_a_passing_failure() {
        let mut pair = pair_with_update();
        assert!(holdable(&pair));
        let held = hold(&mut pair);
        assert_eq!(held.crm_id, "001A");
        assert_eq!(patch(&held)["Name"], json!("New"));
        assert_eq!(
            held.snapshot,
            vec![
                ("name".to_string(), json!("New")),
                ("prm_id".to_string(), json!("org_1"))
            ]
        );
        assert!(!held.retry);
        // What Salesforce holds until the job writes it.
        assert_eq!(pair.link.snapshot.get("name"), Some(&json!("Old")));
        assert_eq!(pair.link.snapshot.get("prm_id"), None);
        assert!(pair.link.retry && pair.dirty);
    }

    #[test]
    fn a_link_stored_in_the_held_form_on_creation_is_not_saved_again_by_holding() {
        let created = |pair: &WorkPair| {
            let mut link = held_form(pair, true).expect("a PRM record created now");
            link.snapshot = pair.old_snapshot.clone();
            Some(Box::new(link))
        };
        let mut pair = pair_with_update();
        pair.stored_held = created(&pair);
        hold(&mut pair);
        assert!(!pair.dirty, "the link is as stored");
        assert!(
            pair.crm_patch.is_empty(),
            "the update went with the held row"
        );
        // A change beyond the write-back (a reference planned meanwhile) is saved.
        let mut changed = pair_with_update();
        changed.stored_held = created(&changed);
        changed
            .link
            .snapshot
            .insert("reference".into(), json!("org_9"));
        hold(&mut changed);
        assert!(changed.dirty);
    }

    #[test]
    fn only_a_write_back_that_may_be_held_is_stored_in_the_held_form() {
        let pair = pair_with_update();
        assert!(held_form(&pair, true).is_some_and(|l| l.retry));
        assert!(held_form(&pair, false).is_none(), "not holding");
        let mut in_crm = pair_with_update();
        in_crm.created = Some(Side::Crm);
        assert!(held_form(&in_crm, true).is_none(), "created in Salesforce");
    }

    #[test]
    fn settling_rebuilds_the_planned_snapshot_on_the_stored_link() {
        let mut pair = pair_with_update();
        pair.link.retry = true; // a reference not linked yet
        let held = hold(&mut pair);
        let stored = pair.link.clone();
        let settled = pair_of(stored, held);
        assert_eq!(settled.link.snapshot.get("name"), Some(&json!("New")));
        assert_eq!(settled.old_snapshot.get("name"), Some(&json!("Old")));
        assert_eq!(settled.crm_patch["PRM_Id__c"], json!("org_1"));
        assert!(settled.link.retry, "the earlier retry mark stays");
        assert_eq!(settled.link.version, 3);
    }

    #[test]
    fn updates_of_earlier_links_deletion_marks_prm_writes_and_raced_pairs_are_not_held() {
        let mut marks = pair_with_update();
        marks.marks_deleted = true;
        let mut both = pair_with_update();
        both.prm_patch = fields(json!({"phone": "1"}));
        let mut raced = pair_with_update();
        raced.raced = true;
        let mut nothing = pair_with_update();
        nothing.crm_patch.clear();
        let mut linked_before = pair_with_update();
        linked_before.created = None;
        for pair in [marks, both, raced, nothing, linked_before] {
            assert!(!holdable(&pair));
        }
    }

    #[test]
    fn a_later_update_of_the_same_pair_wins_field_by_field() {
        let mut first = hold(&mut pair_with_update());
        let mut second = pair_with_update();
        second.link.snapshot.insert("name".into(), json!("Newer"));
        second.crm_patch = fields(json!({"Name": "Newer", "Phone": "2"}));
        second.crm_snapshot_keys = vec!["name".into()];
        first.absorb(hold(&mut second));
        assert_eq!(
            patch(&first),
            fields(json!({"Name": "Newer", "PRM_Id__c": "org_1", "Phone": "2"}))
        );
        assert_eq!(first.snapshot[0], ("name".to_string(), json!("Newer")));
        assert_eq!(first.snapshot.len(), 2);
    }

    fn held(crm: &str, field: &str, value: &str) -> HeldUpdate {
        HeldUpdate {
            crm_id: crm.into(),
            prm_id: format!("p{crm}"),
            patch: vec![(field.to_string(), json!(value))],
            snapshot: vec![(field.to_lowercase(), json!(value))],
            created: None,
            retry: false,
        }
    }

    #[test]
    fn a_pair_held_twice_is_written_once_with_its_latest_values() {
        let mut rows = HeldUpdates::default();
        rows.add(vec![held("001A", "Name", "a"), held("001B", "Name", "b")]);
        rows.add(vec![held("001A", "Name", "a2"), held("001A", "Phone", "1")]);
        assert_eq!(rows.len(), 2);
        let taken = rows.take();
        assert_eq!(taken.len(), 2);
        assert_eq!(patch(&taken[0])["Name"], "a2");
        assert_eq!(patch(&taken[0])["Phone"], "1");
        assert!(rows.is_empty());
        assert_eq!(rows.waited(), std::time::Duration::ZERO);
    }
}
