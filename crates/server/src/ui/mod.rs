//! The web UI: server-rendered pages on the API's port, for people who manage webhooks without
//! writing code. Each page is a module with its templates beside it; pages call the same
//! validation as the REST API, so a form and a request get the same messages.

mod api_keys;
mod assets;
mod bot;
mod bots;
mod calendars;
mod dashboard;
mod deliveries;
mod delivery_list;
mod error;
mod form;
mod home;
mod layout;
mod login;
pub mod password;
mod projects;
mod session;
pub mod setup;
pub mod throttle;
mod webhooks;

use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    let settings = Router::new()
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/new", get(webhooks::new_form))
        .route(
            "/webhooks/{id}",
            get(webhooks::edit_form).post(webhooks::update),
        )
        .route("/webhooks/{id}/active", post(webhooks::set_active))
        .route(
            "/webhooks/{id}/delete",
            get(webhooks::confirm_delete).post(webhooks::delete),
        )
        .route("/signing-secret/rotate", post(webhooks::rotate))
        .route("/standard-webhooks", post(webhooks::standard))
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api-keys/{id}/revoke", post(api_keys::revoke));
    let project = Router::new()
        .route("/bots", get(bots::list).post(bots::create))
        .route("/bots/new", get(bots::new_form))
        .route("/bots/{bot}", get(bot::page))
        .route("/bots/{bot}/live", get(bot::live))
        .route("/bots/{bot}/deliveries/{key}/resend", post(bot::resend))
        .route("/calendars", get(calendars::list))
        .route("/calendars/{calendar}", get(calendars::page))
        .route("/calendars/{calendar}/sync", post(calendars::sync))
        .route("/dashboard", get(dashboard::show))
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/resend-failed", post(deliveries::resend_failed))
        .route("/deliveries/{key}/resend", post(deliveries::resend))
        .nest("/settings", settings);
    Router::new()
        .route("/", get(home::index))
        .route("/login", get(login::show).post(login::submit))
        .route("/login/link/{token}", get(login::link))
        .route("/logout", post(login::sign_out))
        .route("/setup", get(setup::show).post(setup::submit))
        .route("/projects", post(projects::create))
        .route("/projects/new", get(projects::new_form))
        .route("/ui/assets/{name}", get(assets::serve))
        .nest("/projects/{project}", project)
        .layer(middleware::map_response(protect))
}

/// Headers every UI answer carries: no script or style but our own (an injected `<script>`
/// would not run even if escaping failed), no framing, and no caching of pages that show
/// secrets.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
