//! Calendars, their events, and the result of a sync: the events it found, the calendar's new
//! state, the bots sent to its events (moved, cancelled, or created by its `auto_join` rule)
//! and the webhooks all of these owe, written in one transaction (all or nothing), like every
//! other event. A sync is claimed with a lease, so one process syncs a calendar at a time.

use meetwire_core::auto_join::AutoJoinRule;
use meetwire_core::calendar::{calendar_envelope, CalendarState, CalendarStatus};
use meetwire_core::canonical::canonical_json;
use meetwire_core::delivery_key::DeliveryKeyCipher;
use meetwire_core::ids::{new_id, IdKind};
use meetwire_core::time::{from_micros, Timestamp};
use meetwire_core::trigger::Trigger;
use serde_json::{Map, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::calendar_bots::{self, Cancel};
use super::deliveries::newest_delivery_seq;
use super::subscriptions::trigger_mask;
use crate::error::{Result, StoreError};
use crate::model::{
    Calendar, CalendarEvent, CalendarEventFilter, CalendarFilter, CalendarPatch, CalendarToSync,
    DeliveryStatus, NewCalendar, Page, PageRequest, StoreOptions, SyncOutcome, SyncReport,
    SyncedEvent,
};
use crate::page;

const COLUMNS: &str = "seq, id, project_id, platform, deduplication_key, metadata, state, \
    failure_error, failure_at, last_successful_sync_at, last_attempted_sync_at, auto_join, \
    created_at, updated_at";

const EVENT_COLUMNS: &str = "seq, id, calendar_id, start_time, end_time, name, meeting_url, \
    attendees, is_deleted, ical_uid, raw, created_at, updated_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("calendar {what}: {e}"))
}

fn json_column(row: &SqliteRow, column: &str) -> Result<Value> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

fn micros(row: &SqliteRow, column: &str) -> Result<Option<Timestamp>> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(from_micros))
}

fn from_row(row: &SqliteRow) -> Result<Calendar> {
    let metadata = match json_column(row, "metadata")? {
        Value::Object(map) => map,
        other => return Err(corrupt("metadata", other)),
    };
    let platform: String = row.try_get("platform")?;
    let state: String = row.try_get("state")?;
    let failure = match (
        row.try_get::<Option<String>, _>("failure_error")?,
        micros(row, "failure_at")?,
    ) {
        (Some(error), Some(at)) => Some((error, at)),
        _ => None,
    };
    Ok(Calendar {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        platform: platform.parse().map_err(|e| corrupt("platform", e))?,
        deduplication_key: row.try_get("deduplication_key")?,
        metadata,
        state: state.parse().map_err(|e| corrupt("state", e))?,
        connection_failure: failure,
        last_successful_sync_at: micros(row, "last_successful_sync_at")?,
        last_attempted_sync_at: micros(row, "last_attempted_sync_at")?,
        auto_join: auto_join_column(row)?,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
    })
}

fn auto_join_column(row: &SqliteRow) -> Result<Option<AutoJoinRule>> {
    row.try_get::<Option<String>, _>("auto_join")?
        .map(|text| serde_json::from_str(&text).map_err(|e| corrupt("auto_join", e)))
        .transpose()
}

fn auto_join_text(rule: Option<&AutoJoinRule>) -> Result<Option<String>> {
    rule.map(|r| serde_json::to_string(r).map_err(|e| corrupt("auto_join", e)))
        .transpose()
}

fn event_from_row(row: &SqliteRow) -> Result<CalendarEvent> {
    Ok(CalendarEvent {
        id: row.try_get("id")?,
        calendar_id: row.try_get("calendar_id")?,
        start_time: from_micros(row.try_get("start_time")?),
        end_time: from_micros(row.try_get("end_time")?),
        name: row.try_get("name")?,
        meeting_url: row.try_get("meeting_url")?,
        attendees: json_column(row, "attendees")?,
        is_deleted: row.try_get("is_deleted")?,
        ical_uid: row.try_get("ical_uid")?,
        raw: json_column(row, "raw")?,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
    })
}

