//! Signatures as receivers check them: every trigger a bot produces is verified with Attendee's
//! documented method (parse the body, re-serialise canonically, HMAC-SHA256 with the
//! base64-decoded secret) run by real Python, plus the raw-body HMAC and the Standard Webhooks
//! header; the envelope and `data` shapes of the contract; secret rotation with its overlap
//! window; and the per-project switch for the Standard Webhooks headers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::receiver::{
    all_finished, log_record, sandbox_script, wait_delivery_log, Received, Receiver,
    FAST_LOOPBACK as LOOPBACK,
};
use common::{create_runner_token, is_webhook_time, setup, Api, BOT_TRIGGERS};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// Verifies each case with Python's `json`, `hmac`, `hashlib` and `base64`, exactly as an
/// Attendee receiver does, and the Standard Webhooks header as its libraries do.
const VERIFY_PY: &str = r#"
import base64, hashlib, hmac, json, sys

def b64_hmac(key, text):
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode("ascii")

cases = json.load(open(sys.argv[1], encoding="utf-8"))
results = []
for c in cases:
    problems = []
    body = c["body"]
    obj = json.loads(body)
    canonical = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    secret = base64.b64decode(c["secret"])
    if len(secret) != 32:
        problems.append("secret is %d bytes" % len(secret))
    # Attendee's documented verification: re-canonicalise, then HMAC.
    expected = b64_hmac(secret, canonical)
    got = c["x_webhook_signature"] or ""
    if not hmac.compare_digest(expected, got):
        problems.append("X-Webhook-Signature %r != %r" % (got, expected))
    # Receivers that HMAC the raw body get the same answer: the body is the canonical form.
    if b64_hmac(secret, body) != expected:
        problems.append("raw-body HMAC differs from the canonical HMAC")
    if canonical != body:
        problems.append("body is not Python's canonical form: %r vs %r" % (body, canonical))
    for other in c.get("not_secrets", []):
        if b64_hmac(base64.b64decode(other), canonical) == got:
            problems.append("X-Webhook-Signature verifies with a retired secret")
    if c.get("whsec") is not None:
        header = c["webhook_signature"] or ""
        entries = header.split(" ")
        if len(entries) != c["entries"]:
            problems.append("webhook-signature has %d entries, expected %d: %r" % (len(entries), c["entries"], header))
        for w in c["whsec"]:
            if not w.startswith("whsec_"):
                problems.append("not a whsec secret: %r" % w)
                continue
            key = base64.b64decode(w[len("whsec_"):])
            signed = "%s.%s.%s" % (c["webhook_id"], c["webhook_timestamp"], body)
            v1 = "v1," + b64_hmac(key, signed)
            if v1 not in entries:
                problems.append("no webhook-signature entry for %s…: %r not in %r" % (w[:10], v1, header))
    results.append({"name": c["name"], "problems": problems})
print(json.dumps(results))
"#;

/// One verification case for [`verify_with_python`].
fn case(
    name: &str,
    r: &Received,
    secret: &str,
    not_secrets: &[&str],
    whsec: Option<&[String]>,
) -> Value {
    let mut c = json!({
        "name": name,
        "body": r.body_str(),
        "secret": secret,
        "not_secrets": not_secrets,
        "x_webhook_signature": r.header("x-webhook-signature"),
        "webhook_id": r.header("webhook-id"),
        "webhook_timestamp": r.header("webhook-timestamp"),
        "webhook_signature": r.header("webhook-signature"),
    });
    if let Some(whsec) = whsec {
        c["whsec"] = json!(whsec);
        c["entries"] = json!(whsec.len());
    }
    c
}

/// Runs all cases through one `python3` process; fails the test on any problem.
fn verify_with_python(cases: &[Value]) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("verify.py");
    let data = dir.path().join("cases.json");
    std::fs::write(&script, VERIFY_PY).unwrap();
    std::fs::write(&data, serde_json::to_string(cases).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .arg(&data)
        .output()
        .expect("python3 is needed to verify signatures the way Attendee receivers do");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("python prints JSON");
    assert_eq!(results.len(), cases.len());
    let failed: Vec<&Value> = results
        .iter()
        .filter(|r| !r["problems"].as_array().unwrap().is_empty())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} deliveries failed verification:\n{}",
        failed.len(),
        cases.len(),
        serde_json::to_string_pretty(&failed).unwrap()
    );
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

