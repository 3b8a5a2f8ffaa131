//! The pages, server-rendered (maud escapes every value).

use std::collections::BTreeMap;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use prmsync_engine::inspect::PairView;
use prmsync_engine::store::LogEntry;
use serde_json::Value;

use crate::runs::StartedRun;
use crate::{Console, LogQuery, PAGE_SIZE};

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff}
header{background:#0b3d91;color:#fff;padding:.6rem 1rem;display:flex;gap:1.5rem;align-items:center}
header a{color:#fff}
main{padding:1rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #888;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#e8ecf4}
.paused{color:#8a4b00;font-weight:bold}
.error{color:#a00000}
.actions form{display:inline-block;margin:.3rem .6rem .3rem 0}
button{padding:.4rem .8rem;margin-right:.4rem;font-size:1rem}
:focus{outline:3px solid #f5a623;outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#000;padding:.3rem}
details pre{white-space:pre-wrap;background:#f4f4f4;padding:.4rem}
";

fn layout(title: &str, source: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · prmsync" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    strong { "prmsync" }
                    nav aria-label="Pages" {
                        a href="/" { "Sync Manager" } " · "
                        a href="/log" { "Integration Log" } " · "
                        a href="/record" { "Find a record" }
                    }
                    span { "Data: " (source) }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page that says what went wrong and what to do.
pub fn error_page(message: &str) -> Markup {
    layout(
        "Something went wrong",
        "-",
        html! { p role="alert" { (message) } p { a href="/" { "Back to the Sync Manager" } } },
    )
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

fn short_time(t: &str) -> String {
    if t.is_empty() {
        return "never".into();
    }
    t.chars().take(19).collect::<String>().replace('T', " ") + " UTC"
}

fn duration(started: &str, finished: &str) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(started), parse(finished)) {
        (Some(a), Some(b)) => format!("{:.1} s", (b - a).num_milliseconds() as f64 / 1000.0),
        _ => "-".into(),
    }
}

/// "created 3/2, updated 1/0, 0 errors" (Salesforce/PRM).
pub fn counts_line(counts: &Value) -> String {
    if counts.is_null() {
        return String::new();
    }
    let n = |path: &[&str]| {
        path.iter()
            .fold(counts, |v, k| &v[*k])
            .as_u64()
            .unwrap_or(0)
    };
    format!(
        "created {} in Salesforce, {} in the PRM; updated {}/{}; {} unchanged; {} conflicts; {} errors",
        n(&["created", "crm"]),
        n(&["created", "prm"]),
        n(&["updated", "crm"]),
        n(&["updated", "prm"]),
        n(&["unchanged"]),
        n(&["conflicts"]),
        n(&["errors"]),
    )
}

fn started_line(run: &StartedRun) -> String {
    match &run.report {
        None => format!("running ({:?})", run.mode).to_lowercase(),
        Some(r) => {
            let counts = serde_json::to_value(&r.counts).unwrap_or_default();
            format!("{}: {}", r.status.as_str(), counts_line(&counts))
        }
    }
}

/// The runs the page follows until they end, then shows their counts.
const FOLLOW_RUNS: &str = r#"
(function(){
  function line(r){
    if(!r.finished_at){return "running: "+(r.records_done||0)+" records done, "+r.errors_so_far+" errors so far";}
    var c=r.counts||{};var n=function(a,b){return (c[a]&&b?c[a][b]:c[a])||0;};
    return r.status+": created "+n("created","crm")+" in Salesforce, "+n("created","prm")+" in the PRM; updated "+n("updated","crm")+"/"+n("updated","prm")+"; "+n("unchanged")+" unchanged; "+n("conflicts")+" conflicts; "+n("errors")+" errors";
  }
  // A run shown running when the page was drawn is followed, even if it ends before the
  // first poll: the page is drawn again with its result.
  var followed=Array.prototype.some.call(document.querySelectorAll("td[id^='run-']"),function(c){return c.textContent.indexOf("running")===0;});
  function poll(){
    fetch("/runs.json",{credentials:"same-origin"}).then(function(r){return r.json();}).then(function(runs){
      var going=false;
      Object.keys(runs).forEach(function(k){
        var cell=document.getElementById("run-"+k);
        if(cell){cell.textContent=line(runs[k]);}
        if(!runs[k].finished_at){going=true;}
      });
      if(going){followed=true;setTimeout(poll,1000);}
      else if(followed){location.reload();}
    });
  }
  poll();
})();
"#;

pub fn sync_manager(
    c: &Console,
    rows: &[Value],
    started: &BTreeMap<&'static str, StartedRun>,
    history: &[(
        prmsync_mapping::Integration,
        Vec<prmsync_engine::store::RunRecord>,
    )],
) -> Markup {
    let body = html! {
        form method="post" action="/actions" {
            input type="hidden" name="csrf" value=(c.csrf);
            table {
                caption { "Integrations: select one or more, then choose an action below." }
                thead { tr {
                    th scope="col" { "Select" } th scope="col" { "Integration" } th scope="col" { "State" }
                    th scope="col" { "Last run" } th scope="col" { "Result" } th scope="col" { "Next run" }
                    th scope="col" { "Cursors (Salesforce / PRM)" } th scope="col" { "Links" }
                    th scope="col" { "Open errors" } th scope="col" { "Run from this page" }
                } }
                tbody {
                    @for r in rows {
                        @let name = text(r, &["integration"]);
                        @let last = &r["last_run"];
                        @let links: u64 = r["links"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
                        @let open = r["unacknowledged_errors"].as_u64().unwrap_or(0);
                        tr data-integration=(name) {
                            td { input type="checkbox" name="integration" value=(name) id={"select-" (name)} aria-label={"Select " (name)}; }
                            th scope="row" { label for={"select-" (name)} { (name) } }
                            td class=(if text(r, &["state"]) == "paused" { "paused" } else { "" }) data-field="state" { (text(r, &["state"])) }
                            td { (short_time(text(last, &["started_at"]))) " · " (text(last, &["mode"])) " · " (duration(text(last, &["started_at"]), text(last, &["finished_at"]))) }
                            td data-field="result" { (text(last, &["status"])) " " (counts_line(&last["counts"])) }
                            td { (text(r, &["schedule"])) }
                            td { (text(r, &["cursor", "crm"])) " / " (text(r, &["cursor", "prm"])) }
                            td { (links) }
                            td data-field="open-errors" {
                                @if open > 0 { a.error href={"/log?open=1&level=error&integration=" (name)} { (open) } } @else { "0" }
                            }
                            td id={"run-" (name)} aria-live="polite" {
                                @if let Some(run) = started.get(name) { (started_line(run)) }
                            }
                        }
                    }
                }
            }
            button type="submit" name="action" value="run" { "Run Now" }
            button type="submit" name="action" value="full" { "Run Full Sync Now" }
            button type="submit" name="action" value="pause" { "Pause" }
            button type="submit" name="action" value="resume" { "Resume" }
        }
        (crate::charts::section(history))
        script { (PreEscaped(FOLLOW_RUNS)) }
    };
    layout("Sync Manager", &c.source, body)
}

/// `?integration=..&...` of a filter (empty when none).
/// The time filter's choices (any other `since=` given in the address is kept).
const SINCE: &[(&str, &str)] = &[
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
];

pub fn query_string(q: &LogQuery) -> String {
    let mut parts = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in q.pairs() {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.append_pair(k, v);
        }
    }
    let s = parts.finish();
    if s.is_empty() {
        s
    } else {
        format!("?{s}")
    }
}

fn filter_hidden(q: &LogQuery) -> Markup {
    html! {
        @for (k, v) in q.pairs() {
            @if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) { input type="hidden" name=(k) value=(v); }
        }
    }
}

pub fn log_page(c: &Console, q: &LogQuery, entries: &[LogEntry], open: &[LogEntry]) -> Markup {
    let page = q.page.unwrap_or(0);
    let shown: Vec<&LogEntry> = entries
        .iter()
        .skip(page * PAGE_SIZE)
        .take(PAGE_SIZE)
        .collect();
    let mut groups: BTreeMap<&str, (usize, &LogEntry)> = BTreeMap::new();
    for e in open {
        groups.entry(e.code.as_str()).or_insert((0, e)).0 += 1;
    }
    let mut groups: Vec<(&str, usize, &LogEntry)> =
        groups.into_iter().map(|(k, (n, e))| (k, n, e)).collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let body = html! {
        section aria-labelledby="groups" {
            h2 #groups { "Open warnings and errors, by reason (" (open.len()) ")" }
            @if groups.is_empty() { p { "Nothing open." } }
            ul {
                @for (code, n, e) in &groups {
                    li data-code=(code) { a href={"/log?open=1&code=" (code)} { strong { (n) } " × " (code) } " — " (e.fix) }
                }
            }
        }
        form method="get" action="/log" aria-label="Filter" {
            label { "Integration " select name="integration" {
                option value="" { "any" }
                @for i in ["organizations", "people", "deals"] { option value=(i) selected[q.integration.as_deref() == Some(i)] { (i) } }
            } }
            " "
            label { "Level " select name="level" {
                option value="" { "any" }
                @for l in ["info", "warning", "error"] { option value=(l) selected[q.level.as_deref() == Some(l)] { "at least " (l) } }
            } }
            " "
            label { "Code " input name="code" value=(q.code.clone().unwrap_or_default()) size="22"; }
            " "
            label { "Record " input name="record" value=(q.record.clone().unwrap_or_default()) size="20"; }
            " "
            label { "Run " input name="run" value=(q.run.clone().unwrap_or_default()) size="20"; }
            " "
            label { "Time " select name="since" {
                option value="" { "any time" }
                @for (v, text) in SINCE {
                    option value=(v) selected[q.since.as_deref() == Some(*v)] { (text) }
                }
                @if let Some(other) = q.since.as_deref().filter(|s| !s.is_empty() && !SINCE.iter().any(|(v, _)| v == s)) {
                    option value=(other) selected { "last " (other) }
                }
            } }
            " "
            label { input type="checkbox" name="open" value="1" checked[q.open.is_some()]; " open only" }
            " "
            button type="submit" { "Filter" }
        }
        form method="post" action="/log/ack" {
            input type="hidden" name="csrf" value=(c.csrf);
            (filter_hidden(q))
            table {
                caption { (entries.len()) " entries, newest first; page " (page + 1) }
                thead { tr {
                    th scope="col" { "Acknowledge" } th scope="col" { "Time" } th scope="col" { "Level" }
                    th scope="col" { "Code" } th scope="col" { "Integration" } th scope="col" { "Record" }
                    th scope="col" { "Message and fix" }
                } }
                tbody {
                    @for e in &shown {
                        tr data-code=(e.code.as_str()) data-entry=(e.id) {
                            td {
                                @if e.acknowledged { "done" } @else {
                                    input type="checkbox" name="id" value=(e.id) id={"ack-" (e.id)} aria-label={"Acknowledge " (e.code.as_str())};
                                }
                            }
                            td { (short_time(&e.time.to_rfc3339())) }
                            td class=(if e.level == prmsync_mapping::Level::Error { "error" } else { "" }) { (e.level.as_str()) }
                            td { (e.code.as_str()) }
                            td { (e.integration.as_str()) }
                            td {
                                @if let Some(id) = &e.crm_id {
                                    a href={"/record?id=" (id)} { "Salesforce " (id) }
                                    @if let Some(link) = &e.link { " (" a href=(link) rel="noreferrer" { "open in Salesforce" } ")" }
                                    br;
                                }
                                @if let (Some(id), Some(object)) = (&e.prm_id, e.object) { a href={"/record?id=prm:" (object.as_str()) ":" (id)} { "PRM " (id) } }
                                @else if let Some(id) = &e.prm_id { "PRM " (id) }
                            }
                            td {
                                p.message { (e.message) }
                                p.fix { strong { "Fix: " } (e.fix) }
                                @if !e.details.is_null() {
                                    details { summary { "Details" } pre { (serde_json::to_string_pretty(&e.details).unwrap_or_default()) } }
                                }
                            }
                        }
                    }
                }
            }
            button type="submit" { "Acknowledge selected" }
            button type="submit" name="all" value="1" { "Acknowledge all that match the filter" }
        }
        nav aria-label="Pages of entries" {
            @if page > 0 { a href={"/log" (page_link(q, page - 1))} { "Newer" } " " }
            @if (page + 1) * PAGE_SIZE < entries.len() { a href={"/log" (page_link(q, page + 1))} { "Older" } }
        }
    };
    layout("Integration Log", &c.source, body)
}

fn page_link(q: &LogQuery, page: usize) -> String {
    let base = query_string(q);
    if base.is_empty() {
        format!("?page={page}")
    } else {
        format!("{base}&page={page}")
    }
}

/// The record search form (with why the last search failed).
pub fn record_search(
    c: &Console,
    problem: Option<&str>,
    found: &[prmsync_engine::RecordRef],
) -> Markup {
    let body = html! {
        @if let Some(p) = problem { p role="alert" { (p) } }
        (search_form(""))
        @if !found.is_empty() {
            h2 { "Found (" (found.len()) ")" }
            ul data-field="found" {
                @for r in found {
                    li { a href=(crate::record_address(r, None)) { (side_name(r)) " " (r.text()) } }
                }
            }
        }
    };
    layout("Find a record", &c.source, body)
}

fn side_name(r: &prmsync_engine::RecordRef) -> &'static str {
    match r {
        prmsync_engine::RecordRef::Crm(k, _) => k.crm_object(),
        prmsync_engine::RecordRef::Prm(..) => "PRM",
    }
}

fn search_form(value: &str) -> Markup {
    html! {
        form method="get" action="/record" role="search" {
            label { "Salesforce Id, PRM reference (prm:organization:<id>) or email "
                input name="id" value=(value) size="40"; }
            " " button type="submit" { "Find" }
        }
    }
}

/// What the record page shows.
pub struct RecordView<'a> {
    pub record: &'a prmsync_engine::RecordRef,
    pub link: Option<&'a prmsync_engine::Link>,
    /// Both records read now; None where the console cannot read them.
    pub pair: Option<&'a Result<PairView, String>>,
    pub history: &'a [LogEntry],
    pub done: Option<&'a str>,
}

fn side_state(name: &str, state: Option<&prmsync_engine::inspect::SideState>) -> Markup {
    html! {
        tr {
            th scope="row" { (name) }
            @match state {
                Some(s) => {
                    td { (s.id) @if s.deleted { " (deleted)" } " · changed "
                        (s.changed_at.map(|t| short_time(&t.to_rfc3339())).unwrap_or_else(|| "-".into())) }
                }
                None => { td { "not found" } }
            }
        }
    }
}

/// A record: its link, both records' mapped values read now beside the snapshot (values
/// masked unless `[log] values` is on), its log history, and Sync Now, Unlink and Relink.
pub fn record_page(c: &Console, v: &RecordView<'_>) -> Markup {
    let shown = c.mapping.log.values();
    let show = |value: &Option<Value>| match value {
        Some(value) => shown.show(value).to_string(),
        None => "-".to_string(),
    };
    let r = v.record;
    let body = html! {
        (search_form(&r.text()))
        @if let Some(d) = v.done { p role="status" data-field="done" { (d) } }
        @match v.link {
            Some(l) => {
                h2 { "Link" }
                table {
                    caption { "The link between the two records" }
                    tbody {
                        tr { th scope="row" { "Object" } td { (l.object.as_str()) } }
                        tr { th scope="row" { "Salesforce" } td data-field="crm-id" { (l.crm_id) } }
                        tr { th scope="row" { "PRM" } td data-field="prm-id" { (l.prm_id) } }
                        tr { th scope="row" { "State" } td { (format!("{:?}", l.state).to_lowercase()) } }
                        tr { th scope="row" { "Last saved" } td { (short_time(&l.updated_at.to_rfc3339())) } }
                    }
                }
            }
            None => { p data-field="no-link" { "No link: this record is not linked to one on the other side." } }
        }
        h2 { "Values" }
        @match v.pair {
            Some(Ok(pair)) => {
                table data-field="values" {
                    caption { "Each mapped field read now on both sides, beside the value last written to both (the snapshot)" }
                    tbody {
                        (side_state("Salesforce record", pair.crm.as_ref()))
                        (side_state("PRM record", pair.prm.as_ref()))
                    }
                }
                table data-field="fields" {
                    thead { tr {
                        th scope="col" { "Field" } th scope="col" { "Salesforce" } th scope="col" { "PRM" }
                        th scope="col" { "Last written" } th scope="col" { "Direction" } th scope="col" { "State" }
                    } }
                    tbody {
                        @for f in &pair.fields {
                            tr data-key=(f.key) {
                                th scope="row" { (f.key) }
                                td { small { (f.crm_field.as_deref().unwrap_or("-")) } br; (show(&f.crm)) }
                                td { small { (f.prm_field.as_deref().unwrap_or("-")) } br; (show(&f.prm)) }
                                td { (show(&f.snapshot)) }
                                td { (format!("{:?}", f.direction).to_lowercase()) }
                                td data-field="state" class=[f.differs().then_some("error")] {
                                    @if f.differs() { "differs: the next run merges it" }
                                    @else if f.changed_since_snapshot(&f.crm) { "changed in Salesforce since the last write" }
                                    @else if f.changed_since_snapshot(&f.prm) { "changed in the PRM since the last write" }
                                    @else { "in step" }
                                }
                            }
                        }
                    }
                }
            }
            Some(Err(e)) => { p role="alert" { "The records could not be read now: " (e) } (snapshot_table(v.link, &shown)) }
            None => {
                p data-field="no-live" { "Live values are not read from this console (on AWS it holds no Salesforce or PRM connection): the values below are the ones last written to both sides." }
                (snapshot_table(v.link, &shown))
            }
        }
        div.actions {
            form method="post" action="/record/sync" {
                input type="hidden" name="csrf" value=(c.csrf);
                input type="hidden" name="id" value=(r.text());
                button type="submit" { "Sync Now" }
            }
            @if v.link.is_some() {
                form method="post" action="/record/unlink" {
                    input type="hidden" name="csrf" value=(c.csrf);
                    input type="hidden" name="id" value=(r.text());
                    button type="submit" { "Unlink" }
                }
            }
            form method="post" action="/record/relink" {
                input type="hidden" name="csrf" value=(c.csrf);
                input type="hidden" name="id" value=(r.text());
                label {
                    @match r {
                        prmsync_engine::RecordRef::Prm(..) => { "Link to the Salesforce record (Id) " }
                        prmsync_engine::RecordRef::Crm(..) => { "Link to the PRM record (id or prm:<object>:<id>) " }
                    }
                    input name="other" size="24" required;
                }
                " " button type="submit" { "Relink" }
            }
        }
        h2 { "History (" (v.history.len()) ")" }
        ul {
            @for e in v.history {
                li data-code=(e.code.as_str()) { (short_time(&e.time.to_rfc3339())) " · " (e.code.as_str()) " · " (e.message) }
            }
        }
    };
    layout("Record", &c.source, body)
}

/// The snapshot alone (the values last written), where the records are not read now.
fn snapshot_table(
    link: Option<&prmsync_engine::Link>,
    shown: &prmsync_mapping::LogValues,
) -> Markup {
    html! {
        @if let Some(l) = link {
            table data-field="snapshot" {
                caption { "The values last written to both sides" }
                tbody {
                    @for (field, value) in &l.snapshot {
                        tr { th scope="row" { (field) } td { (shown.show(value)) } }
                    }
                }
            }
        }
    }
}
