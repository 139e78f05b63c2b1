//! A VFS that writes each commit's write-ahead-log frames with two system calls, not two per
//! frame (more only past 124 KiB, the most the default VFS writes at once). SQLite writes
//! every log frame as two `pwrite`s — its 24-byte header, then the page — so a commit of N
//! frames costs 2N calls, each taking the file's locks and touching up to two kernel pages (a
//! 4,120-byte frame straddles them). Profiled under load, those calls were ~30 % of the hot-path
//! writer's time. This VFS, the platform's default underneath, gathers consecutive writes to the
//! log in memory and writes them out together when the commit frame's header arrives (its page
//! follows straight through) — before SQLite publishes the commit in the WAL index, so no
//! reader and no fsync can miss a frame.
//! Any other use of the log file (a read, sync, truncate, size query, lock, file control, a
//! write elsewhere, close) first writes out what is gathered, so SQLite always finds the file
//! as if every write had gone straight through. Every other file is the default VFS's own.
//!
//! Frames SQLite writes before a commit — a page-cache spill in a large transaction — are
//! gathered too, and if that transaction rolls back no further call writes them out: they would
//! land later, over frames another connection has committed at the same place in the log since.
//! So a connection opened here must not spill (`PRAGMA cache_spill = OFF`), and anything still
//! gathered once its transaction is over is dropped (`discard_uncommitted`). It must also
//! commit at `synchronous = NORMAL`: at FULL, SQLite may pad the log after the commit frame and
//! split a padding frame around an fsync, leaving its tail gathered when the commit is
//! published.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi;

use crate::error::{Result, StoreError};

/// The name connections open the database with to gather their log writes.
pub(super) const VFS_NAME: &str = "meetwire-gathered-log";
const VFS_NAME_C: &CStr = c"meetwire-gathered-log";

/// Size of a log frame's header; bytes 4..8 hold the database size after a commit frame and
/// are zero in every other frame.
const FRAME_HEADER: usize = 24;
/// The log's own header precedes the first frame.
const LOG_HEADER: i64 = 32;
/// Writes gathered beyond this go out at once (a transaction larger than the page cache).
const MAX_GATHERED: usize = 1 << 20;
/// The default VFS writes at most 128 KiB - 1 bytes per call (it masks larger sizes).
const MAX_WRITE: usize = 124 << 10;

/// The default VFS, which does the real work.
static DEFAULT: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(std::ptr::null_mut());

/// Registers the VFS (once per process) and returns its name.
pub(super) fn register() -> Result<&'static str> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            // SAFETY: the default VFS lives as long as the process; the new VFS is leaked, so
            // it does too, as SQLite requires of a registered VFS.
            unsafe {
                let default = ffi::sqlite3_vfs_find(std::ptr::null());
                if default.is_null() {
                    return Err("SQLite has no default VFS".to_owned());
                }
                DEFAULT.store(default, Ordering::Release);
                let mut vfs = *default;
                vfs.szOsFile = inner_offset() as c_int + (*default).szOsFile;
                vfs.zName = VFS_NAME_C.as_ptr();
                vfs.pNext = std::ptr::null_mut();
                vfs.xOpen = Some(open);
                let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
                if rc != ffi::SQLITE_OK {
                    return Err(format!("registering the log VFS failed ({rc})"));
                }
                Ok(())
            }
        })
        .clone()
        .map(|()| VFS_NAME)
        .map_err(StoreError::Invalid)
}

/// Drops log writes still gathered on `db` outside a transaction: they belong to one that
/// rolled back (a commit always writes everything out). Returns how many bytes were dropped.
pub(super) fn discard_uncommitted(db: &rusqlite::Connection) -> usize {
    if !db.is_autocommit() {
        return 0;
    }
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the connection is open; SQLite writes the log file's pointer (or null) into
    // `file`. The file is ours only if it carries our methods, and the writer thread that owns
    // the connection is the only one calling into it.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            db.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            std::ptr::addr_of_mut!(file).cast(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || !std::ptr::eq((*file).pMethods, &LOG_METHODS) {
            return 0;
        }
        let gathered = &mut *(*file.cast::<LogFile>()).gathered;
        let dropped = gathered.bytes.len();
        gathered.bytes.clear();
        gathered.commit_page_at = None;
        dropped
    }
}

/// An open log file: SQLite's handle, then the default VFS's file for the same log.
#[repr(C)]
struct LogFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    gathered: *mut Gathered,
}

/// Where the default VFS's file sits inside the memory SQLite gives us for a file.
const fn inner_offset() -> usize {
    std::mem::size_of::<LogFile>().next_multiple_of(16)
}

/// Consecutive log writes not yet handed to the file.
#[derive(Default)]
struct Gathered {
    start: i64,
    bytes: Vec<u8>,
    /// Where a commit frame's page goes once its header was written: that write goes straight
    /// through, completing the commit.
    commit_page_at: Option<i64>,
}

