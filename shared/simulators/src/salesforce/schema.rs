//! Object and field definitions of the simulated org (the subset prmsync uses).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Salesforce field types the simulator understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Id,
    String,
    Textarea,
    Email,
    Url,
    Phone,
    Picklist,
    Boolean,
    Reference,
    Currency,
    Double,
    Int,
    Date,
    Datetime,
}

impl FieldType {
    /// The type name used by describe.
    pub fn api_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Textarea => "textarea",
            FieldType::Email => "email",
            FieldType::Url => "url",
            FieldType::Phone => "phone",
            FieldType::Picklist => "picklist",
            FieldType::Boolean => "boolean",
            FieldType::Reference => "reference",
            FieldType::Currency => "currency",
            FieldType::Double => "double",
            FieldType::Int => "int",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
        }
    }

    /// Values of this type are JSON strings compared as text.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::Id
                | FieldType::String
                | FieldType::Textarea
                | FieldType::Email
                | FieldType::Url
                | FieldType::Phone
                | FieldType::Picklist
                | FieldType::Reference
        )
    }

    pub fn is_number(self) -> bool {
        matches!(
            self,
            FieldType::Currency | FieldType::Double | FieldType::Int
        )
    }

    /// Record ids: compared on their case-insensitive 15-character form.
    pub fn is_id(self) -> bool {
        matches!(self, FieldType::Id | FieldType::Reference)
    }

    fn default_length(self) -> u32 {
        match self {
            FieldType::String | FieldType::Url | FieldType::Picklist => 255,
            FieldType::Textarea => 32_000,
            FieldType::Email => 80,
            FieldType::Phone => 40,
            FieldType::Id | FieldType::Reference => 18,
            _ => 0,
        }
    }
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    pub field_type: FieldType,
    /// Maximum text length (0 for non-text types).
    pub length: u32,
    /// Must have a value on create (and cannot be cleared).
    pub required: bool,
    pub createable: bool,
    pub updateable: bool,
    pub external_id: bool,
    pub unique: bool,
    pub case_sensitive: bool,
    pub restricted_picklist: bool,
    pub picklist_values: Vec<String>,
    /// Target objects of a reference field.
    pub reference_to: Vec<String>,
    /// Value set on create when the field is not given.
    pub default_value: Option<Value>,
    /// Decimal places a number field keeps: a value with more is rounded (half away from
    /// zero) when it is saved, as Salesforce does. None for other types.
    #[serde(default)]
    pub scale: Option<u32>,
}

impl FieldDef {
    /// A writable, optional field with the type's default length and a label derived from
    /// the API name.
    pub fn new(name: &str, field_type: FieldType) -> Self {
        let label = name.trim_end_matches("__c").replace('_', " ");
        FieldDef {
            name: name.to_string(),
            label,
            field_type,
            length: field_type.default_length(),
            required: false,
            createable: true,
            updateable: true,
            external_id: false,
            unique: false,
            case_sensitive: false,
            restricted_picklist: false,
            picklist_values: Vec::new(),
            reference_to: Vec::new(),
            default_value: if field_type == FieldType::Boolean {
                Some(Value::Bool(false))
            } else {
                None
            },
            scale: None,
        }
    }

    /// The decimal places a number field keeps (its scale in Setup).
    pub fn scale(mut self, scale: u32) -> Self {
        self.scale = Some(scale);
        self
    }

    pub fn label(mut self, label: &str) -> Self {
        self.label = label.to_string();
        self
    }

