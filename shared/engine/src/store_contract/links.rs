//! Links: found by either id, saved one by one or in batches, merged, counted, deleted; the
//! pairs whose children are pending; and the rejections remembered per record.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use prmsync_mapping::ObjectKind;
use serde_json::json;

use super::{micros, s};
use crate::store::{Link, LinkState, Store, StoreError};

fn is_conflict(r: &Result<Link, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict { .. }))
}

fn ids(links: &[Link]) -> Vec<String> {
    let mut v: Vec<String> = links.iter().map(|l| l.prm_id.clone()).collect();
    v.sort();
    v
}

/// A link with every field set, times in microseconds.
fn full_link(object: ObjectKind, prm_id: &str, crm_id: &str) -> Link {
    let mut link = Link::new(object, prm_id, crm_id);
    link.snapshot = BTreeMap::from([
        ("Name".to_string(), json!("Acme Ltd")),
        ("NumberOfEmployees".to_string(), json!(250)),
        ("AnnualRevenue".to_string(), json!(1250000.5)),
        ("Active__c".to_string(), json!(true)),
        ("Website".to_string(), json!(null)),
        ("Tags".to_string(), json!(["a", "b"])),
        (
            "Address".to_string(),
            json!({"city": "Lyon", "zip": "69001"}),
        ),
    ]);
    link.crm_modstamp = Some(micros(Utc::now() - Duration::minutes(3)));
    link.prm_version = Some(7);
    link.updated_at = micros(Utc::now());
    link
}

