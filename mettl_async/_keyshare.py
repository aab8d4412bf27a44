"""The clients of one key on one machine tell each other their rates, through a small file.

Several processes using one API key (a service, a nightly export, a webhook
listener) share Mettl's one limit. Each :class:`~mettl_async._pacer.Pacer`
publishes, about once a second, what its :class:`~mettl_async._ratelimit.AdaptiveRate`
reports (the rate Mettl accepts from it, whether it would send more, the key's
limit as it last measured it) and reads the others' reports: a process that
starts while others run begins at its fair share instead of with a burst, and
the busy ones converge to equal shares (see :meth:`AdaptiveRate.share`). The
limit learned last is kept for ten minutes, so that the next run starts at it.

The file lives under the user's cache directory (``METTL_ASYNC_CACHE_DIR``, else
``$XDG_CACHE_HOME/mettl-async`` or ``~/.cache/mettl-async``; ``~/Library/Caches``
on macOS, ``%LOCALAPPDATA%`` on Windows), named by a hash of the host and the
public key: neither key is ever written. It is replaced in one step (written
beside it, then renamed over it). Two processes writing at once may lose one
report for a second; the next exchange brings it back. Sharing is best effort:
a file that cannot be read or written is ignored. ``METTL_ASYNC_SHARE_RATE=0``
turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson

from ._ratelimit import PeerRate

__all__ = ["FileRateShare", "rate_share", "shared_rate_dir"]

logger = logging.getLogger("mettl_async.http")  # the transport's

#: Seconds after which a report is of a client gone.
STALE: Final = 5.0
#: Seconds for which the key's learned limit is a good place to start.
LEARNED_TTL: Final = 600.0
_VERSION: Final = 1


def shared_rate_dir() -> Path:
    """Where the shared rate files live (see the module)."""
    explicit = os.environ.get("METTL_ASYNC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "mettl-async" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "mettl-async"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg if xdg else Path.home() / ".cache") / "mettl-async"


def rate_share(origin: str, public_key: str) -> FileRateShare | None:
    """The shared file of ``public_key`` at ``origin`` (scheme, host and port), or
    ``None`` when ``METTL_ASYNC_SHARE_RATE`` is ``0`` (or ``off``, ``false``, ``no``)."""
    if os.environ.get("METTL_ASYNC_SHARE_RATE", "").strip().lower() in ("0", "off", "false", "no"):
        return None
    digest = hashlib.sha256(f"mettl-async rate\0{origin}\0{public_key}".encode()).hexdigest()
    return FileRateShare(shared_rate_dir() / "rates" / f"{digest[:32]}.json")


class FileRateShare:
    """One client's membership of a key's shared rate file (a
    :class:`~mettl_async._pacer.RateShare`)."""

    def __init__(self, path: Path, *, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.member = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._wall = wall
        self._failed = False

    def __repr__(self) -> str:
        return f"FileRateShare({str(self.path)!r}, member={self.member!r})"

    def exchange(self, now: float, mine: PeerRate) -> tuple[tuple[PeerRate, ...], float | None]:
        """Publish ``mine``; the fresh reports of the others, and the key's limit
        learned within ``LEARNED_TTL`` (``None``: none)."""
        wall = self._wall()
        state = self._read()
        members = _fresh(state.get("members"), wall)
        members[self.member] = {
            "at": wall,
            "accepting": mine.accepting,
            "busy": mine.busy,
            "limit": mine.limit,
        }
        learned = state.get("learned")
        if mine.limit is not None:
            learned = {"rate": mine.limit, "at": wall}
        self._write({"version": _VERSION, "members": members, "learned": learned})
        others = tuple(
            PeerRate(
                accepting=float(report["accepting"]),
                busy=report.get("busy") is True,
                limit=_number(report.get("limit")),
            )
            for name, report in members.items()
            if name != self.member
        )
        return others, _learned(learned, wall)

    def leave(self) -> None:
        """Take this client's report away (the learned limit stays)."""
        state = self._read()
        members = _fresh(state.get("members"), self._wall())
        if members.pop(self.member, None) is not None:
            self._write({**state, "members": members})

    def _read(self) -> dict[str, Any]:
        try:
            state = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            self._complain("read", error)
            return {}
        if not isinstance(state, dict) or state.get("version") != _VERSION:
            return {}
        return state

    def _write(self, state: dict[str, Any]) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".rate-", dir=directory)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(orjson.dumps(state))
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            self._complain("write", error)

    def _complain(self, what: str, error: Exception) -> None:
        if not self._failed:
            self._failed = True
            logger.debug("cannot %s the shared rate file %s: %s", what, self.path, error)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _fresh(members: Any, wall: float) -> dict[str, dict[str, Any]]:
    """The reports written within ``STALE`` seconds that can be read."""
    if not isinstance(members, dict):
        return {}
    fresh = {}
    for name, report in members.items():
        if not isinstance(report, dict):
            continue
        at, accepting = _number(report.get("at")), _number(report.get("accepting"))
        if at is None or accepting is None or not 0 <= wall - at <= STALE:
            continue
        fresh[str(name)] = report
    return fresh


def _learned(learned: Any, wall: float) -> float | None:
    if not isinstance(learned, dict):
        return None
    rate, at = _number(learned.get("rate")), _number(learned.get("at"))
    if rate is None or at is None or rate <= 0 or not 0 <= wall - at <= LEARNED_TTL:
        return None
    return rate
