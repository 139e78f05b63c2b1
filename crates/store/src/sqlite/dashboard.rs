//! The delivery dashboard's figures. Counting an hour of deliveries when the page is asked for
//! would read every one of them (a million for a busy project); instead the results
//! transaction adds each batch's attempts to per-minute rows and to its subscriptions' failure
//! streaks, so the page reads at most one row per minute and the failing subscriptions.

use std::collections::HashMap;

use meetwire_core::time::{from_micros, Timestamp};
use sqlx::{Row, SqlitePool};

use crate::error::Result;
use crate::model::{AttemptOutcome, DeliveryDashboard, FailingEndpoint, MinuteOutcomes};

/// Latency buckets: bucket `i` holds latencies below 2^i ms; the last one holds the rest.
const LATENCY_BUCKETS: usize = 24;

/// Most failing subscriptions shown.
const FAILING_SHOWN: i64 = 20;

/// The histogram bucket of a latency.
fn bucket(latency_ms: i64) -> usize {
    let mut i = 0;
    while i + 1 < LATENCY_BUCKETS && latency_ms >= 1i64 << i {
        i += 1;
    }
    i
}

/// What a bucket means: latencies below this many milliseconds.
fn bucket_bound_ms(i: usize) -> i64 {
    1i64 << i
}

fn parse_histogram(text: &str) -> [i64; LATENCY_BUCKETS] {
    let mut counts = [0; LATENCY_BUCKETS];
    for (slot, n) in counts.iter_mut().zip(text.split(',')) {
        *slot = n.parse().unwrap_or(0);
    }
    counts
}

fn histogram_text(counts: &[i64; LATENCY_BUCKETS]) -> String {
    counts
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Default)]
struct MinuteTally {
    successes: i64,
    retries: i64,
    failures: i64,
    latency: [i64; LATENCY_BUCKETS],
}

#[derive(Default)]
struct StreakTally {
    /// A success in this batch: the streak restarts from its failures after it.
    reset: bool,
    failures: i64,
    last_failure: Option<(String, i64)>,
}

/// One results batch's contribution, written in the batch's transaction.
#[derive(Default)]
pub(super) struct Tally {
    minutes: HashMap<(String, i64), MinuteTally>,
    streaks: HashMap<String, StreakTally>,
}

/// One attempt's result as the dashboard counts it.
pub(super) struct Counted {
    pub project_id: String,
    pub subscription_id: String,
    pub attempted_at: i64,
    pub event_stored_at: i64,
    pub outcome: AttemptOutcome,
    /// Why a failed attempt failed.
    pub error: Option<String>,
}

impl Tally {
    pub(super) fn add(&mut self, attempt: Counted) {
        let minute = attempt.attempted_at.div_euclid(60_000_000);
        let tally = self
            .minutes
            .entry((attempt.project_id, minute))
            .or_default();
        let streak = self.streaks.entry(attempt.subscription_id).or_default();
        match attempt.outcome {
            AttemptOutcome::Success => {
                tally.successes += 1;
                let latency_ms = (attempt.attempted_at - attempt.event_stored_at).max(0) / 1000;
                tally.latency[bucket(latency_ms)] += 1;
                *streak = StreakTally {
                    reset: true,
                    ..StreakTally::default()
                };
            }
            AttemptOutcome::Retry { .. } | AttemptOutcome::Failure => {
                if matches!(attempt.outcome, AttemptOutcome::Failure) {
                    tally.failures += 1;
                } else {
                    tally.retries += 1;
                }
                streak.failures += 1;
                streak.last_failure = Some((
                    attempt.error.unwrap_or_else(|| "failed".to_owned()),
                    attempt.attempted_at,
                ));
            }
        }
    }

    pub(super) fn write(&self, db: &rusqlite::Connection) -> Result<()> {
        let mut read = db.prepare_cached(
            "SELECT latency FROM delivery_minutes WHERE project_id = ?1 AND minute = ?2",
        )?;
        let mut upsert = db.prepare_cached(
            "INSERT INTO delivery_minutes (project_id, minute, successes, retries, failures, \
             latency) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (project_id, minute) DO UPDATE SET \
             successes = successes + excluded.successes, retries = retries + excluded.retries, \
             failures = failures + excluded.failures, latency = excluded.latency",
        )?;
        for ((project, minute), tally) in &self.minutes {
            let mut latency = read
                .query_row(rusqlite::params![project, minute], |row| {
                    row.get::<_, String>(0)
                })
                .map(|text| parse_histogram(&text))
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok([0; LATENCY_BUCKETS]),
                    other => Err(other),
                })?;
            for (total, added) in latency.iter_mut().zip(tally.latency) {
                *total += added;
            }
            upsert.execute(rusqlite::params![
                project,
                minute,
                tally.successes,
                tally.retries,
                tally.failures,
                histogram_text(&latency),
            ])?;
        }
        let mut streak = db.prepare_cached(
            "UPDATE webhook_subscriptions SET \
             failure_streak = CASE WHEN ?1 THEN ?2 ELSE failure_streak + ?2 END, \
             last_failure = COALESCE(?3, last_failure), \
             last_failure_at = COALESCE(?4, last_failure_at) WHERE id = ?5",
        )?;
        for (subscription, tally) in &self.streaks {
            let (error, at) = match &tally.last_failure {
                Some((error, at)) => (Some(error.as_str()), Some(*at)),
                None => (None, None),
            };
            streak.execute(rusqlite::params![
                tally.reset,
                tally.failures,
                error,
                at,
                subscription
            ])?;
        }
        Ok(())
    }
}

