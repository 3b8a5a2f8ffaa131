//! Links (with the claim items of their Salesforce Ids), the children pending their
//! parent, and the rejected versions of deal imports.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use prmsync_engine::store::{Link, LinkState, Links, Rejections, StoreError};
use prmsync_mapping::ObjectKind;

use super::codec::{
    claim_pk, crm_key, decode, decode_into, key, link_pk, nv, sv, to_item, ts, ClaimItem,
    LinkIdsOnly, LinkItem, LinkStateOnly, PendingItem, RejectionItem, CHECK_LAYOUT,
};
use super::{
    build_err, dedupe, is_condition_failure, parallel, query_index, DynamoStore, Item, Table,
    BY_CRM_KEY, BY_RETRY_KEY, DELETE_ATTEMPTS,
};

impl DynamoStore {
    async fn link_item(
        &self,
        object: ObjectKind,
        prm_id: &str,
    ) -> Result<Option<LinkItem>, StoreError> {
        self.get(Table::State, key(link_pk(object, prm_id), "LINK"))
            .await?
            .map(|item| decode(&self.state_table, item, "link", CHECK_LAYOUT))
            .transpose()
    }

    fn link(&self, item: Item) -> Result<Link, StoreError> {
        decode_into(
            &self.state_table,
            item,
            "link",
            CHECK_LAYOUT,
            LinkItem::into_link,
        )
    }

    fn claim_put(
        &self,
        object: ObjectKind,
        crm_id: &str,
        prm_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let claim = ClaimItem {
            pk: claim_pk(object, crm_id),
            sk: "CLAIM".into(),
            prm_id: prm_id.to_string(),
        };
        Ok(TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.state_table)
                    .set_item(Some(to_item(&claim)?))
                    .condition_expression("attribute_not_exists(pk) OR #prm_id = :prm_id")
                    .expression_attribute_names("#prm_id", "prm_id")
                    .expression_attribute_values(":prm_id", sv(prm_id))
                    .build()
                    .map_err(build_err)?,
            )
            .build())
    }

    fn claim_delete(
        &self,
        object: ObjectKind,
        crm_id: &str,
        prm_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .delete(
                Delete::builder()
                    .table_name(&self.state_table)
                    .set_key(Some(key(claim_pk(object, crm_id), "CLAIM")))
                    // Only our own claim: never free a Salesforce Id another link holds.
                    .condition_expression("attribute_not_exists(pk) OR #prm_id = :prm_id")
                    .expression_attribute_names("#prm_id", "prm_id")
                    .expression_attribute_values(":prm_id", sv(prm_id))
                    .build()
                    .map_err(build_err)?,
            )
            .build())
    }
}

#[async_trait]
impl Links for DynamoStore {
    async fn find_links(
        &self,
        object: ObjectKind,
        crm_ids: &[String],
        prm_ids: &[String],
    ) -> Result<Vec<Link>, StoreError> {
        let mut found: BTreeMap<String, Link> = BTreeMap::new();
        let keys: Vec<Item> = dedupe(prm_ids)
            .iter()
            .map(|id| key(link_pk(object, id), "LINK"))
            .collect();
        for item in self.batch_get(Table::State, keys).await? {
            let link = self.link(item)?;
            found.insert(link.prm_id.clone(), link);
        }
        let wanted: Vec<String> = dedupe(crm_ids);
        let client = self.client.clone();
        let table = self.state_table.clone();
        let per_id = parallel(wanted.clone(), |crm_id| {
            let client = client.clone();
            let table = table.clone();
            async move {
                query_index(
                    &client,
                    &table,
                    Table::State,
                    BY_CRM_KEY,
                    "crm_key",
                    &crm_key(object, &crm_id),
                )
                .await
            }
        })
        .await?;
        for item in per_id.into_iter().flatten() {
            let link = self.link(item)?;
            // The index is eventually consistent: keep what is really on the asked id.
            if link.object == object && wanted.binary_search(&link.crm_id).is_ok() {
                found.entry(link.prm_id.clone()).or_insert(link);
            }
        }
        Ok(found.into_values().collect())
    }

