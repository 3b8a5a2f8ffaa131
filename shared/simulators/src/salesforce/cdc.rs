//! Change Data Capture as Salesforce publishes it and Event Relay puts it on an Amazon
//! EventBridge partner event bus: one event per committed change, with the
//! `ChangeEventHeader` (entity, record ids, change type, changed and nulled fields,
//! `changeOrigin` naming the API client from `Sforce-Call-Options`, commit timestamp and
//! transaction key) and the changed fields' new values, inside the EventBridge envelope
//! (`detail-type` `AccountChangeEvent`, `source` `aws.partner/salesforce.com/<org>/<channel>`,
//! `detail.payload`).
//!
//! Like Salesforce it groups the records of one transaction that changed the same fields
//! to the same values into one event (several `recordIds`), publishes nothing for a
//! transaction rolled back, publishes gap events (`GAP_UPDATE`... without field values)
//! and overflow events (`GAP_OVERFLOW`) on demand, and has faults: events dropped,
//! delivered twice or out of order.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Fields a change event never carries (they are in the header, or not tracked).
const NOT_TRACKED: &[&str] = &["Id", "IsDeleted", "SystemModstamp", "attributes"];

/// One committed change of one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Change {
    pub entity: String,
    pub record_id: String,
    pub change_type: String,
    /// The changed fields' new values (CREATE: every non-null field).
    pub fields: Map<String, Value>,
    pub origin: String,
    pub commit_ms: i64,
}

/// Faults applied to the next events taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEventFaults {
    /// The next this many events are lost.
    pub drop: u32,
    /// The next this many events (after the dropped ones) are delivered twice.
    pub duplicate: u32,
    /// The next batch taken is delivered in reverse order.
    pub reorder: bool,
}

/// The org's change events: which objects publish them, the changes of the transaction in
/// progress, and the events published and not yet taken.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct ChangeEvents {
    enabled: BTreeSet<String>,
    #[serde(skip)]
    pending: Vec<Change>,
    #[serde(skip)]
    transaction_start: Option<usize>,
    #[serde(skip)]
    published: Vec<Value>,
    /// The writer's `changeOrigin` for changes made now.
    #[serde(skip)]
    origin: String,
    #[serde(skip)]
    faults: ChangeEventFaults,
    sequence: u64,
}

impl ChangeEvents {
    pub fn enable(&mut self, objects: &[&str]) {
        self.enabled.extend(objects.iter().map(|o| o.to_string()));
    }

    pub fn enabled(&self, object: &str) -> bool {
        self.enabled.contains(object)
    }

    /// The origin of the changes made from now: an API request's (`Sforce-Call-Options`) or
    /// a user's in the UI (empty).
    pub fn set_origin(&mut self, origin: String) {
        self.origin = origin;
    }

    pub fn set_faults(&mut self, faults: ChangeEventFaults) {
        self.faults = faults;
    }

