//! Strict validation of create and PATCH bodies, and the merge of a body into a record.
//!
//! `merge` checks every field of the body on its own (unknown field, type, enum, picklist
//! from the settings, references), applies the body to the base record (`custom` and
//! `customer` merge key by key) and then checks the merged record as a whole (required
//! fields, user/contact rules, parent cycles, deal ownership). Every problem becomes one
//! `fields` entry.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::error::{FieldError, SimError};
use super::store::{Collection, Store};

/// Who is writing: a client through the API, or a test through the simulator handle
/// (which may set PRM-only fields such as `registration_status` and choose ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Api,
    Direct,
}

/// Keys the PRM manages; ignored in bodies.
const META: [&str; 5] = ["id", "version", "created_at", "updated_at", "deleted_at"];

const MODULES: &[&str] = &["deal_registration", "lead_distribution", "mdf", "training"];
const CUSTOMER_KEYS: &[&str] = &["company", "first_name", "last_name", "email", "phone"];
const REGISTRATION: &[&str] = &["pending", "approved", "denied", "expired"];

#[derive(Clone, Copy, Debug)]
enum Ty {
    Str,
    Email,
    Enum(&'static [&'static str]),
    OrgRef,
    UserRef,
    GroupRefs,
    Modules,
    Number,
    Date,
    Custom,
    Customer,
    /// Set by the PRM alone; clients may not send it.
    PrmOnly(&'static [&'static str]),
}

const ORGANIZATION: &[(&str, Ty)] = &[
    ("kind", Ty::Enum(&["partner", "distributor"])),
    ("name", Ty::Str),
    ("status", Ty::Enum(&["active", "prospective", "inactive"])),
    ("parent_id", Ty::OrgRef),
    ("website", Ty::Str),
    ("phone", Ty::Str),
    ("street", Ty::Str),
    ("city", Ty::Str),
    ("state", Ty::Str),
    ("postal_code", Ty::Str),
    ("country", Ty::Str),
    ("crm_id", Ty::Str),
    ("custom", Ty::Custom),
];

const PERSON: &[(&str, Ty)] = &[
    ("organization_id", Ty::OrgRef),
    ("kind", Ty::Enum(&["user", "contact"])),
    (
        "status",
        Ty::Enum(&["active", "pending", "inactive", "disabled"]),
    ),
    ("first_name", Ty::Str),
    ("last_name", Ty::Str),
    ("email", Ty::Email),
    ("title", Ty::Str),
    ("phone", Ty::Str),
    ("group_ids", Ty::GroupRefs),
    ("crm_id", Ty::Str),
    ("custom", Ty::Custom),
];

const DEAL: &[(&str, Ty)] = &[
    ("owner_type", Ty::Enum(&["partner", "distributor"])),
    ("partner_user_id", Ty::UserRef),
    ("distributor_user_id", Ty::UserRef),
    ("partner_organization_id", Ty::OrgRef),
    ("distributor_organization_id", Ty::OrgRef),
    ("name", Ty::Str),
    ("stage", Ty::Str),
    ("amount", Ty::Number),
    ("currency", Ty::Str),
    ("close_date", Ty::Date),
    ("registration_status", Ty::PrmOnly(REGISTRATION)),
    ("customer", Ty::Customer),
    ("crm_id", Ty::Str),
    ("custom", Ty::Custom),
];

const GROUP: &[(&str, Ty)] = &[
    ("kind", Ty::Enum(&["partner", "distributor"])),
    ("name", Ty::Str),
    ("modules", Ty::Modules),
    ("crm_id", Ty::Str),
    ("custom", Ty::Custom),
];

fn schema(c: Collection) -> &'static [(&'static str, Ty)] {
    match c {
        Collection::Organizations => ORGANIZATION,
        Collection::People => PERSON,
        Collection::Deals => DEAL,
        Collection::Groups => GROUP,
    }
}

/// Fields the contract itself requires, whatever the settings say.
fn contract_required(c: Collection) -> &'static [&'static str] {
    match c {
        Collection::Organizations => &["name"],
        Collection::People => &["organization_id", "kind", "first_name", "last_name"],
        Collection::Deals => &["name", "stage"],
        Collection::Groups => &["kind", "name"],
    }
}

