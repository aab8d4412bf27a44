"""Mirror every candidate result of a Mettl account into a database, and keep it current.

::

    from mettl_async import MettlClient
    from mettl_async.sync import sync_results

    async with MettlClient.from_env() as mettl:
        summary = await sync_results(mettl, "sqlite:///mettl.db")

SQLite (the standard library's ``sqlite3``) by default; PostgreSQL with
``pip install 'mettl-async[postgres]'`` (asyncpg). The schema (``schedules``,
``candidate_results``, ``section_marks``, ``sync_runs``) is documented in the
README and created by numbered migrations (:mod:`~mettl_async.sync.migrations`).

The package's parts:
  engine.py     sync_results: the schedule walk (the export's too), its pages to a sink
  sink.py       ResultSink: a page's rows read and compared, a commit per schedule
  writer.py     the writer process: a ResultSink beside the walk, with its own GIL
  base.py       the errors, the timeouts, a backend's interface, what a commit writes
  rows.py       a record's columns, read from Mettl's JSON (pure)
  database.py   database URLs, open_database
  sqlite.py     the SQLite backend (worker.py: its thread); postgres.py the PostgreSQL one
  live.py       ResultUpdater: the webhook callback that keeps the database current
"""

from __future__ import annotations

from mettl_async._walk import WalkProgress as WalkProgress
from mettl_async.sync.base import (
    Counts,
    Database,
    DatabaseFullError,
    DatabaseLostError,
    DatabaseTimeoutError,
    DatabaseTimeouts,
    DatabaseUnavailableError,
    SpoolFullError,
    SyncConfigurationError,
    SyncError,
    SyncLockedError,
)
from mettl_async.sync.database import DEFAULT_DATABASE_URL, open_database
from mettl_async.sync.engine import SyncSummary, sync_results
from mettl_async.sync.live import ResultUpdater

# Also importable from here, though not in ``*`` (documented with the export, whose
# ExportProgress it is): WalkProgress, the type of sync_results' ``progress``.
__all__ = [
    "DEFAULT_DATABASE_URL",
    "Counts",
    "Database",
    "DatabaseFullError",
    "DatabaseLostError",
    "DatabaseTimeoutError",
    "DatabaseTimeouts",
    "DatabaseUnavailableError",
    "ResultUpdater",
    "SpoolFullError",
    "SyncConfigurationError",
    "SyncError",
    "SyncLockedError",
    "SyncSummary",
    "open_database",
    "sync_results",
]
