//! `/login` and `/logout`. A failed sign-in always gets the same message, whether the email is
//! unknown or the password wrong (an unknown email is checked against a decoy hash so it takes
//! as long), and too many failures per account or address stop sign-in for a while.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use meetwire_core::ids::new_token;
use serde::Deserialize;

use super::error::{UiError, UiResult};
use super::form::{AnonymousForm, CsrfForm};
use super::password;
use super::session::{
    self, cookie, session_cookie, set_cookie, SignedIn, FORM_COOKIE, SESSION_COOKIE,
};
use crate::app::AppState;

const WRONG: &str = "Wrong email or password.";
const THROTTLED: &str = "Too many failed sign-ins. Wait a few minutes and try again.";

#[derive(Template)]
#[template(path = "login/page.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    email: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Where to go after signing in: a path on this site only (never `//host` or a full URL).
/// Only printable ASCII: browsers drop tabs and newlines from a URL, so `/\t/evil.example`
/// would become `//evil.example`, and a path is sent percent-encoded anyway (anything else
/// could not be a `Location` header).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.chars().all(|c| c.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/",
    }
}

/// The form cookie's token, made now if the browser has none; with the header to set it.
pub fn form_token(state: &AppState, headers: &HeaderMap) -> (String, Option<header::HeaderValue>) {
    match cookie(headers, FORM_COOKIE) {
        Some(token) if !token.is_empty() => (token.to_owned(), None),
        _ => {
            let token = new_token();
            let set = set_cookie(state, FORM_COOKIE, &token, 24 * 3600);
            (token, Some(set))
        }
    }
}

/// A page with its status and, when the browser had no form cookie, the header that sets it.
pub fn with_cookie(status: StatusCode, html: String, set: Option<header::HeaderValue>) -> Response {
    let mut response = (status, axum::response::Html(html)).into_response();
    if let Some(set) = set {
        response.headers_mut().append(header::SET_COOKIE, set);
    }
    response
}

pub async fn show(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
) -> UiResult<Response> {
    let next = safe_next(query.next.as_deref());
    if session::current(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(next).into_response());
    }
    if !state.store.any_user().await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    let (csrf, set) = form_token(&state, &headers);
    let page = LoginPage {
        csrf: &csrf,
        email: "",
        next,
        error: None,
    };
    Ok(with_cookie(StatusCode::OK, page.render()?, set))
}

pub async fn submit(State(state): State<AppState>, form: AnonymousForm) -> UiResult<Response> {
    let fields = &form.fields;
    let email = fields.text("email").trim();
    let next = safe_next(fields.get("next"));
    let address = form.address.as_deref();
    let refuse = |status: StatusCode, error: &str| -> UiResult<Response> {
        let page = LoginPage {
            csrf: fields.text(super::form::CSRF_FIELD),
            email,
            next,
            error: Some(error),
        };
        Ok((status, axum::response::Html(page.render()?)).into_response())
    };
    if state.sign_ins.blocked(email, address) {
        return refuse(StatusCode::TOO_MANY_REQUESTS, THROTTLED);
    }
    let user = state.store.user_by_email(email).await?;
    let hash = user.as_ref().map_or_else(
        || password::decoy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let typed = fields.text("password").to_owned();
    let matches = tokio::task::spawn_blocking(move || password::verify(&typed, &hash))
        .await
        .map_err(|_| UiError::Internal)?;
    let Some(user) = user.filter(|_| matches) else {
        state.sign_ins.failed(email, address);
        return refuse(StatusCode::UNAUTHORIZED, WRONG);
    };
    state.sign_ins.succeeded(email);
    let session = state.store.create_session(&user.id).await?;
    let mut response = Redirect::to(next).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(&state, &session.token));
    Ok(response)
}

pub async fn sign_out(
    State(state): State<AppState>,
    form: CsrfForm<SignedIn>,
) -> UiResult<Response> {
    state.store.revoke_session(&form.who.token).await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", 0),
    );
    Ok(response)
}

/// `/login/link/{token}`: a one-time sign-in link (the demo prints one). It opens a session
/// once; used again or after it expired, it says so and offers the sign-in form.
pub async fn link(State(state): State<AppState>, Path(token): Path<String>) -> UiResult<Response> {
    let Some(user_id) = state.store.use_sign_in_link(&token).await? else {
        return Err(UiError::BadRequest(
            "This sign-in link was already used or has expired. Sign in with your password.".into(),
        ));
    };
    let session = state.store.create_session(&user_id).await?;
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(&state, &session.token));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_on_this_site_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/projects/p/bots?tab=x")),
            "/projects/p/bots?tab=x"
        );
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/é",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
