//! DynamoDB state store.
