//! The developer tools with the real binary over real HTTP: `listen` checking signatures made
//! here with `meetwire_core::signing`, `verify`'s exit statuses, `demo` showing a meeting's
//! webhooks, and `serve` delivering a whole sandbox meeting to `listen`.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{setup, BIN};
use meetwire_core::canonical::canonical_json;
use meetwire_core::signing::{attendee_signature, standard_webhooks_signature, WebhookSecret};
use meetwire_core::time::{now, webhook_timestamp};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ALL_TRIGGERS: [&str; 8] = [
    "bot.state_change",
    "transcript.update",
    "chat_messages.update",
    "participant_events.join_leave",
    "calendar.events_update",
    "calendar.state_change",
    "bot_logs.update",
    "participant_events.speech_start_stop",
];

/// A running `meetwire` subcommand whose stdout lines arrive on a channel; killed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .env("MEETWIRE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn meetwire");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The next line, or panics after `timeout`.
    fn line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .expect("no output line in time")
    }

    /// SIGTERM, then the exit status (SIGKILL if it does not stop within 20 s).
    fn terminate(&mut self) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `meetwire listen --port 0 --json` with `extra` flags; returns it and its base URL.
fn start_listen(secret: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec!["listen", "--port", "0", "--json", "--secret", secret];
    args.extend_from_slice(extra);
    let proc = Proc::start(&args);
    let first = proc.line(Duration::from_secs(30));
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    (proc, url)
}

