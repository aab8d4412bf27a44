-- mettl-async sync schema, version 2 (SQLite): row versions.
-- Every transaction that writes candidate_results (a sync's commit of a schedule, a
-- webhook's upsert) takes the next value of last_row_version and sets it on the rows it
-- writes. A sync reads the value before it asks for a schedule's first page; a row whose
-- version is newer was stored by another writer since, and is never overwritten by the
-- sync's (older) listing.

ALTER TABLE candidate_results ADD COLUMN row_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE last_row_version (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL                    -- the newest row_version handed out
);

INSERT INTO last_row_version (id, value) VALUES (1, 0);
