//! The web console: the Sync Manager and the Integration Log as pages, over the same store
//! and engine as the CLI (`prmsync console`).
//!
//! Server-rendered HTML (no build step; one small script follows runs in progress). It
//! listens on loopback unless an access token is set, and every state-changing request is
//! a POST carrying the console's CSRF token ([`security`]). No secret is ever rendered:
//! the pages show the store's records (links, runs, cursors, log entries), never the
//! connection.

pub mod charts;
#[cfg(feature = "aws")]
pub mod deployment;
mod pages;
pub mod runs;
pub mod security;
pub mod status;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prmsync_engine::report::RunMode;
use prmsync_engine::store::{LogFilter, RunRecord, Store, StoreError, RUNS_LISTED};
use prmsync_engine::{relink, RecordRef};
use prmsync_mapping::{Integration, Level, LogCode, MappingConfig};
use serde::Deserialize;

pub use runs::{RecordSync, Runner, StartedRuns};
pub use security::{check_listen, ListenError, TOKEN_ENV};

/// Entries per page of the Integration Log.
pub const PAGE_SIZE: usize = 50;

/// What the console serves from.
#[derive(Clone)]
pub struct Console {
    pub store: Arc<dyn Store>,
    pub mapping: Arc<MappingConfig>,
    pub runner: Arc<dyn Runner>,
    /// Where the console's data comes from, shown in the header ("sandbox", a config
    /// file's name, "AWS"): never a URL with credentials.
    pub source: String,
    /// The access token (None on loopback without one).
    pub token: Option<String>,
    csrf: String,
    started: StartedRuns,
}

impl Console {
    pub fn new(
        store: Arc<dyn Store>,
        mapping: Arc<MappingConfig>,
        runner: Arc<dyn Runner>,
        source: &str,
        token: Option<String>,
    ) -> Self {
        Self {
            store,
            mapping,
            runner,
            source: source.to_string(),
            token: token.filter(|t| !t.trim().is_empty()),
            csrf: security::random_token(),
            started: StartedRuns::default(),
        }
    }

    /// The console's routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(sync_manager))
            .route("/actions", post(actions))
            .route("/runs.json", get(runs_json))
            .route("/log", get(log_page))
            .route("/log/ack", post(acknowledge))
            .route("/record", get(record_page))
            .route("/record/sync", post(record_sync))
            .route("/record/unlink", post(record_unlink))
            .route("/record/relink", post(record_relink))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                require_token,
            ))
            .with_state(self)
    }

    /// Binds `addr` (refusing an address other machines can reach unless an access token
    /// is set); [`Bound::serve`] then serves the pages.
    pub async fn bind(self, addr: SocketAddr) -> Result<Bound, ConsoleError> {
        check_listen(addr, self.token.as_deref())?;
        let bind_error = |e: std::io::Error| ConsoleError::Bind {
            addr,
            message: e.to_string(),
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        Ok(Bound {
            console: self,
            listener,
            local,
        })
    }
}

/// A console bound to its address.
pub struct Bound {
    console: Console,
    listener: tokio::net::TcpListener,
    local: SocketAddr,
}

impl Bound {
    /// The address it listens on (the port chosen when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ConsoleError> {
        tracing::info!(code = "console_listening", address = %self.local);
        let addr = self.local;
        axum::serve(self.listener, self.console.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| ConsoleError::Bind {
                addr,
                message: e.to_string(),
            })
    }
}

/// Why the console could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot listen on {addr}: {message}; pick another address with --listen")]
    Bind { addr: SocketAddr, message: String },
}

/// Every request carries the access token when the console has one.
async fn require_token(
    State(c): State<Console>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(expected) = c.token.as_deref() else {
        return next.run(request).await;
    };
    // the first visit may carry it in the address; it then moves to a cookie
    if let Some(given) = request
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
    {
        if security::same_secret(given, expected) {
            let path = request.uri().path().to_string();
            let mut r = Redirect::to(&path).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                format!(
                    "{}={expected}; HttpOnly; SameSite=Strict; Path=/",
                    security::TOKEN_COOKIE
                )
                .parse()
                .expect("a valid cookie"),
            );
            return r;
        }
    }
    let headers = request.headers();
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    match security::request_token(text(header::AUTHORIZATION), text(header::COOKIE)) {
        Some(given) if security::same_secret(given, expected) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            "this console needs its access token: open it with ?token=<PRMSYNC_CONSOLE_TOKEN>",
        )
            .into_response(),
    }
}

