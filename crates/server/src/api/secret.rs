//! `/api/v1/webhook_secret` and `/api/v1/webhook_settings`: reading and rotating the project's
//! signing secret, and switching the Standard Webhooks headers. A rotation keeps the old secret
//! signing `webhook-signature` beside the new one for an overlap window, so receivers can
//! switch without dropping a delivery.

use axum::extract::State;
use axum::Json;
use meetwire_core::signing::WebhookSecret;
use meetwire_core::time::{now, rest_timestamp, Timestamp};
use meetwire_store::{ProjectSettings, SealedSecret};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Project;
use super::error::{ApiError, ApiResult};
use super::json::{ApiJson, OptionalApiJson};
use crate::app::AppState;

/// Default and longest overlap of a rotation.
pub(crate) const DEFAULT_OVERLAP_SECONDS: u64 = 24 * 3600;
pub(crate) const MAX_OVERLAP_SECONDS: u64 = 7 * 24 * 3600;

/// A project's signing secrets: the active one opened, and those still signing beside it.
pub(crate) struct Secrets {
    pub active: WebhookSecret,
    pub created_at: Timestamp,
    pub retiring: Vec<SealedSecret>,
}

pub(crate) async fn secrets(state: &AppState, project: &str) -> ApiResult<Secrets> {
    let mut sealed = state.store.webhook_secrets(project).await?;
    if sealed.is_empty() {
        return Err(ApiError::NotFound);
    }
    let active = sealed.remove(0);
    let bytes = state.sealing.open(&active.sealed).map_err(|e| {
        tracing::error!(error = %e, "cannot open a webhook secret");
        ApiError::Internal
    })?;
    Ok(Secrets {
        active: WebhookSecret::from_slice(&bytes).ok_or(ApiError::Internal)?,
        created_at: active.created_at,
        retiring: sealed,
    })
}

async fn secret_view(state: &AppState, project: &str) -> ApiResult<Value> {
    let Secrets {
        active: secret,
        created_at,
        retiring,
    } = secrets(state, project).await?;
    let retiring: Vec<Value> = retiring
        .iter()
        .map(|s| {
            json!({"created_at": rest_timestamp(&s.created_at),
                        "expires_at": s.expires_at.as_ref().map(rest_timestamp)})
        })
        .collect();
    Ok(json!({
        "secret": secret.to_base64(),
        "whsec": secret.to_whsec(),
        "created_at": rest_timestamp(&created_at),
        "retiring": retiring,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Project(project): Project,
) -> ApiResult<Json<Value>> {
    Ok(Json(secret_view(&state, &project).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[serde(default)]
    overlap_seconds: Option<u64>,
}

/// Makes a new secret active; the old one keeps signing for `overlap` seconds (at most a
/// week): the API's and the UI's one path.
pub(crate) async fn rotate_secret(state: &AppState, project: &str, overlap: u64) -> ApiResult<()> {
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::BadRequest(format!(
            "overlap_seconds must be at most {MAX_OVERLAP_SECONDS}"
        )));
    }
    let secret = WebhookSecret::generate();
    let sealed = state.sealing.seal(secret.as_bytes()).map_err(|e| {
        tracing::error!(error = %e, "cannot seal a webhook secret");
        ApiError::Internal
    })?;
    let until = now() + chrono::Duration::seconds(overlap as i64);
    state
        .store
        .rotate_webhook_secret(project, sealed, until)
        .await?;
    state.keys.invalidate(project);
    Ok(())
}

pub async fn rotate(
    State(state): State<AppState>,
    Project(project): Project,
    // The body is optional: an empty one rotates with the default overlap.
    OptionalApiJson(body): OptionalApiJson<RotateBody>,
) -> ApiResult<Json<Value>> {
    let overlap = body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    rotate_secret(&state, &project, overlap).await?;
    Ok(Json(secret_view(&state, &project).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsBody {
    standard_webhooks: bool,
}

fn settings_view(settings: ProjectSettings) -> Value {
    json!({ "standard_webhooks": settings.standard_webhooks })
}

pub async fn get_settings(
    State(state): State<AppState>,
    Project(project): Project,
) -> ApiResult<Json<Value>> {
    Ok(Json(settings_view(
        state.store.project_settings(&project).await?,
    )))
}

/// Switches the Standard Webhooks headers: the API's and the UI's one path.
pub(crate) async fn set_standard_webhooks(
    state: &AppState,
    project: &str,
    standard_webhooks: bool,
) -> ApiResult<ProjectSettings> {
    let settings = state
        .store
        .update_project_settings(project, ProjectSettings { standard_webhooks })
        .await?;
    state.keys.invalidate(project);
    Ok(settings)
}

pub async fn patch_settings(
    State(state): State<AppState>,
    Project(project): Project,
    ApiJson(body): ApiJson<SettingsBody>,
) -> ApiResult<Json<Value>> {
    let settings = set_standard_webhooks(&state, &project, body.standard_webhooks).await?;
    Ok(Json(settings_view(settings)))
}
