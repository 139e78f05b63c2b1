//! A scriptable webhook receiver for the delivery suites: a real loopback HTTP server (axum)
//! that records every request it gets (headers, raw body, arrival time) and answers each one
//! as its script says — fail N times then succeed, always 500, 302 with a Location, 429 with
//! `Retry-After`, 410, or hang longer than the sender's timeout. Also a few helpers for reading
//! the delivery log (`/api/v1/webhook_deliveries`) while waiting on deliveries.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use reqwest::StatusCode;
use serde_json::Value;

use super::Api;

/// A fast schedule (4 attempts: waits of 0.2, 0.4 and 0.8 s, ±20 %), a 1 s timeout, and
/// loopback receivers over plain HTTP allowed.
pub const FAST_LOOPBACK: &[&str] = &[
    "--retry-schedule",
    "0.2,0.4,0.8",
    "--webhook-timeout",
    "1",
    "--allow-http-webhooks",
    "--allow-webhook-cidr",
    "127.0.0.0/8",
];

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// How long to wait before answering (longer than the sender's timeout = a hang).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_owned();
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// What the script sees of a request when deciding how to answer it.
pub struct Call<'a> {
    /// 0-based index of the request among all this receiver got.
    pub nth: usize,
    /// 0-based index among the requests carrying the same idempotency key.
    pub nth_for_key: usize,
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub json: &'a Value,
}

pub type Script = Arc<dyn Fn(&Call) -> Reply + Send + Sync>;

/// Answers every request with `reply`.
pub fn always(reply: Reply) -> Script {
    Arc::new(move |_: &Call| reply.clone())
}

/// Answers the first `n` requests of each delivery (idempotency key) with `status`, then 200.
pub fn fail_then_ok(n: usize, status: u16) -> Script {
    Arc::new(move |c: &Call| {
        if c.nth_for_key < n {
            Reply::status(status)
        } else {
            Reply::ok()
        }
    })
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    /// 0-based arrival index.
    pub index: usize,
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the script chose for it.
    pub answered: u16,
}

/// A request's headers as (lower-case name, value) pairs, in arrival order.
pub fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The first value of `name` (any case) among `pairs` of lower-case names.
pub fn first_header<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    pairs
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

impl Received {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("webhook body is UTF-8")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    /// The envelope's `idempotency_key`.
    pub fn key(&self) -> String {
        self.json()["idempotency_key"]
            .as_str()
            .expect("idempotency_key")
            .to_owned()
    }

    pub fn trigger(&self) -> String {
        self.json()["trigger"].as_str().expect("trigger").to_owned()
    }

    pub fn bot_id(&self) -> String {
        self.json()["bot_id"].as_str().expect("bot_id").to_owned()
    }

    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

struct Shared {
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
    per_key: Mutex<HashMap<String, usize>>,
}

/// A running receiver on `127.0.0.1`, stopped when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let headers = header_pairs(&headers);
    let path = uri.path().to_owned();
    let reply = {
        // One lock order for every request, so arrival index and script call agree.
        let mut received = shared.received.lock().unwrap();
        let nth = received.len();
        let nth_for_key = match json["idempotency_key"].as_str() {
            Some(key) => {
                let mut per_key = shared.per_key.lock().unwrap();
                let n = per_key.entry(key.to_owned()).or_default();
                *n += 1;
                *n - 1
            }
            None => 0,
        };
        let script = shared.script.lock().unwrap().clone();
        let reply = script(&Call {
            nth,
            nth_for_key,
            path: &path,
            headers: &headers,
            json: &json,
        });
        received.push(Received {
            index: nth,
            at,
            method: method.to_string(),
            path: path.clone(),
            headers,
            body: body.to_vec(),
            answered: reply.status,
        });
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name.as_str(), value.as_str());
    }
    response.body(Body::from(reply.body)).unwrap()
}

