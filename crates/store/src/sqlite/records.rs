//! The write path of everything that happens to a bot: inside one transaction that holds the
//! database's write lock, read the bot's state, apply the state machine, store each record and
//! the bot's new state. This is the seam where owed webhooks are added (the outbox), so that an
//! acknowledged event and its deliveries commit together.

use std::collections::HashSet;

use meetwire_core::record::{
    apply_bot_event, leave_events, media_record, BotEventRequest, NewRecord, RecordKind,
    RunnerRecord,
};
use meetwire_core::state::{
    media_states, BotEventType, MachineState, RecordingState, TranscriptionState,
};
use meetwire_core::time::{from_micros, now, Timestamp};
use serde_json::Map;
use serde_json::Value;
use sqlx::{Row, SqlitePool};

use super::outbox::{enqueue, parse_metadata, BotEvent, Recipients};
use crate::error::{Result, StoreError};
use crate::handoff::PreClaims;
use crate::model::{Actor, BatchOutcome, BotInput, Page, PageRequest, StoreOptions, StoredRecord};
use crate::page;

/// The parts of a bot row the write path needs.
struct BotHead {
    project_id: String,
    runner: Option<String>,
    metadata: Option<Map<String, Value>>,
    machine: MachineState,
    recording: RecordingState,
    transcription: TranscriptionState,
    join_requested_at: Option<i64>,
    seq: i64,
}

