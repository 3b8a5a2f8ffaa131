//! The per-record hot path of a sync pass: the engine's merge plan of one linked pair
//! ([`prmsync_engine::pass::plan::plan_pair`]): every mapped field read on both sides and
//! merged three ways against the link's snapshot, the reference translated through the
//! organization links, and the values the sync rules keep; on the built-in mapping.
//! Also the canonical form every value is compared in.
//!
//! Run with `cargo bench -p prmsync-engine --bench merge` (`-- --test` runs each once).

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prmsync_engine::objects::ObjectSpec;
use prmsync_engine::pass::plan::{plan_pair, PairPlan, PlanRules};
use prmsync_engine::pass::references::OrgLinks;
use prmsync_engine::Link;
use prmsync_mapping::value::canonical;
use prmsync_mapping::{CrmRecord, FieldType, Fields, MappingConfig, ObjectKind, PrmRecord};
use serde_json::{json, Value};

/// One linked pair as the engine holds it during a pass.
struct Pair {
    link: Link,
    crm: CrmRecord,
    prm: PrmRecord,
}

fn obj(v: Value) -> Fields {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object"),
    }
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
}

fn plan(rules: PlanRules<'_>, pair: &Pair) -> PairPlan {
    plan_pair(rules, &pair.link, Some(&pair.crm), Some(&pair.prm)).expect("a live pair")
}

/// The pair after its first merge was written to both systems and the link: what every
/// later run starts from.
fn settled(rules: PlanRules<'_>, mut pair: Pair) -> Pair {
    let p = plan(rules, &pair);
    pair.crm.fields.extend(p.crm_patch);
    for (k, v) in p.prm_patch {
        if k == "crm_id" {
            pair.prm.crm_id = v.as_str().map(str::to_string);
        } else {
            pair.prm.fields.insert(k, v);
        }
    }
    pair.link.snapshot = p.snapshot;
    pair.link.crm_modstamp = p.crm_modstamp;
    pair.link.prm_version = p.prm_version;
    pair
}

/// The organization links the references of both pairs point at.
fn org_links() -> OrgLinks {
    let mut links = OrgLinks::default();
    for (prm, crm) in [
        ("org_01HZX3K5N9Q2R7T8V0W4Y6A9Z8", "0015g00000AbCdeAAB"),
        ("org_01HZX3K5N9Q2R7T8V0W4Y6B1C3", "0015g00000XyZabAAB"),
    ] {
        links.add(&Link::new(ObjectKind::Organization, prm, crm));
    }
    links
}

/// A synced Account and PRM organization holding the same values, spelled as each system
/// spells them (the PRM's picklist pair vs. Salesforce's label, extra fields).
fn organization(rules: PlanRules<'_>) -> Pair {
    let crm = obj(json!({
        "Id": "0015g00000XyZabAAB",
        "Name": "Northwind Traders GmbH",
        "PRM_Organization_Status__c": "Active Partner",
        "Website": "https://www.northwind.example",
        "Phone": "+49 30 1234 5678",
        "BillingStreet": "Friedrichstraße 123\nHinterhaus, 3. OG",
        "BillingCity": "Berlin",
        "BillingState": "Berlin",
        "BillingPostalCode": "10117",
        "BillingCountry": "Germany",
        "ParentId": "0015g00000AbCdeAAB",
        "PRM_Sync__c": true,
        "SystemModstamp": "2026-11-22T09:14:07.000+0000",
        "IsDeleted": false,
    }));
    let prm = obj(json!({
        "name": "Northwind Traders GmbH",
        "kind": "partner",
        "status": "active",
        "website": "https://www.northwind.example",
        "phone": "+49 30 1234 5678",
        "street": "Friedrichstraße 123\nHinterhaus, 3. OG",
        "city": "Berlin",
        "state": "Berlin",
        "postal_code": "10117",
        "country": "Germany",
        "parent_id": "org_01HZX3K5N9Q2R7T8V0W4Y6A9Z8",
        "group_id": "grp_gold_partners",
        "created_at": "2025-03-02T08:00:00.000Z",
        "custom": {"tier": "gold", "region": "DACH"},
    }));
    let pair = Pair {
        link: Link::new(
            ObjectKind::Organization,
            "org_01HZX3K5N9Q2R7T8V0W4Y6B1C3",
            "0015g00000XyZabAAB",
        ),
        crm: CrmRecord {
            id: "0015g00000XyZabAAB".into(),
            fields: crm,
            modstamp: Some(at(9, 14)),
            deleted: false,
            master_id: None,
        },
        prm: PrmRecord {
            id: "org_01HZX3K5N9Q2R7T8V0W4Y6B1C3".into(),
            version: 7,
            updated_at: at(9, 10),
            deleted: false,
            crm_id: None,
            fields: prm,
        },
    };
    settled(rules, pair)
}

