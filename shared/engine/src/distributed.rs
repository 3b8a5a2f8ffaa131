//! The same sync, split for AWS Lambda (DESIGN "Shape", 10, 12): a planner reads what
//! changed and hands out [`Chunk`]s of record references sized for batched calls; workers
//! sync each chunk on their own. One-machine runs do both in one process ([`crate::run`]).
//!
//! - [`plan_run`] takes the integration's lease, reads the changed ids (Salesforce `Id` and
//!   `SystemModstamp` only) and groups the two sides of a link into the same chunk.
//! - [`commit_plan`] moves the cursors once the chunks are queued, and releases the lease.
//! - [`sync_chunk`] fetches the chunk's records (deleted ones included) and runs the pass.
//!   People whose organization is not linked yet sync it first, so chunks can run in any
//!   order and on any number of workers.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use prmsync_mapping::{Integration, LogCode, ObjectKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::objects::ObjectSpec;
use crate::pass::{run_pass, PassError, PassInput};
use crate::report::Counts;
use crate::run::{
    entry, fetch_by_ids, read_window, reserve_message, RunMode, SyncContext, Window, CRM_SIDE,
    PRM_SIDE,
};
use crate::store::{LinkState, RunRecord};

/// Records per chunk: one `IN` query of 200 Ids per side, one Collection call of 200.
pub const CHUNK_SIZE: usize = 200;

/// A unit of work for a worker: references to records of one integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub run_id: String,
    pub integration: Integration,
    #[serde(default)]
    pub crm_ids: Vec<String>,
    #[serde(default)]
    pub prm_ids: Vec<String>,
    /// How many times this chunk was handed out again after a transient failure.
    #[serde(default)]
    pub attempt: u32,
}

/// What a planner found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub run_id: String,
    pub integration: Integration,
    pub mode: String,
    pub chunks: Vec<Chunk>,
    /// Set when the run did not plan anything, and why (paused, lease held, API reserve).
    pub skipped: Option<String>,
    pub crm_cursor: Option<DateTime<Utc>>,
    pub prm_cursor: Option<DateTime<Utc>>,
    /// Organizations whose people were included (cleared on commit).
    pub pending_orgs: Vec<String>,
}

