//! Sandbox meetings end to end through the HTTP API: the full event sequence, the records with
//! the contract's field names and formats, and leaving a long meeting.

mod common;

use common::is_webhook_time;

use std::time::Duration;

use common::{event_types, setup};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn standup_produces_the_full_meeting() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let bot = api
        .create_bot(
            json!({"meeting_url": "sandbox://standup?speed=50", "bot_name": "Notes",
                           "metadata": {"customer": "acme"}}),
        )
        .await;
    assert_eq!(bot["state"], "joining");
    assert_eq!(event_types(&bot), ["join_requested"]);
    let id = bot["id"].as_str().unwrap();
    assert!(id.starts_with("bot_") && id.len() == 20);

    let bot = api
        .wait_bot(id, Duration::from_secs(20), |b| b["state"] == "ended")
        .await;
    assert_eq!(
        event_types(&bot),
        [
            "join_requested",
            "put_in_waiting_room",
            "joined_meeting",
            "recording_permission_granted",
            "meeting_ended",
            "post_processing_completed"
        ]
    );
    assert_eq!(bot["recording_state"], "complete");
    assert_eq!(bot["transcription_state"], "complete");
    assert_eq!(bot["metadata"], json!({"customer": "acme"}));
    for event in bot["events"].as_array().unwrap() {
        let at = event["created_at"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 27, "{at}");
    }

    let (status, transcript) = api.get(&format!("/api/v1/bots/{id}/transcript")).await;
    assert_eq!(status, StatusCode::OK);
    let transcript = transcript.as_array().unwrap();
    assert_eq!(transcript.len(), 4);
    let first = &transcript[0];
    for key in [
        "speaker_name",
        "speaker_uuid",
        "speaker_user_uuid",
        "speaker_is_host",
        "timestamp_ms",
        "duration_ms",
        "transcription",
    ] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
    assert_eq!(first["speaker_name"], "Alice Host");
    assert_eq!(first["speaker_is_host"], true);
    assert!(first["timestamp_ms"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(
        first["transcription"]["words"][0],
        json!({"word": "Good", "start_ms": 0, "end_ms": 300})
    );
    assert!(transcript[1]["transcription"].get("words").is_none());

    let (_, chat) = api.get(&format!("/api/v1/bots/{id}/chat_messages")).await;
    let chat = chat["results"].as_array().unwrap();
    assert_eq!(chat.len(), 1);
    let msg = &chat[0];
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(msg["to"], "everyone");
    assert_eq!(msg["sender_name"], "Bob");
    assert_eq!(
        msg["timestamp"].as_i64().unwrap(),
        msg["timestamp_ms"].as_i64().unwrap() / 1000
    );
    assert_eq!(msg["additional_data"], json!({}));

    let (_, events) = api
        .get(&format!("/api/v1/bots/{id}/participant_events"))
        .await;
    let events = events["results"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["participant_name"].as_str().unwrap(),
                e["event_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds[0],
        ("Meeting Bot", "join"),
        "the bot's own join is stored"
    );
    assert!(kinds.contains(&("Carol Zoë", "leave")));
    // Bob and Carol speak over each other: Carol starts before Bob stops.
    let pos = |k: (&str, &str)| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos(("Carol Zoë", "speech_start")) < pos(("Bob", "speech_stop")));
    for e in events {
        assert!(e["id"].as_str().unwrap().starts_with("pe_"));
        assert!(e["event_data"].is_object(), "{e}");
        if e["event_type"] == "join" || e["event_type"] == "leave" {
            assert_eq!(e["event_data"], json!({}));
        }
        assert!(e["timestamp_ms"].is_i64());
    }

    let (_, logs) = api.get(&format!("/api/v1/bots/{id}/logs")).await;
    let logs = logs["results"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert!(logs[0]["id"].as_str().unwrap().starts_with("log_"));
    assert_eq!(logs[0]["level"], "info");
    assert_eq!(logs[0]["entry_type"], "uncategorized");
    assert!(
        is_webhook_time(logs[0]["created_at"].as_str().unwrap()),
        "{}",
        logs[0]
    );
}

#[tokio::test]
async fn denied_and_crash_end_in_fatal_error() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let denied = api
        .create_bot(json!({"meeting_url": "sandbox://denied?speed=50"}))
        .await;
    let crash = api
        .create_bot(json!({"meeting_url": "sandbox://crash?speed=50"}))
        .await;
    let denied = api
        .wait_bot(
            denied["id"].as_str().unwrap(),
            Duration::from_secs(20),
            |b| b["state"] == "fatal_error",
        )
        .await;
    let last = denied["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "could_not_join_meeting");
    assert_eq!(last["sub_type"], "request_to_join_denied");
    let crash = api
        .wait_bot(
            crash["id"].as_str().unwrap(),
            Duration::from_secs(20),
            |b| b["state"] == "fatal_error",
        )
        .await;
    let last = crash["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "fatal_error");
    assert_eq!(last["sub_type"], "process_terminated");
    assert_eq!(crash["recording_state"], "failed");
}

#[tokio::test]
async fn long_meeting_runs_until_told_to_leave() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let bot = api
        .create_bot(json!({"meeting_url": "sandbox://long?speed=20"}))
        .await;
    let id = bot["id"].as_str().unwrap().to_owned();
    // Wait until the talk loop has come round at least twice.
    let start = std::time::Instant::now();
    loop {
        let (_, t) = api.get(&format!("/api/v1/bots/{id}/transcript")).await;
        if t.as_array().map_or(0, Vec::len) >= 4 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no talk: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, left) = api
        .post(&format!("/api/v1/bots/{id}/leave"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    let bot = api
        .wait_bot(&id, Duration::from_secs(20), |b| b["state"] == "ended")
        .await;
    let types = event_types(&bot);
    let tail: Vec<&str> = types
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "leave_requested",
            "left_meeting",
            "post_processing_completed"
        ]
    );
    let leave = &bot["events"][types.len() - 3];
    assert_eq!(leave["sub_type"], "user_requested");
}

#[tokio::test]
async fn custom_script_is_played_and_bad_scripts_are_refused() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let script = json!({"steps": [
        {"after_ms": 10, "record": {"kind": "bot_event", "event_type": "joined_meeting"}},
        {"after_ms": 10, "record": {"kind": "chat_message", "to": "only_bot", "text": "hi bot",
                                    "sender_name": "Dee", "sender_uuid": "5"}},
        {"after_ms": 10, "record": {"kind": "bot_event", "event_type": "meeting_ended"}},
        {"after_ms": 10, "record": {"kind": "bot_event", "event_type": "post_processing_completed"}}
    ]});
    let bot = api
        .create_bot(json!({"meeting_url": "sandbox://custom", "sandbox_script": script}))
        .await;
    let id = bot["id"].as_str().unwrap();
    api.wait_bot(id, Duration::from_secs(20), |b| b["state"] == "ended")
        .await;
    let (_, chat) = api.get(&format!("/api/v1/bots/{id}/chat_messages")).await;
    assert_eq!(chat["results"][0]["to"], "only_bot");

    let bad: Value =
        json!({"steps": [{"record": {"kind": "bot_event", "event_type": "teleported"}}]});
    let (status, err) = api
        .post(
            "/api/v1/bots",
            &json!({"meeting_url": "sandbox://custom", "sandbox_script": bad}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("sandbox_script step 0"),
        "{err}"
    );
}
