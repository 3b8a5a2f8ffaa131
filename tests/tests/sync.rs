//! End-to-end: the engine against both simulators over loopback HTTP.

mod common;

use common::*;
use prmsync_engine::store::Links;
use prmsync_engine::LinkState;
use prmsync_mapping::{LogCode, ObjectKind};
use prmsync_simulators::prm::Collection;
use serde_json::json;

#[tokio::test]
async fn flagged_account_becomes_organization_with_contacts_and_unflagged_is_left_alone() {
    // GIVEN a flagged distributor Account with two Contacts and an unflagged customer
    let h = Harness::new().await;
    let acc = h.account(
        "Northwind Traders",
        Some("Active Distributor"),
        json!({"Website": "https://northwind.example", "Phone": "+1 555 0100", "BillingCity": "Austin"}),
    );
    let c1 = h.contact(&acc, "Ana", "Abbott", "ana@northwind.example");
    let c2 = h.contact(&acc, "Ben", "Brandt", "ben@northwind.example");
    let customer = h.account("Initech", None, json!({}));
    h.contact(&customer, "Cy", "Customer", "cy@initech.example");

    // WHEN the sync runs
    let reports = h.sync().await;

    // THEN one distributor organization with its mapped fields exists in the PRM
    assert_succeeded(&reports);
    let orgs = h.prm.list(Collection::Organizations);
    assert_eq!(
        orgs.len(),
        1,
        "only the flagged Account is imported: {orgs:?}"
    );
    let org = &orgs[0];
    assert_eq!(org["kind"], "distributor");
    assert_eq!(org["status"], "active");
    assert_eq!(org["name"], "Northwind Traders");
    assert_eq!(org["website"], "https://northwind.example");
    assert_eq!(org["city"], "Austin");
    assert_eq!(org["crm_id"], json!(acc));
    // its Contacts are PRM contacts, never users
    let people = h.prm.list(Collection::People);
    assert_eq!(people.len(), 2);
    for p in &people {
        assert_eq!(p["kind"], "contact");
        assert_eq!(p["organization_id"], org["id"]);
    }
    // and the PRM ids and Record Status are written back
    assert_eq!(
        h.sf_str("Account", &acc, "PRM_Id__c").as_deref(),
        org["id"].as_str()
    );
    assert_eq!(
        h.sf_str("Account", &acc, "PRM_Record_Status__c").as_deref(),
        Some("Active Distributor")
    );
    for c in [&c1, &c2] {
        let pid = h
            .sf_str("Contact", c, "PRM_Id__c")
            .expect("PRM id written back");
        assert_eq!(h.prm_get(Collection::People, &pid)["crm_id"], json!(c));
        assert_eq!(
            h.sf_str("Contact", c, "PRM_Record_Status__c").as_deref(),
            Some("Contact")
        );
    }
    assert!(h.sf_str("Account", &customer, "PRM_Id__c").is_none());
}

