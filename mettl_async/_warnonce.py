"""Once per value: the one warn-once mechanism of the lenient decoders.

``_enums`` and ``_timefmt`` never fail on what Mettl sends: an unknown enum
value, an unreadable timestamp or date is kept (as text, or ``None``) and
reported once per distinct value, at WARNING, on the ``mettl_async.models`` logger
(the pure decoders hold no logger of their own).
Input is untrusted (a webhook sender can invent any number of values), so past
a limit further reports go to DEBUG and are not remembered: memory stays bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Final

__all__ = ["MODELS_LOGGER", "WARN_LIMIT", "WarnOnce"]

#: Where what the decoders keep despite its shape is reported.
MODELS_LOGGER: Final = logging.getLogger("mettl_async.models")

#: Past this many distinct reports, further ones go to DEBUG (input is untrusted).
WARN_LIMIT: Final = 1000


class WarnOnce:
    """Log each key's message once at WARNING on ``logger``; ``limit`` keys remembered at most."""

    __slots__ = ("limit", "logger", "seen")

    def __init__(self, logger: logging.Logger = MODELS_LOGGER, limit: int = WARN_LIMIT) -> None:
        self.logger = logger
        self.limit = limit
        #: The keys already reported.
        self.seen: set[Hashable] = set()

    def __call__(self, key: Hashable, message: str, *args: object) -> None:
        """Report ``message % args`` unless ``key`` was reported before."""
        if key in self.seen:
            return
        level = logging.WARNING
        if len(self.seen) < self.limit:
            self.seen.add(key)
        else:
            level = logging.DEBUG
        self.logger.log(level, message, *args)
