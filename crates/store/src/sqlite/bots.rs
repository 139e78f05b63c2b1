//! Bots: creation (with the first `join_requested` in the same transaction), reads scoped to a
//! project, user edits, and the runner side: claims, heartbeats, and finding silent runners.

use meetwire_core::auto_join::is_sandbox_meeting;
use meetwire_core::delivery_key::DeliveryKeyCipher;
use meetwire_core::ids::{new_id, IdKind};
use meetwire_core::record::BotEventRequest;
use meetwire_core::state::{BotState, RecordingState, TranscriptionState};
use meetwire_core::time::{from_micros, now, Timestamp};
use serde_json::Value;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::deliveries::{delivery_key, newest_delivery_seq};
use super::direct::with_direct;
use super::outbox::{rebuilt_body, RECORD_BODY};
use super::records::apply_inputs;
use super::rows::{bot_from_row, BOT_COLUMNS};
use super::subscriptions;
use crate::error::{Result, StoreError};
use crate::model::{
    Actor, Bot, BotFilter, BotInput, BotMeeting, BotPatch, NewBot, Page, PageRequest, StoreOptions,
};
use crate::page;

/// The states in which a bot holds its deduplication key (as the partial unique index says).
const DEDUP_CONFLICT: &str = "Deduplication key already in use by an active bot";

/// Creates a bot (and its first event's deliveries); returns it with the newest delivery row
/// once committed, which this commit's fsync made durable with every row before it.
pub(super) async fn create(
    pool: &SqlitePool,
    project_id: &str,
    new: NewBot,
    options: &StoreOptions,
) -> Result<(Bot, i64)> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let id = insert(&mut tx, project_id, new, options, "api", now()).await?;
    let bot = fetch(&mut tx, &id).await?;
    let newest_seq = newest_delivery_seq(&mut tx).await?;
    tx.commit().await?;
    Ok((bot, newest_seq))
}

/// The meeting link and start of a calendar event a bot is sent to, as they are now; refused,
/// naming why, unless the event is the project's, live, not over at `at`, and has a link.
async fn calendar_event_meeting(
    conn: &mut SqliteConnection,
    project_id: &str,
    event_id: &str,
    at: Timestamp,
) -> Result<(String, Timestamp)> {
    let row: Option<(i64, i64, Option<String>, bool)> = sqlx::query_as(
        "SELECT start_time, end_time, meeting_url, is_deleted FROM calendar_events \
         WHERE id = ? AND project_id = ?",
    )
    .bind(event_id)
    .bind(project_id)
    .fetch_optional(&mut *conn)
    .await?;
    let refused = |why: &str| StoreError::Invalid(format!("calendar event {event_id} {why}"));
    let (start, end, meeting_url, is_deleted) = row.ok_or_else(|| {
        StoreError::Invalid(format!(
            "calendar_event_id {event_id} is not an event of this project"
        ))
    })?;
    if is_deleted {
        return Err(refused("has been deleted"));
    }
    if end <= at.timestamp_micros() {
        return Err(refused("has already ended"));
    }
    let meeting_url = meeting_url.ok_or_else(|| refused("has no meeting link"))?;
    Ok((meeting_url, from_micros(start)))
}

/// Inserts a bot inside the caller's transaction: `scheduled` when it joins after `at`, else
/// `ready` and asked to join at once (`join_requested` from `source`, with its deliveries).
/// Returns its id.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    project_id: &str,
    new: NewBot,
    options: &StoreOptions,
    source: &str,
    at: Timestamp,
) -> Result<String> {
    let (meeting_url, join_at, calendar_event_id) = match new.meeting {
        BotMeeting::Link {
            meeting_url,
            join_at,
        } => (meeting_url, join_at, None),
        BotMeeting::CalendarEvent(event_id) => {
            let (url, start) = calendar_event_meeting(conn, project_id, &event_id, at).await?;
            (url, (start > at).then_some(start), Some(event_id))
        }
    };
    let id = new_id(IdKind::Bot);
    let scheduled = join_at.is_some_and(|t| t > at);
    let state = if scheduled {
        BotState::Scheduled
    } else {
        BotState::Ready
    };
    let inserted = sqlx::query(
        "INSERT INTO bots (id, project_id, meeting_url, bot_name, metadata, deduplication_key, \
         join_at, state, recording_state, transcription_state, is_sandbox, sandbox_script, \
         calendar_event_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(project_id)
    .bind(&meeting_url)
    .bind(&new.bot_name)
    .bind(new.metadata.map_or(Value::Null, Value::Object).to_string())
    .bind(&new.deduplication_key)
    .bind(join_at.map(|t| t.timestamp_micros()))
    .bind(state.code())
    .bind(RecordingState::NotStarted.code())
    .bind(TranscriptionState::NotStarted.code())
    .bind(is_sandbox_meeting(&meeting_url))
    .bind(new.sandbox_script.map(|s| s.to_string()))
    .bind(&calendar_event_id)
    .bind(at.timestamp_micros())
    .bind(at.timestamp_micros())
    .execute(&mut *conn)
    .await;
    if let Err(e) = inserted {
        return Err(unique_violation_as(e, DEDUP_CONFLICT));
    }
    for webhook in &new.webhooks {
        subscriptions::insert(&mut *conn, project_id, Some(&id), webhook, options).await?;
    }
    if !scheduled {
        let join = BotInput::Event(BotEventRequest::join_requested(source));
        with_direct(conn, |db| {
            apply_inputs(db, Actor::System, &id, vec![join], None, options, None)
        })
        .await?;
    }
    Ok(id)
}

/// A unique-index violation as a conflict with `message`; other errors as they are.
fn unique_violation_as(e: sqlx::Error, message: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(message.to_owned())
        }
        _ => StoreError::Database(e),
    }
}

