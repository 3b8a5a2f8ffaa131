use super::*;

const KEY: &str = include_str!("../tests/fixtures/test_rsa_private.pem");

/// A client-credentials connection with recognisable secret values.
fn conn() -> Connection {
    Connection {
        salesforce_login_url: "https://login.salesforce.com".into(),
        salesforce_client_id: "cid-123".into(),
        salesforce_client_secret: Some("very-secret".into()),
        prm_api_url: "https://prm.example.com".into(),
        prm_api_token: "tok-456".into(),
        prm_webhook_secret: Some("hook-789".into()),
        ..Connection::default()
    }
}

fn jwt(mut c: Connection) -> Connection {
    c.salesforce_username = Some("integration@example.com".into());
    c.salesforce_jwt_key = Some(KEY.into());
    c
}

fn err_of<T: std::fmt::Debug>(r: Result<T, ConnectError>) -> (ConnectError, String) {
    let e = r.unwrap_err();
    let s = e.to_string();
    (e, s)
}

#[test]
fn jwt_bearer_wins_when_a_username_and_a_key_are_given() {
    // with a client secret too: the JWT flow, the secret unused
    let c = jwt(conn());
    match c.auth().unwrap() {
        Auth::JwtBearer {
            client_id,
            username,
            private_key_pem,
        } => {
            assert_eq!(client_id, "cid-123");
            assert_eq!(username, "integration@example.com");
            assert_eq!(private_key_pem, KEY);
        }
        other => panic!("expected the JWT bearer flow, got {other:?}"),
    }
    // and without one
    let c = Connection {
        salesforce_client_secret: None,
        ..jwt(conn())
    };
    assert!(matches!(c.auth().unwrap(), Auth::JwtBearer { .. }));
    // the key is a valid RSA key: the client builds
    c.clients(&MappingConfig::default()).unwrap();
}

#[test]
fn client_credentials_when_a_secret_is_given_without_a_jwt_key() {
    assert!(matches!(
        conn().auth().unwrap(),
        Auth::ClientCredentials { ref client_id, ref client_secret }
            if client_id == "cid-123" && client_secret == "very-secret"
    ));
    // a username alone does not make the JWT flow
    let c = Connection {
        salesforce_username: Some("integration@example.com".into()),
        ..conn()
    };
    assert!(matches!(c.auth().unwrap(), Auth::ClientCredentials { .. }));
}

#[test]
fn half_a_jwt_flow_is_refused_naming_the_missing_half() {
    // a key without a username, even with a client secret
    let c = Connection {
        salesforce_jwt_key: Some(KEY.into()),
        ..conn()
    };
    let (e, s) = err_of(c.auth());
    assert!(matches!(e, ConnectError::JwtKeyWithoutUsername), "{e:?}");
    assert!(
        s.contains("SALESFORCE_USERNAME") && s.contains("salesforce_username"),
        "{s}"
    );
    // a username without a key, and no client secret
    let c = Connection {
        salesforce_client_secret: None,
        salesforce_username: Some("integration@example.com".into()),
        ..conn()
    };
    let (e, s) = err_of(c.auth());
    assert!(matches!(e, ConnectError::JwtUsernameWithoutKey), "{e:?}");
    assert!(
        s.contains("SALESFORCE_JWT_KEY_FILE") && s.contains("salesforce_jwt_key"),
        "{s}"
    );
}

#[test]
fn no_salesforce_credentials_names_both_flows_on_both_sides() {
    let c = Connection {
        salesforce_client_secret: None,
        ..conn()
    };
    let (e, s) = err_of(c.clients(&MappingConfig::default()));
    assert!(matches!(e, ConnectError::NoSalesforceCredentials), "{e:?}");
    for name in [
        "SALESFORCE_CLIENT_SECRET",
        "salesforce_client_secret",
        "SALESFORCE_USERNAME",
        "SALESFORCE_JWT_KEY_FILE",
        "salesforce_username",
        "salesforce_jwt_key",
    ] {
        assert!(s.contains(name), "{name} in {s}");
    }
}

