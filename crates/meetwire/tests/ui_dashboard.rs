//! The delivery dashboard against the real binary: one healthy and one failing project webhook
//! receive a bot's logs, and the page shows the attempts by outcome, the latency, the empty
//! backlog and the failing endpoint with its streak and last error — and only to members.

mod common;

use std::time::Duration;

use common::receiver::{
    all_finished, always, log_record, sandbox_script, wait_delivery_log, Receiver, Reply,
    FAST_LOOPBACK,
};
use common::ui::{create_user, Browser, PASSWORD};
use common::{create_project, Server};
use reqwest::StatusCode;
use serde_json::json;

const LOGS: usize = 3;

#[tokio::test]
async fn the_dashboard_shows_attempts_latency_backlog_and_failing_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "dashboard");
    let other = create_project(dir.path(), "someone else's");
    create_user(dir.path(), "user@example.com", &project.id);
    create_user(dir.path(), "other@example.com", &other.id);
    let server = Server::start(dir.path(), FAST_LOOPBACK);
    let api = server.api(&project.api_key);
    let healthy = Receiver::ok().await;
    let failing = Receiver::start(always(Reply::status(500).body("down"))).await;
    api.subscribe(&healthy.url(), &["bot_logs.update"]).await;
    api.subscribe(&failing.url(), &["bot_logs.update"]).await;

    let mut browser = Browser::new(&server);
    browser.sign_in("user@example.com", PASSWORD).await;
    let path = format!("/projects/{}/dashboard", project.id);
    let empty = browser.get(&path).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(
        empty.body.contains("No webhook is failing."),
        "{}",
        empty.body
    );
    assert!(empty.body.contains("no deliveries"));

    let logs: Vec<_> = (0..LOGS).map(|i| log_record(&format!("n={i}"))).collect();
    let bot = api
        .create_bot(json!({
            "meeting_url": "sandbox://custom",
            "sandbox_script": sandbox_script(10, &logs),
        }))
        .await;
    let bot_id = bot["id"].as_str().unwrap();
    wait_delivery_log(
        &api,
        &format!("bot_id={bot_id}"),
        Duration::from_secs(20),
        |log| all_finished(log, 2 * LOGS),
    )
    .await;

    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    // Four attempts per failing delivery (three retries, then failed for good).
    assert!(body.contains(&format!("{LOGS} succeeded")), "{body}");
    assert!(body.contains(&format!("{} retrying", 3 * LOGS)), "{body}");
    assert!(body.contains(&format!("{LOGS} failed")), "{body}");
    assert!(
        body.contains(r#"<div class="figure" id="pending">0</div>"#),
        "{body}"
    );
    assert!(body.contains("nothing due"), "{body}");
    let p99 = body.split(r#"id="latency-p99">"#).nth(1).unwrap();
    assert!(p99.starts_with("under "), "{p99}");
    let failing_row = body
        .split(r#"id="failing-endpoints""#)
        .nth(1)
        .expect("a failing endpoints table");
    assert!(failing_row.contains(&failing.url()), "{failing_row}");
    assert!(!failing_row.contains(&healthy.url()), "{failing_row}");
    assert!(
        failing_row.contains(&format!(r#"<span class="badge bad">{}</span>"#, 4 * LOGS)),
        "{failing_row}"
    );
    assert!(failing_row.contains("HTTP 500"), "{failing_row}");
    assert!(body.contains("<svg") && body.contains(r#"<rect class="bad""#));

    // A success ends the streak.
    failing.set_script(always(Reply::ok()));
    api.create_bot(json!({
        "meeting_url": "sandbox://custom",
        "sandbox_script": sandbox_script(10, &[log_record("again")]),
    }))
    .await;
    healthy.wait_for(LOGS + 1, Duration::from_secs(20)).await;
    failing
        .wait_until(Duration::from_secs(20), "a success", |r| {
            r.iter().any(|r| r.succeeded())
        })
        .await;
    let mut recovered = browser.get(&path).await;
    for _ in 0..50 {
        if recovered.body.contains("No webhook is failing.") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        recovered = browser.get(&path).await;
    }
    assert!(
        recovered.body.contains("No webhook is failing."),
        "{}",
        recovered.body
    );

    // Another project's member sees nothing of it, and a visitor is sent to sign in.
    let mut stranger = Browser::new(&server);
    stranger.sign_in("other@example.com", PASSWORD).await;
    let refused = stranger.get(&path).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(!refused.body.contains(&failing.url()));
    let visitor = Browser::new(&server).get(&path).await;
    assert!(
        visitor.status.is_redirection()
            && visitor
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("/login")),
        "{:?} {:?}",
        visitor.status,
        visitor.location
    );
}
