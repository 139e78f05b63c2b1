//! Group commit for the hot write path: requests that arrive together are applied in one
//! transaction and answered only once the log sync after it (`syncer`) is done — one fsync for
//! many acknowledged events, and the writer free for the next group while the disk syncs. A
//! refused request writes nothing (the write path decides before it writes), so it does not
//! disturb the others in its group. Deliveries due at once are claimed in the same transaction
//! and handed to the dispatcher after the sync (`handoff`).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};

use super::deliveries::newest_delivery;
use super::direct::{immediate, HotWriter};
use super::records::apply_inputs;
use super::syncer::Syncer;
use crate::error::{Result, StoreError};
use crate::handoff::{HandOff, PreClaims};
use crate::model::{Actor, BatchOutcome, BotInput, StoreOptions};

/// Most requests committed together.
const MAX_GROUP: usize = 512;

enum OwnedActor {
    Project(String),
    Runner(String),
    System,
}

impl OwnedActor {
    fn borrow(&self) -> Actor<'_> {
        match self {
            OwnedActor::Project(p) => Actor::Project(p),
            OwnedActor::Runner(r) => Actor::Runner(r),
            OwnedActor::System => Actor::System,
        }
    }
}

struct Job {
    actor: OwnedActor,
    bot_id: String,
    inputs: Vec<BotInput>,
    cursor: Option<Value>,
    reply: oneshot::Sender<Result<BatchOutcome>>,
}

#[derive(Clone)]
pub(super) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    pub(super) fn start(writer: HotWriter, options: StoreOptions, wake: Wake) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(run(writer, rx, options, wake));
        Committer { jobs }
    }

    pub(super) async fn submit(
        &self,
        actor: Actor<'_>,
        bot_id: &str,
        inputs: Vec<BotInput>,
        cursor: Option<Value>,
    ) -> Result<BatchOutcome> {
        let actor = match actor {
            Actor::Project(p) => OwnedActor::Project(p.to_owned()),
            Actor::Runner(r) => OwnedActor::Runner(r.to_owned()),
            Actor::System => OwnedActor::System,
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            actor,
            bot_id: bot_id.to_owned(),
            inputs,
            cursor,
            reply,
        };
        let stopped = || StoreError::CommitFailed("the store is shutting down".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Who hears about the deliveries a commit owes: the syncer first, then the dispatcher (in
/// memory for the pre-claimed ones, by a wake-up for the rest).
#[derive(Clone)]
pub(super) struct Wake {
    pub syncer: Syncer,
    pub handoff: Arc<HandOff>,
    pub owed: Arc<Notify>,
    /// Marked when a commit finds the disk full (readiness).
    pub space: Arc<super::space::DiskSpace>,
}

async fn run(writer: HotWriter, mut rx: mpsc::Receiver<Job>, options: StoreOptions, wake: Wake) {
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut jobs, MAX_GROUP).await > 0 {
        let started = std::time::Instant::now();
        let claims = wake.handoff.begin();
        let group = std::mem::take(&mut jobs);
        let Some((group, claims, outcomes)) =
            commit_group(&writer, group, options.clone(), claims, &wake).await
        else {
            // The writer thread is gone: the requests were dropped with the group and their
            // callers are told the store is shutting down.
            continue;
        };
        tracing::debug!(
            jobs = group.len(),
            micros = started.elapsed().as_micros() as u64,
            "group committed"
        );
        let committed = outcomes.iter().any(|o| o.is_ok());
        // Deliveries handed off or waiting behind their stream need no claim query; only
        // unclaimed due ones wake the dispatcher.
        let any_owed = outcomes
            .iter()
            .any(|o| o.as_ref().is_ok_and(|o| o.due_unclaimed > 0));
        let replies: Vec<_> = group
            .into_iter()
            .map(|job| job.reply)
            .zip(outcomes)
            .collect();
        if !committed {
            // Nothing was written (all refused, or the transaction rolled back): nothing to
            // wait for, and no claim stands.
            if let Some(claims) = claims {
                claims.abandon();
            }
            answer(replies, None, None, Ok(()));
            continue;
        }
        let owed = any_owed.then(|| wake.owed.clone());
        wake.syncer.after_sync(Box::new(move |synced| {
            answer(replies, claims, owed, synced)
        }));
    }
}

/// Answers a group's requests once its commit is durable, and passes its deliveries on; if the
/// log could not be synced, every request fails (a runner retries, and its ids keep the retry
/// from storing anything twice) and the pre-claimed rows wait for their lease to expire.
fn answer(
    replies: Vec<(oneshot::Sender<Result<BatchOutcome>>, Result<BatchOutcome>)>,
    claims: Option<PreClaims>,
    owed: Option<Arc<Notify>>,
    synced: std::result::Result<(), String>,
) {
    for (reply, outcome) in replies {
        let answer = match &synced {
            Ok(()) => outcome,
            Err(e) => Err(StoreError::CommitFailed(e.clone())),
        };
        let _ = reply.send(answer);
    }
    if let Some(claims) = claims {
        claims.settle(&synced);
    }
    if let (Some(owed), Ok(())) = (owed, &synced) {
        owed.notify_one();
    }
}

/// A group's jobs, its pre-claims and each job's outcome, in order.
type Committed = (Vec<Job>, Option<PreClaims>, Vec<Result<BatchOutcome>>);

/// Applies every job in one transaction on the writer thread; `None` if that thread is gone.
async fn commit_group(
    writer: &HotWriter,
    mut group: Vec<Job>,
    options: StoreOptions,
    mut claims: Option<PreClaims>,
    wake: &Wake,
) -> Option<Committed> {
    let syncer = wake.syncer.clone();
    let space = wake.space.clone();
    let committed = writer
        .run(move |db| {
            let applied = immediate(db, |db| {
                apply_group(db, &mut group, &options, claims.as_mut())
            });
            let outcomes = match applied {
                Ok((outcomes, newest_seq)) => {
                    syncer.note_commit(newest_seq);
                    outcomes
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = group.len(), "group commit failed");
                    space.note(&e);
                    let disk_full = e.is_disk_full();
                    let message = e.to_string();
                    group
                        .iter()
                        .map(|_| {
                            Err(if disk_full {
                                StoreError::DiskFull
                            } else {
                                StoreError::CommitFailed(message.clone())
                            })
                        })
                        .collect()
                }
            };
            Ok((group, claims, outcomes))
        })
        .await;
    committed.ok()
}

/// Applies each job's inputs in the open transaction; returns their outcomes and the newest
/// delivery row (for the syncer). A refusal wrote nothing; a database failure fails the group.
fn apply_group(
    db: &rusqlite::Connection,
    group: &mut [Job],
    options: &StoreOptions,
    mut claims: Option<&mut PreClaims>,
) -> Result<(Vec<Result<BatchOutcome>>, i64)> {
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group.iter_mut() {
        let inputs = std::mem::take(&mut job.inputs);
        let cursor = job.cursor.take();
        let outcome = apply_inputs(
            db,
            job.actor.borrow(),
            &job.bot_id,
            inputs,
            cursor,
            options,
            claims.as_deref_mut(),
        );
        match outcome {
            Err(StoreError::Sqlite(e)) => return Err(StoreError::Sqlite(e)),
            outcome => outcomes.push(outcome),
        }
    }
    let owes = outcomes
        .iter()
        .any(|o| o.as_ref().is_ok_and(|o| o.deliveries > 0));
    let newest_seq = if owes { newest_delivery(db)? } else { 0 };
    Ok((outcomes, newest_seq))
}