fn parse<T: std::str::FromStr>(code: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    code.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

fn load_head(db: &rusqlite::Connection, bot_id: &str) -> Result<BotHead> {
    let mut stmt = db.prepare_cached(
        "SELECT project_id, runner, metadata, state, breakout_return, recording_state, \
         transcription_state, join_requested_at, seq FROM bots WHERE id = ?1",
    )?;
    let mut rows = stmt.query([bot_id])?;
    let row = rows.next()?.ok_or(StoreError::NotFound)?;
    let metadata = parse_metadata(&row.get::<_, String>("metadata")?)?;
    let breakout: Option<String> = row.get("breakout_return")?;
    Ok(BotHead {
        project_id: row.get("project_id")?,
        runner: row.get("runner")?,
        metadata,
        machine: MachineState {
            state: parse(&row.get::<_, String>("state")?)?,
            breakout_return: breakout.as_deref().map(parse).transpose()?,
        },
        recording: parse(&row.get::<_, String>("recording_state")?)?,
        transcription: parse(&row.get::<_, String>("transcription_state")?)?,
        join_requested_at: row.get("join_requested_at")?,
        seq: row.get("seq")?,
    })
}

/// Applies a batch to one bot on a connection that is inside a write transaction. A refused
/// batch (not found, invalid, a transition the machine forbids) is refused before anything is
/// written; any other error is the database's, and the caller rolls the transaction back.
pub(super) fn apply_inputs(
    db: &rusqlite::Connection,
    actor: Actor<'_>,
    bot_id: &str,
    inputs: Vec<BotInput>,
    cursor: Option<Value>,
    options: &StoreOptions,
    mut claims: Option<&mut PreClaims>,
) -> Result<BatchOutcome> {
    let head = load_head(db, bot_id)?;
    let allowed = match actor {
        Actor::Project(p) => head.project_id == p,
        Actor::Runner(r) => head.runner.as_deref() == Some(r),
        Actor::System => true,
    };
    if !allowed {
        return Err(StoreError::NotFound);
    }
    let mut bot_state = BotProgress {
        machine: head.machine,
        joined_since: head.join_requested_at.map(from_micros),
        recording: head.recording,
        transcription: head.transcription,
    };
    let at = now();
    let mut seen = HashSet::new();
    let mut outcome = BatchOutcome {
        stored: 0,
        duplicates: 0,
        state: head.machine.state,
        deliveries: 0,
        due_unclaimed: 0,
    };
    // First decide everything (duplicates, validation, the state machine) without writing, so
    // a refused batch leaves nothing to undo and the group commit needs no savepoints.
    let mut records = Vec::with_capacity(inputs.len());
    let mut delete_data = false;
    for input in inputs {
        let client_id = match &input {
            BotInput::Event(e) => e.client_id.clone(),
            BotInput::Leave => {
                let has_runner = head.runner.is_some();
                for event in leave_events(bot_state.machine.state, has_runner) {
                    records.push(bot_state.apply(event, &at)?);
                }
                continue;
            }
            BotInput::DeleteData => {
                let event = BotEventRequest::server(BotEventType::DataDeleted, None);
                records.push(bot_state.apply(event, &at)?);
                delete_data = true;
                continue;
            }
            BotInput::Record(r) => {
                r.validate()
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                Some(r.client_id().to_owned())
            }
        };
        if let Some(id) = &client_id {
            if !seen.insert(id.clone()) || is_stored(db, bot_id, id)? {
                outcome.duplicates += 1;
                continue;
            }
        }
        let record = match input {
            BotInput::Event(e) => bot_state.apply(e, &at)?,
            BotInput::Leave | BotInput::DeleteData => continue,
            BotInput::Record(RunnerRecord::BotEvent(e)) => bot_state.apply(e.into(), &at)?,
            BotInput::Record(other) => match media_record(other, &at) {
                Some(record) => record,
                None => continue,
            },
        };
        records.push(record);
    }
    if delete_data {
        refuse_while_media_owed(db, bot_id)?;
    }
    // Then write: from here on only a database failure can stop the batch.
    if delete_data {
        delete_media(db, bot_id)?;
    }
    let mut recipients = None;
    for record in &records {
        let seq = insert_record(db, bot_id, record, &at)?;
        outcome.stored += 1;
        if let Some(trigger) = record.trigger {
            let recipients = match &mut recipients {
                Some(r) => r,
                None => recipients.insert(Recipients::for_bot(db, &head.project_id, bot_id)?),
            };
            let event = BotEvent {
                project_id: &head.project_id,
                bot_id,
                bot_metadata: head.metadata.as_ref(),
                record_seq: seq,
                trigger,
                data: &record.payload,
            };
            let owed = enqueue(db, recipients, &event, &at, options, claims.as_deref_mut())?;
            outcome.deliveries += owed.deliveries;
            outcome.due_unclaimed += owed.due_unclaimed;
        }
    }
    let BotProgress {
        machine,
        joined_since,
        recording,
        transcription,
    } = bot_state;
    outcome.state = machine.state;
    // Most batches (talk, chat) leave the bot's row as it was: don't rewrite it for nothing.
    let unchanged = machine == head.machine
        && cursor.is_none()
        && (recording, transcription) == (head.recording, head.transcription)
        && joined_since.map(|t| t.timestamp_micros()) == head.join_requested_at;
    if unchanged {
        return Ok(outcome);
    }
    db.prepare_cached(
        "UPDATE bots SET state = ?1, breakout_return = ?2, recording_state = ?3, \
         transcription_state = ?4, join_requested_at = ?5, \
         runner_cursor = COALESCE(?6, runner_cursor), updated_at = ?7 WHERE seq = ?8",
    )?
    .execute(rusqlite::params![
        machine.state.code(),
        machine.breakout_return.map(|s| s.code()),
        recording.code(),
        transcription.code(),
        joined_since.map(|t| t.timestamp_micros()),
        cursor.map(|c| c.to_string()),
        at.timestamp_micros(),
        head.seq,
    ])?;
    Ok(outcome)
}

/// The deliveries made from a bot's records other than its state events (what deleting its
/// data deletes), as a subquery of `seq`s.
const MEDIA_DELIVERIES: &str = "SELECT d.seq FROM deliveries d \
     JOIN bot_records r ON r.seq = d.record_seq WHERE d.bot_id = ?1 AND r.kind != 'bot_event'";

/// How many webhooks made from a bot's recorded data are still owed.
pub(super) fn media_owed(db: &rusqlite::Connection, bot_id: &str) -> Result<i64> {
    Ok(db
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' \
             AND seq IN ({MEDIA_DELIVERIES})"
        ))?
        .query_row([bot_id], |row| row.get(0))?)
}

