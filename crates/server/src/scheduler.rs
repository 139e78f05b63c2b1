//! Time-driven bot events: scheduled bots are staged and then asked to join at `join_at`, and
//! bots whose runner went silent fail with `heartbeat_timeout`. Each change goes through the
//! state machine in a transaction, so two nodes doing the same pass cannot apply it twice (the
//! second finds the transition no longer allowed and skips it).

use meetwire_core::record::BotEventRequest;
use meetwire_core::state::{BotEventSubType, BotEventType, BotState};
use meetwire_core::time::now;
use meetwire_store::{Actor, BotInput, StoreError};
use tokio::sync::watch;

use crate::app::AppState;

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    // After a restart, runners get one full timeout to check in again before any is judged silent.
    let started = tokio::time::Instant::now();
    loop {
        if let Err(e) = start_scheduled(&state).await {
            tracing::error!(error = %e, "scheduling pass failed");
        }
        if started.elapsed() >= state.config.heartbeat_timeout {
            if let Err(e) = fail_silent(&state).await {
                tracing::error!(error = %e, "heartbeat pass failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.poll_interval) => {}
            _ = shutdown.changed() => break,
        }
    }
}

async fn start_scheduled(state: &AppState) -> Result<(), StoreError> {
    let at = now();
    let lead = chrono::Duration::from_std(state.config.stage_lead).unwrap_or_default();
    for bot in state.store.scheduled_bots(at + lead).await? {
        let due = bot.join_at.is_some_and(|t| t <= at);
        let mut inputs = Vec::new();
        if bot.state == BotState::Scheduled {
            inputs.push(BotInput::Event(BotEventRequest::server(
                BotEventType::Staged,
                None,
            )));
        }
        if due {
            inputs.push(BotInput::Event(BotEventRequest::join_requested(
                "scheduler",
            )));
        }
        if inputs.is_empty() {
            continue;
        }
        match state
            .store
            .record(Actor::System, &bot.id, inputs, None)
            .await
        {
            Ok(_) => {
                if due {
                    state.wake_runners();
                }
            }
            Err(StoreError::Transition(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn fail_silent(state: &AppState) -> Result<(), StoreError> {
    let timeout = chrono::Duration::from_std(state.config.heartbeat_timeout).unwrap_or_default();
    for bot in state.store.silent_bots(now() - timeout).await? {
        tracing::warn!(bot = %bot.id, runner = ?bot.runner, "runner missed its heartbeats");
        let event = BotEventRequest::server(
            BotEventType::FatalError,
            Some(BotEventSubType::HeartbeatTimeout),
        );
        match state
            .store
            .record(Actor::System, &bot.id, vec![BotInput::Event(event)], None)
            .await
        {
            Ok(_) | Err(StoreError::Transition(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
