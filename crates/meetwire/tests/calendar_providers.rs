//! Google and Microsoft calendars against the real binary and local fake providers that speak
//! each provider's wire format (`tests/common/providers.rs`: an OAuth token endpoint, Google's
//! events list with sync tokens, Graph's `calendarView/delta`). For each provider: the first
//! sync (full, paged), incremental syncs over the provider's token (a move and rename, a
//! deletion, a cancelled instance), a recurring event with a moved and a cancelled instance,
//! throttling (retried, still connected), a revoked refresh token (`disconnected` and
//! `calendar.state_change`), reconnecting with a new one, and a refused sync token (a full
//! resync) — each checked by the signed webhooks a real receiver got, by
//! `GET /api/v1/calendar_events`, and by what the fake provider was asked. Plus the API's
//! refusals and a Graph link to another origin, which must not get the bearer token.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use common::feed::{self, calendar_events, signed_hooks, sync_now, wait_hooks};
use common::providers::{Endpoint, Kind, Link, Meeting, Provider, Sync};
use common::receiver::{delivery_log, Receiver, FAST_LOOPBACK};
use common::{create_project, Api, Project, Server};
use meetwire_core::time::rest_timestamp;
use reqwest::StatusCode;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// `hour`:00 UTC, `days` after tomorrow (tomorrow as of the first call, so a suite running
/// over midnight keeps its dates).
fn at(days: i64, hour: u32) -> DateTime<Utc> {
    static TOMORROW: OnceLock<NaiveDate> = OnceLock::new();
    let tomorrow = *TOMORROW.get_or_init(|| Utc::now().date_naive() + Span::days(1));
    (tomorrow + Span::days(days))
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
}

/// A server whose provider URLs point at the fakes, syncing every 2 s, with loopback webhooks.
fn start_server(dir: &Path, providers: &[&Provider]) -> Server {
    let mut flags: Vec<String> = FAST_LOOPBACK.iter().map(|f| f.to_string()).collect();
    flags.extend(["--calendar-sync-interval".to_owned(), "2".to_owned()]);
    for provider in providers {
        flags.extend(provider.flags());
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(dir, &flags)
}

/// (provider id, name, start time) of an event.
type Row = (String, String, String);

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| (&a.2, &a.0).cmp(&(&b.2, &b.0)));
    rows
}

