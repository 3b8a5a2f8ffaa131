//! HTTP tests against a running simulator.

use serde_json::{json, Map, Value};

use super::*;

const V: &str = "/services/data/v62.0";

struct Client {
    sim: SalesforceSim,
    base: String,
    token: String,
    http: reqwest::Client,
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

impl Client {
    async fn new() -> Self {
        let sim = SalesforceSim::new();
        let base = sim.start().await.unwrap();
        let http = reqwest::Client::new();
        let token = Self::login(&http, &base).await;
        Client {
            sim,
            base,
            token,
            http,
        }
    }

    async fn login(http: &reqwest::Client, base: &str) -> String {
        let resp = http
            .post(format!("{base}/services/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["instance_url"], base);
        body["access_token"].as_str().unwrap().to_string()
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value, Option<String>) {
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let limit = resp
            .headers()
            .get("sforce-limit-info")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, body, limit)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, b, _) = self.send(self.req(reqwest::Method::GET, path)).await;
        (s, b)
    }

    async fn query(&self, soql: &str) -> (u16, Value) {
        let (s, b, _) = self
            .send(
                self.req(reqwest::Method::GET, &format!("{V}/query"))
                    .query(&[("q", soql)]),
            )
            .await;
        (s, b)
    }

    async fn send_json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let (s, b, _) = self.send(self.req(method, path).json(&body)).await;
        (s, b)
    }
}

