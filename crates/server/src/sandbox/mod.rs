//! The built-in sandbox runner: plays scripted meetings for bots whose meeting URL is
//! `sandbox://…`, through the same store path as an external runner. Its progress (the next
//! step) is saved with every batch it posts, and each record's id is derived from its step, so
//! after a restart it resumes its unfinished meetings and a replayed step stores nothing twice.

pub mod script;

use std::time::Duration;

use meetwire_core::record::{BotEventInput, BotEventRequest, RunnerRecord};
use meetwire_core::state::{BotEventSubType, BotEventType, BotState};
use meetwire_core::time::now;
use meetwire_store::{Actor, Bot, BotInput, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::app::AppState;
use crate::runner::report;
use script::SandboxMeeting;

/// The longest single wait of a sandbox script.
const MAX_STEP_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The sandbox's identity as a runner.
pub const SANDBOX_RUNNER: &str = "sandbox";

/// Where a sandbox meeting is in its script; saved as the runner cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Progress {
    iteration: u64,
    step: usize,
}

/// Claims sandbox bots and plays their meetings until shutdown.
pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut meetings = JoinSet::new();
    match state.store.runner_bots(SANDBOX_RUNNER).await {
        Ok(bots) => {
            for bot in bots {
                tracing::info!(bot = %bot.id, "resuming sandbox meeting");
                meetings.spawn(play(state.clone(), bot));
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list sandbox meetings to resume"),
    }
    loop {
        loop {
            match state.store.claim_bot(SANDBOX_RUNNER, true).await {
                Ok(Some(bot)) => {
                    meetings.spawn(play(state.clone(), bot));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "sandbox claim failed");
                    break;
                }
            }
        }
        while meetings.try_join_next().is_some() {}
        tokio::select! {
            _ = state.runner_wake.notified() => {}
            _ = tokio::time::sleep(state.config.poll_interval) => {}
            _ = shutdown.changed() => break,
        }
    }
    meetings.shutdown().await;
}

/// What to do after a wait or a post.
enum Next {
    Continue,
    Leave,
    Done,
}

fn next_for(state: BotState) -> Next {
    if state.is_terminal() {
        Next::Done
    } else if state == BotState::Leaving {
        Next::Leave
    } else {
        Next::Continue
    }
}

async fn play(state: AppState, bot: Bot) {
    let bot_id = bot.id.clone();
    if let Err(e) = play_script(&state, bot).await {
        tracing::warn!(bot = %bot_id, error = %e, "sandbox meeting failed");
        let fail = BotEventRequest::server(
            BotEventType::FatalError,
            Some(BotEventSubType::AttendeeInternalError),
        );
        let inputs = vec![BotInput::Event(fail)];
        if let Err(e) = state
            .store
            .record(Actor::System, &bot_id, inputs, None)
            .await
        {
            tracing::warn!(bot = %bot_id, error = %e, "could not mark sandbox bot failed");
        }
    }
}

async fn play_script(state: &AppState, bot: Bot) -> Result<(), StoreError> {
    let meeting = SandboxMeeting::from_meeting_url(&bot.meeting_url, bot.sandbox_script.as_ref())
        .map_err(StoreError::Invalid)?
        .ok_or_else(|| StoreError::Invalid("not a sandbox meeting".into()))?;
    let script = &meeting.script;
    let mut progress: Progress = bot
        .runner_cursor
        .as_ref()
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    loop {
        if progress.step >= script.steps.len() {
            match script.repeat_from {
                Some(from) => {
                    progress = Progress {
                        iteration: progress.iteration + 1,
                        step: from,
                    }
                }
                None => break,
            }
        }
        let step = &script.steps[progress.step];
        // A step's wait, held below a year: a script's long pause (`after_ms` is any u64) at a
        // slow speed would otherwise not fit a timer.
        let wait = Duration::try_from_secs_f64(step.after_ms as f64 / 1000.0 / meeting.speed)
            .map_or(MAX_STEP_WAIT, |wait| wait.min(MAX_STEP_WAIT));
        match wait_with_heartbeats(state, &bot.id, wait).await? {
            Next::Continue => {}
            Next::Leave => return leave(state, &bot.id).await,
            Next::Done => return Ok(()),
        }
        let id = format!("sandbox-{}-{}", progress.iteration, progress.step);
        let record = step
            .to_record(&id, now().timestamp_millis())
            .map_err(StoreError::Invalid)?;
        let next = Progress {
            step: progress.step + 1,
            ..progress
        };
        let cursor = serde_json::to_value(next).ok();
        match report(state, SANDBOX_RUNNER, &bot.id, vec![record], cursor).await {
            Ok(outcome) => match next_for(outcome.state) {
                Next::Continue => {}
                Next::Leave => return leave(state, &bot.id).await,
                Next::Done => return Ok(()),
            },
            // The bot moved on without us (asked to leave, or failed): follow its state.
            Err(StoreError::Transition(_)) => {
                let current = state.store.heartbeat(SANDBOX_RUNNER, &bot.id).await?;
                match next_for(current.state) {
                    Next::Leave => return leave(state, &bot.id).await,
                    Next::Done => return Ok(()),
                    Next::Continue => {
                        return Err(StoreError::Invalid(format!(
                            "script step {} is not allowed in state {}",
                            progress.step, current.state
                        )))
                    }
                }
            }
            Err(e) => return Err(e),
        }
        progress = next;
    }
    // The script ran out with the bot still in the meeting: stay until asked to leave.
    loop {
        match wait_with_heartbeats(state, &bot.id, Duration::from_secs(3600)).await? {
            Next::Continue => {}
            Next::Leave => return leave(state, &bot.id).await,
            Next::Done => return Ok(()),
        }
    }
}

/// Waits `total`, heartbeating often enough for the monitor, and stops early when the bot is
/// asked to leave or has finished.
async fn wait_with_heartbeats(
    state: &AppState,
    bot_id: &str,
    total: Duration,
) -> Result<Next, StoreError> {
    let beat = (state.config.heartbeat_timeout / 4).min(Duration::from_millis(500));
    let deadline = tokio::time::Instant::now() + total;
    loop {
        let bot = state.store.heartbeat(SANDBOX_RUNNER, bot_id).await?;
        let next = next_for(bot.state);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !matches!(next, Next::Continue) || left.is_zero() {
            return Ok(next);
        }
        tokio::time::sleep(left.min(beat)).await;
    }
}

/// Leaves the meeting as a runner does when told to: `left_meeting`, then post-processing.
async fn leave(state: &AppState, bot_id: &str) -> Result<(), StoreError> {
    let records = [
        ("sandbox-leave-left", BotEventType::LeftMeeting),
        ("sandbox-leave-done", BotEventType::PostProcessingCompleted),
    ]
    .into_iter()
    .map(|(id, event_type)| {
        RunnerRecord::BotEvent(BotEventInput {
            id: id.into(),
            event_type,
            event_sub_type: None,
            event_metadata: None,
        })
    })
    .collect();
    report(state, SANDBOX_RUNNER, bot_id, records, None).await?;
    Ok(())
}
