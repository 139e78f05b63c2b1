//! The dispatcher's side of the outbox — claiming due deliveries under a lease, writing attempt
//! results back in batches — and the delivery log users read and resend from.
//!
//! A claim moves `next_attempt_at` to the end of the lease and stamps the rows with a claim
//! token; a result is written only if the token still matches, so a worker whose lease expired
//! (and whose rows another worker re-claimed) cannot overwrite the newer attempt.

use std::collections::HashMap;
use std::sync::Arc;

use meetwire_core::delivery_key::DeliveryKeyCipher;
use meetwire_core::time::{from_micros, now, Timestamp};
use meetwire_core::trigger::Trigger;
use rusqlite::OptionalExtension;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::dashboard::{Counted, Tally};
use super::direct::{immediate, HotWriter};
use super::outbox::{rebuilt_body, RECORD_BODY};
use super::syncer::Syncer;

use crate::error::{Result, StoreError};
use crate::handoff::PreClaims;
use crate::model::{
    AttemptOutcome, AttemptResult, ClaimedDelivery, DeliveryAttempt, DeliveryDetail,
    DeliveryFilter, DeliveryStats, DeliveryStatus, DeliverySummary, Page, PageRequest,
    StoreOptions,
};
use crate::page;

/// Claims due deliveries; returns them once the events they carry are durable (the claim may
/// see a group commit whose log sync is still running; older rows need not wait for it).
pub(super) async fn claim(
    writer: &HotWriter,
    syncer: &Syncer,
    token: String,
    keys: DeliveryKeyCipher,
    limit: u32,
    lease_until: Timestamp,
) -> Result<Vec<ClaimedDelivery>> {
    let claimed = writer
        .run(move |db| {
            immediate(db, |db| {
                claim_direct(
                    db,
                    &Claim {
                        token: &token,
                        keys,
                    },
                    limit,
                    lease_until,
                )
            })
        })
        .await?;
    if let Some(newest) = claimed.iter().map(|d| d.seq).max() {
        syncer
            .rows_durable(newest)
            .await
            .map_err(StoreError::CommitFailed)?;
    }
    Ok(claimed)
}

/// The newest delivery row's `seq` (0 if there is none).
const NEWEST_DELIVERY: &str = "SELECT COALESCE(MAX(seq), 0) FROM deliveries";

/// The newest delivery row's `seq` (0 if there is none), on the hot-path writer.
pub(super) fn newest_delivery(db: &rusqlite::Connection) -> Result<i64> {
    let mut stmt = db.prepare_cached(NEWEST_DELIVERY)?;
    Ok(stmt.query_row([], |row| row.get(0))?)
}

/// The newest delivery row's `seq` (0 if there is none), on a pooled connection.
pub(super) async fn newest_delivery_seq(conn: &mut SqliteConnection) -> Result<i64> {
    Ok(sqlx::query_scalar(NEWEST_DELIVERY).fetch_one(conn).await?)
}

/// The columns `claimed_from_row` reads, in its order. (No subquery: in a `RETURNING` clause
/// SQLite runs a correlated one as a scan of its table.)
macro_rules! claimed_columns {
    () => {
        "seq, legacy_key, project_id, subscription_id, body, attempts, max_attempts, \
         next_attempt_at, bot_id, trigger, record_seq"
    };
}

/// Claims up to ?4 due deliveries with token ?1 until ?2 (?3 = now).
const CLAIM_DUE: &str = concat!(
    "UPDATE deliveries SET claim_token = ?1, next_attempt_at = ?2 WHERE seq IN \
     (SELECT seq FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?3 \
      ORDER BY next_attempt_at LIMIT ?4) RETURNING ",
    claimed_columns!()
);

/// The pending deliveries of the stream of subscription ?2 and bot ?3 (`outbox::Stream`).
macro_rules! in_stream {
    () => {
        "subscription_id = ?2 AND bot_id = ?3 AND status = 'pending' AND ordered = 1"
    };
}

