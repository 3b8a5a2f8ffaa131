//! The org's records: validation on write, system fields, deletes with cascade, merges,
//! the recycle bin and an undo log for all-or-none requests.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{ApiError, RecordError, WriteFail};
use super::schema::{FieldDef, FieldType, ObjectDef, Schema};
use super::time::{format_datetime, parse_date, parse_datetime};

/// One record: API field name -> JSON value.
pub type Record = Map<String, Value>;

/// How long deleted records stay in the recycle bin (and in getDeleted / queryAll).
pub const RECYCLE_BIN_DAYS: i64 = 15;

/// Deleting a record of `.0` deletes the live records of `.1` whose field `.2` points to it.
const CASCADE: [(&str, &str, &str); 4] = [
    ("Account", "Contact", "AccountId"),
    ("Account", "Opportunity", "AccountId"),
    ("Opportunity", "OpportunityContactRole", "OpportunityId"),
    ("Contact", "OpportunityContactRole", "ContactId"),
];

/// Merging records of `.0` moves the records of `.1` whose field `.2` points to a loser.
const REPARENT: [(&str, &str, &str); 4] = [
    ("Account", "Contact", "AccountId"),
    ("Account", "Opportunity", "AccountId"),
    ("Account", "Account", "ParentId"),
    ("Contact", "OpportunityContactRole", "ContactId"),
];

/// The lookup key of an Id: its 15-character form, case-sensitive as Salesforce's is. An
/// 18-character Id ignores case: its suffix says which of the first 15 characters are upper
/// case, and the key takes their case from it (`001sm0000000001iaa` is `001Sm0000000001`).
/// A 15-character Id keeps its case (`001sm0000000001` is another record).
pub fn id_key(id: &str) -> String {
    if id.len() == 18 && id.is_ascii() {
        if let Some(key) = restore_case(&id[..15], &id[15..]) {
            return key;
        }
        return id[..15].to_string();
    }
    id.to_string()
}

/// The 15 characters of an 18-character Id in the case its suffix encodes; `None` when the
/// suffix is not one.
fn restore_case(head: &str, suffix: &str) -> Option<String> {
    const MAP: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut out = head.as_bytes().to_vec();
    for (block, letter) in out.chunks_mut(5).zip(suffix.bytes()) {
        let bits = MAP.iter().position(|&m| m == letter.to_ascii_uppercase())?;
        for (i, c) in block.iter_mut().enumerate() {
            if bits & (1 << i) != 0 {
                if !c.is_ascii_alphabetic() {
                    return None;
                }
                c.make_ascii_uppercase();
            } else {
                c.make_ascii_lowercase();
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Well-formed 15- or 18-character Id.
pub fn is_id_like(s: &str) -> bool {
    (s.len() == 15 || s.len() == 18) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The 3-character case-safe suffix of a 15-character Id.
fn id_suffix(id15: &str) -> String {
    const MAP: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    id15.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            MAP[bits] as char
        })
        .collect()
}

/// How the values of an indexed field are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// Record ids: their 15-character form ([`id_key`]).
    Id,
    /// Case-sensitive text.
    Exact,
    /// Text ignoring case.
    Folded,
}

impl KeyKind {
    fn of(def: &FieldDef) -> KeyKind {
        if def.field_type.is_id() {
            KeyKind::Id
        } else if def.case_sensitive {
            KeyKind::Exact
        } else {
            KeyKind::Folded
        }
    }

    /// The lookup key of a value: equal keys are equal values for the field.
    fn key(self, value: &str) -> String {
        match self {
            KeyKind::Id => id_key(value),
            KeyKind::Exact => value.to_string(),
            KeyKind::Folded => value.to_lowercase(),
        }
    }
}

/// Row positions by the value of one field (string values only, deleted rows included).
#[derive(Debug, Clone)]
struct FieldIndex {
    kind: KeyKind,
    rows: HashMap<String, BTreeSet<usize>>,
}

/// Whether a field gets a value index: unique and external id fields (duplicate checks,
/// upserts) and the parent references followed by cascades and merges.
fn is_indexed(obj: &ObjectDef, def: &FieldDef) -> bool {
    if def.field_type == FieldType::Id || !def.field_type.is_text() {
        return false;
    }
    def.unique
        || def.external_id
        || CASCADE
            .iter()
            .chain(REPARENT.iter())
            .any(|(_, child, field)| *child == obj.name && *field == def.name)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Table {
    rows: Vec<Record>,
    #[serde(skip)]
    index: HashMap<String, usize>,
    /// Field name -> value index, for the fields [`is_indexed`] picks.
    #[serde(skip)]
    fields: HashMap<String, FieldIndex>,
}

impl Table {
    fn with_indexes(obj: Option<&ObjectDef>) -> Table {
        let mut table = Table::default();
        table.set_indexed_fields(obj);
        table
    }

    fn set_indexed_fields(&mut self, obj: Option<&ObjectDef>) {
        self.fields = obj
            .into_iter()
            .flat_map(|o| o.fields.iter().filter(move |d| is_indexed(o, d)))
            .map(|d| {
                let index = FieldIndex {
                    kind: KeyKind::of(d),
                    rows: HashMap::new(),
                };
                (d.name.clone(), index)
            })
            .collect();
    }

    fn rebuild_index(&mut self) {
        self.index = self
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((id_key(r.get("Id")?.as_str()?), i)))
            .collect();
        for index in self.fields.values_mut() {
            index.rows.clear();
        }
        for pos in 0..self.rows.len() {
            self.index_fields(pos, None);
        }
    }

    fn pos(&self, id: &str) -> Option<usize> {
        self.index.get(&id_key(id)).copied()
    }

    /// Adds row `pos` to the value indexes (only of the fields in `only`, when given).
    fn index_fields(&mut self, pos: usize, only: Option<&[String]>) {
        let Some(row) = self.rows.get(pos) else {
            return;
        };
        for (name, index) in &mut self.fields {
            if only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            if let Some(Value::String(v)) = row.get(name) {
                index.rows.entry(index.kind.key(v)).or_default().insert(pos);
            }
        }
    }

    /// Removes row `pos` from the value indexes (only of the fields in `only`, when given).
    fn unindex_fields(&mut self, pos: usize, only: Option<&[String]>) {
        let Some(row) = self.rows.get(pos) else {
            return;
        };
        for (name, index) in &mut self.fields {
            if only.is_some_and(|o| !o.contains(name)) {
                continue;
            }
            if let Some(Value::String(v)) = row.get(name) {
                let key = index.kind.key(v);
                if let Some(set) = index.rows.get_mut(&key) {
                    set.remove(&pos);
                    if set.is_empty() {
                        index.rows.remove(&key);
                    }
                }
            }
        }
    }

    /// Rows whose `field` equals `value`, in insertion order; `None` when the field has no
    /// index of that kind.
    fn lookup(&self, field: &str, kind: KeyKind, value: &str) -> Option<Vec<usize>> {
        let index = self.fields.get(field).filter(|i| i.kind == kind)?;
        Some(
            index
                .rows
                .get(&kind.key(value))
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default(),
        )
    }
}

/// What inserting a row needs to know about its object.
struct NewRow {
    name: String,
    key_prefix: String,
    has_master_record_id: bool,
}

impl NewRow {
    fn of(obj: &ObjectDef) -> NewRow {
        NewRow {
            name: obj.name.clone(),
            key_prefix: obj.key_prefix.clone(),
            has_master_record_id: obj.field("MasterRecordId").is_some(),
        }
    }
}

#[derive(Debug, Clone)]
enum Undo {
    Inserted {
        object: String,
    },
    /// The previous values of the fields a write touched (`None`: the field was absent).
    Updated {
        object: String,
        pos: usize,
        old: Vec<(String, Option<Value>)>,
    },
}

/// All records of the org plus Id counters and the modstamp clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Store {
    pub schema: Schema,
    tables: BTreeMap<String, Table>,
    counters: BTreeMap<String, u64>,
    last_stamp: Option<DateTime<Utc>>,
    clock_offset_ms: i64,
    default_owner: Option<String>,
    /// While set, every write is stamped with this instant ([`Store::hold_clock`]).
    #[serde(default)]
    held_stamp: Option<DateTime<Utc>>,
    #[serde(skip)]
    undo: Option<Vec<Undo>>,
    /// Change Data Capture: the objects that publish change events, and the events.
    #[serde(default)]
    pub(crate) changes: super::cdc::ChangeEvents,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(Schema::default_org())
    }
}

