//! Settings → Webhooks and API keys over HTTP against the real binary: the API's validation
//! messages in the form with what was typed kept, edit, enable/disable, delete after a
//! confirmation, the signing secret revealed and rotated, the Standard Webhooks switch, and API
//! keys shown once, listed and revoked. What the UI did is checked through the REST API.

mod common;

use common::ui::{create_user, Browser, PASSWORD};
use common::{create_project, Api, Project, Server};
use reqwest::StatusCode;

struct Ui {
    _dir: tempfile::TempDir,
    server: Server,
    project: Project,
    browser: Browser,
}

impl Ui {
    async fn start(extra: &[&str]) -> Ui {
        let dir = tempfile::tempdir().unwrap();
        let project = create_project(dir.path(), "settings");
        create_user(dir.path(), "user@example.com", &project.id);
        let server = Server::start(dir.path(), extra);
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
        format!("/projects/{}/settings/{rest}", self.project.id)
    }

    fn api(&self) -> Api {
        self.server.api(&self.project.api_key)
    }
}

#[tokio::test]
async fn webhook_form_shows_the_apis_messages_with_what_was_typed() {
    let mut ui = Ui::start(&[]).await;
    let list = ui.path("webhooks");
    let new = ui.path("webhooks/new");
    let http = ui
        .browser
        .submit(
            &new,
            &list,
            &[
                ("url", "http://example.com/hook"),
                ("triggers", "bot.state_change"),
            ],
        )
        .await;
    assert_eq!(http.status, StatusCode::BAD_REQUEST);
    assert!(
        http.body.contains("webhook URL must start with https://"),
        "{}",
        http.body
    );
    assert!(http.body.contains(r#"value="http://example.com/hook""#));
    assert!(http.body.contains(r#"value="bot.state_change" checked"#));
    let none = ui
        .browser
        .submit(&new, &list, &[("url", "https://example.com/hook")])
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert!(
        none.body.contains("triggers must not be empty"),
        "{}",
        none.body
    );
    let forged = ui
        .browser
        .submit(
            &new,
            &list,
            &[
                ("url", "https://example.com/hook"),
                ("triggers", "bot.nonsense"),
            ],
        )
        .await;
    assert!(
        forged
            .body
            .contains("Invalid webhook trigger type: bot.nonsense"),
        "{}",
        forged.body
    );
    let (_, subs) = ui.api().get("/api/v1/webhooks").await;
    assert_eq!(
        subs["results"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
    // A URL that tries to break out of its attribute is shown as text, in the form typed back
    // (here with no trigger) and in the list once it is stored.
    let evil = r#"https://x.example/"><script>alert(1)</script>"#;
    for (fields, expected) in [
        (vec![("url", evil)], StatusCode::BAD_REQUEST),
        (
            vec![("url", evil), ("triggers", "bot.state_change")],
            StatusCode::SEE_OTHER,
        ),
    ] {
        let page = ui.browser.submit(&new, &list, &fields).await;
        assert_eq!(page.status, expected, "{}", page.body);
        let shown = match page.location {
            Some(to) => ui.browser.get(&to).await.body,
            None => page.body,
        };
        assert!(!shown.contains("<script>alert(1)"), "{shown}");
        assert!(
            shown.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn webhooks_are_created_edited_toggled_and_deleted_after_confirmation() {
    let mut ui = Ui::start(&[]).await;
    let list = ui.path("webhooks");
    let created = ui
        .browser
        .submit(
            &ui.path("webhooks/new"),
            &list,
            &[
                ("url", "https://example.com/hook"),
                ("triggers", "bot.state_change"),
                ("triggers", "transcript.update"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let page = ui.browser.get(&created.location.unwrap()).await;
    assert!(page.body.contains("Webhook created."));
    assert!(page.body.contains("https://example.com/hook"));
    let (_, subs) = ui.api().get("/api/v1/webhooks").await;
    let sub = &subs["results"][0];
    let id = sub["id"].as_str().unwrap();
    assert_eq!(
        sub["triggers"],
        serde_json::json!(["bot.state_change", "transcript.update"])
    );

    let edit = ui.path(&format!("webhooks/{id}"));
    let form = ui.browser.get(&edit).await;
    assert!(form.body.contains(r#"value="transcript.update" checked"#));
    let saved = ui
        .browser
        .submit(
            &edit,
            &edit,
            &[
                ("url", "https://example.com/other"),
                ("triggers", "chat_messages.update"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (_, sub) = ui.api().get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(sub["url"], "https://example.com/other");
    assert_eq!(sub["triggers"], serde_json::json!(["chat_messages.update"]));

    let toggle = ui.path(&format!("webhooks/{id}/active"));
    ui.browser
        .submit(&list, &toggle, &[("active", "false")])
        .await;
    let (_, sub) = ui.api().get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(sub["is_active"], false);
    assert!(ui
        .browser
        .get(&list)
        .await
        .body
        .contains("badge bad\">disabled"));
    ui.browser
        .submit(&list, &toggle, &[("active", "true")])
        .await;
    let (_, sub) = ui.api().get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(sub["is_active"], true);

    let delete = ui.path(&format!("webhooks/{id}/delete"));
    let confirm = ui.browser.get(&delete).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Delete this webhook?"));
    let (status, _) = ui.api().get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "showing the confirmation deletes nothing"
    );
    let gone = ui.browser.submit(&delete, &delete, &[]).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    let (status, _) = ui.api().get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn signing_secret_is_revealed_on_demand_and_rotated_with_an_overlap() {
    let mut ui = Ui::start(&[]).await;
    let list = ui.path("webhooks");
    let page = ui.browser.get(&list).await;
    assert!(
        !page.body.contains(&ui.project.webhook_secret),
        "hidden until asked"
    );
    let shown = ui.browser.get(&format!("{list}?reveal=1")).await;
    assert!(
        shown.body.contains(&ui.project.webhook_secret),
        "{}",
        shown.body
    );
    let (_, secret) = ui.api().get("/api/v1/webhook_secret").await;
    assert!(shown.body.contains(secret["whsec"].as_str().unwrap()));

    let rotated = ui
        .browser
        .submit(
            &list,
            &ui.path("signing-secret/rotate"),
            &[("overlap_hours", "1")],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{}", rotated.body);
    let (_, after) = ui.api().get("/api/v1/webhook_secret").await;
    assert_ne!(after["secret"], secret["secret"]);
    assert_eq!(after["retiring"].as_array().unwrap().len(), 1);
    let page = ui.browser.get(&rotated.location.unwrap()).await;
    assert!(page.body.contains("Signing secret rotated."));
    assert!(page.body.contains("A previous secret still signs"));

    ui.browser
        .submit(&list, &ui.path("standard-webhooks"), &[])
        .await;
    let (_, settings) = ui.api().get("/api/v1/webhook_settings").await;
    assert_eq!(settings["standard_webhooks"], false);
    ui.browser
        .submit(
            &list,
            &ui.path("standard-webhooks"),
            &[("standard_webhooks", "on")],
        )
        .await;
    let (_, settings) = ui.api().get("/api/v1/webhook_settings").await;
    assert_eq!(settings["standard_webhooks"], true);
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_with_last_use_and_revoked() {
    let mut ui = Ui::start(&[]).await;
    let keys = ui.path("api-keys");
    let page = ui.browser.submit(&keys, &keys, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let start = page
        .body
        .find(r#"id="new-key-value">"#)
        .expect("the new key is shown")
        + 19;
    let key = page.body[start..start + 40].to_owned();
    let api = ui.server.api(&key);
    assert_eq!(api.get("/api/v1/bots").await.0, StatusCode::OK);
    let listed = ui.browser.get(&keys).await;
    assert!(!listed.body.contains(&key), "shown once only");
    assert!(
        listed.body.contains(&format!("{}…", &key[..8])),
        "{}",
        listed.body
    );
    assert_eq!(listed.body.matches("Revoke</button>").count(), 2);
    // The key's use is recorded in the background.
    let mut used = false;
    for _ in 0..50 {
        let body = ui.browser.get(&keys).await.body;
        if body.matches(">never<").count() == 1 {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(used, "last use shown");

    let at = listed.body.find(&format!("{}…", &key[..8])).unwrap();
    let rest = &listed.body[at..];
    let action_at = rest.find(r#"action=""#).unwrap() + 8;
    let action = rest[action_at..action_at + rest[action_at..].find('"').unwrap()].to_owned();
    let revoked = ui.browser.submit(&keys, &action, &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert_eq!(api.get("/api/v1/bots").await.0, StatusCode::UNAUTHORIZED);
    let again = ui.browser.submit(&keys, &action, &[]).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        ui.api().get("/api/v1/bots").await.0,
        StatusCode::OK,
        "the other key still works"
    );
}

#[tokio::test]
async fn a_new_project_has_its_own_key_and_the_switcher_lists_both() {
    let mut ui = Ui::start(&[]).await;
    let form = ui.browser.get("/projects/new").await;
    assert_eq!(form.status, StatusCode::OK);
    let empty = ui
        .browser
        .submit("/projects/new", "/projects", &[("name", " ")])
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let created = ui
        .browser
        .submit("/projects/new", "/projects", &[("name", "<b>Second</b>")])
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(created.body.contains("&#60;b&#62;Second&#60;/b&#62;"));
    let start = created.body.find(r#"id="new-key-value">"#).unwrap() + 19;
    let key = created.body[start..start + 40].to_owned();
    let (status, _) = ui.server.api(&key).get("/api/v1/bots").await;
    assert_eq!(status, StatusCode::OK, "the new project's key works");
    let href_at = created.body.find("/projects/proj_").unwrap();
    let end = created.body[href_at..].find("/bots").unwrap();
    let second = created.body[href_at..href_at + end].to_owned();
    assert_ne!(second, format!("/projects/{}", ui.project.id));
    let page = ui.browser.get(&format!("{second}/bots")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(&format!("/projects/{}/bots", ui.project.id)),
        "switcher lists the first"
    );
    // Another user of the first project does not see it.
    create_user(ui._dir.path(), "other@example.com", &ui.project.id);
    let mut other = Browser::new(&ui.server);
    other.sign_in("other@example.com", PASSWORD).await;
    assert_eq!(
        other.get(&format!("{second}/bots")).await.status,
        StatusCode::NOT_FOUND
    );
}
