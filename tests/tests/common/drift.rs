//! Drift the incremental runs miss, for the reconcile tests: linked records, changes that
//! do not move the cursors, and a reconcile of both integrations.

use chrono::{Duration, Utc};
use prmsync_engine::{run_integration, RunMode, RunOptions, RunReport};
use prmsync_mapping::Integration;
use prmsync_simulators::prm::Collection;
use serde_json::json;

use super::*;

pub const BOTH: [Integration; 2] = [Integration::Organizations, Integration::People];

/// Two linked Accounts with a Contact each, past the overlap window of the cursors.
pub struct Linked {
    /// The Account and Contact whose values change silently in Salesforce.
    pub acc_a: String,
    pub con_a: String,
    /// The PRM organization and person that change late in the PRM.
    pub org_b: String,
    pub person_b: String,
    pub acc_b: String,
    pub con_b: String,
    pub org_a: String,
    pub person_a: String,
}

pub async fn linked(h: &Harness) -> Linked {
    let acc_a = h.account(
        "Contoso",
        Some("Active Partner"),
        json!({"Phone": "+1 555 0100"}),
    );
    let acc_b = h.account(
        "Fabrikam",
        Some("Active Partner"),
        json!({"Phone": "+1 555 0200"}),
    );
    let acc_z = h.account(
        "Northwind",
        Some("Active Partner"),
        json!({"Phone": "+1 555 0300"}),
    );
    let con_a = h.contact(&acc_a, "Ada", "Lovelace", "ada@contoso.example");
    let con_b = h.contact(&acc_b, "Bob", "Builder", "bob@fabrikam.example");
    let con_z = h.contact(&acc_z, "Zed", "Zero", "zed@northwind.example");
    assert_succeeded(&h.sync().await);
    // The echoes of the first run's writes, then an hour later an ordinary change read
    // by an incremental run: the cursors are now well past the linked records.
    assert_succeeded(&h.sync().await);
    h.sf.advance_clock(Duration::hours(1));
    h.sf.update("Account", &acc_z, obj(json!({"Phone": "+1 555 0301"})));
    h.sf.update("Contact", &con_z, obj(json!({"Title": "Buyer"})));
    assert_succeeded(&h.sync().await);
    let org = |acc: &str| h.sf_str("Account", acc, "PRM_Id__c").unwrap();
    let person = |con: &str| h.sf_str("Contact", con, "PRM_Id__c").unwrap();
    Linked {
        org_a: org(&acc_a),
        org_b: org(&acc_b),
        person_a: person(&con_a),
        person_b: person(&con_b),
        acc_a,
        acc_b,
        con_a,
        con_b,
    }
}

/// The drift the cursors miss: a Salesforce change of each object that does not move
/// SystemModstamp, and a PRM change of each object committed with an `updated_at` an hour
/// old.
pub fn drift(h: &Harness, l: &Linked) {
    h.sf.update_silently("Account", &l.acc_a, obj(json!({"Phone": "+1 555 0199"})));
    h.sf.update_silently("Contact", &l.con_a, obj(json!({"Title": "Countess"})));
    let late = Utc::now() - Duration::hours(1);
    h.prm.update_late(
        Collection::Organizations,
        &l.org_b,
        json!({"phone": "+1 555 0299"}),
        late,
    );
    h.prm.update_late(
        Collection::People,
        &l.person_b,
        json!({"title": "Foreman"}),
        late,
    );
}

pub async fn reconcile(h: &Harness, dry_run: bool) -> Vec<RunReport> {
    let mut out = Vec::new();
    for i in BOTH {
        let options = RunOptions {
            mode: RunMode::Reconcile,
            dry_run,
            run_id: None,
            allow_mass_change: false,
        };
        out.push(run_integration(&h.ctx(), i, options).await);
    }
    out
}
