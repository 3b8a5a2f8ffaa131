//! The continuation's Lambda call, against a stand-in Lambda API: an asynchronous
//! (`Event`) invocation of the function with the continuation payload, and a refusal that
//! names the function and the fix.

use aws_sdk_lambda::config::{Credentials, Region};
use prmsync_lambda::relaunch::{LambdaRelaunch, Relaunch};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn client(endpoint: &str) -> aws_sdk_lambda::Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

#[tokio::test]
async fn a_continuation_is_an_event_invocation_of_the_same_function() {
    let server = MockServer::start().await;
    let payload = json!({"integration": "people", "continue_run": "run-1"});
    Mock::given(method("POST"))
        .and(path("/2015-03-31/functions/prmsync-full-sync/invocations"))
        .and(header("x-amz-invocation-type", "Event"))
        .and(body_json(&payload))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&server)
        .await;
    LambdaRelaunch::new(client(&server.uri()), "prmsync-full-sync")
        .relaunch(&payload)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refused_continuation_names_the_function_and_the_fix() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-amzn-errortype", "AccessDeniedException")
                .set_body_json(json!({"Type": "User", "message": "not authorized to perform: lambda:InvokeFunction"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = LambdaRelaunch::new(client(&server.uri()), "prmsync-full-sync")
        .relaunch(&json!({"integration": "people", "continue_run": "run-1"}))
        .await
        .unwrap_err();
    assert!(
        err.contains("prmsync-full-sync")
            && err.contains("lambda:InvokeFunction")
            && err.contains("next scheduled run"),
        "{err}"
    );
}
