"""The shared rate file: what one client of a key tells the others, on the same machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import pytest

from mettl_async._keyshare import (
    LEARNED_TTL,
    STALE,
    FileRateShare,
    rate_share,
    shared_rate_dir,
)
from mettl_async._ratelimit import PeerRate

PUBLIC = "pk-4f1b7c0e-public"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def member(path: Path, clock: Clock) -> FileRateShare:
    return FileRateShare(path, wall=clock)


def test_the_file_is_named_by_a_hash_of_host_and_key_and_holds_neither() -> None:
    share = rate_share("https://api.mettl.com", PUBLIC)
    assert share is not None
    assert share.path.is_relative_to(shared_rate_dir())
    assert PUBLIC not in str(share.path)
    other_host = rate_share("https://api.mercermettl.eu", PUBLIC)
    other_key = rate_share("https://api.mettl.com", PUBLIC + "x")
    assert other_host is not None
    assert other_key is not None
    assert len({share.path, other_host.path, other_key.path}) == 3
    share.exchange(0.0, PeerRate(3.0, busy=True, limit=5.0))
    content = share.path.read_bytes()
    assert PUBLIC.encode() not in content
    assert b"api.mettl.com" not in content
    assert PUBLIC not in repr(share)


def test_the_cache_directory_follows_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METTL_ASYNC_CACHE_DIR", "/somewhere/else")
    assert shared_rate_dir() == Path("/somewhere/else")
    monkeypatch.delenv("METTL_ASYNC_CACHE_DIR")
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert shared_rate_dir() == Path("/xdg/mettl-async")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert shared_rate_dir() == Path.home() / ".cache" / "mettl-async"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert shared_rate_dir() == Path.home() / "Library" / "Caches" / "mettl-async"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", "C:/Users/u/AppData/Local")
    assert shared_rate_dir() == Path("C:/Users/u/AppData/Local/mettl-async/Cache")


@pytest.mark.parametrize("value", ["0", "off", "False", " no "])
def test_sharing_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("METTL_ASYNC_SHARE_RATE", value)
    assert rate_share("https://api.mettl.com", PUBLIC) is None
    monkeypatch.setenv("METTL_ASYNC_SHARE_RATE", "1")
    assert rate_share("https://api.mettl.com", PUBLIC) is not None


def test_each_client_sees_the_others_fresh_reports_not_its_own(tmp_path: Path) -> None:
    path, clock = tmp_path / "rates" / "key.json", Clock()
    one, two, three = member(path, clock), member(path, clock), member(path, clock)
    assert one.exchange(0.0, PeerRate(4.0, busy=True)) == ((), None)
    clock.now += 1
    assert two.exchange(1.0, PeerRate(5.0, busy=False)) == ((PeerRate(4.0, busy=True),), None)
    clock.now += 1
    peers, learned = three.exchange(2.0, PeerRate(6.0, busy=True, limit=15.0))
    assert sorted(peers, key=lambda p: p.accepting) == [
        PeerRate(4.0, busy=True),
        PeerRate(5.0, busy=False),
    ]
    assert learned == 15.0
    # a report older than STALE seconds is of a client gone
    clock.now += STALE + 0.5
    assert three.exchange(3.0, PeerRate(6.0, busy=True)) == ((), 15.0)
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temporary left


def test_the_learned_limit_outlives_its_clients_for_a_while(tmp_path: Path) -> None:
    path, clock = tmp_path / "key.json", Clock()
    first = member(path, clock)
    first.exchange(0.0, PeerRate(9.0, busy=True, limit=10.0))
    first.leave()
    later = member(path, clock)
    clock.now += LEARNED_TTL - 1
    assert later.exchange(0.0, PeerRate(0.0, busy=False)) == ((), 10.0)
    clock.now += 2
    assert later.exchange(0.0, PeerRate(0.0, busy=False)) == ((), None)


def test_leaving_takes_the_report_away(tmp_path: Path) -> None:
    path, clock = tmp_path / "key.json", Clock()
    one, two = member(path, clock), member(path, clock)
    one.exchange(0.0, PeerRate(4.0, busy=True))
    one.leave()
    assert two.exchange(0.0, PeerRate(4.0, busy=True)) == ((), None)
    two.leave()
    two.leave()
    assert orjson.loads(path.read_bytes())["members"] == {}


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[1, 2]",
        b'{"version": 99, "members": {}}',
        b'{"version": 1, "members": {"x": {"at": "soon", "accepting": 1}}, "learned": 5}',
        b'{"version": 1, "members": {"x": [1]}, "learned": {"rate": -1, "at": 0}}',
        b'{"version": 1, "members": {"x": {"at": 1e6, "accepting": 1}}, "learned": null}',
    ],
)
def test_a_file_that_cannot_be_read_is_ignored_and_replaced(tmp_path: Path, content: bytes) -> None:
    path, clock = tmp_path / "key.json", Clock()
    path.write_bytes(content)
    share = member(path, clock)
    peers, learned = share.exchange(0.0, PeerRate(4.0, busy=True))
    assert learned is None
    assert all(not peer.busy for peer in peers)  # a report without "busy" is not busy
    assert orjson.loads(path.read_bytes())["members"][share.member]["accepting"] == 4.0


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions")
def test_a_directory_that_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        share = member(locked / "key.json", Clock())
        assert share.exchange(0.0, PeerRate(4.0, busy=True)) == ((), None)
        share.leave()
    finally:
        locked.chmod(0o700)


def test_a_path_that_is_a_directory_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.mkdir()  # neither readable nor replaceable as a file
    share = member(path, Clock())
    assert share.exchange(0.0, PeerRate(4.0, busy=True)) == ((), None)