/// Refuses to delete a bot's data while a webhook made from it is still owed.
fn refuse_while_media_owed(db: &rusqlite::Connection, bot_id: &str) -> Result<()> {
    let pending = media_owed(db, bot_id)?;
    if pending > 0 {
        return Err(StoreError::Invalid(format!(
            "The bot's data cannot be deleted while {pending} webhook deliveries made from it \
             are pending; try again once they have finished"
        )));
    }
    Ok(())
}

/// Deletes a bot's records other than its state events, with the (finished) deliveries made
/// from them and their attempts.
pub(super) fn delete_media(db: &rusqlite::Connection, bot_id: &str) -> Result<()> {
    db.prepare_cached(&format!(
        "DELETE FROM delivery_attempts WHERE delivery_seq IN ({MEDIA_DELIVERIES})"
    ))?
    .execute([bot_id])?;
    db.prepare_cached(&format!(
        "DELETE FROM deliveries WHERE seq IN ({MEDIA_DELIVERIES})"
    ))?
    .execute([bot_id])?;
    db.prepare_cached("DELETE FROM bot_records WHERE bot_id = ?1 AND kind != 'bot_event'")?
        .execute([bot_id])?;
    Ok(())
}

/// The bot's state-machine fields as a batch moves them along.
struct BotProgress {
    machine: MachineState,
    joined_since: Option<Timestamp>,
    recording: RecordingState,
    transcription: TranscriptionState,
}

impl BotProgress {
    fn apply(&mut self, event: BotEventRequest, at: &Timestamp) -> Result<NewRecord> {
        let is_join = event.event_type == BotEventType::JoinRequested;
        let (next, record) = apply_bot_event(self.machine, event, at, self.joined_since.as_ref())?;
        if is_join && self.joined_since.is_none() {
            self.joined_since = Some(*at);
        }
        (self.recording, self.transcription) =
            media_states(next.state, self.recording, self.transcription);
        self.machine = next;
        Ok(record)
    }
}

fn is_stored(db: &rusqlite::Connection, bot_id: &str, client_id: &str) -> Result<bool> {
    let mut stmt =
        db.prepare_cached("SELECT 1 FROM bot_records WHERE bot_id = ?1 AND client_id = ?2")?;
    Ok(stmt.exists([bot_id, client_id])?)
}

fn insert_record(
    db: &rusqlite::Connection,
    bot_id: &str,
    record: &NewRecord,
    at: &Timestamp,
) -> Result<i64> {
    let mut stmt = db.prepare_cached(
        "INSERT INTO bot_records (bot_id, kind, client_id, payload, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    stmt.execute(rusqlite::params![
        bot_id,
        record.kind.code(),
        record.client_id.as_deref(),
        record.payload.to_string(),
        at.timestamp_micros(),
    ])?;
    Ok(db.last_insert_rowid())
}

pub(super) async fn list(
    pool: &SqlitePool,
    project_id: &str,
    bot_id: &str,
    kind: RecordKind,
    page: PageRequest,
) -> Result<Page<StoredRecord>> {
    let owner: Option<String> = sqlx::query_scalar("SELECT project_id FROM bots WHERE id = ?")
        .bind(bot_id)
        .fetch_optional(pool)
        .await?;
    if owner.as_deref() != Some(project_id) {
        return Err(StoreError::NotFound);
    }
    let (condition, order) = page::seq_bounds(&page, false);
    let sql = format!(
        "SELECT seq, payload, created_at FROM bot_records \
         WHERE bot_id = ? AND kind = ? AND {condition} ORDER BY {order} LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(bot_id)
        .bind(kind.code())
        .bind(page::seq_start(&page, false))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(pool)
        .await?;
    let records = rows
        .iter()
        .map(|row| {
            let payload: String = row.try_get("payload")?;
            Ok(StoredRecord {
                seq: row.try_get("seq")?,
                payload: serde_json::from_str(&payload)
                    .map_err(|e| StoreError::Corrupt(format!("record payload: {e}")))?,
                created_at: from_micros(row.try_get("created_at")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(page::finish(records, &page, |r| r.seq))
}
