//! The per-record hot path of a sync pass: read every mapped field on both sides, merge it
//! three ways against the link's snapshot, and write the changed values into the patches.
//!
//! Mirrors `plan_item` in `prmsync-engine` (without logging), on the built-in mapping.
//! Run with `cargo bench -p prmsync-mapping`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prmsync_mapping::merge::{merge_field, FieldRule, MergeInput, Recency};
use prmsync_mapping::transform::{read_crm_cow, read_prm, read_prm_cow, write_crm, write_prm};
use prmsync_mapping::value::canonical;
use prmsync_mapping::{FieldMapping, FieldType, Fields, MappingConfig};
use serde_json::{json, Value};

/// One linked pair as the engine holds it during a pass.
struct Pair {
    crm: Fields,
    prm: Fields,
    snapshot: BTreeMap<String, Value>,
    recency: Recency,
}

/// What the merge of one record produced.
#[derive(Default)]
struct Plan {
    crm_patch: Fields,
    prm_patch: Fields,
    new_snapshot: Vec<(String, Value)>,
    conflicts: usize,
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

/// The three-way merge of every mapped field of one record.
fn plan(mapping: &MappingConfig, fields: &[FieldMapping], pair: &Pair) -> Plan {
    let rule_base = FieldRule {
        direction: Default::default(),
        conflict: mapping.sync.default_conflict,
        initial_winner: mapping.sync.initial_link_winner,
    };
    let mut out = Plan::default();
    for f in fields {
        if f.fixed.is_some() {
            continue;
        }
        let key = f.key();
        let crm_value = read_crm_cow(f, &pair.crm).expect("mapped value");
        let prm_value = read_prm_cow(f, &pair.prm);
        let rule = FieldRule {
            direction: f.direction,
            conflict: mapping.conflict_rule(f),
            ..rule_base
        };
        let m = merge_field(
            rule,
            MergeInput {
                snapshot: pair.snapshot.get(&key),
                prm: Some(&*prm_value),
                crm: Some(&*crm_value),
            },
            pair.recency,
        );
        if m.write_crm {
            write_crm(f, &m.value, &mut out.crm_patch).expect("mapped value");
        }
        if m.write_prm {
            write_prm(f, &m.value, &mut out.prm_patch);
        }
        if m.conflict.is_some() {
            out.conflicts += 1;
        }
        if pair.snapshot.get(&key) != Some(&m.value) {
            out.new_snapshot.push((key, m.value));
        }
    }
    out
}

/// The snapshot a previous pass left: the canonical values both sides agreed on.
fn snapshot_of(fields: &[FieldMapping], prm: &Fields) -> BTreeMap<String, Value> {
    fields.iter().map(|f| (f.key(), read_prm(f, prm))).collect()
}

/// A synced Account and PRM organization holding the same values, spelled as each system
/// spells them (the PRM's picklist pair vs. Salesforce's label, whitespace, extra fields).
fn organization(fields: &[FieldMapping]) -> Pair {
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
        "PRM_Id__c": "org_01HZX3K5N9Q2R7T8V0W4Y6B1C3",
        "PRM_Record_Status__c": "Synced",
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
    let snapshot = snapshot_of(fields, &prm);
    Pair {
        crm,
        prm,
        snapshot,
        recency: Recency {
            prm: Some(at(9, 10)),
            crm: Some(at(9, 14)),
        },
    }
}

/// A synced Contact and PRM person; Salesforce changed the title, the PRM the phone, and the
/// e-mail differs only in case and spacing (canonically equal, so no write).
fn person(fields: &[FieldMapping]) -> Pair {
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
    let snapshot = snapshot_of(fields, &prm);
    let mut prm = prm;
    prm.insert("phone".into(), json!("+49 30 1234 5699"));
    let crm = obj(json!({
        "Id": "0035g00000QrStuAAB",
        "AccountId": "0015g00000XyZabAAB",
        "FirstName": "Zoë",
        "LastName": "O'Connor-Müller",
        "Email": "  Zoe.OConnor@Northwind.example ",
        "Title": "Head of Channel Sales",
        "Phone": "+49 30 1234 5600",
        "PRM_Id__c": "per_01HZX3K5N9Q2R7T8V0W4Y6D2E4",
        "PRM_Record_Status__c": "Synced",
        "SystemModstamp": "2026-11-22T09:20:00.000+0000",
        "IsDeleted": false,
    }));
    Pair {
        crm,
        prm,
        snapshot,
        recency: Recency {
            prm: Some(at(9, 18)),
            crm: Some(at(9, 20)),
        },
    }
}

fn bench_merge(c: &mut Criterion) {
    let mapping = MappingConfig::default();
    let org_fields = mapping.organizations.fields.clone();
    let person_fields = mapping.people.fields.clone();

    let unchanged = organization(&org_fields);
    let p = plan(&mapping, &org_fields, &unchanged);
    assert!(p.crm_patch.is_empty() && p.prm_patch.is_empty() && p.new_snapshot.is_empty());

    // One field changed on each side: Salesforce moved the phone, the PRM the website.
    let mut both = organization(&org_fields);
    both.crm.insert("Phone".into(), json!("+49 30 9876 5432"));
    both.prm.insert(
        "website".into(),
        json!("https://northwind.example/partners"),
    );
    let p = plan(&mapping, &org_fields, &both);
    assert_eq!(p.crm_patch.len(), 1, "{:?}", p.crm_patch);
    assert_eq!(p.prm_patch.len(), 1, "{:?}", p.prm_patch);
    assert_eq!(p.conflicts, 0);

    let contact = person(&person_fields);
    let p = plan(&mapping, &person_fields, &contact);
    assert_eq!(p.crm_patch.len(), 1, "{:?}", p.crm_patch);
    assert_eq!(p.prm_patch.len(), 1, "{:?}", p.prm_patch);

    let mut g = c.benchmark_group("merge");
    g.throughput(Throughput::Elements(1));
    g.bench_function("organization_unchanged", |b| {
        b.iter(|| plan(&mapping, &org_fields, black_box(&unchanged)))
    });
    g.bench_function("organization_one_change_each_side", |b| {
        b.iter(|| plan(&mapping, &org_fields, black_box(&both)))
    });
    g.bench_function("person_one_change_each_side", |b| {
        b.iter(|| plan(&mapping, &person_fields, black_box(&contact)))
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
