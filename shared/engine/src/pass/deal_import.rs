//! Deal Registration import: a flagged Opportunity becomes a PRM deal when it meets every
//! condition ([`prmsync_mapping::deals::check_opportunity`]); every rejection is an
//! Integration Log entry with its own code, the Opportunity's link and the fix. The facts are
//! read in batches: contact roles, Contacts and Accounts by `IN` queries, the PRM's settings
//! and groups once, each named email once.

use std::collections::{BTreeSet, HashMap};

use prmsync_mapping::config::Direction;
use prmsync_mapping::deals::{
    check_opportunity, ContactFacts, DistributorSettings, GroupFacts, MappedField,
    OpportunityFacts, PrmUserFacts, Rejection, UserLookup,
};
use prmsync_mapping::transform::read_crm;
use prmsync_mapping::{CrmRecord, LogCode, PrmRecord};
use serde_json::{json, Value};

use super::{crm_version, prm_concurrency, Pass, PassError, WorkPair};
use crate::objects::keys;
use crate::ports::{FailureClass, PrmGroup, PrmSettings};
use crate::store::{Link, StoreError};

/// Facts about the Opportunities of one pass, read in batches.
struct Facts {
    settings: PrmSettings,
    groups: HashMap<String, PrmGroup>,
    /// Opportunity Id → primary Contact.
    primary: HashMap<String, ContactFacts>,
    /// Account Id → name.
    accounts: HashMap<String, String>,
    /// lower-cased email → people with it.
    people: HashMap<String, Vec<PrmRecord>>,
    /// organization id → kind (live organizations only).
    org_kinds: HashMap<String, String>,
}

fn text(r: &CrmRecord, field: &str) -> Option<String> {
    r.str_field(field).map(str::to_string)
}

impl<'a> Pass<'a> {
    /// Checks and imports unlinked, flagged Opportunities; returns the new pairs.
    pub(super) async fn import_deals(
        &mut self,
        opportunities: Vec<CrmRecord>,
    ) -> Result<Vec<WorkPair>, PassError> {
        if opportunities.is_empty() {
            return Ok(Vec::new());
        }
        let facts = self.read_facts(&opportunities).await?;
        let distributor = DistributorSettings {
            enabled: facts.settings.distributor_module_enabled,
            partner_email_optional_for_distributor_owned: facts
                .settings
                .partner_email_optional_for_distributor_owned,
        };
        let mut to_create = Vec::new();
        for opp in opportunities {
            let f = self.opportunity_facts(&opp, &facts);
            match check_opportunity(&f, distributor) {
                Ok(plan) => {
                    let mut body = plan.body;
                    body.insert("crm_id".into(), json!(opp.id));
                    to_create.push((opp, body));
                }
                Err(rejections) => {
                    self.out.counts.errors += 1;
                    self.rejected
                        .push(("crm", opp.id.clone(), crm_version(&opp)));
                    for r in rejections {
                        self.log_rejection(&opp, r.shown(self.values(), &f));
                    }
                }
            }
        }
        if self.dry_run {
            for (opp, body) in to_create {
                self.out.counts.created.prm += 1;
                self.plan_write(
                    "create",
                    prmsync_mapping::config::Side::Prm,
                    None,
                    Some(opp.id),
                    body,
                );
            }
            return Ok(Vec::new());
        }
        // The Opportunity Id as Idempotency-Key: never imported twice.
        let writes: Vec<(String, prmsync_mapping::Fields)> = to_create
            .iter()
            .map(|(opp, body)| (opp.id.clone(), body.clone()))
            .collect();
        let answers = self
            .ctx
            .prm
            .create_many("deals", writes, prm_concurrency(self.ctx))
            .await;
        let results: Vec<_> = to_create
            .into_iter()
            .zip(answers)
            .map(|((opp, body), r)| (opp, body, r))
            .collect();
        let mut items = Vec::new();
        for (opp, body, result) in results {
            match result? {
                Ok(deal) => {
                    self.out.counts.created.prm += 1;
                    let mut link = Link::new(self.spec.kind, &deal.id, &opp.id);
                    link.prm_version = Some(deal.version);
                    link.crm_modstamp = opp.modstamp;
                    for f in self.spec.fields.iter() {
                        if let Some(p) = &f.prm {
                            if let Some(v) = body.get(p) {
                                link.snapshot.insert(f.key(), v.clone());
                            }
                        }
                    }
                    link.snapshot.insert(keys::CRM_ID.into(), json!(opp.id));
                    let name = self.values().text(&text(&opp, "Name").unwrap_or_default());
                    self.log(
                        LogCode::DealImported,
                        Some(&opp.id),
                        Some(&deal.id),
                        format!(
                            "Opportunity {name} ({}) was imported as PRM deal {}",
                            opp.id, deal.id
                        ),
                        json!({"owner_type": body.get("owner_type")}),
                    );
                    match self.ctx.store.save_link(&link).await {
                        Ok(saved) => link = saved,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    }
                    let mut item = WorkPair::new(link);
                    item.crm = Some(opp);
                    item.prm = Some(deal);
                    item.created = Some(prmsync_mapping::config::Side::Prm);
                    items.push(item);
                }
                Err(failure) => {
                    self.out.counts.errors += 1;
                    if failure.class == FailureClass::Data {
                        self.rejected
                            .push(("crm", opp.id.clone(), crm_version(&opp)));
                    }
                    // The deal sent is not kept: its customer is personal data. The PRM's
                    // code and the fields it names are, with the values they echo masked.
                    let values = self.values();
                    let sent = [Value::Object(body), Value::Object(opp.fields.clone())];
                    let name = values.text(&text(&opp, "Name").unwrap_or_default());
                    let fields: Vec<String> = failure
                        .fields
                        .iter()
                        .map(|f| values.remote(f, &sent))
                        .collect();
                    self.log(
                        LogCode::DealRejectedByPrm,
                        Some(&opp.id),
                        None,
                        format!(
                            "The PRM rejected the deal for Opportunity {name} ({}): {}",
                            opp.id,
                            values.remote(&failure.message, &sent)
                        ),
                        json!({"code": failure.code, "fields": fields}),
                    );
                }
            }
        }
        Ok(items)
    }

