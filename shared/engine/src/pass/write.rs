//! Writes: the Salesforce updates in Collections of 200 (one call, after checking the API
//! reserve), then the PRM updates with `If-Match` on the version read (a few in flight at
//! once; one refused for its version is read, merged and sent again, see race.rs), then
//! the links with their new snapshots in one store call. A pass writes every update it
//! planned: none is held for a later, fuller Collection, since Salesforce would take it
//! over any edit made meanwhile. Sync rules 4 (no echoes: only patches are sent), 10 (a failed write fails
//! its record alone, see failures.rs) and 11 (budget: Collections of 200, stop before the
//! API reserve) of `docs/sync-rules.md`.
//!
//! The two sides are written apart on purpose: Salesforce takes one batched call and
//! counts marks of PRM deletions; the PRM takes one call per record with its version.

use std::collections::HashSet;

use chrono::Utc;
use prmsync_mapping::config::Side;
use prmsync_mapping::{Fields, LogCode};
use serde_json::{json, Value};

use super::pair::{pair_version, restore_snapshot_keys};
use super::plan::PlanRules;
use super::race::{drop_pending_crm_write, fresh_record, merge_again, read_again};
use super::{prm_concurrency, record_failure_of, Pass, PassError, WorkPair};
use crate::ports::{FailureClass, RecordFailure, WriteOutcome};
use crate::store::{Link, LinkState, StoreError};

/// The positions of ids already seen earlier in `ids`: a second write of one record in one
/// call (Salesforce fails every copy of a duplicated Id with `DUPLICATE_VALUE`). No I/O.
pub(super) fn repeated<'i>(ids: impl IntoIterator<Item = &'i str>) -> Vec<usize> {
    let mut seen = HashSet::new();
    ids.into_iter()
        .enumerate()
        .filter(|(_, id)| !seen.insert(*id))
        .map(|(i, _)| i)
        .collect()
}

impl<'a> Pass<'a> {
    /// The pairs in `indices` that would write a record already written by an earlier
    /// pair of the same call (two links of one record, after a merge in Salesforce): their
    /// write to `side` waits for the next run, which sees the difference again. Returns
    /// the indices left.
    fn defer_repeated(
        &mut self,
        side: Side,
        pairs: &mut [WorkPair],
        indices: Vec<usize>,
    ) -> Vec<usize> {
        let again = repeated(indices.iter().map(|&i| match side {
            Side::Crm => pairs[i].link.crm_id.as_str(),
            Side::Prm => pairs[i].link.prm_id.as_str(),
        }));
        if again.is_empty() {
            return indices;
        }
        for &k in &again {
            let pair = &mut pairs[indices[k]];
            restore_snapshot_keys(pair, side);
            match side {
                Side::Crm => pair.crm_patch.clear(),
                Side::Prm => pair.prm_patch.clear(),
            }
            pair.link.retry = true;
        }
        let again: HashSet<usize> = again.into_iter().collect();
        indices
            .into_iter()
            .enumerate()
            .filter(|(k, _)| !again.contains(k))
            .map(|(_, i)| i)
            .collect()
    }

    pub(super) async fn write_crm_updates(
        &mut self,
        pairs: &mut [WorkPair],
    ) -> Result<(), PassError> {
        let indices: Vec<usize> = (0..pairs.len())
            .filter(|&i| !pairs[i].crm_patch.is_empty())
            .collect();
        let indices = if self.hold_crm_updates {
            // A record written twice in one job fails: its second write waits as in a call.
            let indices = self.defer_repeated(Side::Crm, pairs, indices);
            self.hold_crm_rows(pairs, indices)
        } else {
            indices
        };
        self.write_crm_rows(pairs, indices).await
    }

