"""MettlClient construction, configuration from the environment, and the EU host."""

from __future__ import annotations

import inspect
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from mettl_async import (
    DEFAULT_BASE_URL,
    EU_BASE_URL,
    ConfigurationError,
    MettlClient,
    RetryPolicy,
    signature,
)
from mettl_async._config import ClientOptions

PUBLIC = "pub-key-123456789"
PRIVATE = "very-secret-private-key"


def test_from_env_reads_keys_and_base_url() -> None:
    client = MettlClient.from_env(
        environ={
            "METTL_PUBLIC_KEY": PUBLIC,
            "METTL_PRIVATE_KEY": PRIVATE,
            "METTL_BASE_URL": EU_BASE_URL,
        }
    )
    assert client.base_url == EU_BASE_URL
    assert client.url("/account") == "https://api.mercermettl.eu/v2/account"


def test_from_env_defaults_to_the_main_host() -> None:
    client = MettlClient.from_env(
        environ={"METTL_PUBLIC_KEY": PUBLIC, "METTL_PRIVATE_KEY": PRIVATE}
    )
    assert client.base_url == DEFAULT_BASE_URL


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"METTL_PUBLIC_KEY": PUBLIC}, "METTL_PRIVATE_KEY is not set"),
        ({"METTL_PRIVATE_KEY": PRIVATE}, "METTL_PUBLIC_KEY is not set"),
        ({}, "METTL_PUBLIC_KEY and METTL_PRIVATE_KEY are not set"),
    ],
)
def test_from_env_names_the_missing_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        MettlClient.from_env(environ=environ)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "api.mettl.com"}, "absolute http"),
        ({"base_url": "https://api.mettl.com?x=1"}, "query"),
        ({"base_url": "http://host:abc"}, "not a valid URL"),
        ({"base_url": "http://host:99999"}, "not a valid URL"),
        ({"base_url": "http://[::1"}, "not a valid URL"),
        ({"api_version": "v9"}, "v9"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"timeout": 0}, "timeout"),
        ({"requests_per_second": -1}, "requests_per_second"),
    ],
)
def test_bad_configuration_is_refused_clearly(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MettlClient(PUBLIC, PRIVATE, **kwargs)
    # from_env hands its options to the same checks, with the same messages
    with pytest.raises(ConfigurationError, match=message):
        MettlClient.from_env(
            environ={"METTL_PUBLIC_KEY": PUBLIC, "METTL_PRIVATE_KEY": PRIVATE}, **kwargs
        )


def test_from_env_takes_every_option_of_the_constructor() -> None:
    """``from_env``'s typed options are the constructor's keywords, each passed through."""
    keywords = {
        name
        for name, parameter in inspect.signature(MettlClient).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert set(ClientOptions.__annotations__) == keywords
    client = MettlClient.from_env(
        environ={"METTL_PUBLIC_KEY": PUBLIC, "METTL_PRIVATE_KEY": PRIVATE},
        api_version="v3",
        max_in_flight=3,
        retry=RetryPolicy.never(),
    )
    assert (client.api_version, client.max_in_flight) == ("v3", 3)
    assert client._transport.retry == RetryPolicy.never()


def test_empty_keys_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="private key is empty"):
        MettlClient(PUBLIC, "")
    with pytest.raises(ConfigurationError, match="public key is empty"):
        MettlClient("", PRIVATE)


def test_repr_shows_no_private_key() -> None:
    client = MettlClient(PUBLIC, PRIVATE)
    assert PRIVATE not in repr(client)
    assert PRIVATE not in repr(client._config)
    assert repr(client) == (
        "MettlClient(public_key='pub-key-…', base_url='https://api.mettl.com', api_version='v2')"
    )


async def test_unknown_method_is_refused() -> None:
    async with MettlClient(PUBLIC, PRIVATE) as client:
        with pytest.raises(ConfigurationError, match="PUT"):
            await client.request("PUT", "/account")


async def test_eu_host_is_signed_with_its_own_url(mocked: Any) -> None:
    """The EU host works the same way: the URL signed is the URL requested."""
    mocked.get(
        re.compile(r"^https://api\.mercermettl\.eu/v2/account\?.*"),
        payload={"status": "SUCCESS", "accountInfo": {"name": "EU"}},
    )
    async with MettlClient(
        PUBLIC, PRIVATE, base_url=EU_BASE_URL, clock=lambda: 1635976200.0
    ) as client:
        account = await client.request("GET", "/account")
    assert account["accountInfo"]["name"] == "EU"
    ((method, url), _calls) = next(iter(mocked.requests.items()))
    assert method == "GET"
    assert url.host == "api.mercermettl.eu"
    params = dict(parse_qsl(urlsplit(str(url)).query))
    assert params["ts"] == "1635976200"
    assert params["asgn"] == signature(
        "GET", "https://api.mercermettl.eu/v2/account", {"ak": PUBLIC, "ts": "1635976200"}, PRIVATE
    )


async def test_v1_client_signs_with_sha1(mocked: Any) -> None:
    mocked.get(
        re.compile(r"^https://api\.mettl\.com/v1/account\?.*"), payload={"status": "SUCCESS"}
    )
    async with MettlClient(PUBLIC, PRIVATE, api_version="v1", clock=lambda: 5.0) as client:
        await client.request("GET", "/account")
    ((_, url), _) = next(iter(mocked.requests.items()))
    params = dict(parse_qsl(urlsplit(str(url)).query))
    assert params["asgn"] == signature(
        "GET",
        "https://api.mettl.com/v1/account",
        {"ak": PUBLIC, "ts": "5"},
        PRIVATE,
        algorithm="sha1",
    )


def test_default_retry_policy_is_used_when_none_given() -> None:
    client = MettlClient(PUBLIC, PRIVATE)
    assert client._transport.retry == RetryPolicy()