fn store_failure(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        pages::error_page(&format!("the state store could not be read: {e}")),
    )
        .into_response()
}

async fn sync_manager(State(c): State<Console>) -> Response {
    let rows = match status::rows(c.store.as_ref(), &c.mapping).await {
        Ok(rows) => rows,
        Err(e) => return store_failure(e),
    };
    match history(c.store.as_ref()).await {
        Ok(history) => pages::sync_manager(&c, &rows, &c.started.all(), &history).into_response(),
        Err(e) => store_failure(e),
    }
}

/// Each integration's runs of the charts' days, newest first.
async fn history(store: &dyn Store) -> Result<Vec<(Integration, Vec<RunRecord>)>, StoreError> {
    let since = chrono::Utc::now() - chrono::Duration::days(charts::DAYS);
    let mut out = Vec::new();
    for i in Integration::ALL {
        out.push((i, store.runs_since(i, since, RUNS_LISTED).await?));
    }
    Ok(out)
}

/// A posted form's fields, in order (a checked box per selected row repeats its name).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Self {
        Fields(url::form_urlencoded::parse(body).into_owned().collect())
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The Integration Log filter the form carries along.
    fn query(&self) -> LogQuery {
        let get = |n: &str| self.one(n).map(str::to_string);
        LogQuery {
            integration: get("integration"),
            level: get("level"),
            code: get("code"),
            record: get("record"),
            run: get("run"),
            open: get("open"),
            since: get("since"),
            page: None,
        }
    }
}

fn csrf_ok(c: &Console, given: Option<&str>) -> bool {
    given.is_some_and(|g| security::same_secret(g, &c.csrf))
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::error_page(
            "this form is stale or did not come from the console: reload the page and try again",
        ),
    )
        .into_response()
}

async fn actions(State(c): State<Console>, body: axum::body::Bytes) -> Response {
    let form = Fields::parse(&body);
    if !csrf_ok(&c, form.one("csrf")) {
        return forbidden();
    }
    let selected: Vec<Integration> = form
        .all("integration")
        .iter()
        .filter_map(|s| Integration::parse(s.trim()))
        .collect();
    if selected.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            pages::error_page("select at least one integration, then choose an action"),
        )
            .into_response();
    }
    for i in selected {
        let done = match form.one("action").unwrap_or_default() {
            "run" => {
                c.started.start(c.runner.clone(), i, RunMode::Incremental);
                Ok(())
            }
            "full" => {
                c.started.start(c.runner.clone(), i, RunMode::Full);
                Ok(())
            }
            "pause" => c.store.set_paused(i, true).await,
            "resume" => c.store.set_paused(i, false).await,
            other => {
                return (
                    StatusCode::BAD_REQUEST,
                    pages::error_page(&format!(
                        "unknown action `{other}`: use Run Now, Run Full Sync Now, Pause or Resume"
                    )),
                )
                    .into_response()
            }
        };
        if let Err(e) = done {
            return store_failure(e);
        }
    }
    Redirect::to("/").into_response()
}

/// The runs started here, with the errors each has logged so far and, while one runs,
/// the records it has done so far (from its run record, saved as it advances).
async fn runs_json(State(c): State<Console>) -> Response {
    let mut out = BTreeMap::new();
    for (name, run) in c.started.all() {
        let records_done = match &run.report {
            Some(r) => r.counts.records_done(),
            None => match records_done_so_far(c.store.as_ref(), &run).await {
                Ok(n) => n,
                Err(e) => return store_failure(e),
            },
        };
        let errors = match c
            .store
            .entries(&LogFilter {
                run_id: Some(run.run_id.clone()),
                min_level: Some(Level::Error),
                ..Default::default()
            })
            .await
        {
            Ok(e) => e.len(),
            Err(e) => return store_failure(e),
        };
        out.insert(
            name,
            serde_json::json!({
                "run_id": run.run_id,
                "mode": run.mode,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "status": run.report.as_ref().map(|r| r.status),
                "counts": run.report.as_ref().map(|r| &r.counts),
                "message": run.report.as_ref().and_then(|r| r.message.clone()),
                "errors_so_far": errors,
                "records_done": records_done,
            }),
        );
    }
    Json(out).into_response()
}

