//! The user-facing bot API (spec section 8) against the real server: create, read, list with
//! cursor pagination and filters, edit, scheduled bots, deduplication, project isolation and
//! authentication.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{
    admin, admin_output, create_project, create_runner_token, event_types, rest_time_from_now,
    setup, Api,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const MEETING: &str = "https://meet.example.com/abc-defg-hij";

fn bot_id(bot: &Value) -> String {
    bot["id"].as_str().expect("bot id").to_owned()
}

fn is_rest_time(s: &str) -> bool {
    // 2025-01-01T12:00:00.123456Z
    s.len() == 27
        && s.ends_with('Z')
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            26 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn ids(bots: &[Value]) -> Vec<String> {
    bots.iter().map(bot_id).collect()
}

#[tokio::test]
async fn create_returns_the_bot_object_and_get_shows_the_same() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let (status, bot) = api
        .post(
            "/api/v1/bots",
            &json!({"meeting_url": MEETING, "bot_name": "Notetaker",
                    "metadata": {"customer": "acme", "deal": "42"},
                    "deduplication_key": "acme-weekly"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    for key in [
        "id",
        "metadata",
        "meeting_url",
        "state",
        "events",
        "transcription_state",
        "recording_state",
        "join_at",
        "deduplication_key",
    ] {
        assert!(bot.get(key).is_some(), "bot object lacks {key}: {bot}");
    }
    let id = bot_id(&bot);
    assert!(
        id.starts_with("bot_")
            && id.len() == 20
            && id[4..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "{id}"
    );
    assert_eq!(bot["metadata"], json!({"customer": "acme", "deal": "42"}));
    assert_eq!(bot["meeting_url"], MEETING);
    // Not a sandbox meeting and no external runner: asked to join, waiting for a runner.
    assert_eq!(bot["state"], "joining");
    assert_eq!(bot["transcription_state"], "not_started");
    assert_eq!(bot["recording_state"], "not_started");
    assert_eq!(bot["join_at"], Value::Null);
    assert_eq!(bot["deduplication_key"], "acme-weekly");
    let events = bot["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{bot}");
    assert_eq!(events[0]["type"], "join_requested");
    assert_eq!(events[0]["sub_type"], Value::Null);
    let at = events[0]["created_at"].as_str().unwrap();
    assert!(is_rest_time(at), "{at}");

    let (status, got) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, bot, "GET shows the bot exactly as created");

    // Defaults: no metadata and no deduplication key are null (Attendee's bot and webhook
    // shapes); an explicit null is the same.
    let plain = api.create_bot(json!({"meeting_url": MEETING})).await;
    assert_eq!(plain["metadata"], Value::Null);
    let explicit = api
        .create_bot(json!({"meeting_url": MEETING, "metadata": null}))
        .await;
    assert_eq!(explicit["metadata"], Value::Null);
    assert_eq!(plain["deduplication_key"], Value::Null);
    assert_ne!(bot_id(&plain), id);
}

#[tokio::test]
async fn list_paginates_newest_first_forward_and_back() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let mut created = Vec::new();
    for i in 0..7 {
        let bot = api
            .create_bot(json!({"meeting_url": format!("{MEETING}-{i}")}))
            .await;
        created.push(bot_id(&bot));
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    // Forward through `next`, which must be an absolute URL on this server.
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut bodies: Vec<Value> = Vec::new();
    let mut url = format!("{}/api/v1/bots?page_size=3", server.base);
    loop {
        let path = url
            .strip_prefix(&server.base)
            .unwrap_or_else(|| panic!("next link {url} is not absolute on {}", server.base));
        let (status, page) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{url}: {page}");
        let results = page["results"].as_array().unwrap();
        assert!(results.len() <= 3, "{page}");
        pages.push(ids(results));
        bodies.push(page.clone());
        match page["next"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
        assert!(pages.len() <= 10, "pagination does not end");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "{pages:?}"
    );
    assert_eq!(pages.concat(), newest_first, "every bot once, newest first");
    assert_eq!(bodies[0]["previous"], Value::Null);
    assert_eq!(bodies[2]["next"], Value::Null);
    // The links keep the other parameters.
    let next = bodies[0]["next"].as_str().unwrap();
    assert!(next.contains("page_size=3"), "{next}");
    assert!(next.contains("cursor="), "{next}");

    // And back through `previous` from the last page.
    let mut back: Vec<Vec<String>> = Vec::new();
    let mut prev = bodies[2]["previous"].as_str().map(str::to_owned);
    while let Some(url) = prev {
        let path = url
            .strip_prefix(&server.base)
            .unwrap_or_else(|| panic!("previous link {url} is not absolute"));
        let (status, page) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        back.push(ids(page["results"].as_array().unwrap()));
        prev = page["previous"].as_str().map(str::to_owned);
        assert!(back.len() <= 10, "pagination does not end");
    }
    assert_eq!(back, [pages[1].clone(), pages[0].clone()]);

    // Filters are kept in the links: 7 joining bots, two per page.
    let filtered = api
        .list_all("/api/v1/bots?states=joining&page_size=2")
        .await;
    assert_eq!(ids(&filtered), newest_first);
}

#[tokio::test]
async fn list_filters_by_meeting_url_deduplication_key_and_states() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let other_url = "https://meet.example.com/other?x=1&y=2";
    let joining = api
        .create_bot(json!({"meeting_url": MEETING, "deduplication_key": "k-joining"}))
        .await;
    let scheduled = api
        .create_bot(json!({"meeting_url": other_url, "join_at": rest_time_from_now(3_600_000)}))
        .await;
    assert_eq!(scheduled["state"], "scheduled");
    let ended = api.create_bot(json!({"meeting_url": other_url})).await;
    // Nobody runs this bot yet, so leaving ends it at once.
    let (status, left) = api
        .post(
            &format!("/api/v1/bots/{}/leave", bot_id(&ended)),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert_eq!(left["state"], "ended", "{left}");
    let (joining, scheduled, ended) = (bot_id(&joining), bot_id(&scheduled), bot_id(&ended));

    let list = |query: String| {
        let api = api.clone();
        async move {
            let (status, page) = api.get(&format!("/api/v1/bots?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            let got: HashSet<String> = ids(page["results"].as_array().unwrap())
                .into_iter()
                .collect();
            got
        }
    };
    let set = |v: &[&String]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();

    assert_eq!(
        list(format!("meeting_url={}", encode(MEETING))).await,
        set(&[&joining])
    );
    assert_eq!(
        list(format!("meeting_url={}", encode(other_url))).await,
        set(&[&scheduled, &ended])
    );
    assert_eq!(
        list("meeting_url=https%3A%2F%2Fnowhere.example.com".into()).await,
        set(&[])
    );
    assert_eq!(
        list("deduplication_key=k-joining".into()).await,
        set(&[&joining])
    );
    assert_eq!(list("deduplication_key=nope".into()).await, set(&[]));
    assert_eq!(list("states=ended".into()).await, set(&[&ended]));
    assert_eq!(
        list("states=scheduled&states=joining".into()).await,
        set(&[&scheduled, &joining])
    );
    assert_eq!(
        list("states=scheduled,joining".into()).await,
        set(&[&scheduled, &joining])
    );
    assert_eq!(
        list("states=scheduled,ended&states=joining".into()).await,
        set(&[&scheduled, &joining, &ended])
    );
    assert_eq!(
        list(format!("states=ended&meeting_url={}", encode(other_url))).await,
        set(&[&ended])
    );
    assert_eq!(list("states=fatal_error".into()).await, set(&[]));

    for bad in ["states=flying", "states=joining,flying", "states=Joining"] {
        let (status, body) = api.get(&format!("/api/v1/bots?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}

#[tokio::test]
async fn patch_changes_metadata_and_refuses_bad_bodies() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let bot = api
        .create_bot(json!({"meeting_url": MEETING, "metadata": {"customer": "acme"}}))
        .await;
    let id = bot_id(&bot);
    let path = format!("/api/v1/bots/{id}");

    let (status, patched) = api
        .patch(
            &path,
            &json!({"metadata": {"customer": "globex", "tier": "gold"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        patched["metadata"],
        json!({"customer": "globex", "tier": "gold"})
    );
    assert_eq!(patched["state"], bot["state"]);
    assert_eq!(patched["events"], bot["events"]);
    let (_, got) = api.get(&path).await;
    assert_eq!(got, patched);

    for bad in [
        json!({"metadata": {"count": 5}}),
        json!({"metadata": {"nested": {"a": "b"}}}),
        json!({"metadata": ["a", "b"]}),
        json!({"metadata": "text"}),
        json!({"metadata": {"ok": "yes"}, "state": "ended"}),
        json!({"meeting_url": "https://elsewhere.example.com"}),
        // join_at can only change while the bot is scheduled.
        json!({"join_at": rest_time_from_now(3_600_000)}),
    ] {
        let (status, body) = api.patch(&path, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
        let (_, now) = api.get(&path).await;
        assert_eq!(now, patched, "refused PATCH {bad} changed the bot");
    }
}

#[tokio::test]
async fn scheduled_bot_can_be_moved_and_deleted_but_others_cannot_be_deleted() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let join_at = rest_time_from_now(3_600_000);
    let bot = api
        .create_bot(json!({"meeting_url": MEETING, "join_at": join_at}))
        .await;
    let id = bot_id(&bot);
    assert_eq!(bot["state"], "scheduled");
    assert_eq!(bot["join_at"], join_at.as_str());
    assert_eq!(
        event_types(&bot),
        Vec::<String>::new(),
        "a scheduled bot has not been asked to join"
    );

    let later = rest_time_from_now(7_200_000);
    let (status, moved) = api
        .patch(&format!("/api/v1/bots/{id}"), &json!({"join_at": later}))
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["join_at"], later.as_str());
    assert_eq!(moved["state"], "scheduled");
    let (_, got) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(got["join_at"], later.as_str());

    let (status, body) = api.delete(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"].is_string());
    let (status, _) = api.delete(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!ids(&api.all_bots().await).contains(&id));

    // A bot that was asked to join is not deletable, and stays.
    let active = api.create_bot(json!({"meeting_url": MEETING})).await;
    let active_id = bot_id(&active);
    let (status, body) = api.delete(&format!("/api/v1/bots/{active_id}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, still) = api.get(&format!("/api/v1/bots/{active_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(still, active);
    assert_eq!(ids(&api.all_bots().await), [active_id]);

    // join_at given with an offset is kept as the same instant and shown in UTC (`Z`).
    let bot = api
        .create_bot(json!({"meeting_url": MEETING, "join_at": "2099-01-01T01:30:00+01:30"}))
        .await;
    assert_eq!(bot["state"], "scheduled");
    assert_eq!(bot["join_at"], "2099-01-01T00:00:00.000000Z");
}

#[tokio::test]
async fn scheduled_bot_is_staged_and_joins_on_time_by_itself() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let join_at = rest_time_from_now(2_000);
    let bot = api
        .create_bot(json!({"meeting_url": MEETING, "join_at": join_at}))
        .await;
    assert_eq!(bot["state"], "scheduled");
    let id = bot_id(&bot);
    // Within the staging lead (60 s): staged at once, long before join_at.
    let staged = api
        .wait_bot(&id, Duration::from_secs(10), |b| b["state"] != "scheduled")
        .await;
    assert_eq!(staged["state"], "staged", "{staged}");
    assert_eq!(event_types(&staged), ["staged"]);

    let joined = api
        .wait_bot(&id, Duration::from_secs(15), |b| b["state"] == "joining")
        .await;
    assert_eq!(event_types(&joined), ["staged", "join_requested"]);
    let staged_at = joined["events"][0]["created_at"].as_str().unwrap();
    let join_requested_at = joined["events"][1]["created_at"].as_str().unwrap();
    // Same fixed-width format: string order is time order.
    assert!(staged_at < join_at.as_str(), "{staged_at} vs {join_at}");
    assert!(
        join_requested_at >= join_at.as_str(),
        "asked to join at {join_requested_at}, before its join_at {join_at}"
    );
    assert_eq!(joined["join_at"], join_at.as_str());
}

#[tokio::test]
async fn deduplication_key_conflicts_while_the_first_bot_is_active() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let first = api
        .create_bot(json!({"meeting_url": MEETING, "deduplication_key": "standup-2025-01-01"}))
        .await;
    let (status, body) = api
        .post(
            "/api/v1/bots",
            &json!({"meeting_url": format!("{MEETING}-2"), "deduplication_key": "standup-2025-01-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(ids(&api.all_bots().await), [bot_id(&first)]);

    // Another key is fine.
    api.create_bot(json!({"meeting_url": MEETING, "deduplication_key": "standup-2025-01-02"}))
        .await;

    // Once the first bot is finished, its key is free again.
    let (status, left) = api
        .post(
            &format!("/api/v1/bots/{}/leave", bot_id(&first)),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{left}");
    assert_eq!(left["state"], "ended");
    let again = api
        .create_bot(json!({"meeting_url": MEETING, "deduplication_key": "standup-2025-01-01"}))
        .await;
    assert_eq!(again["state"], "joining");
    assert_eq!(api.all_bots().await.len(), 3);
}

#[tokio::test]
async fn another_projects_bots_are_invisible() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let joining = api
        .create_bot(json!({"meeting_url": MEETING, "metadata": {"owner": "a"},
                           "deduplication_key": "shared-key"}))
        .await;
    let scheduled = api
        .create_bot(json!({"meeting_url": MEETING, "join_at": rest_time_from_now(3_600_000)}))
        .await;

    // A second project, created while the server runs on the same data.
    let other = create_project(dir.path(), "other");
    assert_ne!(other.id, project.id);
    assert!(
        other.id.starts_with("proj_") && other.id.len() == 21,
        "{}",
        other.id
    );
    let intruder = server.api(&other.api_key);

    for bot in [&joining, &scheduled] {
        let id = bot_id(bot);
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/api/v1/bots/{id}"), None),
            (
                Method::PATCH,
                format!("/api/v1/bots/{id}"),
                Some(json!({"metadata": {"owner": "b"}})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/bots/{id}"),
                Some(json!({"join_at": rest_time_from_now(7_200_000)})),
            ),
            (Method::DELETE, format!("/api/v1/bots/{id}"), None),
            (
                Method::POST,
                format!("/api/v1/bots/{id}/leave"),
                Some(json!({})),
            ),
            (Method::GET, format!("/api/v1/bots/{id}/transcript"), None),
            (
                Method::GET,
                format!("/api/v1/bots/{id}/chat_messages"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/bots/{id}/participant_events"),
                None,
            ),
            (Method::GET, format!("/api/v1/bots/{id}/logs"), None),
        ];
        for (method, path, body) in attempts {
            let (status, resp) = intruder.call(method.clone(), &path, body.as_ref()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {resp}");
            assert!(resp["error"].is_string(), "{method} {path}: {resp}");
            assert!(
                !resp.to_string().contains(&id),
                "the 404 leaks the bot: {resp}"
            );
        }
        // Nothing happened to the bot.
        let (status, now) = api.get(&format!("/api/v1/bots/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&now, bot);
    }
    let (status, page) = intruder.get("/api/v1/bots").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["results"], json!([]));
    for filter in [
        format!("meeting_url={}", encode(MEETING)),
        "deduplication_key=shared-key".to_owned(),
        "states=joining,scheduled".to_owned(),
    ] {
        let (_, page) = intruder.get(&format!("/api/v1/bots?{filter}")).await;
        assert_eq!(page["results"], json!([]), "{filter}");
    }

    // Deduplication keys are per project.
    let theirs = intruder
        .create_bot(json!({"meeting_url": MEETING, "deduplication_key": "shared-key"}))
        .await;
    assert_eq!(ids(&intruder.all_bots().await), [bot_id(&theirs)]);
    let mine = ids(&api.all_bots().await);
    assert_eq!(mine, [bot_id(&scheduled), bot_id(&joining)]);
    let (status, _) = api.get(&format!("/api/v1/bots/{}", bot_id(&theirs))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn raw_request(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = client.request(method, url);
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let www = resp
        .headers()
        .get("WWW-Authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.bytes().await.unwrap();
    (
        status,
        www,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn authentication_errors_have_the_contract_shape() {
    let (dir, project, server) = setup(&[]);
    let runner_token = create_runner_token(dir.path(), "auth-test-runner");
    let api = server.api(&project.api_key);
    let bot = api.create_bot(json!({"meeting_url": MEETING})).await;
    let id = bot_id(&bot);
    let client = reqwest::Client::new();
    let base = &server.base;

    const MISSING: &str = "Missing Authorization header";
    const MALFORMED: &str =
        "Invalid Authorization header. Should have this format: Token <api_key>";
    const INVALID: &str = "Invalid or disabled API key";
    let runner_auth = format!("Token {runner_token}");
    let api_auth = format!("Token {}", project.api_key);
    let bearer_api = format!("Bearer {}", project.api_key);
    let cases: Vec<(Option<&str>, &str)> = vec![
        (None, MISSING),
        (Some("Bearer x"), MALFORMED),
        (Some(bearer_api.as_str()), MALFORMED),
        (Some("Token"), MALFORMED),
        (Some("Token "), MALFORMED),
        (Some("Basic dXNlcjpwYXNz"), MALFORMED),
        (Some("Token abc def"), MALFORMED),
        (Some("Token not-a-real-key"), INVALID),
        (Some(runner_auth.as_str()), INVALID),
    ];
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("{base}/api/v1/bots"), None),
        (
            Method::POST,
            format!("{base}/api/v1/bots"),
            Some(json!({"meeting_url": MEETING})),
        ),
        (Method::GET, format!("{base}/api/v1/bots/{id}"), None),
        (
            Method::PATCH,
            format!("{base}/api/v1/bots/{id}"),
            Some(json!({"metadata": {"x": "y"}})),
        ),
        (
            Method::POST,
            format!("{base}/api/v1/bots/{id}/leave"),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("{base}/api/v1/bots/{id}/transcript"),
            None,
        ),
    ];
    for (auth, detail) in &cases {
        for (method, url, body) in &routes {
            let (status, www, resp) =
                raw_request(&client, method.clone(), url, *auth, body.as_ref()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{auth:?} {method} {url}: {resp}"
            );
            assert_eq!(resp, json!({"detail": detail}), "{auth:?} {method} {url}");
            assert_eq!(www.as_deref(), Some("Token"), "{auth:?} {method} {url}");
        }
    }

    // The API key is not a runner credential.
    let runner_routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, format!("{base}/runner/v1/bots/claim"), None),
        (
            Method::POST,
            format!("{base}/runner/v1/bots/{id}/records"),
            Some(json!({"records": [{"kind": "log", "id": "x", "level": "info", "message": "m"}]})),
        ),
        (
            Method::POST,
            format!("{base}/runner/v1/bots/{id}/heartbeat"),
            None,
        ),
    ];
    for (method, url, body) in &runner_routes {
        let (status, www, resp) =
            raw_request(&client, method.clone(), url, Some(&api_auth), body.as_ref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {url}: {resp}");
        assert_eq!(resp, json!({"detail": INVALID}));
        assert_eq!(www.as_deref(), Some("Token"));
        let (status, _, resp) =
            raw_request(&client, method.clone(), url, None, body.as_ref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(resp, json!({"detail": MISSING}));
    }

    // Nothing was created, left, patched or claimed by any of that.
    let (_, now) = api.get(&format!("/api/v1/bots/{id}")).await;
    assert_eq!(now, bot);
    assert_eq!(ids(&api.all_bots().await), std::slice::from_ref(&id));
    let runner = server.api(&runner_token);
    let (status, claimed) = runner.post("/runner/v1/bots/claim", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["bot"]["id"], id.as_str());
}

#[tokio::test]
async fn admin_creates_more_api_keys_for_existing_projects_only() {
    let (dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let bot = api.create_bot(json!({"meeting_url": MEETING})).await;

    let created = admin(dir.path(), &["create-api-key", "--project", &project.id]);
    let key = created["api_key"].as_str().expect("api_key").to_owned();
    assert_ne!(key, project.api_key);
    let second: Api = server.api(&key);
    let (status, got) = second.get(&format!("/api/v1/bots/{}", bot_id(&bot))).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got, bot);
    // Both keys keep working and see the same project.
    let made = second.create_bot(json!({"meeting_url": MEETING})).await;
    assert_eq!(ids(&api.all_bots().await), [bot_id(&made), bot_id(&bot)]);

    let out = admin_output(
        dir.path(),
        &["create-api-key", "--project", "proj_doesnotexist00"],
    );
    assert!(
        !out.status.success(),
        "create-api-key for an unknown project succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(printed.get("api_key").is_none(), "{printed}");
}
