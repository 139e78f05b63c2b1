//! Keeping the write-ahead log short. The checkpointer copies the log into the database file
//! on its own connection, off the commit path (a checkpoint run by a commit, SQLite's default,
//! made that commit wait for the copy and an fsync of the database file); PASSIVE never blocks
//! writers or readers. But under a steady stream of commits a background checkpoint never
//! catches up with the end of the log, so SQLite never starts the log over and it grows
//! without bound — every commit then extends the file (block allocation and zeroing in the
//! kernel) and the log index grows with it. When the log is long, the hot-path writer therefore
//! finishes the checkpoint itself before its next transaction (copying only what was written
//! since the last background pass), and its next commit starts the log from the beginning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;

use crate::error::Result;

/// How often the checkpointer copies the log into the database file.
const INTERVAL: Duration = Duration::from_millis(100);

/// Log length (in frames, one per page written: 16 MiB of 4 KiB pages) past which the writer
/// restarts the log.
const RESTART_FRAMES: i64 = 4_096;

/// The checkpointer's loop; sets `restart` when the log should be started over.
pub(super) async fn run(pool: SqlitePool, restart: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_, log_frames, _)) if log_frames > RESTART_FRAMES => {
                restart.store(true, Ordering::Release);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
        }
    }
}

/// On the writer connection, outside any transaction: completes the checkpoint if the
/// checkpointer asked for it, so that the next commit starts the log over.
pub(super) fn restart_if_wanted(db: &rusqlite::Connection, restart: &AtomicBool) -> Result<()> {
    if restart.swap(false, Ordering::AcqRel) {
        let (busy, log, copied): (i64, i64, i64) =
            db.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
        tracing::debug!(busy, log, copied, "log checkpointed by the writer");
    }
    Ok(())
}
