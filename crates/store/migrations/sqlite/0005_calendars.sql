-- Calendars and the events their syncs found. A calendar's credentials are sealed with the
-- server's key like webhook secrets; a sync is claimed with a lease (claim_token,
-- claimed_until) so that one process at a time syncs a calendar, and a crashed one's claim
-- ends by itself.
CREATE TABLE calendars (
    seq                     INTEGER PRIMARY KEY AUTOINCREMENT,
    id                      TEXT NOT NULL UNIQUE,
    project_id              TEXT NOT NULL REFERENCES projects(id),
    platform                TEXT NOT NULL,
    credentials             BLOB NOT NULL,
    deduplication_key       TEXT,
    metadata                TEXT NOT NULL,
    state                   TEXT NOT NULL,
    failure_error           TEXT,
    failure_at              INTEGER,
    last_successful_sync_at INTEGER,
    last_attempted_sync_at  INTEGER,
    sync_token              TEXT,
    next_sync_at            INTEGER NOT NULL,
    claim_token             TEXT,
    claimed_until           INTEGER,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL
);
CREATE UNIQUE INDEX calendars_dedup ON calendars(project_id, deduplication_key)
    WHERE deduplication_key IS NOT NULL;
CREATE INDEX calendars_by_project ON calendars(project_id, seq);
CREATE INDEX calendars_due ON calendars(next_sync_at);

CREATE TABLE calendar_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    calendar_id  TEXT NOT NULL,
    project_id   TEXT NOT NULL,
    -- The provider's own id of the event (for iCalendar: UID and the instance's start).
    provider_id  TEXT NOT NULL,
    start_time   INTEGER NOT NULL,
    end_time     INTEGER NOT NULL,
    name         TEXT,
    meeting_url  TEXT,
    attendees    TEXT NOT NULL,
    is_deleted   INTEGER NOT NULL DEFAULT 0,
    ical_uid     TEXT,
    raw          TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (calendar_id, provider_id)
);
CREATE INDEX calendar_events_by_project ON calendar_events(project_id, seq);
CREATE INDEX calendar_events_by_calendar ON calendar_events(calendar_id, seq);
