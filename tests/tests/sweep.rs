//! One-machine runs read Salesforce page by page and sync each page with its PRM partners
//! (engine `sweep`): what pairs across pages must pair as it would in one pass.

mod common;

use common::*;
use prmsync_mapping::{LogCode, MappingConfig};
use prmsync_simulators::prm::Collection;
use serde_json::{json, Value};

/// Query pages of 200, and only `held` changed PRM records kept in memory.
async fn paged(held: u32) -> Harness {
    let mut mapping = MappingConfig::default();
    mapping.sync.held_prm_records = held;
    Harness::with_query_page(mapping, 200).await
}

fn prm_org(h: &Harness, name: &str, website: &str, extra: Value) -> String {
    let mut body = json!({"kind": "partner", "status": "active", "name": name, "website": website});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    h.prm.insert(Collection::Organizations, body)
}

fn orgs_named(h: &Harness, name: &str) -> Vec<Value> {
    h.prm
        .list(Collection::Organizations)
        .into_iter()
        .filter(|o| o["name"] == name)
        .collect()
}

#[tokio::test]
async fn a_first_import_over_three_pages_matches_links_and_sets_parents_across_pages() {
    let h = paged(5).await;
    // Page 1: a child whose parent is read on page 3, and the first of two twins.
    let parent = h.account(
        "Parent Co",
        Some("Active Partner"),
        json!({"Website": "https://parent.example"}),
    );
    let child = h.account(
        "Child Co",
        Some("Active Partner"),
        json!({"Website": "https://child.example", "ParentId": parent}),
    );
    let twin_a = h.account(
        "Twin Co",
        Some("Active Partner"),
        json!({"Website": "https://twin.example"}),
    );
    let mut accounts = Vec::new();
    for i in 0..440 {
        accounts.push(h.account(
            &format!("Filler {i}"),
            Some("Active Partner"),
            json!({"Website": format!("https://f{i}.example")}),
        ));
    }
    // Page 3: the parent (changed last) and the second twin.
    h.sf.update("Account", &parent, obj(json!({"Phone": "+1 555 0100"})));
    let twin_b = h.account(
        "Twin Co",
        Some("Active Partner"),
        json!({"Website": "https://www.twin.example/about"}),
    );
    // PRM: organizations that match Accounts on pages 1, 2 and 3 by name and domain, one
    // naming its Account by crm_id, the twin, and 30 of its own.
    let matched: Vec<(String, String)> = [5usize, 250, 430]
        .iter()
        .map(|&i| {
            let id = prm_org(
                &h,
                &format!("Filler {i}"),
                &format!("f{i}.example"),
                json!({}),
            );
            (accounts[i].clone(), id)
        })
        .collect();
    let named = prm_org(
        &h,
        "Renamed in the PRM",
        "elsewhere.example",
        json!({"crm_id": accounts[300]}),
    );
    let twin_org = prm_org(&h, "Twin Co", "twin.example", json!({}));
    for i in 0..30 {
        prm_org(
            &h,
            &format!("PRM only {i}"),
            &format!("p{i}.example"),
            json!({}),
        );
    }
    h.sf.reset_api_calls();

    let reports = h.sync().await;
    assert_succeeded(&reports);

    // Salesforce was read in three pages, once.
    let calls = h.sf.api_calls();
    assert_eq!(
        calls.kind("query_all") + calls.kind("query_more"),
        3 + 1,
        "three Account pages and one Contact page: {:?}",
        calls.by_kind
    );
    // Matches across pages: linked, not created again.
    for (account, org) in &matched {
        assert_eq!(
            h.sf_str("Account", account, "PRM_Id__c").as_deref(),
            Some(org.as_str())
        );
    }
    assert_eq!(
        h.sf_str("Account", &accounts[300], "PRM_Id__c").as_deref(),
        Some(named.as_str())
    );
    // Linked, not duplicated; the Account's name won, as on any first link.
    let filler_300 = orgs_named(&h, "Filler 300");
    assert_eq!(filler_300.len(), 1);
    assert_eq!(filler_300[0]["id"], json!(named));
    // The child's parent was linked on a later page; the reference is set in this run and
    // nothing was logged about it.
    let child_org = h
        .sf_str("Account", &child, "PRM_Id__c")
        .expect("child linked");
    let parent_org = h
        .sf_str("Account", &parent, "PRM_Id__c")
        .expect("parent linked");
    assert_eq!(
        h.prm_get(Collection::Organizations, &child_org)["parent_id"],
        json!(parent_org)
    );
    assert!(h.log(LogCode::ParentNotLinked).await.is_empty());
    // Twins: the first took the PRM organization; the second is ambiguous and created nowhere.
    assert_eq!(
        h.sf_str("Account", &twin_a, "PRM_Id__c").as_deref(),
        Some(twin_org.as_str())
    );
    assert_eq!(h.sf_str("Account", &twin_b, "PRM_Id__c"), None);
    assert_eq!(orgs_named(&h, "Twin Co").len(), 1);
    let ambiguous = h.log(LogCode::AmbiguousMatch).await;
    assert_eq!(ambiguous.len(), 1, "{ambiguous:?}");
    assert_eq!(ambiguous[0].crm_id.as_deref(), Some(twin_b.as_str()));
    assert!(
        ambiguous[0].message.contains(&twin_org),
        "{}",
        ambiguous[0].message
    );
    assert!(
        ambiguous[0].message.contains(&twin_a),
        "{}",
        ambiguous[0].message
    );
    // Everything else: one PRM organization per Account, one Account per PRM organization.
    let orgs = h.prm.list(Collection::Organizations);
    // 444 Accounts (parent, child, two twins, 440 fillers), all but the second twin in the
    // PRM, plus the PRM's own 30.
    assert_eq!(orgs.len(), 443 + 30);
    assert_eq!(h.sf_records("Account").len(), 444 + 30);
    assert_eq!(
        total(&reports, |c| c.created.crm),
        30,
        "the PRM's own organizations became Accounts"
    );

    // A second run finds nothing new to do and no new ambiguity entry.
    let again = h.sync().await;
    assert_succeeded(&again);
    assert_eq!(total(&again, |c| c.created.crm + c.created.prm), 0);
    assert_eq!(h.log(LogCode::AmbiguousMatch).await.len(), 1);
}

