//! The web UI in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver), against the real server and a real local receiver. One walk
//! through what a user does: sign up with the setup code, sign in, create a project webhook,
//! start a sandbox bot, watch its deliveries appear live, read a receiver's answer, see the
//! attempts grow while the receiver fails, resend, rotate the secret, create and revoke an API
//! key, connect a calendar that sends a bot by itself and follow the bot back to it, sign out. Screenshots of each main page go to `target/tmp/ui-screenshots/`.
//!
//! Without chromium and chromedriver this test fails (it does not skip): `.ci/run` installs
//! them.

mod common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::feed::{ical_time, Feed};
use common::receiver::{always, Receiver, Reply, FAST_LOOPBACK};
use common::Server;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "a long enough password";

/// `chromedriver` on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group, so that dropping the driver also ends the chromium it started
        // (a failed walk never closes its session, and chromium outlives a killed driver).
        let child = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (apt-get install chromium chromium-driver)");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A headless chromium session, once the driver answers.
    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium",
                   "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                            "--disable-gpu", "--window-size=1280,900"]}),
        );
        let start = Instant::now();
        loop {
            // chromedriver is on loopback: plain HTTP, no TLS.
            let connected = ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&self.url)
                .await;
            match connected {
                Ok(client) => return client,
                Err(_) if start.elapsed() < Duration::from_secs(20) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot start headless chromium through chromedriver: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The browser, the server's address and where screenshots go.
struct Walk {
    c: Client,
    base: String,
    shots: PathBuf,
}

impl Walk {
    async fn goto(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.c.wait().for_element(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks `css` once it is there; again if a live refresh replaced it meanwhile.
    async fn click(&self, css: &str) {
        for _ in 0..5 {
            let element = self.c.wait().for_element(Locator::Css(css)).await.unwrap();
            match element.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") => continue,
                Err(e) => panic!("cannot click {css}: {e}"),
            }
        }
        panic!("{css} kept being replaced");
    }

    async fn click_link(&self, text: &str) {
        let link = self
            .c
            .wait()
            .for_element(Locator::LinkText(text))
            .await
            .unwrap();
        link.click().await.unwrap();
    }

    /// The text of the element `css`, once it is there.
    async fn read(&self, css: &str) -> String {
        let element = self.c.wait().for_element(Locator::Css(css)).await.unwrap();
        element.text().await.unwrap()
    }

    /// The page's visible text; read again if a navigation or a live refresh was under way.
    async fn body(&self) -> String {
        for _ in 0..50 {
            if let Ok(body) = self.c.find(Locator::Css("body")).await {
                if let Ok(text) = body.text().await {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page has no body");
    }

    async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_owned()
    }

    /// Waits until the page's text satisfies `done`, without reloading it.
    async fn wait_text(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let text = self.body().await;
            if done(&text) {
                return text;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; page:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the browser is at a path satisfying `done` (a click's navigation may
    /// still be under way when the click returns).
    async fn wait_path(&self, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let path = self.path().await;
            if done(&path) {
                return path;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out at {path}: {}",
                self.body().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page shows `needle`.
    async fn wait_for(&self, needle: &str) -> String {
        self.wait_text(needle, |t| t.contains(needle)).await
    }

    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }
}

/// How many delivery cards the page shows.
async fn cards(w: &Walk) -> usize {
    w.c.find_all(Locator::Css("li.delivery"))
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_user_walks_through_the_ui_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    // Unordered delivery, so new deliveries fail while the receiver is down instead of waiting
    // behind the first failing one.
    let flags: Vec<&str> = FAST_LOOPBACK
        .iter()
        .copied()
        .chain(["--webhook-ordering", "false"])
        .collect();
    let server = Server::start(dir.path(), &flags);
    let code = server
        .printed("setup code: ")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let first_key = server
        .printed("API key (shown once): ")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let receiver = Receiver::start(always(Reply::ok().body("thanks from the receiver"))).await;
    let driver = Driver::start();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let w = Walk {
        c: driver.browser().await,
        base: server.base.clone(),
        shots,
    };

    // Sign up with the setup code the server printed.
    w.goto("/").await;
    assert_eq!(w.path().await, "/setup");
    w.shot("01-setup").await;
    w.fill("#setup_code", &code).await;
    w.fill("#email", EMAIL).await;
    w.fill("#password", PASSWORD).await;
    w.click("button[type=submit]").await;
    w.wait_path(|p| p.ends_with("/bots")).await;

    // Sign out and in again.
    w.click(".signout button").await;
    w.wait_path(|p| p == "/login").await;
    w.fill("#email", EMAIL).await;
    w.fill("#password", "not the password").await;
    w.click("button[type=submit]").await;
    w.wait_for("Wrong email or password.").await;
    w.shot("02-sign-in").await;
    w.fill("#email", EMAIL).await;
    w.fill("#password", PASSWORD).await;
    w.click("button[type=submit]").await;
    let bots = w.wait_path(|p| p.ends_with("/bots")).await;
    let project = bots.trim_end_matches("/bots").to_owned();

    // A project webhook for every trigger.
    w.click_link("Settings · Webhooks").await;
    w.click_link("New webhook").await;
    w.fill("#url", &receiver.url()).await;
    for checkbox in
        w.c.find_all(Locator::Css("input[name=triggers]"))
            .await
            .unwrap()
    {
        checkbox.click().await.unwrap();
    }
    w.shot("03-new-webhook").await;
    w.click("form.card button[type=submit]").await;
    w.wait_for("Webhook created.").await;
    w.wait_for(&receiver.url()).await;

    // A sandbox meeting that goes on until the bot is told to leave.
    w.click_link("Bots").await;
    w.click_link("New bot").await;
    w.c.find(Locator::Css("#scenario"))
        .await
        .unwrap()
        .select_by_value("long")
        .await
        .unwrap();
    w.fill("#speed", "1").await;
    w.fill("#bot_name", "Browser bot").await;
    w.click("form.card button[type=submit]").await;
    let bot_page = w.wait_path(|p| p.contains("/bots/bot_")).await;
    let bot_id = bot_page.rsplit('/').next().unwrap().to_owned();

    // Deliveries appear while the page stays loaded (a marker set now survives).
    w.c.execute("window.stillTheSamePage = true;", vec![])
        .await
        .unwrap();
    let start = Instant::now();
    let mut seen = cards(&w).await;
    while seen < 3 {
        assert!(start.elapsed() < WAIT, "no deliveries appeared live");
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = cards(&w).await;
    }
    let same =
        w.c.execute("return window.stillTheSamePage === true;", vec![])
            .await
            .unwrap();
    assert_eq!(
        same,
        json!(true),
        "the page was reloaded instead of updated"
    );
    w.shot("04-bot-webhooks-tab").await;

    // Open one delivery and read the receiver's answer.
    w.click("li.delivery details summary").await;
    let text = w
        .wait_text("the receiver's answer", |t| {
            t.contains("thanks from the receiver")
        })
        .await;
    assert!(text.contains("HTTP 200"));
    w.shot("05-delivery-opened").await;

    // The receiver fails: new deliveries are retried, their attempts grow to 4 and fail.
    receiver.set_script(always(Reply::status(503).body("receiver is down")));
    w.wait_text("failed attempts", |t| t.contains("4 attempt(s)"))
        .await;
    let source = w.c.source().await.unwrap();
    assert!(source.contains("HTTP 503") && source.contains("receiver is down"));
    let same =
        w.c.execute("return window.stillTheSamePage === true;", vec![])
            .await
            .unwrap();
    assert_eq!(same, json!(true));
    w.shot("06-failing-receiver").await;

    // The dashboard names the failing endpoint and draws the attempts.
    w.click_link("Dashboard").await;
    let dashboard = w.wait_for("Failing endpoints").await;
    assert!(dashboard.contains(&receiver.url()), "{dashboard}");
    assert!(dashboard.contains("HTTP 503"), "{dashboard}");
    w.c.find(Locator::Css("#attempts-chart rect.bad"))
        .await
        .expect("failed attempts drawn in the chart");
    w.shot("06b-dashboard").await;
    w.goto(&bot_page).await;

    // The receiver is back and the meeting ends: once nothing is pending the page stops
    // updating, and a failed delivery is resent.
    receiver.set_script(always(Reply::ok().body("back again")));
    let api = server.api(&first_key);
    api.post(&format!("/api/v1/bots/{bot_id}/leave"), &json!({}))
        .await;
    w.c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("[data-live=\"0\"]"))
        .await
        .unwrap();
    let resend =
        w.c.find(Locator::Css("form[action$=\"/resend\"]"))
            .await
            .unwrap();
    let action = resend.attr("action").await.unwrap().unwrap();
    let key = action.rsplit('/').nth(1).unwrap().to_owned();
    w.click(&format!("form[action=\"{action}\"] button")).await;
    w.wait_for("Delivery queued again").await;
    let start = Instant::now();
    loop {
        let (_, d) = api.get(&format!("/api/v1/webhook_deliveries/{key}")).await;
        if d["status"] == "success" {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "resent delivery did not succeed: {d}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.goto(&format!("{bot_page}?tab=transcript")).await;
    w.shot("07-bot-transcript").await;

    // The project's Deliveries, filtered to the failed ones.
    w.click_link("Deliveries").await;
    w.c.find(Locator::Css("#status"))
        .await
        .unwrap()
        .select_by_value("failure")
        .await
        .unwrap();
    w.click("form.filters button[type=submit]").await;
    w.wait_path(|p| p.ends_with("/deliveries")).await;
    w.wait_for("Resend failed").await;
    let badges =
        w.c.find_all(Locator::Css("li.delivery .delivery-head .badge"))
            .await
            .unwrap();
    assert!(!badges.is_empty(), "the failed deliveries are listed");
    for badge in badges {
        assert_eq!(badge.text().await.unwrap(), "failure");
    }
    w.shot("07b-deliveries").await;

    // Rotate the signing secret.
    w.click_link("Settings · Webhooks").await;
    w.click_link("Reveal signing secret").await;
    let before = w.read("#secret-whsec").await;
    w.shot("08-settings-webhooks").await;
    w.click("form[action$=\"/signing-secret/rotate\"] button")
        .await;
    w.wait_for("Signing secret rotated.").await;
    w.click_link("Reveal signing secret").await;
    let after = w.read("#secret-whsec").await;
    assert_ne!(before, after);
    w.wait_for("A previous secret still signs").await;

    // Create an API key, use it, revoke it.
    w.click_link("Settings · API keys").await;
    w.click("form[action$=\"/settings/api-keys\"] button").await;
    let key = w.read("#new-key-value").await;
    w.shot("09-api-keys").await;
    let new_api = server.api(&key);
    assert_eq!(new_api.get("/api/v1/bots").await.0, StatusCode::OK);
    w.goto(&format!("{project}/settings/api-keys")).await;
    let rows =
        w.c.find_all(Locator::Css("#api-keys tbody tr"))
            .await
            .unwrap();
    let mut revoked = false;
    for row in rows {
        if row.text().await.unwrap().contains(&key[..8]) {
            row.find(Locator::Css("button"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            revoked = true;
            break;
        }
    }
    assert!(revoked, "the new key is listed by its prefix");
    w.wait_for("API key revoked.").await;
    assert_eq!(
        new_api.get("/api/v1/bots").await.0,
        StatusCode::UNAUTHORIZED
    );

    // A calendar with an auto_join rule: the Calendars list (empty, then with it), its page,
    // and the bot it sent to a meeting, which links back to it.
    w.click_link("Calendars").await;
    w.wait_for("No calendar yet").await;
    w.shot("11-calendars-empty").await;
    let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
    let feed = Feed::start(format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
         UID:planning@test\r\nDTSTART:{}\r\nDURATION:PT30M\r\nSUMMARY:Weekly planning\r\n\
         LOCATION:sandbox://standup?speed=50\r\nATTENDEE;CN=Ann:mailto:ann@example.com\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
        ical_time(tomorrow)
    ))
    .await;
    let (status, calendar) = api
        .post(
            "/api/v1/calendars",
            &json!({"platform": "ical", "ical_url": feed.url, "deduplication_key": "team",
                    "auto_join": {"bot_name": "Calendar notes", "attendees": ["@example.com"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{calendar}");
    let calendar_id = calendar["id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    let calendar_bot = loop {
        let bots = api.all_bots().await;
        if let Some(bot) = bots.iter().find(|b| b["calendar_event_id"].is_string()) {
            break bot["id"].as_str().unwrap().to_owned();
        }
        assert!(start.elapsed() < WAIT, "auto_join sent no bot: {bots:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    w.goto(&format!("{project}/calendars")).await;
    w.wait_for(&calendar_id).await;
    w.shot("12-calendars").await;
    w.click_link(&calendar_id).await;
    let page = w.wait_for("Weekly planning").await;
    assert!(page.contains("sandbox://standup?speed=50"), "{page}");
    let rule = w.read("#calendar-auto-join").await;
    assert!(
        rule.contains("Calendar notes") && rule.contains("@example.com"),
        "{rule}"
    );
    let events = w.read("#calendar-events").await;
    assert!(
        events.contains("Calendar notes"),
        "the event's row names the bot auto-join sent: {events}"
    );
    w.shot("13-calendar").await;
    w.click_link("Calendar notes").await;
    w.wait_path(|p| p.ends_with(&format!("/bots/{calendar_bot}")))
        .await;
    w.wait_for("Calendar event").await;
    let joins_at = w.read("#bot-joins-at").await;
    assert!(
        joins_at.contains(&tomorrow.format("%Y-%m-%d %H:%M:%S").to_string()),
        "the scheduled bot shows when it joins: {joins_at}"
    );
    w.shot("14-bot-from-calendar").await;
    w.click_link("Weekly planning").await;
    w.wait_path(|p| p.ends_with(&format!("/calendars/{calendar_id}")))
        .await;

    // The bot and calendar pages at phone width, then sign out.
    w.c.set_window_size(390, 844).await.unwrap();
    w.goto(&format!("{project}/calendars/{calendar_id}")).await;
    w.wait_for("Weekly planning").await;
    w.shot("15-calendar-phone").await;
    w.goto(&bot_page).await;
    w.shot("10-bot-phone").await;
    w.c.set_window_size(1280, 900).await.unwrap();
    w.click(".signout button").await;
    w.wait_path(|p| p == "/login").await;
    w.goto(&bot_page).await;
    w.wait_path(|p| p == "/login").await;
    w.c.clone().close().await.unwrap();
}
