//! The planner's chunks: a page's records with their partners, numbered, recorded in the
//! store and queued.

use crate::error::{During, EngineError};
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use prmsync_mapping::{CrmRecord, Integration, PrmRecord};

use super::PlanReport;
use crate::chunk::{Chunk, ChunkRecords, Claim, CHUNK_SIZE};
use crate::context::SyncContext;
use crate::objects::ObjectSpec;
use crate::pairing::{pair_page, PrmChanges};
use crate::ports::Queue;
use crate::store::{ChunkRecord, PlanCheckpoint};

/// Turns pages into chunks, records them in the store and queues them (or only counts
/// them on a dry run).
pub(super) struct Sender<'a> {
    pub(super) ctx: &'a SyncContext,
    pub(super) queue: Option<&'a dyn Queue>,
    pub(super) run_id: String,
    pub(super) integration: Integration,
    pub(super) full: bool,
    /// Ids in the retry set: a chunk names those it holds, so the worker clears them.
    pub(super) retrying: HashSet<String>,
    /// The Salesforce record each match-key candidate was queued with.
    pub(super) taken_by: HashMap<String, String>,
    /// Salesforce Ids queued by this run.
    pub(super) queued_crm: HashSet<String>,
}

impl Sender<'_> {
    /// One chunk: Salesforce records read, PRM records held, and references to read again.
    pub(super) fn chunk(
        &self,
        crm: Vec<CrmRecord>,
        prm: Vec<PrmRecord>,
        prm_refs: Vec<String>,
        crm_refs: Vec<String>,
        read_at: DateTime<Utc>,
    ) -> Chunk {
        let mut crm_ids: Vec<String> = crm.iter().map(|r| r.id.clone()).collect();
        crm_ids.extend(crm_refs);
        let mut prm_ids: Vec<String> = prm.iter().map(|r| r.id.clone()).collect();
        prm_ids.extend(prm_refs);
        let retrying = crm_ids
            .iter()
            .chain(&prm_ids)
            .filter(|i| self.retrying.contains(*i))
            .cloned()
            .collect();
        let mut chunk = Chunk::refs(&self.run_id, self.integration, crm_ids, prm_ids);
        chunk.full = self.full;
        chunk.retrying = retrying;
        if !crm.is_empty() || !prm.is_empty() {
            chunk.records = Some(ChunkRecords { read_at, crm, prm });
        }
        chunk
    }

    /// A Salesforce page's chunks: each record with its partners, no unit split.
    pub(super) async fn page_chunks(
        &mut self,
        spec: &ObjectSpec,
        prm: &mut PrmChanges,
        page: Vec<CrmRecord>,
    ) -> Result<Vec<Chunk>, EngineError> {
        let read_at = Utc::now();
        let pairing = pair_page(self.ctx, spec, prm, &page).await?;
        // A record read twice (it changed after an earlier page queued it) is queued again,
        // its newer version with the candidates it was queued with, by id: whichever of
        // its two chunks runs first links them, and neither creates a twin.
        let mut again: HashMap<usize, Vec<String>> = HashMap::new();
        for s in &pairing.spent {
            if self.queued_crm.contains(&page[s.crm].id) {
                again.insert(
                    s.crm,
                    s.candidates
                        .iter()
                        .map(|p| prm.id(*p).to_string())
                        .collect(),
                );
            }
        }
        self.queued_crm.extend(page.iter().map(|r| r.id.clone()));
        let claims: HashMap<usize, Claim> = pairing
            .spent
            .iter()
            .filter(|s| !again.contains_key(&s.crm))
            .filter_map(|s| {
                let prm_id = prm.id(*s.candidates.first()?).to_string();
                let taken_by = s
                    .candidates
                    .iter()
                    .find_map(|p| self.taken_by.get(prm.id(*p)))
                    .cloned()
                    .unwrap_or_default();
                Some((
                    s.crm,
                    Claim {
                        crm_id: page[s.crm].id.clone(),
                        prm_id,
                        taken_by,
                    },
                ))
            })
            .collect();
        let mut slots: Vec<Option<CrmRecord>> = page.into_iter().map(Some).collect();
        let mut chunks = Vec::new();
        let mut crm: Vec<CrmRecord> = Vec::new();
        let mut positions: Vec<u32> = Vec::new();
        let mut claimed: Vec<Claim> = Vec::new();
        let mut refs: Vec<String> = Vec::new();
        for unit in pairing.units {
            if !crm.is_empty() && crm.len() + unit.crm.len() > CHUNK_SIZE {
                chunks.push(self.flush(
                    prm,
                    &mut crm,
                    &mut positions,
                    &mut claimed,
                    &mut refs,
                    read_at,
                ));
            }
            let first = unit
                .crm
                .first()
                .and_then(|&i| slots[i].as_ref())
                .map(|r| r.id.clone());
            for &p in &unit.prm {
                if let Some(first) = &first {
                    self.taken_by
                        .entry(prm.id(p).to_string())
                        .or_insert_with(|| first.clone());
                }
            }
            for i in unit.crm {
                claimed.extend(claims.get(&i).cloned());
                refs.extend(again.remove(&i).unwrap_or_default());
                crm.extend(slots[i].take());
            }
            positions.extend(unit.prm);
        }
        if !crm.is_empty() {
            chunks.push(self.flush(
                prm,
                &mut crm,
                &mut positions,
                &mut claimed,
                &mut refs,
                read_at,
            ));
        }
        Ok(chunks)
    }

    fn flush(
        &self,
        prm: &mut PrmChanges,
        crm: &mut Vec<CrmRecord>,
        positions: &mut Vec<u32>,
        claimed: &mut Vec<Claim>,
        again: &mut Vec<String>,
        read_at: DateTime<Utc>,
    ) -> Chunk {
        let (held, mut refs) = prm.take_refs(std::mem::take(positions));
        refs.append(again);
        refs.sort_unstable();
        refs.dedup();
        let mut chunk = self.chunk(std::mem::take(crm), held, refs, Vec::new(), read_at);
        chunk.claimed = std::mem::take(claimed);
        chunk
    }

    /// Numbers the chunks, records them in the store, queues them, and counts them.
    pub(super) async fn send(
        &self,
        mut chunks: Vec<Chunk>,
        cp: &mut PlanCheckpoint,
        report: &mut PlanReport,
    ) -> Result<(), EngineError> {
        chunks.retain(|c| !c.is_empty());
        if chunks.is_empty() {
            return Ok(());
        }
        for (i, c) in chunks.iter_mut().enumerate() {
            c.number = Some(cp.chunks as u32 + i as u32);
            c.fit_message();
        }
        let records: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if let Some(queue) = self.queue {
            let tracked: Vec<ChunkRecord> = chunks
                .iter()
                .map(|c| ChunkRecord {
                    integration: self.integration,
                    run_id: c.run_id.clone(),
                    number: c.number.unwrap_or_default(),
                    crm_ids: c.crm_ids.clone(),
                    prm_ids: c.prm_ids.clone(),
                    done: false,
                    counts: Default::default(),
                    held: Vec::new(),
                })
                .collect();
            self.ctx.store.add_chunks(&tracked).await?;
            queue.send(&chunks).await.during(|| {
                format!(
                    "queuing {} chunks of {} (the run carries on from its last checkpoint \
                     on the next invocation)",
                    chunks.len(),
                    self.integration
                )
            })?;
        }
        let n = chunks.len() as u64;
        cp.chunks += n;
        cp.records += records;
        report.chunks += n;
        report.records += records;
        report.run_chunks = cp.chunks;
        report.run_records = cp.records;
        Ok(())
    }
}
