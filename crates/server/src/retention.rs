//! Retention: finished deliveries (with their attempts) older than the configured window are
//! deleted in the background, so the database stops growing under a steady load. Pending
//! deliveries are never deleted, however old.
//!
//! A pass walks the deliveries from the oldest in batches (`Store::sweep_finished_deliveries`),
//! each a short transaction, with a pause between them so that a cleanup of millions of rows
//! never holds the database's write lock for long. Passes run every minute, or every quarter
//! of the window if that is shorter: a delivery outlives its window by at most that much.

use std::time::Duration;

use meetwire_core::time::now;
use tokio::sync::watch;

use crate::app::AppState;

/// Rows looked at per batch.
const BATCH: u32 = 500;
/// The pause between two batches of one pass.
const BETWEEN_BATCHES: Duration = Duration::from_millis(10);
/// The longest time between two passes.
const PASS_INTERVAL: Duration = Duration::from_secs(60);

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let keep = state.config.delivery_retention;
    let window = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let between_passes = PASS_INTERVAL.min(keep / 4);
    loop {
        let before = now() - window;
        let mut after = 0;
        let mut deleted = 0;
        loop {
            match state
                .store
                .sweep_finished_deliveries(after, before, BATCH)
                .await
            {
                Ok(swept) => {
                    deleted += swept.deleted;
                    let Some(reached) = swept.reached else { break };
                    after = reached;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deleting old deliveries failed");
                    break;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(BETWEEN_BATCHES) => {}
                _ = shutdown.changed() => return,
            }
        }
        if deleted > 0 {
            state.metrics.deliveries_deleted.inc_by(deleted);
            tracing::info!(deleted, "deleted finished deliveries past their retention");
        }
        tokio::select! {
            _ = tokio::time::sleep(between_passes) => {}
            _ = shutdown.changed() => return,
        }
    }
}
