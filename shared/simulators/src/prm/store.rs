//! In-memory state of the PRM simulator: records, idempotency keys, settings and the clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::SimError;
use super::query::ListFilter;
use super::validate::{self, Mode};

/// How long an `Idempotency-Key` replays the record it created.
const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;

/// The record collections of the PRM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    Organizations,
    People,
    Deals,
    Groups,
}

impl Collection {
    pub const ALL: [Collection; 4] = [
        Collection::Organizations,
        Collection::People,
        Collection::Deals,
        Collection::Groups,
    ];

    /// The URL path segment (`/v1/<segment>`).
    pub fn path(self) -> &'static str {
        match self {
            Collection::Organizations => "organizations",
            Collection::People => "people",
            Collection::Deals => "deals",
            Collection::Groups => "groups",
        }
    }

    pub fn from_path(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.path() == segment)
    }

    fn id_prefix(self) -> &'static str {
        match self {
            Collection::Organizations => "org",
            Collection::People => "per",
            Collection::Deals => "deal",
            Collection::Groups => "grp",
        }
    }

    /// The singular noun used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Collection::Organizations => "organization",
            Collection::People => "person",
            Collection::Deals => "deal",
            Collection::Groups => "group",
        }
    }
}

/// Formats a timestamp the way the contract wants: RFC 3339, UTC, milliseconds.
pub fn format_ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// One field of the settings field lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

impl FieldSpec {
    fn new(name: &str, required: bool, values: Option<&[&str]>) -> Self {
        Self {
            name: name.to_string(),
            required,
            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributorModule {
    pub enabled: bool,
    pub partner_email_optional_for_distributor_owned: bool,
}

/// `GET /v1/settings`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub distributor_module: DistributorModule,
    pub deal_fields: Vec<FieldSpec>,
    pub organization_fields: Vec<FieldSpec>,
    pub person_fields: Vec<FieldSpec>,
    /// Batch writes (`POST /v1/{collection}/batch`), when this PRM offers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSettings>,
}

/// `"batch": {"max": 200}` in the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSettings {
    pub max: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let stages = [
            "Prospecting",
            "Qualification",
            "Proposal",
            "Negotiation",
            "Closed Won",
            "Closed Lost",
        ];
        Self {
            distributor_module: DistributorModule {
                enabled: true,
                partner_email_optional_for_distributor_owned: false,
            },
            deal_fields: vec![
                FieldSpec::new("name", true, None),
                FieldSpec::new("stage", true, Some(&stages)),
                FieldSpec::new("amount", false, None),
                FieldSpec::new("close_date", false, None),
            ],
            organization_fields: vec![
                FieldSpec::new("name", true, None),
                FieldSpec::new("kind", false, Some(&["partner", "distributor"])),
                FieldSpec::new(
                    "status",
                    false,
                    Some(&["active", "prospective", "inactive"]),
                ),
            ],
            person_fields: vec![
                FieldSpec::new("organization_id", true, None),
                FieldSpec::new("first_name", true, None),
                FieldSpec::new("last_name", true, None),
                FieldSpec::new("kind", false, Some(&["user", "contact"])),
                FieldSpec::new(
                    "status",
                    false,
                    Some(&["active", "pending", "inactive", "disabled"]),
                ),
            ],
            batch: None,
        }
    }
}

impl Settings {
    /// The field list that governs a collection (groups have none).
    pub fn fields_for(&self, c: Collection) -> &[FieldSpec] {
        match c {
            Collection::Organizations => &self.organization_fields,
            Collection::People => &self.person_fields,
            Collection::Deals => &self.deal_fields,
            Collection::Groups => &[],
        }
    }
}

/// A stored record: its JSON body and its `updated_at`, kept typed for ordering.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredRecord {
    pub updated_at: DateTime<Utc>,
    pub data: Map<String, Value>,
}

impl StoredRecord {
    pub fn is_deleted(&self) -> bool {
        !matches!(self.data.get("deleted_at"), None | Some(Value::Null))
    }