async fn fetch(conn: &mut SqliteConnection, bot_id: &str) -> Result<Bot> {
    let sql = format!("SELECT {BOT_COLUMNS} FROM bots WHERE id = ?");
    let row = sqlx::query(&sql)
        .bind(bot_id)
        .fetch_optional(conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    bot_from_row(&row)
}

pub(super) async fn get(pool: &SqlitePool, actor: Actor<'_>, bot_id: &str) -> Result<Bot> {
    let mut conn = pool.acquire().await?;
    let bot = fetch(&mut conn, bot_id).await?;
    match actor {
        Actor::Project(p) if bot.project_id != p => Err(StoreError::NotFound),
        _ => Ok(bot),
    }
}

pub(super) async fn list(
    pool: &SqlitePool,
    project_id: &str,
    filter: &BotFilter,
    page: PageRequest,
) -> Result<Page<Bot>> {
    let (condition, order) = page::seq_bounds(&page, true);
    let mut sql = format!("SELECT {BOT_COLUMNS} FROM bots WHERE project_id = ? AND {condition}");
    if filter.meeting_url.is_some() {
        sql.push_str(" AND meeting_url = ?");
    }
    if filter.deduplication_key.is_some() {
        sql.push_str(" AND deduplication_key = ?");
    }
    if filter.calendar_event_id.is_some() {
        sql.push_str(" AND calendar_event_id = ?");
    }
    if !filter.states.is_empty() {
        let marks = vec!["?"; filter.states.len()].join(", ");
        sql.push_str(&format!(" AND state IN ({marks})"));
    }
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?"));
    let mut query = sqlx::query(&sql)
        .bind(project_id)
        .bind(page::seq_start(&page, true));
    if let Some(url) = &filter.meeting_url {
        query = query.bind(url);
    }
    if let Some(key) = &filter.deduplication_key {
        query = query.bind(key);
    }
    if let Some(event) = &filter.calendar_event_id {
        query = query.bind(event);
    }
    for state in &filter.states {
        query = query.bind(state.code());
    }
    let rows = query
        .bind(i64::from(page.limit) + 1)
        .fetch_all(pool)
        .await?;
    let mut bots = Vec::with_capacity(rows.len());
    for row in &rows {
        let seq: i64 = sqlx::Row::try_get(row, "seq")?;
        bots.push((seq, bot_from_row(row)?));
    }
    let page = page::finish(bots, &page, |(seq, _)| *seq);
    Ok(Page {
        items: page.items.into_iter().map(|(_, bot)| bot).collect(),
        next: page.next,
        previous: page.previous,
    })
}

/// Writes out the bodies of the bot's deliveries that are made from their records
/// (`outbox::RECORD_BODY`), with the bot's metadata as it is now: before the metadata changes,
/// or the bot and its records go, so that every delivery keeps the body it was owed with.
async fn materialize_bodies(
    tx: &mut SqliteConnection,
    keys: &DeliveryKeyCipher,
    bot_id: &str,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT d.seq, d.legacy_key, d.trigger, b.metadata, r.payload FROM deliveries d \
         JOIN bots b ON b.id = d.bot_id JOIN bot_records r ON r.seq = d.record_seq \
         WHERE d.bot_id = ? AND d.body = ?",
    )
    .bind(bot_id)
    .bind(RECORD_BODY)
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let seq: i64 = row.try_get("seq")?;
        let key = delivery_key(keys, seq, row.try_get("legacy_key")?);
        let metadata: String = row.try_get("metadata")?;
        let payload: String = row.try_get("payload")?;
        let body = rebuilt_body(&key, bot_id, &metadata, row.try_get("trigger")?, &payload)?;
        sqlx::query("UPDATE deliveries SET body = ? WHERE seq = ?")
            .bind(body)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn patch(
    pool: &SqlitePool,
    keys: &DeliveryKeyCipher,
    project_id: &str,
    bot_id: &str,
    patch: BotPatch,
) -> Result<Bot> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let bot = fetch(&mut tx, bot_id).await?;
    if bot.project_id != project_id {
        return Err(StoreError::NotFound);
    }
    if patch.join_at.is_some() && bot.state != BotState::Scheduled {
        return Err(StoreError::Invalid(format!(
            "join_at can only be changed while the bot is scheduled (it is {})",
            bot.state
        )));
    }
    if patch.metadata.is_some() {
        materialize_bodies(&mut tx, keys, bot_id).await?;
    }
    sqlx::query(
        "UPDATE bots SET metadata = COALESCE(?, metadata), join_at = COALESCE(?, join_at), \
         updated_at = ? WHERE id = ?",
    )
    .bind(
        patch
            .metadata
            .map(|m| serde_json::Value::Object(m).to_string()),
    )
    .bind(patch.join_at.map(|t| t.timestamp_micros()))
    .bind(now().timestamp_micros())
    .bind(bot_id)
    .execute(&mut *tx)
    .await?;
    let bot = fetch(&mut tx, bot_id).await?;
    tx.commit().await?;
    Ok(bot)
}

