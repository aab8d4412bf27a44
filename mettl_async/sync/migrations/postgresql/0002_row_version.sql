-- mettl-async sync schema, version 2 (PostgreSQL): row versions.
-- Every transaction that writes candidate_results (a sync's commit of a schedule, a
-- webhook's upsert) takes nextval of candidate_results_row_version and sets it on the
-- rows it writes. A sync reads the sequence before it asks for a schedule's first page;
-- a row whose version is newer was stored by another writer since, and is never
-- overwritten by the sync's (older) listing.

ALTER TABLE candidate_results ADD COLUMN row_version bigint NOT NULL DEFAULT 0;

CREATE SEQUENCE candidate_results_row_version;
