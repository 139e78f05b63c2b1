//! Bots sent to calendar events, kept in step with their events inside the transaction that
//! stores a sync: a bot that has not joined yet follows its event's new start and link, is
//! cancelled when its event is deleted (or loses its link, or its calendar is deleted), and a
//! calendar's `auto_join` rule sends bots to the events that have none. A cancellation is an
//! ordinary `fatal_error` through the state machine, so the user learns of it by the usual
//! `bot.state_change` webhook, stored in the same transaction as the change that caused it.

use meetwire_core::auto_join::is_sandbox_meeting;
use meetwire_core::record::BotEventRequest;
use meetwire_core::state::{BotEventSubType, BotEventType};
use meetwire_core::time::Timestamp;
use serde_json::Value;
use sqlx::SqliteConnection;

use super::bots;
use super::direct::with_direct;
use super::records::apply_inputs;
use crate::error::{Result, StoreError};
use crate::model::{Actor, BotInput, BotMeeting, Calendar, NewBot, StoreOptions};

/// The states of a bot that has not started joining, which a calendar may still change.
const NOT_JOINED: &str = "b.state IN ('scheduled', 'staged')";

/// Gives each waiting bot of a live event the event's start and meeting link; returns how
/// many moved.
pub(super) async fn follow_moves(
    conn: &mut SqliteConnection,
    calendar_id: &str,
    at: i64,
) -> Result<usize> {
    let moved: Vec<(String, i64, String)> = sqlx::query_as(&format!(
        "SELECT b.id, e.start_time, e.meeting_url FROM bots b \
         JOIN calendar_events e ON e.id = b.calendar_event_id \
         WHERE e.calendar_id = ? AND e.is_deleted = 0 AND e.meeting_url IS NOT NULL \
         AND {NOT_JOINED} AND (b.join_at IS NOT e.start_time OR b.meeting_url != e.meeting_url)"
    ))
    .bind(calendar_id)
    .fetch_all(&mut *conn)
    .await?;
    for (bot_id, start, meeting_url) in &moved {
        sqlx::query(
            "UPDATE bots SET join_at = ?, meeting_url = ?, is_sandbox = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(start)
        .bind(meeting_url)
        .bind(is_sandbox_meeting(meeting_url))
        .bind(at)
        .bind(bot_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(moved.len())
}

/// Which waiting bots of a calendar are cancelled.
#[derive(Clone, Copy)]
pub(super) enum Cancel {
    /// Those whose event was deleted or no longer has a meeting link.
    EventsGone,
    /// All of them: the calendar itself is being deleted.
    CalendarDeleted,
}

/// Cancels waiting bots (`fatal_error`, `meeting_not_found`, the reason in the event's
/// metadata); returns how many.
pub(super) async fn cancel(
    conn: &mut SqliteConnection,
    calendar_id: &str,
    which: Cancel,
    options: &StoreOptions,
) -> Result<usize> {
    let all = matches!(which, Cancel::CalendarDeleted);
    let doomed: Vec<(String, String, bool)> = sqlx::query_as(&format!(
        "SELECT b.id, e.id, e.is_deleted FROM bots b \
         JOIN calendar_events e ON e.id = b.calendar_event_id \
         WHERE e.calendar_id = ? AND {NOT_JOINED} \
         AND (? OR e.is_deleted = 1 OR e.meeting_url IS NULL) ORDER BY b.seq"
    ))
    .bind(calendar_id)
    .bind(all)
    .fetch_all(&mut *conn)
    .await?;
    for (bot_id, event_id, is_deleted) in &doomed {
        let reason = match (all, is_deleted) {
            (true, _) => "calendar_deleted",
            (false, true) => "calendar_event_deleted",
            (false, false) => "calendar_event_has_no_meeting_url",
        };
        let mut event = BotEventRequest::server(
            BotEventType::FatalError,
            Some(BotEventSubType::MeetingNotFound),
        );
        event.event_metadata.insert("reason".into(), reason.into());
        event
            .event_metadata
            .insert("calendar_event_id".into(), Value::String(event_id.clone()));
        with_direct(&mut *conn, |db| {
            apply_inputs(
                db,
                Actor::System,
                bot_id,
                vec![BotInput::Event(event)],
                None,
                options,
                None,
            )
        })
        .await?;
    }
    Ok(doomed.len())
}

/// Sends a bot to every live event of the calendar that matches its `auto_join` rule, has a
/// meeting link, has not ended, and has never had a bot; returns how many were created.
pub(super) async fn auto_join(
    conn: &mut SqliteConnection,
    calendar: &Calendar,
    at: Timestamp,
    options: &StoreOptions,
) -> Result<usize> {
    let Some(rule) = &calendar.auto_join else {
        return Ok(0);
    };
    let candidates: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT e.id, e.attendees, e.organizer FROM calendar_events e \
         WHERE e.calendar_id = ? AND e.is_deleted = 0 \
         AND e.meeting_url IS NOT NULL AND e.end_time > ? \
         AND NOT EXISTS (SELECT 1 FROM bots b WHERE b.calendar_event_id = e.id) \
         ORDER BY e.start_time",
    )
    .bind(&calendar.id)
    .bind(at.timestamp_micros())
    .fetch_all(&mut *conn)
    .await?;
    let mut created = 0;
    for (event_id, attendees, organizer) in candidates {
        let attendees: Value = serde_json::from_str(&attendees)
            .map_err(|e| StoreError::Corrupt(format!("calendar event attendees: {e}")))?;
        if !rule.matches(organizer.as_deref(), &attendees) {
            continue;
        }
        let new = NewBot {
            meeting: BotMeeting::CalendarEvent(event_id),
            bot_name: rule.bot_name().to_owned(),
            metadata: rule.metadata.clone(),
            deduplication_key: None,
            sandbox_script: None,
            webhooks: Vec::new(),
        };
        let project = &calendar.project_id;
        bots::insert(&mut *conn, project, new, options, "scheduler", at).await?;
        created += 1;
    }
    Ok(created)
}
