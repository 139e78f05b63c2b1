//! The project's Deliveries: every delivery newest first, a page at a time, filtered by status,
//! trigger, webhook and bot with the REST API's own filter rules, each resendable, and "resend
//! every failed one since …" for after an outage.

use askama::Template;
use axum::extract::{OriginalUri, Path, State};
use axum::response::Response;
use meetwire_core::trigger::Trigger;
use meetwire_store::{DeliveryFilter, DeliveryStatus, PageRequest};

use super::delivery_list::{self, DeliveryRow, RowLinks};
use super::error::UiResult;
use super::form::CsrfForm;
use super::layout::{done, notice, project_href, render, section_href, Chrome, Section};
use super::session::Member;
use crate::api::deliveries::{filter, parse_since};
use crate::api::pagination::{encode, query_params, QueryParams};
use crate::app::AppState;

const PER_PAGE: u32 = 25;

/// The filter fields, in the order the form shows them.
const FILTERS: [&str; 4] = ["status", "trigger", "webhook_id", "bot_id"];

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "deliveries/page.html")]
struct DeliveriesPage {
    chrome: Chrome,
    action: String,
    statuses: Vec<Choice>,
    triggers: Vec<Choice>,
    webhooks: Vec<Choice>,
    bot_id: String,
    resend_action: String,
    /// The filters the bulk resend keeps (all but status: it resends failed ones).
    kept: Vec<(&'static str, String)>,
    since: String,
    error: Option<String>,
    deliveries: Vec<DeliveryRow>,
    csrf: String,
    next_href: Option<String>,
    previous_href: Option<String>,
}

fn choices(
    values: impl IntoIterator<Item = (String, String)>,
    current: Option<&str>,
) -> Vec<Choice> {
    values
        .into_iter()
        .map(|(value, label)| Choice {
            selected: current == Some(value.as_str()),
            value,
            label,
        })
        .collect()
}

/// What the page shows for `params`, with `error` and what was typed into "since" when a bulk
/// resend was refused.
async fn page(
    state: &AppState,
    member: &Member,
    params: &QueryParams,
    since: (&str, Option<String>),
) -> UiResult<DeliveriesPage> {
    let project = &member.project.id;
    let wanted = filter(params)?;
    let page = state
        .store
        .list_deliveries(project, &wanted, params.page_or(PER_PAGE)?)
        .await?;
    let base = section_href(project, Section::Deliveries);
    let resend_base = project_href(project, "deliveries");
    let links = RowLinks {
        project,
        resend_base: &resend_base,
        show_bot: true,
    };
    let deliveries = delivery_list::rows(state.store.as_ref(), &links, &page.items).await?;
    let current = |name: &str| params.get(name).map(String::as_str);
    let link = |cursor: meetwire_store::Cursor| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for name in FILTERS {
            if let Some(value) = current(name) {
                query.append_pair(name, value);
            }
        }
        query.append_pair("cursor", &encode(cursor));
        format!("{base}?{}", query.finish())
    };
    let subscriptions = state
        .store
        .list_subscriptions(
            project,
            None,
            PageRequest {
                after: None,
                limit: 500,
            },
        )
        .await?;
    Ok(DeliveriesPage {
        chrome: Chrome::new(member, Section::Deliveries, notice(current("notice"))),
        action: base.clone(),
        statuses: choices(
            [
                DeliveryStatus::Pending,
                DeliveryStatus::Success,
                DeliveryStatus::Failure,
            ]
            .map(|s| (s.code().to_owned(), s.code().to_owned())),
            current("status"),
        ),
        triggers: choices(
            Trigger::ALL
                .iter()
                .map(|t| (t.code().to_owned(), t.code().to_owned())),
            current("trigger"),
        ),
        webhooks: choices(
            subscriptions.items.into_iter().map(|s| (s.id, s.url)),
            current("webhook_id"),
        ),
        bot_id: current("bot_id").unwrap_or_default().to_owned(),
        resend_action: project_href(project, "deliveries/resend-failed"),
        kept: FILTERS[1..]
            .iter()
            .filter_map(|name| current(name).map(|v| (*name, v.to_owned())))
            .collect(),
        since: since.0.to_owned(),
        error: since.1,
        deliveries,
        csrf: member.user.csrf.clone(),
        next_href: page.next.map(link),
        previous_href: page.previous.map(link),
    })
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
    OriginalUri(uri): OriginalUri,
) -> UiResult<Response> {
    let params = query_params(&uri).without_empty();
    render(&page(&state, &member, &params, ("", None)).await?)
}

pub async fn resend(
    State(state): State<AppState>,
    Path((_, key)): Path<(String, String)>,
    form: CsrfForm<Member>,
) -> UiResult<Response> {
    let project = &form.who.project.id;
    state.store.resend_delivery(project, &key).await?;
    Ok(done(&section_href(project, Section::Deliveries), "resent"))
}

/// Resends every failed delivery since the time typed, within the page's filters; a time that
/// cannot be read shows the page again with the API's message and what was typed.
pub async fn resend_failed(
    State(state): State<AppState>,
    form: CsrfForm<Member>,
) -> UiResult<Response> {
    let member = &form.who;
    let params = QueryParams::from_pairs(
        form.fields
            .pairs()
            .filter(|(name, _)| FILTERS[1..].contains(name)),
    );
    let typed = form.fields.text("since").trim();
    let Some(since) = parse_since(typed) else {
        let message = format!(
            "since is not an ISO 8601 time (2026-11-27T09:00:00Z) or date (2026-11-27): {typed}"
        );
        let shown = page(&state, member, &params, (typed, Some(message))).await?;
        let mut response = render(&shown)?;
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    let wanted = DeliveryFilter {
        status: Some(DeliveryStatus::Failure),
        ..filter(&params)?
    };
    state
        .store
        .resend_failed_deliveries(&member.project.id, &wanted, since)
        .await?;
    Ok(done(
        &section_href(&member.project.id, Section::Deliveries),
        "resent-failed",
    ))
}
