//! The runner side of a bot's life, shared by the runner HTTP API and the built-in sandbox so
//! that both take exactly the same path into the event store.

use meetwire_core::record::RunnerRecord;
use meetwire_store::{Actor, BatchOutcome, Bot, BotInput, Result};
use serde_json::{json, Value};

use crate::app::AppState;

/// Stores a batch of runner records for a bot the runner holds.
pub async fn report(
    state: &AppState,
    runner: &str,
    bot_id: &str,
    records: Vec<RunnerRecord>,
    cursor: Option<Value>,
) -> Result<BatchOutcome> {
    let inputs = records.into_iter().map(BotInput::Record).collect();
    state
        .store
        .record(Actor::Runner(runner), bot_id, inputs, cursor)
        .await
}

/// What a runner is told about a bot it holds: enough to join, and whether to leave.
pub fn runner_view(bot: &Bot) -> Value {
    json!({
        "id": bot.id,
        "meeting_url": bot.meeting_url,
        "bot_name": bot.bot_name,
        "metadata": bot.metadata,
        "state": bot.state,
        "leave_requested": leave_requested(bot.state),
        "cursor": bot.runner_cursor,
    })
}

/// A runner should leave the meeting once the bot is `leaving`.
pub fn leave_requested(state: meetwire_core::state::BotState) -> bool {
    state == meetwire_core::state::BotState::Leaving
}