#[test]
fn blank_values_count_as_absent() {
    let c = Connection {
        salesforce_client_secret: Some("  ".into()),
        salesforce_username: Some(String::new()),
        salesforce_jwt_key: Some("\n".into()),
        ..conn()
    };
    let (e, _) = err_of(c.auth());
    assert!(matches!(e, ConnectError::NoSalesforceCredentials), "{e:?}");
    let c = Connection {
        salesforce_jwt_audience: Some(" ".into()),
        prm_webhook_secret: Some(String::new()),
        ..conn()
    };
    let cfg = c.salesforce_config(&MappingConfig::default()).unwrap();
    assert_eq!(cfg.jwt_audience, None);
    assert_eq!(c.webhook_secret(), None);
    assert_eq!(conn().webhook_secret().as_deref(), Some("hook-789"));
}

#[test]
fn each_missing_required_setting_is_named_for_the_cli_and_the_secret() {
    /// Unsets one setting; the setting; its CLI and secret names.
    type Case = (fn(&mut Connection), Setting, &'static str, &'static str);
    let cases: [Case; 4] = [
        (
            |c| c.salesforce_login_url.clear(),
            Setting::SalesforceLoginUrl,
            "SALESFORCE_LOGIN_URL",
            "salesforce_login_url",
        ),
        (
            |c| c.salesforce_client_id = " ".into(),
            Setting::SalesforceClientId,
            "SALESFORCE_CLIENT_ID",
            "salesforce_client_id",
        ),
        (
            |c| c.prm_api_url.clear(),
            Setting::PrmApiUrl,
            "PRM_API_URL",
            "prm_api_url",
        ),
        (
            |c| c.prm_api_token.clear(),
            Setting::PrmApiToken,
            "PRM_API_TOKEN",
            "prm_api_token",
        ),
    ];
    for (unset, setting, cli, secret) in cases {
        let mut c = conn();
        unset(&mut c);
        let (e, s) = err_of(c.clients(&MappingConfig::default()));
        assert!(
            matches!(e, ConnectError::Missing(m) if m == setting),
            "{setting:?}: {e:?}"
        );
        assert!(
            s.contains(cli) && s.contains(secret) && s.contains(setting.what()),
            "{s}"
        );
    }
}

#[test]
fn the_jwt_audience_is_the_connections_or_the_login_url() {
    let c = jwt(conn());
    let (crm, _) = c.clients(&MappingConfig::default()).unwrap();
    assert_eq!(
        crm.config().jwt_audience,
        None,
        "the client uses the login URL"
    );
    let c = Connection {
        salesforce_login_url: "https://acme.my.salesforce.com".into(),
        salesforce_jwt_audience: Some("https://test.salesforce.com".into()),
        ..jwt(conn())
    };
    let (crm, _) = c.clients(&MappingConfig::default()).unwrap();
    assert_eq!(
        crm.config().jwt_audience.as_deref(),
        Some("https://test.salesforce.com")
    );
    assert_eq!(crm.config().login_url, "https://acme.my.salesforce.com");
}

#[test]
fn the_mappings_salesforce_settings_are_applied() {
    let mut mapping = MappingConfig::default();
    mapping.salesforce.api_version = "61.0".into();
    mapping.salesforce.bulk_query_threshold = 0;
    mapping.salesforce.bulk_ingest_threshold = 0;
    let (crm, _) = conn().clients(&mapping).unwrap();
    assert_eq!(crm.config().api_version, "61.0");
    assert_eq!(crm.config().bulk_query_threshold, 0);
    assert_eq!(crm.config().bulk_ingest_threshold, 0);
    // the defaults otherwise
    let (crm, _) = conn().clients(&MappingConfig::default()).unwrap();
    assert_eq!(crm.config().api_version, "62.0");
    assert_eq!(crm.config().bulk_query_threshold, 10_000);
    assert_eq!(crm.config().bulk_ingest_threshold, 2_000);
    assert_eq!(crm.config().api_reserve_percent, None);
}

