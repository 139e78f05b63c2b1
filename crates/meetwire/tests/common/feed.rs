//! A calendar feed on loopback whose answer (status and body) a test changes between syncs,
//! and the helpers the calendar suites share: the webhooks received, each checked against the
//! project's secret, and a sync asked for now.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode as HttpStatus;
use axum::routing::get;
use meetwire_core::signing::{verify_attendee, AttendeeCheck, WebhookSecret};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::receiver::{Received, Receiver};
use super::{Api, Project};

#[derive(Clone)]
pub struct Feed {
    answer: Arc<Mutex<(u16, String)>>,
    pub url: String,
}

impl Feed {
    pub async fn start(body: String) -> Feed {
        let answer = Arc::new(Mutex::new((200, body)));
        let app = axum::Router::new()
            .route("/calendar.ics", get(serve_feed))
            .with_state(answer.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/calendar.ics", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Feed { answer, url }
    }

    pub fn set(&self, status: u16, body: String) {
        *self.answer.lock().unwrap() = (status, body);
    }
}

async fn serve_feed(State(answer): State<Arc<Mutex<(u16, String)>>>) -> (HttpStatus, String) {
    let (status, body) = answer.lock().unwrap().clone();
    (HttpStatus::from_u16(status).unwrap(), body)
}

/// An iCalendar UTC time.
pub fn ical_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The webhooks received so far, each checked against the project's secret.
pub fn signed_hooks(receiver: &Receiver, project: &Project) -> Vec<Value> {
    let secret = WebhookSecret::parse(&project.webhook_secret).unwrap();
    receiver
        .received()
        .iter()
        .map(|r: &Received| {
            let signature = r.header("x-webhook-signature").expect("signed");
            assert_eq!(
                verify_attendee(secret.as_bytes(), &r.body, signature),
                AttendeeCheck::RawBody
            );
            r.json()
        })
        .collect()
}

/// Waits for `n` webhooks; returns them all, signatures checked.
pub async fn wait_hooks(receiver: &Receiver, project: &Project, n: usize) -> Vec<Value> {
    receiver.wait_for(n, Duration::from_secs(20)).await;
    signed_hooks(receiver, project)
}

/// Asks for a sync of `calendar` now, asserting it was queued.
pub async fn sync_now(api: &Api, calendar: &str) {
    let (status, body) = api
        .post(&format!("/api/v1/calendars/{calendar}/sync"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// The calendar's events as the API lists them.
pub async fn calendar_events(api: &Api, calendar: &str) -> Vec<Value> {
    api.list_all(&format!("/api/v1/calendar_events?calendar_id={calendar}"))
        .await
}

/// Connects a calendar (`body` is the POST's), asserting it was created; its id.
pub async fn connect(api: &Api, body: Value) -> String {
    let (status, calendar) = api.post("/api/v1/calendars", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{calendar}");
    calendar["id"].as_str().unwrap().to_owned()
}

/// The calendar as the API shows it now.
pub async fn calendar(api: &Api, id: &str) -> Value {
    let (status, calendar) = api.get(&format!("/api/v1/calendars/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{calendar}");
    calendar
}
