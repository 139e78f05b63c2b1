//! The user-facing REST API (`/api/v1/…`), Attendee-compatible.

pub mod auth;
pub mod bots;
pub mod calendars;
pub mod credentials_cache;
pub mod deliveries;
pub mod error;
pub mod json;
pub mod pagination;
pub mod path;
pub mod secret;
pub mod views;
pub mod webhooks;

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
        .route("/bots/{id}/delete_data", post(bots::delete_data))
        .route("/bots/{id}/transcript", get(bots::transcript))
        .route("/bots/{id}/chat_messages", get(bots::chat_messages))
        .route(
            "/bots/{id}/participant_events",
            get(bots::participant_events),
        )
        .route("/bots/{id}/logs", get(bots::logs))
        .route("/calendars", get(calendars::list).post(calendars::create))
        .route(
            "/calendars/{id}",
            get(calendars::get)
                .patch(calendars::patch)
                .delete(calendars::delete),
        )
        .route("/calendars/{id}/sync", post(calendars::sync))
        .route("/calendar_events", get(calendars::events))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::patch)
                .delete(webhooks::delete),
        )
        .route("/webhook_secret", get(secret::get))
        .route("/webhook_secret/rotate", post(secret::rotate))
        .route(
            "/webhook_settings",
            get(secret::get_settings).patch(secret::patch_settings),
        )
        .route("/webhook_deliveries", get(deliveries::list))
        .route(
            "/webhook_deliveries/resend",
            post(deliveries::resend_failed),
        )
        .route("/webhook_deliveries/{key}", get(deliveries::get))
        .route("/webhook_deliveries/{key}/resend", post(deliveries::resend))
}