    /// A change made now; published at once outside a transaction, at its commit inside.
    pub fn record(
        &mut self,
        entity: &str,
        record_id: &str,
        change_type: &str,
        fields: &Map<String, Value>,
        commit_ms: i64,
    ) {
        if !self.enabled(entity) {
            return;
        }
        let fields = fields
            .iter()
            .filter(|(k, _)| !NOT_TRACKED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.pending.push(Change {
            entity: entity.to_string(),
            record_id: record_id.to_string(),
            change_type: change_type.to_string(),
            fields,
            origin: self.origin.clone(),
            commit_ms,
        });
        if self.transaction_start.is_none() {
            self.publish(0);
        }
    }

    pub fn begin(&mut self) {
        self.transaction_start = Some(self.pending.len());
    }

    pub fn commit(&mut self) {
        if let Some(start) = self.transaction_start.take() {
            self.publish(start);
        }
    }

    pub fn rollback(&mut self) {
        if let Some(start) = self.transaction_start.take() {
            self.pending.truncate(start);
        }
    }

    /// Publishes the changes from `start`: one event per group of records of the same
    /// entity and change type whose changed fields have the same values.
    fn publish(&mut self, start: usize) {
        let changes: Vec<Change> = self.pending.drain(start..).collect();
        let transaction_key = uuid::Uuid::new_v4().to_string();
        let mut groups: Vec<(Change, Vec<String>)> = Vec::new();
        for c in changes {
            match groups.iter_mut().find(|(g, _)| {
                g.entity == c.entity
                    && g.change_type == c.change_type
                    && g.fields == c.fields
                    && g.change_type != "CREATE"
            }) {
                Some((_, ids)) => ids.push(c.record_id),
                None => {
                    let id = c.record_id.clone();
                    groups.push((c, vec![id]));
                }
            }
        }
        for (change, ids) in groups {
            self.sequence += 1;
            let event = envelope(
                &change.entity,
                &ids,
                &change.change_type,
                &change.fields,
                &change.origin,
                change.commit_ms,
                &transaction_key,
                self.sequence,
            );
            self.published.push(event);
        }
    }

    /// A gap event (`GAP_CREATE`, `GAP_UPDATE`, `GAP_DELETE`, `GAP_UNDELETE`): the records
    /// changed but Salesforce could not say how (no field values).
    pub fn gap(&mut self, entity: &str, ids: &[String], change_type: &str, commit_ms: i64) {
        self.sequence += 1;
        let event = envelope(
            entity,
            ids,
            &format!("GAP_{change_type}"),
            &Map::new(),
            "",
            commit_ms,
            &uuid::Uuid::new_v4().to_string(),
            self.sequence,
        );
        self.published.push(event);
    }

    /// An overflow event (`GAP_OVERFLOW`): more changes in one transaction than events are
    /// published for; only the entity is named.
    pub fn overflow(&mut self, entity: &str, commit_ms: i64) {
        self.gap(entity, &[], "OVERFLOW", commit_ms);
    }

    /// The events published since the last take, with the faults set applied once.
    pub fn take(&mut self) -> Vec<Value> {
        let mut events: Vec<Value> = std::mem::take(&mut self.published);
        let faults = std::mem::take(&mut self.faults);
        let dropped = (faults.drop as usize).min(events.len());
        events.drain(..dropped);
        let twice = (faults.duplicate as usize).min(events.len());
        let copies: Vec<Value> = events[..twice].to_vec();
        events.extend(copies);
        if faults.reorder {
            events.reverse();
        }
        events
    }
}

/// An event as Event Relay puts it on the partner event bus.
#[allow(clippy::too_many_arguments)]
fn envelope(
    entity: &str,
    ids: &[String],
    change_type: &str,
    fields: &Map<String, Value>,
    origin: &str,
    commit_ms: i64,
    transaction_key: &str,
    sequence: u64,
) -> Value {
    let is_update = change_type == "UPDATE";
    let changed: Vec<&String> = if is_update {
        fields.keys().collect()
    } else {
        Vec::new()
    };
    let nulled: Vec<&String> = if is_update {
        fields
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k)
            .collect()
    } else {
        Vec::new()
    };
    let mut payload = Map::new();
    payload.insert(
        "ChangeEventHeader".into(),
        json!({
            "entityName": entity,
            "recordIds": ids,
            "changeType": change_type,
            "changeOrigin": origin,
            "transactionKey": transaction_key,
            "sequenceNumber": sequence,
            "commitTimestamp": commit_ms,
            "commitNumber": 10_000_000 + sequence,
            "commitUser": "005000000000001AAA",
            "changedFields": changed,
            "nulledFields": nulled,
            "diffFields": [],
        }),
    );
    if !change_type.starts_with("GAP_") && change_type != "DELETE" {
        for (k, v) in fields {
            payload.insert(k.clone(), v.clone());
        }
    }
    let time = chrono::DateTime::from_timestamp_millis(commit_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": format!("{entity}ChangeEvent"),
        "source": SOURCE,
        "account": "000000000000",
        "time": time,
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "payload": payload,
            "schemaId": format!("{entity}ChangeEvent-schema"),
            "id": uuid::Uuid::new_v4().to_string(),
        }
    })
}

