//! Creates.

use std::collections::BTreeMap;

use futures::StreamExt;
use prmsync_mapping::config::Side;
use prmsync_mapping::transform::{read_crm, read_prm, write_crm, write_prm};
use prmsync_mapping::value::canonical;
use prmsync_mapping::{rules, CrmRecord, Fields, LogCode, ObjectKind, PrmRecord};
use serde_json::{json, Value};

use super::failures::WriteAction;
use super::*;
use crate::objects::keys;
use crate::ports::FailureClass;
use crate::store::{Link, StoreError};

impl<'a> Pass<'a> {
    /// Creates PRM records for new Salesforce records, with the Salesforce Id as
    /// `Idempotency-Key` and `crm_id`, and saves each link at once.
    pub(super) async fn create_in_prm(
        &mut self,
        records: Vec<CrmRecord>,
    ) -> Result<Vec<WorkPair>, PassError> {
        let mut bodies = Vec::new();
        for crm in records {
            if let Some((body, snapshot)) = self.prm_create_body(&crm) {
                bodies.push((crm, body, snapshot));
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
        let prm = self.ctx.prm.clone();
        let results: Vec<_> =
            futures::stream::iter(bodies.into_iter().map(|(crm, body, snapshot)| {
                let prm = prm.clone();
                async move {
                    let key = crm.id.clone();
                    let r = prm.create(collection, &key, body).await;
                    (crm, snapshot, r)
                }
            }))
            .buffered(prm_concurrency(self.ctx))
            .collect()
            .await;
        let mut items = Vec::new();
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
                    let mut item = WorkPair::new(link);
                    item.crm = Some(crm);
                    item.prm = Some(created);
                    item.created = Some(Side::Prm);
                    items.push(item);
                }
                Err(failure) => {
                    if failure.class == FailureClass::Data {
                        self.remember_rejected(&crm);
                    }
                    if let Err(e) = self.report_failure(
                        Side::Prm,
                        &failure,
                        Some(&crm.id),
                        None,
                        WriteAction::Create,
                    ) {
                        stop = Some(e);
                        break;
                    }
                }
            }
        }
        self.save_created(items, stop).await
    }

    /// Saves the links of records this pass just created, in one store call, and returns
    /// the items whose link was saved (on a conflict another worker's link stands). When
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
        let links: Vec<Link> = created.iter().map(|i| i.link.clone()).collect();
        let results = self.ctx.store.save_links(&links).await;
        let mut out = Vec::with_capacity(created.len());
        for (mut item, result) in created.into_iter().zip(results) {
            match result {
                Ok(saved) => item.link = saved,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            self.add_org_link(&item.link);
            self.children_pending(&item.link).await?;
            out.push(item);
        }
        stop.map_or(Ok(out), Err)
    }

    pub(super) fn prm_create_body(
        &mut self,
        crm: &CrmRecord,
    ) -> Option<(Fields, BTreeMap<String, Value>)> {
        let mut body = Fields::new();
        let mut snapshot = BTreeMap::new();
        for f in self.spec.fields.iter() {
            let v = match (&f.fixed, &f.crm) {
                (Some(fixed), _) if f.prm.is_some() => canonical(f.field_type, f.max_length, fixed),
                (Some(_), _) => continue,
                (None, _) => match read_crm(f, &crm.fields) {
                    Ok(v) => v,
                    Err(e) => {
                        self.unmapped(&e, Some(&crm.id), None);
                        self.remember_rejected(crm);
                        return None;
                    }
                },
            };
            if f.prm.is_some() && !v.is_null() {
                write_prm(f, &v, &mut body);
            }
            snapshot.insert(f.key(), v);
        }
        body.insert("crm_id".into(), json!(crm.id));
        snapshot.insert(keys::CRM_ID.into(), json!(crm.id));
        match self.spec.kind {
            ObjectKind::Organization => {
                let parent = crm
                    .str_field("ParentId")
                    .and_then(|p| self.org_links.prm_id_of(p));
                if self.spec.reference.is_some() {
                    if let Some(p) = &parent {
                        body.insert("parent_id".into(), json!(p));
                    }
                    snapshot.insert(keys::REFERENCE.into(), json!(parent));
                }
            }
            _ => {
                let org = self.org_links.org_of_contact(crm)?;
                body.insert("organization_id".into(), json!(org));
                body.insert("kind".into(), json!("contact"));
                snapshot.insert(keys::REFERENCE.into(), json!(org));
                snapshot.insert(keys::KIND.into(), json!("contact"));
            }
        }
        Some((body, snapshot))
    }

    /// Creates Salesforce records for new PRM records by upsert on the PRM Id field, in
    /// Collections, and saves each link at once.
    pub(super) async fn create_in_crm(
        &mut self,
        records: Vec<PrmRecord>,
    ) -> Result<Vec<WorkPair>, PassError> {
        let mut rows = Vec::new();
        for prm in records {
            if let Some((body, snapshot)) = self.crm_create_body(&prm) {
                rows.push((prm, body, snapshot));
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
        let mut items = Vec::new();
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
                    let mut item = WorkPair::new(link);
                    let mut fields = body;
                    fields.insert("Id".into(), json!(ok.id));
                    item.crm = Some(CrmRecord {
                        id: ok.id.clone(),
                        fields,
                        modstamp: None,
                        deleted: false,
                        master_id: None,
                    });
                    item.prm = Some(prm);
                    item.created = Some(Side::Crm);
                    items.push(item);
                }
                Err(failure) => {
                    if failure.class == FailureClass::Data {
                        self.remember_rejected(&prm);
                    }
                    if let Err(e) = self.report_failure(
                        Side::Crm,
                        &failure,
                        None,
                        Some(&prm.id),
                        WriteAction::Create,
                    ) {
                        stop = Some(e);
                        break;
                    }
                }
            }
        }
        self.save_created(items, stop).await
    }

    pub(super) fn crm_create_body(
        &mut self,
        prm: &PrmRecord,
    ) -> Option<(Fields, BTreeMap<String, Value>)> {
        let mut body = Fields::new();
        let mut snapshot = BTreeMap::new();
        for f in self.spec.fields.iter() {
            let v = match &f.fixed {
                Some(fixed) if f.crm.is_some() => canonical(f.field_type, f.max_length, fixed),
                Some(_) => continue,
                None => read_prm(f, &prm.fields),
            };
            if f.crm.is_some() {
                if let Err(e) = write_crm(f, &v, &mut body) {
                    self.unmapped(&e, None, Some(&prm.id));
                    self.remember_rejected(prm);
                    return None;
                }
            }
            snapshot.insert(f.key(), v);
        }
        let setup = self.spec.setup.clone();
        body.insert(self.spec.prm_id_field().to_string(), json!(prm.id));
        snapshot.insert(keys::PRM_ID.into(), json!(prm.id));
        match self.spec.kind {
            ObjectKind::Organization => {
                body.insert(setup.sync_flag.clone(), json!(true));
                if self.spec.reference.is_some() {
                    let parent = prm
                        .str_field("parent_id")
                        .and_then(|p| self.org_links.crm_id_of(p).map(|c| (p.to_string(), c)));
                    if let Some((_, crm_parent)) = &parent {
                        body.insert("ParentId".into(), json!(crm_parent));
                    }
                    snapshot.insert(keys::REFERENCE.into(), json!(parent.map(|(p, _)| p)));
                }
            }
            _ => {
                let account = self.org_links.account_of_person(prm)?;
                body.insert("AccountId".into(), json!(account));
                body.insert(setup.sync_flag.clone(), json!(true));
                snapshot.insert(
                    keys::REFERENCE.into(),
                    json!(prm.str_field("organization_id")),
                );
                snapshot.insert(
                    keys::KIND.into(),
                    json!(prm.str_field("kind").unwrap_or("contact")),
                );
            }
        }
        let merged: Fields = snapshot.clone().into_iter().collect();
        if let Some(label) = self.spec.status_label(&merged) {
            let status = rules::record_status(&label, false);
            body.insert(setup.record_status.clone(), json!(status));
            snapshot.insert(keys::RECORD_STATUS.into(), json!(status));
        }
        Some((body, snapshot))
    }
}
