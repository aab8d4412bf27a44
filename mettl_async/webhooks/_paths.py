"""The receiver's URL layout: the paths it answers, shared by every adapter and by the
schedule helpers that give Mettl those URLs.

Framework-neutral: no web framework is imported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from mettl_async._enums import WebhookEventType
from mettl_async._errors import ConfigurationError

__all__ = ["EVENT_PATHS", "normalized_path", "webhook_routes"]

#: The path segment of each event when the four URLs are separate (``separate_paths=True``).
EVENT_PATHS: Final[Mapping[WebhookEventType, str]] = {
    WebhookEventType.START_ASSESSMENT: "start",
    WebhookEventType.FINISH_TEST: "finish",
    WebhookEventType.GRADED_ASSESSMENT: "graded",
    WebhookEventType.CANDIDATE_TEST_RESUMED: "resumed",
}


def normalized_path(path: str) -> str:
    """``path`` without its trailing ``/`` (``/`` stays); it must start with ``/``."""
    if not path.startswith("/"):
        raise ConfigurationError(f"a route path starts with '/', got {path!r}")
    return path.rstrip("/") or "/"


def webhook_routes(
    path: str = "/", *, separate_paths: bool = True
) -> dict[str, WebhookEventType | None]:
    """Every path a receiver at ``path`` answers, with the event each one expects.

    ``path`` itself and ``path/`` take every event (``None``: dispatched on
    ``EVENT_TYPE``). At ``/``, the empty path answers too: mounted under a prefix
    (``/mettl``), the bare prefix is the URL :func:`with_webhooks` gives Mettl.
    With ``separate_paths``, also ``path/start``, ``path/finish``,
    ``path/graded`` and ``path/resumed`` (:data:`EVENT_PATHS`), each expecting its
    event (another event arriving there is accepted, with a warning). Paths are
    relative to where the receiver is mounted.
    """
    base = normalized_path(path)
    routes: dict[str, WebhookEventType | None] = {base: None}
    routes[base + "/" if base != "/" else ""] = None
    if separate_paths:
        prefix = "" if base == "/" else base
        for kind, segment in EVENT_PATHS.items():
            routes[f"{prefix}/{segment}"] = kind
    return routes
