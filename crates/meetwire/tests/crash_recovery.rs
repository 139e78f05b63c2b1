//! The server dies mid-meeting (SIGKILL) and comes back on the same data: everything the API
//! showed before is still there, unchanged and not duplicated, and the sandbox picks its
//! meetings up where they were. SIGTERM is a clean stop.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{event_types, setup, Api, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// What the API shows of one bot.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: String,
    events: Vec<Value>,
    transcript: Vec<Value>,
    chat: Vec<Value>,
    participants: Vec<Value>,
    logs: Vec<Value>,
}

impl Seen {
    fn lists(&self) -> [(&'static str, &Vec<Value>); 5] {
        [
            ("events", &self.events),
            ("transcript", &self.transcript),
            ("chat_messages", &self.chat),
            ("participant_events", &self.participants),
            ("logs", &self.logs),
        ]
    }

    /// Asserts that everything in `earlier` is still here, unchanged, in the same order.
    fn assert_extends(&self, earlier: &Seen, what: &str) {
        for ((kind, now), (_, before)) in self.lists().into_iter().zip(earlier.lists()) {
            assert!(
                now.len() >= before.len(),
                "{what}: {kind} lost records ({} before, {} now)\nbefore: {before:?}\nnow: {now:?}",
                before.len(),
                now.len()
            );
            assert_eq!(
                &now[..before.len()],
                &before[..],
                "{what}: acknowledged {kind} changed"
            );
        }
    }
}

async fn look(api: &Api, id: &str) -> Seen {
    let (status, bot) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{bot}");
    let (status, transcript) = api.get(&format!("/api/v1/bots/{id}/transcript")).await;
    assert_eq!(status, StatusCode::OK, "{transcript}");
    let list = |kind: &'static str| {
        let api = api.clone();
        let id = id.to_owned();
        async move {
            api.list_all(&format!("/api/v1/bots/{id}/{kind}?page_size=500"))
                .await
        }
    };
    Seen {
        state: bot["state"].as_str().unwrap().to_owned(),
        events: bot["events"].as_array().unwrap().clone(),
        transcript: transcript.as_array().unwrap().clone(),
        chat: list("chat_messages").await,
        participants: list("participant_events").await,
        logs: list("logs").await,
    }
}

