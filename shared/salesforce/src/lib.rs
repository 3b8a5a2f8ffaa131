//! prmsync Salesforce REST client.
//!
//! - [`SalesforceClient`]: OAuth (client credentials or JWT bearer, token cached and refreshed
//!   once on `INVALID_SESSION_ID`), SOQL queries with paging, sObject Collections
//!   create/update/upsert in chunks of 200, describe, getDeleted, limits; retries transient
//!   errors with exponential backoff and full jitter; tracks `Sforce-Limit-Info`. Its calls
//!   live in `client/` by role: `request` (the one request path), `query`, `collections`
//!   and `describe`.
//! - Bulk API 2.0 query jobs ([`SalesforceClient::bulk_query_pages`]): create, poll, read
//!   the CSV result sets into the same [`SObject`]s the REST query returns.
//! - Bulk API 2.0 ingest jobs ([`SalesforceClient::ingest`]): updates and upserts of many
//!   records in a handful of calls, with the per-record results Collections would give.
//! - [`port`]: the engine's Crm port over the client (change queries, look-ups, writes).
//! - [`soql`]: a SOQL builder that always escapes values.
//! - [`SfError`] / [`ErrorClass`]: errors classified by what the engine should do with them
//!   ([`classify`]).

mod auth;
mod bulk;
mod client;
mod error;
mod ingest;
pub mod port;
mod retry;
pub mod soql;
mod types;

pub use auth::{Auth, JwtClaims};
pub use bulk::{BulkJobError, BulkQueryOptions, BulkResults};
pub use client::{SalesforceClient, SalesforceConfig, COLLECTION_CHUNK};
pub use error::{classify, ErrorClass, SfError};
pub use ingest::{parse_error_text, IngestOperation, IngestOptions};
pub use retry::Backoff;
pub use soql::escape_literal;
pub use types::{
    format_datetime, parse_date, parse_datetime, ApiUsage, CallCounts, DeletedRecord,
    DeletedResult, Describe, FieldDescribe, Fields, PicklistValue, RecordError, RecordResult,
    SObject,
};
