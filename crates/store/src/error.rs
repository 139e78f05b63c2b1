//! Storage errors: the few outcomes callers act on by kind, and the database's own failures.

use meetwire_core::state::TransitionError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist in the caller's project (or at all).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule refused the write (e.g. an active bot with the same deduplication key).
    #[error("{0}")]
    Conflict(String),
    /// The request breaks a rule that only the stored state can check.
    #[error("{0}")]
    Invalid(String),
    /// The bot state machine refused an event; nothing was stored.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A group commit failed; every request in the group was rolled back.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The disk holding the database has no room for the write; nothing of it was stored.
    #[error("the disk holding the database is full")]
    DiskFull,
}

impl StoreError {
    /// Whether the database refused a write for want of disk space (SQLITE_FULL), whichever
    /// connection it came through.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
                failure.code == rusqlite::ErrorCode::DiskFull
            }
            StoreError::Database(sqlx::Error::Database(db)) => {
                db.code().and_then(|code| code.parse::<i32>().ok())
                    == Some(rusqlite::ffi::SQLITE_FULL)
            }
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
