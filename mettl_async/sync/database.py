"""Database URLs, and opening the backend each one names."""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import unquote, urlsplit

from mettl_async.sync.base import (
    DEFAULT_TIMEOUTS,
    Database,
    DatabaseTimeouts,
    SyncConfigurationError,
    redact_url,
)

__all__ = ["DEFAULT_DATABASE_URL", "open_database"]

#: ``mettl.db`` in the current directory.
DEFAULT_DATABASE_URL: Final = "sqlite:///mettl.db"

_FORMS: Final = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory: "
    "or postgresql://user:password@host:port/database"
)


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:`` URL (``None`` for another scheme)."""
    if not url.startswith("sqlite:"):
        return None
    if not url.startswith("sqlite:///"):
        raise SyncConfigurationError(f"a SQLite URL has three slashes: expected {_FORMS}")
    path = unquote(url[len("sqlite:///") :].split("?", 1)[0])
    if not path:
        raise SyncConfigurationError(f"the SQLite URL {url!r} names no file: expected {_FORMS}")
    if path == ":memory:":
        return path
    return os.path.abspath(path)


def check_ports(url: str, shown: str) -> None:
    """Refuse a PostgreSQL URL whose port (of any of its hosts) is not a port number."""
    netloc = url.partition("://")[2].partition("/")[0].partition("?")[0]
    hosts = netloc.rpartition("@")[2]
    for host in hosts.split(","):
        port = host.rpartition("]")[2] if host.startswith("[") else host
        _, colon, text = port.rpartition(":")
        if not colon:
            continue
        if not text.isascii() or not text.isdigit() or not 0 < int(text) < 65536:
            raise SyncConfigurationError(
                f"the port of the database URL {shown!r} is {text!r}: expected a number "
                "from 1 to 65535 (postgresql://user:password@host:5432/database)"
            )


async def open_database(
    url: str, *, timeouts: DatabaseTimeouts = DEFAULT_TIMEOUTS, reconnect: bool = False
) -> Database:
    """Open (creating and migrating as needed) the database of ``url``.

    ``sqlite:///mettl.db`` (a file, relative to the current directory;
    ``sqlite:////var/lib/mettl.db`` for an absolute path) or
    ``postgresql://user:password@host:port/database`` (``postgres://`` too;
    needs ``pip install 'mettl-async[postgres]'``).

    ``timeouts`` bound every call (:class:`~mettl_async.sync.DatabaseTimeouts`).
    ``reconnect=True`` (for a long-running webhook listener) reconnects after a
    lost connection, at the next call, instead of failing every later call; a
    sync never reconnects (its lock lives with its connection).

    Raises :class:`~mettl_async.sync.SyncConfigurationError` for a URL or a
    database that cannot be used (another application's, a newer schema),
    :class:`~mettl_async.sync.DatabaseUnavailableError` when it cannot be reached.
    """
    if not isinstance(url, str) or not url.strip():
        raise SyncConfigurationError(f"no database URL: expected {_FORMS}")
    if not isinstance(timeouts, DatabaseTimeouts):
        raise SyncConfigurationError(f"timeouts must be DatabaseTimeouts, got {timeouts!r}")
    shown = redact_url(url)
    path = sqlite_path(url)
    if path is not None:
        from mettl_async.sync.sqlite import SQLiteDatabase

        return await SQLiteDatabase.open(path, shown, timeouts=timeouts, reconnect=reconnect)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        from mettl_async.sync.postgres import PostgresDatabase

        check_ports(url, shown)
        return await PostgresDatabase.open(url, shown, timeouts=timeouts, reconnect=reconnect)
    raise SyncConfigurationError(f"unknown kind of database URL {shown!r}: expected {_FORMS}")