pub(super) async fn delete(
    pool: &SqlitePool,
    keys: &DeliveryKeyCipher,
    project_id: &str,
    bot_id: &str,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let bot = fetch(&mut tx, bot_id).await?;
    if bot.project_id != project_id {
        return Err(StoreError::NotFound);
    }
    if bot.state != BotState::Scheduled {
        return Err(StoreError::Invalid(format!(
            "Bot is in state {} and cannot be deleted. Only scheduled bots can be deleted.",
            bot.state
        )));
    }
    materialize_bodies(&mut tx, keys, bot_id).await?;
    sqlx::query("DELETE FROM webhook_subscriptions WHERE bot_id = ?")
        .bind(bot_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM bot_records WHERE bot_id = ?")
        .bind(bot_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM bots WHERE id = ?")
        .bind(bot_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn claim(pool: &SqlitePool, runner: &str, sandbox: bool) -> Result<Option<Bot>> {
    let at = now().timestamp_micros();
    // One statement: the database picks and marks the bot, so two runners never get the same one.
    let sql = format!(
        "UPDATE bots SET runner = ?, runner_heartbeat_at = ?, updated_at = ? WHERE seq = \
         (SELECT seq FROM bots WHERE runner IS NULL AND is_sandbox = ? AND state = 'joining' \
         ORDER BY seq LIMIT 1) AND runner IS NULL RETURNING {BOT_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(runner)
        .bind(at)
        .bind(at)
        .bind(sandbox)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(bot_from_row).transpose()
}

/// The states a runner still has work in.
const UNFINISHED: &str = "state NOT IN ('ended', 'fatal_error', 'data_deleted')";

pub(super) async fn held_by(pool: &SqlitePool, runner: &str) -> Result<Vec<Bot>> {
    let sql =
        format!("SELECT {BOT_COLUMNS} FROM bots WHERE runner = ? AND {UNFINISHED} ORDER BY seq");
    let rows = sqlx::query(&sql).bind(runner).fetch_all(pool).await?;
    rows.iter().map(bot_from_row).collect()
}

pub(super) async fn heartbeat(pool: &SqlitePool, runner: &str, bot_id: &str) -> Result<Bot> {
    let sql = format!(
        "UPDATE bots SET runner_heartbeat_at = ? WHERE id = ? AND runner = ? RETURNING {BOT_COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(now().timestamp_micros())
        .bind(bot_id)
        .bind(runner)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    bot_from_row(&row)
}

pub(super) async fn silent(pool: &SqlitePool, cutoff: Timestamp) -> Result<Vec<Bot>> {
    let sql = format!(
        "SELECT {BOT_COLUMNS} FROM bots WHERE runner IS NOT NULL AND runner_heartbeat_at < ? \
         AND {UNFINISHED} ORDER BY seq LIMIT 500"
    );
    let rows = sqlx::query(&sql)
        .bind(cutoff.timestamp_micros())
        .fetch_all(pool)
        .await?;
    rows.iter().map(bot_from_row).collect()
}

pub(super) async fn scheduled(pool: &SqlitePool, until: Timestamp) -> Result<Vec<Bot>> {
    let sql = format!(
        "SELECT {BOT_COLUMNS} FROM bots WHERE state IN ('scheduled', 'staged') AND join_at <= ? \
         ORDER BY join_at LIMIT 500"
    );
    let rows = sqlx::query(&sql)
        .bind(until.timestamp_micros())
        .fetch_all(pool)
        .await?;
    rows.iter().map(bot_from_row).collect()
}
