//! Webhook subscriptions: the project-level REST API (`/api/v1/webhooks`) and bot-level ones
//! created with the bot, with the exact validation messages of the contract (spec section 3),
//! and which subscriptions receive a bot's events.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::receiver::{
    all_finished, delivery_log, log_record, sandbox_script, wait_delivery_log, Receiver,
    FAST_LOOPBACK as LOOPBACK,
};
use common::{create_project, setup, Api};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

async fn patch(api: &Api, path: &str, body: &Value) -> (StatusCode, Value) {
    api.call(Method::PATCH, path, Some(body)).await
}

async fn delete(api: &Api, path: &str) -> (StatusCode, Value) {
    api.call(Method::DELETE, path, None).await
}

fn error(message: &str) -> Value {
    json!({ "error": message })
}

/// Asserts that creating a project webhook with `url` and `triggers` is refused with 400 and
/// exactly `message`.
async fn assert_create_refused(api: &Api, url: &str, triggers: Value, message: &str) {
    let (status, body) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": url, "triggers": triggers}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{url} {triggers}: {body}");
    assert_eq!(body, error(message), "{url} {triggers}");
}

async fn project_webhooks(api: &Api) -> Vec<Value> {
    let (status, body) = api.get("/api/v1/webhooks").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn project_webhooks_crud_with_the_contracts_messages() {
    let (dir, project, server) = setup(&["--max-webhooks-per-project", "2"]);
    let api = server.api(&project.api_key);

    let (status, a) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://hooks.example.com/a",
                    "triggers": ["bot.state_change", "transcript.update"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let a_id = a["id"].as_str().unwrap().to_owned();
    assert!(a_id.starts_with("webhook_") && a_id.len() == 24, "{a_id}");
    assert_eq!(a["url"], "https://hooks.example.com/a");
    assert_eq!(
        a["triggers"],
        json!(["bot.state_change", "transcript.update"])
    );
    assert_eq!(a["is_active"], true);
    assert_eq!(a["bot_id"], Value::Null);
    assert_eq!(a["disabled_reason"], Value::Null);
    assert!(a["created_at"].as_str().unwrap().ends_with('Z'), "{a}");

    let (status, got) = api.get(&format!("/api/v1/webhooks/{a_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, a);
    assert_eq!(project_webhooks(&api).await, vec![a.clone()]);

    // Validation, each with its exact message and nothing stored.
    let bad = [
        (
            json!(["bot.nope"]),
            "Invalid webhook trigger type: bot.nope",
        ),
        (json!(["x"]), "Invalid webhook trigger type: x"),
        (json!(["7"]), "Invalid webhook trigger type: 7"),
        (json!([7]), "Invalid webhook trigger type: 7"),
        (json!([null]), "Invalid webhook trigger type: null"),
        (json!(["8"]), "Invalid webhook trigger type: 8"),
        (
            json!(["bot.state_change", "async_transcription.state_change"]),
            "Invalid webhook trigger type: async_transcription.state_change",
        ),
        (
            json!(["zoom_oauth_connection.state_change"]),
            "Invalid webhook trigger type: zoom_oauth_connection.state_change",
        ),
        (
            json!(["BOT.STATE_CHANGE"]),
            "Invalid webhook trigger type: BOT.STATE_CHANGE",
        ),
    ];
    for (triggers, message) in bad {
        assert_create_refused(&api, "https://hooks.example.com/b", triggers, message).await;
    }
    for triggers in [json!([]), json!(["bot.state_change", "bot.state_change"])] {
        let (status, body) = api
            .post(
                "/api/v1/webhooks",
                &json!({"url": "https://hooks.example.com/b", "triggers": triggers}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{triggers}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    assert_create_refused(
        &api,
        "https://hooks.example.com/a",
        json!(["chat_messages.update"]),
        "URL already subscribed",
    )
    .await;
    assert_create_refused(
        &api,
        "http://hooks.example.com/b",
        json!(["bot.state_change"]),
        "webhook URL must start with https://",
    )
    .await;
    // The scheme is checked on the text as written, as Attendee does, before anything else
    // about the URL; and triggers are checked before the URL.
    for (url, triggers, message) in [
        (
            "not a url",
            json!(["bot.state_change"]),
            "webhook URL must start with https://",
        ),
        (
            "HTTPS://hooks.example.com/b",
            json!(["bot.state_change"]),
            "webhook URL must start with https://",
        ),
        (
            "https:hooks.example.com/b",
            json!(["bot.state_change"]),
            "webhook URL must start with https://",
        ),
        (
            "not a url",
            json!(["bot.nope"]),
            "Invalid webhook trigger type: bot.nope",
        ),
    ] {
        assert_create_refused(&api, url, triggers, message).await;
    }
    // Whitespace or control characters, which a URL parser drops quietly: stored as sent they
    // would dodge the duplicate check and reach the same endpoint twice.
    for url in [
        "https://hooks.example.com/a\n",
        "https://hooks.example.com/a ",
        "https://hooks.exa\tmple.com/a",
    ] {
        let message = format!("Invalid webhook URL: {url}");
        assert_create_refused(&api, url, json!(["bot.state_change"]), &message).await;
    }
    // A body must be an object: serde would fill the struct from an array, field by field.
    let (status, body) = api
        .post(
            "/api/v1/webhooks",
            &json!(["https://hooks.example.com/b", ["bot.state_change"]]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body, error("Invalid request body: expected a JSON object"));
    assert_eq!(project_webhooks(&api).await.len(), 1);

    // The per-project maximum (2 here).
    let (status, b) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://hooks.example.com/b", "triggers": ["bot_logs.update"],
                    "is_active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    assert_eq!(b["is_active"], false);
    let b_id = b["id"].as_str().unwrap().to_owned();
    assert_create_refused(
        &api,
        "https://hooks.example.com/c",
        json!(["bot.state_change"]),
        "You have reached the maximum number of webhooks",
    )
    .await;
    // At the maximum, a URL already subscribed is still named as a duplicate.
    assert_create_refused(
        &api,
        "https://hooks.example.com/a",
        json!(["bot.state_change"]),
        "URL already subscribed",
    )
    .await;
    // Bot-level subscriptions do not count against the project's maximum.
    let (status, bot) = api
        .post(
            "/api/v1/bots",
            &json!({"meeting_url": "https://meet.example.com/x",
                    "webhooks": [{"url": "https://hooks.example.com/a",
                                  "triggers": ["bot.state_change"]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    assert_eq!(project_webhooks(&api).await.len(), 2);

    // PATCH.
    let (status, body) = patch(
        &api,
        &format!("/api/v1/webhooks/{b_id}"),
        &json!({"triggers": ["chat_messages.update", "participant_events.speech_start_stop"],
                "is_active": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["triggers"],
        json!([
            "chat_messages.update",
            "participant_events.speech_start_stop"
        ])
    );
    assert_eq!(body["is_active"], true);
    assert_eq!(body["url"], "https://hooks.example.com/b");
    let (status, body) = patch(
        &api,
        &format!("/api/v1/webhooks/{b_id}"),
        &json!({"url": "https://hooks.example.com/a"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, error("URL already subscribed"));
    let (status, body) = patch(
        &api,
        &format!("/api/v1/webhooks/{b_id}"),
        &json!({"url": "https://hooks.example.com/b"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "its own URL is no duplicate: {body}"
    );
    // A URL stored before the whitespace rule (written here behind the server's back) can be
    // sent back unchanged; a new URL with whitespace is still refused.
    let legacy = "https://hooks.example.com/b ";
    let db = rusqlite::Connection::open(dir.path().join("meetwire.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let set_url = "UPDATE webhook_subscriptions SET url = ?1 WHERE id = ?2";
    db.execute(set_url, [legacy, b_id.as_str()]).unwrap();
    let one = format!("/api/v1/webhooks/{b_id}");
    let (status, body) = patch(&api, &one, &json!({"url": legacy, "is_active": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    db.execute(set_url, ["https://hooks.example.com/b", b_id.as_str()])
        .unwrap();
    let stray = "https://hooks.example.com/c ";
    let (status, body) = patch(&api, &one, &json!({"url": stray})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, error(&format!("Invalid webhook URL: {stray}")));
    let (status, body) = patch(
        &api,
        &format!("/api/v1/webhooks/{b_id}"),
        &json!({"triggers": ["calendar.nope"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, error("Invalid webhook trigger type: calendar.nope"));
    let (status, body) = patch(
        &api,
        &format!("/api/v1/webhooks/{b_id}"),
        &json!({"triggers": []}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = patch(
        &api,
        &format!("/api/v1/webhooks/{b_id}"),
        &json!({"url": "http://hooks.example.com/b"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, error("webhook URL must start with https://"));
    let (status, body) = patch(
        &api,
        &format!("/api/v1/webhooks/{b_id}"),
        &json!({"url": "https://hooks.example.com/b2", "is_active": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["url"], "https://hooks.example.com/b2");
    assert_eq!(body["is_active"], false);
    // Failed patches changed nothing.
    let (_, b_now) = api.get(&format!("/api/v1/webhooks/{b_id}")).await;
    assert_eq!(b_now, body);

    // Another project sees none of it.
    let other = create_project(dir.path(), "other");
    let other = server.api(&other.api_key);
    assert_eq!(project_webhooks(&other).await, Vec::<Value>::new());
    let (status, _) = other.get(&format!("/api/v1/webhooks/{a_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = patch(
        &other,
        &format!("/api/v1/webhooks/{a_id}"),
        &json!({"is_active": false}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = delete(&other, &format!("/api/v1/webhooks/{a_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // …and may subscribe the same URL.
    let (status, body) = other
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://hooks.example.com/a", "triggers": ["bot.state_change"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // DELETE frees a place.
    let (status, _) = delete(&api, &format!("/api/v1/webhooks/{a_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&format!("/api/v1/webhooks/{a_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = delete(&api, &format!("/api/v1/webhooks/{a_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://hooks.example.com/a", "triggers": ["bot.state_change"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_ne!(body["id"], a_id.as_str());
    let ids: Vec<Value> = project_webhooks(&api)
        .await
        .iter()
        .map(|w| w["id"].clone())
        .collect();
    assert_eq!(ids, [json!(b_id), body["id"].clone()], "oldest first");
}

#[tokio::test]
async fn bot_webhooks_are_created_with_the_bot_or_not_at_all() {
    let (_dir, project, server) = setup(&["--max-webhooks-per-bot", "1"]);
    let api = server.api(&project.api_key);
    let (status, _) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://hooks.example.com/p", "triggers": ["bot.state_change"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let before_hooks = project_webhooks(&api).await;

    let meeting = "https://meet.example.com/abc";
    let cases = [
        (
            json!([{"url": "https://hooks.example.com/1", "triggers": ["bot.state_change"]},
                   {"url": "https://hooks.example.com/2", "triggers": ["bot.state_change"]}]),
            "You have reached the maximum number of webhooks for a single bot",
        ),
        (
            json!([{"url": "https://hooks.example.com/1", "triggers": ["x"]}]),
            "Invalid webhook trigger type: x",
        ),
        (
            json!([{"url": "http://hooks.example.com/1", "triggers": ["bot.state_change"]}]),
            "webhook URL must start with https://",
        ),
    ];
    for (webhooks, message) in cases {
        let (status, body) = api
            .post(
                "/api/v1/bots",
                &json!({"meeting_url": meeting, "webhooks": webhooks}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{webhooks}: {body}");
        assert_eq!(body, error(message), "{webhooks}");
    }
    for triggers in [json!([]), json!(["transcript.update", "transcript.update"])] {
        let (status, body) = api
            .post(
                "/api/v1/bots",
                &json!({"meeting_url": meeting,
                        "webhooks": [{"url": "https://hooks.example.com/1", "triggers": triggers}]}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{triggers}: {body}");
    }
    let (_, bots) = api.get("/api/v1/bots").await;
    assert_eq!(bots["results"], json!([]), "a refused bot was kept");
    assert_eq!(project_webhooks(&api).await, before_hooks);

    // Within the limit: created, listed under the bot, not under the project. The project's
    // URL may be reused at bot level.
    let bot = api
        .create_bot(json!({"meeting_url": meeting,
                           "webhooks": [{"url": "https://hooks.example.com/p",
                                         "triggers": ["bot.state_change", "bot_logs.update"]}]}))
        .await;
    let bot_id = bot["id"].as_str().unwrap();
    let (status, list) = api.get(&format!("/api/v1/webhooks?bot_id={bot_id}")).await;
    assert_eq!(status, StatusCode::OK);
    let list = list["results"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["bot_id"], bot_id);
    assert_eq!(list[0]["url"], "https://hooks.example.com/p");
    assert_eq!(
        list[0]["triggers"],
        json!(["bot.state_change", "bot_logs.update"])
    );
    assert_eq!(list[0]["is_active"], true);
    assert_eq!(project_webhooks(&api).await, before_hooks);
    let (status, one) = api
        .get(&format!(
            "/api/v1/webhooks/{}",
            list[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["bot_id"], bot_id);
}

#[tokio::test]
async fn a_duplicate_bot_webhook_url_rolls_the_bot_back() {
    let (_dir, project, server) = setup(&[]);
    let api = server.api(&project.api_key);
    let (status, body) = api
        .post(
            "/api/v1/bots",
            &json!({"meeting_url": "https://meet.example.com/abc",
                    "webhooks": [
                        {"url": "https://hooks.example.com/1", "triggers": ["bot.state_change"]},
                        {"url": "https://hooks.example.com/1", "triggers": ["transcript.update"]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body, error("URL already subscribed for this bot"));
    let (_, bots) = api.get("/api/v1/bots").await;
    assert_eq!(bots["results"], json!([]), "the bot was not rolled back");

    // The default per-bot maximum is 10.
    let hooks: Vec<Value> = (0..11)
        .map(|i| {
            json!({"url": format!("https://hooks.example.com/{i}"),
                        "triggers": ["bot.state_change"]})
        })
        .collect();
    let (status, body) = api
        .post(
            "/api/v1/bots",
            &json!({"meeting_url": "https://meet.example.com/abc", "webhooks": hooks[..11]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body,
        error("You have reached the maximum number of webhooks for a single bot")
    );
    let bot = api
        .create_bot(json!({"meeting_url": "https://meet.example.com/abc",
                           "webhooks": hooks[..10]}))
        .await;
    let (_, list) = api
        .get(&format!(
            "/api/v1/webhooks?bot_id={}",
            bot["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(list["results"].as_array().unwrap().len(), 10);
    let (_, bots) = api.get("/api/v1/bots").await;
    assert_eq!(bots["results"].as_array().unwrap().len(), 1);
}

/// The keys of received envelopes, by `(bot_id, trigger)`.
fn keys_by_event(rx: &Receiver) -> BTreeMap<(String, String), Vec<String>> {
    let mut map: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in rx.received() {
        map.entry((r.bot_id(), r.trigger()))
            .or_default()
            .push(r.key());
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_level_subscriptions_replace_the_projects_and_each_gets_its_own_key() {
    let project_rx = Receiver::ok().await;
    let second_rx = Receiver::ok().await;
    let inactive_rx = Receiver::ok().await;
    let chat_only_rx = Receiver::ok().await;
    let bot_rx = Receiver::ok().await;
    let (_dir, project, server) = setup(LOOPBACK);
    let api = server.api(&project.api_key);
    let both = json!(["bot.state_change", "bot_logs.update"]);
    let mut sub_ids = Vec::new();
    for (rx, triggers, active) in [
        (&project_rx, both.clone(), true),
        (&second_rx, both.clone(), true),
        (&inactive_rx, both.clone(), false),
        (&chat_only_rx, json!(["chat_messages.update"]), true),
    ] {
        let (status, body) = api
            .post(
                "/api/v1/webhooks",
                &json!({"url": rx.url(), "triggers": triggers, "is_active": active}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        sub_ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let script = sandbox_script(0, &[log_record("n=0"), log_record("n=1")]);
    let with_own = api
        .create_bot(
            json!({"meeting_url": "sandbox://custom", "sandbox_script": script,
                           "webhooks": [{"url": bot_rx.url(), "triggers": both}]}),
        )
        .await;
    let with_own = with_own["id"].as_str().unwrap().to_owned();
    let plain = api
        .create_bot(json!({"meeting_url": "sandbox://custom", "sandbox_script": script}))
        .await;
    let plain = plain["id"].as_str().unwrap().to_owned();

    // Each bot: join_requested and two logs. The bot with its own subscription: 3 deliveries;
    // the other: 3 to each of the two active project subscriptions.
    let own_log = wait_delivery_log(&api, &format!("bot_id={with_own}"), WAIT, |l| {
        all_finished(l, 3)
    })
    .await;
    let plain_log = wait_delivery_log(&api, &format!("bot_id={plain}"), WAIT, |l| {
        all_finished(l, 6)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        delivery_log(&api, &format!("bot_id={with_own}"))
            .await
            .len(),
        3
    );
    assert_eq!(
        delivery_log(&api, &format!("bot_id={plain}")).await.len(),
        6
    );
    assert!(own_log
        .iter()
        .chain(&plain_log)
        .all(|d| d["status"] == "success"));

    let own = keys_by_event(&bot_rx);
    assert_eq!(bot_rx.count(), 3, "{own:?}");
    assert!(own.keys().all(|(bot, _)| *bot == with_own), "{own:?}");
    for rx in [&project_rx, &second_rx] {
        let got = keys_by_event(rx);
        assert_eq!(rx.count(), 3, "{got:?}");
        assert!(
            got.keys().all(|(bot, _)| *bot == plain),
            "a project subscription got events of a bot with its own: {got:?}"
        );
        assert_eq!(
            got[&(plain.clone(), "bot.state_change".to_owned())].len(),
            1
        );
        assert_eq!(got[&(plain.clone(), "bot_logs.update".to_owned())].len(), 2);
    }
    assert_eq!(
        inactive_rx.count(),
        0,
        "an inactive subscription got a delivery"
    );
    assert_eq!(
        chat_only_rx.count(),
        0,
        "a subscription got a trigger it did not list"
    );

    // One delivery per matching subscription per event: distinct keys, the same event.
    let first: HashSet<String> = project_rx.received().iter().map(|r| r.key()).collect();
    let second: HashSet<String> = second_rx.received().iter().map(|r| r.key()).collect();
    assert_eq!(first.len(), 3);
    assert_eq!(second.len(), 3);
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
    let data = |rx: &Receiver| {
        let mut d: Vec<String> = rx
            .received()
            .iter()
            .map(|r| r.json()["data"].to_string())
            .collect();
        d.sort();
        d
    };
    assert_eq!(data(&project_rx), data(&second_rx));
    let by_webhook: HashSet<String> = plain_log
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(by_webhook.len(), 2, "{plain_log:?}");

    // The delivery log's filters and pagination.
    let count = |query: String| {
        let api = api.clone();
        async move { delivery_log(&api, &query).await.len() }
    };
    assert_eq!(
        count(format!("bot_id={plain}&trigger=bot_logs.update")).await,
        4
    );
    assert_eq!(
        count(format!("bot_id={plain}&trigger=bot.state_change")).await,
        2
    );
    assert_eq!(count(format!("webhook_id={}", sub_ids[0])).await, 3);
    assert_eq!(count(format!("webhook_id={}", sub_ids[2])).await, 0);
    assert_eq!(count("status=success".to_owned()).await, 9);
    assert_eq!(count("status=failure".to_owned()).await, 0);
    let (status, body) = api.get("/api/v1/webhook_deliveries?status=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.get("/api/v1/webhook_deliveries?trigger=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body, error("Invalid webhook trigger type: bogus"));
    let mut paged = Vec::new();
    let mut next = Some(format!(
        "{}/api/v1/webhook_deliveries?page_size=2",
        api.base
    ));
    while let Some(url) = next {
        let (status, page) = api.get(url.strip_prefix(&api.base).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let results = page["results"].as_array().unwrap();
        assert!(results.len() <= 2);
        paged.extend(results.iter().map(|d| d["idempotency_key"].clone()));
        next = page["next"].as_str().map(str::to_owned);
    }
    let all: Vec<Value> = delivery_log(&api, "")
        .await
        .iter()
        .map(|d| d["idempotency_key"].clone())
        .collect();
    assert_eq!(paged, all, "pages of 2 give the whole log, in order");
    assert_eq!(all.len(), 9);

    // A bot whose only subscription is inactive gets nothing, not even the project's.
    // Its log comes a second after it starts, well after the PATCH below.
    let quiet_rx = Receiver::ok().await;
    let late = sandbox_script(1000, &[log_record("quiet")]);
    let quiet = api
        .create_bot(
            json!({"meeting_url": "sandbox://custom", "sandbox_script": late,
                           "webhooks": [{"url": quiet_rx.url(), "triggers": both}]}),
        )
        .await;
    let quiet = quiet["id"].as_str().unwrap().to_owned();
    let (_, subs) = api.get(&format!("/api/v1/webhooks?bot_id={quiet}")).await;
    let sub_id = subs["results"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = patch(
        &api,
        &format!("/api/v1/webhooks/{sub_id}"),
        &json!({"is_active": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Wait for the log to be stored, then give deliveries time to (not) happen.
    let start = std::time::Instant::now();
    loop {
        let (_, logs) = api.get(&format!("/api/v1/bots/{quiet}/logs")).await;
        if logs["results"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(start.elapsed() < WAIT, "logs never stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        project_rx.count(),
        3,
        "the project got a bot-level bot's events"
    );
    assert_eq!(second_rx.count(), 3);
    let quiet_log = delivery_log(&api, &format!("bot_id={quiet}")).await;
    // join_requested was owed before the subscription was disabled: it was delivered before
    // the PATCH landed or failed as inactive. The log is owed to no one.
    assert!(quiet_log.len() <= 1, "{quiet_log:?}");
    assert!(quiet_rx.count() <= 1);
    assert!(quiet_rx
        .received()
        .iter()
        .all(|r| r.trigger() == "bot.state_change"));
}