impl Store {
    /// An empty org with one active integration user that owns new records.
    pub fn new(schema: Schema) -> Self {
        let mut store = Store {
            schema,
            tables: BTreeMap::new(),
            counters: BTreeMap::new(),
            last_stamp: None,
            clock_offset_ms: 0,
            default_owner: None,
            held_stamp: None,
            undo: None,
            changes: Default::default(),
        };
        if store.schema.object("User").is_some() {
            let mut user = Record::new();
            user.insert("Username".into(), "integration@prmsync.sim".into());
            user.insert("LastName".into(), "Integration".into());
            user.insert("Email".into(), "integration@prmsync.sim".into());
            user.insert("IsActive".into(), true.into());
            store.default_owner = store.insert_raw("User", user);
        }
        store
    }

    /// Rebuilds the Id and value indexes (after deserializing or a schema change).
    pub fn reindex(&mut self) {
        for (name, table) in &mut self.tables {
            table.set_indexed_fields(self.schema.object(name));
            table.rebuild_index();
        }
    }

    /// The simulated clock: real time plus the offset set by [`Store::advance_clock`].
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.clock_offset_ms)
    }

    /// The simulated clock, never behind the last stamp handed out (stamps can run a few
    /// milliseconds ahead of the clock to stay strictly increasing).
    pub fn latest(&self) -> DateTime<Utc> {
        let now = self.now();
        self.last_stamp.map_or(now, |last| last.max(now))
    }

    pub fn advance_clock(&mut self, by: Duration) {
        self.clock_offset_ms += by.num_milliseconds();
    }

    /// Holds the clock (`true`): every write from now on is stamped with one instant, as
    /// the records saved by one transaction in Salesforce share their SystemModstamp, until
    /// it is released (`false`); stamps then go on strictly after that instant.
    pub fn hold_clock(&mut self, hold: bool) {
        self.held_stamp = if hold {
            let now = self.now();
            let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
            let at = match self.last_stamp {
                Some(last) if now <= last => last + Duration::milliseconds(1),
                _ => now,
            };
            self.last_stamp = Some(at);
            Some(at)
        } else {
            None
        };
    }

    /// A strictly increasing timestamp for SystemModstamp / LastModifiedDate (the same one
    /// while the clock is held).
    fn stamp(&mut self) -> String {
        if let Some(at) = self.held_stamp {
            return format_datetime(at);
        }
        let now = self.now();
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let next = match self.last_stamp {
            Some(last) if now <= last => last + Duration::milliseconds(1),
            _ => now,
        };
        self.last_stamp = Some(next);
        format_datetime(next)
    }

    fn new_id(&mut self, object: &str, key_prefix: &str) -> String {
        let n = match self.counters.get_mut(object) {
            Some(n) => n,
            None => self.counters.entry(object.to_string()).or_insert(0),
        };
        *n += 1;
        let id15 = format!("{key_prefix}Sm{:010}", n);
        let suffix = id_suffix(&id15);
        format!("{id15}{suffix}")
    }

    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.schema.object(name)
    }

    fn table(&self, object: &str) -> Option<&Table> {
        let name = &self.schema.object(object)?.name;
        self.tables.get(name)
    }

    /// A record, deleted or not.
    pub fn get(&self, object: &str, id: &str) -> Option<&Record> {
        let table = self.table(object)?;
        table.pos(id).map(|p| &table.rows[p])
    }

    /// All records of an object in insertion order, including deleted ones.
    pub fn rows(&self, object: &str) -> impl Iterator<Item = &Record> {
        self.table(object).into_iter().flat_map(|t| t.rows.iter())
    }

    /// Records not in the recycle bin.
    pub fn live(&self, object: &str) -> impl Iterator<Item = &Record> {
        self.rows(object).filter(|r| !is_deleted(r))
    }

    /// Records visible to queryAll: live ones and deletes younger than the recycle bin limit.
    pub fn live_and_recent_deleted(&self, object: &str) -> impl Iterator<Item = &Record> {
        let horizon = self.now() - Duration::days(RECYCLE_BIN_DAYS);
        self.rows(object)
            .filter(move |r| !is_deleted(r) || modstamp(r).is_some_and(|t| t >= horizon))
    }

    // --------------------------------------------------------------------------------
    // Transactions (undo log)

    pub fn begin(&mut self) {
        self.undo = Some(Vec::new());
        self.changes.begin();
    }

    pub fn commit(&mut self) {
        self.undo = None;
        self.changes.commit();
    }

    pub fn rollback(&mut self) {
        self.changes.rollback();
        let Some(log) = self.undo.take() else { return };
        for entry in log.into_iter().rev() {
            match entry {
                Undo::Inserted { object } => {
                    if let Some(t) = self.tables.get_mut(&object) {
                        if let Some(last) = t.rows.len().checked_sub(1) {
                            t.unindex_fields(last, None);
                        }
                        if let Some(rec) = t.rows.pop() {
                            if let Some(id) = rec.get("Id").and_then(Value::as_str) {
                                t.index.remove(&id_key(id));
                            }
                        }
                    }
                }
                Undo::Updated { object, pos, old } => {
                    if let Some(t) = self.tables.get_mut(&object) {
                        if pos < t.rows.len() {
                            let touched: Vec<String> = old
                                .iter()
                                .map(|(k, _)| k)
                                .filter(|k| t.fields.contains_key(*k))
                                .cloned()
                                .collect();
                            t.unindex_fields(pos, Some(&touched));
                            let row = &mut t.rows[pos];
                            // Newest first, so that fields the write added are removed from
                            // the end.
                            for (k, v) in old.into_iter().rev() {
                                match v {
                                    Some(v) => {
                                        row.insert(k, v);
                                    }
                                    None => {
                                        row.remove(&k);
                                    }
                                }
                            }
                            t.index_fields(pos, Some(&touched));
                        }
                    }
                }
            }
        }
    }

    fn push_row(&mut self, object: &str, rec: Record) {
        if !self.tables.contains_key(object) {
            let table = Table::with_indexes(self.schema.object(object));
            self.tables.insert(object.to_string(), table);
        }
        let Some(table) = self.tables.get_mut(object) else {
            return;
        };
        let pos = table.rows.len();
        if let Some(id) = rec.get("Id").and_then(Value::as_str) {
            table.index.insert(id_key(id), pos);
        }
        table.rows.push(rec);
        table.index_fields(pos, None);
        if let Some(log) = &mut self.undo {
            log.push(Undo::Inserted {
                object: object.to_string(),
            });
        }
    }

    /// Applies `changes` to a row and bumps its modification stamps.
    fn write_row(&mut self, object: &str, pos: usize, changes: Record) {
        let stamp = self.stamp();
        self.write_row_stamped(object, pos, changes, Some(stamp));
    }

    /// Writes `changes` into a row; with `stamp` None, LastModifiedDate and
    /// SystemModstamp stay as they were (a formula field recalculated).
    fn write_row_stamped(
        &mut self,
        object: &str,
        pos: usize,
        changes: Record,
        stamp: Option<String>,
    ) {
        let Some(table) = self.tables.get_mut(object) else {
            return;
        };
        if pos >= table.rows.len() {
            return;
        }
        if let Some(log) = &mut self.undo {
            let row = &table.rows[pos];
            let old = changes
                .keys()
                .map(String::as_str)
                .chain(["LastModifiedDate", "SystemModstamp"])
                .map(|k| (k.to_string(), row.get(k).cloned()))
                .collect();
            log.push(Undo::Updated {
                object: object.to_string(),
                pos,
                old,
            });
        }
        let touched: Vec<String> = changes
            .keys()
            .filter(|k| table.fields.contains_key(*k))
            .cloned()
            .collect();
        table.unindex_fields(pos, Some(&touched));
        let row = &mut table.rows[pos];
        if stamp.is_some() && self.changes.enabled(object) {
            let was_deleted = is_deleted(row);
            let change_type = match changes.get("IsDeleted").and_then(Value::as_bool) {
                Some(true) if !was_deleted => "DELETE",
                Some(false) if was_deleted => "UNDELETE",
                _ => "UPDATE",
            };
            let id = id_of(row);
            let commit_ms = self
                .held_stamp
                .unwrap_or_else(|| self.last_stamp.unwrap_or_else(Utc::now))
                .timestamp_millis();
            self.changes
                .record(object, &id, change_type, &changes, commit_ms);
        }
        let Some(table) = self.tables.get_mut(object) else {
            return;
        };
        let row = &mut table.rows[pos];
        row.extend(changes);
        if let Some(stamp) = stamp {
            row.insert("LastModifiedDate".into(), stamp.clone().into());
            row.insert("SystemModstamp".into(), stamp.into());
        }
        table.index_fields(pos, Some(&touched));
    }

    fn locate(&self, object: &str, id: &str) -> Result<(String, usize), WriteFail> {
        let obj = self
            .schema
            .object(object)
            .ok_or_else(|| WriteFail::Request(invalid_type(object)))?;
        let pos = self
            .tables
            .get(&obj.name)
            .and_then(|t| t.pos(id))
            .ok_or(WriteFail::NotFound)?;
        if is_deleted(&self.tables[&obj.name].rows[pos]) {
            return Err(WriteFail::Deleted);
        }
        Ok((obj.name.clone(), pos))
    }

    // --------------------------------------------------------------------------------
    // Direct (unvalidated) writes for tests

    /// Inserts without validation: known field names are canonicalised, blank text becomes
    /// null, defaults and system fields are set. `None` for an unknown object.
    pub fn insert_raw(&mut self, object: &str, fields: Record) -> Option<String> {
        let obj = self.schema.object(object)?;
        let mut rec = Record::new();
        for (k, v) in fields {
            let (name, v) = match obj.field(&k) {
                Some(def) => (def.name.clone(), normalize_raw(def, v)),
                None => (k, v),
            };
            rec.insert(name, v);
        }
        self.fill_defaults(obj, &mut rec);
        let info = NewRow::of(obj);
        Some(self.finish_insert(info, rec))
    }

    /// Updates without validation; bumps the stamps. `false` when the record is unknown.
    pub fn update_raw(&mut self, object: &str, id: &str, fields: Record) -> bool {
        self.update_unchecked(object, id, fields, true)
    }

    /// Updates without validation and without moving LastModifiedDate or SystemModstamp,
    /// as a formula field's value changes when a field it reads does. `false` when the
    /// record is unknown.
    pub fn update_silently(&mut self, object: &str, id: &str, fields: Record) -> bool {
        self.update_unchecked(object, id, fields, false)
    }

    /// [`update_raw`](Self::update_raw), the stamps moved or not.
    fn update_unchecked(&mut self, object: &str, id: &str, fields: Record, stamped: bool) -> bool {
        let Some(obj) = self.schema.object(object) else {
            return false;
        };
        let Some(pos) = self.tables.get(&obj.name).and_then(|t| t.pos(id)) else {
            return false;
        };
        let changes = fields
            .into_iter()
            .map(|(k, v)| match obj.field(&k) {
                Some(def) => (def.name.clone(), normalize_raw(def, v)),
                None => (k, v),
            })
            .collect();
        let name = obj.name.clone();
        let stamp = stamped.then(|| self.stamp());
        self.write_row_stamped(&name, pos, changes, stamp);
        true
    }

    fn fill_defaults(&self, obj: &ObjectDef, rec: &mut Record) {
        for def in &obj.fields {
            if rec.contains_key(&def.name) {
                continue;
            }
            if let Some(v) = &def.default_value {
                rec.insert(def.name.clone(), v.clone());
            } else if def.name == "OwnerId" {
                if let Some(owner) = &self.default_owner {
                    rec.insert(def.name.clone(), owner.clone().into());
                }
            }
        }
    }

    fn finish_insert(&mut self, obj: NewRow, mut rec: Record) -> String {
        let id = self.new_id(&obj.name, &obj.key_prefix);
        let stamp = self.stamp();
        rec.insert("Id".into(), id.clone().into());
        rec.insert("IsDeleted".into(), false.into());
        rec.insert("CreatedDate".into(), stamp.clone().into());
        rec.insert("LastModifiedDate".into(), stamp.clone().into());
        rec.insert("SystemModstamp".into(), stamp.into());
        if obj.has_master_record_id {
            rec.entry("MasterRecordId").or_insert(Value::Null);
        }
        if self.changes.enabled(&obj.name) {
            let commit_ms = self
                .held_stamp
                .unwrap_or_else(|| self.last_stamp.unwrap_or_else(Utc::now))
                .timestamp_millis();
            let fields: Record = rec
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.changes
                .record(&obj.name, &id, "CREATE", &fields, commit_ms);
        }
        self.push_row(&obj.name, rec);
        id
    }

    // --------------------------------------------------------------------------------
    // Validated writes (the API)

    /// Creates a record after validating it.
    pub fn create(&mut self, object: &str, input: &Record) -> Result<String, WriteFail> {
        let obj = self
            .schema
            .object(object)
            .ok_or_else(|| WriteFail::Request(invalid_type(object)))?;
        let mut rec = prepare(obj, input, true)?;
        self.fill_defaults(obj, &mut rec);
        let missing: Vec<String> = obj
            .fields
            .iter()
            .filter(|d| d.required && d.createable && rec.get(&d.name).is_none_or(Value::is_null))
            .map(|d| d.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(required_missing(missing).into());
        }
        self.check_references(obj, &mut rec)?;
        self.check_unique(obj, &rec, None)?;
        let info = NewRow::of(obj);
        Ok(self.finish_insert(info, rec))
    }

    /// Updates a live record after validating the changes. Bumps the stamps even when no
    /// value changes.
    pub fn update(&mut self, object: &str, id: &str, input: &Record) -> Result<(), WriteFail> {
        let obj = self
            .schema
            .object(object)
            .ok_or_else(|| WriteFail::Request(invalid_type(object)))?;
        let mut changes = prepare(obj, input, false)?;
        let (name, pos) = self.locate(&obj.name, id)?;
        let missing: Vec<String> = changes
            .iter()
            .filter(|(k, v)| v.is_null() && obj.field(k).is_some_and(|d| d.required))
            .map(|(k, _)| k.clone())
            .collect();
        if !missing.is_empty() {
            return Err(required_missing(missing).into());
        }
        self.check_references(obj, &mut changes)?;
        let own_id = self.tables[&name].rows[pos]
            .get("Id")
            .and_then(Value::as_str);
        self.check_unique(obj, &changes, own_id)?;
        self.write_row(&name, pos, changes);
        Ok(())
    }

    /// Live records whose `field` equals `value` (ignoring case unless case-sensitive).
    pub fn find_by_field(&self, object: &str, field: &FieldDef, value: &str) -> Vec<String> {
        let Some(table) = self.table(object) else {
            return Vec::new();
        };
        let live_ids = |positions: Vec<usize>| -> Vec<String> {
            positions
                .into_iter()
                .filter_map(|p| table.rows.get(p))
                .filter(|r| !is_deleted(r))
                .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        if field.field_type == FieldType::Id && field.name == "Id" {
            return live_ids(table.pos(value).into_iter().collect());
        }
        if let Some(positions) = table.lookup(&field.name, KeyKind::of(field), value) {
            return live_ids(positions);
        }
        let same = |v: &str| -> bool {
            if field.field_type.is_id() {
                id_key(v) == id_key(value)
            } else if field.case_sensitive {
                v == value
            } else if v.is_ascii() && value.is_ascii() {
                v.eq_ignore_ascii_case(value)
            } else {
                v.to_lowercase() == value.to_lowercase()
            }
        };
        table
            .rows
            .iter()
            .filter(|r| !is_deleted(r))
            .filter(|r| r.get(&field.name).and_then(Value::as_str).is_some_and(same))
            .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// Upsert on an external id field: `(id, created)`.
    pub fn upsert(
        &mut self,
        object: &str,
        ext_field: &str,
        value: &str,
        input: &Record,
    ) -> Result<(String, bool), WriteFail> {
        let obj = self
            .schema
            .object(object)
            .ok_or_else(|| WriteFail::Request(invalid_type(object)))?;
        let def = obj
            .field(ext_field)
            .filter(|d| d.external_id || d.field_type == FieldType::Id)
            .ok_or_else(|| WriteFail::Request(not_external_id(ext_field, &obj.name)))?;
        let mut body = input.clone();
        body.retain(|k, _| !k.eq_ignore_ascii_case(&def.name));
        let matches = self.find_by_field(&obj.name, def, value);
        let (name, field, is_id) = (
            obj.name.clone(),
            def.name.clone(),
            def.field_type == FieldType::Id,
        );
        match matches.len() {
            0 => {
                if !is_id {
                    body.insert(field, value.into());
                }
                self.create(&name, &body).map(|id| (id, true))
            }
            1 => {
                let id = matches[0].clone();
                self.update(&name, &id, &body).map(|()| (id, false))
            }
            _ => Err(WriteFail::Ambiguous(matches)),
        }
    }

    /// Moves a record to the recycle bin, cascading to dependent records.
    pub fn delete(&mut self, object: &str, id: &str) -> Result<(), WriteFail> {
        let (name, pos) = self.locate(object, id)?;
        let mut change = Record::new();
        change.insert("IsDeleted".into(), true.into());
        self.write_row(&name, pos, change);
        let full_id = id_of(&self.tables[&name].rows[pos]);
        for (parent, child, field) in CASCADE {
            if parent != name {
                continue;
            }
            for child_id in self.children(child, field, &full_id) {
                // Children already deleted by an earlier cascade step are skipped.
                let _ = self.delete(child, &child_id);
            }
        }
        Ok(())
    }

    /// Live records of `child` whose `field` points to `parent_id`.
    fn children(&self, child: &str, field: &str, parent_id: &str) -> Vec<String> {
        if let Some(table) = self.tables.get(child) {
            if let Some(positions) = table.lookup(field, KeyKind::Id, parent_id) {
                return positions
                    .into_iter()
                    .filter_map(|p| table.rows.get(p))
                    .filter(|r| !is_deleted(r))
                    .map(id_of)
                    .collect();
            }
        }
        let key = id_key(parent_id);
        self.live(child)
            .filter(|r| {
                r.get(field)
                    .and_then(Value::as_str)
                    .is_some_and(|v| id_key(v) == key)
            })
            .map(id_of)
            .collect()
    }

    /// Merges `loser` into `master`: the loser is deleted with `MasterRecordId` set and its
    /// children move to the master.
    pub fn merge(&mut self, object: &str, master: &str, loser: &str) -> Result<(), WriteFail> {
        let (name, master_pos) = self.locate(object, master)?;
        let (_, loser_pos) = self.locate(object, loser)?;
        if master_pos == loser_pos {
            return Err(RecordError::new(
                "INVALID_OPERATION",
                "cannot merge a record with itself",
                vec![],
            )
            .into());
        }
        let master_id = id_of(&self.tables[&name].rows[master_pos]);
        let loser_id = id_of(&self.tables[&name].rows[loser_pos]);
        for (parent, child, field) in REPARENT {
            if parent != name {
                continue;
            }
            for child_id in self.children(child, field, &loser_id) {
                if let Some(pos) = self.tables.get(child).and_then(|t| t.pos(&child_id)) {
                    let mut change = Record::new();
                    change.insert(field.to_string(), master_id.clone().into());
                    self.write_row(child, pos, change);
                }
            }
        }
        let mut change = Record::new();
        change.insert("MasterRecordId".into(), master_id.into());
        change.insert("IsDeleted".into(), true.into());
        self.write_row(&name, loser_pos, change);
        self.write_row(&name, master_pos, Record::new());
        Ok(())
    }

    /// getDeleted: `(id, deletedDate)` of records deleted in `[start, end]`.
    pub fn deleted_between(
        &self,
        object: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<(String, String)> {
        self.rows(object)
            .filter(|r| is_deleted(r))
            .filter_map(|r| {
                let t = modstamp(r)?;
                (t >= start && t <= end).then(|| (id_of(r), format_datetime(t)))
            })
            .collect()
    }

    fn check_references(&self, obj: &ObjectDef, rec: &mut Record) -> Result<(), WriteFail> {
        for def in obj.fields.iter().filter(|d| !d.reference_to.is_empty()) {
            let Some(Value::String(value)) = rec.get(&def.name) else {
                continue;
            };
            let target = self
                .schema
                .object_for_id(value)
                .filter(|o| def.reference_to.iter().any(|t| t == &o.name));
            let Some(target) = target else {
                return Err(RecordError::new(
                    "FIELD_INTEGRITY_EXCEPTION",
                    format!("{}: id value of incorrect type: {value}", def.label),
                    vec![def.name.clone()],
                )
                .into());
            };
            let found = self.get(&target.name, value);
            match found {
                None => {
                    return Err(RecordError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        format!("invalid cross reference id: {value}"),
                        vec![def.name.clone()],
                    )
                    .into())
                }
                Some(r) if is_deleted(r) => {
                    return Err(RecordError::new(
                        "ENTITY_IS_DELETED",
                        "entity is deleted",
                        vec![def.name.clone()],
                    )
                    .into())
                }
                Some(r) => {
                    let full = id_of(r);
                    rec.insert(def.name.clone(), full.into());
                }
            }
        }
        Ok(())
    }

    fn check_unique(
        &self,
        obj: &ObjectDef,
        rec: &Record,
        own_id: Option<&str>,
    ) -> Result<(), WriteFail> {
        for def in obj.fields.iter().filter(|d| d.unique) {
            let Some(Value::String(value)) = rec.get(&def.name) else {
                continue;
            };
            let dup = self
                .find_by_field(&obj.name, def, value)
                .into_iter()
                .find(|id| own_id.is_none_or(|own| id_key(own) != id_key(id)));
            if let Some(other) = dup {
                return Err(RecordError::new(
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {other}",
                        def.name
                    ),
                    vec![def.name.clone()],
                )
                .into());
            }
        }
        Ok(())
    }
}

