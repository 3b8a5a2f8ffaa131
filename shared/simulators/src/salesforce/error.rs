//! Salesforce-shaped errors: request-level errors (`[{message, errorCode, fields}]` with an
//! HTTP status) and per-record errors inside save results (`{statusCode, message, fields}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

/// A request-level REST error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    pub fn not_found() -> Self {
        ApiError::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    pub fn deleted() -> Self {
        ApiError::new(404, "ENTITY_IS_DELETED", "entity is deleted")
    }

    pub fn invalid_session() -> Self {
        ApiError::new(401, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    pub fn json_parse(message: impl Into<String>) -> Self {
        ApiError::new(400, "JSON_PARSER_ERROR", message)
    }

    pub fn unknown_field(field: &str, object: &str) -> Self {
        ApiError::new(
            400,
            "INVALID_FIELD",
            format!("No such column '{field}' on sobject of type {object}"),
        )
        .with_fields(vec![field.to_string()])
    }

    pub fn body(&self) -> serde_json::Value {
        json!([{ "message": self.message, "errorCode": self.code, "fields": self.fields }])
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        ApiError {
            status: 400,
            code: e.status_code,
            message: e.message,
            fields: e.fields,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self.body())).into_response()
    }
}

/// One error of one record in a save result.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{status_code}: {message}")]
pub struct RecordError {
    #[serde(rename = "statusCode")]
    pub status_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn new(code: &str, message: impl Into<String>, fields: Vec<String>) -> Self {
        RecordError {
            status_code: code.to_string(),
            message: message.into(),
            fields,
        }
    }

    pub fn rolled_back() -> Self {
        RecordError::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            Vec::new(),
        )
    }
}

/// Why one record's write failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteFail {
    /// The whole request is invalid (unknown field, unparsable value).
    #[error("{0}")]
    Request(ApiError),
    /// The record was rejected (validation).
    #[error("{0}")]
    Record(RecordError),
    /// No record with that Id.
    #[error("record not found")]
    NotFound,
    /// The record is in the recycle bin.
    #[error("entity is deleted")]
    Deleted,
    /// An upsert's external id value matched several records (their Ids).
    #[error("external id matches several records")]
    Ambiguous(Vec<String>),
}

impl From<RecordError> for WriteFail {
    fn from(e: RecordError) -> Self {
        WriteFail::Record(e)
    }
}

impl From<ApiError> for WriteFail {
    fn from(e: ApiError) -> Self {
        WriteFail::Request(e)
    }
}