impl Gathered {
    fn end(&self) -> i64 {
        self.start + self.bytes.len() as i64
    }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let default = DEFAULT.load(Ordering::Acquire);
    let Some(default_open) = (*default).xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a log: the default VFS's file, in place, untouched.
        return default_open(default, name, file, flags, out_flags);
    }
    let log = file.cast::<LogFile>();
    // SQLite calls no method of a file whose open failed (`pMethods` left null).
    (*log).base.pMethods = std::ptr::null();
    let inner = file
        .cast::<u8>()
        .add(inner_offset())
        .cast::<ffi::sqlite3_file>();
    let rc = default_open(default, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    (*log).inner = inner;
    (*log).gathered = Box::into_raw(Box::<Gathered>::default());
    (*log).base.pMethods = &LOG_METHODS;
    ffi::SQLITE_OK
}

/// The default file under a log file, its methods and what is gathered for it.
///
/// # Safety
/// `file` must be a log file opened by `open` and not yet closed.
unsafe fn parts<'a>(
    file: *mut ffi::sqlite3_file,
) -> (
    *mut ffi::sqlite3_file,
    &'a ffi::sqlite3_io_methods,
    &'a mut Gathered,
) {
    let log = file.cast::<LogFile>();
    let inner = (*log).inner;
    (inner, &*(*inner).pMethods, &mut *(*log).gathered)
}

/// Writes out what is gathered.
unsafe fn flush(
    inner: *mut ffi::sqlite3_file,
    methods: &ffi::sqlite3_io_methods,
    gathered: &mut Gathered,
) -> c_int {
    if gathered.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let Some(write) = methods.xWrite else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let mut rc = ffi::SQLITE_OK;
    let mut offset = gathered.start;
    for chunk in gathered.bytes.chunks(MAX_WRITE) {
        // A chunk is at most MAX_WRITE bytes, which fits.
        rc = write(inner, chunk.as_ptr().cast(), chunk.len() as c_int, offset);
        if rc != ffi::SQLITE_OK {
            break;
        }
        offset += chunk.len() as i64;
    }
    // On failure SQLite abandons the transaction; its frames are not in the log.
    gathered.bytes.clear();
    rc
}

/// Whether `data`, written at `offset`, is the header of a commit frame.
fn is_commit_header(data: &[u8], offset: i64) -> bool {
    data.len() == FRAME_HEADER && offset >= LOG_HEADER && data[4..8] != [0, 0, 0, 0]
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buffer: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let (inner, methods, gathered) = parts(file);
    if !gathered.bytes.is_empty() && offset != gathered.end() {
        let rc = flush(inner, methods, gathered);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if gathered.commit_page_at.take() == Some(offset) {
        // The commit frame's page; what came before it is written already.
        return match methods.xWrite {
            Some(write) => write(inner, buffer, amount, offset),
            None => ffi::SQLITE_IOERR_WRITE,
        };
    }
    let data = std::slice::from_raw_parts(buffer.cast::<u8>(), amount.max(0) as usize);
    if gathered.bytes.is_empty() {
        gathered.start = offset;
    }
    gathered.bytes.extend_from_slice(data);
    if is_commit_header(data, offset) {
        // Out now with its header: SQLite may publish the commit without writing again (it
        // rewrites a commit header in place when it recomputes the log's checksums).
        gathered.commit_page_at = Some(offset + FRAME_HEADER as i64);
        return flush(inner, methods, gathered);
    }
    if gathered.bytes.len() >= MAX_GATHERED {
        return flush(inner, methods, gathered);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, methods, gathered) = parts(file);
    let flushed = flush(inner, methods, gathered);
    let closed = methods.xClose.map_or(ffi::SQLITE_OK, |close| close(inner));
    drop(Box::from_raw((*file.cast::<LogFile>()).gathered));
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

/// Defines a log-file method that writes out what is gathered, then calls the default file's.
macro_rules! after_flush {
    ($name:ident, $method:ident ( $($arg:ident : $ty:ty),* )) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            let (inner, methods, gathered) = parts(file);
            let rc = flush(inner, methods, gathered);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            match methods.$method {
                Some(method) => method(inner, $($arg),*),
                None => ffi::SQLITE_MISUSE,
            }
        }
    };
}

after_flush!(read, xRead(buffer: *mut c_void, amount: c_int, offset: i64));
after_flush!(truncate, xTruncate(size: i64));
after_flush!(sync, xSync(flags: c_int));
after_flush!(file_size, xFileSize(size: *mut i64));
after_flush!(lock, xLock(level: c_int));
after_flush!(unlock, xUnlock(level: c_int));
after_flush!(check_reserved_lock, xCheckReservedLock(out: *mut c_int));
after_flush!(file_control, xFileControl(op: c_int, arg: *mut c_void));
after_flush!(shm_map, xShmMap(region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void));
after_flush!(shm_lock, xShmLock(offset: c_int, n: c_int, flags: c_int));
after_flush!(shm_unmap, xShmUnmap(delete: c_int));
after_flush!(fetch, xFetch(offset: i64, amount: c_int, out: *mut *mut c_void));
after_flush!(unfetch, xUnfetch(offset: i64, page: *mut c_void));

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, methods, _) = parts(file);
    methods.xSectorSize.map_or(4096, |method| method(inner))
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, methods, _) = parts(file);
    methods
        .xDeviceCharacteristics
        .map_or(0, |method| method(inner))
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let (inner, methods, _) = parts(file);
    if let Some(method) = methods.xShmBarrier {
        method(inner);
    }
}