impl Receiver {
    /// Starts a receiver answering per `script`.
    pub async fn start(script: Script) -> Receiver {
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            received: Mutex::new(Vec::new()),
            per_key: Mutex::new(HashMap::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    /// A receiver that answers 200 to everything.
    pub async fn ok() -> Receiver {
        Receiver::start(always(Reply::ok())).await
    }

    /// The webhook URL to subscribe: `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        self.url_path("/hook")
    }

    pub fn url_path(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replaces the script for the requests still to come.
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap() = script;
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    /// The requests carrying idempotency key `key`, in arrival order.
    pub fn for_key(&self, key: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| {
                serde_json::from_slice::<Value>(&r.body)
                    .ok()
                    .as_ref()
                    .and_then(|v| v["idempotency_key"].as_str())
                    == Some(key)
            })
            .collect()
    }

    /// The first successfully answered request of each idempotency key, in arrival order.
    pub fn first_successes(&self) -> Vec<Received> {
        let mut seen = HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| r.succeeded() && seen.insert(r.key()))
            .collect()
    }

    /// Waits until `done` holds for the requests so far; panics after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            if start.elapsed() > timeout {
                let shown: Vec<String> = received
                    .iter()
                    .map(|r| format!("{} {} -> {}", r.path, r.body_str(), r.answered))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what} at {}; got {} requests:\n{}",
                    self.url(),
                    received.len(),
                    shown.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` requests arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_until(timeout, &format!("{n} requests"), |r| r.len() >= n)
            .await
    }
}

/// A loopback URL on which nothing listens (connection refused).
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hook")
}

// ---- The delivery log. ----

/// Every delivery matching `query` (e.g. `bot_id=…&status=failure`), newest first.
pub async fn delivery_log(api: &Api, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut path = format!("/api/v1/webhook_deliveries?page_size=500&{query}");
    loop {
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        all.extend(page["results"].as_array().expect("results").iter().cloned());
        match page["next"].as_str() {
            Some(next) => {
                path = next
                    .strip_prefix(&api.base)
                    .unwrap_or_else(|| panic!("link {next} is not on {}", api.base))
                    .to_owned()
            }
            None => return all,
        }
    }
}

/// Polls the delivery log for `query` until `done` holds; panics after `timeout`.
pub async fn wait_delivery_log(
    api: &Api,
    query: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let log = delivery_log(api, query).await;
        if done(&log) {
            return log;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting on the delivery log ({query}): {}",
            serde_json::to_string_pretty(&log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One delivery with its payload and attempts.
pub async fn delivery(api: &Api, key: &str) -> Value {
    let (status, body) = api.get(&format!("/api/v1/webhook_deliveries/{key}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asks for one delivery to be sent again; the API's answer.
pub async fn resend(api: &Api, key: &str) -> (StatusCode, Value) {
    api.post(
        &format!("/api/v1/webhook_deliveries/{key}/resend"),
        &serde_json::json!({}),
    )
    .await
}

/// Polls one delivery until `done` holds; panics after `timeout`.
pub async fn wait_delivery(
    api: &Api,
    key: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let d = delivery(api, key).await;
        if done(&d) {
            return d;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting on delivery {key}: {}",
            serde_json::to_string_pretty(&d).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every delivery is finished (success or failure) and there is at least `n`.
pub fn all_finished(log: &[Value], n: usize) -> bool {
    log.len() >= n && log.iter().all(|d| d["status"] != "pending")
}

/// A custom sandbox script: one step per record, `after_ms` apart.
pub fn sandbox_script(after_ms: u64, records: &[Value]) -> Value {
    let steps: Vec<Value> = records
        .iter()
        .map(|r| serde_json::json!({"after_ms": after_ms, "record": r}))
        .collect();
    serde_json::json!({ "steps": steps })
}

/// A bot log record for a sandbox script.
pub fn log_record(message: &str) -> Value {
    serde_json::json!({"kind": "log", "level": "info", "message": message})
}
