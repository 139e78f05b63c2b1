//! Retries and failures of webhook delivery, with the real binary and real loopback receivers:
//! the retry schedule and its jitter band, giving up after the budget, resend (one and bulk)
//! with the same idempotency key, and each kind of failed attempt — timeout, redirect,
//! connection refused, 429/503 with `Retry-After`, 410 Gone — plus the SSRF guard and the
//! per-endpoint rate limit.

mod common;

use std::time::{Duration, Instant};

use common::receiver::{
    all_finished, always, closed_port_url, delivery, delivery_log, fail_then_ok, log_record,
    resend, sandbox_script, wait_delivery, wait_delivery_log, Call, Received, Receiver, Reply,
    FAST_LOOPBACK as FAST,
};
use common::{create_project, setup, Api, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

fn flags(extra: &[&'static str]) -> Vec<&'static str> {
    FAST.iter().chain(extra).copied().collect()
}

/// A sandbox bot that records `logs` bot logs (`after_ms` apart) and whose only subscription is
/// a bot-level one to `url` for `bot_logs.update`: exactly one delivery per log.
async fn log_bot(api: &Api, url: &str, logs: usize, after_ms: u64) -> String {
    let records: Vec<Value> = (0..logs).map(|i| log_record(&format!("n={i}"))).collect();
    let bot = api
        .create_bot(json!({
            "meeting_url": "sandbox://custom",
            "sandbox_script": sandbox_script(after_ms, &records),
            "webhooks": [{"url": url, "triggers": ["bot_logs.update"]}],
        }))
        .await;
    bot["id"].as_str().unwrap().to_owned()
}

/// The only delivery of a bot, once it exists.
async fn only_delivery_key(api: &Api, bot: &str) -> String {
    let log = wait_delivery_log(api, &format!("bot_id={bot}"), WAIT, |l| !l.is_empty()).await;
    assert_eq!(log.len(), 1, "{log:?}");
    log[0]["idempotency_key"].as_str().unwrap().to_owned()
}

/// One log bot per code, each subscribed to `{prefix}{code}` on `rx` (all created first, so
/// their deliveries run together); returns each code with its delivery's key once finished.
async fn finished_per_code(
    api: &Api,
    rx: &Receiver,
    prefix: &str,
    codes: &[u16],
) -> Vec<(u16, String, Value)> {
    let mut bots = Vec::new();
    for code in codes {
        let url = rx.url_path(&format!("{prefix}{code}"));
        bots.push(log_bot(api, &url, 1, 0).await);
    }
    let mut finished = Vec::new();
    for (code, bot) in codes.iter().zip(&bots) {
        let key = only_delivery_key(api, bot).await;
        let delivery = wait_finished(api, &key).await;
        finished.push((*code, key, delivery));
    }
    finished
}

async fn wait_finished(api: &Api, key: &str) -> Value {
    wait_delivery(api, key, WAIT, |d| d["status"] != "pending").await
}

fn attempts(d: &Value) -> &Vec<Value> {
    d["attempts"].as_array().expect("attempts")
}

/// Asserts the gap between two arrivals lies in `[lo, hi]` seconds.
fn assert_gap(what: &str, a: &Received, b: &Received, lo: f64, hi: f64) {
    let gap = b.at.duration_since(a.at).as_secs_f64();
    assert!(
        (lo..=hi).contains(&gap),
        "{what}: gap {gap:.3} s is outside [{lo}, {hi}]"
    );
}

/// Every request is the same delivery: the same `webhook-id`, body key and body.
fn assert_same_delivery(got: &[Received], key: &str) {
    for r in got {
        assert_eq!(r.key(), key);
        assert_eq!(r.header("webhook-id"), Some(key), "{:?}", r.headers);
        assert_eq!(r.body, got[0].body, "every attempt sends the same body");
        assert_eq!(r.method, "POST");
    }
}

fn rest_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A first-try success keeps its attempt on the delivery's own row (no attempt row is
/// written): the log must still show it, with the receiver's answer, and keep it when a
/// resend adds a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_try_success_is_one_attempt_in_the_log_and_stays_there_after_a_resend() {
    let rx = Receiver::start(always(Reply::ok().body("thanks"))).await;
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let bot = log_bot(&api, &rx.url(), 1, 0).await;
    let key = only_delivery_key(&api, &bot).await;
    let d = wait_finished(&api, &key).await;
    assert_eq!(d["status"], "success", "{d:#}");
    assert_eq!(d["attempt_count"], 1, "{d:#}");
    let first = attempts(&d).clone();
    assert_eq!(first.len(), 1, "{d:#}");
    assert_eq!(first[0]["status_code"], 200);
    assert_eq!(first[0]["response_body"], "thanks");
    assert_eq!(first[0]["error_kind"], Value::Null);
    assert!(first[0]["duration_ms"].is_number(), "{d:#}");
    assert_eq!(first[0]["attempted_at"], d["last_attempt_at"], "{d:#}");

    let (status, body) = resend(&api, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    rx.wait_for(2, WAIT).await;
    let d = wait_delivery(&api, &key, WAIT, |d| {
        d["status"] == "success" && d["attempt_count"] == 2
    })
    .await;
    let both = attempts(&d);
    assert_eq!(both.len(), 2, "{d:#}");
    assert_eq!(both[0], first[0], "the first attempt, as it was");
    assert_eq!(both[1]["status_code"], 200);
    assert_eq!(both[1]["response_body"], "thanks");
    assert_same_delivery(&rx.received(), &key);
}

/// A bot event's body is made again from its record when it is sent from the database; a
/// change of the bot's metadata must not change the body a delivery was owed with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_delivery_keeps_its_body_after_the_bot_metadata_changes() {
    let rx = Receiver::ok().await;
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let records = [log_record("café \"1\""), log_record("second")];
    let bot = api
        .create_bot(json!({
            "meeting_url": "sandbox://custom",
            "sandbox_script": sandbox_script(0, &records),
            "metadata": {"customer": "acme"},
            "webhooks": [{"url": rx.url(), "triggers": ["bot_logs.update"]}],
        }))
        .await;
    let bot = bot["id"].as_str().unwrap().to_owned();
    let sent = rx.wait_for(2, WAIT).await;
    let first = sent
        .iter()
        .find(|r| r.json()["data"]["message"] == "café \"1\"")
        .expect("the first log's webhook")
        .clone();
    assert_eq!(first.json()["bot_metadata"], json!({"customer": "acme"}));
    wait_delivery_log(&api, &format!("bot_id={bot}"), WAIT, |l| all_finished(l, 2)).await;

    let (status, patched) = api
        .patch(
            &format!("/api/v1/bots/{bot}"),
            &json!({"metadata": {"customer": "globex"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let key = first.key();
    let d = delivery(&api, &key).await;
    assert_eq!(
        d["payload"]["bot_metadata"],
        json!({"customer": "acme"}),
        "{d:#}"
    );
    let (status, body) = resend(&api, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again = rx.wait_for(3, WAIT).await;
    assert_eq!(again[2].key(), key);
    assert_eq!(
        again[2].body, first.body,
        "the body it was owed with, byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_twice_then_succeeds_after_exactly_three_attempts_within_the_jitter_band() {
    let rx = Receiver::start(fail_then_ok(2, 500)).await;
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let bot = log_bot(&api, &rx.url(), 1, 0).await;
    let key = only_delivery_key(&api, &bot).await;

    let got = rx.wait_for(3, WAIT).await;
    let d = wait_finished(&api, &key).await;
    assert_eq!(d["status"], "success", "{d:#}");
    assert_eq!(d["attempt_count"], 3, "{d:#}");
    assert!(d["succeeded_at"].is_string(), "{d:#}");
    let codes: Vec<&Value> = attempts(&d).iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(200)], "{d:#}");
    let kinds: Vec<&Value> = attempts(&d).iter().map(|a| &a["error_kind"]).collect();
    assert_eq!(
        kinds,
        [&json!("http_status"), &json!("http_status"), &Value::Null],
        "{d:#}"
    );
    assert_same_delivery(&got, &key);
    assert_eq!(got[0].json()["data"]["message"], "n=0");

    // Waits of 0.2 s and 0.4 s, ±20 %, counted from the end of the failed attempt; the upper
    // bound allows for the dispatcher's polling and loaded test machines.
    assert_gap("first retry", &got[0], &got[1], 0.16, 0.24 + 0.3);
    assert_gap("second retry", &got[1], &got[2], 0.32, 0.48 + 0.3);

    // Nothing after the success.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rx.count(), 3);
    let d = delivery(&api, &key).await;
    assert_eq!(d["attempt_count"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_gives_up_after_four_attempts_and_resend_keeps_the_key() {
    // A long answer with multi-byte characters: the log keeps its first 500 characters.
    let answer = format!("{}{}", "é".repeat(300), "a".repeat(300));
    let kept: String = answer.chars().take(500).collect();
    let rx = Receiver::start(always(Reply::status(500).body(&answer))).await;
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let bot = log_bot(&api, &rx.url(), 1, 0).await;
    let key = only_delivery_key(&api, &bot).await;

    rx.wait_for(4, WAIT).await;
    let d = wait_finished(&api, &key).await;
    assert_eq!(d["status"], "failure", "{d:#}");
    assert_eq!(d["attempt_count"], 4, "{d:#}");
    assert_eq!(d["succeeded_at"], Value::Null);
    assert_eq!(d["last_status_code"], 500);
    assert_eq!(d["payload"]["idempotency_key"], key.as_str());
    assert_eq!(attempts(&d).len(), 4, "{d:#}");
    for a in attempts(&d) {
        assert_eq!(a["status_code"], 500, "{a}");
        assert_eq!(a["error_kind"], "http_status", "{a}");
        assert!(a["error_message"].is_string(), "{a}");
        assert_eq!(a["response_body"], kept.as_str(), "first 500 characters");
        assert!(
            a["attempted_at"].is_string() && a["duration_ms"].is_i64(),
            "{a}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rx.count(), 4, "no fifth attempt");

    // Listed as failed.
    let failed = delivery_log(&api, &format!("bot_id={bot}&status=failure")).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["idempotency_key"], key.as_str());

    // Resend: the same key, a fresh budget of four attempts.
    let (status, body) = resend(&api, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["idempotency_key"], key.as_str());
    assert_eq!(body["status"], "pending", "{body:#}");
    // A pending delivery cannot be resent again.
    let (status, body) = resend(&api, &key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string(), "{body}");

    let got = rx.wait_for(8, WAIT).await;
    let d = wait_finished(&api, &key).await;
    assert_eq!(d["status"], "failure", "{d:#}");
    assert_eq!(d["attempt_count"], 8, "{d:#}");
    assert_eq!(attempts(&d).len(), 8);
    assert_same_delivery(&got, &key);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rx.count(), 8, "the resent budget is four attempts");

    // Once the receiver recovers, a resend succeeds with the same key.
    rx.set_script(always(Reply::ok()));
    let (status, body) = resend(&api, &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = wait_finished(&api, &key).await;
    assert_eq!(d["status"], "success", "{d:#}");
    assert_eq!(d["attempt_count"], 9);
    let got = rx.received();
    assert_eq!(got.len(), 9);
    assert_same_delivery(&got, &key);

    let (status, _) = api
        .post(
            "/api/v1/webhook_deliveries/00000000-0000-4000-8000-000000000000/resend",
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_resend_resends_the_failed_deliveries_since_a_time() {
    let failing = Receiver::start(always(Reply::status(503))).await;
    let healthy = Receiver::ok().await;
    let mut args = flags(&[]);
    args[1] = "0.1"; // two attempts each, quickly
    let (_dir, project, server) = setup(&args);
    let api = server.api(&project.api_key);

    // A failure from before `since`.
    let before = rest_now();
    let old = log_bot(&api, &failing.url(), 1, 0).await;
    wait_delivery_log(&api, &format!("bot_id={old}"), WAIT, |l| all_finished(l, 1)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = rest_now();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Three failures and a success after it.
    let bot = log_bot(&api, &failing.url(), 3, 0).await;
    let good = log_bot(&api, &healthy.url(), 1, 0).await;
    let failed =
        wait_delivery_log(&api, &format!("bot_id={bot}"), WAIT, |l| all_finished(l, 3)).await;
    assert!(
        failed.iter().all(|d| d["status"] == "failure"),
        "{failed:?}"
    );
    assert!(failed.iter().all(|d| d["attempt_count"] == 2), "{failed:?}");
    let ok = wait_delivery_log(&api, &format!("bot_id={good}"), WAIT, |l| {
        all_finished(l, 1)
    })
    .await;
    assert_eq!(ok[0]["status"], "success");
    let failing_before = failing.count();
    assert_eq!(failing_before, 2 + 3 * 2);

    failing.set_script(always(Reply::ok()));
    let (status, body) = api
        .post(
            "/api/v1/webhook_deliveries/resend",
            &json!({"since": since}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resent"], 3, "{body}");
    let resent = wait_delivery_log(&api, &format!("bot_id={bot}"), WAIT, |l| {
        l.iter().all(|d| d["status"] == "success")
    })
    .await;
    for d in &resent {
        let key = d["idempotency_key"].as_str().unwrap();
        let got = failing.for_key(key);
        assert_eq!(got.len(), 3, "two failed attempts and the resent one");
        assert!(got[2].succeeded());
        assert_same_delivery(&got, key);
        assert_eq!(d["attempt_count"], 3);
    }
    // The older failure and the success were left alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old_log = delivery_log(&api, &format!("bot_id={old}")).await;
    assert_eq!(old_log[0]["status"], "failure");
    assert_eq!(healthy.count(), 1);
    assert_eq!(failing.count(), failing_before + 3);

    // Nothing failed since then any more.
    let (status, body) = api
        .post(
            "/api/v1/webhook_deliveries/resend",
            &json!({"since": since}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resent"], 0, "{body}");
    // A filter: the old bot's failure, from an earlier time.
    let (status, body) = api
        .post(
            "/api/v1/webhook_deliveries/resend",
            &json!({"since": before, "bot_id": old}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resent"], 1, "{body}");
    wait_delivery_log(&api, &format!("bot_id={old}"), WAIT, |l| {
        l[0]["status"] == "success"
    })
    .await;
    let (status, body) = api
        .post(
            "/api/v1/webhook_deliveries/resend",
            &json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// The per-endpoint rate limit paces attempts (a burst of one second's worth, then one per
/// 1/rate s), and a delivery it holds back goes out when its turn comes, not at the
/// dispatcher's next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_rate_limit_paces_attempts_without_waiting_for_the_next_poll() {
    let rx = Receiver::ok().await;
    let (_dir, project, server) = setup(&flags(&[
        "--endpoint-rate-limit",
        "4",
        "--webhook-ordering",
        "false",
        "--poll-interval",
        "20",
    ]));
    let api = server.api(&project.api_key);
    let logs = 8;
    log_bot(&api, &rx.url(), logs, 0).await;
    let got = rx.wait_for(logs, Duration::from_secs(40)).await;
    assert_eq!(got.len(), logs);
    // A burst of one second's worth (4), then one per 0.25 s (less the time from the bucket's
    // first use to the first arrival, on a slow machine up to a good part of 0.15 s).
    for (k, r) in got.iter().enumerate().skip(4) {
        let least = (k - 3) as f64 * 0.25 - 0.15;
        assert_gap("attempts at 4/s", &got[0], r, least, 6.0);
    }
    let span = got[logs - 1].at.duration_since(got[0].at).as_secs_f64();
    assert!(
        span < 6.0,
        "{logs} attempts at 4/s took {span:.1} s: held-back deliveries waited for the 20 s poll"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_slower_than_the_timeout_is_a_timeout() {
    let rx = Receiver::start(always(Reply::ok().after(Duration::from_secs(3)))).await;
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let bot = log_bot(&api, &rx.url(), 1, 0).await;
    let key = only_delivery_key(&api, &bot).await;

    let d = wait_delivery(&api, &key, WAIT, |d| attempts(d).len() >= 2).await;
    assert_eq!(d["status"], "pending", "retried after a timeout: {d:#}");
    for a in &attempts(&d)[..2] {
        assert_eq!(a["error_kind"], "timeout", "{a}");
        assert_eq!(a["status_code"], Value::Null, "{a}");
        let ms = a["duration_ms"].as_i64().unwrap();
        assert!((900..2500).contains(&ms), "a 1 s timeout took {ms} ms");
    }
    let got = rx.wait_for(2, WAIT).await;
    assert_same_delivery(&got, &key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    // `/redirect/CODE` answers CODE with a Location on the same receiver; anything else 200.
    let rx = Receiver::start(always(Reply::status(200))).await;
    let moved = rx.url_path("/moved");
    rx.set_script(std::sync::Arc::new(move |c: &Call| {
        match c.path.strip_prefix("/redirect/") {
            Some(code) => Reply::status(code.parse().unwrap()).header("Location", &moved),
            None => Reply::ok(),
        }
    }));
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let codes = [302_u16, 301, 303, 307, 308];
    for (code, key, d) in finished_per_code(&api, &rx, "/redirect/", &codes).await {
        assert_eq!(d["status"], "failure", "{code}: {d:#}");
        assert_eq!(d["attempt_count"], 4, "{code}: {d:#}");
        for a in attempts(&d) {
            assert_eq!(a["status_code"], code, "{a}");
            assert_eq!(a["error_kind"], "http_status", "{a}");
        }
        assert_eq!(rx.for_key(&key).len(), 4, "{code}");
    }
    let got = rx.received();
    assert_eq!(got.len(), 4 * codes.len());
    assert!(
        got.iter().all(|r| r.path.starts_with("/redirect/")),
        "a Location was followed: {:?}",
        got.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_2xx_is_a_success() {
    let rx = Receiver::start(std::sync::Arc::new(|c: &Call| {
        let code = c.path.trim_start_matches("/status/").parse().unwrap();
        Reply::status(code).body("fine")
    }))
    .await;
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let codes = [200_u16, 201, 202, 204, 299];
    for (code, _, d) in finished_per_code(&api, &rx, "/status/", &codes).await {
        assert_eq!(d["status"], "success", "{code}: {d:#}");
        assert_eq!(d["attempt_count"], 1, "{code}: {d:#}");
        assert_eq!(attempts(&d)[0]["status_code"], code);
        assert_eq!(attempts(&d)[0]["error_kind"], Value::Null);
    }
    assert_eq!(rx.count(), codes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_connect_error_and_is_retried() {
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let bot = log_bot(&api, &closed_port_url(), 1, 0).await;
    let key = only_delivery_key(&api, &bot).await;

    let d = wait_finished(&api, &key).await;
    assert_eq!(d["status"], "failure", "{d:#}");
    assert_eq!(d["attempt_count"], 4, "{d:#}");
    for a in attempts(&d) {
        assert_eq!(a["error_kind"], "connect", "{a}");
        assert_eq!(a["status_code"], Value::Null, "{a}");
        assert!(a["error_message"].is_string(), "{a}");
    }
    assert!(d["last_error"].is_string(), "{d:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_replaces_the_schedule_within_the_maximum() {
    let once = |status: u16, after: &'static str| {
        std::sync::Arc::new(move |c: &Call| {
            if c.nth_for_key == 0 {
                Reply::status(status).header("Retry-After", after)
            } else {
                Reply::ok()
            }
        }) as common::receiver::Script
    };
    let too_many = Receiver::start(once(429, "1")).await;
    let unavailable = Receiver::start(once(503, "1")).await;
    let greedy = Receiver::start(once(429, "3600")).await;
    let eager = Receiver::start(once(429, "0")).await;
    let dated = Receiver::start(once(503, "Thu, 31 Dec 2099 23:59:59 GMT")).await;
    let (_dir, project, server) = setup(&flags(&["--max-retry-after", "1.5"]));
    let api = server.api(&project.api_key);
    let cases = [
        (&too_many, 1.0, "429 Retry-After: 1"),
        (&unavailable, 1.0, "503 Retry-After: 1"),
        (&greedy, 1.5, "429 Retry-After: 3600 capped at 1.5"),
        (&eager, 1.0, "429 Retry-After: 0 held to the 1 s floor"),
        (
            &dated,
            1.5,
            "503 Retry-After: an HTTP date in 2099, capped at 1.5",
        ),
    ];
    let mut bots = Vec::new();
    for (rx, _, _) in &cases {
        bots.push(log_bot(&api, &rx.url(), 1, 0).await);
    }
    for ((rx, wait, what), bot) in cases.iter().zip(&bots) {
        let key = only_delivery_key(&api, bot).await;
        let got = rx.wait_for(2, WAIT).await;
        let d = wait_finished(&api, &key).await;
        assert_eq!(d["status"], "success", "{what}: {d:#}");
        assert_eq!(d["attempt_count"], 2, "{what}: {d:#}");
        assert_same_delivery(&got, &key);
        // Not the schedule's 0.2 s: the receiver's wait (exact, no jitter), or the cap.
        assert_gap(what, &got[0], &got[1], wait - 0.05, wait + 0.5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_fails_the_delivery_at_once_and_disables_the_subscription() {
    let rx = Receiver::start(always(Reply::status(410).body("gone"))).await;
    let (_dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    let (status, sub) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": rx.url(), "triggers": ["bot_logs.update"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    // Two logs 0.3 s apart; the second comes after the subscription is disabled (or waits
    // behind the first and finds it disabled).
    let records = [log_record("n=0"), log_record("n=1")];
    let bot = api
        .create_bot(json!({"meeting_url": "sandbox://custom",
                           "sandbox_script": sandbox_script(300, &records)}))
        .await;
    let bot = bot["id"].as_str().unwrap().to_owned();

    rx.wait_for(1, WAIT).await;
    let first = wait_delivery_log(&api, &format!("bot_id={bot}"), WAIT, |l| {
        l.iter()
            .any(|d| d["status"] == "failure" && d["last_status_code"] == 410)
    })
    .await;
    let first = first.iter().find(|d| d["last_status_code"] == 410).unwrap();
    let d = delivery(&api, first["idempotency_key"].as_str().unwrap()).await;
    assert_eq!(d["attempt_count"], 1, "no retry after 410: {d:#}");
    assert_eq!(attempts(&d)[0]["status_code"], 410);
    assert_eq!(attempts(&d)[0]["response_body"], "gone");

    let (status, sub) = api.get(&format!("/api/v1/webhooks/{sub_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sub["is_active"], false, "{sub}");
    assert!(
        sub["disabled_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{sub}"
    );

    // The second log is stored but never reaches the receiver.
    let start = Instant::now();
    loop {
        let (_, logs) = api.get(&format!("/api/v1/bots/{bot}/logs")).await;
        if logs["results"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(start.elapsed() < WAIT, "second log never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_delivery_log(&api, &format!("bot_id={bot}"), WAIT, |l| all_finished(l, 1)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.count(), 1, "{:?}", rx.received());
    for d in delivery_log(&api, &format!("bot_id={bot}")).await {
        assert_eq!(d["status"], "failure", "{d}");
    }

    // Re-enabling clears the reason.
    let (status, sub) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/webhooks/{sub_id}"),
            Some(&json!({"is_active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sub}");
    assert_eq!(sub["is_active"], true);
    assert_eq!(sub["disabled_reason"], Value::Null, "{sub}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_addresses_are_blocked_unless_allowed() {
    let rx = Receiver::ok().await;
    let port = rx.addr.port();
    // http is allowed, but no network is allow-listed; and the environment names a proxy (the
    // receiver itself), which would connect on the guard's behalf if it were used.
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "test");
    let proxy = format!("http://{}", rx.addr);
    let server = Server::start_with_env(
        dir.path(),
        &[
            "--retry-schedule",
            "0.2,0.4,0.8",
            "--webhook-timeout",
            "1",
            "--allow-http-webhooks",
            "--max-webhooks-per-project",
            "20",
        ],
        &[
            ("HTTP_PROXY", &proxy),
            ("http_proxy", &proxy),
            ("ALL_PROXY", &proxy),
        ],
    );
    let api = server.api(&project.api_key);
    // The receiver's own address and the classic ways of spelling loopback and other internal
    // addresses (decimal, octal, short forms, unspecified, IPv6 forms carrying IPv4).
    let urls = [
        rx.url(),
        format!("http://localhost:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0177.0.0.1:{port}/hook"),
        format!("http://127.1:{port}/hook"),
        format!("http://0.0.0.0:{port}/hook"),
        format!("http://[::]:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://[::ffff:0:127.0.0.1]:{port}/hook"),
        format!("http://[64:ff9b:1::7f00:1]:{port}/hook"),
        format!("http://[64:ff9b::127.0.0.1]:{port}/hook"),
        format!("http://[2002:7f00:1::1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.1.2.3:9/hook".to_owned(),
    ];
    for url in &urls {
        api.subscribe(url, &["bot_logs.update"]).await;
    }
    let bot = api
        .create_bot(json!({"meeting_url": "sandbox://custom",
                           "sandbox_script": sandbox_script(0, &[log_record("n=0")])}))
        .await;
    let bot = bot["id"].as_str().unwrap();
    let log = wait_delivery_log(&api, &format!("bot_id={bot}"), WAIT, |l| {
        all_finished(l, urls.len())
    })
    .await;
    assert_eq!(log.len(), urls.len());
    for summary in &log {
        let d = delivery(&api, summary["idempotency_key"].as_str().unwrap()).await;
        assert_eq!(d["status"], "failure", "{d:#}");
        assert_eq!(
            d["attempt_count"], 1,
            "a refused address is not retried: {d:#}"
        );
        let a = &attempts(&d)[0];
        assert_eq!(a["error_kind"], "blocked_address", "{}: {a}", d["url"]);
        assert_eq!(a["status_code"], Value::Null);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 0, "a blocked webhook reached the receiver");
}

#[tokio::test]
async fn http_webhooks_are_refused_unless_allowed() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    for url in ["http://example.com/hook", "ftp://example.com/hook"] {
        let (status, body) = api
            .post(
                "/api/v1/webhooks",
                &json!({"url": url, "triggers": ["bot.state_change"]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body,
            json!({"error": "webhook URL must start with https://"})
        );
        let (status, body) = api
            .post(
                "/api/v1/bots",
                &json!({"meeting_url": "sandbox://standup",
                        "webhooks": [{"url": url, "triggers": ["bot.state_change"]}]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            body,
            json!({"error": "webhook URL must start with https://"})
        );
    }
    let (_, list) = api.get("/api/v1/webhooks").await;
    assert_eq!(list["results"], json!([]));
    let (_, bots) = api.get("/api/v1/bots").await;
    assert_eq!(bots["results"], json!([]));
    let (status, body) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://example.com/hook", "triggers": ["bot.state_change"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_signing_keys_spend_no_attempt() {
    let rx = Receiver::ok().await;
    let (dir, project, server) = setup(FAST);
    let api = server.api(&project.api_key);
    // The project's sealed secret is damaged behind the server's back.
    let db = rusqlite::Connection::open(dir.path().join("meetwire.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let sealed: Vec<u8> = db
        .query_row("SELECT sealed FROM webhook_secrets", [], |r| r.get(0))
        .unwrap();
    db.execute("UPDATE webhook_secrets SET sealed = x'00'", [])
        .unwrap();

    let bot = log_bot(&api, &rx.url(), 1, 0).await;
    let key = only_delivery_key(&api, &bot).await;
    // Long enough for the whole retry budget, and for the delivery to be taken up again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let d = delivery(&api, &key).await;
    assert_eq!(d["status"], "pending", "{d:#}");
    assert_eq!(d["attempt_count"], 0, "an attempt was spent: {d:#}");
    assert_eq!(rx.count(), 0);

    db.execute("UPDATE webhook_secrets SET sealed = ?1", [&sealed])
        .unwrap();
    let d = wait_finished(&api, &key).await;
    assert_eq!(d["status"], "success", "{d:#}");
    assert_eq!(d["attempt_count"], 1, "{d:#}");
    assert_eq!(rx.count(), 1);
}