    async fn read_facts(&self, opportunities: &[CrmRecord]) -> Result<Facts, PassError> {
        let crm = &self.ctx.crm;
        let settings = self.ctx.prm.settings().await?;
        let groups = self
            .ctx
            .prm
            .groups()
            .await?
            .into_iter()
            .map(|g| (g.id.clone(), g))
            .collect();
        let ids: Vec<String> = opportunities.iter().map(|o| o.id.clone()).collect();
        let roles = crm
            .find(
                "OpportunityContactRole",
                &[
                    "Id".into(),
                    "OpportunityId".into(),
                    "ContactId".into(),
                    "IsPrimary".into(),
                ],
                "OpportunityId",
                &ids,
            )
            .await?;
        let primary_roles: HashMap<String, String> = roles
            .iter()
            .filter(|r| r.bool_field("IsPrimary"))
            .filter_map(|r| Some((text(r, "OpportunityId")?, text(r, "ContactId")?)))
            .collect();
        let contact_ids: Vec<String> = primary_roles
            .values()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let contacts: HashMap<String, ContactFacts> = if contact_ids.is_empty() {
            HashMap::new()
        } else {
            crm.find(
                "Contact",
                &[
                    "Id".into(),
                    "FirstName".into(),
                    "LastName".into(),
                    "Email".into(),
                    "Phone".into(),
                ],
                "Id",
                &contact_ids,
            )
            .await?
            .into_iter()
            .map(|c| {
                let facts = ContactFacts {
                    id: c.id.clone(),
                    first_name: text(&c, "FirstName"),
                    last_name: text(&c, "LastName"),
                    email: text(&c, "Email"),
                    phone: text(&c, "Phone"),
                };
                (c.id, facts)
            })
            .collect()
        };
        let primary = primary_roles
            .into_iter()
            .filter_map(|(opp, contact)| Some((opp, contacts.get(&contact)?.clone())))
            .collect();
        let account_ids: Vec<String> = opportunities
            .iter()
            .filter_map(|o| text(o, "AccountId"))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let accounts = if account_ids.is_empty() {
            HashMap::new()
        } else {
            crm.find("Account", &["Id".into(), "Name".into()], "Id", &account_ids)
                .await?
                .into_iter()
                .map(|a| {
                    let name = text(&a, "Name").unwrap_or_default();
                    (a.id, name)
                })
                .collect()
        };
        let setup = &self.spec.setup;
        let emails: BTreeSet<String> = opportunities
            .iter()
            .flat_map(|o| {
                [
                    text(o, &setup.partner_email),
                    text(o, &setup.distributor_email),
                ]
            })
            .flatten()
            .map(|e| e.trim().to_lowercase())
            .collect();
        let mut people = HashMap::new();
        for email in emails {
            let found = self.ctx.prm.people_by_email(&email).await?;
            people.insert(email, found);
        }
        let org_ids: Vec<String> = people
            .values()
            .flatten()
            .filter_map(|p| p.str_field("organization_id").map(str::to_string))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let org_kinds = self
            .ctx
            .prm
            .fetch("organizations", &org_ids)
            .await?
            .into_iter()
            .filter(|o| !o.deleted)
            .filter_map(|o| Some((o.id.clone(), o.str_field("kind")?.to_string())))
            .collect();
        Ok(Facts {
            settings,
            groups,
            primary,
            accounts,
            people,
            org_kinds,
        })
    }

