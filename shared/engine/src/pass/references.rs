//! References.

use prmsync_mapping::{CrmRecord, ObjectKind, PrmRecord};
use serde_json::Value;

use super::*;
use crate::objects::keys;
use crate::store::{Link, LinkState};

impl<'a> Pass<'a> {
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
        for l in self
            .ctx
            .store
            .find_links(ObjectKind::Organization, &crm_ids, &prm_ids)
            .await?
        {
            self.add_ref(&l);
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

    pub(super) fn add_ref(&mut self, link: &Link) {
        if link.object != ObjectKind::Organization || self.spec.reference.is_none() {
            return;
        }
        self.ref_by_crm.insert(link.crm_id.clone(), link.clone());
        self.ref_by_prm.insert(link.prm_id.clone(), link.clone());
    }

    /// The linked organization's PRM id for a Salesforce reference.
    pub(super) fn ref_to_prm(&self, crm_id: &str) -> Option<String> {
        self.ref_by_crm
            .get(crm_id)
            .filter(|l| l.state == LinkState::Linked)
            .map(|l| l.prm_id.clone())
    }

    pub(super) fn ref_to_crm(&self, prm_id: &str) -> Option<String> {
        self.ref_by_prm
            .get(prm_id)
            .filter(|l| l.state == LinkState::Linked)
            .map(|l| l.crm_id.clone())
    }

    /// Whether a person's organization syncs (its link is live).
    pub(super) fn person_org_linked_crm(&self, r: &CrmRecord) -> Option<String> {
        r.str_field("AccountId").and_then(|a| self.ref_to_prm(a))
    }

    pub(super) fn person_org_linked_prm(&self, r: &PrmRecord) -> Option<String> {
        r.str_field("organization_id")
            .and_then(|o| self.ref_to_crm(o))
    }
}
