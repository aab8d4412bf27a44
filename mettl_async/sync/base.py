"""What the sync's parts share: its errors, a database's interface, and the rules of a commit.

A backend (:mod:`~mettl_async.sync.sqlite`, :mod:`~mettl_async.sync.postgres`)
is a :class:`Database`: it applies the migrations, holds the lock that keeps a
second sync out, and commits one schedule at a time in one transaction. Which
rows a commit writes is decided here, the same way for every backend:

- before a schedule's first page is asked for, the database's newest row
  version is read (its ``mark``, :meth:`Database.version_mark`): every
  transaction that writes rows (a commit, a webhook's upsert) gives them a
  newer version, so a row stored after the schedule's pages were fetched is
  recognised by its version alone (no clock is compared, and content that
  changed and changed back still counts as changed);
- its rows' hashes are read (``snapshot``); a listed record whose hash is the
  same is not kept at all: unchanged rows cost nothing;
- the records that differ wait in a :class:`Spool` until the walk is complete;
- in the commit's transaction, which no other writer can enter, the rows are
  read again (``current``): a row whose version is newer than the mark was
  stored by another writer (a webhook) after the walk began, and is left as
  that writer left it, never overwritten by the older listing (counted as
  unchanged); every other differing row is inserted or updated, its section
  marks replaced; a row the complete walk no longer lists gets ``deleted_at``
  (never removed), unless it is newer than the mark.

Every call a backend makes is bounded by its :class:`DatabaseTimeouts`, and
every failure of the database is a typed :class:`SyncError` naming it: the
database unreachable (:class:`DatabaseUnavailableError`), lost or silent
mid-run (:class:`DatabaseLostError`, :class:`DatabaseTimeoutError`), its disk
full (:class:`DatabaseFullError`), or the spool's directory full
(:class:`SpoolFullError`).
"""

from __future__ import annotations

import abc
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence, Set
from datetime import datetime
from typing import IO, Any, Final, Literal, Self, TypeAlias

import attrs
import msgspec

from mettl_async._errors import ConfigurationError, MettlError
from mettl_async.sync.rows import Row

__all__ = [
    "Counts",
    "Database",
    "DatabaseFullError",
    "DatabaseLostError",
    "DatabaseTimeoutError",
    "DatabaseTimeouts",
    "DatabaseUnavailableError",
    "Plan",
    "ScheduleCommit",
    "Snapshot",
    "Spool",
    "SpoolFullError",
    "StoreOutcome",
    "SyncConfigurationError",
    "SyncError",
    "SyncLockedError",
    "deletions",
    "plan_rows",
]


class SyncError(MettlError):
    """A sync could not be done as asked (the database refused, its schema is too new...)."""


class SyncLockedError(SyncError):
    """Another sync is writing into the same database right now."""


class SyncConfigurationError(SyncError, ConfigurationError):
    """A database that cannot be used as asked: a bad URL, a driver not installed, another
    application's database, a schema newer than this library, wrong credentials."""


class DatabaseUnavailableError(SyncError):
    """The database cannot be reached: the server refuses or does not answer, the file
    cannot be opened. Trying again later may work."""


class DatabaseLostError(SyncError):
    """The database was lost during the work: the connection closed, the file went away,
    or a call did not answer in time. Nothing half-done stays: run again."""


class DatabaseTimeoutError(DatabaseLostError):
    """A database call did not finish within its timeout (a frozen server, a lock held
    by another connection for too long)."""


class DatabaseFullError(SyncError):
    """The database's disk is full (or it reached its size limit)."""


class SpoolFullError(SyncError):
    """The directory of the sync's temporary files (``TMPDIR``) is full."""


@attrs.frozen
class DatabaseTimeouts:
    """Seconds a database call may take before it fails with :class:`DatabaseTimeoutError`.

    ``connect``: opening the connection (and, for PostgreSQL, each reconnection);
    ``statement``: each other call (a query, a page of rows written, and the wait
    for another writer's lock or for the connection's turn); ``commit``: the
    ``COMMIT`` of a transaction.
    """

    connect: float = 10.0
    statement: float = 30.0
    commit: float = 60.0

    def __attrs_post_init__(self) -> None:
        for name in ("connect", "statement", "commit"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value < float("inf")
            ):
                raise SyncConfigurationError(
                    f"the {name} timeout must be a finite number of seconds > 0, got {value!r}"
                )


