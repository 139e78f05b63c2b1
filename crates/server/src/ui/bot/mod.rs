//! A bot's page: its state, a drawn timeline of the meeting, and tabs Transcript, Chat,
//! Participants, Logs and Webhooks — every delivery made for the bot, newest first, a page at a
//! time (a long meeting has thousands), each with its payload and attempts and a Resend button.
//! The timeline and the tab are one fragment that the page's script fetches again every two
//! seconds while the meeting runs or a delivery is pending, so it updates without a reload.

mod timeline;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use meetwire_core::record::RecordKind;
use meetwire_core::state::BotState;
use meetwire_core::time::now;
use meetwire_store::{
    Bot, DeliveryFilter, DeliveryStatus, PageRequest, Store, StoreError, StoredRecord,
};
use serde::Deserialize;
use serde_json::Value;

use super::bots::{bot_href, state_badge};
use super::calendars::calendar_href;
use super::delivery_list::{self, DeliveryRow, RowLinks};
use super::error::{UiError, UiResult};
use super::form::CsrfForm;
use super::layout::{done, notice, render, when, Chrome, Section};
use super::session::Member;
use crate::api::pagination::{decode, encode};
use crate::app::AppState;
use timeline::Timeline;

/// Deliveries per page of the Webhooks tab, and records per page of the other tabs.
const DELIVERIES_PER_PAGE: u32 = 20;
const RECORDS_PER_PAGE: u32 = 200;
/// Most events the timeline draws (its first ones): enough for any real meeting's picture.
const TIMELINE_EVENTS: u32 = 2000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Transcript,
    Chat,
    Participants,
    Logs,
    Webhooks,
}

impl Tab {
    const ALL: [Tab; 5] = [
        Tab::Transcript,
        Tab::Chat,
        Tab::Participants,
        Tab::Logs,
        Tab::Webhooks,
    ];

    fn code(self) -> &'static str {
        match self {
            Tab::Transcript => "transcript",
            Tab::Chat => "chat",
            Tab::Participants => "participants",
            Tab::Logs => "logs",
            Tab::Webhooks => "webhooks",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tab::Transcript => "Transcript",
            Tab::Chat => "Chat",
            Tab::Participants => "Participants",
            Tab::Logs => "Logs",
            Tab::Webhooks => "Webhooks",
        }
    }

    fn kind(self) -> Option<RecordKind> {
        match self {
            Tab::Transcript => Some(RecordKind::Utterance),
            Tab::Chat => Some(RecordKind::ChatMessage),
            Tab::Participants => Some(RecordKind::ParticipantEvent),
            Tab::Logs => Some(RecordKind::Log),
            Tab::Webhooks => None,
        }
    }

    /// The Webhooks tab unless another is named.
    fn parse(code: Option<&str>) -> UiResult<Tab> {
        match code {
            None => Ok(Tab::Webhooks),
            Some(code) => Tab::ALL
                .into_iter()
                .find(|t| t.code() == code)
                .ok_or(UiError::NotFound),
        }
    }
}

#[derive(Deserialize)]
pub struct BotQuery {
    #[serde(default)]
    tab: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

struct TabLink {
    label: &'static str,
    href: String,
    current: bool,
}

/// One line of a record tab: who, when, what (all shown as text).
struct RecordRow {
    at: String,
    who: String,
    what: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "bot/live.html")]
struct Live {
    live: bool,
    state: &'static str,
    badge: &'static str,
    timeline: Option<Timeline>,
    webhooks: bool,
    deliveries: Vec<DeliveryRow>,
    records: Vec<RecordRow>,
    csrf: String,
    next_href: Option<String>,
    previous_href: Option<String>,
}

