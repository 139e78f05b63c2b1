//! JSON body extractors whose every rejection (wrong content type, oversize body, a body that
//! is not an object, integers we could not carry exactly, malformed JSON, wrong types, unknown
//! fields) is answered in the API's error shape rather than axum's plain-text default. Integer
//! literals are read as Python reads them (`exact_integers`), so `-0` is the integer 0.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use meetwire_core::exact_integers::as_python_reads;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::error::Category;

use super::error::ApiError;

/// A required JSON object body.
pub struct ApiJson<T>(pub T);

/// A JSON object body that may be left out: an empty body is `T::default()`.
pub struct OptionalApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (json, bytes) = read(req, state).await?;
        parse(json, &bytes).map(ApiJson)
    }
}

impl<S, T> FromRequest<S> for OptionalApiJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (json, bytes) = read(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalApiJson(T::default()));
        }
        parse(json, &bytes).map(OptionalApiJson)
    }
}

/// Whether the request says it carries JSON, and its body.
async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<(bool, Bytes), ApiError> {
    let json = is_json(req.headers());
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|rejection| refused(rejection.status(), rejection.body_text()))?;
    Ok((json, bytes))
}

fn parse<T: DeserializeOwned>(json: bool, bytes: &[u8]) -> Result<T, ApiError> {
    if !json {
        let message = "Expected request with `Content-Type: application/json`";
        return Err(invalid(message.to_owned()));
    }
    // Serde fills a struct from an array too, field by field; the contract takes objects only.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid(
            "Invalid request body: expected a JSON object".to_owned(),
        ));
    }
    let text = match as_python_reads(bytes) {
        Ok(text) => text,
        // Malformed JSON is named as such even if the scan met a large integer first.
        Err(inexact) => {
            serde_json::from_slice::<IgnoredAny>(bytes).map_err(parse_error)?;
            return Err(invalid(format!("Invalid request body: {inexact}")));
        }
    };
    serde_json::from_slice(&text).map_err(parse_error)
}

fn parse_error(e: serde_json::Error) -> ApiError {
    invalid(match e.classify() {
        Category::Data => format!("Invalid request body: {e}"),
        Category::Syntax | Category::Eof | Category::Io => format!("Malformed JSON: {e}"),
    })
}

/// `application/json` or any `application/…+json`, parameters ignored (as axum's `Json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(Ok(value)) = headers.get(header::CONTENT_TYPE).map(|v| v.to_str()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn invalid(message: String) -> ApiError {
    refused(StatusCode::BAD_REQUEST, message)
}

/// Oversize bodies keep their 413; everything else about the body is the client's 400.
fn refused(status: StatusCode, message: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        let message = "Request body is too large".to_owned();
        return ApiError::Rejected { status, message };
    }
    ApiError::Rejected {
        status: StatusCode::BAD_REQUEST,
        message,
    }
}