/// The delivery waiting first in stream (?2, ?3) behind a head that finished.
macro_rules! next_in_stream {
    () => {
        concat!(
            "WHERE seq = (SELECT seq FROM deliveries WHERE ",
            in_stream!(),
            " ORDER BY seq LIMIT 1) AND next_attempt_at IS NULL"
        )
    };
}

/// Claims the next delivery of stream (?2, ?3) with token ?4 until ?1.
const CLAIM_NEXT: &str = concat!(
    "UPDATE deliveries SET next_attempt_at = ?1, claim_token = ?4 ",
    next_in_stream!(),
    " RETURNING ",
    claimed_columns!()
);

/// Makes the next delivery of stream (?2, ?3) due at ?1.
macro_rules! make_next_due {
    () => {
        concat!(
            "UPDATE deliveries SET next_attempt_at = ?1 ",
            next_in_stream!()
        )
    };
}

/// The body of a claimed row: as stored, or made again from the bot's metadata and the
/// event's record.
fn body_from_row(db: &rusqlite::Connection, row: &rusqlite::Row<'_>, key: &str) -> Result<String> {
    let stored: String = row.get(4)?;
    if stored != RECORD_BODY {
        return Ok(stored);
    }
    let gone = || StoreError::Corrupt(format!("delivery {key}: its bot or record is gone"));
    let bot_id: String = row.get::<_, Option<String>>(8)?.ok_or_else(gone)?;
    let metadata: String = db
        .prepare_cached("SELECT metadata FROM bots WHERE id = ?1")?
        .query_row([&bot_id], |r| r.get(0))
        .optional()?
        .ok_or_else(gone)?;
    let record_seq: i64 = row.get::<_, Option<i64>>(10)?.ok_or_else(gone)?;
    let payload: String = db
        .prepare_cached("SELECT payload FROM bot_records WHERE seq = ?1")?
        .query_row([record_seq], |r| r.get(0))
        .optional()?
        .ok_or_else(gone)?;
    rebuilt_body(key, &bot_id, &metadata, row.get(9)?, &payload)
}

/// A delivery's idempotency key: made from its row, or stored with a row written before keys
/// were made (`legacy_key`).
pub(super) fn delivery_key(keys: &DeliveryKeyCipher, seq: i64, legacy: Option<String>) -> String {
    legacy.unwrap_or_else(|| keys.key(seq))
}

/// What a claim stamps on its rows and how it names them.
struct Claim<'a> {
    token: &'a str,
    keys: DeliveryKeyCipher,
}

fn claimed_from_row(
    db: &rusqlite::Connection,
    row: &rusqlite::Row<'_>,
    claim: &Claim<'_>,
) -> Result<ClaimedDelivery> {
    let seq = row.get(0)?;
    let key = delivery_key(&claim.keys, seq, row.get(1)?);
    Ok(ClaimedDelivery {
        seq,
        claim_token: claim.token.to_owned(),
        body: body_from_row(db, row, &key)?,
        idempotency_key: key,
        project_id: row.get(2)?,
        subscription_id: row.get(3)?,
        attempts: row.get(5)?,
        max_attempts: row.get(6)?,
        lease_until: from_micros(row.get(7)?),
        url: None,
        subscription_active: false,
    })
}

fn claim_direct(
    db: &rusqlite::Connection,
    claim: &Claim<'_>,
    limit: u32,
    lease_until: Timestamp,
) -> Result<Vec<ClaimedDelivery>> {
    let mut statement = db.prepare_cached(CLAIM_DUE)?;
    let params = rusqlite::params![
        claim.token,
        lease_until.timestamp_micros(),
        now().timestamp_micros(),
        i64::from(limit)
    ];
    let mut claimed = claimed_rows(db, &mut statement, params, claim)?;
    attach_subscriptions(db, &mut claimed)?;
    Ok(claimed)
}

/// The deliveries a claiming statement returns.
fn claimed_rows(
    db: &rusqlite::Connection,
    statement: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    claim: &Claim<'_>,
) -> Result<Vec<ClaimedDelivery>> {
    let mut rows = statement.query(params)?;
    let mut claimed = Vec::new();
    while let Some(row) = rows.next()? {
        claimed.push(claimed_from_row(db, row, claim)?);
    }
    Ok(claimed)
}