#[derive(Template)]
#[template(path = "bot/page.html")]
struct BotPage {
    chrome: Chrome,
    id: String,
    name: String,
    meeting_url: String,
    metadata: String,
    /// The calendar event the bot was sent to (empty if none), and its calendar's page (empty
    /// once the calendar is deleted).
    calendar_event: String,
    calendar_href: String,
    /// When a scheduled bot joins (empty once it has been asked to join).
    joins_at: String,
    tabs: Vec<TabLink>,
    live_src: String,
    live: String,
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn record_row(tab: Tab, record: &StoredRecord) -> RecordRow {
    let p = &record.payload;
    let (who, what, detail) = match tab {
        Tab::Transcript => (
            text(p, "speaker_name"),
            text(&p["transcription"], "transcript"),
            format!("{} ms", text(p, "duration_ms")),
        ),
        Tab::Chat => (text(p, "sender_name"), text(p, "text"), text(p, "to")),
        Tab::Participants => (
            text(p, "participant_name"),
            text(p, "event_type"),
            String::new(),
        ),
        Tab::Logs => (text(p, "level"), text(p, "message"), text(p, "entry_type")),
        Tab::Webhooks => (String::new(), p.to_string(), String::new()),
    };
    RecordRow {
        at: when(&record.created_at),
        who,
        what,
        detail,
    }
}

async fn records(
    store: &dyn Store,
    project: &str,
    bot_id: &str,
    kind: RecordKind,
    page: PageRequest,
) -> UiResult<meetwire_store::Page<StoredRecord>> {
    Ok(store.list_records(project, bot_id, kind, page).await?)
}

/// The fragment that updates: state, timeline and the tab's page.
async fn live_fragment(
    state: &AppState,
    member: &Member,
    bot: &Bot,
    tab: Tab,
    cursor: Option<&str>,
) -> UiResult<Live> {
    let project = &member.project.id;
    let store = state.store.as_ref();
    let first = PageRequest {
        after: None,
        limit: TIMELINE_EVENTS,
    };
    let states = records(store, project, &bot.id, RecordKind::BotEvent, first).await?;
    let people = records(store, project, &bot.id, RecordKind::ParticipantEvent, first).await?;
    let end = if bot.state.is_terminal() {
        states.items.last().map_or(bot.updated_at, |r| r.created_at)
    } else {
        now()
    };
    let timeline = timeline::build(&states.items, &people.items, end);
    let after = cursor.map(decode).transpose()?;
    let page_link = |c: meetwire_store::Cursor| {
        format!(
            "{}?tab={}&cursor={}",
            bot_href(project, &bot.id),
            tab.code(),
            encode(c)
        )
    };
    let mut fragment = Live {
        live: !bot.state.is_terminal(),
        state: bot.state.code(),
        badge: state_badge(bot.state),
        timeline,
        webhooks: tab == Tab::Webhooks,
        deliveries: Vec::new(),
        records: Vec::new(),
        csrf: member.user.csrf.clone(),
        next_href: None,
        previous_href: None,
    };
    match tab.kind() {
        Some(kind) => {
            let page = PageRequest {
                after,
                limit: RECORDS_PER_PAGE,
            };
            let page = records(store, project, &bot.id, kind, page).await?;
            fragment.records = page.items.iter().map(|r| record_row(tab, r)).collect();
            fragment.next_href = page.next.map(page_link);
            fragment.previous_href = page.previous.map(page_link);
        }
        None => {
            let filter = DeliveryFilter {
                bot_id: Some(bot.id.clone()),
                ..DeliveryFilter::default()
            };
            let page = PageRequest {
                after,
                limit: DELIVERIES_PER_PAGE,
            };
            let page = store.list_deliveries(project, &filter, page).await?;
            let resend_base = format!("{}/deliveries", bot_href(project, &bot.id));
            let links = RowLinks {
                project,
                resend_base: &resend_base,
                show_bot: false,
            };
            fragment.deliveries = delivery_list::rows(store, &links, &page.items).await?;
            fragment.live |= page
                .items
                .iter()
                .any(|d| d.status == DeliveryStatus::Pending);
            fragment.next_href = page.next.map(page_link);
            fragment.previous_href = page.previous.map(page_link);
        }
    }
    Ok(fragment)
}

pub async fn page(
    State(state): State<AppState>,
    member: Member,
    Path((_, bot_id)): Path<(String, String)>,
    Query(query): Query<BotQuery>,
) -> UiResult<Response> {
    let project = &member.project.id;
    let bot = state.store.get_bot(project, &bot_id).await?;
    let tab = Tab::parse(query.tab.as_deref())?;
    let live = live_fragment(&state, &member, &bot, tab, query.cursor.as_deref()).await?;
    let href = bot_href(project, &bot.id);
    let mut live_src = format!("{href}/live?tab={}", tab.code());
    if let Some(cursor) = &query.cursor {
        live_src.push_str(&format!("&cursor={cursor}"));
    }
    let (calendar_event, calendar_href) = match &bot.calendar_event_id {
        Some(event_id) => match state.store.get_calendar_event(project, event_id).await {
            Ok(event) => (
                event.name.unwrap_or_else(|| event_id.clone()),
                calendar_href(project, &event.calendar_id),
            ),
            Err(StoreError::NotFound) => (event_id.clone(), String::new()),
            Err(e) => return Err(e.into()),
        },
        None => (String::new(), String::new()),
    };
    render(&BotPage {
        calendar_event,
        calendar_href,
        chrome: Chrome::new(&member, Section::Bots, notice(query.notice.as_deref())),
        id: bot.id.clone(),
        name: bot.bot_name.clone(),
        meeting_url: bot.meeting_url.clone(),
        joins_at: match bot.state {
            BotState::Scheduled | BotState::Staged => bot.join_at.as_ref().map(when),
            _ => None,
        }
        .unwrap_or_default(),
        metadata: bot
            .metadata
            .as_ref()
            .map_or_else(String::new, |m| Value::Object(m.clone()).to_string()),
        tabs: Tab::ALL
            .iter()
            .map(|t| TabLink {
                label: t.label(),
                href: format!("{href}?tab={}", t.code()),
                current: *t == tab,
            })
            .collect(),
        live_src,
        live: live.render()?,
    })
}

/// The fragment alone, for the page's script.
pub async fn live(
    State(state): State<AppState>,
    member: Member,
    Path((_, bot_id)): Path<(String, String)>,
    Query(query): Query<BotQuery>,
) -> UiResult<Response> {
    let bot = state.store.get_bot(&member.project.id, &bot_id).await?;
    let tab = Tab::parse(query.tab.as_deref())?;
    let live = live_fragment(&state, &member, &bot, tab, query.cursor.as_deref()).await?;
    Ok(Html(live.render()?).into_response())
}

pub async fn resend(
    State(state): State<AppState>,
    Path((_, bot_id, key)): Path<(String, String, String)>,
    form: CsrfForm<Member>,
) -> UiResult<Response> {
    let project = &form.who.project.id;
    let delivery = state.store.get_delivery(project, &key).await?;
    if delivery.summary.bot_id.as_deref() != Some(bot_id.as_str()) {
        return Err(UiError::NotFound);
    }
    state.store.resend_delivery(project, &key).await?;
    let back = format!("{}?tab=webhooks", bot_href(project, &bot_id));
    Ok(done(&back, "resent"))
}
