//! `admin backup` while the server runs and `admin restore` into a new data directory: the
//! restored server delivers what was pending at the backup, under the same idempotency keys
//! and signed with the same secret; bad input is refused and leaves nothing behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::receiver::{always, delivery_log, Receiver, Reply};
use common::{create_runner_token, setup, Server};
use meetwire_core::signing::{attendee_signature, WebhookSecret};
use serde_json::json;

const LOOPBACK: &[&str] = &[
    "--allow-http-webhooks",
    "--allow-webhook-cidr",
    "127.0.0.0/8",
    "--retry-schedule",
    "2,2,2,2,2,2,2,2,2,2,2,2",
];

/// Runs `meetwire admin <args>`; returns whether it succeeded and what it printed.
fn admin(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(common::BIN)
        .arg("admin")
        .args(args)
        .env("MEETWIRE_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The idempotency keys of the pending deliveries in the log.
async fn pending_keys(api: &common::Api) -> Vec<String> {
    delivery_log(api, "status=pending")
        .await
        .iter()
        .map(|d| d["idempotency_key"].as_str().unwrap().to_owned())
        .collect()
}

/// `meetwire admin backup --to FILE --data-dir DIR`.
fn backup(file: &Path, dir: &Path) -> (bool, String) {
    admin(
        &["backup", "--to", path(file), "--data-dir", path(dir)],
        &[],
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_and_delivers_what_was_pending() {
    // The receiver refuses everything at first, so deliveries stay pending (retried every 2 s
    // for 24 s).
    let rx = Receiver::start(always(Reply::status(503))).await;
    let (dir, project, server) = setup(LOOPBACK);
    let api = server.api(&project.api_key);
    api.subscribe(&rx.url(), &["chat_messages.update"]).await;
    let token = create_runner_token(dir.path(), "backup-runner");
    let runner = server.api(&token);
    let bot = api
        .create_bot(json!({"meeting_url": "https://meet.example.com/backup"}))
        .await;
    let bot = bot["id"].as_str().unwrap().to_owned();
    let (status, _) = runner.post("/runner/v1/bots/claim", &json!({})).await;
    assert!(status.is_success());
    let record = |i: usize| {
        json!({"kind": "chat_message", "id": format!("m{i}"), "to": "everyone",
               "text": format!("before the backup {i}"), "timestamp_ms": 1_700_000_000_000_i64 + i as i64,
               "sender_name": "A", "sender_uuid": "u-a"})
    };
    let records = format!("/runner/v1/bots/{bot}/records");
    for i in 0..20 {
        let (status, body) = runner
            .post(&records, &json!({"records": [record(i)]}))
            .await;
        assert!(status.is_success(), "{body}");
    }
    rx.wait_for(1, Duration::from_secs(10)).await;
    let pending_before_backup = pending_keys(&api).await;
    assert_eq!(pending_before_backup.len(), 20);

    // The backup runs while events keep arriving.
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("meetwire.backup");
    let writing = tokio::spawn({
        let runner = runner.clone();
        let records = records.clone();
        async move {
            for i in 20..60 {
                let (status, _) = runner
                    .post(&records, &json!({"records": [record(i)]}))
                    .await;
                assert!(status.is_success());
            }
        }
    });
    let (ok, out) = backup(&file, dir.path());
    writing.await.unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("secret.key"),
        "the output says the key is apart: {out}"
    );

    // A backup never overwrites.
    let (ok, out) = backup(&file, dir.path());
    assert!(!ok && out.contains("already exists"), "{out}");
    // Nor writes where it cannot; nothing is left behind.
    let nowhere = backups.path().join("missing").join("b");
    let (ok, out) = backup(&nowhere, dir.path());
    assert!(!ok, "{out}");
    assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 1);
    drop(server);

    // Restore into a new directory with the old key file; the original is gone.
    let key_file = backups.path().join("kept.key");
    std::fs::copy(dir.path().join("secret.key"), &key_file).unwrap();
    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let (ok, out) = admin(
        &[
            "restore",
            "--from",
            path(&file),
            "--key-file",
            path(&key_file),
            "--data-dir",
            path(&target),
        ],
        &[],
    );
    assert!(ok, "{out}");
    drop(dir);

    rx.set_script(always(Reply::ok()));
    let before = rx.count();
    let server = Server::start(&target, LOOPBACK);
    // What the backup holds: everything acknowledged before it began, and part of what came
    // while it ran (it is the database as of one moment).
    let pending_at_backup = pending_keys(&server.api(&project.api_key)).await;
    assert!(
        pending_before_backup
            .iter()
            .all(|k| pending_at_backup.contains(k)),
        "an event acknowledged before the backup is missing from it"
    );
    let got = rx
        .wait_until(Duration::from_secs(30), "the pending deliveries", |r| {
            pending_at_backup
                .iter()
                .all(|k| r[before..].iter().any(|x| x.key() == *k && x.succeeded()))
        })
        .await;
    let secret = WebhookSecret::parse(&project.webhook_secret).unwrap();
    for r in &got[before..] {
        let expected = attendee_signature(secret.as_bytes(), &r.body);
        assert_eq!(
            r.header("x-webhook-signature"),
            Some(expected.as_str()),
            "signed with the restored secret"
        );
    }
    drop(server);
}

#[test]
fn a_restore_refuses_bad_input_and_leaves_nothing_behind() {
    let (dir, _project, server) = setup(&[]);
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("b.sqlite3");
    let (ok, out) = backup(&file, dir.path());
    assert!(ok, "{out}");
    drop(server);

    let target = backups.path().join("restored");
    let restore = |from: &Path, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["restore", "--from", path(from), "--data-dir", path(&target)];
        args.extend_from_slice(extra);
        admin(&args, env)
    };
    // Without the key that sealed the project's webhook secret.
    let (ok, out) = restore(&file, &[], &[]);
    assert!(!ok && out.contains("secret.key"), "{out}");
    assert!(!target.exists(), "a failed restore left {target:?}");
    // With a wrong key.
    let wrong = WebhookSecret::generate().to_base64();
    let (ok, out) = restore(&file, &[], &[("MEETWIRE_SECRET_KEY", &wrong)]);
    assert!(!ok && out.contains("does not open"), "{out}");
    assert!(!target.exists());
    // A file that is not a backup.
    let junk = backups.path().join("junk");
    std::fs::write(&junk, b"not a database at all, just some bytes").unwrap();
    let (ok, out) = restore(&junk, &[], &[]);
    assert!(!ok && out.contains("not a meetwire backup"), "{out}");
    assert!(!target.exists());
    // Over a directory that holds something.
    let key = dir.path().join("secret.key");
    let (ok, out) = admin(
        &[
            "restore",
            "--from",
            path(&file),
            "--key-file",
            path(&key),
            "--data-dir",
            path(dir.path()),
        ],
        &[],
    );
    assert!(!ok && out.contains("not empty"), "{out}");
    // And with the right key it works.
    let (ok, out) = restore(&file, &["--key-file", path(&key)], &[]);
    assert!(ok, "{out}");
    assert!(target.join("meetwire.sqlite3").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_backup_stopped_by_a_signal_leaves_no_file() {
    let (dir, _project, server) = setup(&[]);
    drop(server);
    // 256 MiB more to copy, so that the signal comes while the copy is being written.
    let db = rusqlite::Connection::open(dir.path().join("meetwire.sqlite3")).unwrap();
    db.execute_batch("CREATE TABLE ballast (b BLOB)").unwrap();
    for _ in 0..256 {
        db.execute("INSERT INTO ballast VALUES (zeroblob(1048576))", [])
            .unwrap();
    }
    drop(db);
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("b.sqlite3");
    let mut child = std::process::Command::new(common::BIN)
        .args(["admin", "backup", "--to", path(&file), "--data-dir"])
        .arg(dir.path())
        .env("MEETWIRE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let writing = || {
        std::fs::read_dir(backups.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().contains(".partial-"))
    };
    while !writing() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the backup never began writing"
        );
        assert!(child.try_wait().unwrap().is_none(), "it finished first");
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(backups.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