/// Saving several links at once: each is saved or refused on its own, in order, as
/// `save_link` would; a conflict does not stop the others. Uses `Deal` links only.
pub async fn links_in_batches(store: &dyn Store) {
    let deal = ObjectKind::Deal;
    let a = full_link(deal, "batch_a", "006A");
    let saved = store.save_link(&a).await.expect("first link saved");
    let b = full_link(deal, "batch_b", "006B");
    let mut stale_a = a.clone();
    stale_a.snapshot.insert("Name".into(), json!("lost"));
    let mut a2 = saved.clone();
    a2.snapshot.insert("Name".into(), json!("kept"));
    let c = full_link(deal, "batch_c", "006C");
    let results = store
        .save_links(&[b.clone(), stale_a, c.clone(), a2.clone()])
        .await;
    assert_eq!(results.len(), 4, "one result per link");
    assert_eq!(results[0].as_ref().expect("new link b saved").version, 1);
    assert!(
        is_conflict(&results[1]),
        "a link saved with a stale version is refused: {:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().expect("new link c saved").version, 1);
    assert_eq!(
        results[3].as_ref().expect("current version saved").version,
        saved.version + 1
    );
    let found = store
        .find_links(deal, &[], &s(&["batch_a", "batch_b", "batch_c"]))
        .await
        .expect("find");
    assert_eq!(ids(&found), s(&["batch_a", "batch_b", "batch_c"]));
    let a_now = found.iter().find(|l| l.prm_id == "batch_a").unwrap();
    assert_eq!(a_now.snapshot["Name"], json!("kept"));
    assert!(store.save_links(&[]).await.is_empty());
}

/// Links: found by either id, optimistic lock, one link per Salesforce Id, merges, retry
/// listing, counts per state, delete.
pub async fn links(store: &dyn Store) {
    let org = ObjectKind::Organization;

    // Insert, then a second insert of the same pair loses.
    let link = full_link(org, "org_1", "001A");
    let saved = store.save_link(&link).await.expect("save a new link");
    assert_eq!(saved.version, 1, "a new link is saved with version 1");
    assert!(
        is_conflict(&store.save_link(&link).await),
        "saving a link with version 0 twice must fail with Conflict (it must not exist yet)"
    );

    // Found by either id, with every field round-tripped.
    let by_crm = store
        .find_links(org, &s(&["001A"]), &[])
        .await
        .expect("find by crm id");
    let by_prm = store
        .find_links(org, &[], &s(&["org_1"]))
        .await
        .expect("find by prm id");
    assert_eq!(by_crm.len(), 1, "find_links by crm id finds the link");
    assert_eq!(by_prm.len(), 1, "find_links by prm id finds the link");
    assert_eq!(by_crm[0], saved, "the stored link round-trips every field");
    assert_eq!(by_prm[0], saved, "the stored link round-trips every field");
    let both = store
        .find_links(org, &s(&["001A"]), &s(&["org_1"]))
        .await
        .expect("find by both ids");
    assert_eq!(both.len(), 1, "a link matched by both ids is returned once");
    let id_rows = store
        .find_link_ids(org, &s(&["001A"]), &s(&["org_1", "org_none"]))
        .await
        .expect("find link ids");
    assert_eq!(
        id_rows,
        vec![crate::store::LinkIds::from(&saved)],
        "find_link_ids finds what find_links finds, once, with its ids and state"
    );
    assert!(
        store
            .find_link_ids(ObjectKind::Person, &s(&["001A"]), &s(&["org_1"]))
            .await
            .expect("find link ids of another object")
            .is_empty(),
        "find_link_ids is per object too"
    );
    assert!(
        store
            .find_links(ObjectKind::Person, &s(&["001A"]), &s(&["org_1"]))
            .await
            .expect("find other object")
            .is_empty(),
        "links are per object: a Person lookup must not find an Organization link"
    );
    assert!(
        store
            .find_links(org, &s(&["001NONE"]), &s(&["org_none"]))
            .await
            .expect("find unknown ids")
            .is_empty(),
        "unknown ids find nothing"
    );
    assert!(
        store
            .find_links(org, &[], &[])
            .await
            .expect("find no ids")
            .is_empty(),
        "no ids find nothing"
    );

    // Two writers holding version 1: one wins, the other gets a conflict.
    let mut a = saved.clone();
    a.state = LinkState::Unselected;
    a.snapshot.insert("Name".into(), json!("Acme Inc"));
    let mut b = saved.clone();
    b.prm_version = Some(8);
    let a = store.save_link(&a).await.expect("first writer wins");
    assert_eq!(a.version, 2, "an update returns the link with version + 1");
    assert!(
        is_conflict(&store.save_link(&b).await),
        "a second writer with the same (now stale) version must get Conflict"
    );
    let stored = store
        .find_links(org, &[], &s(&["org_1"]))
        .await
        .expect("re-read");
    assert_eq!(
        stored,
        vec![a.clone()],
        "the winner's write is stored, the loser's is not"
    );
    let mut future = a.clone();
    future.version = 5;
    assert!(
        is_conflict(&store.save_link(&future).await),
        "a version ahead of the stored one is a Conflict too"
    );
    let mut ghost = full_link(org, "org_ghost", "001GHOST");
    ghost.version = 3;
    assert!(
        is_conflict(&store.save_link(&ghost).await),
        "updating a link that does not exist (version > 0) is a Conflict"
    );

    // One link per Salesforce Id.
    let other = full_link(org, "org_2", "001A");
    assert!(
        is_conflict(&store.save_link(&other).await),
        "a second link claiming a Salesforce Id another link has must get Conflict"
    );
    assert!(
        store
            .find_links(org, &[], &s(&["org_2"]))
            .await
            .expect("find loser")
            .is_empty(),
        "a link refused for its Salesforce Id must not be stored"
    );
    let person = store
        .save_link(&full_link(ObjectKind::Person, "per_1", "001A"))
        .await
        .expect("the same id string under another object is another claim");
    assert_eq!(person.version, 1);
    let org2 = store
        .save_link(&full_link(org, "org_2", "001B"))
        .await
        .expect("a free Salesforce Id can be linked");
    let mut steal = org2.clone();
    steal.crm_id = "001A".into();
    assert!(
        is_conflict(&store.save_link(&steal).await),
        "moving a link onto a Salesforce Id another link has must get Conflict"
    );
    assert_eq!(
        ids(&store
            .find_links(org, &s(&["001B"]), &[])
            .await
            .expect("find 001B")),
        s(&["org_2"]),
        "a refused move leaves the link on its old Salesforce Id"
    );

    // A merge moves a link to the surviving record: the old id is freed, the new claimed.
    let mut merged = a.clone();
    merged.crm_id = "001M".into();
    let merged = store
        .save_link(&merged)
        .await
        .expect("move a link's crm_id");
    assert_eq!(merged.version, 3);
    assert!(
        store
            .find_links(org, &s(&["001A"]), &[])
            .await
            .expect("find old id")
            .is_empty(),
        "after a move the old Salesforce Id finds nothing"
    );
    assert_eq!(
        ids(&store
            .find_links(org, &s(&["001M"]), &[])
            .await
            .expect("find new id")),
        s(&["org_1"]),
        "after a move the new Salesforce Id finds the link"
    );
    let reuse = store
        .save_link(&full_link(org, "org_3", "001A"))
        .await
        .expect("the Salesforce Id freed by a move can be linked again");
    let intruder = full_link(org, "org_4", "001M");
    assert!(
        is_conflict(&store.save_link(&intruder).await),
        "the Salesforce Id taken by a move is claimed"
    );

    // Many ids at once (batching), with duplicates.
    let mut many_prm: Vec<String> = (0..230).map(|i| format!("org_missing_{i}")).collect();
    many_prm.extend(s(&["org_1", "org_2", "org_3", "org_1"]));
    let mut many_crm: Vec<String> = (0..120).map(|i| format!("001MISSING{i}")).collect();
    many_crm.extend(s(&["001M", "001B", "001B"]));
    assert_eq!(
        ids(&store
            .find_links(org, &many_crm, &many_prm)
            .await
            .expect("find many")),
        s(&["org_1", "org_2", "org_3"]),
        "find_links with hundreds of ids (and duplicates) returns each match once"
    );

    // Retry listing.
    assert!(
        store
            .links_to_retry(org)
            .await
            .expect("retry list")
            .is_empty(),
        "no link is marked for retry yet"
    );
    let mut r = reuse.clone();
    r.retry = true;
    let r = store.save_link(&r).await.expect("mark retry");
    let listed = store.links_to_retry(org).await.expect("retry list");
    assert_eq!(
        listed,
        vec![r.clone()],
        "a link saved with retry = true is listed"
    );
    assert!(
        store
            .links_to_retry(ObjectKind::Person)
            .await
            .expect("retry list")
            .is_empty(),
        "the retry list is per object"
    );
    let mut r2 = r.clone();
    r2.retry = false;
    store.save_link(&r2).await.expect("clear retry");
    assert!(
        store
            .links_to_retry(org)
            .await
            .expect("retry list")
            .is_empty(),
        "a link saved with retry = false is no longer listed"
    );

    // Counts per state.
    let mut d = org2.clone();
    d.state = LinkState::Disconnected;
    store.save_link(&d).await.expect("disconnect");
    let counts = store.count_links(org).await.expect("count");
    let want: BTreeMap<String, u64> = BTreeMap::from([
        ("linked".to_string(), 1),
        ("unselected".to_string(), 1),
        ("disconnected".to_string(), 1),
    ]);
    assert_eq!(counts, want, "count_links counts links per state");
    assert!(
        store
            .count_links(ObjectKind::Deal)
            .await
            .expect("count")
            .values()
            .all(|n| *n == 0),
        "no deal links: counts are empty (or zero)"
    );

    // Delete (unlink) frees the Salesforce Id.
    assert!(
        store.delete_link(org, "org_3").await.expect("delete"),
        "delete_link returns true when there was a link"
    );
    assert!(
        !store.delete_link(org, "org_3").await.expect("delete again"),
        "delete_link returns false when there was none"
    );
    assert!(
        store
            .find_links(org, &s(&["001A"]), &s(&["org_3"]))
            .await
            .expect("find deleted")
            .is_empty(),
        "a deleted link is not found"
    );
    let relinked = store
        .save_link(&full_link(org, "org_5", "001A"))
        .await
        .expect("a deleted link's Salesforce Id can be linked again");
    assert_eq!(relinked.version, 1);
    let again = store
        .save_link(&full_link(org, "org_3", "001C"))
        .await
        .expect("a deleted link's pair can be saved again with version 0");
    assert_eq!(again.version, 1);
    assert!(
        !store
            .delete_link(ObjectKind::Deal, "org_1")
            .await
            .expect("delete other object"),
        "delete_link is per object"
    );
}

/// Children pending: mark, list in PRM id order, re-mark updates, clear.
pub async fn children_pending(store: &dyn Store) {
    let org = ObjectKind::Organization;
    assert!(
        store.children_pending(org).await.expect("list").is_empty(),
        "nothing is pending at first"
    );
    store
        .mark_children_pending(org, "org_b", "001B")
        .await
        .expect("mark");
    store
        .mark_children_pending(org, "org_a", "001A")
        .await
        .expect("mark");
    store
        .mark_children_pending(org, "org_c", "001C")
        .await
        .expect("mark");
    store
        .mark_children_pending(org, "org_a", "001Z")
        .await
        .expect("mark again");
    store
        .mark_children_pending(ObjectKind::Person, "per_a", "003A")
        .await
        .expect("mark person");
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        store.children_pending(org).await.expect("list"),
        pairs(&[("org_a", "001Z"), ("org_b", "001B"), ("org_c", "001C")]),
        "children_pending lists (prm id, crm id) by prm id, once each, with the latest crm id"
    );
    store
        .clear_children_pending(org, &s(&["org_a", "org_c", "org_unknown", "org_a"]))
        .await
        .expect("clear");
    assert_eq!(
        store.children_pending(org).await.expect("list"),
        pairs(&[("org_b", "001B")]),
        "clear_children_pending removes the named pairs only"
    );
    store
        .clear_children_pending(org, &[])
        .await
        .expect("clear none");
    assert_eq!(
        store
            .children_pending(ObjectKind::Person)
            .await
            .expect("list person"),
        pairs(&[("per_a", "003A")]),
        "children pending are per object"
    );
}

