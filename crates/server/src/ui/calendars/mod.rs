//! Calendars: the project's calendars with their connection state, and a calendar's page with
//! its upcoming events and a Webhooks tab (the same delivery list as a bot's), plus "Sync now".
//! Connecting a calendar stays in the REST API, where its credentials are sent.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use meetwire_core::auto_join::AutoJoinRule;
use meetwire_core::calendar::CalendarState;
use meetwire_store::{
    BotFilter, Calendar, CalendarEventFilter, CalendarFilter, DeliveryFilter, PageRequest,
};
use serde::Deserialize;

use super::bots::bot_href;
use super::delivery_list::{self, DeliveryRow, RowLinks};
use super::error::UiResult;
use super::form::CsrfForm;
use super::layout::{done, notice, project_href, render, section_href, when, Chrome, Section};
use super::session::Member;
use crate::api::pagination::{decode, encode};
use crate::app::AppState;

const PER_PAGE: u32 = 50;
const DELIVERIES_PER_PAGE: u32 = 20;

struct CalendarRow {
    href: String,
    id: String,
    platform: &'static str,
    deduplication_key: String,
    state: &'static str,
    badge: &'static str,
    last_sync: String,
    failure: String,
}

fn row(project: &str, c: &Calendar) -> CalendarRow {
    CalendarRow {
        href: calendar_href(project, &c.id),
        id: c.id.clone(),
        platform: c.platform.code(),
        deduplication_key: c.deduplication_key.clone().unwrap_or_default(),
        state: c.state.code(),
        badge: match c.state {
            CalendarState::Connected => "ok",
            CalendarState::Disconnected => "bad",
        },
        last_sync: c
            .last_successful_sync_at
            .as_ref()
            .map_or_else(|| "never".to_owned(), when),
        failure: c
            .connection_failure
            .as_ref()
            .map(|(error, at)| format!("{error} ({})", when(at)))
            .unwrap_or_default(),
    }
}

pub(super) fn calendar_href(project: &str, id: &str) -> String {
    project_href(project, &format!("calendars/{id}"))
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    tab: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "calendars/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<CalendarRow>,
    next_href: Option<String>,
    previous_href: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
    Query(query): Query<PageQuery>,
) -> UiResult<Response> {
    let project = &member.project.id;
    let page = PageRequest {
        after: query.cursor.as_deref().map(decode).transpose()?,
        limit: PER_PAGE,
    };
    let page = state
        .store
        .list_calendars(project, &CalendarFilter::default(), page)
        .await?;
    let base = section_href(project, Section::Calendars);
    let link = |c: meetwire_store::Cursor| format!("{base}?cursor={}", encode(c));
    render(&ListPage {
        chrome: Chrome::new(&member, Section::Calendars, None),
        rows: page.items.iter().map(|c| row(project, c)).collect(),
        next_href: page.next.map(link),
        previous_href: page.previous.map(link),
    })
}

struct EventRow {
    start: String,
    end: String,
    name: String,
    meeting_url: String,
    deleted: bool,
    /// The bot sent to the event (the newest, if several were), and its page.
    bot: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "calendars/page.html")]
struct CalendarPage {
    chrome: Chrome,
    calendar: CalendarRow,
    metadata: String,
    auto_join: String,
    sync_action: String,
    events_href: String,
    webhooks_href: String,
    webhooks: bool,
    events: Vec<EventRow>,
    deliveries: Vec<DeliveryRow>,
    csrf: String,
    next_href: Option<String>,
    previous_href: Option<String>,
}

/// The `auto_join` rule in words.
fn auto_join_text(rule: Option<&AutoJoinRule>) -> String {
    let Some(rule) = rule else {
        return "off (an auto_join rule, set by PATCH /api/v1/calendars/{id}, sends bots by itself)"
            .into();
    };
    let whose = if rule.attendees.is_empty() {
        String::new()
    } else {
        format!(
            " whose organiser or an attendee is {}",
            rule.attendees.join(" or ")
        )
    };
    format!(
        "a bot named “{}” joins every event with a meeting link{whose}",
        rule.bot_name()
    )
}

