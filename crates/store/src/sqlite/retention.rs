//! Deleting finished deliveries past their retention, a small batch at a time, and the recorded
//! data of bots that finished long ago, one bot at a time.
//!
//! Rows are visited in `seq` order, which is the order they were made in, so a pass reads from
//! the oldest row and stops at the first window with nothing old enough; pending deliveries in
//! the window are kept, whatever their age. Each batch is one short transaction on the second
//! writer: the hot path's writes wait for at most one batch, never for a whole cleanup. The
//! pages freed go back to SQLite's free list and are reused by new rows, so a database under
//! a steady load stops growing once its oldest rows fall out of the window.

use sqlx::SqlitePool;

use super::direct::with_direct;
use super::records::{delete_media, media_owed};

use crate::error::Result;
use crate::model::{DeliveryStatus, Swept};

/// Looks at up to `limit` rows after `after` and deletes the finished ones among them made
/// before `before_micros`, with their attempts, stopping at the first row made later (rows
/// are made in `seq` order, so the rest are younger too): a batch reads at most `limit` rows.
pub(super) async fn sweep(
    pool: &SqlitePool,
    after: i64,
    before_micros: i64,
    limit: u32,
) -> Result<Swept> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT seq, status, created_at FROM deliveries WHERE seq > ? ORDER BY seq LIMIT ?",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&mut *tx)
    .await?;
    let window: Vec<(i64, String)> = rows
        .into_iter()
        .take_while(|(_, _, created_at)| *created_at < before_micros)
        .map(|(seq, status, _)| (seq, status))
        .collect();
    let Some(&(reached, _)) = window.last() else {
        return Ok(Swept::default());
    };
    let mut deleted = 0;
    for (seq, status) in &window {
        if status == DeliveryStatus::Pending.code() {
            continue;
        }
        sqlx::query("DELETE FROM delivery_attempts WHERE delivery_seq = ?")
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        deleted += sqlx::query("DELETE FROM deliveries WHERE seq = ? AND status != 'pending'")
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(Swept {
        deleted,
        reached: Some(reached),
    })
}

/// Deletes the recorded data (transcript, chat, participant events, logs: not the state
/// history) of the next bot after row `after` that finished before `before_micros` and still
/// has some, with the deliveries made from it — unless one of those is still pending, when
/// the bot is passed over until a later pass. `deleted` counts bots whose data went.
pub(super) async fn expire_bot_data(
    pool: &SqlitePool,
    after: i64,
    before_micros: i64,
) -> Result<Swept> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let next: Option<(i64, String)> = sqlx::query_as(
        "SELECT seq, id FROM bots WHERE seq > ? \
         AND state IN ('ended', 'fatal_error', 'data_deleted') AND updated_at < ? \
         AND EXISTS (SELECT 1 FROM bot_records r WHERE r.bot_id = bots.id \
                     AND r.kind != 'bot_event') \
         ORDER BY seq LIMIT 1",
    )
    .bind(after)
    .bind(before_micros)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((seq, bot_id)) = next else {
        return Ok(Swept::default());
    };
    let deleted = with_direct(&mut tx, |db| {
        if media_owed(db, &bot_id)? > 0 {
            return Ok(0);
        }
        delete_media(db, &bot_id)?;
        Ok(1)
    })
    .await?;
    tx.commit().await?;
    Ok(Swept {
        deleted,
        reached: Some(seq),
    })
}
