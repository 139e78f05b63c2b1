//! Fetching a calendar feed under the same rules as webhook destinations: the SSRF guard on
//! every address (names resolved through it, IP literals checked here), no proxy, no redirect
//! (a redirect could lead past the guard), and a cap on the size read.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, USER_AGENT};
use reqwest::StatusCode;

use crate::delivery::guard::{AddressPolicy, GuardedResolver};

/// Largest feed read; a bigger one is refused.
pub const MAX_FEED_BYTES: usize = 10 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a fetch failed, and so what the sync does about it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    /// The feed is gone or refused (404, 401, 403, 410), blocked, or not usable: the calendar
    /// is disconnected until its URL changes or a sync succeeds.
    #[error("{0}")]
    Refused(String),
    /// Throttled, a server error, a timeout or a network failure: tried again later.
    #[error("{0}")]
    Transient(String),
}

pub struct FeedClient {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl FeedClient {
    pub fn new(policy: Arc<AddressPolicy>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .timeout(TIMEOUT)
            .build()?;
        Ok(FeedClient { client, policy })
    }

    /// The feed's text.
    pub async fn fetch(&self, url: &str) -> Result<String, FetchError> {
        let parsed = self
            .policy
            .check_url_as(url, "ical_url")
            .map_err(FetchError::Refused)?;
        if let Some(ip) = self.policy.refused_literal(&parsed) {
            return Err(FetchError::Refused(format!(
                "{ip} is not an allowed calendar address"
            )));
        }
        let mut response = self
            .client
            .get(parsed)
            .header(
                USER_AGENT,
                HeaderValue::from_static(concat!("meetwire/", env!("CARGO_PKG_VERSION"))),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(FetchError::Refused(format!(
                "the feed answered {status}: redirects are not followed (use the final URL)"
            )));
        }
        if matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::NOT_FOUND
                | StatusCode::GONE
        ) {
            return Err(FetchError::Refused(format!("the feed answered {status}")));
        }
        if !status.is_success() {
            return Err(FetchError::Transient(format!("the feed answered {status}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
            if body.len() + chunk.len() > MAX_FEED_BYTES {
                return Err(FetchError::Refused(format!(
                    "the feed is larger than {MAX_FEED_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body)
            .map_err(|_| FetchError::Refused("the feed is not UTF-8 text".into()))
    }
}

fn classify(e: &reqwest::Error) -> FetchError {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if let Some(blocked) = err.downcast_ref::<crate::delivery::guard::BlockedAddress>() {
            return FetchError::Refused(blocked.to_string());
        }
        source = err.source();
    }
    if e.is_timeout() {
        FetchError::Transient("the feed did not answer in time".into())
    } else {
        FetchError::Transient(format!("the feed could not be reached: {e}"))
    }
}
