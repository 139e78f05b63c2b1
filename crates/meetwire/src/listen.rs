//! `meetwire listen`: a local webhook receiver for development.
//!
//! Wiring up webhooks usually fails on the receiving side (wrong secret, a framework that
//! re-serialises the body, a proxy that drops headers), and the sender's log cannot show why.
//! This receiver checks both signatures exactly as a careful receiver would (the `verify`
//! module's checks), prints one line per delivery and answers 400 when a signature is wrong, so
//! the problem shows on both sides. `demo` runs the same receiver in-process.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use clap::Args;
use meetwire_core::signing::SecretError;
use meetwire_core::time::{now, rest_timestamp};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::serve::shutdown_signal;
use crate::verify::{
    by_any_key, check_attendee, Secrets, StandardHeaders, Verdict, TIMESTAMP_TOLERANCE_SECS,
};

#[derive(Args, Clone)]
pub struct ListenArgs {
    /// Port to listen on; 0 picks a free one (the line `listening on …` shows it).
    #[arg(long)]
    pub port: u16,
    #[command(flatten)]
    pub secrets: Secrets,
    /// Address or host name to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// URL path deliveries are posted to; other paths get 404.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Status to answer a delivery whose signatures are valid (invalid ones get 400).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(200..=599))]
    pub status: u16,
    /// Print one JSON object per delivery instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Refuse deliveries without the Standard Webhooks headers. `X-Webhook-Signature` carries
    /// no timestamp, so alone it cannot tell a replayed delivery from a fresh one.
    #[arg(long)]
    pub require_standard_webhooks: bool,
    /// Save each request to this directory as `NNNNNN-KEY.body` and `NNNNNN-KEY.headers`
    /// (`Name: value` lines), the files `meetwire verify --body … --headers …` reads.
    #[arg(long)]
    pub save: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("--secret: {0}")]
    Secret(#[from] SecretError),
    #[error("--path must be a URL path starting with / (no query), got {0:?}")]
    Path(String),
    #[error("--status {0} is not an HTTP status")]
    Status(u16),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot write to standard output: {0}")]
    Output(std::io::Error),
    #[error("--save {dir}: {source}")]
    SaveDir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("listener error: {0}")]
    Serve(std::io::Error),
}

/// Longest text of a delivery's summary in a line of output.
const DETAIL_CHARS: usize = 72;

/// What the receiver checks deliveries against and how it answers.
#[derive(Clone)]
pub struct ReceiverConfig {
    /// The secrets deliveries may be signed with (more than one while a secret rotates).
    pub keys: Vec<Vec<u8>>,
    pub path: String,
    pub status: StatusCode,
    /// Deliveries without the Standard Webhooks headers are invalid, not just unchecked.
    pub require_standard: bool,
    /// Where each request is saved, if anywhere.
    pub save: Option<std::path::PathBuf>,
}

impl ReceiverConfig {
    /// The configuration `listen`'s flags describe.
    fn from_args(args: &ListenArgs) -> Result<Self, ListenError> {
        Ok(ReceiverConfig {
            keys: args.secrets.keys()?,
            path: checked_path(&args.path)?,
            status: StatusCode::from_u16(args.status)
                .map_err(|_| ListenError::Status(args.status))?,
            require_standard: args.require_standard_webhooks,
            save: args.save.clone(),
        })
    }
}

fn checked_path(path: &str) -> Result<String, ListenError> {
    let valid = path.starts_with('/')
        && path
            .parse::<axum::http::uri::PathAndQuery>()
            .is_ok_and(|p| p.query().is_none() && p.path() == path);
    if valid {
        Ok(path.to_owned())
    } else {
        Err(ListenError::Path(path.to_owned()))
    }
}

/// One delivery as received and checked.
#[derive(Debug, Clone)]
pub struct Report {
    pub received_at: DateTime<Utc>,
    pub trigger: Option<String>,
    pub idempotency_key: Option<String>,
    pub bot_id: Option<String>,
    pub calendar_id: Option<String>,
    pub attendee: Verdict,
    pub standard: Verdict,
    /// Receipt time minus the event's `data.created_at`, when the payload has one.
    pub latency_ms: Option<i64>,
    /// `data.new_state` of a `bot.state_change`.
    pub new_state: Option<String>,
    /// A short human summary of `data` (who said what, which state change).
    pub detail: Option<String>,
    /// The status the receiver answered.
    pub status: StatusCode,
}

