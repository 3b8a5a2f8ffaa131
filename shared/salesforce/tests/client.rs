//! Client behaviour against a wiremock Salesforce.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use prmsync_salesforce::{Auth, ErrorClass, Fields, SalesforceClient, SalesforceConfig, SfError};
use serde_json::{json, Value};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "sup3r-s3cret-value";
const V: &str = "/services/data/v62.0";

fn cfg(server: &MockServer) -> SalesforceConfig {
    let mut c = SalesforceConfig::new(
        server.uri(),
        Auth::ClientCredentials {
            client_id: "cid".into(),
            client_secret: SECRET.into(),
        },
    );
    c.retry_base = Duration::from_millis(1);
    c.retry_max = Duration::from_millis(5);
    c.max_retries = 3;
    c.timeout = Duration::from_secs(5);
    c
}

fn client(server: &MockServer) -> SalesforceClient {
    SalesforceClient::new(cfg(server)).unwrap()
}

/// Token endpoint answering `tok1`, `tok2`, ... on successive calls.
struct TokenSeq {
    n: AtomicUsize,
    instance: String,
}

impl Respond for TokenSeq {
    fn respond(&self, _req: &Request) -> ResponseTemplate {
        let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("tok{n}"),
            "instance_url": self.instance,
            "token_type": "Bearer",
            "id": "https://login.salesforce.com/id/00D/005",
            "issued_at": "1700000000000",
            "signature": "sig"
        }))
    }
}

async fn mount_token(server: &MockServer, expected: u64) {
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=cid"))
        .and(body_string_contains(format!("client_secret={SECRET}")))
        .respond_with(TokenSeq {
            n: AtomicUsize::new(0),
            instance: server.uri(),
        })
        .expect(expected)
        .mount(server)
        .await;
}

fn record(obj: &str, id: &str, name: &str) -> Value {
    json!({
        "attributes": {"type": obj, "url": format!("{V}/sobjects/{obj}/{id}")},
        "Id": id,
        "Name": name
    })
}

fn fields(pairs: &[(&str, Value)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

#[tokio::test]
async fn client_credentials_and_query_paging() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .and(query_param("q", "SELECT Id, Name FROM Account"))
        .and(header("Sforce-Query-Options", "batchSize=2000"))
        .and(header("Authorization", "Bearer tok1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 5, "done": false,
            "nextRecordsUrl": format!("{V}/query/01gXX-2"),
            "records": [record("Account", "001A", "a"), record("Account", "001B", "b")]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query/01gXX-2")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 5, "done": false,
            "nextRecordsUrl": format!("{V}/query/01gXX-4"),
            "records": [record("Account", "001C", "c"), record("Account", "001D", "d")]
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query/01gXX-4")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 5, "done": true,
            "records": [record("Account", "001E", "e")]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let c = client(&server);
    assert_eq!(c.instance_url(), None);
    let rows = c.query("SELECT Id, Name FROM Account").await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["001A", "001B", "001C", "001D", "001E"]);
    assert_eq!(rows[0].object, "Account");
    assert_eq!(rows[0].str("Name"), Some("a"));
    assert!(!rows[0].fields.contains_key("attributes"));
    assert_eq!(rows[0].str("Id"), Some("001A"));

    let calls = c.calls();
    assert_eq!(calls.reads, 3);
    assert_eq!(calls.writes, 0);
    assert_eq!(calls.auth, 1);
    assert_eq!(calls.total, 4);
    assert_eq!(calls.api(), 3);
    assert_eq!(c.instance_url(), Some(server.uri()));
    assert_eq!(c.record_url("001A"), Some(format!("{}/001A", server.uri())));
}

#[tokio::test]
async fn query_all_and_pages_callback() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/queryAll")))
        .and(header("Sforce-Query-Options", "batchSize=500"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 1, "done": true,
            "records": [{"attributes": {"type": "Contact"}, "Id": "003A", "IsDeleted": true, "MasterRecordId": null}]
        })))
        .expect(2)
        .mount(&server)
        .await;
    let mut cfg = cfg(&server);
    cfg.query_batch_size = 500;
    let c = SalesforceClient::new(cfg).unwrap();
    let rows = c
        .query_all("SELECT Id, IsDeleted, MasterRecordId FROM Contact")
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].bool("IsDeleted"), Some(true));
    let mut pages = 0;
    c.query_pages("SELECT Id FROM Contact", true, |p| {
        pages += 1;
        assert_eq!(p.len(), 1);
    })
    .await
    .unwrap();
    assert_eq!(pages, 1);
}

