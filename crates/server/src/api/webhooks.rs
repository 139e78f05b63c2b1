//! `/api/v1/webhooks…`: project-level subscriptions (beyond Attendee, which has them in its UI
//! only), with the contract's validation messages. Bot-level subscriptions use the same checks
//! through `POST /api/v1/bots`.

use std::collections::HashSet;

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use meetwire_core::time::rest_timestamp;
use meetwire_core::trigger::{parse_trigger, Trigger};
use meetwire_store::{NewSubscription, Subscription, SubscriptionPatch};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Project;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::pagination::{page_body, query_params, PageBody};
use super::path::ApiPath;
use crate::app::AppState;
use crate::delivery::guard::AddressPolicy;

/// A subscription as `POST /api/v1/bots` takes it in `webhooks`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotWebhookBody {
    url: String,
    triggers: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    url: String,
    triggers: Vec<Value>,
    #[serde(default)]
    is_active: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    triggers: Option<Vec<Value>>,
    #[serde(default)]
    is_active: Option<bool>,
}

/// Trigger codes to triggers: non-empty, known, no duplicates. Codes are strings; anything
/// else in the list (`7`, `null`) is an invalid trigger type, named as it was sent.
fn triggers(codes: &[Value]) -> ApiResult<Vec<Trigger>> {
    if codes.is_empty() {
        return Err(ApiError::BadRequest("triggers must not be empty".into()));
    }
    let mut seen = HashSet::new();
    codes
        .iter()
        .map(|code| {
            let trigger = match code {
                Value::String(code) => parse_trigger(code),
                other => Err(format!("Invalid webhook trigger type: {other}")),
            }
            .map_err(ApiError::BadRequest)?;
            if !seen.insert(trigger) {
                return Err(ApiError::BadRequest(format!(
                    "Duplicate webhook trigger type: {}",
                    trigger.code()
                )));
            }
            Ok(trigger)
        })
        .collect()
}

fn url(policy: &AddressPolicy, url: &str) -> ApiResult<String> {
    policy.check_new_url(url).map_err(ApiError::BadRequest)?;
    Ok(url.to_owned())
}

/// Validates the `webhooks` of a bot being created.
pub fn bot_webhooks(
    policy: &AddressPolicy,
    bodies: Vec<BotWebhookBody>,
) -> ApiResult<Vec<NewSubscription>> {
    bodies
        .into_iter()
        .map(|b| {
            let triggers = triggers(&b.triggers)?;
            Ok(NewSubscription {
                url: url(policy, &b.url)?,
                triggers,
                is_active: true,
            })
        })
        .collect()
}

pub fn view(sub: &Subscription) -> Value {
    json!({
        "id": sub.id,
        "url": sub.url,
        "triggers": sub.triggers.iter().map(|t| t.code()).collect::<Vec<_>>(),
        "is_active": sub.is_active,
        "bot_id": sub.bot_id,
        "disabled_reason": sub.disabled_reason,
        "created_at": rest_timestamp(&sub.created_at),
        "updated_at": rest_timestamp(&sub.updated_at),
    })
}

/// Validates and stores a new project-level subscription: the API's and the UI's one path.
pub(crate) async fn create_subscription(
    state: &AppState,
    project: &str,
    url_text: &str,
    codes: &[Value],
    is_active: bool,
) -> ApiResult<Subscription> {
    // Triggers first, then the URL, then (in the store) duplicates, then the maximum: the order
    // Attendee checks them in, so the same bad request gets the same message.
    let triggers = triggers(codes)?;
    let new = NewSubscription {
        url: url(&state.config.delivery.policy, url_text)?,
        triggers,
        is_active,
    };
    Ok(state.store.create_subscription(project, new).await?)
}

/// Validates and applies a change to a subscription: the API's and the UI's one path.
pub(crate) async fn update_subscription(
    state: &AppState,
    project: &str,
    id: &str,
    url_text: Option<&str>,
    codes: Option<&[Value]>,
    is_active: Option<bool>,
) -> ApiResult<Subscription> {
    let policy = &state.config.delivery.policy;
    let triggers = codes.map(triggers).transpose()?;
    let url = match url_text {
        None => None,
        // Repeating the stored URL changes nothing, so the rules for new URLs do not apply
        // (one stored before a rule was added stays patchable).
        Some(u) if state.store.get_subscription(project, id).await?.url == u => None,
        Some(u) => Some(url(policy, u)?),
    };
    let patch = SubscriptionPatch {
        url,
        triggers,
        is_active,
    };
    Ok(state.store.update_subscription(project, id, patch).await?)
}

pub async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<impl IntoResponse> {
    let sub = create_subscription(
        &state,
        &project,
        &body.url,
        &body.triggers,
        body.is_active.unwrap_or(true),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&sub))))
}

pub async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    let params = query_params(&uri);
    let page = params.page()?;
    let bot = params.get("bot_id").map(String::as_str);
    let page = state.store.list_subscriptions(&project, bot, page).await?;
    Ok(Json(page_body(page, &uri, &headers, |s| view(&s))))
}

pub async fn get(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let sub = state.store.get_subscription(&project, &id).await?;
    Ok(Json(view(&sub)))
}

pub async fn patch(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> ApiResult<Json<Value>> {
    let sub = update_subscription(
        &state,
        &project,
        &id,
        body.url.as_deref(),
        body.triggers.as_deref(),
        body.is_active,
    )
    .await?;
    Ok(Json(view(&sub)))
}

pub async fn delete(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_subscription(&project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
