//! Building SOQL: the change query of a pass, a 200-Id `IN` look-up, and literal escaping.
//! Run with `cargo bench -p prmsync-salesforce --bench soql`.

use std::hint::black_box;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prmsync_engine::ports::Scope;
use prmsync_salesforce::escape_literal;
use prmsync_salesforce::port::change_query;
use prmsync_salesforce::soql::{Cond, Soql};

/// The Account fields a pass selects with the built-in mapping.
fn account_fields() -> Vec<String> {
    [
        "Id",
        "Name",
        "PRM_Organization_Status__c",
        "Website",
        "Phone",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        "ParentId",
        "PRM_Sync__c",
        "PRM_Id__c",
        "PRM_Record_Status__c",
        "SystemModstamp",
        "IsDeleted",
        "MasterRecordId",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// 200 distinct 18-character Account Ids.
fn ids() -> Vec<String> {
    (0..200u32)
        .map(|i| format!("0015g00000{:05}AAB", i * 37 + 1000))
        .collect()
}

/// Strings an attacker might put in a name or e-mail field.
fn hostile() -> Vec<String> {
    vec![
        "' OR Name != '".into(),
        "O'Brien & Sons \"Ltd\"".into(),
        r"C:\path\to\'file'".into(),
        "line one\nline two\r\n\ttabbed".into(),
        "\u{0}\u{1}\u{8}\u{c}\u{1b}[31mred\u{7f}".into(),
        "Zoë 株式会社 🚀 d'Arc".into(),
        "50%_off' AND Id IN (SELECT Id FROM User) --".into(),
        "'".repeat(64),
        "\\'".repeat(64),
        "Northwind Traders GmbH".into(),
        format!("{}'{}", "a".repeat(500), "b".repeat(500)),
    ]
}

fn bench_soql(c: &mut Criterion) {
    let fields = account_fields();
    let since = Some(Utc.with_ymd_and_hms(2026, 11, 22, 9, 55, 0).unwrap());
    let scope = Scope::FlaggedOrLinked {
        flags: vec!["PRM_Sync__c".into()],
        prm_id: "PRM_Id__c".into(),
    };
    let ids = ids();
    let q = change_query("Account", &fields, since, &scope).expect("API names");
    assert!(
        q.contains("SystemModstamp >= 2026-11-22T09:55:00.000Z"),
        "{q}"
    );

    let mut g = c.benchmark_group("soql");
    g.throughput(Throughput::Elements(1));
    g.bench_function("change_query", |b| {
        b.iter(|| {
            change_query(
                black_box("Account"),
                black_box(&fields),
                black_box(since),
                black_box(&scope),
            )
        })
    });
    g.bench_function("in_200_ids", |b| {
        b.iter(|| {
            Soql::select(black_box(&fields))
                .from("Account")
                .where_(Cond::in_("Id", black_box(&ids).iter()))
                .build()
        })
    });
    g.finish();

    let strings = hostile();
    let bytes: usize = strings.iter().map(String::len).sum();
    let mut g = c.benchmark_group("escape_literal");
    g.throughput(Throughput::Elements(strings.len() as u64));
    g.bench_function(
        format!("hostile_{}_strings_{bytes}_bytes", strings.len()),
        |b| {
            b.iter(|| {
                for s in &strings {
                    black_box(escape_literal(black_box(s)));
                }
            })
        },
    );
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
    targets = bench_soql
}
criterion_main!(benches);
