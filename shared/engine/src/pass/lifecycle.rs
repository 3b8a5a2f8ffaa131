//! Lifecycle of linked pairs: deletes, merges and (Accounts) unflagging, before anything is
//! merged. Sync rules 1 (link states), 6 (selection: an unflagged Account stops syncing, a
//! flagged one resumes) and 7 (deletes: deleted in the PRM → Record Status
//! `<status> (Deleted)`; deleted in Salesforce → the link is disconnected; merged in
//! Salesforce → the link follows the master) of `docs/sync-rules.md`.
//!
//! [`lifecycle_change`] decides, without any I/O; `Pass::handle_lifecycle` applies the
//! change to each pair and logs it.

use std::collections::HashSet;

use prmsync_mapping::{rules, CrmRecord, Fields, LogCode, ObjectKind, PrmRecord};
use serde_json::{json, Value};

use super::{Pass, PassError, WorkPair};
use crate::objects::{keys, ObjectSpec};
use crate::store::{Link, LinkState};

/// What happened to a linked pair's records since the last run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleChange {
    /// Nothing that changes the link.
    None,
    /// The Salesforce record was merged into `master`, which has no link yet: the link
    /// follows the master (read on a retry).
    FollowsMaster { master: String },
    /// The Salesforce record was deleted, or merged into a `master` linked to another
    /// record: the PRM record is kept and the link disconnected.
    DeletedInCrm { master: Option<String> },
    /// The PRM record was deleted: Salesforce's Record Status becomes `status`
    /// (`<status> (Deleted)`), nothing is deleted there.
    MarkDeletedInCrm { status: String },
    /// The PRM record was deleted and its object has no Record Status (deals): the link
    /// ends.
    DeletedInPrm,
    /// The Account is no longer flagged for the PRM: the pair stops syncing.
    Unflagged,
    /// The Account is flagged again: the pair syncs again.
    Reflagged,
}

/// What a lifecycle event does to a linked pair. `master_linked` says whether a Salesforce
/// Id already has a link of this object. No I/O.
pub fn lifecycle_change(
    spec: &ObjectSpec,
    link: &Link,
    crm: Option<&CrmRecord>,
    prm: Option<&PrmRecord>,
    master_linked: impl Fn(&str) -> bool,
) -> LifecycleChange {
    if matches!(
        link.state,
        LinkState::Disconnected | LinkState::DeletedInPrm
    ) {
        return LifecycleChange::None;
    }
    if let Some(crm) = crm.filter(|c| c.deleted) {
        return match crm.master_id.clone() {
            Some(master) if !master_linked(&master) => LifecycleChange::FollowsMaster { master },
            master => LifecycleChange::DeletedInCrm { master },
        };
    }
    if let Some(prm) = prm.filter(|p| p.deleted) {
        let mut merged: Fields = link.snapshot.clone().into_iter().collect();
        if let Some(kind) = prm.str_field("kind") {
            merged.insert(keys::KIND.into(), json!(kind));
        }
        return match spec.status_label(&merged) {
            Some(label) => LifecycleChange::MarkDeletedInCrm {
                status: rules::record_status(&label, true),
            },
            None => LifecycleChange::DeletedInPrm,
        };
    }
    if spec.kind == ObjectKind::Organization {
        if let Some(crm) = crm {
            let selected = spec.crm_selected(crm);
            if !selected && link.state == LinkState::Linked {
                return LifecycleChange::Unflagged;
            }
            if selected && link.state == LinkState::Unselected {
                return LifecycleChange::Reflagged;
            }
        }
    }
    LifecycleChange::None
}

/// A link that followed a merge to its master takes the master's record when the pass
/// read it (as an unlinked record). No I/O.
pub fn take_master_records(pairs: &mut [WorkPair], unlinked_crm: &mut Vec<CrmRecord>) {
    for pair in pairs.iter_mut().filter(|p| p.link.retry && p.crm.is_none()) {
        if let Some(pos) = unlinked_crm.iter().position(|r| r.id == pair.link.crm_id) {
            pair.crm = Some(unlinked_crm.swap_remove(pos));
        }
    }
}

