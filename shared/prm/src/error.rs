//! Errors of the PRM client. Each message says what went wrong and what to do about it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One invalid field of a `422 validation_failed` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrmError {
    #[error("the PRM rejected the API token (401): check PRM_API_TOKEN")]
    Unauthorized,
    #[error("the PRM record does not exist (404): check the id, or unlink the record if it was removed from the PRM")]
    NotFound,
    #[error("the PRM record changed since it was read (412 version_conflict): read it again and reapply the change")]
    VersionConflict,
    #[error("the PRM rejected the values (422 validation_failed): {}; fix the values in the source record or the field mapping so they match the PRM settings", describe(.message, .fields))]
    Validation {
        message: String,
        fields: Vec<FieldError>,
    },
    #[error(
        "the PRM record is deleted (409) and cannot be changed: restore it in the PRM or unlink it"
    )]
    Deleted,
    #[error("the PRM is rate limiting requests (429; retry after {} s): wait, or lower the sync frequency or batch size", .retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    #[error("the PRM answered HTTP {status}: {message}; if it persists, check the PRM's status or contact its support")]
    Server { status: u16, message: String },
    #[error("could not reach the PRM ({0}): check PRM_API_URL and the network")]
    Transport(String),
    /// `PRM_API_URL` is plain `http://` away from this machine, or not a URL.
    #[error(transparent)]
    Insecure(#[from] prmsync_transport::InsecureUrl),
    #[error("the PRM sent a response that does not follow the API contract ({0}): check that PRM_API_URL points at a PRM API v1")]
    Decode(String),
}

fn describe(message: &str, fields: &[FieldError]) -> String {
    if fields.is_empty() {
        return message.to_string();
    }
    fields
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl PrmError {
    /// Whether the same request may succeed later: rate limits, 5xx and transport errors.
    pub fn is_transient(&self) -> bool {
        match self {
            PrmError::RateLimited { .. } | PrmError::Transport(_) => true,
            PrmError::Server { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