    fn user_lookup(&self, email: Option<&str>, facts: &Facts) -> Option<UserLookup> {
        let email = email?.trim().to_lowercase();
        let found = facts.people.get(&email).cloned().unwrap_or_default();
        let live: Vec<&PrmRecord> = found.iter().filter(|p| !p.deleted).collect();
        let person = match (live.len(), found.first()) {
            (0, None) => return Some(UserLookup::NotFound),
            (0, Some(deleted)) => deleted,
            (1, _) => live[0],
            _ => {
                return Some(UserLookup::Several(
                    live.iter().map(|p| p.id.clone()).collect(),
                ))
            }
        };
        let organization_id = person
            .str_field("organization_id")
            .unwrap_or_default()
            .to_string();
        let groups = person
            .fields
            .get("group_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|g| facts.groups.get(g))
            .map(|g| GroupFacts {
                id: g.id.clone(),
                kind: g.kind.clone(),
                modules: g.modules.clone(),
            })
            .collect();
        Some(UserLookup::Found(PrmUserFacts {
            id: person.id.clone(),
            kind: person.str_field("kind").unwrap_or("contact").to_string(),
            status: person.str_field("status").map(str::to_string),
            organization_kind: facts.org_kinds.get(&organization_id).cloned(),
            organization_id,
            groups,
            deleted: person.deleted,
        }))
    }

    fn opportunity_facts(&self, opp: &CrmRecord, facts: &Facts) -> OpportunityFacts {
        let setup = &self.spec.setup;
        let account_id = text(opp, "AccountId");
        let partner_email = text(opp, &setup.partner_email);
        let distributor_email = text(opp, &setup.distributor_email);
        let fields = self
            .spec
            .fields
            .iter()
            .filter(|f| f.fixed.is_none() && f.direction != Direction::ToCrm)
            .filter_map(|f| {
                let (prm, crm) = (f.prm.clone()?, f.crm.clone()?);
                let spec = facts.settings.deal_fields.iter().find(|s| s.name == prm);
                Some(MappedField {
                    crm_value: opp.fields.get(&crm).cloned().unwrap_or(Value::Null),
                    value: read_crm(f, &opp.fields).map_err(|e| e.value),
                    required: spec.is_some_and(|s| s.required),
                    accepted: spec.and_then(|s| s.values.clone()),
                    mapped_values: f.values.keys().cloned().collect(),
                    crm_field: crm,
                    prm_field: prm,
                })
            })
            .collect();
        OpportunityFacts {
            id: opp.id.clone(),
            name: text(opp, "Name"),
            link: self.ctx.crm.record_url("Opportunity", &opp.id),
            account_name: account_id
                .as_ref()
                .and_then(|a| facts.accounts.get(a).cloned()),
            account_id,
            primary_contact: facts.primary.get(&opp.id).cloned(),
            owner_type_raw: text(opp, &setup.deal_owner_type),
            partner_user: self.user_lookup(partner_email.as_deref(), facts),
            distributor_user: self.user_lookup(distributor_email.as_deref(), facts),
            partner_email,
            distributor_email,
            fields,
            partner_email_field: setup.partner_email.clone(),
            distributor_email_field: setup.distributor_email.clone(),
            owner_type_field: setup.deal_owner_type.clone(),
        }
    }

    fn log_rejection(&mut self, opp: &CrmRecord, r: Rejection) {
        let link = self.ctx.crm.record_url("Opportunity", &opp.id);
        self.out.log.push(crate::store::LogEntry {
            // Time-ordered (UUIDv7): a log's id index grows at its end.
            id: uuid::Uuid::now_v7().to_string(),
            time: chrono::Utc::now(),
            run_id: self.run_id.clone(),
            integration: self.integration,
            level: r.code.level(),
            code: r.code,
            object: Some(self.spec.kind),
            crm_id: Some(opp.id.clone()),
            prm_id: None,
            link,
            message: r.message,
            fix: r.fix,
            details: r.details,
            acknowledged: false,
        });
    }
}
