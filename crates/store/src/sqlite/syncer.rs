//! Durability off the writer's critical path. The hot-path transactions commit without waiting
//! for the disk (`synchronous = NORMAL` in WAL mode: the frames are written, not fsynced) and
//! then queue what must wait for durability — the API's answers, hand-offs to the dispatcher —
//! here. One fsync of the log file covers every transaction committed before it started, so
//! while the disk syncs one group the writer already runs the next instead of sitting in fsync
//! with the write lock held. Nothing is answered or sent before the fsync that covers it.
//!
//! A failed fsync is final. After one, Linux may have dropped the pages it could not write and
//! a later fsync succeeds without them; SQLite's recovery stops at the first frame that did not
//! reach the disk, so every commit after it would be lost too. So once a sync fails nothing
//! more counts as durable: commits wait in vain and are refused, rows made durable before the
//! failure still count, and the store reports the failure (readiness) until a restart recovers
//! the log from what the disk holds.
//!
//! Checkpoints stay safe: the checkpointer syncs the log before copying it and the database
//! file before the log may be reused (SQLite does both for any `synchronous` above OFF).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

/// An fsync slower than this is logged: acknowledgements wait for it.
const SLOW_SYNC: std::time::Duration = std::time::Duration::from_secs(1);

/// Work that runs once the transactions committed before it was queued are durable; it gets
/// the sync's error if there was one.
pub(super) type AfterSync = Box<dyn FnOnce(Result<(), String>) + Send>;

#[derive(Clone)]
pub(super) struct Syncer {
    queue: mpsc::UnboundedSender<AfterSync>,
    progress: Arc<Progress>,
}

/// Relaxed commits counted, and how many of them the last fsync covered: when the two are
/// equal nothing is waiting for the disk. Beside them, the newest delivery row (by `seq`,
/// which only grows) each count had reached: work that only needs one older row durable — a
/// stream's next delivery freed by its head's result, a claimed retry — need not wait for the
/// fsync of commits made after that row. `failed` holds the first fsync's error, for good.
#[derive(Default)]
struct Progress {
    committed: AtomicU64,
    synced: AtomicU64,
    committed_seq: AtomicI64,
    synced_seq: AtomicI64,
    failed: OnceLock<String>,
}

impl Progress {
    /// Records the first failed sync, for good.
    fn latch(&self, error: &str) {
        if self.failed.set(error.to_owned()).is_ok() {
            tracing::error!(
                error = %error,
                "syncing the write-ahead log failed: nothing more is acknowledged; restart \
                 meetwire to recover the log from the disk"
            );
        }
    }
}

