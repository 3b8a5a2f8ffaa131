//! References between records: an Account's parent, a Contact's Account and their PRM
//! counterparts (`parent_id`, `organization_id`). Both sides name the organization by
//! their own id, so a reference is translated through the organization links
//! ([`OrgLinks`]). Sync rules 6 (people sync while their organization does) and 9
//! (hierarchy: parents are translated through the links both ways) of
//! `docs/sync-rules.md`.

use std::collections::HashMap;

use prmsync_mapping::{CrmRecord, ObjectKind, PrmRecord};
use serde_json::Value;

use super::{Pass, PassError};
use crate::objects::keys;
use crate::store::{Link, LinkIds, LinkState};

/// The organization links a pass knows, by Salesforce Id and by PRM id: what a reference
/// on one side is on the other. Ids and states only: a page of people names thousands of
/// organizations.
#[derive(Debug, Default, Clone)]
pub struct OrgLinks {
    /// Salesforce Id → (PRM id, state).
    by_crm: HashMap<String, (String, LinkState)>,
    /// PRM id → (Salesforce Id, state).
    by_prm: HashMap<String, (String, LinkState)>,
}

impl OrgLinks {
    /// Adds (or replaces) an organization link.
    pub fn add(&mut self, link: &Link) {
        self.add_ids(LinkIds::from(link));
    }

    /// Adds (or replaces) an organization link read without its snapshot.
    pub fn add_ids(&mut self, link: LinkIds) {
        self.by_crm
            .insert(link.crm_id.clone(), (link.prm_id.clone(), link.state));
        self.by_prm.insert(link.prm_id, (link.crm_id, link.state));
    }

    /// The PRM id of the organization a Salesforce Account Id stands for, while its link
    /// is live.
    pub fn prm_id_of(&self, account_id: &str) -> Option<String> {
        live(self.by_crm.get(account_id))
    }

    /// The Salesforce Account Id of a PRM organization, while its link is live.
    pub fn crm_id_of(&self, organization_id: &str) -> Option<String> {
        live(self.by_prm.get(organization_id))
    }

    /// The PRM organization of a Contact's Account, when that organization syncs.
    pub fn org_of_contact(&self, contact: &CrmRecord) -> Option<String> {
        contact
            .str_field("AccountId")
            .and_then(|a| self.prm_id_of(a))
    }

    /// The Account of a PRM person's organization, when that organization syncs.
    pub fn account_of_person(&self, person: &PrmRecord) -> Option<String> {
        person
            .str_field("organization_id")
            .and_then(|o| self.crm_id_of(o))
    }
}

/// The other side's id of a link that is live.
fn live(entry: Option<&(String, LinkState)>) -> Option<String> {
    entry
        .filter(|(_, state)| *state == LinkState::Linked)
        .map(|(id, _)| id.clone())
}

impl<'a> Pass<'a> {
    /// Reads the organization links every reference of this pass's records points at.
    pub(super) async fn load_references(
        &mut self,
        crm: &[CrmRecord],
        prm: &[PrmRecord],
        links: &[Link],
    ) -> Result<(), PassError> {
        let Some(reference) = self.spec.reference else {
            return Ok(());
        };
        let mut crm_ids: Vec<String> = crm
            .iter()
            .filter_map(|r| r.str_field(reference.crm_field).map(str::to_string))
            .collect();
        let mut prm_ids: Vec<String> = prm
            .iter()
            .filter_map(|r| r.str_field(reference.prm_field).map(str::to_string))
            .collect();
        prm_ids.extend(links.iter().filter_map(|l| {
            l.snapshot
                .get(keys::REFERENCE)
                .and_then(Value::as_str)
                .map(str::to_string)
        }));
        if self.spec.kind == ObjectKind::Organization {
            // The records of this pass are references of each other too.
            crm_ids.extend(links.iter().map(|l| l.crm_id.clone()));
            prm_ids.extend(links.iter().map(|l| l.prm_id.clone()));
        }
        crm_ids.sort();
        crm_ids.dedup();
        prm_ids.sort();
        prm_ids.dedup();
        if crm_ids.is_empty() && prm_ids.is_empty() {
            return Ok(());
        }
        let found = self
            .ctx
            .store
            .find_link_ids(ObjectKind::Organization, &crm_ids, &prm_ids)
            .await?;
        for ids in found {
            self.org_links.add_ids(ids);
        }
        Ok(())
    }

    /// A newly linked (or resumed) organization: its people are read on the next people
    /// pass.
    pub(super) async fn children_pending(&self, link: &Link) -> Result<(), PassError> {
        if self.spec.kind == ObjectKind::Organization && !self.dry_run {
            self.ctx
                .store
                .mark_children_pending(ObjectKind::Organization, &link.prm_id, &link.crm_id)
                .await?;
        }
        Ok(())
    }

    /// Remembers an organization link for the references of this pass (only when the
    /// object pair has references).
    pub(super) fn add_org_link(&mut self, link: &Link) {
        if link.object != ObjectKind::Organization || self.spec.reference.is_none() {
            return;
        }
        self.org_links.add(link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(prm: &str, crm: &str, state: LinkState) -> Link {
        let mut l = Link::new(ObjectKind::Organization, prm, crm);
        l.state = state;
        l
    }

    #[test]
    fn a_live_link_translates_both_ways() {
        let mut links = OrgLinks::default();
        links.add(&link("org_1", "001A", LinkState::Linked));
        assert_eq!(links.prm_id_of("001A").as_deref(), Some("org_1"));
        assert_eq!(links.crm_id_of("org_1").as_deref(), Some("001A"));
        assert_eq!(links.prm_id_of("001B"), None);
    }

    #[test]
    fn an_unselected_or_disconnected_link_translates_nothing() {
        let mut links = OrgLinks::default();
        links.add(&link("org_1", "001A", LinkState::Unselected));
        links.add(&link("org_2", "001B", LinkState::Disconnected));
        assert_eq!(links.prm_id_of("001A"), None);
        assert_eq!(links.crm_id_of("org_2"), None);
    }
}
