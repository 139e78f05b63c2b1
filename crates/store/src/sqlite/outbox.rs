//! The outbox: inside the transaction that stores an event, one delivery row per matching
//! subscription. Commit means the event is durable and its webhooks are owed; nothing is queued
//! in a second step that could fail alone.
//!
//! A bot event's body is not stored twice: its row holds an empty body (`RECORD_BODY`) and the
//! body is made again, byte for byte, from what it was made of — the key, the bot, the bot's
//! metadata and the record the event stored (`rebuilt_body`). The body was 324 of the 1,095
//! bytes a chat message's delivery took in the database. Bot metadata can change later, so a
//! change first writes out the bodies made with the old one (`bots::materialize_bodies`).

use meetwire_core::canonical::canonical_json;
use meetwire_core::payload::bot_envelope;
use meetwire_core::time::Timestamp;
use meetwire_core::trigger::Trigger;
use serde_json::{Map, Value};

use super::subscriptions::trigger_mask;
use crate::error::{Result, StoreError};
use crate::handoff::PreClaims;
use crate::model::{ClaimedDelivery, DeliveryStatus, StoreOptions};

/// The subscriptions that receive a bot's events: its own active bot-level ones if it has any
/// bot-level subscription at all, else the project's active project-level ones.
pub(super) struct Recipients {
    subscriptions: Vec<Recipient>,
}

struct Recipient {
    id: String,
    url: String,
    triggers: i64,
}

impl Recipients {
    pub(super) fn for_bot(
        db: &rusqlite::Connection,
        project_id: &str,
        bot_id: &str,
    ) -> Result<Self> {
        let mut stmt = db.prepare_cached(
            "SELECT id, url, triggers, is_active, bot_id IS NOT NULL FROM webhook_subscriptions \
             WHERE bot_id = ?1 OR (project_id = ?2 AND bot_id IS NULL) ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([bot_id, project_id], |row| {
                let recipient = Recipient {
                    id: row.get(0)?,
                    url: row.get(1)?,
                    triggers: row.get(2)?,
                };
                Ok((recipient, row.get::<_, bool>(3)?, row.get::<_, bool>(4)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let bot_level = rows.iter().any(|(_, _, own)| *own);
        let subscriptions = rows
            .into_iter()
            .filter(|(_, active, own)| *active && *own == bot_level)
            .map(|(recipient, _, _)| recipient)
            .collect();
        Ok(Recipients { subscriptions })
    }
}

/// One bot event about to be owed to its recipients.
pub(super) struct BotEvent<'a> {
    pub project_id: &'a str,
    pub bot_id: &'a str,
    pub bot_metadata: Option<&'a Map<String, Value>>,
    pub record_seq: i64,
    pub trigger: Trigger,
    pub data: &'a Value,
}

/// What enqueueing one event owes.
#[derive(Default)]
pub(super) struct Owed {
    pub deliveries: usize,
    /// Due at once but not pre-claimed (the dispatcher had no room, or none is listening).
    pub due_unclaimed: usize,
}

/// Inserts the deliveries owed for `event`. A delivery that is due at once is claimed for the
/// dispatcher in `claims` while it has room (see `handoff`).
pub(super) fn enqueue(
    db: &rusqlite::Connection,
    recipients: &Recipients,
    event: &BotEvent<'_>,
    at: &Timestamp,
    options: &StoreOptions,
    mut claims: Option<&mut PreClaims>,
) -> Result<Owed> {
    let bit = trigger_mask(&[event.trigger]);
    let mut owed = Owed::default();
    for recipient in &recipients.subscriptions {
        if recipient.triggers & bit == 0 {
            continue;
        }
        let subscription_id = &recipient.id;
        let stream = options.ordering.then_some(Stream {
            subscription_id,
            bot_id: event.bot_id,
        });
        let waiting = match &stream {
            Some(stream) => stream.has_pending(db)?,
            None => false,
        };
        let pre_claim = match claims.as_deref_mut() {
            Some(claims) if !waiting => claims.reserve().then_some(claims),
            _ => None,
        };
        let (next_attempt_at, claim_token) = match &pre_claim {
            Some(claims) => (
                Some(claims.lease_until.timestamp_micros()),
                Some(claims.token.as_str()),
            ),
            None => ((!waiting).then(|| at.timestamp_micros()), None),
        };
        let mut insert = db.prepare_cached(
            "INSERT INTO deliveries (project_id, subscription_id, bot_id, record_seq, trigger, \
             body, ordered, status, max_attempts, next_attempt_at, claim_token, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        insert.execute(rusqlite::params![
            event.project_id,
            subscription_id,
            event.bot_id,
            event.record_seq,
            event.trigger.as_int(),
            RECORD_BODY,
            stream.is_some().then_some(1),
            DeliveryStatus::Pending.code(),
            i64::from(options.max_attempts),
            next_attempt_at,
            claim_token,
            at.timestamp_micros(),
        ])?;
        if let Some(claims) = pre_claim {
            // Only a delivery handed over now needs its key and body made here; the others are
            // made from the row and the record when they are claimed.
            let seq = db.last_insert_rowid();
            let key = claims.keys.key(seq);
            let body = bot_body(
                &key,
                event.bot_id,
                event.bot_metadata,
                event.trigger,
                event.data,
            );
            let delivery = ClaimedDelivery {
                seq,
                claim_token: claims.token.clone(),
                idempotency_key: key,
                project_id: event.project_id.to_owned(),
                subscription_id: subscription_id.clone(),
                url: Some(recipient.url.clone()),
                subscription_active: true,
                body,
                attempts: 0,
                max_attempts: options.max_attempts,
                lease_until: claims.lease_until,
            };
            claims.claimed.push(delivery);
        } else if !waiting {
            owed.due_unclaimed += 1;
        }
        owed.deliveries += 1;
    }
    Ok(owed)
}

/// The stored body of a delivery whose body is made from its event's record.
pub(super) const RECORD_BODY: &str = "";

/// A bot event's webhook body: its envelope, canonical JSON.
fn bot_body(
    key: &str,
    bot_id: &str,
    metadata: Option<&Map<String, Value>>,
    trigger: Trigger,
    data: &Value,
) -> String {
    canonical_json(&bot_envelope(key, bot_id, metadata, trigger, data))
}

/// A bot's stored metadata (`bots.metadata`): an object, or `null` for none.
pub(super) fn parse_metadata(text: &str) -> Result<Option<Map<String, Value>>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(Value::Null) => Ok(None),
        _ => Err(StoreError::Corrupt("bot metadata".into())),
    }
}