/// The API's live events, by start.
fn live(events: &[Value]) -> Vec<Row> {
    sorted(
        events
            .iter()
            .filter(|e| e["is_deleted"] == false)
            .map(|e| {
                (
                    e["raw"]["id"].as_str().unwrap_or_default().to_owned(),
                    e["name"].as_str().unwrap_or_default().to_owned(),
                    e["start_time"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    )
}

/// What the provider holds now, neither deleted nor cancelled, by start.
fn expected(fake: &Provider) -> Vec<Row> {
    sorted(
        fake.live()
            .into_iter()
            .map(|m| (m.id, m.name, rest_timestamp(&m.start)))
            .collect(),
    )
}

/// The API's event whose provider id (`raw.id`) is `id`.
fn by_raw_id<'a>(events: &'a [Value], id: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["raw"]["id"] == id)
        .unwrap_or_else(|| panic!("no event {id} in {events:#?}"))
}

/// Waits for the `n`th webhook, which must be the only new one and be a `trigger`.
async fn nth_hook(receiver: &Receiver, project: &Project, n: usize, trigger: &str) -> Value {
    let hooks = wait_hooks(receiver, project, n).await;
    assert_eq!(hooks.len(), n, "one webhook more than expected: {hooks:#?}");
    let hook = hooks[n - 1].clone();
    assert_eq!(hook["trigger"], trigger, "{hook}");
    hook
}

/// Waits until the calendar has `n` live events; returns them all.
async fn wait_live(api: &Api, id: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let events = calendar_events(api, id).await;
        if live(&events).len() == n {
            return events;
        }
        assert!(
            start.elapsed() < WAIT,
            "waiting for {n} events: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn lifecycle(kind: Kind) {
    let fake = Provider::start(kind).await;
    fake.grant("rt-1");
    let sales = Meeting::new(&fake.event_id("sales"), "Sales call", at(0, 10), 60)
        .link(Link::Conference("sandbox://standup?speed=50".into()))
        .attendee("ann@example.com")
        .attendee("bob@example.com");
    let review = Meeting::new(&fake.event_id("review"), "Design review", at(0, 14), 60)
        .link(Link::Location("sandbox://long?speed=5".into()));
    let lunch = Meeting::new(&fake.event_id("lunch"), "Lunch with Cy", at(1, 12), 60)
        .link(Link::Description("sandbox://crash?speed=20".into()));
    let offsite = Meeting::all_day(&fake.event_id("offsite"), "Offsite", at(3, 0));
    // A daily meeting over four days: the second moved two hours later and renamed (an
    // exception), the third cancelled.
    let series = fake.event_id("daily");
    let daily: Vec<Meeting> = (1..=4)
        .map(|d| {
            Meeting::new(&fake.instance_id(&series, at(d, 9)), "Daily", at(d, 9), 30)
                .instance_of(&series)
                .link(Link::Description("https://zoom.us/j/555".into()))
        })
        .collect();
    fake.edit(|c| {
        for meeting in [
            sales.clone(),
            review.clone(),
            lunch.clone(),
            offsite.clone(),
            daily[0].clone(),
            daily[1].clone().moved(at(2, 11)).renamed("Daily (moved)"),
            daily[2].clone().cancelled(),
            daily[3].clone(),
        ] {
            c.put(meeting);
        }
    });

    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), kind.platform());
    let server = start_server(dir.path(), &[&fake]);
    let api = server.api(&project.api_key);
    let receiver = api.calendar_receiver().await;

    let uuid = match kind {
        // `#` and `/` must travel percent-encoded in the path.
        Kind::Google => Some("en.usa#holiday/team@group.v.calendar.google.com"),
        Kind::Microsoft => None,
    };
    let mut body = fake.calendar_body("rt-1", uuid);
    body["deduplication_key"] = json!("ann");
    body["metadata"] = json!({"user": "ann"});
    let (status, calendar) = api.post("/api/v1/calendars", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{calendar}");
    assert_eq!(calendar["platform"], kind.platform());
    let shown = calendar.to_string();
    assert!(
        !shown.contains(&fake.client_secret) && !shown.contains("rt-1"),
        "credentials are never shown: {shown}"
    );
    let id = calendar["id"].as_str().unwrap().to_owned();

    // The first sync: one events_update, every event as the provider has it.
    let first = nth_hook(&receiver, &project, 1, "calendar.events_update").await;
    assert_eq!(first["calendar_id"], id.as_str());
    assert_eq!(first["calendar_deduplication_key"], "ann");
    assert_eq!(first["calendar_metadata"], json!({"user": "ann"}));
    assert_eq!(first["data"]["state"], "connected");
    let events = calendar_events(&api, &id).await;
    assert_eq!(live(&events), expected(&fake));
    let event = |id: &str| by_raw_id(&events, id).clone();
    assert_eq!(
        event(&sales.id)["meeting_url"],
        "sandbox://standup?speed=50"
    );
    assert_eq!(event(&sales.id)["end_time"], rest_timestamp(&sales.end));
    assert_eq!(event(&sales.id)["attendees"][0]["email"], "ann@example.com");
    assert_eq!(event(&sales.id)["ical_uid"], sales.ical_uid());
    assert_eq!(event(&review.id)["meeting_url"], "sandbox://long?speed=5");
    assert_eq!(event(&lunch.id)["meeting_url"], "sandbox://crash?speed=20");
    assert_eq!(event(&daily[0].id)["meeting_url"], "https://zoom.us/j/555");
    assert_eq!(event(&offsite.id)["meeting_url"], Value::Null);
    let moved = event(&daily[1].id);
    assert_eq!(moved["name"], "Daily (moved)");
    assert_eq!(moved["start_time"], rest_timestamp(&at(2, 11)));
    assert!(
        events
            .iter()
            .all(|e| e["raw"]["id"] != daily[2].id.as_str()),
        "an instance cancelled before the first sync is never stored: {events:#?}"
    );
    let api_ids: HashMap<String, String> = events
        .iter()
        .map(|e| {
            (
                e["raw"]["id"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    // It refreshed the token with a form, then read every page of a full sync.
    let refresh = fake
        .since(0)
        .into_iter()
        .find(|s| s.endpoint == Endpoint::Token)
        .expect("a token refresh");
    assert_eq!(refresh.status, 200, "{refresh:?}");
    assert_eq!(refresh.form("grant_type"), Some("refresh_token"));
    assert_eq!(refresh.form("client_id"), Some(fake.client_id.as_str()));
    assert_eq!(
        refresh.form("client_secret"),
        Some(fake.client_secret.as_str())
    );
    assert_eq!(refresh.form("refresh_token"), Some("rt-1"));
    let pages = fake.events_since(0);
    assert!(pages.len() >= 3, "{pages:#?}");
    fake.assert_full_request(&pages[0]);
    assert_eq!(pages[0].calendar.as_deref(), uuid);
    assert!(
        pages[1..3]
            .iter()
            .all(|p| p.later_page && p.sync == Some(Sync::Full) && p.status == 200),
        "the full sync's later pages: {pages:#?}"
    );
    assert!(
        pages.iter().all(|p| p
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer at-"))),
        "{pages:#?}"
    );

    // Nothing changed: an incremental sync, and no webhook.
    let mark = fake.mark();
    sync_now(&api, &id).await;
    fake.wait_seen(mark, "an incremental sync", |s| {
        s.is_sync(Sync::Incremental)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(receiver.count(), 1, "nothing changed, nothing sent");
    for seen in fake.events_since(mark) {
        fake.assert_incremental_request(&seen);
    }
    // Microsoft rotates refresh tokens: the next sync uses the one the last sync was given.
    let refreshed_with = fake.tokens_since(mark)[0]
        .form("refresh_token")
        .map(str::to_owned);
    match kind {
        Kind::Google => assert_eq!(refreshed_with.as_deref(), Some("rt-1")),
        Kind::Microsoft => assert!(
            refreshed_with
                .as_deref()
                .is_some_and(|t| t.starts_with("rt-1.r")),
            "the rotated refresh token was kept: {refreshed_with:?}"
        ),
    }

    // The sales call moves and is renamed: read incrementally, one events_update.
    let mark = fake.mark();
    fake.put(
        fake.meeting(&sales.id)
            .moved(at(0, 13))
            .renamed("Sales call (moved)"),
    );
    sync_now(&api, &id).await;
    let hook = nth_hook(&receiver, &project, 2, "calendar.events_update").await;
    assert_eq!(hook["data"]["state"], "connected");
    let events = calendar_events(&api, &id).await;
    assert_eq!(live(&events), expected(&fake));
    let moved = by_raw_id(&events, &sales.id);
    assert_eq!(moved["name"], "Sales call (moved)");
    assert_eq!(moved["start_time"], rest_timestamp(&at(0, 13)));
    assert_eq!(moved["id"], api_ids[&sales.id].as_str(), "the same event");
    let read = fake.events_since(mark);
    assert!(
        read.iter().any(|s| s.is_sync(Sync::Incremental)),
        "{read:#?}"
    );
    for seen in &read {
        fake.assert_incremental_request(seen);
    }

    // The review is deleted and the last daily instance cancelled.
    let mark = fake.mark();
    fake.edit(|c| {
        c.delete(&review.id);
        c.put(daily[3].clone().cancelled());
    });
    sync_now(&api, &id).await;
    nth_hook(&receiver, &project, 3, "calendar.events_update").await;
    let events = calendar_events(&api, &id).await;
    assert_eq!(live(&events), expected(&fake));
    assert_eq!(by_raw_id(&events, &review.id)["is_deleted"], true);
    assert_eq!(by_raw_id(&events, &daily[3].id)["is_deleted"], true);
    for seen in fake.events_since(mark) {
        fake.assert_incremental_request(&seen);
    }

    // Throttled once (429, Retry-After: 1) and unavailable once (503): the sync still lands,
    // after the wait asked for, and the calendar stays connected.
    let mark = fake.mark();
    let planning = Meeting::new(&fake.event_id("planning"), "Planning", at(2, 14), 45).link(
        Link::Location("https://meet.google.com/abc-defg-hij".into()),
    );
    fake.throttle(&[429, 503]);
    fake.put(planning.clone());
    sync_now(&api, &id).await;
    let hook = nth_hook(&receiver, &project, 4, "calendar.events_update").await;
    assert_eq!(hook["data"]["state"], "connected");
    let served = fake.events_since(mark);
    let count = |status: u16| served.iter().filter(|s| s.status == status).count();
    assert_eq!((count(429), count(503)), (1, 1), "{served:#?}");
    let throttled = served.iter().position(|s| s.status == 429).unwrap();
    let retry = served.get(throttled + 1).expect("a retry after the 429");
    assert!(
        retry.at.duration_since(served[throttled].at) >= Duration::from_millis(900),
        "Retry-After: 1 not waited: {served:#?}"
    );
    let events = calendar_events(&api, &id).await;
    assert_eq!(live(&events), expected(&fake));
    assert_eq!(
        by_raw_id(&events, &planning.id)["meeting_url"],
        "https://meet.google.com/abc-defg-hij"
    );
    let calendar = feed::calendar(&api, &id).await;
    assert_eq!(calendar["state"], "connected");
    assert_eq!(calendar["connection_failure_data"], Value::Null);

    // The refresh token is revoked: disconnected, saying why, with a state change webhook.
    // The events stay as they were.
    let mark = fake.mark();
    fake.revoke("rt-1");
    sync_now(&api, &id).await;
    let hook = nth_hook(&receiver, &project, 5, "calendar.state_change").await;
    assert_eq!(hook["data"]["state"], "disconnected");
    let error = hook["data"]["connection_failure_data"]["error"]
        .as_str()
        .expect("connection_failure_data.error");
    assert!(error.contains("invalid_grant"), "{hook}");
    let calendar = feed::calendar(&api, &id).await;
    assert_eq!(calendar["state"], "disconnected");
    assert_eq!(calendar["connection_failure_data"]["error"], error);
    assert!(
        fake.tokens_since(mark).iter().any(|s| s.status == 400),
        "the revoked token was tried"
    );
    assert_eq!(live(&calendar_events(&api, &id).await), expected(&fake));

    // A new refresh token (the client id and secret kept) reconnects it.
    let mark = fake.mark();
    fake.grant("rt-2");
    let (status, patched) = api
        .patch(
            &format!("/api/v1/calendars/{id}"),
            &json!({"refresh_token": "rt-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(!patched.to_string().contains("rt-2"), "{patched}");
    let hook = nth_hook(&receiver, &project, 6, "calendar.state_change").await;
    assert_eq!(hook["data"]["state"], "connected");
    assert_eq!(hook["data"]["connection_failure_data"], Value::Null);
    let refresh = fake
        .tokens_since(mark)
        .into_iter()
        .find(|s| s.status == 200)
        .expect("a refresh with the new token");
    assert_eq!(refresh.form("refresh_token"), Some("rt-2"));
    assert_eq!(refresh.form("client_id"), Some(fake.client_id.as_str()));
    assert_eq!(
        refresh.form("client_secret"),
        Some(fake.client_secret.as_str())
    );
    assert_eq!(feed::calendar(&api, &id).await["state"], "connected");
    assert_eq!(live(&calendar_events(&api, &id).await), expected(&fake));

    // The sync token is refused (410) while the offsite is deleted and the first daily
    // renamed: a full resync finds both, and keeps every other event as it was.
    let mark = fake.mark();
    let renamed = fake.meeting(&daily[0].id).renamed("Daily (first)");
    fake.edit(|c| {
        c.delete(&offsite.id);
        c.put(renamed);
        c.expire_sync_tokens();
    });
    sync_now(&api, &id).await;
    nth_hook(&receiver, &project, 7, "calendar.events_update").await;
    let served = fake.events_since(mark);
    let refused = served
        .iter()
        .position(|s| s.status == 410)
        .unwrap_or_else(|| panic!("the old sync token refused: {served:#?}"));
    let full = served[refused..]
        .iter()
        .find(|s| s.is_sync(Sync::Full))
        .unwrap_or_else(|| panic!("a full sync after the 410: {served:#?}"));
    fake.assert_full_request(full);
    let events = calendar_events(&api, &id).await;
    assert_eq!(live(&events), expected(&fake));
    assert_eq!(by_raw_id(&events, &offsite.id)["is_deleted"], true);
    assert_eq!(by_raw_id(&events, &daily[0].id)["name"], "Daily (first)");
    for e in &events {
        if let Some(before) = api_ids.get(e["raw"]["id"].as_str().unwrap()) {
            assert_eq!(e["id"], before.as_str(), "an event keeps its id: {e}");
        }
    }

    // Nothing more was sent, and every webhook is in the calendar's delivery log.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let triggers: Vec<Value> = signed_hooks(&receiver, &project)
        .iter()
        .map(|h| h["trigger"].clone())
        .collect();
    let (update, change) = ("calendar.events_update", "calendar.state_change");
    assert_eq!(
        triggers,
        [update, update, update, update, change, change, update]
    );
    let log = delivery_log(&api, &format!("calendar_id={id}")).await;
    assert_eq!(log.len(), 7);
}

#[tokio::test]
async fn a_google_calendar_syncs_incrementally_disconnects_and_reconnects() {
    lifecycle(Kind::Google).await;
}

#[tokio::test]
async fn a_microsoft_calendar_syncs_incrementally_disconnects_and_reconnects() {
    lifecycle(Kind::Microsoft).await;
}

#[tokio::test]
async fn bad_provider_calendars_are_refused_and_google_defaults_to_the_primary_calendar() {
    let google = Provider::start(Kind::Google).await;
    let microsoft = Provider::start(Kind::Microsoft).await;
    google.grant("rt-g");
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "bad providers");
    let server = start_server(dir.path(), &[&google, &microsoft]);
    let api = server.api(&project.api_key);

    let refused = |body: Value, message: &'static str| {
        let api = api.clone();
        async move {
            let (status, answer) = api.post("/api/v1/calendars", &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(message),
                "{body}: {answer}"
            );
        }
    };
    for fake in [&google, &microsoft] {
        for field in ["client_id", "client_secret", "refresh_token"] {
            let mut body = fake.calendar_body("rt", None);
            body.as_object_mut().unwrap().remove(field);
            refused(body, field).await;
        }
        let mut body = fake.calendar_body("rt", None);
        body["ical_url"] = json!("https://calendar.example/basic.ics");
        refused(body, "ical_url").await;
    }
    assert!(api.list_all("/api/v1/calendars").await.is_empty());
    assert!(google.seen().is_empty() && microsoft.seen().is_empty());

    // Without platform_uuid a Google calendar reads the primary calendar.
    let one = Meeting::new(&google.event_id("one"), "One on one", at(0, 9), 30).link(
        Link::Conference("https://meet.google.com/abc-defg-hij".into()),
    );
    google.put(one.clone());
    let (status, calendar) = api
        .post("/api/v1/calendars", &google.calendar_body("rt-g", None))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{calendar}");
    let id = calendar["id"].as_str().unwrap().to_owned();
    let full = google
        .wait_seen(0, "a full sync", |s| s.is_sync(Sync::Full))
        .await;
    assert_eq!(full.path, "/calendar/v3/calendars/primary/events");
    let events = wait_live(&api, &id, 1).await;
    assert_eq!(
        by_raw_id(&events, &one.id)["meeting_url"],
        "https://meet.google.com/abc-defg-hij"
    );

    // A PATCH may change credentials, but not give a Google calendar a feed URL.
    let (status, answer) = api
        .patch(
            &format!("/api/v1/calendars/{id}"),
            &json!({"ical_url": "https://calendar.example/basic.ics"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("ical_url"),
        "{answer}"
    );
    // A new client secret alone: merged with the stored client id and refresh token, and the
    // sync it makes due at once refreshes with it.
    let mark = google.mark();
    let (status, answer) = api
        .patch(
            &format!("/api/v1/calendars/{id}"),
            &json!({"client_secret": "a new client secret"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!answer.to_string().contains("a new client secret"));
    let refresh = google
        .wait_seen(mark, "a refresh with the new client secret", |s| {
            s.form("client_secret") == Some("a new client secret")
        })
        .await;
    assert_eq!(refresh.form("client_id"), Some(google.client_id.as_str()));
    assert_eq!(refresh.form("refresh_token"), Some("rt-g"));
}

#[tokio::test]
async fn a_graph_next_link_to_another_origin_disconnects_without_sending_the_token_there() {
    let graph = Provider::start(Kind::Microsoft).await;
    graph.grant("rt-m");
    let elsewhere = Receiver::ok().await;
    graph.send_next_links_to(&format!("http://{}", elsewhere.addr));
    graph.edit(|c| {
        for day in 0..5 {
            let name = format!("Meeting {day}");
            c.put(Meeting::new(
                &graph.event_id(&format!("m{day}")),
                &name,
                at(day, 10),
                30,
            ));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "graph links");
    let server = start_server(dir.path(), &[&graph]);
    let api = server.api(&project.api_key);
    let receiver = api.calendar_receiver().await;

    let uuid = "AAMkAGI2/team+calendar=";
    let (status, calendar) = api
        .post(
            "/api/v1/calendars",
            &graph.calendar_body("rt-m", Some(uuid)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{calendar}");
    let id = calendar["id"].as_str().unwrap().to_owned();

    let hook = nth_hook(&receiver, &project, 1, "calendar.state_change").await;
    assert_eq!(hook["data"]["state"], "disconnected");
    let error = hook["data"]["connection_failure_data"]["error"]
        .as_str()
        .expect("connection_failure_data.error");
    assert!(
        error.contains(&elsewhere.addr.to_string()) || error.to_lowercase().contains("origin"),
        "the reason names the foreign link: {error}"
    );
    assert_eq!(feed::calendar(&api, &id).await["state"], "disconnected");
    assert_eq!(
        elsewhere.count(),
        0,
        "nothing, and no token, went to the other origin"
    );
    let read = graph.events_since(0);
    assert!(read[0].is_sync(Sync::Full), "{read:#?}");
    assert_eq!(read[0].calendar.as_deref(), Some(uuid));
    assert!(read.iter().all(|s| !s.later_page), "{read:#?}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        receiver.count(),
        1,
        "no events_update for a sync that failed"
    );
    assert!(
        live(&calendar_events(&api, &id).await).is_empty(),
        "a sync that failed half-way stores nothing"
    );
}
