//! The mapping file: setup field names, field mappings per object pair with direction,
//! conflict rule and value maps, the initial-link winner and the API reserve.
//!
//! Files are TOML. [`MappingConfig::parse`] rejects a bad file with the line and the fix.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::mask::LogValues;
use crate::record::ObjectKind;

/// The built-in mapping, which works with the sandbox and with an org set up as in
/// docs/salesforce-setup.md.
pub const DEFAULT_MAPPING: &str = include_str!("../defaults/mapping.toml");

/// One of the two systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Crm,
    Prm,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Crm => "crm",
            Side::Prm => "prm",
        }
    }
}

/// Which way a mapped field flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Changes flow both ways; conflicts follow the field's conflict rule.
    #[default]
    Both,
    /// The PRM owns the field: Salesforce is kept equal to it.
    ToCrm,
    /// Salesforce owns the field: the PRM is kept equal to it.
    ToPrm,
    /// Written once when the linked record is created, never after.
    OnCreate,
}

/// Who wins when the same field changed on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WinnerRule {
    /// The record changed most recently wins.
    #[default]
    Newest,
    Prm,
    Crm,
}

/// How a field's values are compared and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    #[default]
    Text,
    Email,
    Number,
    Boolean,
    Date,
    Datetime,
}

/// One mapped field of an object pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// PRM field: a top-level field (`name`), a custom field (`custom.tier`) or, for
    /// organizations, `kind_status` (kind and status as `partner:active`).
    pub prm: Option<String>,
    /// Salesforce field API name.
    pub crm: Option<String>,
    #[serde(default)]
    pub direction: Direction,
    /// Conflict rule; defaults to `[sync] default_conflict`.
    pub conflict: Option<WinnerRule>,
    #[serde(default, rename = "type")]
    pub field_type: FieldType,
    /// Values longer than this are cut, the same way every time.
    pub max_length: Option<usize>,
    /// Decimal places of a `number` field: the Salesforce field's scale. Values are rounded
    /// to it (half away from zero, as Salesforce stores them) before they are compared and
    /// written, so a value Salesforce rounded does not come back as a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Salesforce value → PRM value (picklists).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
    /// A fixed value written to the target side (with only `crm` or only `prm` set).
    pub fixed: Option<serde_json::Value>,
}

impl FieldMapping {
    /// The key of this field in a link's snapshot.
    pub fn key(&self) -> String {
        match (&self.prm, &self.crm) {
            (Some(p), _) => p.clone(),
            (None, Some(c)) => format!("crm:{c}"),
            (None, None) => String::new(),
        }
    }
}

/// Setup field API names in Salesforce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SetupFields {
    pub sync_flag: String,
    pub organization_status: String,
    pub record_status: String,
    pub prm_id: String,
    pub export_deal: String,
    pub partner_email: String,
    pub distributor_email: String,
    pub deal_owner_type: String,
    pub deal_id: String,
}