#[test]
fn debug_shows_no_secret_but_says_which_are_given() {
    let c = Connection {
        salesforce_jwt_audience: Some("https://login.salesforce.com".into()),
        ..jwt(conn())
    };
    let shown = format!("{c:?}");
    for secret in [
        "cid-123",
        "very-secret",
        "tok-456",
        "hook-789",
        "PRIVATE KEY",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("https://login.salesforce.com")
            && shown.contains("integration@example.com")
            && shown.contains("https://prm.example.com")
            && shown.contains("salesforce_client_secret: Some(\"<redacted>\")"),
        "{shown}"
    );
    let none = format!(
        "{:?}",
        Connection {
            prm_webhook_secret: None,
            ..conn()
        }
    );
    assert!(none.contains("prm_webhook_secret: None"), "{none}");
}

#[test]
fn invalid_urls_are_typed_errors_that_show_no_secret() {
    let c = Connection {
        salesforce_login_url: "login.salesforce.com".into(),
        ..conn()
    };
    let (e, s) = err_of(c.clients(&MappingConfig::default()));
    assert!(
        matches!(
            e,
            ConnectError::Insecure {
                setting: Setting::SalesforceLoginUrl,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(s.contains("login_url") && !s.contains("very-secret"), "{s}");

    let c = Connection {
        prm_api_url: "not a url".into(),
        ..conn()
    };
    let (e, s) = err_of(c.clients(&MappingConfig::default()));
    assert!(
        matches!(
            e,
            ConnectError::Insecure {
                setting: Setting::PrmApiUrl,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(s.contains("prm_api_url") && !s.contains("tok-456"), "{s}");

    let c = Connection {
        salesforce_jwt_key: Some("not a key".into()),
        salesforce_username: Some("u@example.com".into()),
        ..conn()
    };
    let (e, s) = err_of(c.clients(&MappingConfig::default()));
    assert!(matches!(e, ConnectError::Salesforce(_)), "{e:?}");
    assert!(!s.contains("not a key"), "{s}");
}

#[test]
fn plain_http_is_refused_off_loopback_naming_the_setting_and_the_fix() {
    for (c, setting, shown) in [
        (
            Connection {
                salesforce_login_url: "http://login.salesforce.com".into(),
                ..conn()
            },
            Setting::SalesforceLoginUrl,
            "Salesforce login URL http://login.salesforce.com",
        ),
        (
            Connection {
                prm_api_url: "http://prm.example.com/api".into(),
                ..conn()
            },
            Setting::PrmApiUrl,
            "PRM API URL http://prm.example.com",
        ),
    ] {
        let (e, s) = err_of(c.clients(&MappingConfig::default()));
        assert!(
            matches!(e, ConnectError::Insecure { setting: ref got, .. } if *got == setting),
            "{e:?}"
        );
        assert!(s.contains(shown) && s.contains("unencrypted"), "{s}");
        assert!(
            s.contains(setting.cli()) && s.contains(setting.secret()),
            "{s}"
        );
        assert!(!s.contains("very-secret") && !s.contains("tok-456"), "{s}");
    }
    // the simulators on this machine
    let c = Connection {
        salesforce_login_url: "http://127.0.0.1:4010".into(),
        prm_api_url: "http://localhost:4020".into(),
        ..conn()
    };
    c.clients(&MappingConfig::default()).unwrap();
}

#[test]
fn the_sync_context_has_the_one_lease_ttl_the_mapping_and_the_holder() {
    let mut mapping = MappingConfig::default();
    mapping.salesforce.bulk_query_threshold = 5;
    let store: Arc<dyn Store> = Arc::new(prmsync_state_sqlite::SqliteStore::in_memory());
    let ctx = conn()
        .sync_context(mapping.clone(), store, "host-1")
        .unwrap();
    assert_eq!(ctx.lease_ttl, LEASE_TTL);
    assert_eq!(LEASE_TTL, chrono::Duration::minutes(30));
    assert_eq!(ctx.holder, "host-1");
    assert_eq!(*ctx.mapping, mapping);
}