    pub fn length(mut self, length: u32) -> Self {
        self.length = length;
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// External ID + Unique, case-insensitive (Salesforce's "Treat "ABC" and "abc" as
    /// duplicate values"): upserts and lookups match values ignoring case.
    pub fn external_id(mut self) -> Self {
        self.external_id = true;
        self.unique = true;
        self
    }

    /// Unique and case-sensitive (Salesforce's "Treat "ABC" and "abc" as different
    /// values"): values differing only in case are different values, for uniqueness and
    /// for upserts. Salesforce offers case sensitivity on Unique fields only, so this makes
    /// the field Unique too.
    pub fn case_sensitive(mut self) -> Self {
        self.unique = true;
        self.case_sensitive = true;
        self
    }

    /// Not Unique (nor case-sensitive): an External ID alone, which Salesforce matches
    /// ignoring case and lets two records share.
    pub fn not_unique(mut self) -> Self {
        self.unique = false;
        self.case_sensitive = false;
        self
    }

    pub fn picklist<S: AsRef<str>>(mut self, values: &[S], restricted: bool) -> Self {
        self.picklist_values = values.iter().map(|v| v.as_ref().to_string()).collect();
        self.restricted_picklist = restricted;
        self
    }

    pub fn reference(mut self, to: &str) -> Self {
        self.reference_to = vec![to.to_string()];
        self
    }

    /// Not writable through the API (system fields).
    pub fn read_only(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }

    /// Nillable as reported by describe.
    pub fn nillable(&self) -> bool {
        !self.required && self.field_type != FieldType::Boolean && self.field_type != FieldType::Id
    }

    /// The describe entry for this field.
    pub fn describe(&self) -> Value {
        let picklist: Vec<Value> = self
            .picklist_values
            .iter()
            .map(|v| json!({"value": v, "label": v, "active": true, "defaultValue": false}))
            .collect();
        let mut described = json!({
            "name": self.name,
            "label": self.label,
            "type": self.field_type.api_name(),
            "length": self.length,
            "nillable": self.nillable(),
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "unique": self.unique,
            "caseSensitive": self.case_sensitive,
            "custom": self.name.ends_with("__c"),
            "idLookup": self.field_type == FieldType::Id || self.external_id,
            "restrictedPicklist": self.restricted_picklist,
            "picklistValues": picklist,
            "referenceTo": self.reference_to,
            "defaultedOnCreate": self.default_value.is_some(),
        });
        if let (Some(scale), Value::Object(m)) = (self.scale, &mut described) {
            m.insert("scale".into(), json!(scale));
            m.insert("precision".into(), json!(18));
        }
        described
    }
}

/// One sObject type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    /// The three-character Id prefix.
    pub key_prefix: String,
    pub fields: Vec<FieldDef>,
}

impl ObjectDef {
    /// A new object with the system fields every object has.
    pub fn new(name: &str, key_prefix: &str) -> Self {
        let system = [
            FieldDef::new("Id", FieldType::Id).read_only(),
            FieldDef::new("IsDeleted", FieldType::Boolean).read_only(),
            FieldDef::new("CreatedDate", FieldType::Datetime).read_only(),
            FieldDef::new("LastModifiedDate", FieldType::Datetime).read_only(),
            FieldDef::new("SystemModstamp", FieldType::Datetime).read_only(),
        ];
        ObjectDef {
            name: name.to_string(),
            label: name.to_string(),
            key_prefix: key_prefix.to_string(),
            fields: system.into_iter().collect(),
        }
    }

    pub fn with(mut self, field: FieldDef) -> Self {
        self.add_field(field);
        self
    }

    /// Adds a field, replacing one with the same name.
    pub fn add_field(&mut self, field: FieldDef) {
        match self
            .fields
            .iter_mut()
            .find(|f| f.name.eq_ignore_ascii_case(&field.name))
        {
            Some(existing) => *existing = field,
            None => self.fields.push(field),
        }
    }

    /// The field with this name, ignoring case.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    pub fn external_id_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| f.external_id)
    }

    pub fn describe(&self) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "keyPrefix": self.key_prefix,
            "custom": self.name.ends_with("__c"),
            "createable": true,
            "updateable": true,
            "deletable": true,
            "queryable": true,
            "fields": self.fields.iter().map(FieldDef::describe).collect::<Vec<_>>(),
        })
    }
}

/// All objects of the org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub objects: Vec<ObjectDef>,
}

