"""``problems()`` and ``validate()`` of the request models, answered by ``_validation``.

The models do not import ``_validation``: it imports them. Instead, when it is
imported (importing :mod:`mettl_async` always imports it, and ``_uploads``,
which registers ``WhiteLabel``'s), ``_validation``
registers here the function that checks each request model and the subject
its :class:`~mettl_async.ValidationError` names. :class:`Checked`, the mixin of
the request models, looks both up by the model's class (or its nearest
registered base class).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

from mettl_async._errors import ValidationError

if TYPE_CHECKING:
    from mettl_async._errors import ValidationProblem

__all__ = ["Checked", "checks_of", "raise_if", "register_checks"]


class Checks(NamedTuple):
    """How one request model is checked."""

    #: Every problem of a model, each with its wire path (keyword options allowed).
    problems: Callable[..., list[ValidationProblem]]
    #: What the model is, in the error's message ("schedule settings").
    subject: str


_CHECKS: Final[dict[type, Checks]] = {}


def register_checks(
    cls: type, problems: Callable[..., list[ValidationProblem]], *, subject: str
) -> None:
    """Check ``cls`` (and its subclasses) with ``problems``; ``subject`` names it in errors."""
    _CHECKS[cls] = Checks(problems, subject)


def checks_of(cls: type) -> Checks:
    """The checks registered for ``cls`` or its nearest base class."""
    for klass in cls.__mro__:
        checks = _CHECKS.get(klass)
        if checks is not None:
            return checks
    raise RuntimeError(f"no checks are registered for {cls.__name__}: import mettl_async")


def raise_if(problems: Sequence[ValidationProblem], *, subject: str) -> None:
    """Raise one :class:`~mettl_async.ValidationError` carrying every problem, if there is any."""
    if problems:
        raise ValidationError(problems, subject=subject)


class Checked:
    """Mixin of the request models: their checks, registered by ``_validation``."""

    __slots__ = ()

    def problems(self) -> list[ValidationProblem]:
        """Every problem Mettl would reject, each with its wire path; empty when valid."""
        return checks_of(type(self)).problems(self)

    def validate(self) -> None:
        """Raise one :class:`~mettl_async.ValidationError` listing every problem, if any."""
        raise_if(self.problems(), subject=checks_of(type(self)).subject)
