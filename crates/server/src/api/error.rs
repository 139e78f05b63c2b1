//! The API's error shapes, mapped once: `{"error": …}` with 400/404/409/413, and the contract's
//! 401 bodies with `WWW-Authenticate: Token`. Storage errors become these here and nowhere else.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meetwire_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("Not found.")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("internal error")]
    Internal,
}

pub type ApiResult<T> = Result<T, ApiError>;

pub const MISSING_AUTH: &str = "Missing Authorization header";
pub const MALFORMED_AUTH: &str =
    "Invalid Authorization header. Should have this format: Token <api_key>";
pub const INVALID_KEY: &str = "Invalid or disabled API key";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Transition(t) => ApiError::BadRequest(t.to_string()),
            full if full.is_disk_full() => ApiError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "The server's disk is full: nothing was stored. Try again once space \
                          is freed."
                    .into(),
            },
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Unauthorized(detail) => {
                let body = Json(json!({ "detail": detail }));
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Token")],
                    body,
                )
                    .into_response();
            }
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, self.to_string()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            ApiError::Rejected { status, message } => (*status, message.clone()),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()),
        };
        (status, Json(json!({ "error": body }))).into_response()
    }
}