impl Syncer {
    /// Starts syncing the write-ahead log at `wal`; `newest_seq` is the newest delivery row
    /// already in the database (its first fsync makes them all count as durable).
    pub(super) fn start(wal: PathBuf, newest_seq: i64) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let progress = Arc::new(Progress::default());
        // Rows from before the start may sit in the log unsynced (a crashed process wrote
        // them): count them as one commit, so that the first fsync is what covers them.
        progress.committed_seq.store(newest_seq, Ordering::Release);
        progress
            .committed
            .store(u64::from(newest_seq > 0), Ordering::Release);
        tokio::spawn(run(wal, rx, progress.clone()));
        Syncer { queue, progress }
    }

    /// Counts a relaxed commit whose newest delivery row is `newest_seq`. Called on the writer
    /// connection right after COMMIT, before the connection is released: anything that can
    /// read the commit's rows comes after this.
    pub(super) fn note_commit(&self, newest_seq: i64) {
        self.progress
            .committed_seq
            .fetch_max(newest_seq, Ordering::AcqRel);
        self.progress.committed.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts the delivery rows up to `seq` as durable: a commit at `synchronous = FULL` (the
    /// second writer's) fsynced the log with them and every row before them. Without this, a
    /// claim of such a row would wait for a fsync of its own (it is newer than any commit
    /// counted here, like another process's).
    pub(super) fn note_durable(&self, seq: i64) {
        if self.failure().is_none() {
            self.progress.committed_seq.fetch_max(seq, Ordering::AcqRel);
            self.progress.synced_seq.fetch_max(seq, Ordering::AcqRel);
        }
    }

    /// Runs `work` once every commit noted so far is durable: at once if the last fsync
    /// covered them all, else after the next one.
    pub(super) fn when_durable(&self, work: AfterSync) {
        let progress = &self.progress;
        if progress.synced.load(Ordering::Acquire) >= progress.committed.load(Ordering::Acquire) {
            work(Ok(()));
        } else {
            self.after_sync(work);
        }
    }

    /// Records a failed fsync seen on another connection (a write committed at
    /// `synchronous = FULL`): it is as final as one of ours.
    pub(super) fn fail(&self, error: &str) {
        self.progress.latch(error);
    }

    /// The error of the fsync that failed, if one did: nothing is made durable since.
    pub(super) fn failure(&self) -> Option<String> {
        self.progress.failed.get().cloned()
    }

    /// Runs `work` once the delivery rows up to `seq` are durable: at once if an fsync has
    /// covered them, else after the next one. A row newer than any commit this process counted
    /// was written by another process sharing the database, at `synchronous = NORMAL`: only a
    /// fresh fsync of the log is known to cover it (ours would not wait for one otherwise).
    pub(super) fn when_rows_durable(&self, seq: i64, work: AfterSync) {
        let progress = &self.progress;
        if progress.synced_seq.load(Ordering::Acquire) >= seq {
            work(Ok(()));
        } else if progress.committed_seq.load(Ordering::Acquire) >= seq {
            self.when_durable(work);
        } else {
            self.after_sync(work);
        }
    }

    /// Runs `work` after the next sync (at once, with an error, if a sync failed before or
    /// the syncer has stopped).
    pub(super) fn after_sync(&self, work: AfterSync) {
        if let Some(failed) = self.failure() {
            return work(Err(failed));
        }
        if let Err(mpsc::error::SendError(work)) = self.queue.send(work) {
            work(Err("the store is shutting down".into()));
        }
    }

    /// Waits until the delivery rows up to `seq` are durable.
    pub(super) async fn rows_durable(&self, seq: i64) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.when_rows_durable(
            seq,
            Box::new(move |result| {
                let _ = done.send(result);
            }),
        );
        wait.await
            .unwrap_or_else(|_| Err("the store is shutting down".into()))
    }
}

/// Log syncs allowed in flight at once: commits made while one fsync runs start their own
/// instead of waiting for it to end first (they would otherwise wait up to two fsyncs).
///
/// Each runs on its own open file of the log. Linux reports a write-back error once per open
/// file: two fsyncs on one file could both cover the failed page while only one of them gets
/// the error, and the other's batch would be answered as durable.
const SYNCS_IN_FLIGHT: usize = 2;

/// What one fsync covers and who waits for it.
struct Batch {
    covered: u64,
    covered_seq: i64,
    waiting: Vec<AfterSync>,
    started: std::time::Instant,
}

async fn run(wal: PathBuf, mut rx: mpsc::UnboundedReceiver<AfterSync>, progress: Arc<Progress>) {
    // Opened now if the log is there, so that write-back errors from here on reach these files
    // (one that happened before they were open would not); else at the first sync.
    let mut files: Vec<Arc<File>> = open_log(&wal).unwrap_or_default();
    let mut free_slots: Vec<usize> = (0..SYNCS_IN_FLIGHT).collect();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut batches = std::collections::HashMap::new();
    let mut waiting = Vec::new();
    let mut open = true;
    loop {
        tokio::select! {
            received = rx.recv_many(&mut waiting, 4096), if open && !free_slots.is_empty() => {
                if received == 0 {
                    open = false;
                    continue;
                }
                // The guard left a slot free; without one the work stays in `waiting`.
                let Some(slot) = free_slots.pop() else {
                    continue;
                };
                let batch = Batch {
                    covered_seq: progress.committed_seq.load(Ordering::Acquire),
                    covered: progress.committed.load(Ordering::Acquire),
                    waiting: std::mem::take(&mut waiting),
                    started: std::time::Instant::now(),
                };
                let handle = match files.get(slot) {
                    Some(file) => Ok(file.clone()),
                    None => open_log(&wal).map(|opened| {
                        files = opened;
                        files[slot].clone()
                    }),
                };
                let wal = wal.clone();
                let task = in_flight.spawn_blocking(move || {
                    handle.and_then(|file| {
                        file.sync_data()
                            .map_err(|e| format!("fsync of {} failed: {e}", wal.display()))
                    })
                });
                batches.insert(task.id(), (batch, slot));
            }
            Some(done) = in_flight.join_next_with_id() => {
                let (id, result) = match done {
                    Ok((id, result)) => (id, result),
                    Err(e) => (e.id(), Err(format!("the log sync task failed: {e}"))),
                };
                if let Some((batch, slot)) = batches.remove(&id) {
                    free_slots.push(slot);
                    finish(batch, result, &progress);
                }
            }
            else => break,
        }
    }
}