pub async fn page(
    State(state): State<AppState>,
    member: Member,
    Path((_, id)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> UiResult<Response> {
    let project = &member.project.id;
    let calendar = state.store.get_calendar(project, &id).await?;
    let href = calendar_href(project, &id);
    let webhooks = query.tab.as_deref() == Some("webhooks");
    let after = query.cursor.as_deref().map(decode).transpose()?;
    let tab = if webhooks { "webhooks" } else { "events" };
    let link = |c: meetwire_store::Cursor| format!("{href}?tab={tab}&cursor={}", encode(c));
    let mut shown = CalendarPage {
        chrome: Chrome::new(&member, Section::Calendars, notice(query.notice.as_deref())),
        calendar: row(project, &calendar),
        metadata: match calendar.metadata.is_empty() {
            true => String::new(),
            false => serde_json::Value::Object(calendar.metadata.clone()).to_string(),
        },
        auto_join: auto_join_text(calendar.auto_join.as_ref()),
        sync_action: format!("{href}/sync"),
        events_href: href.clone(),
        webhooks_href: format!("{href}?tab=webhooks"),
        webhooks,
        events: Vec::new(),
        deliveries: Vec::new(),
        csrf: member.user.csrf.clone(),
        next_href: None,
        previous_href: None,
    };
    if webhooks {
        let filter = DeliveryFilter {
            calendar_id: Some(id.clone()),
            ..DeliveryFilter::default()
        };
        let page = PageRequest {
            after,
            limit: DELIVERIES_PER_PAGE,
        };
        let page = state.store.list_deliveries(project, &filter, page).await?;
        let resend_base = project_href(project, "deliveries");
        let links = RowLinks {
            project,
            resend_base: &resend_base,
            show_bot: false,
        };
        shown.deliveries = delivery_list::rows(state.store.as_ref(), &links, &page.items).await?;
        shown.next_href = page.next.map(link);
        shown.previous_href = page.previous.map(link);
    } else {
        let filter = CalendarEventFilter {
            calendar_id: Some(id.clone()),
            ..CalendarEventFilter::default()
        };
        let page = PageRequest {
            after,
            limit: PER_PAGE,
        };
        let page = state
            .store
            .list_calendar_events(project, &filter, page)
            .await?;
        let mut events = Vec::with_capacity(page.items.len());
        for e in &page.items {
            events.push(EventRow {
                start: when(&e.start_time),
                end: when(&e.end_time),
                name: e.name.clone().unwrap_or_default(),
                meeting_url: e.meeting_url.clone().unwrap_or_default(),
                deleted: e.is_deleted,
                bot: event_bot(&state, project, &e.id).await?,
            });
        }
        events.sort_by(|a, b| a.start.cmp(&b.start));
        shown.events = events;
        shown.next_href = page.next.map(link);
        shown.previous_href = page.previous.map(link);
    }
    render(&shown)
}

/// The newest bot sent to calendar event `event`: its name and page.
async fn event_bot(
    state: &AppState,
    project: &str,
    event: &str,
) -> UiResult<Option<(String, String)>> {
    let filter = BotFilter {
        calendar_event_id: Some(event.to_owned()),
        ..BotFilter::default()
    };
    let newest = PageRequest {
        after: None,
        limit: 1,
    };
    let bots = state.store.list_bots(project, &filter, newest).await?;
    Ok(bots
        .items
        .into_iter()
        .next()
        .map(|bot| (bot.bot_name, bot_href(project, &bot.id))))
}

pub async fn sync(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    form: CsrfForm<Member>,
) -> UiResult<Response> {
    let project = &form.who.project.id;
    state.store.request_calendar_sync(project, &id).await?;
    state.calendar_wake.notify_one();
    Ok(done(&calendar_href(project, &id), "sync-queued"))
}
