//! Calendars (spec sections 1, 2, 5): the platforms a calendar syncs from, its connection
//! state, the `data` of both calendar triggers, the calendar envelope, and finding the meeting
//! link in an event's text. Pure: the providers' HTTP lives in the server.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::{coded_enum, UnknownCode};
use crate::time::{rest_timestamp, Timestamp};
use crate::trigger::Trigger;

coded_enum!(
    /// Where a calendar's events come from.
    Platform {
        Google => "google",
        Microsoft => "microsoft",
        Ical => "ical",
    }
);

coded_enum!(
    /// Whether meetwire can read the calendar.
    CalendarState {
        Connected => "connected",
        Disconnected => "disconnected",
    }
);

/// Why a calendar is disconnected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionFailure {
    pub error: String,
    /// When it failed (REST form, `…Z`).
    pub timestamp: String,
}

/// The `data` of `calendar.events_update` and `calendar.state_change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarStatus {
    pub state: CalendarState,
    pub connection_failure_data: Option<ConnectionFailure>,
    pub last_successful_sync_at: Option<String>,
    pub last_attempted_sync_at: Option<String>,
}

impl CalendarStatus {
    pub fn new(
        state: CalendarState,
        failure: Option<(&str, &Timestamp)>,
        last_successful_sync_at: Option<&Timestamp>,
        last_attempted_sync_at: Option<&Timestamp>,
    ) -> Self {
        CalendarStatus {
            state,
            connection_failure_data: failure.map(|(error, at)| ConnectionFailure {
                error: error.to_owned(),
                timestamp: rest_timestamp(at),
            }),
            last_successful_sync_at: last_successful_sync_at.map(rest_timestamp),
            last_attempted_sync_at: last_attempted_sync_at.map(rest_timestamp),
        }
    }
}

/// The body of a calendar webhook, in Attendee's key order (the canonical form sorts it):
/// `idempotency_key, calendar_id, calendar_deduplication_key, calendar_metadata, trigger, data`.
pub fn calendar_envelope(
    idempotency_key: &str,
    calendar_id: &str,
    deduplication_key: Option<&str>,
    metadata: &Map<String, Value>,
    trigger: Trigger,
    data: &Value,
) -> Value {
    serde_json::json!({
        "idempotency_key": idempotency_key,
        "calendar_id": calendar_id,
        "calendar_deduplication_key": deduplication_key,
        "calendar_metadata": metadata,
        "trigger": trigger.code(),
        "data": data,
    })
}

/// Hosts whose links are meetings a bot can join, with the path a meeting link has there.
const MEETING_HOSTS: &[(&str, &str)] = &[
    ("zoom.us", "/j/"),
    ("zoom.us", "/my/"),
    ("meet.google.com", "/"),
    ("teams.microsoft.com", "/l/meetup-join/"),
    ("teams.live.com", "/meet/"),
    ("webex.com", "/meet/"),
    ("webex.com", "/join/"),
];

/// The first meeting link in `texts` (an event's conference data, location, description, in
/// that order): a Zoom, Google Meet, Teams or Webex URL, or a `sandbox://` meeting.
pub fn find_meeting_url<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<String> {
    texts.into_iter().find_map(|text| {
        candidates(text)
            .find(|url| is_meeting_url(url))
            .map(str::to_owned)
    })
}

/// Every `https://…` or `sandbox://…` run of characters in `text`, up to the first character
/// that cannot be part of a URL written in prose or HTML.
fn candidates(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let start = match (rest.find("https://"), rest.find("sandbox://")) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return None,
        };
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']'))
            .unwrap_or(tail.len());
        let found = tail[..end].trim_end_matches(['.', ',', ';']);
        rest = &tail[end.max(1)..];
        if !found.is_empty() {
            return Some(found);
        }
    })
}

fn is_meeting_url(candidate: &str) -> bool {
    if let Some(scenario) = candidate.strip_prefix("sandbox://") {
        return !scenario.is_empty();
    }
    let Ok(url) = url::Url::parse(candidate) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    MEETING_HOSTS.iter().any(|(domain, path)| {
        (host == *domain || host.ends_with(&format!(".{domain}")))
            && url.path().starts_with(path)
            && url.path().len() > path.len()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::from_micros;

    #[test]
    fn meeting_links_are_found_in_prose_and_html() {
        let description =
            "Agenda: <a href=\"https://us02web.zoom.us/j/8312345678?pwd=abc\">join</a>.";
        assert_eq!(
            find_meeting_url([description]).as_deref(),
            Some("https://us02web.zoom.us/j/8312345678?pwd=abc")
        );
        assert_eq!(
            find_meeting_url(["Room 4", "Call: https://meet.google.com/abc-defg-hij."]).as_deref(),
            Some("https://meet.google.com/abc-defg-hij")
        );
        assert_eq!(
            find_meeting_url(["sandbox://standup?speed=20 (test)"]).as_deref(),
            Some("sandbox://standup?speed=20")
        );
        assert_eq!(
            find_meeting_url(["see https://example.com/j/1 and https://zoom.us/"]),
            None,
            "not a meeting host, and a host without a meeting path"
        );
        assert_eq!(find_meeting_url(["https://", "sandbox://"]), None);
    }

    #[test]
    fn the_calendar_envelope_and_status_follow_the_contract() {
        let at = from_micros(1_735_732_800_000_000);
        let status = CalendarStatus::new(
            CalendarState::Disconnected,
            Some(("invalid_grant", &at)),
            None,
            Some(&at),
        );
        let data = serde_json::to_value(&status).unwrap();
        assert_eq!(
            data,
            serde_json::json!({
                "state": "disconnected",
                "connection_failure_data": {"error": "invalid_grant", "timestamp": "2025-01-01T12:00:00.000000Z"},
                "last_successful_sync_at": null,
                "last_attempted_sync_at": "2025-01-01T12:00:00.000000Z",
            })
        );
        let envelope = calendar_envelope(
            "k",
            "cal_1",
            None,
            &Map::new(),
            Trigger::CalendarStateChange,
            &data,
        );
        assert_eq!(envelope["calendar_deduplication_key"], Value::Null);
        assert_eq!(envelope["trigger"], "calendar.state_change");
        assert_eq!(envelope["calendar_metadata"], serde_json::json!({}));
    }
}