/// A synced Contact and PRM person, the e-mail differing only in case and spacing
/// (canonically equal, so no write).
fn person(rules: PlanRules<'_>) -> Pair {
    let prm = obj(json!({
        "organization_id": "org_01HZX3K5N9Q2R7T8V0W4Y6B1C3",
        "kind": "contact",
        "first_name": "Zoë",
        "last_name": "O'Connor-Müller",
        "email": "zoe.oconnor@northwind.example",
        "title": "Channel Manager",
        "phone": "+49 30 1234 5600",
        "created_at": "2025-03-02T08:00:00.000Z",
    }));
    let crm = obj(json!({
        "Id": "0035g00000QrStuAAB",
        "AccountId": "0015g00000XyZabAAB",
        "FirstName": "Zoë",
        "LastName": "O'Connor-Müller",
        "Email": "  Zoe.OConnor@Northwind.example ",
        "Title": "Channel Manager",
        "Phone": "+49 30 1234 5600",
        "PRM_Sync__c": true,
        "SystemModstamp": "2026-11-22T09:20:00.000+0000",
        "IsDeleted": false,
    }));
    let pair = Pair {
        link: Link::new(
            ObjectKind::Person,
            "per_01HZX3K5N9Q2R7T8V0W4Y6D2E4",
            "0035g00000QrStuAAB",
        ),
        crm: CrmRecord {
            id: "0035g00000QrStuAAB".into(),
            fields: crm,
            modstamp: Some(at(9, 20)),
            deleted: false,
            master_id: None,
        },
        prm: PrmRecord {
            id: "per_01HZX3K5N9Q2R7T8V0W4Y6D2E4".into(),
            version: 3,
            updated_at: at(9, 18),
            deleted: false,
            crm_id: None,
            fields: prm,
        },
    };
    settled(rules, pair)
}

fn bench_merge(c: &mut Criterion) {
    let mapping = MappingConfig::default();
    let links = org_links();
    let org_spec = ObjectSpec::new(ObjectKind::Organization, &mapping);
    let person_spec = ObjectSpec::new(ObjectKind::Person, &mapping);
    let org_rules = PlanRules {
        mapping: &mapping,
        spec: &org_spec,
        org_links: &links,
    };
    let person_rules = PlanRules {
        mapping: &mapping,
        spec: &person_spec,
        org_links: &links,
    };

    let unchanged = organization(org_rules);
    let p = plan(org_rules, &unchanged);
    assert!(p.crm_patch.is_empty() && p.prm_patch.is_empty(), "{p:?}");
    assert!(!p.link_changed && p.findings.is_empty(), "{p:?}");

    // One field changed on each side: Salesforce moved the phone, the PRM the website.
    let mut both = organization(org_rules);
    both.crm
        .fields
        .insert("Phone".into(), json!("+49 30 9876 5432"));
    both.crm.modstamp = Some(at(10, 0));
    both.prm.fields.insert(
        "website".into(),
        json!("https://northwind.example/partners"),
    );
    both.prm.version += 1;
    let p = plan(org_rules, &both);
    assert_eq!(p.crm_patch.len(), 1, "{:?}", p.crm_patch);
    assert_eq!(p.prm_patch.len(), 1, "{:?}", p.prm_patch);
    assert!(p.findings.is_empty(), "{:?}", p.findings);

    // Salesforce changed the title, the PRM the phone.
    let mut contact = person(person_rules);
    contact
        .crm
        .fields
        .insert("Title".into(), json!("Head of Channel Sales"));
    contact.crm.modstamp = Some(at(10, 0));
    contact
        .prm
        .fields
        .insert("phone".into(), json!("+49 30 1234 5699"));
    contact.prm.version += 1;
    let p = plan(person_rules, &contact);
    assert_eq!(p.crm_patch.len(), 1, "{:?}", p.crm_patch);
    assert_eq!(p.prm_patch.len(), 1, "{:?}", p.prm_patch);

    let mut g = c.benchmark_group("merge");
    g.throughput(Throughput::Elements(1));
    g.bench_function("organization_unchanged", |b| {
        b.iter(|| plan(org_rules, black_box(&unchanged)))
    });
    g.bench_function("organization_one_change_each_side", |b| {
        b.iter(|| plan(org_rules, black_box(&both)))
    });
    g.bench_function("person_one_change_each_side", |b| {
        b.iter(|| plan(person_rules, black_box(&contact)))
    });
    g.finish();
}

/// Values as they arrive from either system, each with the type and length of its field.
fn canonical_inputs() -> Vec<(FieldType, Option<usize>, Value)> {
    let long = "Northwind Traders International Holding ".repeat(10);
    vec![
        (FieldType::Text, Some(255), json!("Northwind Traders GmbH")),
        (FieldType::Text, Some(255), json!(long)),
        (FieldType::Text, Some(40), json!("   ")),
        (FieldType::Text, Some(40), Value::Null),
        (
            FieldType::Text,
            None,
            json!("Friedrichstraße 123\nHinterhaus"),
        ),
        (FieldType::Text, Some(40), json!(4930123456u64)),
        (
            FieldType::Email,
            None,
            json!("  Zoe.OConnor@Northwind.example "),
        ),
        (FieldType::Email, None, json!("ops@northwind.example")),
        (FieldType::Number, None, json!(125000.0)),
        (FieldType::Number, None, json!(" 1250.50 ")),
        (FieldType::Number, None, json!("not a number")),
        (FieldType::Boolean, None, Value::Null),
        (FieldType::Boolean, None, json!("TRUE")),
        (FieldType::Boolean, None, json!(false)),
        (FieldType::Date, None, json!("2026-12-31")),
        (FieldType::Date, None, json!("2026-12-31T00:00:00.000+0000")),
        (
            FieldType::Datetime,
            None,
            json!("2026-11-22T10:00:00.000+0000"),
        ),
        (
            FieldType::Datetime,
            None,
            json!("2026-11-22T11:00:00+01:00"),
        ),
        (FieldType::Datetime, None, json!("2026-11-22T10:00:00.123Z")),
        (FieldType::Datetime, None, json!("")),
    ]
}

fn bench_canonical(c: &mut Criterion) {
    let inputs = canonical_inputs();
    let mut g = c.benchmark_group("canonical");
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function("mixed_20_values", |b| {
        b.iter(|| {
            for (ty, max, v) in &inputs {
                black_box(canonical(*ty, *max, black_box(v)));
            }
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_merge, bench_canonical
}
criterion_main!(benches);