#[tokio::test]
async fn prm_organizations_users_and_contacts_become_accounts_and_contacts() {
    // GIVEN a partner organization with a user and a contact, and a distributor
    let h = Harness::new().await;
    let partner = h.org("partner", "prospective", "Fabrikam");
    let distributor = h.org("distributor", "inactive", "Contoso Distribution");
    let user = h.prm.insert(
        Collection::People,
        json!({"organization_id": partner, "kind": "user", "status": "active", "first_name": "Uma", "last_name": "Ueda", "email": "uma@fabrikam.example"}),
    );
    let contact = h.prm.insert(
        Collection::People,
        json!({"organization_id": partner, "kind": "contact", "first_name": "Cas", "last_name": "Castillo"}),
    );

    let reports = h.sync().await;

    assert_succeeded(&reports);
    let accounts = h.sf_records("Account");
    assert_eq!(accounts.len(), 2);
    let by_prm = |id: &str| {
        accounts
            .iter()
            .find(|a| a["PRM_Id__c"] == json!(id))
            .cloned()
            .unwrap()
    };
    let p = by_prm(&partner);
    assert_eq!(p["Name"], "Fabrikam");
    assert_eq!(p["PRM_Sync__c"], true);
    assert_eq!(p["PRM_Organization_Status__c"], "Prospective Partner");
    assert_eq!(p["PRM_Record_Status__c"], "Prospective Partner");
    let d = by_prm(&distributor);
    assert_eq!(d["PRM_Organization_Status__c"], "Inactive Distributor");
    // PRM records know their Salesforce Ids
    assert_eq!(
        h.prm_get(Collection::Organizations, &partner)["crm_id"],
        p["Id"]
    );
    let contacts = h.sf_records("Contact");
    assert_eq!(contacts.len(), 2);
    let u = contacts
        .iter()
        .find(|c| c["PRM_Id__c"] == json!(user))
        .unwrap();
    assert_eq!(u["PRM_Record_Status__c"], "User");
    assert_eq!(u["AccountId"], p["Id"]);
    assert_eq!(u["Email"], "uma@fabrikam.example");
    let c = contacts
        .iter()
        .find(|c| c["PRM_Id__c"] == json!(contact))
        .unwrap();
    assert_eq!(c["PRM_Record_Status__c"], "Contact");
    // PRM users stay users
    assert_eq!(h.prm_get(Collection::People, &user)["kind"], "user");
    assert_eq!(h.prm.list(Collection::People).len(), 2);
}

#[tokio::test]
async fn changes_flow_both_ways_and_conflicts_follow_the_rule() {
    let h = Harness::new().await;
    let acc = h.account(
        "Tailspin",
        Some("Active Partner"),
        json!({"Phone": "1", "BillingCity": "Lyon"}),
    );
    assert_succeeded(&h.sync().await);
    let org = h.sf_str("Account", &acc, "PRM_Id__c").unwrap();

    // different fields changed on each side: both survive
    h.sf.update("Account", &acc, obj(json!({"Phone": "+33 1 00"})));
    h.prm
        .update(Collection::Organizations, &org, json!({"city": "Paris"}));
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["phone"],
        "+33 1 00"
    );
    assert_eq!(
        h.sf_str("Account", &acc, "BillingCity").as_deref(),
        Some("Paris")
    );
    assert_eq!(total(&reports, |c| c.updated.crm), 1);
    assert_eq!(total(&reports, |c| c.updated.prm), 1);
    let updated = h.log(LogCode::RecordUpdated).await;
    assert_eq!(updated.len(), 2);
    assert!(
        updated.iter().any(|e| e.message.contains("BillingCity")),
        "{updated:?}"
    );

    // the same field changed on both sides: the newest wins (the PRM, changed last)
    h.sf.update("Account", &acc, obj(json!({"Name": "Tailspin SF"})));
    std::thread::sleep(std::time::Duration::from_millis(5));
    h.prm.update(
        Collection::Organizations,
        &org,
        json!({"name": "Tailspin PRM"}),
    );
    let reports = h.sync().await;
    assert_eq!(total(&reports, |c| c.conflicts), 1);
    assert_eq!(
        h.sf_str("Account", &acc, "Name").as_deref(),
        Some("Tailspin PRM")
    );
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["name"],
        "Tailspin PRM"
    );
    let conflicts = h.log(LogCode::Conflict).await;
    assert_eq!(conflicts.len(), 1);
    // the field and the winner named, both values masked (docs/integration-log.md)
    assert_eq!(conflicts[0].details["field"], "name");
    assert_eq!(conflicts[0].details["prm"], "T***");
    assert_eq!(conflicts[0].details["crm"], "T***");
    assert_eq!(conflicts[0].details["winner"], "prm");
    assert!(
        conflicts[0].message.contains("`Name` = \"T***\"")
            && !conflicts[0].message.contains("Tailspin"),
        "{}",
        conflicts[0].message
    );
}

