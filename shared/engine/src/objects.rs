//! What differs between object pairs: which fields are read, which records are selected,
//! the reference each record carries and its Record Status.

use prmsync_mapping::config::{FieldMapping, MappingConfig, SetupFields};
use prmsync_mapping::transform::write_crm;
use prmsync_mapping::{rules, CrmRecord, Fields, ObjectKind, PrmRecord};
use serde_json::Value;

use crate::ports::Scope;

/// Snapshot keys of the values the sync rules keep besides mapped fields.
pub mod keys {
    /// The PRM id written to Salesforce's PRM Id field.
    pub const PRM_ID: &str = "$prm_id";
    /// The Salesforce Id written to the PRM's crm_id.
    pub const CRM_ID: &str = "$crm_id";
    /// The Record Status written to Salesforce.
    pub const RECORD_STATUS: &str = "$record_status";
    /// A person's kind (user or contact).
    pub const KIND: &str = "$kind";
    /// The reference (parent organization, or a person's organization), as a PRM id.
    pub const REFERENCE: &str = "$reference";
    /// A parent (PRM id) that one side holds and that was not written to the other because
    /// it would have closed a loop; cleared once the pair merges without one.
    pub const PARENT_HELD: &str = "$parent_held";
}

/// A record's reference to an organization: an Account's parent or a Contact's Account.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    pub crm_field: &'static str,
    pub prm_field: &'static str,
    /// A person cannot exist without its organization.
    pub required: bool,
}

/// The rules of one object pair, read from the mapping.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub kind: ObjectKind,
    /// Shared, so a pass can walk the fields while it records what it does.
    pub fields: std::sync::Arc<[FieldMapping]>,
    pub setup: SetupFields,
    pub reference: Option<Reference>,
}

impl ObjectSpec {
    pub fn new(kind: ObjectKind, mapping: &MappingConfig) -> Self {
        let object = mapping.object(kind);
        let reference = match kind {
            ObjectKind::Organization if object.hierarchy => Some(Reference {
                crm_field: "ParentId",
                prm_field: "parent_id",
                required: false,
            }),
            ObjectKind::Person => Some(Reference {
                crm_field: "AccountId",
                prm_field: "organization_id",
                required: true,
            }),
            _ => None,
        };
        Self {
            kind,
            fields: object.fields.iter().cloned().collect(),
            setup: mapping.setup.clone(),
            reference,
        }
    }

    pub fn crm_object(&self) -> &'static str {
        self.kind.crm_object()
    }

    pub fn prm_collection(&self) -> &'static str {
        self.kind.prm_collection()
    }

    /// The Salesforce field holding the linked PRM record's id.
    pub fn prm_id_field(&self) -> &str {
        match self.kind {
            ObjectKind::Deal => &self.setup.deal_id,
            _ => &self.setup.prm_id,
        }
    }

    /// Every Salesforce field a pass reads.
    pub fn crm_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = vec!["Id".into(), "SystemModstamp".into(), "IsDeleted".into()];
        match self.kind {
            ObjectKind::Organization => out.extend([
                "MasterRecordId".into(),
                self.setup.prm_id.clone(),
                self.setup.record_status.clone(),
                self.setup.sync_flag.clone(),
                self.setup.organization_status.clone(),
            ]),
            ObjectKind::Person => out.extend([
                "MasterRecordId".into(),
                self.setup.prm_id.clone(),
                self.setup.record_status.clone(),
            ]),
            ObjectKind::Deal => out.extend([
                "AccountId".into(),
                self.setup.deal_id.clone(),
                self.setup.sync_flag.clone(),
                self.setup.export_deal.clone(),
                self.setup.partner_email.clone(),
                self.setup.distributor_email.clone(),
                self.setup.deal_owner_type.clone(),
            ]),
        }
        if let Some(r) = self.reference {
            out.push(r.crm_field.into());
        }
        for f in self.fields.iter() {
            if let Some(c) = &f.crm {
                if !out.iter().any(|o| o.eq_ignore_ascii_case(c)) {
                    out.push(c.clone());
                }
            }
        }
        out
    }

    /// Which Salesforce records a change query reads.
    pub fn scope(&self) -> Scope {
        match self.kind {
            ObjectKind::Organization => Scope::FlaggedOrLinked {
                flags: vec![self.setup.sync_flag.clone()],
                prm_id: self.setup.prm_id.clone(),
            },
            ObjectKind::Person => Scope::NotNull("AccountId".into()),
            ObjectKind::Deal => Scope::FlaggedOrLinked {
                flags: vec![self.setup.sync_flag.clone(), self.setup.export_deal.clone()],
                prm_id: self.setup.deal_id.clone(),
            },
        }
    }

    /// Selection of a Salesforce record on its own fields (Accounts: flag and status).
    pub fn crm_selected(&self, record: &CrmRecord) -> bool {
        match self.kind {
            ObjectKind::Organization => rules::account_selected(record, &self.setup),
            ObjectKind::Person => !record.deleted,
            ObjectKind::Deal => {
                !record.deleted
                    && record.bool_field(&self.setup.sync_flag)
                    && record.bool_field(&self.setup.export_deal)
            }
        }
    }

    /// The first-import match key of a Salesforce record (sync rule 8): an Account's name and
    /// website domain; a Contact's organization (`org_of` gives the PRM id of the
    /// organization linked to an Account) and email. Deals are never matched.
    pub fn crm_match_key(
        &self,
        r: &CrmRecord,
        org_of: impl Fn(&str) -> Option<String>,
    ) -> Option<String> {
        match self.kind {
            ObjectKind::Deal => None,
            ObjectKind::Organization => {
                organization_key(r.str_field("Name"), r.str_field("Website"))
            }
            ObjectKind::Person => {
                person_key(&org_of(r.str_field("AccountId")?)?, r.str_field("Email"))
            }
        }
    }

    /// The match key of a PRM record, comparable with [`crm_match_key`](Self::crm_match_key).
    pub fn prm_match_key(&self, r: &PrmRecord) -> Option<String> {
        match self.kind {
            ObjectKind::Deal => None,
            ObjectKind::Organization => {
                organization_key(r.str_field("name"), r.str_field("website"))
            }
            ObjectKind::Person => person_key(r.str_field("organization_id")?, r.str_field("email")),
        }
    }

    /// The Record Status label for the merged values of a linked pair.
    pub fn status_label(&self, merged: &Fields) -> Option<String> {
        match self.kind {
            ObjectKind::Organization => {
                let f = self
                    .fields
                    .iter()
                    .find(|f| f.crm.as_deref() == Some(self.setup.organization_status.as_str()))?;
                let mut out = Fields::new();
                write_crm(f, merged.get(&f.key())?, &mut out).ok()?;
                out.get(&self.setup.organization_status)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            }
            ObjectKind::Deal => None,
            ObjectKind::Person => Some(
                match merged.get(keys::KIND).and_then(Value::as_str) {
                    Some("user") => "User",
                    _ => "Contact",
                }
                .to_string(),
            ),
        }
    }
}

/// The match key both sides of an organization pair are compared by: normalised name and
/// website domain.
fn organization_key(name: Option<&str>, website: Option<&str>) -> Option<String> {
    rules::organization_match_key(name, website)
        .map(|(n, d)| format!("{n}|{}", d.unwrap_or_default()))
}

/// The match key of a person: the organization's PRM id and the normalised email.
fn person_key(org: &str, email: Option<&str>) -> Option<String> {
    rules::person_match_key(email).map(|e| format!("{org}|{e}"))
}
