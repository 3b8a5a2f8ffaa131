//! The body of a new record on one side, built from the record on the other, with the
//! snapshot its link starts from. Sync rules 5 (idempotent creates: the PRM record carries
//! `crm_id`, the Salesforce record the PRM Id it is upserted on), 6 (selection: a new
//! Account is flagged; a person is created only within an organization that syncs) and 9
//! (hierarchy: the parent is set when it is linked) of `docs/sync-rules.md`.
//!
//! The two directions are written apart on purpose: reading a Salesforce value can fail
//! (a picklist value with no mapping) while writing a PRM value cannot, and the other way
//! round for the PRM; the PRM body names its Salesforce record by `crm_id`, the Salesforce
//! body carries the PRM Id, the sync flag and the Record Status.

use std::collections::BTreeMap;

use prmsync_mapping::transform::{read_crm, read_prm, write_crm, write_prm, UnmappedValue};
use prmsync_mapping::value::canonical;
use prmsync_mapping::{rules, CrmRecord, Fields, ObjectKind, PrmRecord};
use serde_json::{json, Value};

use super::references::OrgLinks;
use crate::objects::{keys, ObjectSpec};

/// The body to send and the snapshot the new link starts from.
pub type CreateBody = (Fields, BTreeMap<String, Value>);

/// Why a record is not created on the other side.
#[derive(Debug, Clone, PartialEq)]
pub enum NoCreate {
    /// A value has no mapping: logged, and the record waits until it changes.
    Unmapped(UnmappedValue),
    /// A person whose organization does not sync: nothing to do (not an error).
    OrganizationNotSynced,
}

/// The PRM record to create for a new Salesforce record. No I/O.
pub fn prm_create_body(
    spec: &ObjectSpec,
    org_links: &OrgLinks,
    crm: &CrmRecord,
) -> Result<CreateBody, NoCreate> {
    let mut body = Fields::new();
    let mut snapshot = BTreeMap::new();
    for f in spec.fields.iter() {
        let v = match &f.fixed {
            Some(fixed) if f.prm.is_some() => canonical(f.field_type, f.max_length, fixed),
            Some(_) => continue,
            None => read_crm(f, &crm.fields).map_err(NoCreate::Unmapped)?,
        };
        if f.prm.is_some() && !v.is_null() {
            write_prm(f, &v, &mut body);
        }
        snapshot.insert(f.key(), v);
    }
    body.insert("crm_id".into(), json!(crm.id));
    snapshot.insert(keys::CRM_ID.into(), json!(crm.id));
    match spec.kind {
        ObjectKind::Organization => {
            let parent = crm
                .str_field("ParentId")
                .and_then(|p| org_links.prm_id_of(p));
            if spec.reference.is_some() {
                if let Some(p) = &parent {
                    body.insert("parent_id".into(), json!(p));
                }
                snapshot.insert(keys::REFERENCE.into(), json!(parent));
            }
        }
        _ => {
            let org = org_links
                .org_of_contact(crm)
                .ok_or(NoCreate::OrganizationNotSynced)?;
            body.insert("organization_id".into(), json!(org));
            body.insert("kind".into(), json!("contact"));
            snapshot.insert(keys::REFERENCE.into(), json!(org));
            snapshot.insert(keys::KIND.into(), json!("contact"));
        }
    }
    Ok((body, snapshot))
}

