//! The user-facing REST API (`/api/v1/…`), Attendee-compatible.

pub mod auth;
pub mod bots;
pub mod error;
pub mod json;
pub mod pagination;
pub mod views;

use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/bots", get(bots::list).post(bots::create))
        .route(
            "/bots/{id}",
            get(bots::get).patch(bots::patch).delete(bots::delete),
        )
        .route("/bots/{id}/leave", post(bots::leave))
        .route("/bots/{id}/transcript", get(bots::transcript))
        .route("/bots/{id}/chat_messages", get(bots::chat_messages))
        .route(
            "/bots/{id}/participant_events",
            get(bots::participant_events),
        )
        .route("/bots/{id}/logs", get(bots::logs))
}
