//! The Sync Manager's charts over the last [`DAYS`] days, drawn on the server as inline
//! SVG (no script): per integration, the records each run wrote and its errors; and
//! Salesforce's daily API usage against its allocation, as each run last saw it
//! (`Sforce-Limit-Info`). Each chart is an image with a title and a description that
//! state its figures, and a table of the same figures below it.
//!
//! The layout (scales, bars) is pure functions, tested here; [`section`] renders them.

use chrono::{DateTime, Utc};
use maud::{html, Markup};
use prmsync_engine::ports::ApiUsage;
use prmsync_engine::store::RunRecord;
use prmsync_mapping::Integration;

/// The days the charts cover.
pub const DAYS: i64 = 7;

const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 150.0;
/// The plot inside the image: room on the left for the scale, below for the dates.
const PLOT: Plot = Plot {
    left: 44.0,
    top: 8.0,
    width: WIDTH - 52.0,
    height: HEIGHT - 30.0,
};
/// A chart and its caption side by side with the others, as wide as the image.
const FIGURE_STYLE: &str = "margin:0;max-width:420px";
const WRITTEN_COLOUR: &str = "#0b3d91";
const ERROR_COLOUR: &str = "#a00000";
const USAGE_COLOUR: &str = "#2f6f3e";

/// Where bars are drawn, in the image's units (y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plot {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// A bar, in the image's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// The top of a scale that shows `max`: the smallest of 1, 2 or 5 × 10ⁿ at or above it
/// (1 for nothing, so that an empty chart still has a scale).
pub fn nice_top(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let top = step.saturating_mul(m);
            if top >= max || top == u64::MAX {
                return top;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The height of `value` on a scale from 0 to `top` drawn `height` high (a value above
/// the top is drawn at the top).
pub fn scaled(value: u64, top: u64, height: f64) -> f64 {
    if top == 0 {
        return 0.0;
    }
    value.min(top) as f64 / top as f64 * height
}

/// The bars of a grouped bar chart: one group per point, left to right, one bar per
/// series in each group, on a scale from 0 to `top`. A group takes an equal share of the
/// plot's width, its bars 80% of that share.
pub fn grouped_bars(points: &[Vec<u64>], top: u64, plot: Plot) -> Vec<Vec<Bar>> {
    if points.is_empty() {
        return Vec::new();
    }
    let slot = plot.width / points.len() as f64;
    points
        .iter()
        .enumerate()
        .map(|(i, values)| {
            let n = values.len().max(1) as f64;
            let bar_width = slot * 0.8 / n;
            values
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let height = scaled(*v, top, plot.height);
                    Bar {
                        x: plot.left + slot * i as f64 + slot * 0.1 + bar_width * j as f64,
                        y: plot.top + plot.height - height,
                        width: bar_width,
                        height,
                    }
                })
                .collect()
        })
        .collect()
}

/// The share of the daily allocation used, in whole percent (0 when Salesforce reported
/// no allocation).
pub fn percent_used(usage: ApiUsage) -> u64 {
    if usage.max == 0 {
        return 0;
    }
    (u128::from(usage.used) * 100 / u128::from(usage.max)) as u64
}

/// What the runs chart shows of a run: the records it wrote (created or updated, both
/// sides) and its errors.
fn run_figures(r: &RunRecord) -> [u64; 2] {
    [r.counts.writes(), r.counts.errors]
}

/// "2026-12-01 10:00 UTC".
fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn short_when(t: DateTime<Utc>) -> String {
    t.format("%m-%d %H:%M").to_string()
}

/// The summary of an integration's runs that titles its chart.
pub fn runs_summary(integration: Integration, runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return format!("{integration}: no run in the last {DAYS} days");
    }
    let written: u64 = runs.iter().map(|r| r.counts.writes()).sum();
    let errors: u64 = runs.iter().map(|r| r.counts.errors).sum();
    let most = runs.iter().map(|r| r.counts.writes()).max().unwrap_or(0);
    format!(
        "{integration}: {} in the last {DAYS} days wrote {written} records in all \
         (at most {most} in one run), with {}",
        plural(runs.len() as u64, "run"),
        plural(errors, "error")
    )
}

/// "1 run", "2 runs".
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The summary of the API usage the runs saw (`usage` oldest first).
pub fn usage_summary(usage: &[(DateTime<Utc>, ApiUsage)]) -> String {
    let Some((at, last)) = usage.last() else {
        return format!("Salesforce API usage: no run reported it in the last {DAYS} days");
    };
    let peak = usage.iter().map(|(_, u)| u.used).max().unwrap_or(0);
    format!(
        "Salesforce API usage: {} of the daily allocation of {} calls ({}%) at the last run, \
         {}; at most {peak} in the last {DAYS} days",
        last.used,
        last.max,
        percent_used(*last),
        when(*at)
    )
}

