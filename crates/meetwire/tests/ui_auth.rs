//! The web UI's sign-in over HTTP against the real binary: first-run sign-up with the printed
//! setup code, `admin create-user`, one message for every wrong sign-in and a limit on them,
//! CSRF on every form, sessions that end when revoked or idle, and projects kept apart.

mod common;

use common::ui::{create_user, setup_code, Browser, PASSWORD};
use common::{create_project, Server};
use reqwest::StatusCode;
use serde_json::json;

/// A fresh server whose first user signed up; the browser is signed in.
async fn signed_up() -> (tempfile::TempDir, Server, Browser, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut browser = Browser::new(&server);
    let code = setup_code(&server);
    let page = browser
        .submit(
            "/setup",
            "/setup",
            &[
                ("setup_code", &code),
                ("email", "first@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let home = browser.get("/").await;
    let bots = home.location.expect("home redirects to the project");
    let webhooks = bots.replace("/bots", "/settings/webhooks");
    (dir, server, browser, webhooks)
}

#[tokio::test]
async fn first_user_signs_up_with_the_printed_code_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut browser = Browser::new(&server);
    assert_eq!(browser.get("/").await.location.as_deref(), Some("/setup"));
    assert_eq!(
        browser.get("/login").await.location.as_deref(),
        Some("/setup")
    );
    let wrong = browser
        .submit(
            "/setup",
            "/setup",
            &[
                ("setup_code", "not-the-code"),
                ("email", "a@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.body.contains("not the one the server printed"),
        "{}",
        wrong.body
    );
    assert!(
        wrong.body.contains(r#"value="a@example.com""#),
        "what was typed is kept"
    );
    let code = setup_code(&server);
    let page = browser
        .submit(
            "/setup",
            "/setup",
            &[
                ("setup_code", &code),
                ("email", "a@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(
        page.set_cookies[0].contains("HttpOnly"),
        "{:?}",
        page.set_cookies
    );
    assert!(page.set_cookies[0].contains("SameSite=Lax"));
    assert!(
        !page.set_cookies[0].contains("Secure"),
        "http public URL: no Secure"
    );
    let home = browser.get("/").await;
    assert!(home.location.unwrap().ends_with("/bots"));

    // The instance is claimed: sign-up is closed, even with the same code.
    let mut other = Browser::new(&server);
    assert_eq!(
        other.get("/setup").await.location.as_deref(),
        Some("/login")
    );
    let again = other
        .submit(
            "/login",
            "/setup",
            &[
                ("setup_code", &code),
                ("email", "b@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.location.as_deref(), Some("/login"));
    let refused = other
        .submit(
            "/login",
            "/login",
            &[("email", "b@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn https_public_url_makes_the_session_cookie_secure() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--public-url", "https://meetwire.example.com/"],
    );
    let mut browser = Browser::new(&server);
    let code = setup_code(&server);
    let page = browser
        .submit(
            "/setup",
            "/setup",
            &[
                ("setup_code", &code),
                ("email", "a@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(
        page.set_cookies[0].contains("; Secure"),
        "{:?}",
        page.set_cookies
    );
}

#[tokio::test]
async fn wrong_sign_ins_get_one_message_and_are_limited_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "p");
    create_user(dir.path(), "user@example.com", &project.id);
    let server = Server::start(dir.path(), &[]);
    let mut browser = Browser::new(&server);
    let unknown = browser
        .submit(
            "/login",
            "/login",
            &[("email", "nobody@example.com"), ("password", PASSWORD)],
        )
        .await;
    let wrong = browser
        .submit(
            "/login",
            "/login",
            &[
                ("email", "user@example.com"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong email or password."));
    assert!(unknown.body.contains("Wrong email or password."));
    assert!(!browser.cookies.contains_key("meetwire_session"));
    for _ in 0..4 {
        browser
            .submit(
                "/login",
                "/login",
                &[("email", "USER@example.com"), ("password", "wrong again!!")],
            )
            .await;
    }
    // Five failures: now even the right password is refused, with no session.
    let locked = browser
        .submit(
            "/login",
            "/login",
            &[("email", "user@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert!(!browser.cookies.contains_key("meetwire_session"));
    // Another account is not locked by it.
    create_user(dir.path(), "other@example.com", &project.id);
    browser.sign_in("other@example.com", PASSWORD).await;
}

#[tokio::test]
async fn a_page_asked_for_without_a_session_comes_back_after_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "p");
    create_user(dir.path(), "user@example.com", &project.id);
    let server = Server::start(dir.path(), &[]);
    let mut browser = Browser::new(&server);
    let wanted = format!("/projects/{}/settings/api-keys", project.id);
    let page = browser.get(&wanted).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let login = page.location.unwrap();
    assert!(login.starts_with("/login?next="), "{login}");
    let form = browser.get(&login).await;
    assert!(
        form.body
            .contains(&format!(r#"name="next" value="{wanted}""#)),
        "{}",
        form.body
    );
    let csrf = form.csrf();
    let done = browser
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "user@example.com"),
                ("password", PASSWORD),
                ("next", &wanted),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some(wanted.as_str()));
    assert_eq!(browser.get(&wanted).await.status, StatusCode::OK);
    // A next that leaves the site is ignored.
    let mut other = Browser::new(&server);
    let csrf = other.get("/login").await.csrf();
    let away = other
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "user@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(away.location.as_deref(), Some("/"));
}

#[tokio::test]
async fn signed_out_and_idle_sessions_are_refused() {
    let (dir, _server, mut browser, webhooks) = signed_up().await;
    let cookie = browser.cookies["meetwire_session"].clone();
    assert_eq!(browser.get(&webhooks).await.status, StatusCode::OK);
    let out = browser.submit(&webhooks, "/logout", &[]).await;
    assert_eq!(out.location.as_deref(), Some("/login"));
    // The old cookie, replayed, is revoked in the database.
    browser.cookies.insert("meetwire_session".into(), cookie);
    let page = browser.get(&webhooks).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location.unwrap().starts_with("/login?next="));

    // A session idle for 15 days is refused too.
    browser.sign_in("first@example.com", PASSWORD).await;
    assert_eq!(browser.get(&webhooks).await.status, StatusCode::OK);
    let db = rusqlite::Connection::open(dir.path().join("meetwire.sqlite3")).unwrap();
    let fifteen_days = 15 * 24 * 3600 * 1_000_000i64;
    db.execute(
        "UPDATE sessions SET last_seen_at = last_seen_at - ?1 WHERE revoked_at IS NULL",
        [fifteen_days],
    )
    .unwrap();
    let page = browser.get(&webhooks).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location.unwrap().starts_with("/login?next="));
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused_and_change_nothing() {
    let (_dir, server, mut browser, webhooks) = signed_up().await;
    let project = webhooks.split('/').nth(2).unwrap().to_owned();
    let keys = format!("/projects/{project}/settings/api-keys");
    let count_keys = |body: &str| body.matches("Revoke</button>").count();
    let before = count_keys(&browser.get(&keys).await.body);
    for fields in [vec![], vec![("csrf", "forged-token")]] {
        let page = browser.post(&keys, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        let sub = browser
            .post(
                &webhooks,
                &[
                    fields.clone(),
                    vec![
                        ("url", "https://example.com/h"),
                        ("triggers", "bot.state_change"),
                    ],
                ]
                .concat(),
            )
            .await;
        assert_eq!(sub.status, StatusCode::FORBIDDEN);
        let out = browser.post("/logout", &fields).await;
        assert_eq!(out.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(count_keys(&browser.get(&keys).await.body), before);
    assert!(browser
        .get(&webhooks)
        .await
        .body
        .contains("No webhook yet."));
    // The sign-in form's token must match its cookie too.
    let mut fresh = Browser::new(&server);
    let page = fresh
        .post(
            "/login",
            &[
                ("csrf", "x"),
                ("email", "first@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn another_projects_pages_and_objects_are_not_found() {
    let (dir, server, mut browser, webhooks) = signed_up().await;
    let theirs = create_project(dir.path(), "theirs");
    let api = server.api(&theirs.api_key);
    let (status, sub) = api
        .post(
            "/api/v1/webhooks",
            &json!({"url": "https://theirs.example.com/secret-hook", "triggers": ["bot.state_change"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    let sub_id = sub["id"].as_str().unwrap();
    let their_page = format!("/projects/{}/settings/webhooks", theirs.id);
    let page = browser.get(&their_page).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(!page.body.contains("secret-hook"));
    // Their subscription's id under my project: not found, and untouched by posts.
    let mine = webhooks.split('/').nth(2).unwrap().to_owned();
    for path in [
        format!("/projects/{mine}/settings/webhooks/{sub_id}"),
        format!("/projects/{mine}/settings/webhooks/{sub_id}/delete"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains("secret-hook"));
    }
    let csrf = browser.get(&webhooks).await.csrf();
    let delete = browser
        .post(
            &format!("/projects/{mine}/settings/webhooks/{sub_id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(delete.status, StatusCode::NOT_FOUND);
    let disable = browser
        .post(
            &format!(
                "/projects/{theirs_id}/settings/webhooks/{sub_id}/active",
                theirs_id = theirs.id
            ),
            &[("csrf", &csrf), ("active", "false")],
        )
        .await;
    assert_eq!(disable.status, StatusCode::NOT_FOUND);
    let (_, still) = api.get(&format!("/api/v1/webhooks/{sub_id}")).await;
    assert_eq!(still["is_active"], true);
}

#[tokio::test]
async fn demo_prints_a_sign_in_link_that_works_once() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut demo = Command::new(common::BIN)
        .args(["demo", "--port", "0", "--speed", "50"])
        .env("MEETWIRE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let link = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.contains("/login/link/"))
                .map(str::to_owned)
        })
        .expect("demo prints a sign-in link");
    let (base, path) = link.split_at(link.find("/login").unwrap());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = client.get(&link).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = first.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    let home = client
        .get(format!("{base}/"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    let bots = home.headers()["location"].to_str().unwrap().to_owned();
    assert!(bots.ends_with("/bots"), "{bots}");
    let page = client
        .get(format!("{base}{bots}"))
        .header("Cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Demo project"));
    let again = client.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::BAD_REQUEST,
        "the link works once"
    );
    // SIGTERM, so the demo removes its data directory.
    Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    demo.wait().unwrap();
}