/// Fills in each claimed delivery's subscription as it is now: a changed URL or a deactivation
/// applies to pending rows.
fn attach_subscriptions(db: &rusqlite::Connection, claimed: &mut [ClaimedDelivery]) -> Result<()> {
    let mut lookup =
        db.prepare_cached("SELECT url, is_active FROM webhook_subscriptions WHERE id = ?1")?;
    let mut seen: HashMap<String, (Option<String>, bool)> = HashMap::new();
    for delivery in claimed {
        if !seen.contains_key(&delivery.subscription_id) {
            let found = lookup
                .query_row([&delivery.subscription_id], |row| {
                    Ok((Some(row.get::<_, String>(0)?), row.get::<_, bool>(1)?))
                })
                .optional()?
                .unwrap_or((None, false));
            seen.insert(delivery.subscription_id.clone(), found);
        }
        if let Some((url, active)) = seen.get(&delivery.subscription_id) {
            delivery.url = url.clone();
            delivery.subscription_active = *active;
        }
    }
    Ok(())
}

/// Hands claimed deliveries back unattempted, each due again at its time (endpoint saturated).
pub(super) async fn release(writer: &HotWriter, claims: &[(i64, String, Timestamp)]) -> Result<()> {
    let claims = claims.to_vec();
    writer
        .run(move |db| {
            immediate(db, |db| {
                let mut stmt = db.prepare_cached(
                    "UPDATE deliveries SET next_attempt_at = ?1, claim_token = NULL \
                 WHERE seq = ?2 AND claim_token = ?3",
                )?;
                for (seq, token, until) in &claims {
                    stmt.execute(rusqlite::params![until.timestamp_micros(), seq, token])?;
                }
                Ok(())
            })
        })
        .await
}

/// Writes attempt results. A finished stream head frees the next delivery of its stream
/// (ordering): it is claimed for the dispatcher in `claims` while the dispatcher has room (and
/// handed over once durable), else made due. Returns how many were made due, and the claims.
pub(super) async fn record_results(
    writer: &HotWriter,
    results: Arc<[AttemptResult]>,
    mut claims: Option<PreClaims>,
) -> (Option<PreClaims>, Result<usize>) {
    let written = writer
        .run(move |db| {
            let made_due = immediate(db, |db| {
                let mut tally = Tally::default();
                let made_due = results.iter().try_fold(0, |due, r| -> Result<usize> {
                    Ok(due + record_result(db, r, claims.as_mut(), &mut tally)?)
                })?;
                tally.write(db)?;
                if let Some(claims) = claims.as_mut() {
                    attach_subscriptions(db, &mut claims.claimed)?;
                }
                Ok(made_due)
            });
            Ok((claims, made_due))
        })
        .await;
    match written {
        Ok((claims, made_due)) => (claims, made_due),
        Err(e) => (None, Err(e)),
    }
}