/// The dashboard of one project over the hour before `now`.
pub(super) async fn dashboard(
    pool: &SqlitePool,
    project_id: &str,
    now: Timestamp,
) -> Result<DeliveryDashboard> {
    let now_micros = now.timestamp_micros();
    let first_minute = now_micros.div_euclid(60_000_000) - 59;
    let rows = sqlx::query(
        "SELECT minute, successes, retries, failures, latency FROM delivery_minutes \
         WHERE project_id = ? AND minute >= ? ORDER BY minute",
    )
    .bind(project_id)
    .bind(first_minute)
    .fetch_all(pool)
    .await?;
    let mut latency = [0i64; LATENCY_BUCKETS];
    let mut minutes = Vec::with_capacity(rows.len());
    for row in &rows {
        minutes.push(MinuteOutcomes {
            minute: row.try_get("minute")?,
            successes: row.try_get("successes")?,
            retries: row.try_get("retries")?,
            failures: row.try_get("failures")?,
        });
        let counts = parse_histogram(row.try_get::<&str, _>("latency")?);
        for (total, n) in latency.iter_mut().zip(counts) {
            *total += n;
        }
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE project_id = ? \
         AND status = 'pending' LIMIT ?)",
    )
    .bind(project_id)
    .bind(DeliveryDashboard::PENDING_COUNT_CAP + 1)
    .fetch_one(pool)
    .await?;
    let oldest_due: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE project_id = ? \
         AND status = 'pending' AND next_attempt_at <= ? AND claim_token IS NULL",
    )
    .bind(project_id)
    .bind(now_micros)
    .fetch_one(pool)
    .await?;
    let failing = sqlx::query(
        "SELECT id, url, bot_id, failure_streak, last_failure, last_failure_at \
         FROM webhook_subscriptions WHERE project_id = ? AND failure_streak > 0 \
         ORDER BY failure_streak DESC, seq LIMIT ?",
    )
    .bind(project_id)
    .bind(FAILING_SHOWN)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(FailingEndpoint {
            webhook_id: row.try_get("id")?,
            url: row.try_get("url")?,
            bot_id: row.try_get("bot_id")?,
            failure_streak: row.try_get("failure_streak")?,
            last_failure: row.try_get("last_failure")?,
            last_failure_at: row
                .try_get::<Option<i64>, _>("last_failure_at")?
                .map(from_micros),
        })
    })
    .collect::<Result<Vec<_>>>()?;
    Ok(DeliveryDashboard {
        minutes,
        latency_p50_ms: percentile(&latency, 0.50),
        latency_p99_ms: percentile(&latency, 0.99),
        pending,
        oldest_due: oldest_due.map(from_micros),
        failing,
    })
}

/// The upper bound of the bucket holding the `q` quantile.
fn percentile(counts: &[i64; LATENCY_BUCKETS], q: f64) -> Option<i64> {
    let total: i64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as i64;
    let mut seen = 0;
    counts.iter().enumerate().find_map(|(i, n)| {
        seen += n;
        (seen >= rank).then(|| bucket_bound_ms(i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_power_of_two_buckets() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 1);
        assert_eq!(bucket(3), 2);
        assert_eq!(bucket(4), 3);
        assert_eq!(bucket(i64::MAX), LATENCY_BUCKETS - 1);
        assert_eq!(bucket_bound_ms(bucket(700)), 1024);
    }

    #[test]
    fn percentiles_name_the_bucket_that_holds_them() {
        let mut counts = [0; LATENCY_BUCKETS];
        counts[bucket(3)] = 98;
        counts[bucket(300)] = 2;
        assert_eq!(percentile(&counts, 0.5), Some(4));
        assert_eq!(percentile(&counts, 0.99), Some(512));
        assert_eq!(percentile(&[0; LATENCY_BUCKETS], 0.5), None);
    }

    #[test]
    fn histograms_survive_their_text_form_and_ignore_garbage() {
        let mut counts = [0; LATENCY_BUCKETS];
        counts[5] = 7;
        assert_eq!(parse_histogram(&histogram_text(&counts)), counts);
        assert_eq!(parse_histogram(""), [0; LATENCY_BUCKETS]);
    }
}