impl<'a> Pass<'a> {
    /// Applies the lifecycle change of every pair ([`lifecycle_change`]) and logs it.
    pub(super) async fn handle_lifecycle(
        &mut self,
        pairs: &mut [WorkPair],
    ) -> Result<(), PassError> {
        // Masters of merged records: find their links in one call.
        let masters: Vec<String> = pairs
            .iter()
            .filter_map(|i| {
                i.crm
                    .as_ref()
                    .filter(|c| c.deleted)
                    .and_then(|c| c.master_id.clone())
            })
            .collect();
        let linked_masters: HashSet<String> = if masters.is_empty() {
            HashSet::new()
        } else {
            self.ctx
                .store
                .find_links(self.spec.kind, &masters, &[])
                .await?
                .into_iter()
                .map(|l| l.crm_id)
                .collect()
        };
        for pair in pairs.iter_mut() {
            let change = lifecycle_change(
                &self.spec,
                &pair.link,
                pair.crm.as_ref(),
                pair.prm.as_ref(),
                |m| linked_masters.contains(m),
            );
            self.apply_lifecycle(pair, change).await?;
        }
        Ok(())
    }

    async fn apply_lifecycle(
        &mut self,
        pair: &mut WorkPair,
        change: LifecycleChange,
    ) -> Result<(), PassError> {
        let obj = self.spec.crm_object();
        let kind = self.spec.kind;
        let crm_id = pair.link.crm_id.clone();
        let prm_id = pair.link.prm_id.clone();
        match change {
            LifecycleChange::None => {}
            LifecycleChange::FollowsMaster { master } => {
                pair.link.crm_id = master.clone();
                pair.link.retry = true;
                pair.link.crm_modstamp = None;
                pair.crm = None;
                pair.dirty = true;
                self.log(
                    LogCode::MergedInCrm,
                    Some(&master),
                    Some(&prm_id),
                    format!(
                        "{obj} {crm_id} was merged into {master} in Salesforce; the link of {kind} {prm_id} now follows {master}"
                    ),
                    json!({"loser": crm_id, "master": master}),
                );
            }
            LifecycleChange::DeletedInCrm { master } => {
                pair.link.state = LinkState::Disconnected;
                pair.dirty = true;
                pair.crm = None;
                pair.prm = None;
                self.out.counts.disconnected += 1;
                let message = match master {
                    Some(m) => format!(
                        "{obj} {crm_id} was merged into {m}, which is already linked to another {kind}; {kind} {prm_id} is kept in the PRM and no longer syncs"
                    ),
                    None => format!(
                        "{obj} {crm_id} was deleted in Salesforce; {kind} {prm_id} is kept in the PRM and no longer syncs"
                    ),
                };
                self.log(
                    LogCode::DeletedInCrm,
                    Some(&crm_id),
                    Some(&prm_id),
                    message,
                    Value::Null,
                );
            }
            LifecycleChange::MarkDeletedInCrm { status } => {
                pair.crm_patch
                    .insert(self.spec.setup.record_status.clone(), json!(status));
                pair.link
                    .snapshot
                    .insert(keys::RECORD_STATUS.into(), json!(status));
                pair.crm_snapshot_keys.push(keys::RECORD_STATUS.into());
                pair.marks_deleted = true;
                pair.dirty = true;
            }
            LifecycleChange::DeletedInPrm => {
                // Nothing to mark in Salesforce (deals): the link ends here.
                pair.link.state = LinkState::DeletedInPrm;
                self.log(
                    LogCode::DeletedInPrm,
                    Some(&crm_id),
                    Some(&prm_id),
                    format!(
                        "PRM {kind} {prm_id} was deleted; {obj} {crm_id} is kept and no longer syncs"
                    ),
                    Value::Null,
                );
                pair.marks_deleted = true;
                pair.dirty = true;
            }
            LifecycleChange::Unflagged => {
                pair.link.state = LinkState::Unselected;
                pair.dirty = true;
                self.log(
                    LogCode::SyncStoppedUnflagged,
                    Some(&crm_id),
                    Some(&prm_id),
                    format!(
                        "Account {crm_id} is no longer flagged for the PRM (Sync with PRM or Organization Status cleared); organization {prm_id} stops syncing"
                    ),
                    Value::Null,
                );
            }
            LifecycleChange::Reflagged => {
                pair.link.state = LinkState::Linked;
                pair.dirty = true;
                self.children_pending(&pair.link).await?;
                self.log(
                    LogCode::SyncResumed,
                    Some(&crm_id),
                    Some(&prm_id),
                    format!("Account {crm_id} is flagged again; organization {prm_id} syncs again"),
                    Value::Null,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::testkit::{at, crm, link_in, prm, spec};

    fn none_linked(_: &str) -> bool {
        false
    }

    fn account(selected: bool) -> CrmRecord {
        crm(
            "001A",
            at(9, 0),
            json!({"PRM_Sync__c": selected, "PRM_Organization_Status__c": "Active Partner"}),
        )
    }

    fn organization_link(state: LinkState) -> Link {
        let mut l = link_in(state, ObjectKind::Organization, "org_1", "001A");
        l.snapshot
            .insert("kind_status".into(), json!("partner:active"));
        l
    }

    #[test]
    fn a_record_deleted_in_salesforce_disconnects_the_link() {
        let (_, spec) = spec(ObjectKind::Organization);
        let mut c = account(true);
        c.deleted = true;
        let change = lifecycle_change(
            &spec,
            &organization_link(LinkState::Linked),
            Some(&c),
            None,
            none_linked,
        );
        assert_eq!(change, LifecycleChange::DeletedInCrm { master: None });
    }

    #[test]
    fn a_record_merged_in_salesforce_follows_its_master_unless_the_master_is_linked() {
        let (_, spec) = spec(ObjectKind::Organization);
        let link = organization_link(LinkState::Linked);
        let mut c = account(true);
        c.deleted = true;
        c.master_id = Some("001M".into());
        assert_eq!(
            lifecycle_change(&spec, &link, Some(&c), None, none_linked),
            LifecycleChange::FollowsMaster {
                master: "001M".into()
            }
        );
        assert_eq!(
            lifecycle_change(&spec, &link, Some(&c), None, |m| m == "001M"),
            LifecycleChange::DeletedInCrm {
                master: Some("001M".into())
            }
        );
    }

    #[test]
    fn a_record_deleted_in_the_prm_marks_the_record_status_deleted() {
        let (_, spec) = spec(ObjectKind::Organization);
        let mut p = prm("org_1", 2, at(9, 0), json!({}));
        p.deleted = true;
        let change = lifecycle_change(
            &spec,
            &organization_link(LinkState::Linked),
            Some(&account(true)),
            Some(&p),
            none_linked,
        );
        assert_eq!(
            change,
            LifecycleChange::MarkDeletedInCrm {
                status: rules::record_status("Active Partner", true)
            }
        );
    }

    #[test]
    fn a_deal_deleted_in_the_prm_ends_its_link() {
        let (_, spec) = spec(ObjectKind::Deal);
        let link = link_in(LinkState::Linked, ObjectKind::Deal, "deal_1", "006A");
        let mut p = prm("deal_1", 2, at(9, 0), json!({}));
        p.deleted = true;
        assert_eq!(
            lifecycle_change(&spec, &link, None, Some(&p), none_linked),
            LifecycleChange::DeletedInPrm
        );
    }

    #[test]
    fn an_account_unflagged_stops_and_reflagged_resumes() {
        let (_, spec) = spec(ObjectKind::Organization);
        assert_eq!(
            lifecycle_change(
                &spec,
                &organization_link(LinkState::Linked),
                Some(&account(false)),
                None,
                none_linked
            ),
            LifecycleChange::Unflagged
        );
        assert_eq!(
            lifecycle_change(
                &spec,
                &organization_link(LinkState::Unselected),
                Some(&account(true)),
                None,
                none_linked
            ),
            LifecycleChange::Reflagged
        );
        assert_eq!(
            lifecycle_change(
                &spec,
                &organization_link(LinkState::Linked),
                Some(&account(true)),
                None,
                none_linked
            ),
            LifecycleChange::None
        );
    }

    #[test]
    fn a_disconnected_link_has_no_lifecycle_left() {
        let (_, spec) = spec(ObjectKind::Organization);
        let mut c = account(false);
        c.deleted = true;
        for state in [LinkState::Disconnected, LinkState::DeletedInPrm] {
            assert_eq!(
                lifecycle_change(
                    &spec,
                    &organization_link(state),
                    Some(&c),
                    None,
                    none_linked
                ),
                LifecycleChange::None
            );
        }
    }

    #[test]
    fn a_link_that_followed_a_merge_takes_the_masters_record_when_read() {
        let mut followed = link_in(LinkState::Linked, ObjectKind::Organization, "org_1", "001M");
        followed.retry = true;
        let mut pairs = vec![WorkPair::new(followed)];
        let mut unlinked = vec![account(true), crm("001M", at(9, 0), json!({}))];
        take_master_records(&mut pairs, &mut unlinked);
        assert_eq!(pairs[0].crm.as_ref().map(|r| r.id.as_str()), Some("001M"));
        assert_eq!(unlinked.len(), 1);
        assert_eq!(unlinked[0].id, "001A");
    }
}
