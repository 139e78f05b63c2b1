//! Retention: finished deliveries (with their attempts) older than the configured window are
//! deleted in the background, and SQLite reuses their pages for new rows; pending
//! deliveries are never deleted, however old. Optionally, the recorded data of bots that
//! finished longer ago than a second window goes too (transcripts, chat, participant events,
//! logs, and the deliveries made from them), as Attendee's cleanup does; their state history
//! stays.
//!
//! A pass walks the rows from the oldest in small steps (`Store::sweep_finished_deliveries`,
//! `Store::expire_bot_data`), each a short transaction, with a pause between them so that a
//! cleanup of millions of rows never holds the database's write lock for long. Passes run
//! every minute, or every quarter of the shorter window if that is less: a row outlives its
//! window by at most that much.

use std::time::Duration;

use meetwire_core::time::now;
use meetwire_store::{StoreError, Swept};
use tokio::sync::watch;

use crate::app::AppState;

/// Delivery rows looked at per step: a step holds the hot path's writer for a few
/// milliseconds (`meetwire bench --scenarios retention`).
const BATCH: u32 = 100;
/// The pause between two steps of one pass.
const BETWEEN_STEPS: Duration = Duration::from_millis(10);
/// The longest time between two passes.
const PASS_INTERVAL: Duration = Duration::from_secs(60);

/// What a pass deletes.
#[derive(Clone, Copy)]
enum Expiring {
    Deliveries,
    BotData,
}

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let deliveries = state.config.delivery_retention;
    let bot_data = state.config.record_retention;
    let shortest = bot_data.map_or(deliveries, |records| records.min(deliveries));
    let between_passes = PASS_INTERVAL.min(shortest / 4);
    loop {
        if !pass(&state, &mut shutdown, Expiring::Deliveries, deliveries).await {
            return;
        }
        if let Some(keep) = bot_data {
            if !pass(&state, &mut shutdown, Expiring::BotData, keep).await {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(between_passes) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass over what `expiring` names, for rows older than `keep`; false on shutdown.
async fn pass(
    state: &AppState,
    shutdown: &mut watch::Receiver<bool>,
    expiring: Expiring,
    keep: Duration,
) -> bool {
    let before = now() - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let mut after = 0;
    let mut deleted = 0;
    let counter = match expiring {
        Expiring::Deliveries => &state.metrics.deliveries_deleted,
        Expiring::BotData => &state.metrics.bot_data_deleted,
    };
    loop {
        let step: Result<Swept, StoreError> = match expiring {
            Expiring::Deliveries => {
                state
                    .store
                    .sweep_finished_deliveries(after, before, BATCH)
                    .await
            }
            Expiring::BotData => state.store.expire_bot_data(after, before).await,
        };
        match step {
            Ok(swept) => {
                deleted += swept.deleted;
                counter.inc_by(swept.deleted);
                let Some(reached) = swept.reached else { break };
                after = reached;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: deleting old rows failed");
                break;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(BETWEEN_STEPS) => {}
            _ = shutdown.changed() => return false,
        }
    }
    if deleted > 0 {
        match expiring {
            Expiring::Deliveries => {
                tracing::info!(deleted, "deleted finished deliveries past their retention");
            }
            Expiring::BotData => {
                tracing::info!(
                    bots = deleted,
                    "deleted the recorded data of bots past its retention"
                );
            }
        }
    }
    true
}
