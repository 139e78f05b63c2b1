//! What runners report about a bot, and how each report becomes a stored record with its
//! webhook payload. Each record carries the runner's own id so that a retried batch stores
//! nothing twice; the store makes that id unique per bot.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::ids::{new_id, IdKind};
use crate::payload::{
    BotLog, ChatMessage, ChatRecipient, LogEntryType, LogLevel, ParticipantEvent,
    ParticipantEventType, StateChange, Transcription, Utterance, Word,
};
use crate::state::{
    reports_duration, transition, BotEventSubType, BotEventType, MachineState, TransitionError,
};
use crate::time::{webhook_timestamp, Timestamp};
use crate::trigger::Trigger;

/// Longest runner-chosen record id.
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// One record in a runner's batch, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunnerRecord {
    BotEvent(BotEventInput),
    Utterance(UtteranceInput),
    ChatMessage(ChatMessageInput),
    ParticipantEvent(ParticipantEventInput),
    Log(LogInput),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotEventInput {
    pub id: String,
    pub event_type: BotEventType,
    #[serde(default)]
    pub event_sub_type: Option<BotEventSubType>,
    #[serde(default)]
    pub event_metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtteranceInput {
    pub id: String,
    pub speaker_name: String,
    pub speaker_uuid: String,
    #[serde(default)]
    pub speaker_user_uuid: Option<String>,
    #[serde(default)]
    pub speaker_is_host: bool,
    pub timestamp_ms: i64,
    pub duration_ms: i64,
    pub transcript: String,
    #[serde(default)]
    pub words: Option<Vec<Word>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessageInput {
    pub id: String,
    pub to: ChatRecipient,
    pub text: String,
    pub timestamp_ms: i64,
    pub sender_name: String,
    pub sender_uuid: String,
    #[serde(default)]
    pub sender_user_uuid: Option<String>,
    #[serde(default)]
    pub additional_data: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantEventInput {
    pub id: String,
    pub participant_name: String,
    pub participant_uuid: String,
    #[serde(default)]
    pub participant_user_uuid: Option<String>,
    #[serde(default)]
    pub participant_is_host: bool,
    /// The bot's own participant: stored, never sent as a webhook.
    #[serde(default)]
    pub is_bot: bool,
    pub event_type: ParticipantEventType,
    #[serde(default)]
    pub event_data: Option<Map<String, Value>>,
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogInput {
    pub id: String,
    pub level: LogLevel,
    #[serde(default = "uncategorized")]
    pub entry_type: LogEntryType,
    pub message: String,
}

fn uncategorized() -> LogEntryType {
    LogEntryType::Uncategorized
}

/// The kinds of stored record; the REST listings select by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    BotEvent,
    Utterance,
    ChatMessage,
    ParticipantEvent,
    Log,
}

impl RecordKind {
    pub const fn code(self) -> &'static str {
        match self {
            RecordKind::BotEvent => "bot_event",
            RecordKind::Utterance => "utterance",
            RecordKind::ChatMessage => "chat_message",
            RecordKind::ParticipantEvent => "participant_event",
            RecordKind::Log => "log",
        }
    }
}

/// A record ready to store: its payload is the trigger's `data` object (and the REST shape).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub client_id: Option<String>,
    pub kind: RecordKind,
    /// The webhook this record fires, if any (none for empty utterances and the bot's own
    /// participant events).
    pub trigger: Option<Trigger>,
    pub payload: Value,
}

/// A record that cannot be accepted as sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record id must be 1 to {MAX_CLIENT_ID_LEN} characters")]
    BadClientId,
    #[error(transparent)]
    Transition(#[from] TransitionError),
}

impl RunnerRecord {
    /// The runner's id of this record.
    pub fn client_id(&self) -> &str {
        match self {
            RunnerRecord::BotEvent(r) => &r.id,
            RunnerRecord::Utterance(r) => &r.id,
            RunnerRecord::ChatMessage(r) => &r.id,
            RunnerRecord::ParticipantEvent(r) => &r.id,
            RunnerRecord::Log(r) => &r.id,
        }
    }

    /// Checks what can be checked without the bot's state.
    pub fn validate(&self) -> Result<(), RecordError> {
        let id = self.client_id();
        if id.is_empty() || id.chars().count() > MAX_CLIENT_ID_LEN {
            return Err(RecordError::BadClientId);
        }
        Ok(())
    }
}

/// Builds the stored record of a non-state report; state events go through [`apply_bot_event`].
pub fn media_record(record: RunnerRecord, now: &Timestamp) -> Option<NewRecord> {
    let client_id = Some(record.client_id().to_owned());
    let (kind, trigger, payload) = match record {
        RunnerRecord::BotEvent(_) => return None,
        RunnerRecord::Utterance(u) => {
            let trigger = (!u.transcript.trim().is_empty()).then_some(Trigger::TranscriptUpdate);
            let data = Utterance {
                speaker_name: u.speaker_name,
                speaker_uuid: u.speaker_uuid,
                speaker_user_uuid: u.speaker_user_uuid,
                speaker_is_host: u.speaker_is_host,
                timestamp_ms: u.timestamp_ms,
                duration_ms: u.duration_ms,
                transcription: Transcription {
                    transcript: u.transcript,
                    words: u.words,
                },
            };
            (RecordKind::Utterance, trigger, to_value(&data))
        }
        RunnerRecord::ChatMessage(c) => {
            let data = ChatMessage {
                id: new_id(IdKind::ChatMessage),
                to: c.to,
                text: c.text,
                timestamp: c.timestamp_ms.div_euclid(1000),
                timestamp_ms: c.timestamp_ms,
                sender_name: c.sender_name,
                sender_uuid: c.sender_uuid,
                sender_user_uuid: c.sender_user_uuid,
                additional_data: c.additional_data.unwrap_or_default(),
            };
            let trigger = Some(Trigger::ChatMessagesUpdate);
            (RecordKind::ChatMessage, trigger, to_value(&data))
        }
        RunnerRecord::ParticipantEvent(p) => {
            let trigger = (!p.is_bot).then_some(if p.event_type.is_speech() {
                Trigger::ParticipantSpeechStartStop
            } else {
                Trigger::ParticipantJoinLeave
            });
            let data = ParticipantEvent {
                id: new_id(IdKind::ParticipantEvent),
                participant_name: p.participant_name,
                participant_uuid: p.participant_uuid,
                participant_user_uuid: p.participant_user_uuid,
                participant_is_host: p.participant_is_host,
                event_type: p.event_type,
                event_data: p.event_data.unwrap_or_default(),
                timestamp_ms: p.timestamp_ms,
            };
            (RecordKind::ParticipantEvent, trigger, to_value(&data))
        }
        RunnerRecord::Log(l) => {
            let data = BotLog {
                id: new_id(IdKind::BotLog),
                level: l.level,
                entry_type: l.entry_type,
                message: l.message,
                created_at: webhook_timestamp(now),
            };
            (
                RecordKind::Log,
                Some(Trigger::BotLogsUpdate),
                to_value(&data),
            )
        }
    };
    Some(NewRecord {
        client_id,
        kind,
        trigger,
        payload,
    })
}

/// A state event to apply to a bot, from a runner or from the API.
#[derive(Debug, Clone, PartialEq)]
pub struct BotEventRequest {
    pub client_id: Option<String>,
    pub event_type: BotEventType,
    pub event_sub_type: Option<BotEventSubType>,
    pub event_metadata: Map<String, Value>,
}

impl From<BotEventInput> for BotEventRequest {
    fn from(e: BotEventInput) -> Self {
        BotEventRequest {
            client_id: Some(e.id),
            event_type: e.event_type,
            event_sub_type: e.event_sub_type,
            event_metadata: e.event_metadata.unwrap_or_default(),
        }
    }
}

impl BotEventRequest {
    /// An event the server itself raises (API calls, scheduler, heartbeat monitor).
    pub fn server(event_type: BotEventType, sub_type: Option<BotEventSubType>) -> Self {
        BotEventRequest {
            client_id: None,
            event_type,
            event_sub_type: sub_type,
            event_metadata: Map::new(),
        }
    }

    /// `join_requested` with the contract's `source` metadata.
    pub fn join_requested(source: &str) -> Self {
        let mut event = Self::server(BotEventType::JoinRequested, None);
        event
            .event_metadata
            .insert("source".into(), Value::String(source.into()));
        event
    }
}

/// The events of a user's request to leave: `leave_requested` (user_requested), and when no
/// runner holds a bot that is still joining, its exit too — nobody else would report it.
pub fn leave_events(state: crate::state::BotState, has_runner: bool) -> Vec<BotEventRequest> {
    let mut events = vec![BotEventRequest::server(
        BotEventType::LeaveRequested,
        Some(crate::state::BotEventSubType::UserRequested),
    )];
    if !has_runner && state == crate::state::BotState::Joining {
        events.push(BotEventRequest::server(BotEventType::LeftMeeting, None));
        events.push(BotEventRequest::server(
            BotEventType::PostProcessingCompleted,
            None,
        ));
    }
    events
}

/// Applies a state event to the bot's machine state: the new machine state and the record to
/// store, or the contract's refusal. `joined_since` is when the bot was first asked to join,
/// from which `bot_duration_seconds` is counted.
pub fn apply_bot_event(
    current: MachineState,
    event: BotEventRequest,
    now: &Timestamp,
    joined_since: Option<&Timestamp>,
) -> Result<(MachineState, NewRecord), TransitionError> {
    let next = transition(current, event.event_type, event.event_sub_type)?;
    let mut metadata = event.event_metadata;
    if reports_duration(next.state) {
        let seconds = joined_since.map_or(0, |t| (*now - *t).num_seconds().max(0));
        metadata.insert("bot_duration_seconds".into(), Value::from(seconds));
    }
    let data = StateChange {
        event_type: event.event_type,
        event_sub_type: event.event_sub_type,
        event_metadata: metadata,
        old_state: current.state,
        new_state: next.state,
        created_at: webhook_timestamp(now),
    };
    let record = NewRecord {
        client_id: event.client_id,
        kind: RecordKind::BotEvent,
        trigger: Some(Trigger::BotStateChange),
        payload: to_value(&data),
    };
    Ok((next, record))
}

fn to_value<T: serde::Serialize>(data: &T) -> Value {
    // These types hold only strings, integers, booleans and JSON maps: serialising cannot fail.
    serde_json::to_value(data).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::BotState;
    use crate::time::from_micros;
    use serde_json::json;

    fn parse(v: Value) -> Result<RunnerRecord, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        assert!(parse(
            json!({"kind": "log", "id": "1", "level": "info", "message": "m", "extra": 1})
        )
        .is_err());
        assert!(parse(json!({"kind": "nope", "id": "1"})).is_err());
        assert!(parse(json!({"kind": "bot_event", "id": "1", "event_type": "flying"})).is_err());
        let ok = parse(json!({"kind": "log", "id": "1", "level": "info", "message": "m"})).unwrap();
        assert_eq!(ok.client_id(), "1");
    }

    #[test]
    fn bot_participant_and_empty_utterance_fire_nothing() {
        let now = from_micros(1_000_000);
        let own = parse(
            json!({"kind": "participant_event", "id": "p", "participant_name": "Bot",
            "participant_uuid": "9", "is_bot": true, "event_type": "join", "timestamp_ms": 1}),
        )
        .unwrap();
        assert_eq!(media_record(own, &now).unwrap().trigger, None);
        let empty = parse(json!({"kind": "utterance", "id": "u", "speaker_name": "A",
            "speaker_uuid": "1", "timestamp_ms": 1, "duration_ms": 2, "transcript": "  "}))
        .unwrap();
        assert_eq!(media_record(empty, &now).unwrap().trigger, None);
        let speech = parse(
            json!({"kind": "participant_event", "id": "s", "participant_name": "A",
            "participant_uuid": "1", "event_type": "speech_start", "timestamp_ms": 1}),
        )
        .unwrap();
        let rec = media_record(speech, &now).unwrap();
        assert_eq!(rec.trigger, Some(Trigger::ParticipantSpeechStartStop));
        assert_eq!(rec.payload["event_data"], json!({}));
        assert!(rec.payload["id"].as_str().unwrap().starts_with("pe_"));
    }

    #[test]
    fn chat_timestamp_is_whole_seconds() {
        let now = from_micros(0);
        let chat = parse(
            json!({"kind": "chat_message", "id": "c", "to": "everyone", "text": "hi",
            "timestamp_ms": 1_732_712_345_678_i64, "sender_name": "A", "sender_uuid": "1"}),
        )
        .unwrap();
        let rec = media_record(chat, &now).unwrap();
        assert_eq!(rec.payload["timestamp"], json!(1_732_712_345));
        assert_eq!(rec.payload["sender_user_uuid"], Value::Null);
        assert_eq!(rec.payload["additional_data"], json!({}));
    }

    #[test]
    fn terminal_states_report_duration() {
        let since = from_micros(1_000_000);
        let now = from_micros(91_500_000);
        let current = MachineState::new(BotState::PostProcessing);
        let event = BotEventRequest::server(BotEventType::PostProcessingCompleted, None);
        let (next, rec) = apply_bot_event(current, event, &now, Some(&since)).unwrap();
        assert_eq!(next.state, BotState::Ended);
        assert_eq!(
            rec.payload["event_metadata"],
            json!({"bot_duration_seconds": 90})
        );
        assert_eq!(rec.payload["old_state"], json!("post_processing"));
        assert_eq!(
            rec.payload["created_at"],
            json!("1970-01-01T00:01:31.500000+00:00")
        );
    }

    #[test]
    fn join_requested_carries_its_source() {
        let now = from_micros(0);
        let (_, rec) = apply_bot_event(
            MachineState::new(BotState::Ready),
            BotEventRequest::join_requested("api"),
            &now,
            None,
        )
        .unwrap();
        assert_eq!(rec.payload["event_metadata"], json!({"source": "api"}));
        assert_eq!(rec.payload["event_sub_type"], Value::Null);
    }

    #[test]
    fn client_ids_are_bounded() {
        let long = "x".repeat(MAX_CLIENT_ID_LEN + 1);
        let rec =
            parse(json!({"kind": "log", "id": long, "level": "info", "message": "m"})).unwrap();
        assert_eq!(rec.validate(), Err(RecordError::BadClientId));
    }
}
