//! The engine's [`Prm`] port on top of the PRM API client.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::ports::{
    one_by_one, ChangeFrom, ChangePage, FailureClass, PortError, Prm, PrmFieldSpec, PrmGroup,
    PrmSettings, RecordFailure, Rejected, System,
};
use prmsync_mapping::{Fields, PrmRecord as EngineRecord};

use crate::{BatchWrite, Collection, ListQuery, Malformed, PrmClient, PrmError, PrmRecord};

fn collection(name: &str) -> Result<Collection, PortError> {
    match name {
        "organizations" => Ok(Collection::Organizations),
        "people" => Ok(Collection::People),
        "deals" => Ok(Collection::Deals),
        other => Err(PortError {
            system: System::Prm,
            class: FailureClass::Setup,
            message: format!("unknown PRM collection `{other}`"),
        }),
    }
}

fn class(e: &PrmError) -> FailureClass {
    match e {
        PrmError::Unauthorized => FailureClass::Auth,
        PrmError::NotFound | PrmError::Deleted => FailureClass::Gone,
        PrmError::VersionConflict => FailureClass::VersionConflict,
        PrmError::Validation { .. } => FailureClass::Data,
        e if e.is_transient() => FailureClass::Transient,
        PrmError::Decode(_) | PrmError::Insecure(_) => FailureClass::Setup,
        _ => FailureClass::Data,
    }
}

fn code(e: &PrmError) -> &'static str {
    match e {
        PrmError::Unauthorized => "unauthorized",
        PrmError::NotFound => "not_found",
        PrmError::VersionConflict => "version_conflict",
        PrmError::Validation { .. } => "validation_failed",
        PrmError::Deleted => "deleted",
        PrmError::RateLimited { .. } => "rate_limited",
        PrmError::Server { .. } => "internal",
        PrmError::Transport(_) => "transport",
        PrmError::Decode(_) => "decode",
        PrmError::Insecure(_) => "insecure_url",
    }
}

fn port_error(e: PrmError) -> PortError {
    PortError {
        system: System::Prm,
        class: class(&e),
        message: e.to_string(),
    }
}

/// A record-level failure; failures that concern the whole PRM (auth, outage) end the call.
fn record_result(
    r: Result<PrmRecord, PrmError>,
) -> Result<Result<EngineRecord, RecordFailure>, PortError> {
    match r {
        Ok(rec) => Ok(Ok(to_engine(rec))),
        Err(e)
            if matches!(
                class(&e),
                FailureClass::Auth | FailureClass::Transient | FailureClass::Setup
            ) =>
        {
            Err(port_error(e))
        }
        Err(e) => {
            let fields = match &e {
                PrmError::Validation { fields, .. } => fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect(),
                _ => Vec::new(),
            };
            // The fields travel on their own; the engine names them in its message.
            let message = match &e {
                PrmError::Validation { message, .. } => message.clone(),
                other => other.to_string(),
            };
            Ok(Err(RecordFailure {
                class: class(&e),
                code: code(&e).into(),
                message,
                fields,
            }))
        }
    }
}

/// Every page of a list, as the engine's records. A record that cannot be read is left
/// out, as if it had not changed: these reads (by id, by email, by organization) serve
/// records a change read listed or links hold, and a record malformed since then changed
/// after that read, so the next change read meets it and logs it.
async fn list_records(
    client: &PrmClient,
    c: Collection,
    q: &ListQuery,
) -> Result<Vec<EngineRecord>, PortError> {
    let (records, malformed) = client.read_all(c, q).await.map_err(port_error)?;
    for m in &malformed {
        tracing::warn!(
            collection = %c,
            id = m.id.as_deref().unwrap_or("?"),
            // The adapter does not know `[log] values`: the values a problem quotes are
            // masked here; the Integration Log entry follows the setting.
            problem = %prmsync_mapping::mask::scrub_message(&m.problem, &[]),
            "a PRM record could not be read; left out"
        );
    }
    Ok(records.into_iter().map(to_engine).collect())
}

fn rejected(m: Malformed) -> Rejected {
    Rejected {
        id: m.id,
        updated_at: m.updated_at,
        problem: m.problem,
    }
}

fn to_engine(r: PrmRecord) -> EngineRecord {
    EngineRecord {
        deleted: r.is_deleted(),
        id: r.id,
        version: r.version,
        updated_at: r.updated_at,
        crm_id: r.crm_id,
        fields: r.fields,
    }
}

#[async_trait]
impl Prm for PrmClient {
    async fn changed(
        &self,
        collection_name: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<EngineRecord>, PortError> {
        let q = ListQuery {
            updated_since: since,
            limit: Some(self.page_size()),
            ..Default::default()
        };
        list_records(self, collection(collection_name)?, &q).await
    }

    async fn changed_page(
        &self,
        collection_name: &str,
        from: &ChangeFrom,
        page: Option<&str>,
    ) -> Result<ChangePage<EngineRecord>, PortError> {
        let q = ListQuery {
            updated_since: from.since,
            limit: Some(self.page_size()),
            ..Default::default()
        };
        let c = collection(collection_name)?;
        let mut page = page.map(str::to_string);
        loop {
            let read = self
                .read_page(c, &q, page.as_deref())
                .await
                .map_err(port_error)?;
            let next = read.next;
            let fresh: Vec<EngineRecord> = read
                .records
                .into_iter()
                .filter(|r| from.admits(Some(r.updated_at), &r.id))
                .map(to_engine)
                .collect();
            // A record that cannot be read is handed over on its own, so that the rest of
            // the page syncs; one before the resume key was handed over already.
            let refused: Vec<Rejected> = read
                .malformed
                .into_iter()
                .filter(|m| match (m.updated_at, &m.id) {
                    (Some(at), Some(id)) => from.admits(Some(at), id),
                    _ => true,
                })
                .map(rejected)
                .collect();
            // A page wholly before the resume key (ties on `updated_since`): read on.
            if fresh.is_empty()
                && refused.is_empty()
                && next.is_some()
                && from.after.is_some()
                && page != next
            {
                page = next;
                continue;
            }
            return Ok(ChangePage {
                records: fresh,
                next,
                rejected: refused,
            });
        }
    }

    async fn fetch(
        &self,
        collection_name: &str,
        ids: &[String],
    ) -> Result<Vec<EngineRecord>, PortError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = ListQuery {
            ids: ids.to_vec(),
            limit: Some(self.page_size()),
            ..Default::default()
        };
        list_records(self, collection(collection_name)?, &q).await
    }

