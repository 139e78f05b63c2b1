//! The `data` object of each trigger (spec section 5), the same shapes the REST API returns, and
//! the envelopes that wrap them. These are serialised once when a record is stored, so what a
//! receiver gets is exactly what the API shows.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::{BotEventSubType, BotEventType, BotState};

/// `bot.state_change` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    pub event_type: BotEventType,
    pub event_sub_type: Option<BotEventSubType>,
    pub event_metadata: Map<String, Value>,
    pub old_state: BotState,
    pub new_state: BotState,
    pub created_at: String,
}

/// One word's timing inside an utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Word {
    pub word: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcription {
    pub transcript: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Word>>,
}

/// `transcript.update` data: one finalised utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    pub speaker_name: String,
    pub speaker_uuid: String,
    pub speaker_user_uuid: Option<String>,
    pub speaker_is_host: bool,
    pub timestamp_ms: i64,
    pub duration_ms: i64,
    pub transcription: Transcription,
}

/// Who a chat message was addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRecipient {
    OnlyBot,
    Everyone,
}

/// `chat_messages.update` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: String,
    pub to: ChatRecipient,
    pub text: String,
    pub timestamp: i64,
    pub timestamp_ms: i64,
    pub sender_name: String,
    pub sender_uuid: String,
    pub sender_user_uuid: Option<String>,
    pub additional_data: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantEventType {
    Join,
    Leave,
    SpeechStart,
    SpeechStop,
}

impl ParticipantEventType {
    pub fn is_speech(self) -> bool {
        matches!(self, Self::SpeechStart | Self::SpeechStop)
    }
}

/// `participant_events.join_leave` / `participant_events.speech_start_stop` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantEvent {
    pub id: String,
    pub participant_name: String,
    pub participant_uuid: String,
    pub participant_user_uuid: Option<String>,
    pub participant_is_host: bool,
    pub event_type: ParticipantEventType,
    pub event_data: Map<String, Value>,
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEntryType {
    Uncategorized,
    CouldNotEnableClosedCaptions,
    WebinarPanelistPromotion,
}

/// `bot_logs.update` data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotLog {
    pub id: String,
    pub level: LogLevel,
    pub entry_type: LogEntryType,
    pub message: String,
    pub created_at: String,
}

/// The body of a bot webhook, in Attendee's key order (the canonical form sorts it anyway):
/// `idempotency_key, bot_id, bot_metadata, trigger, data`.
pub fn bot_envelope(
    idempotency_key: &str,
    bot_id: &str,
    bot_metadata: Option<&Map<String, Value>>,
    trigger: crate::trigger::Trigger,
    data: &Value,
) -> Value {
    serde_json::json!({
        "idempotency_key": idempotency_key,
        "bot_id": bot_id,
        "bot_metadata": bot_metadata,
        "trigger": trigger.code(),
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn words_are_omitted_when_absent() {
        let u = Utterance {
            speaker_name: "Ann".into(),
            speaker_uuid: "1".into(),
            speaker_user_uuid: None,
            speaker_is_host: false,
            timestamp_ms: 5,
            duration_ms: 6,
            transcription: Transcription {
                transcript: "hi".into(),
                words: None,
            },
        };
        let v = serde_json::to_value(&u).unwrap();
        assert_eq!(v["transcription"], json!({"transcript": "hi"}));
        assert_eq!(v["speaker_user_uuid"], Value::Null);
    }

    #[test]
    fn enums_use_snake_case_codes() {
        assert_eq!(
            serde_json::to_value(ParticipantEventType::SpeechStart).unwrap(),
            json!("speech_start")
        );
        assert_eq!(
            serde_json::to_value(ChatRecipient::OnlyBot).unwrap(),
            json!("only_bot")
        );
        assert_eq!(
            serde_json::to_value(LogEntryType::CouldNotEnableClosedCaptions).unwrap(),
            json!("could_not_enable_closed_captions")
        );
    }
}
