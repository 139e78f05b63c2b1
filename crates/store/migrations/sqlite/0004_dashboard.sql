-- What the delivery dashboard reads, kept up to date by the results transaction so that the
-- page reads a few dozen rows however many deliveries a project has.

-- Per project and minute: attempts by outcome, and a histogram of event → delivery latency of
-- the deliveries that succeeded (counts per power-of-two bucket of milliseconds, as text).
CREATE TABLE delivery_minutes (
    project_id  TEXT NOT NULL,
    minute      INTEGER NOT NULL,
    successes   INTEGER NOT NULL DEFAULT 0,
    retries     INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,
    latency     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (project_id, minute)
) WITHOUT ROWID;

-- Consecutive failed attempts to a subscription (0 after a success) and the last error.
ALTER TABLE webhook_subscriptions ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhook_subscriptions ADD COLUMN last_failure TEXT;
ALTER TABLE webhook_subscriptions ADD COLUMN last_failure_at INTEGER;
CREATE INDEX subscriptions_failing ON webhook_subscriptions(project_id, failure_streak)
    WHERE failure_streak > 0;

-- A project's pending deliveries: how many, and the longest-waiting due one.
CREATE INDEX deliveries_pending_by_project ON deliveries(project_id, next_attempt_at)
    WHERE status = 'pending';
