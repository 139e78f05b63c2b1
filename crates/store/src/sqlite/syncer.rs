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

use tokio::sync::{mpsc, oneshot};

/// Work that runs once the transactions committed before it was queued are durable; it gets
/// the sync's error if there was one.
pub(super) type AfterSync = Box<dyn FnOnce(Result<(), String>) + Send>;

#[derive(Clone)]
pub(super) struct Syncer {
    queue: mpsc::UnboundedSender<AfterSync>,
}

impl Syncer {
    /// Starts syncing the write-ahead log at `wal`.
    pub(super) fn start(wal: PathBuf) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(wal, rx));
        Syncer { queue }
    }

    /// Runs `work` after the next sync (at once, with an error, if the syncer has stopped).
    pub(super) fn after_sync(&self, work: AfterSync) {
        if let Err(mpsc::error::SendError(work)) = self.queue.send(work) {
            work(Err("the store is shutting down".into()));
        }
    }

    /// Waits until everything committed so far is durable.
    pub(super) async fn durable(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.after_sync(Box::new(move |result| {
            let _ = done.send(result);
        }));
        wait.await
            .unwrap_or_else(|_| Err("the store is shutting down".into()))
    }
}

async fn run(wal: PathBuf, mut rx: mpsc::UnboundedReceiver<AfterSync>) {
    let mut file: Option<File> = None;
    let mut waiting = Vec::new();
    while rx.recv_many(&mut waiting, 4096).await > 0 {
        let (reopened, result) = tokio::task::spawn_blocking({
            let wal = wal.clone();
            let file = file.take();
            move || sync(&wal, file)
        })
        .await
        .unwrap_or_else(|e| (None, Err(format!("the log sync task failed: {e}"))));
        file = reopened;
        if let Err(e) = &result {
            tracing::error!(error = %e, "syncing the write-ahead log failed");
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