    /// The Salesforce updates of the pairs at `indices`, in one Collection call (after
    /// checking the API reserve).
    pub(super) async fn write_crm_rows(
        &mut self,
        pairs: &mut [WorkPair],
        indices: Vec<usize>,
    ) -> Result<(), PassError> {
        let indices = self.defer_repeated(Side::Crm, pairs, indices);
        if indices.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            for &i in &indices {
                self.count_crm_write(&pairs[i]);
                let (id, source, fields) = (
                    pairs[i].link.crm_id.clone(),
                    pairs[i].link.prm_id.clone(),
                    pairs[i].crm_patch.clone(),
                );
                self.plan_write("update", Side::Crm, Some(id), Some(source), fields);
            }
            return Ok(());
        }
        if let Some(message) = self.reserve_reached() {
            self.out.stopped = Some(message);
            for &i in &indices {
                // Nothing was written: keep the old snapshot so the next run writes again.
                pairs[i].link.snapshot = pairs[i].old_snapshot.clone();
                pairs[i].link.retry = true;
                pairs[i].crm_failed = true;
            }
            return Ok(());
        }
        let rows: Vec<(String, Fields)> = indices
            .iter()
            .map(|&i| (pairs[i].link.crm_id.clone(), pairs[i].crm_patch.clone()))
            .collect();
        let results = self.send_crm_updates(rows).await?;
        self.apply_crm_results(pairs, &indices, results)
    }

    /// Sends Salesforce updates in one call of the port (Collections, or an ingest job
    /// above the threshold) and logs the adapter's notices: one result per row, a call
    /// refused whole failing each row with its class.
    pub(super) async fn send_crm_updates(
        &mut self,
        rows: Vec<(String, Fields)>,
    ) -> Result<Vec<WriteOutcome>, PassError> {
        let count = rows.len();
        let results = match self.ctx.crm.update(self.spec.crm_object(), rows).await {
            Ok(results) => results,
            Err(e) => vec![Err(record_failure_of(e)?); count],
        };
        self.log_crm_notices();
        Ok(results)
    }

    /// What each Salesforce update of the pairs at `indices` came to (`results` in the
    /// same order): counted and logged, or failed as `update_failed` says.
    pub(super) fn apply_crm_results(
        &mut self,
        pairs: &mut [WorkPair],
        indices: &[usize],
        results: Vec<WriteOutcome>,
    ) -> Result<(), PassError> {
        for (&i, result) in indices.iter().zip(results) {
            match result {
                Ok(_) => {
                    self.count_crm_write(&pairs[i]);
                    if pairs[i].created.is_none() && !pairs[i].marks_deleted {
                        let (c, p) = (pairs[i].link.crm_id.clone(), pairs[i].link.prm_id.clone());
                        let fields: Vec<String> = pairs[i].crm_patch.keys().cloned().collect();
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
                            json!({"fields": self.values().value(&json!(pairs[i].crm_patch))}),
                        );
                    }
                    if pairs[i].marks_deleted {
                        pairs[i].link.state = LinkState::DeletedInPrm;
                        let (c, p) = (pairs[i].link.crm_id.clone(), pairs[i].link.prm_id.clone());
                        self.log(
                            LogCode::DeletedInPrm,
                            Some(&c),
                            Some(&p),
                            format!(
                                "PRM {} {p} was deleted; {} {c} is kept with Record Status `{}`",
                                self.spec.kind,
                                self.spec.crm_object(),
                                pairs[i]
                                    .crm_patch
                                    .get(&self.spec.setup.record_status)
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                            ),
                            Value::Null,
                        );
                    }
                }
                Err(failure) => self.update_failed(Side::Crm, &mut pairs[i], &failure)?,
            }
        }
        Ok(())
    }

    pub(super) fn count_crm_write(&mut self, pair: &WorkPair) {
        if pair.marks_deleted {
            self.out.counts.deleted_marked += 1;
        } else if pair.created.is_none() {
            self.out.counts.updated.crm += 1;
        }
    }

    pub(super) async fn write_prm_updates(
        &mut self,
        pairs: &mut [WorkPair],
    ) -> Result<(), PassError> {
        let indices: Vec<usize> = (0..pairs.len())
            .filter(|&i| !pairs[i].prm_patch.is_empty())
            .collect();
        let indices = self.defer_repeated(Side::Prm, pairs, indices);
        if indices.is_empty() {
            return Ok(());
        }
        if self.dry_run {
            for &i in &indices {
                if pairs[i].created.is_none() {
                    self.out.counts.updated.prm += 1;
                }
                let (id, source, fields) = (
                    pairs[i].link.prm_id.clone(),
                    pairs[i].link.crm_id.clone(),
                    pairs[i].prm_patch.clone(),
                );
                self.plan_write("update", Side::Prm, Some(id), Some(source), fields);
            }
            return Ok(());
        }
        // A PRM update refused for its version is read, merged and sent again (race.rs).
        let mut todo = indices;
        let mut attempts = 1;
        while !todo.is_empty() {
            let raced = self.send_prm_updates(pairs, &todo, attempts).await?;
            todo = self.merge_raced_again(pairs, raced).await?;
            attempts += 1;
        }
        // The PRM edits those merges found for Salesforce: one more Collection, as the
        // Salesforce writes of the pass came first (see race.rs).
        let again: Vec<usize> = (0..pairs.len())
            .filter(|&i| pairs[i].raced && !pairs[i].crm_patch.is_empty())
            .collect();
        if again.is_empty() {
            return Ok(());
        }
        self.write_crm_rows(pairs, again).await
    }

    /// Sends the PRM updates of the pairs at `indices` (attempt `attempts` of each), a few
    /// in flight at once. Returns the pairs whose update was refused for its version and is
    /// to be tried again ([`read_again`]); every other outcome is settled here.
    async fn send_prm_updates(
        &mut self,
        pairs: &mut [WorkPair],
        indices: &[usize],
        attempts: u32,
    ) -> Result<Vec<usize>, PassError> {
        let collection = self.spec.prm_collection();
        let calls: Vec<(usize, String, i64, Fields)> = indices
            .iter()
            .map(|&i| {
                let pair = &pairs[i];
                let version = pair
                    .prm
                    .as_ref()
                    .map(|p| p.version)
                    .or(pair.link.prm_version)
                    .unwrap_or(0);
                (i, pair.link.prm_id.clone(), version, pair.prm_patch.clone())
            })
            .collect();
        let (order, writes): (Vec<usize>, Vec<_>) = calls
            .into_iter()
            .map(|(i, id, version, patch)| (i, (id, version, patch)))
            .unzip();
        let answers = self
            .ctx
            .prm
            .update_many(collection, writes, prm_concurrency(self.ctx))
            .await;
        let results: Vec<_> = order.into_iter().zip(answers).collect();
        let mut raced = Vec::new();
        for (i, result) in results {
            let result = match result {
                Ok(r) => r,
                Err(e) => Err(record_failure_of(e)?),
            };
            match result {
                Ok(updated) => self.prm_updated(&mut pairs[i], updated.version),
                Err(failure)
                    if failure.class == FailureClass::VersionConflict && read_again(attempts) =>
                {
                    raced.push(i)
                }
                Err(failure) => {
                    if matches!(
                        failure.class,
                        FailureClass::VersionConflict | FailureClass::Gone
                    ) {
                        // The PRM record in hand is outdated or gone.
                        drop_pending_crm_write(&mut pairs[i]);
                    }
                    self.update_failed(Side::Prm, &mut pairs[i], &failure)?
                }
            }
        }
        Ok(raced)
    }

    /// A PRM update that went through: logged, and its version kept in the link.
    fn prm_updated(&mut self, pair: &mut WorkPair, version: i64) {
        if pair.created.is_none() {
            self.out.counts.updated.prm += 1;
            let (c, p) = (pair.link.crm_id.clone(), pair.link.prm_id.clone());
            let fields: Vec<String> = pair.prm_patch.keys().cloned().collect();
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
                json!({"fields": self.values().value(&json!(pair.prm_patch))}),
            );
        }
        pair.link.prm_version = Some(version);
        pair.dirty = true;
    }

    /// Reads the PRM records of `raced` again (one call) and merges each pair again
    /// ([`merge_again`]), logging what the merge found. Returns the pairs with a PRM update
    /// to send again; a record gone meanwhile follows the "PRM record gone" path.
    async fn merge_raced_again(
        &mut self,
        pairs: &mut [WorkPair],
        raced: Vec<usize>,
    ) -> Result<Vec<usize>, PassError> {
        if raced.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = raced
            .iter()
            .map(|&i| pairs[i].link.prm_id.clone())
            .collect();
        let fetched = match self.ctx.prm.fetch(self.spec.prm_collection(), &ids).await {
            Ok(records) => records,
            Err(e) => {
                let failure = record_failure_of(e)?;
                for &i in &raced {
                    drop_pending_crm_write(&mut pairs[i]);
                    self.update_failed(Side::Prm, &mut pairs[i], &failure)?;
                }
                return Ok(Vec::new());
            }
        };
        let mut again = Vec::new();
        for i in raced {
            let Some(fresh) = fresh_record(&pairs[i].link.prm_id, &fetched) else {
                drop_pending_crm_write(&mut pairs[i]);
                let gone = RecordFailure {
                    class: FailureClass::Gone,
                    code: "deleted".into(),
                    message: "deleted while it was being synced".into(),
                    fields: Vec::new(),
                };
                self.update_failed(Side::Prm, &mut pairs[i], &gone)?;
                continue;
            };
            let rules = PlanRules {
                mapping: &self.ctx.mapping,
                spec: &self.spec,
                org_links: &self.org_links,
            };
            let findings = merge_again(rules, &mut pairs[i], fresh);
            self.report_findings(&pairs[i], findings);
            if !pairs[i].prm_patch.is_empty() {
                again.push(i);
            }
        }
        Ok(again)
    }

    pub(super) async fn save_links(&mut self, pairs: &mut [WorkPair]) -> Result<(), PassError> {
        let mut to_save = Vec::new();
        for (i, pair) in pairs.iter_mut().enumerate() {
            let wrote = pair.raced || !pair.crm_patch.is_empty() || !pair.prm_patch.is_empty();
            if !wrote
                && pair.created.is_none()
                && pair.link.state == LinkState::Linked
                && !pair.marks_deleted
            {
                self.out.counts.unchanged += 1;
            }
            // Drift (reported by a reconcile): a pair linked before this pass that had to
            // be written, or linked by a match now; created records are added in `run`.
            if pair.created.is_none() && (wrote || pair.marks_deleted || pair.matched) {
                self.out.counts.drift += 1;
            }
            if pair.rejected {
                let version = pair_version(pair.link.crm_modstamp, pair.link.prm_version);
                self.rejected
                    .push(("link", pair.link.prm_id.clone(), version));
            }
            // A link stored on creation in the held form is saved when it is not that now.
            let save = match pair.stored_held.as_deref() {
                Some(stored) => *stored != pair.link,
                None => pair.dirty || wrote,
            };
            if self.dry_run || !save {
                continue;
            }
            pair.link.updated_at = Utc::now();
            to_save.push(i);
        }
        if to_save.is_empty() {
            return Ok(());
        }
        let links: Vec<Link> = to_save.iter().map(|&i| pairs[i].link.clone()).collect();
        let results = self.ctx.store.save_links(&links).await;
        for (&i, result) in to_save.iter().zip(results) {
            match result {
                Ok(saved) => pairs[i].link = saved,
                Err(StoreError::Conflict { .. }) => {
                    // Another worker saved this pair first; its result stands and the
                    // next run merges again from there.
                    let (c, p) = (pairs[i].link.crm_id.clone(), pairs[i].link.prm_id.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_second_and_later_writes_of_one_id_are_repeats() {
        assert_eq!(
            repeated(["001A", "001B", "001A", "001C", "001A", "001B"]),
            vec![2, 4, 5]
        );
        assert!(repeated(["001A", "001B"]).is_empty());
    }
}