#[tokio::test]
async fn expired_session_refreshes_once_and_retries() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .and(header("Authorization", "Bearer tok1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!([
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .and(header("Authorization", "Bearer tok2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 0, "done": true, "records": []
        })))
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server);
    assert!(c.query("SELECT Id FROM Account").await.unwrap().is_empty());
    // The refreshed token is cached: no further token call.
    assert!(c.query("SELECT Id FROM Account").await.unwrap().is_empty());
    let calls = c.calls();
    assert_eq!(calls.auth, 2);
    assert_eq!(calls.reads, 3);
}

#[tokio::test]
async fn persistent_401_fails_after_one_refresh() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/limits")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!([
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
        ])))
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c.limits().await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    assert_eq!(e.code(), Some("INVALID_SESSION_ID"));
}

#[tokio::test]
async fn server_unavailable_is_retried() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!([
            {"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}
        ])))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 1, "done": true, "records": [record("Account", "001A", "a")]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let rows = c.query("SELECT Id FROM Account").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(c.calls().reads, 2);
}

#[tokio::test]
async fn transient_errors_give_up_after_max_retries() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!([
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ])))
        .expect(4)
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c.query("SELECT Id FROM Account").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(e.is_limit());
    assert_eq!(c.calls().reads, 4);
}

#[tokio::test]
async fn timeouts_are_retried_for_reads() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/limits")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_millis(500)),
        )
        .expect(2)
        .mount(&server)
        .await;
    let mut cfg = cfg(&server);
    cfg.timeout = Duration::from_millis(100);
    cfg.max_retries = 1;
    let c = SalesforceClient::new(cfg).unwrap();
    let e = c.limits().await.unwrap_err();
    assert!(
        matches!(e, SfError::Transport { timeout: true, .. }),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn creates_are_not_resent_after_a_500() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/composite/sobjects")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!([
            {"message": "An unexpected error occurred", "errorCode": "UNKNOWN_EXCEPTION"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c
        .create("Account", vec![fields(&[("Name", json!("x"))])])
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn data_and_setup_errors_are_not_retried() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!([{
            "message": "No such column 'Foo__c' on entity 'Account'.",
            "errorCode": "INVALID_FIELD"
        }])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{V}/composite/sobjects")))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!([{
            "message": "Required fields are missing: [Name]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["Name"]
        }])))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c.query("SELECT Foo__c FROM Account").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Setup);
    assert!(e.to_string().contains("INVALID_FIELD"), "{e}");
    let e = c
        .update(
            "Account",
            vec![("001A".into(), fields(&[("Name", Value::Null)]))],
        )
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data);
    match &e {
        SfError::Api { status, fields, .. } => {
            assert_eq!(*status, 400);
            assert_eq!(fields, &vec!["Name".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.calls().api(), 2);
}

/// Collections endpoint: records whose Name starts with "bad" fail; records whose Name
/// starts with "lock" fail with UNABLE_TO_LOCK_ROW the first time they are seen.
struct Collections {
    sizes: Mutex<Vec<usize>>,
    locked_once: Mutex<Vec<String>>,
}

impl Respond for Collections {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["allOrNone"], json!(false));
        let records = body["records"].as_array().unwrap();
        assert!(records.len() <= 200);
        self.sizes.lock().unwrap().push(records.len());
        let results: Vec<Value> = records
            .iter()
            .map(|r| {
                assert_eq!(r["attributes"]["type"], json!("Account"));
                let name = r["Name"].as_str().unwrap().to_string();
                if name.starts_with("bad") {
                    json!({"success": false, "errors": [{
                        "statusCode": "REQUIRED_FIELD_MISSING",
                        "message": "Required fields are missing: [Industry]",
                        "fields": ["Industry"]
                    }]})
                } else if name.starts_with("lock") && {
                    let mut seen = self.locked_once.lock().unwrap();
                    if seen.contains(&name) {
                        false
                    } else {
                        seen.push(name.clone());
                        true
                    }
                } {
                    json!({"success": false, "errors": [{
                        "statusCode": "UNABLE_TO_LOCK_ROW",
                        "message": "unable to obtain exclusive access to this record",
                        "fields": []
                    }]})
                } else {
                    let id = r
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("001{name}"));
                    json!({"id": id, "success": true, "errors": []})
                }
            })
            .collect();
        ResponseTemplate::new(200)
            .insert_header("Sforce-Limit-Info", "api-usage=42/15000")
            .set_body_json(results)
    }
}

