//! `/`: sends a visitor where they can start — sign-up on a fresh instance, sign-in, or the
//! first project they belong to.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};

use super::error::UiResult;
use super::layout::{render, section_href, Section};
use super::session;
use crate::app::AppState;

#[derive(Template)]
#[template(path = "home/no_project.html")]
struct NoProject<'a> {
    email: &'a str,
    csrf: &'a str,
}

pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> UiResult<Response> {
    let Some(user) = session::current(&state, &headers).await? else {
        let to = if state.store.any_user().await? {
            "/login"
        } else {
            "/setup"
        };
        return Ok(Redirect::to(to).into_response());
    };
    let projects = state.store.user_projects(&user.user_id).await?;
    match projects.first() {
        Some(p) => Ok(Redirect::to(&section_href(&p.id, Section::Bots)).into_response()),
        None => render(&NoProject {
            email: &user.email,
            csrf: &user.csrf,
        }),
    }
}
