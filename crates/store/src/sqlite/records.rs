//! The write path of everything that happens to a bot: inside one transaction that holds the
//! database's write lock, read the bot's state, apply the state machine, store each record and
//! the bot's new state. This is the seam where owed webhooks are added (the outbox), so that an
//! acknowledged event and its deliveries commit together.

use std::collections::HashSet;

use meetwire_core::record::{
    apply_bot_event, media_record, BotEventRequest, NewRecord, RecordKind, RunnerRecord,
};
use meetwire_core::state::{
    media_states, BotEventType, BotState, MachineState, RecordingState, TranscriptionState,
};
use meetwire_core::time::{from_micros, now, Timestamp};
use serde_json::Value;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::outbox::{enqueue, BotEvent, Recipients};
use super::rows::{bot_from_row, machine_from_row, BOT_COLUMNS};
use crate::error::{Result, StoreError};
use crate::model::{Actor, BatchOutcome, BotInput, Page, PageRequest, StoreOptions, StoredRecord};
use crate::page;

/// Applies a batch to one bot on a connection that is inside a write transaction. On error
/// the caller drops the transaction, so nothing of the batch is kept.
pub(super) async fn apply_inputs(
    conn: &mut SqliteConnection,
    actor: Actor<'_>,
    bot_id: &str,
    inputs: Vec<BotInput>,
    cursor: Option<Value>,
    options: &StoreOptions,
) -> Result<BatchOutcome> {
    let sql = format!("SELECT {BOT_COLUMNS} FROM bots WHERE id = ?");
    let row = sqlx::query(&sql)
        .bind(bot_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    let bot = bot_from_row(&row)?;
    let allowed = match actor {
        Actor::Project(p) => bot.project_id == p,
        Actor::Runner(r) => bot.runner.as_deref() == Some(r),
        Actor::System => true,
    };
    if !allowed {
        return Err(StoreError::NotFound);
    }
    let machine_row = machine_from_row(&row)?;
    let machine = MachineState {
        state: bot.state,
        breakout_return: machine_row
            .breakout_return
            .as_deref()
            .map(str::parse::<BotState>)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
    };
    let mut bot_state = BotProgress {
        machine,
        joined_since: machine_row.join_requested_at.map(from_micros),
        recording: bot.recording_state,
        transcription: bot.transcription_state,
    };
    let at = now();
    let mut seen = HashSet::new();
    let mut outcome = BatchOutcome {
        stored: 0,
        duplicates: 0,
        state: bot.state,
        deliveries: 0,
    };
    let mut recipients = None;
    for input in inputs {
        let client_id = match &input {
            BotInput::Event(e) => e.client_id.clone(),
            BotInput::Record(r) => {
                r.validate()
                    .map_err(|e| StoreError::Invalid(e.to_string()))?;
                Some(r.client_id().to_owned())
            }
        };
        if let Some(id) = &client_id {
            if !seen.insert(id.clone()) || is_stored(&mut *conn, bot_id, id).await? {
                outcome.duplicates += 1;
                continue;
            }
        }
        let record = match input {
            BotInput::Event(e) => bot_state.apply(e, &at)?,
            BotInput::Record(RunnerRecord::BotEvent(e)) => bot_state.apply(e.into(), &at)?,
            BotInput::Record(other) => match media_record(other, &at) {
                Some(record) => record,
                None => continue,
            },
        };
        let seq = insert_record(&mut *conn, bot_id, &record, &at).await?;
        outcome.stored += 1;
        if let Some(trigger) = record.trigger {
            let recipients = match &mut recipients {
                Some(r) => r,
                None => {
                    recipients.insert(Recipients::for_bot(conn, &bot.project_id, bot_id).await?)
                }
            };
            let event = BotEvent {
                project_id: &bot.project_id,
                bot_id,
                bot_metadata: &bot.metadata,
                record_seq: seq,
                trigger,
                data: &record.payload,
            };
            outcome.deliveries += enqueue(conn, recipients, &event, &at, options).await?;
        }
    }
    let BotProgress {
        machine,
        joined_since,
        recording,
        transcription,
    } = bot_state;
    outcome.state = machine.state;
    sqlx::query(
        "UPDATE bots SET state = ?, breakout_return = ?, recording_state = ?, \
         transcription_state = ?, join_requested_at = ?, \
         runner_cursor = COALESCE(?, runner_cursor), updated_at = ? WHERE seq = ?",
    )
    .bind(machine.state.code())
    .bind(machine.breakout_return.map(|s| s.code()))
    .bind(recording.code())
    .bind(transcription.code())
    .bind(joined_since.map(|t| t.timestamp_micros()))
    .bind(cursor.map(|c| c.to_string()))
    .bind(at.timestamp_micros())
    .bind(machine_row.seq)
    .execute(&mut *conn)
    .await?;
    Ok(outcome)
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

async fn is_stored(conn: &mut SqliteConnection, bot_id: &str, client_id: &str) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM bot_records WHERE bot_id = ? AND client_id = ?")
            .bind(bot_id)
            .bind(client_id)
            .fetch_optional(conn)
            .await?;
    Ok(found.is_some())
}

async fn insert_record(
    conn: &mut SqliteConnection,
    bot_id: &str,
    record: &NewRecord,
    at: &Timestamp,
) -> Result<i64> {
    let seq = sqlx::query(
        "INSERT INTO bot_records (bot_id, kind, client_id, payload, created_at) \
         VALUES (?, ?, ?, ?, ?) RETURNING seq",
    )
    .bind(bot_id)
    .bind(record.kind.code())
    .bind(record.client_id.as_deref())
    .bind(record.payload.to_string())
    .bind(at.timestamp_micros())
    .fetch_one(conn)
    .await?
    .try_get(0)?;
    Ok(seq)
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
