//! Webhook delivery when things go wrong, with the real binary and real loopback receivers:
//! the server is SIGKILLed while events pour in and deliveries are in flight (nothing the API
//! acknowledged is lost, duplicates stay bounded by what was in flight), an endpoint that hangs
//! on every request does not hold up a healthy one, two servers sharing one database split the
//! work without sending anything twice and take over a killed one's claims, and the operator
//! endpoints (`/healthz`, `/readyz`, `/metrics`) say what happened.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::receiver::{
    all_finished, always, delivery_log, wait_delivery_log, Call, Received, Receiver, Reply,
};
use common::{create_runner_token, setup, Api, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::watch;

/// Loopback receivers over plain HTTP are allowed.
const LOOPBACK: &[&str] = &[
    "--allow-http-webhooks",
    "--allow-webhook-cidr",
    "127.0.0.0/8",
];

/// Six quick retries (seven attempts, 0.2 s apart).
const QUICK_RETRIES: &[&str] = &["--retry-schedule", "0.2,0.2,0.2,0.2,0.2,0.2"];

fn flags(extra: &[&'static str]) -> Vec<&'static str> {
    LOOPBACK.iter().chain(extra).copied().collect()
}

/// Subscribes `url` at the project level to `chat_messages.update`.
async fn subscribe_chat(api: &Api, url: &str) {
    api.subscribe(url, &["chat_messages.update"]).await;
}

/// Creates `n` bots, has `runner` claim them all and report each one joined; returns their ids.
async fn joined_bots(api: &Api, runner: &Api, n: usize) -> Vec<String> {
    let mut created = BTreeSet::new();
    for i in 0..n {
        let bot = api
            .create_bot(json!({"meeting_url": format!("https://meet.example.com/crash-{i}")}))
            .await;
        created.insert(bot["id"].as_str().unwrap().to_owned());
    }
    let mut bots = Vec::new();
    for _ in 0..n {
        let (status, body) = runner.post("/runner/v1/bots/claim", &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id = body["bot"]["id"].as_str().unwrap().to_owned();
        let (status, body) = runner
            .post(
                &format!("/runner/v1/bots/{id}/records"),
                &json!({"records": [
                    {"kind": "bot_event", "id": "joined", "event_type": "joined_meeting"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        bots.push(id);
    }
    assert_eq!(
        bots.iter().cloned().collect::<BTreeSet<_>>(),
        created,
        "the runner claimed exactly the bots created"
    );
    bots
}

/// Chat message number `seq` as a runner record; its text carries the number.
fn chat(seq: usize) -> Value {
    json!({"kind": "chat_message", "id": format!("m{seq}"), "to": "everyone",
           "text": format!("msg #{seq}"),
           "timestamp_ms": 1_700_000_000_000_i64 + seq as i64,
           "sender_name": "Poster", "sender_uuid": "u-poster"})
}

/// The number in a delivered chat message's text.
fn seq_of(r: &Received) -> usize {
    let v = r.json();
    assert_eq!(v["trigger"], "chat_messages.update", "{v}");
    let text = v["data"]["text"].as_str().expect("data.text");
    text.strip_prefix("msg #")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected chat text {text:?}"))
}

/// Posts chat events `seqs` to `bot` in one runner request; returns the answer's body.
async fn post_chats(runner: &Api, bot: &str, seqs: impl IntoIterator<Item = usize>) -> Value {
    let records: Vec<Value> = seqs.into_iter().map(chat).collect();
    let (status, body) = runner
        .post(
            &format!("/runner/v1/bots/{bot}/records"),
            &json!({ "records": records }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

// ---- SIGKILL with deliveries in flight. ----

const BOTS: usize = 16;
const EVENTS: usize = 4000;
const POSTERS: usize = 8;
/// The server is killed once this many events were acknowledged.
const KILL_AFTER_ACKS: usize = 1500;
/// Most attempts in flight to one endpoint (the server's default, passed explicitly).
const ENDPOINT_CONCURRENCY: usize = 64;
/// Most deliveries the dispatcher claims per query (the server's default).
const CLAIM_BATCH: usize = 256;

/// The receiver's answer delay for its `nth` request: 150 to 250 ms, so the endpoint's 64
/// places are all taken (about 320 deliveries/s) while events arrive faster than that, and a
/// backlog of owed deliveries builds up behind the attempts in flight.
fn answer_delay(nth: usize) -> Duration {
    Duration::from_millis(150 + (nth % 11) as u64 * 10)
}

/// What the posting tasks saw.
#[derive(Default)]
struct Feed {
    next: AtomicUsize,
    /// (sequence number, server generation) of every event the API acknowledged.
    acked: Mutex<Vec<(usize, u32)>>,
    /// Events whose request failed without an answer (the kill), by generation.
    unanswered: Mutex<Vec<(usize, u32)>>,
    /// Requests that got an HTTP answer other than 200 with `stored: 1`.
    refused: Mutex<Vec<String>>,
}

impl Feed {
    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

/// Posts events (one record per request) until `EVENTS` are used up, against whichever server
/// `base` names. A request that fails without an answer is not acknowledged; the poster then
/// waits for the next server generation before it goes on.
async fn poster(
    client: reqwest::Client,
    token: String,
    bots: Arc<Vec<String>>,
    feed: Arc<Feed>,
    mut base: watch::Receiver<(u32, String)>,
) {
    loop {
        let seq = feed.next.fetch_add(1, Ordering::SeqCst);
        if seq >= EVENTS {
            return;
        }
        let (generation, url) = base.borrow().clone();
        let bot = &bots[seq % bots.len()];
        let sent = client
            .post(format!("{url}/runner/v1/bots/{bot}/records"))
            .header("Authorization", format!("Token {token}"))
            .json(&json!({ "records": [chat(seq)] }))
            .send()
            .await;
        let answer = match sent {
            Ok(resp) => {
                let status = resp.status();
                resp.bytes().await.map(|b| (status, b))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((status, body)) => {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if status == StatusCode::OK && body["stored"] == 1 {
                    feed.acked.lock().unwrap().push((seq, generation));
                } else {
                    feed.refused.lock().unwrap().push(format!(
                        "event {seq} (server {generation}): {status} {body}"
                    ));
                }
            }
            Err(_) => {
                feed.unanswered.lock().unwrap().push((seq, generation));
                // The server is gone: wait (bounded) for its successor.
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    base.wait_for(|(g, _)| *g > generation),
                )
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_deliveries_in_flight_loses_nothing() {
    let rx = Receiver::start(Arc::new(|c: &Call| Reply::ok().after(answer_delay(c.nth)))).await;
    // Ordering off, so up to the endpoint's whole concurrency (not one per bot) is in flight.
    // A 2 s webhook timeout makes the lease (2 × timeout + 5 s = 9 s) after which the killed
    // server's claims are taken up again short enough for this test.
    let server_flags: Vec<&'static str> = flags(QUICK_RETRIES)
        .into_iter()
        .chain([
            "--webhook-ordering",
            "false",
            "--webhook-timeout",
            "2",
            "--endpoint-concurrency",
            "64",
        ])
        .collect();
    let (dir, project, mut server) = setup(&server_flags);
    let api = server.api(&project.api_key);
    subscribe_chat(&api, &rx.url()).await;
    let token = create_runner_token(dir.path(), "crash-runner");
    let runner = server.api(&token);
    let bots = Arc::new(joined_bots(&api, &runner, BOTS).await);

    let feed = Arc::new(Feed::default());
    let (base_tx, base_rx) = watch::channel((0u32, server.base.clone()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let posters: Vec<_> = (0..POSTERS)
        .map(|_| {
            tokio::spawn(poster(
                client.clone(),
                token.clone(),
                bots.clone(),
                feed.clone(),
                base_rx.clone(),
            ))
        })
        .collect();

    // Kill once enough is acknowledged and deliveries are flowing, while posting goes on.
    let started = Instant::now();
    while feed.acked_count() < KILL_AFTER_ACKS || rx.count() < 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no progress before the kill: {} acknowledged, {} received",
            feed.acked_count(),
            rx.count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pending_at_kill = metric_samples(&server).await["meetwire_deliveries_pending"] as usize;
    let posting_for = started.elapsed();
    let killed_at = Instant::now();
    server.kill();
    let kill_took = killed_at.elapsed();
    let acked_at_kill = feed.acked_count();
    let received_at_kill = rx.received();
    // Requests the receiver was still answering when the server died.
    let answering_at_kill = received_at_kill
        .iter()
        .filter(|r| r.at + answer_delay(r.index) > killed_at)
        .count();
    // The kill must catch the server busy: attempts out at the receiver, a backlog behind them.
    assert!(
        feed.next.load(Ordering::SeqCst) < EVENTS,
        "every event was posted before the kill; the kill came too late"
    );
    assert!(
        answering_at_kill > 0 && pending_at_kill > ENDPOINT_CONCURRENCY,
        "the kill caught too little in flight: {answering_at_kill} attempts at the receiver, \
         {pending_at_kill} deliveries pending"
    );

    // Restart on the same data; the posters carry on against the new address.
    let path = dir.path().to_owned();
    let restart_flags = server_flags.clone();
    let server = tokio::task::spawn_blocking(move || Server::start(&path, &restart_flags))
        .await
        .unwrap();
    let down_for = killed_at.elapsed();
    base_tx.send_replace((1, server.base.clone()));
    for p in posters {
        p.await.unwrap();
    }
    let api = server.api(&project.api_key);

    let acked: Vec<(usize, u32)> = feed.acked.lock().unwrap().clone();
    let unanswered: Vec<(usize, u32)> = feed.unanswered.lock().unwrap().clone();
    let refused: Vec<String> = feed.refused.lock().unwrap().clone();
    assert!(
        refused.is_empty(),
        "valid posts were refused:\n{}",
        refused.join("\n")
    );
    assert!(
        unanswered.iter().all(|(_, g)| *g == 0),
        "posts to the restarted server went unanswered: {unanswered:?}"
    );
    let acked_after = acked.iter().filter(|(_, g)| *g == 1).count();
    assert!(
        acked_after > 0,
        "nothing was posted to the restarted server"
    );
    let acked_seqs: BTreeSet<usize> = acked.iter().map(|(s, _)| *s).collect();
    assert_eq!(acked_seqs.len(), acked.len(), "an event acknowledged twice");

    // Every acknowledged event reaches the receiver, at least once.
    let wait_start = Instant::now();
    loop {
        let got: HashSet<usize> = rx.received().iter().map(seq_of).collect();
        let missing: Vec<usize> = acked_seqs
            .iter()
            .filter(|s| !got.contains(s))
            .copied()
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            wait_start.elapsed() < Duration::from_secs(60),
            "{} acknowledged events never delivered (of {}), e.g. {:?}",
            missing.len(),
            acked_seqs.len(),
            &missing[..missing.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_acked_delivered_after = wait_start.elapsed();

    // Nothing is left pending (stored but unacknowledged events included), nothing failed.
    let pending = wait_delivery_log(&api, "status=pending", Duration::from_secs(30), |l| {
        l.is_empty()
    })
    .await;
    assert!(pending.is_empty());
    let log = delivery_log(&api, "").await;
    let not_success: Vec<&Value> = log.iter().filter(|d| d["status"] != "success").collect();
    assert!(not_success.is_empty(), "{not_success:#?}");

    // One key per event, the same on every receipt; the header agrees with the body; every
    // receipt of an event carries the same bytes.
    let got = rx.received();
    let mut by_seq: HashMap<usize, Vec<&Received>> = HashMap::new();
    for r in &got {
        assert_eq!(r.method, "POST");
        assert_eq!(r.answered, 200);
        assert_eq!(
            r.header("webhook-id"),
            Some(r.key().as_str()),
            "webhook-id header vs body idempotency_key: {:?}",
            r.headers
        );
        by_seq.entry(seq_of(r)).or_default().push(r);
    }
    let mut key_to_seq: HashMap<String, usize> = HashMap::new();
    for (seq, receipts) in &by_seq {
        let key = receipts[0].key();
        for r in receipts {
            assert_eq!(r.key(), key, "event {seq} was delivered under two keys");
            assert_eq!(r.body, receipts[0].body, "event {seq}: bodies differ");
        }
        if let Some(other) = key_to_seq.insert(key.clone(), *seq) {
            panic!("key {key} carried events {other} and {seq}");
        }
    }
    // Everything the log holds was received, and nothing else.
    let logged: HashSet<String> = log
        .iter()
        .map(|d| d["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    let received_keys: HashSet<String> = key_to_seq.keys().cloned().collect();
    assert_eq!(log.len(), logged.len(), "a key listed twice in the log");
    assert_eq!(
        logged, received_keys,
        "the delivery log and the receipts disagree"
    );

    let duplicates = got.len() - by_seq.len();
    let stored_unacked = by_seq.keys().filter(|s| !acked_seqs.contains(s)).count();
    println!(
        "crash: {} events acknowledged ({acked_at_kill} before the kill, {acked_after} after), \
         {} unanswered at the kill, {pending_at_kill} deliveries pending just before it, {stored_unacked} stored although unacknowledged; \
         {} receipts before the kill, ~{answering_at_kill} being answered at the kill; \
         posting for {posting_for:?} before the kill, kill took {kill_took:?}, \
         down {down_for:?}; all acknowledged delivered {all_acked_delivered_after:?} after \
         posting ended; {} receipts of {} events: {duplicates} duplicates",
        acked.len(),
        unanswered.len(),
        received_at_kill.len(),
        got.len(),
        by_seq.len(),
    );
    // A duplicate is an attempt the receiver got whose result the killed server had not yet
    // committed: at most the attempts in flight to the one endpoint (its concurrency, 64), plus
    // finished attempts whose results still sat in the result writer's queue or uncommitted
    // batch. The writer drains continuously, so that backlog is allowed one claim batch (256).
    // The restarted server re-sends each of them once when the lease runs out; nothing else
    // may be sent twice (no retries: the receiver always answers 200).
    let bound = ENDPOINT_CONCURRENCY + CLAIM_BATCH;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicate deliveries, more than the {bound} that could have been in flight"
    );
}

// ---- A hanging endpoint next to a healthy one. ----

const HANG_BOTS: usize = 3;
/// Events per bot in each of the two phases (300 events in all).
const HANG_EVENTS_PER_PHASE: usize = 50;

/// Posts events `first..first + HANG_BOTS * HANG_EVENTS_PER_PHASE` (one per request, each bot's
/// share from its own task); returns when each was acknowledged, by number.
async fn post_phase(runner: &Api, bots: &[String], first: usize) -> HashMap<usize, Instant> {
    let mut tasks = Vec::new();
    for (b, bot) in bots.iter().enumerate() {
        let runner = runner.clone();
        let bot = bot.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..HANG_EVENTS_PER_PHASE {
                let seq = first + b * HANG_EVENTS_PER_PHASE + i;
                let body = post_chats(&runner, &bot, [seq]).await;
                assert_eq!(body["stored"], 1, "{body}");
                acked.push((seq, Instant::now()));
            }
            acked
        }));
    }
    let mut acked = HashMap::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_does_not_hold_up_a_healthy_one() {
    // Hangs far longer than the 2 s timeout on every request.
    let hanging = Receiver::start(always(Reply::ok().after(Duration::from_secs(60)))).await;
    let healthy = Receiver::ok().await;
    // Each endpoint takes at most 4 attempts at a time. With ordering off every hanging
    // delivery is due at once (and again 0.2 s after each timeout), so the hanging endpoint
    // stays saturated: a few of its deliveries wait in its queue, the rest are handed back and
    // claimed again over and over. Served serially, 300 attempts 4 at a time would need
    // 300 / 4 × 2 s = 150 s.
    let (dir, project, server) = setup(&flags(&[
        "--retry-schedule",
        "0.2,0.2,0.2,0.2,0.2,0.2",
        "--webhook-timeout",
        "2",
        "--endpoint-concurrency",
        "4",
        "--webhook-ordering",
        "false",
    ]));
    let api = server.api(&project.api_key);
    // The hanging subscription first: its delivery of each event is queued ahead.
    subscribe_chat(&api, &hanging.url()).await;
    subscribe_chat(&api, &healthy.url()).await;
    let runner = server.api(&create_runner_token(dir.path(), "hang-runner"));
    let bots = joined_bots(&api, &runner, HANG_BOTS).await;
    let per_phase = HANG_BOTS * HANG_EVENTS_PER_PHASE;
    let total = 2 * per_phase;
    let distinct = |got: &[Received]| got.iter().map(seq_of).collect::<HashSet<_>>().len();

    // Phase one: a first half, while the hanging endpoint's first attempts are still out.
    let started = Instant::now();
    let mut acked = post_phase(&runner, &bots, 0).await;
    healthy
        .wait_until(Duration::from_secs(15), "the first half", |got| {
            distinct(got) >= per_phase
        })
        .await;
    let first_half_in = started.elapsed();
    // Phase two once attempts at the hanging endpoint have timed out and are being retried
    // (a second wave has arrived there), so the dispatcher is juggling hanging retries.
    hanging
        .wait_until(
            Duration::from_secs(15),
            "a second wave of hanging attempts",
            |got| got.len() > 4,
        )
        .await;
    acked.extend(post_phase(&runner, &bots, per_phase).await);

    let bound = Duration::from_secs(15);
    let got = healthy
        .wait_until(bound, "every event at the healthy endpoint", |got| {
            distinct(got) >= total
        })
        .await;
    let elapsed = started.elapsed();
    let seqs: BTreeSet<usize> = got.iter().map(seq_of).collect();
    assert_eq!(
        seqs,
        (0..total).collect(),
        "the healthy endpoint got every event"
    );
    assert_eq!(got.len(), total, "each event once at the healthy endpoint");
    assert!(got.iter().all(Received::succeeded));
    assert!(
        elapsed < bound,
        "the healthy endpoint took {elapsed:?} for {total} events"
    );
    // No healthy delivery waited on a hanging attempt: each arrived well within one webhook
    // timeout (2 s) of its event being acknowledged.
    let latencies: Vec<Duration> = got
        .iter()
        .map(|r| r.at.saturating_duration_since(acked[&seq_of(r)]))
        .collect();
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(1500),
        "a healthy delivery took {slowest:?} after its event was acknowledged"
    );

    // The hanging endpoint was really tried, never more than 4 at a time: an attempt holds its
    // place for the 2 s timeout, so no 1.5 s window sees more than 4 arrivals.
    let hung = hanging.received();
    assert!(
        hung.len() > 4,
        "the hanging endpoint got only {} requests",
        hung.len()
    );
    for (i, r) in hung.iter().enumerate() {
        let window = hung[i..]
            .iter()
            .take_while(|later| later.at.duration_since(r.at) < Duration::from_millis(1500))
            .count();
        assert!(
            window <= 4,
            "{window} attempts reached the hanging endpoint within 1.5 s (limit 4)"
        );
    }
    println!(
        "hanging: the healthy endpoint had the first {per_phase} events after \
         {first_half_in:?} and all {total} after {elapsed:?} (slowest {slowest:?} after its \
         acknowledgement); the hanging endpoint got {} requests meanwhile",
        hung.len()
    );
}

// ---- A busy endpoint, and the log under sustained load. ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_endpoint_queues_its_deliveries_instead_of_handing_them_back() {
    // Each attempt takes 100 ms and the endpoint takes 2 at a time. One post of 10 events is
    // one commit whose deliveries are all handed to the dispatcher together: 2 start, and the
    // other 8 wait in the endpoint's queue (room for 4 × its limit) rather than going back to
    // the database to be claimed again.
    let slow = Receiver::start(always(Reply::ok().after(Duration::from_millis(100)))).await;
    let (dir, project, server) = setup(&flags(&[
        "--endpoint-concurrency",
        "2",
        "--webhook-ordering",
        "false",
    ]));
    let api = server.api(&project.api_key);
    subscribe_chat(&api, &slow.url()).await;
    let runner = server.api(&create_runner_token(dir.path(), "busy-runner"));
    let bot = joined_bots(&api, &runner, 1).await.remove(0);
    post_chats(&runner, &bot, 0..10).await;
    let got = slow
        .wait_until(Duration::from_secs(10), "all ten events", |got| {
            got.len() >= 10
        })
        .await;
    let seqs: BTreeSet<usize> = got.iter().map(seq_of).collect();
    assert_eq!(seqs, (0..10).collect(), "each event once");
    let metrics = metric_samples(&server).await;
    assert_eq!(
        metrics["meetwire_deliveries_handed_back_total"], 0.0,
        "{metrics:?}"
    );
}

/// Size the write-ahead log may reach: the server restarts it past 16 MiB of frames (4,096
/// pages), plus what commits add before the restart is due.
const LOG_BOUND: u64 = 48 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_sustained_load() {
    // 20,000 events with their deliveries write far more log than the bound (80 MiB measured
    // when the log is never restarted); a background checkpoint alone never lets SQLite start
    // the log over while commits keep coming.
    let receiver = Receiver::ok().await;
    let (dir, project, server) = setup(&flags(&[]));
    let api = server.api(&project.api_key);
    subscribe_chat(&api, &receiver.url()).await;
    let runner = server.api(&create_runner_token(dir.path(), "log-runner"));
    let bots = joined_bots(&api, &runner, 4).await;
    let mut posters = Vec::new();
    for (b, bot) in bots.into_iter().enumerate() {
        let runner = runner.clone();
        posters.push(tokio::spawn(async move {
            for batch in 0..50 {
                let first = (b * 50 + batch) * 100;
                post_chats(&runner, &bot, first..first + 100).await;
            }
        }));
    }
    for poster in posters {
        poster.await.unwrap();
    }
    let log = dir.path().join("meetwire.sqlite3-wal");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size < LOG_BOUND, "the log grew to {} MiB", size >> 20);
}

// ---- Operator endpoints. ----

/// The server's `/metrics` samples, by name with labels.
async fn metric_samples(server: &Server) -> HashMap<String, f64> {
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    samples(&text)
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {l:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a sample value: {l:?}"));
            (name.to_owned(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_endpoints() {
    let ok = Receiver::ok().await;
    let bad = Receiver::start(always(Reply::status(500).body("nope"))).await;
    // One retry: the failing delivery ends in failure after two attempts.
    let (dir, project, server) = setup(&flags(&["--retry-schedule", "0.2"]));
    let open = server.api("unused").with_auth(None);

    let (status, body) = open.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "ok"}));
    let (status, body) = open.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready", "{body}");

    let api = server.api(&project.api_key);
    subscribe_chat(&api, &ok.url()).await;
    subscribe_chat(&api, &bad.url()).await;
    let runner = server.api(&create_runner_token(dir.path(), "metrics-runner"));
    let bots = joined_bots(&api, &runner, 1).await;
    post_chats(&runner, &bots[0], [0]).await;

    let log = wait_delivery_log(&api, "", Duration::from_secs(15), |l| all_finished(l, 2)).await;
    assert_eq!(log.len(), 2, "{log:#?}");
    for d in &log {
        let expected = if d["url"] == ok.url().as_str() {
            "success"
        } else {
            "failure"
        };
        assert_eq!(d["status"], expected, "{d:#}");
    }
    assert_eq!(bad.count(), 2, "two attempts at the failing receiver");
    assert_eq!(ok.count(), 1);

    let resp = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    let value = |name: &str| -> f64 {
        *s.get(name)
            .unwrap_or_else(|| panic!("no sample {name} in /metrics:\n{text}"))
    };
    assert_eq!(value("meetwire_deliveries_total{outcome=\"success\"}"), 1.0);
    assert_eq!(value("meetwire_deliveries_total{outcome=\"failure\"}"), 1.0);
    assert_eq!(
        value("meetwire_delivery_attempts_total{outcome=\"http_status\"}"),
        2.0
    );
    assert_eq!(
        value("meetwire_delivery_attempts_total{outcome=\"success\"}"),
        1.0
    );
    assert!(
        s.keys()
            .any(|k| k.starts_with("meetwire_delivery_attempt_seconds_bucket{")),
        "no attempt-latency buckets:\n{text}"
    );
    assert_eq!(value("meetwire_delivery_attempt_seconds_count"), 3.0);
    assert_eq!(value("meetwire_deliveries_pending"), 0.0);
    assert_eq!(value("meetwire_oldest_due_delivery_age_seconds"), 0.0);
    assert_eq!(value("meetwire_log_sync_failed"), 0.0);
    let streak = |addr: std::net::SocketAddr| {
        value(&format!(
            "meetwire_endpoint_failure_streak{{endpoint=\"http://{addr}\"}}"
        ))
    };
    assert!(
        streak(bad.addr) >= 1.0,
        "failing endpoint's streak:\n{text}"
    );
    assert_eq!(streak(bad.addr), 2.0, "two failed attempts in a row");
    assert_eq!(streak(ok.addr), 0.0, "the healthy endpoint's streak");
}

// ---- Taking over a dead process's claims. ----

/// How soon after a process dies (or its successor starts) what it had claimed must be sent.
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);

/// Waits until `owed` distinct deliveries have arrived; returns every receipt.
async fn wait_for_keys(rx: &Receiver, owed: usize, what: &str) -> Vec<Received> {
    rx.wait_until(Duration::from_secs(30), what, |r| {
        r.iter().map(Received::key).collect::<HashSet<_>>().len() >= owed
    })
    .await
}

/// The sequence numbers `bot`'s receipts carried, in the order they arrived.
fn stream_of(received: &[Received], bot: &str) -> Vec<usize> {
    received
        .iter()
        .filter(|r| r.bot_id() == bot)
        .map(seq_of)
        .collect()
}

/// A server SIGKILLed while the heads of ordered streams are at a slow receiver, restarted on
/// the same data: every acknowledged event arrives within seconds of the restart, each stream
/// in order, instead of the streams waiting for the dead process's leases (25 s) to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_sends_what_the_killed_one_held_at_once() {
    let rx = Receiver::start(always(Reply::ok().after(Duration::from_secs(2)))).await;
    let server_flags = flags(&[]);
    let (dir, project, mut server) = setup(&server_flags);
    subscribe_chat(&server.api(&project.api_key), &rx.url()).await;
    let token = create_runner_token(dir.path(), "restart-runner");
    let bots = joined_bots(&server.api(&project.api_key), &server.api(&token), 4).await;
    const PER_BOT: usize = 5;
    let runner = server.api(&token);
    for bot in &bots {
        for seq in 0..PER_BOT {
            post_chats(&runner, bot, [seq]).await;
        }
    }
    // Each stream's head is at the receiver; the rest wait behind it.
    rx.wait_for(bots.len(), Duration::from_secs(10)).await;
    server.kill();
    rx.set_script(always(Reply::ok()));
    let restarted_at = Instant::now();
    let server = Server::start(dir.path(), &server_flags);
    let received = wait_for_keys(&rx, bots.len() * PER_BOT, "every acknowledged event").await;
    let took = restarted_at.elapsed();
    println!("restart: every acknowledged event delivered {took:?} after the restart began");
    assert!(
        took < TAKEOVER_BOUND,
        "the restarted server took {took:?} to send the events the killed one held"
    );
    for bot in &bots {
        let seqs = stream_of(&received, bot);
        // The head the killed server had sent comes again (at least once), then the rest.
        let mut unique = seqs.clone();
        unique.dedup();
        assert_eq!(
            unique,
            (0..PER_BOT).collect::<Vec<_>>(),
            "bot {bot}: {seqs:?}"
        );
    }
    drop(server);
}

// ---- Stopping on a signal. ----

/// The address of the probes and metrics a server started with `--metrics-listen` printed.
fn probes_base(server: &Server) -> String {
    let line = server.printed("metrics on ");
    let url = line.split("metrics on ").nth(1).unwrap().trim();
    url.trim_end_matches("/metrics").to_owned()
}

/// SIGTERM with the heads of ordered streams at a slow receiver: the server is no longer ready
/// at once, lets those attempts finish and writes their results, and exits cleanly; restarted,
/// it sends the rest of each stream at once and in order. Nothing acknowledged is lost and,
/// since the attempts in flight were allowed to finish, nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_attempts_in_flight_and_loses_nothing() {
    let rx = Receiver::start(always(Reply::ok().after(Duration::from_millis(1500)))).await;
    let server_flags = flags(&["--metrics-listen", "127.0.0.1:0"]);
    let (dir, project, mut server) = setup(&server_flags);
    subscribe_chat(&server.api(&project.api_key), &rx.url()).await;
    let token = create_runner_token(dir.path(), "stop-runner");
    let bots = joined_bots(&server.api(&project.api_key), &server.api(&token), 4).await;
    const PER_BOT: usize = 3;
    let runner = server.api(&token);
    for bot in &bots {
        for seq in 0..PER_BOT {
            post_chats(&runner, bot, [seq]).await;
        }
    }
    rx.wait_for(bots.len(), Duration::from_secs(10)).await;
    let probes = probes_base(&server);
    let stopped_at = Instant::now();
    server.signal("TERM");
    let probe = reqwest::Client::new();
    loop {
        let answer = probe.get(format!("{probes}/readyz")).send().await.unwrap();
        if answer.status() == StatusCode::SERVICE_UNAVAILABLE {
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["status"], "stopping");
            break;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(1),
            "still ready after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = server
        .exit_within(Duration::from_secs(15))
        .expect("the server did not stop within the grace");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        stopped_at.elapsed() >= Duration::from_millis(1000),
        "it exited before the attempts in flight could finish"
    );

    rx.set_script(always(Reply::ok()));
    let restarted_at = Instant::now();
    let _server = Server::start(dir.path(), &server_flags);
    let received = wait_for_keys(&rx, bots.len() * PER_BOT, "every acknowledged event").await;
    let took = restarted_at.elapsed();
    assert!(
        took < TAKEOVER_BOUND,
        "the rest took {took:?} after the restart"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.count(),
        bots.len() * PER_BOT,
        "a delivery was sent twice"
    );
    for bot in &bots {
        assert_eq!(
            stream_of(&received, bot),
            (0..PER_BOT).collect::<Vec<_>>(),
            "bot {bot}"
        );
    }
}

/// With an attempt hanging at the receiver: the shutdown grace bounds how long a SIGTERM
/// waits, a second signal ends the wait at once, and the next start sends what was cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_grace_bounds_the_wait_and_a_second_signal_ends_it() {
    let rx = Receiver::start(always(Reply::ok().after(Duration::from_secs(60)))).await;
    for (grace, second_signal, bound, code) in [
        ("1", false, Duration::from_secs(4), 0),
        ("60", true, Duration::from_secs(3), 130),
    ] {
        let server_flags = flags(&["--shutdown-grace", grace]);
        let (dir, project, mut server) = setup(&server_flags);
        subscribe_chat(&server.api(&project.api_key), &rx.url()).await;
        let token = create_runner_token(dir.path(), "hang-runner");
        let bots = joined_bots(&server.api(&project.api_key), &server.api(&token), 1).await;
        rx.set_script(always(Reply::ok().after(Duration::from_secs(60))));
        let before = rx.count();
        post_chats(&server.api(&token), &bots[0], [0]).await;
        rx.wait_for(before + 1, Duration::from_secs(10)).await;
        let stopped_at = Instant::now();
        server.signal("TERM");
        if second_signal {
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.signal("INT");
        }
        let status = server
            .exit_within(bound)
            .unwrap_or_else(|| panic!("grace {grace}: still running after {bound:?}"));
        assert_eq!(status.code(), Some(code), "grace {grace}: {status:?}");
        let took = stopped_at.elapsed();

        rx.set_script(always(Reply::ok()));
        let restarted_at = Instant::now();
        let _server = Server::start(dir.path(), &server_flags);
        let key = rx.received()[before].key();
        rx.wait_until(TAKEOVER_BOUND, "the cut-off delivery again", |r| {
            r[before + 1..].iter().any(|again| again.key() == key)
        })
        .await;
        println!(
            "grace {grace}, second signal {second_signal}: stopped in {took:?}, sent again \
             {:?} after the restart",
            restarted_at.elapsed()
        );
    }
}

// ---- Two servers sharing one database. ----

/// Claims live in the database, not in a process: two servers on one data directory send each
/// delivery once, keep each bot's stream in order although its events arrive through both,
/// and when one is SIGKILLed with claims in hand the other sends them within seconds, long
/// before their lease (25 s) ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_share_the_outbox_and_take_over_each_others_claims() {
    let rx = Receiver::ok().await;
    let server_flags = flags(&[]);
    let (dir, project, mut a) = setup(&server_flags);
    let b = Server::start(dir.path(), &server_flags);
    let token = create_runner_token(dir.path(), "two-servers");
    let (runner_a, runner_b) = (a.api(&token), b.api(&token));
    subscribe_chat(&a.api(&project.api_key), &rx.url()).await;
    let bots = joined_bots(&b.api(&project.api_key), &runner_a, 6).await;

    // Each bot's events alternate between the two servers; the bots post concurrently.
    const PER_BOT: usize = 30;
    let mut posters = tokio::task::JoinSet::new();
    for bot in bots.clone() {
        let runners = [runner_a.clone(), runner_b.clone()];
        posters.spawn(async move {
            for seq in 0..PER_BOT {
                post_chats(&runners[seq % 2], &bot, [seq]).await;
            }
        });
    }
    while let Some(done) = posters.join_next().await {
        done.unwrap();
    }
    let got = rx
        .wait_for(bots.len() * PER_BOT, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_all = rx.received();
    assert_eq!(got_all.len(), got.len(), "a delivery was sent twice");
    let keys: HashSet<String> = got_all.iter().map(Received::key).collect();
    assert_eq!(keys.len(), bots.len() * PER_BOT, "each delivery once");
    let mut per_bot: HashMap<String, Vec<usize>> = HashMap::new();
    for r in &got_all {
        per_bot.entry(r.bot_id()).or_default().push(seq_of(r));
    }
    for (bot, seqs) in &per_bot {
        assert_eq!(
            *seqs,
            (0..PER_BOT).collect::<Vec<_>>(),
            "bot {bot}'s stream"
        );
    }

    // A dies holding claims: its attempts in flight and what it pre-claimed behind them.
    rx.set_script(always(Reply::ok().after(Duration::from_millis(700))));
    let before = rx.count();
    let mut acknowledged = 0;
    for bot in &bots {
        post_chats(&runner_a, bot, [PER_BOT, PER_BOT + 1]).await;
        acknowledged += 2;
    }
    rx.wait_for(before + 1, Duration::from_secs(10)).await;
    let killed_at = Instant::now();
    a.kill();
    rx.set_script(always(Reply::ok()));
    let received = wait_for_keys(&rx, before + acknowledged, "B to send A's claims").await;
    let taken_over = killed_at.elapsed();
    assert!(
        taken_over < TAKEOVER_BOUND,
        "B took {taken_over:?} to send what A held when it died"
    );
    for bot in &bots {
        let seqs: Vec<usize> = stream_of(&received, bot)
            .into_iter()
            .filter(|seq| *seq >= PER_BOT)
            .collect();
        assert_eq!(
            seqs.iter().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([PER_BOT, PER_BOT + 1]),
            "bot {bot}: {seqs:?}"
        );
        assert!(
            seqs.windows(2).all(|w| w[0] <= w[1]),
            "bot {bot}'s stream went out of order across the takeover: {seqs:?}"
        );
    }
}
