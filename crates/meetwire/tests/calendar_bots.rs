//! Bots from calendar events against the real binary, a local iCalendar feed and a real
//! receiver: a bot sent to an event (`calendar_event_id`) is scheduled at the event's start,
//! follows the event when it moves, joins a sandbox meeting at that time, and is cancelled
//! (a signed `bot.state_change` webhook) when its event is deleted; a calendar's `auto_join`
//! rule sends bots to the events it matches, once each, and deleting the calendar cancels the
//! bots still waiting. Plus the API's refusals.

mod common;

use std::time::Duration;

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use common::feed::{self, calendar_events, connect, ical_time, signed_hooks, sync_now, Feed};
use common::receiver::{Receiver, FAST_LOOPBACK};
use common::{create_project, event_types, Api, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// One VEVENT: `uid`, starting at `start` for 30 minutes, with `extra` properties.
fn vevent(uid: &str, start: DateTime<Utc>, extra: &str) -> String {
    format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:{uid}\r\n{extra}END:VEVENT\r\n",
        ical_time(start),
        ical_time(start + Span::minutes(30)),
    )
}

fn feed_of(events: &[String]) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{}END:VCALENDAR\r\n",
        events.concat()
    )
}

/// Now, to the second (iCalendar times have no fraction), plus `seconds`.
fn from_now(seconds: i64) -> DateTime<Utc> {
    Utc::now().duration_trunc(Span::seconds(1)).unwrap() + Span::seconds(seconds)
}

/// Waits until the calendar's live events are `n`; returns them by name.
async fn wait_events(api: &Api, calendar: &str, n: usize) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let live: Vec<Value> = calendar_events(api, calendar)
            .await
            .into_iter()
            .filter(|e| e["is_deleted"] == false)
            .collect();
        if live.len() == n {
            return live;
        }
        assert!(start.elapsed() < WAIT, "waiting for {n} events: {live:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn named<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no event {name} in {events:?}"))
}

