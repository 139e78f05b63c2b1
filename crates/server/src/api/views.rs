//! How stored objects look in API responses (Attendee's shapes; timestamps end in `Z`).

use meetwire_core::time::rest_timestamp;
use meetwire_store::{Bot, StoredRecord};
use serde_json::{json, Value};

/// A bot object: `id, metadata, meeting_url, state, events, transcription_state,
/// recording_state, join_at, deduplication_key`.
pub fn bot(bot: &Bot, events: &[StoredRecord]) -> Value {
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "type": e.payload["event_type"],
                "sub_type": e.payload["event_sub_type"],
                "created_at": rest_timestamp(&e.created_at),
            })
        })
        .collect();
    json!({
        "id": bot.id,
        "metadata": bot.metadata,
        "meeting_url": bot.meeting_url,
        "state": bot.state,
        "events": events,
        "transcription_state": bot.transcription_state,
        "recording_state": bot.recording_state,
        "join_at": bot.join_at.as_ref().map(rest_timestamp),
        "deduplication_key": bot.deduplication_key,
        "calendar_event_id": bot.calendar_event_id,
    })
}

/// A record in a REST listing: the webhook payload shape itself.
pub fn record(record: StoredRecord) -> Value {
    record.payload
}