#[tokio::test]
async fn conflict_rule_crm_keeps_the_salesforce_value() {
    let mut mapping = prmsync_mapping::MappingConfig::default();
    mapping.sync.default_conflict = prmsync_mapping::WinnerRule::Crm;
    let h = Harness::with_mapping(mapping).await;
    let acc = h.account("Litware", Some("Active Partner"), json!({}));
    assert_succeeded(&h.sync().await);
    let org = h.sf_str("Account", &acc, "PRM_Id__c").unwrap();
    h.prm.update(
        Collection::Organizations,
        &org,
        json!({"name": "Litware PRM"}),
    );
    std::thread::sleep(std::time::Duration::from_millis(5));
    h.sf.update("Account", &acc, obj(json!({"Name": "Litware SF"})));
    h.sync().await;
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["name"],
        "Litware SF"
    );
    assert_eq!(
        h.sf_str("Account", &acc, "Name").as_deref(),
        Some("Litware SF")
    );
}

#[tokio::test]
async fn an_unchanged_second_run_writes_nothing_and_reads_once_per_object() {
    let h = Harness::new().await;
    for i in 0..5 {
        let acc = h.account(
            &format!("Acct {i}"),
            Some("Active Partner"),
            json!({"Website": format!("https://a{i}.example")}),
        );
        h.contact(&acc, "F", &format!("L{i}"), &format!("p{i}@a{i}.example"));
    }
    let org = h.org("partner", "active", "Prm Only");
    h.prm.insert(
        Collection::People,
        json!({"organization_id": org, "kind": "contact", "first_name": "P", "last_name": "Q"}),
    );
    assert_succeeded(&h.sync().await);

    h.sf.reset_api_calls();
    h.prm.reset_api_calls();
    let reports = h.sync().await;

    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.writes()), 0);
    let sf = h.sf.api_calls();
    let reads = sf.kind("query") + sf.kind("query_all") + sf.kind("query_more");
    assert!(reads <= 2, "at most one query per object: {:?}", sf.by_kind);
    assert_eq!(
        sf.total, reads,
        "no Salesforce call but the queries: {:?}",
        sf.by_kind
    );
    let prm = h.prm.api_calls();
    assert_eq!(prm.writes(), 0, "{:?}", prm.by_kind);
    assert!(
        prm.total <= 2,
        "at most one list per collection: {:?}",
        prm.by_kind
    );
}

#[tokio::test]
async fn deleted_in_the_prm_marks_record_status_and_deletes_nothing_in_salesforce() {
    let h = Harness::new().await;
    let acc = h.account("Proseware", Some("Active Partner"), json!({}));
    let con = h.contact(&acc, "Del", "Eted", "del@proseware.example");
    let keep = h.contact(&acc, "Kee", "Pt", "keep@proseware.example");
    assert_succeeded(&h.sync().await);
    let org = h.sf_str("Account", &acc, "PRM_Id__c").unwrap();
    let person = h.sf_str("Contact", &con, "PRM_Id__c").unwrap();

    h.prm.delete(Collection::People, &person);
    h.prm.delete(Collection::Organizations, &org);
    let reports = h.sync().await;

    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.deleted_marked), 2);
    assert_eq!(
        h.sf_str("Account", &acc, "PRM_Record_Status__c").as_deref(),
        Some("Active Partner (Deleted)")
    );
    assert_eq!(
        h.sf_str("Contact", &con, "PRM_Record_Status__c").as_deref(),
        Some("Contact (Deleted)")
    );
    assert_eq!(
        h.sf_records("Account").len(),
        1,
        "nothing deleted in Salesforce"
    );
    assert_eq!(h.sf_records("Contact").len(), 2);
    assert_eq!(
        h.sf_str("Contact", &keep, "PRM_Record_Status__c")
            .as_deref(),
        Some("Contact")
    );
    let link = h
        .store
        .find_links(ObjectKind::Organization, std::slice::from_ref(&acc), &[])
        .await
        .unwrap();
    assert_eq!(link[0].state, LinkState::DeletedInPrm);
    assert_eq!(h.log(LogCode::DeletedInPrm).await.len(), 2);
    // and it stays that way
    let again = h.sync().await;
    assert_eq!(total(&again, |c| c.writes() + c.deleted_marked), 0);
}

