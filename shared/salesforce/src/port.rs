//! The engine's [`Crm`] port on top of the REST client: change queries in SOQL built with
//! escaped values, look-ups in chunks, writes in sObject Collections.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::ports::{
    ApiUsage as PortUsage, ChangeFrom, ChangePage, Crm, FailureClass, FieldInfo, PortError,
    RecordFailure, Scope, System, WriteOk, WriteOutcome,
};
use prmsync_mapping::{normalise_id, CrmRecord, Fields};

use crate::bulk::{BulkQueryOptions, BulkResults};
use crate::soql::{Cond, Dir, Op, Soql, SoqlError};
use crate::{ErrorClass, IngestOperation, RecordResult, SObject, SalesforceClient, SfError};

/// Values in one `IN (...)`: Ids are short; other values (emails) may be long, and the
/// whole query travels in the URL.
const ID_CHUNK: usize = 200;
const VALUE_CHUNK: usize = 100;

fn class(c: ErrorClass) -> FailureClass {
    match c {
        ErrorClass::Auth => FailureClass::Auth,
        ErrorClass::Transient => FailureClass::Transient,
        ErrorClass::Gone => FailureClass::Gone,
        ErrorClass::Setup => FailureClass::Setup,
        ErrorClass::Data | ErrorClass::Other => FailureClass::Data,
    }
}

fn port_error(e: SfError) -> PortError {
    PortError {
        system: System::Salesforce,
        class: if e.is_limit() {
            FailureClass::Limit
        } else {
            class(e.class())
        },
        message: e.to_string(),
    }
}

/// A query the builder refused (a field or object name outside the API-name alphabet).
fn soql_error(e: SoqlError) -> PortError {
    port_error(SfError::Query(e))
}

/// A row as the engine's record. Salesforce answers with 18-character Ids; they are kept
/// in that form whatever answers, so that they compare equal to the Ids the engine holds.
fn to_record(o: SObject) -> CrmRecord {
    let modstamp = o.datetime("SystemModstamp");
    let deleted = o.bool("IsDeleted").unwrap_or(false);
    let master_id = o.str("MasterRecordId").map(normalise_id);
    let id = normalise_id(&o.id);
    let mut fields = o.fields;
    if let Some(serde_json::Value::String(own)) = fields.get_mut("Id") {
        *own = id.clone();
    }
    CrmRecord {
        id,
        fields,
        modstamp,
        deleted,
        master_id,
    }
}

fn outcome(r: RecordResult) -> WriteOutcome {
    match (r.errors.first(), r.id) {
        (None, Some(id)) => Ok(WriteOk {
            id: normalise_id(&id),
            created: r.created.unwrap_or(false),
        }),
        (None, None) => Err(RecordFailure {
            class: FailureClass::Data,
            code: "NO_ID".into(),
            message: "Salesforce reported success without a record Id".into(),
            fields: Vec::new(),
        }),
        (Some(e), _) => Err(RecordFailure {
            class: class(e.class()),
            code: e.status_code.clone(),
            message: e.message.clone(),
            fields: e.fields.clone(),
        }),
    }
}

/// The SOQL of a change query (sync rule 2): SystemModstamp at or after the cursor, within
/// the scope, oldest first with Id as tie-breaker. A field or object name outside the
/// API-name alphabet is refused, naming it.
pub fn change_query(
    object: &str,
    fields: &[String],
    since: Option<DateTime<Utc>>,
    scope: &Scope,
) -> Result<String, SoqlError> {
    change_query_from(object, fields, &ChangeFrom { since, after: None }, scope)
}

/// [`change_query`] that also resumes strictly after a `(SystemModstamp, Id)` key: the
/// keyset a planner stores when it runs out of time, so ties on one SystemModstamp are
/// neither read twice nor skipped.
pub fn change_query_from(
    object: &str,
    fields: &[String],
    from: &ChangeFrom,
    scope: &Scope,
) -> Result<String, SoqlError> {
    change_select(object, fields, from, scope)
        .order_by("SystemModstamp", Dir::Asc)
        .order_by("Id", Dir::Asc)
        .build()
}