/// Organization Status picklist values.
pub const ORGANIZATION_STATUSES: [&str; 5] = [
    "Active Partner",
    "Prospective Partner",
    "Inactive Partner",
    "Active Distributor",
    "Inactive Distributor",
];

/// Stage names of the default Opportunity picklist.
pub const OPPORTUNITY_STAGES: [&str; 8] = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

fn record_statuses() -> Vec<String> {
    let base: Vec<&str> = ORGANIZATION_STATUSES
        .iter()
        .copied()
        .chain(["Contact", "User"])
        .collect();
    let mut all: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    all.extend(base.iter().map(|s| format!("{s} (Deleted)")));
    all
}

fn prm_common(obj: ObjectDef) -> ObjectDef {
    obj.with(FieldDef::new("PRM_Sync__c", FieldType::Boolean).label("Sync with PRM"))
        .with(
            FieldDef::new("PRM_Record_Status__c", FieldType::Picklist)
                .label("Record Status")
                .picklist(&record_statuses(), true),
        )
        .with(
            FieldDef::new("PRM_Id__c", FieldType::String)
                .label("PRM Id")
                .external_id()
                .case_sensitive(),
        )
}

impl Schema {
    /// The default org: Account, Contact, Opportunity, OpportunityContactRole and User with
    /// the prmsync setup fields.
    pub fn default_org() -> Self {
        use FieldType as T;
        let account = ObjectDef::new("Account", "001")
            .with(
                FieldDef::new("MasterRecordId", T::Reference)
                    .reference("Account")
                    .read_only(),
            )
            .with(
                FieldDef::new("Name", T::String)
                    .required()
                    .label("Account Name"),
            )
            .with(FieldDef::new("Website", T::Url))
            .with(FieldDef::new("Phone", T::Phone))
            .with(FieldDef::new("BillingStreet", T::Textarea).length(255))
            .with(FieldDef::new("BillingCity", T::String).length(40))
            .with(FieldDef::new("BillingState", T::String).length(80))
            .with(FieldDef::new("BillingPostalCode", T::String).length(20))
            .with(FieldDef::new("BillingCountry", T::String).length(80))
            .with(FieldDef::new("Industry", T::Picklist).picklist(
                &[
                    "Technology",
                    "Manufacturing",
                    "Finance",
                    "Healthcare",
                    "Retail",
                    "Other",
                ],
                false,
            ))
            .with(FieldDef::new("Type", T::Picklist).picklist(
                &["Prospect", "Customer", "Partner", "Reseller", "Other"],
                false,
            ))
            .with(FieldDef::new("ParentId", T::Reference).reference("Account"))
            .with(FieldDef::new("OwnerId", T::Reference).reference("User"))
            .with(
                FieldDef::new("PRM_Organization_Status__c", T::Picklist)
                    .label("PRM Organization Status")
                    .picklist(&ORGANIZATION_STATUSES, true),
            );
        let account = prm_common(account);

        let contact = ObjectDef::new("Contact", "003")
            .with(
                FieldDef::new("MasterRecordId", T::Reference)
                    .reference("Contact")
                    .read_only(),
            )
            .with(FieldDef::new("AccountId", T::Reference).reference("Account"))
            .with(FieldDef::new("FirstName", T::String).length(40))
            .with(FieldDef::new("LastName", T::String).length(80).required())
            .with(FieldDef::new("Email", T::Email))
            .with(FieldDef::new("Title", T::String).length(128))
            .with(FieldDef::new("Phone", T::Phone))
            .with(FieldDef::new("MobilePhone", T::Phone))
            .with(FieldDef::new("OwnerId", T::Reference).reference("User"));
        let contact = prm_common(contact);

        let opportunity = ObjectDef::new("Opportunity", "006")
            .with(FieldDef::new("Name", T::String).length(120).required())
            .with(FieldDef::new("AccountId", T::Reference).reference("Account"))
            .with(
                FieldDef::new("StageName", T::Picklist)
                    .required()
                    .picklist(&OPPORTUNITY_STAGES, true),
            )
            .with(FieldDef::new("Amount", T::Currency).scale(2))
            .with(FieldDef::new("CloseDate", T::Date).required())
            .with(
                FieldDef::new("CurrencyIsoCode", T::Picklist)
                    .length(3)
                    .picklist(&["USD", "EUR", "GBP", "JPY", "AUD", "CAD"], false),
            )
            .with(FieldDef::new("OwnerId", T::Reference).reference("User"))
            .with(FieldDef::new("Description", T::Textarea))
            .with(FieldDef::new("PRM_Sync__c", T::Boolean).label("Sync with PRM"))
            .with(FieldDef::new("PRM_Export_Deal__c", T::Boolean).label("Export to PRM Deal"))
            .with(FieldDef::new("PRM_Partner_Email__c", T::Email).label("PRM Partner Email"))
            .with(
                FieldDef::new("PRM_Distributor_Email__c", T::Email).label("PRM Distributor Email"),
            )
            .with(
                FieldDef::new("PRM_Deal_Owner_Type__c", T::Picklist)
                    .label("Deal Owner Type")
                    .picklist(&["Partner-Owned", "Distributor-Owned"], true),
            )
            .with(
                FieldDef::new("PRM_Deal_Id__c", T::String)
                    .label("PRM Deal Id")
                    .external_id()
                    .case_sensitive(),
            )
            .with(
                FieldDef::new("PRM_Registration_Status__c", T::Picklist)
                    .label("PRM Registration Status")
                    .picklist(&["Pending", "Approved", "Denied", "Expired"], false),
            );

        let role = ObjectDef::new("OpportunityContactRole", "00k")
            .with(
                FieldDef::new("OpportunityId", T::Reference)
                    .reference("Opportunity")
                    .required(),
            )
            .with(
                FieldDef::new("ContactId", T::Reference)
                    .reference("Contact")
                    .required(),
            )
            .with(FieldDef::new("Role", T::Picklist).picklist(
                &[
                    "Business User",
                    "Decision Maker",
                    "Economic Buyer",
                    "Technical Buyer",
                    "Influencer",
                    "Other",
                ],
                false,
            ))
            .with(FieldDef::new("IsPrimary", T::Boolean));

        let user = ObjectDef::new("User", "005")
            .with(FieldDef::new("Username", T::String).length(80).required())
            .with(FieldDef::new("FirstName", T::String).length(40))
            .with(FieldDef::new("LastName", T::String).length(80).required())
            .with(FieldDef::new("Email", T::Email).required())
            .with(FieldDef::new("IsActive", T::Boolean));

        Schema {
            objects: vec![account, contact, opportunity, role, user],
        }
    }