fn record_result(
    db: &rusqlite::Connection,
    r: &AttemptResult,
    claims: Option<&mut PreClaims>,
    tally: &mut Tally,
) -> Result<usize> {
    let at = r.attempted_at.timestamp_micros();
    let (status, next_at, succeeded_at) = match r.outcome {
        AttemptOutcome::Success => (DeliveryStatus::Success, None, Some(at)),
        AttemptOutcome::Retry { at: next } => {
            (DeliveryStatus::Pending, Some(next.timestamp_micros()), None)
        }
        AttemptOutcome::Failure => (DeliveryStatus::Failure, None, None),
    };
    let error = r.error_message.as_ref().map(|m| match r.error_kind {
        Some(kind) => format!("{kind}: {m}"),
        None => m.clone(),
    });
    // The right-hand sides read the row as it was: `total_attempts = 0` is this attempt being
    // the delivery's first.
    let mut update = db.prepare_cached(
        "UPDATE deliveries SET status = ?1, attempts = attempts + 1, \
         total_attempts = total_attempts + 1, next_attempt_at = ?2, claim_token = NULL, \
         last_attempt_at = ?3, succeeded_at = ?4, last_status_code = ?5, last_error = ?6, \
         first_duration_ms = CASE WHEN ?1 = 'success' AND total_attempts = 0 THEN ?9 END, \
         first_response_body = CASE WHEN ?1 = 'success' AND total_attempts = 0 THEN ?10 END \
         WHERE seq = ?7 AND claim_token = ?8 \
         RETURNING ordered, subscription_id, project_id, created_at, total_attempts, bot_id",
    )?;
    let mut rows = update.query(rusqlite::params![
        status.code(),
        next_at,
        at,
        succeeded_at,
        r.status_code,
        error,
        r.seq,
        r.claim_token,
        r.duration_ms,
        r.response_body,
    ])?;
    let Some(row) = rows.next()? else {
        // The lease expired and another worker owns the delivery now: its result wins.
        return Ok(0);
    };
    let ordered = row.get::<_, Option<i64>>(0)?.is_some();
    let subscription: String = row.get(1)?;
    let bot_id: Option<String> = row.get(5)?;
    let first_try_success = status == DeliveryStatus::Success && row.get::<_, i64>(4)? == 1;
    tally.add(Counted {
        project_id: row.get(2)?,
        subscription_id: subscription.clone(),
        attempted_at: at,
        event_stored_at: row.get(3)?,
        outcome: r.outcome,
        error: error
            .clone()
            .or_else(|| r.status_code.map(|code| format!("HTTP {code}"))),
    });
    drop(rows);
    if !first_try_success {
        db.prepare_cached(
            "INSERT INTO delivery_attempts (delivery_seq, attempted_at, duration_ms, status_code, \
             error_kind, error_message, response_body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(rusqlite::params![
            r.seq,
            at,
            r.duration_ms,
            r.status_code,
            r.error_kind,
            r.error_message,
            r.response_body,
        ])?;
    }
    let mut made_due = 0;
    if let (true, Some(bot_id), false) = (ordered, &bot_id, status == DeliveryStatus::Pending) {
        made_due = free_next(db, (&subscription, bot_id), at, claims)?;
    }
    if let Some(reason) = &r.disable_subscription {
        db.prepare_cached(
            "UPDATE webhook_subscriptions SET is_active = 0, disabled_reason = ?1, \
             updated_at = ?2 WHERE id = ?3",
        )?
        .execute(rusqlite::params![reason, at, subscription])?;
    }
    Ok(made_due)
}

/// The stream's head finished: the next delivery waiting behind it is claimed for the
/// dispatcher if it has room (its subscription is filled in by `record_results`, once per
/// batch), else made due. Returns 1 if it was made due.
fn free_next(
    db: &rusqlite::Connection,
    (subscription_id, bot_id): (&str, &str),
    at: i64,
    claims: Option<&mut PreClaims>,
) -> Result<usize> {
    if let Some(claims) = claims.and_then(|c| c.reserve().then_some(c)) {
        let lease_until = claims.lease_until.timestamp_micros();
        let params = rusqlite::params![lease_until, subscription_id, bot_id, claims.token];
        let claim = Claim {
            token: &claims.token,
            keys: claims.keys,
        };
        let next = claimed_rows(db, &mut db.prepare_cached(CLAIM_NEXT)?, params, &claim)?;
        claims.claimed.extend(next);
        return Ok(0);
    }
    Ok(db
        .prepare_cached(make_next_due!())?
        .execute(rusqlite::params![at, subscription_id, bot_id])?)
}

/// When the earliest pending delivery becomes due (for the dispatcher's sleep).
pub(super) async fn next_due(pool: &SqlitePool) -> Result<Option<Timestamp>> {
    let at: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' \
         AND next_attempt_at IS NOT NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(at.map(from_micros))
}

pub(super) async fn stats(pool: &SqlitePool) -> Result<DeliveryStats> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS pending, \
         MIN(CASE WHEN next_attempt_at <= ? AND claim_token IS NULL THEN next_attempt_at END) \
         AS oldest_due FROM deliveries WHERE status = 'pending'",
    )
    .bind(now().timestamp_micros())
    .fetch_one(pool)
    .await?;
    Ok(DeliveryStats {
        pending: row.try_get("pending")?,
        oldest_due: row
            .try_get::<Option<i64>, _>("oldest_due")?
            .map(from_micros),
    })
}

