//! PRM payloads: decoding a 1,000-record list page into `PrmRecord`s, the way the client
//! does (`{"data": [...], "next_cursor": ...}`, then `PrmRecord::from_json` per record).
//! Run with `cargo bench -p prmsync-prm --bench encode`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prmsync_prm::PrmRecord;
use serde::Deserialize;
use serde_json::{json, Value};

const CITIES: [(&str, &str, &str); 6] = [
    ("Berlin", "Berlin", "Germany"),
    ("München", "Bayern", "Germany"),
    ("Lyon", "Auvergne-Rhône-Alpes", "France"),
    ("Austin", "TX", "United States"),
    ("São Paulo", "SP", "Brazil"),
    ("Osaka", "Osaka", "Japan"),
];

fn organization(i: usize) -> Value {
    let (city, state, country) = CITIES[i % CITIES.len()];
    let (kind, status) = [
        ("partner", "active"),
        ("partner", "prospective"),
        ("distributor", "active"),
    ][i % 3];
    let tier = ["gold", "silver", "bronze"][i % 3];
    // Every 50th record deleted, every 5th not linked yet, every 4th without a parent.
    let deleted_at = match i % 50 {
        0 => json!("2026-11-22T08:00:00.000Z"),
        _ => Value::Null,
    };
    let crm_id = match i % 5 {
        0 => Value::Null,
        _ => json!(format!("0015g{:010}AAB", 1_000_000 + i)),
    };
    let parent_id = match i % 4 {
        0 => Value::Null,
        _ => json!(format!("org_01HZX3K5N9Q2R7T8V{:07}", i / 4)),
    };
    json!({
        "id": format!("org_01HZX3K5N9Q2R7T8V{:07}", i),
        "version": 1 + (i % 17) as i64,
        "updated_at": format!("2026-11-22T{:02}:{:02}:{:02}.{:03}Z", (i / 3600) % 24, (i / 60) % 60, i % 60, i % 1000),
        "created_at": "2025-03-02T08:00:00.000Z",
        "deleted_at": deleted_at,
        "crm_id": crm_id,
        "name": format!("Partner Company {i} O'Neil & Söhne"),
        "kind": kind,
        "status": status,
        "website": format!("https://partner{i}.example.com"),
        "phone": format!("+1 512 555 {:04}", i % 10_000),
        "street": format!("{} Congress Avenue\nSuite {}", 100 + i, i % 900),
        "city": city,
        "state": state,
        "postal_code": format!("{:05}", 10_000 + i),
        "country": country,
        "parent_id": parent_id,
        "group_id": "grp_gold_partners",
        "custom": {"tier": tier, "region": "EMEA"},
    })
}

fn list_page(n: usize) -> Vec<u8> {
    let data: Vec<Value> = (0..n).map(organization).collect();
    serde_json::to_vec(&json!({
        "data": data,
        "next_cursor": "eyJ1cGRhdGVkX2F0IjoiMjAyNi0xMS0yMlQxMDowMDowMFoiLCJpZCI6Im9yZ18xIn0",
    }))
    .unwrap()
}

/// The client's wire shape of a list page.
#[derive(Deserialize)]
struct Page {
    data: Vec<Value>,
    #[serde(default)]
    next_cursor: Option<String>,
}

fn decode_page(body: &[u8]) -> (Vec<PrmRecord>, Option<String>) {
    let page: Page = serde_json::from_slice(body).unwrap();
    let records = page
        .data
        .into_iter()
        .map(PrmRecord::from_json)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (records, page.next_cursor.filter(|c| !c.is_empty()))
}

fn bench_decode(c: &mut Criterion) {
    let n = 1_000;
    let page = list_page(n);
    let (records, cursor) = decode_page(&page);
    assert_eq!(records.len(), n);
    assert!(cursor.is_some());
    assert!(records[0].is_deleted() && records[0].crm_id.is_none());
    assert_eq!(records[1].field("city"), "München");

    let mut g = c.benchmark_group("prm_list_page");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("decode_1000_records_{}_bytes", page.len()), |b| {
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
    targets = bench_decode
}
criterion_main!(benches);
