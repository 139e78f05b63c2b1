//! The running server: shared state, the router, and the background tasks' lifecycle.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::BytesMut;
use http_body_util::BodyExt;
use meetwire_core::sealing::SealingKey;
use meetwire_core::time::now;
use meetwire_store::Store;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::api::credentials_cache::CredentialCache;
use crate::api::error::ApiError;
use crate::config::{MetricsAccess, ServerConfig};
use crate::delivery::keys::KeyCache;
use crate::delivery::Dispatcher;
use crate::metrics::Metrics;
use crate::ui::throttle::SignInThrottle;
use crate::{api, calendar, connections, retention, runner_api, sandbox, scheduler, ui};

/// What every handler and task shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    /// Seals and opens webhook secrets at rest.
    pub sealing: Arc<SealingKey>,
    pub keys: Arc<KeyCache>,
    pub metrics: Arc<Metrics>,
    /// Recently verified API keys and runner tokens.
    pub api_keys: Arc<CredentialCache>,
    pub runner_tokens: Arc<CredentialCache>,
    /// Wakes the sandbox runner when a bot may have become claimable.
    pub runner_wake: Arc<Notify>,
    /// Wakes the calendar sync loop when a calendar's sync was asked for.
    pub calendar_wake: Arc<Notify>,
    /// Failed UI sign-ins, to slow down guessing.
    pub sign_ins: Arc<SignInThrottle>,
    /// Set when the server begins to stop: it is no longer ready.
    pub stopping: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: ServerConfig, sealing: SealingKey) -> Self {
        let sealing = Arc::new(sealing);
        AppState {
            keys: Arc::new(KeyCache::new(store.clone(), sealing.clone())),
            store,
            config: Arc::new(config),
            sealing,
            metrics: Arc::new(Metrics::default()),
            api_keys: Arc::default(),
            runner_tokens: Arc::default(),
            runner_wake: Arc::new(Notify::new()),
            calendar_wake: Arc::new(Notify::new()),
            sign_ins: Arc::default(),
            stopping: Arc::default(),
        }
    }

    pub fn wake_runners(&self) {
        self.runner_wake.notify_one();
    }
}

pub fn router(state: AppState) -> Router {
    let runner = Router::new()
        .route("/bots/claim", post(runner_api::claim))
        .route("/bots/{id}/records", post(runner_api::records))
        .route("/bots/{id}/heartbeat", post(runner_api::heartbeat));
    Router::new()
        .nest("/api/v1", api::routes())
        .nest("/runner/v1", runner)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(metrics_beside_api(&state))
        .merge(ui::routes())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async {
            ApiError::Rejected {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "Method not allowed".into(),
            }
        })
        .layer(middleware::from_fn_with_state(
            BodyRules {
                limit: state.config.body_limit_bytes,
                timeout: state.config.connections.body_read_timeout,
            },
            read_body_first,
        ))
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .with_state(state)
}

/// `/metrics` on the API's address, unless it has an address of its own.
fn metrics_beside_api(state: &AppState) -> Router<AppState> {
    match state.config.metrics.listen {
        Some(_) => Router::new(),
        None => Router::new().route("/metrics", get(metrics)),
    }
}

/// `/metrics`, with the probes, for its own address.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// How much of an oversize body is read (and thrown away) before answering 413, as a multiple
/// of the limit: a client still sending its body when the answer comes may miss the answer.
const OVERSIZE_DRAIN_FACTOR: usize = 8;

/// How request bodies are read: at most `limit` bytes, within `timeout`.
#[derive(Clone, Copy)]
struct BodyRules {
    limit: usize,
    timeout: Duration,
}

/// Reads each request's whole body before routing, bounded by the body limit and the
/// body-read timeout. A request refused early (bad token, wrong content type) would otherwise
/// leave its body unread on the connection, and the client's next request on it would fail; an
/// oversize body is drained (up to a bound) and answered 413, a body too slow to arrive 408,
/// both with `Connection: close`.
async fn read_body_first(State(rules): State<BodyRules>, request: Request, next: Next) -> Response {
    let (parts, mut body) = request.into_parts();
    let mut kept = BytesMut::new();
    let mut seen = 0usize;
    let drain_limit = rules.limit.saturating_mul(OVERSIZE_DRAIN_FACTOR);
    let reading = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be read",
                ));
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            seen = seen.saturating_add(data.len());
            if seen <= rules.limit {
                kept.extend_from_slice(&data);
            } else if seen > drain_limit {
                break;
            }
        }
        Ok(())
    };
    match tokio::time::timeout(rules.timeout, reading).await {
        Ok(Ok(())) => {}
        Ok(Err(refused)) => return refused,
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "The request body did not arrive in time",
            )
        }
    }
    if seen > rules.limit {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large");
    }
    next.run(Request::from_parts(parts, Body::from(kept.freeze())))
        .await
}