/// An image's frame: its title and description, the scale's top and bottom, the first and
/// last dates, and `content`.
fn svg(
    id: &str,
    title: &str,
    top: u64,
    dates: Option<(String, String)>,
    content: Markup,
) -> Markup {
    let bottom = PLOT.top + PLOT.height;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
            width=(WIDTH) height=(HEIGHT) aria-labelledby={(id) "-title"} data-chart=(id) {
            title id={(id) "-title"} { (title) }
            line x1=(PLOT.left) y1=(PLOT.top) x2=(PLOT.left) y2=(bottom) stroke="#888" {}
            line x1=(PLOT.left) y1=(bottom) x2=(PLOT.left + PLOT.width) y2=(bottom) stroke="#888" {}
            text x=(PLOT.left - 4.0) y=(PLOT.top + 8.0) text-anchor="end" font-size="10" { (top) }
            text x=(PLOT.left - 4.0) y=(bottom) text-anchor="end" font-size="10" { "0" }
            @if let Some((first, last)) = dates {
                text x=(PLOT.left) y=(HEIGHT - 6.0) font-size="10" { (first) }
                text x=(PLOT.left + PLOT.width) y=(HEIGHT - 6.0) text-anchor="end" font-size="10" { (last) }
            }
            (content)
        }
    }
}

fn rect(b: &Bar, fill: &str) -> Markup {
    html! {
        rect x=(format!("{:.1}", b.x)) y=(format!("{:.1}", b.y)) width=(format!("{:.1}", b.width))
            height=(format!("{:.1}", b.height)) fill=(fill) {}
    }
}