#: The timeouts of :func:`~mettl_async.sync.open_database` unless told otherwise.
DEFAULT_TIMEOUTS: Final = DatabaseTimeouts()
#: Seconds the end of a failed or interrupted run may take (closing its ``sync_runs`` row,
#: releasing the lock, closing the connection), so that Ctrl+C ends the run promptly.
CLEANUP_SECONDS: Final = 3.0

#: ``errno`` values of a full disk (or a file size limit).
_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is an ``OSError`` saying that there is no room to write."""
    return isinstance(error, OSError) and error.errno in _FULL


#: A schedule's rows as stored: email -> (content_hash, deleted, row_version).
Snapshot: TypeAlias = dict[str, tuple[str, bool, int]]
StoreOutcome: TypeAlias = Literal["inserted", "updated", "unchanged"]

#: Rows of a schedule kept in memory before the spool moves to a temporary file.
SPOOL_MEMORY: Final = 2 * 1024 * 1024


@attrs.define
class Counts:
    """What a sync did to candidate rows."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def add(self, other: Counts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted


class Spool:
    """One schedule's changed rows, waiting for its walk to complete.

    In memory up to about ``max_memory`` bytes of JSON, then in a temporary
    file, so that a schedule of any size is committed in one transaction with
    flat memory.
    """

    _encoder: Final = msgspec.msgpack.Encoder()
    _decoder: Final = msgspec.msgpack.Decoder(list[list[Any]])

    def __init__(self, max_memory: int = SPOOL_MEMORY) -> None:
        self.max_memory = max_memory
        self._pages: list[Sequence[Row]] = []
        self._size = 0
        self._file: IO[bytes] | None = None
        self.rows = 0

    def add(self, rows: Sequence[Row]) -> None:
        """Keep ``rows``; a :class:`SpoolFullError` when the temporary file's disk is full."""
        if not rows:
            return
        self.rows += len(rows)
        try:
            if self._file is None:
                self._pages.append(rows)
                self._size += sum(len(row[7]) for row in rows)
                if self._size <= self.max_memory:
                    return
                self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
                pages, self._pages = self._pages, []
                for page in pages:
                    self._write(page)
                return
            self._write(rows)
        except OSError as exc:
            raise _spool_error(exc) from exc

    def _write(self, rows: Sequence[Row]) -> None:
        assert self._file is not None
        data = self._encoder.encode(rows)
        self._file.write(len(data).to_bytes(4, "little"))
        self._file.write(data)

    def chunks(self) -> Iterator[Sequence[Row]]:
        """The rows added, in order, a page at a time."""
        if self._file is None:
            yield from self._pages
            return
        try:
            self._file.flush()
        except OSError as exc:
            raise _spool_error(exc) from exc
        self._file.seek(0)
        while header := self._file.read(4):
            data = self._file.read(int.from_bytes(header, "little"))
            yield [tuple(row) for row in self._decoder.decode(data)]

    @property
    def spilled(self) -> bool:
        """Whether the rows went to a temporary file."""
        return self._file is not None

    def close(self) -> None:
        self._pages = []
        if self._file is not None:
            self._file.close()


def _spool_error(error: OSError) -> SyncError:
    """The spool's write error, naming the directory of temporary files and ``TMPDIR``."""
    directory = tempfile.gettempdir()
    tmpdir = os.environ.get("TMPDIR")
    setting = f"TMPDIR={tmpdir}" if tmpdir else "TMPDIR is not set"
    what = error.strerror or str(error)
    if is_disk_full(error):
        return SpoolFullError(
            f"the spool directory {directory} is full ({what}; {setting}): a schedule's "
            "changed rows wait there until its walk is complete; free space there, or set "
            "TMPDIR to a directory with room"
        )
    return SyncError(f"cannot write the sync's spool in {directory} ({setting}): {what}")


@attrs.define
class Plan:
    """What a commit writes of one chunk of rows."""

    inserts: list[Row] = attrs.Factory(list)
    updates: list[Row] = attrs.Factory(list)
    kept: int = 0  # differing from the snapshot, but equal now, or changed by another writer


def plan_rows(rows: Iterable[Row], current: Snapshot, mark: int) -> Plan:
    """Sort rows into inserts and updates, against the rows now stored (``current``) and
    the schedule's ``mark`` (the newest row version before its pages were fetched)."""
    plan = Plan()
    for row in rows:
        email, digest = row[0], row[8]
        now = current.get(email)
        if now is None:
            plan.inserts.append(row)
        elif now[0] == digest and not now[1]:
            plan.kept += 1  # someone stored this very content meanwhile
        elif now[2] > mark:
            plan.kept += 1  # another writer stored it after the pages were fetched: newer
        else:
            plan.updates.append(row)  # stored before the pages were fetched: ours is newer
    return plan