#[tokio::test]
async fn people_pair_by_email_across_pages_with_prm_records_read_again_by_id() {
    // Nothing held: every PRM partner is read again by id when its page comes.
    let h = paged(0).await;
    let account = h.account(
        "People Co",
        Some("Active Partner"),
        json!({"Website": "https://people.example"}),
    );
    let org = prm_org(&h, "People Co", "people.example", json!({}));
    let mut contacts = Vec::new();
    for i in 0..450 {
        contacts.push(h.contact(
            &account,
            "P",
            &format!("Person {i}"),
            &format!("p{i}@people.example"),
        ));
    }
    // PRM people with the emails of Contacts on each page, and 20 of their own.
    let mut pairs = Vec::new();
    for i in [3usize, 210, 449] {
        let id = h.prm.insert(
            Collection::People,
            json!({"organization_id": org, "kind": "contact", "first_name": "P", "last_name": format!("Person {i}"), "email": format!("P{i}@People.example")}),
        );
        pairs.push((contacts[i].clone(), id));
    }
    for i in 0..20 {
        h.prm.insert(
            Collection::People,
            json!({"organization_id": org, "kind": "contact", "first_name": "Q", "last_name": format!("Own {i}"), "email": format!("q{i}@people.example")}),
        );
    }
    h.prm.reset_api_calls();
    let reports = h.sync().await;
    assert_succeeded(&reports);
    // People: one page of changes for the index (23 records), then the three matched
    // records read again by id with their pages (one call per page that has any) and the
    // 20 left over in one call.
    let prm_calls = h.prm.api_calls();
    assert_eq!(
        prm_calls.count("people.list"),
        1 + 3 + 1,
        "{:?}",
        prm_calls.by_operation
    );
    for (contact, person) in &pairs {
        assert_eq!(
            h.sf_str("Contact", contact, "PRM_Id__c").as_deref(),
            Some(person.as_str())
        );
    }
    assert_eq!(h.prm.list(Collection::People).len(), 450 + 20);
    assert_eq!(h.sf_records("Contact").len(), 450 + 20);
    let people = reports
        .iter()
        .find(|r| r.integration.to_string() == "people")
        .unwrap();
    assert_eq!(people.counts.created.prm, 447);
    assert_eq!(people.counts.created.crm, 20);
    assert!(h.log(LogCode::AmbiguousMatch).await.is_empty());
}