static LOG_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};
    use std::path::PathBuf;

    /// A fresh database in a temporary directory (kept alive by the returned guard), its path,
    /// and a connection writing through this VFS.
    fn writer() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let name = register().unwrap();
        let db = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), name).unwrap();
        // A tiny page cache, so large transactions spill frames to the log mid-transaction
        // and rewrite them before the commit (SQLite then recomputes the log's checksums).
        db.execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = 8; \
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
             CREATE INDEX t_v ON t(v);",
        )
        .unwrap();
        (dir, path, db)
    }

    /// Inserts `rows` rows of about `width` bytes, tagged `tag`.
    fn insert_rows(db: &Connection, rows: usize, tag: &str, width: usize) {
        for n in 0..rows {
            db.execute(
                "INSERT INTO t (v) VALUES (?1)",
                [format!("{tag}-{n}-{}", "x".repeat(width))],
            )
            .unwrap();
        }
    }

    /// Commits of every shape: single rows, many pages, and pages spilled then changed again.
    fn commit_mixed(db: &Connection, round: i64) {
        db.execute("INSERT INTO t (v) VALUES (?1)", [format!("one {round}")])
            .unwrap();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        insert_rows(db, 300, &round.to_string(), 200);
        db.execute("UPDATE t SET v = v || '!' WHERE id % 7 = ?1", [round % 7])
            .unwrap();
        db.execute_batch("COMMIT").unwrap();
    }

    fn count(db: &Connection) -> i64 {
        db.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    /// Everything a connection sees of the table, and whether every page it reads is sound.
    fn contents(db: &Connection) -> (i64, i64, String) {
        let (rows, bytes) = db
            .query_row("SELECT COUNT(*), SUM(LENGTH(v)) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let check = db
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
        (rows, bytes, check)
    }

    #[test]
    fn another_connection_sees_each_commit_as_it_returns() {
        let (_dir, path, db) = writer();
        let reader = Connection::open(&path).unwrap();
        for round in 0..20 {
            commit_mixed(&db, round);
            let seen = contents(&reader);
            assert_eq!(seen.0, (round + 1) * 302 - 1);
            assert_eq!(seen, contents(&db));
            assert_eq!(seen.2, "ok");
            // A small commit: no spill, so SQLite reads nothing back from the log before it
            // publishes; only the commit itself can have written its frames out.
            db.execute("INSERT INTO t (v) VALUES (?1)", [format!("small {round}")])
                .unwrap();
            assert_eq!(count(&reader), (round + 1) * 302);
        }
    }

    #[test]
    fn a_crash_after_the_commits_recovers_every_one_from_the_log() {
        let (dir, path, db) = writer();
        for round in 0..20 {
            commit_mixed(&db, round);
        }
        // What a crash leaves: the database and its log as they are, without a checkpoint.
        let crashed = dir.path().join("crashed");
        std::fs::copy(&path, &crashed).unwrap();
        std::fs::copy(dir.path().join("db-wal"), dir.path().join("crashed-wal")).unwrap();
        let recovered = Connection::open(&crashed).unwrap();
        assert_eq!(count(&recovered), 20 * 301);
        let check: String = recovered
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        drop(db);
    }

    #[test]
    fn a_rolled_back_spill_never_lands_over_another_writers_commit() {
        let (_dir, path, db) = writer();
        let other = Connection::open(&path).unwrap();
        // An empty log, so the other writer's frames go where the spilled ones were gathered.
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        insert_rows(&db, 2000, "rolled back", 300);
        db.execute_batch("ROLLBACK").unwrap();
        assert!(discard_uncommitted(&db) > 0, "the spill was gathered");
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        insert_rows(&other, 3000, "committed", 300);
        other.execute_batch("COMMIT").unwrap();
        // The gathering connection touches the log again; the other commit must survive it.
        assert_eq!(count(&db), 3000);
        let fresh = Connection::open(&path).unwrap();
        assert_eq!(
            contents(&fresh),
            (3000, contents(&other).1, "ok".to_owned())
        );
        assert_eq!(
            discard_uncommitted(&db),
            0,
            "nothing is gathered between commits"
        );
    }

    #[test]
    fn other_files_are_the_default_vfs_own() {
        let (_dir, path, db) = writer();
        commit_mixed(&db, 0);
        let checkpointed: i64 = db
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(checkpointed, 0);
        drop(db);
        let reopened = Connection::open(&path).unwrap();
        assert_eq!(count(&reopened), 301);
    }
}
