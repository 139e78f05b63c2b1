//! Retention: finished deliveries older than `--retention-days` are deleted with their
//! attempts, in the background; pending ones and younger ones are kept.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::receiver::{closed_port_url, delivery_log, fail_then_ok, wait_delivery_log, Receiver};
use common::{create_runner_token, setup};
use serde_json::{json, Value};

/// About 3.5 s.
const RETENTION_DAYS: &str = "0.00004";

fn keys(log: &[Value], status: &str) -> HashSet<String> {
    log.iter()
        .filter(|d| d["status"] == status)
        .map(|d| d["idempotency_key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deliveries_past_their_retention_are_deleted_and_nothing_else() {
    // Every delivery to the receiver fails once, then succeeds a second later (so it has
    // attempt rows); the other subscription's deliveries stay pending (the next retry is a
    // minute away).
    let rx = Receiver::start(fail_then_ok(1, 500)).await;
    let (dir, project, server) = setup(&[
        "--allow-http-webhooks",
        "--allow-webhook-cidr",
        "127.0.0.0/8",
        "--retry-schedule",
        "1,60",
        "--retention-days",
        RETENTION_DAYS,
        // Each delivery on its own, not waiting for the one before it to get through.
        "--webhook-ordering",
        "false",
    ]);
    let api = server.api(&project.api_key);
    api.subscribe(&rx.url(), &["chat_messages.update"]).await;
    api.subscribe(&closed_port_url(), &["chat_messages.update"])
        .await;
    let token = create_runner_token(dir.path(), "retention-runner");
    let runner = server.api(&token);
    let bot = api
        .create_bot(json!({"meeting_url": "https://meet.example.com/retention"}))
        .await;
    let bot = bot["id"].as_str().unwrap().to_owned();
    let (status, _) = runner.post("/runner/v1/bots/claim", &json!({})).await;
    assert!(status.is_success());
    let post = |from: usize, to: usize| {
        let runner = runner.clone();
        let bot = bot.clone();
        async move {
            for i in from..to {
                let record = json!({"kind": "chat_message", "id": format!("m{i}"),
                    "to": "everyone", "text": format!("message {i}"),
                    "timestamp_ms": 1_700_000_000_000_i64 + i as i64,
                    "sender_name": "A", "sender_uuid": "u-a"});
                let (status, body) = runner
                    .post(
                        &format!("/runner/v1/bots/{bot}/records"),
                        &json!({"records": [record]}),
                    )
                    .await;
                assert!(status.is_success(), "{body}");
            }
        }
    };

    post(0, 10).await;
    let old = wait_delivery_log(&api, "", Duration::from_secs(15), |log| {
        keys(log, "success").len() == 10
    })
    .await;
    let (old_success, old_pending) = (keys(&old, "success"), keys(&old, "pending"));
    assert_eq!(old_pending.len(), 10);

    // Past the window, newer events arrive; the old finished deliveries go, within a pass.
    tokio::time::sleep(Duration::from_secs(4)).await;
    post(10, 15).await;
    let log = wait_delivery_log(&api, "", Duration::from_secs(15), |log| {
        keys(log, "success").is_disjoint(&old_success) && keys(log, "success").len() == 5
    })
    .await;
    for key in &old_success {
        let (status, _) = api.get(&format!("/api/v1/webhook_deliveries/{key}")).await;
        assert_eq!(status.as_u16(), 404, "{key} is still there");
    }
    assert!(
        old_pending.is_subset(&keys(&log, "pending")),
        "a pending delivery was deleted"
    );
    assert_eq!(delivery_log(&api, "status=pending").await.len(), 15);

    // Their attempts went with them; the pending deliveries' attempts are there.
    let db = rusqlite::Connection::open_with_flags(
        dir.path().join("meetwire.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let orphans: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM delivery_attempts \
             WHERE delivery_seq NOT IN (SELECT seq FROM deliveries)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "attempts of deleted deliveries are left");
    let kept: i64 = db
        .query_row("SELECT COUNT(*) FROM delivery_attempts", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(kept >= 15, "the kept deliveries' attempts: {kept}");

    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("meetwire_deliveries_deleted_total 10"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_bots_recorded_data_goes_after_its_retention_and_its_history_stays() {
    let rx = common::receiver::Receiver::ok().await;
    let (_dir, project, server) = setup(&[
        "--allow-http-webhooks",
        "--allow-webhook-cidr",
        "127.0.0.0/8",
        "--retry-schedule",
        "60",
        "--record-retention-days",
        RETENTION_DAYS,
    ]);
    let api = server.api(&project.api_key);
    api.subscribe(&rx.url(), &["transcript.update", "bot.state_change"])
        .await;
    let done = common::ended_sandbox_bot(&api, json!({})).await;
    // Its transcript is also owed to a receiver that never answers: it must stay.
    let owed = common::ended_sandbox_bot(
        &api,
        json!({"webhooks": [
        {"url": closed_port_url(), "triggers": ["transcript.update"]}]}),
    )
    .await;
    assert!(api.bot_list_len(&done, "transcript").await > 0);
    let owed_transcript = api.bot_list_len(&owed, "transcript").await;
    assert!(owed_transcript > 0);
    let history = common::event_types(&api.get(&format!("/api/v1/bots/{done}")).await.1);

    let started = std::time::Instant::now();
    while api.bot_list_len(&done, "transcript").await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the finished bot's transcript outlived its retention"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, bot) = api.get(&format!("/api/v1/bots/{done}")).await;
    assert_eq!(bot["state"], "ended");
    assert_eq!(
        common::event_types(&bot),
        history,
        "its state history stays"
    );
    assert!(
        delivery_log(&api, &format!("bot_id={done}&trigger=transcript.update"))
            .await
            .is_empty(),
        "deliveries made from the deleted transcript are left"
    );
    assert!(
        !delivery_log(&api, &format!("bot_id={done}&trigger=bot.state_change"))
            .await
            .is_empty()
    );
    assert_eq!(
        api.bot_list_len(&owed, "transcript").await,
        owed_transcript,
        "a transcript still owed to a receiver was deleted"
    );
}
