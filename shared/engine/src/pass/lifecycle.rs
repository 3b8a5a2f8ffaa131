//! Lifecycle.

use std::collections::HashSet;

use prmsync_mapping::{rules, Fields, LogCode, ObjectKind};
use serde_json::{json, Value};

use super::*;
use crate::objects::keys;
use crate::store::LinkState;

impl<'a> Pass<'a> {
    pub(super) async fn handle_lifecycle(
        &mut self,
        items: &mut [WorkPair],
    ) -> Result<(), PassError> {
        // Masters of merged records: find their links in one call.
        let masters: Vec<String> = items
            .iter()
            .filter_map(|i| {
                i.crm
                    .as_ref()
                    .filter(|c| c.deleted)
                    .and_then(|c| c.master_id.clone())
            })
            .collect();
        let master_links: HashSet<String> = if masters.is_empty() {
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
        let obj = self.spec.crm_object();
        for item in items.iter_mut() {
            let link_state = item.link.state;
            if matches!(
                link_state,
                LinkState::Disconnected | LinkState::DeletedInPrm
            ) {
                continue;
            }
            let crm_id = item.link.crm_id.clone();
            let prm_id = item.link.prm_id.clone();
            if let Some(crm) = item.crm.as_ref().filter(|c| c.deleted) {
                match crm.master_id.clone() {
                    Some(master) if !master_links.contains(&master) => {
                        item.link.crm_id = master.clone();
                        item.link.retry = true;
                        item.link.crm_modstamp = None;
                        item.crm = None;
                        item.dirty = true;
                        self.log(
                            LogCode::MergedInCrm,
                            Some(&master),
                            Some(&prm_id),
                            format!(
                                "{obj} {crm_id} was merged into {master} in Salesforce; the link of {} {prm_id} now follows {master}",
                                self.spec.kind
                            ),
                            json!({"loser": crm_id, "master": master}),
                        );
                    }
                    master => {
                        item.link.state = LinkState::Disconnected;
                        item.dirty = true;
                        item.crm = None;
                        item.prm = None;
                        self.out.counts.disconnected += 1;
                        let message = match master {
                            Some(m) => format!(
                                "{obj} {crm_id} was merged into {m}, which is already linked to another {}; {} {prm_id} is kept in the PRM and no longer syncs",
                                self.spec.kind, self.spec.kind
                            ),
                            None => format!(
                                "{obj} {crm_id} was deleted in Salesforce; {} {prm_id} is kept in the PRM and no longer syncs",
                                self.spec.kind
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
                }
                continue;
            }
            if item.prm.as_ref().is_some_and(|p| p.deleted) {
                let mut merged: Fields = item.link.snapshot.clone().into_iter().collect();
                if let Some(kind) = item.prm.as_ref().and_then(|p| p.str_field("kind")) {
                    merged.insert(keys::KIND.into(), json!(kind));
                }
                if let Some(label) = self.spec.status_label(&merged) {
                    let status = rules::record_status(&label, true);
                    item.crm_patch
                        .insert(self.spec.setup.record_status.clone(), json!(status));
                    item.link
                        .snapshot
                        .insert(keys::RECORD_STATUS.into(), json!(status));
                    item.crm_snapshot_keys.push(keys::RECORD_STATUS.into());
                } else {
                    // Nothing to mark in Salesforce (deals): the link ends here.
                    item.link.state = LinkState::DeletedInPrm;
                    self.log(
                        LogCode::DeletedInPrm,
                        Some(&crm_id),
                        Some(&prm_id),
                        format!(
                            "PRM {} {prm_id} was deleted; {} {crm_id} is kept and no longer syncs",
                            self.spec.kind,
                            self.spec.crm_object()
                        ),
                        Value::Null,
                    );
                }
                item.marks_deleted = true;
                item.dirty = true;
                continue;
            }
            if self.spec.kind == ObjectKind::Organization {
                if let Some(crm) = &item.crm {
                    let selected = self.spec.crm_selected(crm);
                    if !selected && link_state == LinkState::Linked {
                        item.link.state = LinkState::Unselected;
                        item.dirty = true;
                        self.log(
                            LogCode::SyncStoppedUnflagged,
                            Some(&crm_id),
                            Some(&prm_id),
                            format!(
                                "Account {crm_id} is no longer flagged for the PRM (Sync with PRM or Organization Status cleared); organization {prm_id} stops syncing"
                            ),
                            Value::Null,
                        );
                    } else if selected && link_state == LinkState::Unselected {
                        item.link.state = LinkState::Linked;
                        item.dirty = true;
                        self.children_pending(&item.link).await?;
                        self.log(
                            LogCode::SyncResumed,
                            Some(&crm_id),
                            Some(&prm_id),
                            format!("Account {crm_id} is flagged again; organization {prm_id} syncs again"),
                            Value::Null,
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