#[tokio::test]
async fn a_parent_that_does_not_sync_is_logged_once_and_set_when_it_does() {
    let h = paged(10).await;
    let parent = h.account("Unflagged Parent", None, json!({}));
    let child = h.account(
        "Flagged Child",
        Some("Active Partner"),
        json!({"ParentId": parent}),
    );
    for i in 0..250 {
        h.account(&format!("Filler {i}"), Some("Active Partner"), json!({}));
    }
    assert_succeeded(&h.sync().await);
    let entries = h.log(LogCode::ParentNotLinked).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].crm_id.as_deref(), Some(child.as_str()));
    assert!(
        entries[0].message.contains(&parent),
        "{}",
        entries[0].message
    );
    let child_org = h
        .sf_str("Account", &child, "PRM_Id__c")
        .expect("child linked");
    assert_eq!(
        h.prm_get(Collection::Organizations, &child_org)["parent_id"],
        Value::Null
    );

    // Still unresolved: retried, not logged again.
    assert_succeeded(&h.sync().await);
    assert_eq!(h.log(LogCode::ParentNotLinked).await.len(), 1);

    // The parent syncs from now on: the waiting child gets it without changing itself.
    h.sf.update(
        "Account",
        &parent,
        obj(json!({"PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})),
    );
    assert_succeeded(&h.sync().await);
    let parent_org = h
        .sf_str("Account", &parent, "PRM_Id__c")
        .expect("parent linked");
    assert_eq!(
        h.prm_get(Collection::Organizations, &child_org)["parent_id"],
        json!(parent_org)
    );
    assert_eq!(h.log(LogCode::ParentNotLinked).await.len(), 1);
}

#[tokio::test]
async fn each_page_writes_its_updates_in_one_collection_without_waiting_for_later_pages() {
    // 210 of 600 linked records change: more than the mass-change breaker lets through
    // by default, so it is off here.
    let mut mapping = MappingConfig::default();
    mapping.sync.mass_change_percent = 100;
    let h = Harness::with_query_page(mapping, 200).await;
    let mut accounts = Vec::new();
    for i in 0..600 {
        accounts.push(h.account(
            &format!("Collection {i}"),
            Some("Active Partner"),
            json!({"Website": format!("https://c{i}.example")}),
        ));
    }
    assert_succeeded(&h.sync().await);
    // 70 organizations change in the PRM on each of the three pages of Accounts.
    for (i, account) in accounts.iter().enumerate() {
        if i % 200 < 70 {
            let org = h.sf_str("Account", account, "PRM_Id__c").unwrap();
            h.prm
                .update(Collection::Organizations, &org, json!({"city": "Lyon"}));
        }
    }
    h.sf.reset_api_calls();
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.updated.crm), 210);
    let calls = h.sf.api_calls();
    // One Collection per page: an update held for a fuller Collection could overwrite
    // a Salesforce edit made meanwhile.
    assert_eq!(
        calls.kind("composite_update"),
        3,
        "70 updates per page, one Collection each: {:?}",
        calls.by_kind
    );
    for account in &accounts[..70] {
        assert_eq!(
            h.sf_str("Account", account, "BillingCity").as_deref(),
            Some("Lyon")
        );
    }
    assert_eq!(h.sf_str("Account", &accounts[599], "BillingCity"), None);
}
