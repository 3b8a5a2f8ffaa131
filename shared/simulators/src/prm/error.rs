//! The error a simulated PRM request ends with, in the contract's error shape.

use serde::Serialize;
use serde_json::{json, Value};

/// One problem in a request body or query, as listed in `error.fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error answer of the simulated PRM: HTTP status, contract error code, message and,
/// for `validation_failed`, one entry per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl SimError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "missing or invalid bearer token")
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(404, "not_found", format!("{what} '{id}' does not exist"))
    }

    pub fn deleted(id: &str) -> Self {
        Self::new(409, "deleted", format!("record '{id}' is deleted"))
    }

    pub fn version_conflict(id: &str, expected: i64, actual: i64) -> Self {
        Self::new(
            412,
            "version_conflict",
            format!("record '{id}' is at version {actual}, not {expected}"),
        )
    }

    pub fn validation(fields: Vec<FieldError>) -> Self {
        let message = match fields.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self {
            status: 422,
            code: "validation_failed".to_string(),
            message,
            fields,
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// The contract's error body.
    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.fields.is_empty() {
            error["fields"] = json!(self.fields);
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)?;
        for fe in &self.fields {
            write!(f, "; {}: {}", fe.field, fe.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SimError {}
