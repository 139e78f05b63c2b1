//! Settings → API keys: create (the key is shown once, only its hash is kept), list (prefix,
//! created, last used) and revoke.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::error::UiResult;
use super::form::CsrfForm;
use super::layout::{done, notice, project_href, render, section_href, when, Chrome, Section};
use super::session::Member;
use crate::app::AppState;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    notice: Option<String>,
}

struct KeyRow {
    prefix: String,
    created: String,
    last_used: String,
    revoke_action: String,
}

#[derive(Template)]
#[template(path = "api_keys/page.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<KeyRow>,
    create_action: String,
    new_key: Option<String>,
}

async fn page(
    state: &AppState,
    member: &Member,
    notice: Option<&'static str>,
    new_key: Option<String>,
) -> UiResult<Response> {
    let project = &member.project.id;
    let keys = state.store.list_api_keys(project).await?;
    render(&KeysPage {
        chrome: Chrome::new(member, Section::ApiKeys, notice),
        keys: keys
            .into_iter()
            .map(|k| KeyRow {
                prefix: k
                    .prefix
                    .map_or_else(|| "(older key)".to_owned(), |p| format!("{p}…")),
                created: when(&k.created_at),
                last_used: k
                    .last_used_at
                    .as_ref()
                    .map_or_else(|| "never".to_owned(), when),
                revoke_action: project_href(project, &format!("settings/api-keys/{}/revoke", k.id)),
            })
            .collect(),
        create_action: section_href(project, Section::ApiKeys),
        new_key,
    })
}

pub async fn list(
    State(state): State<AppState>,
    member: Member,
    Query(query): Query<ListQuery>,
) -> UiResult<Response> {
    page(&state, &member, notice(query.notice.as_deref()), None).await
}

/// Shows the new key in the answer itself: it exists in clear nowhere else.
pub async fn create(State(state): State<AppState>, form: CsrfForm<Member>) -> UiResult<Response> {
    let key = state.store.create_api_key(&form.who.project.id).await?;
    page(&state, &form.who, None, Some(key)).await
}

pub async fn revoke(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    form: CsrfForm<Member>,
) -> UiResult<Response> {
    let project = &form.who.project.id;
    state.store.revoke_api_key(project, &id).await?;
    // This node forgets verified keys at once; others within their cache's 30 seconds.
    state.api_keys.clear();
    Ok(done(&section_href(project, Section::ApiKeys), "revoked"))
}