impl Plan {
    pub fn records(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.crm_ids.len() + c.prm_ids.len())
            .sum()
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Plans a run: takes the lease (kept until [`commit_plan`]), reads what changed on both
/// sides since the cursors (everything when `mode` is full or on the first run) and groups
/// the references into chunks.
pub async fn plan_run(
    ctx: &SyncContext,
    integration: Integration,
    mode: RunMode,
    run_id: &str,
) -> Result<Plan, String> {
    let store = &ctx.store;
    let mut plan = Plan {
        run_id: run_id.to_string(),
        integration,
        mode: mode.as_str().into(),
        chunks: Vec::new(),
        skipped: None,
        crm_cursor: None,
        prm_cursor: None,
        pending_orgs: Vec::new(),
    };
    if store.is_paused(integration).await.map_err(err)? {
        let m = format!("{integration} is paused; `prmsync resume {integration}` starts it again");
        crate::store::record_log(
            store.as_ref(),
            &[entry(
                run_id,
                integration,
                LogCode::RunSkippedPaused,
                m.clone(),
                Value::Null,
            )],
        )
        .await
        .map_err(err)?;
        plan.skipped = Some(m);
        return Ok(plan);
    }
    if !store
        .acquire_lease(integration, &ctx.holder, Utc::now() + ctx.lease_ttl)
        .await
        .map_err(err)?
    {
        let m = format!("another {integration} run holds the lease; this invocation did nothing");
        crate::store::record_log(
            store.as_ref(),
            &[entry(
                run_id,
                integration,
                LogCode::RunSkippedLeaseHeld,
                m.clone(),
                Value::Null,
            )],
        )
        .await
        .map_err(err)?;
        plan.skipped = Some(m);
        return Ok(plan);
    }
    match read_plan(ctx, integration, mode, &mut plan).await {
        Ok(()) => Ok(plan),
        Err(e) => {
            let _ = store.release_lease(integration, &ctx.holder).await;
            let _ = crate::store::record_log(
                store.as_ref(),
                &[entry(
                    run_id,
                    integration,
                    LogCode::RunFailed,
                    e.clone(),
                    Value::Null,
                )],
            )
            .await;
            Err(e)
        }
    }
}

async fn read_plan(
    ctx: &SyncContext,
    integration: Integration,
    mode: RunMode,
    plan: &mut Plan,
) -> Result<(), String> {
    let store = &ctx.store;
    let kind = integration.object();
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let Window {
        mode,
        crm_cursor,
        prm_cursor,
        crm_since,
        prm_since,
    } = read_window(ctx, integration, &spec, mode).await?;
    plan.mode = mode.as_str().into();
    if let Some(m) = reserve_message(ctx) {
        crate::store::record_log(
            store.as_ref(),
            &[entry(
                &plan.run_id,
                integration,
                LogCode::ApiReserveReached,
                m.clone(),
                Value::Null,
            )],
        )
        .await
        .map_err(err)?;
        store
            .release_lease(integration, &ctx.holder)
            .await
            .map_err(err)?;
        plan.skipped = Some(m);
        return Ok(());
    }
    let crm = ctx
        .crm
        .changed(
            spec.crm_object(),
            &["Id".into(), "SystemModstamp".into()],
            crm_since,
            &spec.scope(),
        )
        .await
        .map_err(|e| format!("reading changed {} records: {e}", spec.crm_object()))?;
    let prm = ctx
        .prm
        .changed(spec.prm_collection(), prm_since)
        .await
        .map_err(|e| format!("reading changed PRM {}: {e}", spec.prm_collection()))?;
    plan.crm_cursor = crm.iter().filter_map(|r| r.modstamp).max().or(crm_cursor);
    plan.prm_cursor = prm.iter().map(|r| r.updated_at).max().or(prm_cursor);
    let mut crm_ids: Vec<String> = crm.into_iter().map(|r| r.id).collect();
    let mut prm_ids: Vec<String> = prm.into_iter().map(|r| r.id).collect();
    for l in store.links_to_retry(kind).await.map_err(err)? {
        crm_ids.push(l.crm_id);
        prm_ids.push(l.prm_id);
    }
    if kind == ObjectKind::Person {
        let pending = store
            .children_pending(ObjectKind::Organization)
            .await
            .map_err(err)?;
        if !pending.is_empty() {
            let accounts: Vec<String> = pending.iter().map(|(_, c)| c.clone()).collect();
            let contacts = ctx
                .crm
                .find("Contact", &["Id".into()], "AccountId", &accounts)
                .await
                .map_err(err)?;
            crm_ids.extend(contacts.into_iter().map(|c| c.id));
            for (org, _) in &pending {
                let people = ctx.prm.people_of_organization(org).await.map_err(err)?;
                prm_ids.extend(people.into_iter().map(|p| p.id));
            }
            plan.pending_orgs = pending.into_iter().map(|(p, _)| p).collect();
        }
    }
    plan.chunks = chunk(ctx, kind, &plan.run_id, integration, crm_ids, prm_ids).await?;
    Ok(())
}

/// Groups references so that both records of a link land in the same chunk.
async fn chunk(
    ctx: &SyncContext,
    kind: ObjectKind,
    run_id: &str,
    integration: Integration,
    crm_ids: Vec<String>,
    prm_ids: Vec<String>,
) -> Result<Vec<Chunk>, String> {
    let mut seen_crm = BTreeSet::new();
    let crm_ids: Vec<String> = crm_ids
        .into_iter()
        .filter(|i| seen_crm.insert(i.clone()))
        .collect();
    let mut seen_prm = BTreeSet::new();
    let prm_ids: Vec<String> = prm_ids
        .into_iter()
        .filter(|i| seen_prm.insert(i.clone()))
        .collect();
    let links = ctx
        .store
        .find_links(kind, &crm_ids, &prm_ids)
        .await
        .map_err(err)?;
    let prm_of: HashMap<&str, &str> = links
        .iter()
        .map(|l| (l.crm_id.as_str(), l.prm_id.as_str()))
        .collect();
    let mut units: Vec<(Option<String>, Option<String>)> = Vec::new();
    let mut used_prm = BTreeSet::new();
    for c in crm_ids {
        let p = prm_of
            .get(c.as_str())
            .filter(|p| seen_prm.contains(**p))
            .map(|p| p.to_string());
        if let Some(p) = &p {
            used_prm.insert(p.clone());
        }
        units.push((Some(c), p));
    }
    for p in prm_ids {
        if !used_prm.contains(&p) {
            units.push((None, Some(p)));
        }
    }
    Ok(units
        .chunks(CHUNK_SIZE)
        .map(|part| Chunk {
            run_id: run_id.to_string(),
            integration,
            crm_ids: part.iter().filter_map(|(c, _)| c.clone()).collect(),
            prm_ids: part.iter().filter_map(|(_, p)| p.clone()).collect(),
            attempt: 0,
        })
        .collect())
}

/// Once the chunks are queued: moves the cursors, clears the organizations whose people
/// were planned, records the run and releases the lease.
pub async fn commit_plan(ctx: &SyncContext, plan: &Plan) -> Result<(), String> {
    let store = &ctx.store;
    let integration = plan.integration;
    let now = Utc::now();
    store
        .set_cursor(integration, CRM_SIDE, plan.crm_cursor.unwrap_or(now))
        .await
        .map_err(err)?;
    store
        .set_cursor(integration, PRM_SIDE, plan.prm_cursor.unwrap_or(now))
        .await
        .map_err(err)?;
    if !plan.pending_orgs.is_empty() {
        store
            .clear_children_pending(ObjectKind::Organization, &plan.pending_orgs)
            .await
            .map_err(err)?;
    }
    store
        .save_run(&RunRecord {
            run_id: plan.run_id.clone(),
            integration,
            mode: plan.mode.clone(),
            dry_run: false,
            started_at: now,
            finished_at: Some(Utc::now()),
            status: "queued".into(),
            counts: Counts::default(),
        })
        .await
        .map_err(err)?;
    crate::store::record_log(
        store.as_ref(),
        &[entry(
            &plan.run_id,
            integration,
            LogCode::RunStarted,
            format!(
                "{} run of {integration} queued {} records in {} chunks",
                plan.mode,
                plan.records(),
                plan.chunks.len()
            ),
            json!({"chunks": plan.chunks.len(), "records": plan.records()}),
        )],
    )
    .await
    .map_err(err)?;
    store
        .release_lease(integration, &ctx.holder)
        .await
        .map_err(err)
}

/// What a worker did with a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkReport {
    pub counts: Counts,
    pub stopped: Option<String>,
}

