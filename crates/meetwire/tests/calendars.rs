//! iCalendar calendars against the real binary and a local feed server: the first sync, a
//! change, a deletion, a recurring event with its exceptions, a feed that is gone
//! (`disconnected` and `calendar.state_change`), throttling (retried, still connected), and
//! reconnecting with a new URL — each checked by the signed webhooks a real receiver got and by
//! `GET /api/v1/calendar_events`. Plus the API's refusals.

mod common;

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use common::feed::{calendar_events, ical_time, sync_now, wait_hooks, Feed};
use common::receiver::{Receiver, FAST_LOOPBACK};
use common::{create_project, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A feed with a single meeting tomorrow and a daily one over four days from the day after,
/// its third day removed (EXDATE) and its second moved an hour later (an overridden instance);
/// `single_hour` places the single meeting, `with_single` leaves it out.
fn calendar_text(single_hour: u32, with_single: bool) -> String {
    let day = Utc::now().date_naive() + Span::days(1);
    let at = |days: i64, hour: u32| {
        (day + Span::days(days))
            .and_hms_opt(hour, 0, 0)
            .unwrap()
            .and_utc()
    };
    let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n");
    if with_single {
        text.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:single@test\r\nDTSTART:{}\r\nDTEND:{}\r\nSUMMARY:Sales call\r\n\
             LOCATION:https://meet.google.com/abc-defg-hij\r\n\
             ATTENDEE;CN=Ann:mailto:ann@example.com\r\nEND:VEVENT\r\n",
            ical_time(at(0, single_hour)),
            ical_time(at(0, single_hour + 1)),
        ));
    }
    text.push_str(&format!(
        "BEGIN:VEVENT\r\nUID:daily@test\r\nDTSTART:{}\r\nDURATION:PT30M\r\n\
         RRULE:FREQ=DAILY;COUNT=4\r\nEXDATE:{}\r\nSUMMARY:Daily\r\n\
         DESCRIPTION:Join https://zoom.us/j/555\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:daily@test\r\nRECURRENCE-ID:{}\r\nDTSTART:{}\r\nDTEND:{}\r\n\
         SUMMARY:Daily (moved)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        ical_time(at(1, 15)),
        ical_time(at(3, 15)),
        ical_time(at(2, 15)),
        ical_time(at(2, 16)),
        ical_time(at(2, 17)),
    ));
    text
}

fn live(events: &[Value]) -> Vec<(String, String)> {
    let mut live: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["is_deleted"] == false)
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                e["start_time"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    live.sort_by(|a, b| a.1.cmp(&b.1));
    live
}

