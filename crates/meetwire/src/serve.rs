//! `meetwire serve`: opens the store, creates a first project on an empty database, and runs
//! the server until SIGINT or SIGTERM.

use std::io::Write;

use meetwire_core::ids::new_token;
use meetwire_core::signing::WebhookSecret;
use meetwire_server::{connections, AppState};

use crate::cli::ServeArgs;
use crate::open_files;
use crate::settings::{open_store, sealing_key, serve_settings, SettingsError};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

pub async fn run(args: ServeArgs) -> Result<(), ServeError> {
    let open_files = open_files::raise();
    let settings = serve_settings(&args, open_files)?;
    let limits = &settings.server.connections;
    tracing::info!(
        open_files_soft = open_files.soft,
        open_files_hard = open_files.hard,
        max_connections = limits.max_connections,
        header_read_timeout_s = limits.header_read_timeout.as_secs_f64(),
        body_read_timeout_s = limits.body_read_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        "connection limits"
    );
    let store = open_store(&settings.storage, settings.store.clone()).await?;
    let key = sealing_key(&settings.storage, store.as_ref()).await?;
    let listener =
        connections::bind(settings.server.listen).map_err(|source| ServeError::Bind {
            addr: settings.server.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let metrics_listener = match settings.server.metrics.listen {
        Some(metrics_addr) => {
            Some(
                connections::bind(metrics_addr).map_err(|source| ServeError::Bind {
                    addr: metrics_addr,
                    source,
                })?,
            )
        }
        None => None,
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "meetwire {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    )?;
    if let Some(metrics) = &metrics_listener {
        writeln!(out, "metrics on http://{}/metrics", metrics.local_addr()?)?;
    }
    if settings.storage.database_url.is_none() {
        writeln!(
            out,
            "data directory: {}",
            settings.storage.data_dir.display()
        )?;
    }
    if store.project_count().await.map_err(SettingsError::from)? == 0 {
        let secret = WebhookSecret::generate();
        let sealed = key
            .seal(secret.as_bytes())
            .map_err(|e| SettingsError::Key(e.to_string()))?;
        let created = store
            .create_project("Default project", sealed)
            .await
            .map_err(SettingsError::from)?;
        writeln!(out, "created project {} (first start)", created.project_id)?;
        writeln!(out, "  API key (shown once): {}", created.api_key)?;
        writeln!(out, "  webhook secret:       {}", secret.to_base64())?;
        writeln!(
            out,
            "  try: curl -H 'Authorization: Token {}' http://{addr}/api/v1/bots",
            created.api_key
        )?;
    }
    if !store.any_user().await.map_err(SettingsError::from)? {
        let code = new_token();
        store
            .add_setup_code(&code)
            .await
            .map_err(SettingsError::from)?;
        writeln!(out, "web UI: http://{addr}/ (first run)")?;
        writeln!(
            out,
            "  open http://{addr}/setup and enter the setup code: {code}"
        )?;
    } else {
        writeln!(out, "web UI: http://{addr}/")?;
    }
    out.flush()?;
    drop(out);
    let state = AppState::new(store, settings.server, key);
    let stop = shutdown_signal_then_stop_at_once();
    meetwire_server::serve(listener, metrics_listener, state, stop).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    signalled().await;
    tracing::info!("shutting down");
}

/// Like `shutdown_signal`, and a second signal while the server stops ends the process at
/// once: an operator who will not wait out the grace need not reach for SIGKILL (nothing
/// acknowledged is lost either way; the next start takes over what was in flight).
async fn shutdown_signal_then_stop_at_once() {
    shutdown_signal().await;
    tokio::spawn(async {
        signalled().await;
        tracing::warn!("second signal: stopping at once");
        std::process::exit(SECOND_SIGNAL_EXIT);
    });
}

/// The exit status after a second signal (that of a process ended by SIGINT).
const SECOND_SIGNAL_EXIT: i32 = 130;

/// Waits for SIGINT or SIGTERM.
async fn signalled() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
