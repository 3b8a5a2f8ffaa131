//! Tests of the PRM simulator through HTTP and through the direct handle.

use super::*;
use reqwest::{Client, Method, StatusCode};

const TOKEN: &str = "test-token";

struct Api {
    base: String,
    http: Client,
}

impl Api {
    async fn start(sim: &PrmSim) -> Self {
        Self {
            base: sim.start().await.expect("bind"),
            http: Client::new(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, json)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, &[], None).await
    }

    async fn post(&self, coll: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/{coll}"),
            &[("Idempotency-Key", key)],
            Some(body),
        )
        .await
    }

    async fn patch(&self, coll: &str, id: &str, version: i64, body: Value) -> (StatusCode, Value) {
        let v = version.to_string();
        self.call(
            Method::PATCH,
            &format!("/v1/{coll}/{id}"),
            &[("If-Match", &v)],
            Some(body),
        )
        .await
    }
}

fn fields(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn org(sim: &PrmSim, name: &str) -> String {
    sim.insert(
        Collection::Organizations,
        json!({"name": name, "kind": "partner", "status": "active"}),
    )
}

#[tokio::test]
async fn prm_sim_auth_is_required() {
    let sim = PrmSim::new(TOKEN);
    let base = sim.start().await.unwrap();
    let http = Client::new();
    let resp = http
        .get(format!("{base}/v1/organizations"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let resp = http
        .get(format!("{base}/v1/organizations"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn prm_sim_create_sets_metadata_and_replays_idempotency_key() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let (s, first) = api
        .post(
            "organizations",
            "k1",
            json!({"name": "Acme", "kind": "partner"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(first["version"], 1);
    assert_eq!(first["deleted_at"], Value::Null);
    assert_eq!(first["crm_id"], Value::Null);
    assert_eq!(first["custom"], json!({}));
    let ts = first["updated_at"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-11-22T10:15:30.123Z".len(), "{ts}");
    assert!(ts.ends_with('Z'));

    let (s, again) = api
        .post(
            "organizations",
            "k1",
            json!({"name": "Other", "kind": "distributor"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(sim.list(Collection::Organizations).len(), 1);

    // Keys are per collection.
    let (s, p) = api
        .post(
            "people",
            "k1",
            json!({"organization_id": first["id"], "first_name": "A", "last_name": "B"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["kind"], "contact");

    let (s, e) = api
        .call(
            Method::POST,
            "/v1/organizations",
            &[],
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&e), ["Idempotency-Key"]);

    // A failed create does not consume the key.
    let (s, _) = api
        .post("organizations", "k2", json!({"kind": "partner"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = api.post("organizations", "k2", json!({"name": "Ok"})).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test]
async fn prm_sim_patch_checks_if_match_and_existence() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let id = org(&sim, "Acme");
    let (s, r) = api
        .patch("organizations", &id, 1, json!({"city": "Lyon"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["version"], 2);
    assert_eq!(r["city"], "Lyon");
    assert_eq!(r["name"], "Acme");

    let (s, e) = api
        .patch("organizations", &id, 1, json!({"city": "Paris"}))
        .await;
    assert_eq!(s, StatusCode::PRECONDITION_FAILED);
    assert_eq!(e["error"]["code"], "version_conflict");

    let (s, e) = api
        .call(
            Method::PATCH,
            &format!("/v1/organizations/{id}"),
            &[],
            Some(json!({"city": "Paris"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&e), ["If-Match"]);

    let (s, e) = api.patch("organizations", "org_999999", 1, json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "not_found");

    let (s, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/organizations/{id}"),
            &[],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = api
        .patch("organizations", &id, 3, json!({"city": "Nice"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"]["code"], "deleted");
}

#[tokio::test]
async fn prm_sim_noop_patch_keeps_version_and_custom_merges() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let id = sim.insert(
        Collection::Organizations,
        json!({"name": "Acme", "custom": {"tier": "gold", "size": 10}}),
    );
    let before = sim.get(Collection::Organizations, &id).unwrap();
    let (s, r) = api
        .patch(
            "organizations",
            &id,
            1,
            json!({"name": "Acme", "custom": {"tier": "gold"}, "version": 99, "id": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r, before);

    let (_, r) = api
        .patch(
            "organizations",
            &id,
            1,
            json!({"custom": {"tier": "silver"}}),
        )
        .await;
    assert_eq!(r["version"], 2);
    assert_eq!(r["custom"], json!({"tier": "silver", "size": 10}));
    assert!(r["updated_at"].as_str() > before["updated_at"].as_str());
}

#[tokio::test]
async fn prm_sim_validation_reports_one_entry_per_problem() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let acme = org(&sim, "Acme");
    let gone = org(&sim, "Gone");
    sim.delete(Collection::Organizations, &gone);

    let (s, e) = api
        .post(
            "organizations",
            "a",
            json!({"name": 5, "kind": "reseller", "colour": "red", "parent_id": "org_424242",
                   "custom": {"x": [1]}}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["code"], "validation_failed");
    let mut f = fields(&e);
    f.sort();
    assert_eq!(f, ["colour", "custom.x", "kind", "name", "parent_id"]);

    let (_, e) = api
        .post(
            "people",
            "b",
            json!({"organization_id": gone, "kind": "contact", "status": "active",
                   "first_name": "A", "last_name": ""}),
        )
        .await;
    let mut f = fields(&e);
    f.sort();
    assert_eq!(f, ["last_name", "organization_id", "status"]);

    let (_, e) = api
        .post(
            "people",
            "c",
            json!({"organization_id": acme, "kind": "user", "first_name": "A", "last_name": "B",
                   "group_ids": ["grp_000404"]}),
        )
        .await;
    let mut f = fields(&e);
    f.sort();
    assert_eq!(f, ["email", "group_ids", "status"]);

    let (_, e) = api
        .post(
            "deals",
            "d",
            json!({"name": "Big", "stage": "Won-ish", "registration_status": "approved",
                   "close_date": "2026-13-01", "amount": "12", "customer": {"email": "x"}}),
        )
        .await;
    let mut f = fields(&e);
    f.sort();
    assert_eq!(
        f,
        [
            "amount",
            "close_date",
            "customer.email",
            "registration_status",
            "stage"
        ]
    );

    // Parent cycle: a <- b <- c, then a.parent = c.
    let a = org(&sim, "A");
    let b = sim.insert(
        Collection::Organizations,
        json!({"name": "B", "parent_id": a}),
    );
    let c = sim.insert(
        Collection::Organizations,
        json!({"name": "C", "parent_id": b}),
    );
    let (s, e) = api
        .patch("organizations", &a, 1, json!({"parent_id": c}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&e), ["parent_id"]);
    let (_, e) = api
        .patch("organizations", &a, 1, json!({"parent_id": a}))
        .await;
    assert_eq!(fields(&e), ["parent_id"]);
    let (s, _) = api
        .patch("organizations", &c, 1, json!({"parent_id": a}))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn prm_sim_contact_promoted_to_user_keeps_id() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let acme = org(&sim, "Acme");
    let grp = sim.insert(
        Collection::Groups,
        json!({"kind": "partner", "name": "Gold", "modules": ["deal_registration"]}),
    );
    let id = sim.insert(
        Collection::People,
        json!({"organization_id": acme, "kind": "contact", "first_name": "Ann", "last_name": "Lee"}),
    );
    let (s, _) = api.patch("people", &id, 1, json!({"kind": "user"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, r) = api
        .patch(
            "people",
            &id,
            1,
            json!({"kind": "user", "status": "active", "email": "ann@acme.test", "group_ids": [grp]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["kind"], "user");

    let (s, r) = api.get("/v1/people?email=ANN@acme.test").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    let (_, r) = api.get(&format!("/v1/people?organization_id={acme}")).await;
    assert_eq!(r["data"].as_array().unwrap().len(), 1);
    let (s, _) = api.get("/v1/organizations?email=a@b.c").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn prm_sim_lists_tombstones_in_order_with_inclusive_updated_since_and_cursors() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let ids: Vec<String> = (0..7).map(|i| org(&sim, &format!("O{i}"))).collect();
    sim.delete(Collection::Organizations, &ids[0]);
    sim.update(
        Collection::Organizations,
        &ids[1],
        json!({"crm_id": "001A"}),
    );

    let (_, all) = api.get("/v1/organizations?limit=1000").await;
    let data = all["data"].as_array().unwrap();
    assert_eq!(data.len(), 7);
    assert_eq!(all["next_cursor"], Value::Null);
    let stamps: Vec<&str> = data
        .iter()
        .map(|r| r["updated_at"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
    // The tombstone and the updated record come last.
    assert_eq!(data[5]["id"], ids[0].as_str());
    assert!(data[5]["deleted_at"].is_string());
    assert_eq!(data[6]["id"], ids[1].as_str());
    assert_eq!(sim.list(Collection::Organizations).len(), 6);
    let (s, t) = api.get(&format!("/v1/organizations/{}", ids[0])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(t["version"], 2);

    // updated_since is inclusive.
    let since = stamps[3];
    let (_, r) = api
        .get(&format!("/v1/organizations?updated_since={since}"))
        .await;
    assert_eq!(r["data"].as_array().unwrap().len(), 4);
    assert_eq!(r["data"][0]["updated_at"], since);

    // Paging with cursors returns everything once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/organizations?limit=3&cursor={c}"),
            None => "/v1/organizations?limit=3".to_string(),
        };
        let (s, page) = api.get(&path).await;
        assert_eq!(s, StatusCode::OK);
        pages += 1;
        for r in page["data"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = data
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, expected);

    let (_, r) = api.get("/v1/organizations?crm_id=001A").await;
    assert_eq!(r["data"][0]["id"], ids[1].as_str());
    let (_, r) = api
        .get(&format!("/v1/organizations?ids={},{}", ids[2], ids[3]))
        .await;
    assert_eq!(r["data"].as_array().unwrap().len(), 2);

    for bad in [
        "limit=0",
        "limit=1001",
        "cursor=zz",
        "foo=bar",
        "updated_since=today",
    ] {
        let (s, e) = api.get(&format!("/v1/organizations?{bad}")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(fields(&e).len(), 1, "{bad}");
    }
    let many: Vec<String> = (0..201).map(|i| format!("o{i}")).collect();
    let (s, _) = api
        .get(&format!("/v1/organizations?ids={}", many.join(",")))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn prm_sim_groups_and_settings_are_read_only() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let g = sim.insert(
        Collection::Groups,
        json!({"kind": "distributor", "name": "Dist", "modules": ["mdf", "training"]}),
    );
    let (s, r) = api.get("/v1/groups").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["data"][0]["id"], g.as_str());
    let (s, r) = api.get(&format!("/v1/groups/{g}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["modules"], json!(["mdf", "training"]));
    let (s, _) = api.post("groups", "k", json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);

    let (s, r) = api.get("/v1/settings").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["distributor_module"]["enabled"], true);
    assert_eq!(r["deal_fields"][1]["name"], "stage");
    assert_eq!(r["deal_fields"][1]["required"], true);

    let calls = sim.api_calls();
    assert_eq!(calls.count("groups"), 3);
    assert_eq!(calls.count("settings"), 1);
    assert_eq!(calls.total, 4);
    sim.reset_api_calls();
    assert_eq!(sim.api_calls().total, 0);
}

#[tokio::test]
async fn prm_sim_deal_rules_follow_settings() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let dist = sim.insert(
        Collection::Organizations,
        json!({"name": "D", "kind": "distributor"}),
    );
    let du = sim.insert(
        Collection::People,
        json!({"organization_id": dist, "kind": "user", "status": "active", "email": "d@d.test",
               "first_name": "D", "last_name": "U"}),
    );
    let deal = json!({"name": "Deal", "stage": "Prospecting", "owner_type": "distributor",
                      "distributor_organization_id": dist, "distributor_user_id": du,
                      "customer": {"company": "Cust"}});
    let (s, e) = api.post("deals", "1", deal.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&e), ["partner_user_id"]);

    sim.set_settings(
        json!({"distributor_module": {"partner_email_optional_for_distributor_owned": true}}),
    );
    let (s, r) = api.post("deals", "2", deal.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["registration_status"], "pending");
    assert_eq!(r["customer"]["company"], "Cust");
    assert_eq!(r["customer"]["email"], Value::Null);
    let id = r["id"].as_str().unwrap();

    sim.set_registration_status(id, "approved");
    let d = sim.get(Collection::Deals, id).unwrap();
    assert_eq!(d["registration_status"], "approved");
    assert_eq!(d["version"], 2);

    let (_, r) = api
        .patch(
            "deals",
            id,
            2,
            json!({"customer": {"email": "c@cust.test"}}),
        )
        .await;
    assert_eq!(r["customer"]["company"], "Cust");
    assert_eq!(r["customer"]["email"], "c@cust.test");

    sim.set_settings(json!({"distributor_module": {"enabled": false}}));
    let (_, e) = api.post("deals", "3", deal).await;
    assert_eq!(
        fields(&e),
        [
            "owner_type",
            "distributor_user_id",
            "distributor_organization_id"
        ]
    );
}

#[tokio::test]
async fn prm_sim_faults_and_call_counts() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    sim.faults().rate_limit_next(1, 3);
    let resp = api
        .http
        .get(format!("{}/v1/organizations", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let (s, _) = api.get("/v1/organizations").await;
    assert_eq!(s, StatusCode::OK);

    sim.faults().fail_nth(Some("create"), 1, 503, "internal");
    let (s, e) = api.post("organizations", "k", json!({"name": "A"})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e["error"]["code"], "internal");
    assert!(sim.list(Collection::Organizations).is_empty());

    sim.faults()
        .fail_nth_after_write(Some("organizations.create"), 1, 500, "internal");
    let (s, _) = api.post("organizations", "k", json!({"name": "A"})).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(sim.list(Collection::Organizations).len(), 1);
    let (s, r) = api.post("organizations", "k", json!({"name": "A"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["name"], "A");

    let calls = sim.api_calls();
    assert_eq!(calls.count("list"), 2);
    assert_eq!(calls.count("create"), 3);
    assert_eq!(calls.count("organizations.create"), 3);
    assert_eq!(calls.writes(), 3);
}

#[tokio::test]
async fn prm_sim_snapshot_round_trips_with_idempotency_keys() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let (_, created) = api
        .post("organizations", "key-1", json!({"name": "Acme"}))
        .await;
    sim.set_settings(json!({"distributor_module": {"enabled": false}}));
    let dir = std::env::temp_dir().join(format!("prm-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("snap.json");
    sim.save(&path).unwrap();

    let loaded = PrmSim::load(&path, TOKEN).unwrap();
    let api2 = Api::start(&loaded).await;
    let (s, again) = api2
        .post("organizations", "key-1", json!({"name": "Zed"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again, created);
    assert!(!loaded.settings().distributor_module.enabled);
    // Ids and timestamps keep increasing after a load.
    let (_, next) = api2
        .post("organizations", "key-2", json!({"name": "B"}))
        .await;
    assert_eq!(next["id"], "org_000002");
    assert!(next["updated_at"].as_str() > created["updated_at"].as_str());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn prm_sim_direct_access_validates_and_allows_chosen_ids() {
    let sim = PrmSim::new(TOKEN);
    let id = sim.insert(
        Collection::Organizations,
        json!({"id": "org_fixed", "name": "F"}),
    );
    assert_eq!(id, "org_fixed");
    let err = sim
        .try_insert(Collection::Organizations, json!({"name": "G", "nope": 1}))
        .unwrap_err();
    assert_eq!(
        err.fields,
        vec![FieldError::new("nope", "is not a field of organizations")]
    );
    assert!(sim
        .try_update(Collection::Organizations, "org_x", json!({}))
        .is_err());
    sim.delete(Collection::Organizations, "org_fixed");
    assert!(sim.list(Collection::Organizations).is_empty());
    assert!(sim.get(Collection::Organizations, "org_fixed").unwrap()["deleted_at"].is_string());
    assert_eq!(sim.api_calls().total, 0);
}

#[tokio::test]
async fn prm_sim_held_clock_gives_one_updated_at_and_pages_through_the_ties() {
    let sim = PrmSim::new(TOKEN);
    let api = Api::start(&sim).await;
    let before = org(&sim, "Before");
    sim.hold_clock(true);
    let tied: Vec<String> = (0..7)
        .map(|i| {
            sim.insert(
                Collection::Organizations,
                json!({"id": format!("org_{}", 7 - i), "name": format!("T{i}"),
                       "kind": "partner", "status": "active"}),
            )
        })
        .collect();
    // An update while held keeps the same instant too.
    sim.update(
        Collection::Organizations,
        &tied[0],
        json!({"website": "t.example"}),
    );
    sim.hold_clock(false);
    let after = org(&sim, "After");

    let stamp = |id: &str| sim.get(Collection::Organizations, id).unwrap()["updated_at"].clone();
    let at = stamp(&tied[0]);
    assert!(tied.iter().all(|id| stamp(id) == at));
    assert!(stamp(&before).as_str() < at.as_str());
    assert!(stamp(&after).as_str() > at.as_str());

    // Pages of 3 from the tied instant: every record once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/v1/organizations?limit=3&updated_since={}",
            at.as_str().unwrap()
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        for r in page["data"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut want = tied.clone();
    want.push(after);
    seen.sort();
    want.sort();
    assert_eq!(seen, want);
}