#[tokio::test]
async fn deleted_users_and_distributors_get_their_own_deleted_status() {
    let h = Harness::new().await;
    let org = h.org("distributor", "inactive", "Closed Distribution");
    let user = h.prm.insert(
        Collection::People,
        json!({"organization_id": org, "kind": "user", "status": "active", "first_name": "Us", "last_name": "Er", "email": "user@closed.example"}),
    );
    assert_succeeded(&h.sync().await);
    h.prm.delete(Collection::People, &user);
    h.prm.delete(Collection::Organizations, &org);
    assert_succeeded(&h.sync().await);
    let acc = &h.sf_records("Account")[0];
    assert_eq!(
        acc["PRM_Record_Status__c"],
        "Inactive Distributor (Deleted)"
    );
    assert_eq!(acc["PRM_Organization_Status__c"], "Inactive Distributor");
    assert_eq!(
        h.sf_records("Contact")[0]["PRM_Record_Status__c"],
        "User (Deleted)"
    );
}

#[tokio::test]
async fn deleted_in_salesforce_keeps_the_prm_record_and_disconnects_the_link() {
    let h = Harness::new().await;
    let acc = h.account("Lucerne", Some("Active Partner"), json!({}));
    let con = h.contact(&acc, "Gone", "Soon", "gone@lucerne.example");
    assert_succeeded(&h.sync().await);
    let person = h.sf_str("Contact", &con, "PRM_Id__c").unwrap();

    h.sf.delete("Contact", &con);
    let reports = h.sync().await;

    assert_succeeded(&reports);
    assert_eq!(total(&reports, |c| c.disconnected), 1);
    let p = h.prm_get(Collection::People, &person);
    assert!(p["deleted_at"].is_null(), "the PRM person is kept");
    let links = h
        .store
        .find_links(ObjectKind::Person, &[], std::slice::from_ref(&person))
        .await
        .unwrap();
    assert_eq!(links[0].state, LinkState::Disconnected);
    let logged = h.log(LogCode::DeletedInCrm).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].prm_id.as_deref(), Some(person.as_str()));
    // a later PRM change does not recreate the Contact
    h.prm
        .update(Collection::People, &person, json!({"title": "Still here"}));
    h.sync().await;
    assert_eq!(h.sf_records("Contact").len(), 0);
}

