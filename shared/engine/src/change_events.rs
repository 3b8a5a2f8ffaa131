//! Salesforce change events (Change Data Capture, relayed by Event Relay to an EventBridge
//! partner event bus and by a rule to the work queue): which records a batch of them names.
//!
//! An event is never trusted for values: the records it names are read fresh by Id and
//! synced as a chunk (merge, write, link, log), so a lost, repeated or out-of-order event
//! does no harm, and a gap event (no field values) is handled like any other. The events
//! of prmsync's own writes (`changeOrigin` naming its client, from `Sforce-Call-Options`)
//! are dropped before any API call. An overflow event names no record: its object is run
//! soon instead.

use std::collections::{BTreeMap, BTreeSet};

use prmsync_mapping::ObjectKind;
use serde::Deserialize;

use crate::chunk::{Chunk, CHUNK_SIZE};
use crate::context::integration_of;

/// One change event, as read from its EventBridge envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// `Account`, `Contact`, `Opportunity`...
    pub entity: String,
    pub record_ids: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE`, `UNDELETE`, `GAP_...`, `GAP_OVERFLOW`.
    pub change_type: String,
    /// `changeOrigin`, e.g. `com/salesforce/api/rest/62.0;client=prmsync`.
    pub origin: String,
}

/// Why a message that looks like a change event cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a change event without {0}: check the EventBridge rule's target sends the whole event (no input transformer)")]
pub struct MalformedChangeEvent(pub &'static str);

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: Option<Detail>,
}

#[derive(Deserialize)]
struct Detail {
    payload: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "ChangeEventHeader")]
    header: Option<Header>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    entity_name: Option<String>,
    #[serde(default)]
    record_ids: Vec<String>,
    change_type: Option<String>,
    #[serde(default)]
    change_origin: String,
}

/// Reads a queue message: None when it is not a change event (a chunk, or anything else
/// for the chunk reader to judge), else the event or what it lacks.
pub fn parse(body: &str) -> Option<Result<ChangeEvent, MalformedChangeEvent>> {
    let envelope: Envelope = serde_json::from_str(body).ok()?;
    if !envelope.detail_type.ends_with("ChangeEvent") {
        return None;
    }
    Some((|| {
        let header = envelope
            .detail
            .ok_or(MalformedChangeEvent("detail"))?
            .payload
            .ok_or(MalformedChangeEvent("detail.payload"))?
            .header
            .ok_or(MalformedChangeEvent("ChangeEventHeader"))?;
        Ok(ChangeEvent {
            entity: header
                .entity_name
                .ok_or(MalformedChangeEvent("entityName"))?,
            record_ids: header.record_ids,
            change_type: header
                .change_type
                .ok_or(MalformedChangeEvent("changeType"))?,
            origin: header.change_origin,
        })
    })())
}

/// The client a `changeOrigin` names (`...;client=<name>`), if any.
pub fn origin_client(origin: &str) -> Option<&str> {
    origin
        .split(';')
        .skip(1)
        .find_map(|part| part.trim().strip_prefix("client="))
        .map(str::trim)
}

/// The kind of record an entity syncs as, if prmsync syncs it.
pub fn kind_of(entity: &str) -> Option<ObjectKind> {
    match entity {
        "Account" => Some(ObjectKind::Organization),
        "Contact" => Some(ObjectKind::Person),
        "Opportunity" => Some(ObjectKind::Deal),
        _ => None,
    }
}

/// What a batch of change events asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeBatch {
    /// Record ids to read fresh and sync, per kind (18-character, each once), and the
    /// messages (their index in the batch) that named them.
    pub records: BTreeMap<ObjectKind, (Vec<String>, BTreeSet<usize>)>,
    /// Objects with an overflow event: run them soon.
    pub overflow: BTreeSet<ObjectKind>,
    /// Events of prmsync's own writes, dropped.
    pub echoes: usize,
    /// Events of objects prmsync does not sync, dropped.
    pub other_objects: usize,
    /// Ids that are not Salesforce Ids, dropped.
    pub bad_ids: usize,
}

/// Gathers a batch's events (with their message index): prmsync's own (its `client`) are
/// dropped, the rest's records collected per kind.
pub fn gather(events: &[(usize, ChangeEvent)], client: &str) -> ChangeBatch {
    let mut batch = ChangeBatch::default();
    let mut seen: BTreeSet<(ObjectKind, String)> = BTreeSet::new();
    for (message, e) in events {
        if origin_client(&e.origin) == Some(client) {
            batch.echoes += 1;
            continue;
        }
        let Some(kind) = kind_of(&e.entity) else {
            batch.other_objects += 1;
            continue;
        };
        if e.change_type == "GAP_OVERFLOW" {
            batch.overflow.insert(kind);
            continue;
        }
        let entry = batch.records.entry(kind).or_default();
        for id in &e.record_ids {
            match prmsync_mapping::sfid::canonical_id(id) {
                Some(id) => {
                    entry.1.insert(*message);
                    if seen.insert((kind, id.clone())) {
                        entry.0.push(id);
                    }
                }
                None => batch.bad_ids += 1,
            }
        }
    }
    batch.records.retain(|_, (ids, _)| !ids.is_empty());
    batch
}

/// The chunks that sync a batch's records, organizations first, then people, then deals
/// (a person's organization is linked before the person), at most [`CHUNK_SIZE`] ids
/// each: one read of each side per chunk.
pub fn chunks(batch: &ChangeBatch, run_id: &str) -> Vec<(Chunk, BTreeSet<usize>)> {
    let mut out = Vec::new();
    for kind in [
        ObjectKind::Organization,
        ObjectKind::Person,
        ObjectKind::Deal,
    ] {
        let Some((ids, messages)) = batch.records.get(&kind) else {
            continue;
        };
        for part in ids.chunks(CHUNK_SIZE) {
            out.push((
                Chunk::refs(run_id, integration_of(kind), part.to_vec(), Vec::new()),
                messages.clone(),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_mapping::Integration;
    use serde_json::json;

    fn event(entity: &str, ids: &[&str], change: &str, origin: &str) -> String {
        json!({
            "version": "0", "id": "e1", "detail-type": format!("{entity}ChangeEvent"),
            "source": "aws.partner/salesforce.com/00D/0YL", "account": "1", "time": "t",
            "region": "us-east-1", "resources": [],
            "detail": {"payload": {"ChangeEventHeader": {
                "entityName": entity, "recordIds": ids, "changeType": change,
                "changeOrigin": origin, "transactionKey": "k", "sequenceNumber": 1,
                "commitTimestamp": 1, "commitNumber": 1, "commitUser": "005",
                "changedFields": [], "nulledFields": [], "diffFields": []},
                "Name": "x"}, "schemaId": "s", "id": "i"}
        })
        .to_string()
    }

    const ACCOUNT_1: &str = "001Sm0000000001IAA";
    const ACCOUNT_2: &str = "001Sm0000000002IAA";

    #[test]
    fn an_eventbridge_change_event_is_read_and_a_chunk_is_not() {
        let e = parse(&event("Account", &[ACCOUNT_1], "UPDATE", "x;client=Web"))
            .expect("a change event")
            .unwrap();
        assert_eq!(e.entity, "Account");
        assert_eq!(e.record_ids, vec![ACCOUNT_1]);
        assert_eq!(origin_client(&e.origin), Some("Web"));
        assert!(parse(r#"{"run_id":"r","integration":"organizations"}"#).is_none());
        assert!(parse("not json").is_none());
        let bad = json!({"detail-type": "AccountChangeEvent", "detail": {}}).to_string();
        assert_eq!(
            parse(&bad),
            Some(Err(MalformedChangeEvent("detail.payload")))
        );
    }

    #[test]
    fn own_writes_are_dropped_and_the_rest_gathered_once_per_record() {
        let events: Vec<(usize, ChangeEvent)> = [
            event(
                "Account",
                &[ACCOUNT_1],
                "UPDATE",
                "com/salesforce/api/rest/62.0;client=prmsync",
            ),
            event("Account", &[ACCOUNT_2, "001Sm0000000001"], "UPDATE", ""),
            event("Account", &[ACCOUNT_1], "GAP_UPDATE", ""),
            event("Contact", &["003Sm0000000001IAA"], "DELETE", "x;client=Web"),
            event("Opportunity", &[], "GAP_OVERFLOW", ""),
            event("Lead", &["00QSm0000000001IAA"], "CREATE", ""),
            event("Account", &["nonsense"], "UPDATE", ""),
        ]
        .iter()
        .enumerate()
        .map(|(i, b)| (i, parse(b).unwrap().unwrap()))
        .collect();
        let batch = gather(&events, "prmsync");
        assert_eq!(batch.echoes, 1);
        assert_eq!(batch.other_objects, 1);
        assert_eq!(batch.bad_ids, 1);
        let (ids, messages) = &batch.records[&ObjectKind::Organization];
        // the 15-character form is the same record; the gap event names it again
        assert_eq!(ids, &vec![ACCOUNT_2.to_string(), ACCOUNT_1.to_string()]);
        assert_eq!(messages, &BTreeSet::from([1, 2]));
        assert!(batch.overflow.contains(&ObjectKind::Deal));
        let chunks = chunks(&batch, "cdc-1");
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].0.integration, Integration::Organizations);
        assert_eq!(chunks[1].0.integration, Integration::People);
        assert_eq!(chunks[1].0.crm_ids, vec!["003Sm0000000001IAA"]);
    }

    #[test]
    fn only_the_echoes_of_this_client_are_dropped() {
        assert_eq!(
            origin_client("com/salesforce/api/rest/62.0;client=prmsync"),
            Some("prmsync")
        );
        assert_eq!(origin_client("com/salesforce/api/rest/62.0"), None);
        assert_eq!(origin_client(""), None);
        let e = ChangeEvent {
            entity: "Account".into(),
            record_ids: vec![ACCOUNT_1.into()],
            change_type: "UPDATE".into(),
            origin: "a;client=prmsync-eu".into(),
        };
        assert_eq!(gather(&[(0, e)], "prmsync").echoes, 0);
    }

    #[test]
    fn a_large_batch_is_read_in_chunks_of_200() {
        let ids: Vec<String> = (0..450).map(|n| format!("001Sm{n:010}AAA")).collect();
        let mut batch = ChangeBatch::default();
        batch
            .records
            .insert(ObjectKind::Organization, (ids, BTreeSet::from([0])));
        let sizes: Vec<usize> = chunks(&batch, "r").iter().map(|(c, _)| c.len()).collect();
        assert_eq!(sizes, [200, 200, 50]);
    }
}