fn next_report(listen: &Proc) -> Value {
    let line = listen.line(Duration::from_secs(10));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// A bot event envelope in Attendee's key order, created `age_ms` ago.
fn envelope(key: &str, age_ms: i64) -> Value {
    let created = now() - chrono::Duration::milliseconds(age_ms);
    json!({
        "idempotency_key": key,
        "bot_id": "bot_devtools000001",
        "bot_metadata": {"team": "é"},
        "trigger": "bot.state_change",
        "data": {"event_type": "joined_meeting", "event_sub_type": null, "event_metadata": {},
                 "old_state": "joining", "new_state": "joined_not_recording",
                 "created_at": webhook_timestamp(&created)},
    })
}

/// Headers signing `body` both ways (the Attendee one over `signed`, which is usually `body`).
fn signed_headers(
    secret: &WebhookSecret,
    key: &str,
    signed: &str,
    body: &str,
) -> Vec<(String, String)> {
    let ts = chrono::Utc::now().timestamp();
    vec![
        (
            "X-Webhook-Signature".into(),
            attendee_signature(secret.as_bytes(), signed.as_bytes()),
        ),
        ("webhook-id".into(), key.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        (
            "webhook-signature".into(),
            standard_webhooks_signature(secret.as_bytes(), key, ts, body.as_bytes()),
        ),
    ]
}

async fn post(url: &str, headers: &[(String, String)], body: &str) -> StatusCode {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request.send().await.expect("post").status()
}

#[tokio::test]
async fn listen_verifies_good_deliveries_and_refuses_tampered_ones() {
    let secret = WebhookSecret::generate();
    let (listen, url) = start_listen(&secret.to_base64(), &[]);

    let body = canonical_json(&envelope("key-good", 40));
    let headers = signed_headers(&secret, "key-good", &body, &body);
    assert_eq!(post(&url, &headers, &body).await, StatusCode::OK);
    let report = next_report(&listen);
    assert_eq!(report["trigger"], "bot.state_change");
    assert_eq!(report["idempotency_key"], "key-good");
    assert_eq!(report["bot_id"], "bot_devtools000001");
    assert_eq!(report["calendar_id"], Value::Null);
    assert_eq!(report["attendee_signature"], "valid");
    assert_eq!(report["standard_signature"], "valid");
    assert!(report["received_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(
        report["latency_ms"].as_i64().is_some_and(|ms| ms >= 40),
        "{report}"
    );

    let tampered = body.replace("joined_not_recording", "joined_recording");
    assert_eq!(
        post(&url, &headers, &tampered).await,
        StatusCode::BAD_REQUEST
    );
    let report = next_report(&listen);
    assert_eq!(report["idempotency_key"], "key-good");
    assert_eq!(report["attendee_signature"], "invalid");
    assert_eq!(report["standard_signature"], "invalid");

    // Without the Standard Webhooks headers that check is absent, and the delivery still passes.
    let attendee_only = &headers[..1];
    assert_eq!(post(&url, attendee_only, &body).await, StatusCode::OK);
    let report = next_report(&listen);
    assert_eq!(report["attendee_signature"], "valid");
    assert_eq!(report["standard_signature"], "absent");

    // `--save` keeps each request as the files `verify` reads, and they verify.
    let saved = tempfile::tempdir().unwrap();
    let save_dir = saved.path().join("deliveries");
    let (saving, saving_url) =
        start_listen(&secret.to_base64(), &["--save", save_dir.to_str().unwrap()]);
    assert_eq!(post(&saving_url, &headers, &body).await, StatusCode::OK);
    next_report(&saving);
    let stem = save_dir.join("000001-key-good");
    let (code, out) = verify(
        &[
            "--secret",
            &secret.to_base64(),
            "--body",
            stem.with_extension("body").to_str().unwrap(),
            "--headers",
            stem.with_extension("headers").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0, "a saved delivery verifies: {out}");
    // A second run on the same directory numbers its files after the first's.
    drop(saving);
    let (again, again_url) =
        start_listen(&secret.to_base64(), &["--save", save_dir.to_str().unwrap()]);
    assert_eq!(post(&again_url, &headers, &body).await, StatusCode::OK);
    next_report(&again);
    assert!(save_dir.join("000002-key-good.body").exists());

    // Unless the listener requires them: then their absence is a refusal.
    let (strict, strict_url) = start_listen(&secret.to_base64(), &["--require-standard-webhooks"]);
    assert_eq!(
        post(&strict_url, attendee_only, &body).await,
        StatusCode::BAD_REQUEST
    );
    let report = next_report(&strict);
    assert_eq!(report["attendee_signature"], "valid");
    assert_eq!(report["standard_signature"], "invalid");
    assert_eq!(post(&strict_url, &headers, &body).await, StatusCode::OK);
    assert_eq!(next_report(&strict)["standard_signature"], "valid");

    // Unsigned: refused.
    assert_eq!(post(&url, &[], &body).await, StatusCode::BAD_REQUEST);
    assert_eq!(next_report(&listen)["attendee_signature"], "invalid");

    // Another secret: both wrong.
    let rotated = WebhookSecret::generate();
    let other = signed_headers(&rotated, "key-good", &body, &body);
    assert_eq!(post(&url, &other, &body).await, StatusCode::BAD_REQUEST);
    let report = next_report(&listen);
    assert_eq!(
        (&report["attendee_signature"], &report["standard_signature"]),
        (&json!("invalid"), &json!("invalid"))
    );

    // While a secret rotates, a listener given both accepts deliveries signed by either.
    let both = format!("{},{}", secret.to_base64(), rotated.to_whsec());
    let (listen, url) = start_listen(&both, &[]);
    for headers in [&headers, &other] {
        assert_eq!(post(&url, headers, &body).await, StatusCode::OK);
        let report = next_report(&listen);
        assert_eq!(
            (&report["attendee_signature"], &report["standard_signature"]),
            (&json!("valid"), &json!("valid"))
        );
    }
}

#[tokio::test]
async fn listen_recanonicalises_python_style_bodies() {
    let secret = WebhookSecret::generate();
    // The whsec_ form works too, and --path/--status shape the answers.
    let (listen, url) = start_listen(&secret.to_whsec(), &["--path", "/hooks", "--status", "202"]);
    let hooks = format!("{url}/hooks");

    // As Python's json.dumps(obj) writes it: spaced separators, insertion order, \u escapes.
    let body = r#"{"idempotency_key": "key-py", "bot_id": "bot_devtools000001", "bot_metadata": null, "trigger": "transcript.update", "data": {"speaker_name": "Zo\u00eb", "transcription": {"transcript": "caf\u00e9 \u2014 ok", "words": []}, "timestamp_ms": 1.5e3}}"#;
    let canonical = canonical_json(&serde_json::from_str(body).expect("test body is JSON"));
    assert_ne!(canonical, body);
    let headers = signed_headers(&secret, "key-py", &canonical, body);
    assert_eq!(post(&hooks, &headers, body).await, StatusCode::ACCEPTED);
    let report = next_report(&listen);
    assert_eq!(report["trigger"], "transcript.update");
    assert_eq!(report["idempotency_key"], "key-py");
    assert_eq!(report["attendee_signature"], "valid");
    assert_eq!(report["standard_signature"], "valid");
    assert_eq!(report["latency_ms"], Value::Null);
    assert_eq!(report["status"], 202);

    // Other paths are not deliveries and print nothing.
    assert_eq!(post(&url, &headers, body).await, StatusCode::NOT_FOUND);
    assert!(listen
        .lines
        .recv_timeout(Duration::from_millis(300))
        .is_err());
}

#[test]
fn listen_refuses_a_bad_secret() {
    let out = Command::new(BIN)
        .args(["listen", "--port", "0", "--secret", "c2hvcnQ="])
        .output()
        .expect("run listen");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--secret"), "{stderr}");
}

/// Runs `meetwire verify` with `args` (and `stdin` piped in, if given).
fn verify(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let mut child = Command::new(BIN)
        .arg("verify")
        .args(args)
        .env("MEETWIRE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn verify");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("verify output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.to_str().expect("utf-8 path").to_owned()
}

#[test]
fn verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let secret = WebhookSecret::generate();
    let b64 = secret.to_base64();
    let body = canonical_json(&envelope("key-v", 0));
    let headers = signed_headers(&secret, "key-v", &body, &body);
    let sig = headers[0].1.as_str();
    let body_file = write(dir.path(), "body.json", &body);
    let tampered_file = write(dir.path(), "tampered.json", &body.replace("é", "e"));
    let dump: String = std::iter::once("POST /hooks HTTP/1.1\r\nHost: 127.0.0.1:9\r\n".to_owned())
        .chain(
            headers
                .iter()
                .map(|(n, v)| format!("{}: {v}\r\n", n.to_uppercase())),
        )
        .collect();
    let headers_file = write(dir.path(), "headers.txt", &format!("{dump}\r\n{body}"));

    let (code, out) = verify(
        &["--secret", &b64, "--body", &body_file, "--signature", sig],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("X-Webhook-Signature: valid"), "{out}");
    // Several secrets (a rotation): valid if any of them signed it, in either order.
    let other = WebhookSecret::generate().to_base64();
    for secrets in [format!("{other},{b64}"), format!("{b64},{other}")] {
        let (code, out) = verify(
            &[
                "--secret",
                &secrets,
                "--body",
                &body_file,
                "--signature",
                sig,
            ],
            None,
        );
        assert_eq!(code, 0, "{secrets}: {out}");
    }
    let (code, _) = verify(
        &["--secret", &other, "--body", &body_file, "--signature", sig],
        None,
    );
    assert_eq!(code, 1, "another secret alone");

    let (code, out) = verify(
        &[
            "--secret",
            &b64,
            "--body",
            &tampered_file,
            "--signature",
            sig,
        ],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("X-Webhook-Signature: invalid"), "{out}");

    // Both signatures from a request dump, in either secret form; the body from stdin.
    let (code, out) = verify(
        &[
            "--secret",
            &secret.to_whsec(),
            "--body",
            "-",
            "--headers",
            &headers_file,
        ],
        Some(&body),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("webhook-signature (webhook-id key-v"), "{out}");
    assert_eq!(out.matches(": valid").count(), 2, "{out}");
    let (code, out) = verify(
        &[
            "--secret",
            &b64,
            "--body",
            &tampered_file,
            "--headers",
            &headers_file,
        ],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches(": invalid").count(), 2, "{out}");

    // The Standard Webhooks reference vector (a 24-byte whsec_ secret).
    let vector = write(dir.path(), "vector.json", r#"{"test": 2432232314}"#);
    let standard = [
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "--body",
        &vector,
        "--webhook-id",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "--webhook-timestamp",
        "1614265330",
        "--webhook-signature",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ];
    let (code, out) = verify(&standard, None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("note: webhook-timestamp is") && out.contains("s in the past; a receiver"),
        "a 2021 timestamp is valid but stale: {out}"
    );
    assert!(
        !verify(
            &["--secret", &b64, "--body", "-", "--headers", &headers_file],
            Some(&body)
        )
        .1
        .contains("note:"),
        "a fresh delivery gets no note"
    );
    let mut wrong_time = standard;
    wrong_time[7] = "1614265331";
    assert_eq!(verify(&wrong_time, None).0, 1);

    // Usage errors: nothing to check, an incomplete Standard Webhooks set, a bad secret, a
    // missing file.
    let (code, out) = verify(&["--secret", &b64, "--body", &body_file], None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no signature"), "{out}");
    let (code, out) = verify(
        &[
            "--secret",
            &b64,
            "--body",
            &body_file,
            "--webhook-signature",
            "v1,x",
        ],
        None,
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("webhook-id"), "{out}");
    assert_eq!(
        verify(
            &[
                "--secret",
                "nope!",
                "--body",
                &body_file,
                "--signature",
                sig
            ],
            None
        )
        .0,
        2
    );
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    assert_eq!(
        verify(
            &["--secret", &b64, "--body", missing, "--signature", sig],
            None
        )
        .0,
        2
    );
    assert_eq!(verify(&["--secret", &b64], None).0, 2);
}

#[test]
fn demo_shows_the_standup_webhooks_arriving() {
    let mut demo = Proc::start(&["demo", "--port", "0", "--speed", "50"]);
    let both_valid = |line: &str| line.contains("attendee ✓ standard ✓");
    let mut lines = Vec::new();
    let mut state_change = false;
    let mut transcript = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(state_change && transcript) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = demo
            .lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("demo output so far:\n{}", lines.join("\n")));
        state_change |= line.contains(" bot.state_change ") && both_valid(&line);
        transcript |= line.contains(" transcript.update ") && both_valid(&line);
        lines.push(line);
    }
    let data_dir = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("data directory:"))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no data directory in:\n{}", lines.join("\n")));
    assert!(Path::new(&data_dir).exists());
    assert!(lines
        .iter()
        .any(|l| l.contains("curl -s -H 'Authorization: Token ")));
    assert!(
        !lines.iter().any(|l| l.contains('✗')),
        "{}",
        lines.join("\n")
    );
    let status = demo.terminate().expect("demo stops on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!Path::new(&data_dir).exists(), "{data_dir} was not removed");
}

#[tokio::test]
async fn serve_delivers_a_whole_meeting_to_listen_with_valid_signatures() {
    let (_dir, project, server) = setup(&[
        "--allow-http-webhooks",
        "--allow-webhook-cidr",
        "127.0.0.0/8",
    ]);
    let (listen, url) = start_listen(&project.webhook_secret, &[]);
    let api = server.api(&project.api_key);
    let (status, hook) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": format!("{url}/"), "triggers": ALL_TRIGGERS}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let bot = api
        .create_bot(json!({"meeting_url": "sandbox://standup?speed=50", "bot_name": "E2E"}))
        .await;
    let bot_id = bot["id"].as_str().unwrap().to_owned();
    api.wait_bot(&bot_id, Duration::from_secs(30), |b| b["state"] == "ended")
        .await;

    // Wait until the log says every delivery succeeded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let deliveries = loop {
        let all = api
            .list_all(&format!(
                "/api/v1/webhook_deliveries?bot_id={bot_id}&page_size=100"
            ))
            .await;
        if !all.is_empty() && all.iter().all(|d| d["status"] == "success") {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries not all successful: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: HashMap<String, String> = deliveries
        .iter()
        .map(|d| {
            let key = d["idempotency_key"].as_str().unwrap().to_owned();
            (key, d["trigger"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(expected.values().any(|t| t == "bot.state_change"));
    assert!(expected.values().any(|t| t == "transcript.update"));

    // The listener reported each of them once per attempt, with both signatures valid.
    let mut seen = HashSet::new();
    while seen.len() < expected.len() {
        let report = next_report(&listen);
        assert_eq!(report["attendee_signature"], "valid", "{report}");
        assert_eq!(report["standard_signature"], "valid", "{report}");
        assert_eq!(report["bot_id"], bot_id.as_str(), "{report}");
        let key = report["idempotency_key"].as_str().unwrap().to_owned();
        assert_eq!(
            expected.get(&key).map(String::as_str),
            report["trigger"].as_str(),
            "{report}"
        );
        seen.insert(key);
    }
    assert!(listen
        .lines
        .recv_timeout(Duration::from_millis(300))
        .is_err());
}