/// The `data` shape of spec section 5 for each trigger.
fn check_data(trigger: &str, data: &Value) {
    let what = format!("{trigger}: {data}");
    match trigger {
        "bot.state_change" => {
            assert_eq!(
                keys(data),
                set(&[
                    "event_type",
                    "event_sub_type",
                    "event_metadata",
                    "old_state",
                    "new_state",
                    "created_at"
                ]),
                "{what}"
            );
            assert!(data["event_type"].is_string(), "{what}");
            assert!(data["event_metadata"].is_object(), "{what}");
            assert!(
                data["event_sub_type"].is_null() || data["event_sub_type"].is_string(),
                "{what}"
            );
            assert!(
                is_webhook_time(data["created_at"].as_str().unwrap()),
                "{what}"
            );
        }
        "transcript.update" => {
            assert_eq!(
                keys(data),
                set(&[
                    "speaker_name",
                    "speaker_uuid",
                    "speaker_user_uuid",
                    "speaker_is_host",
                    "timestamp_ms",
                    "duration_ms",
                    "transcription"
                ]),
                "{what}"
            );
            assert!(data["speaker_is_host"].is_boolean(), "{what}");
            assert!(
                data["timestamp_ms"].is_i64() && data["duration_ms"].is_i64(),
                "{what}"
            );
            let t = &data["transcription"];
            assert!(
                t["transcript"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}"
            );
            let k = keys(t);
            assert!(
                k == set(&["transcript"]) || k == set(&["transcript", "words"]),
                "{what}"
            );
            if let Some(words) = t.get("words") {
                for w in words.as_array().unwrap() {
                    assert_eq!(keys(w), set(&["word", "start_ms", "end_ms"]), "{what}");
                }
            }
        }
        "chat_messages.update" => {
            assert_eq!(
                keys(data),
                set(&[
                    "id",
                    "to",
                    "text",
                    "timestamp",
                    "timestamp_ms",
                    "sender_name",
                    "sender_uuid",
                    "sender_user_uuid",
                    "additional_data"
                ]),
                "{what}"
            );
            assert!(data["id"].as_str().unwrap().starts_with("msg_"), "{what}");
            assert!(
                ["only_bot", "everyone"].contains(&data["to"].as_str().unwrap()),
                "{what}"
            );
            assert_eq!(
                data["timestamp"].as_i64().unwrap(),
                data["timestamp_ms"].as_i64().unwrap() / 1000,
                "{what}"
            );
            assert!(data["additional_data"].is_object(), "{what}");
        }
        "participant_events.join_leave" | "participant_events.speech_start_stop" => {
            assert_eq!(
                keys(data),
                set(&[
                    "id",
                    "participant_name",
                    "participant_uuid",
                    "participant_user_uuid",
                    "participant_is_host",
                    "event_type",
                    "event_data",
                    "timestamp_ms"
                ]),
                "{what}"
            );
            assert!(data["id"].as_str().unwrap().starts_with("pe_"), "{what}");
            let kind = data["event_type"].as_str().unwrap();
            if trigger == "participant_events.join_leave" {
                assert!(["join", "leave"].contains(&kind), "{what}");
                assert_eq!(data["event_data"], json!({}), "{what}");
            } else {
                assert!(["speech_start", "speech_stop"].contains(&kind), "{what}");
                assert!(data["event_data"].is_object(), "{what}");
            }
            assert_ne!(
                data["participant_name"], "Meeting Bot",
                "the bot's own: {what}"
            );
            assert!(data["timestamp_ms"].is_i64(), "{what}");
        }
        "bot_logs.update" => {
            assert_eq!(
                keys(data),
                set(&["id", "level", "entry_type", "message", "created_at"]),
                "{what}"
            );
            assert!(data["id"].as_str().unwrap().starts_with("log_"), "{what}");
            assert!(
                ["debug", "info", "warning", "error"].contains(&data["level"].as_str().unwrap()),
                "{what}"
            );
            assert!(
                is_webhook_time(data["created_at"].as_str().unwrap()),
                "{what}"
            );
        }
        other => panic!("unexpected trigger {other}"),
    }
}

