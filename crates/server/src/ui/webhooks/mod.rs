//! Settings → Webhooks: the project-level subscriptions (create, edit, enable/disable, delete
//! with confirmation), the signing secret (revealed on demand, rotated with an overlap) and the
//! Standard Webhooks setting. Validation is the REST API's own code, so the form shows the
//! API's messages, with what was typed kept in the form.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use meetwire_core::trigger::Trigger;
use meetwire_store::{PageRequest, Subscription};
use serde::Deserialize;
use serde_json::Value;

use super::error::{UiError, UiResult};
use super::form::{CsrfForm, Fields};
use super::layout::{done, notice, project_href, render, section_href, when, Chrome, Section};
use super::session::Member;
use crate::api::error::ApiError;
use crate::api::secret::{rotate_secret, secrets, DEFAULT_OVERLAP_SECONDS};
use crate::api::webhooks::{create_subscription, update_subscription};
use crate::app::AppState;

/// Project-level subscriptions shown at most (the store's limit per project is lower).
const LIST_LIMIT: u32 = 200;
/// The overlaps offered when rotating, in hours.
const OVERLAP_HOURS: [(u64, &str); 4] = [
    (0, "none: the old secret stops now"),
    (1, "1 hour"),
    (24, "24 hours"),
    (168, "7 days"),
];

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    reveal: Option<String>,
}

struct SubRow {
    url: String,
    triggers: Vec<&'static str>,
    active: bool,
    disabled_reason: Option<String>,
    created: String,
    edit_href: String,
    delete_href: String,
    toggle_action: String,
    toggle_to: &'static str,
    toggle_label: &'static str,
}

struct Revealed {
    attendee: String,
    whsec: String,
}

struct Choice {
    value: u64,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "webhooks/list.html")]
struct ListPage {
    chrome: Chrome,
    subs: Vec<SubRow>,
    new_href: String,
    reveal_href: String,
    revealed: Option<Revealed>,
    secret_created: String,
    retiring: Vec<String>,
    rotate_action: String,
    overlaps: Vec<Choice>,
    standard_action: String,
    standard_webhooks: bool,
}

struct TriggerBox {
    code: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "webhooks/form.html")]
struct FormPage {
    chrome: Chrome,
    heading: &'static str,
    action: String,
    cancel_href: String,
    url: String,
    triggers: Vec<TriggerBox>,
    error: Option<String>,
    submit: &'static str,
}

#[derive(Template)]
#[template(path = "webhooks/delete.html")]
struct DeletePage {
    chrome: Chrome,
    url: String,
    action: String,
    cancel_href: String,
}

fn list_href(project: &str) -> String {
    section_href(project, Section::Webhooks)
}

fn sub_href(project: &str, id: &str, rest: &str) -> String {
    project_href(project, &format!("settings/webhooks/{id}{rest}"))
}

fn row(project: &str, sub: Subscription) -> SubRow {
    let (toggle_to, toggle_label) = if sub.is_active {
        ("false", "Disable")
    } else {
        ("true", "Enable")
    };
    SubRow {
        triggers: sub.triggers.iter().map(|t| t.code()).collect(),
        active: sub.is_active,
        disabled_reason: sub.disabled_reason,
        created: when(&sub.created_at),
        edit_href: sub_href(project, &sub.id, ""),
        delete_href: sub_href(project, &sub.id, "/delete"),
        toggle_action: sub_href(project, &sub.id, "/active"),
        toggle_to,
        toggle_label,
        url: sub.url,
    }
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
    Query(query): Query<ListQuery>,
) -> UiResult<Response> {
    let project = &member.project.id;
    let page = PageRequest {
        after: None,
        limit: LIST_LIMIT,
    };
    let subs = state.store.list_subscriptions(project, None, page).await?;
    let secrets = secrets(&state, project).await?;
    let settings = state.store.project_settings(project).await?;
    let revealed = query.reveal.is_some().then(|| Revealed {
        attendee: secrets.active.to_base64(),
        whsec: secrets.active.to_whsec(),
    });
    let page = ListPage {
        chrome: Chrome::new(&member, Section::Webhooks, notice(query.notice.as_deref())),
        subs: subs.items.into_iter().map(|s| row(project, s)).collect(),
        new_href: project_href(project, "settings/webhooks/new"),
        reveal_href: format!("{}?reveal=1#signing-secret", list_href(project)),
        revealed,
        secret_created: when(&secrets.created_at),
        retiring: secrets
            .retiring
            .iter()
            .map(|s| s.expires_at.as_ref().map_or_else(String::new, when))
            .collect(),
        rotate_action: project_href(project, "settings/signing-secret/rotate"),
        overlaps: OVERLAP_HOURS
            .iter()
            .map(|&(value, label)| Choice {
                value,
                label,
                selected: value * 3600 == DEFAULT_OVERLAP_SECONDS,
            })
            .collect(),
        standard_action: project_href(project, "settings/standard-webhooks"),
        standard_webhooks: settings.standard_webhooks,
    };
    render(&page)
}

fn trigger_boxes(ticked: &[&str]) -> Vec<TriggerBox> {
    Trigger::ALL
        .iter()
        .map(|t| TriggerBox {
            code: t.code(),
            checked: ticked.contains(&t.code()),
        })
        .collect()
}

/// The subscription form, empty, filled from a subscription, or as typed with an error.
struct Draft<'a> {
    url: &'a str,
    ticked: Vec<&'a str>,
    error: Option<String>,
}