#[tokio::test]
async fn a_merge_in_salesforce_moves_the_link_to_the_master() {
    let h = Harness::new().await;
    // GIVEN a linked Account and an unsynced duplicate of it
    let master = h.account("Woodgrove Bank", None, json!({}));
    let loser = h.account(
        "Woodgrove",
        Some("Active Partner"),
        json!({"Website": "https://woodgrove.example"}),
    );
    let con = h.contact(&loser, "Mo", "Ved", "mo@woodgrove.example");
    assert_succeeded(&h.sync().await);
    let loser_org = h.sf_str("Account", &loser, "PRM_Id__c").unwrap();
    assert!(h.sf_str("Account", &master, "PRM_Id__c").is_none());

    // WHEN they are merged, keeping the duplicate as master with the synced one's flags
    h.sf.update(
        "Account",
        &master,
        obj(json!({"PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})),
    );
    h.sf.merge("Account", &master, &loser);
    let reports = h.sync().await;
    assert_succeeded(&reports);
    h.sync().await;

    let links = h
        .store
        .find_links(
            ObjectKind::Organization,
            &[],
            std::slice::from_ref(&loser_org),
        )
        .await
        .unwrap();
    assert_eq!(
        links[0].crm_id, master,
        "the link follows the surviving record"
    );
    assert_eq!(links[0].state, LinkState::Linked);
    assert_eq!(
        h.prm_get(Collection::Organizations, &loser_org)["crm_id"],
        json!(master)
    );
    assert_eq!(
        h.sf_str("Account", &master, "PRM_Id__c"),
        Some(loser_org.clone())
    );
    assert_eq!(h.log(LogCode::MergedInCrm).await.len(), 1);
    assert_eq!(
        h.prm.list(Collection::Organizations).len(),
        1,
        "no organization created for the master"
    );
    // the Contact moved to the master and still syncs
    assert_eq!(h.sf_str("Contact", &con, "AccountId"), Some(master.clone()));
}

#[tokio::test]
async fn unflagging_a_linked_account_stops_its_sync() {
    let h = Harness::new().await;
    let acc = h.account("Humongous", Some("Active Partner"), json!({}));
    assert_succeeded(&h.sync().await);
    let org = h.sf_str("Account", &acc, "PRM_Id__c").unwrap();

    h.sf.update(
        "Account",
        &acc,
        obj(json!({"PRM_Sync__c": false, "Name": "Humongous Renamed"})),
    );
    let reports = h.sync().await;
    assert_succeeded(&reports);
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["name"],
        "Humongous",
        "no longer synced"
    );
    let links = h
        .store
        .find_links(ObjectKind::Organization, std::slice::from_ref(&acc), &[])
        .await
        .unwrap();
    assert_eq!(links[0].state, LinkState::Unselected, "link kept");
    assert_eq!(h.log(LogCode::SyncStoppedUnflagged).await.len(), 1);
    h.prm
        .update(Collection::Organizations, &org, json!({"phone": "999"}));
    h.sync().await;
    assert!(h.sf_str("Account", &acc, "Phone").is_none());

    // flagged again: syncs again
    h.sf.update("Account", &acc, obj(json!({"PRM_Sync__c": true})));
    h.sync().await;
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["name"],
        "Humongous Renamed"
    );
    assert_eq!(h.log(LogCode::SyncResumed).await.len(), 1);
}

#[tokio::test]
async fn a_contact_promoted_to_user_keeps_its_salesforce_contact() {
    let h = Harness::new().await;
    let org = h.org("partner", "active", "Wingtip");
    let person = h.prm.insert(
        Collection::People,
        json!({"organization_id": org, "kind": "contact", "first_name": "Pro", "last_name": "Moted", "email": "pro@wingtip.example"}),
    );
    assert_succeeded(&h.sync().await);
    let contacts = h.sf_records("Contact");
    assert_eq!(contacts.len(), 1);
    let con = contacts[0]["Id"].as_str().unwrap().to_string();
    assert_eq!(contacts[0]["PRM_Record_Status__c"], "Contact");

    h.prm.update(
        Collection::People,
        &person,
        json!({"kind": "user", "status": "active"}),
    );
    assert_succeeded(&h.sync().await);

    let contacts = h.sf_records("Contact");
    assert_eq!(contacts.len(), 1, "same Contact");
    assert_eq!(contacts[0]["Id"], json!(con));
    assert_eq!(contacts[0]["PRM_Record_Status__c"], "User");
    let links = h
        .store
        .find_links(ObjectKind::Person, std::slice::from_ref(&con), &[])
        .await
        .unwrap();
    assert_eq!(links[0].prm_id, person, "same link");

    // a Salesforce Contact never becomes a PRM user by sync
    let acc = contacts[0]["AccountId"].as_str().unwrap().to_string();
    let new_con = h.contact(&acc, "New", "Person", "new@wingtip.example");
    h.sync().await;
    let pid = h.sf_str("Contact", &new_con, "PRM_Id__c").unwrap();
    assert_eq!(h.prm_get(Collection::People, &pid)["kind"], "contact");
}

#[tokio::test]
async fn first_import_links_matching_records_and_logs_ambiguous_ones() {
    let h = Harness::new().await;
    let acme = h.account(
        "ACME, Inc.",
        Some("Active Partner"),
        json!({"Website": "https://www.acme.example"}),
    );
    let con = h.contact(&acme, "Ann", "Lee", "Ann.Lee@acme.example");
    let org = h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Acme", "website": "acme.example"}),
    );
    let person = h.prm.insert(
        Collection::People,
        json!({"organization_id": org, "kind": "user", "status": "active", "first_name": "Ann", "last_name": "Lee", "email": "ann.lee@acme.example"}),
    );
    let dup = h.account(
        "Dup Co",
        Some("Active Partner"),
        json!({"Website": "https://dup.example"}),
    );
    h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Dup Co", "website": "dup.example"}),
    );
    h.prm.insert(Collection::Organizations, json!({"kind": "partner", "status": "active", "name": "DUP CO.", "website": "https://dup.example/"}));

    let reports = h.sync().await;
    assert_succeeded(&reports);

    assert_eq!(h.sf_str("Account", &acme, "PRM_Id__c"), Some(org.clone()));
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["crm_id"],
        json!(acme)
    );
    assert_eq!(h.sf_str("Contact", &con, "PRM_Id__c"), Some(person.clone()));
    assert_eq!(
        h.sf_records("Account").len(),
        2,
        "nothing duplicated in Salesforce"
    );
    assert_eq!(h.sf_records("Contact").len(), 1);
    assert_eq!(
        h.prm.list(Collection::Organizations).len(),
        3,
        "nothing duplicated in the PRM"
    );
    assert_eq!(h.prm.list(Collection::People).len(), 1);
    // the ambiguous Account created and linked nothing
    assert!(h.sf_str("Account", &dup, "PRM_Id__c").is_none());
    let ambiguous = h.log(LogCode::AmbiguousMatch).await;
    assert_eq!(
        ambiguous.len(),
        3,
        "the Account and both organizations: {ambiguous:?}"
    );
    assert!(ambiguous
        .iter()
        .any(|e| e.crm_id.as_deref() == Some(dup.as_str())));
    // the initial-link winner (Salesforce) set the PRM name
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["name"],
        "ACME, Inc."
    );
}

