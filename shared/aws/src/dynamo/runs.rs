//! Cursors and the plan checkpoint, run records, and the chunks of planned runs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use prmsync_engine::pass::HeldUpdate;
use prmsync_engine::report::Counts;
use prmsync_engine::store::{
    ChunkRecord, Cursors, PlanCheckpoint, RunChunks, RunRecord, Runs, StoreError, RUNS_LISTED,
};
use prmsync_mapping::Integration;

use super::codec::{
    checkpoint_fix, checkpoint_key, chunk_counter_key, chunk_pk, chunk_sk, decode, decode_into,
    key, nv, parse_checkpoint, parse_ts, sv, to_item, ts, CheckpointItem, ChunkCounterItem,
    ChunkDone, ChunkItem, CursorItem, RunItem, CHECK_LAYOUT,
};
use super::{
    aws_error, backoff, build_err, cancellation_reasons, is_condition_failure,
    is_transient_cancellation, parallel, DynamoStore, Item, Table, CHUNK_ATTEMPTS,
};

#[async_trait]
impl Cursors for DynamoStore {
    async fn cursor(
        &self,
        integration: Integration,
        side: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let item = self
            .get(
                Table::State,
                key(format!("CURSOR#{}", integration.as_str()), side),
            )
            .await?;
        match item {
            None => Ok(None),
            Some(item) => decode_into(
                &self.state_table,
                item,
                "cursor",
                CHECK_LAYOUT,
                |c: CursorItem| parse_ts("at", &c.at).map(Some),
            ),
        }
    }