    pub fn version(&self) -> i64 {
        self.data
            .get("version")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct IdempotencyEntry {
    id: String,
    at: DateTime<Utc>,
}

/// Ids of the records whose indexed field has one value.
type ValueIndex = HashMap<String, BTreeSet<String>>;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Table {
    next_seq: u64,
    records: BTreeMap<String, StoredRecord>,
    idempotency: BTreeMap<String, IdempotencyEntry>,
    /// Every record as `(updated_at, id)`: the list order.
    #[serde(skip)]
    order: BTreeSet<(DateTime<Utc>, String)>,
    /// `crm_id` -> ids.
    #[serde(skip)]
    by_crm_id: ValueIndex,
    /// Lower-case `email` -> ids.
    #[serde(skip)]
    by_email: ValueIndex,
    /// `organization_id` -> ids.
    #[serde(skip)]
    by_organization: ValueIndex,
    /// Idempotency keys by the time they were stored, oldest first (for expiry).
    #[serde(skip)]
    idempotency_by_age: BTreeSet<(DateTime<Utc>, String)>,
}

fn index_keys(data: &Map<String, Value>) -> [Option<String>; 3] {
    let s = |name: &str| data.get(name).and_then(Value::as_str);
    [
        s("crm_id").map(str::to_string),
        s("email").map(str::to_lowercase),
        s("organization_id").map(str::to_string),
    ]
}

impl Table {
    fn value_indexes(&mut self) -> [&mut ValueIndex; 3] {
        [
            &mut self.by_crm_id,
            &mut self.by_email,
            &mut self.by_organization,
        ]
    }

    fn index_record(&mut self, id: &str, rec: &StoredRecord) {
        self.order.insert((rec.updated_at, id.to_string()));
        for (index, key) in self.value_indexes().into_iter().zip(index_keys(&rec.data)) {
            if let Some(key) = key {
                index.entry(key).or_default().insert(id.to_string());
            }
        }
    }

    fn unindex_record(&mut self, id: &str, rec: &StoredRecord) {
        self.order.remove(&(rec.updated_at, id.to_string()));
        for (index, key) in self.value_indexes().into_iter().zip(index_keys(&rec.data)) {
            if let Some(key) = key {
                if let Some(ids) = index.get_mut(&key) {
                    ids.remove(id);
                    if ids.is_empty() {
                        index.remove(&key);
                    }
                }
            }
        }
    }

    /// Stores a record, keeping the indexes in step.
    fn put(&mut self, id: String, rec: StoredRecord) {
        if let Some(old) = self.records.remove(&id) {
            self.unindex_record(&id, &old);
        }
        self.index_record(&id, &rec);
        self.records.insert(id, rec);
    }

    fn rebuild_indexes(&mut self) {
        self.order.clear();
        self.by_crm_id.clear();
        self.by_email.clear();
        self.by_organization.clear();
        let records = std::mem::take(&mut self.records);
        for (id, rec) in &records {
            self.index_record(id, rec);
        }
        self.records = records;
        self.idempotency_by_age = self
            .idempotency
            .iter()
            .map(|(k, e)| (e.at, k.clone()))
            .collect();
    }

    /// Forgets idempotency keys stored at or before `horizon`.
    fn expire_idempotency(&mut self, horizon: DateTime<Utc>) {
        while let Some(first) = self.idempotency_by_age.first() {
            if first.0 > horizon {
                break;
            }
            let Some((at, key)) = self.idempotency_by_age.pop_first() else {
                break;
            };
            if self.idempotency.get(&key).is_some_and(|e| e.at == at) {
                self.idempotency.remove(&key);
            }
        }
    }

    fn remember_idempotency(&mut self, key: String, entry: IdempotencyEntry) {
        if let Some(old) = self.idempotency.get(&key) {
            self.idempotency_by_age.remove(&(old.at, key.clone()));
        }
        self.idempotency_by_age.insert((entry.at, key.clone()));
        self.idempotency.insert(key, entry);
    }
}

/// The whole simulated PRM. Serialisable as a snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Store {
    organizations: Table,
    people: Table,
    deals: Table,
    groups: Table,
    pub settings: Settings,
    last_ts: Option<DateTime<Utc>>,
    /// While set, every write is stamped with this instant ([`Store::hold_clock`]).
    #[serde(default)]
    held_ts: Option<DateTime<Utc>>,
    /// The change notifications not yet delivered, while notifications are on.
    #[serde(skip)]
    pub outbox: Option<Vec<crate::prm::notify::ChangeEvent>>,
}

impl Store {
    /// Rebuilds the in-memory indexes (after deserializing a snapshot).
    pub fn reindex(&mut self) {
        for c in Collection::ALL {
            self.table_mut(c).rebuild_indexes();
        }
    }

