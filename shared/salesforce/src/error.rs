//! Errors and their classification: each Salesforce error code (or, failing that, HTTP
//! status) maps to what the engine should do with it ([`classify`]).

use serde::{Deserialize, Serialize};

/// What the engine should do with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Session/credentials problem: refresh the token once, then give up.
    Auth,
    /// Limits, server unavailable, 5xx, timeouts, row locks: back off and retry.
    Transient,
    /// The record's data was rejected: no retry, log the field and a fix.
    Data,
    /// The record is deleted / not found: mark the link disconnected.
    Gone,
    /// Org setup (missing field, object or permission): stop the integration.
    Setup,
    /// Anything else; callers treat it like `Data`.
    Other,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Auth => "auth",
            ErrorClass::Transient => "transient",
            ErrorClass::Data => "data",
            ErrorClass::Gone => "gone",
            ErrorClass::Setup => "setup",
            ErrorClass::Other => "other",
        }
    }

    /// Whether the client (or a caller) may retry the same request.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient)
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classify a Salesforce error code, optionally with the HTTP status of the response
/// that carried it (per-record errors in collections have no status of their own).
///
/// The codes listed below are the whole table; unknown codes fall back to the HTTP status,
/// and then to `Other`.
pub fn classify(status: Option<u16>, code: &str) -> ErrorClass {
    match code {
        "INVALID_SESSION_ID" => return ErrorClass::Auth,
        "REQUEST_LIMIT_EXCEEDED" | "SERVER_UNAVAILABLE" | "UNABLE_TO_LOCK_ROW" => {
            return ErrorClass::Transient
        }
        "FIELD_CUSTOM_VALIDATION_EXCEPTION"
        | "REQUIRED_FIELD_MISSING"
        | "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        | "STRING_TOO_LONG"
        | "DUPLICATE_VALUE"
        | "DUPLICATES_DETECTED"
        | "INVALID_EMAIL_ADDRESS" => return ErrorClass::Data,
        "ENTITY_IS_DELETED" | "NOT_FOUND" => return ErrorClass::Gone,
        // A field the integration user may not edit (field-level security) or that does
        // not exist: the setup, never the record.
        "INVALID_FIELD" | "INVALID_TYPE" | "INVALID_FIELD_FOR_INSERT_UPDATE" => {
            return ErrorClass::Setup
        }
        // For a whole call, the object's permissions; for one record of a Collection (no
        // status of its own), that record's sharing: it fails alone.
        "INSUFFICIENT_ACCESS_OR_READONLY" if status.is_some() => return ErrorClass::Setup,
        "INSUFFICIENT_ACCESS_OR_READONLY" => return ErrorClass::Data,
        _ => {}
    }
    match status {
        Some(401) => ErrorClass::Auth,
        Some(404) => ErrorClass::Gone,
        Some(408) | Some(429) => ErrorClass::Transient,
        Some(s) if s >= 500 => ErrorClass::Transient,
        _ => ErrorClass::Other,
    }
}

/// Plain-words fix for an error class, used in `Display`.
pub(crate) fn fix_for(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Auth => {
            "the session was rejected; check that the connected app is still enabled and the \
             integration user is active, then run again"
        }
        ErrorClass::Transient => {
            "Salesforce is busy, unavailable or out of API requests; prmsync retries later \
             automatically, and if it persists check the org's API usage under Setup > Company \
             Information"
        }
        ErrorClass::Data => {
            "fix the record's value in the named field (or the mapping that produced it) and \
             save the record again"
        }
        ErrorClass::Gone => {
            "the record was deleted or merged in Salesforce; relink it or let prmsync mark the \
             link disconnected"
        }
        ErrorClass::Setup => {
            "check that the field/object exists with this API name, that the mapping file uses \
             the right name, and that the integration user's profile or permission set can \
             read and edit it"
        }
        ErrorClass::Other => {
            "see the Salesforce message; if it names a field, correct that value or the mapping"
        }
    }
}

