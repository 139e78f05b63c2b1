-- Bots sent to calendar events: a bot remembers its event, so a sync that moves the event
-- moves the bot and one that deletes it cancels the bot. A calendar's auto_join rule (JSON,
-- NULL = off) schedules these bots by itself; it needs the event's organiser.
ALTER TABLE bots ADD COLUMN calendar_event_id TEXT;
CREATE INDEX bots_by_calendar_event ON bots(calendar_event_id)
    WHERE calendar_event_id IS NOT NULL;
ALTER TABLE calendars ADD COLUMN auto_join TEXT;
ALTER TABLE calendar_events ADD COLUMN organizer TEXT;