impl Report {
    pub fn any_invalid(&self) -> bool {
        self.attendee.is_invalid() || self.standard.is_invalid()
    }
}

/// Checks one request's signatures and reads its envelope.
fn inspect(config: &ReceiverConfig, headers: &HeaderMap, body: &[u8]) -> Report {
    let received_at = now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let attendee = match header("x-webhook-signature") {
        Some(signature) => by_any_key(&config.keys, |key| check_attendee(key, body, signature)),
        None => Verdict::Invalid("no X-Webhook-Signature header".into()),
    };
    let standard = StandardHeaders {
        id: header("webhook-id").map(str::to_owned),
        timestamp: header("webhook-timestamp").map(str::to_owned),
        signature: header("webhook-signature").map(str::to_owned),
    };
    let standard_verdict = match fresh(
        by_any_key(&config.keys, |key| standard.check(key, body)),
        &standard,
        received_at,
    ) {
        Verdict::Absent if config.require_standard => Verdict::Invalid(
            "no Standard Webhooks headers (required by --require-standard-webhooks)".into(),
        ),
        verdict => verdict,
    };
    let envelope: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let data = envelope.get("data").unwrap_or(&Value::Null);
    let trigger = text(&envelope, "trigger");
    Report {
        received_at,
        idempotency_key: text(&envelope, "idempotency_key").or(standard.id),
        bot_id: text(&envelope, "bot_id"),
        calendar_id: text(&envelope, "calendar_id"),
        attendee,
        standard: standard_verdict,
        latency_ms: latency_ms(data, received_at),
        new_state: text(data, "new_state"),
        detail: trigger.as_deref().and_then(|t| detail(t, data)),
        trigger,
        status: config.status,
    }
}

/// Turns a valid Standard Webhooks signature into an invalid one if its timestamp is stale
/// (replay protection is what the header is for).
fn fresh(verdict: Verdict, headers: &StandardHeaders, now: DateTime<Utc>) -> Verdict {
    let Verdict::Valid(_) = verdict else {
        return verdict;
    };
    match headers.staleness(now.timestamp()) {
        Some(distance) => Verdict::Invalid(format!(
            "webhook-timestamp is {distance} (tolerance {TIMESTAMP_TOLERANCE_SECS} s)"
        )),
        None => verdict,
    }
}

fn latency_ms(data: &Value, received_at: DateTime<Utc>) -> Option<i64> {
    let created = data.get("created_at")?.as_str()?;
    let created = DateTime::parse_from_rfc3339(created).ok()?;
    Some((received_at - created.with_timezone(&Utc)).num_milliseconds())
}

/// A one-line summary of a payload's `data`, by trigger.
fn detail(trigger: &str, data: &Value) -> Option<String> {
    let s = |key: &str| data.get(key).and_then(Value::as_str);
    let text = match trigger {
        "bot.state_change" => format!(
            "{} → {} ({})",
            s("old_state")?,
            s("new_state")?,
            s("event_type")?
        ),
        "transcript.update" => format!(
            "{}: {}",
            s("speaker_name")?,
            data.pointer("/transcription/transcript")?.as_str()?
        ),
        "chat_messages.update" => format!("{}: {}", s("sender_name")?, s("text")?),
        "participant_events.join_leave" | "participant_events.speech_start_stop" => {
            format!("{} {}", s("participant_name")?, s("event_type")?)
        }
        "bot_logs.update" => format!("{}: {}", s("level")?, s("message")?),
        "calendar.events_update" | "calendar.state_change" => s("state")?.to_owned(),
        _ => return None,
    };
    Some(shorten(&text, DETAIL_CHARS))
}

