//! The project's Deliveries page against the real binary: the log newest first with the REST
//! API's filters and messages, resend of one delivery, "resend every failed one since …" with
//! its errors shown in the form, and the CSRF and cross-project rules.

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

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn deliveries_are_listed_filtered_and_resent() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "deliveries");
    let other = create_project(dir.path(), "other");
    create_user(dir.path(), "user@example.com", &project.id);
    let server = Server::start(dir.path(), FAST_LOOPBACK);
    let api = server.api(&project.api_key);
    let healthy = Receiver::ok().await;
    let failing = Receiver::start(always(Reply::status(503).body("<b>busy</b>"))).await;
    api.subscribe(&healthy.url(), &["bot_logs.update"]).await;
    api.subscribe(&failing.url(), &["bot_logs.update"]).await;
    let bot = api
        .create_bot(json!({
            "meeting_url": "sandbox://custom",
            "sandbox_script": sandbox_script(10, &[log_record("one"), log_record("two")]),
        }))
        .await;
    let bot_id = bot["id"].as_str().unwrap().to_owned();
    let query = format!("bot_id={bot_id}");
    wait_delivery_log(&api, &query, WAIT, |log| all_finished(log, 4)).await;

    let mut browser = Browser::new(&server);
    browser.sign_in("user@example.com", PASSWORD).await;
    let list = format!("/projects/{}/deliveries", project.id);
    let all = browser.get(&list).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.body.matches(r#"<li class="delivery card">"#).count(), 4);
    assert!(
        all.body.contains(&format!(">{bot_id}</a>")),
        "rows name their bot"
    );
    // The receiver's answer is shown as text.
    assert!(all.body.contains("&#60;b&#62;busy&#60;/b&#62;") && !all.body.contains("<b>busy</b>"));

    let failed = browser
        .get(&format!(
            "{list}?status=failure&trigger=&webhook_id=&bot_id="
        ))
        .await;
    assert_eq!(
        failed.body.matches(r#"<li class="delivery card">"#).count(),
        2
    );
    assert!(failed.body.contains(r#"<option value="failure" selected>"#));
    let bad = browser.get(&format!("{list}?trigger=bot.nothing")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body
            .contains("Invalid webhook trigger type: bot.nothing"),
        "{}",
        bad.body
    );

    // A time that cannot be read: the form again, with the message and what was typed.
    let resend_failed = format!("{list}/resend-failed");
    let refused = browser
        .submit(&list, &resend_failed, &[("since", "yesterday<script>")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("since is not an ISO 8601 time"),
        "{}",
        refused.body
    );
    assert!(
        refused
            .body
            .contains(r#"value="yesterday&#60;script&#62;""#),
        "{}",
        refused.body
    );
    // A forged form changes nothing.
    let forged = browser
        .post(
            &resend_failed,
            &[("csrf", "forged"), ("since", "2020-01-01")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = common::receiver::delivery_log(&api, &query).await;
    assert_eq!(log.iter().filter(|d| d["status"] == "failure").count(), 2);

    // The receiver is back: resend every failed one since a date.
    failing.set_script(always(Reply::ok()));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let resent = browser
        .submit(
            &list,
            &resend_failed,
            &[
                ("since", today.as_str()),
                ("webhook_id", ""),
                ("bot_id", bot_id.as_str()),
            ],
        )
        .await;
    assert!(resent.status.is_redirection(), "{}", resent.body);
    assert!(resent
        .location
        .as_deref()
        .unwrap()
        .contains("notice=resent-failed"));
    let log = wait_delivery_log(&api, &query, WAIT, |log| {
        log.iter().all(|d| d["status"] == "success")
    })
    .await;

    // One delivery resent by its button; another project's key is not found.
    let first_try = log
        .iter()
        .find(|d| d["attempt_count"].as_u64() == Some(1))
        .expect("a delivery that succeeded at once");
    let key = first_try["idempotency_key"].as_str().unwrap().to_owned();
    let one = browser
        .submit(&list, &format!("{list}/{key}/resend"), &[])
        .await;
    assert!(one.status.is_redirection(), "{}", one.body);
    wait_delivery_log(&api, &query, WAIT, |log| {
        log.iter()
            .any(|d| d["idempotency_key"] == key.as_str() && d["attempt_count"].as_u64() == Some(2))
    })
    .await;
    let foreign = browser
        .submit(
            &list,
            &format!("/projects/{}/deliveries/{key}/resend", other.id),
            &[],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}