#[tokio::test]
async fn create_chunks_450_into_3_calls_with_per_record_errors() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let responder = Arc::new(Collections {
        sizes: Mutex::new(vec![]),
        locked_once: Mutex::new(vec![]),
    });
    struct Shared(Arc<Collections>);
    impl Respond for Shared {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            self.0.respond(req)
        }
    }
    Mock::given(method("POST"))
        .and(path(format!("{V}/composite/sobjects")))
        .respond_with(Shared(responder.clone()))
        .expect(3)
        .mount(&server)
        .await;
    let records: Vec<Fields> = (0..450)
        .map(|i| {
            let name = if i == 7 || i == 333 {
                format!("bad{i}")
            } else {
                format!("n{i}")
            };
            fields(&[("Name", json!(name)), ("Id", json!("ignored"))])
        })
        .collect();
    let c = client(&server);
    let results = c.create("Account", records).await.unwrap();
    assert_eq!(*responder.sizes.lock().unwrap(), vec![200, 200, 50]);
    assert_eq!(results.len(), 450);
    for (i, r) in results.iter().enumerate() {
        if i == 7 || i == 333 {
            assert!(!r.is_success());
            assert_eq!(r.errors[0].status_code, "REQUIRED_FIELD_MISSING");
            assert_eq!(r.errors[0].fields, vec!["Industry".to_string()]);
            assert_eq!(r.errors[0].class(), ErrorClass::Data);
            assert_eq!(r.error_class(), Some(ErrorClass::Data));
            assert_eq!(r.id, None);
        } else {
            assert!(r.is_success(), "{i}: {r:?}");
            assert_eq!(r.id.as_deref(), Some(format!("001n{i}").as_str()));
        }
    }
    assert_eq!(c.calls().writes, 3);
    assert_eq!(c.usage().map(|u| (u.used, u.max)), Some((42, 15000)));
}

#[tokio::test]
async fn row_lock_failures_are_resent_alone() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let responder = Arc::new(Collections {
        sizes: Mutex::new(vec![]),
        locked_once: Mutex::new(vec![]),
    });
    struct Shared(Arc<Collections>);
    impl Respond for Shared {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            self.0.respond(req)
        }
    }
    Mock::given(method("PATCH"))
        .and(path(format!("{V}/composite/sobjects")))
        .respond_with(Shared(responder.clone()))
        .expect(2)
        .mount(&server)
        .await;
    let c = client(&server);
    let results = c
        .update(
            "Account",
            vec![
                ("001A".into(), fields(&[("Name", json!("a"))])),
                ("001B".into(), fields(&[("Name", json!("lockb"))])),
                ("001C".into(), fields(&[("Name", json!("bad"))])),
            ],
        )
        .await
        .unwrap();
    assert_eq!(*responder.sizes.lock().unwrap(), vec![3, 1]);
    assert_eq!(results[0].id.as_deref(), Some("001A"));
    assert_eq!(results[1].id.as_deref(), Some("001B"));
    assert!(results[1].is_success());
    assert_eq!(results[2].error_class(), Some(ErrorClass::Data));
}

#[tokio::test]
async fn later_chunk_failure_keeps_earlier_results() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let ok: Vec<Value> = (0..200)
        .map(|i| json!({"id": format!("001{i}"), "success": true, "errors": []}))
        .collect();
    Mock::given(method("POST"))
        .and(path(format!("{V}/composite/sobjects")))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{V}/composite/sobjects")))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .mount(&server)
        .await;
    let c = client(&server);
    let records: Vec<Fields> = (0..250)
        .map(|i| fields(&[("Name", json!(format!("n{i}")))]))
        .collect();
    let results = c.create("Account", records).await.unwrap();
    assert_eq!(results.len(), 250);
    assert!(results[..200].iter().all(|r| r.is_success()));
    assert!(results[200..]
        .iter()
        .all(|r| r.error_class() == Some(ErrorClass::Transient)));
    // The 500 on a create is not re-sent.
    assert_eq!(c.calls().writes, 2);
}