/// Why a chunk must be handed out again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("chunk of {integration} run {run_id} failed and is retried: {message}")]
pub struct ChunkError {
    pub run_id: String,
    pub integration: Integration,
    pub message: String,
}

/// Syncs one chunk: fetches its records (deleted ones included) and runs the pass on them.
/// Safe to run twice, or on two workers at once.
pub async fn sync_chunk(ctx: &SyncContext, chunk: &Chunk) -> Result<ChunkReport, ChunkError> {
    let fail = |message: String| ChunkError {
        run_id: chunk.run_id.clone(),
        integration: chunk.integration,
        message,
    };
    let kind = chunk.integration.object();
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let (crm, prm) = fetch_by_ids(ctx, &spec, &chunk.crm_ids, &chunk.prm_ids)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut counts = Counts::default();
    let mut log = Vec::new();
    if kind == ObjectKind::Person {
        // Organizations this chunk's people belong to, not linked yet: sync them first.
        let accounts: Vec<String> = crm
            .iter()
            .filter_map(|c| c.str_field("AccountId").map(str::to_string))
            .collect();
        let orgs: Vec<String> = prm
            .iter()
            .filter_map(|p| p.str_field("organization_id").map(str::to_string))
            .collect();
        let linked = ctx
            .store
            .find_links(ObjectKind::Organization, &accounts, &orgs)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let live: BTreeSet<&str> = linked
            .iter()
            .filter(|l| l.state == LinkState::Linked)
            .flat_map(|l| [l.crm_id.as_str(), l.prm_id.as_str()])
            .collect();
        let missing_accounts: Vec<String> = accounts
            .iter()
            .filter(|a| !live.contains(a.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let missing_orgs: Vec<String> = orgs
            .iter()
            .filter(|o| !live.contains(o.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing_accounts.is_empty() || !missing_orgs.is_empty() {
            let org_spec = ObjectSpec::new(ObjectKind::Organization, &ctx.mapping);
            let (org_crm, org_prm) = fetch_by_ids(ctx, &org_spec, &missing_accounts, &missing_orgs)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let input = PassInput {
                crm: org_crm,
                prm: org_prm,
                full: false,
                retry_rejected: false,
            };
            let out = run_pass(ctx, ObjectKind::Organization, &chunk.run_id, false, input)
                .await
                .map_err(|e| fail(pass_message(e)))?;
            log.extend(out.log);
        }
    }
    let input = PassInput {
        crm,
        prm,
        full: false,
        retry_rejected: false,
    };
    let out = run_pass(ctx, kind, &chunk.run_id, false, input)
        .await
        .map_err(|e| fail(pass_message(e)))?;
    counts.add(&out.counts);
    log.extend(out.log);
    crate::store::record_log(ctx.store.as_ref(), &log)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(ChunkReport {
        counts,
        stopped: out.stopped,
    })
}

fn pass_message(e: PassError) -> String {
    match e {
        PassError::Port(p) => p.to_string(),
        PassError::Store(s) => s.to_string(),
    }
}
