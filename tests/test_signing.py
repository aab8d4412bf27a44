"""Signing follows Mettl's documented rule, checked stage by stage against its examples."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mettl_async._signing as signing
from mettl_async._signing import (
    SigningKey,
    algorithm_for_version,
    sign_params,
    signature,
    string_to_sign,
)

from .conftest import load_json

DATA = load_json("vectors/signing.json")
AK, PK, TS = DATA["public_key"], DATA["private_key"], DATA["ts"]
VECTORS = DATA["vectors"]
SLIPS = DATA["non_reproducing"]


def _params(vector: dict[str, object]) -> dict[str, str]:
    params = dict(vector["params"])  # type: ignore[call-overload]
    params.update(ak=AK, ts=TS)
    return params


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_string_to_sign_matches_documented_example(vector: dict[str, str]) -> None:
    """The string-to-sign is METHOD+URL then each value on its own line, sorted by name."""
    assert (
        string_to_sign(vector["method"], vector["url"], _params(vector)) == vector["string_to_sign"]
    )


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_signature_matches_documented_example(vector: dict[str, str]) -> None:
    """HMAC (SHA-256 for v2, SHA-1 for v1), base64 with padding, as the article prints it."""
    algorithm = algorithm_for_version(vector["api_version"])
    asgn = signature(vector["method"], vector["url"], _params(vector), PK, algorithm=algorithm)
    assert asgn == vector["signature"]
    if vector["signature_printed"] is not None:
        # The articles print asgn URL-encoded exactly once.
        assert quote(asgn, safe="") == vector["signature_printed"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_sign_params_adds_fresh_auth_and_drops_stale_ones(vector: dict[str, str]) -> None:
    """Stale ak/ts/asgn in the input are replaced; the result verifies against the vector."""
    stale = dict(vector["params"], ak="stale", ts="1", asgn="stale-signature")
    key = SigningKey(PK, algorithm=algorithm_for_version(vector["api_version"]))
    signed = sign_params(vector["method"], vector["url"], stale, public_key=AK, key=key, ts=int(TS))
    assert signed["ak"] == AK
    assert signed["ts"] == TS
    assert signed["asgn"] == vector["signature"]


@pytest.mark.parametrize("slip", SLIPS, ids=[s["id"] for s in SLIPS])
def test_article_13_printed_signature_is_a_slip_and_we_follow_the_rule(
    slip: dict[str, str],
) -> None:
    """Article 13's printed asgn does not reproduce; ours is HMAC-SHA256 of its printed string."""
    params = _params(slip)
    ours = signature(slip["method"], slip["url"], params, PK)
    text = string_to_sign(slip["method"], slip["url"], params)
    assert text == slip["string_to_sign"]
    independent = base64.b64encode(
        hmac.new(PK.encode(), text.encode(), hashlib.sha256).digest()
    ).decode()
    assert ours == independent
    assert ours != unquote(slip["signature_printed"])


def test_asgn_is_never_part_of_the_string_to_sign() -> None:
    """A re-sign skips the previous signature."""
    with_asgn = {"ak": AK, "ts": TS, "asgn": "old"}
    assert string_to_sign("GET", "https://api.mettl.com/v2/account", with_asgn) == (
        f"GEThttps://api.mettl.com/v2/account\n{AK}\n{TS}"
    )


def test_names_sort_by_code_point_so_sort_precedes_sort_order() -> None:
    text = string_to_sign("get", "u", {"sort_order": "2", "sort": "1", "ak": "0"})
    assert text == "GETu\n0\n1\n2"


def test_signing_key_never_shows_the_key() -> None:
    key = SigningKey(PK)
    assert PK not in repr(key)
    assert PK not in str(key)


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="v4"):
        algorithm_for_version("v4")


@given(
    params=st.dictionaries(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12),
        st.text(max_size=40),
        max_size=6,
    )
)
def test_signature_equals_an_independent_hmac(params: dict[str, str]) -> None:
    """For any values, our signature is HMAC-SHA256 over the values sorted by name."""
    params = {k: v for k, v in params.items() if k not in ("ak", "ts", "asgn")}
    key = SigningKey(PK)
    signed = sign_params("POST", "https://x.test/v2/p", params, public_key=AK, key=key, ts=7)
    values = [signed[name] for name in sorted(signed) if name != "asgn"]
    text = "POSThttps://x.test/v2/p" + "".join("\n" + v for v in values)
    expected = base64.b64encode(hmac.new(PK.encode(), text.encode(), hashlib.sha256).digest())
    assert signed["asgn"] == expected.decode()


def test_signing_module_does_no_io() -> None:
    """The signing module imports neither aiohttp nor anything that does I/O or reads a clock."""
    tree = ast.parse(Path(signing.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "aiohttp" not in imported
    assert imported <= {"__future__", "base64", "hashlib", "hmac", "collections", "typing"}
