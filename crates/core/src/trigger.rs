//! Webhook triggers (spec section 2). The API speaks codes; storage keeps the integers, which
//! are Attendee's, so that a row means the same thing to both.

use crate::state::{coded_enum, UnknownCode};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

coded_enum!(
    /// What kind of event a subscription wants.
    Trigger {
        BotStateChange => "bot.state_change",
        TranscriptUpdate => "transcript.update",
        ChatMessagesUpdate => "chat_messages.update",
        ParticipantJoinLeave => "participant_events.join_leave",
        CalendarEventsUpdate => "calendar.events_update",
        CalendarStateChange => "calendar.state_change",
        BotLogsUpdate => "bot_logs.update",
        ParticipantSpeechStartStop => "participant_events.speech_start_stop",
    }
);

impl Trigger {
    /// Attendee's integer for the trigger.
    pub const fn as_int(self) -> i64 {
        match self {
            Trigger::BotStateChange => 1,
            Trigger::TranscriptUpdate => 2,
            Trigger::ChatMessagesUpdate => 3,
            Trigger::ParticipantJoinLeave => 4,
            Trigger::CalendarEventsUpdate => 5,
            Trigger::CalendarStateChange => 6,
            Trigger::BotLogsUpdate => 9,
            Trigger::ParticipantSpeechStartStop => 10,
        }
    }

    pub fn from_int(i: i64) -> Option<Trigger> {
        Trigger::ALL.iter().copied().find(|t| t.as_int() == i)
    }

    /// Whether the trigger is about a calendar (delivered to project-level subscriptions only).
    pub fn is_calendar(self) -> bool {
        matches!(
            self,
            Trigger::CalendarEventsUpdate | Trigger::CalendarStateChange
        )
    }
}

/// Parses a trigger code with the contract's error message.
pub fn parse_trigger(code: &str) -> Result<Trigger, String> {
    code.parse::<Trigger>()
        .map_err(|_: UnknownCode| format!("Invalid webhook trigger type: {code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_and_codes_round_trip() {
        for &t in Trigger::ALL {
            assert_eq!(Trigger::from_int(t.as_int()), Some(t));
            assert_eq!(parse_trigger(t.code()), Ok(t));
        }
        assert_eq!(Trigger::from_int(7), None);
        assert_eq!(Trigger::from_int(8), None);
        assert_eq!(
            parse_trigger("bot.nope"),
            Err("Invalid webhook trigger type: bot.nope".to_owned())
        );
    }

    #[test]
    fn display_and_fromstr_agree() {
        let t = Trigger::from_str("transcript.update").unwrap();
        assert_eq!(format!("{t}"), "transcript.update");
        assert_eq!(
            serde_json::to_string(&Trigger::BotLogsUpdate).unwrap(),
            "\"bot_logs.update\""
        );
        let parsed: Trigger = serde_json::from_str("\"calendar.state_change\"").unwrap();
        assert!(parsed.is_calendar());
    }
}
