//! What the Google and Microsoft clients share: the OAuth2 refresh-token grant, JSON pages read
//! with a bearer token, throttling and server errors retried with backoff inside one sync (so a
//! busy provider delays a sync but never disconnects a calendar), and the answers that mean the
//! credentials are gone (disconnect) or the sync token is stale (start over).
//!
//! The base URLs are configuration, trusted like the rest of it; a link a provider returns
//! (Graph's `@odata.nextLink`) is followed only on the configured origin, so the bearer token is
//! never sent anywhere else. No redirect is followed, for the same reason.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Duration as Span;
use meetwire_core::time::Timestamp;
use meetwire_store::{SyncOutcome, SyncedEvent};
use reqwest::header::{HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::ical::Window;

/// Largest answer read from a provider; a bigger one is refused.
const MAX_ANSWER_BYTES: usize = 10 * 1024 * 1024;
/// Most pages one sync reads: a provider that pages forever disconnects the calendar.
const MAX_PAGES: usize = 500;
/// Most events one sync may report.
const MAX_EVENTS: usize = 50_000;
const TIMEOUT: Duration = Duration::from_secs(30);
/// Waits before the 2nd, 3rd and 4th try of a throttled or failed request.
const BACKOFF: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
];
/// A `Retry-After` longer than this ends the sync's tries; the next sync comes later.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// A calendar is read in full at least this often, so the window of events moves with time.
const FULL_SYNC_EVERY: Span = Span::hours(24);

/// Where the providers are reached; tests point them at local servers.
#[derive(Debug, Clone)]
pub struct ProviderUrls {
    pub google_token: Url,
    pub google_api: Url,
    pub microsoft_token: Url,
    pub microsoft_graph: Url,
}

impl Default for ProviderUrls {
    fn default() -> Self {
        let url = |text: &str| Url::parse(text).unwrap_or_else(|_| unreachable!("{text}"));
        ProviderUrls {
            google_token: url("https://oauth2.googleapis.com/token"),
            google_api: url("https://www.googleapis.com"),
            microsoft_token: url("https://login.microsoftonline.com/common/oauth2/v2.0/token"),
            microsoft_graph: url("https://graph.microsoft.com"),
        }
    }
}

/// A Google or Microsoft calendar's credentials: an OAuth2 client and a user's refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthCredentials {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    /// The provider's id of the calendar to read; the user's main calendar when absent.
    #[serde(default)]
    pub platform_uuid: Option<String>,
}

/// Why a provider call failed, and so what the sync does about it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The credentials were refused, or the provider's answer cannot be used: disconnect.
    #[error("{0}")]
    Refused(String),
    /// Still throttled or failing after the retries: try again at a later sync.
    #[error("{0}")]
    Transient(String),
    /// The incremental sync token is no longer valid: read the calendar in full.
    #[error("the sync token expired")]
    SyncTokenExpired,
}

impl ProviderError {
    pub fn into_outcome(self) -> SyncOutcome {
        match self {
            ProviderError::Refused(reason) => SyncOutcome::AuthFailed(reason),
            ProviderError::Transient(reason) => SyncOutcome::Transient(reason),
            ProviderError::SyncTokenExpired => {
                SyncOutcome::Transient("the sync token expired twice in one sync".into())
            }
        }
    }
}

/// What a sync remembers between runs: the provider's token (Google's `nextSyncToken`,
/// Graph's `@odata.deltaLink`) and when the calendar was last read in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCursor {
    pub token: String,
    pub full_sync_at: Timestamp,
}

impl SyncCursor {
    /// The stored cursor, unless it is missing, unreadable or due for a full read.
    pub fn usable(stored: Option<&str>, at: Timestamp) -> Option<SyncCursor> {
        stored
            .and_then(|text| serde_json::from_str::<SyncCursor>(text).ok())
            .filter(|cursor| at - cursor.full_sync_at < FULL_SYNC_EVERY)
    }

    pub fn store(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
}

/// A renewed access token and, where the provider rotated it, the new refresh token.
pub struct AccessToken {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

pub struct ProviderClient {
    client: reqwest::Client,
    pub urls: ProviderUrls,
}

impl ProviderClient {
    pub fn new(urls: ProviderUrls) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .build()?;
        Ok(ProviderClient { client, urls })
    }

