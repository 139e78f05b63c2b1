//! `meetwire demo`: the README's "see it work in one command".
//!
//! Everything runs in this process on a temporary data directory: the server (API, sandbox
//! runner, dispatcher), a `listen` receiver on a free port, a project webhook for every trigger
//! pointing at it, and a sandbox stand-up meeting. Each delivery is printed as the receiver
//! verifies it, so a newcomer sees signed webhooks arrive without configuring anything. The
//! server keeps running for more experiments until Ctrl-C; the data is removed on exit.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ipnet::{IpNet, Ipv4Net};
use meetwire_core::ids::new_token;
use meetwire_core::sealing::SealingKey;
use meetwire_core::signing::WebhookSecret;
use meetwire_core::time::now;
use meetwire_core::trigger::Trigger;
use meetwire_server::delivery::guard::AddressPolicy;
use meetwire_server::delivery::DeliveryConfig;
use meetwire_server::ui::password;
use meetwire_server::{AppState, ServerConfig};
use meetwire_store::sqlite::SqliteStore;
use meetwire_store::{Store, StoreOptions};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::listen::{print_line, render, Format, ListenError, Receiver, ReceiverConfig, Report};
use crate::serve::shutdown_signal;

#[derive(Args, Clone)]
pub struct DemoArgs {
    /// Port of the demo server on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8077)]
    pub port: u16,
    /// How much faster than real time the sandbox meeting runs.
    #[arg(long, default_value_t = 10.0)]
    pub speed: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create a temporary data directory: {0}")]
    TempDir(std::io::Error),
    #[error("storage: {0}")]
    Store(#[from] meetwire_store::StoreError),
    #[error("cannot seal the webhook secret: {0}")]
    Seal(String),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    #[error("cannot listen on {addr}: {source} (--port 0 picks a free port)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("{what} failed with {status}: {body}")]
    Api {
        what: &'static str,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("request to the demo server failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server error: {0}")]
    Server(std::io::Error),
}

/// How often the demo server's schedulers and dispatcher look for work when not woken.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// 127.0.0.0/8, where the receiver listens.
const LOOPBACK: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8);

/// The project the demo made, with its credentials in clear.
struct DemoProject {
    api_key: String,
    secret: WebhookSecret,
    /// A one-time link that signs the browser in to the demo project's UI.
    sign_in_link: String,
}

/// The demo project's only user, signed in through the printed link.
const DEMO_EMAIL: &str = "demo@meetwire.localhost";

/// The server's settings: loopback only, and webhooks may go to plain-http loopback URLs (the
/// receiver), which a real deployment refuses by default.
fn server_config(addr: SocketAddr) -> ServerConfig {
    ServerConfig {
        listen: addr,
        poll_interval: POLL_INTERVAL,
        delivery: DeliveryConfig {
            policy: AddressPolicy {
                allowed: vec![IpNet::V4(LOOPBACK)],
                allow_http: true,
            },
            poll_interval: POLL_INTERVAL,
            ..DeliveryConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// Opens a fresh store in `dir` and creates the demo project, as `admin create-project` does.
async fn create_store(
    dir: &Path,
    sealing: &SealingKey,
) -> Result<(Arc<dyn Store>, DemoProject), DemoError> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir, StoreOptions::default()).await?);
    let secret = WebhookSecret::generate();
    let sealed = sealing
        .seal(secret.as_bytes())
        .map_err(|e| DemoError::Seal(e.to_string()))?;
    let created = store.create_project("Demo project", sealed).await?;
    // A user nobody signs in as with a password (its password is random and never shown):
    // the demo signs in through a one-time link.
    let password = password::hash(&new_token())?;
    let user = store
        .create_user(DEMO_EMAIL, &password, &created.project_id)
        .await?;
    let link = store
        .create_sign_in_link(&user, now() + chrono::Duration::hours(1))
        .await?;
    let project = DemoProject {
        api_key: created.api_key,
        secret,
        sign_in_link: link,
    };
    Ok((store, project))
}

/// The demo server's REST API, as a user's program would call it.
struct DemoApi {
    client: reqwest::Client,
    base: String,
    api_key: String,
}

impl DemoApi {
    /// The header as curl takes it, for the commands shown to the user.
    fn curl_auth(&self) -> String {
        format!("Authorization: Token {}", self.api_key)
    }