    async fn save_link(&self, link: &Link) -> Result<Link, StoreError> {
        let conflict = || StoreError::Conflict {
            object: link.object,
            prm_id: link.prm_id.clone(),
        };
        let item = to_item(&LinkItem::new(link, link.version + 1))?;
        if link.version == 0 {
            let put = Put::builder()
                .table_name(&self.state_table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_err)?;
            self.transact(
                link.object,
                &link.prm_id,
                vec![
                    TransactWriteItem::builder().put(put).build(),
                    self.claim_put(link.object, &link.crm_id, &link.prm_id)?,
                ],
            )
            .await?;
        } else {
            let current = self
                .link_item(link.object, &link.prm_id)
                .await?
                .ok_or_else(conflict)?;
            if current.version != link.version {
                return Err(conflict());
            }
            if current.crm_id == link.crm_id {
                let r = self
                    .client
                    .put_item()
                    .table_name(&self.state_table)
                    .set_item(Some(item))
                    .condition_expression("#version = :expected")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":expected", nv(link.version))
                    .send()
                    .await;
                match r {
                    Ok(_) => {}
                    Err(e) if is_condition_failure(&e) => return Err(conflict()),
                    Err(e) => return Err(self.aws(Table::State, "PutItem", e)),
                }
            } else {
                let put = Put::builder()
                    .table_name(&self.state_table)
                    .set_item(Some(item))
                    .condition_expression("#version = :expected")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":expected", nv(link.version))
                    .build()
                    .map_err(build_err)?;
                self.transact(
                    link.object,
                    &link.prm_id,
                    vec![
                        TransactWriteItem::builder().put(put).build(),
                        self.claim_put(link.object, &link.crm_id, &link.prm_id)?,
                        self.claim_delete(link.object, &current.crm_id, &link.prm_id)?,
                    ],
                )
                .await?;
            }
        }
        let mut saved = link.clone();
        saved.version += 1;
        Ok(saved)
    }

    async fn delete_link(&self, object: ObjectKind, prm_id: &str) -> Result<bool, StoreError> {
        for _ in 0..DELETE_ATTEMPTS {
            let Some(current) = self.link_item(object, prm_id).await? else {
                return Ok(false);
            };
            let delete = Delete::builder()
                .table_name(&self.state_table)
                .set_key(Some(key(link_pk(object, prm_id), "LINK")))
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", nv(current.version))
                .build()
                .map_err(build_err)?;
            match self
                .transact(
                    object,
                    prm_id,
                    vec![
                        TransactWriteItem::builder().delete(delete).build(),
                        self.claim_delete(object, &current.crm_id, prm_id)?,
                    ],
                )
                .await
            {
                Ok(()) => return Ok(true),
                // Changed (or deleted) meanwhile: read it again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict {
            object,
            prm_id: prm_id.to_string(),
        })
    }

    async fn links_to_retry(&self, object: ObjectKind) -> Result<Vec<Link>, StoreError> {
        let mut links = self
            .query_index(Table::State, BY_RETRY_KEY, "retry_key", object.as_str())
            .await?
            .into_iter()
            .map(|i| self.link(i))
            .collect::<Result<Vec<_>, _>>()?;
        links.sort_by(|a, b| a.prm_id.cmp(&b.prm_id));
        Ok(links)
    }

    async fn count_links(&self, object: ObjectKind) -> Result<BTreeMap<String, u64>, StoreError> {
        // No index by object and state: a status read scans the links of the table.
        let prefix = format!("LINK#{}#", object.as_str());
        let mut counts = BTreeMap::new();
        let mut items = self
            .client
            .scan()
            .table_name(&self.state_table)
            .filter_expression("begins_with(pk, :prefix) AND sk = :sk")
            // The key too, to name an item whose state cannot be read.
            .projection_expression("pk, sk, #state")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":prefix", sv(&prefix))
            .expression_attribute_values(":sk", sv("LINK"))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| self.aws(Table::State, "Scan", e))?;
            let link: LinkStateOnly = decode(&self.state_table, item, "link", CHECK_LAYOUT)?;
            *counts.entry(link.state.as_str().to_string()).or_insert(0) += 1;
        }
        Ok(counts)
    }

    async fn linked_ids(
        &self,
        object: ObjectKind,
        untouched_since: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        // As count_links: a scan of the links (a run that read everything calls it once).
        let prefix = format!("LINK#{}#", object.as_str());
        let mut out = Vec::new();
        let mut items = self
            .client
            .scan()
            .table_name(&self.state_table)
            .filter_expression(
                "begins_with(pk, :prefix) AND sk = :sk AND #state = :linked AND updated_at < :since",
            )
            .projection_expression("pk, sk, prm_id, crm_id")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":prefix", sv(&prefix))
            .expression_attribute_values(":sk", sv("LINK"))
            .expression_attribute_values(":linked", sv(LinkState::Linked.as_str()))
            .expression_attribute_values(":since", sv(ts(untouched_since)))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| self.aws(Table::State, "Scan", e))?;
            let ids: LinkIdsOnly = decode(&self.state_table, item, "link", CHECK_LAYOUT)?;
            out.push((ids.prm_id, ids.crm_id));
        }
        out.sort();
        Ok(out)
    }

    async fn mark_children_pending(
        &self,
        object: ObjectKind,
        prm_id: &str,
        crm_id: &str,
    ) -> Result<(), StoreError> {
        let item = PendingItem {
            pk: format!("PENDING#{}", object.as_str()),
            sk: prm_id.to_string(),
            crm_id: crm_id.to_string(),
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn children_pending(
        &self,
        object: ObjectKind,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.query_partition(&format!("PENDING#{}", object.as_str()))
            .await?
            .into_iter()
            .map(|i| {
                decode::<PendingItem>(&self.state_table, i, "pending children", CHECK_LAYOUT)
                    .map(|p| (p.sk, p.crm_id))
            })
            .collect()
    }

    async fn clear_children_pending(
        &self,
        object: ObjectKind,
        prm_ids: &[String],
    ) -> Result<(), StoreError> {
        let pk = format!("PENDING#{}", object.as_str());
        let requests = dedupe(prm_ids)
            .into_iter()
            .map(|id| Self::delete_request(key(pk.clone(), id)))
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(Table::State, requests).await
    }
}

#[async_trait]
impl Rejections for DynamoStore {
    async fn rejected_versions(
        &self,
        object: ObjectKind,
        side: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let pk = format!("REJECT#{}#{side}", object.as_str());
        let keys = dedupe(ids)
            .into_iter()
            .map(|id| key(pk.clone(), id))
            .collect();
        self.batch_get(Table::State, keys)
            .await?
            .into_iter()
            .map(|i| {
                decode::<RejectionItem>(&self.state_table, i, "rejected version", CHECK_LAYOUT)
                    .map(|r| (r.sk, r.version))
            })
            .collect()
    }

    async fn remember_rejection(
        &self,
        object: ObjectKind,
        side: &str,
        id: &str,
        version: &str,
    ) -> Result<(), StoreError> {
        let item = RejectionItem {
            pk: format!("REJECT#{}#{side}", object.as_str()),
            sk: id.to_string(),
            version: version.to_string(),
        };
        self.put(Table::State, to_item(&item)?).await
    }
}