    /// The object with this name, ignoring case.
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub fn object_mut(&mut self, name: &str) -> Option<&mut ObjectDef> {
        self.objects
            .iter_mut()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    /// The object whose records have this Id prefix.
    pub fn object_for_id(&self, id: &str) -> Option<&ObjectDef> {
        let prefix = id.get(..3)?;
        self.objects.iter().find(|o| o.key_prefix == prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_has_setup_fields() {
        let schema = Schema::default_org();
        let account = schema.object("account").unwrap();
        assert_eq!(account.name, "Account");
        let status = account.field("prm_record_status__c").unwrap();
        assert!(status.restricted_picklist);
        assert_eq!(status.picklist_values.len(), 14);
        assert!(status
            .picklist_values
            .contains(&"Active Partner (Deleted)".to_string()));
        for object in ["Account", "Contact"] {
            let id = schema.object(object).unwrap().field("PRM_Id__c").unwrap();
            assert!(id.external_id && id.unique && id.case_sensitive, "{object}");
        }
        let opp = schema.object("Opportunity").unwrap();
        let deal_id = opp.field("PRM_Deal_Id__c").unwrap();
        assert!(deal_id.external_id && deal_id.unique && deal_id.case_sensitive);
        assert_eq!(schema.object_for_id("006000").unwrap().name, "Opportunity");
    }
}
