//! Salesforce payloads: encoding an sObject Collections update body of 200 records and
//! decoding a 2,000-record query page into `SObject`s, the way the client does.
//! Run with `cargo bench -p prmsync-salesforce --bench encode`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prmsync_salesforce::{SObject, COLLECTION_CHUNK};
use serde::Deserialize;
use serde_json::{json, Map, Value};

const CITIES: [(&str, &str, &str); 6] = [
    ("Berlin", "Berlin", "Germany"),
    ("München", "Bayern", "Germany"),
    ("Lyon", "Auvergne-Rhône-Alpes", "France"),
    ("Austin", "TX", "United States"),
    ("São Paulo", "SP", "Brazil"),
    ("Osaka", "Osaka", "Japan"),
];
const STATUS: [&str; 5] = [
    "Active Partner",
    "Prospective Partner",
    "Inactive Partner",
    "Active Distributor",
    "Inactive Distributor",
];

fn account_id(i: usize) -> String {
    format!("0015g{:010}AAB", 1_000_000 + i)
}

/// The mapped fields of the i-th Account, as a pass writes them.
fn account_fields(i: usize) -> Map<String, Value> {
    let (city, state, country) = CITIES[i % CITIES.len()];
    let v = json!({
        "Name": format!("Partner Company {i} O'Neil & Söhne"),
        "PRM_Organization_Status__c": STATUS[i % STATUS.len()],
        "Website": format!("https://partner{i}.example.com"),
        "Phone": format!("+1 512 555 {:04}", i % 10_000),
        "BillingStreet": format!("{} Congress Avenue\nSuite {}", 100 + i, i % 900),
        "BillingCity": city,
        "BillingState": state,
        "BillingPostalCode": format!("{:05}", 10_000 + i),
        "BillingCountry": country,
        "PRM_Id__c": format!("org_01HZX3K5N9Q2R7T8V{:07}", i),
        "PRM_Record_Status__c": "Synced",
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// One collections record: `attributes`, `id`, then the fields (the client's `record_body`).
fn record_body(i: usize) -> Value {
    let mut m = Map::new();
    m.insert("attributes".into(), json!({"type": "Account"}));
    m.insert("id".into(), Value::String(account_id(i)));
    m.extend(account_fields(i));
    Value::Object(m)
}

/// A query page as `/query` returns it with `batchSize=2000`.
fn query_page(n: usize) -> Vec<u8> {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let id = account_id(i);
            let mut m = Map::new();
            m.insert(
                "attributes".into(),
                json!({"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{id}")}),
            );
            m.insert("Id".into(), Value::String(id));
            m.extend(account_fields(i));
            m.insert("PRM_Sync__c".into(), json!(true));
            m.insert(
                "ParentId".into(),
                match i % 4 {
                    0 => Value::Null,
                    _ => json!(account_id(i / 4)),
                },
            );
            m.insert(
                "Parent".into(),
                json!({"attributes": {"type": "Account", "url": "/services/data/v62.0/sobjects/Account/0015g0000000000AAB"},
                       "PRM_Id__c": format!("org_01HZX3K5N9Q2R7T8V{:07}", i / 4)}),
            );
            m.insert(
                "SystemModstamp".into(),
                json!(format!(
                    "2026-11-22T{:02}:{:02}:{:02}.000+0000",
                    (i / 3600) % 24,
                    (i / 60) % 60,
                    i % 60
                )),
            );
            m.insert("IsDeleted".into(), json!(false));
            m.insert("MasterRecordId".into(), Value::Null);
            Value::Object(m)
        })
        .collect();
    serde_json::to_vec(&json!({
        "totalSize": 12_000,
        "done": false,
        "nextRecordsUrl": "/services/data/v62.0/query/01gD0000002HU6KIAW-2000",
        "records": records,
    }))
    .unwrap()
}

/// The client's wire shape of a query page.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    #[serde(default)]
    done: bool,
    #[serde(default)]
    records: Vec<Value>,
    #[serde(default)]
    next_records_url: Option<String>,
}

fn decode_page(body: &[u8]) -> (Vec<SObject>, bool, Option<String>) {
    let page: QueryPage = serde_json::from_slice(body).unwrap();
    let records = page
        .records
        .into_iter()
        .map(SObject::from_json)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (records, page.done, page.next_records_url)
}

fn bench_encode(c: &mut Criterion) {
    let chunk: Vec<Value> = (0..COLLECTION_CHUNK).map(record_body).collect();
    let body = json!({"allOrNone": false, "records": chunk});
    let size = serde_json::to_vec(&body).unwrap().len();

    let mut g = c.benchmark_group("collections_update");
    g.throughput(Throughput::Elements(COLLECTION_CHUNK as u64));
    // The body already built: serialization alone.
    g.bench_function(format!("to_vec_200_records_{size}_bytes"), |b| {
        b.iter(|| serde_json::to_vec(black_box(&body)).unwrap())
    });
    // As the client sends a chunk: clone the records into the body, then serialize.
    g.bench_function("build_and_to_vec_200_records", |b| {
        b.iter(|| {
            let body = json!({
                "allOrNone": false,
                "records": black_box(&chunk).to_vec(),
            });
            serde_json::to_vec(&body).unwrap()
        })
    });
    g.finish();

    let n = 2_000;
    let page = query_page(n);
    let (records, done, next) = decode_page(&page);
    assert_eq!(records.len(), n);
    assert!(!done && next.is_some());
    assert_eq!(records[1].id, account_id(1));
    assert!(records[1].fields["Parent"].get("attributes").is_none());

    let mut g = c.benchmark_group("query_page");
    // ~20 ms an iteration: 20 samples need more than the default 3 s.
    g.measurement_time(Duration::from_secs(6));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("decode_2000_records_{}_bytes", page.len()), |b| {
        b.iter(|| decode_page(black_box(&page)))
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
    targets = bench_encode
}
criterion_main!(benches);
