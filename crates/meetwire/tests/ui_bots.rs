//! Bots in the web UI over HTTP against the real binary and a real local receiver: a sandbox
//! bot started from the form, its page's Webhooks tab with payloads, attempts and the
//! receiver's answers, resend, the other tabs and the timeline, the list's filters, what
//! meeting participants and receivers write shown as text, and other projects' bots not found.

mod common;

use std::time::Duration;

use common::receiver::{always, sandbox_script, wait_delivery_log, Receiver, Reply, FAST_LOOPBACK};
use common::ui::{create_user, Browser, PASSWORD};
use common::{create_project, Api, Project, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const EVIL: &str = r#"<script>alert(1)</script>"><img src=x onerror=alert(2)>"#;

struct Ui {
    _dir: tempfile::TempDir,
    server: Server,
    project: Project,
    browser: Browser,
}

impl Ui {
    async fn start(extra: &[&str]) -> Ui {
        let dir = tempfile::tempdir().unwrap();
        let project = create_project(dir.path(), "bots");
        create_user(dir.path(), "user@example.com", &project.id);
        let flags: Vec<&str> = FAST_LOOPBACK.iter().chain(extra).copied().collect();
        let server = Server::start(dir.path(), &flags);
        let mut browser = Browser::new(&server);
        browser.sign_in("user@example.com", PASSWORD).await;
        Ui {
            _dir: dir,
            server,
            project,
            browser,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/projects/{}/{rest}", self.project.id)
    }

    fn api(&self) -> Api {
        self.server.api(&self.project.api_key)
    }
}

/// No script, no image, no handler of the payload survived as markup.
fn assert_inert(body: &str) {
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(!body.contains("<img src=x"), "{body}");
    assert!(
        body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{body}"
    );
}

#[tokio::test]
async fn a_sandbox_bot_from_the_form_shows_its_deliveries_and_the_receivers_answers() {
    let mut ui = Ui::start(&[]).await;
    let receiver = Receiver::start(always(Reply::ok().body("thanks from the receiver"))).await;
    ui.api()
        .subscribe(&receiver.url(), &["bot.state_change", "transcript.update"])
        .await;
    let new = ui.path("bots/new");
    let refused = ui
        .browser
        .submit(
            &new,
            &ui.path("bots"),
            &[("scenario", ""), ("meeting_url", "not a meeting")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains(r#"value="not a meeting""#),
        "{}",
        refused.body
    );
    let created = ui
        .browser
        .submit(
            &new,
            &ui.path("bots"),
            &[
                ("scenario", "standup"),
                ("speed", "50"),
                ("bot_name", "Standup bot"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let page_path = created.location.unwrap();
    let bot_id = page_path.rsplit('/').next().unwrap().to_owned();
    ui.api()
        .wait_bot(&bot_id, WAIT, |b| b["state"] == "ended")
        .await;
    wait_delivery_log(&ui.api(), &format!("bot_id={bot_id}"), WAIT, |l| {
        !l.is_empty() && l.iter().all(|d| d["status"] == "success")
    })
    .await;

    let page = ui.browser.get(&page_path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Standup bot"));
    assert!(page.body.contains("thanks from the receiver"));
    assert!(page.body.contains("transcript.update"));
    assert!(page.body.contains("HTTP 200"));
    assert!(
        page.body.contains(r#"data-live="0""#),
        "finished: no more polling"
    );
    assert!(page.body.contains("<svg"), "a timeline is drawn");
    assert!(page.body.contains("Alice"), "participants in the timeline");
    let live = ui
        .browser
        .get(&format!("{page_path}/live?tab=webhooks"))
        .await;
    assert!(
        live.body.starts_with("<div class=\"live\""),
        "{}",
        live.body
    );
    let transcript = ui.browser.get(&format!("{page_path}?tab=transcript")).await;
    assert!(
        transcript
            .body
            .contains("Good morning, let&#39;s start the standup."),
        "{}",
        transcript.body
    );
    let chat = ui.browser.get(&format!("{page_path}?tab=chat")).await;
    assert!(chat.body.contains("I&#39;ll go first."), "{}", chat.body);

    let list = ui.browser.get(&ui.path("bots")).await;
    assert!(list.body.contains(&bot_id));
    let filtered = ui
        .browser
        .get(&format!("{}?state=joining", ui.path("bots")))
        .await;
    assert!(!filtered.body.contains(&bot_id));
    let found = ui
        .browser
        .get(&format!("{}?q={bot_id}", ui.path("bots")))
        .await;
    assert!(found.body.contains(&bot_id));
}

#[tokio::test]
async fn the_webhooks_tab_pages_through_deliveries_newest_first_and_resends() {
    // Unordered, so 25 failing deliveries fail side by side rather than one after another.
    let mut ui = Ui::start(&["--webhook-ordering", "false"]).await;
    let receiver = Receiver::start(always(Reply::status(500).body("down for now"))).await;
    ui.api()
        .subscribe(&receiver.url(), &["bot_logs.update"])
        .await;
    let records: Vec<Value> = (0..25)
        .map(|i| json!({"kind": "log", "level": "info", "message": format!("log number {i}")}))
        .collect();
    let bot = ui
        .api()
        .create_bot(json!({"meeting_url": "sandbox://custom", "sandbox_script": sandbox_script(10, &records)}))
        .await;
    let bot_id = bot["id"].as_str().unwrap();
    let log = wait_delivery_log(&ui.api(), &format!("bot_id={bot_id}"), WAIT, |l| {
        l.len() == 25 && l.iter().all(|d| d["status"] == "failure")
    })
    .await;
    let page_path = ui.path(&format!("bots/{bot_id}"));
    let first = ui.browser.get(&page_path).await;
    assert_eq!(first.body.matches("class=\"delivery card\"").count(), 20);
    assert!(first.body.contains("down for now"));
    assert!(first.body.contains("HTTP 500"));
    let newest = log[0]["idempotency_key"].as_str().unwrap();
    let oldest = log[24]["idempotency_key"].as_str().unwrap();
    assert!(first.body.contains(newest) && !first.body.contains(oldest));
    let older = first.body.split("href=\"").find_map(|rest| {
        let href = &rest[..rest.find('"').unwrap()];
        href.contains("cursor=").then(|| href.replace("&#38;", "&"))
    });
    let second = ui.browser.get(&older.expect("an Older link")).await;
    assert_eq!(second.body.matches("class=\"delivery card\"").count(), 5);
    assert!(second.body.contains(oldest));

    // Resend: the receiver now answers, and the delivery succeeds.
    receiver.set_script(always(Reply::ok()));
    let resend = format!("{page_path}/deliveries/{newest}/resend");
    let done = ui.browser.submit(&page_path, &resend, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(done.location.unwrap().contains("notice=resent"));
    wait_delivery_log(
        &ui.api(),
        &format!("bot_id={bot_id}&status=success"),
        WAIT,
        |l| l.len() == 1,
    )
    .await;
    let after = ui.browser.get(&page_path).await;
    assert!(after.body.contains("HTTP 200"));
}

#[tokio::test]
async fn what_participants_bots_and_receivers_write_is_shown_as_text() {
    let mut ui = Ui::start(&[]).await;
    let receiver = Receiver::start(always(Reply::ok().body(EVIL))).await;
    ui.api()
        .subscribe(
            &receiver.url(),
            &["bot_logs.update", "chat_messages.update"],
        )
        .await;
    let person = |kind: &str, extra: Value| {
        let mut r = json!({"kind": kind});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r
    };
    let records = vec![
        json!({"kind": "bot_event", "event_type": "joined_meeting"}),
        person(
            "participant_event",
            json!({"participant_name": EVIL, "participant_uuid": "1",
            "participant_is_host": false, "event_type": "join"}),
        ),
        person(
            "utterance",
            json!({"speaker_name": EVIL, "speaker_uuid": "1",
            "speaker_is_host": false, "duration_ms": 10, "transcript": EVIL}),
        ),
        person(
            "chat_message",
            json!({"to": "everyone", "text": EVIL, "sender_name": EVIL,
            "sender_uuid": "1"}),
        ),
        json!({"kind": "log", "level": "info", "message": EVIL}),
    ];
    let bot = ui
        .api()
        .create_bot(json!({"meeting_url": "sandbox://custom", "bot_name": EVIL,
            "metadata": {"note": EVIL}, "sandbox_script": sandbox_script(10, &records)}))
        .await;
    let bot_id = bot["id"].as_str().unwrap();
    wait_delivery_log(&ui.api(), &format!("bot_id={bot_id}"), WAIT, |l| {
        l.len() == 2 && l.iter().all(|d| d["status"] == "success")
    })
    .await;
    let page_path = ui.path(&format!("bots/{bot_id}"));
    for tab in ["webhooks", "transcript", "chat", "participants", "logs"] {
        let page = ui.browser.get(&format!("{page_path}?tab={tab}")).await;
        assert_eq!(page.status, StatusCode::OK, "{tab}");
        assert_inert(&page.body);
    }
    assert_inert(&ui.browser.get(&ui.path("bots")).await.body);
}

#[tokio::test]
async fn another_projects_bots_and_deliveries_are_not_found() {
    let mut ui = Ui::start(&[]).await;
    let theirs = create_project(ui._dir.path(), "theirs");
    let their_api = ui.server.api(&theirs.api_key);
    let receiver = Receiver::ok().await;
    their_api
        .subscribe(&receiver.url(), &["bot_logs.update"])
        .await;
    let bot = their_api
        .create_bot(json!({"meeting_url": "sandbox://custom", "bot_name": "their secret bot",
            "sandbox_script": sandbox_script(10, &[json!({"kind": "log", "level": "info", "message": "m"})])}))
        .await;
    let bot_id = bot["id"].as_str().unwrap();
    let log = wait_delivery_log(&their_api, &format!("bot_id={bot_id}"), WAIT, |l| {
        l.len() == 1
    })
    .await;
    let key = log[0]["idempotency_key"].as_str().unwrap();
    for path in [
        ui.path(&format!("bots/{bot_id}")),
        ui.path(&format!("bots/{bot_id}/live?tab=webhooks")),
        format!("/projects/{}/bots/{bot_id}", theirs.id),
    ] {
        let page = ui.browser.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains("their secret bot"));
    }
    let found = ui
        .browser
        .get(&format!("{}?q={bot_id}", ui.path("bots")))
        .await;
    assert!(!found.body.contains("their secret bot"));
    let csrf = ui.browser.get(&ui.path("bots")).await.csrf();
    let resend = ui
        .browser
        .post(
            &ui.path(&format!("bots/{bot_id}/deliveries/{key}/resend")),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(resend.status, StatusCode::NOT_FOUND);
}