/// Makes Account's PRM Id field External ID + Unique but case-insensitive (Salesforce's
/// "Treat "ABC" and "abc" as duplicate values"), unlike the default org's.
fn case_insensitive_prm_id(sim: &SalesforceSim) {
    sim.add_field(
        "Account",
        FieldDef::new("PRM_Id__c", FieldType::String)
            .label("PRM Id")
            .external_id(),
    );
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn token_flows_and_session_expiry() {
    let c = Client::new().await;
    let url = format!("{}/services/oauth2/token", c.base);

    let resp = c
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sandbox-client"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let exp = chrono::Utc::now().timestamp() + 300;
    let jwt = |iss: &str, exp: i64| {
        format!(
            "{}.{}.c2ln",
            b64url(br#"{"alg":"RS256"}"#),
            b64url(
                json!({"iss": iss, "sub": "int@example.com", "aud": "x", "exp": exp})
                    .to_string()
                    .as_bytes()
            )
        )
    };
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let resp = c
        .http
        .post(&url)
        .form(&[
            ("grant_type", grant),
            ("assertion", &jwt("sandbox-client", exp)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["access_token"].as_str().is_some());
    for bad in [jwt("other", exp), jwt("sandbox-client", exp - 600)] {
        let resp = c
            .http
            .post(&url)
            .form(&[("grant_type", grant), ("assertion", &bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant");
    }

    // No token, then a valid one, then expired.
    let resp = c
        .http
        .get(format!("{}{V}/limits", c.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    assert_eq!(c.get(&format!("{V}/limits")).await.0, 200);
    c.sim.expire_tokens();
    let (status, body) = c.get(&format!("{V}/limits")).await;
    assert_eq!(status, 401);
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    assert_eq!(c.sim.api_calls().kind("auth"), 5);
}

#[tokio::test]
async fn query_pages_with_batch_size_and_fixed_result_set() {
    let c = Client::new().await;
    for i in 0..450 {
        c.sim.insert(
            "Account",
            obj(json!({"Name": format!("Acct {i:03}"), "PRM_Sync__c": i % 2 == 0})),
        );
    }
    let (status, body, _) = c
        .send(
            c.req(reqwest::Method::GET, &format!("{V}/query"))
                .header("Sforce-Query-Options", "batchSize=200")
                .query(&[("q", "SELECT Id, Name FROM Account ORDER BY Name")]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["totalSize"], 450);
    assert_eq!(body["done"], false);
    let recs = body["records"].as_array().unwrap();
    assert_eq!(recs.len(), 200);
    assert_eq!(recs[0]["Name"], "Acct 000");
    assert_eq!(recs[0]["attributes"]["type"], "Account");
    assert!(recs[0]["attributes"]["url"]
        .as_str()
        .unwrap()
        .starts_with("/services/data/v62.0/sobjects/Account/001"));

    // Rows added after the query do not change its result set.
    c.sim.insert("Account", obj(json!({"Name": "Acct 999"})));
    let next = body["nextRecordsUrl"].as_str().unwrap().to_string();
    let (_, page2) = c.get(&next).await;
    assert_eq!(page2["records"].as_array().unwrap().len(), 200);
    assert_eq!(page2["records"][0]["Name"], "Acct 200");
    // Re-reading a page (a retry) works.
    assert_eq!(c.get(&next).await.1, page2);
    let (_, page3) = c.get(page2["nextRecordsUrl"].as_str().unwrap()).await;
    assert_eq!(page3["done"], true);
    assert_eq!(page3["records"].as_array().unwrap().len(), 50);
    assert!(page3.get("nextRecordsUrl").is_none());

    let (_, small) = c
        .query("SELECT Id FROM Account WHERE PRM_Sync__c = true AND Name LIKE 'acct 0%' LIMIT 10")
        .await;
    assert_eq!(small["totalSize"], 10);
    assert_eq!(small["done"], true);

    let (status, err) = c.query("SELECT Id, Nope__c FROM Account").await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "INVALID_FIELD");
    let (status, err) = c
        .query("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'")
        .await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "MALFORMED_QUERY");
    let (_, count) = c.query("SELECT COUNT() FROM Account").await;
    assert_eq!(count["totalSize"], 451);
    let calls = c.sim.api_calls();
    assert_eq!(calls.kind("query"), 5);
    assert_eq!(calls.kind("query_more"), 3);
}

#[tokio::test]
async fn query_all_shows_deletes_and_merges() {
    let c = Client::new().await;
    let master = c.sim.insert("Account", obj(json!({"Name": "Master"})));
    let loser = c.sim.insert("Account", obj(json!({"Name": "Loser"})));
    let contact = c
        .sim
        .insert("Contact", obj(json!({"LastName": "C", "AccountId": loser})));
    let opp = c.sim.insert(
        "Opportunity",
        obj(json!({"Name": "O", "AccountId": master, "StageName": "Prospecting", "CloseDate": "2026-12-01"})),
    );
    let start = chrono::Utc::now() - chrono::Duration::minutes(1);
    c.sim.merge("Account", &master, &loser);
    assert_eq!(
        c.sim.get("Contact", &contact).unwrap()["AccountId"],
        json!(master)
    );

    let (_, live) = c.query("SELECT Id FROM Account").await;
    assert_eq!(live["totalSize"], 1);
    let (_, all) = c
        .get(&format!(
            "{V}/queryAll?q={}",
            "SELECT+Id,+IsDeleted,+MasterRecordId+FROM+Account+WHERE+IsDeleted+=+true"
        ))
        .await;
    assert_eq!(all["totalSize"], 1);
    assert_eq!(all["records"][0]["Id"], json!(loser));
    assert_eq!(all["records"][0]["MasterRecordId"], json!(master));

    // Deleting the master cascades to its contacts and opportunities.
    c.sim.delete("Account", &master);
    assert_eq!(
        c.sim.get("Opportunity", &opp).unwrap()["IsDeleted"],
        json!(true)
    );
    let end = chrono::Utc::now() + chrono::Duration::minutes(1);
    let (status, deleted, _) = c
        .send(
            c.req(
                reqwest::Method::GET,
                &format!("{V}/sobjects/Contact/deleted/"),
            )
            .query(&[("start", start.to_rfc3339()), ("end", end.to_rfc3339())]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["deletedRecords"][0]["id"], json!(contact));
    assert!(deleted["latestDateCovered"].as_str().is_some());

    let old = chrono::Utc::now() - chrono::Duration::days(20);
    let (status, err, _) = c
        .send(
            c.req(
                reqwest::Method::GET,
                &format!("{V}/sobjects/Contact/deleted/"),
            )
            .query(&[("start", old.to_rfc3339()), ("end", end.to_rfc3339())]),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "INVALID_REPLICATION_DATE");
}

#[tokio::test]
async fn single_record_crud_upsert_and_describe() {
    let c = Client::new().await;
    let (status, created) = c
        .send_json(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Account"),
            json!({"Name": "Acme", "Website": ""}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["success"], true);
    let id = created["id"].as_str().unwrap().to_string();
    let (_, rec) = c.get(&format!("{V}/sobjects/Account/{id}")).await;
    assert_eq!(rec["Name"], "Acme");
    assert_eq!(rec["Website"], Value::Null);
    let stamp = rec["SystemModstamp"].as_str().unwrap().to_string();
    assert!(stamp.ends_with("+0000"));

    let (status, _) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/{id}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (_, rec) = c
        .get(&format!("{V}/sobjects/Account/{id}?fields=SystemModstamp"))
        .await;
    assert_ne!(rec["SystemModstamp"], json!(stamp));

    let (status, err) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/{id}"),
            json!({"PRM_Organization_Status__c": "Gold"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        err[0]["errorCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(err[0]["fields"][0], "PRM_Organization_Status__c");

    // Upsert: 201 created, 200 updated (case-insensitive match), 300 when ambiguous.
    case_insensitive_prm_id(&c.sim);
    let path = format!("{V}/sobjects/Account/PRM_Id__c/org-7");
    let (status, up) = c
        .send_json(reqwest::Method::PATCH, &path, json!({"Name": "Seven"}))
        .await;
    assert_eq!((status, up["created"].clone()), (201, json!(true)));
    let (status, up2) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/PRM_Id__c/ORG-7"),
            json!({"Name": "Seven!"}),
        )
        .await;
    assert_eq!((status, up2["created"].clone()), (200, json!(false)));
    assert_eq!(up2["id"], up["id"]);
    c.sim.insert(
        "Account",
        obj(json!({"Name": "Dupe", "PRM_Id__c": "Org-7"})),
    );
    let (status, urls) = c
        .send_json(reqwest::Method::PATCH, &path, json!({"Name": "x"}))
        .await;
    assert_eq!(status, 300);
    assert_eq!(urls.as_array().unwrap().len(), 2);

    // Delete, then the record is gone.
    let (status, _, _) = c
        .send(c.req(
            reqwest::Method::DELETE,
            &format!("{V}/sobjects/Account/{id}"),
        ))
        .await;
    assert_eq!(status, 204);
    let (status, err) = c.get(&format!("{V}/sobjects/Account/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(err[0]["errorCode"], "ENTITY_IS_DELETED");
    let (status, err) = c
        .get(&format!("{V}/sobjects/Account/001Sm0000009999AAA"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(err[0]["errorCode"], "NOT_FOUND");

    let (status, describe) = c.get(&format!("{V}/sobjects/Opportunity/describe")).await;
    assert_eq!(status, 200);
    let stage = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "StageName")
        .unwrap();
    assert_eq!(stage["type"], "picklist");
    assert_eq!(stage["restrictedPicklist"], true);
    assert_eq!(stage["picklistValues"][0]["value"], "Prospecting");
    assert_eq!(c.get(&format!("{V}/sobjects/Nope/describe")).await.0, 404);
}

#[tokio::test]
async fn collections_create_update_upsert() {
    let c = Client::new().await;
    case_insensitive_prm_id(&c.sim);
    let path = format!("{V}/composite/sobjects");
    let (status, results) = c
        .send_json(
            reqwest::Method::POST,
            &path,
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Name": "A", "PRM_Id__c": "p1"},
                {"attributes": {"type": "Account"}, "PRM_Id__c": "p2"},
                {"attributes": {"type": "Contact"}, "LastName": "L", "Email": "bad"},
                {"attributes": {"type": "Account"}, "Name": "B", "PRM_Id__c": "P1"}
            ]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(results[0]["success"], true);
    assert_eq!(
        results[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(results[1]["errors"][0]["fields"][0], "Name");
    assert_eq!(
        results[2]["errors"][0]["statusCode"],
        "INVALID_EMAIL_ADDRESS"
    );
    assert_eq!(results[3]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    let a = results[0]["id"].as_str().unwrap().to_string();

    // allOrNone rolls everything back.
    let (_, results) = c
        .send_json(
            reqwest::Method::POST,
            &path,
            json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Account"}, "Name": "C"},
                {"attributes": {"type": "Account"}, "Name": "x".repeat(300)}
            ]}),
        )
        .await;
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1]["errors"][0]["statusCode"], "STRING_TOO_LONG");
    assert_eq!(c.sim.records("Account").len(), 1);

    // Unknown field fails the whole request.
    let (status, err) = c
        .send_json(
            reqwest::Method::POST,
            &path,
            json!({"records": [{"attributes": {"type": "Account"}, "Name": "C", "Bogus__c": 1}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "INVALID_FIELD");
    assert_eq!(c.sim.records("Account").len(), 1);

    // Update with a per-record fault.
    c.sim.faults().fail_record_write(
        &a,
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access",
    );
    let update = json!({"records": [
        {"attributes": {"type": "Account"}, "id": a, "Name": "A2"},
        {"attributes": {"type": "Account"}, "id": "001Sm0000000999AAA", "Name": "Z"}
    ]});
    let (_, results) = c
        .send_json(reqwest::Method::PATCH, &path, update.clone())
        .await;
    assert_eq!(results[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(results[0]["id"], json!(a));
    assert_eq!(results[1]["success"], false);
    let (_, results) = c.send_json(reqwest::Method::PATCH, &path, update).await;
    assert_eq!(results[0]["success"], true);
    assert_eq!(c.sim.get("Account", &a).unwrap()["Name"], "A2");

    // Upsert by external id.
    let (status, results) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{path}/Account/PRM_Id__c"),
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "PRM_Id__c": "P1", "Name": "A3"},
                {"attributes": {"type": "Account"}, "PRM_Id__c": "p9", "Name": "New"},
                {"attributes": {"type": "Account"}, "Name": "No ext"}
            ]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(results[0]["created"], false);
    assert_eq!(results[0]["id"], json!(a));
    assert_eq!(results[1]["created"], true);
    assert_eq!(results[2]["success"], false);
    assert_eq!(c.sim.records("Account").len(), 2);

    // At most 200 records.
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("n{i}")}))
        .collect();
    let (status, err) = c
        .send_json(reqwest::Method::POST, &path, json!({"records": many}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "EXCEEDED_ID_LIMIT");
    let calls = c.sim.api_calls();
    assert_eq!(calls.kind("composite_create"), 4);
    assert_eq!(calls.kind("composite_update"), 2);
    assert_eq!(calls.kind("composite_upsert"), 1);
}

#[tokio::test]
async fn a_record_named_twice_in_one_collection_fails_in_every_copy() {
    let c = Client::new().await;
    let path = format!("{V}/composite/sobjects");
    let a = c.sim.insert("Account", obj(json!({"Name": "A"})));
    let b = c.sim.insert("Account", obj(json!({"Name": "B"})));

    // Update: both copies of one Id fail (its 15-character form is the same record); the
    // other record is written.
    let (status, results) = c
        .send_json(
            reqwest::Method::PATCH,
            &path,
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "id": a, "Name": "A1"},
                {"attributes": {"type": "Account"}, "id": b, "Name": "B1"},
                {"attributes": {"type": "Account"}, "id": &a[..15], "Name": "A2"}
            ]}),
        )
        .await;
    assert_eq!(status, 200);
    for i in [0, 2] {
        assert_eq!(results[i]["success"], false, "{results}");
        assert_eq!(results[i]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
        let message = results[i]["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("Duplicate id specified: "), "{message}");
        assert_eq!(results[i]["errors"][0]["fields"], json!([]));
    }
    assert_eq!(results[1]["success"], true);
    assert_eq!(c.sim.get("Account", &a).unwrap()["Name"], "A");
    assert_eq!(c.sim.get("Account", &b).unwrap()["Name"], "B1");

    // All or none: the duplicates roll the others back.
    let (_, results) = c
        .send_json(
            reqwest::Method::PATCH,
            &path,
            json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Account"}, "id": b, "Name": "B2"},
                {"attributes": {"type": "Account"}, "id": a, "Name": "A1"},
                {"attributes": {"type": "Account"}, "id": a, "Name": "A2"}
            ]}),
        )
        .await;
    assert_eq!(
        results[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(results[1]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(results[2]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(c.sim.get("Account", &b).unwrap()["Name"], "B1");

    // Upsert: an external id value twice (ignoring case, the field being case-insensitive)
    // fails in both copies.
    case_insensitive_prm_id(&c.sim);
    let (_, results) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{path}/Account/PRM_Id__c"),
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "PRM_Id__c": "p1", "Name": "One"},
                {"attributes": {"type": "Account"}, "PRM_Id__c": "p2", "Name": "Two"},
                {"attributes": {"type": "Account"}, "PRM_Id__c": "P1", "Name": "Uno"}
            ]}),
        )
        .await;
    for i in [0, 2] {
        assert_eq!(results[i]["success"], false, "{results}");
        assert_eq!(results[i]["created"], false);
        assert_eq!(results[i]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
        assert_eq!(results[i]["errors"][0]["fields"], json!(["PRM_Id__c"]));
        let message = results[i]["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Duplicate external id specified: "),
            "{message}"
        );
    }
    assert_eq!(results[1]["created"], true);
    assert_eq!(c.sim.records("Account").len(), 3);
}

#[tokio::test]
async fn a_case_sensitive_external_id_tells_values_differing_only_in_case_apart() {
    let c = Client::new().await;
    // The default org's PRM Id is External ID, Unique and case-sensitive, and says so.
    let (_, describe) = c.get(&format!("{V}/sobjects/Account/describe")).await;
    let field = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "PRM_Id__c")
        .unwrap()
        .clone();
    assert_eq!(field["externalId"], true);
    assert_eq!(field["unique"], true);
    assert_eq!(field["caseSensitive"], true);

    // Upsert of "abc" then "ABC": two records, neither touching the other.
    let (status, lower) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/PRM_Id__c/abc"),
            json!({"Name": "Lower"}),
        )
        .await;
    assert_eq!((status, lower["created"].clone()), (201, json!(true)));
    let (status, upper) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/PRM_Id__c/ABC"),
            json!({"Name": "Upper"}),
        )
        .await;
    assert_eq!((status, upper["created"].clone()), (201, json!(true)));
    assert_ne!(lower["id"], upper["id"]);
    let lower_id = lower["id"].as_str().unwrap();
    assert_eq!(c.sim.get("Account", lower_id).unwrap()["Name"], "Lower");
    // a lookup matches exactly
    let (status, rec) = c.get(&format!("{V}/sobjects/Account/PRM_Id__c/ABC")).await;
    assert_eq!(status, 200);
    assert_eq!(rec["Name"], "Upper");
    assert_eq!(
        c.get(&format!("{V}/sobjects/Account/PRM_Id__c/Abc"))
            .await
            .0,
        404
    );

    // One collection with "p1" and "P1": two records, no duplicate.
    let path = format!("{V}/composite/sobjects");
    let (_, results) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{path}/Account/PRM_Id__c"),
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "PRM_Id__c": "p1", "Name": "One"},
                {"attributes": {"type": "Account"}, "PRM_Id__c": "P1", "Name": "Uno"}
            ]}),
        )
        .await;
    assert_eq!(results[0]["created"], true, "{results}");
    assert_eq!(results[1]["created"], true, "{results}");
    assert_eq!(c.sim.records("Account").len(), 4);

    // Unique: the same value, same case, is refused on create and on update.
    let (status, err) = c
        .send_json(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Account"),
            json!({"Name": "Again", "PRM_Id__c": "abc"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "DUPLICATE_VALUE");
    let upper_id = upper["id"].as_str().unwrap();
    let (status, err) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/{upper_id}"),
            json!({"PRM_Id__c": "abc"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "DUPLICATE_VALUE");
}

#[tokio::test]
async fn a_case_insensitive_external_id_matches_and_refuses_values_differing_only_in_case() {
    let c = Client::new().await;
    case_insensitive_prm_id(&c.sim);
    let (_, describe) = c.get(&format!("{V}/sobjects/Account/describe")).await;
    let field = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "PRM_Id__c")
        .unwrap()
        .clone();
    assert_eq!(
        (
            &field["externalId"],
            &field["unique"],
            &field["caseSensitive"]
        ),
        (&json!(true), &json!(true), &json!(false))
    );
    // "ABC" upserted after "abc" updates the record holding "abc"
    let (_, first) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/PRM_Id__c/abc"),
            json!({"Name": "First"}),
        )
        .await;
    let (status, second) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/PRM_Id__c/ABC"),
            json!({"Name": "Second"}),
        )
        .await;
    assert_eq!((status, second["created"].clone()), (200, json!(false)));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(c.sim.records("Account").len(), 1);
    assert_eq!(
        c.sim.get("Account", first["id"].as_str().unwrap()).unwrap()["Name"],
        "Second"
    );
    // Unique ignoring case: "Abc" is a duplicate of "abc"
    let (status, err) = c
        .send_json(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Account"),
            json!({"Name": "Third", "PRM_Id__c": "Abc"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "DUPLICATE_VALUE");

    // An External ID that is not Unique: values may repeat, upserts match ignoring case,
    // and a value held twice is ambiguous (300).
    c.sim.add_field(
        "Account",
        FieldDef::new("PRM_Id__c", FieldType::String)
            .label("PRM Id")
            .external_id()
            .not_unique(),
    );
    let (status, _) = c
        .send_json(
            reqwest::Method::POST,
            &format!("{V}/sobjects/Account"),
            json!({"Name": "Third", "PRM_Id__c": "Abc"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, urls) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/PRM_Id__c/aBC"),
            json!({"Name": "Which?"}),
        )
        .await;
    assert_eq!(status, 300);
    assert_eq!(urls.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn limit_header_counts_calls_and_enforces_allocation() {
    let c = Client::new().await;
    c.sim.set_daily_api_limit(3);
    let (_, _, limit) = c
        .send(c.req(reqwest::Method::GET, &format!("{V}/limits")))
        .await;
    assert_eq!(limit.as_deref(), Some("api-usage=1/3"));
    let (status, body, limit) = c
        .send(c.req(reqwest::Method::GET, &format!("{V}/limits")))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["DailyApiRequests"], json!({"Max": 3, "Remaining": 1}));
    assert_eq!(limit.as_deref(), Some("api-usage=2/3"));
    // Failed calls count too.
    let (status, _) = c.query("SELECT Bogus FROM Account").await;
    assert_eq!(status, 400);
    let (status, body, limit) = c
        .send(c.req(reqwest::Method::GET, &format!("{V}/limits")))
        .await;
    assert_eq!(status, 403);
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(limit.as_deref(), Some("api-usage=4/3"));
    assert_eq!(c.sim.api_calls().total, 4);
    c.sim.reset_api_calls();
    assert_eq!(c.get(&format!("{V}/limits")).await.0, 200);
}

#[tokio::test]
async fn fail_nth_and_latency() {
    let c = Client::new().await;
    c.sim
        .faults()
        .fail_nth(Some("query"), 2, 503, "SERVER_UNAVAILABLE");
    assert_eq!(c.query("SELECT Id FROM Account").await.0, 200);
    assert_eq!(c.get(&format!("{V}/limits")).await.0, 200);
    let (status, err) = c.query("SELECT Id FROM Account").await;
    assert_eq!(status, 503);
    assert_eq!(err[0]["errorCode"], "SERVER_UNAVAILABLE");
    assert_eq!(c.query("SELECT Id FROM Account").await.0, 200);

    c.sim.faults().fail_nth(None, 1, 500, "UNKNOWN_EXCEPTION");
    assert_eq!(c.get(&format!("{V}/limits")).await.0, 500);

    c.sim
        .faults()
        .set_latency(std::time::Duration::from_millis(50));
    let t = std::time::Instant::now();
    c.get(&format!("{V}/limits")).await;
    assert!(t.elapsed() >= std::time::Duration::from_millis(50));
    c.sim.faults().clear();
}

#[tokio::test]
async fn save_and_load_round_trip() {
    let sim = SalesforceSim::new();
    let id = sim.insert("Account", obj(json!({"Name": "Keep", "PRM_Id__c": "k1"})));
    sim.add_field("Account", FieldDef::new("Tier__c", FieldType::String));
    let dir = std::env::temp_dir().join(format!("sfsim-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("org.json");
    sim.save(&path).unwrap();
    let loaded = SalesforceSim::load(&path).unwrap();
    assert_eq!(loaded.get("Account", &id), sim.get("Account", &id));
    let next = loaded.insert("Account", obj(json!({"Name": "Next"})));
    assert_ne!(next, id);
    assert!(loaded
        .try_insert("Account", obj(json!({"Name": "T", "Tier__c": "Gold"})))
        .is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// Bulk API 2.0 query jobs

/// One CSV result set: status, body text, `Sforce-Locator`, `Sforce-NumberOfRecords`.
struct CsvPage {
    status: u16,
    text: String,
    locator: Option<String>,
    count: Option<usize>,
}

impl Client {
    async fn bulk_create(&self, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, &format!("{V}/jobs/query"), body)
            .await
    }

    async fn bulk_poll(&self, id: &str) -> (u16, Value) {
        self.get(&format!("{V}/jobs/query/{id}")).await
    }

    async fn bulk_results(&self, id: &str, params: &[(&str, String)]) -> CsvPage {
        let resp = self
            .req(
                reqwest::Method::GET,
                &format!("{V}/jobs/query/{id}/results"),
            )
            .header("Accept", "text/csv")
            .query(params)
            .send()
            .await
            .unwrap();
        let h = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let locator = h("sforce-locator");
        let count = h("sforce-numberofrecords").map(|n| n.parse().unwrap());
        let status = resp.status().as_u16();
        CsvPage {
            status,
            text: resp.text().await.unwrap(),
            locator,
            count,
        }
    }
}

/// RFC 4180 rows (quoted fields may hold delimiters, doubled quotes and line breaks); an
/// empty unquoted field is `None`.
fn parse_csv(text: &str) -> Vec<Vec<Option<String>>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut chars = text.chars().peekable();
    let mut field: Option<String> = None;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            s.push('"');
                        }
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => panic!("unterminated quoted field"),
                    }
                }
                field = Some(s);
            }
            ',' => row.push(field.take()),
            '\n' => {
                row.push(field.take());
                rows.push(std::mem::take(&mut row));
            }
            other => panic!("unquoted character {other:?} in bulk CSV"),
        }
    }
    assert!(row.is_empty() && field.is_none(), "CSV must end with LF");
    rows
}

