//! One attempt: sign the stored body, POST it, and say what happened. The body sent is the
//! stored canonical string itself, so what was signed is what was sent; redirects are not
//! followed; every failure is named with a kind the delivery log shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use meetwire_core::retry::{parse_retry_after, FailureKind};
use meetwire_core::signing::{attendee_signature, standard_webhooks_signature};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};

use super::guard::{AddressPolicy, BlockedAddress, GuardedResolver};
use super::keys::SigningKeys;

/// How much of a response body the log keeps.
const RESPONSE_CHARS: usize = 500;

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub status: Option<u16>,
    pub failure: Option<(FailureKind, String)>,
    pub response_body: Option<String>,
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    fn failed(kind: FailureKind, message: String, started: Instant) -> Self {
        Attempt {
            status: None,
            failure: Some((kind, message)),
            response_body: None,
            retry_after: None,
            duration: started.elapsed(),
        }
    }
}

pub struct Sender {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    timeout: Duration,
}

impl Sender {
    pub fn new(policy: Arc<AddressPolicy>, timeout: Duration) -> Result<Self, reqwest::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("meetwire/", env!("CARGO_PKG_VERSION"))),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve and connect on its own, past the guard: none is used, even
            // if the environment names one (HTTP_PROXY and the like).
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        Ok(Sender {
            client,
            policy,
            timeout,
        })
    }

    /// Posts `body` to `url`, signed with `keys`, as delivery `idempotency_key`.
    pub async fn send(
        &self,
        url: &str,
        idempotency_key: &str,
        body: &str,
        keys: &SigningKeys,
    ) -> Attempt {
        let started = Instant::now();
        let parsed = match self.policy.check_url(url) {
            Ok(parsed) => parsed,
            Err(message) => return Attempt::failed(FailureKind::InvalidUrl, message, started),
        };
        if let Some(ip) = self.policy.refused_literal(&parsed) {
            let message = format!("{ip} is not an allowed webhook address");
            return Attempt::failed(FailureKind::BlockedAddress, message, started);
        }
        let mut request = self
            .client
            .post(parsed)
            .timeout(self.timeout)
            .header(
                "X-Webhook-Signature",
                attendee_signature(&keys.active, body.as_bytes()),
            )
            .body(body.to_owned());
        if keys.standard_webhooks {
            let timestamp = chrono::Utc::now().timestamp();
            let signatures = keys
                .all
                .iter()
                .map(|k| {
                    standard_webhooks_signature(k, idempotency_key, timestamp, body.as_bytes())
                })
                .collect::<Vec<_>>()
                .join(" ");
            request = request
                .header("webhook-id", idempotency_key)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signatures);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let (kind, message) = classify(&e);
                return Attempt::failed(kind, message, started);
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|value| parse_retry_after(value, meetwire_core::time::now()));
        let (response_body, body_error) = read_start(response).await;
        let failure = if let Some(e) = body_error {
            Some(classify(&e))
        } else if status.is_success() {
            None
        } else {
            Some((FailureKind::HttpStatus, format!("HTTP {}", status.as_u16())))
        };
        Attempt {
            status: Some(status.as_u16()),
            failure,
            response_body,
            retry_after,
            duration: started.elapsed(),
        }
    }
}

/// The first [`RESPONSE_CHARS`] characters of the body, reading no more than needed.
async fn read_start(mut response: reqwest::Response) -> (Option<String>, Option<reqwest::Error>) {
    let mut bytes = Vec::new();
    let limit = RESPONSE_CHARS * 4;
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => return (None, Some(e)),
        }
    }
    if bytes.is_empty() {
        return (None, None);
    }
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .take(RESPONSE_CHARS)
        .collect();
    (Some(text), None)
}

/// Names a transport failure.
fn classify(e: &reqwest::Error) -> (FailureKind, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(blocked) = err.downcast_ref::<BlockedAddress>() {
            return (FailureKind::BlockedAddress, blocked.to_string());
        }
        source = err.source();
    }
    let message = error_chain(e);
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else if e.is_connect() && message.contains("dns error") {
        FailureKind::Dns
    } else if e.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Transport
    };
    (kind, message)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        message.push_str(": ");
        message.push_str(&err.to_string());
        source = err.source();
    }
    message
}
