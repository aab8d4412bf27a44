"""No lost update: a row the webhook listener stores while a sync walks its schedule is never
overwritten by the sync's older listing. The interleaving is made deterministic by pausing
the sync (a wrapped method of its database) after the schedule's first page was fetched,
while the listener's ResultUpdater stores a regraded result; on SQLite and, when
``METTL_TEST_POSTGRES_URL`` is set, on PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mettl_async.sync import ResultUpdater, open_database, sync_results
from mettl_async.sync.base import ScheduleCommit
from mettl_async.sync.migrations import migrations, split_statements
from mettl_async.sync.rows import result_row
from mettl_async.testing import FakeMettlServer
from mettl_async.webhooks import parse_event

from .test_sync import (  # noqa: F401 (database_url, server: fixtures)
    assert_mirrors,
    database_url,
    graded_payload,
    runs,
    server,
    stored,
    truth,
)


@pytest.mark.parametrize(
    "pause",
    [
        "snapshot",  # stored after the page was fetched, before the sync read the stored rows
        "commit",  # stored after the sync read the stored rows, before its commit
        "and back",  # regraded, stored, then regraded back to what the sync read: the same hash
    ],
)
async def test_a_row_the_listener_stores_during_the_sync_is_not_overwritten(
    server: FakeMettlServer,  # noqa: F811
    database_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    pause: str,
) -> None:
    fake = server.fake
    key = fake.account.schedules[0].access_key
    regraded, other = fake.mutate.emails(key, status="Completed")[:2]
    total = fake.account.total_candidates
    async with server.client() as client:
        await sync_results(client, database_url)
        listener_db = await open_database(database_url, reconnect=True)
        sync_db = await open_database(database_url)
        try:
            updater = ResultUpdater(client, listener_db)
            # the listener's bytes of the result as it is (its hash is the listener's)
            before = orjson.dumps(await client.get_candidate_result_raw(key, regraded))
            if pause == "and back":
                now = datetime.now(UTC)
                await listener_db.store_result(key, result_row(regraded, before), now)
            fake.mutate.change_marks(key, regraded)  # what the sync will list: newer than stored
            fake.mutate.change_marks(key, other)  # a change no webhook brings: the sync's to store

            async def webhooks() -> None:
                # regraded again once the sync holds the page: the webhook brings the newest
                fake.mutate.change_marks(key, regraded)
                event = parse_event(graded_payload(key, regraded))
                assert await updater(event) == "updated"
                if pause == "and back":  # ...then regraded back to what the sync read
                    now = datetime.now(UTC)
                    row = result_row(regraded, before)
                    assert await listener_db.store_result(key, row, now) == "updated"

            method = "commit_schedule" if pause == "commit" else "snapshot"
            real = getattr(sync_db, method)
            paused: list[str] = []

            async def pausing(arg: Any) -> Any:
                schedule = arg.access_key if isinstance(arg, ScheduleCommit) else arg
                if schedule == key and not paused:
                    paused.append(schedule)
                    await webhooks()
                return await real(arg)

            monkeypatch.setattr(sync_db, method, pausing)
            summary = await sync_results(client, sync_db)
            newest = await client.get_candidate_result_raw(key, regraded)
        finally:
            await sync_db.close()
            await listener_db.close()
    assert paused == [key]
    row = (await stored(database_url))[key, regraded]
    if pause == "and back":
        assert row["raw"] == orjson.loads(before)
        assert row["hash"] == result_row(regraded, before)[8]
    else:  # the webhook's, with Mettl's newest marks
        assert row["raw"] == orjson.loads(orjson.dumps(newest))
        listed = truth(fake)[key, regraded]["testStatus"]["result"]["totalMarks"]
        assert row["total"] == newest["testStatus"]["result"]["totalMarks"] == listed
    # every other row is the account's (the other change among them)
    found = await stored(database_url)
    assert {k for k, v in found.items() if v["deleted"] is None} == set(truth(fake))
    for k, record in truth(fake).items():
        if k != (key, regraded):
            assert found[k]["raw"] == record
    # the listener's row is not counted as updated: only the other change is
    assert (summary.inserted, summary.updated, summary.deleted) == (0, 1, 0)
    assert summary.unchanged == total - 1
    assert (await runs(database_url))[-1][1:6] == (True, 0, 1, total - 1, 0)


async def test_a_version_1_database_is_migrated_and_synced(
    server: FakeMettlServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A database of the previous schema (no row versions) gets them, its rows at version
    0, and a sync updates what changed."""
    path = tmp_path / "mettl.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE mettl_schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        first = migrations("sqlite")[0]
        for statement in split_statements(first.sql):
            conn.execute(statement)
        conn.execute("INSERT INTO mettl_schema_migrations VALUES (1, 'initial', 'then')")
        conn.execute(
            "INSERT INTO candidate_results VALUES ('k', 'a@b.c', NULL, NULL, NULL, NULL, NULL, "
            "NULL, '{}', 'h', 'then', 'then', NULL)"
        )
    url = f"sqlite:///{path}"
    async with await open_database(url) as db:
        assert await db.schema_version() == 2
        assert await db.fetch_all("SELECT email, row_version FROM candidate_results") == [
            ("a@b.c", 0)
        ]
        assert await db.version_mark() == 0
    fake = server.fake
    async with server.client() as client:
        await sync_results(client, url)
        key = fake.account.schedules[0].access_key
        fake.mutate.change_marks(key, fake.mutate.emails(key, status="Completed")[0])
        summary = await sync_results(client, url)
    assert summary.updated == 1
    assert_mirrors({k: v for k, v in (await stored(url)).items() if k[0] != "k"}, fake)
