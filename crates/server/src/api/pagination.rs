//! Cursor pagination as Attendee's API shows it: `{"next", "previous", "results"}` with absolute
//! URLs whose `cursor` parameter is opaque to clients.

use axum::http::{HeaderMap, Uri};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use meetwire_store::{Cursor, Page, PageRequest};
use serde::Serialize;

use super::error::ApiError;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// The page a request asks for, from its `cursor` and `page_size` parameters.
fn page_request(cursor: Option<&str>, page_size: Option<u32>) -> Result<PageRequest, ApiError> {
    let limit = match page_size {
        None => DEFAULT_PAGE_SIZE,
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}"
            )))
        }
    };
    let after = cursor.map(decode).transpose()?;
    Ok(PageRequest { after, limit })
}

/// A cursor as the opaque text of a `cursor` parameter.
pub(crate) fn encode(cursor: Cursor) -> String {
    let dir = if cursor.backwards { 'p' } else { 'n' };
    URL_SAFE_NO_PAD.encode(format!("{dir}{}", cursor.seq))
}

pub(crate) fn decode(text: &str) -> Result<Cursor, ApiError> {
    let invalid = || ApiError::BadRequest("Invalid cursor".into());
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let (backwards, seq) = match text.split_at_checked(1) {
        Some(("n", seq)) => (false, seq),
        Some(("p", seq)) => (true, seq),
        _ => return Err(invalid()),
    };
    let seq = seq.parse().map_err(|_| invalid())?;
    Ok(Cursor { seq, backwards })
}

/// A request's query parameters, in order, repeated keys kept.
pub struct QueryParams(Vec<(String, String)>);

pub fn query_params(uri: &Uri) -> QueryParams {
    let query = uri.query().unwrap_or("");
    QueryParams(
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

impl QueryParams {
    /// Parameters that are not in a URL (a posted form's fields), empty values left out as a
    /// form's "any" choice sends them.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> QueryParams {
        QueryParams(
            pairs
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Without the parameters sent empty (a form's "any" choice).
    pub fn without_empty(self) -> QueryParams {
        QueryParams(self.0.into_iter().filter(|(_, v)| !v.is_empty()).collect())
    }

    /// The page asked for by `cursor`, `default_size` rows unless `page_size` says otherwise.
    pub fn page_or(&self, default_size: u32) -> Result<PageRequest, ApiError> {
        let mut page = self.page()?;
        if self.get("page_size").is_none() {
            page.limit = default_size;
        }
        Ok(page)
    }

    /// The page asked for by `cursor` and `page_size`.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let page_size = self
            .get("page_size")
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| ApiError::BadRequest(format!("Invalid page_size: {v}")))
            })
            .transpose()?;
        page_request(self.get("cursor").map(String::as_str), page_size)
    }
}

#[derive(Serialize)]
pub struct PageBody<T> {
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

/// Builds the response body, with links that repeat the request's other parameters.
pub fn page_body<T, U>(
    page: Page<T>,
    uri: &Uri,
    headers: &HeaderMap,
    render: impl FnMut(T) -> U,
) -> PageBody<U> {
    let link = |cursor: Option<Cursor>| cursor.map(|c| link_to(uri, headers, &encode(c)));
    PageBody {
        next: link(page.next),
        previous: link(page.previous),
        results: page.items.into_iter().map(render).collect(),
    }
}

fn link_to(uri: &Uri, headers: &HeaderMap, cursor: &str) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    let mut query: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("cursor="))
        .map(str::to_owned)
        .collect();
    query.push(format!("cursor={cursor}"));
    format!("{scheme}://{host}{}?{}", uri.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for c in [
            Cursor {
                seq: 5,
                backwards: false,
            },
            Cursor {
                seq: -3,
                backwards: true,
            },
        ] {
            assert_eq!(decode(&encode(c)).unwrap(), c);
        }
        assert!(decode("!!").is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("x12")).is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("n1x")).is_err());
        assert!(page_request(None, Some(0)).is_err());
        assert!(page_request(None, Some(MAX_PAGE_SIZE + 1)).is_err());
    }

    #[test]
    fn links_keep_filters_and_replace_the_cursor() {
        let uri: Uri = "/api/v1/bots?states=ended&cursor=abc".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.test:8077".parse().unwrap());
        assert_eq!(
            link_to(&uri, &headers, "xyz"),
            "http://example.test:8077/api/v1/bots?states=ended&cursor=xyz"
        );
    }
}