/// The change query without its order (a Bulk API query job: the order is restored on
/// the results).
fn change_select(object: &str, fields: &[String], from: &ChangeFrom, scope: &Scope) -> Soql {
    let mut conds = Vec::new();
    if let Some(since) = from.since {
        conds.push(Cond::cmp("SystemModstamp", Op::Ge, since));
    }
    if let Some((at, id)) = &from.after {
        conds.push(Cond::or(vec![
            Cond::cmp("SystemModstamp", Op::Gt, *at),
            Cond::and(vec![
                Cond::cmp("SystemModstamp", Op::Eq, *at),
                Cond::cmp("Id", Op::Gt, id.as_str()),
            ]),
        ]));
    }
    match scope {
        Scope::All => {}
        Scope::FlaggedOrLinked { flags, prm_id } => {
            let flagged: Vec<Cond> = flags.iter().map(|f| Cond::cmp(f, Op::Eq, true)).collect();
            let flagged = if flagged.len() == 1 {
                flagged.into_iter().next().expect("one flag")
            } else {
                Cond::and(flagged)
            };
            conds.push(Cond::or(vec![
                flagged,
                Cond::cmp(prm_id, Op::Ne, crate::soql::Value::Null),
            ]))
        }
        Scope::NotNull(field) => conds.push(Cond::cmp(field, Op::Ne, crate::soql::Value::Null)),
    }
    let mut q = Soql::select(fields).from(object);
    if !conds.is_empty() {
        q = q.where_(Cond::and(conds));
    }
    q
}

/// Whether a query job reads `total` records in fewer calls than the REST pages left after
/// the first: a job costs its creation, about two status polls, one call per result set
/// and perhaps a describe.
pub fn bulk_saves_calls(total: u64, threshold: u64, page: u64, per_result_set: u64) -> bool {
    if threshold == 0 || total <= threshold {
        return false;
    }
    let rest_left = total.div_ceil(page.max(1)).saturating_sub(1);
    let job = 4 + total.div_ceil(per_result_set.max(1));
    rest_left > job
}

/// A write of `records` goes through a Bulk API 2.0 ingest job: more than `threshold`
/// (0 = never). A job costs about four calls whatever its size, Collections one per 200.
pub fn by_ingest_job(records: usize, threshold: u64) -> bool {
    threshold > 0 && records as u64 > threshold
}

/// A page of REST query rows.
fn rest_page(rows: Vec<SObject>, next: Option<String>) -> ChangePage<CrmRecord> {
    ChangePage {
        records: rows.into_iter().map(to_record).collect(),
        next,
        rejected: Vec::new(),
    }
}

impl SalesforceClient {
    /// The next result set of a finished query job, as a page whose token names the set
    /// after it.
    async fn bulk_page(
        &self,
        object: &str,
        mut results: BulkResults,
        options: &BulkQueryOptions,
    ) -> Result<ChangePage<CrmRecord>, SfError> {
        let describe = self.describe_cached(object).await?;
        let rows = self
            .bulk_query_next(&mut results, &describe, options)
            .await?
            .unwrap_or_default();
        Ok(ChangePage {
            records: rows.into_iter().map(to_record).collect(),
            next: (!results.is_done()).then(|| results.token()),
            rejected: Vec::new(),
        })
    }
}

