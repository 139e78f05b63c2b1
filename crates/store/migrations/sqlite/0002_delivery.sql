-- Webhook subscriptions, the outbox of owed deliveries, and the log of every attempt.

ALTER TABLE projects ADD COLUMN standard_webhooks INTEGER NOT NULL DEFAULT 1;

CREATE TABLE webhook_subscriptions (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    bot_id          TEXT,
    url             TEXT NOT NULL,
    -- Bit N set = subscribed to trigger N (Attendee's integers).
    triggers        INTEGER NOT NULL,
    is_active       INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX subscriptions_project_url ON webhook_subscriptions(project_id, url)
    WHERE bot_id IS NULL;
CREATE UNIQUE INDEX subscriptions_bot_url ON webhook_subscriptions(bot_id, url)
    WHERE bot_id IS NOT NULL;
CREATE INDEX subscriptions_by_project ON webhook_subscriptions(project_id, seq);

-- One row per (event, subscription). A pending row is due at next_attempt_at; while a worker
-- holds it, next_attempt_at is the end of its lease (so an abandoned claim becomes due again),
-- and a row waiting behind an earlier one of its stream (ordering) has next_attempt_at NULL.
CREATE TABLE deliveries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    project_id       TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    bot_id           TEXT,
    calendar_id      TEXT,
    record_seq       INTEGER,
    trigger          INTEGER NOT NULL,
    body             TEXT NOT NULL,
    stream           TEXT,
    status           TEXT NOT NULL,
    -- Attempts within the current budget (a resend starts a fresh one) and in all.
    attempts         INTEGER NOT NULL DEFAULT 0,
    total_attempts   INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    claim_token      TEXT,
    created_at       INTEGER NOT NULL,
    last_attempt_at  INTEGER,
    succeeded_at     INTEGER,
    last_status_code INTEGER,
    last_error       TEXT
);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_stream ON deliveries(stream, seq) WHERE status = 'pending';
CREATE INDEX deliveries_by_project ON deliveries(project_id, seq);
CREATE INDEX deliveries_by_bot ON deliveries(bot_id, seq);

CREATE TABLE delivery_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_seq     INTEGER NOT NULL,
    attempted_at     INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER,
    error_kind       TEXT,
    error_message    TEXT,
    response_body    TEXT
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts(delivery_seq, id);