#[tokio::test]
async fn parent_and_child_accounts_keep_their_hierarchy_both_ways() {
    let h = Harness::new().await;
    let parent = h.account("Globex Holdings", Some("Active Distributor"), json!({}));
    let child = h.account(
        "Globex Europe",
        Some("Active Partner"),
        json!({"ParentId": parent}),
    );
    assert_succeeded(&h.sync().await);
    let parent_org = h.sf_str("Account", &parent, "PRM_Id__c").unwrap();
    let child_org = h.sf_str("Account", &child, "PRM_Id__c").unwrap();
    assert_ne!(
        parent_org, child_org,
        "each Account is its own organization"
    );
    assert_eq!(
        h.prm_get(Collection::Organizations, &child_org)["parent_id"],
        json!(parent_org)
    );

    // a new PRM organization under the child: its Account gets the child as parent
    let grandchild = h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Globex Iberia", "parent_id": child_org}),
    );
    // and the child moves to the top in the PRM
    h.prm.update(
        Collection::Organizations,
        &child_org,
        json!({"parent_id": null}),
    );
    assert_succeeded(&h.sync().await);
    let gc = h
        .sf_records("Account")
        .into_iter()
        .find(|a| a["PRM_Id__c"] == json!(grandchild))
        .unwrap();
    assert_eq!(gc["ParentId"], json!(child));
    assert!(h.sf_get("Account", &child)["ParentId"].is_null());
}