#[tokio::test]
async fn upsert_uses_external_id_path() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("PATCH"))
        .and(path(format!("{V}/composite/sobjects/Account/PRM_Id__c")))
        .respond_with(|req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let recs = body["records"].as_array().unwrap();
            assert_eq!(recs.len(), 2);
            assert_eq!(recs[0]["PRM_Id__c"], json!("p1"));
            assert_eq!(recs[0]["attributes"]["type"], json!("Account"));
            assert!(recs[0].get("Id").is_none());
            ResponseTemplate::new(200).set_body_json(json!([
                {"id": "001A", "success": true, "errors": [], "created": true},
                {"id": "001B", "success": true, "errors": [], "created": false}
            ]))
        })
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let results = c
        .upsert(
            "Account",
            "PRM_Id__c",
            vec![
                fields(&[("PRM_Id__c", json!("p1")), ("Name", json!("A"))]),
                fields(&[("PRM_Id__c", json!("p2")), ("Name", json!("B"))]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(results[0].created, Some(true));
    assert_eq!(results[1].created, Some(false));
    assert_eq!(results[1].id.as_deref(), Some("001B"));
    assert!(c
        .upsert("Account", "PRM_Id__c", vec![])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn limit_info_tracked_and_reserve_enforced() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "Sforce-Limit-Info",
                    "api-usage=12500/15000, per-app-api-usage=17/250(appName=prmsync)",
                )
                .set_body_json(json!({"totalSize": 0, "done": true, "records": []})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut cfg = cfg(&server);
    cfg.api_reserve_percent = Some(20);
    let c = SalesforceClient::new(cfg).unwrap();
    assert_eq!(c.usage(), None);
    c.query("SELECT Id FROM Account").await.unwrap();
    let u = c.usage().unwrap();
    assert_eq!((u.used, u.max, u.remaining()), (12500, 15000, 2500));
    // 2500 left <= 20% of 15000: the next call is refused before it is sent.
    let e = c.query("SELECT Id FROM Account").await.unwrap_err();
    assert!(matches!(
        e,
        SfError::LimitReserve {
            used: 12500,
            max: 15000,
            reserve_percent: 20
        }
    ));
    assert!(e.is_limit());
    assert_eq!(c.calls().reads, 1);
}

#[tokio::test]
async fn limits_endpoint() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/limits")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "DailyApiRequests": {"Max": 15000, "Remaining": 14000},
            "DataStorageMB": {"Max": 5, "Remaining": 5}
        })))
        .mount(&server)
        .await;
    let c = client(&server);
    let u = c.limits().await.unwrap();
    assert_eq!((u.used, u.max), (1000, 15000));
    assert_eq!(c.usage(), Some(u));
}

