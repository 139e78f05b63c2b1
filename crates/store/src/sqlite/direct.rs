//! Direct access to the writer connection for the hot path. sqlx runs every SQLite statement
//! on a worker thread and hands each result back across a channel; measured under load, those
//! thread hand-offs — not SQLite — were most of the cost of an event. The hot-path writes
//! (group commits of events and their outbox rows, delivery claims and results) therefore lock
//! the same connection's raw handle and run their statements in place through rusqlite, one
//! hand-off per group instead of one per statement. Everything else stays on sqlx.

use sqlx::SqliteConnection;

use crate::error::{Result, StoreError};

/// Runs `work` on the connection through rusqlite, on this thread, with the connection locked.
pub(super) async fn with_direct<T>(
    conn: &mut SqliteConnection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle();
    // SAFETY: `handle` keeps the connection locked for sqlx until it is dropped after `work`
    // returns, so nothing else uses it meanwhile; `from_handle` borrows the handle and does not
    // close it when the rusqlite `Connection` is dropped.
    let db = unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) }?;
    let run = || work(&db);
    // The work may wait on the disk (fsync at commit): let the runtime move other tasks away.
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let result = if multi_thread {
        tokio::task::block_in_place(run)
    } else {
        run()
    };
    drop(db);
    drop(handle);
    result
}

/// Runs `work` in a `BEGIN IMMEDIATE` transaction, committing on success.
pub(super) fn immediate<T>(
    db: &rusqlite::Connection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    db.execute_batch("BEGIN IMMEDIATE")?;
    match work(db) {
        Ok(value) => match db.execute_batch("COMMIT") {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = db.execute_batch("ROLLBACK");
                Err(StoreError::CommitFailed(e.to_string()))
            }
        },
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Commits without waiting for the disk. For bookkeeping a crash may lose without losing an
/// event (a claim or an attempt result: at worst a delivery is tried again), and for event
/// groups, which are acknowledged only after the syncer's fsync of the log covers them.
pub(super) fn relaxed<T>(
    db: &rusqlite::Connection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    db.execute_batch("PRAGMA synchronous = NORMAL")?;
    let result = immediate(db, work);
    db.execute_batch("PRAGMA synchronous = FULL")?;
    result
}