/// Headers every delivery carries.
fn check_headers(r: &Received, standard_webhooks: bool) {
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{:?}",
        r.headers
    );
    let agent = r.header("user-agent").unwrap_or_default();
    assert!(agent.contains("meetwire"), "User-Agent {agent:?}");
    let version = agent.split("meetwire/").nth(1).unwrap_or_default();
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "User-Agent {agent:?} names no version"
    );
    assert!(r.header("x-webhook-signature").is_some(), "{:?}", r.headers);
    let sw = ["webhook-id", "webhook-timestamp", "webhook-signature"];
    if standard_webhooks {
        assert_eq!(r.header("webhook-id"), Some(r.key().as_str()));
        let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!(
            (now - 120..=now + 5).contains(&ts),
            "webhook-timestamp {ts} vs now {now}"
        );
        assert!(r.header("webhook-signature").unwrap().starts_with("v1,"));
    } else {
        for h in sw {
            assert!(
                r.header(h).is_none(),
                "{h} sent with standard_webhooks off: {:?}",
                r.headers
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_trigger_verifies_with_attendees_python_method() {
    let rx = Receiver::ok().await;
    let (dir, project, server) = setup(LOOPBACK);
    let api = server.api(&project.api_key);
    let (status, body) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": rx.url(), "triggers": BOT_TRIGGERS}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Metadata that exercises the canonical form: non-ASCII, escapes, control characters,
    // astral characters and key order by code point.
    let metadata = json!({
        "customer": "acme",
        "note": "line1\nline2\t\u{1}\u{1f} «ünï» 🎉 \u{2028} </script> \\ \"q\"",
        "zé": "1", "z": "2", "Z": "3", "\u{ff61}": "4", "🎉": "5", "": "6",
    });
    let bot = api
        .create_bot(json!({"meeting_url": "sandbox://standup?speed=50", "metadata": metadata}))
        .await;
    let bot_id = bot["id"].as_str().unwrap().to_owned();
    api.wait_bot(&bot_id, WAIT, |b| b["state"] == "ended").await;
    let log = wait_delivery_log(&api, &format!("bot_id={bot_id}"), WAIT, |l| {
        all_finished(l, 22)
    })
    .await;
    assert!(log.iter().all(|d| d["status"] == "success"), "{log:?}");
    let got = rx.wait_for(log.len(), WAIT).await;
    assert_eq!(got.len(), log.len(), "one request per delivery");

    let mut by_trigger: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut cases = Vec::new();
    let whsec = vec![format!("whsec_{}", project.webhook_secret)];
    for (i, r) in got.iter().enumerate() {
        check_headers(r, true);
        let envelope = r.json();
        assert_eq!(
            keys(&envelope),
            set(&[
                "idempotency_key",
                "bot_id",
                "bot_metadata",
                "trigger",
                "data"
            ]),
            "{envelope}"
        );
        assert_eq!(envelope["bot_id"], bot_id.as_str());
        assert_eq!(envelope["bot_metadata"], metadata);
        let key = envelope["idempotency_key"].as_str().unwrap();
        assert!(uuid_v4(key), "idempotency_key {key}");
        let trigger = envelope["trigger"].as_str().unwrap().to_owned();
        check_data(&trigger, &envelope["data"]);
        cases.push(case(
            &format!("#{i} {trigger}"),
            r,
            &project.webhook_secret,
            &[],
            Some(&whsec),
        ));
        by_trigger
            .entry(trigger)
            .or_default()
            .push(envelope["data"].clone());
    }
    let counts: BTreeMap<&str, usize> = by_trigger
        .iter()
        .map(|(t, d)| (t.as_str(), d.len()))
        .collect();
    let expected: BTreeMap<&str, usize> = [
        ("bot.state_change", 6),
        ("transcript.update", 4),
        ("chat_messages.update", 1),
        ("participant_events.join_leave", 4),
        ("participant_events.speech_start_stop", 6),
        ("bot_logs.update", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);

    // A few contract details of the state changes.
    let states = &by_trigger["bot.state_change"];
    let join = states
        .iter()
        .find(|d| d["event_type"] == "join_requested")
        .unwrap();
    assert_eq!(join["old_state"], "ready");
    assert_eq!(join["new_state"], "joining");
    assert_eq!(join["event_metadata"], json!({"source": "api"}));
    let done = states
        .iter()
        .find(|d| d["event_type"] == "post_processing_completed")
        .unwrap();
    assert_eq!(
        (&done["old_state"], &done["new_state"]),
        (&json!("post_processing"), &json!("ended"))
    );
    assert!(
        done["event_metadata"]["bot_duration_seconds"].is_number(),
        "{done}"
    );
    assert!(by_trigger["transcript.update"]
        .iter()
        .any(|d| d["transcription"].get("words").is_some()));

    // The secret as the API shows it.
    let (status, secret) = api.get("/api/v1/webhook_secret").await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    assert_eq!(secret["secret"], project.webhook_secret.as_str());
    assert_eq!(secret["whsec"], whsec[0].as_str());

    // A runner-driven bot whose records carry arbitrary JSON (event metadata, chat
    // additional_data, participant event_data): floats in Python's repr form, big integers,
    // control characters, astral characters.
    let odd = json!({
        "floats": [0.1, 1e16, 1e-7, 2.5e-7, 5e-324, 1.7976931348623157e308, -0.0, 100.0, 1e22,
                   1e15, 123456789.123, 0.0001, 1e-5, -1.5, 3.0e10],
        "ints": [0, -1, 9007199254740993_i64, 18446744073709551615_u64, -9223372036854775808_i64],
        "nested": {"b": {"é": [true, false, null, {}, []]},
                   "a": "\u{0}\u{7f}\u{80}\u{9f}\u{ad}\u{feff}\u{10ffff}", "A": "\r\u{8}\u{c}"},
    });
    let runner = server.api(&create_runner_token(dir.path(), "signatures"));
    let live = api
        .create_bot(json!({"meeting_url": "https://meet.example.com/sig", "metadata": {"k": "v"}}))
        .await;
    let live = live["id"].as_str().unwrap().to_owned();
    let (status, claimed) = runner.post("/runner/v1/bots/claim", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["bot"]["id"], live.as_str());
    let (status, body) = runner
        .post(
            &format!("/runner/v1/bots/{live}/records"),
            &json!({"records": [
                {"kind": "bot_event", "id": "e1", "event_type": "joined_meeting",
                 "event_metadata": odd},
                {"kind": "chat_message", "id": "c1", "to": "only_bot", "text": "ünï \"hi\"\n🎉",
                 "timestamp_ms": 1_700_000_000_123_i64, "sender_name": "Zoë", "sender_uuid": "9",
                 "additional_data": odd},
                {"kind": "participant_event", "id": "p1", "participant_name": "Zoë",
                 "participant_uuid": "9", "event_type": "speech_start", "event_data": odd,
                 "timestamp_ms": 1_700_000_000_200_i64},
                {"kind": "utterance", "id": "u1", "speaker_name": "Zoë", "speaker_uuid": "9",
                 "timestamp_ms": 1_700_000_000_300_i64, "duration_ms": 1200,
                 "transcript": "tab\there \u{1} «quotes» \u{2029}",
                 "words": [{"word": "tab", "start_ms": 0, "end_ms": 100}]},
                {"kind": "log", "id": "l1", "level": "warning", "message": "\u{1b}[31mred\u{1b}[0m"},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let live_log = wait_delivery_log(&api, &format!("bot_id={live}"), WAIT, |l| {
        all_finished(l, 6)
    })
    .await;
    assert!(
        live_log.iter().all(|d| d["status"] == "success"),
        "{live_log:?}"
    );
    let all = rx.wait_for(got.len() + 6, WAIT).await;
    for (i, r) in all.iter().enumerate().skip(got.len()) {
        check_headers(r, true);
        let envelope = r.json();
        assert_eq!(envelope["bot_id"], live.as_str());
        assert_eq!(envelope["bot_metadata"], json!({"k": "v"}));
        let trigger = envelope["trigger"].as_str().unwrap().to_owned();
        check_data(&trigger, &envelope["data"]);
        let data = &envelope["data"];
        match trigger.as_str() {
            "bot.state_change" if data["event_type"] == "joined_meeting" => {
                assert_eq!(data["event_metadata"], odd)
            }
            "chat_messages.update" => assert_eq!(data["additional_data"], odd),
            "participant_events.speech_start_stop" => assert_eq!(data["event_data"], odd),
            _ => {}
        }
        cases.push(case(
            &format!("runner #{i} {trigger}"),
            r,
            &project.webhook_secret,
            &[],
            Some(&whsec),
        ));
    }

    verify_with_python(&cases);
}

fn uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && b"89ab".contains(&b[19])
        && s.bytes().enumerate().all(|(i, c)| {
            [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
        })
}

/// Creates a sandbox bot that records one log and returns the request that delivered it.
async fn one_log(api: &Api, rx: &Receiver, message: &str) -> Received {
    let bot = api
        .create_bot(json!({"meeting_url": "sandbox://custom",
                           "sandbox_script": sandbox_script(0, &[log_record(message)])}))
        .await;
    let bot_id = bot["id"].as_str().unwrap().to_owned();
    let got = rx
        .wait_until(WAIT, &format!("the log of {bot_id}"), |r| {
            r.iter().any(|r| r.bot_id() == bot_id)
        })
        .await;
    got.into_iter().find(|r| r.bot_id() == bot_id).unwrap()
}

/// Rotates the project's webhook secret with `overlap_seconds` of overlap.
async fn rotate(api: &Api, overlap_seconds: i64) -> (StatusCode, Value) {
    api.post(
        "/api/v1/webhook_secret/rotate",
        &json!({"overlap_seconds": overlap_seconds}),
    )
    .await
}

fn secret_of(view: &Value) -> String {
    let secret = view["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 44, "{view}");
    assert_eq!(STANDARD.decode(&secret).unwrap().len(), 32);
    assert_eq!(view["whsec"], format!("whsec_{secret}").as_str(), "{view}");
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_signs_with_both_secrets_during_the_overlap_and_headers_can_be_switched_off() {
    let rx = Receiver::ok().await;
    let (_dir, project, server) = setup(LOOPBACK);
    let api = server.api(&project.api_key);
    let (status, body) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": rx.url(), "triggers": ["bot_logs.update"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let whsec = |s: &str| format!("whsec_{s}");

    let (status, view) = api.get("/api/v1/webhook_secret").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let old = secret_of(&view);
    assert_eq!(old, project.webhook_secret);
    assert_eq!(view["retiring"], json!([]));

    let mut cases = Vec::new();
    let r = one_log(&api, &rx, "before rotation").await;
    check_headers(&r, true);
    assert_eq!(
        r.json()["bot_metadata"],
        Value::Null,
        "a bot created without metadata sends null, as Attendee does"
    );
    cases.push(case("before rotation", &r, &old, &[], Some(&[whsec(&old)])));

    // Rotate with an hour of overlap.
    let (status, view) = rotate(&api, 3600).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let new = secret_of(&view);
    assert_ne!(new, old);
    let retiring = view["retiring"].as_array().unwrap();
    assert_eq!(retiring.len(), 1, "{view}");
    assert!(retiring[0]["expires_at"].is_string(), "{view}");
    let (_, again) = api.get("/api/v1/webhook_secret").await;
    assert_eq!(again["secret"], new.as_str());
    assert_eq!(again["whsec"], whsec(&new).as_str());

    let r = one_log(&api, &rx, "during overlap").await;
    check_headers(&r, true);
    let entries: Vec<&str> = r.header("webhook-signature").unwrap().split(' ').collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|e| e.starts_with("v1,")), "{entries:?}");
    cases.push(case(
        "during overlap",
        &r,
        &new,
        &[&old],
        Some(&[whsec(&new), whsec(&old)]),
    ));

    // Standard Webhooks headers off: applies at once on this node.
    let (status, body) = api
        .call(
            Method::PATCH,
            "/api/v1/webhook_settings",
            Some(&json!({"standard_webhooks": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"standard_webhooks": false}));
    let (_, body) = api.get("/api/v1/webhook_settings").await;
    assert_eq!(body, json!({"standard_webhooks": false}));
    let r = one_log(&api, &rx, "standard webhooks off").await;
    check_headers(&r, false);
    cases.push(case("standard webhooks off", &r, &new, &[&old], None));

    // …and on again.
    let (status, body) = api
        .call(
            Method::PATCH,
            "/api/v1/webhook_settings",
            Some(&json!({"standard_webhooks": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = one_log(&api, &rx, "standard webhooks on").await;
    check_headers(&r, true);
    cases.push(case(
        "standard webhooks on",
        &r,
        &new,
        &[&old],
        Some(&[whsec(&new), whsec(&old)]),
    ));

    // A rotation without overlap retires every earlier secret at once.
    let (status, view) = rotate(&api, 0).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let newest = secret_of(&view);
    assert!(newest != new && newest != old);
    let (_, again) = api.get("/api/v1/webhook_secret").await;
    assert_eq!(again["secret"], newest.as_str());
    assert_eq!(again["retiring"], json!([]), "{again}");
    let r = one_log(&api, &rx, "no overlap").await;
    check_headers(&r, true);
    cases.push(case(
        "no overlap",
        &r,
        &newest,
        &[&new, &old],
        Some(&[whsec(&newest)]),
    ));

    let (status, body) = rotate(&api, 8 * 24 * 3600).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .post("/api/v1/webhook_secret/rotate", &json!([60]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an array body: {body}");
    let (_, still) = api.get("/api/v1/webhook_secret").await;
    assert_eq!(
        still["secret"],
        newest.as_str(),
        "a refused rotation changed the secret"
    );

    // Rotating again and again within the overlap keeps the four newest retired secrets.
    for _ in 0..6 {
        let (status, view) = rotate(&api, 3600).await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    let (_, view) = api.get("/api/v1/webhook_secret").await;
    assert_eq!(view["retiring"].as_array().map(Vec::len), Some(4), "{view}");
    let r = one_log(&api, &rx, "after many rotations").await;
    let entries = r.header("webhook-signature").unwrap().split(' ').count();
    assert_eq!(entries, 5, "the active secret and four retiring ones");

    verify_with_python(&cases);
}