impl SetupFields {
    /// Each setup field by its key in `[setup]`.
    pub fn named(&self) -> [(&'static str, &str); 9] {
        [
            ("sync_flag", &self.sync_flag),
            ("organization_status", &self.organization_status),
            ("record_status", &self.record_status),
            ("prm_id", &self.prm_id),
            ("export_deal", &self.export_deal),
            ("partner_email", &self.partner_email),
            ("distributor_email", &self.distributor_email),
            ("deal_owner_type", &self.deal_owner_type),
            ("deal_id", &self.deal_id),
        ]
    }
}

/// Whether `name` is a Salesforce field API name: an ASCII letter, then ASCII letters,
/// digits and underscores (`Industry`, `Tier__c`). Only such names reach a SOQL query.
pub fn is_field_api_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const FIELD_API_NAME_FIX: &str = "use the API name as shown in Setup > Object Manager > Fields \
     (letters, digits, underscores, e.g. Industry or Tier__c)";

impl Default for SetupFields {
    fn default() -> Self {
        Self {
            sync_flag: "PRM_Sync__c".into(),
            organization_status: "PRM_Organization_Status__c".into(),
            record_status: "PRM_Record_Status__c".into(),
            prm_id: "PRM_Id__c".into(),
            export_deal: "PRM_Export_Deal__c".into(),
            partner_email: "PRM_Partner_Email__c".into(),
            distributor_email: "PRM_Distributor_Email__c".into(),
            deal_owner_type: "PRM_Deal_Owner_Type__c".into(),
            deal_id: "PRM_Deal_Id__c".into(),
        }
    }
}

/// Run-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    pub initial_link_winner: Side,
    pub default_conflict: WinnerRule,
    pub api_reserve_percent: u8,
    pub overlap_seconds: u32,
    pub schedule: String,
    /// Changed PRM records a one-machine run keeps whole while it reads Salesforce's
    /// pages; the others are read again by id when their page comes (more PRM calls, less
    /// memory).
    pub held_prm_records: u32,
    /// PRM requests a pass keeps in flight at once (creates and updates, one record each);
    /// the client waits out `429 rate_limited` answers whatever the value.
    pub prm_concurrency: u16,
    /// The first delay before a record that failed for a passing reason is tried again
    /// on its own; each later attempt waits twice as long, at most 15 minutes.
    pub retry_delay_seconds: u32,
    /// Attempts of such a record before it is parked (tried again only when it changes
    /// or on demand).
    pub retry_attempts: u32,
    /// The mass-change breaker: a run that would change or blank more than this share of
    /// one side's linked records (and at least `mass_change_min_records` of them) stops
    /// before writing and waits for the operator; 100 turns it off.
    pub mass_change_percent: u8,
    pub mass_change_min_records: u32,
    /// How often a reconcile re-reads both sides of every linked record and repairs what
    /// drifted: `daily` or `off` ([`SyncSettings::reconcile_every`]).
    pub reconcile: String,
}

/// The values `[sync] reconcile` takes.
pub const RECONCILE_VALUES: &[&str] = &["daily", "off"];

