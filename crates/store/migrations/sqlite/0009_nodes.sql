-- The processes using this database (`liveness`): each claim token starts with its node's
-- id, so a dead node's claims can be taken over as soon as it is known to be dead.
CREATE TABLE nodes (
    id          TEXT PRIMARY KEY,
    started_at  INTEGER NOT NULL
) WITHOUT ROWID;
