//! A page of deliveries as the UI shows them — status badge, trigger, URL, attempts, Resend,
//! and the payload and every attempt with the receiver's answer (as text) when opened. Shared
//! by a bot's Webhooks tab and the project's Deliveries page, so both read the same.

use meetwire_store::{DeliveryDetail, DeliveryStatus, DeliverySummary, Store};

use super::bots::bot_href;
use super::error::UiResult;
use super::layout::when;

pub struct AttemptRow {
    pub at: String,
    pub duration_ms: i64,
    pub outcome: String,
    pub ok: bool,
    pub response: String,
}

pub struct DeliveryRow {
    pub key: String,
    pub url: String,
    pub trigger: &'static str,
    pub status: &'static str,
    pub badge: &'static str,
    pub attempts: u32,
    pub last_attempt: String,
    pub succeeded: String,
    pub resend_action: Option<String>,
    /// The bot it is about, linked, where the list mixes bots.
    pub bot: Option<(String, String)>,
    pub payload: String,
    pub tries: Vec<AttemptRow>,
}

pub fn status_badge(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "wait",
        DeliveryStatus::Success => "ok",
        DeliveryStatus::Failure => "bad",
    }
}

/// Where the rows' Resend buttons post, and whether each row names its bot.
pub struct RowLinks<'a> {
    pub project: &'a str,
    /// `{resend_base}/{key}/resend`.
    pub resend_base: &'a str,
    pub show_bot: bool,
}

/// The rows of a page of deliveries, each with its payload and attempts (one read per row: a
/// page is a few dozen).
pub async fn rows(
    store: &dyn Store,
    links: &RowLinks<'_>,
    page: &[DeliverySummary],
) -> UiResult<Vec<DeliveryRow>> {
    let mut rows = Vec::with_capacity(page.len());
    for summary in page {
        let detail = store
            .get_delivery(links.project, &summary.idempotency_key)
            .await?;
        rows.push(row(links, detail));
    }
    Ok(rows)
}

fn row(links: &RowLinks<'_>, d: DeliveryDetail) -> DeliveryRow {
    let s = d.summary;
    let payload = serde_json::to_string_pretty(&d.payload).unwrap_or_default();
    DeliveryRow {
        resend_action: (s.status != DeliveryStatus::Pending)
            .then(|| format!("{}/{}/resend", links.resend_base, s.idempotency_key)),
        bot: s
            .bot_id
            .filter(|_| links.show_bot)
            .map(|bot| (bot_href(links.project, &bot), bot)),
        url: s.url.unwrap_or_else(|| "(deleted webhook)".into()),
        trigger: s.trigger.code(),
        status: s.status.code(),
        badge: status_badge(s.status),
        attempts: s.attempts,
        last_attempt: s.last_attempt_at.as_ref().map_or_else(String::new, when),
        succeeded: s.succeeded_at.as_ref().map_or_else(String::new, when),
        payload,
        tries: d
            .attempts
            .into_iter()
            .rev()
            .map(|a| AttemptRow {
                at: when(&a.attempted_at),
                duration_ms: a.duration_ms,
                ok: a.status_code.is_some_and(|c| (200..300).contains(&c)),
                outcome: match (a.status_code, a.error_kind, a.error_message) {
                    (Some(code), _, _) => format!("HTTP {code}"),
                    (None, kind, message) => [kind, message]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": "),
                },
                response: a.response_body.unwrap_or_default(),
            })
            .collect(),
        key: s.idempotency_key,
    }
}
