//! The running server: shared state, the router, and the background tasks' lifecycle.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Json, Router};
use meetwire_store::Store;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::api::error::ApiError;
use crate::config::ServerConfig;
use crate::{api, runner_api, sandbox, scheduler};

/// What every handler and task shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    /// Wakes the sandbox runner when a bot may have become claimable.
    pub runner_wake: Arc<Notify>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        AppState {
            store,
            config: Arc::new(config),
            runner_wake: Arc::new(Notify::new()),
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
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves, then stops the background tasks.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if state.config.sandbox_runner {
        tasks.spawn(sandbox::run(state.clone(), stop_rx.clone()));
    }
    tasks.spawn(scheduler::run(state.clone(), stop_rx));
    let app = router(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("background tasks did not stop in time");
    }
    result
}