#[tokio::test]
async fn an_ical_feed_syncs_changes_and_disconnects_with_signed_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "calendars");
    let server = Server::start(dir.path(), FAST_LOOPBACK);
    let api = server.api(&project.api_key);
    let receiver = api.calendar_receiver().await;
    let feed = Feed::start(calendar_text(10, true)).await;

    let (status, calendar) = api
        .post(
            "/api/v1/calendars",
            &json!({"platform": "ical", "ical_url": feed.url, "deduplication_key": "team-a",
                    "metadata": {"team": "a"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{calendar}");
    assert!(
        calendar.get("ical_url").is_none(),
        "credentials are never shown"
    );
    let id = calendar["id"].as_str().unwrap().to_owned();
    let (status, again) = api
        .post(
            "/api/v1/calendars",
            &json!({"platform": "ical", "ical_url": feed.url, "deduplication_key": "team-a"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        again["error"].as_str().unwrap().contains("team-a"),
        "{again}"
    );

    // First sync: one events_update, the calendar envelope, the events.
    let hooks = wait_hooks(&receiver, &project, 1).await;
    let first = &hooks[0];
    assert_eq!(first["trigger"], "calendar.events_update");
    assert_eq!(first["calendar_id"], id.as_str());
    assert_eq!(first["calendar_deduplication_key"], "team-a");
    assert_eq!(first["calendar_metadata"], json!({"team": "a"}));
    assert_eq!(first["data"]["state"], "connected");
    assert!(first["data"]["last_successful_sync_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let found = calendar_events(&api, &id).await;
    let names: Vec<String> = live(&found).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Sales call", "Daily", "Daily (moved)", "Daily"]);
    let sales = found.iter().find(|e| e["name"] == "Sales call").unwrap();
    assert_eq!(sales["meeting_url"], "https://meet.google.com/abc-defg-hij");
    assert_eq!(sales["attendees"][0]["email"], "ann@example.com");
    assert_eq!(sales["ical_uid"], "single@test");
    let daily = found.iter().find(|e| e["name"] == "Daily").unwrap();
    assert_eq!(daily["meeting_url"], "https://zoom.us/j/555");

    // Nothing changed: a sync sends nothing.
    sync_now(&api, &id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 1);

    // The single meeting moves, then is deleted.
    feed.set(200, calendar_text(12, true));
    sync_now(&api, &id).await;
    wait_hooks(&receiver, &project, 2).await;
    let moved = live(&calendar_events(&api, &id).await);
    assert!(moved[0].1.contains("T12:00:00"), "{moved:?}");
    feed.set(200, calendar_text(12, false));
    sync_now(&api, &id).await;
    wait_hooks(&receiver, &project, 3).await;
    let after = calendar_events(&api, &id).await;
    let gone = after.iter().find(|e| e["name"] == "Sales call").unwrap();
    assert_eq!(gone["is_deleted"], true);
    let filtered = api
        .list_all("/api/v1/calendar_events?calendar_deduplication_key=team-a")
        .await;
    assert_eq!(filtered.len(), after.len());

    // Throttled: retried later, still connected, no webhook.
    feed.set(429, String::new());
    sync_now(&api, &id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 3);
    let (_, still) = api.get(&format!("/api/v1/calendars/{id}")).await;
    assert_eq!(still["state"], "connected");

    // The feed is gone: disconnected, with the reason, and a state change webhook.
    feed.set(404, String::new());
    sync_now(&api, &id).await;
    let hooks = wait_hooks(&receiver, &project, 4).await;
    let broken = &hooks[3];
    assert_eq!(broken["trigger"], "calendar.state_change");
    assert_eq!(broken["data"]["state"], "disconnected");
    assert!(broken["data"]["connection_failure_data"]["error"]
        .as_str()
        .unwrap()
        .contains("404"));
    let (_, calendar) = api.get(&format!("/api/v1/calendars/{id}")).await;
    assert_eq!(calendar["state"], "disconnected");

    // A new URL reconnects it: a state change back to connected.
    let fixed = Feed::start(calendar_text(12, false)).await;
    let (status, body) = api
        .patch(
            &format!("/api/v1/calendars/{id}"),
            &json!({"ical_url": fixed.url}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let hooks = wait_hooks(&receiver, &project, 5).await;
    assert_eq!(hooks[4]["trigger"], "calendar.state_change");
    assert_eq!(hooks[4]["data"]["state"], "connected");
    assert_eq!(hooks[4]["data"]["connection_failure_data"], Value::Null);

    // Not a calendar at all: disconnected, naming why.
    fixed.set(200, "<html>hello</html>".into());
    sync_now(&api, &id).await;
    let hooks = wait_hooks(&receiver, &project, 6).await;
    assert!(hooks[5]["data"]["connection_failure_data"]["error"]
        .as_str()
        .unwrap()
        .contains("not an iCalendar feed"));

    // Deliveries are in the log under the calendar.
    let log = common::receiver::delivery_log(&api, &format!("calendar_id={id}")).await;
    assert_eq!(log.len(), 6);
    let (status, _) = api.delete(&format!("/api/v1/calendars/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(calendar_events(&api, &id).await.is_empty());
}

#[tokio::test]
async fn bad_calendar_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "bad calendars");
    let server = Server::start(dir.path(), &[]);
    let api = server.api(&project.api_key);
    for (body, message) in [
        (
            json!({"platform": "outlook", "ical_url": "https://x.example/c.ics"}),
            "Invalid platform: outlook",
        ),
        (json!({"platform": "ical"}), "ical_url is required"),
        (
            json!({"platform": "ical", "ical_url": "https://x.example/c.ics", "client_id": "x"}),
            "client_id is not a credential",
        ),
        (
            json!({"platform": "ical", "ical_url": "http://x.example/c.ics"}),
            "ical_url must start with https://",
        ),
        (
            json!({"platform": "ical", "ical_url": "https://x.example/c.ics", "colour": "red"}),
            "colour",
        ),
        (
            json!({"platform": "ical", "ical_url": "https://x.example/c.ics", "metadata": {"n": 1}}),
            "metadata must be an object whose values are strings",
        ),
        (
            json!({"platform": "google", "client_id": "a", "client_secret": "b"}),
            "refresh_token is required for a google calendar",
        ),
        (
            json!({"platform": "microsoft", "client_id": "a", "client_secret": "b",
                   "refresh_token": "c", "ical_url": "https://x.example/c.ics"}),
            "ical_url is not a credential of a microsoft calendar",
        ),
        (
            json!({"platform": "google", "client_id": "", "client_secret": "b", "refresh_token": "c"}),
            "client_id must be between 1 and 4096 characters",
        ),
        (
            json!({"platform": "outlook", "client_id": "a"}),
            "Invalid platform: outlook",
        ),
    ] {
        let (status, answer) = api.post("/api/v1/calendars", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{body}: {answer}"
        );
    }
    assert!(api.list_all("/api/v1/calendars").await.is_empty());
    let (status, answer) = api
        .get("/api/v1/calendar_events?start_time_gte=yesterday")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = api.get("/api/v1/calendars/cal_0000000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let other = create_project(dir.path(), "other");
    let (_, mine) = api
        .post(
            "/api/v1/calendars",
            &json!({"platform": "ical", "ical_url": "https://x.example/c.ics"}),
        )
        .await;
    let id = mine["id"].as_str().unwrap();
    let theirs = server.api(&other.api_key);
    let (status, _) = theirs.get(&format!("/api/v1/calendars/{id}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another project's calendar is not found"
    );
}

#[tokio::test]
async fn the_calendar_pages_show_state_events_and_webhooks_to_members_only() {
    use common::ui::{create_user, Browser, PASSWORD};
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "calendar pages");
    let other = create_project(dir.path(), "other");
    create_user(dir.path(), "user@example.com", &project.id);
    create_user(dir.path(), "other@example.com", &other.id);
    let server = Server::start(dir.path(), FAST_LOOPBACK);
    let api = server.api(&project.api_key);
    let receiver = Receiver::ok().await;
    api.subscribe(&receiver.url(), &["calendar.events_update"])
        .await;
    let feed = Feed::start(calendar_text(10, true)).await;
    let (_, calendar) = api
        .post(
            "/api/v1/calendars",
            &json!({"platform": "ical", "ical_url": feed.url, "metadata": {"who": "<script>x</script>"}}),
        )
        .await;
    let id = calendar["id"].as_str().unwrap().to_owned();
    wait_hooks(&receiver, &project, 1).await;

    let mut browser = Browser::new(&server);
    browser.sign_in("user@example.com", PASSWORD).await;
    let list_path = format!("/projects/{}/calendars", project.id);
    let list = browser.get(&list_path).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains(&id) && list.body.contains(">connected</span>"),
        "{}",
        list.body
    );
    let page_path = format!("{list_path}/{id}");
    let page = browser.get(&page_path).await;
    assert!(
        page.body.contains("Sales call") && page.body.contains("Daily (moved)"),
        "{}",
        page.body
    );
    assert!(page.body.contains("https://meet.google.com/abc-defg-hij"));
    assert!(
        page.body.contains("off (an auto_join rule, set by PATCH"),
        "auto-join off says how to turn it on"
    );
    assert!(!page.body.contains("<script>x"), "metadata shown as text");
    let hooks = browser.get(&format!("{page_path}?tab=webhooks")).await;
    assert!(
        hooks.body.contains("calendar.events_update"),
        "{}",
        hooks.body
    );
    assert_eq!(
        hooks.body.matches(r#"<li class="delivery card">"#).count(),
        1
    );

    // Sync now, from the page: a forged form changes nothing, a real one syncs.
    feed.set(200, calendar_text(12, true));
    let forged = browser
        .post(&format!("{page_path}/sync"), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let queued = browser
        .submit(&page_path, &format!("{page_path}/sync"), &[])
        .await;
    assert!(queued.status.is_redirection(), "{}", queued.body);
    wait_hooks(&receiver, &project, 2).await;

    let mut stranger = Browser::new(&server);
    stranger.sign_in("other@example.com", PASSWORD).await;
    let refused = stranger
        .get(&format!("/projects/{}/calendars/{id}", other.id))
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let refused = stranger.get(&page_path).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
}