/// The body of a new record before the client's values are applied.
pub fn defaults(c: Collection) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, ty) in schema(c) {
        let v = match ty {
            Ty::Custom => json!({}),
            Ty::GroupRefs | Ty::Modules => json!([]),
            Ty::Customer => empty_customer(),
            Ty::PrmOnly(_) => json!("pending"),
            _ => Value::Null,
        };
        out.insert(name.to_string(), v);
    }
    if c == Collection::People {
        out.insert("kind".into(), json!("contact"));
    }
    out
}

fn empty_customer() -> Value {
    Value::Object(
        CUSTOMER_KEYS
            .iter()
            .map(|k| (k.to_string(), Value::Null))
            .collect(),
    )
}

/// Validates `body` and applies it to `base`; returns the merged record.
pub fn merge(
    store: &Store,
    c: Collection,
    self_id: Option<&str>,
    base: &Map<String, Value>,
    body: &Map<String, Value>,
    mode: Mode,
) -> Result<Map<String, Value>, SimError> {
    let mut v = Validator {
        store,
        c,
        errors: Vec::new(),
        bad: BTreeSet::new(),
    };
    let mut out = base.clone();
    for (key, value) in body {
        if META.contains(&key.as_str()) {
            continue;
        }
        let Some(ty) = schema(c).iter().find(|(n, _)| n == key).map(|(_, t)| *t) else {
            v.fail(key, format!("is not a field of {}", c.path()));
            continue;
        };
        if let Some(normalised) = v.check_value(key, ty, value, mode) {
            apply(&mut out, key, ty, normalised);
        }
    }
    v.check_picklists(body);
    v.check_record(self_id, &out, body);
    if v.errors.is_empty() {
        Ok(out)
    } else {
        Err(SimError::validation(v.errors))
    }
}