pub fn is_deleted(r: &Record) -> bool {
    r.get("IsDeleted") == Some(&Value::Bool(true))
}

fn modstamp(r: &Record) -> Option<DateTime<Utc>> {
    parse_datetime(r.get("SystemModstamp")?.as_str()?)
}

fn id_of(r: &Record) -> String {
    r.get("Id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn invalid_type(object: &str) -> ApiError {
    ApiError::new(
        400,
        "INVALID_TYPE",
        format!("sObject type '{object}' is not supported."),
    )
}

fn not_external_id(field: &str, object: &str) -> ApiError {
    ApiError::new(
        400,
        "INVALID_FIELD",
        format!("Field name provided, {field} is not an External ID or indexed field for {object}"),
    )
}

fn required_missing(fields: Vec<String>) -> RecordError {
    RecordError::new(
        "REQUIRED_FIELD_MISSING",
        format!("Required fields are missing: [{}]", fields.join(", ")),
        fields,
    )
}

/// Blank text -> null; checkbox null -> false. Used by the unvalidated direct writes.
fn normalize_raw(def: &FieldDef, v: Value) -> Value {
    match v {
        Value::String(s) if def.field_type.is_text() && s.trim().is_empty() => Value::Null,
        Value::Null if def.field_type == FieldType::Boolean => Value::Bool(false),
        other => other,
    }
}

/// Checks the request body of one record and converts values to their stored form.
fn prepare(obj: &ObjectDef, input: &Record, creating: bool) -> Result<Record, WriteFail> {
    let mut defs = Vec::new();
    for (k, v) in input {
        if k == "attributes" {
            continue;
        }
        let def = obj
            .field(k)
            .ok_or_else(|| ApiError::unknown_field(k, &obj.name))?;
        defs.push((def, v));
    }
    let mut read_only = Vec::new();
    let mut out = Record::new();
    for (def, v) in defs {
        if def.name == "Id" && !creating {
            continue; // the record's own Id in an update body
        }
        let writable = if creating {
            def.createable
        } else {
            def.updateable
        };
        if !writable {
            read_only.push(def.name.clone());
            continue;
        }
        let value = coerce(def, v)?;
        validate_value(def, &value)?;
        out.insert(def.name.clone(), value);
    }
    if !read_only.is_empty() {
        return Err(RecordError::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                read_only.join(", ")
            ),
            read_only,
        )
        .into());
    }
    Ok(out)
}

