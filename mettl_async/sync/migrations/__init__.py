"""The sync schema's numbered migrations: ``<dialect>/NNNN_name.sql``, applied in order.

Each database records the versions applied in ``mettl_schema_migrations``; a
migration is applied in one transaction with its row there, so a database is
always at one version. A database whose version is newer than the newest file
here was written by a newer mettl-async, and is refused; so is a database with
a table of the schema but no ``mettl_schema_migrations`` (another
application's). Both are recognised before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Set
from importlib import resources
from typing import Final

import attrs

from mettl_async.sync.base import SyncConfigurationError

__all__ = [
    "MIGRATIONS_TABLE",
    "SCHEMA_TABLES",
    "Migration",
    "check_tables",
    "migrations",
    "split_statements",
    "unapplied",
]

#: Where each database records the migrations applied.
MIGRATIONS_TABLE: Final = "mettl_schema_migrations"
#: The tables the migrations create.
SCHEMA_TABLES: Final = frozenset({"schedules", "candidate_results", "section_marks", "sync_runs"})

_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """The migrations of ``"sqlite"`` or ``"postgresql"``, by version."""
    found = []
    for entry in resources.files(__name__).joinpath(dialect).iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{dialect} migrations are not numbered 1..n: {versions}")
    return found


def unapplied(known: list[Migration], applied: Set[int], database: str) -> list[Migration]:
    """The migrations of ``known`` not in ``applied``, by version; a
    :class:`SyncConfigurationError` if ``database`` (for the message) is at a version newer
    than any known."""
    newest = max(applied, default=0)
    if newest > len(known):
        raise SyncConfigurationError(
            f"the database {database} is at schema version {newest}, newer than this "
            f"mettl-async knows ({len(known)}): upgrade mettl-async"
        )
    return [migration for migration in known if migration.version not in applied]


def check_tables(tables: Set[str], database: str) -> None:
    """Refuse a database with a table of the schema but no migrations table: another
    application's (``tables``: the names of its tables; ``database`` for the message)."""
    if MIGRATIONS_TABLE in tables:
        return
    clash = sorted(SCHEMA_TABLES & tables)
    if clash:
        raise SyncConfigurationError(
            f"the database {database} has a table {clash[0]} but no {MIGRATIONS_TABLE}: "
            "it belongs to another application; give mettl-async a database (or a "
            "PostgreSQL schema) of its own"
        )


def split_statements(sql: str) -> list[str]:
    """The statements of a migration (``;`` ends one; ``--`` comments run to the line's end)."""
    statements, current = [], []
    for line in sql.splitlines():
        code = line.split("--", 1)[0]
        current.append(code)
        if code.rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if statement.strip(";").strip():
                statements.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        statements.append(rest)
    return statements