/// Errors from the Salesforce client. `Display` says what went wrong and how to fix it,
/// and never contains secrets (client secret, private key, access token).
#[derive(Debug, thiserror::Error)]
pub enum SfError {
    /// The OAuth token request was rejected.
    #[error(
        "Salesforce rejected the token request (HTTP {status}, {error}: {description}). Check \
         SALESFORCE_LOGIN_URL and SALESFORCE_CLIENT_ID, and SALESFORCE_CLIENT_SECRET (client \
         credentials flow) or SALESFORCE_USERNAME and the private key matching the certificate \
         uploaded to the connected app (JWT bearer flow); make sure the connected app allows \
         this flow and the integration user is pre-authorized"
    )]
    Auth {
        status: u16,
        error: String,
        description: String,
    },

    /// A request-level API error (the whole call failed).
    #[error(
        "Salesforce answered HTTP {status} {code}: {message}{}. Fix: {}",
        fields_suffix(fields),
        fix_for(*class)
    )]
    Api {
        status: u16,
        code: String,
        message: String,
        fields: Vec<String>,
        class: ErrorClass,
    },

    /// The API reserve configured in `SalesforceConfig::api_reserve_percent` was reached.
    #[error(
        "stopped before using the org's API reserve: {used} of {max} daily API requests used \
         and {reserve_percent}% is kept in reserve. The run resumes when the 24-hour usage \
         drops; lower the reserve or raise the org's API allocation to go on now"
    )]
    LimitReserve {
        used: u64,
        max: u64,
        reserve_percent: u8,
    },

    /// Network problem or timeout (after retries).
    #[error(
        "could not reach Salesforce{}: {message}. Check the network, login_url/instance URL \
         and the request timeout; prmsync retries later",
        if *timeout { " (timed out)" } else { "" }
    )]
    Transport { message: String, timeout: bool },

    /// A response body was not what the API documents.
    #[error(
        "Salesforce answered {context} with a body prmsync could not read ({message}). Check \
         that login_url points at Salesforce and that api_version is supported by the org"
    )]
    Decode { context: String, message: String },

    /// Invalid client configuration.
    #[error("Salesforce client configuration is invalid: {0}")]
    Config(String),

    /// The login URL is plain `http://` away from this machine, or not a URL.
    #[error(transparent)]
    Insecure(#[from] prmsync_transport::InsecureUrl),

    /// A query with a field or object name outside the API-name alphabet: never sent.
    #[error(transparent)]
    Query(#[from] crate::soql::SoqlError),

    /// The token response named an instance that is not Salesforce: the token is not sent.
    #[error(
        "the Salesforce token response named the instance {instance}, which is neither an \
         https:// Salesforce domain ({}) nor the login host {login_host}: prmsync did not \
         send the access token there. Check that SALESFORCE_LOGIN_URL (or [salesforce] \
         login_url) is your org's login URL: https://login.salesforce.com, \
         https://test.salesforce.com or your My Domain URL",
        crate::auth::SALESFORCE_DOMAINS.map(|d| format!("*.{d}")).join(", ")
    )]
    UntrustedInstance {
        instance: String,
        login_host: String,
    },

    /// An absolute URL (a `nextRecordsUrl`, a result locator) that is not on the instance
    /// the token belongs to: the token is not sent there.
    #[error(
        "Salesforce answered with a link to {host}, which is not this org's instance {instance}: prmsync did not send the access token there. This is not something a Salesforce org does; check for a proxy rewriting the responses"
    )]
    ForeignUrl { host: String, instance: String },

    /// A Bulk API 2.0 query job failed, was aborted or did not finish in time.
    #[error(transparent)]
    BulkJob(#[from] crate::bulk::BulkJobError),
}

fn fields_suffix(fields: &[String]) -> String {
    if fields.is_empty() {
        String::new()
    } else {
        format!(" (fields: {})", fields.join(", "))
    }
}

