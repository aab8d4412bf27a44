"""``fake.mutate``: the fake account changes while the server runs, and every endpoint shows it."""

from __future__ import annotations

import pytest

from mettl_async import MettlClient, NotFoundError
from mettl_async.testing import FakeAccount, FakeMettl, FakeMettlServer


@pytest.fixture
async def small() -> FakeMettlServer:
    return FakeMettlServer(FakeMettl(account=FakeAccount(2, 40, seed=11)))


async def listed(client: MettlClient, key: str) -> dict[str, dict[str, object]]:
    return {r["email"]: dict(r) async for r in client.iter_candidate_results(key).raw()}


async def test_each_mutation_shows_in_the_next_listing(small: FakeMettlServer) -> None:
    """Regrade, grade, delete and add change exactly the candidates named."""
    async with small as server, server.client() as client:
        fake = server.fake
        key = fake.account.schedules[0].access_key
        before = await listed(client, key)
        completed = fake.mutate.emails(key, status="Completed")
        in_progress = fake.mutate.emails(key, status="InProgress")
        regraded, gone = completed[0], completed[1]
        graded = in_progress[0]

        fake.mutate.change_marks(key, regraded)
        fake.mutate.grade(key, graded)
        fake.mutate.delete(key, gone)
        added = fake.mutate.add(key, 2)
        added_done = fake.mutate.add(key, 1, completed=True)

        after = await listed(client, key)
        assert set(after) == (set(before) - {gone}) | set(added) | set(added_done)
        old_marks = before[regraded]["testStatus"]["result"]["totalMarks"]  # type: ignore[index]
        new_marks = after[regraded]["testStatus"]["result"]["totalMarks"]  # type: ignore[index]
        assert new_marks != old_marks
        assert after[graded]["testStatus"]["status"] == "Completed"  # type: ignore[index]
        assert all(after[e]["testStatus"]["status"] == "InProgress" for e in added)  # type: ignore[index]
        assert after[added_done[0]]["testStatus"]["status"] == "Completed"  # type: ignore[index]
        unchanged = set(before) - {regraded, graded, gone}
        assert all(after[e] == before[e] for e in unchanged)
        # article 17 agrees with the listing
        one = await client.get_candidate_result_raw(key, regraded)
        assert one["testStatus"]["result"]["totalMarks"] == new_marks
        with pytest.raises(NotFoundError):
            await client.get_candidate_result_raw(key, gone)


def test_mutations_refuse_what_makes_no_sense() -> None:
    """Unknown names are KeyError; regrading an untaken test or grading twice is ValueError."""
    fake = FakeMettl(account=FakeAccount(1, 40, seed=11))
    key = fake.account.schedules[0].access_key
    with pytest.raises(KeyError, match="no schedule"):
        fake.mutate.delete("nope", "a@b.c")
    with pytest.raises(KeyError, match="no candidate"):
        fake.mutate.delete(key, "nobody@example.com")
    with pytest.raises(ValueError, match="no result"):
        fake.mutate.change_marks(key, fake.mutate.emails(key, status="InProgress")[0])
    with pytest.raises(ValueError, match="graded already"):
        fake.mutate.grade(key, fake.mutate.emails(key, status="Completed")[0])
    email = fake.mutate.emails(key)[0]
    fake.mutate.delete(key, email)
    with pytest.raises(KeyError):
        fake.mutate.delete(key, email)
