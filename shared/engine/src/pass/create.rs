//! Creates: records matching found no partner for are created on the other side, each
//! link saved at once. PRM records are created one call each (a few in flight) with the
//! Salesforce Id as `Idempotency-Key` and `crm_id`; Salesforce records by upsert on the
//! PRM Id field, in one Collections call after checking the API reserve. Sync rule 5
//! (idempotent creates: a crash after any write converges to one record per side) of
//! `docs/sync-rules.md`; the bodies are built in create_body.rs.
//!
//! The two directions are written apart on purpose: the calls differ (one idempotent
//! create per record vs. one batched upsert that may also update), and so does what
//! comes back (the PRM's record vs. an id and whether it was created).

use prmsync_mapping::config::Side;
use prmsync_mapping::{CrmRecord, Fields, LogCode, ObjectKind, PrmRecord};
use serde_json::{json, Value};

use super::create_body::{crm_create_body, prm_create_body, NoCreate};
use super::held::held_form;
use super::{prm_concurrency, record_failure_of, Pass, PassError, WorkPair};
use crate::store::{Link, StoreError};

impl<'a> Pass<'a> {
    /// Creates the unmatched records of each side on the other: PRM records first, then
    /// Salesforce records. Opportunities become deals by the import rules instead
    /// (deal_import.rs); deals never become Opportunities.
    pub(super) async fn create_unmatched(
        &mut self,
        to_prm: Vec<CrmRecord>,
        to_crm: Vec<PrmRecord>,
    ) -> Result<Vec<WorkPair>, PassError> {
        if self.spec.kind == ObjectKind::Deal {
            return self.import_deals(to_prm).await;
        }
        let mut created = self.create_in_prm(to_prm).await?;
        created.extend(self.create_in_crm(to_crm).await?);
        Ok(created)
    }

    /// Creates PRM records for new Salesforce records, with the Salesforce Id as
    /// `Idempotency-Key` and `crm_id`, and saves each link at once.
    pub(super) async fn create_in_prm(
        &mut self,
        records: Vec<CrmRecord>,
    ) -> Result<Vec<WorkPair>, PassError> {
        let mut bodies = Vec::new();
        for crm in records {
            match prm_create_body(&self.spec, &self.org_links, &crm) {
                Ok((body, snapshot)) => bodies.push((crm, body, snapshot)),
                Err(NoCreate::Unmapped(e)) => {
                    self.unmapped(&e, Some(&crm.id), None);
                    self.remember_rejected(&crm);
                }
                Err(NoCreate::OrganizationNotSynced) => {}
            }
        }
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        if self.dry_run {
            for (crm, body, _) in bodies {
                self.out.counts.created.prm += 1;
                self.plan_write("create", Side::Prm, None, Some(crm.id), body);
            }
            return Ok(Vec::new());
        }
        let collection = self.spec.prm_collection();
        // The Salesforce Id as Idempotency-Key: a retried create returns the first record.
        let (sources, writes): (Vec<_>, Vec<_>) = bodies
            .into_iter()
            .map(|(crm, body, snapshot)| {
                let key = crm.id.clone();
                ((crm, snapshot), (key, body))
            })
            .unzip();
        let answers = self
            .ctx
            .prm
            .create_many(collection, writes, prm_concurrency(self.ctx))
            .await;
        let results: Vec<_> = sources
            .into_iter()
            .zip(answers)
            .map(|((crm, snapshot), r)| (crm, snapshot, r))
            .collect();
        let mut pairs = Vec::new();
        let mut stop = None;
        for (crm, snapshot, result) in results {
            let result = match result.map_err(record_failure_of) {
                Ok(r) => r,
                Err(Ok(failure)) => Err(failure),
                Err(Err(e)) => {
                    stop = Some(e);
                    break;
                }
            };
            match result {
                Ok(created) => {
                    self.out.counts.created.prm += 1;
                    let mut link = Link::new(self.spec.kind, &created.id, &crm.id);
                    link.snapshot = snapshot;
                    link.prm_version = Some(created.version);
                    link.crm_modstamp = crm.modstamp;
                    self.log(
                        LogCode::RecordCreated,
                        Some(&crm.id),
                        Some(&created.id),
                        format!(
                            "Created PRM {} {} from {} {}",
                            self.spec.kind,
                            created.id,
                            self.spec.crm_object(),
                            crm.id
                        ),
                        Value::Null,
                    );
                    let mut pair = WorkPair::new(link);
                    pair.crm = Some(crm);
                    pair.prm = Some(created);
                    pair.created = Some(Side::Prm);
                    pairs.push(pair);
                }
                Err(failure) => {
                    if let Err(e) = self.create_failed(&crm, &failure) {
                        stop = Some(e);
                        break;
                    }
                }
            }
        }
        self.save_created(pairs, stop).await
    }

