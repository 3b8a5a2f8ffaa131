//! One record as the operator sees it (the console's record page): both records of its
//! pair read live, their mapped values side by side with the link's snapshot, and people
//! found by email. Reads only: nothing here writes to either side or to the store.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prmsync_mapping::transform::{read_crm, read_prm};
use prmsync_mapping::{CrmRecord, Direction, FieldMapping, ObjectKind, PrmRecord};
use serde_json::Value;

use crate::context::fetch_by_ids;
use crate::objects::ObjectSpec;
use crate::run::RecordRef;
use crate::store::Link;
use crate::{EngineError, SyncContext};

/// One side of the pair as read now.
#[derive(Debug, Clone, PartialEq)]
pub struct SideState {
    pub id: String,
    pub deleted: bool,
    /// Salesforce: `SystemModstamp`; PRM: `updated_at`.
    pub changed_at: Option<DateTime<Utc>>,
}

/// One mapped field of the pair: each side's value read now (canonical, as the merge
/// compares them), and the snapshot's (the value last written to both).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldView {
    /// The field's key in the snapshot.
    pub key: String,
    pub crm_field: Option<String>,
    pub prm_field: Option<String>,
    pub direction: Direction,
    /// None when that side was not read (no such record) or the field is not on it.
    pub crm: Option<Value>,
    pub prm: Option<Value>,
    pub snapshot: Option<Value>,
}

impl FieldView {
    /// Both sides were read and hold different values: the next run merges them.
    pub fn differs(&self) -> bool {
        matches!((&self.crm, &self.prm), (Some(c), Some(p)) if c != p)
    }

    /// A side's value differs from the snapshot: it changed since the last write.
    pub fn changed_since_snapshot(&self, side: &Option<Value>) -> bool {
        matches!((side, &self.snapshot), (Some(v), Some(s)) if v != s)
    }
}

/// A record's pair, read now.
#[derive(Debug, Clone, PartialEq)]
pub struct PairView {
    pub link: Option<Link>,
    pub crm: Option<SideState>,
    pub prm: Option<SideState>,
    pub fields: Vec<FieldView>,
}

/// The mapped values of a pair, side by side with the snapshot (pure).
pub fn field_views(
    fields: &[FieldMapping],
    crm: Option<&CrmRecord>,
    prm: Option<&PrmRecord>,
    snapshot: Option<&BTreeMap<String, Value>>,
) -> Vec<FieldView> {
    fields
        .iter()
        .map(|f| {
            let key = f.key();
            let crm = crm.filter(|_| f.crm.is_some()).map(|r| {
                // a picklist value the mapping does not know is shown as it is
                read_crm(f, &r.fields).unwrap_or_else(|_| {
                    f.crm
                        .as_ref()
                        .and_then(|n| r.fields.get(n))
                        .cloned()
                        .unwrap_or(Value::Null)
                })
            });
            let prm = prm
                .filter(|_| f.prm.is_some())
                .map(|r| read_prm(f, &r.fields));
            FieldView {
                snapshot: snapshot.and_then(|s| s.get(&key)).cloned(),
                key,
                crm_field: f.crm.clone(),
                prm_field: f.prm.clone(),
                direction: f.direction,
                crm,
                prm,
            }
        })
        .collect()
}

/// Reads `record` and its linked counterpart now (one read per side at most).
pub async fn read_pair(ctx: &SyncContext, record: &RecordRef) -> Result<PairView, EngineError> {
    let kind = match record {
        RecordRef::Crm(k, _) | RecordRef::Prm(k, _) => *k,
    };
    let link = crate::relink::find_link(ctx.store.as_ref(), record).await?;
    let (crm_ids, prm_ids) = match (record, &link) {
        (_, Some(l)) => (vec![l.crm_id.clone()], vec![l.prm_id.clone()]),
        (RecordRef::Crm(_, id), None) => (vec![id.clone()], Vec::new()),
        (RecordRef::Prm(_, id), None) => (Vec::new(), vec![id.clone()]),
    };
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let (crm, prm) = fetch_by_ids(ctx, &spec, &crm_ids, &prm_ids).await?;
    let (crm, prm) = (crm.into_iter().next(), prm.into_iter().next());
    Ok(PairView {
        fields: field_views(
            &spec.fields,
            crm.as_ref(),
            prm.as_ref(),
            link.as_ref().map(|l| &l.snapshot),
        ),
        crm: crm.map(|r| SideState {
            id: r.id,
            deleted: r.deleted,
            changed_at: r.modstamp,
        }),
        prm: prm.map(|r| SideState {
            id: r.id,
            deleted: r.deleted,
            changed_at: Some(r.updated_at),
        }),
        link,
    })
}

