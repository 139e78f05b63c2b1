//! Configuration precedence: a flag wins over the environment, the environment over the TOML
//! file, the file over the default — observed through the body limit, which a request can see.

mod common;

use std::process::Command;

use common::{create_project, Server, BIN};
use reqwest::{Method, StatusCode};

/// A body of `size` bytes posted as a bot; 413 means it was over the limit.
async fn status_for_body(server: &Server, key: &str, size: usize) -> StatusCode {
    let body_with = |pad: usize| {
        let meeting = format!("https://meet.example.com/{}", "x".repeat(pad));
        format!(r#"{{"meeting_url": "{meeting}"}}"#).into_bytes()
    };
    let body = body_with(size - body_with(0).len());
    assert_eq!(body.len(), size);
    let (status, _) = server
        .api(key)
        .raw(Method::POST, "/api/v1/bots", "application/json", body)
        .await;
    status
}

#[tokio::test]
async fn flags_beat_environment_beat_file() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "config");
    let file = dir.path().join("meetwire.toml");
    std::fs::write(&file, "body_limit = 1000\nheartbeat_timeout = 30\n").unwrap();
    let config = file.to_str().unwrap();

    // File alone: 1000 bytes.
    let server = Server::start(dir.path(), &["--config", config]);
    assert_eq!(
        status_for_body(&server, &project.api_key, 1500).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_ne!(
        status_for_body(&server, &project.api_key, 800).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    drop(server);

    // The environment over the file: 4000 bytes.
    let env = [("MEETWIRE_BODY_LIMIT", "4000")];
    let server = Server::start_with_env(dir.path(), &["--config", config], &env);
    assert_ne!(
        status_for_body(&server, &project.api_key, 1500).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        status_for_body(&server, &project.api_key, 5000).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    drop(server);

    // A flag over both: 1200 bytes.
    let server = Server::start_with_env(
        dir.path(),
        &["--config", config, "--body-limit", "1200"],
        &env,
    );
    assert_eq!(
        status_for_body(&server, &project.api_key, 1500).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_ne!(
        status_for_body(&server, &project.api_key, 1000).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let cases: [(&str, &[&str], &str); 4] = [
        ("listen_port = 5\n", &[], "unknown field"),
        ("body_limit = \"big\"\n", &[], "invalid config file"),
        ("", &["--retry-schedule", "2,x"], "retry schedule"),
        ("", &["--webhook-timeout", "0"], "webhook_timeout"),
    ];
    for (text, flags, expected) in cases {
        std::fs::write(&file, text).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .arg("--config")
            .arg(&file)
            .args(flags)
            .env("MEETWIRE_LOG", "warn")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text:?} {flags:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{text:?} {flags:?}: {stderr}");
    }
}