    /// Trades the refresh token for an access token (`grant_type=refresh_token`).
    pub async fn access_token(
        &self,
        provider: &str,
        token_url: &Url,
        credentials: &OAuthCredentials,
        scope: Option<&str>,
    ) -> Result<AccessToken, ProviderError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.as_str()),
            ("refresh_token", credentials.refresh_token.as_str()),
        ];
        form.extend(scope.map(|scope| ("scope", scope)));
        let what = format!("{provider}'s token endpoint");
        let response = self
            .send(&what, || self.client.post(token_url.clone()).form(&form))
            .await?;
        let status = response.status();
        let body = read_json(&what, response).await;
        if !status.is_success() {
            return Err(ProviderError::Refused(format!(
                "{what} refused the refresh token ({status}{})",
                oauth_error(body.as_ref().ok())
            )));
        }
        let body = body?;
        let access_token = body["access_token"]
            .as_str()
            .filter(|token| !token.is_empty())
            .ok_or_else(|| ProviderError::Refused(format!("{what} gave no access_token")))?;
        Ok(AccessToken {
            access_token: access_token.to_owned(),
            refresh_token: body["refresh_token"].as_str().map(str::to_owned),
        })
    }

    /// One page of JSON, read with the access token; `prefer` adds `Prefer` headers.
    pub async fn get_json(
        &self,
        what: &str,
        url: &Url,
        access_token: &str,
        prefer: &[&str],
    ) -> Result<Value, ProviderError> {
        let response = self
            .send(what, || {
                prefer.iter().fold(
                    self.client.get(url.clone()).bearer_auth(access_token),
                    |request, preference| request.header("Prefer", *preference),
                )
            })
            .await?;
        let status = response.status();
        if status == StatusCode::GONE {
            return Err(ProviderError::SyncTokenExpired);
        }
        let body = read_json(what, response).await;
        if !status.is_success() {
            return Err(ProviderError::Refused(format!(
                "{what} answered {status}{}",
                api_error(body.as_ref().ok())
            )));
        }
        body
    }

    /// Sends the request, trying again while the provider throttles or fails.
    async fn send(
        &self,
        what: &str,
        request: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ProviderError> {
        let mut waits = BACKOFF.iter();
        loop {
            let sent = request()
                .header(
                    USER_AGENT,
                    HeaderValue::from_static(concat!("meetwire/", env!("CARGO_PKG_VERSION"))),
                )
                .send()
                .await;
            let (reason, retry_after) = match sent {
                Ok(response) if response.status().is_redirection() => {
                    return Err(ProviderError::Refused(format!(
                        "{what} answered {}: redirects are not followed",
                        response.status()
                    )))
                }
                Ok(response) if is_throttled(response.status()) => {
                    let after = retry_after(&response);
                    (format!("{what} answered {}", response.status()), after)
                }
                Ok(response) if response.status() == StatusCode::FORBIDDEN => {
                    // Google says "rate limit exceeded" with a 403; any other 403 is a refusal.
                    let status = response.status();
                    let body = read_json(what, response).await.ok();
                    if !is_rate_limit(body.as_ref()) {
                        return Err(ProviderError::Refused(format!(
                            "{what} answered {status}{}",
                            api_error(body.as_ref())
                        )));
                    }
                    (format!("{what} answered {status} (rate limit)"), None)
                }
                Ok(response) => return Ok(response),
                Err(e) if e.is_timeout() => (format!("{what} did not answer in time"), None),
                Err(e) => (format!("{what} could not be reached: {e}"), None),
            };
            let Some(backoff) = waits.next() else {
                return Err(ProviderError::Transient(reason));
            };
            let wait = retry_after.unwrap_or(*backoff);
            if wait > MAX_RETRY_AFTER {
                return Err(ProviderError::Transient(format!(
                    "{reason}; it asks to wait {} s",
                    wait.as_secs()
                )));
            }
            tracing::debug!(reason = %reason, wait_ms = wait.as_millis() as u64, "calendar provider busy");
            tokio::time::sleep(wait).await;
        }
    }

    /// A link the provider gave (a next page), refused unless it is on `base`'s origin.
    pub fn own_link(&self, what: &str, base: &Url, link: &str) -> Result<Url, ProviderError> {
        let url = Url::parse(link)
            .map_err(|_| ProviderError::Refused(format!("{what} gave a link that is not a URL")))?;
        if url.origin() != base.origin() {
            return Err(ProviderError::Refused(format!(
                "{what} gave a link to {}, outside {}: not followed",
                url.origin().ascii_serialization(),
                base.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }
}

fn is_throttled(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Google's `usageLimits` reasons, which it sends with 403.
fn is_rate_limit(body: Option<&Value>) -> bool {
    body.and_then(|b| b["error"]["errors"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str())
        .any(|reason| matches!(reason, "rateLimitExceeded" | "userRateLimitExceeded"))
}

/// `Retry-After` in seconds (the form both providers send).
fn retry_after(response: &Response) -> Option<Duration> {
    let seconds: f64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// The body as JSON, read up to the cap.
async fn read_json(what: &str, mut response: Response) -> Result<Value, ProviderError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(ProviderError::Refused(format!(
                        "{what} answered more than {MAX_ANSWER_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(ProviderError::Transient(format!(
                    "{what}'s answer was cut off: {e}"
                )))
            }
        }
    }
    serde_json::from_slice(&body).map_err(|e| {
        ProviderError::Refused(format!("{what} answered something that is not JSON: {e}"))
    })
}

/// `: invalid_grant (Token has been expired or revoked.)` from an OAuth2 error body.
fn oauth_error(body: Option<&Value>) -> String {
    let Some(body) = body else {
        return String::new();
    };
    match (body["error"].as_str(), body["error_description"].as_str()) {
        (Some(error), Some(description)) => format!(": {error}: {}", short(description)),
        (Some(error), None) => format!(": {error}"),
        _ => String::new(),
    }
}

/// `: <message>` from a Google or Graph error body.
fn api_error(body: Option<&Value>) -> String {
    let error = body.map(|b| &b["error"]);
    let message = error.and_then(|e| e["message"].as_str());
    let code = error.and_then(|e| e["code"].as_str());
    match (code, message) {
        (Some(code), Some(message)) => format!(": {code}: {}", short(message)),
        (None, Some(message)) => format!(": {}", short(message)),
        (Some(code), None) => format!(": {code}"),
        (None, None) => String::new(),
    }
}

/// A provider's message cut to a length that fits a calendar's failure reason.
fn short(text: &str) -> &str {
    match text.char_indices().nth(300) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// One item of a provider's answer, as the sync reads it.
#[derive(Debug, PartialEq)]
pub enum Item {
    Present(SyncedEvent),
    Gone(String),
    /// Not an event meetwire keeps (a recurring series' master, an item without times).
    Ignored,
}

/// What a provider reported in one sync, the last word on each event winning.
#[derive(Debug, Default)]
pub struct Changes(BTreeMap<String, Option<SyncedEvent>>);

impl Changes {
    /// Adds an item; an event outside the window counts as gone, as a full read would leave
    /// it out.
    pub fn add(&mut self, item: Item, window: &Window) -> Result<(), ProviderError> {
        match item {
            Item::Present(event) if window.overlaps(&event.start_time, &event.end_time) => {
                self.0.insert(event.provider_id.clone(), Some(event));
            }
            Item::Present(event) => {
                self.0.insert(event.provider_id, None);
            }
            Item::Gone(id) => {
                self.0.insert(id, None);
            }
            Item::Ignored => {}
        }
        if self.0.len() > MAX_EVENTS {
            return Err(ProviderError::Refused(format!(
                "the calendar reported more than {MAX_EVENTS} events in one sync"
            )));
        }
        Ok(())
    }
}

/// A provider's answer to one sync.
pub struct Read {
    pub changes: Changes,
    /// The whole calendar was read: a stored event not in it is deleted.
    pub complete: bool,
    pub cursor: SyncCursor,
    /// A refresh token the provider rotated, to be kept in place of the old one.
    pub renewed_refresh_token: Option<String>,
}

impl Read {
    /// A sync's reading, with the refresh token the provider rotated if it differs.
    pub fn new(
        (changes, complete, cursor): (Changes, bool, SyncCursor),
        token: AccessToken,
        credentials: &OAuthCredentials,
    ) -> Read {
        Read {
            changes,
            complete,
            cursor,
            renewed_refresh_token: token
                .refresh_token
                .filter(|renewed| *renewed != credentials.refresh_token),
        }
    }

    pub fn into_outcome(self, renewed_credentials: Option<Vec<u8>>) -> SyncOutcome {
        let (events, deleted) = self.changes.0.into_iter().fold(
            (Vec::new(), Vec::new()),
            |(mut events, mut deleted), (id, event)| {
                match event {
                    Some(event) => events.push(event),
                    None => deleted.push(id),
                }
                (events, deleted)
            },
        );
        SyncOutcome::Synced {
            events,
            deleted,
            complete: self.complete,
            sync_token: self.cursor.store(),
            renewed_credentials,
        }
    }
}

/// Where a page of a list points: the next page, or (on the last) the next sync's cursor.
pub enum Next {
    Page(Url),
    Done(String),
}

/// How one provider's list pages are read.
pub struct Pages<'a> {
    pub what: &'static str,
    pub access_token: &'a str,
    pub prefer: &'a [&'a str],
    /// The key of the page's array of items.
    pub items: &'static str,
    pub item_of: fn(&Value) -> Item,
    /// Where the page points, from the page and the list's first URL.
    pub next: &'a (dyn Fn(&Value, &Url) -> Result<Next, ProviderError> + Sync),
}

impl Pages<'_> {
    /// Every page from `first` to the one that gives the cursor, at most `MAX_PAGES`.
    pub async fn read(
        &self,
        client: &ProviderClient,
        first: Url,
        window: &Window,
    ) -> Result<(Changes, String), ProviderError> {
        let what = self.what;
        let mut changes = Changes::default();
        let mut url = first.clone();
        for _ in 0..MAX_PAGES {
            let page = client
                .get_json(what, &url, self.access_token, self.prefer)
                .await?;
            let items = page[self.items].as_array().ok_or_else(|| {
                ProviderError::Refused(format!("{what} answered JSON that is not a list of events"))
            })?;
            for item in items {
                changes.add((self.item_of)(item), window)?;
            }
            match (self.next)(&page, &first)? {
                Next::Page(next) => url = next,
                Next::Done(cursor) => return Ok((changes, cursor)),
            }
        }
        Err(ProviderError::Refused(format!(
            "{what} answered more than {MAX_PAGES} pages"
        )))
    }
}

/// Reads a provider the way both do it: incrementally from the stored cursor where there is
/// a usable one, in full otherwise or when the provider refuses the cursor.
pub async fn incremental_or_full<Incremental, Full>(
    stored: Option<&str>,
    at: Timestamp,
    incremental: impl FnOnce(String) -> Incremental,
    full: impl FnOnce() -> Full,
) -> Result<(Changes, bool, SyncCursor), ProviderError>
where
    Incremental: std::future::Future<Output = Result<(Changes, String), ProviderError>>,
    Full: std::future::Future<Output = Result<(Changes, String), ProviderError>>,
{
    if let Some(cursor) = SyncCursor::usable(stored, at) {
        match incremental(cursor.token).await {
            Ok((changes, token)) => {
                let cursor = SyncCursor {
                    token,
                    full_sync_at: cursor.full_sync_at,
                };
                return Ok((changes, false, cursor));
            }
            Err(ProviderError::SyncTokenExpired) => {}
            Err(e) => return Err(e),
        }
    }
    let (changes, token) = full().await?;
    let cursor = SyncCursor {
        token,
        full_sync_at: at,
    };
    Ok((changes, true, cursor))
}

/// An attendee's answer in iCalendar's words (`accepted`, `declined`, `tentative`,
/// `needs-action`), as the iCalendar feeds give it.
pub fn response_status(provider_word: &str) -> &'static str {
    match provider_word {
        "accepted" | "organizer" => "accepted",
        "declined" => "declined",
        "tentative" | "tentativelyAccepted" => "tentative",
        _ => "needs-action",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn a_cursor_is_used_until_a_full_read_is_due() {
        let then = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let stored = SyncCursor {
            token: "t1".into(),
            full_sync_at: then,
        }
        .store();
        let fresh = SyncCursor::usable(stored.as_deref(), then + Span::hours(23));
        assert_eq!(fresh.map(|c| c.token), Some("t1".to_owned()));
        assert_eq!(
            SyncCursor::usable(stored.as_deref(), then + Span::hours(25)),
            None
        );
        assert_eq!(SyncCursor::usable(Some("not json"), then), None);
    }

    #[test]
    fn provider_errors_are_named_shortly() {
        let body = json!({"error": "invalid_grant", "error_description": "x".repeat(1000)});
        assert_eq!(
            oauth_error(Some(&body)).len(),
            ": invalid_grant: ".len() + 300
        );
        let google = json!({"error": {"code": 404, "message": "Not Found"}});
        assert_eq!(api_error(Some(&google)), ": Not Found");
        let graph = json!({"error": {"code": "ErrorItemNotFound", "message": "gone"}});
        assert_eq!(api_error(Some(&graph)), ": ErrorItemNotFound: gone");
        let limited = json!({"error": {"errors": [{"reason": "rateLimitExceeded"}]}});
        assert!(is_rate_limit(Some(&limited)));
        assert!(!is_rate_limit(Some(&google)));
    }
}