#[async_trait]
impl Crm for SalesforceClient {
    /// Every page of [`sweep_page`](Crm::sweep_page) (so a large read goes through a
    /// query job the same way), in `(SystemModstamp, Id)` order.
    async fn changed(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        scope: &Scope,
    ) -> Result<Vec<CrmRecord>, PortError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .sweep_page(object, fields, since, next.as_deref(), scope)
                .await?;
            out.extend(page.records);
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        // Query job results come in no set order.
        out.sort_by(|a, b| (a.modstamp, &a.id).cmp(&(b.modstamp, &b.id)));
        Ok(out)
    }

    async fn changed_page(
        &self,
        object: &str,
        fields: &[String],
        from: &ChangeFrom,
        page: Option<&str>,
        scope: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        let (rows, next) = match page {
            Some(url) => self.query_next_page(url).await,
            None => {
                let soql = change_query_from(object, fields, from, scope).map_err(soql_error)?;
                self.query_first_page(&soql, true).await
            }
        }
        .map_err(port_error)?;
        Ok(rest_page(rows, next))
    }

    async fn sweep_page(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        page: Option<&str>,
        scope: &Scope,
    ) -> Result<ChangePage<CrmRecord>, PortError> {
        let options = self.config().bulk_query.clone();
        if let Some(results) = page.and_then(BulkResults::from_token) {
            return self
                .bulk_page(object, results, &options)
                .await
                .map_err(port_error);
        }
        if let Some(url) = page {
            let (rows, next) = self.query_next_page(url).await.map_err(port_error)?;
            return Ok(rest_page(rows, next));
        }
        let soql = change_query(object, fields, since, scope).map_err(soql_error)?;
        let (rows, next, total) = self
            .query_first_page_sized(&soql, true)
            .await
            .map_err(port_error)?;
        let cfg = self.config();
        let per_page = u64::from(cfg.query_batch_size.clamp(200, 2000));
        let per_set = options.max_records.map_or(50_000, u64::from);
        if next.is_none() || !bulk_saves_calls(total, cfg.bulk_query_threshold, per_page, per_set) {
            return Ok(rest_page(rows, next));
        }
        // A query job reads everything again, the first REST page too: its rows are
        // dropped here so no record is handed out twice.
        drop(rows);
        let soql = change_select(object, fields, &ChangeFrom { since, after: None }, scope)
            .build()
            .map_err(soql_error)?;
        let describe = self.describe_cached(object).await.map_err(port_error)?;
        let results = self
            .bulk_query_start(&soql, true, &describe, &options)
            .await
            .map_err(port_error)?;
        self.bulk_page(object, results, &options)
            .await
            .map_err(port_error)
    }

    async fn find(
        &self,
        object: &str,
        fields: &[String],
        field: &str,
        values: &[String],
    ) -> Result<Vec<CrmRecord>, PortError> {
        let chunk = if field == "Id" { ID_CHUNK } else { VALUE_CHUNK };
        let mut out = Vec::new();
        for part in values.chunks(chunk) {
            let soql = Soql::select(fields)
                .from(object)
                .where_(Cond::in_(field, part.iter()))
                .build()
                .map_err(soql_error)?;
            let rows = self.query(&soql).await.map_err(port_error)?;
            out.extend(rows.into_iter().map(to_record));
        }
        Ok(out)
    }

    async fn fetch(
        &self,
        object: &str,
        fields: &[String],
        ids: &[String],
    ) -> Result<Vec<CrmRecord>, PortError> {
        let mut out = Vec::new();
        for part in ids.chunks(ID_CHUNK) {
            let soql = Soql::select(fields)
                .from(object)
                .where_(Cond::in_("Id", part.iter()))
                .build()
                .map_err(soql_error)?;
            let rows = self.query_all(&soql).await.map_err(port_error)?;
            out.extend(rows.into_iter().map(to_record));
        }
        Ok(out)
    }

    async fn create(
        &self,
        object: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let results = SalesforceClient::create(self, object, records)
            .await
            .map_err(port_error)?;
        Ok(results.into_iter().map(outcome).collect())
    }

    async fn update(
        &self,
        object: &str,
        records: Vec<(String, Fields)>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let results = if by_ingest_job(records.len(), self.config().bulk_ingest_threshold) {
            let rows = records
                .into_iter()
                .map(|(id, mut f)| {
                    f.insert("Id".into(), serde_json::Value::String(id));
                    f
                })
                .collect();
            let options = &self.config().bulk_ingest;
            self.ingest(object, IngestOperation::Update, rows, options)
                .await
        } else {
            SalesforceClient::update(self, object, records).await
        };
        Ok(results
            .map_err(port_error)?
            .into_iter()
            .map(outcome)
            .collect())
    }

    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let results = if by_ingest_job(records.len(), self.config().bulk_ingest_threshold) {
            let op = IngestOperation::Upsert { external_id_field };
            self.ingest(object, op, records, &self.config().bulk_ingest)
                .await
        } else {
            SalesforceClient::upsert(self, object, external_id_field, records).await
        };
        Ok(results
            .map_err(port_error)?
            .into_iter()
            .map(outcome)
            .collect())
    }

    async fn describe(&self, object: &str) -> Result<Vec<FieldInfo>, PortError> {
        let d = SalesforceClient::describe(self, object)
            .await
            .map_err(port_error)?;
        Ok(d.fields
            .into_iter()
            .map(|f| FieldInfo {
                scale: f.scale_kept(),
                picklist_values: f.active_values().map(str::to_string).collect(),
                name: f.name,
                label: f.label,
                field_type: f.field_type,
                updateable: f.updateable,
                createable: f.createable,
                restricted_picklist: f.restricted_picklist,
                external_id: f.external_id,
                unique: f.unique,
                case_sensitive: f.case_sensitive,
            })
            .collect())
    }

    fn record_url(&self, object: &str, id: &str) -> Option<String> {
        self.instance_url().map(|base| {
            format!(
                "{}/lightning/r/{object}/{id}/view",
                base.trim_end_matches('/')
            )
        })
    }

    fn usage(&self) -> Option<PortUsage> {
        SalesforceClient::usage(self).map(|u| PortUsage {
            used: u.used,
            max: u.max,
        })
    }

    fn calls(&self) -> u64 {
        SalesforceClient::calls(self).total
    }

    fn take_notices(&self) -> Vec<String> {
        SalesforceClient::take_notices(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_are_eighteen_characters() {
        let row = SObject::from_json(serde_json::json!({
            "attributes": {"type": "Account"},
            "Id": "001A0000006Vm9r",
            "MasterRecordId": "001a0000006vm9riac",
            "Name": "Acme"
        }))
        .unwrap();
        let r = to_record(row);
        assert_eq!(r.id, "001A0000006Vm9rIAC");
        assert_eq!(r.fields["Id"], "001A0000006Vm9rIAC");
        assert_eq!(r.master_id.as_deref(), Some("001A0000006Vm9rIAC"));
        let written = outcome(RecordResult {
            id: Some("001A0000006Vm9r".into()),
            created: Some(true),
            errors: Vec::new(),
        });
        assert_eq!(written.unwrap().id, "001A0000006Vm9rIAC");
    }

    #[test]
    fn an_ingest_job_above_the_threshold_only() {
        assert!(!by_ingest_job(5_000, 5_000));
        assert!(by_ingest_job(5_001, 5_000));
        assert!(!by_ingest_job(1_000_000, 0));
        assert!(by_ingest_job(2, 1));
    }

    #[test]
    fn a_query_job_only_when_it_saves_calls() {
        // 10,000 or fewer: never.
        assert!(!bulk_saves_calls(10_000, 10_000, 2000, 50_000));
        // 12,000: 5 REST pages left against a job of 4 + 1.
        assert!(!bulk_saves_calls(12_000, 10_000, 2000, 50_000));
        // 20,000: 9 pages left against 5.
        assert!(bulk_saves_calls(20_000, 10_000, 2000, 50_000));
        assert!(bulk_saves_calls(500_000, 10_000, 2000, 50_000));
        // Switched off.
        assert!(!bulk_saves_calls(500_000, 0, 2000, 50_000));
    }

    #[test]
    fn change_query_resumes_after_a_keyset() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let q = change_query_from(
            "Contact",
            &["Id".into()],
            &ChangeFrom {
                since: Some(at),
                after: Some((at, "003' OR Id != '".into())),
            },
            &Scope::All,
        )
        .unwrap();
        assert_eq!(
            q,
            "SELECT Id FROM Contact WHERE (SystemModstamp >= 2026-11-22T10:00:00.000Z AND (SystemModstamp > 2026-11-22T10:00:00.000Z OR (SystemModstamp = 2026-11-22T10:00:00.000Z AND Id > '003\\' OR Id != \\''))) ORDER BY SystemModstamp ASC, Id ASC"
        );
    }

    #[test]
    fn change_query_refuses_a_name_outside_the_api_alphabet() {
        let err = change_query(
            "Contact",
            &["Id".into(), "Name) FROM User--".into()],
            None,
            &Scope::All,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SoqlError::Identifier {
                name: "Name) FROM User--".into()
            }
        );
        let port = soql_error(err);
        assert_eq!(port.class, FailureClass::Setup);
        assert!(
            port.message.contains("Name) FROM User--"),
            "{}",
            port.message
        );
    }

    #[test]
    fn change_query_escapes_and_orders() {
        let since = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let q = change_query(
            "Account",
            &["Id".into(), "Name".into()],
            Some(since),
            &Scope::FlaggedOrLinked {
                flags: vec!["PRM_Sync__c".into()],
                prm_id: "PRM_Id__c".into(),
            },
        )
        .unwrap();
        assert_eq!(
            q,
            "SELECT Id, Name FROM Account WHERE (SystemModstamp >= 2026-11-22T10:00:00.000Z AND (PRM_Sync__c = true OR PRM_Id__c != null)) ORDER BY SystemModstamp ASC, Id ASC"
        );
    }
}
