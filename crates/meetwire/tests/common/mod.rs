//! Test harness: the real `meetwire` binary on a random loopback port over a real SQLite file,
//! driven over HTTP like a user would.
#![allow(dead_code)]

pub mod feed;
pub mod providers;
pub mod receiver;
pub mod ui;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_meetwire");

/// A running `meetwire serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    /// Every line the server printed on stdout so far.
    output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on `data_dir` with extra flags and waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Like [`Server::start`], with extra environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::spawn(Command::new(BIN), data_dir, extra, env)
    }

    /// Like [`Server::start`], started as `ulimit -n LIMIT && meetwire serve …` would start it
    /// (soft and hard open-files limit both `limit`).
    pub fn start_with_open_files_limit(data_dir: &Path, extra: &[&str], limit: u64) -> Server {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
            BIN,
        ]);
        Self::spawn(command, data_dir, extra, &[])
    }

    fn spawn(
        mut command: Command,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        // A short poll by default, so tests do not wait on timers; a test may set its own.
        let poll = if extra.contains(&"--poll-interval") {
            &[][..]
        } else {
            &["--poll-interval", "0.1"][..]
        };
        let mut child = command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(poll)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("MEETWIRE_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn meetwire");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let output = Arc::new(Mutex::new(Vec::new()));
        let kept = output.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                if !sent {
                    if let Some(url) = line.split("listening on ").nth(1) {
                        let _ = tx.send(url.trim().to_owned());
                        sent = true;
                    }
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not report its address");
        Server {
            child,
            base,
            data_dir: data_dir.to_owned(),
            output,
        }
    }

    /// The first stdout line containing `needle`, waiting up to 10 s for it.
    pub fn printed(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self
                .output
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the server never printed {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().expect("wait")
    }

    /// Sends the signal `kill -<name>` names, without waiting.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
    }

    pub fn api(&self, key: &str) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: self.base.clone(),
            auth: Some(format!("Token {key}")),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A project made with `meetwire admin create-project --json`.
pub struct Project {
    pub id: String,
    pub api_key: String,
    pub webhook_secret: String,
}

pub fn admin(data_dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(data_dir)
        .env("MEETWIRE_LOG", "warn")
        .output()
        .expect("run admin");
    assert!(
        out.status.success(),
        "admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("admin prints JSON")
}

pub fn create_project(data_dir: &Path, name: &str) -> Project {
    let v = admin(data_dir, &["create-project", "--name", name]);
    Project {
        id: v["project_id"].as_str().unwrap().to_owned(),
        api_key: v["api_key"].as_str().unwrap().to_owned(),
        webhook_secret: v["webhook_secret"].as_str().unwrap().to_owned(),
    }
}

pub fn create_runner_token(data_dir: &Path, name: &str) -> String {
    let v = admin(data_dir, &["create-runner-token", "--name", name]);
    v["runner_token"].as_str().unwrap().to_owned()
}

/// A fresh data directory with a project, and a server on it.
pub fn setup(extra: &[&str]) -> (tempfile::TempDir, Project, Server) {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "test");
    let server = Server::start(dir.path(), extra);
    (dir, project, server)
}

/// An HTTP client with an optional `Authorization` header.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub auth: Option<String>,
}