const SUMMARY_COLUMNS: &str = "d.seq, d.legacy_key, d.subscription_id, s.url, d.bot_id, \
    d.calendar_id, d.trigger, d.status, d.total_attempts, d.created_at, d.last_attempt_at, \
    d.succeeded_at, d.next_attempt_at, d.claim_token, d.last_status_code, d.last_error";

fn summary_from_row(row: &SqliteRow, keys: &DeliveryKeyCipher) -> Result<DeliverySummary> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("delivery {what}"));
    let status: String = row.try_get("status")?;
    let claimed: Option<String> = row.try_get("claim_token")?;
    let micros = |column: &str| -> Result<Option<Timestamp>> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(from_micros))
    };
    Ok(DeliverySummary {
        idempotency_key: delivery_key(keys, row.try_get("seq")?, row.try_get("legacy_key")?),
        webhook_id: row.try_get("subscription_id")?,
        url: row.try_get("url")?,
        bot_id: row.try_get("bot_id")?,
        calendar_id: row.try_get("calendar_id")?,
        trigger: Trigger::from_int(row.try_get("trigger")?).ok_or_else(|| corrupt("trigger"))?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        attempts: row.try_get::<i64, _>("total_attempts")? as u32,
        created_at: from_micros(row.try_get("created_at")?),
        last_attempt_at: micros("last_attempt_at")?,
        succeeded_at: micros("succeeded_at")?,
        // While claimed, next_attempt_at is the lease end, not a scheduled retry.
        next_attempt_at: if claimed.is_some() {
            None
        } else {
            micros("next_attempt_at")?
        },
        last_status_code: row
            .try_get::<Option<i64>, _>("last_status_code")?
            .map(|c| c as u16),
        last_error: row.try_get("last_error")?,
    })
}

/// Appends the filter's conditions; returns the values to bind, in order.
fn filter_sql(filter: &DeliveryFilter, sql: &mut String) -> Vec<String> {
    let mut binds = Vec::new();
    let mut add = |column: &str, value: Option<String>| {
        if let Some(value) = value {
            sql.push_str(&format!(" AND d.{column} = ?"));
            binds.push(value);
        }
    };
    add("bot_id", filter.bot_id.clone());
    add("calendar_id", filter.calendar_id.clone());
    add("subscription_id", filter.webhook_id.clone());
    add("status", filter.status.map(|s| s.code().to_owned()));
    add("trigger", filter.trigger.map(|t| t.as_int().to_string()));
    binds
}

pub(super) async fn list(
    pool: &SqlitePool,
    keys: &DeliveryKeyCipher,
    project_id: &str,
    filter: &DeliveryFilter,
    page: PageRequest,
) -> Result<Page<DeliverySummary>> {
    let (condition, order) = page::seq_bounds(&page, true);
    let mut sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM deliveries d \
         LEFT JOIN webhook_subscriptions s ON s.id = d.subscription_id \
         WHERE d.project_id = ? AND d.{condition}"
    );
    let binds = filter_sql(filter, &mut sql);
    sql.push_str(&format!(" ORDER BY d.{order} LIMIT ?"));
    let mut query = sqlx::query(&sql)
        .bind(project_id)
        .bind(page::seq_start(&page, true));
    for value in &binds {
        query = query.bind(value);
    }
    let rows = query
        .bind(i64::from(page.limit) + 1)
        .fetch_all(pool)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push((row.try_get::<i64, _>("seq")?, summary_from_row(row, keys)?));
    }
    let page = page::finish(items, &page, |(seq, _)| *seq);
    Ok(Page {
        items: page.items.into_iter().map(|(_, d)| d).collect(),
        next: page.next,
        previous: page.previous,
    })
}

/// The row of the project's delivery with idempotency key `key`.
async fn find(
    conn: &mut SqliteConnection,
    keys: &DeliveryKeyCipher,
    project_id: &str,
    key: &str,
) -> Result<i64> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT seq FROM deliveries WHERE seq = ?1 AND legacy_key IS NULL AND project_id = ?3 \
         UNION ALL SELECT seq FROM deliveries WHERE legacy_key = ?2 AND project_id = ?3",
    )
    .bind(keys.seq(key))
    .bind(key)
    .bind(project_id)
    .fetch_optional(conn)
    .await?;
    found.ok_or(StoreError::NotFound)
}

