//! Deleting finished deliveries past their retention, a small batch at a time.
//!
//! Rows are visited in `seq` order, which is the order they were made in, so a pass reads from
//! the oldest row and stops at the first window with nothing old enough; pending deliveries in
//! the window are kept, whatever their age. Each batch is one short transaction on the second
//! writer: the hot path's writes wait for at most one batch, never for a whole cleanup. The
//! pages freed go back to SQLite's free list and are reused by new rows, so a database under
//! a steady load stops growing once its oldest rows fall out of the window.

use sqlx::SqlitePool;

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
