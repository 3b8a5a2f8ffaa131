//! The mass-change breaker (sync rule 13 in `docs/sync-rules.md`): a run that would change
//! or blank more than `[sync] mass_change_percent` of one side's linked records (and at
//! least `mass_change_min_records` of them) stops before its first write, with one
//! `mass_change_held` entry giving the counts, the fields and example records, and goes on
//! only when the operator allows it (`prmsync sync --allow-mass-change`, or
//! `allow_mass_change` in the full-sync function's payload). The same rule for both
//! deployments: the one-machine sweep and the planner call
//! [`crate::sweep::mass_change_check`] ([`survey`], a plan if needed, [`judge`]) once they
//! hold the PRM's changes and the first page of Salesforce's, before anything is written
//! or queued.
//!
//! What a run could change is found in three steps, each only when the one before cannot
//! rule a trip out: the counts it read ([`may_trip`]: an ordinary hour reads fewer changes
//! than the breaker lets through, and costs nothing more); the linked records that really
//! changed, the sync's own writes read back left out (PRM versions against their links,
//! Salesforce records against their snapshots, page by page, [`crm_changed`]); and last
//! the run's plan, made as a dry run that writes and logs nothing ([`assess`]). The
//! Salesforce pages read on the way are kept for the run up to [`READ_AHEAD_RECORDS`].
//!
//! Only updates of records linked before the run count: creates, and the first merge of a
//! pair this run links, are how a first import looks. Nor do the writes of a link marked
//! for a retry: an earlier run planned them (a write that failed for a passing reason, or
//! updates held for an ingest job when that run stopped).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use prmsync_mapping::config::Direction;
use prmsync_mapping::transform::read_crm_cow;
use prmsync_mapping::{CrmRecord, Integration, LogCode, MappingConfig};
use serde_json::{json, Value};

use crate::context::{entry, SyncContext};
use crate::error::{During, EngineError};
use crate::frame::Window;
use crate::objects::ObjectSpec;
use crate::ports::{ChangePage, FailureClass};
use crate::report::PlannedWrite;
use crate::store::{Link, LinkState, LogEntry};

/// Example records named per side in the entry.
const EXAMPLES: usize = 5;

/// The breaker's thresholds, from the mapping's `[sync]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub percent: u8,
    pub min_records: u64,
}

impl Limits {
    pub fn of(mapping: &MappingConfig) -> Self {
        Self {
            percent: mapping.sync.mass_change_percent,
            min_records: u64::from(mapping.sync.mass_change_min_records),
        }
    }

    /// The most records of a side with `linked` links a run may change without the
    /// operator: the breaker trips at more than `percent` of them, and only from
    /// `min_records` on.
    pub fn allowed(&self, linked: u64) -> u64 {
        let share = linked.saturating_mul(u64::from(self.percent)) / 100;
        share.max(self.min_records.saturating_sub(1))
    }
}

/// Salesforce records the breaker keeps of the pages it reads to count what a run could
/// change: the run takes them instead of reading them again, and reads the others again.
pub const READ_AHEAD_RECORDS: usize = 10_000;

/// Salesforce pages the breaker read ahead, by the token that names them (None for the
/// first): the run (and its plan) take them from here instead of reading them again.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadAhead {
    pages: HashMap<Option<String>, ChangePage<CrmRecord>>,
}

impl ReadAhead {
    /// The page `token` names, if it was read ahead.
    pub fn page(&self, token: &Option<String>) -> Option<ChangePage<CrmRecord>> {
        self.pages.get(token).cloned()
    }
}

/// A page of Salesforce's changes: read ahead, or read now.
pub(crate) async fn crm_page(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    ahead: &ReadAhead,
    since: Option<DateTime<Utc>>,
    token: Option<String>,
) -> Result<ChangePage<CrmRecord>, EngineError> {
    if let Some(page) = ahead.page(&token) {
        return Ok(page);
    }
    let object = spec.crm_object();
    ctx.crm
        .sweep_page(
            object,
            &spec.crm_fields(),
            since,
            token.as_deref(),
            &spec.scope(),
        )
        .await
        .during(|| format!("reading changed {object} records"))
}

