"""Database URLs, and opening the backend each one names."""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import unquote, urlsplit

from mettl_async.sync.base import Database, SyncConfigurationError, redact_url

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


async def open_database(url: str) -> Database:
    """Open (creating and migrating as needed) the database of ``url``.

    ``sqlite:///mettl.db`` (a file, relative to the current directory;
    ``sqlite:////var/lib/mettl.db`` for an absolute path) or
    ``postgresql://user:password@host:port/database`` (``postgres://`` too;
    needs ``pip install 'mettl-async[postgres]'``).
    """
    if not isinstance(url, str) or not url.strip():
        raise SyncConfigurationError(f"no database URL: expected {_FORMS}")
    shown = redact_url(url)
    path = sqlite_path(url)
    if path is not None:
        from mettl_async.sync.sqlite import SQLiteDatabase

        return await SQLiteDatabase.open(path, shown)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        from mettl_async.sync.postgres import PostgresDatabase

        return await PostgresDatabase.open(url, shown)
    raise SyncConfigurationError(f"unknown kind of database URL {shown!r}: expected {_FORMS}")