/// Why a text is not an email address to search by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an email address: search by name@example.com, a Salesforce Id or prm:person:<id>"
)]
pub struct NotAnEmail(pub String);

/// Reads an email address to search by (trimmed; one `@` with text either side, no spaces
/// or control characters, at most 254 characters).
pub fn email(text: &str) -> Result<&str, NotAnEmail> {
    let t = text.trim();
    let ok = t.len() <= 254
        && !t.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(t.split_once('@'), Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('@'));
    if ok {
        Ok(t)
    } else {
        Err(NotAnEmail(text.to_string()))
    }
}

/// People with this email on either side: Contacts (one query) and PRM people (one call),
/// as references for the record page.
pub async fn people_by_email(
    ctx: &SyncContext,
    email: &str,
) -> Result<Vec<RecordRef>, EngineError> {
    let kind = ObjectKind::Person;
    let contacts = ctx
        .crm
        .find(
            kind.crm_object(),
            &["Id".to_string()],
            "Email",
            &[email.to_string()],
        )
        .await?;
    let people = ctx.prm.people_by_email(email).await?;
    Ok(contacts
        .into_iter()
        .map(|c| RecordRef::Crm(kind, c.id))
        .chain(
            people
                .into_iter()
                .filter(|p| !p.deleted)
                .map(|p| RecordRef::Prm(kind, p.id)),
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_mapping::MappingConfig;
    use serde_json::json;

    fn fields(v: Value) -> prmsync_mapping::Fields {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_mapped_field_shows_both_sides_and_the_snapshot() {
        let spec = ObjectSpec::new(ObjectKind::Organization, &MappingConfig::default());
        let name = spec
            .fields
            .iter()
            .find(|f| f.crm.as_deref() == Some("Name"))
            .expect("Name is mapped")
            .clone();
        let crm = CrmRecord {
            id: "001".into(),
            fields: fields(json!({"Name": "Acme Ltd"})),
            modstamp: None,
            deleted: false,
            master_id: None,
        };
        let prm = PrmRecord {
            id: "org_1".into(),
            version: 3,
            updated_at: Utc::now(),
            deleted: false,
            crm_id: None,
            fields: fields(json!({"name": "Acme"})),
        };
        let snapshot = BTreeMap::from([(name.key(), json!("Acme"))]);
        let views = field_views(
            std::slice::from_ref(&name),
            Some(&crm),
            Some(&prm),
            Some(&snapshot),
        );
        assert_eq!(views.len(), 1);
        let v = &views[0];
        assert_eq!(v.crm, Some(json!("Acme Ltd")));
        assert_eq!(v.prm, Some(json!("Acme")));
        assert_eq!(v.snapshot, Some(json!("Acme")));
        assert!(v.differs());
        assert!(v.changed_since_snapshot(&v.crm));
        assert!(!v.changed_since_snapshot(&v.prm));

        // one side missing: nothing to compare
        let views = field_views(std::slice::from_ref(&name), None, Some(&prm), None);
        assert_eq!(views[0].crm, None);
        assert_eq!(views[0].snapshot, None);
        assert!(!views[0].differs());
    }

    #[test]
    fn an_unmapped_picklist_value_is_shown_as_it_is() {
        let spec = ObjectSpec::new(ObjectKind::Organization, &MappingConfig::default());
        let picklist = spec
            .fields
            .iter()
            .find(|f| !f.values.is_empty())
            .expect("the built-in mapping translates Organization Status values");
        let crm_name = picklist.crm.clone().unwrap();
        let crm = CrmRecord {
            id: "001".into(),
            fields: fields(json!({ crm_name: "Not in the mapping" })),
            modstamp: None,
            deleted: false,
            master_id: None,
        };
        let views = field_views(std::slice::from_ref(picklist), Some(&crm), None, None);
        assert_eq!(views[0].crm, Some(json!("Not in the mapping")));
    }

    #[test]
    fn emails_are_checked_before_any_search() {
        assert_eq!(email("  ana@example.com "), Ok("ana@example.com"));
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "a b@example.com",
            "a@b@c",
            "a\n@b",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