/// What a run has read before its first write: enough to tell whether it could change
/// more records than the breaker allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gate {
    /// Changed PRM records read.
    pub prm_changes: usize,
    /// Records on the first page of Salesforce's changes, and whether more pages follow.
    pub crm_first_page: usize,
    pub crm_more_pages: bool,
    /// Records the run syncs besides its changes: the retry set's due records and the
    /// links marked for a retry.
    pub retries: usize,
}

/// Whether a run that read `gate` could write to more records than `allowed` on a side:
/// each write follows a change read, a retry, or another page. No I/O.
pub fn may_trip(allowed: u64, gate: &Gate) -> bool {
    let bound = gate.prm_changes + gate.crm_first_page + gate.retries;
    gate.crm_more_pages || bound as u64 > allowed
}

/// The changes a run holds before its first write: Salesforce's first page, and how many
/// linked PRM records changed since their link's version.
pub(crate) struct Read<'a> {
    pub crm: &'a ChangePage<CrmRecord>,
    pub prm_changed: usize,
}

/// Of these Salesforce records, those that could write to the PRM: linked (`link_of`),
/// with a value that flows to the PRM differing from the link's snapshot. A record read
/// back after the sync's own write (an echo) holds its snapshot and does not count. No I/O.
pub fn crm_changed<'l, 'r>(
    spec: &ObjectSpec,
    link_of: impl Fn(&str) -> Option<&'l Link>,
    records: impl IntoIterator<Item = &'r CrmRecord>,
) -> usize {
    records
        .into_iter()
        .filter(|r| !r.deleted)
        .filter(|r| {
            link_of(&r.id).is_some_and(|l| {
                spec.fields.iter().any(|f| {
                    f.fixed.is_none()
                        && matches!(f.direction, Direction::Both | Direction::ToPrm)
                        && match read_crm_cow(f, &r.fields) {
                            Ok(v) => l.snapshot.get(&f.key()) != Some(v.as_ref()),
                            Err(_) => true,
                        }
                })
            })
        })
        .count()
}

/// What a run would do to one side's linked records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideChange {
    /// Linked records it would update.
    pub records: u64,
    /// Of those, records it would blank a field of.
    pub blanked: u64,
    /// Records per field written (blanked or changed).
    pub fields: BTreeMap<String, u64>,
    /// Some of the records, with the fields they would have written (no values).
    pub examples: Vec<(String, Vec<String>)>,
}

/// Why the breaker stopped a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    pub linked: u64,
    pub allowed: u64,
    pub crm: SideChange,
    pub prm: SideChange,
}

fn blank(v: &Value) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

/// The updates `planned` by a run without writing, counted per side for the records that
/// were linked before it (`linked_before(side, id)`), against `allowed`. None when neither
/// side goes over. No I/O.
pub fn assess(
    planned: &[PlannedWrite],
    linked_before: impl Fn(&str, &str) -> bool,
    linked: u64,
    allowed: u64,
) -> Option<Trip> {
    let mut crm = SideChange::default();
    let mut prm = SideChange::default();
    for w in planned.iter().filter(|w| w.action == "update") {
        let Some(id) = w.id.as_deref() else { continue };
        if !linked_before(&w.side, id) {
            continue;
        }
        let side = match w.side.as_str() {
            "crm" => &mut crm,
            _ => &mut prm,
        };
        side.records += 1;
        if w.fields.values().any(blank) {
            side.blanked += 1;
        }
        let mut names: Vec<String> = w.fields.keys().cloned().collect();
        names.sort();
        for f in &names {
            *side.fields.entry(f.clone()).or_default() += 1;
        }
        if side.examples.len() < EXAMPLES {
            side.examples.push((id.to_string(), names));
        }
    }
    (crm.records > allowed || prm.records > allowed).then_some(Trip {
        linked,
        allowed,
        crm,
        prm,
    })
}