/// An error answer after which the connection is closed.
fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = ApiError::Rejected {
        status,
        message: message.to_owned(),
    }
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and what it is given can still be made durable, and not
/// stopping.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.stopping.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "stopping"})),
        );
    }
    if let Some(failure) = state.store.durability_failure() {
        tracing::warn!(error = %failure, "not ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "log sync failed; restart required"})),
        );
    }
    if let Some(why) = state.store.disk_full() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": why})),
        );
    }
    match state.store.project_count().await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "database unavailable"})),
            )
        }
    }
}

/// Whether the request may read `/metrics`: any request when no token is set, else one
/// bearing it (compared in constant time).
fn may_read_metrics(access: &MetricsAccess, headers: &HeaderMap) -> bool {
    let Some(token) = &access.token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !may_read_metrics(&state.config.metrics, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "A valid bearer token is required to read metrics."})),
        )
            .into_response();
    }
    let sync_failed = state.store.durability_failure().is_some();
    state.metrics.log_sync_failed.set(i64::from(sync_failed));
    if let Ok(stats) = state.store.delivery_stats().await {
        state.metrics.pending.set(stats.pending);
        let age = stats.oldest_due.map_or(0.0, |due| {
            (now() - due).num_milliseconds().max(0) as f64 / 1000.0
        });
        state.metrics.oldest_due_seconds.set(age);
    }
    // The exposition is OpenMetrics (`# EOF`, counters named `…_total`); labelled as the older
    // text format, Prometheus would read it with the wrong parser and lose the counter types.
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Serves on `listener` (and `/metrics` on `metrics_listener`, if given) until `shutdown`
/// resolves. Then it stops within the configured grace: no longer ready, it closes the
/// listener, lets the requests in flight finish, and stops the background tasks — the
/// dispatcher hands back what it claimed and has not sent, and lets its attempts in flight
/// finish and their results be written. What is still in flight when the grace ends is taken
/// over by the next start (or another process) at once.
pub async fn serve(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if state.config.sandbox_runner {
        tasks.spawn(sandbox::run(state.clone(), stop_rx.clone()));
    }
    tasks.spawn(scheduler::run(state.clone(), stop_rx.clone()));
    tasks.spawn(retention::run(state.clone(), stop_rx.clone()));
    tasks.spawn(calendar::sync::run(state.clone(), stop_rx.clone()));
    let (dispatcher, writer) = Dispatcher::start(
        state.store.clone(),
        state.keys.clone(),
        Arc::new(state.config.delivery.clone()),
        state.metrics.clone(),
    )
    .map_err(std::io::Error::other)?;
    let dispatching = tokio::spawn(dispatcher.run(stop_rx));
    let limits = state.config.connections.clone();
    let metrics = state.metrics.clone();
    let grace = state.config.shutdown_grace;
    // Metrics on their own address stay readable until everything else has stopped.
    let (metrics_stop, mut metrics_stopping) = watch::channel(false);
    let metrics_serving = metrics_listener.map(|listener| {
        tokio::spawn(connections::serve(
            listener,
            metrics_router(state.clone()),
            limits.clone(),
            metrics.clone(),
            async move {
                let _ = metrics_stopping.wait_for(|stop| *stop).await;
            },
            grace,
        ))
    });
    let stopping = state.stopping.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.store(true, Ordering::Release);
    };
    connections::serve(listener, router(state), limits, metrics, shutdown, grace).await;
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while tasks.join_next().await.is_some() {}
        let _ = dispatching.await;
        let _ = writer.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "delivery attempts still in flight at the end of the shutdown grace; the next \
             start takes their deliveries over"
        );
    }
    let _ = metrics_stop.send(true);
    if let Some(serving) = metrics_serving {
        let _ = serving.await;
    }
    Ok(())
}