pub(super) async fn get(
    pool: &SqlitePool,
    keys: &DeliveryKeyCipher,
    project_id: &str,
    key: &str,
) -> Result<DeliveryDetail> {
    let mut conn = pool.acquire().await?;
    let seq = find(&mut conn, keys, project_id, key).await?;
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, d.body, d.first_duration_ms, d.first_response_body, \
         (SELECT metadata FROM bots b WHERE b.id = d.bot_id AND d.body = '') AS bot_metadata, \
         (SELECT payload FROM bot_records r WHERE r.seq = d.record_seq AND d.body = '') \
         AS record_payload \
         FROM deliveries d \
         LEFT JOIN webhook_subscriptions s ON s.id = d.subscription_id \
         WHERE d.seq = ?"
    );
    let row = sqlx::query(&sql).bind(seq).fetch_one(&mut *conn).await?;
    let summary = summary_from_row(&row, keys)?;
    let mut body: String = row.try_get("body")?;
    if body == RECORD_BODY {
        let parts = (
            summary.bot_id.as_deref(),
            row.try_get::<Option<String>, _>("bot_metadata")?,
            row.try_get::<Option<String>, _>("record_payload")?,
        );
        let (Some(bot_id), Some(metadata), Some(record)) = parts else {
            return Err(StoreError::Corrupt(format!(
                "delivery {key}: its bot or record is gone"
            )));
        };
        body = rebuilt_body(key, bot_id, &metadata, row.try_get("trigger")?, &record)?;
    }
    let payload = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("delivery body: {e}")))?;
    let first_response_body: Option<String> = row.try_get("first_response_body")?;
    let first_try_success = row
        .try_get::<Option<i64>, _>("first_duration_ms")?
        .zip(summary.last_attempt_at)
        .map(|(duration_ms, attempted_at)| DeliveryAttempt {
            attempted_at,
            duration_ms,
            status_code: summary.last_status_code,
            error_kind: None,
            error_message: None,
            response_body: first_response_body,
        });
    let mut attempts = sqlx::query(
        "SELECT attempted_at, duration_ms, status_code, error_kind, error_message, response_body \
         FROM delivery_attempts WHERE delivery_seq = ? ORDER BY id",
    )
    .bind(seq)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|a| {
        Ok(DeliveryAttempt {
            attempted_at: from_micros(a.try_get("attempted_at")?),
            duration_ms: a.try_get("duration_ms")?,
            status_code: a
                .try_get::<Option<i64>, _>("status_code")?
                .map(|c| c as u16),
            error_kind: a.try_get("error_kind")?,
            error_message: a.try_get("error_message")?,
            response_body: a.try_get("response_body")?,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    if attempts.is_empty() {
        attempts.extend(first_try_success);
    }
    Ok(DeliveryDetail {
        summary,
        payload,
        attempts,
    })
}

/// Puts finished deliveries back to pending with a fresh attempt budget and the same key. With
/// ordering on, a bot delivery joins its stream (if written while ordering was off) and waits
/// there (`make_streams_due` frees the first of each); otherwise it is due at once. Its
/// parameters are anonymous, as are those of the conditions appended to it: `bind_resend`
/// binds its own.
const RESEND: &str = "UPDATE deliveries SET status = 'pending', attempts = 0, \
     max_attempts = ?, first_duration_ms = NULL, first_response_body = NULL, \
     claim_token = NULL, next_attempt_at = CASE WHEN ? AND bot_id IS NOT NULL THEN NULL ELSE ? END, \
     ordered = CASE WHEN ? AND bot_id IS NOT NULL THEN 1 ELSE ordered END";

/// What a resend returns: each resent row's stream, if it is in one.
const RESENT_STREAMS: &str = " RETURNING ordered, subscription_id, bot_id";

/// `sql` (which starts with `RESEND`) with `RESEND`'s parameters bound.
fn bind_resend<'q>(
    sql: &'q str,
    at: i64,
    options: &StoreOptions,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    sqlx::query(sql)
        .bind(i64::from(options.max_attempts))
        .bind(options.ordering)
        .bind(at)
        .bind(options.ordering)
}

/// With ordering on, pending deliveries written while it was off join their streams, so that
/// events stored from now on wait behind them (they themselves keep going out as they are:
/// they were owed no order).
pub(super) async fn join_streams(pool: &SqlitePool) -> Result<()> {
    sqlx::query(
        "UPDATE deliveries SET ordered = 1 \
         WHERE status = 'pending' AND ordered IS NULL AND bot_id IS NOT NULL",
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn resend(
    pool: &SqlitePool,
    keys: &DeliveryKeyCipher,
    project_id: &str,
    key: &str,
    options: &StoreOptions,
) -> Result<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let seq = find(&mut tx, keys, project_id, key).await?;
    let status: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE seq = ?")
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?;
    if status == DeliveryStatus::Pending.code() {
        return Err(StoreError::Invalid(
            "Delivery is still pending; only finished deliveries can be resent".into(),
        ));
    }
    // A first-try success kept its attempt on its own row: it joins the log before the row
    // is reused.
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_seq, attempted_at, duration_ms, status_code, \
         response_body) SELECT seq, last_attempt_at, first_duration_ms, last_status_code, \
         first_response_body FROM deliveries WHERE seq = ? AND first_duration_ms IS NOT NULL",
    )
    .bind(seq)
    .execute(&mut *tx)
    .await?;
    let at = now().timestamp_micros();
    let sql = format!("{RESEND} WHERE seq = ?{RESENT_STREAMS}");
    let resent = bind_resend(&sql, at, options)
        .bind(seq)
        .fetch_all(&mut *tx)
        .await?;
    make_streams_due(&mut tx, &resent, at, options).await?;
    tx.commit().await?;
    Ok(())
}

