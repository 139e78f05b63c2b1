-- Deliveries without a stored idempotency key or stream name (about 130 of the ~770 bytes a
-- delivered chat message took on disk, plus a unique index written on every event).
--
-- A key is now made from the row's seq by a permutation keyed with this installation's secret
-- (`meetwire_core::delivery_key`); the keys of rows stored before keep working as
-- `legacy_key`. A stream is its subscription and bot, `ordered` marks a row that is in it.

CREATE TABLE installation (
    id                   INTEGER PRIMARY KEY CHECK (id = 1),
    delivery_key_secret  BLOB NOT NULL CHECK (length(delivery_key_secret) = 16)
);
INSERT INTO installation (id, delivery_key_secret) VALUES (1, randomblob(16));

CREATE TABLE deliveries_compact (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id           TEXT NOT NULL,
    subscription_id      TEXT NOT NULL,
    bot_id               TEXT,
    calendar_id          TEXT,
    record_seq           INTEGER,
    trigger              INTEGER NOT NULL,
    body                 TEXT NOT NULL,
    -- 1: waits for the earlier deliveries of its stream (subscription, bot); NULL: does not.
    ordered              INTEGER CHECK (ordered = 1),
    status               TEXT NOT NULL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    total_attempts       INTEGER NOT NULL DEFAULT 0,
    max_attempts         INTEGER NOT NULL,
    next_attempt_at      INTEGER,
    claim_token          TEXT,
    created_at           INTEGER NOT NULL,
    last_attempt_at      INTEGER,
    succeeded_at         INTEGER,
    last_status_code     INTEGER,
    last_error           TEXT,
    first_duration_ms    INTEGER,
    first_response_body  TEXT,
    legacy_key           TEXT
);

INSERT INTO deliveries_compact (seq, project_id, subscription_id, bot_id, calendar_id,
    record_seq, trigger, body, ordered, status, attempts, total_attempts, max_attempts,
    next_attempt_at, claim_token, created_at, last_attempt_at, succeeded_at, last_status_code,
    last_error, first_duration_ms, first_response_body, legacy_key)
SELECT seq, project_id, subscription_id, bot_id, calendar_id, record_seq, trigger, body,
    CASE WHEN stream IS NULL THEN NULL ELSE 1 END, status, attempts, total_attempts,
    max_attempts, next_attempt_at, claim_token, created_at, last_attempt_at, succeeded_at,
    last_status_code, last_error, first_duration_ms, first_response_body, idempotency_key
FROM deliveries;

-- A seq is never used twice (a key names one delivery for ever): the new table goes on from
-- the old one's high-water mark, not from its highest remaining row.
DELETE FROM sqlite_sequence WHERE name = 'deliveries_compact';
UPDATE sqlite_sequence SET name = 'deliveries_compact' WHERE name = 'deliveries';

DROP TABLE deliveries;
ALTER TABLE deliveries_compact RENAME TO deliveries;

CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_stream ON deliveries(subscription_id, bot_id, seq)
    WHERE status = 'pending' AND ordered = 1;
CREATE INDEX deliveries_by_project ON deliveries(project_id, seq);
CREATE INDEX deliveries_by_bot ON deliveries(bot_id, seq);
CREATE INDEX deliveries_pending_by_project ON deliveries(project_id, next_attempt_at)
    WHERE status = 'pending';
CREATE UNIQUE INDEX deliveries_legacy_key ON deliveries(legacy_key)
    WHERE legacy_key IS NOT NULL;