/// The records a running run has done so far: its run record's counts (a one-machine
/// run saves them after each page), or on AWS the counts of the chunks the workers have
/// finished (the run record is summed only when the last chunk closes it).
async fn records_done_so_far(store: &dyn Store, run: &runs::StartedRun) -> Result<u64, StoreError> {
    let saved = store
        .last_run(run.integration)
        .await?
        .filter(|r| r.run_id == run.run_id)
        .map_or(0, |r| r.counts.records_done());
    let chunks: u64 = store
        .run_chunks(run.integration, &run.run_id)
        .await?
        .iter()
        .filter(|c| c.done)
        .map(|c| c.counts.records_done())
        .sum();
    Ok(saved.max(chunks))
}

/// The Integration Log's filters, from the address.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct LogQuery {
    pub integration: Option<String>,
    pub level: Option<String>,
    pub code: Option<String>,
    pub record: Option<String>,
    pub run: Option<String>,
    /// Only entries not acknowledged (`open=1`).
    pub open: Option<String>,
    /// Only entries of the last `since` (`1h`, `24h`, `7d`...).
    pub since: Option<String>,
    pub page: Option<usize>,
}

impl LogQuery {
    /// The filter's fields by name, as the address and the forms carry them.
    pub fn pairs(&self) -> [(&'static str, &Option<String>); 7] {
        [
            ("integration", &self.integration),
            ("level", &self.level),
            ("code", &self.code),
            ("record", &self.record),
            ("run", &self.run),
            ("open", &self.open),
            ("since", &self.since),
        ]
    }

    /// The store's filter, or what is wrong with the time asked for.
    fn filter(&self) -> Result<LogFilter, String> {
        fn some(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let since = match some(&self.since) {
            None => None,
            Some(text) => {
                let d = prmsync_mapping::duration::parse(text)?;
                Some(
                    chrono::Utc::now()
                        .checked_sub_signed(d)
                        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
                )
            }
        };
        Ok(LogFilter {
            since,
            integration: some(&self.integration).and_then(Integration::parse),
            min_level: some(&self.level).and_then(Level::parse),
            code: some(&self.code).and_then(LogCode::parse),
            run_id: some(&self.run).map(str::to_string),
            record_id: some(&self.record).map(str::to_string),
            unacknowledged: some(&self.open).is_some(),
            ..Default::default()
        })
    }
}

async fn log_page(State(c): State<Console>, Query(q): Query<LogQuery>) -> Response {
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                pages::error_page(&format!("the time filter: {e}")),
            )
                .into_response()
        }
    };
    let entries = match c.store.entries(&filter).await {
        Ok(e) => e,
        Err(e) => return store_failure(e),
    };
    let open = match c
        .store
        .entries(&LogFilter {
            min_level: Some(Level::Warning),
            unacknowledged: true,
            ..Default::default()
        })
        .await
    {
        Ok(e) => e,
        Err(e) => return store_failure(e),
    };
    pages::log_page(&c, &q, &entries, &open).into_response()
}

async fn acknowledge(State(c): State<Console>, body: axum::body::Bytes) -> Response {
    let form = Fields::parse(&body);
    if !csrf_ok(&c, form.one("csrf")) {
        return forbidden();
    }
    let query = form.query();
    let ids: Vec<String> = if form.one("all").is_some() {
        let Ok(filter) = query.filter() else {
            return (
                StatusCode::BAD_REQUEST,
                pages::error_page(
                    "the time filter cannot be read: go back to the log and filter again",
                ),
            )
                .into_response();
        };
        match c.store.entries(&filter).await {
            Ok(e) => e.into_iter().map(|e| e.id).collect(),
            Err(e) => return store_failure(e),
        }
    } else {
        form.all("id")
    };
    if !ids.is_empty() {
        if let Err(e) = c.store.acknowledge(Some(&ids)).await {
            return store_failure(e);
        }
    }
    Redirect::to(&format!("/log{}", pages::query_string(&query))).into_response()
}