#[tokio::test]
async fn bulk_query_job_polls_and_pages_with_locator() {
    let c = Client::new().await;
    for i in 0..450 {
        c.sim.insert(
            "Account",
            obj(json!({"Name": format!("Acct {i:03}"), "PRM_Sync__c": i % 3 == 0})),
        );
    }
    c.sim.set_bulk_query_polls(3);
    let (status, job) = c
        .bulk_create(json!({
            "operation": "query",
            "query": "SELECT Id, Name, PRM_Sync__c FROM Account ORDER BY Name DESC",
            "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF"
        }))
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "UploadComplete");
    assert_eq!(job["operation"], "query");
    assert_eq!(job["object"], "Account");
    assert_eq!(job["apiVersion"], 62.0);
    let id = job["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("750") && id.len() == 18);

    // Results are refused until the job is complete.
    let early = c.bulk_results(&id, &[]).await;
    assert_eq!(early.status, 400);
    assert!(early.text.contains("INVALIDJOBSTATE"), "{}", early.text);

    // Snapshot at creation: later rows are not in the results.
    c.sim.insert("Account", obj(json!({"Name": "Zzz late"})));
    assert_eq!(c.bulk_poll(&id).await.1["state"], "InProgress");
    assert_eq!(c.bulk_poll(&id).await.1["state"], "InProgress");
    let (_, done) = c.bulk_poll(&id).await;
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(done["numberRecordsProcessed"], 450);
    assert_eq!(c.bulk_poll(&id).await.1["state"], "JobComplete");

    let mut names = Vec::new();
    let mut locator: Option<String> = None;
    let mut sets = 0;
    loop {
        let mut params = vec![("maxRecords", "200".to_string())];
        if let Some(l) = &locator {
            params.push(("locator", l.clone()));
        }
        let page = c.bulk_results(&id, &params).await;
        assert_eq!(page.status, 200);
        sets += 1;
        let rows = parse_csv(&page.text);
        assert_eq!(
            rows[0],
            vec![
                Some("Id".into()),
                Some("Name".into()),
                Some("PRM_Sync__c".into())
            ]
        );
        assert_eq!(page.count, Some(rows.len() - 1));
        names.extend(rows[1..].iter().map(|r| r[1].clone().unwrap()));
        match page.locator.as_deref() {
            Some("null") => break,
            Some(l) => locator = Some(l.to_string()),
            None => panic!("no Sforce-Locator header"),
        }
    }
    assert_eq!(sets, 3);
    assert_eq!(names.len(), 450);
    assert_eq!(names[0], "Acct 449");
    assert_eq!(names[449], "Acct 000");

    // A locator can be used again; without maxRecords the default set size applies.
    let again = c
        .bulk_results(&id, &[("locator", locator.clone().unwrap())])
        .await;
    assert_eq!(again.count, Some(50));
    let all = c.bulk_results(&id, &[]).await;
    assert_eq!(all.count, Some(450));
    assert_eq!(all.locator.as_deref(), Some("null"));
    let bad = c.bulk_results(&id, &[("locator", "%%%".to_string())]).await;
    assert_eq!(bad.status, 400);

    let calls = c.sim.api_calls();
    assert_eq!(calls.kind("bulk_query_create"), 1);
    assert_eq!(calls.kind("bulk_query_info"), 4);
    assert_eq!(calls.kind("bulk_query_results"), 7);
    assert_eq!(calls.total, 12);
}