fn form_page(member: &Member, id: Option<&str>, draft: Draft<'_>) -> FormPage {
    let project = &member.project.id;
    let (heading, action, submit) = match id {
        None => ("New webhook", list_href(project), "Create webhook"),
        Some(id) => ("Edit webhook", sub_href(project, id, ""), "Save"),
    };
    FormPage {
        chrome: Chrome::new(member, Section::Webhooks, None),
        heading,
        action,
        cancel_href: list_href(project),
        url: draft.url.to_owned(),
        triggers: trigger_boxes(&draft.ticked),
        error: draft.error,
        submit,
    }
}

pub async fn new_form(member: Member) -> UiResult<Response> {
    let draft = Draft {
        url: "",
        ticked: vec![],
        error: None,
    };
    render(&form_page(&member, None, draft))
}

pub async fn edit_form(
    State(state): State<AppState>,
    member: Member,
    Path((_, id)): Path<(String, String)>,
) -> UiResult<Response> {
    let sub = project_subscription(&state, &member, &id).await?;
    let codes: Vec<&str> = sub.triggers.iter().map(|t| t.code()).collect();
    let draft = Draft {
        url: &sub.url,
        ticked: codes,
        error: None,
    };
    render(&form_page(&member, Some(&id), draft))
}

/// A project-level subscription of this project; bot-level ones are the bot's business.
async fn project_subscription(
    state: &AppState,
    member: &Member,
    id: &str,
) -> UiResult<Subscription> {
    let sub = state.store.get_subscription(&member.project.id, id).await?;
    if sub.bot_id.is_some() {
        return Err(UiError::NotFound);
    }
    Ok(sub)
}

/// The ticked trigger codes as the API takes them.
fn codes(fields: &Fields) -> Vec<Value> {
    fields
        .all("triggers")
        .into_iter()
        .map(|c| Value::String(c.to_owned()))
        .collect()
}

/// The form again with the API's message and what was typed, or the failure as a page.
fn refused(member: &Member, id: Option<&str>, fields: &Fields, e: ApiError) -> UiResult<Response> {
    match e {
        ApiError::BadRequest(message) | ApiError::Conflict(message) => {
            let draft = Draft {
                url: fields.text("url"),
                ticked: fields.all("triggers"),
                error: Some(message),
            };
            let html = form_page(member, id, draft).render()?;
            Ok((StatusCode::BAD_REQUEST, Html(html)).into_response())
        }
        other => Err(other.into()),
    }
}

pub async fn create(State(state): State<AppState>, form: CsrfForm<Member>) -> UiResult<Response> {
    let (member, fields) = (&form.who, &form.fields);
    let project = &member.project.id;
    match create_subscription(&state, project, fields.text("url"), &codes(fields), true).await {
        Ok(_) => Ok(done(&list_href(project), "created")),
        Err(e) => refused(member, None, fields, e),
    }
}

pub async fn update(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    form: CsrfForm<Member>,
) -> UiResult<Response> {
    let (member, fields) = (&form.who, &form.fields);
    let project = &member.project.id;
    project_subscription(&state, member, &id).await?;
    let codes = codes(fields);
    let url = Some(fields.text("url"));
    match update_subscription(&state, project, &id, url, Some(&codes), None).await {
        Ok(_) => Ok(done(&list_href(project), "saved")),
        Err(e) => refused(member, Some(&id), fields, e),
    }
}

pub async fn set_active(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    form: CsrfForm<Member>,
) -> UiResult<Response> {
    let project = &form.who.project.id;
    project_subscription(&state, &form.who, &id).await?;
    let active = match form.fields.get("active") {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(UiError::BadRequest("active must be true or false".into())),
    };
    update_subscription(&state, project, &id, None, None, Some(active)).await?;
    let code = if active { "enabled" } else { "disabled" };
    Ok(done(&list_href(project), code))
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    member: Member,
    Path((_, id)): Path<(String, String)>,
) -> UiResult<Response> {
    let sub = project_subscription(&state, &member, &id).await?;
    let project = &member.project.id;
    render(&DeletePage {
        chrome: Chrome::new(&member, Section::Webhooks, None),
        url: sub.url,
        action: sub_href(project, &id, "/delete"),
        cancel_href: list_href(project),
    })
}

pub async fn delete(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    form: CsrfForm<Member>,
) -> UiResult<Response> {
    let project = &form.who.project.id;
    project_subscription(&state, &form.who, &id).await?;
    state.store.delete_subscription(project, &id).await?;
    Ok(done(&list_href(project), "deleted"))
}

pub async fn rotate(State(state): State<AppState>, form: CsrfForm<Member>) -> UiResult<Response> {
    let project = &form.who.project.id;
    let hours: u64 =
        form.fields.text("overlap_hours").parse().map_err(|_| {
            UiError::BadRequest("Choose how long the old secret keeps signing.".into())
        })?;
    rotate_secret(&state, project, hours.saturating_mul(3600)).await?;
    Ok(done(&list_href(project), "rotated"))
}

pub async fn standard(State(state): State<AppState>, form: CsrfForm<Member>) -> UiResult<Response> {
    let project = &form.who.project.id;
    let on = form.fields.get("standard_webhooks") == Some("on");
    crate::api::secret::set_standard_webhooks(&state, project, on).await?;
    Ok(done(&list_href(project), "standard"))
}
