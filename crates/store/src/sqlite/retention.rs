//! Deleting finished deliveries past their retention, a small batch at a time, and the recorded
//! data of bots that finished long ago, one bot at a time.
//!
//! Rows are visited in `seq` order, which is the order they were made in, so a pass reads from
//! the oldest row and stops at the first row too young; pending deliveries are kept, whatever
//! their age. Each step is one short transaction on the hot path's writer, between its group
//! commits: a deletion lost in a crash is only done again, so it needs no fsync of its own (a
//! first version on the second writer fsynced each step with the database's lock held, and
//! p99 at 1,000 events/s rose from ~3 to 37 ms during a cleanup). The pages freed go back to
//! SQLite's free list and are reused by new rows (the file does not shrink).

use rusqlite::OptionalExtension;

use crate::error::Result;
use crate::model::{DeliveryStatus, Swept};

use super::records::{delete_media, media_owed};

/// Looks at up to `limit` rows after `after` and deletes the finished ones among them made
/// before `before_micros`, with their attempts, stopping at the first row made later (rows
/// are made in `seq` order, so the rest are younger too): a step reads at most `limit` rows.
pub(super) fn sweep(
    db: &rusqlite::Connection,
    after: i64,
    before_micros: i64,
    limit: u32,
) -> Result<Swept> {
    let mut window = db.prepare_cached(
        "SELECT seq, status, created_at FROM deliveries WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = window
        .query_map(rusqlite::params![after, limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let old: Vec<(i64, String)> = rows
        .into_iter()
        .take_while(|(_, _, created_at)| *created_at < before_micros)
        .map(|(seq, status, _)| (seq, status))
        .collect();
    let Some(&(reached, _)) = old.last() else {
        return Ok(Swept::default());
    };
    let mut attempts =
        db.prepare_cached("DELETE FROM delivery_attempts WHERE delivery_seq = ?1")?;
    let mut deliveries =
        db.prepare_cached("DELETE FROM deliveries WHERE seq = ?1 AND status != 'pending'")?;
    let mut deleted = 0;
    for (seq, status) in &old {
        if status != DeliveryStatus::Pending.code() {
            attempts.execute([seq])?;
            deleted += deliveries.execute([seq])? as u64;
        }
    }
    Ok(Swept {
        deleted,
        reached: Some(reached),
    })
}

/// Deletes the recorded data (transcript, chat, participant events, logs: not the state
/// history) of the next bot after row `after` that finished before `before_micros` and still
/// has some, with the deliveries made from it — unless one of those is still pending, when
/// the bot is passed over until a later pass. `deleted` counts bots whose data went.
pub(super) fn expire_bot_data(
    db: &rusqlite::Connection,
    after: i64,
    before_micros: i64,
) -> Result<Swept> {
    let next: Option<(i64, String)> = db
        .prepare_cached(
            "SELECT seq, id FROM bots WHERE seq > ?1 \
             AND state IN ('ended', 'fatal_error', 'data_deleted') AND updated_at < ?2 \
             AND EXISTS (SELECT 1 FROM bot_records r WHERE r.bot_id = bots.id \
                         AND r.kind != 'bot_event') \
             ORDER BY seq LIMIT 1",
        )?
        .query_row(rusqlite::params![after, before_micros], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let Some((seq, bot_id)) = next else {
        return Ok(Swept::default());
    };
    let deleted = if media_owed(db, &bot_id)? > 0 {
        0
    } else {
        delete_media(db, &bot_id)?;
        1
    };
    Ok(Swept {
        deleted,
        reached: Some(seq),
    })
}
