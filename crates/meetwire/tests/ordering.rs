//! Per-bot ordering: with ordering on (the default), each bot's events reach a subscription in
//! the order they happened even when attempts fail at random and are retried; with ordering
//! off, everything is still delivered. Several bots post many events concurrently through the
//! runner API.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::receiver::{
    all_finished, wait_delivery, wait_delivery_log, Call, Received, Receiver, Reply,
};
use common::{create_runner_token, setup, Api};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

const BOTS: usize = 4;
/// Utterances per bot (each bot also has `join_requested` and `joined_meeting`).
const UTTERANCES: usize = 40;
const PER_BOT: usize = UTTERANCES + 2;

fn flags(ordering: bool) -> Vec<&'static str> {
    flags_with_schedule("0.05,0.05,0.05,0.05,0.05,0.05,0.05", ordering)
}

fn flags_with_schedule(schedule: &'static str, ordering: bool) -> Vec<&'static str> {
    vec![
        "--retry-schedule",
        schedule,
        "--webhook-timeout",
        "1",
        "--allow-http-webhooks",
        "--allow-webhook-cidr",
        "127.0.0.0/8",
        "--webhook-ordering",
        if ordering { "true" } else { "false" },
    ]
}

/// Fails about 30 % of attempts (seeded), but never a delivery's fifth or later attempt, so
/// every delivery succeeds within the eight-attempt budget.
fn flaky(seed: u64) -> common::receiver::Script {
    let rng = Mutex::new(StdRng::seed_from_u64(seed));
    Arc::new(move |c: &Call| {
        let fail = rng.lock().unwrap().gen_bool(0.3);
        if fail && c.nth_for_key < 4 {
            Reply::status(500).body("flaky")
        } else {
            Reply::ok()
        }
    })
}

/// The position of an event in its bot's history: `join_requested` 0, `joined_meeting` 1, the
/// utterance `n=K` 2 + K.
fn position(r: &Received) -> usize {
    let v = r.json();
    let data = &v["data"];
    match v["trigger"].as_str().unwrap() {
        "bot.state_change" => match data["event_type"].as_str().unwrap() {
            "join_requested" => 0,
            "joined_meeting" => 1,
            other => panic!("unexpected event {other}"),
        },
        "transcript.update" => {
            let text = data["transcription"]["transcript"].as_str().unwrap();
            2 + text.strip_prefix("n=").unwrap().parse::<usize>().unwrap()
        }
        other => panic!("unexpected trigger {other}"),
    }
}

/// The utterance `n=K` as a runner reports it.
fn utterance(k: usize) -> Value {
    json!({"kind": "utterance", "id": format!("u{k}"), "speaker_name": "Ann",
           "speaker_uuid": "7", "timestamp_ms": 1_700_000_000_000_i64 + k as i64 * 1000,
           "duration_ms": 500, "transcript": format!("n={k}")})
}

/// A project webhook to `url` for transcripts, and one bot claimed by a new runner. Returns
/// the bot's records path and the runner's token.
async fn transcript_stream(
    dir: &std::path::Path,
    server: &common::Server,
    api: &Api,
    url: &str,
) -> (String, String) {
    api.subscribe(url, &["transcript.update"]).await;
    let bot = api
        .create_bot(json!({"meeting_url": "https://meet.example.com/stream"}))
        .await;
    let token = create_runner_token(dir, "stream-runner");
    let (status, body) = server
        .api(&token)
        .post("/runner/v1/bots/claim", &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        format!("/runner/v1/bots/{}/records", bot["id"].as_str().unwrap()),
        token,
    )
}

/// Creates the bots, has one runner claim them all, and posts each bot's events in order
/// (batches of 1 to 3), all bots at once. Returns the bot ids.
async fn drive(dir: &std::path::Path, server: &common::Server, api: &Api) -> Vec<String> {
    let mut bots = BTreeSet::new();
    for i in 0..BOTS {
        let bot = api
            .create_bot(json!({"meeting_url": format!("https://meet.example.com/order-{i}")}))
            .await;
        bots.insert(bot["id"].as_str().unwrap().to_owned());
    }
    let runner = server.api(&create_runner_token(dir, "ordering-runner"));
    let mut claimed = BTreeSet::new();
    for _ in 0..BOTS {
        let (status, body) = runner.post("/runner/v1/bots/claim", &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        claimed.insert(body["bot"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(claimed, bots);

    let mut tasks = Vec::new();
    for (b, bot) in bots.iter().enumerate() {
        let runner = runner.clone();
        let bot = bot.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/runner/v1/bots/{bot}/records");
            let (status, body) = runner
                .post(
                    &path,
                    &json!({"records": [
                    {"kind": "bot_event", "id": "joined", "event_type": "joined_meeting"}]}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let mut rng = StdRng::seed_from_u64(b as u64);
            let mut n = 0;
            while n < UTTERANCES {
                let size = rng.gen_range(1..=3).min(UTTERANCES - n);
                let records: Vec<Value> = (n..n + size).map(utterance).collect();
                let (status, body) = runner.post(&path, &json!({"records": records})).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                assert_eq!(body["stored"], size, "{body}");
                n += size;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    bots.into_iter().collect()
}

/// Runs the scenario; returns every request the receiver got, by bot.
async fn scenario(ordering: bool, seed: u64) -> BTreeMap<String, Vec<Received>> {
    let rx = Receiver::start(flaky(seed)).await;
    let (dir, project, server) = setup(&flags(ordering));
    let api = server.api(&project.api_key);
    api.subscribe(&rx.url(), &["bot.state_change", "transcript.update"])
        .await;
    let bots = drive(dir.path(), &server, &api).await;

    let total = BOTS * PER_BOT;
    rx.wait_until(Duration::from_secs(45), "every event delivered", |got| {
        let mut firsts = std::collections::HashSet::new();
        got.iter().filter(|r| r.succeeded()).for_each(|r| {
            firsts.insert(r.key());
        });
        firsts.len() >= total
    })
    .await;
    let log = wait_delivery_log(&api, "", Duration::from_secs(10), |l| {
        all_finished(l, total)
    })
    .await;
    assert_eq!(log.len(), total);
    assert!(log.iter().all(|d| d["status"] == "success"), "{log:?}");

    let got = rx.received();
    let failures = got.iter().filter(|r| !r.succeeded()).count();
    assert!(
        failures > 10,
        "only {failures} failed attempts: retries were not exercised"
    );
    let mut by_bot: BTreeMap<String, Vec<Received>> =
        bots.iter().map(|b| (b.clone(), Vec::new())).collect();
    for r in got {
        by_bot.get_mut(&r.bot_id()).expect("a known bot").push(r);
    }
    // Everything arrived successfully, once per event.
    for (bot, requests) in &by_bot {
        let mut firsts: HashMap<String, usize> = HashMap::new();
        for r in requests.iter().filter(|r| r.succeeded()) {
            firsts.entry(r.key()).or_insert_with(|| position(r));
        }
        let positions: BTreeSet<usize> = firsts.values().copied().collect();
        assert_eq!(firsts.len(), PER_BOT, "{bot}: one key per event");
        assert_eq!(
            positions,
            (0..PER_BOT).collect(),
            "{bot}: every event delivered"
        );
    }
    by_bot
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bots_events_arrive_in_order_despite_failures_and_retries() {
    let by_bot = scenario(true, 17).await;
    for (bot, requests) in &by_bot {
        // The first successful receipt of each key, in arrival order, is in event order.
        let mut seen = BTreeSet::new();
        let firsts: Vec<usize> = requests
            .iter()
            .filter(|r| r.succeeded() && seen.insert(r.key()))
            .map(position)
            .collect();
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_eq!(firsts, sorted, "{bot}: events arrived out of order");
        // Stronger: no attempt of an event is made before every earlier event of the bot was
        // received successfully (a later delivery waits while an earlier one is pending).
        let mut delivered = 0; // positions 0..delivered have succeeded
        let mut done = BTreeSet::new();
        for r in requests {
            let p = position(r);
            assert!(
                p <= delivered,
                "{bot}: an attempt of event {p} was made before event {delivered} was delivered"
            );
            if r.succeeded() {
                done.insert(p);
                while done.contains(&delivered) {
                    delivered += 1;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ordering_off_everything_is_still_delivered() {
    // The assertions of `scenario` (every event delivered once per key, all successes) are
    // the test; no order is required.
    let by_bot = scenario(false, 29).await;
    assert_eq!(by_bot.len(), BOTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_failures_of_a_stream_go_out_again_one_at_a_time_in_event_order() {
    const EVENTS: usize = 12;
    let rx = Receiver::start(common::receiver::always(Reply::status(500))).await;
    // One quick retry: every delivery has failed for good within moments.
    let (dir, project, server) = setup(&flags_with_schedule("0.05", true));
    let api = server.api(&project.api_key);
    let (path, token) = transcript_stream(dir.path(), &server, &api, &rx.url()).await;
    let records: Vec<Value> = (0..EVENTS).map(utterance).collect();
    let (status, body) = server
        .api(&token)
        .post(&path, &json!({"records": records}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = wait_delivery_log(&api, "", Duration::from_secs(20), |l| {
        all_finished(l, EVENTS)
    })
    .await;
    assert!(log.iter().all(|d| d["status"] == "failure"), "{log:#?}");

    // The receiver recovers, slowly: each answer takes 40 ms, so deliveries sent together
    // would arrive together.
    let before = rx.count();
    rx.set_script(common::receiver::always(
        Reply::ok().after(Duration::from_millis(40)),
    ));
    let (status, body) = api
        .post(
            "/api/v1/webhook_deliveries/resend",
            &json!({"since": "2000-01-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resent"], EVENTS, "{body}");
    rx.wait_for(before + EVENTS, Duration::from_secs(20)).await;
    let again = &rx.received()[before..];
    let positions: Vec<usize> = again.iter().map(position).collect();
    assert_eq!(
        positions,
        (2..EVENTS + 2).collect::<Vec<_>>(),
        "resent in event order"
    );
    for pair in again.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(35),
            "event {} was sent {gap:?} after event {}, before its answer",
            position(&pair[1]),
            position(&pair[0])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_with_ordering_on_new_events_wait_behind_older_pending_ones() {
    // The first attempt of the first utterance fails; its retry comes 2 s later.
    let rx = Receiver::start(Arc::new(|c: &Call| {
        if c.nth_for_key == 0 && c.json["data"]["transcription"]["transcript"] == "n=0" {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    }))
    .await;
    let server_flags = |ordering: &'static str| {
        vec![
            "--retry-schedule",
            "2",
            "--allow-http-webhooks",
            "--allow-webhook-cidr",
            "127.0.0.0/8",
            "--webhook-ordering",
            ordering,
        ]
    };
    let (dir, project, mut server) = setup(&server_flags("false"));
    let api = server.api(&project.api_key);
    let (path, token) = transcript_stream(dir.path(), &server, &api, &rx.url()).await;
    let one = |k: usize| json!({"records": [utterance(k)]});
    let (status, body) = server.api(&token).post(&path, &one(0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = rx.wait_for(1, Duration::from_secs(10)).await[0].key();
    // Its failed attempt recorded (killed before that, it would stay claimed for its lease).
    wait_delivery(&api, &first, Duration::from_secs(10), |d| {
        d["attempt_count"] == 1
    })
    .await;

    // Restarted with ordering on while the first utterance waits for its retry.
    server.kill();
    let server = common::Server::start(dir.path(), &server_flags("true"));
    let runner = server.api(&token);
    for k in [1, 2] {
        let (status, body) = runner.post(&path, &one(k)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let got = rx.wait_for(4, Duration::from_secs(15)).await;
    let delivered: Vec<usize> = got.iter().filter(|r| r.succeeded()).map(position).collect();
    assert_eq!(delivered, vec![2, 3, 4], "in event order after the restart");
}
