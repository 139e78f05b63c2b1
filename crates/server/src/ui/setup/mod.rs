//! `/setup`: the first sign-up of a fresh instance, open only while no user exists. It asks for
//! the setup code `serve` printed, so nobody else on the network can claim the instance; the
//! new user joins the first project and is signed in.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use meetwire_store::StoreError;

use super::error::{UiError, UiResult};
use super::form::{AnonymousForm, CSRF_FIELD};
use super::login::{form_token, with_cookie};
use super::password;
use super::session::session_cookie;
use crate::app::AppState;

/// Longest email accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

#[derive(Template)]
#[template(path = "setup/page.html")]
struct SetupPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
}

/// A plausible email address: something@something, no spaces, not too long.
pub fn check_email(email: &str) -> Result<(), &'static str> {
    let plausible = email.len() <= MAX_EMAIL_LEN
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && !domain.is_empty());
    if plausible {
        Ok(())
    } else {
        Err("Enter an email address such as you@example.com.")
    }
}

pub async fn show(State(state): State<AppState>, headers: HeaderMap) -> UiResult<Response> {
    if state.store.any_user().await? {
        return Ok(Redirect::to("/login").into_response());
    }
    let (csrf, set) = form_token(&state, &headers);
    let page = SetupPage {
        csrf: &csrf,
        email: "",
        error: None,
    };
    Ok(with_cookie(StatusCode::OK, page.render()?, set))
}

pub async fn submit(State(state): State<AppState>, form: AnonymousForm) -> UiResult<Response> {
    let fields = &form.fields;
    let email = fields.text("email").trim();
    let address = form.address.as_deref();
    let refuse = |status: StatusCode, error: &str| -> UiResult<Response> {
        let page = SetupPage {
            csrf: fields.text(CSRF_FIELD),
            email,
            error: Some(error),
        };
        Ok((status, Html(page.render()?)).into_response())
    };
    // Guessing setup codes counts against the same limits as guessing passwords.
    if state.sign_ins.blocked("setup", address) {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong setup codes. Wait a few minutes and try again.",
        );
    }
    if let Err(message) = check_email(email) {
        return refuse(StatusCode::BAD_REQUEST, message);
    }
    let typed = fields.text("password").to_owned();
    let hashed = tokio::task::spawn_blocking(move || password::hash(&typed))
        .await
        .map_err(|_| UiError::Internal)?;
    let hash = match hashed {
        Ok(hash) => hash,
        Err(e @ (password::PasswordError::TooShort | password::PasswordError::TooLong)) => {
            return refuse(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot hash a password");
            return Err(UiError::Internal);
        }
    };
    let code = fields.text("setup_code").trim();
    let user_id = match state.store.sign_up_first_user(code, email, &hash).await {
        Ok(id) => id,
        Err(StoreError::Conflict(_)) => return Ok(Redirect::to("/login").into_response()),
        Err(StoreError::Invalid(message)) => {
            state.sign_ins.failed("setup", address);
            return refuse(StatusCode::BAD_REQUEST, &message);
        }
        Err(e) => return Err(e.into()),
    };
    let session = state.store.create_session(&user_id).await?;
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(&state, &session.token));
    Ok(response)
}
