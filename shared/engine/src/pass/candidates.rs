//! The candidates of first-import matching: the unlinked records of a pass that may be
//! matched or created, and the records they name that are not in hand (by id on the other
//! side, and people by email). Sync rules 5 (a crash between a create and its link leaves
//! an id that is found here) and 8 (first import without duplicates) of
//! `docs/sync-rules.md`.

use std::collections::HashSet;

use prmsync_mapping::{rules, CrmRecord, ObjectKind, PrmRecord};

use super::pair::dedupe;
use super::{Pass, PassError};

impl<'a> Pass<'a> {
    /// Whether an unlinked Salesforce record may sync: live, selected and (people) of an
    /// organization that syncs.
    pub(super) fn crm_eligible(&self, r: &CrmRecord) -> bool {
        if r.deleted || !self.spec.crm_selected(r) {
            return false;
        }
        self.spec.kind != ObjectKind::Person || self.org_links.org_of_contact(r).is_some()
    }

    /// Whether an unlinked PRM record may sync: live and (people) of an organization that
    /// syncs.
    pub(super) fn prm_eligible(&self, r: &PrmRecord) -> bool {
        if r.deleted {
            return false;
        }
        self.spec.kind != ObjectKind::Person || self.org_links.account_of_person(r).is_some()
    }

    /// The unlinked records that may be matched or created: not rejected before in the
    /// same version, eligible, plus (when not every record is in hand) the records the
    /// other side names by id and, for people, the records with the same email.
    pub(super) async fn match_candidates(
        &mut self,
        crm: Vec<CrmRecord>,
        prm: Vec<PrmRecord>,
        full: bool,
    ) -> Result<(Vec<CrmRecord>, Vec<PrmRecord>), PassError> {
        let prm_id_field = self.spec.prm_id_field().to_string();
        // Records rejected before are left alone until they change (a full run retries all).
        let (crm, prm) = if self.retry_rejected {
            (crm, prm)
        } else {
            let crm = self.without_rejected(crm).await?;
            (crm, self.without_rejected(prm).await?)
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
        Ok((dedupe(crm), dedupe(prm)))
    }
}