impl SyncSettings {
    /// How long after the last run that read everything a reconcile is due: a day for
    /// `daily`, None for `off` (only `prmsync reconcile` runs one).
    pub fn reconcile_every_hours(&self) -> Option<u32> {
        match self.reconcile.as_str() {
            "daily" => Some(24),
            _ => None,
        }
    }
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            initial_link_winner: Side::Crm,
            default_conflict: WinnerRule::Newest,
            api_reserve_percent: 20,
            overlap_seconds: 300,
            schedule: "rate(1 hour)".into(),
            held_prm_records: 10_000,
            prm_concurrency: 16,
            retry_delay_seconds: 30,
            retry_attempts: 5,
            mass_change_percent: 20,
            mass_change_min_records: 50,
            reconcile: "daily".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SalesforceSettings {
    pub api_version: String,
    /// A change read of more records than this uses a Bulk API 2.0 query job when that
    /// takes fewer API calls than REST query pages; 0 = never.
    pub bulk_query_threshold: u64,
    /// Salesforce writes of one object and operation in one pass of more records than this
    /// go through a Bulk API 2.0 ingest job instead of Collections of 200; 0 = never.
    pub bulk_ingest_threshold: u64,
    /// A large run's held write-backs go out in ingest jobs of at most this many records:
    /// fewer, larger jobs save calls; each held record takes under 1 KB until its job is settled
    /// (1 to 150,000).
    pub bulk_ingest_job_records: u32,
    /// The client name every Salesforce call carries (`Sforce-Call-Options: client=...`):
    /// Change Data Capture names it in `changeOrigin`, so prmsync's own writes are known
    /// and their change events dropped.
    pub client_name: String,
}

/// Records above which a pass's Salesforce writes of one object go by an ingest job: a
/// job costs about four calls (create, upload, close, status) however large, so above
/// 2,000 records (a REST page, 10 Collections) it costs a fraction of Collections of 200
/// and is still done in seconds.
pub const DEFAULT_BULK_INGEST_THRESHOLD: u64 = 2_000;

/// Held write-backs per ingest job: 24 jobs (about 100 calls) for a first import of
/// 600,000 records; one job's rows are held while the one before is written (about
/// 20 MB each).
pub const DEFAULT_BULK_INGEST_JOB_RECORDS: u32 = 25_000;

/// The client name prmsync's calls carry when the mapping names none.
pub const DEFAULT_CLIENT_NAME: &str = "prmsync";

impl Default for SalesforceSettings {
    fn default() -> Self {
        Self {
            api_version: "62.0".into(),
            bulk_query_threshold: 10_000,
            bulk_ingest_threshold: DEFAULT_BULK_INGEST_THRESHOLD,
            bulk_ingest_job_records: DEFAULT_BULK_INGEST_JOB_RECORDS,
            client_name: DEFAULT_CLIENT_NAME.into(),
        }
    }
}

/// A client name Salesforce takes in `Sforce-Call-Options` and writes back in
/// `changeOrigin` unchanged: 1 to 40 letters, digits, `_` or `-`.
pub fn is_client_name(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What the logs show of record values (`[log]`; `docs/integration-log.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Show record values in full in log lines, Integration Log entries, error messages
    /// and CLI output; false (the default) shows them masked ([`crate::mask`]).
    pub values: bool,
}

impl LogSettings {
    /// How values are shown.
    pub fn values(&self) -> LogValues {
        if self.values {
            LogValues::Full
        } else {
            LogValues::Masked
        }
    }
}

/// The field mappings of one object pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectMapping {
    pub hierarchy: bool,
    pub fields: Vec<FieldMapping>,
}

/// A validated mapping file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingConfig {
    pub salesforce: SalesforceSettings,
    pub setup: SetupFields,
    pub sync: SyncSettings,
    #[serde(default)]
    pub log: LogSettings,
    pub organizations: ObjectMapping,
    pub people: ObjectMapping,
    pub deals: ObjectMapping,
}

/// Why a mapping file was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    #[error("{origin}: {message}\n  fix: {fix}")]
    Syntax {
        origin: String,
        message: String,
        fix: String,
    },
    #[error("{origin}, line {line}: {message}\n  fix: {fix}")]
    Invalid {
        origin: String,
        line: usize,
        message: String,
        fix: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    salesforce: SalesforceSettings,
    #[serde(default)]
    setup: SetupFields,
    #[serde(default)]
    sync: SyncSettings,
    /// Checked on its own ([`log_settings`]) so that a mistake names its line and fix.
    log: Option<Spanned<toml::Value>>,
    organizations: Option<RawObject>,
    people: Option<RawObject>,
    deals: Option<RawObject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObject {
    #[serde(default = "yes")]
    hierarchy: bool,
    #[serde(default)]
    fields: Vec<Spanned<FieldMapping>>,
}

fn yes() -> bool {
    true
}

/// PRM fields a mapping may name, per object; `custom.<name>` is always allowed.
pub fn prm_fields(object: ObjectKind) -> &'static [&'static str] {
    match object {
        ObjectKind::Organization => &[
            "name",
            "kind_status",
            "status",
            "website",
            "phone",
            "street",
            "city",
            "state",
            "postal_code",
            "country",
        ],
        ObjectKind::Person => &["first_name", "last_name", "email", "title", "phone"],
        ObjectKind::Deal => &[
            "name",
            "stage",
            "amount",
            "currency",
            "close_date",
            "registration_status",
        ],
    }
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self::parse(DEFAULT_MAPPING, "built-in mapping").expect("the built-in mapping is valid")
    }
}

impl MappingConfig {
    /// Parses and validates a mapping file; `origin` names it in errors (a path).
    pub fn parse(src: &str, origin: &str) -> Result<Self, MappingError> {
        let raw: RawFile = toml::from_str(src).map_err(|e| MappingError::Syntax {
            origin: origin.to_string(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
            fix: "correct the TOML at that line; `prmsync mapping default` prints a valid file \
                  to start from"
                .into(),
        })?;
        let line_of = |offset: usize| src[..offset.min(src.len())].matches('\n').count() + 1;
        let invalid = |offset: usize, message: String, fix: &str| MappingError::Invalid {
            origin: origin.to_string(),
            line: line_of(offset),
            message,
            fix: fix.to_string(),
        };
        if !is_client_name(&raw.salesforce.client_name) {
            return Err(invalid(
                src.find("client_name").unwrap_or(0),
                format!(
                    "client_name = {:?} is not a Salesforce client name",
                    raw.salesforce.client_name
                ),
                "use 1 to 40 letters, digits, `_` or `-` (the default is prmsync): it names \
                 prmsync's calls in Change Data Capture events",
            ));
        }
        // Numbers with a range: the key, its value, the range and the fix.
        let ranges: [(&str, u64, u64, u64, &str); 5] = [
            ("bulk_ingest_job_records", raw.salesforce.bulk_ingest_job_records.into(), 1, 150_000,
             "use a value from 1 to 150000 (the default 25000 suits most runs; larger jobs save \
              a few calls and hold up to 1 KB more per record)"),
            ("prm_concurrency", raw.sync.prm_concurrency.into(), 1, 64,
             "use a value from 1 to 64 (16 suits most PRM servers; lower it if the PRM answers \
              429 often)"),
            ("retry_attempts", raw.sync.retry_attempts.into(), 1, 20,
             "use a value from 1 to 20 (5 tries a record for about 7 minutes before it is \
              parked)"),
            ("retry_delay_seconds", raw.sync.retry_delay_seconds.into(), 0, 900,
             "use a value from 0 to 900 (seconds; the work queue delays a message by at most \
              15 minutes)"),
            ("mass_change_percent", raw.sync.mass_change_percent.into(), 1, 100,
             "use a value from 1 to 100 (20 stops a run that would change more than a fifth of \
              one side's linked records; 100 turns the breaker off)"),
        ];
        for (key, value, min, max, fix) in ranges {
            if !(min..=max).contains(&value) {
                let message = format!("{key} = {value} is outside {min} to {max}");
                return Err(invalid(src.find(key).unwrap_or(0), message, fix));
            }
        }
        if raw.sync.mass_change_min_records == 0 {
            return Err(invalid(
                src.find("mass_change_min_records").unwrap_or(0),
                "mass_change_min_records = 0 would stop runs that change a single record".into(),
                "use 1 or more (50 by default: small orgs are not stopped for a handful of edits)",
            ));
        }
        if !RECONCILE_VALUES.contains(&raw.sync.reconcile.as_str()) {
            // The `reconcile = ...` line of `[sync]` (not a comment that names it).
            let at = src
                .match_indices("reconcile")
                .map(|(i, _)| i)
                .find(|&i| {
                    let line_start = src[..i].rfind('\n').map_or(0, |n| n + 1);
                    src[line_start..i].trim().is_empty()
                        && src[i + "reconcile".len()..].trim_start().starts_with('=')
                })
                .unwrap_or(0);
            return Err(invalid(
                at,
                format!(
                    "reconcile = \"{}\" is not a schedule prmsync knows",
                    raw.sync.reconcile
                ),
                "use reconcile = \"daily\" (re-read both sides of every linked record once a day \
                 and repair what drifted) or reconcile = \"off\" (only `prmsync reconcile` runs one)",
            ));
        }
        if raw.sync.api_reserve_percent > 90 {
            return Err(invalid(
                src.find("api_reserve_percent").unwrap_or(0),
                format!(
                    "api_reserve_percent = {} leaves no room for syncing",
                    raw.sync.api_reserve_percent
                ),
                "use a value from 0 to 90 (20 keeps a fifth of the daily allocation)",
            ));
        }
        for (key, name) in raw.setup.named() {
            if !is_field_api_name(name) {
                // The `key = ...` line of `[setup]`.
                let at = src
                    .match_indices(key)
                    .map(|(i, _)| i)
                    .find(|&i| src[i + key.len()..].trim_start().starts_with('='))
                    .unwrap_or(0);
                return Err(invalid(
                    at,
                    format!("[setup] {key} = {name:?} is not a Salesforce field API name"),
                    FIELD_API_NAME_FIX,
                ));
            }
        }
        let log = log_settings(raw.log).map_err(|(at, key, message, fix)| {
            // The line of the key inside `[log]` (the table's span may start at its header).
            let key_at = src
                .find("[log]")
                .and_then(|start| src[start..].find(key.as_str()).map(|k| start + k))
                .unwrap_or(at);
            invalid(key_at, message, fix)
        })?;
        let setup_names: BTreeSet<&str> = [
            raw.setup.sync_flag.as_str(),
            raw.setup.record_status.as_str(),
            raw.setup.prm_id.as_str(),
            raw.setup.export_deal.as_str(),
            raw.setup.partner_email.as_str(),
            raw.setup.distributor_email.as_str(),
            raw.setup.deal_owner_type.as_str(),
            raw.setup.deal_id.as_str(),
        ]
        .into_iter()
        .collect();
        let mut objects = Vec::new();
        for (object, raw_object) in [
            (ObjectKind::Organization, raw.organizations),
            (ObjectKind::Person, raw.people),
            (ObjectKind::Deal, raw.deals),
        ] {
            let raw_object = raw_object.unwrap_or(RawObject {
                hierarchy: true,
                fields: Vec::new(),
            });
            let mut seen_prm = BTreeSet::new();
            let mut seen_crm = BTreeSet::new();
            let mut fields = Vec::new();
            for spanned in raw_object.fields {
                let at = spanned.span().start;
                let f = spanned.into_inner();
                validate_field(object, &f, &setup_names)
                    .map_err(|(message, fix)| invalid(at, message, fix))?;
                if let Some(p) = &f.prm {
                    if !seen_prm.insert(p.clone()) {
                        return Err(invalid(
                            at,
                            format!(
                                "PRM field `{p}` is mapped twice for {}",
                                object.prm_collection()
                            ),
                            "keep one mapping per PRM field",
                        ));
                    }
                }
                if let Some(c) = &f.crm {
                    if !seen_crm.insert(c.to_ascii_lowercase()) {
                        return Err(invalid(
                            at,
                            format!(
                                "Salesforce field `{c}` is mapped twice for {}",
                                object.prm_collection()
                            ),
                            "keep one mapping per Salesforce field",
                        ));
                    }
                }
                fields.push(f);
            }
            objects.push(ObjectMapping {
                hierarchy: raw_object.hierarchy,
                fields,
            });
        }
        let deals = objects.pop().expect("three objects");
        let people = objects.pop().expect("three objects");
        let organizations = objects.pop().expect("three objects");
        Ok(Self {
            salesforce: raw.salesforce,
            setup: raw.setup,
            sync: raw.sync,
            log,
            organizations,
            people,
            deals,
        })
    }

    /// The mapping of one object pair.
    pub fn object(&self, object: ObjectKind) -> &ObjectMapping {
        match object {
            ObjectKind::Organization => &self.organizations,
            ObjectKind::Person => &self.people,
            ObjectKind::Deal => &self.deals,
        }
    }

    /// The conflict rule of a field.
    pub fn conflict_rule(&self, field: &FieldMapping) -> WinnerRule {
        field.conflict.unwrap_or(self.sync.default_conflict)
    }
}

type FieldProblem = (String, &'static str);

const LOG_VALUES_FIX: &str = "write `values = false` (the default: record values are masked in \
     logs, Integration Log entries and CLI output) or `values = true` (values in full, for an \
     operator who needs them) under `[log]`";

/// The `[log]` table: `values`, a boolean. A problem comes with its offset and fix.
#[allow(clippy::type_complexity)]
fn log_settings(
    raw: Option<Spanned<toml::Value>>,
) -> Result<LogSettings, (usize, String, String, &'static str)> {
    let Some(raw) = raw else {
        return Ok(LogSettings::default());
    };
    let at = raw.span().start;
    let toml::Value::Table(table) = raw.into_inner() else {
        return Err((
            at,
            "log".into(),
            "`log` is not a table".into(),
            "write it as a `[log]` section",
        ));
    };
    let mut settings = LogSettings::default();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("values", toml::Value::Boolean(b)) => settings.values = b,
            ("values", other) => {
                return Err((
                    at,
                    key.clone(),
                    format!("`[log] values = {other}` is not true or false",),
                    LOG_VALUES_FIX,
                ))
            }
            (other, _) => {
                return Err((
                    at,
                    other.to_string(),
                    format!("`[log]` has no setting `{other}`"),
                    LOG_VALUES_FIX,
                ))
            }
        }
    }
    Ok(settings)
}

fn validate_field(
    object: ObjectKind,
    f: &FieldMapping,
    setup_names: &BTreeSet<&str>,
) -> Result<(), FieldProblem> {
    match (&f.prm, &f.crm, &f.fixed) {
        (None, None, _) => {
            return Err((
                "a field mapping names neither `prm` nor `crm`".into(),
                "give the PRM field in `prm` and the Salesforce API name in `crm`",
            ))
        }
        (Some(_), Some(_), Some(_)) => {
            return Err((
                "a field mapping with `fixed` names both sides".into(),
                "a fixed value needs only the side it is written to: keep `crm` (or `prm`) alone",
            ))
        }
        (Some(p), None, None) | (None, Some(p), None) => {
            return Err((
                format!("field `{p}` is mapped to nothing on the other side"),
                "add the other side's field, or a `fixed` value to write",
            ))
        }
        (None, Some(c), Some(_))
            if !matches!(f.direction, Direction::ToCrm | Direction::OnCreate) =>
        {
            return Err((
                format!("fixed value for Salesforce field `{c}` must flow to Salesforce"),
                "set direction = \"to_crm\" or \"on_create\"",
            ))
        }
        (Some(p), None, Some(_))
            if !matches!(f.direction, Direction::ToPrm | Direction::OnCreate) =>
        {
            return Err((
                format!("fixed value for PRM field `{p}` must flow to the PRM"),
                "set direction = \"to_prm\" or \"on_create\"",
            ))
        }
        _ => {}
    }
    if let Some(p) = &f.prm {
        let known = prm_fields(object).contains(&p.as_str())
            || p.strip_prefix("custom.")
                .is_some_and(|n| !n.is_empty() && !n.contains('.'));
        if !known {
            return Err((
                format!("`{p}` is not a PRM {object} field that can be mapped"),
                match object {
                    ObjectKind::Organization => "use one of name, kind_status, status, website, phone, street, city, state, postal_code, country, or custom.<name>",
                    ObjectKind::Person => "use one of first_name, last_name, email, title, phone, or custom.<name>",
                    ObjectKind::Deal => "use one of name, stage, amount, currency, close_date, registration_status, or custom.<name>",
                },
            ));
        }
    }
    if let Some(c) = &f.crm {
        if !is_field_api_name(c) {
            return Err((
                format!("`{c}` is not a Salesforce field API name"),
                FIELD_API_NAME_FIX,
            ));
        }
        if setup_names.contains(c.as_str()) {
            return Err((
                format!("`{c}` is a setup field that prmsync maintains itself"),
                "remove this mapping; [setup] names the field and the sync rules keep it",
            ));
        }
    }
    if !f.values.is_empty() {
        // Picklist values match ignoring case (`transform`), so two spellings of one value
        // on either side would make the match ambiguous.
        let mut sources = BTreeSet::new();
        for k in f.values.keys() {
            if !sources.insert(k.to_lowercase()) {
                return Err((
                    format!("Salesforce value `{k}` appears twice in `values` (values match ignoring case)"),
                    "keep one spelling of each Salesforce value",
                ));
            }
        }
        let mut targets = BTreeSet::new();
        for v in f.values.values() {
            if !targets.insert(v.to_lowercase()) {
                return Err((
                    format!("PRM value `{v}` appears twice in `values`, so the reverse direction is ambiguous"),
                    "map each PRM value from one Salesforce value",
                ));
            }
        }
        if f.field_type != FieldType::Text {
            return Err((
                "`values` maps only text and picklist fields".into(),
                "remove `type` or `values`",
            ));
        }
    }
    if let Some(scale) = f.scale {
        if f.field_type != FieldType::Number {
            return Err((
                "`scale` rounds only number fields".into(),
                "set type = \"number\" or remove `scale`",
            ));
        }
        if scale > 17 {
            return Err((
                format!("scale = {scale} is more decimal places than a Salesforce number field keeps (17 at most)"),
                "give the scale of the Salesforce field (Setup > Object Manager > Fields: its decimal places)",
            ));
        }
    }
    if f.max_length == Some(0) {
        return Err((
            "max_length = 0 would empty every value".into(),
            "remove max_length or give the field's length",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_mapping_is_valid() {
        let m = MappingConfig::default();
        assert_eq!(m.setup.prm_id, "PRM_Id__c");
        assert!(m
            .organizations
            .fields
            .iter()
            .any(|f| f.prm.as_deref() == Some("kind_status")));
        assert_eq!(m.people.fields.len(), 5);
        assert!(m
            .deals
            .fields
            .iter()
            .any(|f| f.prm.as_deref() == Some("registration_status")
                && f.direction == Direction::ToCrm));
        assert_eq!(m.sync.api_reserve_percent, 20);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = MappingConfig::parse("[sync]\ninitial_link_winner = \n", "m.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("m.toml: "), "{text}");
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("fix:"), "{text}");
    }

    #[test]
    fn bulk_ingest_job_records_outside_its_range_names_the_line_and_the_range() {
        let src = "[salesforce]\nbulk_ingest_threshold = 10\nbulk_ingest_job_records = 0\n";
        let text = MappingConfig::parse(src, "m.toml").unwrap_err().to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("1 to 150000"), "{text}");
        let ok = MappingConfig::parse("[salesforce]\nbulk_ingest_job_records = 500\n", "m.toml")
            .unwrap();
        assert_eq!(ok.salesforce.bulk_ingest_job_records, 500);
        assert_eq!(
            MappingConfig::default().salesforce.bulk_ingest_job_records,
            DEFAULT_BULK_INGEST_JOB_RECORDS
        );
    }

    #[test]
    fn prm_concurrency_outside_its_range_names_the_line_and_the_range() {
        let src = "[sync]\noverlap_seconds = 60\nprm_concurrency = 0\n";
        let text = MappingConfig::parse(src, "m.toml").unwrap_err().to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("1 to 64"), "{text}");
        let ok = MappingConfig::parse("[sync]\nprm_concurrency = 4\n", "m.toml").unwrap();
        assert_eq!(ok.sync.prm_concurrency, 4);
        assert_eq!(MappingConfig::default().sync.prm_concurrency, 16);
    }

    #[test]
    fn reconcile_is_daily_or_off_and_anything_else_names_its_line() {
        assert_eq!(MappingConfig::default().sync.reconcile, "daily");
        assert_eq!(
            MappingConfig::default().sync.reconcile_every_hours(),
            Some(24)
        );
        let off = MappingConfig::parse("[sync]\nreconcile = \"off\"\n", "m.toml").unwrap();
        assert_eq!(off.sync.reconcile_every_hours(), None);
        let src = "[sync]\n# reconcile once a day\noverlap_seconds = 60\nreconcile = \"hourly\"\n";
        let text = MappingConfig::parse(src, "m.toml").unwrap_err().to_string();
        assert!(text.contains("line 4"), "{text}");
        assert!(text.contains("\"hourly\""), "{text}");
        assert!(
            text.contains("\"daily\"") && text.contains("\"off\""),
            "{text}"
        );
    }

    #[test]
    fn scale_is_read_for_number_fields_and_refused_elsewhere() {
        let ok = "[[organizations.fields]]\nprm = \"custom.discount\"\ncrm = \"Discount__c\"\ntype = \"number\"\nscale = 2\n";
        let m = MappingConfig::parse(ok, "m.toml").unwrap();
        let f = m
            .organizations
            .fields
            .iter()
            .find(|f| f.crm.as_deref() == Some("Discount__c"));
        assert_eq!(f.and_then(|f| f.scale), Some(2));
        for bad in [
            "[[organizations.fields]]\nprm = \"custom.discount\"\ncrm = \"Discount__c\"\nscale = 2\n",
            "[[organizations.fields]]\nprm = \"custom.discount\"\ncrm = \"Discount__c\"\ntype = \"number\"\nscale = 18\n",
        ] {
            let text = MappingConfig::parse(bad, "m.toml").unwrap_err().to_string();
            assert!(text.contains("scale"), "{text}");
            assert!(text.contains("line 1"), "{text}");
        }
    }

    #[test]
    fn picklist_values_that_differ_only_in_case_are_refused() {
        for values in [
            "{ \"Gold\" = \"gold\", \"GOLD\" = \"platinum\" }",
            "{ \"Gold\" = \"gold\", \"Silver\" = \"GOLD\" }",
        ] {
            let src = format!("[[organizations.fields]]\nprm = \"custom.tier\"\ncrm = \"Tier__c\"\nvalues = {values}\n");
            let text = MappingConfig::parse(&src, "m.toml")
                .unwrap_err()
                .to_string();
            assert!(text.contains("twice"), "{text}");
        }
    }

    #[test]
    fn unknown_direction_is_rejected_with_line() {
        let src =
            "[[organizations.fields]]\nprm = \"name\"\ncrm = \"Name\"\ndirection = \"sideways\"\n";
        let text = MappingConfig::parse(src, "m.toml").unwrap_err().to_string();
        assert!(text.contains("line 4"), "{text}");
        assert!(text.contains("sideways"), "{text}");
    }

    #[test]
    fn unknown_prm_field_names_line_and_fix() {
        let src = "[sync]\noverlap_seconds = 60\n\n[[people.fields]]\nprm = \"nickname\"\ncrm = \"Nickname__c\"\n";
        match MappingConfig::parse(src, "m.toml").unwrap_err() {
            MappingError::Invalid {
                line, message, fix, ..
            } => {
                assert_eq!(line, 4);
                assert!(message.contains("nickname"));
                assert!(fix.contains("custom.<name>"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_salesforce_field_that_could_inject_soql_is_refused_naming_it() {
        let src = "[[people.fields]]\nprm = \"title\"\ncrm = \"Name) FROM User--\"\n";
        let err = MappingConfig::parse(src, "mapping.toml").unwrap_err();
        match &err {
            MappingError::Invalid { line, message, .. } => {
                assert_eq!(*line, 1);
                assert!(message.contains("`Name) FROM User--`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("mapping.toml") && text.contains("Setup > Object Manager"),
            "{text}"
        );
        let src = "[setup]\nsync_flag = \"PRM_Sync__c\"\nprm_id = \"Id FROM Contact WHERE Name != null OR PRM_Id__c\"\n";
        match MappingConfig::parse(src, "mapping.toml").unwrap_err() {
            MappingError::Invalid { line, message, .. } => {
                assert_eq!(line, 3);
                assert!(
                    message.contains("[setup] prm_id = \"Id FROM Contact"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            is_field_api_name("PRM_Id__c") && !is_field_api_name("1st") && !is_field_api_name("")
        );
    }

    #[test]
    fn duplicate_and_setup_fields_are_rejected() {
        let dup = "[[people.fields]]\nprm = \"email\"\ncrm = \"Email\"\n[[people.fields]]\nprm = \"title\"\ncrm = \"email\"\n";
        let text = MappingConfig::parse(dup, "m").unwrap_err().to_string();
        assert!(
            text.contains("mapped twice") && text.contains("line 4"),
            "{text}"
        );
        let setup = "[[people.fields]]\nprm = \"title\"\ncrm = \"PRM_Id__c\"\n";
        assert!(MappingConfig::parse(setup, "m")
            .unwrap_err()
            .to_string()
            .contains("setup field"));
    }

    #[test]
    fn custom_fields_and_fixed_values() {
        let src = "[[organizations.fields]]\nprm = \"custom.tier\"\ncrm = \"Tier__c\"\ndirection = \"to_crm\"\n\n[[organizations.fields]]\ncrm = \"Type\"\nfixed = \"Partner\"\ndirection = \"on_create\"\n";
        let m = MappingConfig::parse(src, "m").unwrap();
        assert_eq!(m.organizations.fields.len(), 2);
        assert_eq!(m.organizations.fields[1].key(), "crm:Type");
    }

    #[test]
    fn log_values_are_masked_unless_the_log_section_says_otherwise() {
        let m = MappingConfig::parse("[sync]\noverlap_seconds = 60\n", "m").unwrap();
        assert_eq!(m.log.values(), LogValues::Masked);
        assert_eq!(MappingConfig::default().log.values(), LogValues::Masked);
        let m = MappingConfig::parse("[log]\nvalues = true\n", "m").unwrap();
        assert_eq!(m.log.values(), LogValues::Full);
    }

    #[test]
    fn a_log_setting_that_is_not_a_boolean_or_unknown_names_its_line_and_fix() {
        let src = "[sync]\noverlap_seconds = 60\n\n[log]\nvalues = \"yes\"\n";
        match MappingConfig::parse(src, "m.toml").unwrap_err() {
            MappingError::Invalid {
                line, message, fix, ..
            } => {
                assert_eq!(line, 5);
                assert!(message.contains("values"), "{message}");
                assert!(fix.contains("values = true"), "{fix}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let src = "[log]\nvalues = false\nshow = true\n";
        let text = MappingConfig::parse(src, "m.toml").unwrap_err().to_string();
        assert!(text.contains("line 3") && text.contains("`show`"), "{text}");
    }
}