    fn table(&self, c: Collection) -> &Table {
        match c {
            Collection::Organizations => &self.organizations,
            Collection::People => &self.people,
            Collection::Deals => &self.deals,
            Collection::Groups => &self.groups,
        }
    }

    fn table_mut(&mut self, c: Collection) -> &mut Table {
        match c {
            Collection::Organizations => &mut self.organizations,
            Collection::People => &mut self.people,
            Collection::Deals => &mut self.deals,
            Collection::Groups => &mut self.groups,
        }
    }

    /// Holds the clock (`true`): every write from now on gets one `updated_at`, until it is
    /// released (`false`); writes then go on strictly after that instant.
    pub fn hold_clock(&mut self, hold: bool) {
        self.held_ts = None;
        self.held_ts = hold.then(|| self.tick());
    }

    /// The next write time: now, but always at least 1 ms after the previous write (the
    /// held instant while the clock is held).
    fn tick(&mut self) -> DateTime<Utc> {
        if let Some(at) = self.held_ts {
            return at;
        }
        let now = truncate_ms(Utc::now());
        let ts = match self.last_ts {
            Some(last) if now <= last => last + Duration::milliseconds(1),
            _ => now,
        };
        self.last_ts = Some(ts);
        ts
    }

    /// Puts the notification of a change in the outbox (when notifications are on).
    fn changed(&mut self, c: Collection, id: &str, what: &str, at: DateTime<Utc>) {
        if c == Collection::Groups {
            return;
        }
        if let Some(outbox) = self.outbox.as_mut() {
            outbox.push(crate::prm::notify::ChangeEvent::new(
                format!("{}.{what}", c.noun()),
                id,
                at,
            ));
        }
    }

    pub fn get(&self, c: Collection, id: &str) -> Option<&StoredRecord> {
        self.table(c).records.get(id)
    }

    /// Whether `id` names a record of `c`; `Some(true)` when it is live.
    pub fn liveness(&self, c: Collection, id: &str) -> Option<bool> {
        self.get(c, id).map(|r| !r.is_deleted())
    }

    fn new_id(&mut self, c: Collection) -> String {
        let table = self.table_mut(c);
        loop {
            table.next_seq += 1;
            let id = format!("{}_{:06}", c.id_prefix(), table.next_seq);
            if !table.records.contains_key(&id) {
                return id;
            }
        }
    }

    /// Creates a record. In `Mode::Direct` a string `id` in the body is used as the id.
    pub fn create(
        &mut self,
        c: Collection,
        body: &Map<String, Value>,
        mode: Mode,
    ) -> Result<Value, SimError> {
        let wanted_id = match (mode, body.get("id")) {
            (Mode::Direct, Some(Value::String(id))) if !id.is_empty() => {
                if self.get(c, id).is_some() {
                    return Err(SimError::field("id", format!("id '{id}' is already used")));
                }
                Some(id.clone())
            }
            _ => None,
        };
        let fields = validate::merge(self, c, None, &validate::defaults(c), body, mode)?;
        let id = match wanted_id {
            Some(id) => id,
            None => self.new_id(c),
        };
        let ts = self.tick();
        let stamp = format_ts(ts);
        let mut data = Map::new();
        data.insert("id".into(), json!(id));
        data.insert("version".into(), json!(1));
        data.insert("created_at".into(), json!(stamp));
        data.insert("updated_at".into(), json!(stamp));
        data.insert("deleted_at".into(), Value::Null);
        data.extend(fields);
        let value = Value::Object(data.clone());
        self.changed(c, &id, "created", ts);
        self.table_mut(c).put(
            id,
            StoredRecord {
                updated_at: ts,
                data,
            },
        );
        Ok(value)
    }

