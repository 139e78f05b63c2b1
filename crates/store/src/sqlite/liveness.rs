//! Which processes on this data directory are alive, so that a dead one's claims are taken
//! over at once instead of when their lease ends (25 s with the default webhook timeout): a
//! SIGKILLed server, restarted, used to leave each ordered stream it was sending waiting that
//! long behind the head it had claimed.
//!
//! Each process holds an exclusive lock on a file of its own, `nodes/<node id>.lock`, for as
//! long as it runs; the kernel releases it when the process ends, however it ends. Its claim
//! tokens start with its id (`Node::claim_token`). A process that can take another's lock knows
//! that one is gone, and hands its claims back as due now: when it opens the store (a restart
//! after a crash) and every second after (another process on the same directory died). The
//! lock is taken before the node is listed, so a listed node whose lock is free is dead.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meetwire_core::time::now;
use sqlx::SqlitePool;
use tokio::sync::Notify;

use crate::error::{Result, StoreError};
use crate::node::Node;

/// How often a running process looks for dead ones.
const INTERVAL: Duration = Duration::from_secs(1);

/// This process's entry: its id and the lock that says it is alive.
pub(super) struct Registration {
    pub node: Node,
    _lock: File,
}

fn lock_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.lock"))
}

/// Locks a new node's file, then lists the node.
pub(super) async fn register(pool: &SqlitePool, data_dir: &Path) -> Result<Registration> {
    let dir = data_dir.join("nodes");
    let cannot = |e: std::io::Error| StoreError::Invalid(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(cannot)?;
    let node = Node::new();
    let lock = File::create(lock_path(&dir, node.id())).map_err(cannot)?;
    lock.try_lock().map_err(|e| cannot(e.into()))?;
    sqlx::query("INSERT INTO nodes (id, started_at) VALUES (?, ?)")
        .bind(node.id())
        .bind(now().timestamp_micros())
        .execute(pool)
        .await?;
    Ok(Registration { node, _lock: lock })
}

/// Hands back the claims of every listed node whose lock is free, and forgets the node.
/// Returns how many deliveries were made due.
pub(super) async fn take_over_dead(pool: &SqlitePool, data_dir: &Path) -> Result<u64> {
    let dir = data_dir.join("nodes");
    let nodes: Vec<String> = sqlx::query_scalar("SELECT id FROM nodes")
        .fetch_all(pool)
        .await?;
    let mut released = 0;
    for node in nodes {
        let path = lock_path(&dir, &node);
        // Held while its claims go back, so two processes finding it dead do not both.
        let lock = match File::open(&path) {
            Ok(file) => match file.try_lock() {
                Ok(()) => Some(file),
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => {
                    return Err(StoreError::Invalid(format!("{}: {e}", path.display())))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::Invalid(format!("{}: {e}", path.display()))),
        };
        released += release_claims(pool, &node).await?;
        // The file goes last: a node listed without one is dead (its lock came first).
        if lock.is_some() {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(released)
}

/// Makes the dead node's claimed deliveries due now and frees its calendar syncs, in one
/// transaction that also forgets the node.
async fn release_claims(pool: &SqlitePool, node: &str) -> Result<u64> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let at = now().timestamp_micros();
    // Claimed rows are pending with their lease end in `next_attempt_at`: the pending rows'
    // index on it finds them without reading the delivered ones.
    let released = sqlx::query(
        "UPDATE deliveries SET claim_token = NULL, next_attempt_at = ?1 WHERE seq IN \
         (SELECT seq FROM deliveries WHERE status = 'pending' AND next_attempt_at IS NOT NULL \
          AND substr(claim_token, 1, length(?2) + 1) = ?2 || '.')",
    )
    .bind(at)
    .bind(node)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE calendars SET claim_token = NULL, claimed_until = NULL \
         WHERE substr(claim_token, 1, length(?1) + 1) = ?1 || '.'",
    )
    .bind(node)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM nodes WHERE id = ?")
        .bind(node)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if released > 0 {
        tracing::info!(
            node,
            released,
            "took over the deliveries of a process that died"
        );
    }
    Ok(released)
}

/// Looks for dead processes every second for as long as the store's pool is open, waking the
/// dispatcher when their deliveries are due again.
pub(super) fn watch(pool: SqlitePool, data_dir: PathBuf, owed: Arc<Notify>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pool.is_closed() {
            tick.tick().await;
            match take_over_dead(&pool, &data_dir).await {
                Ok(0) => {}
                Ok(_) => owed.notify_one(),
                Err(e) => tracing::warn!(error = %e, "looking for dead processes failed"),
            }
        }
    });
}