async fn refused(api: &Api, body: Value, message: &str) {
    let (status, answer) = api.post("/api/v1/bots", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    assert!(
        answer["error"].as_str().unwrap().contains(message),
        "{body}: {answer}"
    );
}

#[tokio::test]
async fn a_bot_sent_to_a_calendar_event_follows_it_and_is_cancelled_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "calendar bots");
    let server = Server::start(dir.path(), FAST_LOOPBACK);
    let api = server.api(&project.api_key);
    let receiver = Receiver::ok().await;
    api.subscribe(&receiver.url(), &["bot.state_change"]).await;

    let standup = |start| vevent("standup", start, "LOCATION:sandbox://standup?speed=50\r\n");
    let review = vevent(
        "review",
        from_now(7200),
        "DESCRIPTION:Join at https://zoom.us/j/777\r\n",
    );
    let lunch = vevent("lunch", from_now(3600), "LOCATION:Canteen\r\n");
    let retro = vevent(
        "retro",
        from_now(-7200),
        "LOCATION:https://zoom.us/j/888\r\n",
    );
    let feed = Feed::start(feed_of(&[
        standup(from_now(3600)),
        review.clone(),
        lunch.clone(),
        retro.clone(),
    ]))
    .await;
    let calendar = connect(&api, json!({"platform": "ical", "ical_url": feed.url})).await;
    let events = wait_events(&api, &calendar, 4).await;
    let standup_event = named(&events, "standup").clone();
    let standup_id = standup_event["id"].as_str().unwrap();

    // A bot sent to the event: scheduled at its start, with its link.
    let (status, bot) = api
        .post(
            "/api/v1/bots",
            &json!({"calendar_event_id": standup_id, "bot_name": "Notes"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    assert_eq!(bot["state"], "scheduled");
    assert_eq!(bot["join_at"], standup_event["start_time"]);
    assert_eq!(bot["meeting_url"], "sandbox://standup?speed=50");
    assert_eq!(bot["calendar_event_id"], standup_id);
    let bot_id = bot["id"].as_str().unwrap().to_owned();

    // Refusals, each changing nothing.
    let lunch_id = named(&events, "lunch")["id"].as_str().unwrap().to_owned();
    for (body, message) in [
        (
            json!({"calendar_event_id": standup_id, "meeting_url": "https://zoom.us/j/1"}),
            "meeting_url cannot be given with calendar_event_id",
        ),
        (
            json!({"calendar_event_id": standup_id, "join_at": "2099-01-01T00:00:00Z"}),
            "join_at cannot be given with calendar_event_id",
        ),
        (
            json!({"calendar_event_id": "evt_0000000000000000"}),
            "is not an event of this project",
        ),
        (
            json!({"calendar_event_id": lunch_id}),
            "has no meeting link",
        ),
        (
            json!({"calendar_event_id": named(&events, "retro")["id"]}),
            "has already ended",
        ),
        (
            json!({"calendar_event_id": standup_id, "sandbox_script": {"steps": []}}),
            "sandbox_script needs a meeting_url of sandbox://custom",
        ),
        (
            json!({"bot_name": "x"}),
            "meeting_url (or calendar_event_id) is required",
        ),
    ] {
        refused(&api, body, message).await;
    }
    assert_eq!(api.all_bots().await.len(), 1);

    // The event moves an hour later: so does the bot.
    feed.set(
        200,
        feed_of(&[
            standup(from_now(7200)),
            review.clone(),
            lunch.clone(),
            retro.clone(),
        ]),
    );
    sync_now(&api, &calendar).await;
    let moved = api
        .wait_bot(&bot_id, WAIT, |b| b["join_at"] != bot["join_at"])
        .await;
    let events = calendar_events(&api, &calendar).await;
    assert_eq!(moved["join_at"], named(&events, "standup")["start_time"]);
    assert_eq!(moved["state"], "scheduled");

    // A bot for the Zoom review, then the review is cancelled: so is its bot, with a webhook.
    let review_id = named(&events, "review")["id"].as_str().unwrap().to_owned();
    let review_bot = api
        .create_bot(json!({"calendar_event_id": review_id}))
        .await;
    let review_bot_id = review_bot["id"].as_str().unwrap().to_owned();
    assert_eq!(review_bot["meeting_url"], "https://zoom.us/j/777");

    // The standup moves to a few seconds from now, and the review is deleted.
    let soon = from_now(3);
    feed.set(200, feed_of(&[standup(soon), lunch.clone()]));
    sync_now(&api, &calendar).await;
    let cancelled = api
        .wait_bot(&review_bot_id, WAIT, |b| b["state"] == "fatal_error")
        .await;
    assert_eq!(cancelled["events"][0]["type"], "fatal_error");
    assert_eq!(cancelled["events"][0]["sub_type"], "meeting_not_found");
    let of_review = |h: &Value| h["bot_id"] == review_bot_id.as_str();
    receiver
        .wait_until(WAIT, "the cancelled bot's state change", |r| {
            r.iter().any(|r| of_review(&r.json()))
        })
        .await;
    let hooks = signed_hooks(&receiver, &project);
    let hook = hooks.iter().find(|h| of_review(h)).unwrap();
    assert_eq!(hook["data"]["old_state"], "scheduled");
    assert_eq!(hook["data"]["new_state"], "fatal_error");
    assert_eq!(hook["data"]["event_sub_type"], "meeting_not_found");
    assert_eq!(
        hook["data"]["event_metadata"]["reason"],
        "calendar_event_deleted"
    );
    assert_eq!(
        hook["data"]["event_metadata"]["calendar_event_id"],
        review_id.as_str()
    );
    refused(
        &api,
        json!({"calendar_event_id": review_id}),
        "has been deleted",
    )
    .await;

    // The standup bot joins at the event's new time and the sandbox meeting runs to its end.
    let ended = api
        .wait_bot(&bot_id, Duration::from_secs(30), |b| b["state"] == "ended")
        .await;
    let types = event_types(&ended);
    assert_eq!(types[..2], ["staged", "join_requested"], "{types:?}");
    assert_eq!(types.last().unwrap(), "post_processing_completed");
    let is_join =
        |h: &Value| h["bot_id"] == bot_id.as_str() && h["data"]["event_type"] == "join_requested";
    let received = receiver
        .wait_until(WAIT, "the join_requested webhook", |r| {
            r.iter().any(|r| is_join(&r.json()))
        })
        .await;
    let join_requested = received.iter().map(|r| r.json()).find(is_join).unwrap();
    assert_eq!(
        join_requested["data"]["event_metadata"]["source"],
        "scheduler"
    );
    let created_at: DateTime<Utc> = join_requested["data"]["created_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        created_at >= soon,
        "asked to join at {created_at}, before the event's start {soon}"
    );
}

#[tokio::test]
async fn auto_join_sends_one_bot_to_each_matching_event_and_calendar_deletion_cancels_waiting_ones()
{
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "auto join");
    let server = Server::start(dir.path(), FAST_LOOPBACK);
    let api = server.api(&project.api_key);
    let feed = Feed::start(feed_of(&[
        vevent(
            "ours",
            from_now(3),
            "ORGANIZER;CN=Ann:mailto:ann@example.com\r\n\
             LOCATION:sandbox://standup?speed=50\r\n",
        ),
        vevent(
            "theirs",
            from_now(3600),
            "ATTENDEE:mailto:bob@other.test\r\nLOCATION:sandbox://standup?speed=50\r\n",
        ),
        vevent(
            "no link",
            from_now(3600),
            "ATTENDEE:mailto:ann@example.com\r\n",
        ),
        vevent(
            "bad link",
            from_now(3600),
            "ATTENDEE:mailto:ann@example.com\r\nLOCATION:sandbox://nosuchscenario\r\n",
        ),
    ]))
    .await;

    for (rule, message) in [
        (json!({"attendees": ["nobody"]}), "auto_join.attendees"),
        (json!({"bot_name": ""}), "auto_join.bot_name"),
        (json!({"when": "always"}), "unknown field `when`"),
        (json!("yes"), "auto_join"),
    ] {
        let (status, answer) = api
            .post(
                "/api/v1/calendars",
                &json!({"platform": "ical", "ical_url": feed.url, "auto_join": rule}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rule}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{rule}: {answer}"
        );
    }
    assert!(api.list_all("/api/v1/calendars").await.is_empty());

    let rule = json!({"bot_name": "Auto notes", "attendees": ["@Example.com"],
                      "metadata": {"source": "calendar"}});
    let calendar = connect(
        &api,
        json!({"platform": "ical", "ical_url": feed.url, "auto_join": rule}),
    )
    .await;
    let events = wait_events(&api, &calendar, 4).await;
    assert_eq!(named(&events, "bad link")["meeting_url"], Value::Null);
    let ours_id = named(&events, "ours")["id"].as_str().unwrap().to_owned();

    // Only the event organised from example.com with a link gets a bot; it runs its meeting.
    let bots = wait_bots(&api, 1).await;
    let ours = &bots[0];
    assert_eq!(ours["calendar_event_id"], ours_id.as_str());
    assert_eq!(ours["metadata"], json!({"source": "calendar"}));
    let ended = api
        .wait_bot(ours["id"].as_str().unwrap(), Duration::from_secs(30), |b| {
            b["state"] == "ended"
        })
        .await;
    assert!(event_types(&ended).contains(&"joined_meeting".to_owned()));
    let shown = feed::calendar(&api, &calendar).await;
    assert_eq!(shown["auto_join"]["attendees"], json!(["@example.com"]));

    // Every event with a link: the other one gets its bot; syncing again adds none.
    let (status, body) = api
        .patch(
            &format!("/api/v1/calendars/{calendar}"),
            &json!({"auto_join": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bots = wait_bots(&api, 2).await;
    let theirs = bots
        .iter()
        .find(|b| b["id"] != ended["id"])
        .unwrap()
        .clone();
    assert_eq!(theirs["state"], "scheduled");
    sync_now(&api, &calendar).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(api.all_bots().await.len(), 2);

    // Auto-join off keeps the bots; deleting the calendar cancels the one still waiting.
    let (status, body) = api
        .patch(
            &format!("/api/v1/calendars/{calendar}"),
            &json!({"auto_join": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auto_join"], Value::Null);
    sync_now(&api, &calendar).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, kept) = api
        .get(&format!("/api/v1/bots/{}", theirs["id"].as_str().unwrap()))
        .await;
    assert_eq!(kept["state"], "scheduled", "auto-join off keeps the bots");
    let (status, _) = api.delete(&format!("/api/v1/calendars/{calendar}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cancelled = api
        .wait_bot(theirs["id"].as_str().unwrap(), WAIT, |b| {
            b["state"] == "fatal_error"
        })
        .await;
    assert_eq!(cancelled["events"][0]["sub_type"], "meeting_not_found");
    let (_, ours_after) = api
        .get(&format!("/api/v1/bots/{}", ended["id"].as_str().unwrap()))
        .await;
    assert_eq!(ours_after["state"], "ended", "a finished bot is left alone");
}

async fn wait_bots(api: &Api, n: usize) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let bots = api.all_bots().await;
        if bots.len() >= n {
            assert_eq!(bots.len(), n, "{bots:?}");
            return bots;
        }
        assert!(start.elapsed() < WAIT, "waiting for {n} bots: {bots:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