    /// Saves the links of records this pass just created, in one store call, and returns
    /// the pairs whose link was saved (on a conflict another worker's link stands). When
    /// the creates stopped on an error (`stop`), the records created so far keep their
    /// links and the error is returned.
    pub(super) async fn save_created(
        &mut self,
        created: Vec<WorkPair>,
        stop: Option<PassError>,
    ) -> Result<Vec<WorkPair>, PassError> {
        if self.dry_run || created.is_empty() {
            return stop.map_or(Ok(created), Err);
        }
        // A write-back that may be held is stored in the form holding leaves its link.
        let links: Vec<Link> = created
            .iter()
            .map(|p| held_form(p, self.hold_crm_updates).unwrap_or_else(|| p.link.clone()))
            .collect();
        let results = self.ctx.store.save_links(&links).await;
        let mut out = Vec::with_capacity(created.len());
        for (mut pair, result) in created.into_iter().zip(results) {
            match result {
                Ok(saved) if saved.retry != pair.link.retry => {
                    // The pass goes on with the link as created; the stored form waits
                    // for `hold` to match it.
                    pair.link = Link {
                        retry: pair.link.retry,
                        ..saved.clone()
                    };
                    pair.stored_held = Some(Box::new(saved));
                }
                Ok(saved) => pair.link = saved,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            self.add_org_link(&pair.link);
            self.children_pending(&pair.link).await?;
            out.push(pair);
        }
        stop.map_or(Ok(out), Err)
    }

    /// Creates Salesforce records for new PRM records by upsert on the PRM Id field, in
    /// Collections, and saves each link at once.
    pub(super) async fn create_in_crm(
        &mut self,
        records: Vec<PrmRecord>,
    ) -> Result<Vec<WorkPair>, PassError> {
        let mut rows = Vec::new();
        for prm in records {
            match crm_create_body(&self.spec, &self.org_links, &prm) {
                Ok((body, snapshot)) => rows.push((prm, body, snapshot)),
                Err(NoCreate::Unmapped(e)) => {
                    self.unmapped(&e, None, Some(&prm.id));
                    self.remember_rejected(&prm);
                }
                Err(NoCreate::OrganizationNotSynced) => {}
            }
        }
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if self.dry_run {
            for (prm, body, _) in rows {
                self.out.counts.created.crm += 1;
                self.plan_write("create", Side::Crm, None, Some(prm.id), body);
            }
            return Ok(Vec::new());
        }
        if let Some(message) = self.reserve_reached() {
            self.out.stopped = Some(message);
            return Ok(Vec::new());
        }
        let bodies: Vec<Fields> = rows.iter().map(|(_, b, _)| b.clone()).collect();
        let results = match self
            .ctx
            .crm
            .upsert(self.spec.crm_object(), self.spec.prm_id_field(), bodies)
            .await
        {
            Ok(results) => results,
            Err(e) => vec![Err(record_failure_of(e)?); rows.len()],
        };
        self.log_crm_notices();
        let mut pairs = Vec::new();
        let mut stop = None;
        for ((prm, body, snapshot), result) in rows.into_iter().zip(results) {
            match result {
                Ok(ok) => {
                    if ok.created {
                        self.out.counts.created.crm += 1;
                    } else {
                        self.out.counts.updated.crm += 1;
                    }
                    self.log(
                        LogCode::RecordCreated,
                        Some(&ok.id),
                        Some(&prm.id),
                        format!(
                            "Created Salesforce {} {} from PRM {} {}",
                            self.spec.crm_object(),
                            ok.id,
                            self.spec.kind,
                            prm.id
                        ),
                        Value::Null,
                    );
                    let mut link = Link::new(self.spec.kind, &prm.id, &ok.id);
                    link.snapshot = snapshot;
                    link.prm_version = Some(prm.version);
                    let mut pair = WorkPair::new(link);
                    let mut fields = body;
                    fields.insert("Id".into(), json!(ok.id));
                    pair.crm = Some(CrmRecord {
                        id: ok.id.clone(),
                        fields,
                        modstamp: None,
                        deleted: false,
                        master_id: None,
                    });
                    pair.prm = Some(prm);
                    pair.created = Some(Side::Crm);
                    pairs.push(pair);
                }
                Err(failure) => {
                    if let Err(e) = self.create_failed(&prm, &failure) {
                        stop = Some(e);
                        break;
                    }
                }
            }
        }
        self.save_created(pairs, stop).await
    }
}