/// Rejections: remembered per object, side and id; upsert; map of the ids that have one.
pub async fn rejections(store: &dyn Store) {
    let org = ObjectKind::Organization;
    assert!(
        store
            .rejected_versions(org, "crm", &s(&["001A"]))
            .await
            .expect("rejected")
            .is_empty(),
        "nothing is rejected at first"
    );
    store
        .remember_rejection(org, "crm", "001A", "2024-05-01T10:00:00.000Z")
        .await
        .expect("remember");
    store
        .remember_rejection(org, "crm", "001B", "v1")
        .await
        .expect("remember");
    store
        .remember_rejection(org, "prm", "001A", "prm-v")
        .await
        .expect("remember other side");
    store
        .remember_rejection(ObjectKind::Person, "crm", "001B", "person-v")
        .await
        .expect("remember other object");
    store
        .remember_rejection(org, "crm", "001B", "v2")
        .await
        .expect("remember again");
    let mut asked: Vec<String> = (0..150).map(|i| format!("001Q{i}")).collect();
    asked.extend(s(&["001A", "001B", "001C", "001A"]));
    let got = store
        .rejected_versions(org, "crm", &asked)
        .await
        .expect("rejected");
    let want = BTreeMap::from([
        ("001A".to_string(), "2024-05-01T10:00:00.000Z".to_string()),
        ("001B".to_string(), "v2".to_string()),
    ]);
    assert_eq!(
        got, want,
        "rejected_versions maps each id with a rejection to its latest version, per object and side"
    );
    assert_eq!(
        store
            .rejected_versions(org, "link", &s(&["001A"]))
            .await
            .expect("rejected"),
        BTreeMap::new(),
        "rejections are per side"
    );
    assert!(
        store
            .rejected_versions(org, "crm", &[])
            .await
            .expect("rejected none")
            .is_empty(),
        "no ids: empty map"
    );
}

