//! The outbox: inside the transaction that stores an event, one delivery row per matching
//! subscription, with the exact body that will be signed and sent. Commit means the event is
//! durable and its webhooks are owed; nothing is queued in a second step that could fail alone.

use meetwire_core::canonical::canonical_json;
use meetwire_core::payload::bot_envelope;
use meetwire_core::time::Timestamp;
use meetwire_core::trigger::Trigger;
use serde_json::{Map, Value};

use super::subscriptions::trigger_mask;
use crate::error::Result;
use crate::model::{DeliveryStatus, StoreOptions};

/// The subscriptions that receive a bot's events: its own active bot-level ones if it has any
/// bot-level subscription at all, else the project's active project-level ones.
pub(super) struct Recipients {
    subscriptions: Vec<(String, i64)>,
}

impl Recipients {
    pub(super) fn for_bot(
        db: &rusqlite::Connection,
        project_id: &str,
        bot_id: &str,
    ) -> Result<Self> {
        let mut stmt = db.prepare_cached(
            "SELECT id, triggers, is_active, bot_id IS NOT NULL FROM webhook_subscriptions \
             WHERE bot_id = ?1 OR (project_id = ?2 AND bot_id IS NULL) ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([bot_id, project_id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let bot_level = rows.iter().any(|(_, _, _, own)| *own);
        let subscriptions = rows
            .into_iter()
            .filter(|(_, _, active, own)| *active && *own == bot_level)
            .map(|(id, triggers, _, _)| (id, triggers))
            .collect();
        Ok(Recipients { subscriptions })
    }
}

/// One bot event about to be owed to its recipients.
pub(super) struct BotEvent<'a> {
    pub project_id: &'a str,
    pub bot_id: &'a str,
    pub bot_metadata: &'a Map<String, Value>,
    pub record_seq: i64,
    pub trigger: Trigger,
    pub data: &'a Value,
}

/// Inserts the deliveries owed for `event`; returns how many.
pub(super) fn enqueue(
    db: &rusqlite::Connection,
    recipients: &Recipients,
    event: &BotEvent<'_>,
    at: &Timestamp,
    options: &StoreOptions,
) -> Result<usize> {
    let bit = trigger_mask(&[event.trigger]);
    let mut owed = 0;
    for (subscription_id, triggers) in &recipients.subscriptions {
        if triggers & bit == 0 {
            continue;
        }
        let key = uuid::Uuid::new_v4().to_string();
        let envelope = bot_envelope(
            &key,
            event.bot_id,
            event.bot_metadata,
            event.trigger,
            event.data,
        );
        let stream = options
            .ordering
            .then(|| format!("{subscription_id}:{}", event.bot_id));
        let waiting = match &stream {
            Some(stream) => has_pending(db, stream)?,
            None => false,
        };
        let mut insert = db.prepare_cached(
            "INSERT INTO deliveries (idempotency_key, project_id, subscription_id, bot_id, \
             record_seq, trigger, body, stream, status, max_attempts, next_attempt_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        insert.execute(rusqlite::params![
            key,
            event.project_id,
            subscription_id,
            event.bot_id,
            event.record_seq,
            event.trigger.as_int(),
            canonical_json(&envelope),
            stream,
            DeliveryStatus::Pending.code(),
            i64::from(options.max_attempts),
            (!waiting).then(|| at.timestamp_micros()),
            at.timestamp_micros(),
        ])?;
        owed += 1;
    }
    Ok(owed)
}

/// Whether an earlier delivery of this stream is still pending (a new one must wait for it).
fn has_pending(db: &rusqlite::Connection, stream: &str) -> Result<bool> {
    let mut stmt = db.prepare_cached(
        "SELECT 1 FROM deliveries WHERE stream = ?1 AND status = 'pending' LIMIT 1",
    )?;
    Ok(stmt.exists([stream])?)
}