def deletions(current: Snapshot, seen: Set[str], mark: int) -> list[tuple[str, str]]:
    """(email, hash) of the rows a complete walk no longer lists, stored before ``mark``."""
    return [
        (email, digest)
        for email, (digest, deleted, version) in current.items()
        if not deleted and email not in seen and version <= mark
    ]


@attrs.frozen
class ScheduleCommit:
    """Everything one schedule's commit needs."""

    access_key: str
    name: str | None
    assessment_id: int | None
    raw: str
    before: Snapshot
    spool: Spool
    seen: Set[str]
    listed: int  # records the walk listed (with an email)
    run_id: int
    now: datetime
    mark: int  # the newest row version before the schedule's first page was asked for

    def needs_current(self) -> bool:
        """Whether anything may be written: rows spooled, or rows maybe gone."""
        if self.spool.rows:
            return True
        return any(
            not deleted and email not in self.seen for email, (_, deleted, _) in self.before.items()
        )


class Database(abc.ABC):
    """A database the sync writes into (one backend per kind of database).

    Opened by :func:`~mettl_async.sync.open_database`, which applies the
    migrations. Use it as an async context manager, or call :meth:`close`.
    """

    #: The URL, password hidden: for messages.
    url: str
    #: How long each call may take.
    timeouts: DatabaseTimeouts = DEFAULT_TIMEOUTS
    #: Whether a lost connection is made again at the next call (a webhook listener's).
    reconnect: bool = False

    def __init__(
        self,
        location: str,
        url: str,
        timeouts: DatabaseTimeouts = DEFAULT_TIMEOUTS,
        *,
        reconnect: bool = False,
    ) -> None:
        self.location = location  # where it is: a file's path, a DSN (secret: never shown)
        self.url, self.timeouts, self.reconnect = url, timeouts, reconnect

    @classmethod
    async def open(cls, location: str, url: str, **options: Any) -> Self:
        """The database at ``location``, connected, its schema checked and migrated
        (``url``: how messages name it; ``options``: ``timeouts`` and ``reconnect``)."""
        database = cls(location, url, **options)
        try:
            await database._start()
        except BaseException:
            await database.close()
            raise
        return database

    async def _start(self) -> None:
        """Connect, and apply the migrations (:meth:`open`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be opened by Database.open")

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection (and the sync lock, if held)."""

    @abc.abstractmethod
    async def lock(self) -> None:
        """Take the sync lock of this database, or raise :class:`SyncLockedError`."""

    @abc.abstractmethod
    async def unlock(self) -> None:
        """Release the sync lock."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The last migration applied."""

    @abc.abstractmethod
    async def snapshot(self, access_key: str) -> Snapshot:
        """The hashes (and versions) of a schedule's stored rows."""

    @abc.abstractmethod
    async def version_mark(self) -> int:
        """The newest row version handed out: a row written after this call, by any
        writer, gets a greater one."""

    @abc.abstractmethod
    async def begin_run(self, now: datetime, scope: Sequence[str] | None) -> int:
        """A new ``sync_runs`` row; its id."""

    @abc.abstractmethod
    async def end_run(
        self, run_id: int, now: datetime, *, complete: bool, schedules: int, error: str | None
    ) -> None:
        """Close a ``sync_runs`` row."""

    @abc.abstractmethod
    async def commit_schedule(self, commit: ScheduleCommit) -> Counts:
        """Write one schedule in one transaction (with its counts added to the run's row)."""

    @abc.abstractmethod
    async def mark_schedules_deleted(self, listed: Set[str], now: datetime) -> int:
        """Set ``deleted_at`` on stored schedules the account no longer lists; how many."""

    @abc.abstractmethod
    async def store_result(self, access_key: str, row: Row, now: datetime) -> StoreOutcome:
        """Upsert one result in its own transaction (a webhook's update)."""

    async def ping(self) -> None:
        """Check that the database answers (reconnecting if it reconnects); a typed
        :class:`SyncError` if not."""
        await self.fetch_all("SELECT 1")

    @abc.abstractmethod
    async def fetch_all(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a query, for tests and tools (``?`` placeholders in SQLite, ``$1`` in
        PostgreSQL)."""


def redact_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def rows_by_email(rows: Iterable[tuple[Any, ...]]) -> Snapshot:
    """A :data:`Snapshot` of ``(email, content_hash, deleted_at, row_version)`` rows."""
    return {
        email: (digest, deleted is not None, int(version))
        for email, digest, deleted, version in rows
    }
