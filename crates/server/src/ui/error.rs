//! What a page answers when it cannot show what was asked: an HTML page with the status, never
//! the API's JSON, and never a hint about another project's objects (they are simply not found).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use meetwire_store::StoreError;

use crate::api::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("This page does not exist, or it is not in a project you belong to.")]
    NotFound,
    #[error(
        "This form has expired or did not come from this site. Reload the page and try again."
    )]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error("Something went wrong on the server; it is in the server's log.")]
    Internal,
}

pub type UiResult<T> = Result<T, UiError>;

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound => UiError::NotFound,
            ApiError::BadRequest(m) | ApiError::Conflict(m) => UiError::BadRequest(m),
            ApiError::Rejected { message, .. } => UiError::BadRequest(message),
            ApiError::Unauthorized(_) | ApiError::Internal => UiError::Internal,
        }
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "cannot render a page");
        UiError::Internal
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: String,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title) = match self {
            UiError::NotFound => (StatusCode::NOT_FOUND, "Not found"),
            UiError::Forbidden => (StatusCode::FORBIDDEN, "Forbidden"),
            UiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            UiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Server error"),
        };
        let page = ErrorPage {
            title,
            message: self.to_string(),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, title).into_response(),
        }
    }
}
