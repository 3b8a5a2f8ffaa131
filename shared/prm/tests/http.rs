//! The client against a scripted server (wiremock): retries, error mapping, paging.

use std::time::{Duration, Instant};

use prmsync_prm::{Collection, FieldError, ListQuery, PrmClient, PrmConfig, PrmError};
use serde_json::{json, Map, Value};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "s3cr3t-token-value";

fn client(server: &MockServer, max_retries: u32) -> PrmClient {
    let mut cfg = PrmConfig::new(server.uri(), TOKEN);
    cfg.max_retries = max_retries;
    cfg.timeout = Duration::from_secs(5);
    PrmClient::new(cfg).expect("client")
}

fn rec(id: &str, version: i64, updated_at: &str) -> Value {
    json!({"id": id, "version": version, "updated_at": updated_at, "deleted_at": null,
           "crm_id": null, "name": format!("Org {id}"), "custom": {}})
}

fn error_body(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn retries_a_503_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/organizations/org_1"))
        .respond_with(ResponseTemplate::new(503).set_body_json(error_body("internal", "down")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/organizations/org_1"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(rec(
            "org_1",
            2,
            "2026-11-22T10:15:30.123Z",
        )))
        .mount(&server)
        .await;
    let c = client(&server, 3);
    let r = c
        .get(Collection::Organizations, "org_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.id, "org_1");
    assert_eq!(r.version, 2);
    assert_eq!(r.field("name"), "Org org_1");
    assert_eq!(c.calls(), 2);
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error_body("internal", "boom")))
        .mount(&server)
        .await;
    let c = client(&server, 2);
    let err = c.settings().await.unwrap_err();
    assert_eq!(
        err,
        PrmError::Server {
            status: 500,
            message: "boom".into()
        }
    );
    assert!(err.is_transient());
    assert_eq!(c.calls(), 3);
}

#[tokio::test]
async fn honours_retry_after_on_429() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/settings"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(error_body("rate_limited", "slow down")),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/settings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "distributor_module": {"enabled": true, "partner_email_optional_for_distributor_owned": false},
            "deal_fields": [{"name": "stage", "required": true, "values": ["Prospecting"]}],
            "organization_fields": [], "person_fields": []
        })))
        .mount(&server)
        .await;
    let c = client(&server, 2);
    let started = Instant::now();
    let s = c.settings().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert!(s.distributor_module.enabled);
    assert_eq!(
        s.field(Collection::Deals, "stage").unwrap().values,
        Some(vec!["Prospecting".to_string()])
    );
    assert_eq!(c.calls(), 2);
}

#[tokio::test]
async fn rate_limit_without_retries_is_reported() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30"))
        .mount(&server)
        .await;
    let c = client(&server, 0);
    let err = c.groups().await.unwrap_err();
    assert_eq!(
        err,
        PrmError::RateLimited {
            retry_after: Duration::from_secs(30)
        }
    );
    assert_eq!(c.calls(), 1);
}

#[tokio::test]
async fn maps_412_to_version_conflict_without_retrying() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v1/people/per_1"))
        .and(header("if-match", "4"))
        .and(body_json(json!({"title": "CEO"})))
        .respond_with(
            ResponseTemplate::new(412).set_body_json(error_body("version_conflict", "moved")),
        )
        .mount(&server)
        .await;
    let c = client(&server, 3);
    let err = c
        .update(
            Collection::People,
            "per_1",
            4,
            &obj(json!({"title": "CEO"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err, PrmError::VersionConflict);
    assert!(!err.is_transient());
    assert_eq!(c.calls(), 1);
}

#[tokio::test]
async fn parses_422_fields_and_other_4xx_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/deals"))
        .and(header("idempotency-key", "006A"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({"error": {
            "code": "validation_failed", "message": "2 fields are invalid",
            "fields": [{"field": "stage", "message": "'Won' is not one of: Prospecting"},
                       {"field": "name", "message": "is required"}]}})))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(403).set_body_json(error_body("forbidden", "no")))
        .mount(&server)
        .await;
    let c = client(&server, 3);
    let err = c
        .create(Collection::Deals, "006A", &obj(json!({"stage": "Won"})))
        .await
        .unwrap_err();
    let PrmError::Validation { message, fields } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(message, "2 fields are invalid");
    assert_eq!(
        fields[0],
        FieldError {
            field: "stage".into(),
            message: "'Won' is not one of: Prospecting".into()
        }
    );
    assert_eq!(fields.len(), 2);
    let text = err.to_string();
    assert!(
        text.contains("stage: 'Won' is not one of") && text.contains("name: is required"),
        "{text}"
    );

    let err = c.delete(Collection::Deals, "deal_1").await.unwrap_err();
    assert!(matches!(err, PrmError::Server { status: 403, .. }));
    assert_eq!(c.calls(), 2);
}

