-- mettl-async sync schema, version 1 (SQLite).
-- Times are UTC text, 'YYYY-MM-DD HH:MM:SS' (Mettl's times) or with microseconds
-- (the sync's own), which SQLite's date and time functions read as they are.
-- raw is the JSON text Mettl sent, for json_extract().

CREATE TABLE schedules (
    access_key    TEXT PRIMARY KEY NOT NULL,  -- as Mettl sends it
    name          TEXT,
    assessment_id INTEGER,
    raw           TEXT NOT NULL,              -- the schedule's JSON (article 11/12)
    synced_at     TEXT NOT NULL,              -- when a sync last walked it completely
    deleted_at    TEXT                        -- when a complete sync no longer found it
);

CREATE TABLE candidate_results (
    access_key    TEXT NOT NULL,
    email         TEXT NOT NULL,              -- as Mettl sends it (no case folding)
    status        TEXT,                       -- testStatus.status
    total_marks   REAL,
    max_marks     REAL,
    percentile    REAL,
    start_time    TEXT,                       -- UTC
    end_time      TEXT,                       -- UTC
    raw           TEXT NOT NULL,              -- the candidate's JSON as Mettl sent it
    content_hash  TEXT NOT NULL,              -- of raw's bytes: unchanged rows are not rewritten
    first_seen_at TEXT NOT NULL,
    updated_at    TEXT NOT NULL,              -- when its content last changed
    deleted_at    TEXT,                       -- when a complete walk no longer listed it
    PRIMARY KEY (access_key, email)
);

CREATE TABLE section_marks (
    access_key            TEXT NOT NULL,
    email                 TEXT NOT NULL,
    position              INTEGER NOT NULL,   -- order in testStatus.result.sectionMarks, from 0
    section_name          TEXT,
    total_marks           REAL,
    max_marks             REAL,
    time_taken            REAL,
    total_question        REAL,
    total_correct_answers REAL,
    total_unanswered      REAL,
    PRIMARY KEY (access_key, email, position)
);

CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at  TEXT NOT NULL,
    finished_at TEXT,                         -- NULL: still running, or killed
    complete    INTEGER NOT NULL DEFAULT 0,   -- 1: every schedule asked for was walked completely
    inserted    INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    schedules   INTEGER NOT NULL DEFAULT 0,   -- schedules committed
    scope       TEXT,                         -- JSON list of the access keys asked for; NULL: all
    error       TEXT                          -- why an incomplete run stopped
);