    /// `POST` with an `Idempotency-Key`: `(replayed, record)`.
    pub fn create_idempotent(
        &mut self,
        c: Collection,
        key: &str,
        body: &Map<String, Value>,
    ) -> Result<(bool, Value), SimError> {
        let now = Utc::now();
        if let Some(entry) = self.table(c).idempotency.get(key) {
            if now - entry.at < Duration::hours(IDEMPOTENCY_WINDOW_HOURS) {
                if let Some(rec) = self.get(c, &entry.id) {
                    return Ok((true, Value::Object(rec.data.clone())));
                }
            }
        }
        let created = self.create(c, body, Mode::Api)?;
        let id = created["id"].as_str().unwrap_or_default().to_string();
        let table = self.table_mut(c);
        table.expire_idempotency(now - Duration::hours(IDEMPOTENCY_WINDOW_HOURS));
        table.remember_idempotency(key.to_string(), IdempotencyEntry { id, at: now });
        Ok((false, created))
    }

    /// `PATCH`: partial update, optionally guarded by the expected version.
    pub fn patch(
        &mut self,
        c: Collection,
        id: &str,
        if_match: Option<i64>,
        body: &Map<String, Value>,
        mode: Mode,
    ) -> Result<Value, SimError> {
        let existing = self
            .get(c, id)
            .ok_or_else(|| SimError::not_found(c.noun(), id))?;
        if existing.is_deleted() {
            return Err(SimError::deleted(id));
        }
        let version = existing.version();
        if let Some(expected) = if_match {
            if expected != version {
                return Err(SimError::version_conflict(id, expected, version));
            }
        }
        let old = existing.data.clone();
        let merged = validate::merge(self, c, Some(id), &old, body, mode)?;
        if merged == old {
            return Ok(Value::Object(old));
        }
        let ts = self.tick();
        let mut data = merged;
        data.insert("version".into(), json!(version + 1));
        data.insert("updated_at".into(), json!(format_ts(ts)));
        let value = Value::Object(data.clone());
        self.changed(c, id, "updated", ts);
        self.table_mut(c).put(
            id.to_string(),
            StoredRecord {
                updated_at: ts,
                data,
            },
        );
        Ok(value)
    }

    /// `DELETE`: makes the record a tombstone. Deleting a tombstone changes nothing.
    /// Removes a tombstone for good, as the PRM does 30 days after a delete: no read
    /// returns the record any more, not even as deleted. A live record is left alone.
    pub fn expire_tombstone(&mut self, c: Collection, id: &str) {
        let table = self.table_mut(c);
        if let Some(rec) = table.records.get(id).filter(|r| r.is_deleted()).cloned() {
            table.unindex_record(id, &rec);
            table.records.remove(id);
        }
    }

    pub fn delete(&mut self, c: Collection, id: &str) -> Result<(), SimError> {
        let existing = self
            .get(c, id)
            .ok_or_else(|| SimError::not_found(c.noun(), id))?;
        if existing.is_deleted() {
            return Ok(());
        }
        let version = existing.version();
        let ts = self.tick();
        let stamp = format_ts(ts);
        self.changed(c, id, "deleted", ts);
        let table = self.table_mut(c);
        if let Some(rec) = table.records.get_mut(id) {
            let before = rec.updated_at;
            rec.updated_at = ts;
            rec.data.insert("version".into(), json!(version + 1));
            rec.data.insert("updated_at".into(), json!(stamp));
            rec.data.insert("deleted_at".into(), json!(stamp));
            table.order.remove(&(before, id.to_string()));
            table.order.insert((ts, id.to_string()));
        }
        Ok(())
    }

    /// Sets one field of a stored record to any JSON value, unchecked, as a faulty PRM
    /// would serve it; the record keeps its place in the list order (its typed
    /// `updated_at`). Returns false when the record is unknown.
    pub fn set_raw(&mut self, c: Collection, id: &str, field: &str, value: Value) -> bool {
        let table = self.table_mut(c);
        let Some(mut rec) = table.records.get(id).cloned() else {
            return false;
        };
        rec.data.insert(field.to_string(), value);
        table.put(id.to_string(), rec);
        true
    }