/// Records what a finished fsync covered and runs the work that waited for it.
fn finish(batch: Batch, result: Result<(), String>, progress: &Progress) {
    let elapsed = batch.started.elapsed();
    if elapsed > SLOW_SYNC {
        tracing::warn!(
            millis = elapsed.as_millis() as u64,
            waiting = batch.waiting.len(),
            "the disk took long to sync the log"
        );
    }
    if let Err(e) = &result {
        progress.latch(e);
    }
    // A sync that succeeds after one failed proves nothing about the pages the failure lost.
    let result = match progress.failed.get() {
        Some(failed) => Err(failed.clone()),
        None => result,
    };
    if result.is_ok() {
        progress
            .synced_seq
            .fetch_max(batch.covered_seq, Ordering::AcqRel);
        progress.synced.fetch_max(batch.covered, Ordering::AcqRel);
    }
    for work in batch.waiting {
        work(result.clone());
    }
}

/// Opens the log for syncing, once per process, one open file per sync slot. Its directory is
/// synced first: a log created by this start (or the database file beside it) is only found
/// after a power loss if its directory entry reached the disk, which fsyncing the file itself
/// does not promise.
fn open_log(wal: &PathBuf) -> Result<Vec<Arc<File>>, String> {
    let logs = (0..SYNCS_IN_FLIGHT)
        .map(|_| {
            File::options()
                .read(true)
                .write(true)
                .open(wal)
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot open {}: {e}", wal.display()))?;
    let dir = wal
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("fsync of {} failed: {e}", dir.display()))?;
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Whether `when_rows_durable(seq, …)` ran its work before returning.
    fn runs_at_once(syncer: &Syncer, seq: i64) -> bool {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        syncer.when_rows_durable(seq, Box::new(move |_| flag.store(true, Ordering::SeqCst)));
        ran.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn rows_count_as_durable_only_once_an_fsync_covered_them() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("log");
        std::fs::write(&wal, b"frames").unwrap();
        let syncer = Syncer::start(wal, 5);
        // Rows from before the start wait for the first fsync, then need no other.
        assert!(!runs_at_once(&syncer, 5));
        syncer.rows_durable(5).await.unwrap();
        assert!(runs_at_once(&syncer, 5));
        // A newer commit: its rows wait for the next fsync, older rows still need none.
        syncer.note_commit(9);
        assert!(!runs_at_once(&syncer, 7));
        assert!(runs_at_once(&syncer, 4));
        syncer.rows_durable(9).await.unwrap();
        assert!(runs_at_once(&syncer, 9));
        // A row another process wrote (newer than any commit counted here) waits for an
        // fsync of its own, though nothing of ours is waiting.
        assert!(!runs_at_once(&syncer, 12));
        syncer.rows_durable(12).await.unwrap();
        // Rows a FULL commit of ours made durable need none.
        syncer.note_durable(15);
        assert!(runs_at_once(&syncer, 15));
    }

    #[tokio::test]
    async fn after_a_failed_fsync_nothing_more_counts_as_durable() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("log");
        // No log file yet: the first sync fails for real (it cannot open the file).
        let syncer = Syncer::start(wal.clone(), 3);
        assert!(syncer.rows_durable(3).await.is_err());
        assert!(syncer.failure().is_some());
        // The file is there now and an fsync of it would succeed: still nothing is durable.
        std::fs::write(&wal, b"frames").unwrap();
        syncer.note_commit(4);
        assert!(syncer.rows_durable(4).await.is_err());
        let (done, answer) = oneshot::channel();
        syncer.after_sync(Box::new(move |r| {
            let _ = done.send(r);
        }));
        assert!(answer.await.unwrap().is_err());
    }
}
