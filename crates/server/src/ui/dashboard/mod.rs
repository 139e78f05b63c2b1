//! The delivery dashboard (beyond Attendee): attempts per minute by outcome over the last hour
//! as a chart, event → delivery latency, the backlog, and the subscriptions that keep failing —
//! what an operator looks at first when a receiver says it is missing webhooks. The figures
//! come from `Store::delivery_dashboard`, which reads a bounded number of rows.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use meetwire_core::time::now;
use meetwire_store::{DeliveryDashboard, MinuteOutcomes};

use super::error::UiResult;
use super::layout::{project_href, render, section_href, when, Chrome, Section};
use super::session::Member;
use crate::app::AppState;

/// The chart's drawing area, in SVG units: one column per minute.
const MINUTES: i64 = 60;
const COLUMN: i64 = 10;
const HEIGHT: i64 = 120;

/// One drawn segment of a minute's column.
struct Segment {
    x: i64,
    y: i64,
    height: i64,
    class: &'static str,
    title: String,
}

struct Failing {
    url: String,
    scope: String,
    edit_href: Option<String>,
    streak: i64,
    last_failure: String,
    last_failure_at: String,
}

struct MinuteRow {
    time: String,
    successes: i64,
    retries: i64,
    failures: i64,
}

#[derive(Template)]
#[template(path = "dashboard/page.html")]
struct DashboardPage {
    chrome: Chrome,
    width: i64,
    height: i64,
    segments: Vec<Segment>,
    chart_label: String,
    scale_label: String,
    rows: Vec<MinuteRow>,
    successes: i64,
    retries: i64,
    failures: i64,
    p50: String,
    p99: String,
    pending: String,
    oldest_due: String,
    failing: Vec<Failing>,
    refresh_href: String,
}

pub async fn show(State(state): State<AppState>, member: Member) -> UiResult<Response> {
    let at = now();
    let dashboard = state
        .store
        .delivery_dashboard(&member.project.id, at)
        .await?;
    let first_minute = at.timestamp_micros().div_euclid(60_000_000) - (MINUTES - 1);
    render(&page(&member, dashboard, first_minute, at))
}

fn page(
    member: &Member,
    dashboard: DeliveryDashboard,
    first_minute: i64,
    at: meetwire_core::time::Timestamp,
) -> DashboardPage {
    let project = &member.project.id;
    let tallest = dashboard
        .minutes
        .iter()
        .map(|m| m.successes + m.retries + m.failures)
        .max()
        .unwrap_or(0)
        .max(1);
    let total = |pick: fn(&MinuteOutcomes) -> i64| dashboard.minutes.iter().map(pick).sum::<i64>();
    let (successes, retries, failures) = (
        total(|m| m.successes),
        total(|m| m.retries),
        total(|m| m.failures),
    );
    let oldest_due = dashboard.oldest_due.map_or_else(
        || "nothing due".to_owned(),
        |due| format!("{} s", (at - due).num_seconds().max(0)),
    );
    DashboardPage {
        chrome: Chrome::new(member, Section::Dashboard, None),
        width: MINUTES * COLUMN,
        height: HEIGHT,
        segments: dashboard
            .minutes
            .iter()
            .flat_map(|m| segments(m, first_minute, tallest))
            .collect(),
        chart_label: format!(
            "Attempts per minute over the last hour: {successes} succeeded, {retries} failed \
             and will be retried, {failures} failed for good"
        ),
        scale_label: format!("{tallest} per minute"),
        rows: dashboard
            .minutes
            .iter()
            .rev()
            .map(|m| MinuteRow {
                time: minute_time(m.minute),
                successes: m.successes,
                retries: m.retries,
                failures: m.failures,
            })
            .collect(),
        successes,
        retries,
        failures,
        p50: latency(dashboard.latency_p50_ms),
        p99: latency(dashboard.latency_p99_ms),
        pending: if dashboard.pending > DeliveryDashboard::PENDING_COUNT_CAP {
            format!("more than {}", DeliveryDashboard::PENDING_COUNT_CAP)
        } else {
            dashboard.pending.to_string()
        },
        oldest_due,
        failing: dashboard
            .failing
            .into_iter()
            .map(|f| Failing {
                edit_href: f
                    .bot_id
                    .is_none()
                    .then(|| project_href(project, &format!("settings/webhooks/{}", f.webhook_id))),
                scope: f
                    .bot_id
                    .map_or_else(|| "project".to_owned(), |bot| format!("bot {bot}")),
                url: f.url,
                streak: f.failure_streak,
                last_failure: f.last_failure.unwrap_or_default(),
                last_failure_at: f.last_failure_at.as_ref().map(when).unwrap_or_default(),
            })
            .collect(),
        refresh_href: section_href(project, Section::Dashboard),
    }
}

/// A minute's column, stacked from the bottom: successes, retries, failures.
fn segments(minute: &MinuteOutcomes, first_minute: i64, tallest: i64) -> Vec<Segment> {
    let x = (minute.minute - first_minute) * COLUMN;
    let time = minute_time(minute.minute);
    let mut bottom = HEIGHT;
    [
        (minute.successes, "ok", "succeeded"),
        (minute.retries, "wait", "failed, will be retried"),
        (minute.failures, "bad", "failed for good"),
    ]
    .into_iter()
    .filter(|(count, _, _)| *count > 0)
    .map(|(count, class, what)| {
        // At least one unit tall, so a single attempt stays visible beside thousands.
        let height = (count * HEIGHT / tallest).max(1);
        bottom -= height;
        Segment {
            x,
            y: bottom,
            height,
            class,
            title: format!("{time}: {count} {what}"),
        }
    })
    .collect()
}

fn minute_time(minute: i64) -> String {
    meetwire_core::time::from_micros(minute * 60_000_000)
        .format("%H:%M UTC")
        .to_string()
}

fn latency(ms: Option<i64>) -> String {
    match ms {
        None => "no deliveries".to_owned(),
        Some(ms) if ms < 1000 => format!("under {ms} ms"),
        Some(ms) => format!("under {} s", ms / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_stack_in_outcome_order_and_stay_visible() {
        let minute = MinuteOutcomes {
            minute: 100,
            successes: 1000,
            retries: 0,
            failures: 1,
        };
        let drawn = segments(&minute, 41, 1001);
        assert_eq!(drawn.len(), 2, "no segment for zero retries");
        assert_eq!(drawn[0].x, 59 * COLUMN);
        assert_eq!(drawn[0].class, "ok");
        assert_eq!(drawn[0].y + drawn[0].height, HEIGHT);
        assert_eq!(drawn[1].class, "bad");
        assert_eq!(drawn[1].height, 1);
        assert_eq!(drawn[1].y + drawn[1].height, drawn[0].y);
    }

    #[test]
    fn latency_reads_as_a_bound() {
        assert_eq!(latency(None), "no deliveries");
        assert_eq!(latency(Some(8)), "under 8 ms");
        assert_eq!(latency(Some(4096)), "under 4 s");
    }
}