impl Trip {
    /// The entry's message: counts, fields and example ids per side that goes over, and
    /// no value.
    pub fn message(&self, integration: Integration, crm_object: &str) -> String {
        let mut parts = Vec::new();
        for (side, name) in [
            (&self.crm, format!("Salesforce {crm_object} records")),
            (&self.prm, format!("PRM {integration}")),
        ] {
            if side.records <= self.allowed {
                continue;
            }
            let mut fields: Vec<(&String, &u64)> = side.fields.iter().collect();
            fields.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let fields: Vec<String> = fields
                .iter()
                .take(5)
                .map(|(f, n)| format!("{f} ({n})"))
                .collect();
            let examples: Vec<String> = side.examples.iter().map(|(id, _)| id.clone()).collect();
            parts.push(format!(
                "it would change {} of {} linked {name} ({} of them blanking a field); fields: {}; for example {}",
                side.records,
                self.linked,
                side.blanked,
                fields.join(", "),
                examples.join(", ")
            ));
        }
        format!(
            "The {integration} run stopped before writing anything: {}. Without the operator a run may change at most {} of them. Check the change at its source; if it is intended, run again with --allow-mass-change.",
            parts.join("; and "),
            self.allowed
        )
    }

    fn details(&self) -> Value {
        let side = |s: &SideChange| {
            json!({
                "records": s.records,
                "blanked": s.blanked,
                "fields": s.fields,
                "examples": s.examples.iter().map(|(id, f)| json!({"id": id, "fields": f})).collect::<Vec<_>>(),
            })
        };
        json!({
            "linked": self.linked,
            "allowed": self.allowed,
            "crm": side(&self.crm),
            "prm": side(&self.prm),
        })
    }
}

/// What the breaker's first two steps found ([`survey`]).
#[derive(Debug)]
pub(crate) enum Survey {
    /// The run cannot trip the breaker: it goes on, taking the pages read ahead.
    Clear(ReadAhead),
    /// Only the run's plan can tell: plan it (without writing) on the pages read ahead,
    /// and [`judge`] the plan.
    Plan {
        ahead: ReadAhead,
        linked: u64,
        allowed: u64,
    },
}

/// The breaker's first two steps for a run about to write, each only when the one before
/// cannot rule a trip out: the counts read ([`may_trip`]); then what could really change:
/// the linked PRM records whose version is not their link's, and Salesforce's changed
/// records read page by page against their links' snapshots ([`crm_changed`]), so that
/// the sync's own writes read back do not count. The pages read are kept for the run up to
/// [`READ_AHEAD_RECORDS`]. `allow` is the operator's `--allow-mass-change`.
pub(crate) async fn survey(
    ctx: &SyncContext,
    integration: Integration,
    window: &Window,
    gate: Gate,
    read: Read<'_>,
    allow: bool,
) -> Result<Survey, EngineError> {
    let mut ahead = ReadAhead::default();
    if allow {
        return Ok(Survey::Clear(ahead));
    }
    let limits = Limits::of(&ctx.mapping);
    // Below the minimum the breaker lets through whatever the links: no need to count
    // them (a scan of the links on DynamoDB).
    if limits.percent >= 100 || !may_trip(limits.allowed(0), &gate) {
        return Ok(Survey::Clear(ahead));
    }
    let kind = integration.object();
    let linked = ctx
        .store
        .count_links(kind)
        .await?
        .get(LinkState::Linked.as_str())
        .copied()
        .unwrap_or(0);
    let allowed = limits.allowed(linked);
    if linked == 0 || limits.percent >= 100 || !may_trip(allowed, &gate) {
        return Ok(Survey::Clear(ahead));
    }
    // Salesforce's changes page by page, each counted against its links' snapshots (a
    // store read): the sync's own writes read back do not count. The first pages, up to
    // READ_AHEAD_RECORDS, are kept for the run; it reads the others again.
    let spec = ObjectSpec::new(kind, &ctx.mapping);
    let bound = |crm: usize| (crm + read.prm_changed + gate.retries) as u64;
    let mut crm = count_crm_changed(ctx, &spec, &read.crm.records).await?;
    let mut kept = read.crm.records.len();
    ahead.pages.insert(None, read.crm.clone());
    let mut next = read.crm.next.clone();
    while let Some(token) = next.take() {
        if bound(crm) > allowed {
            break;
        }
        let page = crm_page(ctx, &spec, &ahead, window.crm_since, Some(token.clone())).await?;
        crm += count_crm_changed(ctx, &spec, &page.records).await?;
        next = page.next.clone();
        if kept + page.records.len() <= READ_AHEAD_RECORDS {
            kept += page.records.len();
            ahead.pages.insert(Some(token), page);
        }
    }
    if bound(crm) <= allowed {
        return Ok(Survey::Clear(ahead));
    }
    Ok(Survey::Plan {
        ahead,
        linked,
        allowed,
    })
}

