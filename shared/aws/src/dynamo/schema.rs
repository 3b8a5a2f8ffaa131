//! The two tables: their keys, indexes and TTL, and creating them.

use std::time::Duration as StdDuration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use prmsync_engine::store::StoreError;
use std::fmt::Debug;

use super::{backoff, build_err, DynamoStore, Table};

/// How long log entries are kept (the log table's TTL).
pub const LOG_RETENTION_DAYS: i64 = 90;

/// Index of links by `crm_key` = `<object>#<crm_id>`.
pub const BY_CRM_KEY: &str = "by_crm_key";
/// Sparse index of links to retry by `retry_key` = `<object>`.
pub const BY_RETRY_KEY: &str = "by_retry_key";
/// Sparse index of open (unacknowledged) warnings and errors.
pub const BY_OPEN: &str = "by_open";
/// The log table's TTL attribute: when an entry expires (seconds since the epoch).
const EXPIRES_AT: &str = "expires_at";

impl DynamoStore {
    /// Creates both tables (keys, indexes, on-demand billing, TTL on `expires_at`) unless
    /// they exist, and waits until they are active. For tests and local use: deployments
    /// create them with the stack.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_err)
        };
        let key_el = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(build_err)
        };
        let all = Projection::builder()
            .projection_type(ProjectionType::All)
            .build();
        let gsi = |name: &str, hash: &str, range: Option<&str>| -> Result<_, StoreError> {
            let mut b = GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key_el(hash, KeyType::Hash)?)
                .projection(all.clone());
            if let Some(range) = range {
                b = b.key_schema(key_el(range, KeyType::Range)?);
            }
            b.build().map_err(build_err)
        };

        let state = self
            .client
            .create_table()
            .table_name(&self.state_table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("crm_key")?)
            .attribute_definitions(attr("retry_key")?)
            .key_schema(key_el("pk", KeyType::Hash)?)
            .key_schema(key_el("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi(BY_CRM_KEY, "crm_key", None)?)
            .global_secondary_indexes(gsi(BY_RETRY_KEY, "retry_key", None)?)
            .send()
            .await;
        self.created(Table::State, state).await?;

        let log = self
            .client
            .create_table()
            .table_name(&self.log_table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .attribute_definitions(attr("open")?)
            .key_schema(key_el("pk", KeyType::Hash)?)
            .key_schema(key_el("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi(BY_OPEN, "open", Some("sk"))?)
            .send()
            .await;
        self.created(Table::Log, log).await?;

        self.wait_active(Table::State).await?;
        self.wait_active(Table::Log).await?;

        // TTL: log entries expire after their retention, webhook deliveries after their
        // window (the state table's other items carry no `expires_at`)
        for (t, table) in [
            (Table::State, &self.state_table),
            (Table::Log, &self.log_table),
        ] {
            let ttl = self
                .client
                .describe_time_to_live()
                .table_name(table)
                .send()
                .await
                .map_err(|e| self.aws(t, "DescribeTimeToLive", e))?;
            let on = ttl
                .time_to_live_description()
                .and_then(|d| d.time_to_live_status())
                .is_some_and(|s| {
                    matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                });
            if !on {
                let spec = TimeToLiveSpecification::builder()
                    .attribute_name(EXPIRES_AT)
                    .enabled(true)
                    .build()
                    .map_err(build_err)?;
                self.client
                    .update_time_to_live()
                    .table_name(table)
                    .time_to_live_specification(spec)
                    .send()
                    .await
                    .map_err(|e| self.aws(t, "UpdateTimeToLive", e))?;
            }
        }
        Ok(())
    }

    async fn created<T, E, R>(
        &self,
        t: Table,
        result: Result<T, SdkError<E, R>>,
    ) -> Result<(), StoreError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: Debug,
    {
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(self.aws(t, "CreateTable", e)),
        }
    }

    async fn wait_active(&self, t: Table) -> Result<(), StoreError> {
        for attempt in 0..120 {
            let out = self
                .client
                .describe_table()
                .table_name(self.table(t))
                .send()
                .await
                .map_err(|e| self.aws(t, "DescribeTable", e))?;
            let ready = out.table().is_some_and(|d| {
                d.table_status() == Some(&TableStatus::Active)
                    && d.global_secondary_indexes().iter().all(|g| {
                        g.index_status()
                            .is_none_or(|s| s == &aws_sdk_dynamodb::types::IndexStatus::Active)
                    })
            });
            if ready {
                return Ok(());
            }
            backoff(attempt.min(4)).await;
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
        Err(StoreError::Backend(format!(
            "table {} did not become active in time; check it in the DynamoDB console",
            self.table(t)
        )))
    }
}