    /// Sets a record's `updated_at` (its list order follows) without touching its data or
    /// version. Returns false when the record is unknown.
    pub fn backdate(&mut self, c: Collection, id: &str, at: DateTime<Utc>) -> bool {
        let table = self.table_mut(c);
        let Some(rec) = table.records.get_mut(id) else {
            return false;
        };
        let before = rec.updated_at;
        rec.updated_at = at;
        rec.data.insert("updated_at".into(), json!(format_ts(at)));
        table.order.remove(&(before, id.to_string()));
        table.order.insert((at, id.to_string()));
        true
    }

    /// One page of a list, ordered by `(updated_at, id)`, and the cursor of the next page.
    ///
    /// Filters backed by an index (`ids`, `crm_id`, `email`, `organization_id`) start from
    /// their matches; otherwise the page is a range scan of the `(updated_at, id)` order.
    pub fn list(&self, c: Collection, f: &ListFilter) -> (Vec<Value>, Option<String>) {
        let table = self.table(c);
        let after = |r: &StoredRecord| match &f.after {
            Some((ts, id)) => (r.updated_at, record_id(r)) > (*ts, id.as_str()),
            None => true,
        };
        let mut page: Vec<&StoredRecord> = match candidates(table, f) {
            Some(ids) => {
                let mut hits: Vec<&StoredRecord> = ids
                    .into_iter()
                    .filter_map(|id| table.records.get(id))
                    .filter(|r| f.matches(r) && after(r))
                    .collect();
                hits.sort_by(|a, b| {
                    (a.updated_at, record_id(a)).cmp(&(b.updated_at, record_id(b)))
                });
                hits.truncate(f.limit + 1);
                hits
            }
            None => {
                let since = f.updated_since.map(|t| (t, String::new()));
                let start = match (&f.after, since) {
                    (Some(a), Some(s)) if s > *a => Bound::Included(s),
                    (Some(a), _) => Bound::Excluded(a.clone()),
                    (None, Some(s)) => Bound::Included(s),
                    (None, None) => Bound::Unbounded,
                };
                table
                    .order
                    .range((start, Bound::Unbounded))
                    .filter_map(|(_, id)| table.records.get(id))
                    .filter(|r| f.matches(r) && after(r))
                    .take(f.limit + 1)
                    .collect()
            }
        };
        let more = page.len() > f.limit;
        page.truncate(f.limit);
        let next = match page.last() {
            Some(last) if more => Some(super::query::encode_cursor(
                last.updated_at,
                record_id(last),
            )),
            _ => None,
        };
        (
            page.into_iter()
                .map(|r| Value::Object(r.data.clone()))
                .collect(),
            next,
        )
    }

    /// Live records of a collection, in id order.
    pub fn live(&self, c: Collection) -> Vec<Value> {
        self.table(c)
            .records
            .values()
            .filter(|r| !r.is_deleted())
            .map(|r| Value::Object(r.data.clone()))
            .collect()
    }
}

/// The ids that can pass the filter's indexed conditions (the smallest such set), or
/// `None` when the filter has none.
fn candidates<'t>(table: &'t Table, f: &'t ListFilter) -> Option<Vec<&'t str>> {
    let indexed = [
        (&table.by_crm_id, &f.crm_id),
        (&table.by_email, &f.email),
        (&table.by_organization, &f.organization_id),
    ];
    let smallest = indexed
        .into_iter()
        .filter_map(|(index, value)| {
            let ids = index.get(value.as_deref()?);
            Some((ids.map_or(0, BTreeSet::len), ids))
        })
        .min_by_key(|(n, _)| *n);
    match (&f.ids, smallest) {
        (Some(ids), best) if best.is_none_or(|(n, _)| ids.len() <= n) => {
            let unique: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
            Some(unique.into_iter().collect())
        }
        (_, Some((_, ids))) => Some(
            ids.into_iter()
                .flat_map(|ids| ids.iter().map(String::as_str))
                .collect(),
        ),
        (_, None) => None,
    }
}

pub fn record_id(r: &StoredRecord) -> &str {
    r.data.get("id").and_then(Value::as_str).unwrap_or_default()
}