/// A record asked for by its Salesforce Id or PRM reference.
#[derive(Debug, Default, Deserialize)]
pub struct RecordQuery {
    pub id: Option<String>,
    /// What the last action on the page did (shown once).
    pub done: Option<String>,
}

async fn record_page(State(c): State<Console>, Query(q): Query<RecordQuery>) -> Response {
    let Some(text) = q.id.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return pages::record_search(&c, None, &[]).into_response();
    };
    if text.contains('@') {
        return email_search(&c, text).await;
    }
    let r = match RecordRef::parse(text) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                pages::record_search(&c, Some(&e.to_string()), &[]),
            )
                .into_response()
        }
    };
    let link = match relink::find_link(c.store.as_ref(), &r).await {
        Ok(l) => l,
        Err(e) => return store_failure(e),
    };
    // the record's history: entries naming either of its ids
    let mut ids = vec![match &r {
        RecordRef::Crm(_, id) | RecordRef::Prm(_, id) => id.clone(),
    }];
    if let Some(l) = &link {
        ids = vec![l.crm_id.clone(), l.prm_id.clone()];
    }
    let mut history = Vec::new();
    for id in ids {
        match c
            .store
            .entries(&LogFilter {
                record_id: Some(id),
                limit: Some(PAGE_SIZE),
                ..Default::default()
            })
            .await
        {
            Ok(e) => history.extend(e),
            Err(e) => return store_failure(e),
        }
    }
    history.sort_by_key(|e| std::cmp::Reverse(e.time));
    history.dedup_by(|a, b| a.id == b.id);
    let pair = c.runner.read_pair(&r).await;
    pages::record_page(
        &c,
        &pages::RecordView {
            record: &r,
            link: link.as_ref(),
            pair: pair.as_ref(),
            history: &history,
            done: q.done.as_deref(),
        },
    )
    .into_response()
}

/// People found by email on either side: one goes straight to its page.
async fn email_search(c: &Console, text: &str) -> Response {
    let email = match prmsync_engine::inspect::email(text) {
        Ok(e) => e,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                pages::record_search(c, Some(&e.to_string()), &[]),
            )
                .into_response()
        }
    };
    match c.runner.people_by_email(email).await {
        None => (
            StatusCode::BAD_REQUEST,
            pages::record_search(
                c,
                Some("searching by email reads Salesforce and the PRM, which this console does not connect to (--aws): search by a Salesforce Id or prm:person:<id>"),
                &[],
            ),
        )
            .into_response(),
        Some(Err(e)) => (
            StatusCode::BAD_GATEWAY,
            pages::record_search(c, Some(&format!("the search failed: {e}")), &[]),
        )
            .into_response(),
        Some(Ok(found)) if found.len() == 1 => {
            Redirect::to(&record_address(&found[0], None)).into_response()
        }
        Some(Ok(found)) if found.is_empty() => pages::record_search(
            c,
            Some("no Contact or PRM person has this email"),
            &[],
        )
        .into_response(),
        Some(Ok(found)) => pages::record_search(c, None, &found).into_response(),
    }
}

/// The address of a record's page, with what the last action did.
pub(crate) fn record_address(r: &RecordRef, done: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("id", &r.text());
    if let Some(done) = done {
        q.append_pair("done", done);
    }
    format!("/record?{}", q.finish())
}

/// The record a posted form names, or the answer to give.
fn posted_record(c: &Console, form: &Fields) -> Result<RecordRef, Box<Response>> {
    if !csrf_ok(c, form.one("csrf")) {
        return Err(Box::new(forbidden()));
    }
    RecordRef::parse(form.one("id").unwrap_or_default()).map_err(|e| {
        Box::new((StatusCode::BAD_REQUEST, pages::error_page(&e.to_string())).into_response())
    })
}