    async fn people_by_email(&self, email: &str) -> Result<Vec<EngineRecord>, PortError> {
        let q = ListQuery {
            email: Some(email.to_string()),
            ..Default::default()
        };
        list_records(self, Collection::People, &q).await
    }

    async fn people_of_organization(
        &self,
        organization_id: &str,
    ) -> Result<Vec<EngineRecord>, PortError> {
        let q = ListQuery {
            organization_id: Some(organization_id.to_string()),
            limit: Some(self.page_size()),
            ..Default::default()
        };
        list_records(self, Collection::People, &q).await
    }

    async fn create(
        &self,
        collection_name: &str,
        idempotency_key: &str,
        body: Fields,
    ) -> Result<Result<EngineRecord, RecordFailure>, PortError> {
        let c = collection(collection_name)?;
        record_result(PrmClient::create(self, c, idempotency_key, &body).await)
    }

    async fn update(
        &self,
        collection_name: &str,
        id: &str,
        version: i64,
        patch: Fields,
    ) -> Result<Result<EngineRecord, RecordFailure>, PortError> {
        let c = collection(collection_name)?;
        record_result(PrmClient::update(self, c, id, version, &patch).await)
    }

    async fn create_many(
        &self,
        collection_name: &str,
        items: Vec<(String, Fields)>,
        concurrency: usize,
    ) -> Vec<Result<Result<EngineRecord, RecordFailure>, PortError>> {
        let c = match collection(collection_name) {
            Ok(c) => c,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        let writes: Vec<BatchWrite<'_>> = items
            .iter()
            .map(|(key, body)| BatchWrite::Create {
                idempotency_key: key,
                record: body,
            })
            .collect();
        self.write_many(c, &writes, concurrency).await
    }

    async fn update_many(
        &self,
        collection_name: &str,
        items: Vec<(String, i64, Fields)>,
        concurrency: usize,
    ) -> Vec<Result<Result<EngineRecord, RecordFailure>, PortError>> {
        let c = match collection(collection_name) {
            Ok(c) => c,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        let writes: Vec<BatchWrite<'_>> = items
            .iter()
            .map(|(id, version, patch)| BatchWrite::Update {
                id,
                if_match: *version,
                record: patch,
            })
            .collect();
        self.write_many(c, &writes, concurrency).await
    }

    async fn settings(&self) -> Result<PrmSettings, PortError> {
        let s = PrmClient::settings(self).await.map_err(port_error)?;
        Ok(PrmSettings {
            distributor_module_enabled: s.distributor_module.enabled,
            partner_email_optional_for_distributor_owned: s
                .distributor_module
                .partner_email_optional_for_distributor_owned,
            deal_fields: s
                .deal_fields
                .into_iter()
                .map(|f| PrmFieldSpec {
                    name: f.name,
                    required: f.required,
                    values: f.values,
                })
                .collect(),
        })
    }

    async fn groups(&self) -> Result<Vec<PrmGroup>, PortError> {
        let groups = PrmClient::groups(self).await.map_err(port_error)?;
        Ok(groups
            .into_iter()
            .filter(|g| g.deleted_at.is_none())
            .map(|g| PrmGroup {
                id: g.id,
                kind: g.kind,
                modules: g.modules,
            })
            .collect())
    }

    fn calls(&self) -> u64 {
        PrmClient::calls(self)
    }
}

impl PrmClient {
    /// `writes` in batches where the PRM offers them (of at most its `max`, `concurrency`
    /// batches at a time), else one request each: one result per write, in order. A batch
    /// refused as a whole gives each of its writes that error.
    async fn write_many(
        &self,
        c: Collection,
        writes: &[BatchWrite<'_>],
        concurrency: usize,
    ) -> Vec<Result<Result<EngineRecord, RecordFailure>, PortError>> {
        let max = match self.batch_max().await {
            Ok(Some(max)) => max,
            // no batches (or the settings could not be read now): one request per write
            _ => {
                let each: Vec<usize> = (0..writes.len()).collect();
                return one_by_one(each, concurrency, |i| async move {
                    record_result(match writes[i] {
                        BatchWrite::Create {
                            idempotency_key,
                            record,
                        } => PrmClient::create(self, c, idempotency_key, record).await,
                        BatchWrite::Update {
                            id,
                            if_match,
                            record,
                        } => PrmClient::update(self, c, id, if_match, record).await,
                    })
                })
                .await;
            }
        };
        let spans: Vec<(usize, usize)> = (0..writes.len())
            .step_by(max)
            .map(|start| (start, (start + max).min(writes.len())))
            .collect();
        let answers = one_by_one(spans, concurrency, |(start, end)| async move {
            (end - start, self.batch(c, &writes[start..end]).await)
        })
        .await;
        let mut out = Vec::with_capacity(writes.len());
        for (len, answer) in answers {
            match answer {
                Ok(results) => out.extend(results.into_iter().map(record_result)),
                Err(e) => out.extend((0..len).map(|_| record_result(Err(e.clone())))),
            }
        }
        out
    }
}
