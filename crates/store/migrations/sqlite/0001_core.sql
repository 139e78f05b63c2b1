-- Projects, credentials, bots and their records. Timestamps are microseconds since the epoch.

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- A project's webhook secrets, sealed with the server's key. The newest row is the active one;
-- a rotated-out secret keeps signing (beside the new one) until its expires_at.
CREATE TABLE webhook_secrets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    sealed      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX webhook_secrets_by_project ON webhook_secrets(project_id, id);

CREATE TABLE api_keys (
    key_hash    TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id),
    created_at  INTEGER NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE runner_tokens (
    token_hash  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE bots (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    project_id          TEXT NOT NULL REFERENCES projects(id),
    meeting_url         TEXT NOT NULL,
    bot_name            TEXT NOT NULL,
    metadata            TEXT NOT NULL,
    deduplication_key   TEXT,
    join_at             INTEGER,
    state               TEXT NOT NULL,
    breakout_return     TEXT,
    recording_state     TEXT NOT NULL,
    transcription_state TEXT NOT NULL,
    join_requested_at   INTEGER,
    is_sandbox          INTEGER NOT NULL,
    sandbox_script      TEXT,
    runner              TEXT,
    runner_heartbeat_at INTEGER,
    runner_cursor       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX bots_by_project ON bots(project_id, seq);
CREATE UNIQUE INDEX bots_active_dedup ON bots(project_id, deduplication_key)
    WHERE deduplication_key IS NOT NULL AND state NOT IN ('ended', 'fatal_error', 'data_deleted');
CREATE INDEX bots_unclaimed ON bots(is_sandbox, state) WHERE runner IS NULL;
CREATE INDEX bots_claimed ON bots(runner_heartbeat_at) WHERE runner IS NOT NULL;
CREATE INDEX bots_scheduled ON bots(join_at) WHERE state IN ('scheduled', 'staged');

CREATE TABLE bot_records (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    client_id   TEXT,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (bot_id, client_id)
);
CREATE INDEX bot_records_by_kind ON bot_records(bot_id, kind, seq);