/// The body `enqueue` made for a delivery stored with `RECORD_BODY`, from the stored parts:
/// the bot's metadata as stored then and the record's payload.
pub(super) fn rebuilt_body(
    key: &str,
    bot_id: &str,
    metadata: &str,
    trigger: i64,
    payload: &str,
) -> Result<String> {
    let trigger = Trigger::from_int(trigger)
        .ok_or_else(|| StoreError::Corrupt(format!("delivery trigger {trigger}")))?;
    let data: Value = serde_json::from_str(payload)
        .map_err(|e| StoreError::Corrupt(format!("record payload: {e}")))?;
    let metadata = parse_metadata(metadata)?;
    Ok(bot_body(key, bot_id, metadata.as_ref(), trigger, &data))
}

/// The ordered stream of a bot's deliveries to one subscription: its rows are marked
/// `ordered` and go out one at a time, oldest first.
pub(super) struct Stream<'a> {
    pub subscription_id: &'a str,
    pub bot_id: &'a str,
}

impl Stream<'_> {
    /// Whether an earlier delivery of this stream is still pending (a new one must wait for it).
    fn has_pending(&self, db: &rusqlite::Connection) -> Result<bool> {
        let mut stmt = db.prepare_cached(
            "SELECT 1 FROM deliveries WHERE subscription_id = ?1 AND bot_id = ?2 \
             AND status = 'pending' AND ordered = 1 LIMIT 1",
        )?;
        Ok(stmt.exists([self.subscription_id, self.bot_id])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body made again from the stored text of the record and metadata is the body that
    /// was sent: floats, large integers, escapes and non-ASCII text survive the round trip.
    #[test]
    fn a_rebuilt_body_is_the_body_enqueue_made() {
        let data = serde_json::json!({
            "text": "caf\u{e9} \"quoted\" \\ \n \u{1F600}", "confidence": 0.1 + 0.2,
            "timestamp_ms": 1_796_665_454_008_702_i64, "big": u64::MAX, "tiny": 1e-300,
            "nested": {"b": [1.5, -0.0, null, true], "a": {}}
        });
        let metadata = serde_json::json!({"customer": "ÅB", "n": "1"});
        let map = metadata.as_object().cloned();
        let made = bot_body(
            "k-1",
            "bot_x",
            map.as_ref(),
            Trigger::TranscriptUpdate,
            &data,
        );
        let rebuilt = rebuilt_body(
            "k-1",
            "bot_x",
            &metadata.to_string(),
            Trigger::TranscriptUpdate.as_int(),
            &data.to_string(),
        )
        .unwrap();
        assert_eq!(rebuilt, made);
        let none = bot_body("k-2", "bot_x", None, Trigger::ChatMessagesUpdate, &data);
        let rebuilt = rebuilt_body(
            "k-2",
            "bot_x",
            "null",
            Trigger::ChatMessagesUpdate.as_int(),
            &data.to_string(),
        )
        .unwrap();
        assert_eq!(rebuilt, none);
    }
}