#[tokio::test]
async fn list_follows_cursors_and_sends_filters() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/people"))
        .and(query_param("updated_since", "2026-11-22T10:00:00.000Z"))
        .and(query_param("email", "a@b.test"))
        .and(query_param("limit", "2"))
        .and(query_param_is_missing("cursor"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [rec("per_1", 1, "2026-11-22T10:00:00.000Z"), rec("per_2", 1, "2026-11-22T10:00:01.000Z")],
            "next_cursor": "c1"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/people"))
        .and(query_param("cursor", "c1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [rec("per_3", 1, "2026-11-22T10:00:02.000Z")], "next_cursor": null})))
        .mount(&server)
        .await;
    let c = client(&server, 0);
    let q = ListQuery {
        updated_since: Some("2026-11-22T10:00:00Z".parse().unwrap()),
        limit: Some(2),
        email: Some("a@b.test".into()),
        ..ListQuery::default()
    };
    let all = c.list(Collection::People, &q).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["per_1", "per_2", "per_3"]);
    assert_eq!(c.calls(), 2);
}

#[tokio::test]
async fn list_splits_more_than_200_ids() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/organizations"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": [], "next_cursor": null})),
        )
        .mount(&server)
        .await;
    let c = client(&server, 0);
    let q = ListQuery {
        ids: (0..450).map(|i| format!("org_{i}")).collect(),
        ..ListQuery::default()
    };
    assert!(c
        .list(Collection::Organizations, &q)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(c.calls(), 3);
    let requests = server.received_requests().await.unwrap();
    let counts: Vec<usize> = requests
        .iter()
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "ids")
                .map(|(_, v)| v.split(',').count())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(counts, [200, 200, 50]);
    assert!(matches!(
        c.list_page(Collection::Organizations, &q, None).await,
        Err(PrmError::Validation { .. })
    ));
}

#[tokio::test]
async fn get_404_is_none_and_401_is_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/deals/nope"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error_body("not_found", "no")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/groups"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(error_body("unauthorized", "bad token")),
        )
        .mount(&server)
        .await;
    let c = client(&server, 3);
    assert_eq!(c.get(Collection::Deals, "nope").await.unwrap(), None);
    assert_eq!(c.groups().await.unwrap_err(), PrmError::Unauthorized);
    assert_eq!(c.calls(), 2);
}

#[tokio::test]
async fn transport_errors_are_retried_and_reported() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut cfg = PrmConfig::new(format!("http://{addr}"), TOKEN);
    cfg.max_retries = 1;
    let c = PrmClient::new(cfg).unwrap();
    let err = c.settings().await.unwrap_err();
    assert!(matches!(err, PrmError::Transport(_)), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("PRM_API_URL"));
    assert_eq!(c.calls(), 2);
}

#[test]
fn token_never_appears_in_debug_or_display() {
    let cfg = PrmConfig::new("http://127.0.0.1:1", TOKEN);
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains(TOKEN), "{dbg}");
    assert!(dbg.contains("redacted"));
    let c = PrmClient::new(cfg).unwrap();
    assert!(!format!("{c:?}").contains(TOKEN));
    let errors = [
        PrmError::Unauthorized,
        PrmError::NotFound,
        PrmError::VersionConflict,
        PrmError::Validation {
            message: "m".into(),
            fields: vec![],
        },
        PrmError::Deleted,
        PrmError::RateLimited {
            retry_after: Duration::from_secs(3),
        },
        PrmError::Server {
            status: 502,
            message: "bad gateway".into(),
        },
        PrmError::Transport("connection refused".into()),
        PrmError::Decode("not json".into()),
    ];
    for e in &errors {
        let text = e.to_string();
        assert!(!text.contains(TOKEN), "{text}");
        assert!(
            text.starts_with("the PRM") || text.starts_with("could not reach"),
            "{text}"
        );
        assert!(!format!("{e:?}").contains(TOKEN));
    }
    assert!(errors[0].to_string().contains("PRM_API_TOKEN"));
    assert!(matches!(
        PrmClient::new(PrmConfig::new("not a url", TOKEN)),
        Err(PrmError::Insecure(_))
    ));
}

#[test]
fn plain_http_is_refused_away_from_loopback() {
    let err = PrmClient::new(PrmConfig::new("http://prm.example.com/api", TOKEN)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("PRM API URL http://prm.example.com")
            && text.contains("unencrypted")
            && text.contains("https://"),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    assert!(PrmClient::new(PrmConfig::new("https://prm.example.com/api", TOKEN)).is_ok());
    assert!(PrmClient::new(PrmConfig::new("http://127.0.0.1:8181", TOKEN)).is_ok());
    assert!(PrmClient::new(PrmConfig::new("http://localhost:8181", TOKEN)).is_ok());
}
