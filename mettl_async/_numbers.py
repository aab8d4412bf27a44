"""Two general predicates on numbers, for every module that checks an option or a value.

``bool`` is an ``int`` to Python but never a number to Mettl or to a user's
option: both predicates refuse it. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from typing import TypeGuard

__all__ = ["is_finite_number", "is_whole_number"]


def is_whole_number(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[float]:
    """An ``int`` or ``float``, not a ``bool``, neither ``nan`` nor infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)