#[tokio::test]
async fn bad_data_is_logged_with_the_fix_and_the_run_goes_on() {
    let h = Harness::new().await;
    // a street Salesforce rejects, a kind/status with no picklist value, and a good one
    let long = h.prm.insert(Collection::Organizations, json!({"kind": "partner", "status": "active", "name": "Long Street", "street": "x".repeat(300)}));
    let unmapped = h.org("distributor", "prospective", "Prospect Dist");
    let good = h.org("partner", "active", "Good Org");
    // a Salesforce Contact the PRM rejects (an email it cannot take)
    let acc = h.account("Valid Account", Some("Active Partner"), json!({}));
    h.prm
        .faults()
        .fail_nth(Some("people.create"), 1, 422, "validation_failed");
    let con = h.contact(&acc, "Val", "Idation", "val@valid.example");

    let reports = h.sync().await;
    assert_succeeded(&reports);

    assert!(
        h.sf_records("Account")
            .iter()
            .any(|a| a["PRM_Id__c"] == json!(good)),
        "the good record synced"
    );
    let data = h.log(LogCode::CrmDataError).await;
    assert!(
        data.iter()
            .any(|e| e.prm_id.as_deref() == Some(long.as_str())
                && e.message.contains("STRING_TOO_LONG")
                && e.message.contains("BillingStreet")),
        "{data:?}"
    );
    let unm = h.log(LogCode::UnmappedValue).await;
    assert!(
        unm.iter()
            .any(|e| e.prm_id.as_deref() == Some(unmapped.as_str())
                && e.message.contains("distributor:prospective")),
        "{unm:?}"
    );
    assert!(!unm[0].fix.is_empty());
    let prm_rej = h.log(LogCode::PrmValidationFailed).await;
    assert!(
        prm_rej
            .iter()
            .any(|e| e.crm_id.as_deref() == Some(con.as_str())),
        "{prm_rej:?}"
    );
    assert!(total(&reports, |c| c.errors) >= 3);

    // a data error is not retried while the record is unchanged …
    let before = h.log(LogCode::CrmDataError).await.len();
    h.sync().await;
    assert_eq!(
        h.log(LogCode::CrmDataError).await.len(),
        before,
        "not retried until it changes"
    );
    // … and is once it is fixed
    h.prm.update(
        Collection::Organizations,
        &long,
        json!({"street": "1 Short Street"}),
    );
    h.sync().await;
    assert!(h
        .sf_records("Account")
        .iter()
        .any(|a| a["PRM_Id__c"] == json!(long)));
    // the Contact the PRM rejected once goes through when it changes
    h.sf.update("Contact", &con, obj(json!({"Title": "Buyer"})));
    h.sync().await;
    assert!(h.sf_str("Contact", &con, "PRM_Id__c").is_some());
}

#[tokio::test]
async fn an_unknown_salesforce_field_in_the_mapping_stops_the_run_with_a_clear_error() {
    let src = format!(
        "{}\n[[organizations.fields]]\nprm = \"custom.tier\"\ncrm = \"Partner_Tier__c\"\n",
        prmsync_mapping::config::DEFAULT_MAPPING
    );
    let mapping = prmsync_mapping::MappingConfig::parse(&src, "mapping.toml").unwrap();
    let h = Harness::with_mapping(mapping).await;
    h.account("Any", Some("Active Partner"), json!({}));
    let reports = h.sync().await;
    assert_eq!(reports[0].status, "failed");
    let msg = reports[0].message.clone().unwrap();
    assert!(
        msg.contains("Partner_Tier__c") && msg.contains("create it"),
        "{msg}"
    );
    assert!(
        h.prm.list(Collection::Organizations).is_empty(),
        "nothing half-written"
    );
    assert_eq!(h.log(LogCode::RunFailed).await.len(), 1);
    assert_eq!(
        reports[1].status, "succeeded",
        "people map no unknown field"
    );
}

