//! Backups of a live database and restores into an empty data directory.
//!
//! A backup is SQLite's `VACUUM INTO` on a reader connection: one read transaction, so the copy
//! is the database as of one moment however much is written meanwhile, and writers are never
//! blocked (WAL). It is written in a temporary directory beside its destination, fsynced
//! (SQLite does not sync what `VACUUM INTO` writes), and only then linked to its name, which it
//! never overwrites; the directory goes in every case, so a failed or interrupted backup
//! (SIGTERM included) leaves nothing behind. Only a SIGKILL mid-copy can leave the directory.
//!
//! The key that seals webhook secrets is not in a backup: whoever holds the backup alone can
//! not open them. A restore checks the copy before anything is written, and writes it to the
//! new directory the same way.

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;

use super::DATABASE_FILE;
use crate::error::{Result, StoreError};

/// Writes a consistent copy of the database behind `reader` to `to`.
pub(super) async fn write(reader: &SqlitePool, to: &Path) -> Result<()> {
    if to.exists() {
        return Err(StoreError::Invalid(format!(
            "{} already exists; a backup never overwrites a file",
            to.display()
        )));
    }
    let partial = Partial::beside(to)?;
    let file = partial.file();
    let path = file
        .to_str()
        .ok_or_else(|| StoreError::Invalid(format!("{}: not a UTF-8 path", file.display())))?;
    sqlx::query("VACUUM INTO ?")
        .bind(path)
        .execute(reader)
        .await?;
    publish(&file, to)
}

/// A directory beside the destination that the file is written in (with any journal SQLite
/// keeps beside it), removed with everything in it when this is dropped: after the file was
/// published under its own name, on a failure, or when the work is abandoned (its future
/// dropped, as a stopping `admin backup` does on SIGTERM).
struct Partial(PathBuf);

impl Partial {
    fn beside(to: &Path) -> Result<Partial> {
        let name = to
            .file_name()
            .ok_or_else(|| StoreError::Invalid(format!("{}: not a file name", to.display())))?;
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let dir = to.with_file_name(format!(".{}.partial-{suffix}", name.to_string_lossy()));
        std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
        Ok(Partial(dir))
    }

    fn file(&self) -> PathBuf {
        self.0.join("copy")
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the backup `from` into `data_dir`, which must be empty or absent, after checking that
/// it is a whole meetwire database.
pub fn restore(from: &Path, data_dir: &Path) -> Result<()> {
    check_backup(from)?;
    let occupied = std::fs::read_dir(data_dir)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if occupied {
        return Err(StoreError::Invalid(format!(
            "{} is not empty; restore into a new or empty directory",
            data_dir.display()
        )));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| io(data_dir, e))?;
    let to = data_dir.join(DATABASE_FILE);
    let partial = Partial::beside(&to)?;
    let file = partial.file();
    std::fs::copy(from, &file).map_err(|e| io(&file, e))?;
    publish(&file, &to)
}

/// Whether `file` is a readable, intact meetwire database.
fn check_backup(file: &Path) -> Result<()> {
    let not_a_backup = |why: String| {
        StoreError::Invalid(format!("{}: not a meetwire backup ({why})", file.display()))
    };
    let db = rusqlite::Connection::open_with_flags(
        file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| not_a_backup(e.to_string()))?;
    let check: String = db
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| not_a_backup(e.to_string()))?;
    if check != "ok" {
        return Err(not_a_backup(format!("integrity check: {check}")));
    }
    let tables: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' \
             AND name IN ('_sqlx_migrations', 'installation', 'deliveries', 'bots')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| not_a_backup(e.to_string()))?;
    if tables != 4 {
        return Err(not_a_backup("meetwire's tables are missing".into()));
    }
    Ok(())
}

/// Syncs the finished `partial`, then gives it the name `to` (refusing to replace a file that
/// appeared meanwhile) and syncs the directory, so that the name survives a power loss.
fn publish(partial: &Path, to: &Path) -> Result<()> {
    std::fs::File::open(partial)
        .and_then(|file| file.sync_all())
        .map_err(|e| io(partial, e))?;
    std::fs::hard_link(partial, to).map_err(|e| io(to, e))?;
    let dir = to
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Invalid(format!("{}: {e}", path.display()))
}