impl Api {
    pub fn with_auth(&self, auth: Option<&str>) -> Api {
        Api {
            auth: auth.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Sends a request; the body is JSON when given. Returns the status and the JSON body
    /// (`Value::Null` when empty or not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Sends raw bytes as the body with the given content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates a bot and returns its object, asserting 201.
    pub async fn create_bot(&self, body: Value) -> Value {
        let (status, bot) = self.post("/api/v1/bots", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{bot}");
        bot
    }

    /// Polls the bot until `done` holds, or panics after `timeout`.
    pub async fn wait_bot(
        &self,
        bot_id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (status, bot) = self.get(&format!("/api/v1/bots/{bot_id}")).await;
            assert_eq!(status, StatusCode::OK, "{bot}");
            if done(&bot) {
                return bot;
            }
            assert!(start.elapsed() < timeout, "timed out waiting on bot: {bot}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The event types of a bot object, in order.
pub fn event_types(bot: &Value) -> Vec<String> {
    bot["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

// ---- Helpers added for the API, bad-input, runner and crash-recovery suites. ----

/// Runs `meetwire admin …` (with `--json` and the data dir) and returns its raw output, without
/// asserting success.
pub fn admin_output(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(data_dir)
        .env("MEETWIRE_LOG", "warn")
        .output()
        .expect("run admin")
}

impl Server {
    /// SIGTERM, then waits up to `timeout` for the process to exit. `None` (and a SIGKILL) if
    /// it did not stop in time.
    pub fn terminate_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        self.exit_within(timeout)
    }

    /// Waits up to `timeout` for the process to exit. `None` (and a SIGKILL) if it did not.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if start.elapsed() > timeout {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A REST-format timestamp (`…Z`, microseconds) `offset_ms` from now (negative: in the past).
pub fn rest_time_from_now(offset_ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    meetwire_core::time::rest_timestamp(&meetwire_core::time::from_micros(now + offset_ms * 1000))
}

impl Api {
    /// Subscribes `url` at the project level to `triggers`, asserting 201; returns the
    /// subscription.
    pub async fn subscribe(&self, url: &str, triggers: &[&str]) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/webhooks",
                &serde_json::json!({"url": url, "triggers": triggers}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {body}");
        body
    }

    /// A receiver subscribed to both calendar triggers at the project level.
    pub async fn calendar_receiver(&self) -> receiver::Receiver {
        let receiver = receiver::Receiver::ok().await;
        self.subscribe(
            &receiver.url(),
            &["calendar.events_update", "calendar.state_change"],
        )
        .await;
        receiver
    }

    /// How many items a bot's list (`transcript`, `chat_messages`, `participant_events`,
    /// `logs`) holds: a plain array, or a page's `results`.
    pub async fn bot_list_len(&self, bot: &str, list: &str) -> usize {
        let (status, body) = self.get(&format!("/api/v1/bots/{bot}/{list}")).await;
        assert_eq!(status, StatusCode::OK, "{list}: {body}");
        match &body {
            Value::Array(items) => items.len(),
            page => page["results"].as_array().map_or(0, Vec::len),
        }
    }

    pub async fn patch(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Follows a list's `next` links from `path` and returns every result, asserting 200s.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut next = Some(format!("{}{path}", self.base));
        while let Some(url) = next {
            let rel = url
                .strip_prefix(&self.base)
                .unwrap_or_else(|| panic!("link {url} is not on {}", self.base));
            let (status, page) = self.get(rel).await;
            assert_eq!(status, StatusCode::OK, "{rel}: {page}");
            all.extend(page["results"].as_array().expect("results").iter().cloned());
            next = page["next"].as_str().map(str::to_owned);
        }
        all
    }

    /// Every bot of the caller's project, newest first.
    pub async fn all_bots(&self) -> Vec<Value> {
        self.list_all("/api/v1/bots?page_size=100").await
    }
}

/// `2025-01-01T12:00:00+00:00`, or with `.123456` before the offset (webhook timestamps).
pub fn is_webhook_time(s: &str) -> bool {
    let Some(t) = s.strip_suffix("+00:00") else {
        return false;
    };
    let (main, fraction) = match t.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (t, None),
    };
    chrono::NaiveDateTime::parse_from_str(main, "%Y-%m-%dT%H:%M:%S").is_ok()
        && fraction.is_none_or(|f| f.len() == 6 && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Every bot trigger of the contract.
pub const BOT_TRIGGERS: [&str; 6] = [
    "bot.state_change",
    "transcript.update",
    "chat_messages.update",
    "participant_events.join_leave",
    "participant_events.speech_start_stop",
    "bot_logs.update",
];

/// Creates a bot in a quick sandbox meeting (with `extra` fields, e.g. its own `webhooks`)
/// and waits until it has ended; returns its id.
pub async fn ended_sandbox_bot(api: &Api, extra: Value) -> String {
    let mut body = serde_json::json!({"meeting_url": "sandbox://standup?speed=20"});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    let bot = api.create_bot(body).await;
    let id = bot["id"].as_str().unwrap().to_owned();
    api.wait_bot(&id, Duration::from_secs(60), |b| b["state"] == "ended")
        .await;
    id
}
