//! `POST /api/v1/bots/{id}/delete_data` (Attendee's): an ended bot's transcript, chat,
//! participant events and logs are deleted with the deliveries made from them; the bot and its
//! state history stay, it moves to `data_deleted` and says so in a signed `bot.state_change`.

mod common;

use std::time::Duration;

use common::receiver::{closed_port_url, delivery_log, wait_delivery_log, Receiver};
use common::{ended_sandbox_bot, setup, BOT_TRIGGERS};
use reqwest::StatusCode;
use serde_json::json;

const LISTS: [&str; 4] = ["transcript", "chat_messages", "participant_events", "logs"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_bots_data_keeps_its_shell_and_state_history() {
    let rx = Receiver::ok().await;
    let (_dir, project, server) = setup(&[
        "--allow-http-webhooks",
        "--allow-webhook-cidr",
        "127.0.0.0/8",
        "--retry-schedule",
        "60",
    ]);
    let api = server.api(&project.api_key);
    api.subscribe(&rx.url(), &BOT_TRIGGERS).await;

    // Only an ended or failed bot's data can be deleted.
    let early = api
        .create_bot(json!({"meeting_url": "sandbox://standup?speed=20"}))
        .await;
    let early = early["id"].as_str().unwrap();
    let (status, body) = api
        .post(&format!("/api/v1/bots/{early}/delete_data"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("not allowed"), "{body}");

    let bot = ended_sandbox_bot(&api, json!({})).await;
    for list in LISTS {
        assert!(
            api.bot_list_len(&bot, list).await > 0,
            "the sandbox made no {list}"
        );
    }
    wait_delivery_log(
        &api,
        &format!("bot_id={bot}"),
        Duration::from_secs(20),
        |log| log.iter().all(|d| d["status"] == "success"),
    )
    .await;
    let states_before = delivery_log(&api, &format!("bot_id={bot}&trigger=bot.state_change"))
        .await
        .len();

    let (status, deleted) = api
        .post(&format!("/api/v1/bots/{bot}/delete_data"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["state"], "data_deleted");
    assert_eq!(deleted["id"], bot.as_str());
    for list in LISTS {
        assert_eq!(
            api.bot_list_len(&bot, list).await,
            0,
            "{list} is still there"
        );
    }
    // The state history stays, with the new state at its end, and so do its deliveries.
    let events = common::event_types(&deleted);
    assert!(events.contains(&"joined_meeting".to_owned()), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("data_deleted"));
    let log = wait_delivery_log(
        &api,
        &format!("bot_id={bot}"),
        Duration::from_secs(20),
        |log| log.len() == states_before + 1 && log.iter().all(|d| d["status"] == "success"),
    )
    .await;
    assert!(
        log.iter().all(|d| d["trigger"] == "bot.state_change"),
        "deliveries made from the deleted data are left: {log:#?}"
    );
    let told = rx
        .wait_until(
            Duration::from_secs(10),
            "the data_deleted state change",
            |got| {
                got.iter().any(|r| {
                    let v = r.json();
                    v["bot_id"] == bot.as_str() && v["data"]["new_state"] == "data_deleted"
                })
            },
        )
        .await;
    let change = told
        .iter()
        .map(|r| r.json())
        .find(|v| v["bot_id"] == bot.as_str() && v["data"]["new_state"] == "data_deleted")
        .unwrap();
    assert_eq!(change["data"]["old_state"], "ended");
    assert!(
        change["data"]["event_metadata"]["bot_duration_seconds"].is_number(),
        "{change}"
    );

    // Once is enough: a second request is refused and changes nothing.
    let (status, body) = api
        .post(&format!("/api/v1/bots/{bot}/delete_data"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A bot whose webhooks are still owed keeps its data until they are sent.
    let owed = ended_sandbox_bot(
        &api,
        json!({"webhooks": [{"url": closed_port_url(), "triggers": ["transcript.update"]}]}),
    )
    .await;
    let transcript = api.bot_list_len(&owed, "transcript").await;
    let (status, body) = api
        .post(&format!("/api/v1/bots/{owed}/delete_data"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("pending"), "{body}");
    assert_eq!(api.bot_list_len(&owed, "transcript").await, transcript);
    let (_, still) = api.get(&format!("/api/v1/bots/{owed}")).await;
    assert_eq!(still["state"], "ended");
}
