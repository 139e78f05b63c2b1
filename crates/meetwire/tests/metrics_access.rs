//! Who may read `/metrics`, and where: a bearer token (`--metrics-token`) and an address of
//! its own (`--metrics-listen`) that keeps it off the public port.

mod common;

use common::Server;
use reqwest::StatusCode;

/// GET `url` with an optional `Authorization` header: the status, the `WWW-Authenticate`
/// header and the body.
async fn get(url: &str, authorization: Option<&str>) -> (StatusCode, Option<String>, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), challenge, response.text().await.unwrap())
}

#[tokio::test]
async fn a_metrics_token_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--metrics-token", "s3cret-metrics"]);
    let url = format!("{}/metrics", server.base);
    for refused in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret"),
        Some("s3cret-metrics"),
    ] {
        let (status, challenge, body) = get(&url, refused).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        assert!(
            !body.contains("meetwire_"),
            "{refused:?} read metrics: {body}"
        );
    }
    let (status, _, body) = get(&url, Some("Bearer s3cret-metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("meetwire_deliveries_pending"), "{body}");
    assert!(body.trim_end().ends_with("# EOF"));
    // Health and readiness stay open to probes.
    let (status, _, _) = get(&format!("{}/readyz", server.base), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_on_their_own_address_are_gone_from_the_public_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-token",
            "private-token",
        ],
    );
    let line = server.printed("metrics on ");
    let metrics_url = line.split("metrics on ").nth(1).unwrap().trim().to_owned();
    assert!(metrics_url.ends_with("/metrics"), "{line}");
    assert_ne!(
        metrics_url,
        format!("{}/metrics", server.base),
        "a port of its own"
    );

    let (status, _, _) = get(
        &format!("{}/metrics", server.base),
        Some("Bearer private-token"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the public port has no metrics"
    );
    let (status, _, _) = get(&metrics_url, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the token holds there too"
    );
    let (status, _, body) = get(&metrics_url, Some("Bearer private-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("meetwire_deliveries_pending"), "{body}");
    // The metrics address serves nothing else.
    let base = metrics_url.trim_end_matches("/metrics");
    let (status, _, _) = get(&format!("{base}/api/v1/bots"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The API is where it was.
    let (status, _, _) = get(&format!("{}/readyz", server.base), None).await;
    assert_eq!(status, StatusCode::OK);
}