#[tokio::test]
async fn get_describe_and_deleted() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/sobjects/Account/001A")))
        .and(query_param("fields", "Id,Name"))
        .respond_with(ResponseTemplate::new(200).set_body_json(record("Account", "001A", "Acme")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/sobjects/Account/001Z")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!([{
            "errorCode": "NOT_FOUND", "message": "The requested resource does not exist"
        }])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/sobjects/Account/describe")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "Account", "label": "Account", "custom": false,
            "fields": [
                {"name": "PRM_Id__c", "type": "string", "length": 255, "externalId": true,
                 "unique": true, "caseSensitive": false, "updateable": true, "createable": true,
                 "nillable": true, "picklistValues": [], "restrictedPicklist": false, "label": "PRM Id"},
                {"name": "PRM_Organization_Status__c", "type": "picklist", "length": 255,
                 "externalId": false, "updateable": true, "createable": true, "nillable": true,
                 "restrictedPicklist": true,
                 "picklistValues": [
                    {"value": "Active Partner", "label": "Active Partner", "active": true, "defaultValue": false},
                    {"value": "Old", "label": "Old", "active": false, "defaultValue": false}
                 ]}
            ]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/sobjects/Account/deleted/")))
        .and(query_param("start", "2026-11-20T00:00:00+00:00"))
        .and(query_param("end", "2026-11-22T10:00:00+00:00"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "deletedRecords": [{"id": "001D", "deletedDate": "2026-11-21T22:07:19.000+0000"}],
            "earliestDateAvailable": "2026-11-07T15:57:00.000+0000",
            "latestDateCovered": "2026-11-22T09:59:00.000+0000"
        })))
        .mount(&server)
        .await;

    let c = client(&server);
    let a = c
        .get("Account", "001A", &["Id", "Name"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.object.as_str(), a.id.as_str()), ("Account", "001A"));
    assert_eq!(a.str("Name"), Some("Acme"));
    assert!(c.get("Account", "001Z", &[]).await.unwrap().is_none());

    let d = c.describe("Account").await.unwrap();
    let ext = d.field("prm_id__c").unwrap();
    assert!(ext.external_id && ext.unique && ext.nillable);
    assert!(!ext.case_sensitive);
    assert_eq!(ext.length, 255);
    // the engine's view of the describe carries the flags and the label
    let fields = prmsync_engine::ports::Crm::describe(&c, "Account")
        .await
        .unwrap();
    let id = fields.iter().find(|f| f.name == "PRM_Id__c").unwrap();
    assert!(id.external_id && id.unique && !id.case_sensitive);
    assert_eq!(id.label, "PRM Id");
    let status = fields
        .iter()
        .find(|f| f.name == "PRM_Organization_Status__c")
        .unwrap();
    assert!(!status.external_id && !status.unique && !status.case_sensitive);
    let status = d.field("PRM_Organization_Status__c").unwrap();
    assert_eq!(status.field_type, "picklist");
    assert!(status.restricted_picklist);
    assert_eq!(
        status.active_values().collect::<Vec<_>>(),
        vec!["Active Partner"]
    );

    let start = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let del = c.get_deleted("Account", start, end).await.unwrap();
    assert_eq!(del.len(), 1);
    assert_eq!(del[0].id, "001D");
    assert_eq!(
        del[0].deleted_date,
        Utc.with_ymd_and_hms(2026, 11, 21, 22, 7, 19).unwrap()
    );
    let full = c.get_deleted_result("Account", start, end).await.unwrap();
    assert_eq!(
        full.latest_date_covered,
        Some(Utc.with_ymd_and_hms(2026, 11, 22, 9, 59, 0).unwrap())
    );
}

#[tokio::test]
async fn rejected_credentials_error_is_plain_and_secret_free() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client", "error_description": "invalid client credentials"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let e = c.query("SELECT Id FROM Account").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    let text = e.to_string();
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("SALESFORCE_CLIENT_SECRET"), "{text}");
    assert!(!text.contains(SECRET));
    assert!(!format!("{e:?}").contains(SECRET));
    assert_eq!(c.calls().auth, 1);
    assert_eq!(c.calls().api(), 0);
}

#[test]
fn debug_redacts_secrets() {
    let cfg = SalesforceConfig::new(
        "https://login.salesforce.com",
        Auth::ClientCredentials {
            client_id: "cid".into(),
            client_secret: SECRET.into(),
        },
    );
    let text = format!("{cfg:?}");
    assert!(text.contains("cid") && !text.contains(SECRET), "{text}");
    let c = SalesforceClient::new(cfg).unwrap();
    assert!(!format!("{c:?}").contains(SECRET));

    let pem = include_str!("fixtures/test_rsa_private.pem");
    let jwt = Auth::JwtBearer {
        client_id: "cid".into(),
        username: "u@example.com".into(),
        private_key_pem: pem.into(),
    };
    let text = format!("{jwt:?}");
    assert!(
        !text.contains("PRIVATE KEY") && text.contains("u@example.com"),
        "{text}"
    );
}