async fn record_sync(State(c): State<Console>, body: axum::body::Bytes) -> Response {
    let r = match posted_record(&c, &Fields::parse(&body)) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    let done = match c.runner.sync_record(&r).await {
        RecordSync::Done(report) => {
            let counts = serde_json::to_value(&report.counts).unwrap_or_default();
            let mut done = format!(
                "Sync Now: {}; {}",
                report.status.as_str(),
                pages::counts_line(&counts)
            );
            if let Some(m) = &report.message {
                done.push_str(&format!(" ({m})"));
            }
            done
        }
        RecordSync::Queued { run_id } => format!(
            "Sync Now: queued for the workers as run {run_id}; its outcome appears in the history below once a worker has synced it (reload)"
        ),
        RecordSync::Failed(e) => format!("Sync Now failed: {e}"),
    };
    Redirect::to(&record_address(&r, Some(&done))).into_response()
}

async fn record_unlink(State(c): State<Console>, body: axum::body::Bytes) -> Response {
    let r = match posted_record(&c, &Fields::parse(&body)) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    let done = match relink::unlink(c.store.as_ref(), &r).await {
        Ok(Some(link)) => format!(
            "Unlinked from Salesforce {}: the next full run links them again by their ids, or matches anew",
            link.crm_id
        ),
        Ok(None) => "No link to remove".to_string(),
        Err(e) => return store_failure(e),
    };
    Redirect::to(&record_address(&r, Some(&done))).into_response()
}

/// The record on the other side a relink form names: a Salesforce Id, a PRM reference, or
/// for a Salesforce record the bare PRM id of the same kind.
fn other_side(this: &RecordRef, text: &str) -> Result<RecordRef, prmsync_engine::RecordRefError> {
    let text = text.trim();
    match this {
        RecordRef::Crm(kind, _) if !text.starts_with("prm:") && !text.is_empty() => {
            match RecordRef::parse(text) {
                Ok(r @ RecordRef::Crm(..)) => Ok(r),
                _ => Ok(RecordRef::Prm(*kind, text.to_string())),
            }
        }
        _ => RecordRef::parse(text),
    }
}

async fn record_relink(State(c): State<Console>, body: axum::body::Bytes) -> Response {
    let form = Fields::parse(&body);
    let r = match posted_record(&c, &form) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    let done = match other_side(&r, form.one("other").unwrap_or_default()) {
        Err(e) => format!("Relink: {e}"),
        Ok(other) => {
            let (prm, crm) = match &r {
                RecordRef::Prm(..) => (&r, &other),
                RecordRef::Crm(..) => (&other, &r),
            };
            match relink::relink(c.store.as_ref(), prm, crm).await {
                Ok(done) => format!(
                    "Relinked {} {} to Salesforce {}{}: the next run reads both and merges them (first-link rule)",
                    done.link.object,
                    done.link.prm_id,
                    done.link.crm_id,
                    if done.removed.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} old link(s) removed)", done.removed.len())
                    }
                ),
                Err(relink::RelinkError::Store(e)) => return store_failure(e),
                Err(e) => format!("Relink: {e}"),
            }
        }
    };
    Redirect::to(&record_address(&r, Some(&done))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_mapping::ObjectKind;

    #[test]
    fn a_relink_form_takes_the_other_side_in_the_operators_words() {
        let account = RecordRef::Crm(ObjectKind::Organization, "001Sm0000000001IAA".into());
        assert_eq!(
            other_side(&account, " org_9 "),
            Ok(RecordRef::Prm(ObjectKind::Organization, "org_9".into()))
        );
        assert_eq!(
            other_side(&account, "prm:organization:org_9"),
            Ok(RecordRef::Prm(ObjectKind::Organization, "org_9".into()))
        );
        let org = RecordRef::Prm(ObjectKind::Organization, "org_9".into());
        assert_eq!(
            other_side(&org, "001Sm0000000001"),
            Ok(RecordRef::Crm(
                ObjectKind::Organization,
                "001Sm0000000001IAA".into()
            ))
        );
        assert!(other_side(&org, "").is_err());
        assert!(other_side(&account, "").is_err());
    }
}
