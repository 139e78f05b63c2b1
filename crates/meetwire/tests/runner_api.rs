//! The runner API (`/runner/v1/…`) as an external runner uses it: claiming bots, reporting
//! batches of records (idempotent and atomic), heartbeats, being told to leave, the heartbeat
//! monitor, and many concurrent batches on one bot serialising into a valid path.

mod common;

use common::is_webhook_time;

use std::time::Duration;

use common::{create_runner_token, event_types, setup, Api};
use meetwire_core::state::{transition, BotEventType, BotState, MachineState};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const MEETING: &str = "https://meet.example.com/abc";

/// Claims the next bot for `runner`, asserting one is there.
async fn claim(runner: &Api) -> Value {
    let (status, body) = runner.post("/runner/v1/bots/claim", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["bot"].clone()
}

/// A new bot, claimed by `runner`; returns its id.
async fn claimed_bot(api: &Api, runner: &Api) -> String {
    let bot = api.create_bot(json!({"meeting_url": MEETING})).await;
    let id = bot["id"].as_str().unwrap().to_owned();
    assert_eq!(claim(runner).await["id"], id.as_str());
    id
}

/// Reports that the bot joined and may record; returns the (successful) answer.
async fn start_recording(runner: &Api, bot_id: &str) -> Value {
    let (status, body) = post_records(
        runner,
        bot_id,
        json!([{"kind": "bot_event", "id": "j", "event_type": "joined_meeting"},
               {"kind": "bot_event", "id": "g", "event_type": "recording_permission_granted"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn post_records(runner: &Api, bot_id: &str, records: Value) -> (StatusCode, Value) {
    runner
        .post(
            &format!("/runner/v1/bots/{bot_id}/records"),
            &json!({ "records": records }),
        )
        .await
}

async fn heartbeat(runner: &Api, bot_id: &str) -> (StatusCode, Value) {
    runner
        .post(&format!("/runner/v1/bots/{bot_id}/heartbeat"), &json!({}))
        .await
}

async fn results(api: &Api, bot_id: &str, kind: &str) -> Vec<Value> {
    api.list_all(&format!("/api/v1/bots/{bot_id}/{kind}?page_size=500"))
        .await
}

async fn transcript(api: &Api, bot_id: &str) -> Vec<Value> {
    let (status, body) = api.get(&format!("/api/v1/bots/{bot_id}/transcript")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

fn the_batch() -> Value {
    json!([
        {"kind": "bot_event", "id": "r1", "event_type": "joined_meeting"},
        {"kind": "utterance", "id": "r2", "speaker_name": "Ann Example", "speaker_uuid": "u-7",
         "speaker_user_uuid": "user-7", "speaker_is_host": true, "timestamp_ms": 1_732_712_345_678_i64,
         "duration_ms": 1500, "transcript": "Hello there",
         "words": [{"word": "Hello", "start_ms": 0, "end_ms": 600},
                   {"word": "there", "start_ms": 700, "end_ms": 1500}]},
        {"kind": "chat_message", "id": "r3", "to": "only_bot", "text": "ping bot",
         "timestamp_ms": 1_732_712_346_999_i64, "sender_name": "Ann Example", "sender_uuid": "u-7",
         "additional_data": {"thread": "t1"}},
        {"kind": "participant_event", "id": "r4", "participant_name": "Meeting Bot",
         "participant_uuid": "u-bot", "is_bot": true, "event_type": "join",
         "timestamp_ms": 1_732_712_340_000_i64},
        {"kind": "log", "id": "r5", "level": "warning", "message": "camera unavailable"}
    ])
}

#[tokio::test]
async fn claim_report_and_retry_store_each_record_once() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let runner = server.api(&create_runner_token(dir.path(), "runner-one"));

    // Neither a sandbox bot nor a bot scheduled for later is an external runner's to claim.
    api.create_bot(json!({"meeting_url": "sandbox://standup?speed=50"}))
        .await;
    api.create_bot(json!({"meeting_url": MEETING,
                          "join_at": common::rest_time_from_now(3_600_000)}))
        .await;
    let bot = api
        .create_bot(json!({"meeting_url": MEETING, "bot_name": "Recorder",
                           "metadata": {"team": "sales"}}))
        .await;
    let id = bot["id"].as_str().unwrap().to_owned();

    let claimed = claim(&runner).await;
    assert_eq!(claimed["id"], id.as_str());
    assert_eq!(claimed["meeting_url"], MEETING);
    assert_eq!(claimed["bot_name"], "Recorder");
    assert_eq!(claimed["metadata"], json!({"team": "sales"}));
    assert_eq!(claimed["state"], "joining");
    assert_eq!(claimed["leave_requested"], false);
    let (status, body) = runner.post("/runner/v1/bots/claim", &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (status, outcome) = post_records(&runner, &id, the_batch()).await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["stored"], 5, "{outcome}");
    assert_eq!(outcome["duplicates"], 0, "{outcome}");
    assert_eq!(outcome["state"], "joined_not_recording", "{outcome}");

    let (status, again) = post_records(&runner, &id, the_batch()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["stored"], 0, "{again}");
    assert_eq!(again["duplicates"], 5, "{again}");
    assert_eq!(again["state"], "joined_not_recording");

    // REST shows each record once, in the contract's shapes.
    let (_, now) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(event_types(&now), ["join_requested", "joined_meeting"]);
    assert_eq!(now["state"], "joined_not_recording");
    assert_eq!(
        transcript(&api, &id).await,
        [json!({"speaker_name": "Ann Example", "speaker_uuid": "u-7",
                "speaker_user_uuid": "user-7", "speaker_is_host": true,
                "timestamp_ms": 1_732_712_345_678_i64, "duration_ms": 1500,
                "transcription": {"transcript": "Hello there",
                                  "words": [{"word": "Hello", "start_ms": 0, "end_ms": 600},
                                            {"word": "there", "start_ms": 700, "end_ms": 1500}]}})]
    );
    let chat = results(&api, &id, "chat_messages").await;
    assert_eq!(chat.len(), 1, "{chat:?}");
    let msg = &chat[0];
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"), "{msg}");
    assert_eq!(msg["to"], "only_bot");
    assert_eq!(msg["text"], "ping bot");
    assert_eq!(msg["timestamp"], 1_732_712_346);
    assert_eq!(msg["timestamp_ms"], 1_732_712_346_999_i64);
    assert_eq!(msg["sender_name"], "Ann Example");
    assert_eq!(msg["sender_uuid"], "u-7");
    assert_eq!(msg["sender_user_uuid"], Value::Null);
    assert_eq!(msg["additional_data"], json!({"thread": "t1"}));
    // The bot's own participant is stored and listed (it only never becomes a webhook).
    let participants = results(&api, &id, "participant_events").await;
    assert_eq!(participants.len(), 1, "{participants:?}");
    let own = &participants[0];
    assert!(own["id"].as_str().unwrap().starts_with("pe_"), "{own}");
    assert_eq!(own["participant_name"], "Meeting Bot");
    assert_eq!(own["participant_uuid"], "u-bot");
    assert_eq!(own["participant_user_uuid"], Value::Null);
    assert_eq!(own["participant_is_host"], false);
    assert_eq!(own["event_type"], "join");
    assert_eq!(own["event_data"], json!({}));
    assert_eq!(own["timestamp_ms"], 1_732_712_340_000_i64);
    let logs = results(&api, &id, "logs").await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = &logs[0];
    assert!(log["id"].as_str().unwrap().starts_with("log_"), "{log}");
    assert_eq!(log["level"], "warning");
    assert_eq!(log["entry_type"], "uncategorized");
    assert_eq!(log["message"], "camera unavailable");
    assert!(
        is_webhook_time(log["created_at"].as_str().unwrap()),
        "{log}"
    );

    // A retry that mixes old and new records stores only the new ones.
    let (status, mixed) = post_records(
        &runner,
        &id,
        json!([
            {"kind": "log", "id": "r5", "level": "warning", "message": "camera unavailable"},
            {"kind": "log", "id": "r6", "level": "info", "message": "camera back"},
            {"kind": "log", "id": "r6", "level": "info", "message": "camera back"}
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mixed}");
    assert_eq!(
        (mixed["stored"].as_u64(), mixed["duplicates"].as_u64()),
        (Some(1), Some(2))
    );
    let logs = results(&api, &id, "logs").await;
    assert_eq!(
        logs.iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["camera unavailable", "camera back"]
    );
    // Nothing else changed with the retries.
    assert_eq!(results(&api, &id, "chat_messages").await, chat);
    assert_eq!(results(&api, &id, "participant_events").await, participants);

    let (status, beat) = heartbeat(&runner, &id).await;
    assert_eq!(status, StatusCode::OK, "{beat}");
    assert_eq!(beat["id"], id.as_str());
    assert_eq!(beat["state"], "joined_not_recording");
    assert_eq!(beat["leave_requested"], false);
}

#[tokio::test]
async fn a_batch_is_stored_entirely_or_not_at_all() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let runner = server.api(&create_runner_token(dir.path(), "runner-atomic"));
    let id = claimed_bot(&api, &runner).await;
    let (status, body) = post_records(
        &runner,
        &id,
        json!([{"kind": "bot_event", "id": "e1", "event_type": "joined_meeting"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, before) = api.get(&format!("/api/v1/bots/{id}")).await;

    let utterance = json!({"kind": "utterance", "id": "u1", "speaker_name": "Ann",
                           "speaker_uuid": "7", "timestamp_ms": 1_700_000_000_000_i64,
                           "duration_ms": 100, "transcript": "first"});
    let log = json!({"kind": "log", "id": "l1", "level": "info", "message": "m"});
    // The second record is not allowed in joined_not_recording.
    let (status, body) = post_records(
        &runner,
        &id,
        json!([utterance, {"kind": "bot_event", "id": "e2", "event_type": "recording_paused"}, log]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        json!({"error": "Event recording_paused not allowed when bot is in state joined_not_recording. It is only allowed in these states: joined_recording"})
    );
    // An allowed event followed by one that is only refused because of it: both go.
    let (status, body) = post_records(
        &runner,
        &id,
        json!([{"kind": "bot_event", "id": "e3", "event_type": "recording_permission_granted"},
               {"kind": "bot_event", "id": "e4", "event_type": "recording_resumed"}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with(
            "Event recording_resumed not allowed when bot is in state joined_recording."
        ),
        "{body}"
    );

    let (_, after) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(after, before, "a refused batch changed the bot");
    assert_eq!(transcript(&api, &id).await, Vec::<Value>::new());
    assert_eq!(results(&api, &id, "logs").await, Vec::<Value>::new());

    // The refused batches' ids were not used up: the good records go through now.
    let (status, body) = post_records(
        &runner,
        &id,
        json!([utterance, log, {"kind": "bot_event", "id": "e3", "event_type": "recording_permission_granted"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["stored"].as_u64(), body["duplicates"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(body["state"], "joined_recording");
    assert_eq!(transcript(&api, &id).await.len(), 1);
    let (_, after) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(
        event_types(&after),
        [
            "join_requested",
            "joined_meeting",
            "recording_permission_granted"
        ]
    );
    assert_eq!(after["recording_state"], "in_progress");
    assert_eq!(after["transcription_state"], "in_progress");
}

#[tokio::test]
async fn only_the_runner_holding_a_bot_may_report_for_it() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let one = server.api(&create_runner_token(dir.path(), "runner-a"));
    let two = server.api(&create_runner_token(dir.path(), "runner-b"));
    let first = api.create_bot(json!({"meeting_url": MEETING})).await;
    let first = first["id"].as_str().unwrap().to_owned();
    assert_eq!(claim(&one).await["id"], first.as_str());
    let (status, _) = two.post("/runner/v1/bots/claim", &json!({})).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "a claimed bot was claimed twice"
    );
    let (_, before) = api.get(&format!("/api/v1/bots/{first}")).await;

    let batch = json!([{"kind": "bot_event", "id": "x1", "event_type": "joined_meeting"},
                       {"kind": "log", "id": "x2", "level": "info", "message": "m"}]);
    let (status, body) = post_records(&two, &first, batch.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = heartbeat(&two, &first).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, after) = api.get(&format!("/api/v1/bots/{first}")).await;
    assert_eq!(after, before);
    assert_eq!(results(&api, &first, "logs").await, Vec::<Value>::new());

    // A bot nobody has claimed yet is nobody's to report for either.
    let second = api.create_bot(json!({"meeting_url": MEETING})).await;
    let second = second["id"].as_str().unwrap().to_owned();
    let (status, _) = post_records(&one, &second, batch.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(claim(&two).await["id"], second.as_str());
    let (status, _) = heartbeat(&one, &second).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Each runner reports for its own bot.
    let (status, body) = post_records(&one, &first, batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 2);
    let (status, body) = post_records(&two, &second, batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 2, "record ids are per bot: {body}");
}

#[tokio::test]
async fn a_leave_request_reaches_the_runner() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let runner = server.api(&create_runner_token(dir.path(), "runner-leave"));
    let id = claimed_bot(&api, &runner).await;
    let body = start_recording(&runner, &id).await;
    assert_eq!(body["leave_requested"], false);

    let (status, beat) = heartbeat(&runner, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(beat["leave_requested"], false);
    assert_eq!(beat["state"], "joined_recording");

    let (status, left) = api
        .post(&format!("/api/v1/bots/{id}/leave"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    // The runner is still in the meeting: the bot waits for it to leave.
    assert_eq!(left["state"], "leaving", "{left}");
    let last = left["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "leave_requested");
    assert_eq!(last["sub_type"], "user_requested");

    let (status, beat) = heartbeat(&runner, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(beat["leave_requested"], true, "{beat}");
    assert_eq!(beat["state"], "leaving");
    // A second leave while leaving is refused.
    let (status, body) = api
        .post(&format!("/api/v1/bots/{id}/leave"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = post_records(
        &runner,
        &id,
        json!([{"kind": "bot_event", "id": "l", "event_type": "left_meeting"},
               {"kind": "bot_event", "id": "p", "event_type": "post_processing_completed"}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "ended");
    assert_eq!(body["leave_requested"], false);
    let (_, ended) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(ended["state"], "ended");
    assert_eq!(
        event_types(&ended),
        [
            "join_requested",
            "joined_meeting",
            "recording_permission_granted",
            "leave_requested",
            "left_meeting",
            "post_processing_completed"
        ]
    );
    assert_eq!(ended["recording_state"], "complete");
    assert_eq!(ended["transcription_state"], "complete");
}

#[tokio::test]
async fn a_silent_runner_fails_its_bot_with_heartbeat_timeout() {
    let (dir, project, server) = setup(&["--heartbeat-timeout", "1"]);
    let api = server.api(&project.api_key);
    let runner = server.api(&create_runner_token(dir.path(), "runner-silent"));
    let silent = api.create_bot(json!({"meeting_url": MEETING})).await;
    let silent = silent["id"].as_str().unwrap().to_owned();
    let alive = api.create_bot(json!({"meeting_url": MEETING})).await;
    let alive = alive["id"].as_str().unwrap().to_owned();
    assert_eq!(claim(&runner).await["id"], silent.as_str());
    assert_eq!(claim(&runner).await["id"], alive.as_str());
    for id in [&silent, &alive] {
        let (status, body) = post_records(
            &runner,
            id,
            json!([{"kind": "bot_event", "id": "j", "event_type": "joined_meeting"}]),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // Keep one bot's heartbeat going; stay silent on the other.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let beater = {
        let runner = runner.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            loop {
                let (status, body) = heartbeat(&runner, &alive).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(150)) => {}
                    _ = stop_rx.changed() => return,
                }
            }
        })
    };

    let failed = api
        .wait_bot(&silent, Duration::from_secs(15), |b| {
            b["state"] == "fatal_error"
        })
        .await;
    let last = failed["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "fatal_error");
    assert_eq!(last["sub_type"], "heartbeat_timeout");
    assert_eq!(
        event_types(&failed),
        ["join_requested", "joined_meeting", "fatal_error"]
    );

    // The heartbeating bot survives several more monitor passes.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, still) = api.get(&format!("/api/v1/bots/{alive}")).await;
    assert_eq!(still["state"], "joined_not_recording", "{still}");
    stop_tx.send(true).unwrap();
    beater.await.unwrap();

    // Once it goes silent too, it fails the same way.
    let failed = api
        .wait_bot(&alive, Duration::from_secs(15), |b| {
            b["state"] == "fatal_error"
        })
        .await;
    let last = failed["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["sub_type"], "heartbeat_timeout");
    // A late report from the runner cannot bring it back.
    let (status, body) = post_records(
        &runner,
        &silent,
        json!([{"kind": "bot_event", "id": "late", "event_type": "recording_permission_granted"}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// xorshift64*, seeded: which event each concurrent batch carries.
fn coin_flips(mut x: u64, n: usize) -> Vec<bool> {
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 63 == 1
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_on_one_bot_serialise_into_a_valid_path() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let runner = server.api(&create_runner_token(dir.path(), "runner-race"));
    let id = claimed_bot(&api, &runner).await;
    let body = start_recording(&runner, &id).await;
    assert_eq!(body["state"], "joined_recording");

    const N: usize = 60;
    let flips = coin_flips(0x00c0_ffee_d00d_f00d, N);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, pause) in flips.iter().copied().enumerate() {
        let runner = runner.clone();
        let id = id.clone();
        let barrier = barrier.clone();
        tasks.spawn(async move {
            let event = if pause {
                "recording_paused"
            } else {
                "recording_resumed"
            };
            barrier.wait().await;
            let (status, body) = post_records(
                &runner,
                &id,
                json!([{"kind": "bot_event", "id": format!("c{i}"), "event_type": event}]),
            )
            .await;
            (event, status, body)
        });
    }
    let mut accepted = 0;
    let mut refused = 0;
    while let Some(joined) = tasks.join_next().await {
        let (event, status, body) = joined.unwrap();
        match status {
            StatusCode::OK => {
                assert_eq!(body["stored"], 1, "{body}");
                accepted += 1;
            }
            StatusCode::BAD_REQUEST => {
                let msg = body["error"].as_str().unwrap_or_default();
                assert!(
                    msg.starts_with(&format!("Event {event} not allowed when bot is in state ")),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("{event}: {other} {body}"),
        }
    }
    assert_eq!(accepted + refused, N);
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );

    let (_, after) = api.get(&format!("/api/v1/bots/{id}")).await;
    let types = event_types(&after);
    let mut machine = MachineState::new(BotState::Ready);
    for (step, ty) in types.iter().enumerate() {
        let event: BotEventType = ty.parse().unwrap();
        machine = transition(machine, event, None)
            .unwrap_or_else(|e| panic!("step {step} of {types:?} is not allowed: {e}"));
    }
    assert_eq!(after["state"], machine.state.code(), "{types:?}");
    let toggles = types
        .iter()
        .filter(|t| *t == "recording_paused" || *t == "recording_resumed")
        .count();
    assert_eq!(
        toggles, accepted,
        "stored toggles vs 200 answers: {types:?}"
    );
    assert_eq!(types.len(), 3 + accepted);
    let expected_recording = if machine.state == BotState::JoinedRecordingPaused {
        "paused"
    } else {
        "in_progress"
    };
    assert_eq!(after["recording_state"], expected_recording);
}

#[tokio::test]
async fn big_batches_are_capped_and_every_event_stays_on_the_bot() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let runner = server.api(&create_runner_token(dir.path(), "runner-big"));
    let id = claimed_bot(&api, &runner).await;

    // More than 1000 records in one batch is refused, and stores nothing.
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"kind": "log", "id": format!("log-{i}"), "level": "debug", "message": "m"}))
        .collect();
    let (status, body) = post_records(&runner, &id, Value::Array(too_many)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(results(&api, &id, "logs").await.len(), 0);

    // A long meeting with many pauses: 1 + 1 + 1100 state events.
    start_recording(&runner, &id).await;
    for half in 0..2 {
        let batch: Vec<Value> = (0..550)
            .map(|i| {
                let event = if i % 2 == 0 {
                    "recording_paused"
                } else {
                    "recording_resumed"
                };
                json!({"kind": "bot_event", "id": format!("t{half}-{i}"), "event_type": event})
            })
            .collect();
        let (status, body) = post_records(&runner, &id, Value::Array(batch)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stored"], 550);
    }
    let (_, bot) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(bot["state"], "joined_recording");
    let types = event_types(&bot);
    assert_eq!(
        types.len(),
        3 + 1100,
        "the bot object lists {} of its 1103 events; last shown: {:?}",
        types.len(),
        types.last()
    );
}

#[tokio::test]
async fn record_lists_paginate_oldest_first_through_their_links() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let runner = server.api(&create_runner_token(dir.path(), "runner-pages"));
    let id = claimed_bot(&api, &runner).await;
    let batch: Vec<Value> = (0..5)
        .flat_map(|i| {
            [
                json!({"kind": "chat_message", "id": format!("c{i}"), "to": "everyone",
                       "text": format!("message {i}"), "timestamp_ms": 1_700_000_000_000_i64 + i,
                       "sender_name": "A", "sender_uuid": "1"}),
                json!({"kind": "participant_event", "id": format!("p{i}"),
                       "participant_name": format!("P{i}"), "participant_uuid": format!("{i}"),
                       "event_type": "join", "timestamp_ms": 1_700_000_000_000_i64 + i}),
                json!({"kind": "log", "id": format!("l{i}"), "level": "info",
                       "message": format!("log {i}")}),
            ]
        })
        .collect();
    let (status, body) = post_records(&runner, &id, Value::Array(batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], 15);

    for (kind, field, prefix) in [
        ("chat_messages", "text", "message"),
        ("participant_events", "participant_name", "P"),
        ("logs", "message", "log"),
    ] {
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut url = format!("{}/api/v1/bots/{id}/{kind}?page_size=2", server.base);
        loop {
            let path = url
                .strip_prefix(&server.base)
                .unwrap_or_else(|| panic!("{kind}: link {url} is not absolute"));
            let (status, page) = api.get(path).await;
            assert_eq!(status, StatusCode::OK, "{kind}: {url}: {page}");
            pages += 1;
            for r in page["results"].as_array().unwrap() {
                seen.push(r[field].as_str().unwrap().to_owned());
            }
            match page["next"].as_str() {
                Some(next) => url = next.to_owned(),
                None => break,
            }
            assert!(pages < 10, "{kind}: pagination does not end");
        }
        let sep = if prefix == "P" { "" } else { " " };
        let expected: Vec<String> = (0..5).map(|i| format!("{prefix}{sep}{i}")).collect();
        assert_eq!(seen, expected, "{kind}: every record once, oldest first");
        assert_eq!(pages, 3, "{kind}");
    }
}

/// `-0` in a runner's payload is the integer 0, as Python (Attendee) reads it; serde_json alone
/// reads the float -0.0, which would be stored and delivered as `-0.0`.
#[tokio::test]
async fn minus_zero_is_read_as_the_integer_zero() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let runner = server.api(&create_runner_token(dir.path(), "runner-zero"));
    let id = claimed_bot(&api, &runner).await;
    let body = concat!(
        r#"{"records": [{"kind": "chat_message", "id": "z1", "to": "everyone", "text": "-0", "#,
        r#""timestamp_ms": 1, "sender_name": "A", "sender_uuid": "1", "#,
        r#""additional_data": {"z": -0, "f": -0.0}}]}"#
    );
    let path = format!("/runner/v1/bots/{id}/records");
    let (status, outcome) = runner
        .raw(Method::POST, &path, "application/json", body.into())
        .await;
    assert_eq!(status, StatusCode::OK, "{outcome}");
    let chat = results(&api, &id, "chat_messages").await;
    let data = &chat[0]["additional_data"];
    assert!(data["z"].is_u64() && data["z"] == 0, "{data}");
    assert!(
        data["f"]
            .as_f64()
            .is_some_and(|f| f == 0.0 && f.is_sign_negative()),
        "{data}"
    );
    assert_eq!(chat[0]["text"], "-0");
}