fn apply(out: &mut Map<String, Value>, key: &str, ty: Ty, value: Value) {
    match (ty, value) {
        (Ty::Custom | Ty::Customer, Value::Object(patch)) => {
            let slot = out.entry(key.to_string()).or_insert_with(|| json!({}));
            if !slot.is_object() {
                *slot = json!({});
            }
            if let Some(obj) = slot.as_object_mut() {
                obj.extend(patch);
            }
        }
        (_, value) => {
            out.insert(key.to_string(), value);
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn is_blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

struct Validator<'a> {
    store: &'a Store,
    c: Collection,
    errors: Vec<FieldError>,
    /// Fields that already have an error, so that one problem gives one entry.
    bad: BTreeSet<String>,
}

impl Validator<'_> {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.bad.insert(field.to_string());
        self.errors.push(FieldError::new(field, message));
    }

    /// Records a record-level problem unless the field already has one.
    fn fail_once(&mut self, field: &str, message: impl Into<String>) {
        if !self.bad.contains(field) {
            self.fail(field, message);
        }
    }

    /// Checks one body value; returns the value to store when it is valid.
    fn check_value(&mut self, key: &str, ty: Ty, value: &Value, mode: Mode) -> Option<Value> {
        let before = self.errors.len();
        let stored = match ty {
            Ty::Str | Ty::Email | Ty::Enum(_) | Ty::Date => self.check_string(key, ty, value),
            Ty::OrgRef => {
                if let Some(id) = self.nullable_string(key, value) {
                    self.check_ref(key, Collection::Organizations, id);
                }
                value.clone()
            }
            Ty::UserRef => {
                if let Some(id) = self.nullable_string(key, value) {
                    self.check_user(key, id);
                }
                value.clone()
            }
            Ty::GroupRefs => self.check_group_ids(key, value),
            Ty::Modules => self.check_list(key, value, MODULES),
            Ty::Number => {
                if !(value.is_null() || value.is_number()) {
                    self.fail(
                        key,
                        format!("must be a number or null, not {}", type_name(value)),
                    );
                }
                value.clone()
            }
            Ty::Custom => self.check_object(key, value, None),
            Ty::Customer if value.is_null() => empty_customer(),
            Ty::Customer => self.check_object(key, value, Some(CUSTOMER_KEYS)),
            Ty::PrmOnly(values) => {
                if mode == Mode::Api {
                    self.fail(key, "is set by the PRM alone; remove it from the request");
                } else {
                    self.check_string(key, Ty::Enum(values), value);
                }
                value.clone()
            }
        };
        (self.errors.len() == before).then_some(stored)
    }

    fn nullable_string<'v>(&mut self, key: &str, value: &'v Value) -> Option<&'v str> {
        match value {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => {
                self.fail(
                    key,
                    format!("must be a string or null, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn check_string(&mut self, key: &str, ty: Ty, value: &Value) -> Value {
        let Some(s) = self.nullable_string(key, value) else {
            return value.clone();
        };
        match ty {
            Ty::Email if !s.is_empty() && !looks_like_email(s) => {
                self.fail(key, format!("'{s}' is not an email address"));
            }
            Ty::Enum(values) if !values.contains(&s) => {
                self.fail(key, format!("'{s}' is not one of: {}", values.join(", ")));
            }
            Ty::Date if NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() || s.len() != 10 => {
                self.fail(key, format!("'{s}' is not a date in the form YYYY-MM-DD"));
            }
            _ => {}
        }
        value.clone()
    }

    fn check_ref(&mut self, key: &str, target: Collection, id: &str) {
        match self.store.liveness(target, id) {
            None => self.fail(key, format!("unknown {} '{id}'", target.noun())),
            Some(false) => self.fail(key, format!("{} '{id}' is deleted", target.noun())),
            Some(true) => {}
        }
    }

    fn check_user(&mut self, key: &str, id: &str) {
        let before = self.errors.len();
        self.check_ref(key, Collection::People, id);
        if self.errors.len() != before {
            return;
        }
        let kind = self
            .store
            .get(Collection::People, id)
            .and_then(|r| r.data.get("kind"))
            .and_then(Value::as_str);
        if kind != Some("user") {
            self.fail(key, format!("person '{id}' is a contact, not a user"));
        }
    }

    fn check_group_ids(&mut self, key: &str, value: &Value) -> Value {
        let ids = match value {
            Value::Null => return json!([]),
            Value::Array(ids) => ids,
            other => {
                self.fail(
                    key,
                    format!("must be a list of group ids, not {}", type_name(other)),
                );
                return value.clone();
            }
        };
        for id in ids {
            match id.as_str() {
                Some(id) => self.check_ref(key, Collection::Groups, id),
                None => self.fail(
                    key,
                    format!("must list group ids as strings, not {}", type_name(id)),
                ),
            }
        }
        value.clone()
    }

    fn check_list(&mut self, key: &str, value: &Value, allowed: &[&str]) -> Value {
        let Some(items) = value.as_array() else {
            self.fail(key, format!("must be a list, not {}", type_name(value)));
            return value.clone();
        };
        for item in items {
            match item.as_str() {
                Some(s) if allowed.contains(&s) => {}
                _ => self.fail(key, format!("{item} is not one of: {}", allowed.join(", "))),
            }
        }
        value.clone()
    }

    /// `custom` (any string key, scalar values) or `customer` (fixed keys, strings).
    fn check_object(&mut self, key: &str, value: &Value, keys: Option<&[&str]>) -> Value {
        let Some(obj) = value.as_object() else {
            self.fail(key, format!("must be an object, not {}", type_name(value)));
            return value.clone();
        };
        for (k, v) in obj {
            let path = format!("{key}.{k}");
            match keys {
                Some(keys) if !keys.contains(&k.as_str()) => {
                    self.fail(&path, format!("is not a field of {key}"));
                }
                Some(_) => {
                    if k == "email" {
                        self.check_string(&path, Ty::Email, v);
                    } else {
                        self.nullable_string(&path, v);
                    }
                }
                None if k.is_empty() => self.fail(key, "has an empty key"),
                None if v.is_array() || v.is_object() => self.fail(
                    &path,
                    format!(
                        "must be a string, number, boolean or null, not {}",
                        type_name(v)
                    ),
                ),
                None => {}
            }
        }
        value.clone()
    }

    /// Values outside a picklist of the settings field list (only for fields in the body).
    fn check_picklists(&mut self, body: &Map<String, Value>) {
        let store = self.store;
        for spec in store.settings.fields_for(self.c) {
            let Some(values) = &spec.values else { continue };
            if self.bad.contains(&spec.name) {
                continue;
            }
            let given = match spec.name.strip_prefix("custom.") {
                Some(key) => body.get("custom").and_then(|c| c.get(key)),
                None => body.get(&spec.name),
            };
            let Some(Value::String(s)) = given else {
                continue;
            };
            if !values.iter().any(|v| v == s) {
                self.fail(
                    &spec.name,
                    format!("'{s}' is not one of: {}", values.join(", ")),
                );
            }
        }
    }

    fn check_record(
        &mut self,
        self_id: Option<&str>,
        out: &Map<String, Value>,
        body: &Map<String, Value>,
    ) {
        self.check_required(out);
        match self.c {
            Collection::People => self.check_person(out),
            Collection::Organizations => self.check_parent(self_id, body),
            Collection::Deals => self.check_deal(out, body),
            Collection::Groups => {}
        }
    }

    fn check_required(&mut self, out: &Map<String, Value>) {
        let mut names: Vec<String> = contract_required(self.c)
            .iter()
            .map(|s| s.to_string())
            .collect();
        for spec in self.store.settings.fields_for(self.c) {
            if spec.required && !names.contains(&spec.name) {
                names.push(spec.name.clone());
            }
        }
        for name in names {
            if self.bad.contains(&name) {
                continue;
            }
            let value = match name.strip_prefix("custom.") {
                Some(key) => out.get("custom").and_then(|c| c.get(key)),
                None => out.get(&name),
            };
            if is_blank(value) {
                self.fail(&name, "is required");
            }
        }
    }

    fn check_person(&mut self, out: &Map<String, Value>) {
        let kind = out.get("kind").and_then(Value::as_str);
        let has = |k: &str| !is_blank(out.get(k));
        match kind {
            Some("contact") => {
                if has("status") {
                    self.fail_once(
                        "status",
                        "a contact has no status; send status: null, or kind: user to make the person a user",
                    );
                }
                if has("group_ids") {
                    self.fail_once(
                        "group_ids",
                        "a contact belongs to no group; only users have group_ids",
                    );
                }
            }
            Some("user") => {
                if !has("email") {
                    self.fail_once("email", "a user needs an email");
                }
                if !has("status") {
                    self.fail_once("status", "a user needs a status");
                }
            }
            _ => {}
        }
    }

    fn check_parent(&mut self, self_id: Option<&str>, body: &Map<String, Value>) {
        if self.bad.contains("parent_id") {
            return;
        }
        let (Some(me), Some(Value::String(parent))) = (self_id, body.get("parent_id")) else {
            return;
        };
        let mut seen = BTreeSet::new();
        let mut cur = parent.clone();
        loop {
            if cur == me {
                let msg = if parent == me {
                    "an organization cannot be its own parent".to_string()
                } else {
                    format!("'{parent}' is below this organization; that would make a parent cycle")
                };
                self.fail("parent_id", msg);
                return;
            }
            if !seen.insert(cur.clone()) {
                return;
            }
            let next = self
                .store
                .get(Collection::Organizations, &cur)
                .and_then(|r| r.data.get("parent_id"))
                .and_then(Value::as_str);
            match next {
                Some(n) => cur = n.to_string(),
                None => return,
            }
        }
    }

    fn check_deal(&mut self, out: &Map<String, Value>, body: &Map<String, Value>) {
        let settings = &self.store.settings.distributor_module;
        let (enabled, partner_optional) = (
            settings.enabled,
            settings.partner_email_optional_for_distributor_owned,
        );
        let owner = out.get("owner_type").and_then(Value::as_str);
        let has = |k: &str| !is_blank(out.get(k));
        let mut need: Vec<(&str, &str)> = Vec::new();
        match owner {
            Some("distributor") if !enabled => {
                self.fail_once(
                    "owner_type",
                    "the distributor module is disabled in the PRM",
                );
            }
            Some("distributor") => {
                need.push(("distributor_organization_id", "a distributor-owned deal"));
                need.push(("distributor_user_id", "a distributor-owned deal"));
                if !partner_optional {
                    need.push(("partner_user_id", "a distributor-owned deal (the PRM settings make the partner user required)"));
                }
            }
            Some("partner") => {
                need.push(("partner_organization_id", "a partner-owned deal"));
                need.push(("partner_user_id", "a partner-owned deal"));
            }
            _ => {}
        }
        if !enabled {
            for key in ["distributor_user_id", "distributor_organization_id"] {
                if !is_blank(body.get(key)) {
                    self.fail_once(key, "the distributor module is disabled in the PRM");
                }
            }
        }
        for (key, what) in need {
            if !has(key) {
                self.fail_once(key, format!("is required for {what}"));
            }
        }
    }
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}
