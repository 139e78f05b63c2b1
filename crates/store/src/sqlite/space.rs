//! Whether the disk holding the database is out of room, for readiness. A write refused with
//! SQLITE_FULL marks it; it is cleared once the data directory's filesystem has room again,
//! checked when asked, so readiness recovers by itself even when no write comes (a server a
//! load balancer took out of rotation gets none).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::StoreError;

/// Free space below which the disk still counts as full: room for a few groups of log frames.
const ROOM: u64 = 1 << 20;

pub(super) struct DiskSpace {
    full: AtomicBool,
    dir: PathBuf,
}

impl DiskSpace {
    pub(super) fn new(dir: PathBuf) -> Self {
        DiskSpace {
            full: AtomicBool::new(false),
            dir,
        }
    }

    /// Notes a write's failure: marks the disk full if that is why it failed.
    pub(super) fn note(&self, error: &StoreError) {
        if error.is_disk_full() {
            self.full.store(true, Ordering::Release);
        }
    }

    /// Why the disk counts as full, if it does.
    pub(super) fn full(&self) -> Option<String> {
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        match rustix::fs::statvfs(&self.dir) {
            Ok(stats) => {
                let free = stats.f_bavail.saturating_mul(stats.f_frsize);
                if free >= ROOM {
                    self.full.store(false, Ordering::Release);
                    return None;
                }
                Some(format!(
                    "the disk holding {} is full ({free} bytes free): writes are refused until \
                     space is freed",
                    self.dir.display()
                ))
            }
            Err(e) => Some(format!(
                "a write found the disk holding {} full, and its free space cannot be read: {e}",
                self.dir.display()
            )),
        }
    }
}
