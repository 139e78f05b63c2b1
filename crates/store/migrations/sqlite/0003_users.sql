-- The web UI's users, their projects, their sessions, the first-run setup codes, and what the
-- API key list shows. Secrets (session tokens, setup codes) are stored as SHA-256 hex only.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE project_members (
    user_id     TEXT NOT NULL REFERENCES users(id),
    project_id  TEXT NOT NULL REFERENCES projects(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, project_id)
);

-- A session lives while it is used: one idle for longer than the server's limit is refused.
CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX sessions_by_user ON sessions(user_id);

-- Codes `serve` prints while no user exists; the first sign-up needs one, then all are deleted.
CREATE TABLE setup_codes (
    code_hash   TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- API keys get a public id (to revoke one without its secret), the first characters of the
-- key (to tell them apart) and when each was last used. Keys made before have no prefix.
ALTER TABLE api_keys ADD COLUMN id TEXT;
ALTER TABLE api_keys ADD COLUMN prefix TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
UPDATE api_keys SET id = 'key_' || substr(key_hash, 1, 16);
CREATE UNIQUE INDEX api_keys_id ON api_keys(id);
CREATE INDEX api_keys_by_project ON api_keys(project_id, created_at);

-- One-time sign-in links (the demo prints one): a link works once, before it expires.
CREATE TABLE sign_in_links (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
