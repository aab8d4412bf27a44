"""Pointing a schedule's webhooks at a receiver: its URLs and its Basic authentication header."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

import attrs

from mettl_async._enums import WebhookEventType
from mettl_async._errors import ConfigurationError
from mettl_async._models import ScheduleSettings

from ._auth import check_credentials
from ._paths import EVENT_PATHS

__all__ = ["URL_FIELDS", "basic_auth_header", "webhook_urls", "with_webhooks"]

logger = logging.getLogger("mettl_async.webhooks")

#: The ScheduleSettings field of each event's URL (article 13).
URL_FIELDS: Final[Mapping[WebhookEventType, str]] = {
    WebhookEventType.START_ASSESSMENT: "test_start_notification_url",
    WebhookEventType.FINISH_TEST: "test_finish_notification_url",
    WebhookEventType.GRADED_ASSESSMENT: "test_graded_notification_url",
    WebhookEventType.CANDIDATE_TEST_RESUMED: "test_resume_enabled_for_expired_test_url",
}


def basic_auth_header(username: str, password: str) -> str:
    """``base64(username:password)``: the value of ``testNotificationBasicAuthHeader``.

    Mettl then sends ``Authorization: Basic <this value>`` with every webhook,
    plus ``php-auth-user`` and ``php-auth-pw`` (article 13).
    """
    check_credentials(username, password)
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _parse_base_url(base_url: str) -> SplitResult:
    if not isinstance(base_url, str) or any(c.isspace() for c in base_url):
        raise ConfigurationError(f"webhook base URL must be a URL without spaces: {base_url!r}")
    parts = urlsplit(base_url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"webhook base URL must be an absolute http(s) URL, got {base_url!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "webhook base URL must not carry credentials: give username and password instead"
        )
    if parts.fragment:
        raise ConfigurationError(f"webhook base URL must not have a fragment: {base_url!r}")
    return parts


def _event_types(events: Iterable[WebhookEventType | str] | None) -> list[WebhookEventType]:
    if events is None:
        return list(EVENT_PATHS)
    chosen: list[WebhookEventType] = []
    for item in events:
        kind = WebhookEventType.parse(item) if isinstance(item, str) else item
        if not isinstance(kind, WebhookEventType):
            expected = ", ".join(k.value for k in WebhookEventType)
            raise ConfigurationError(f"unknown webhook event {item!r}; expected one of {expected}")
        if kind not in chosen:
            chosen.append(kind)
    return chosen


def webhook_urls(
    base_url: str,
    *,
    separate_paths: bool = False,
    events: Iterable[WebhookEventType | str] | None = None,
) -> dict[WebhookEventType, str]:
    """The URL Mettl should call for each event, from the receiver's public base URL.

    By default every event goes to ``base_url`` itself (the receiver dispatches
    on ``EVENT_TYPE``); with ``separate_paths``, to ``base_url`` + ``/start``,
    ``/finish``, ``/graded``, ``/resumed``. ``events`` limits the events
    (default: all four). Raises :class:`~mettl_async.ConfigurationError` unless
    ``base_url`` is an absolute http(s) URL without credentials or fragment.
    """
    parts = _parse_base_url(base_url)
    urls: dict[WebhookEventType, str] = {}
    for kind in _event_types(events):
        if separate_paths:
            path = f"{parts.path.rstrip('/')}/{EVENT_PATHS[kind]}"
            urls[kind] = urlunsplit(parts._replace(path=path))
        else:
            urls[kind] = base_url
    return urls


def with_webhooks(
    settings: ScheduleSettings,
    base_url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    separate_paths: bool = False,
    events: Iterable[WebhookEventType | str] | None = None,
) -> ScheduleSettings:
    """A copy of ``settings`` whose webhook URLs point at ``base_url`` (see :func:`webhook_urls`).

    With ``username`` and ``password``, ``testNotificationBasicAuthHeader`` is
    set too (:func:`basic_auth_header`), so that the receiver can verify the
    calls. Fields not concerned (other events' URLs, the header when no
    credentials are given) keep their values. Basic authentication over plain
    ``http`` sends the password readable on the way: a WARNING is logged.
    """
    if (username is None) != (password is None):
        raise ConfigurationError("give both username and password, or neither")
    changes: dict[str, Any] = {
        URL_FIELDS[kind]: url
        for kind, url in webhook_urls(
            base_url, separate_paths=separate_paths, events=events
        ).items()
    }
    if username is not None and password is not None:
        changes["test_notification_basic_auth_header"] = basic_auth_header(username, password)
        if urlsplit(base_url).scheme.lower() == "http":
            logger.warning(
                "webhook URLs use plain http: Mettl's Basic authentication header will "
                "travel unencrypted; prefer https"
            )
    return attrs.evolve(settings, **changes)
