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
    let cases: [(&str, &[&str], &str); 9] = [
        ("listen_port = 5\n", &[], "unknown field"),
        ("body_limit = \"big\"\n", &[], "invalid config file"),
        ("", &["--retry-schedule", "2,x"], "retry schedule"),
        ("", &["--webhook-timeout", "0"], "webhook_timeout"),
        ("", &["--webhook-timeout", "1e-12"], "webhook_timeout"),
        (
            "",
            &["--metrics-token", " "],
            "metrics_token must not be empty",
        ),
        (
            "metrics_listen = \"localhost\"\n",
            &[],
            "invalid config file",
        ),
        ("", &["--retention-days", "0"], "retention days"),
        ("", &["--shutdown-grace", "0"], "shutdown_grace"),
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

/// `serve` on `dir` that is expected to refuse to start; returns what it printed on stderr.
fn refused_start(dir: &std::path::Path, env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("MEETWIRE_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started: {stderr}");
    stderr
}

#[test]
fn a_key_that_cannot_open_the_stored_secrets_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    create_project(dir.path(), "keyed");
    let key_file = dir.path().join("secret.key");
    let kept = dir.path().join("kept.key");
    std::fs::rename(&key_file, &kept).unwrap();

    let stderr = refused_start(dir.path(), &[]);
    assert!(stderr.contains("secret.key is missing"), "{stderr}");
    assert!(
        !key_file.exists(),
        "a new key was generated for sealed secrets"
    );

    let other_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let stderr = refused_start(dir.path(), &[("MEETWIRE_SECRET_KEY", other_key)]);
    assert!(
        stderr.contains("does not open the webhook secrets"),
        "{stderr}"
    );

    // With the key back, it starts (`start` waits until it listens).
    std::fs::rename(&kept, &key_file).unwrap();
    Server::start(dir.path(), &[]).kill();
}

#[test]
fn admin_commands_other_than_create_project_need_an_existing_database() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("not-a-data-dir");
    for args in [
        &["create-runner-token", "--name", "r"][..],
        &["create-api-key", "--project", "proj_x"][..],
    ] {
        let out = common::admin_output(&elsewhere, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no meetwire database in"),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        !elsewhere.exists(),
        "a refused admin command created a data dir"
    );
}

#[tokio::test]
async fn booleans_from_the_environment_take_one_and_yes() {
    let dir = tempfile::tempdir().unwrap();
    let project = create_project(dir.path(), "boolish");
    let env = [
        ("MEETWIRE_ALLOW_HTTP_WEBHOOKS", "1"),
        ("MEETWIRE_SANDBOX_RUNNER", "no"),
    ];
    let server = Server::start_with_env(dir.path(), &[], &env);
    let api = server.api(&project.api_key);
    let (status, body) = api
        .post(
            "/api/v1/webhooks",
            &serde_json::json!({"url": "http://hooks.example.com/", "triggers": ["bot.state_change"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "http:// allowed by =1: {body}");
}