/// After a resend with ordering on, the first waiting delivery of each stream it touched is
/// made due unless something of the stream is on its way (whose result frees the next, as for
/// any stream): resent deliveries go out one at a time, oldest first.
async fn make_streams_due(
    tx: &mut sqlx::SqliteConnection,
    resent: &[SqliteRow],
    at: i64,
    options: &StoreOptions,
) -> Result<()> {
    if !options.ordering {
        return Ok(());
    }
    let mut streams = std::collections::BTreeSet::new();
    for row in resent {
        let ordered = row.try_get::<Option<i64>, _>("ordered")?.is_some();
        if let (true, Some(bot_id)) = (ordered, row.try_get::<Option<String>, _>("bot_id")?) {
            streams.insert((row.try_get::<String, _>("subscription_id")?, bot_id));
        }
    }
    let sql = concat!(
        make_next_due!(),
        " AND NOT EXISTS (SELECT 1 FROM deliveries WHERE ",
        in_stream!(),
        " AND next_attempt_at IS NOT NULL)"
    );
    for (subscription_id, bot_id) in streams {
        sqlx::query(sql)
            .bind(at)
            .bind(&subscription_id)
            .bind(&bot_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn resend_failed(
    pool: &SqlitePool,
    project_id: &str,
    filter: &DeliveryFilter,
    since: Timestamp,
    options: &StoreOptions,
) -> Result<u64> {
    let mut sql = format!("{RESEND} WHERE seq IN (SELECT d.seq FROM deliveries d WHERE d.project_id = ? AND d.status = 'failure' AND d.created_at >= ?");
    let binds = filter_sql(filter, &mut sql);
    sql.push(')');
    sql.push_str(RESENT_STREAMS);
    let at = now().timestamp_micros();
    let mut query = bind_resend(&sql, at, options)
        .bind(project_id)
        .bind(since.timestamp_micros());
    for value in &binds {
        query = query.bind(value);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let resent = query.fetch_all(&mut *tx).await?;
    make_streams_due(&mut tx, &resent, at, options).await?;
    tx.commit().await?;
    Ok(resent.len() as u64)
}
