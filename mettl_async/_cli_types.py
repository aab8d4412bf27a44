"""Argument types shared by the command line's modules (no imports of theirs: no cycles)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def positive_int(what: str = "a whole number") -> Callable[[str], int]:
    """An argparse type for whole numbers >= 1; errors name ``what`` was expected."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected {what} >= 1, got {value}")
        return value

    return convert