    async fn set_cursor(
        &self,
        integration: Integration,
        side: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let item = CursorItem {
            pk: format!("CURSOR#{}", integration.as_str()),
            sk: side.to_string(),
            at: ts(at),
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn checkpoint(
        &self,
        integration: Integration,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let item = self.get(Table::State, checkpoint_key(integration)).await?;
        let Some(item) = item else { return Ok(None) };
        let item = self.checkpoint_item(integration, item)?;
        parse_checkpoint(&self.state_table, integration, &item.checkpoint).map(Some)
    }

    async fn set_checkpoint(
        &self,
        integration: Integration,
        checkpoint: Option<&PlanCheckpoint>,
    ) -> Result<(), StoreError> {
        match checkpoint {
            Some(c) => {
                let item = CheckpointItem {
                    pk: format!("CHECKPOINT#{}", integration.as_str()),
                    sk: "PLAN".into(),
                    checkpoint: serde_json::to_string(c).map_err(|e| {
                        StoreError::Backend(format!("cannot encode the checkpoint: {e}"))
                    })?,
                    run_id: Some(c.run_id.clone()),
                };
                self.put(Table::State, to_item(&item)?).await
            }
            None => self
                .client
                .delete_item()
                .table_name(&self.state_table)
                .set_key(Some(checkpoint_key(integration)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.aws(Table::State, "DeleteItem", e)),
        }
    }

    async fn take_checkpoint(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.state_table)
            .set_key(Some(checkpoint_key(integration)))
            .condition_expression("#run_id = :run_id")
            .expression_attribute_names("#run_id", "run_id")
            .expression_attribute_values(":run_id", sv(run_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match r {
            Ok(out) => match out.attributes.filter(|a| !a.is_empty()) {
                Some(item) => {
                    let item = self.checkpoint_item(integration, item)?;
                    parse_checkpoint(&self.state_table, integration, &item.checkpoint).map(Some)
                }
                None => Ok(None),
            },
            // None, another run's, or written before the run id was kept beside it.
            Err(e) if is_condition_failure(&e) => {
                self.take_checkpoint_without_run_id(integration, run_id)
                    .await
            }
            Err(e) => Err(self.aws(Table::State, "DeleteItem", e)),
        }
    }
}

impl DynamoStore {
    fn checkpoint_item(
        &self,
        integration: Integration,
        item: Item,
    ) -> Result<CheckpointItem, StoreError> {
        decode(
            &self.state_table,
            item,
            "plan checkpoint",
            &checkpoint_fix(integration),
        )
    }

    /// [`Cursors::take_checkpoint`] of a checkpoint item without a `run_id` attribute:
    /// deleted if its JSON names the run, on the condition that it is still that text.
    async fn take_checkpoint_without_run_id(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Option<PlanCheckpoint>, StoreError> {
        let Some(item) = self.get(Table::State, checkpoint_key(integration)).await? else {
            return Ok(None);
        };
        let item = self.checkpoint_item(integration, item)?;
        if item.run_id.is_some() {
            return Ok(None);
        }
        let checkpoint = parse_checkpoint(&self.state_table, integration, &item.checkpoint)?;
        if checkpoint.run_id != run_id {
            return Ok(None);
        }
        let r = self
            .client
            .delete_item()
            .table_name(&self.state_table)
            .set_key(Some(checkpoint_key(integration)))
            .condition_expression("attribute_not_exists(#run_id) AND #checkpoint = :checkpoint")
            .expression_attribute_names("#run_id", "run_id")
            .expression_attribute_names("#checkpoint", "checkpoint")
            .expression_attribute_values(":checkpoint", sv(item.checkpoint))
            .send()
            .await;
        match r {
            Ok(_) => Ok(Some(checkpoint)),
            Err(e) if is_condition_failure(&e) => Ok(None),
            Err(e) => Err(self.aws(Table::State, "DeleteItem", e)),
        }
    }
}

#[async_trait]
impl Runs for DynamoStore {
    async fn save_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let item = RunItem {
            pk: format!("RUN#{}", run.integration.as_str()),
            sk: format!("{}#{}", ts(run.started_at), run.run_id),
            record: run.clone(),
        };
        self.put(Table::State, to_item(&item)?).await
    }

    async fn last_run(&self, integration: Integration) -> Result<Option<RunRecord>, StoreError> {
        let resp = self
            .client
            .query()
            .table_name(&self.state_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", sv(format!("RUN#{}", integration.as_str())))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.aws(Table::State, "Query", e))?;
        // No `Items` in the response means no run.
        resp.items
            .unwrap_or_default()
            .into_iter()
            .next()
            .map(|i| {
                decode::<RunItem>(&self.state_table, i, "run record", CHECK_LAYOUT)
                    .map(|r| r.record)
            })
            .transpose()
    }

    /// A Query of the integration's run items (`RUN#<integration>`) whose sort key (the
    /// start time, then the run id) is at or after `since`, newest first.
    async fn runs_since(
        &self,
        integration: Integration,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let limit = limit.min(RUNS_LISTED);
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        while out.len() < limit {
            let resp = self
                .client
                .query()
                .table_name(&self.state_table)
                .key_condition_expression("pk = :pk AND sk >= :since")
                .expression_attribute_values(":pk", sv(format!("RUN#{}", integration.as_str())))
                .expression_attribute_values(":since", sv(ts(since)))
                .scan_index_forward(false)
                .limit((limit - out.len()) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.aws(Table::State, "Query", e))?;
            for i in resp.items.unwrap_or_default() {
                out.push(
                    decode::<RunItem>(&self.state_table, i, "run record", CHECK_LAYOUT)?.record,
                );
            }
            match resp.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}

#[async_trait]
impl RunChunks for DynamoStore {
    async fn chunk_done(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
    ) -> Result<Option<bool>, StoreError> {
        let Some(item) = self
            .get(
                Table::State,
                key(chunk_pk(integration, run_id), chunk_sk(number)),
            )
            .await?
        else {
            return Ok(None);
        };
        let fix = format!(
            "delete it and start the run over with `prmsync sync --aws --integration {integration}`"
        );
        let chunk: ChunkDone = decode(&self.state_table, item, "run chunk", &fix)?;
        Ok(Some(chunk.done))
    }

    async fn add_chunks(&self, chunks: &[ChunkRecord]) -> Result<(), StoreError> {
        // One write per chunk (the last of a number named twice), so that replacing a done
        // chunk moves its run's counter in the same transaction.
        let mut by_key: BTreeMap<(Integration, &str, u32), &ChunkRecord> = BTreeMap::new();
        for c in chunks {
            by_key.insert((c.integration, c.run_id.as_str(), c.number), c);
        }
        let writes = by_key
            .into_values()
            .map(|c| Ok((to_item(&ChunkItem::new(c))?, c.clone())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let client = self.client.clone();
        let table = self.state_table.clone();
        parallel(writes, |(item, chunk)| {
            put_chunk(client.clone(), table.clone(), item, chunk)
        })
        .await?;
        Ok(())
    }

    async fn finish_chunk(
        &self,
        integration: Integration,
        run_id: &str,
        number: u32,
        counts: &Counts,
        held: &[HeldUpdate],
    ) -> Result<Option<u64>, StoreError> {
        let counts = serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(counts)
            .map_err(|e| StoreError::Backend(format!("cannot encode a chunk's counts: {e}")))?;
        let mut chunk = Update::builder()
            .table_name(&self.state_table)
            .set_key(Some(key(chunk_pk(integration, run_id), chunk_sk(number))))
            .condition_expression("attribute_exists(pk) AND #done = :false")
            .expression_attribute_names("#done", "done")
            .expression_attribute_names("#counts", "counts")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":counts", counts);
        chunk = if held.is_empty() {
            chunk.update_expression("SET #done = :true, #counts = :counts")
        } else {
            let text = serde_json::to_string(held).map_err(|e| {
                StoreError::Backend(format!("cannot encode a chunk's held write-backs: {e}"))
            })?;
            chunk
                .update_expression("SET #done = :true, #counts = :counts, #held = :held")
                .expression_attribute_names("#held", "held")
                .expression_attribute_values(":held", AttributeValue::S(text))
        };
        let chunk = chunk.build().map_err(build_err)?;
        let counter = counter_add(&self.state_table, integration, run_id, 1)?;
        let items = vec![
            TransactWriteItem::builder().update(chunk).build(),
            TransactWriteItem::builder().update(counter).build(),
        ];
        let what = format!("chunk {number} of run {run_id} of {integration}");
        match transact_chunk(&self.client, &self.state_table, items, &what).await? {
            // Done already (a redelivered message) or never added.
            ChunkWrite::ConditionFailed => return Ok(None),
            ChunkWrite::Written => {}
        }
        let counter_key = chunk_counter_key(integration, run_id);
        let fix = format!(
            "the run cannot tell when it is done: start it over with `prmsync sync --aws --integration {integration}`"
        );
        let Some(item) = self.get(Table::State, counter_key).await? else {
            return Err(StoreError::Backend(format!(
                "the counter of chunks done of run {run_id} of {integration} is missing from table {} right after {what} was counted; {fix}",
                self.state_table
            )));
        };
        decode_into(
            &self.state_table,
            item,
            "counter of chunks done",
            &fix,
            |counter: ChunkCounterItem| {
                u64::try_from(counter.done)
                    .map(Some)
                    .map_err(|_| "`done` is negative".to_string())
            },
        )
    }

    async fn run_chunks(
        &self,
        integration: Integration,
        run_id: &str,
    ) -> Result<Vec<ChunkRecord>, StoreError> {
        let fix = format!(
            "delete the items of partition {} and start the run over with `prmsync sync --aws --integration {integration}`",
            chunk_pk(integration, run_id)
        );
        let mut chunks = self
            .query_partition(&chunk_pk(integration, run_id))
            .await?
            .into_iter()
            .map(|i| {
                decode_into(
                    &self.state_table,
                    i,
                    "run chunk",
                    &fix,
                    ChunkItem::into_chunk,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        chunks.sort_by_key(|c| c.number);
        Ok(chunks)
    }

    async fn clear_chunks(&self, integration: Integration, run_id: &str) -> Result<(), StoreError> {
        let pk = chunk_pk(integration, run_id);
        let mut keys: Vec<Item> = self
            .client
            .query()
            .table_name(&self.state_table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", sv(&pk))
            .projection_expression("pk, sk")
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.aws(Table::State, "Query", e))?;
        keys.push(chunk_counter_key(integration, run_id));
        let requests = keys
            .into_iter()
            .map(Self::delete_request)
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(Table::State, requests).await
    }
}

/// What a chunk's transaction did.
enum ChunkWrite {
    Written,
    /// The chunk item's condition failed: it is not in the state the write expected.
    ConditionFailed,
}

/// `ADD done :delta` on a run's counter of chunks done.
fn counter_add(
    table: &str,
    integration: Integration,
    run_id: &str,
    delta: i64,
) -> Result<Update, StoreError> {
    Update::builder()
        .table_name(table)
        .set_key(Some(chunk_counter_key(integration, run_id)))
        .update_expression("ADD #done :delta")
        .expression_attribute_names("#done", "done")
        .expression_attribute_values(":delta", nv(delta))
        .build()
        .map_err(build_err)
}

/// Runs a transaction whose first item is a chunk's, again while it loses to concurrent
/// transactions (workers finishing chunks of one run at once all move its counter).
async fn transact_chunk(
    client: &Client,
    table: &str,
    items: Vec<TransactWriteItem>,
    what: &str,
) -> Result<ChunkWrite, StoreError> {
    for attempt in 0..CHUNK_ATTEMPTS {
        let r = client
            .transact_write_items()
            .set_transact_items(Some(items.clone()))
            .send()
            .await;
        let e = match r {
            Ok(_) => return Ok(ChunkWrite::Written),
            Err(e) => e,
        };
        match cancellation_reasons(&e) {
            Some(reasons)
                if reasons
                    .first()
                    .is_some_and(|r| r == "ConditionalCheckFailed") =>
            {
                return Ok(ChunkWrite::ConditionFailed)
            }
            Some(reasons) if is_transient_cancellation(&reasons) => backoff(attempt).await,
            _ if e.code() == Some("TransactionInProgressException")
                || e.code() == Some("ThrottlingException")
                || e.code() == Some("ProvisionedThroughputExceededException") =>
            {
                backoff(attempt).await
            }
            _ => return Err(aws_error(table, Table::State, "TransactWriteItems", e)),
        }
    }
    Err(StoreError::Backend(format!(
        "{what} kept losing to concurrent writes in table {table} ({CHUNK_ATTEMPTS} attempts); the message is delivered again"
    )))
}

/// Writes one chunk item, keeping its run's counter equal to the number of its chunks
/// done: a plain conditional put when the chunk's `done` does not change (a new chunk, or
/// one replaced in the same state), a transaction with the counter when it does.
async fn put_chunk(
    client: Client,
    table: String,
    item: Item,
    chunk: ChunkRecord,
) -> Result<(), StoreError> {
    let what = format!(
        "chunk {} of run {} of {}",
        chunk.number, chunk.run_id, chunk.integration
    );
    let done = AttributeValue::Bool(chunk.done);
    let not_done = AttributeValue::Bool(!chunk.done);
    // The condition under which the stored chunk is in the same state as the new one.
    let same = if chunk.done {
        "attribute_exists(pk) AND #done = :done"
    } else {
        "attribute_not_exists(pk) OR #done = :done"
    };
    let other = if chunk.done {
        "attribute_not_exists(pk) OR #done = :other"
    } else {
        "attribute_exists(pk) AND #done = :other"
    };
    for attempt in 0..CHUNK_ATTEMPTS {
        let r = client
            .put_item()
            .table_name(&table)
            .set_item(Some(item.clone()))
            .condition_expression(same)
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":done", done.clone())
            .send()
            .await;
        match r {
            Ok(_) => return Ok(()),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(aws_error(&table, Table::State, "PutItem", e)),
        }
        // The stored chunk is in the other state: replace it and move the counter.
        let put = Put::builder()
            .table_name(&table)
            .set_item(Some(item.clone()))
            .condition_expression(other)
            .expression_attribute_names("#done", "done")
            .expression_attribute_values(":other", not_done.clone())
            .build()
            .map_err(build_err)?;
        let delta = if chunk.done { 1 } else { -1 };
        let counter = counter_add(&table, chunk.integration, &chunk.run_id, delta)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(counter).build(),
        ];
        match transact_chunk(&client, &table, items, &what).await? {
            ChunkWrite::Written => return Ok(()),
            // Changed back meanwhile: try the plain put again.
            ChunkWrite::ConditionFailed => backoff(attempt).await,
        }
    }
    Err(StoreError::Backend(format!(
        "{what} kept changing while it was added to table {table} ({CHUNK_ATTEMPTS} attempts); the planner tries again"
    )))
}
