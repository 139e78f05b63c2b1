//! Bots: the project's bots newest first, a page at a time (keyset cursor, never a count),
//! filtered by state or found by id or meeting URL; and "new bot", with a meeting URL or one of
//! the sandbox's scenarios, so webhooks can be tried without writing code. Creation is the REST
//! API's own code, so the form shows the API's messages.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use meetwire_core::ids::{is_valid_id, IdKind};
use meetwire_core::state::BotState;
use meetwire_store::{Bot, BotFilter, Page, PageRequest, StoreError};
use serde::Deserialize;

use super::error::{UiError, UiResult};
use super::form::CsrfForm;
use super::layout::{project_href, render, section_href, when, Chrome, Section};
use super::session::Member;
use crate::api::bots::{create_bot, CreateBotBody};
use crate::api::error::ApiError;
use crate::api::pagination::{decode, encode};
use crate::app::AppState;
use crate::sandbox::script::SCENARIOS;

const PAGE_SIZE: u32 = 25;

/// The badge class of a state: finished well, failed, in the meeting, or on its way.
pub fn state_badge(state: BotState) -> &'static str {
    match state {
        BotState::FatalError => "bad",
        BotState::Ended | BotState::DataDeleted => "ok",
        s if s.is_joined() => "live",
        _ => "wait",
    }
}

pub fn bot_href(project: &str, bot_id: &str) -> String {
    project_href(project, &format!("bots/{bot_id}"))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

struct BotRow {
    id: String,
    href: String,
    name: String,
    meeting_url: String,
    state: &'static str,
    badge: &'static str,
    created: String,
}

struct StateChoice {
    code: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "bots/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<BotRow>,
    states: Vec<StateChoice>,
    q: String,
    action: String,
    new_href: String,
    next_href: Option<String>,
    previous_href: Option<String>,
}

/// The bots a list request asks for: one bot by its id, or a page of the filtered list.
async fn find(
    state: &AppState,
    project: &str,
    query: &ListQuery,
    wanted: Option<BotState>,
) -> UiResult<Page<Bot>> {
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if let Some(id) = q.filter(|q| is_valid_id(IdKind::Bot, q)) {
        let items = match state.store.get_bot(project, id).await {
            Ok(bot) => vec![bot],
            Err(StoreError::NotFound) => vec![],
            Err(e) => return Err(e.into()),
        };
        return Ok(Page {
            items,
            next: None,
            previous: None,
        });
    }
    let filter = BotFilter {
        meeting_url: q.map(str::to_owned),
        states: wanted.into_iter().collect(),
        ..BotFilter::default()
    };
    let after = query.cursor.as_deref().map(decode).transpose()?;
    let page = PageRequest {
        after,
        limit: PAGE_SIZE,
    };
    Ok(state.store.list_bots(project, &filter, page).await?)
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
    Query(query): Query<ListQuery>,
) -> UiResult<Response> {
    let project = &member.project.id;
    let wanted = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(code) => Some(
            code.parse::<BotState>()
                .map_err(|_| UiError::BadRequest(format!("Invalid state: {code}")))?,
        ),
    };
    let page = find(&state, project, &query, wanted).await?;
    let base = section_href(project, Section::Bots);
    let link = |cursor: meetwire_store::Cursor| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        if let Some(s) = &query.state {
            params.append_pair("state", s);
        }
        if let Some(q) = &query.q {
            params.append_pair("q", q);
        }
        params.append_pair("cursor", &encode(cursor));
        format!("{base}?{}", params.finish())
    };
    render(&ListPage {
        chrome: Chrome::new(&member, Section::Bots, None),
        rows: page
            .items
            .iter()
            .map(|b| BotRow {
                id: b.id.clone(),
                href: bot_href(project, &b.id),
                name: b.bot_name.clone(),
                meeting_url: b.meeting_url.clone(),
                state: b.state.code(),
                badge: state_badge(b.state),
                created: when(&b.created_at),
            })
            .collect(),
        states: BotState::ALL
            .iter()
            .map(|s| StateChoice {
                code: s.code(),
                selected: Some(*s) == wanted,
            })
            .collect(),
        q: query.q.clone().unwrap_or_default(),
        action: base.clone(),
        new_href: project_href(project, "bots/new"),
        next_href: page.next.map(link),
        previous_href: page.previous.map(link),
    })
}

struct ScenarioChoice {
    name: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "bots/new.html")]
struct NewPage {
    chrome: Chrome,
    action: String,
    cancel_href: String,
    meeting_url: String,
    bot_name: String,
    scenarios: Vec<ScenarioChoice>,
    speed: String,
    error: Option<String>,
}

/// What the new-bot form holds, empty or as typed.
struct Draft<'a> {
    meeting_url: &'a str,
    bot_name: &'a str,
    scenario: &'a str,
    speed: &'a str,
    error: Option<String>,
}

fn new_page(member: &Member, draft: Draft<'_>) -> NewPage {
    let project = &member.project.id;
    NewPage {
        chrome: Chrome::new(member, Section::Bots, None),
        action: section_href(project, Section::Bots),
        cancel_href: section_href(project, Section::Bots),
        meeting_url: draft.meeting_url.to_owned(),
        bot_name: draft.bot_name.to_owned(),
        scenarios: SCENARIOS
            .iter()
            .map(|name| ScenarioChoice {
                name,
                selected: *name == draft.scenario,
            })
            .collect(),
        speed: draft.speed.to_owned(),
        error: draft.error,
    }
}

pub async fn new_form(member: Member) -> UiResult<Response> {
    let draft = Draft {
        meeting_url: "",
        bot_name: "",
        scenario: "standup",
        speed: "1",
        error: None,
    };
    render(&new_page(&member, draft))
}

pub async fn create(State(state): State<AppState>, form: CsrfForm<Member>) -> UiResult<Response> {
    let (member, fields) = (&form.who, &form.fields);
    let project = &member.project.id;
    let scenario = fields.text("scenario");
    let speed = fields.text("speed").trim();
    // A scenario picked makes a sandbox meeting URL; otherwise the URL typed is used as is.
    let meeting_url = if scenario.is_empty() {
        fields.text("meeting_url").to_owned()
    } else {
        format!("sandbox://{scenario}?speed={speed}")
    };
    let bot_name = Some(fields.text("bot_name").trim())
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let body = CreateBotBody::for_meeting(meeting_url, bot_name);
    match create_bot(&state, project, body).await {
        Ok(bot) => Ok(Redirect::to(&bot_href(project, &bot.id)).into_response()),
        Err(ApiError::BadRequest(message) | ApiError::Conflict(message)) => {
            let draft = Draft {
                meeting_url: fields.text("meeting_url"),
                bot_name: fields.text("bot_name"),
                scenario,
                speed,
                error: Some(message),
            };
            let html = new_page(member, draft).render()?;
            Ok((StatusCode::BAD_REQUEST, Html(html)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
