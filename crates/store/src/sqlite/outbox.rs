//! The outbox: inside the transaction that stores an event, one delivery row per matching
//! subscription, with the exact body that will be signed and sent. Commit means the event is
//! durable and its webhooks are owed; nothing is queued in a second step that could fail alone.

use meetwire_core::canonical::canonical_json;
use meetwire_core::payload::bot_envelope;
use meetwire_core::time::Timestamp;
use meetwire_core::trigger::Trigger;
use serde_json::{Map, Value};
use sqlx::{Row, SqliteConnection};

use super::subscriptions::trigger_mask;
use crate::error::Result;
use crate::model::{DeliveryStatus, StoreOptions};

/// The subscriptions that receive a bot's events: its own active bot-level ones if it has any
/// bot-level subscription at all, else the project's active project-level ones.
pub(super) struct Recipients {
    subscriptions: Vec<(String, i64)>,
}

impl Recipients {
    pub(super) async fn for_bot(
        conn: &mut SqliteConnection,
        project_id: &str,
        bot_id: &str,
    ) -> Result<Self> {
        let rows = sqlx::query(
            "SELECT id, triggers, is_active FROM webhook_subscriptions WHERE bot_id = ? ORDER BY seq",
        )
        .bind(bot_id)
        .fetch_all(&mut *conn)
        .await?;
        let rows = if rows.is_empty() {
            sqlx::query(
                "SELECT id, triggers, is_active FROM webhook_subscriptions \
                 WHERE project_id = ? AND bot_id IS NULL ORDER BY seq",
            )
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await?
        } else {
            rows
        };
        let mut subscriptions = Vec::with_capacity(rows.len());
        for row in rows {
            if row.try_get::<bool, _>("is_active")? {
                subscriptions.push((row.try_get("id")?, row.try_get("triggers")?));
            }
        }
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
pub(super) async fn enqueue(
    conn: &mut SqliteConnection,
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
            Some(stream) => has_pending(conn, stream).await?,
            None => false,
        };
        sqlx::query(
            "INSERT INTO deliveries (idempotency_key, project_id, subscription_id, bot_id, \
             record_seq, trigger, body, stream, status, max_attempts, next_attempt_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key)
        .bind(event.project_id)
        .bind(subscription_id)
        .bind(event.bot_id)
        .bind(event.record_seq)
        .bind(event.trigger.as_int())
        .bind(canonical_json(&envelope))
        .bind(&stream)
        .bind(DeliveryStatus::Pending.code())
        .bind(i64::from(options.max_attempts))
        .bind((!waiting).then(|| at.timestamp_micros()))
        .bind(at.timestamp_micros())
        .execute(&mut *conn)
        .await?;
        owed += 1;
    }
    Ok(owed)
}

/// Whether an earlier delivery of this stream is still pending (a new one must wait for it).
async fn has_pending(conn: &mut SqliteConnection, stream: &str) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM deliveries WHERE stream = ? AND status = 'pending' LIMIT 1",
    )
    .bind(stream)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}