fn parse_error(def: &FieldDef, v: &Value) -> WriteFail {
    ApiError::json_parse(format!(
        "Cannot deserialize instance of {} from {} value {v} or request may be missing a required field",
        def.field_type.api_name(),
        match v {
            Value::String(_) => "VALUE_STRING",
            Value::Number(_) => "VALUE_NUMBER",
            Value::Bool(_) => "VALUE_BOOLEAN",
            Value::Array(_) => "START_ARRAY",
            Value::Object(_) => "START_OBJECT",
            Value::Null => "VALUE_NULL",
        }
    ))
    .into()
}

/// JSON value -> stored value for the field's type.
/// A number as a field of `def.scale` decimal places stores it: rounded half away from
/// zero in decimal (12.345 keeps 12.35 at scale 2), as Salesforce saves a value with more
/// places than the field keeps.
fn round_to_scale(def: &FieldDef, v: Value) -> Value {
    let (Some(scale), Some(x)) = (def.scale, v.as_f64()) else {
        return v;
    };
    if v.is_i64() || v.is_u64() {
        return v;
    }
    let text = format!("{}", x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let scale = scale as usize;
    if frac.len() <= scale {
        return v;
    }
    let mut digits: Vec<u8> = format!("{int}{}", &frac[..scale]).into_bytes();
    if frac.as_bytes()[scale] >= b'5' {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, b'1');
                break;
            }
            i -= 1;
            if digits[i] == b'9' {
                digits[i] = b'0';
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let mut rounded = String::from_utf8(digits).unwrap_or_default();
    rounded.insert(rounded.len() - scale, '.');
    let value: f64 = rounded.parse().unwrap_or(x.abs());
    serde_json::Number::from_f64(value.copysign(x)).map_or(v, Value::Number)
}

fn coerce(def: &FieldDef, v: &Value) -> Result<Value, WriteFail> {
    let t = def.field_type;
    if v.is_null() {
        return Ok(if t == FieldType::Boolean {
            Value::Bool(false)
        } else {
            Value::Null
        });
    }
    match t {
        _ if t.is_text() => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(parse_error(def, v)),
            };
            if s.trim().is_empty() {
                return Ok(Value::Null);
            }
            if t.is_id() && !is_id_like(&s) {
                return Err(RecordError::new(
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {s}", def.label),
                    vec![def.name.clone()],
                )
                .into());
            }
            Ok(Value::String(s))
        }
        FieldType::Boolean => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(parse_error(def, v)),
        },
        _ if t.is_number() => match v {
            Value::Number(_) => Ok(round_to_scale(def, v.clone())),
            Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
            // Text (a Bulk API CSV value) is stored as the same JSON number would be.
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => Ok(round_to_scale(def, Value::from(i))),
                Err(_) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(|n| round_to_scale(def, Value::Number(n)))
                    .ok_or_else(|| parse_error(def, v)),
            },
            _ => Err(parse_error(def, v)),
        },
        FieldType::Date => match v {
            Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
            Value::String(s) => parse_date(s)
                .or_else(|| parse_datetime(s).map(|t| t.date_naive()))
                .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
                .ok_or_else(|| parse_error(def, v)),
            _ => Err(parse_error(def, v)),
        },
        FieldType::Datetime => match v {
            Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
            Value::String(s) => parse_datetime(s)
                .map(|t| Value::String(format_datetime(t)))
                .ok_or_else(|| parse_error(def, v)),
            _ => Err(parse_error(def, v)),
        },
        _ => Err(parse_error(def, v)),
    }
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
}

