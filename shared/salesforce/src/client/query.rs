//! SOQL queries (`/query`, `/queryAll`) with `nextRecordsUrl` paging, and single-record
//! reads.

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{seg, Resp, SalesforceClient};
use crate::error::{ErrorClass, SfError};
use crate::types::SObject;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    #[serde(default)]
    done: bool,
    #[serde(default, rename = "totalSize")]
    total_size: u64,
    #[serde(default)]
    records: Vec<Value>,
    #[serde(default)]
    next_records_url: Option<String>,
}

impl SalesforceClient {
    /// Run a SOQL query and follow `nextRecordsUrl` to the end.
    pub async fn query(&self, soql: &str) -> Result<Vec<SObject>, SfError> {
        let mut out = Vec::new();
        self.query_pages(soql, false, |page| out.extend(page))
            .await?;
        Ok(out)
    }

    /// Like [`query`](Self::query) through `/queryAll` (includes deleted and archived rows).
    pub async fn query_all(&self, soql: &str) -> Result<Vec<SObject>, SfError> {
        let mut out = Vec::new();
        self.query_pages(soql, true, |page| out.extend(page))
            .await?;
        Ok(out)
    }

    /// Run a query and hand each page (up to `query_batch_size` records) to `on_page`.
    pub async fn query_pages(
        &self,
        soql: &str,
        all: bool,
        mut on_page: impl FnMut(Vec<SObject>),
    ) -> Result<(), SfError> {
        let (mut records, mut next) = self.query_first_page(soql, all).await?;
        loop {
            on_page(records);
            match next {
                Some(url) => (records, next) = self.query_next_page(&url).await?,
                None => return Ok(()),
            }
        }
    }

    fn query_options(&self) -> [(&'static str, String); 1] {
        let batch = self.inner.cfg.query_batch_size.clamp(200, 2000);
        [("Sforce-Query-Options", format!("batchSize={batch}"))]
    }

    /// The first page of a query (`/queryAll` when `all`), and the `nextRecordsUrl` of the
    /// next page when there is one.
    pub async fn query_first_page(
        &self,
        soql: &str,
        all: bool,
    ) -> Result<(Vec<SObject>, Option<String>), SfError> {
        let (records, next, _) = self.query_first_page_sized(soql, all).await?;
        Ok((records, next))
    }

    /// [`query_first_page`](Self::query_first_page) with the query's `totalSize`.
    pub async fn query_first_page_sized(
        &self,
        soql: &str,
        all: bool,
    ) -> Result<(Vec<SObject>, Option<String>, u64), SfError> {
        let path = self.data_path(if all { "/queryAll" } else { "/query" });
        let resp = self
            .send(
                Method::GET,
                &path,
                &[("q", soql.to_string())],
                None,
                &self.query_options(),
                true,
            )
            .await?;
        let page: QueryPage = resp.json("a query")?;
        let total = page.total_size;
        let (records, next) = Self::page_records(page)?;
        Ok((records, next, total))
    }

    /// The page a `nextRecordsUrl` names, and the next one's address.
    pub async fn query_next_page(
        &self,
        next_records_url: &str,
    ) -> Result<(Vec<SObject>, Option<String>), SfError> {
        let resp = self
            .send(
                Method::GET,
                next_records_url,
                &[],
                None,
                &self.query_options(),
                true,
            )
            .await?;
        Self::query_page(resp)
    }

    fn query_page(resp: Resp) -> Result<(Vec<SObject>, Option<String>), SfError> {
        Self::page_records(resp.json("a query")?)
    }

    fn page_records(page: QueryPage) -> Result<(Vec<SObject>, Option<String>), SfError> {
        let records = page
            .records
            .into_iter()
            .map(SObject::from_json)
            .collect::<Result<Vec<_>, _>>()?;
        let next = page
            .next_records_url
            .filter(|next| !page.done && !next.is_empty());
        Ok((records, next))
    }

    /// `GET /sobjects/{object}/{id}` (all fields when `fields` is empty).
    /// `Ok(None)` when the record does not exist or was deleted.
    pub async fn get(
        &self,
        object: &str,
        id: &str,
        fields: &[&str],
    ) -> Result<Option<SObject>, SfError> {
        let path = self.data_path(&format!("/sobjects/{}/{}", seg(object), seg(id)));
        let query: Vec<(&str, String)> = if fields.is_empty() {
            vec![]
        } else {
            vec![("fields", fields.join(","))]
        };
        match self.send(Method::GET, &path, &query, None, &[], true).await {
            Ok(resp) => {
                let v: Value = resp.json("a record read")?;
                let mut o = SObject::from_json(v)?;
                if o.object.is_empty() {
                    o.object = object.to_string();
                }
                if o.id.is_empty() {
                    o.id = id.to_string();
                }
                Ok(Some(o))
            }
            Err(e) if e.class() == ErrorClass::Gone => Ok(None),
            Err(e) => Err(e),
        }
    }
}