/// [`crm_changed`] of a page of records, against their links (a store read).
async fn count_crm_changed(
    ctx: &SyncContext,
    spec: &ObjectSpec,
    records: &[CrmRecord],
) -> Result<usize, EngineError> {
    if records.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let links = ctx.store.find_links(spec.kind, &ids, &[]).await?;
    let by_crm: HashMap<&str, &Link> = links
        .iter()
        .filter(|l| l.state == LinkState::Linked)
        .map(|l| (l.crm_id.as_str(), l))
        .collect();
    Ok(crm_changed(spec, |id| by_crm.get(id).copied(), records))
}

/// The breaker's last step, on the run's plan made without writing: Ok to go on; else the
/// `mass_change_held` entry is written and the error the run stops with returned.
pub(crate) async fn judge(
    ctx: &SyncContext,
    integration: Integration,
    run_id: &str,
    planned: &[PlannedWrite],
    linked: u64,
    allowed: u64,
) -> Result<(), EngineError> {
    let kind = integration.object();
    let crm_ids: Vec<String> = ids_of(planned, "crm");
    let prm_ids: Vec<String> = ids_of(planned, "prm");
    let links = ctx.store.find_links(kind, &crm_ids, &prm_ids).await?;
    // A link marked for a retry carries writes an earlier run planned and owes (a failed
    // write, updates held for an ingest job when the run stopped): finishing them is no
    // mass change of its own.
    let before: HashSet<(&str, &str)> = links
        .iter()
        .filter(|l| l.state == LinkState::Linked && !l.retry)
        .flat_map(|l| [("crm", l.crm_id.as_str()), ("prm", l.prm_id.as_str())])
        .collect();
    let Some(trip) = assess(
        planned,
        |side, id| before.contains(&(side, id)),
        linked,
        allowed,
    ) else {
        return Ok(());
    };
    let message = trip.message(integration, kind.crm_object());
    tracing::warn!(
        run_id,
        integration = integration.as_str(),
        crm_records = trip.crm.records,
        prm_records = trip.prm.records,
        allowed,
        "{message}"
    );
    let e: LogEntry = entry(
        run_id,
        integration,
        LogCode::MassChangeHeld,
        message,
        trip.details(),
    );
    crate::store::record_log(ctx.store.as_ref(), &[e]).await?;
    Err(EngineError::Reported {
        class: FailureClass::Data,
        message: format!(
            "the {integration} run was held by the mass-change breaker before writing (see the mass_change_held entry); run again with --allow-mass-change if the change is intended"
        ),
    })
}

