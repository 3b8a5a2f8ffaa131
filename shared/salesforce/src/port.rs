//! The engine's [`Crm`] port on top of the REST client: change queries in SOQL built with
//! escaped values, look-ups in chunks, writes in sObject Collections.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use prmsync_engine::ports::{
    ApiUsage as PortUsage, Crm, FailureClass, FieldInfo, PortError, RecordFailure, Scope, System,
    WriteOk, WriteOutcome,
};
use prmsync_mapping::{CrmRecord, Fields};

use crate::soql::{Cond, Dir, Op, Soql};
use crate::{ErrorClass, RecordResult, SObject, SalesforceClient, SfError};

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
        class: class(e.class()),
        message: e.to_string(),
    }
}

fn to_record(o: SObject) -> CrmRecord {
    let modstamp = o.datetime("SystemModstamp");
    let deleted = o.bool("IsDeleted").unwrap_or(false);
    let master_id = o.str("MasterRecordId").map(str::to_string);
    CrmRecord {
        id: o.id,
        fields: o.fields,
        modstamp,
        deleted,
        master_id,
    }
}

fn outcome(r: RecordResult) -> WriteOutcome {
    match (r.errors.first(), r.id) {
        (None, Some(id)) => Ok(WriteOk {
            id,
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

/// The SOQL of a change query (DESIGN 2): SystemModstamp at or after the cursor, within
/// the scope, oldest first with Id as tie-breaker.
pub fn change_query(
    object: &str,
    fields: &[String],
    since: Option<DateTime<Utc>>,
    scope: &Scope,
) -> String {
    let mut conds = Vec::new();
    if let Some(since) = since {
        conds.push(Cond::cmp("SystemModstamp", Op::Ge, since));
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
    q.order_by("SystemModstamp", Dir::Asc)
        .order_by("Id", Dir::Asc)
        .to_string()
}

#[async_trait]
impl Crm for SalesforceClient {
    async fn changed(
        &self,
        object: &str,
        fields: &[String],
        since: Option<DateTime<Utc>>,
        scope: &Scope,
    ) -> Result<Vec<CrmRecord>, PortError> {
        let soql = change_query(object, fields, since, scope);
        let rows = self.query_all(&soql).await.map_err(port_error)?;
        Ok(rows.into_iter().map(to_record).collect())
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
                .to_string();
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
                .to_string();
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
        let results = SalesforceClient::update(self, object, records)
            .await
            .map_err(port_error)?;
        Ok(results.into_iter().map(outcome).collect())
    }

    async fn upsert(
        &self,
        object: &str,
        external_id_field: &str,
        records: Vec<Fields>,
    ) -> Result<Vec<WriteOutcome>, PortError> {
        let results = SalesforceClient::upsert(self, object, external_id_field, records)
            .await
            .map_err(port_error)?;
        Ok(results.into_iter().map(outcome).collect())
    }

    async fn describe(&self, object: &str) -> Result<Vec<FieldInfo>, PortError> {
        let d = SalesforceClient::describe(self, object)
            .await
            .map_err(port_error)?;
        Ok(d.fields
            .into_iter()
            .map(|f| FieldInfo {
                picklist_values: f.active_values().map(str::to_string).collect(),
                name: f.name,
                field_type: f.field_type,
                updateable: f.updateable,
                createable: f.createable,
                restricted_picklist: f.restricted_picklist,
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        );
        assert_eq!(
            q,
            "SELECT Id, Name FROM Account WHERE (SystemModstamp >= 2026-11-22T10:00:00.000Z AND (PRM_Sync__c = true OR PRM_Id__c != null)) ORDER BY SystemModstamp ASC, Id ASC"
        );
    }
}
