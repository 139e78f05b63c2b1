//! `/api/v1/webhook_deliveries…` (beyond Attendee, which shows its log in the UI only): the
//! delivery log with every attempt, and resend — one delivery, or every failed one since a time.

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::Json;
use chrono::{DateTime, Utc};
use meetwire_core::time::rest_timestamp;
use meetwire_core::trigger::parse_trigger;
use meetwire_store::{DeliveryDetail, DeliveryFilter, DeliveryStatus, DeliverySummary};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Project;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::pagination::{page_body, query_params, PageBody, QueryParams};
use super::path::ApiPath;
use crate::app::AppState;

pub fn summary(d: &DeliverySummary) -> Value {
    let time = |t: &Option<_>| t.as_ref().map(rest_timestamp);
    json!({
        "idempotency_key": d.idempotency_key,
        "webhook_id": d.webhook_id,
        "url": d.url,
        "bot_id": d.bot_id,
        "calendar_id": d.calendar_id,
        "trigger": d.trigger.code(),
        "status": d.status.code(),
        "attempt_count": d.attempts,
        "created_at": rest_timestamp(&d.created_at),
        "last_attempt_at": time(&d.last_attempt_at),
        "succeeded_at": time(&d.succeeded_at),
        "next_attempt_at": time(&d.next_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
    })
}

fn detail(d: DeliveryDetail) -> Value {
    let mut view = summary(&d.summary);
    view["payload"] = d.payload;
    view["attempts"] = d
        .attempts
        .iter()
        .map(|a| {
            json!({
                "attempted_at": rest_timestamp(&a.attempted_at),
                "duration_ms": a.duration_ms,
                "status_code": a.status_code,
                "error_kind": a.error_kind,
                "error_message": a.error_message,
                "response_body": a.response_body,
            })
        })
        .collect();
    view
}

pub(crate) fn filter(params: &QueryParams) -> ApiResult<DeliveryFilter> {
    let status = params
        .get("status")
        .map(|s| {
            DeliveryStatus::parse(s)
                .ok_or_else(|| ApiError::BadRequest(format!("Invalid delivery status: {s}")))
        })
        .transpose()?;
    let trigger = params
        .get("trigger")
        .map(|t| parse_trigger(t).map_err(ApiError::BadRequest))
        .transpose()?;
    Ok(DeliveryFilter {
        bot_id: params.get("bot_id").cloned(),
        calendar_id: params.get("calendar_id").cloned(),
        webhook_id: params.get("webhook_id").cloned(),
        status,
        trigger,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    let params = query_params(&uri);
    let filter = filter(&params)?;
    let page = state
        .store
        .list_deliveries(&project, &filter, params.page()?)
        .await?;
    Ok(Json(page_body(page, &uri, &headers, |d| summary(&d))))
}

pub async fn get(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(detail(
        state.store.get_delivery(&project, &key).await?,
    )))
}

pub async fn resend(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    state.store.resend_delivery(&project, &key).await?;
    Ok(Json(detail(
        state.store.get_delivery(&project, &key).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkResendBody {
    since: String,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    calendar_id: Option<String>,
    #[serde(default)]
    webhook_id: Option<String>,
    #[serde(default)]
    trigger: Option<String>,
}

/// `since` as a full time with its offset, or a date (its midnight, UTC).
pub(crate) fn parse_since(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.to_utc());
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// Resends every failed delivery created (its event stored) at or after `since` that matches
/// the filters.
pub async fn resend_failed(
    State(state): State<AppState>,
    Project(project): Project,
    ApiJson(body): ApiJson<BulkResendBody>,
) -> ApiResult<Json<Value>> {
    let since = parse_since(&body.since).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "since is not an ISO 8601 time (2026-11-27T09:00:00Z) or date (2026-11-27): {}",
            body.since
        ))
    })?;
    let filter = DeliveryFilter {
        bot_id: body.bot_id,
        calendar_id: body.calendar_id,
        webhook_id: body.webhook_id,
        status: Some(DeliveryStatus::Failure),
        trigger: body
            .trigger
            .as_deref()
            .map(|t| parse_trigger(t).map_err(ApiError::BadRequest))
            .transpose()?,
    };
    let resent = state
        .store
        .resend_failed_deliveries(&project, &filter, since)
        .await?;
    Ok(Json(json!({ "resent": resent })))
}