#[test]
fn config_errors() {
    let bad_key = SalesforceConfig::new(
        "https://login.salesforce.com",
        Auth::JwtBearer {
            client_id: "cid".into(),
            username: "u".into(),
            private_key_pem: format!(
                "-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----"
            ),
        },
    );
    let e = SalesforceClient::new(bad_key).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Setup);
    assert!(!e.to_string().contains(SECRET));
    let bad_url = SalesforceConfig::new(
        "not a url",
        Auth::ClientCredentials {
            client_id: "c".into(),
            client_secret: "s".into(),
        },
    );
    assert!(matches!(
        SalesforceClient::new(bad_url),
        Err(SfError::Insecure(_))
    ));
    // Plain HTTP away from this machine would send the client secret unencrypted.
    let plain = SalesforceConfig::new(
        "http://login.salesforce.com",
        Auth::ClientCredentials {
            client_id: "c".into(),
            client_secret: "s".into(),
        },
    );
    let e = SalesforceClient::new(plain).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Setup);
    let text = e.to_string();
    assert!(
        text.contains("Salesforce login URL http://login.salesforce.com")
            && text.contains("unencrypted")
            && text.contains("https://"),
        "{text}"
    );
    let empty = SalesforceConfig::new(
        "https://login.salesforce.com",
        Auth::ClientCredentials {
            client_id: "".into(),
            client_secret: "".into(),
        },
    );
    assert!(SalesforceClient::new(empty).is_err());
}

#[tokio::test]
async fn jwt_bearer_posts_signed_assertion() {
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    use prmsync_salesforce::JwtClaims;

    let server = MockServer::start().await;
    let aud = server.uri();
    let instance = server.uri();
    let seen: Arc<Mutex<Option<JwtClaims>>> = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .and(body_string_contains(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
        ))
        .respond_with(move |req: &Request| {
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
                .into_owned()
                .collect();
            let assertion = &form.iter().find(|(k, _)| k == "assertion").unwrap().1;
            let key =
                DecodingKey::from_rsa_pem(include_bytes!("fixtures/test_rsa_public.pem")).unwrap();
            let mut v = Validation::new(Algorithm::RS256);
            v.set_audience(&[aud.as_str()]);
            v.set_issuer(&["cid"]);
            let data = decode::<JwtClaims>(assertion, &key, &v).expect("valid signed assertion");
            let now = Utc::now().timestamp();
            assert!(data.claims.exp > now && data.claims.exp <= now + 185);
            *seen2.lock().unwrap() = Some(data.claims);
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "jwt-tok", "instance_url": instance, "token_type": "Bearer"
            }))
        })
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/limits")))
        .and(header("Authorization", "Bearer jwt-tok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "DailyApiRequests": {"Max": 100, "Remaining": 90}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let mut cfg = cfg(&server);
    cfg.auth = Auth::JwtBearer {
        client_id: "cid".into(),
        username: "integration@example.com".into(),
        private_key_pem: include_str!("fixtures/test_rsa_private.pem").into(),
    };
    let c = SalesforceClient::new(cfg).unwrap();
    assert_eq!(c.limits().await.unwrap().used, 10);
    let claims = seen.lock().unwrap().take().unwrap();
    assert_eq!(claims.iss, "cid");
    assert_eq!(claims.sub, "integration@example.com");
    assert_eq!(claims.aud, server.uri());
}

#[tokio::test]
async fn concurrent_use_shares_one_token() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(format!("{V}/query")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "totalSize": 0, "done": true, "records": []
        })))
        .expect(8)
        .mount(&server)
        .await;
    let c = client(&server);
    let mut handles = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            c.query("SELECT Id FROM Account").await.unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(c.calls().auth, 1);
}

#[tokio::test]
async fn token_for_a_foreign_instance_is_never_sent() {
    let server = MockServer::start().await;
    // The token answer names an instance outside Salesforce (e.g. a tampered login URL).
    Mock::given(method("POST"))
        .and(path("/services/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "stolen-if-sent", "instance_url": "https://collector.example.net",
            "token_type": "Bearer"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let err = c.limits().await.unwrap_err();
    assert!(matches!(err, SfError::UntrustedInstance { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Setup);
    assert!(
        err.to_string().contains("https://collector.example.net"),
        "{err}"
    );
    assert_eq!(c.instance_url(), None);
    assert_eq!(c.calls().api(), 0);
}
