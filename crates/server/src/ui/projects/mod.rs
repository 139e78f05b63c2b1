//! "New project", from the project switcher: a project with its own API key and signing
//! secret, whose first member is the user who made it. Its API key is shown once, on the page
//! that answers the form.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use meetwire_core::signing::WebhookSecret;

use super::error::{UiError, UiResult};
use super::form::CsrfForm;
use super::layout::{render, section_href, Section};
use super::session::SignedIn;
use crate::app::AppState;

/// Longest project name.
const MAX_NAME: usize = 100;

#[derive(Template)]
#[template(path = "projects/new.html")]
struct NewPage<'a> {
    csrf: &'a str,
    name: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "projects/created.html")]
struct CreatedPage {
    name: String,
    api_key: String,
    href: String,
}

pub async fn new_form(user: SignedIn) -> UiResult<Response> {
    render(&NewPage {
        csrf: &user.csrf,
        name: "",
        error: None,
    })
}

pub async fn create(State(state): State<AppState>, form: CsrfForm<SignedIn>) -> UiResult<Response> {
    let name = form.fields.text("name").trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        let page = NewPage {
            csrf: &form.who.csrf,
            name,
            error: Some("A project's name has 1 to 100 characters."),
        };
        return Ok((StatusCode::BAD_REQUEST, Html(page.render()?)).into_response());
    }
    let secret = WebhookSecret::generate();
    let sealed = state.sealing.seal(secret.as_bytes()).map_err(|e| {
        tracing::error!(error = %e, "cannot seal a webhook secret");
        UiError::Internal
    })?;
    let created = state.store.create_project(name, sealed).await?;
    state
        .store
        .add_project_member(&form.who.user_id, &created.project_id)
        .await?;
    render(&CreatedPage {
        name: name.to_owned(),
        api_key: created.api_key,
        href: section_href(&created.project_id, Section::Bots),
    })
}
