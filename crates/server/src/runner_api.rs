//! `/runner/v1/…`: how an external runner (the process that sits in the meeting) claims bots,
//! reports what happens, and heartbeats. Authenticated with runner tokens, which the user API
//! does not accept (and the other way round).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use meetwire_core::record::RunnerRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::auth::Runner;
use crate::api::error::{ApiError, ApiResult};
use crate::api::json::ApiJson;
use crate::api::path::ApiPath;
use crate::app::AppState;
use crate::runner::{leave_requested, report, runner_view};

/// Most records one batch may carry.
pub const MAX_BATCH: usize = 1000;

pub async fn claim(State(state): State<AppState>, Runner(runner): Runner) -> ApiResult<Response> {
    Ok(match state.store.claim_bot(&runner, false).await? {
        Some(bot) => Json(json!({ "bot": runner_view(&bot) })).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsBody {
    records: Vec<RunnerRecord>,
    #[serde(default)]
    cursor: Option<Value>,
}

pub async fn records(
    State(state): State<AppState>,
    Runner(runner): Runner,
    ApiPath(bot_id): ApiPath<String>,
    ApiJson(body): ApiJson<RecordsBody>,
) -> ApiResult<Json<Value>> {
    if body.records.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "A batch may hold at most {MAX_BATCH} records"
        )));
    }
    let outcome = report(&state, &runner, &bot_id, body.records, body.cursor).await?;
    Ok(Json(json!({
        "stored": outcome.stored,
        "duplicates": outcome.duplicates,
        "state": outcome.state,
        "leave_requested": leave_requested(outcome.state),
    })))
}

pub async fn heartbeat(
    State(state): State<AppState>,
    Runner(runner): Runner,
    ApiPath(bot_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let bot = state.store.heartbeat(&runner, &bot_id).await?;
    Ok(Json(runner_view(&bot)))
}
