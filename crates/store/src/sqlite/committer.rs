//! Group commit for the hot write path: requests that arrive together are applied in one
//! transaction and answered only after its single commit — one fsync for many acknowledged
//! events. A refused request writes nothing (the write path decides before it writes), so it
//! does not disturb the others in its group.

use std::sync::Arc;

use serde_json::Value;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot, Notify};

use super::direct::{immediate, with_direct};
use super::records::apply_inputs;
use crate::error::{Result, StoreError};
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
    pub(super) fn start(pool: SqlitePool, options: StoreOptions, owed: Arc<Notify>) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(run(pool, rx, options, owed));
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

async fn run(
    pool: SqlitePool,
    mut rx: mpsc::Receiver<Job>,
    options: StoreOptions,
    owed: Arc<Notify>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let started = std::time::Instant::now();
        let outcomes = commit_group(&pool, &mut group, &options).await;
        tracing::debug!(
            jobs = group.len(),
            micros = started.elapsed().as_micros() as u64,
            "group committed"
        );
        let mut any_owed = false;
        for (job, outcome) in group.drain(..).zip(outcomes) {
            any_owed |= outcome.as_ref().is_ok_and(|o| o.deliveries > 0);
            let _ = job.reply.send(outcome);
        }
        if any_owed {
            owed.notify_one();
        }
    }
}

/// Applies every job in one transaction; returns each job's outcome in order.
async fn commit_group(
    pool: &SqlitePool,
    group: &mut [Job],
    options: &StoreOptions,
) -> Vec<Result<BatchOutcome>> {
    match try_commit_group(pool, group, options).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(error = %e, jobs = group.len(), "group commit failed");
            let message = e.to_string();
            group
                .iter()
                .map(|_| Err(StoreError::CommitFailed(message.clone())))
                .collect()
        }
    }
}

async fn try_commit_group(
    pool: &SqlitePool,
    group: &mut [Job],
    options: &StoreOptions,
) -> Result<Vec<Result<BatchOutcome>>> {
    let mut conn = pool.acquire().await?;
    with_direct(&mut conn, |db| {
        immediate(db, |db| {
            let mut outcomes = Vec::with_capacity(group.len());
            for job in group.iter_mut() {
                let inputs = std::mem::take(&mut job.inputs);
                let cursor = job.cursor.take();
                let outcome =
                    apply_inputs(db, job.actor.borrow(), &job.bot_id, inputs, cursor, options);
                // A refusal wrote nothing; a database failure fails the whole group.
                match outcome {
                    Err(StoreError::Sqlite(e)) => return Err(StoreError::Sqlite(e)),
                    outcome => outcomes.push(outcome),
                }
            }
            Ok(outcomes)
        })
    })
    .await
}