/// The ids of live links: every linked one, none in another state.
pub async fn linked_ids(store: &dyn Store) {
    let person = ObjectKind::Person;
    store
        .save_link(&full_link(person, "ids_a", "003IDA"))
        .await
        .expect("save a");
    store
        .save_link(&full_link(person, "ids_b", "003IDB"))
        .await
        .expect("save b");
    let mut gone = full_link(person, "ids_c", "003IDC");
    gone.state = LinkState::Disconnected;
    store.save_link(&gone).await.expect("save c");
    let later = Utc::now() + Duration::seconds(5);
    let ids = store.linked_ids(person, later).await.expect("linked ids");
    for want in [("ids_a", "003IDA"), ("ids_b", "003IDB")] {
        assert!(
            ids.iter().any(|(p, c)| (p.as_str(), c.as_str()) == want),
            "{want:?} in {ids:?}"
        );
    }
    assert!(
        !ids.iter().any(|(p, _)| p == "ids_c"),
        "a disconnected link is not live: {ids:?}"
    );
    let before = Utc::now() - Duration::hours(1);
    assert!(
        !store
            .linked_ids(person, before)
            .await
            .expect("untouched ids")
            .iter()
            .any(|(p, _)| p.starts_with("ids_")),
        "links saved since the time asked for are left out"
    );
    assert!(
        !store
            .linked_ids(ObjectKind::Deal, later)
            .await
            .expect("deal ids")
            .iter()
            .any(|(p, _)| p.starts_with("ids_")),
        "only the object asked for"
    );
}
