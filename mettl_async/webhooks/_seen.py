"""Where a receiver records the keys of the events it has seen: the protocol and the default.

Framework-neutral: no web framework is imported here.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from mettl_async._errors import ConfigurationError

__all__ = ["Claim", "InMemorySeenStore", "SeenStore"]

#: What :meth:`SeenStore.claim` found: the caller now owns the key (``"claimed"``),
#: another delivery owns it (``"in_progress"``), or it was handled (``"done"``).
Claim: TypeAlias = Literal["claimed", "in_progress", "done"]


@runtime_checkable
class SeenStore(Protocol):
    """Where the receiver records event keys. Each method must be atomic for its key.

    The receiver calls :meth:`claim` before the callback, then exactly one of
    :meth:`complete` (the callback returned) or :meth:`release` (it raised, or
    the request was cancelled). A shared store (Redis ``SET NX`` with an expiry
    on the in-progress state, a database row with a unique key, ...) should let
    an in-progress claim expire, in case its process dies before releasing it.
    """

    async def claim(self, key: str) -> Claim:
        """Take ``key`` if it is neither done nor in progress; say which it was otherwise."""
        ...

    async def complete(self, key: str) -> None:
        """Mark a claimed key done: later deliveries of it are duplicates."""
        ...

    async def release(self, key: str) -> None:
        """Forget a claim whose callback failed, so that the next delivery is handled."""
        ...


class InMemorySeenStore:
    """The default :class:`SeenStore`: this process only, at most ``max_entries`` done keys.

    The least recently seen done key is forgotten first (a duplicate refreshes
    its key). In-progress keys are never evicted; there are at most as many as
    deliveries being handled.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._done: OrderedDict[str, None] = OrderedDict()
        self._in_progress: set[str] = set()

    async def claim(self, key: str) -> Claim:
        if key in self._done:
            self._done.move_to_end(key)
            return "done"
        if key in self._in_progress:
            return "in_progress"
        self._in_progress.add(key)
        return "claimed"

    async def complete(self, key: str) -> None:
        self._in_progress.discard(key)
        self._done[key] = None
        self._done.move_to_end(key)
        while len(self._done) > self.max_entries:
            self._done.popitem(last=False)

    async def release(self, key: str) -> None:
        self._in_progress.discard(key)

    def __len__(self) -> int:
        """How many done keys are remembered."""
        return len(self._done)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is remembered as done."""
        return key in self._done
