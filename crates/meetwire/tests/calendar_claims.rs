//! One sync per calendar at a time, also across several `serve` processes on one data
//! directory: two servers that keep syncing the same calendar, and are asked to sync it now
//! over and over, never read its feed at the same time, and between them keep it synced.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use common::feed::{calendar, connect, sync_now};
use common::receiver::FAST_LOOPBACK;
use common::{create_project, Server};
use serde_json::json;

const EMPTY_FEED: &str =
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nEND:VCALENDAR\r\n";

/// How many feed requests are being answered at once, the most seen, and how many were served.
#[derive(Default)]
struct Overlap {
    inside: AtomicUsize,
    most_inside: AtomicUsize,
    served: AtomicUsize,
}

/// Answers after 300 ms, so two syncs at once would overlap here.
async fn slow_feed(State(overlap): State<Arc<Overlap>>) -> &'static str {
    let now = overlap.inside.fetch_add(1, SeqCst) + 1;
    overlap.most_inside.fetch_max(now, SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    overlap.inside.fetch_sub(1, SeqCst);
    overlap.served.fetch_add(1, SeqCst);
    EMPTY_FEED
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_data_directory_never_sync_a_calendar_twice_at_once() {
    let overlap = Arc::new(Overlap::default());
    let app = axum::Router::new()
        .route("/c.ics", get(slow_feed))
        .with_state(overlap.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/c.ics", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "claims");
    let flags = [FAST_LOOPBACK, &["--calendar-sync-interval", "0.1"]].concat();
    let a = Server::start(dir.path(), &flags);
    let b = Server::start(dir.path(), &flags);
    let (api_a, api_b) = (a.api(&project.api_key), b.api(&project.api_key));
    let id = &connect(&api_a, json!({"platform": "ical", "ical_url": url})).await;

    for _ in 0..15 {
        tokio::join!(sync_now(&api_a, id), sync_now(&api_b, id));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let served = overlap.served.load(SeqCst);
    assert!(served >= 5, "the calendar kept syncing: {served} reads");
    assert_eq!(
        overlap.most_inside.load(SeqCst),
        1,
        "two syncs of one calendar ran at once"
    );
    assert_eq!(calendar(&api_b, id).await["state"], "connected");
}
