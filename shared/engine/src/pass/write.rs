//! Writes.

use chrono::Utc;
use futures::StreamExt;
use prmsync_mapping::config::Side;
use prmsync_mapping::{Fields, LogCode};
use serde_json::{json, Value};

use super::*;
use crate::store::{Link, LinkState, StoreError};

/// Salesforce Collections take 200 records.
const COLLECTION: usize = 200;

/// Takes out the pairs whose Salesforce update would only part-fill the last Collection,
/// with everything they still have to write.
pub(super) fn carry_partial_collection(items: &mut Vec<WorkPair>) -> Carry {
    let updates = items.iter().filter(|i| !i.crm_patch.is_empty()).count();
    let mut left = updates % COLLECTION;
    if left == 0 {
        return Carry::default();
    }
    let mut carried = Vec::with_capacity(left);
    let mut i = items.len();
    while left > 0 && i > 0 {
        i -= 1;
        if !items[i].crm_patch.is_empty() {
            carried.push(items.swap_remove(i));
            left -= 1;
        }
    }
    carried.reverse();
    Carry(carried)
}

impl<'a> Pass<'a> {
    pub(super) async fn write_crm_updates(
        &mut self,
        items: &mut [WorkPair],
    ) -> Result<(), PassError> {
        let indices: Vec<usize> = (0..items.len())
            .filter(|&i| !items[i].crm_patch.is_empty())
            .collect();
        if indices.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            for &i in &indices {
                self.count_crm_write(&items[i]);
                let (id, source, fields) = (
                    items[i].link.crm_id.clone(),
                    items[i].link.prm_id.clone(),
                    items[i].crm_patch.clone(),
                );
                self.plan_write("update", Side::Crm, Some(id), Some(source), fields);
            }
            return Ok(());
        }
        if let Some(message) = self.reserve_reached() {
            self.out.stopped = Some(message);
            for &i in &indices {
                // Nothing was written: keep the old snapshot so the next run writes again.
                items[i].link.snapshot = items[i].old_snapshot.clone();
                items[i].link.retry = true;
            }
            return Ok(());
        }
        let rows: Vec<(String, Fields)> = indices
            .iter()
            .map(|&i| (items[i].link.crm_id.clone(), items[i].crm_patch.clone()))
            .collect();
        let count = rows.len();
        let results = match self.ctx.crm.update(self.spec.crm_object(), rows).await {
            Ok(results) => results,
            Err(e) => vec![Err(record_failure_of(e)?); count],
        };
        for (&i, result) in indices.iter().zip(results) {
            match result {
                Ok(_) => {
                    self.count_crm_write(&items[i]);
                    if items[i].created.is_none() && !items[i].marks_deleted {
                        let (c, p) = (items[i].link.crm_id.clone(), items[i].link.prm_id.clone());
                        let fields: Vec<String> = items[i].crm_patch.keys().cloned().collect();
                        self.log(
                            LogCode::RecordUpdated,
                            Some(&c),
                            Some(&p),
                            format!(
                                "Updated {} {c} from PRM {} {p}: {}",
                                self.spec.crm_object(),
                                self.spec.kind,
                                fields.join(", ")
                            ),
                            json!({"fields": items[i].crm_patch}),
                        );
                    }
                    if items[i].marks_deleted {
                        items[i].link.state = LinkState::DeletedInPrm;
                        let (c, p) = (items[i].link.crm_id.clone(), items[i].link.prm_id.clone());
                        self.log(
                            LogCode::DeletedInPrm,
                            Some(&c),
                            Some(&p),
                            format!(
                                "PRM {} {p} was deleted; {} {c} is kept with Record Status `{}`",
                                self.spec.kind,
                                self.spec.crm_object(),
                                items[i]
                                    .crm_patch
                                    .get(&self.spec.setup.record_status)
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                            ),
                            Value::Null,
                        );
                    }
                }
                Err(failure) => self.update_failed(Side::Crm, &mut items[i], &failure)?,
            }
        }
        Ok(())
    }

    pub(super) fn count_crm_write(&mut self, item: &WorkPair) {
        if item.marks_deleted {
            self.out.counts.deleted_marked += 1;
        } else if item.created.is_none() {
            self.out.counts.updated.crm += 1;
        }
    }

    pub(super) async fn write_prm_updates(
        &mut self,
        items: &mut [WorkPair],
    ) -> Result<(), PassError> {
        let indices: Vec<usize> = (0..items.len())
            .filter(|&i| !items[i].prm_patch.is_empty())
            .collect();
        if indices.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            for &i in &indices {
                if items[i].created.is_none() {
                    self.out.counts.updated.prm += 1;
                }
                let (id, source, fields) = (
                    items[i].link.prm_id.clone(),
                    items[i].link.crm_id.clone(),
                    items[i].prm_patch.clone(),
                );
                self.plan_write("update", Side::Prm, Some(id), Some(source), fields);
            }
            return Ok(());
        }
        let collection = self.spec.prm_collection();
        let prm = self.ctx.prm.clone();
        let calls: Vec<(usize, String, i64, Fields)> = indices
            .iter()
            .map(|&i| {
                let item = &items[i];
                let version = item
                    .prm
                    .as_ref()
                    .map(|p| p.version)
                    .or(item.link.prm_version)
                    .unwrap_or(0);
                (i, item.link.prm_id.clone(), version, item.prm_patch.clone())
            })
            .collect();
        let results: Vec<_> =
            futures::stream::iter(calls.into_iter().map(|(i, id, version, patch)| {
                let prm = prm.clone();
                async move { (i, prm.update(collection, &id, version, patch).await) }
            }))
            .buffered(prm_concurrency(self.ctx))
            .collect()
            .await;
        for (i, result) in results {
            let result = match result {
                Ok(r) => r,
                Err(e) => Err(record_failure_of(e)?),
            };
            match result {
                Ok(updated) => {
                    if items[i].created.is_none() {
                        self.out.counts.updated.prm += 1;
                        let (c, p) = (items[i].link.crm_id.clone(), items[i].link.prm_id.clone());
                        let fields: Vec<String> = items[i].prm_patch.keys().cloned().collect();
                        self.log(
                            LogCode::RecordUpdated,
                            Some(&c),
                            Some(&p),
                            format!(
                                "Updated PRM {} {p} from {} {c}: {}",
                                self.spec.kind,
                                self.spec.crm_object(),
                                fields.join(", ")
                            ),
                            json!({"fields": items[i].prm_patch}),
                        );
                    }
                    items[i].link.prm_version = Some(updated.version);
                    items[i].dirty = true;
                }
                Err(failure) => self.update_failed(Side::Prm, &mut items[i], &failure)?,
            }
        }
        Ok(())
    }

    pub(super) async fn save_links(&mut self, items: &mut [WorkPair]) -> Result<(), PassError> {
        let mut to_save = Vec::new();
        for (i, item) in items.iter_mut().enumerate() {
            let wrote = !item.crm_patch.is_empty() || !item.prm_patch.is_empty();
            if !wrote
                && item.created.is_none()
                && item.link.state == LinkState::Linked
                && !item.marks_deleted
            {
                self.out.counts.unchanged += 1;
            }
            if item.rejected {
                let version = pair_version(item.link.crm_modstamp, item.link.prm_version);
                self.rejected
                    .push(("link", item.link.prm_id.clone(), version));
            }
            if self.dry_run || !(item.dirty || wrote) {
                continue;
            }
            item.link.updated_at = Utc::now();
            to_save.push(i);
        }
        if to_save.is_empty() {
            return Ok(());
        }
        let links: Vec<Link> = to_save.iter().map(|&i| items[i].link.clone()).collect();
        let results = self.ctx.store.save_links(&links).await;
        for (&i, result) in to_save.iter().zip(results) {
            match result {
                Ok(saved) => items[i].link = saved,
                Err(StoreError::Conflict { .. }) => {
                    // Another worker saved this pair first; its result stands and the
                    // next run merges again from there.
                    let (c, p) = (items[i].link.crm_id.clone(), items[i].link.prm_id.clone());
                    self.log(
                        LogCode::TransientError,
                        Some(&c),
                        Some(&p),
                        format!("{} {p} was synced by another worker at the same time; the next run checks it again", self.spec.kind),
                        Value::Null,
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
