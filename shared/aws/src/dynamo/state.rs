//! Leases of integrations, pauses and the Salesforce API hold, the retry set, and the
//! webhook deliveries taken.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use chrono::{DateTime, Utc};
use prmsync_engine::store::{Deliveries, Leases, Pauses, RetryEntry, RetrySet, StoreError};
use prmsync_mapping::{Integration, ObjectKind};

use super::codec::{
    api_hold_key, decode, decode_into, key, parse_ts, retry_pk, retry_sk, sv, to_item, ts,
    ApiHoldItem, LeaseItem, PauseItem, RetryItem, CHECK_LAYOUT,
};
use super::{build_err, dedupe, is_condition_failure, DynamoStore, Item, Table};

#[async_trait]
impl Leases for DynamoStore {
    async fn acquire_lease(
        &self,
        integration: Integration,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = LeaseItem {
            pk: format!("LEASE#{}", integration.as_str()),
            sk: "LEASE".into(),
            holder: holder.to_string(),
            until: ts(until),
        };
        let r = self
            .client
            .put_item()
            .table_name(&self.state_table)
            .set_item(Some(to_item(&item)?))
            .condition_expression("attribute_not_exists(pk) OR #until < :now OR #holder = :holder")
            .expression_attribute_names("#until", "until")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_values(":now", sv(ts(Utc::now())))
            .expression_attribute_values(":holder", sv(holder))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.aws(Table::State, "PutItem", e)),
        }
    }

    async fn release_lease(
        &self,
        integration: Integration,
        holder: &str,
    ) -> Result<(), StoreError> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.state_table)
            .set_key(Some(key(
                format!("LEASE#{}", integration.as_str()),
                "LEASE",
            )))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_values(":holder", sv(holder))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            // Not ours (or already gone): nothing to release.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(self.aws(Table::State, "DeleteItem", e)),
        }
    }
}

#[async_trait]
impl Pauses for DynamoStore {
    async fn is_paused(&self, integration: Integration) -> Result<bool, StoreError> {
        let item = self
            .get(
                Table::State,
                key(format!("PAUSE#{}", integration.as_str()), "PAUSE"),
            )
            .await?;
        match item {
            None => Ok(false),
            Some(item) => decode::<PauseItem>(&self.state_table, item, "pause", CHECK_LAYOUT)
                .map(|p| p.paused),
        }
    }

    async fn set_paused(&self, integration: Integration, paused: bool) -> Result<(), StoreError> {
        let item = PauseItem {
            pk: format!("PAUSE#{}", integration.as_str()),
            sk: "PAUSE".into(),
            paused,
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn hold_api(&self, until: DateTime<Utc>) -> Result<(), StoreError> {
        let item = ApiHoldItem {
            pk: "APIHOLD".into(),
            sk: "APIHOLD".into(),
            until: ts(until),
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn api_hold(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(item) = self.get(Table::State, api_hold_key()).await? else {
            return Ok(None);
        };
        let fix = "delete the item (the next refusal of Salesforce sets it again)";
        decode_into(
            &self.state_table,
            item,
            "API hold",
            fix,
            |i: ApiHoldItem| parse_ts("until", &i.until).map(Some),
        )
    }
}

#[async_trait]
impl RetrySet for DynamoStore {
    async fn retry_entries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<Vec<RetryEntry>, StoreError> {
        let keys = dedupe(ids)
            .into_iter()
            .map(|id| key(retry_pk(object), retry_sk(side, &id)))
            .collect();
        let mut entries = self
            .batch_get(Table::State, keys)
            .await?
            .into_iter()
            .map(|i| self.retry_entry(i))
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    async fn all_retries(&self, object: ObjectKind) -> Result<Vec<RetryEntry>, StoreError> {
        self.query_partition(&retry_pk(object))
            .await?
            .into_iter()
            .map(|i| self.retry_entry(i))
            .collect()
    }

    async fn hold_retries(&self, entries: &[RetryEntry]) -> Result<(), StoreError> {
        // A batch may not name an item twice: the last entry of a key wins.
        let mut by_key: BTreeMap<(ObjectKind, &str, &str), &RetryEntry> = BTreeMap::new();
        for e in entries {
            by_key.insert((e.object, e.side.as_str(), e.id.as_str()), e);
        }
        let mut requests = Vec::with_capacity(by_key.len());
        for e in by_key.into_values() {
            let put = PutRequest::builder()
                .set_item(Some(to_item(&RetryItem::new(e))?))
                .build()
                .map_err(build_err)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(Table::State, requests).await
    }

    async fn clear_retries(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let requests = dedupe(ids)
            .into_iter()
            .map(|id| Self::delete_request(key(retry_pk(object), retry_sk(side, &id))))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(Table::State, requests).await
    }
}

impl DynamoStore {
    fn retry_entry(&self, item: Item) -> Result<RetryEntry, StoreError> {
        decode_into(
            &self.state_table,
            item,
            "retry entry",
            "delete the item (the record syncs again when it changes)",
            RetryItem::into_entry,
        )
    }
}

fn delivery_pk(event_id: &str) -> String {
    format!("DELIVERY#{event_id}")
}

#[async_trait]
impl Deliveries for DynamoStore {
    async fn take_delivery(
        &self,
        event_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // TTL removes an item within a day or two of `expires_at`, not at once: the
        // condition takes an expired one as free.
        let mut item = key(delivery_pk(event_id), "DELIVERY");
        item.insert("until".into(), sv(ts(until)));
        item.insert(
            "expires_at".into(),
            aws_sdk_dynamodb::types::AttributeValue::N(until.timestamp().to_string()),
        );
        let r = self
            .client
            .put_item()
            .table_name(&self.state_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR #until < :now")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":now", sv(ts(now)))
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(self.aws(Table::State, "PutItem", e)),
        }
    }

    async fn release_delivery(&self, event_id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.state_table)
            .set_key(Some(key(delivery_pk(event_id), "DELIVERY")))
            .send()
            .await
            .map_err(|e| self.aws(Table::State, "DeleteItem", e))?;
        Ok(())
    }
}