/// The Salesforce record to upsert for a new PRM record. No I/O.
pub fn crm_create_body(
    spec: &ObjectSpec,
    org_links: &OrgLinks,
    prm: &PrmRecord,
) -> Result<CreateBody, NoCreate> {
    let mut body = Fields::new();
    let mut snapshot = BTreeMap::new();
    for f in spec.fields.iter() {
        let v = match &f.fixed {
            Some(fixed) if f.crm.is_some() => canonical(f.field_type, f.max_length, fixed),
            Some(_) => continue,
            None => read_prm(f, &prm.fields),
        };
        if f.crm.is_some() {
            write_crm(f, &v, &mut body).map_err(NoCreate::Unmapped)?;
        }
        snapshot.insert(f.key(), v);
    }
    let setup = &spec.setup;
    body.insert(spec.prm_id_field().to_string(), json!(prm.id));
    snapshot.insert(keys::PRM_ID.into(), json!(prm.id));
    match spec.kind {
        ObjectKind::Organization => {
            body.insert(setup.sync_flag.clone(), json!(true));
            if spec.reference.is_some() {
                let parent = prm
                    .str_field("parent_id")
                    .and_then(|p| org_links.crm_id_of(p).map(|c| (p.to_string(), c)));
                if let Some((_, crm_parent)) = &parent {
                    body.insert("ParentId".into(), json!(crm_parent));
                }
                snapshot.insert(keys::REFERENCE.into(), json!(parent.map(|(p, _)| p)));
            }
        }
        _ => {
            let account = org_links
                .account_of_person(prm)
                .ok_or(NoCreate::OrganizationNotSynced)?;
            body.insert("AccountId".into(), json!(account));
            body.insert(setup.sync_flag.clone(), json!(true));
            snapshot.insert(
                keys::REFERENCE.into(),
                json!(prm.str_field("organization_id")),
            );
            snapshot.insert(
                keys::KIND.into(),
                json!(prm.str_field("kind").unwrap_or("contact")),
            );
        }
    }
    let merged: Fields = snapshot.clone().into_iter().collect();
    if let Some(label) = spec.status_label(&merged) {
        let status = rules::record_status(&label, false);
        body.insert(setup.record_status.clone(), json!(status));
        snapshot.insert(keys::RECORD_STATUS.into(), json!(status));
    }
    Ok((body, snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pass::testkit::{at, crm, link_in, prm, spec};
    use crate::store::LinkState;

    fn linked_org() -> OrgLinks {
        let mut links = OrgLinks::default();
        links.add(&link_in(
            LinkState::Linked,
            ObjectKind::Organization,
            "org_P",
            "001P",
        ));
        links
    }

    #[test]
    fn a_prm_organization_body_carries_crm_id_and_the_linked_parent() {
        let (_, spec) = spec(ObjectKind::Organization);
        let account = crm(
            "001A",
            at(9, 0),
            json!({"Name": "Northwind", "PRM_Organization_Status__c": "Active Partner", "ParentId": "001P"}),
        );
        let (body, snapshot) = prm_create_body(&spec, &linked_org(), &account).unwrap();
        assert_eq!(body["name"], json!("Northwind"));
        assert_eq!(body["kind"], json!("partner"));
        assert_eq!(body["crm_id"], json!("001A"));
        assert_eq!(body["parent_id"], json!("org_P"));
        assert_eq!(snapshot[keys::CRM_ID], json!("001A"));
        assert_eq!(snapshot[keys::REFERENCE], json!("org_P"));
    }

    #[test]
    fn an_unmapped_salesforce_value_creates_nothing() {
        let (_, spec) = spec(ObjectKind::Organization);
        let account = crm(
            "001A",
            at(9, 0),
            json!({"Name": "Northwind", "PRM_Organization_Status__c": "Bogus"}),
        );
        assert!(matches!(
            prm_create_body(&spec, &OrgLinks::default(), &account),
            Err(NoCreate::Unmapped(_))
        ));
    }

    #[test]
    fn a_salesforce_account_body_is_flagged_with_prm_id_and_record_status() {
        let (_, spec) = spec(ObjectKind::Organization);
        let org = prm(
            "org_1",
            1,
            at(9, 0),
            json!({"name": "Northwind", "kind": "partner", "status": "active", "parent_id": "org_P"}),
        );
        let (body, snapshot) = crm_create_body(&spec, &linked_org(), &org).unwrap();
        assert_eq!(body["Name"], json!("Northwind"));
        assert_eq!(body["PRM_Id__c"], json!("org_1"));
        assert_eq!(body["PRM_Sync__c"], json!(true));
        assert_eq!(body["ParentId"], json!("001P"));
        assert_eq!(
            body["PRM_Record_Status__c"],
            json!(rules::record_status("Active Partner", false))
        );
        assert_eq!(snapshot[keys::REFERENCE], json!("org_P"));
    }

    #[test]
    fn a_person_is_created_only_within_an_organization_that_syncs() {
        let (_, spec) = spec(ObjectKind::Person);
        let contact = crm(
            "003A",
            at(9, 0),
            json!({"AccountId": "001P", "LastName": "Doe", "Email": "j@d.example"}),
        );
        assert_eq!(
            prm_create_body(&spec, &OrgLinks::default(), &contact),
            Err(NoCreate::OrganizationNotSynced)
        );
        let (body, _) = prm_create_body(&spec, &linked_org(), &contact).unwrap();
        assert_eq!(body["organization_id"], json!("org_P"));
        assert_eq!(body["kind"], json!("contact"));

        let person = prm(
            "per_1",
            1,
            at(9, 0),
            json!({"organization_id": "org_X", "last_name": "Doe"}),
        );
        assert_eq!(
            crm_create_body(&spec, &linked_org(), &person),
            Err(NoCreate::OrganizationNotSynced)
        );
    }
}