#[tokio::test]
async fn bulk_query_all_sees_deleted_rows() {
    let c = Client::new().await;
    let keep = c.sim.insert("Account", obj(json!({"Name": "Keep"})));
    let gone = c.sim.insert("Account", obj(json!({"Name": "Gone"})));
    c.sim.delete("Account", &gone);
    let mut ids = Vec::new();
    for op in ["query", "queryAll"] {
        let (_, job) = c
            .bulk_create(json!({"operation": op, "query": "SELECT Id, IsDeleted FROM Account"}))
            .await;
        assert_eq!(job["operation"], op);
        let id = job["id"].as_str().unwrap().to_string();
        assert_eq!(c.bulk_poll(&id).await.1["state"], "JobComplete");
        let page = c.bulk_results(&id, &[]).await;
        ids.push(parse_csv(&page.text)[1..].to_vec());
    }
    assert_eq!(ids[0], vec![vec![Some(keep.clone()), Some("false".into())]]);
    assert_eq!(
        ids[1],
        vec![
            vec![Some(keep), Some("false".into())],
            vec![Some(gone), Some("true".into())]
        ]
    );
}

#[tokio::test]
async fn bulk_csv_quotes_values_and_writes_types_like_bulk() {
    let c = Client::new().await;
    c.sim
        .add_field("Opportunity", FieldDef::new("Seats__c", FieldType::Int));
    let tricky = "Smith, \"Jr\"\nsecond line";
    let id = c.sim.insert(
        "Opportunity",
        obj(
            json!({"Name": tricky, "StageName": "Prospecting", "CloseDate": "2026-12-01",
            "Amount": 1500, "Seats__c": 12, "PRM_Sync__c": true}),
        ),
    );
    c.sim.update(
        "Opportunity",
        &id,
        obj(json!({"CreatedDate": "2026-11-22T10:15:30.123+0000"})),
    );
    let (_, job) = c
        .bulk_create(json!({"operation": "query",
            "query": "SELECT Id, Name, Amount, Seats__c, PRM_Sync__c, Description, CloseDate, CreatedDate FROM Opportunity"}))
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    c.bulk_poll(&job_id).await;
    let page = c.bulk_results(&job_id, &[]).await;
    assert_eq!(
        page.text,
        format!(
            "\"Id\",\"Name\",\"Amount\",\"Seats__c\",\"PRM_Sync__c\",\"Description\",\"CloseDate\",\"CreatedDate\"\n\
             \"{id}\",\"Smith, \"\"Jr\"\"\nsecond line\",\"1500.0\",\"12\",\"true\",,\"2026-12-01\",\"2026-11-22T10:15:30.123Z\"\n"
        )
    );
    let rows = parse_csv(&page.text);
    assert_eq!(rows[1][1].as_deref(), Some(tricky));
    assert_eq!(rows[1][5], None);

    // Other delimiters and line endings.
    let (_, job) = c
        .bulk_create(
            json!({"operation": "query", "query": "SELECT Id, StageName FROM Opportunity",
            "columnDelimiter": "PIPE", "lineEnding": "CRLF"}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    c.bulk_poll(&job_id).await;
    let page = c.bulk_results(&job_id, &[]).await;
    assert_eq!(
        page.text,
        format!("\"Id\"|\"StageName\"\r\n\"{id}\"|\"Prospecting\"\r\n")
    );
}

#[tokio::test]
async fn bulk_rejects_what_bulk_api_2_does_not_support() {
    let c = Client::new().await;
    for (soql, code) in [
        ("SELECT COUNT() FROM Account", "FUNCTIONALITY_NOT_ENABLED"),
        (
            "SELECT Id FROM Account LIMIT 10 OFFSET 5",
            "FUNCTIONALITY_NOT_ENABLED",
        ),
        (
            "SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry",
            "FUNCTIONALITY_NOT_ENABLED",
        ),
        (
            "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
            "FUNCTIONALITY_NOT_ENABLED",
        ),
        ("SELECT Id, Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY"),
    ] {
        let (status, err) = c
            .bulk_create(json!({"operation": "query", "query": soql}))
            .await;
        assert_eq!(status, 400, "{soql}");
        assert_eq!(err[0]["errorCode"], code, "{soql}: {err}");
        assert!(err[0]["message"].as_str().is_some());
    }
    for body in [
        json!({"operation": "upsert", "query": "SELECT Id FROM Account"}),
        json!({"operation": "query", "query": "SELECT Id FROM Account", "contentType": "JSON"}),
        json!({"operation": "query", "query": "SELECT Id FROM Account", "lineEnding": "CR"}),
    ] {
        let (status, err) = c.bulk_create(body).await;
        assert_eq!(status, 400);
        assert_eq!(err[0]["errorCode"], "JSON_PARSER_ERROR");
    }
    let (status, err) = c.bulk_create(json!({"operation": "query"})).await;
    assert_eq!(status, 400);
    assert_eq!(err[0]["errorCode"], "INVALIDJOB");
    // ORDER BY and LIMIT are accepted (they only disable PK chunking).
    let (status, _) = c
        .bulk_create(json!({"operation": "query",
            "query": "SELECT Id FROM Account WHERE Name = 'count(x) offset' ORDER BY Name LIMIT 5"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(c.sim.bulk_query_jobs(), 1);
    assert_eq!(c.sim.api_calls().kind("bulk_query_create"), 12);
}

#[tokio::test]
async fn bulk_unknown_job_auth_faults_failure_abort_and_delete() {
    let c = Client::new().await;
    let (status, err) = c.bulk_poll("750Sm0000000099AAA").await;
    assert_eq!(status, 404);
    assert_eq!(err[0]["errorCode"], "NOT_FOUND");
    assert_eq!(c.bulk_results("750Sm0000000099AAA", &[]).await.status, 404);

    // A bad token gets 401 and is counted like any REST call.
    let resp = c
        .http
        .post(format!("{}{V}/jobs/query", c.base))
        .bearer_auth("not-a-token")
        .json(&json!({"operation": "query", "query": "SELECT Id FROM Account"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
    assert_eq!(c.sim.bulk_query_jobs(), 0);

    // Injected faults by kind.
    c.sim
        .faults()
        .fail_nth(Some("bulk_query_info"), 1, 503, "SERVER_UNAVAILABLE");
    let (_, job) = c
        .bulk_create(json!({"operation": "query", "query": "SELECT Id FROM Account"}))
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(c.bulk_poll(&id).await.0, 503);
    assert_eq!(c.bulk_poll(&id).await.1["state"], "JobComplete");

    // A failing job reports its message.
    c.sim
        .fail_next_bulk_query("QUERY_TIMEOUT: the query took too long");
    let (_, job) = c
        .bulk_create(json!({"operation": "queryAll", "query": "SELECT Id FROM Account"}))
        .await;
    let failed = job["id"].as_str().unwrap().to_string();
    let (_, info) = c.bulk_poll(&failed).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        "QUERY_TIMEOUT: the query took too long"
    );
    assert_eq!(c.bulk_results(&failed, &[]).await.status, 400);

    // Abort, list, delete.
    c.sim.set_bulk_query_polls(5);
    let (_, job) = c
        .bulk_create(json!({"operation": "query", "query": "SELECT Id FROM Account"}))
        .await;
    let running = job["id"].as_str().unwrap().to_string();
    let (status, aborted) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/jobs/query/{running}"),
            json!({"state": "Aborted"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(aborted["state"], "Aborted");
    assert_eq!(c.bulk_poll(&running).await.1["state"], "Aborted");
    let (_, list) = c.get(&format!("{V}/jobs/query")).await;
    assert_eq!(list["records"].as_array().unwrap().len(), 3);
    let (status, _, _) = c
        .send(c.req(
            reqwest::Method::DELETE,
            &format!("{V}/jobs/query/{running}"),
        ))
        .await;
    assert_eq!(status, 204);
    assert_eq!(c.bulk_poll(&running).await.0, 404);
    assert_eq!(c.sim.bulk_query_jobs(), 2);

    let calls = c.sim.api_calls();
    assert_eq!(calls.kind("bulk_query_create"), 4);
    assert_eq!(calls.kind("bulk_query_abort"), 1);
    assert_eq!(calls.kind("bulk_query_delete"), 1);
    assert_eq!(calls.kind("bulk_query_list"), 1);
}

#[tokio::test]
async fn fifteen_character_ids_name_the_same_records_and_answers_are_eighteen() {
    let c = Client::new().await;
    let id = c.sim.insert("Account", obj(json!({"Name": "Acme"})));
    let id15 = id[..15].to_string();
    assert_eq!(id.len(), 18);

    // In a URL.
    let (status, rec) = c.get(&format!("{V}/sobjects/Account/{id15}")).await;
    assert_eq!(status, 200);
    assert_eq!(rec["Id"], json!(id));
    let (status, _) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/{id15}"),
            json!({"Name": "Acme Ltd"}),
        )
        .await;
    assert_eq!(status, 204);

    // In a Collection, and in a reference field.
    let (status, results) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/composite/sobjects"),
            json!({"records": [{"attributes": {"type": "Account"}, "id": id15, "Name": "Acme Inc"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(results[0]["success"], true);
    assert_eq!(results[0]["id"], json!(id));
    let (_, results) = c
        .send_json(
            reqwest::Method::POST,
            &format!("{V}/composite/sobjects"),
            json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "L", "AccountId": id15}]}),
        )
        .await;
    let contact = results[0]["id"].as_str().unwrap();
    assert_eq!(
        c.sim.get("Contact", contact).unwrap()["AccountId"],
        json!(id)
    );

    // In SOQL.
    let (status, page) = c
        .query(&format!(
            "SELECT Id, Name FROM Account WHERE Id IN ('{id15}')"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["totalSize"], 1);
    assert_eq!(page["records"][0]["Id"], json!(id));
    assert_eq!(page["records"][0]["Name"], "Acme Inc");
    let (_, page) = c
        .query(&format!(
            "SELECT Id FROM Contact WHERE AccountId = '{id15}'"
        ))
        .await;
    assert_eq!(page["totalSize"], 1);

    // A 15-character Id is case-sensitive; an 18-character one is not.
    let lower15 = id15.to_ascii_lowercase();
    assert_ne!(lower15, id15);
    let (status, _) = c.get(&format!("{V}/sobjects/Account/{lower15}")).await;
    assert_eq!(status, 404);
    let (_, page) = c
        .query(&format!("SELECT Id FROM Account WHERE Id = '{lower15}'"))
        .await;
    assert_eq!(page["totalSize"], 0);
    let lower18 = id.to_ascii_lowercase();
    let (status, rec) = c.get(&format!("{V}/sobjects/Account/{lower18}")).await;
    assert_eq!(status, 200);
    assert_eq!(rec["Id"], json!(id));
}

#[tokio::test]
async fn held_clock_gives_one_system_modstamp_and_query_pages_through_the_ties() {
    let c = Client::new().await;
    let before = c.sim.insert("Account", obj(json!({"Name": "Before"})));
    c.sim.hold_clock(true);
    let tied: Vec<String> = (0..450)
        .map(|i| {
            c.sim
                .insert("Account", obj(json!({"Name": format!("T{i:03}")})))
        })
        .collect();
    // A write through the API while held gets the same stamp.
    let (status, _) = c
        .send_json(
            reqwest::Method::PATCH,
            &format!("{V}/sobjects/Account/{}", tied[0]),
            json!({"Name": "T000 renamed"}),
        )
        .await;
    assert_eq!(status, 204);
    c.sim.hold_clock(false);
    let after = c.sim.insert("Account", obj(json!({"Name": "After"})));

    let stamp = |id: &str| c.sim.get("Account", id).unwrap()["SystemModstamp"].clone();
    let at = stamp(&tied[0]);
    assert!(tied.iter().all(|id| stamp(id) == at));
    assert_ne!(stamp(&before), at);
    assert_ne!(stamp(&after), at);

    // Pages of 200 over the ties: every record once.
    let at = at.as_str().unwrap().replace("+0000", "Z");
    let soql =
        format!("SELECT Id FROM Account WHERE SystemModstamp = {at} ORDER BY SystemModstamp, Id");
    let (status, mut page, _) = c
        .send(
            c.req(reqwest::Method::GET, &format!("{V}/query"))
                .header("Sforce-Query-Options", "batchSize=200")
                .query(&[("q", soql.as_str())]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["totalSize"], 450);
    let mut seen = Vec::new();
    let mut pages = 1;
    loop {
        for r in page["records"].as_array().unwrap() {
            seen.push(r["Id"].as_str().unwrap().to_string());
        }
        let Some(next) = page["nextRecordsUrl"].as_str().map(str::to_string) else {
            break;
        };
        page = c.get(&next).await.1;
        pages += 1;
    }
    assert_eq!(pages, 3);
    let mut want = tied.clone();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
}

impl Client {
    async fn ingest_create(&self, body: Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, &format!("{V}/jobs/ingest"), body)
            .await
    }

    async fn ingest_upload(&self, id: &str, csv: &str) -> u16 {
        self.req(
            reqwest::Method::PUT,
            &format!("{V}/jobs/ingest/{id}/batches"),
        )
        .header("Content-Type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
    }

    async fn ingest_state(&self, id: &str, state: &str) -> (u16, Value) {
        self.send_json(
            reqwest::Method::PATCH,
            &format!("{V}/jobs/ingest/{id}"),
            json!({ "state": state }),
        )
        .await
    }

    async fn ingest_csv(&self, id: &str, set: &str) -> Vec<Vec<Option<String>>> {
        let resp = self
            .req(reqwest::Method::GET, &format!("{V}/jobs/ingest/{id}/{set}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        parse_csv(&resp.text().await.unwrap())
    }

    /// Opens a job, uploads `csv` and closes it; returns the job id.
    async fn ingest_job(&self, body: Value, csv: &str) -> String {
        let (status, job) = self.ingest_create(body).await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["state"], "Open");
        let id = job["id"].as_str().unwrap().to_string();
        assert_eq!(self.ingest_upload(&id, csv).await, 201);
        let (status, closed) = self.ingest_state(&id, "UploadComplete").await;
        assert_eq!(status, 200, "{closed}");
        id
    }
}

fn cells(rows: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|c| (!c.is_empty()).then(|| c.to_string()))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn an_ingest_upsert_writes_rows_and_answers_each_in_its_result_set() {
    let c = Client::new().await;
    let existing = c.sim.insert(
        "Account",
        obj(json!({"Name": "Old", "PRM_Id__c": "org-1", "Phone": "555"})),
    );
    c.sim.set_bulk_ingest_polls(2);
    let long = "x".repeat(300);
    let csv = format!(
        "PRM_Id__c,Name,Phone\norg-1,Renamed,#N/A\norg-2,\"New, \"\"quoted\"\"\",\norg-3,{long},1\n"
    );
    let id = c
        .ingest_job(
            json!({"object": "Account", "operation": "upsert", "externalIdFieldName": "PRM_Id__c",
                   "contentType": "CSV", "lineEnding": "LF", "columnDelimiter": "COMMA"}),
            &csv,
        )
        .await;
    // Nothing is written before the job is processed.
    assert_eq!(c.sim.get("Account", &existing).unwrap()["Name"], "Old");
    let (_, info) = c.get(&format!("{V}/jobs/ingest/{id}")).await;
    assert_eq!(info["state"], "InProgress");
    let (_, info) = c.get(&format!("{V}/jobs/ingest/{id}")).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(info["numberRecordsFailed"], 1);
    assert_eq!(info["jobType"], "V2Ingest");

    let renamed = c.sim.get("Account", &existing).unwrap();
    assert_eq!(renamed["Name"], "Renamed");
    assert_eq!(renamed["Phone"], Value::Null, "#N/A sets null");
    let ok = c.ingest_csv(&id, "successfulResults").await;
    assert_eq!(
        ok[0],
        cells(&[&["sf__Id", "sf__Created", "PRM_Id__c", "Name", "Phone"]])[0]
    );
    assert_eq!(ok[1][0].as_deref(), Some(existing.as_str()));
    assert_eq!(ok[1][1].as_deref(), Some("false"));
    assert_eq!(ok[2][1].as_deref(), Some("true"));
    assert_eq!(ok[2][3].as_deref(), Some("New, \"quoted\""));
    let created = ok[2][0].clone().unwrap();
    assert_eq!(created.len(), 18);
    assert_eq!(
        c.sim.get("Account", &created).unwrap()["Name"],
        "New, \"quoted\""
    );
    let failed = c.ingest_csv(&id, "failedResults").await;
    assert_eq!(failed.len(), 2);
    let error = failed[1][1].as_deref().unwrap();
    assert!(
        error.starts_with("STRING_TOO_LONG:") && error.ends_with(":Name --"),
        "{error}"
    );
    assert_eq!(failed[1][2].as_deref(), Some("org-3"));
    let none = c.ingest_csv(&id, "unprocessedrecords").await;
    assert_eq!(none, cells(&[&["PRM_Id__c", "Name", "Phone"]]));
    assert_eq!(c.sim.api_calls().kind("bulk_ingest_info"), 2);
}

#[tokio::test]
async fn an_ingest_update_refuses_an_id_twice_in_a_chunk_and_answers_with_18_characters() {
    let c = Client::new().await;
    let a = c.sim.insert("Account", obj(json!({"Name": "A"})));
    let b = c.sim.insert("Account", obj(json!({"Name": "B"})));
    let locked = c.sim.insert("Account", obj(json!({"Name": "L"})));
    c.sim.faults().fail_record_write(
        &locked,
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    );
    let csv = format!("Id,Name\n{},A2\n{b},B2\n{b},B3\n{locked},L2\n", &a[..15]);
    let id = c
        .ingest_job(json!({"object": "Account", "operation": "update"}), &csv)
        .await;
    let (_, info) = c.get(&format!("{V}/jobs/ingest/{id}")).await;
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["numberRecordsFailed"], 3);
    assert_eq!(c.sim.get("Account", &a).unwrap()["Name"], "A2");
    assert_eq!(c.sim.get("Account", &b).unwrap()["Name"], "B");
    let ok = c.ingest_csv(&id, "successfulResults").await;
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[1][0].as_deref(), Some(a.as_str()), "the 18-character Id");
    assert_eq!(ok[1][2].as_deref(), Some(&a[..15]), "the row as uploaded");
    let failed = c.ingest_csv(&id, "failedResults").await;
    let codes: Vec<&str> = failed[1..]
        .iter()
        .map(|r| r[1].as_deref().unwrap().split(':').next().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["DUPLICATE_VALUE", "DUPLICATE_VALUE", "UNABLE_TO_LOCK_ROW"]
    );
}

#[tokio::test]
async fn an_ingest_job_fails_whole_on_bad_data_or_on_demand_and_lists_what_it_left() {
    let c = Client::new().await;
    let body = json!({"object": "Account", "operation": "insert"});
    // An unknown column fails the job, nothing written.
    let id = c.ingest_job(body.clone(), "Name,Nope__c\nA,1\n").await;
    let (_, info) = c.get(&format!("{V}/jobs/ingest/{id}")).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(
        info["errorMessage"],
        "InvalidBatch : Field name not found : Nope__c"
    );
    assert_eq!(c.sim.records("Account").len(), 0);
    // A ragged row fails the job at close.
    let id = c.ingest_job(body.clone(), "Name,Phone\nA,1\nB\n").await;
    let (_, info) = c.get(&format!("{V}/jobs/ingest/{id}")).await;
    assert_eq!(info["state"], "Failed");
    assert!(info["errorMessage"]
        .as_str()
        .unwrap()
        .starts_with("InvalidBatch : Failed to parse CSV"));
    // Two uploads.
    let (_, job) = c.ingest_create(body.clone()).await;
    let two = job["id"].as_str().unwrap();
    assert_eq!(c.ingest_upload(two, "Name\nA\n").await, 201);
    assert_eq!(c.ingest_upload(two, "Name\nB\n").await, 201);
    let (_, info) = c.ingest_state(two, "UploadComplete").await;
    assert!(info["errorMessage"]
        .as_str()
        .unwrap()
        .contains("Found multiple contents for job"));
    // Too large.
    c.sim.set_bulk_ingest_max_upload(10);
    let (_, job) = c.ingest_create(body.clone()).await;
    assert_eq!(
        c.ingest_upload(job["id"].as_str().unwrap(), "Name\nA long name\n")
            .await,
        413
    );
    c.sim.set_bulk_ingest_max_upload(BULK_INGEST_MAX_UPLOAD);
    // An upload of several megabytes (60,000 rows) is taken whole.
    let (_, job) = c.ingest_create(body.clone()).await;
    let big = job["id"].as_str().unwrap().to_string();
    let csv: String = std::iter::once("Name\n".to_string())
        .chain((0..60_000).map(|i| format!("A company with a rather long name {i:05}\n")))
        .collect();
    assert!(csv.len() > 2 * 1024 * 1024, "{}", csv.len());
    assert_eq!(c.ingest_upload(&big, &csv).await, 201);
    // A job that fails after its first row: one success, the rest unprocessed.
    c.sim
        .fail_next_bulk_ingest("InternalServerError : retry later", 1);
    let id = c
        .ingest_job(body.clone(), "Name\nFirst\nSecond\nThird\n")
        .await;
    let (_, info) = c.get(&format!("{V}/jobs/ingest/{id}")).await;
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["numberRecordsProcessed"], 1);
    assert_eq!(c.ingest_csv(&id, "successfulResults").await.len(), 2);
    assert_eq!(
        c.ingest_csv(&id, "unprocessedrecords").await,
        cells(&[&["Name"], &["Second"], &["Third"]])
    );
    // Aborted before close: results are empty, the job can be deleted.
    let (_, job) = c.ingest_create(body).await;
    let open = job["id"].as_str().unwrap();
    let (status, info) = c.ingest_state(open, "Aborted").await;
    assert_eq!((status, info["state"].as_str()), (200, Some("Aborted")));
    let (status, _) = c.ingest_state(open, "UploadComplete").await;
    assert_eq!(status, 400);
    let (status, _, _) = c
        .send(c.req(reqwest::Method::DELETE, &format!("{V}/jobs/ingest/{open}")))
        .await;
    assert_eq!(status, 204);
    assert_eq!(c.sim.records("Account").len(), 1);
}
