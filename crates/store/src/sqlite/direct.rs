//! The hot path's own connection. sqlx runs every SQLite statement on a worker thread and
//! hands each result back across a channel; measured under load, those thread hand-offs — not
//! SQLite — were most of the cost of an event. The hot-path writes (group commits of events and
//! their outbox rows, delivery claims, hand-backs and results) therefore run in place through
//! rusqlite on a connection of their own, which also keeps its prepared statements from one
//! transaction to the next (re-preparing them was a tenth of the server's time on small
//! transactions). Everything else stays on sqlx; the database's write lock serialises the two.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::SqliteConnection;

use super::checkpoint::restart_if_wanted;
use crate::error::{Result, StoreError};

/// The hot-path connection's page cache: 32 MiB of 4 KiB pages. The outbox's random
/// idempotency-key index and the per-bot indexes make each event touch pages all over the
/// file; with 8 MiB those were mostly misses once the database passed ~100,000 events
/// (sustained throughput fell ~25 % from a 60,000- to a 150,000-event run). Larger caches cost
/// at commit: SQLite walks the whole cache's hash after a transaction that split index pages.
const CACHE_KIB: i64 = 32 * 1024;

/// Statements kept prepared on the hot-path connection (it uses about twenty).
const STATEMENT_CACHE: usize = 64;

/// The hot path's writer connection. Its commits do not wait for the disk
/// (`synchronous = NORMAL`): what it writes is either bookkeeping a crash may lose without
/// losing an event (a claim, a hand-back or an attempt result: at worst a delivery is tried
/// again) or event groups, which are acknowledged only once the syncer's fsync of the log
/// covers them. Checkpoints it runs still sync (SQLite does at NORMAL).
#[derive(Clone)]
pub(super) struct HotWriter {
    db: Arc<Mutex<rusqlite::Connection>>,
    /// Set by the checkpointer when the log should be started over (`checkpoint`).
    restart_log: Arc<AtomicBool>,
}

impl HotWriter {
    /// Opens a writer on the (already created and migrated) database at `path`.
    pub(super) fn open(path: &Path, restart_log: Arc<AtomicBool>) -> Result<Self> {
        let db = rusqlite::Connection::open(path)?;
        db.busy_handler(Some(wait_briefly))?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        db.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -{CACHE_KIB}; PRAGMA wal_autocheckpoint = 0; \
             PRAGMA journal_size_limit = 134217728;"
        ))?;
        Ok(HotWriter {
            db: Arc::new(Mutex::new(db)),
            restart_log,
        })
    }

    /// Runs `work` on the connection, on this thread, moving other tasks off it meanwhile;
    /// first completes a checkpoint if the checkpointer asked for one.
    pub(super) async fn run<T>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        off_the_runtime(|| {
            let db = self.db.lock().map_err(|_| {
                StoreError::CommitFailed("the writer connection is poisoned".into())
            })?;
            restart_if_wanted(&db, &self.restart_log)?;
            work(&db)
        })
    }
}

/// Pause between two tries for the write lock while another connection holds it.
const BUSY_PAUSE: Duration = Duration::from_micros(100);

/// Tries for about ten seconds, as the other connections' busy timeout.
const BUSY_TRIES: i32 = 100_000;

/// Waits for the write lock in short, even steps. SQLite's own busy timeout sleeps in
/// growing steps (up to 100 ms), so one short write on the other connection (a heartbeat, a
/// new bot) could stall the hot path for tens of milliseconds; this waits about as long as
/// the lock is actually held.
fn wait_briefly(tries: i32) -> bool {
    std::thread::sleep(BUSY_PAUSE);
    tries < BUSY_TRIES
}

/// Runs blocking database work (it may wait for the write lock or the disk) so that the
/// runtime moves its other tasks to another thread meanwhile.
fn off_the_runtime<T>(work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Runs `work` on a sqlx connection through rusqlite, on this thread, with the connection
/// locked (for hot-path code called inside a sqlx transaction).
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
    let result = off_the_runtime(|| work(&db));
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
