//! End-to-end: a decimal Salesforce rounds to its field's scale does not come back as a
//! change.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use prmsync_engine::RunMode;
use prmsync_mapping::Fields;
use prmsync_simulators::prm::Collection;
use prmsync_simulators::salesforce::{FieldDef, FieldType};
use serde_json::{json, Value};

const FIELD: &str = "Discount__c";
const SCALE: usize = 2;

/// What Salesforce stores for a number sent to a field of `scale` decimal places: the
/// decimal it was sent as (the JSON text), rounded half away from zero.
fn salesforce_round(v: f64, scale: usize) -> f64 {
    let text = format!("{v}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if fraction.len() <= scale {
        return v;
    }
    let negative = whole.starts_with('-');
    let kept: i128 = format!("{}{}", whole.trim_start_matches('-'), &fraction[..scale])
        .parse()
        .unwrap();
    let n = kept + i128::from(fraction.as_bytes()[scale] >= b'5');
    let unit = 10i128.pow(scale as u32);
    format!(
        "{}{}.{:0>w$}",
        if negative { "-" } else { "" },
        n / unit,
        n % unit,
        w = scale
    )
    .parse()
    .unwrap()
}

fn round_body(fields: &mut Fields) {
    if let Some(Value::Number(n)) = fields.get(FIELD) {
        if let Some(f) = n.as_f64() {
            fields.insert(FIELD.into(), json!(salesforce_round(f, SCALE)));
        }
    }
}

/// Salesforce as it treats a number field of scale 2 (the simulator keeps what it is sent).
struct Rounding;

#[async_trait]
impl CrmHooks for Rounding {
    fn write_body(&self, body: &mut Fields) {
        round_body(body);
    }
}

#[test]
fn the_model_of_salesforce_rounds_the_decimal_it_is_sent() {
    assert_eq!(salesforce_round(12.345, 2), 12.35);
    assert_eq!(salesforce_round(-12.345, 2), -12.35);
    assert_eq!(salesforce_round(12.344, 2), 12.34);
    assert_eq!(salesforce_round(12.3, 2), 12.3);
}

#[tokio::test]
async fn a_decimal_salesforce_rounds_is_written_once() {
    // GIVEN a number field of scale 2 mapped from a PRM custom field, and a linked
    // organization
    let src = format!(
        "{}\n[[organizations.fields]]\nprm = \"custom.discount\"\ncrm = \"{FIELD}\"\ntype = \"number\"\nscale = {SCALE}\n",
        prmsync_mapping::config::DEFAULT_MAPPING
    );
    let mapping = prmsync_mapping::MappingConfig::parse(&src, "mapping.toml").unwrap();
    let h = Harness::with_mapping(mapping).await;
    h.sf.add_field("Account", FieldDef::new(FIELD, FieldType::Double));
    let org = h.prm.insert(
        Collection::Organizations,
        json!({"kind": "partner", "status": "active", "name": "Rounded", "custom": {"discount": 10}}),
    );
    let ctx = h.ctx_with(
        HookedCrm::wrap(h.crm_client.clone(), Arc::new(Rounding)),
        h.prm_client.clone(),
    );
    assert_succeeded(&h.sync_ctx(&ctx, RunMode::Incremental).await);
    let acc = h.prm_get(Collection::Organizations, &org)["crm_id"]
        .as_str()
        .expect("linked")
        .to_string();
    assert_eq!(h.sf_get("Account", &acc)[FIELD].as_f64(), Some(10.0));

    // WHEN the PRM value changes to one with more places than the field keeps, and the
    // sync runs twice
    h.prm.update(
        Collection::Organizations,
        &org,
        json!({"custom": {"discount": 12.345}}),
    );
    let first = h.sync_ctx(&ctx, RunMode::Incremental).await;
    let second = h.sync_ctx(&ctx, RunMode::Incremental).await;

    // THEN the first run writes Salesforce once, and the second sees no change
    assert_succeeded(&first);
    assert_succeeded(&second);
    assert_eq!(h.sf_get("Account", &acc)[FIELD].as_f64(), Some(12.35));
    assert_eq!(total(&first, |c| c.writes()), 1, "{first:?}");
    assert_eq!(total(&first, |c| c.updated.crm), 1, "{first:?}");
    assert_eq!(total(&second, |c| c.writes()), 0, "{second:?}");
    assert_eq!(total(&second, |c| c.conflicts), 0, "{second:?}");
    // and the PRM keeps its value: it equals Salesforce's at the field's scale
    assert_eq!(
        h.prm_get(Collection::Organizations, &org)["custom"]["discount"],
        json!(12.345)
    );
}
