"""``fake.mutate``: the fake account changes while the server runs, and every endpoint shows it."""

from __future__ import annotations

import asyncio

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


# -- a busy account: arrivals and deletions under a walk, pages answered late -------------


async def test_arrivals_join_the_front_of_the_listing_asked_for() -> None:
    """Before every 2nd listing request (all listings counted together), a new candidate
    starts the test in the schedule asked for: listed first, as the newest."""
    fake = FakeMettl(account=FakeAccount(2, 30, seed=3), arrival_every=2)
    first, second = (s.access_key for s in fake.account.schedules)
    async with FakeMettlServer(fake) as server, server.client() as client:
        before = fake.mutate.emails(first)
        await client.request("GET", f"/schedules/{second}/candidates", {"limit": "5"})
        page = await client.request("GET", f"/schedules/{first}/candidates", {"limit": "5"})
    emails = [c["email"] for c in page["candidates"]]
    assert fake.arrivals == 1
    assert emails[1:] == before[:4]  # one newcomer in front
    assert emails[0] not in before
    assert page["paging"]["totalRecords"] == 31
    assert fake.listing_requests == {f"candidates of {second}": 1, f"candidates of {first}": 1}


async def test_deletions_take_a_record_of_the_listing_asked_for() -> None:
    fake = FakeMettl(account=FakeAccount(1, 30, seed=3), deletion_every=1)
    key = fake.account.schedules[0].access_key
    before = fake.mutate.emails(key)
    async with FakeMettlServer(fake) as server, server.client() as client:
        page = await client.request("GET", f"/schedules/{key}/candidates", {"limit": "100"})
    emails = [c["email"] for c in page["candidates"]]
    assert fake.deletions == 1
    assert len(emails) == 29
    assert set(emails) < set(before)
    assert page["paging"]["totalRecords"] == 29


async def test_schedules_and_assessments_change_under_their_walks_too() -> None:
    """Article 11 gets new schedules at its front and loses archived ones (whose own
    endpoints still answer); article 6 gets new assessments and loses deleted ones."""
    fake = FakeMettl(account=FakeAccount(5, 2, seed=3), arrival_every=1)
    async with FakeMettlServer(fake) as server, server.client() as client:
        listed = await client.request("GET", "/schedules", {"limit": "10"})
        assert len(listed["schedules"]) == 6
        assert listed["schedules"][0]["accessKey"] == fake.account.schedules[0].access_key
        assessments = await client.request("GET", "/assessments", {"limit": "50"})
        assert assessments["assessments"][0]["id"] == max(fake.assessments)
        fake.set_churn(arrival_every=0, deletion_every=1)
        before = {s.access_key for s in fake.account.schedules}
        listed = await client.request("GET", "/schedules", {"limit": "10"})
        (archived,) = before - {s["accessKey"] for s in listed["schedules"]}
        assert len(listed["schedules"]) == 5
        kept = await client.request("GET", f"/schedules/{archived}")
        assert kept["schedule"]["accessKey"] == archived
        count = len(fake.assessments)
        await client.request("GET", "/assessments", {"limit": "50"})
        assert len(fake.assessments) == count - 1
    assert fake.arrivals == 2
    assert fake.deletions == 2


async def test_a_late_page_answers_after_later_ones_and_shows_what_changed_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page chosen to be late is read from the account after its wait: a page asked for
    after it answers first, and a candidate who arrived meanwhile is on the late one."""
    from mettl_async.testing import churn

    released = asyncio.Event()
    waiting = asyncio.Event()

    async def hold(delay: float) -> None:
        assert delay == 0.25
        waiting.set()
        await released.wait()

    monkeypatch.setattr(churn, "hold", hold)
    fake = FakeMettl(account=FakeAccount(1, 30, seed=3), late_share=1.0, late_delay=0.25)
    key = fake.account.schedules[0].access_key
    async with FakeMettlServer(fake) as server, server.client() as client:
        late = asyncio.ensure_future(
            client.request("GET", f"/schedules/{key}/candidates", {"limit": "5"})
        )
        await waiting.wait()
        fake.set_churn(late_share=0.0)
        on_time = await client.request("GET", f"/schedules/{key}/candidates", {"limit": "5"})
        assert not late.done()
        newcomer = fake.mutate.add(key)[0]
        released.set()
        page = await late
    assert newcomer not in [c["email"] for c in on_time["candidates"]]
    assert page["candidates"][0]["email"] == newcomer
    assert fake.late_pages == 1


def test_churn_settings_are_checked() -> None:
    for bad in ({"arrival_every": -1}, {"deletion_every": 1.5}, {"late_share": 2.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FakeMettl(**bad)  # type: ignore[arg-type]
    fake = FakeMettl()
    with pytest.raises(ValueError, match="late_delay"):
        fake.set_churn(late_delay=float("inf"))
    fake.set_churn(arrival_every=3)
    fake.set_churn(late_share=0.5, late_delay=0.1)
    assert (fake.arrival_every, fake.late_share, fake.late_delay) == (3, 0.5, 0.1)


def test_the_command_line_makes_a_busy_account() -> None:
    import argparse

    from mettl_async.testing import add_fake_server_arguments, fake_from_arguments

    parser = argparse.ArgumentParser()
    add_fake_server_arguments(parser)
    argv = "--arrival-every 3 --deletion-every 4 --late-share 0.2 --late-ms 250 --no-total-records"
    fake = fake_from_arguments(parser.parse_args(argv.split()))
    assert (fake.arrival_every, fake.deletion_every) == (3, 4)
    assert (fake.late_share, fake.late_delay, fake.total_records) == (0.2, 0.25, False)
    for argv, flag in (
        (["--arrival-every", "-1"], "--arrival-every"),
        (["--deletion-every", "-2"], "--deletion-every"),
        (["--late-share", "1.5"], "--late-share"),
        (["--late-ms", "nan"], "--late-ms"),
    ):
        with pytest.raises(ValueError, match=flag):
            fake_from_arguments(parser.parse_args(argv))