/// A page of rows read with one more than asked (so the next page is known), each read by
/// `read`, with their cursors.
fn page_of<T>(
    rows: &[SqliteRow],
    page: &PageRequest,
    read: impl Fn(&SqliteRow) -> Result<T>,
) -> Result<Page<T>> {
    let items = rows
        .iter()
        .map(|row| Ok((row.try_get::<i64, _>("seq")?, read(row)?)))
        .collect::<Result<Vec<_>>>()?;
    let page = page::finish(items, page, |(seq, _)| *seq);
    Ok(Page {
        items: page.items.into_iter().map(|(_, item)| item).collect(),
        next: page.next,
        previous: page.previous,
    })
}

fn metadata_text(metadata: &Map<String, Value>) -> String {
    Value::Object(metadata.clone()).to_string()
}

async fn fetch(conn: &mut SqliteConnection, project_id: &str, id: &str) -> Result<Calendar> {
    let sql = format!("SELECT {COLUMNS} FROM calendars WHERE id = ? AND project_id = ?");
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(project_id)
        .fetch_optional(conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

/// Creates a calendar, due for its first sync at once. A deduplication key already used in
/// the project is refused, naming it.
pub(super) async fn create(
    pool: &SqlitePool,
    project_id: &str,
    new: NewCalendar,
    at: Timestamp,
) -> Result<Calendar> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    if let Some(key) = &new.deduplication_key {
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM calendars WHERE project_id = ? AND deduplication_key = ?",
        )
        .bind(project_id)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!(
                "A calendar with deduplication key '{key}' already exists in this project"
            )));
        }
    }
    let id = new_id(IdKind::Calendar);
    let at = at.timestamp_micros();
    sqlx::query(
        "INSERT INTO calendars (id, project_id, platform, credentials, deduplication_key, \
         metadata, auto_join, state, next_sync_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(project_id)
    .bind(new.platform.code())
    .bind(&new.sealed_credentials)
    .bind(&new.deduplication_key)
    .bind(metadata_text(&new.metadata))
    .bind(auto_join_text(new.auto_join.as_ref())?)
    .bind(CalendarState::Connected.code())
    .bind(at)
    .bind(at)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    let calendar = fetch(&mut tx, project_id, &id).await?;
    tx.commit().await?;
    Ok(calendar)
}

pub(super) async fn get(pool: &SqlitePool, project_id: &str, id: &str) -> Result<Calendar> {
    let mut conn = pool.acquire().await?;
    fetch(&mut conn, project_id, id).await
}

/// The calendar's sealed credentials.
pub(super) async fn credentials(pool: &SqlitePool, project_id: &str, id: &str) -> Result<Vec<u8>> {
    sqlx::query_scalar("SELECT credentials FROM calendars WHERE id = ? AND project_id = ?")
        .bind(id)
        .bind(project_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)
}

/// The project's calendars, oldest first.
pub(super) async fn list(
    pool: &SqlitePool,
    project_id: &str,
    filter: &CalendarFilter,
    page: PageRequest,
) -> Result<Page<Calendar>> {
    let (condition, order) = page::seq_bounds(&page, false);
    let mut sql = format!("SELECT {COLUMNS} FROM calendars WHERE project_id = ? AND {condition}");
    if filter.deduplication_key.is_some() {
        sql.push_str(" AND deduplication_key = ?");
    }
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?"));
    let mut query = sqlx::query(&sql)
        .bind(project_id)
        .bind(page::seq_start(&page, false));
    if let Some(key) = &filter.deduplication_key {
        query = query.bind(key);
    }
    let rows = query
        .bind(i64::from(page.limit) + 1)
        .fetch_all(pool)
        .await?;
    page_of(&rows, &page, from_row)
}