/// The partner event source the simulated org's relay publishes to.
pub const SOURCE: &str = "aws.partner/salesforce.com/00DSm0000000001EAA/0YLSm0000000001GAA";

/// `changeOrigin` of an API request: the client named by `Sforce-Call-Options:
/// client=<name>`, as Salesforce writes it.
pub(crate) fn api_origin(version: &str, call_options: Option<&str>) -> String {
    let client = call_options.and_then(|h| {
        h.split(',').find_map(|part| {
            let (k, v) = part.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("client")
                .then(|| v.trim().to_string())
        })
    });
    match client {
        Some(c) => format!("com/salesforce/api/rest/{version};client={c}"),
        None => format!("com/salesforce/api/rest/{version}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_transaction_publishes_at_commit_grouped_and_nothing_when_rolled_back() {
        let mut c = ChangeEvents::default();
        c.enable(&["Account"]);
        c.set_origin(api_origin("62.0", Some("client=prmsync")));
        c.begin();
        for id in ["001A", "001B"] {
            c.record(
                "Account",
                id,
                "UPDATE",
                &fields(json!({"Rating": "Hot"})),
                1,
            );
        }
        c.record(
            "Account",
            "001C",
            "UPDATE",
            &fields(json!({"Rating": null})),
            1,
        );
        c.record(
            "Contact",
            "003A",
            "UPDATE",
            &fields(json!({"Title": "x"})),
            1,
        );
        assert!(c.take().is_empty(), "nothing before the commit");
        c.commit();
        let events = c.take();
        assert_eq!(events.len(), 2, "{events:#?}");
        let h = &events[0]["detail"]["payload"]["ChangeEventHeader"];
        assert_eq!(h["recordIds"], json!(["001A", "001B"]));
        assert_eq!(
            h["changeOrigin"],
            "com/salesforce/api/rest/62.0;client=prmsync"
        );
        assert_eq!(h["changedFields"], json!(["Rating"]));
        assert_eq!(events[0]["detail"]["payload"]["Rating"], "Hot");
        assert_eq!(events[0]["detail-type"], "AccountChangeEvent");
        let h = &events[1]["detail"]["payload"]["ChangeEventHeader"];
        assert_eq!(h["nulledFields"], json!(["Rating"]));

        c.begin();
        c.record(
            "Account",
            "001D",
            "CREATE",
            &fields(json!({"Name": "D"})),
            2,
        );
        c.rollback();
        assert!(
            c.take().is_empty(),
            "a rolled back transaction publishes nothing"
        );
    }

    #[test]
    fn faults_drop_duplicate_and_reorder_the_next_events() {
        let mut c = ChangeEvents::default();
        c.enable(&["Account"]);
        for id in ["1", "2", "3"] {
            c.record("Account", id, "CREATE", &fields(json!({"Name": id})), 1);
        }
        c.set_faults(ChangeEventFaults {
            drop: 1,
            duplicate: 1,
            reorder: true,
        });
        let ids: Vec<Value> = c
            .take()
            .iter()
            .map(|e| e["detail"]["payload"]["ChangeEventHeader"]["recordIds"][0].clone())
            .collect();
        assert_eq!(
            ids,
            [json!("2"), json!("3"), json!("2")]
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
        );
        c.gap("Account", &["9".into()], "UPDATE", 3);
        c.overflow("Account", 3);
        let events = c.take();
        let h = |i: usize| events[i]["detail"]["payload"]["ChangeEventHeader"].clone();
        assert_eq!(h(0)["changeType"], "GAP_UPDATE");
        assert_eq!(h(1)["changeType"], "GAP_OVERFLOW");
        assert_eq!(h(1)["recordIds"], json!([]));
    }

    #[test]
    fn the_origin_names_the_client_of_the_call_options() {
        assert_eq!(
            api_origin("62.0", Some("defaultNamespace=x, client=prmsync")),
            "com/salesforce/api/rest/62.0;client=prmsync"
        );
        assert_eq!(api_origin("62.0", None), "com/salesforce/api/rest/62.0");
    }
}