    async fn post(&self, what: &'static str, path: &str, body: Value) -> Result<Value, DemoError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Token {}", self.api_key))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(DemoError::Api {
                what,
                status,
                body: text,
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Subscribes `url` to every trigger at project level.
    async fn create_webhook(&self, url: &str) -> Result<(), DemoError> {
        let triggers: Vec<&str> = Trigger::ALL.iter().map(|t| t.code()).collect();
        let body = json!({ "url": url, "triggers": triggers });
        self.post("creating the webhook", "/api/v1/webhooks", body)
            .await
            .map(drop)
    }

    /// Creates a bot for `meeting_url` and returns its id.
    async fn create_bot(&self, meeting_url: &str) -> Result<String, DemoError> {
        let body = json!({ "meeting_url": meeting_url, "bot_name": "Demo bot" });
        let bot = self.post("creating the bot", "/api/v1/bots", body).await?;
        Ok(bot["id"].as_str().unwrap_or("?").to_owned())
    }
}

/// Prints the lines explaining what runs where.
fn print_header(
    api: &DemoApi,
    project: &DemoProject,
    receiver: &str,
    bot_id: &str,
    dir: &Path,
) -> Result<(), ListenError> {
    let (base, auth) = (&api.base, api.curl_auth());
    let lines = [
        "meetwire demo: a sandbox stand-up meeting whose webhooks go to a local receiver".into(),
        String::new(),
        format!("  server:          {base}"),
        format!(
            "  web UI:          {base}/login/link/{}  (one-time sign-in link, for an hour)",
            project.sign_in_link
        ),
        format!("  API key:         {}", project.api_key),
        format!("  webhook secret:  {}", project.secret.to_base64()),
        format!(
            "  receiver:        {receiver}  (checks X-Webhook-Signature and webhook-signature)"
        ),
        format!("  data directory:  {}  (removed on exit)", dir.display()),
        String::new(),
        "  see the bot:".into(),
        format!("    curl -s -H '{auth}' {base}/api/v1/bots/{bot_id}"),
        "  see the delivery log:".into(),
        format!("    curl -s -H '{auth}' {base}/api/v1/webhook_deliveries"),
        String::new(),
        "webhooks as they arrive (time, trigger, bot, idempotency key, signatures, latency):"
            .into(),
    ];
    lines.iter().try_for_each(|line| print_line(line))
}

/// Printed once the demo meeting is over: how to carry on by hand.
fn print_footer(api: &DemoApi, speed: f64) -> Result<(), ListenError> {
    let (base, auth) = (&api.base, api.curl_auth());
    let lines = [
        String::new(),
        "the meeting has ended; the server keeps running. Try a meeting that lasts until the bot is told to leave:".into(),
        format!(
            "    curl -s -X POST -H '{auth}' -H 'Content-Type: application/json' \\\n      \
             -d '{{\"meeting_url\": \"sandbox://long?speed={speed}\", \"bot_name\": \"Long meeting\"}}' \\\n      \
             {base}/api/v1/bots"
        ),
        "  then make it leave (use the \"id\" the first command printed):".into(),
        format!("    curl -s -X POST -H '{auth}' {base}/api/v1/bots/BOT_ID/leave"),
        "Ctrl-C stops the demo and removes its data.".into(),
        String::new(),
    ];
    lines.iter().try_for_each(|line| print_line(line))
}

/// Whether `report` says the demo's own bot has finished.
fn meeting_over(report: &Report, bot_id: &str) -> bool {
    report.bot_id.as_deref() == Some(bot_id)
        && report.trigger.as_deref() == Some("bot.state_change")
        && matches!(report.new_state.as_deref(), Some("ended" | "fatal_error"))
}

/// Prints deliveries until Ctrl-C or SIGTERM, and the footer when the demo meeting ends.
async fn follow(
    mut reports: mpsc::Receiver<Report>,
    api: &DemoApi,
    bot_id: &str,
    speed: f64,
) -> Result<(), ListenError> {
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut footer_shown = false;
    loop {
        let report = tokio::select! {
            () = &mut stop => return Ok(()),
            report = reports.recv() => report,
        };
        let Some(report) = report else {
            return Ok(());
        };
        print_line(&render(&report, Format::Text))?;
        if !footer_shown && meeting_over(&report, bot_id) {
            footer_shown = true;
            print_footer(api, speed)?;
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Creates the webhook and the bot, then prints until told to stop.
async fn drive(
    api: &DemoApi,
    project: &DemoProject,
    receiver_url: &str,
    reports: mpsc::Receiver<Report>,
    args: &DemoArgs,
    dir: &Path,
) -> Result<(), DemoError> {
    api.create_webhook(receiver_url).await?;
    let bot_id = api
        .create_bot(&format!("sandbox://standup?speed={}", args.speed))
        .await?;
    print_header(api, project, receiver_url, &bot_id, dir)?;
    follow(reports, api, &bot_id, args.speed).await?;
    Ok(())
}

pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let dir = tempfile::Builder::new()
        .prefix("meetwire-demo-")
        .tempdir()
        .map_err(DemoError::TempDir)?;
    let (sealing, _) = SealingKey::generate();
    let (store, project) = create_store(dir.path(), &sealing).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(DemoError::Server)?;
    let (reports_tx, reports_rx) = mpsc::channel(256);
    let receiver_config = ReceiverConfig {
        keys: vec![project.secret.as_bytes().to_vec()],
        path: "/".into(),
        status: reqwest::StatusCode::OK,
        require_standard: false,
        save: None,
    };
    let receiver = Receiver::bind("127.0.0.1", 0, receiver_config, reports_tx).await?;
    let receiver_url = format!("http://{}/", receiver.local_addr());
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState::new(store, server_config(addr), sealing);
    let server = tokio::spawn(meetwire_server::serve(
        listener,
        None,
        state,
        stopped(stop_rx.clone()),
    ));
    let receiving = tokio::spawn(receiver.serve(stopped(stop_rx)));
    let api = DemoApi {
        client: reqwest::Client::new(),
        base: format!("http://{addr}"),
        api_key: project.api_key.clone(),
    };
    let outcome = drive(&api, &project, &receiver_url, reports_rx, &args, dir.path()).await;
    let _ = stop_tx.send(true);
    let served = server.await;
    let _ = receiving.await;
    let removed = dir.close();
    outcome?;
    served
        .map_err(|e| DemoError::Server(std::io::Error::other(e)))?
        .map_err(DemoError::Server)?;
    removed.map_err(DemoError::TempDir)?;
    eprintln!("demo stopped; its data is removed");
    Ok(())
}