#[tokio::test]
async fn an_account_flagged_later_brings_its_unchanged_contacts() {
    // GIVEN an unflagged Account whose Contacts have not changed for a long time
    let mut mapping = prmsync_mapping::MappingConfig::default();
    mapping.sync.overlap_seconds = 0;
    let h = Harness::with_mapping(mapping).await;
    let acc = h.account("Late Flag", None, json!({}));
    let con = h.contact(&acc, "Old", "Contact", "old@late.example");
    assert_succeeded(&h.sync().await);
    assert!(h.prm.list(Collection::Organizations).is_empty());
    h.sf.advance_clock(chrono::Duration::hours(2));
    // the people cursor moves past the Contact's last change
    h.contact(
        &h.account("Other", Some("Active Partner"), json!({})),
        "X",
        "Y",
        "x@other.example",
    );
    assert_succeeded(&h.sync().await);

    // WHEN the Account is flagged
    h.sf.update(
        "Account",
        &acc,
        obj(json!({"PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})),
    );
    assert_succeeded(&h.sync().await);

    // THEN its Contact comes along
    let pid = h
        .sf_str("Contact", &con, "PRM_Id__c")
        .expect("the old Contact was imported");
    assert_eq!(h.prm_get(Collection::People, &pid)["last_name"], "Contact");
    // and the mark is cleared: the next run reads nothing extra
    h.sf.reset_api_calls();
    let again = h.sync().await;
    assert_eq!(total(&again, |c| c.writes()), 0);
    assert!(
        h.sf.api_calls().total <= 2,
        "{:?}",
        h.sf.api_calls().by_kind
    );
}

#[tokio::test]
async fn per_field_direction_custom_fields_and_fixed_values() {
    use prmsync_simulators::salesforce::{FieldDef, FieldType};
    let src = format!(
        "{}\n[[organizations.fields]]\nprm = \"custom.tier\"\ncrm = \"Partner_Tier__c\"\ndirection = \"to_crm\"\n\n[[organizations.fields]]\ncrm = \"Type\"\nfixed = \"Partner\"\ndirection = \"on_create\"\n",
        prmsync_mapping::config::DEFAULT_MAPPING
    )
    .replace("prm = \"title\"\ncrm = \"Title\"", "prm = \"title\"\ncrm = \"Title\"\ndirection = \"to_prm\"");
    let mapping = prmsync_mapping::MappingConfig::parse(&src, "mapping.toml").unwrap();
    let h = Harness::with_mapping(mapping).await;
    h.sf.add_field(
        "Account",
        FieldDef::new("Partner_Tier__c", FieldType::String).length(40),
    );
    let org = h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Tiered", "custom": {"tier": "gold"}}),
    );
    let person = h.prm.insert(
        Collection::People,
        json!({"organization_id": org, "kind": "contact", "first_name": "Ti", "last_name": "Tle", "title": "Buyer"}),
    );
    assert_succeeded(&h.sync().await);
    let acc = h
        .sf_records("Account")
        .into_iter()
        .find(|a| a["PRM_Id__c"] == json!(org))
        .unwrap();
    let acc_id = acc["Id"].as_str().unwrap().to_string();
    assert_eq!(acc["Partner_Tier__c"], "gold", "custom field created");
    assert_eq!(acc["Type"], "Partner", "fixed value on create");
    let con = h.sf_records("Contact")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        h.sf_str("Contact", &con, "Title").as_deref(),
        Some("Buyer"),
        "all fields go to a new record"
    );

    // to_crm: a Salesforce edit is put back to the PRM's value; a PRM edit flows
    h.sf.update(
        "Account",
        &acc_id,
        obj(json!({"Partner_Tier__c": "silver", "Type": "Other"})),
    );
    assert_succeeded(&h.sync().await);
    assert_eq!(
        h.sf_str("Account", &acc_id, "Partner_Tier__c").as_deref(),
        Some("gold")
    );
    assert_eq!(
        h.sf_str("Account", &acc_id, "Type").as_deref(),
        Some("Other"),
        "on_create is written once"
    );
    h.prm.update(
        Collection::Organizations,
        &org,
        json!({"custom": {"tier": "platinum"}}),
    );
    assert_succeeded(&h.sync().await);
    assert_eq!(
        h.sf_str("Account", &acc_id, "Partner_Tier__c").as_deref(),
        Some("platinum")
    );

    // to_prm: Salesforce owns the title; a PRM edit is put back, a Salesforce edit flows
    h.prm.update(
        Collection::People,
        &person,
        json!({"title": "Changed in PRM"}),
    );
    assert_succeeded(&h.sync().await);
    assert_eq!(h.prm_get(Collection::People, &person)["title"], "Buyer");
    h.sf.update("Contact", &con, obj(json!({"Title": "Director"})));
    assert_succeeded(&h.sync().await);
    assert_eq!(h.prm_get(Collection::People, &person)["title"], "Director");
}