fn ids_of(planned: &[PlannedWrite], side: &str) -> Vec<String> {
    planned
        .iter()
        .filter(|w| w.action == "update" && w.side == side)
        .filter_map(|w| w.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(side: &str, id: &str, fields: Value) -> PlannedWrite {
        let Value::Object(fields) = fields else {
            panic!()
        };
        PlannedWrite {
            action: "update".into(),
            side: side.into(),
            object: String::new(),
            id: Some(id.into()),
            source_id: None,
            fields,
        }
    }

    fn limits() -> Limits {
        Limits {
            percent: 20,
            min_records: 50,
        }
    }

    #[test]
    fn more_than_the_share_and_at_least_the_minimum_trips() {
        let l = limits();
        assert_eq!(l.allowed(1000), 200, "a fifth of 1,000");
        assert_eq!(
            l.allowed(100),
            49,
            "a fifth of 100 is 20, but 50 are needed"
        );
        assert_eq!(l.allowed(0), 49);
        let off = Limits {
            percent: 100,
            min_records: 50,
        };
        assert_eq!(off.allowed(1000), 1000, "100 % never trips");
    }

    #[test]
    fn a_run_that_reads_few_changes_is_not_planned_twice() {
        let quiet = Gate {
            prm_changes: 10,
            crm_first_page: 30,
            crm_more_pages: false,
            retries: 2,
        };
        assert!(!may_trip(200, &quiet));
        assert!(may_trip(41, &quiet), "42 records could all change");
        let paged = Gate {
            crm_more_pages: true,
            ..Gate::default()
        };
        assert!(may_trip(200, &paged), "pages beyond the first are unknown");
    }

    #[test]
    fn blanked_and_changed_linked_records_are_counted_per_side_with_examples() {
        let mut planned: Vec<PlannedWrite> = (0..60)
            .map(|i| update("prm", &format!("org_{i}"), json!({"phone": null})))
            .collect();
        planned.push(update("prm", "org_new", json!({"phone": null})));
        planned.push(update("crm", "001A", json!({"Name": "X"})));
        planned.push(PlannedWrite {
            action: "create".into(),
            ..update("prm", "org_c", json!({"name": "New"}))
        });
        let linked_before = |side: &str, id: &str| side == "crm" || id != "org_new";
        let trip = assess(&planned, linked_before, 100, 49).expect("60 of 100 blanked");
        assert_eq!(
            trip.prm.records, 60,
            "the pair linked by this run is not counted"
        );
        assert_eq!(trip.prm.blanked, 60);
        assert_eq!(trip.prm.fields["phone"], 60);
        assert_eq!(trip.prm.examples.len(), EXAMPLES);
        assert_eq!(trip.crm.records, 1);
        let m = trip.message(Integration::Organizations, "Account");
        assert!(m.contains("change 60 of 100 linked PRM organizations (60 of them blanking a field); fields: phone (60); for example org_0"), "{m}");
        assert!(
            !m.contains("Salesforce Account"),
            "the side within the limit is not named: {m}"
        );
        assert!(m.contains("--allow-mass-change"));
        // Within the limit: no trip.
        assert!(assess(&planned[..40], linked_before, 100, 49).is_none());
    }

    fn account(id: &str, phone: Option<&str>) -> CrmRecord {
        let Value::Object(fields) = json!({"Id": id, "Name": "Co", "Phone": phone}) else {
            panic!()
        };
        CrmRecord {
            id: id.into(),
            fields,
            modstamp: None,
            deleted: false,
            master_id: None,
        }
    }

    #[test]
    fn only_linked_salesforce_records_differing_from_their_snapshot_could_change_the_prm() {
        let mapping = MappingConfig::default();
        let spec = ObjectSpec::new(prmsync_mapping::ObjectKind::Organization, &mapping);
        // Linked pairs whose snapshot holds what both sides hold: phone +1.
        let mut links = HashMap::new();
        for (prm, crm) in [("org_1", "001A"), ("org_2", "001B"), ("org_3", "001C")] {
            let mut l = Link::new(prmsync_mapping::ObjectKind::Organization, prm, crm);
            for f in spec.fields.iter() {
                l.snapshot.insert(f.key(), Value::Null);
            }
            l.snapshot.insert("name".into(), json!("Co"));
            l.snapshot.insert("phone".into(), json!("+1"));
            links.insert(crm.to_string(), l.clone());
            links.insert(prm.to_string(), l);
        }
        let link_of = |id: &str| links.get(id);
        // An echo of the sync's own write, a blanked phone, and a record not linked.
        let crm = [
            account("001A", Some("+1")),
            account("001B", None),
            account("001Z", None),
        ];
        assert_eq!(crm_changed(&spec, link_of, &crm), 1);
    }

    #[test]
    fn a_field_set_to_spaces_is_blanked_too() {
        assert!(blank(&json!("  ")));
        assert!(blank(&Value::Null));
        assert!(!blank(&json!("x")));
        assert!(!blank(&json!(0)));
    }
}
