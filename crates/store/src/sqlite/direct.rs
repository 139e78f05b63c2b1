//! The hot path's own connection. sqlx runs every SQLite statement on a worker thread and
//! hands each result back across a channel; measured under load, those per-statement thread
//! hand-offs — not SQLite — were most of the cost of an event. The hot-path writes (group
//! commits of events and their outbox rows, delivery claims, hand-backs and results) therefore
//! run through rusqlite on a connection of their own, owned by a writer thread that takes one
//! whole transaction per hand-off and keeps its prepared statements from one transaction to the
//! next (re-preparing them was a tenth of the server's time on small transactions). Measured
//! against running each transaction under `block_in_place` on a runtime thread: ~10 % less
//! server CPU per event and ~10–15 % more throughput (BENCHMARKS.md). Everything else stays on
//! sqlx; the database's write lock serialises the two.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqliteConnection;

use super::checkpoint::restart_if_wanted;
use super::gathered_log::discard_uncommitted;
use crate::error::{Result, StoreError};

/// The hot-path connection's page cache: 16 MiB of 4 KiB pages. The outbox's random
/// idempotency-key index and the per-bot indexes make each event touch pages all over the
/// file; with 8 MiB those were mostly misses once the database passed ~100,000 events
/// (sustained throughput fell ~25 % from a 60,000- to a 150,000-event run). Larger caches cost
/// at commit: after a transaction that split index pages SQLite walks the whole cache's hash
/// (`pcache1TruncateUnsafe`, ~8 % of this thread's time with 32 MiB). In nine alternating pairs
/// of 100,000- and 200,000-event runs, 16 and 32 MiB did equally well (each won some pairs,
/// by less than the noise); 16 MiB holds 18 MiB less resident memory.
const CACHE_KIB: i64 = 16 * 1024;

/// Statements kept prepared on the hot-path connection (it uses about twenty).
const STATEMENT_CACHE: usize = 64;

/// Work for the writer thread.
type Task = Box<dyn FnOnce(&rusqlite::Connection) + Send>;

/// The hot path's writer connection, owned by a thread of its own that runs the hot path's
/// transactions one after another. Its commits do not wait for the disk
/// (`synchronous = NORMAL`): what it writes is either bookkeeping a crash may lose without
/// losing an event (a claim, a hand-back or an attempt result: at worst a delivery is tried
/// again) or event groups, which are acknowledged only once the syncer's fsync of the log
/// covers them. Checkpoints it runs still sync (SQLite does at NORMAL). A thread of its own,
/// rather than `block_in_place` on a runtime thread: every write on the hot path queues for
/// this one connection, so handing a runtime thread's place over and back per transaction was
/// overhead on the busiest path.
#[derive(Clone)]
pub(super) struct HotWriter {
    tasks: std::sync::mpsc::Sender<Task>,
}

impl HotWriter {
    /// Opens a writer on the (already created and migrated) database at `path` and starts its
    /// thread; `restart_log` is set by the checkpointer when the log should start over.
    pub(super) fn open(path: &Path, restart_log: Arc<AtomicBool>) -> Result<Self> {
        let vfs = super::gathered_log::register()?;
        let db = rusqlite::Connection::open_with_flags_and_vfs(
            path,
            rusqlite::OpenFlags::default(),
            vfs,
        )?;
        db.busy_handler(Some(wait_briefly))?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        db.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -{CACHE_KIB}; PRAGMA wal_autocheckpoint = 0; \
             PRAGMA journal_size_limit = 134217728; PRAGMA cache_spill = OFF;"
        ))?;
        let (tasks, queue) = std::sync::mpsc::channel::<Task>();
        std::thread::Builder::new()
            .name("meetwire-writer".into())
            .spawn(move || {
                while let Ok(task) = queue.recv() {
                    if let Err(e) = restart_if_wanted(&db, &restart_log) {
                        tracing::warn!(error = %e, "restarting the log failed");
                    }
                    // A task that panics fails its own caller (its answer is dropped), not
                    // the thread: the transaction it left open is rolled back.
                    let run = std::panic::AssertUnwindSafe(|| task(&db));
                    if std::panic::catch_unwind(run).is_err() {
                        tracing::error!("a hot-path transaction panicked; rolled back");
                        let _ = db.execute_batch("ROLLBACK");
                    }
                    // Log writes of a transaction that rolled back must not reach the log.
                    let dropped = discard_uncommitted(&db);
                    if dropped > 0 {
                        tracing::warn!(
                            bytes = dropped,
                            "dropped a rolled-back transaction's log writes"
                        );
                    }
                }
            })
            .map_err(|e| StoreError::Invalid(format!("cannot start the writer thread: {e}")))?;
        Ok(HotWriter { tasks })
    }

    /// Runs `work` on the writer thread (after completing a checkpoint if the checkpointer
    /// asked for one) and returns what it returned.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let stopped = || StoreError::CommitFailed("the writer thread has stopped".into());
        let (done, answer) = tokio::sync::oneshot::channel();
        self.tasks
            .send(Box::new(move |db| {
                let _ = done.send(work(db));
            }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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
                let failed = StoreError::Sqlite(e);
                Err(if failed.is_disk_full() {
                    StoreError::DiskFull
                } else {
                    StoreError::CommitFailed(failed.to_string())
                })
            }
        },
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_fails_only_its_caller() {
        let dir = tempfile::tempdir().unwrap();
        let restart = Arc::new(AtomicBool::new(false));
        let writer = HotWriter::open(&dir.path().join("db"), restart).unwrap();
        let failed = writer
            .run(|db| -> Result<()> {
                db.execute_batch("BEGIN IMMEDIATE")?;
                panic!("a bug inside a transaction");
            })
            .await;
        assert!(failed.is_err());
        // The thread lives on, and the transaction the task left open was rolled back.
        let one: i64 = writer
            .run(|db| immediate(db, |db| Ok(db.query_row("SELECT 1", [], |r| r.get(0))?)))
            .await
            .unwrap();
        assert_eq!(one, 1);
    }

    #[tokio::test]
    async fn the_writer_never_spills_frames_before_a_commit() {
        // Its log writes are gathered until the commit (`gathered_log`), which a spill
        // followed by a rollback would leave behind.
        let dir = tempfile::tempdir().unwrap();
        let restart = Arc::new(AtomicBool::new(false));
        let writer = HotWriter::open(&dir.path().join("db"), restart).unwrap();
        let spill: i64 = writer
            .run(|db| Ok(db.query_row("PRAGMA cache_spill", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(spill, 0);
    }
}