/// Keeps received text from driving the terminal: control characters (escape sequences, new
/// lines) become spaces.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The report as one line of text.
pub fn text_line(report: &Report) -> String {
    let field = |v: &Option<String>| printable(v.as_deref().unwrap_or("-"));
    let subject = report.bot_id.as_ref().or(report.calendar_id.as_ref());
    let mut line = format!(
        "{} {:<36} {:<20} key {} attendee {} standard {}",
        report
            .received_at
            .with_timezone(&chrono::Local)
            .format("%H:%M:%S%.3f"),
        field(&report.trigger),
        printable(subject.map_or("-", String::as_str)),
        field(&report.idempotency_key),
        report.attendee.mark(),
        report.standard.mark(),
    );
    if let Some(ms) = report.latency_ms {
        line.push(' ');
        line.push_str(&latency_text(ms));
    }
    if let Some(detail) = &report.detail {
        line.push_str(&format!("  {}", printable(detail)));
    }
    for (name, verdict) in [
        ("attendee", &report.attendee),
        ("standard", &report.standard),
    ] {
        if let Verdict::Invalid(why) = verdict {
            line.push_str(&format!("  [{name}: {why}]"));
        }
    }
    line
}

/// `850 ms`, or `12.3 s` from a second on.
fn latency_text(ms: i64) -> String {
    if ms.abs() < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// The report as one JSON object.
pub fn json_line(report: &Report) -> String {
    let problems: Vec<String> = [
        ("attendee", &report.attendee),
        ("standard", &report.standard),
    ]
    .into_iter()
    .filter_map(|(name, verdict)| match verdict {
        Verdict::Invalid(why) => Some(format!("{name}: {why}")),
        _ => None,
    })
    .collect();
    json!({
        "received_at": rest_timestamp(&report.received_at),
        "trigger": report.trigger,
        "idempotency_key": report.idempotency_key,
        "bot_id": report.bot_id,
        "calendar_id": report.calendar_id,
        // A missing X-Webhook-Signature is already `Invalid`, so this is valid or invalid.
        "attendee_signature": report.attendee.label(),
        "standard_signature": report.standard.label(),
        "latency_ms": report.latency_ms,
        "status": report.status.as_u16(),
        "problems": problems,
    })
    .to_string()
}

/// Shared by the request handler.
#[derive(Clone)]
struct Handler {
    config: Arc<ReceiverConfig>,
    reports: mpsc::Sender<Report>,
    /// Requests saved so far, numbering the files (after any already in the directory).
    saved: Arc<AtomicU64>,
}

/// Every request: POSTs to the configured path are deliveries; anything else is refused.
async fn receive(
    State(handler): State<Handler>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() != handler.config.path {
        let message = format!("deliveries go to {}", handler.config.path);
        return (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response();
    }
    if method != Method::POST {
        let message = "deliveries are POST requests";
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(json!({ "error": message })),
        )
            .into_response();
    }
    let mut report = inspect(&handler.config, &headers, &body);
    if let Some(dir) = &handler.config.save {
        let n = handler.saved.fetch_add(1, Ordering::Relaxed) + 1;
        if let Err(e) = save(dir, n, report.idempotency_key.as_deref(), &headers, &body).await {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot save a delivery");
        }
    }
    if report.any_invalid() {
        report.status = StatusCode::BAD_REQUEST;
    }
    let answer = json!({
        "received": !report.any_invalid(),
        "attendee_signature": report.attendee.describe(),
        "standard_signature": report.standard.describe(),
    });
    let status = report.status;
    // The printer stopping (standard output closed) also stops the server; nothing to do here.
    let _ = handler.reports.send(report).await;
    (status, Json(answer)).into_response()
}

/// Writes one request as the body and header files `verify` reads. The key comes from the
/// request, so only its safe characters name the file.
async fn save(
    dir: &std::path::Path,
    n: u64,
    key: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> std::io::Result<()> {
    let key: String = key
        .unwrap_or("unknown")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(64)
        .collect();
    let name = format!("{n:06}-{key}");
    let header_lines: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    write_new(&dir.join(format!("{name}.body")), body).await?;
    write_new(
        &dir.join(format!("{name}.headers")),
        header_lines.as_bytes(),
    )
    .await
}

/// Writes a file that must not exist yet: a saved delivery is never overwritten.
async fn write_new(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await?;
    file.write_all(bytes).await
}

/// The highest number among the deliveries already saved in `dir` (0 if none), so that a new
/// run numbers its files after them.
fn highest_saved(dir: Option<&std::path::Path>) -> u64 {
    let entries = dir.and_then(|dir| std::fs::read_dir(dir).ok());
    entries
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.get(..6)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// A receiver bound to its port, not yet serving.
pub struct Receiver {
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
}

impl Receiver {
    /// Binds `host:port` and prepares to send a [`Report`] of every delivery to `reports`.
    pub async fn bind(
        host: &str,
        port: u16,
        config: ReceiverConfig,
        reports: mpsc::Sender<Report>,
    ) -> Result<Self, ListenError> {
        let bind_error = |source| ListenError::Bind {
            addr: format!("{host}:{port}"),
            source,
        };
        let listener = TcpListener::bind((host, port)).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let saved = highest_saved(config.save.as_deref());
        let handler = Handler {
            config: Arc::new(config),
            reports,
            saved: Arc::new(AtomicU64::new(saved)),
        };
        let app = Router::new().fallback(receive).with_state(handler);
        Ok(Receiver {
            listener,
            addr,
            app,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves and the requests in progress are answered.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ListenError> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(ListenError::Serve)
    }
}

/// How reports are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Renders a report in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Text => text_line(report),
        Format::Json => json_line(report),
    }
}

/// Writes one line to standard output and flushes it, so a pipe sees each delivery at once.
pub fn print_line(line: &str) -> Result<(), ListenError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(ListenError::Output)
}

/// Prints every report until all senders are gone.
async fn print_reports(
    mut reports: mpsc::Receiver<Report>,
    format: Format,
) -> Result<(), ListenError> {
    while let Some(report) = reports.recv().await {
        print_line(&render(&report, format))?;
    }
    Ok(())
}

pub async fn run(args: ListenArgs) -> Result<(), ListenError> {
    let config = ReceiverConfig::from_args(&args)?;
    if let Some(dir) = &args.save {
        std::fs::create_dir_all(dir).map_err(|source| ListenError::SaveDir {
            dir: dir.clone(),
            source,
        })?;
    }
    let format = if args.json {
        Format::Json
    } else {
        Format::Text
    };
    let (tx, rx) = mpsc::channel(256);
    let receiver = Receiver::bind(&args.host, args.port, config, tx).await?;
    print_line(&format!("listening on http://{}", receiver.local_addr()))?;
    let (printer_gone, printer_stopped) = oneshot::channel::<()>();
    let printer = tokio::spawn(async move {
        let printed = print_reports(rx, format).await;
        let _ = printer_gone.send(());
        printed
    });
    let stop = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            _ = printer_stopped => {}
        }
    };
    receiver.serve(stop).await?;
    match printer.await {
        Ok(printed) => printed,
        Err(e) => Err(ListenError::Output(std::io::Error::other(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_plain_absolute_paths() {
        assert!(checked_path("/").is_ok());
        assert!(checked_path("/hooks/meetwire").is_ok());
        for bad in ["", "hooks", "/a?b=1", "/a b", "http://x/"] {
            assert!(checked_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn details_summarise_and_are_made_printable() {
        let data = json!({"old_state": "joining", "new_state": "joined_recording",
                          "event_type": "recording_permission_granted"});
        assert_eq!(
            detail("bot.state_change", &data).as_deref(),
            Some("joining → joined_recording (recording_permission_granted)")
        );
        let said = json!({"speaker_name": "Ann", "transcription": {"transcript": "hi\u{1b}[2J"}});
        let line = detail("transcript.update", &said).map(|d| printable(&d));
        assert_eq!(line.as_deref(), Some("Ann: hi [2J"));
        assert_eq!(detail("bot.state_change", &json!({})), None);
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("Zoë", 3), "Zoë");
    }

    #[test]
    fn stale_standard_timestamps_are_invalid() {
        let t = now();
        let headers = |ts: i64| StandardHeaders {
            timestamp: Some(ts.to_string()),
            ..StandardHeaders::default()
        };
        let valid = Verdict::Valid("v1");
        assert_eq!(fresh(valid.clone(), &headers(t.timestamp() - 10), t), valid);
        assert!(fresh(valid.clone(), &headers(t.timestamp() - 3600), t).is_invalid());
        assert!(fresh(valid, &headers(t.timestamp() + 3600), t).is_invalid());
    }

    #[test]
    fn latency_comes_from_created_at() {
        let t = now();
        let created = t - chrono::Duration::milliseconds(250);
        let data = json!({ "created_at": meetwire_core::time::webhook_timestamp(&created) });
        assert_eq!(latency_ms(&data, t), Some(250));
        assert_eq!(latency_ms(&json!({}), t), None);
        assert_eq!(latency_text(7), "7 ms");
        assert_eq!(latency_text(12_345), "12.3 s");
    }
}
