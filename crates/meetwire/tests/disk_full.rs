//! A full disk, on a small tmpfs this test mounts (it runs as root, as CI does): ingest answers
//! 503 with a clear error and never a 2xx for something it did not store, `/readyz` says why,
//! nothing acknowledged is lost or corrupted, deliveries of what was stored go on, and the
//! server recovers by itself once space is freed.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::{create_project, create_runner_token, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A tmpfs of `mib` MiB mounted for the test's lifetime.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount (this test needs root)");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root"
        );
        SmallDisk {
            mount: dir.path().to_owned(),
            _dir: dir,
        }
    }

    fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn chat(i: usize) -> Value {
    json!({"kind": "chat_message", "id": format!("m{i}"), "to": "everyone",
           "text": format!("{i} {}", "x".repeat(2000)),
           "timestamp_ms": 1_700_000_000_000_i64 + i as i64,
           "sender_name": "A", "sender_uuid": "u-a"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_recovers_when_space_is_freed() {
    let disk = SmallDisk::mount(24);
    let data = disk.path().join("data");
    // Room to free later.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 4 << 20]).unwrap();
    let rx = Receiver::ok().await;
    let project = create_project(&data, "full");
    let token = create_runner_token(&data, "full-runner");
    let server = Server::start(
        &data,
        &[
            "--allow-http-webhooks",
            "--allow-webhook-cidr",
            "127.0.0.0/8",
        ],
    );
    let api = server.api(&project.api_key);
    api.subscribe(&rx.url(), &["chat_messages.update"]).await;
    let runner = server.api(&token);
    let bot = api
        .create_bot(json!({"meeting_url": "https://meet.example.com/full"}))
        .await;
    let bot = bot["id"].as_str().unwrap().to_owned();
    let (status, _) = runner.post("/runner/v1/bots/claim", &json!({})).await;
    assert!(status.is_success());
    let records = format!("/runner/v1/bots/{bot}/records");

    // Fill the disk.
    let mut acknowledged = HashSet::new();
    let mut refused = 0;
    let mut i = 0;
    while refused < 20 {
        assert!(i < 50_000, "the disk never filled");
        let (status, body) = runner.post(&records, &json!({"records": [chat(i)]})).await;
        match status {
            StatusCode::OK => {
                assert_eq!(body["stored"], 1, "{body}");
                acknowledged.insert(format!("{i}"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    body["error"].as_str().unwrap().contains("disk is full"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("post {i}: {other} {body}"),
        }
        i += 1;
    }
    println!(
        "{} events acknowledged before the disk filled",
        acknowledged.len()
    );
    assert!(acknowledged.len() > 100, "{}", acknowledged.len());
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert!(
        ready["status"].as_str().unwrap().contains("full"),
        "{ready}"
    );

    // Space comes back: ready again by itself, and writes work.
    std::fs::remove_file(&ballast).unwrap();
    let started = Instant::now();
    loop {
        let (status, _) = api.get("/readyz").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = runner.post(&records, &json!({"records": [chat(i)]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    acknowledged.insert(format!("{i}"));

    // Everything acknowledged is stored, and delivered.
    let stored: HashSet<String> = common::receiver::delivery_log(&api, "")
        .await
        .iter()
        .filter_map(|d| Some(d["idempotency_key"].as_str()?.to_owned()))
        .collect();
    assert!(stored.len() >= acknowledged.len());
    let seen = |r: &common::receiver::Received| {
        r.json()["data"]["text"]
            .as_str()
            .and_then(|t| t.split(' ').next())
            .map(str::to_owned)
    };
    rx.wait_until(Duration::from_secs(60), "every acknowledged event", |got| {
        let delivered: HashSet<String> = got.iter().filter_map(seen).collect();
        acknowledged.is_subset(&delivered)
    })
    .await;
    drop(server);
    let db = rusqlite::Connection::open(data.join("meetwire.sqlite3")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
