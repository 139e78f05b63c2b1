//! `Authorization: Token <key>` for users and runners. The two kinds of credential live in
//! different tables, so a runner token is simply unknown to the user API and vice versa.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::{ApiError, INVALID_KEY, MALFORMED_AUTH, MISSING_AUTH};
use crate::app::AppState;

/// The project of the calling API key.
pub struct Project(pub String);

/// The calling runner's identity.
pub struct Runner(pub String);

/// The token of a `Token <token>` header, or the contract's 401.
fn token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(MISSING_AUTH))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized(MALFORMED_AUTH))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme == "Token" && !token.is_empty() && !token.contains(' ') => {
            Ok(token)
        }
        _ => Err(ApiError::Unauthorized(MALFORMED_AUTH)),
    }
}

impl FromRequestParts<AppState> for Project {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = token(parts)?;
        if let Some(project) = state.api_keys.get(key) {
            return Ok(Project(project));
        }
        match state.store.authenticate_api_key(key).await? {
            Some(project) => {
                state.api_keys.insert(key, &project);
                touch_in_background(state, key);
                Ok(Project(project))
            }
            None => Err(ApiError::Unauthorized(INVALID_KEY)),
        }
    }
}

/// Records the key's use for the UI's "last used" without delaying the request. It runs when
/// the key is (re)verified, so at most once per key per cache period.
fn touch_in_background(state: &AppState, key: &str) {
    let store = state.store.clone();
    let key = key.to_owned();
    tokio::spawn(async move {
        if let Err(e) = store.touch_api_key(&key).await {
            tracing::warn!(error = %e, "cannot record an API key's last use");
        }
    });
}

impl FromRequestParts<AppState> for Runner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(parts)?;
        if let Some(runner) = state.runner_tokens.get(token) {
            return Ok(Runner(runner));
        }
        match state.store.authenticate_runner(token).await? {
            Some(runner) => {
                state.runner_tokens.insert(token, &runner);
                Ok(Runner(runner))
            }
            None => Err(ApiError::Unauthorized(INVALID_KEY)),
        }
    }
}
