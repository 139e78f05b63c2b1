//! Posted forms, read as ordered pairs (checkboxes repeat a name, which `serde_urlencoded`
//! cannot gather), with the CSRF check done by the extractor itself: a handler that takes a
//! [`CsrfForm`] or an [`AnonymousForm`] never runs for a forged post, so nothing changes.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};

use super::error::UiError;
use super::session::{client_address, cookie, HasCsrf, FORM_COOKIE};
use crate::app::AppState;

/// The name of every form's CSRF field.
pub const CSRF_FIELD: &str = "csrf";

/// A form's fields in the order sent.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Fields {
        Fields(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or empty.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Every field, in the order sent.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value of `name` (ticked checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Compares without stopping at the first difference, so the time taken tells nothing.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn body_fields(body: axum::body::Body) -> Result<Fields, Response> {
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|_| UiError::BadRequest("The form could not be read.".into()).into_response())?;
    Ok(Fields::parse(&bytes))
}

/// A form posted by `who` (a signed-in user or project member) with their session's token.
pub struct CsrfForm<A> {
    pub who: A,
    pub fields: Fields,
}

impl<A> FromRequest<AppState> for CsrfForm<A>
where
    A: FromRequestParts<AppState, Rejection = Response> + HasCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let who = A::from_request_parts(&mut parts, state).await?;
        let fields = body_fields(body).await?;
        match fields.get(CSRF_FIELD) {
            Some(token) if same(token, who.csrf()) => Ok(CsrfForm { who, fields }),
            _ => Err(UiError::Forbidden.into_response()),
        }
    }
}

/// A form posted before sign-in (sign-in, first-run setup): its token must equal the one in
/// the form cookie, which another site can neither read nor send (SameSite=Lax).
pub struct AnonymousForm {
    pub fields: Fields,
    pub address: Option<String>,
}

impl FromRequest<AppState> for AnonymousForm {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &AppState) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let expected = cookie(&parts.headers, FORM_COOKIE).map(str::to_owned);
        let address = client_address(&parts);
        let fields = body_fields(body).await?;
        match (fields.get(CSRF_FIELD), expected) {
            (Some(token), Some(expected)) if !token.is_empty() && same(token, &expected) => {
                Ok(AnonymousForm { fields, address })
            }
            _ => Err(UiError::Forbidden.into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_all_kept() {
        let f = Fields::parse(b"url=https%3A%2F%2Fa.b%2F&t=x&t=y&csrf=k");
        assert_eq!(f.get("url"), Some("https://a.b/"));
        assert_eq!(f.all("t"), ["x", "y"]);
        assert_eq!(f.text("missing"), "");
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
