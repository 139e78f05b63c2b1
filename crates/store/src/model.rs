//! The objects the store reads and writes, in domain types (not rows).

use meetwire_core::record::{BotEventRequest, RunnerRecord};
use meetwire_core::state::{BotState, RecordingState, TranscriptionState};
use meetwire_core::time::Timestamp;
use serde_json::{Map, Value};

/// A project just created, with its first API key in clear (shown once, stored hashed).
#[derive(Debug, Clone)]
pub struct CreatedProject {
    pub project_id: String,
    pub api_key: String,
}

/// A webhook secret as stored: sealed bytes that only the server's key opens.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub sealed: Vec<u8>,
    pub created_at: Timestamp,
    /// When a rotated-out secret stops signing; `None` for the active secret.
    pub expires_at: Option<Timestamp>,
}

/// A bot as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Bot {
    pub id: String,
    pub project_id: String,
    pub meeting_url: String,
    pub bot_name: String,
    pub metadata: Map<String, Value>,
    pub deduplication_key: Option<String>,
    pub join_at: Option<Timestamp>,
    pub state: BotState,
    pub recording_state: RecordingState,
    pub transcription_state: TranscriptionState,
    pub is_sandbox: bool,
    pub sandbox_script: Option<Value>,
    pub runner: Option<String>,
    pub runner_cursor: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a new bot is made of; ids and states are the store's to set.
#[derive(Debug, Clone)]
pub struct NewBot {
    pub meeting_url: String,
    pub bot_name: String,
    pub metadata: Map<String, Value>,
    pub deduplication_key: Option<String>,
    /// A future time makes the bot `scheduled`; otherwise it is asked to join at once.
    pub join_at: Option<Timestamp>,
    pub is_sandbox: bool,
    pub sandbox_script: Option<Value>,
}

/// A change to a bot's user-editable fields.
#[derive(Debug, Clone, Default)]
pub struct BotPatch {
    pub metadata: Option<Map<String, Value>>,
    pub join_at: Option<Timestamp>,
}

/// Filters of the bot list.
#[derive(Debug, Clone, Default)]
pub struct BotFilter {
    pub meeting_url: Option<String>,
    pub deduplication_key: Option<String>,
    pub states: Vec<BotState>,
}

/// Who is acting on a bot: the access rule differs.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A user of this project (API key).
    Project(&'a str),
    /// The runner that claimed the bot.
    Runner(&'a str),
    /// meetwire itself (scheduler, heartbeat monitor).
    System,
}

/// One thing that happened to a bot.
#[derive(Debug, Clone)]
pub enum BotInput {
    Event(BotEventRequest),
    Record(RunnerRecord),
}

/// The result of storing a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub stored: usize,
    /// Records whose runner id was already stored (a retried batch): skipped.
    pub duplicates: usize,
    pub state: BotState,
}

/// A stored record: a state event, utterance, chat message, participant event or log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub seq: i64,
    pub payload: Value,
    pub created_at: Timestamp,
}

/// A position in a list, for cursor pagination: rows strictly after (or before) `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub seq: i64,
    /// Walk backwards (the "previous" link).
    pub backwards: bool,
}

/// One page: items in list order, and the cursors of the neighbouring pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
    pub previous: Option<Cursor>,
}
