//! Who is signed in: a session cookie whose token the database knows (only its hash), refused
//! when revoked or idle for longer than [`IDLE_LIMIT`]; and which project a page is about,
//! refused (404) unless the user is a member of it. A page asked for without a live session
//! sends the browser to sign in, and back to the page afterwards.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, RawPathParams};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use meetwire_core::time::now;
use meetwire_store::ProjectSummary;

use super::error::{UiError, UiResult};
use crate::app::AppState;

pub const SESSION_COOKIE: &str = "meetwire_session";
/// The CSRF token of forms shown before sign-in (double-submit: cookie and field must agree).
pub const FORM_COOKIE: &str = "meetwire_form";
/// A session unused for this long is refused.
pub const IDLE_LIMIT: Duration = Duration::days(14);
/// A session's last use is written at most this often (it is a write on every page otherwise).
const TOUCH_EVERY: Duration = Duration::minutes(10);
/// How long the browser keeps the cookie; the server's idle limit is what ends a session.
const COOKIE_MAX_AGE_SECONDS: i64 = 400 * 24 * 3600;

/// The value of cookie `name` in the request, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, and Secure when the server's public URL is
/// https. An empty value with age 0 deletes the cookie.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
}

pub fn session_cookie(state: &AppState, token: &str) -> HeaderValue {
    set_cookie(state, SESSION_COOKIE, token, COOKIE_MAX_AGE_SECONDS)
}

/// The client's address, when the server was started with connection info.
pub fn client_address(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// A signed-in user, from a live session.
pub struct SignedIn {
    pub user_id: String,
    pub email: String,
    pub csrf: String,
    pub token: String,
}

/// The session of the request's cookie, if live; refreshes its last use now and then.
pub async fn current(state: &AppState, headers: &HeaderMap) -> UiResult<Option<SignedIn>> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let at = now();
    let Some(info) = state.store.session(token, at - IDLE_LIMIT).await? else {
        return Ok(None);
    };
    if at - info.last_seen_at > TOUCH_EVERY {
        state.store.touch_session(token).await?;
    }
    Ok(Some(SignedIn {
        user_id: info.user_id,
        email: info.email,
        csrf: info.csrf_token,
        token: token.to_owned(),
    }))
}

/// Where a request without a live session goes: sign-in, then back to the page it asked for
/// (a form's target is not a page, so a form comes back to the start).
fn to_sign_in(parts: &Parts) -> Response {
    // Inside a nested router the URI lacks its prefix; the original one has it.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |OriginalUri(uri)| uri);
    let target = match (parts.method == Method::GET, uri.path_and_query()) {
        (true, Some(pq)) => format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(pq.as_str().as_bytes()).collect::<String>()
        ),
        _ => "/login".to_owned(),
    };
    Redirect::to(&target).into_response()
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current(state, &parts.headers).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(to_sign_in(parts)),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A signed-in member of the project named in the path (`/projects/{project}/…`).
pub struct Member {
    pub user: SignedIn,
    pub project: ProjectSummary,
    /// Every project the user belongs to (for the switcher).
    pub projects: Vec<ProjectSummary>,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let user = SignedIn::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| UiError::NotFound.into_response())?;
        let Some((_, wanted)) = params.iter().find(|(k, _)| *k == "project") else {
            return Err(UiError::NotFound.into_response());
        };
        let projects = state
            .store
            .user_projects(&user.user_id)
            .await
            .map_err(|e| UiError::from(e).into_response())?;
        let Some(project) = projects.iter().find(|p| p.id == wanted).cloned() else {
            return Err(UiError::NotFound.into_response());
        };
        Ok(Member {
            user,
            project,
            projects,
        })
    }
}

/// Something that carries the CSRF token its forms must send back.
pub trait HasCsrf {
    fn csrf(&self) -> &str;
}

impl HasCsrf for SignedIn {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl HasCsrf for Member {
    fn csrf(&self) -> &str {
        &self.user.csrf
    }
}