impl SfError {
    /// The class that decides what the engine does with this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            SfError::Auth { .. } => ErrorClass::Auth,
            SfError::Api { class, .. } => *class,
            SfError::LimitReserve { .. } => ErrorClass::Transient,
            SfError::Transport { .. } => ErrorClass::Transient,
            SfError::Decode { .. } => ErrorClass::Other,
            SfError::Config(_)
            | SfError::Insecure(_)
            | SfError::UntrustedInstance { .. }
            | SfError::ForeignUrl { .. }
            | SfError::Query(_) => ErrorClass::Setup,
            SfError::BulkJob(e) => e.class(),
        }
    }

    /// True for errors that mean "stop the run cleanly, resume later" because of API limits
    /// (`LimitReserve`, or `REQUEST_LIMIT_EXCEEDED` after retries).
    pub fn is_limit(&self) -> bool {
        match self {
            SfError::LimitReserve { .. } => true,
            SfError::Api { code, .. } => code == "REQUEST_LIMIT_EXCEEDED",
            _ => false,
        }
    }

    /// The Salesforce error code, when there is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SfError::Api { code, .. } => Some(code),
            SfError::Auth { error, .. } => Some(error),
            _ => None,
        }
    }

    pub(crate) fn decode(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        SfError::Decode {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

/// Body of a REST error: `[{"message","errorCode","fields"}]`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiErrorItem {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "errorCode")]
    pub error_code: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// OAuth error body: `{"error","error_description"}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OAuthErrorBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

/// Build an `SfError::Api` from an error response.
pub(crate) fn api_error_from_body(status: u16, body: &[u8]) -> SfError {
    let items: Option<Vec<ApiErrorItem>> = serde_json::from_slice::<Vec<ApiErrorItem>>(body)
        .ok()
        .or_else(|| {
            serde_json::from_slice::<ApiErrorItem>(body)
                .ok()
                .map(|i| vec![i])
        });
    let (code, message, fields) = match items {
        Some(items) if !items.is_empty() => {
            let code = items[0].error_code.clone();
            let message = items
                .iter()
                .map(|i| i.message.as_str())
                .filter(|m| !m.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let mut fields: Vec<String> = Vec::new();
            for i in &items {
                for f in &i.fields {
                    if !fields.contains(f) {
                        fields.push(f.clone());
                    }
                }
            }
            (code, message, fields)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(300).collect();
            (
                default_code(status).to_string(),
                if text.trim().is_empty() {
                    format!("HTTP {status} with no error body")
                } else {
                    text
                },
                Vec::new(),
            )
        }
    };
    let class = classify(Some(status), &code);
    SfError::Api {
        status,
        code,
        message,
        fields,
        class,
    }
}

fn default_code(status: u16) -> &'static str {
    match status {
        401 => "INVALID_SESSION_ID",
        404 => "NOT_FOUND",
        503 => "SERVER_UNAVAILABLE",
        _ => "HTTP_ERROR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_classification() {
        assert_eq!(classify(Some(401), "INVALID_SESSION_ID"), ErrorClass::Auth);
        assert_eq!(
            classify(Some(403), "REQUEST_LIMIT_EXCEEDED"),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(Some(503), "SERVER_UNAVAILABLE"),
            ErrorClass::Transient
        );
        assert_eq!(classify(Some(502), "WHATEVER"), ErrorClass::Transient);
        assert_eq!(classify(None, "UNABLE_TO_LOCK_ROW"), ErrorClass::Transient);
        for c in [
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "REQUIRED_FIELD_MISSING",
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            "STRING_TOO_LONG",
            "DUPLICATE_VALUE",
            "DUPLICATES_DETECTED",
            "INVALID_EMAIL_ADDRESS",
        ] {
            assert_eq!(classify(None, c), ErrorClass::Data, "{c}");
        }
        assert_eq!(classify(None, "ENTITY_IS_DELETED"), ErrorClass::Gone);
        assert_eq!(classify(Some(404), "NOT_FOUND"), ErrorClass::Gone);
        assert_eq!(classify(Some(404), ""), ErrorClass::Gone);
        for c in [
            "INVALID_FIELD",
            "INVALID_TYPE",
            "INSUFFICIENT_ACCESS_OR_READONLY",
        ] {
            assert_eq!(classify(Some(400), c), ErrorClass::Setup, "{c}");
        }
        // Field-level security refuses the field, for every record.
        assert_eq!(
            classify(None, "INVALID_FIELD_FOR_INSERT_UPDATE"),
            ErrorClass::Setup
        );
        // One record not shared with the integration user fails alone.
        assert_eq!(
            classify(None, "INSUFFICIENT_ACCESS_OR_READONLY"),
            ErrorClass::Data
        );
        assert_eq!(classify(Some(400), "MALFORMED_QUERY"), ErrorClass::Other);
        assert_eq!(classify(None, "SOMETHING_NEW"), ErrorClass::Other);
    }

    #[test]
    fn parses_error_array() {
        let body = br#"[{"message":"No such column 'Foo__c'","errorCode":"INVALID_FIELD","fields":["Foo__c"]}]"#;
        match api_error_from_body(400, body) {
            SfError::Api {
                status,
                code,
                fields,
                class,
                ..
            } => {
                assert_eq!(status, 400);
                assert_eq!(code, "INVALID_FIELD");
                assert_eq!(fields, vec!["Foo__c".to_string()]);
                assert_eq!(class, ErrorClass::Setup);
            }
            e => panic!("unexpected {e:?}"),
        }
        let e = api_error_from_body(502, b"<html>bad gateway</html>");
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e.to_string().contains("502"));
    }
}