fn validate_value(def: &FieldDef, v: &Value) -> Result<(), RecordError> {
    let Value::String(s) = v else { return Ok(()) };
    let t = def.field_type;
    if t.is_text() && !t.is_id() && def.length > 0 && s.chars().count() > def.length as usize {
        return Err(RecordError::new(
            "STRING_TOO_LONG",
            format!(
                "{}: data value too large: {s} (max length={})",
                def.label, def.length
            ),
            vec![def.name.clone()],
        ));
    }
    if t == FieldType::Email && !valid_email(s) {
        return Err(RecordError::new(
            "INVALID_EMAIL_ADDRESS",
            format!("{}: invalid email address: {s}", def.label),
            vec![def.name.clone()],
        ));
    }
    if t == FieldType::Picklist
        && def.restricted_picklist
        && !def.picklist_values.iter().any(|p| p == s)
    {
        return Err(RecordError::new(
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            format!(
                "{}: bad value for restricted picklist field: {s}",
                def.label
            ),
            vec![def.name.clone()],
        ));
    }
    Ok(())
}

#[cfg(test)]
mod rounding_tests {
    use super::*;

    #[test]
    fn a_number_is_saved_rounded_to_its_field_scale_half_away_from_zero() {
        let def = FieldDef::new("Discount__c", FieldType::Double).scale(2);
        let r = |x: f64| round_to_scale(&def, serde_json::json!(x)).as_f64().unwrap();
        assert_eq!(r(12.345), 12.35);
        assert_eq!(r(-12.345), -12.35);
        assert_eq!(r(12.344), 12.34);
        assert_eq!(r(9.999), 10.0);
        assert_eq!(r(12.3), 12.3);
        let whole = FieldDef::new("Seats__c", FieldType::Double).scale(0);
        assert_eq!(
            round_to_scale(&whole, serde_json::json!(2.5)).as_f64(),
            Some(3.0)
        );
        let free = FieldDef::new("Ratio__c", FieldType::Double);
        assert_eq!(
            round_to_scale(&free, serde_json::json!(1.23456)).as_f64(),
            Some(1.23456)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(v: Value) -> Record {
        v.as_object().cloned().unwrap()
    }

    /// Account's PRM Id as External ID + Unique, case-insensitive.
    fn case_insensitive_prm_id(s: &mut Store) {
        let account = s.schema.object_mut("Account").unwrap();
        account.add_field(
            FieldDef::new("PRM_Id__c", FieldType::String)
                .label("PRM Id")
                .external_id(),
        );
        s.reindex();
    }

    fn record_code(r: Result<impl std::fmt::Debug, WriteFail>) -> String {
        match r {
            Err(WriteFail::Record(e)) => e.status_code,
            Err(WriteFail::Request(e)) => e.code,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ids_are_18_chars_with_prefix_and_checksum() {
        let mut s = Store::default();
        let id = s.create("Account", &rec(json!({"Name": "Acme"}))).unwrap();
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("001"));
        assert_eq!(id_suffix(&id[..15]), id[15..]);
        assert!(s.get("account", &id[..15]).is_some());
        let r = s.get("Account", &id).unwrap();
        assert_eq!(r["PRM_Sync__c"], json!(false));
        assert_eq!(r["IsDeleted"], json!(false));
        assert!(r["OwnerId"].as_str().unwrap().starts_with("005"));
    }

    #[test]
    fn validation_errors() {
        let mut s = Store::default();
        assert_eq!(
            record_code(s.create("Account", &rec(json!({})))),
            "REQUIRED_FIELD_MISSING"
        );
        assert_eq!(
            record_code(s.create("Account", &rec(json!({"Name": "A", "Bogus__c": 1})))),
            "INVALID_FIELD"
        );
        assert_eq!(
            record_code(s.create(
                "Account",
                &rec(json!({"Name": "A", "PRM_Organization_Status__c": "Gold"}))
            )),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        );
        assert_eq!(
            record_code(s.create("Account", &rec(json!({"Name": "x".repeat(256)})))),
            "STRING_TOO_LONG"
        );
        assert_eq!(
            record_code(s.create("Contact", &rec(json!({"LastName": "L", "Email": "nope"})))),
            "INVALID_EMAIL_ADDRESS"
        );
        assert_eq!(
            record_code(s.create("Account", &rec(json!({"Name": "A", "SystemModstamp": "x"})))),
            "INVALID_FIELD_FOR_INSERT_UPDATE"
        );
        s.create("Account", &rec(json!({"Name": "A", "PRM_Id__c": "abc"})))
            .unwrap();
        assert_eq!(
            record_code(s.create("Account", &rec(json!({"Name": "B", "PRM_Id__c": "abc"})))),
            "DUPLICATE_VALUE"
        );
        // the default PRM Id is case-sensitive: "ABC" is another value
        s.create("Account", &rec(json!({"Name": "B", "PRM_Id__c": "ABC"})))
            .unwrap();
        case_insensitive_prm_id(&mut s);
        assert_eq!(
            record_code(s.create("Account", &rec(json!({"Name": "B", "PRM_Id__c": "aBc"})))),
            "DUPLICATE_VALUE"
        );
        let id = s
            .create("Account", &rec(json!({"Name": "C", "Website": "  "})))
            .unwrap();
        assert_eq!(s.get("Account", &id).unwrap()["Website"], Value::Null);
    }

    #[test]
    fn modstamps_strictly_increase_and_update_bumps() {
        let mut s = Store::default();
        let id = s.create("Account", &rec(json!({"Name": "A"}))).unwrap();
        let before = s.get("Account", &id).unwrap()["SystemModstamp"].clone();
        s.update("Account", &id, &Record::new()).unwrap();
        let after = s.get("Account", &id).unwrap()["SystemModstamp"].clone();
        let (b, a) = (
            parse_datetime(before.as_str().unwrap()).unwrap(),
            parse_datetime(after.as_str().unwrap()).unwrap(),
        );
        assert!(a > b);
    }

    #[test]
    fn cascade_delete_and_merge() {
        let mut s = Store::default();
        let a = s.create("Account", &rec(json!({"Name": "A"}))).unwrap();
        let b = s.create("Account", &rec(json!({"Name": "B"}))).unwrap();
        let c = s
            .create("Contact", &rec(json!({"LastName": "C", "AccountId": a})))
            .unwrap();
        s.merge("Account", &b, &a).unwrap();
        assert_eq!(s.get("Contact", &c).unwrap()["AccountId"], json!(b));
        let loser = s.get("Account", &a).unwrap();
        assert_eq!(loser["IsDeleted"], json!(true));
        assert_eq!(loser["MasterRecordId"], json!(b));
        s.delete("Account", &b).unwrap();
        assert_eq!(s.get("Contact", &c).unwrap()["IsDeleted"], json!(true));
        assert!(matches!(
            s.update("Account", &b, &Record::new()),
            Err(WriteFail::Deleted)
        ));
        assert_eq!(s.live("Account").count(), 0);
    }

    #[test]
    fn rollback_undoes_inserts_and_updates() {
        let mut s = Store::default();
        let a = s.create("Account", &rec(json!({"Name": "A"}))).unwrap();
        s.begin();
        s.create("Account", &rec(json!({"Name": "B"}))).unwrap();
        s.update("Account", &a, &rec(json!({"Name": "A2"})))
            .unwrap();
        s.rollback();
        assert_eq!(s.live("Account").count(), 1);
        assert_eq!(s.get("Account", &a).unwrap()["Name"], json!("A"));
    }

    #[test]
    fn upsert_matches_ignoring_case_unless_case_sensitive() {
        let mut s = Store::default();
        // the default PRM Id is case-sensitive: "ORG-1" is not "Org-1"
        let (id, created) = s
            .upsert("Account", "PRM_Id__c", "Org-1", &rec(json!({"Name": "A"})))
            .unwrap();
        assert!(created);
        let (other, created) = s
            .upsert("Account", "PRM_Id__c", "ORG-1", &rec(json!({"Name": "B"})))
            .unwrap();
        assert!(created);
        assert_ne!(id, other);
        assert_eq!(s.get("Account", &id).unwrap()["Name"], json!("A"));

        let mut s = Store::default();
        case_insensitive_prm_id(&mut s);
        let (id, created) = s
            .upsert("Account", "PRM_Id__c", "Org-1", &rec(json!({"Name": "A"})))
            .unwrap();
        assert!(created);
        let (id2, created) = s
            .upsert("Account", "prm_id__c", "ORG-1", &rec(json!({"Name": "B"})))
            .unwrap();
        assert!(!created);
        assert_eq!(id, id2);
        assert_eq!(s.get("Account", &id).unwrap()["PRM_Id__c"], json!("Org-1"));
    }
}
