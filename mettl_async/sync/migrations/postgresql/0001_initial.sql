-- mettl-async sync schema, version 1 (PostgreSQL).
-- raw is JSONB: the JSON Mettl sent, normalised by PostgreSQL (key order, spaces);
-- content_hash is of the bytes as sent.

CREATE TABLE schedules (
    access_key    text PRIMARY KEY,           -- as Mettl sends it
    name          text,
    assessment_id bigint,
    raw           jsonb NOT NULL,             -- the schedule's JSON (article 11/12)
    synced_at     timestamptz NOT NULL,       -- when a sync last walked it completely
    deleted_at    timestamptz                 -- when a complete sync no longer found it
);

CREATE TABLE candidate_results (
    access_key    text NOT NULL,
    email         text NOT NULL,              -- as Mettl sends it (no case folding)
    status        text,                       -- testStatus.status
    total_marks   double precision,
    max_marks     double precision,
    percentile    double precision,
    start_time    timestamptz,
    end_time      timestamptz,
    raw           jsonb NOT NULL,             -- the candidate's JSON
    content_hash  text NOT NULL,              -- of the bytes Mettl sent: unchanged rows are not rewritten
    first_seen_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,       -- when its content last changed
    deleted_at    timestamptz,                -- when a complete walk no longer listed it
    PRIMARY KEY (access_key, email)
);

CREATE TABLE section_marks (
    access_key            text NOT NULL,
    email                 text NOT NULL,
    position              integer NOT NULL,   -- order in testStatus.result.sectionMarks, from 0
    section_name          text,
    total_marks           double precision,
    max_marks             double precision,
    time_taken            double precision,
    total_question        double precision,
    total_correct_answers double precision,
    total_unanswered      double precision,
    PRIMARY KEY (access_key, email, position)
);

CREATE TABLE sync_runs (
    id          bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,                  -- NULL: still running, or killed
    complete    boolean NOT NULL DEFAULT false,
    inserted    bigint NOT NULL DEFAULT 0,
    updated     bigint NOT NULL DEFAULT 0,
    unchanged   bigint NOT NULL DEFAULT 0,
    deleted     bigint NOT NULL DEFAULT 0,
    schedules   bigint NOT NULL DEFAULT 0,
    scope       jsonb,                        -- the access keys asked for; NULL: all
    error       text
);