fn text(utterance: &Value) -> (String, String) {
    (
        utterance["speaker_name"].as_str().unwrap().to_owned(),
        utterance["transcription"]["transcript"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn who_did(event: &Value) -> (String, String) {
    (
        event["participant_name"].as_str().unwrap().to_owned(),
        event["event_type"].as_str().unwrap().to_owned(),
    )
}

/// No record twice: by id where records have one, by content otherwise.
fn assert_no_duplicates(seen: &Seen, what: &str) {
    let keys: Vec<(String, String, i64)> = seen
        .transcript
        .iter()
        .map(|u| {
            let (speaker, text) = text(u);
            (speaker, text, u["timestamp_ms"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(
        keys.iter().collect::<HashSet<_>>().len(),
        keys.len(),
        "{what}: duplicate utterances {keys:?}"
    );
    for (kind, list) in [
        ("chat", &seen.chat),
        ("participant", &seen.participants),
        ("log", &seen.logs),
    ] {
        let ids: Vec<&str> = list.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            ids.len(),
            "{what}: duplicate {kind} ids {ids:?}"
        );
    }
}

/// The standup scenario, complete and each step exactly once.
fn assert_full_standup(seen: &Seen, what: &str) {
    assert_eq!(seen.state, "ended", "{what}");
    let types: Vec<&str> = seen
        .events
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "join_requested",
            "put_in_waiting_room",
            "joined_meeting",
            "recording_permission_granted",
            "meeting_ended",
            "post_processing_completed"
        ],
        "{what}"
    );
    let said: Vec<(String, String)> = seen.transcript.iter().map(text).collect();
    assert_eq!(
        said.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["Alice Host", "Bob", "Carol Zoë", "Alice Host"],
        "{what}: {said:?}"
    );
    let done: Vec<(String, String)> = seen.participants.iter().map(who_did).collect();
    let expected: Vec<(String, String)> = [
        ("Meeting Bot", "join"),
        ("Alice Host", "join"),
        ("Bob", "join"),
        ("Carol Zoë", "join"),
        ("Alice Host", "speech_start"),
        ("Alice Host", "speech_stop"),
        ("Bob", "speech_start"),
        ("Carol Zoë", "speech_start"),
        ("Bob", "speech_stop"),
        ("Carol Zoë", "speech_stop"),
        ("Carol Zoë", "leave"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(done, expected, "{what}");
    assert_eq!(seen.chat.len(), 1, "{what}: {:?}", seen.chat);
    assert_eq!(seen.logs.len(), 1, "{what}: {:?}", seen.logs);
    assert_no_duplicates(seen, what);
}

/// The long scenario so far: its opening, then its loop, each step once and none skipped.
fn assert_long_pattern(seen: &Seen, what: &str) {
    let done: Vec<(String, String)> = seen.participants.iter().map(who_did).collect();
    let opening = [
        ("Meeting Bot", "join"),
        ("Alice Host", "join"),
        ("Bob", "join"),
    ];
    let round = [
        ("Alice Host", "speech_start"),
        ("Alice Host", "speech_stop"),
        ("Bob", "speech_start"),
        ("Bob", "speech_stop"),
    ];
    for (i, got) in done.iter().enumerate() {
        let want = if i < opening.len() {
            opening[i]
        } else {
            round[(i - opening.len()) % round.len()]
        };
        assert_eq!(
            (got.0.as_str(), got.1.as_str()),
            want,
            "{what}: participant event {i} out of pattern: {done:?}"
        );
    }
    for (i, u) in seen.transcript.iter().enumerate() {
        let want = if i % 2 == 0 {
            ("Alice Host", "Here is another point on the agenda.")
        } else {
            ("Bob", "Agreed, let's keep going.")
        };
        let got = text(u);
        assert_eq!(
            (got.0.as_str(), got.1.as_str()),
            want,
            "{what}: utterance {i} out of pattern"
        );
    }
    // One chat message per round that got that far.
    let rounds_with_chat = seen.transcript.len().div_ceil(2);
    assert!(
        seen.chat.len() == rounds_with_chat || seen.chat.len() + 1 == rounds_with_chat,
        "{what}: {} chat messages for {} utterances",
        seen.chat.len(),
        seen.transcript.len()
    );
    assert!(seen.chat.iter().all(|c| c["text"] == "Noted."));
    assert_no_duplicates(seen, what);
}

async fn wait_until(
    api: &Api,
    id: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) -> Seen {
    let start = Instant::now();
    loop {
        let seen = look(api, id).await;
        if done(&seen) {
            return seen;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigkill_mid_meeting_loses_nothing_acknowledged_and_meetings_resume() {
    let (dir, project, mut server) = setup(&[]);
    let api = server.api(&project.api_key);
    let mut standups = Vec::new();
    for _ in 0..2 {
        let bot = api
            .create_bot(json!({"meeting_url": "sandbox://standup?speed=5"}))
            .await;
        standups.push(bot["id"].as_str().unwrap().to_owned());
    }
    let long = api
        .create_bot(json!({"meeting_url": "sandbox://long?speed=20"}))
        .await;
    let long = long["id"].as_str().unwrap().to_owned();
    let all: Vec<String> = standups.iter().cloned().chain([long.clone()]).collect();

    // Watch the meetings run, checking that what was shown once stays shown.
    let mut last: Vec<Option<Seen>> = vec![None; all.len()];
    let start = Instant::now();
    let before_kill = loop {
        let mut now = Vec::new();
        for (i, id) in all.iter().enumerate() {
            let seen = look(&api, id).await;
            if let Some(prev) = &last[i] {
                seen.assert_extends(prev, "while running");
            }
            last[i] = Some(seen.clone());
            now.push(seen);
        }
        let mid_standup = now[..2]
            .iter()
            .all(|s| s.participants.len() >= 4 && s.state != "ended");
        if mid_standup && now[2].transcript.len() >= 2 {
            break now;
        }
        for s in &now[..2] {
            assert_ne!(s.state, "ended", "the standup ended before the kill");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "meetings did not get going: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    server.kill();

    // The standups were mid-meeting: more was still to come.
    for (seen, id) in before_kill[..2].iter().zip(&standups) {
        assert!(
            seen.transcript.len() < 4 || seen.participants.len() < 11,
            "{id} was already through: {seen:?}"
        );
    }

    let server = Server::start(dir.path(), &[]);
    let api = server.api(&project.api_key);
    let after_restart: Vec<Seen> = {
        let mut v = Vec::new();
        for (id, before) in all.iter().zip(&before_kill) {
            let seen = look(&api, id).await;
            seen.assert_extends(before, &format!("{id} right after the restart"));
            assert_no_duplicates(&seen, id);
            v.push(seen);
        }
        v
    };

    // The standups finish after the restart, every step exactly once.
    for (i, id) in standups.iter().enumerate() {
        let seen = wait_until(&api, id, Duration::from_secs(30), "standup to end", |s| {
            s.state == "ended" || s.state == "fatal_error"
        })
        .await;
        seen.assert_extends(&before_kill[i], &format!("{id} at the end"));
        seen.assert_extends(&after_restart[i], &format!("{id} at the end"));
        assert_full_standup(&seen, id);
    }

    // The long meeting keeps talking, then leaves when told to.
    let talked = after_restart[2].transcript.len();
    let seen = wait_until(
        &api,
        &long,
        Duration::from_secs(30),
        "the long meeting to keep talking",
        |s| s.transcript.len() >= talked + 3,
    )
    .await;
    assert!(seen.state.starts_with("joined"), "{seen:?}");
    seen.assert_extends(&before_kill[2], "long meeting after restart");
    assert_long_pattern(&seen, "long meeting after restart");
    let (status, body) = api
        .post(&format!("/api/v1/bots/{long}/leave"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = wait_until(&api, &long, Duration::from_secs(30), "long to end", |s| {
        s.state == "ended" || s.state == "fatal_error"
    })
    .await;
    assert_eq!(seen.state, "ended", "{seen:?}");
    seen.assert_extends(&before_kill[2], "long meeting at the end");
    assert_long_pattern(&seen, "long meeting at the end");
    let (_, bot) = api.get(&format!("/api/v1/bots/{long}")).await;
    let types = event_types(&bot);
    assert_eq!(
        types,
        [
            "join_requested",
            "joined_meeting",
            "recording_permission_granted",
            "leave_requested",
            "left_meeting",
            "post_processing_completed"
        ]
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_the_meeting_goes_on_after_a_restart() {
    let (dir, project, mut server) = setup(&[]);
    let api = server.api(&project.api_key);
    let long = api
        .create_bot(json!({"meeting_url": "sandbox://long?speed=20"}))
        .await;
    let long = long["id"].as_str().unwrap().to_owned();
    let before = wait_until(
        &api,
        &long,
        Duration::from_secs(20),
        "the meeting to start talking",
        |s| s.transcript.len() >= 2,
    )
    .await;

    let status = server
        .terminate_within(Duration::from_secs(20))
        .expect("the server did not stop within 20 s of SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    assert_eq!(status.code(), Some(0));

    let server = Server::start(dir.path(), &[]);
    let api = server.api(&project.api_key);
    let after = look(&api, &long).await;
    after.assert_extends(&before, "after a graceful restart");
    assert!(
        after.state.starts_with("joined"),
        "a graceful stop must not end or fail the meeting: {after:?}"
    );
    let talked = after.transcript.len();
    let seen = wait_until(
        &api,
        &long,
        Duration::from_secs(20),
        "the meeting to go on",
        |s| s.transcript.len() >= talked + 2,
    )
    .await;
    assert_long_pattern(&seen, "after a graceful restart");
    let (status, body) = api
        .post(&format!("/api/v1/bots/{long}/leave"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = wait_until(
        &api,
        &long,
        Duration::from_secs(20),
        "the bot to end",
        |s| s.state == "ended" || s.state == "fatal_error",
    )
    .await;
    assert_eq!(seen.state, "ended");
    seen.assert_extends(&before, "at the end");
}