pub(super) async fn patch(
    pool: &SqlitePool,
    project_id: &str,
    id: &str,
    patch: CalendarPatch,
    at: Timestamp,
) -> Result<Calendar> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    fetch(&mut tx, project_id, id).await?;
    let at = at.timestamp_micros();
    if let Some(metadata) = &patch.metadata {
        sqlx::query("UPDATE calendars SET metadata = ?, updated_at = ? WHERE id = ?")
            .bind(metadata_text(metadata))
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(rule) = &patch.auto_join {
        // A new rule is applied to the events already known by a sync made due now.
        sqlx::query(
            "UPDATE calendars SET auto_join = ?, next_sync_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(auto_join_text(rule.as_ref())?)
        .bind(at)
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(credentials) = &patch.sealed_credentials {
        // New credentials: sync at once, from scratch (a token of the old ones means nothing),
        // and a sync still running with the old ones loses its claim, so its result is dropped.
        sqlx::query(
            "UPDATE calendars SET credentials = ?, sync_token = NULL, next_sync_at = ?, \
             claim_token = NULL, claimed_until = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(credentials)
        .bind(at)
        .bind(at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let calendar = fetch(&mut tx, project_id, id).await?;
    tx.commit().await?;
    Ok(calendar)
}

/// Deletes a calendar and its events (their deliveries stay in the log), cancelling the bots
/// sent to them that have not joined yet. Returns the newest delivery row if a cancellation
/// wrote one.
pub(super) async fn delete(
    pool: &SqlitePool,
    project_id: &str,
    id: &str,
    options: &StoreOptions,
) -> Result<Option<i64>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    fetch(&mut tx, project_id, id).await?;
    let cancelled = calendar_bots::cancel(&mut tx, id, Cancel::CalendarDeleted, options).await?;
    sqlx::query("DELETE FROM calendar_events WHERE calendar_id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM calendars WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let newest = newest_delivery_if(&mut tx, cancelled > 0).await?;
    tx.commit().await?;
    Ok(newest)
}

/// The newest delivery row, when the transaction may have written deliveries.
async fn newest_delivery_if(conn: &mut SqliteConnection, wrote: bool) -> Result<Option<i64>> {
    Ok(match wrote {
        true => Some(newest_delivery_seq(conn).await?),
        false => None,
    })
}

/// Makes a calendar's next sync due now.
pub(super) async fn request_sync(
    pool: &SqlitePool,
    project_id: &str,
    id: &str,
    at: Timestamp,
) -> Result<Calendar> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    fetch(&mut tx, project_id, id).await?;
    sqlx::query("UPDATE calendars SET next_sync_at = ? WHERE id = ?")
        .bind(at.timestamp_micros())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let calendar = fetch(&mut tx, project_id, id).await?;
    tx.commit().await?;
    Ok(calendar)
}

/// Claims the calendar whose sync has been due longest, unless another claim on it is live.
pub(super) async fn claim(
    pool: &SqlitePool,
    token: String,
    at: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<CalendarToSync>> {
    let at = at.timestamp_micros();
    let sql = format!(
        "UPDATE calendars SET claim_token = ?, claimed_until = ? WHERE seq = (\
         SELECT seq FROM calendars WHERE next_sync_at <= ? \
         AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY next_sync_at LIMIT 1) \
         RETURNING {COLUMNS}, credentials, sync_token"
    );
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let row = sqlx::query(&sql)
        .bind(&token)
        .bind(lease_until.timestamp_micros())
        .bind(at)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    row.map(|row| {
        Ok(CalendarToSync {
            calendar: from_row(&row)?,
            sealed_credentials: row.try_get("credentials")?,
            sync_token: row.try_get("sync_token")?,
            claim_token: token.clone(),
        })
    })
    .transpose()
}

/// Compares and stores one event; returns whether it was created or changed.
async fn upsert_event(
    conn: &mut SqliteConnection,
    calendar: &Calendar,
    event: &SyncedEvent,
    at: i64,
) -> Result<Option<bool>> {
    let stored = sqlx::query(
        "SELECT start_time, end_time, name, meeting_url, attendees, organizer, is_deleted, raw \
         FROM calendar_events WHERE calendar_id = ? AND provider_id = ?",
    )
    .bind(&calendar.id)
    .bind(&event.provider_id)
    .fetch_optional(&mut *conn)
    .await?;
    let attendees = event.attendees.to_string();
    let raw = event.raw.to_string();
    let Some(stored) = stored else {
        sqlx::query(
            "INSERT INTO calendar_events (id, calendar_id, project_id, provider_id, start_time, \
             end_time, name, meeting_url, attendees, organizer, ical_uid, raw, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new_id(IdKind::CalendarEvent))
        .bind(&calendar.id)
        .bind(&calendar.project_id)
        .bind(&event.provider_id)
        .bind(event.start_time.timestamp_micros())
        .bind(event.end_time.timestamp_micros())
        .bind(&event.name)
        .bind(&event.meeting_url)
        .bind(&attendees)
        .bind(&event.organizer)
        .bind(&event.ical_uid)
        .bind(&raw)
        .bind(at)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        return Ok(Some(true));
    };
    let same = stored.try_get::<i64, _>("start_time")? == event.start_time.timestamp_micros()
        && stored.try_get::<i64, _>("end_time")? == event.end_time.timestamp_micros()
        && stored.try_get::<Option<String>, _>("name")? == event.name
        && stored.try_get::<Option<String>, _>("meeting_url")? == event.meeting_url
        && stored.try_get::<String, _>("attendees")? == attendees
        && stored.try_get::<Option<String>, _>("organizer")? == event.organizer
        && !stored.try_get::<bool, _>("is_deleted")?
        && stored.try_get::<String, _>("raw")? == raw;
    if same {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE calendar_events SET start_time = ?, end_time = ?, name = ?, meeting_url = ?, \
         attendees = ?, organizer = ?, is_deleted = 0, ical_uid = ?, raw = ?, updated_at = ? \
         WHERE calendar_id = ? AND provider_id = ?",
    )
    .bind(event.start_time.timestamp_micros())
    .bind(event.end_time.timestamp_micros())
    .bind(&event.name)
    .bind(&event.meeting_url)
    .bind(&attendees)
    .bind(&event.organizer)
    .bind(&event.ical_uid)
    .bind(&raw)
    .bind(at)
    .bind(&calendar.id)
    .bind(&event.provider_id)
    .execute(&mut *conn)
    .await?;
    Ok(Some(false))
}

/// Marks events deleted: those named, and with `complete` every one the sync did not list.
async fn delete_events(
    conn: &mut SqliteConnection,
    calendar_id: &str,
    deleted: &[String],
    complete: Option<&[SyncedEvent]>,
    at: i64,
) -> Result<usize> {
    let mut count = 0;
    for provider_id in deleted {
        count += sqlx::query(
            "UPDATE calendar_events SET is_deleted = 1, updated_at = ? \
             WHERE calendar_id = ? AND provider_id = ? AND is_deleted = 0",
        )
        .bind(at)
        .bind(calendar_id)
        .bind(provider_id)
        .execute(&mut *conn)
        .await?
        .rows_affected() as usize;
    }
    if let Some(listed) = complete {
        let present: std::collections::HashSet<&str> =
            listed.iter().map(|e| e.provider_id.as_str()).collect();
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT provider_id FROM calendar_events WHERE calendar_id = ? AND is_deleted = 0",
        )
        .bind(calendar_id)
        .fetch_all(&mut *conn)
        .await?;
        for provider_id in live.iter().filter(|id| !present.contains(id.as_str())) {
            count += sqlx::query(
                "UPDATE calendar_events SET is_deleted = 1, updated_at = ? \
                 WHERE calendar_id = ? AND provider_id = ?",
            )
            .bind(at)
            .bind(calendar_id)
            .bind(provider_id)
            .execute(&mut *conn)
            .await?
            .rows_affected() as usize;
        }
    }
    Ok(count)
}

/// Inserts one delivery of `trigger` per active project-level subscription listing it.
async fn enqueue(
    conn: &mut SqliteConnection,
    keys: &DeliveryKeyCipher,
    calendar: &Calendar,
    trigger: Trigger,
    data: &Value,
    at: i64,
    options: &StoreOptions,
) -> Result<()> {
    let subscriptions: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM webhook_subscriptions WHERE project_id = ? AND bot_id IS NULL \
         AND is_active = 1 AND (triggers & ?) != 0 ORDER BY seq",
    )
    .bind(&calendar.project_id)
    .bind(trigger_mask(&[trigger]))
    .fetch_all(&mut *conn)
    .await?;
    for subscription in subscriptions {
        // The body carries the key, which is made from the row: the row comes first.
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO deliveries (project_id, subscription_id, calendar_id, trigger, body, \
             status, max_attempts, next_attempt_at, created_at) \
             VALUES (?, ?, ?, ?, '', ?, ?, ?, ?) RETURNING seq",
        )
        .bind(&calendar.project_id)
        .bind(&subscription)
        .bind(&calendar.id)
        .bind(trigger.as_int())
        .bind(DeliveryStatus::Pending.code())
        .bind(i64::from(options.max_attempts))
        .bind(at)
        .bind(at)
        .fetch_one(&mut *conn)
        .await?;
        let envelope = calendar_envelope(
            &keys.key(seq),
            &calendar.id,
            calendar.deduplication_key.as_deref(),
            &calendar.metadata,
            trigger,
            data,
        );
        sqlx::query("UPDATE deliveries SET body = ? WHERE seq = ?")
            .bind(canonical_json(&envelope))
            .bind(seq)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Stores a sync's result if the claim is still this sync's: its events, the calendar's state,
/// and the webhooks owed — `calendar.events_update` when an event was created, changed or
/// deleted, `calendar.state_change` when the connection state changed — and, after a good
/// sync, the bots of its events moved, cancelled or created (`calendar_bots`). Returns what
/// changed and the newest delivery row if any was written.
pub(super) async fn finish(
    pool: &SqlitePool,
    keys: &DeliveryKeyCipher,
    claimed: &CalendarToSync,
    outcome: &SyncOutcome,
    at: Timestamp,
    next_sync_at: Timestamp,
    options: &StoreOptions,
) -> Result<(SyncReport, Option<i64>)> {
    let calendar_id = &claimed.calendar.id;
    let at_micros = at.timestamp_micros();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let ours: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM calendars WHERE id = ? AND claim_token = ?")
            .bind(calendar_id)
            .bind(&claimed.claim_token)
            .fetch_optional(&mut *tx)
            .await?;
    if ours.is_none() {
        // Deleted meanwhile, or the lease ran out and another process owns the sync now.
        return Ok((SyncReport::default(), None));
    }
    let before = fetch(&mut tx, &claimed.calendar.project_id, calendar_id).await?;
    let mut report = SyncReport::default();
    match outcome {
        SyncOutcome::Synced {
            events,
            deleted,
            complete,
            sync_token,
            renewed_credentials,
        } => {
            for event in events {
                match upsert_event(&mut tx, &before, event, at_micros).await? {
                    Some(true) => report.created += 1,
                    Some(false) => report.updated += 1,
                    None => {}
                }
            }
            let listed = complete.then_some(events.as_slice());
            report.deleted =
                delete_events(&mut tx, calendar_id, deleted, listed, at_micros).await?;
            sqlx::query(
                "UPDATE calendars SET state = ?, failure_error = NULL, failure_at = NULL, \
                 last_successful_sync_at = ?, last_attempted_sync_at = ?, sync_token = ?, \
                 credentials = coalesce(?, credentials), \
                 next_sync_at = ?, claim_token = NULL, claimed_until = NULL, updated_at = ? \
                 WHERE id = ?",
            )
            .bind(CalendarState::Connected.code())
            .bind(at_micros)
            .bind(at_micros)
            .bind(sync_token)
            .bind(renewed_credentials)
            .bind(next_sync_at.timestamp_micros())
            .bind(at_micros)
            .bind(calendar_id)
            .execute(&mut *tx)
            .await?;
            report.state_changed = before.state != CalendarState::Connected;
            report.bots_moved =
                calendar_bots::follow_moves(&mut tx, calendar_id, at_micros).await?;
            report.bots_cancelled =
                calendar_bots::cancel(&mut tx, calendar_id, Cancel::EventsGone, options).await?;
            report.bots_created = calendar_bots::auto_join(&mut tx, &before, at, options).await?;
        }
        SyncOutcome::AuthFailed(reason) => {
            sqlx::query(
                "UPDATE calendars SET state = ?, failure_error = ?, failure_at = ?, \
                 last_attempted_sync_at = ?, sync_token = NULL, next_sync_at = ?, \
                 claim_token = NULL, claimed_until = NULL, updated_at = ? WHERE id = ?",
            )
            .bind(CalendarState::Disconnected.code())
            .bind(reason)
            .bind(at_micros)
            .bind(at_micros)
            .bind(next_sync_at.timestamp_micros())
            .bind(at_micros)
            .bind(calendar_id)
            .execute(&mut *tx)
            .await?;
            report.state_changed = before.state != CalendarState::Disconnected;
        }
        SyncOutcome::Transient(_) => {
            sqlx::query(
                "UPDATE calendars SET last_attempted_sync_at = ?, next_sync_at = ?, \
                 claim_token = NULL, claimed_until = NULL WHERE id = ?",
            )
            .bind(at_micros)
            .bind(next_sync_at.timestamp_micros())
            .bind(calendar_id)
            .execute(&mut *tx)
            .await?;
        }
    }
    let after = fetch(&mut tx, &claimed.calendar.project_id, calendar_id).await?;
    let status = CalendarStatus::new(
        after.state,
        after
            .connection_failure
            .as_ref()
            .map(|(error, at)| (error.as_str(), at)),
        after.last_successful_sync_at.as_ref(),
        after.last_attempted_sync_at.as_ref(),
    );
    let data = serde_json::to_value(&status).map_err(|e| corrupt("status", e))?;
    let events_changed = report.created + report.updated + report.deleted > 0;
    if events_changed {
        let trigger = Trigger::CalendarEventsUpdate;
        enqueue(&mut tx, keys, &after, trigger, &data, at_micros, options).await?;
    }
    if report.state_changed {
        let trigger = Trigger::CalendarStateChange;
        enqueue(&mut tx, keys, &after, trigger, &data, at_micros, options).await?;
    }
    let wrote =
        events_changed || report.state_changed || report.bots_cancelled + report.bots_created > 0;
    let newest = newest_delivery_if(&mut tx, wrote).await?;
    tx.commit().await?;
    Ok((report, newest))
}

pub(super) async fn get_event(
    pool: &SqlitePool,
    project_id: &str,
    id: &str,
) -> Result<CalendarEvent> {
    let sql =
        format!("SELECT {EVENT_COLUMNS} FROM calendar_events WHERE id = ? AND project_id = ?");
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(project_id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound)?;
    event_from_row(&row)
}

/// The project's calendar events, oldest stored first, filtered as the API's query asks.
pub(super) async fn list_events(
    pool: &SqlitePool,
    project_id: &str,
    filter: &CalendarEventFilter,
    page: PageRequest,
) -> Result<Page<CalendarEvent>> {
    let (condition, order) = page::seq_bounds(&page, false);
    let mut sql =
        format!("SELECT {EVENT_COLUMNS} FROM calendar_events WHERE project_id = ? AND {condition}");
    let mut texts = Vec::new();
    let mut times = Vec::new();
    if let Some(id) = &filter.calendar_id {
        sql.push_str(" AND calendar_id = ?");
        texts.push(id.clone());
    }
    if let Some(key) = &filter.calendar_deduplication_key {
        sql.push_str(
            " AND calendar_id IN (SELECT id FROM calendars WHERE project_id = ? \
             AND deduplication_key = ?)",
        );
        texts.push(project_id.to_owned());
        texts.push(key.clone());
    }
    for (column, op, value) in [
        ("updated_at", ">", &filter.updated_after),
        ("start_time", ">=", &filter.start_time_gte),
        ("end_time", "<=", &filter.end_time_lte),
    ] {
        if let Some(t) = value {
            sql.push_str(&format!(" AND {column} {op} ?"));
            times.push(t.timestamp_micros());
        }
    }
    sql.push_str(&format!(" ORDER BY {order} LIMIT ?"));
    let mut query = sqlx::query(&sql)
        .bind(project_id)
        .bind(page::seq_start(&page, false));
    for text in &texts {
        query = query.bind(text);
    }
    for time in &times {
        query = query.bind(time);
    }
    let rows = query
        .bind(i64::from(page.limit) + 1)
        .fetch_all(pool)
        .await?;
    page_of(&rows, &page, event_from_row)
}