/// An integration's runs (newest first, as listed): records written and errors per run.
pub fn runs_chart(integration: Integration, runs: &[RunRecord]) -> Markup {
    let id = format!("runs-{integration}");
    let summary = runs_summary(integration, runs);
    let oldest_first: Vec<&RunRecord> = runs.iter().rev().collect();
    let points: Vec<Vec<u64>> = oldest_first
        .iter()
        .map(|r| run_figures(r).to_vec())
        .collect();
    let top = nice_top(points.iter().flatten().copied().max().unwrap_or(0));
    let bars = grouped_bars(&points, top, PLOT);
    let dates = oldest_first
        .first()
        .zip(oldest_first.last())
        .map(|(a, b)| (short_when(a.started_at), short_when(b.started_at)));
    html! {
        figure data-integration=(integration.as_str()) style=(FIGURE_STYLE) {
            (svg(&id, &summary, top, dates, html! {
                @for group in &bars {
                    (rect(&group[0], WRITTEN_COLOUR))
                    (rect(&group[1], ERROR_COLOUR))
                }
            }))
            figcaption {
                (summary) ". "
                span style={"color:" (WRITTEN_COLOUR)} { "■ written" } " "
                span style={"color:" (ERROR_COLOUR)} { "■ errors" }
            }
            @if !runs.is_empty() {
                details {
                    summary { "The figures" }
                    table {
                        caption { (integration.as_str()) ": runs of the last " (DAYS) " days, newest first" }
                        thead { tr { th scope="col" { "Started" } th scope="col" { "Status" } th scope="col" { "Records written" } th scope="col" { "Errors" } } }
                        tbody {
                            @for r in runs {
                                tr { td { (when(r.started_at)) } td { (r.status.as_str()) } td { (r.counts.writes()) } td { (r.counts.errors) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Salesforce's daily API usage as each run last saw it (`usage` oldest first, the runs
/// of every integration: the allocation is the org's), against the allocation.
pub fn usage_chart(usage: &[(DateTime<Utc>, ApiUsage)]) -> Markup {
    let summary = usage_summary(usage);
    let allocation = usage.iter().map(|(_, u)| u.max).max().unwrap_or(0);
    let peak = usage.iter().map(|(_, u)| u.used).max().unwrap_or(0);
    let top = nice_top(allocation.max(peak));
    let points: Vec<Vec<u64>> = usage.iter().map(|(_, u)| vec![u.used]).collect();
    let bars = grouped_bars(&points, top, PLOT);
    let line_y = PLOT.top + PLOT.height - scaled(allocation, top, PLOT.height);
    let dates = usage
        .first()
        .zip(usage.last())
        .map(|((a, _), (b, _))| (short_when(*a), short_when(*b)));
    html! {
        figure data-chart-kind="api-usage" style=(FIGURE_STYLE) {
            (svg("api-usage", &summary, top, dates, html! {
                @for group in &bars { (rect(&group[0], USAGE_COLOUR)) }
                @if allocation > 0 {
                    line x1=(PLOT.left) y1=(format!("{line_y:.1}")) x2=(PLOT.left + PLOT.width)
                        y2=(format!("{line_y:.1}")) stroke=(ERROR_COLOUR) stroke-dasharray="4 3" {}
                }
            }))
            figcaption {
                (summary) ". "
                span style={"color:" (USAGE_COLOUR)} { "■ calls used that day" } " "
                span style={"color:" (ERROR_COLOUR)} { "- - daily allocation" }
            }
            @if !usage.is_empty() {
                details {
                    summary { "The figures" }
                    table {
                        caption { "API usage at the end of each run, newest first" }
                        thead { tr { th scope="col" { "Run started" } th scope="col" { "Calls used" } th scope="col" { "Daily allocation" } th scope="col" { "Used" } } }
                        tbody {
                            @for (at, u) in usage.iter().rev() {
                                tr { td { (when(*at)) } td { (u.used) } td { (u.max) } td { (percent_used(*u)) "%" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The API usage the runs saw, oldest first, from every integration's runs.
pub fn usage_of(history: &[(Integration, Vec<RunRecord>)]) -> Vec<(DateTime<Utc>, ApiUsage)> {
    let mut usage: Vec<(DateTime<Utc>, ApiUsage)> = history
        .iter()
        .flat_map(|(_, runs)| runs.iter())
        .filter_map(|r| r.api_usage.map(|u| (r.started_at, u)))
        .collect();
    usage.sort_by_key(|(at, _)| *at);
    usage
}

/// The Sync Manager's charts section: the runs of each integration in `history` (newest
/// first, as [`prmsync_engine::store::Runs::runs_since`] lists them), then the API usage.
pub fn section(history: &[(Integration, Vec<RunRecord>)]) -> Markup {
    html! {
        section aria-labelledby="charts" {
            h2 #charts { "The last " (DAYS) " days" }
            div style="display:flex;flex-wrap:wrap;gap:1rem" {
                @for (integration, runs) in history { (runs_chart(*integration, runs)) }
                (usage_chart(&usage_of(history)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use prmsync_engine::report::{Counts, PerSide};
    use prmsync_engine::{RunMode, RunStatus};

    use super::*;

    fn run(n: i64, written: u64, errors: u64, usage: Option<(u64, u64)>) -> RunRecord {
        let started_at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::hours(n);
        RunRecord {
            run_id: format!("run-{n}"),
            integration: Integration::People,
            mode: RunMode::Incremental,
            dry_run: false,
            started_at,
            finished_at: Some(started_at + Duration::minutes(1)),
            status: RunStatus::Succeeded,
            counts: Counts {
                updated: PerSide {
                    crm: written,
                    prm: 0,
                },
                unchanged: 1_000,
                errors,
                ..Default::default()
            },
            api_usage: usage.map(|(used, max)| ApiUsage { used, max }),
        }
    }

    #[test]
    fn a_scale_tops_at_the_next_one_two_or_five() {
        let tops: Vec<u64> = [0, 1, 2, 3, 7, 10, 11, 49, 51, 15_000, 100_001]
            .into_iter()
            .map(nice_top)
            .collect();
        assert_eq!(tops, [1, 1, 2, 5, 10, 10, 20, 50, 100, 20_000, 200_000]);
        assert_eq!(nice_top(u64::MAX), u64::MAX);
    }

    #[test]
    fn a_value_is_scaled_to_the_plot_and_capped_at_its_top() {
        assert_eq!(scaled(5, 10, 120.0), 60.0);
        assert_eq!(scaled(0, 10, 120.0), 0.0);
        assert_eq!(scaled(30, 10, 120.0), 120.0);
        assert_eq!(scaled(3, 0, 120.0), 0.0);
    }

    #[test]
    fn grouped_bars_share_the_width_and_stand_on_the_axis() {
        let plot = Plot {
            left: 10.0,
            top: 0.0,
            width: 100.0,
            height: 50.0,
        };
        let bars = grouped_bars(&[vec![10, 0], vec![5, 10]], 10, plot);
        assert_eq!(bars.len(), 2);
        // each group takes 50 wide, its two bars 20 each from 5 in
        assert_eq!(
            bars[0][0],
            Bar {
                x: 15.0,
                y: 0.0,
                width: 20.0,
                height: 50.0
            }
        );
        assert_eq!(bars[0][1].height, 0.0);
        assert_eq!(bars[0][1].y, 50.0, "an empty bar sits on the axis");
        assert_eq!(bars[1][0].x, 65.0);
        assert_eq!(bars[1][1].x, 85.0);
        assert_eq!(bars[1][0].height, 25.0);
        for b in bars.iter().flatten() {
            assert_eq!(b.y + b.height, 50.0, "every bar stands on the axis");
            assert!(b.x >= plot.left && b.x + b.width <= plot.left + plot.width);
        }
        assert!(grouped_bars(&[], 10, plot).is_empty());
    }

    #[test]
    fn the_share_used_is_whole_percent_and_zero_without_an_allocation() {
        assert_eq!(percent_used(ApiUsage { used: 0, max: 0 }), 0);
        assert_eq!(
            percent_used(ApiUsage {
                used: 4_321,
                max: 15_000
            }),
            28
        );
        assert_eq!(percent_used(ApiUsage { used: 20, max: 10 }), 200);
        assert_eq!(
            percent_used(ApiUsage {
                used: u64::MAX,
                max: u64::MAX
            }),
            100
        );
    }

    #[test]
    fn the_runs_chart_states_its_figures_and_draws_two_bars_per_run() {
        let runs = vec![run(2, 30, 1, None), run(1, 12, 0, None)];
        let html = runs_chart(Integration::People, &runs).into_string();
        let summary = "people: 2 runs in the last 7 days wrote 42 records in all (at most 30 in one run), with 1 error";
        assert!(
            html.contains(&format!(
                r#"<title id="runs-people-title">{summary}</title>"#
            )),
            "{html}"
        );
        assert!(
            html.contains(r#"role="img""#)
                && html.contains(r#"aria-labelledby="runs-people-title""#)
        );
        assert_eq!(html.matches("<rect ").count(), 4, "{html}");
        // the scale tops at 50; the 30 of the newest run, drawn last, is 3/5 high
        assert!(html.contains(">50</text>"), "{html}");
        let height = format!(r#"height="{:.1}""#, PLOT.height * 0.6);
        assert!(html.contains(&height), "{html}");
        // the figures as a table, newest first
        let table = &html[html.find("<table>").unwrap()..];
        assert!(
            table.find("2026-12-01 12:00 UTC").unwrap()
                < table.find("2026-12-01 11:00 UTC").unwrap()
        );
        assert!(table.contains("<td>30</td><td>1</td>"), "{table}");
    }

    #[test]
    fn without_runs_the_charts_say_so_and_draw_no_bar() {
        let html = section(&[(Integration::Deals, Vec::new())]).into_string();
        assert!(html.contains("deals: no run in the last 7 days"), "{html}");
        assert!(html.contains("Salesforce API usage: no run reported it in the last 7 days"));
        assert_eq!(html.matches("<rect ").count(), 0);
        assert_eq!(html.matches("<svg ").count(), 2);
        assert!(!html.contains("<table>"), "no empty table");
    }

    #[test]
    fn api_usage_comes_from_every_integration_oldest_first_against_the_allocation() {
        let mut deal = run(3, 0, 0, Some((900, 15_000)));
        deal.integration = Integration::Deals;
        let history = vec![
            (
                Integration::People,
                vec![run(2, 1, 0, Some((700, 15_000))), run(1, 1, 0, None)],
            ),
            (Integration::Deals, vec![deal]),
        ];
        let usage = usage_of(&history);
        assert_eq!(
            usage.iter().map(|(_, u)| u.used).collect::<Vec<_>>(),
            [700, 900],
            "runs without usage are left out"
        );
        let html = usage_chart(&usage).into_string();
        assert!(html.contains(
            "Salesforce API usage: 900 of the daily allocation of 15000 calls (6%) at the last run, 2026-12-01 13:00 UTC; at most 900 in the last 7 days"
        ), "{html}");
        assert_eq!(html.matches("<rect ").count(), 2);
        // the allocation's line at 15,000 on a scale topping at 20,000
        let y = PLOT.top + PLOT.height - PLOT.height * 0.75;
        assert!(html.contains(&format!(r#"y1="{y:.1}""#)), "{html}");
        assert!(
            html.contains("<td>900</td><td>15000</td><td>6%</td>"),
            "{html}"
        );
    }
}
