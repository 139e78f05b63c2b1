//! Durability off the writer's critical path. The hot-path transactions commit without waiting
//! for the disk (`synchronous = NORMAL` in WAL mode: the frames are written, not fsynced) and
//! then queue what must wait for durability — the API's answers, hand-offs to the dispatcher —
//! here. One fsync of the log file covers every transaction committed before it started, so
//! while the disk syncs one group the writer already runs the next instead of sitting in fsync
//! with the write lock held. Nothing is answered or sent before the fsync that covers it.
//!
//! Checkpoints stay safe: the checkpointer syncs the log before copying it and the database
//! file before the log may be reused (SQLite does both for any `synchronous` above OFF).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
/// equal nothing is waiting for the disk, and work that only needs earlier commits durable
/// (a claim, a freed stream head) need not cost an fsync.
#[derive(Default)]
struct Progress {
    committed: AtomicU64,
    synced: AtomicU64,
}

impl Syncer {
    /// Starts syncing the write-ahead log at `wal`.
    pub(super) fn start(wal: PathBuf) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let progress = Arc::new(Progress::default());
        tokio::spawn(run(wal, rx, progress.clone()));
        Syncer { queue, progress }
    }

    /// Counts a relaxed commit. Called on the writer connection right after COMMIT, before the
    /// connection is released: anything that can read the commit's rows comes after this.
    pub(super) fn note_commit(&self) {
        self.progress.committed.fetch_add(1, Ordering::AcqRel);
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

    /// Runs `work` after the next sync (at once, with an error, if the syncer has stopped).
    pub(super) fn after_sync(&self, work: AfterSync) {
        if let Err(mpsc::error::SendError(work)) = self.queue.send(work) {
            work(Err("the store is shutting down".into()));
        }
    }

    /// Waits until every commit noted so far is durable.
    pub(super) async fn durable(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.when_durable(Box::new(move |result| {
            let _ = done.send(result);
        }));
        wait.await
            .unwrap_or_else(|_| Err("the store is shutting down".into()))
    }
}

async fn run(wal: PathBuf, mut rx: mpsc::UnboundedReceiver<AfterSync>, progress: Arc<Progress>) {
    let mut file: Option<File> = None;
    let mut waiting = Vec::new();
    while rx.recv_many(&mut waiting, 4096).await > 0 {
        let covered = progress.committed.load(Ordering::Acquire);
        let started = std::time::Instant::now();
        let (reopened, result) = tokio::task::spawn_blocking({
            let wal = wal.clone();
            let file = file.take();
            move || sync(&wal, file)
        })
        .await
        .unwrap_or_else(|e| (None, Err(format!("the log sync task failed: {e}"))));
        file = reopened;
        if started.elapsed() > SLOW_SYNC {
            let millis = started.elapsed().as_millis() as u64;
            tracing::warn!(
                millis,
                waiting = waiting.len(),
                "the disk took long to sync the log"
            );
        }
        match &result {
            Ok(()) => {
                progress.synced.fetch_max(covered, Ordering::AcqRel);
            }
            Err(e) => tracing::error!(error = %e, "syncing the write-ahead log failed"),
        }
        for work in waiting.drain(..) {
            work(result.clone());
        }
    }
}

/// fsyncs the log, opening it on first use; keeps the handle for the next time.
fn sync(wal: &PathBuf, file: Option<File>) -> (Option<File>, Result<(), String>) {
    let file = match file {
        Some(file) => file,
        None => match File::options().read(true).write(true).open(wal) {
            Ok(file) => file,
            Err(e) => return (None, Err(format!("cannot open {}: {e}", wal.display()))),
        },
    };
    match file.sync_data() {
        Ok(()) => (Some(file), Ok(())),
        Err(e) => (None, Err(format!("fsync of {} failed: {e}", wal.display()))),
    }
}
