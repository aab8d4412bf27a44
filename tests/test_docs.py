"""The API reference (docs/, Sphinx) covers the public surface; .ci/run builds it."""

from __future__ import annotations

import re

import mettl_async

from .conftest import HERE

DOCS = HERE.parent / "docs"


def test_every_public_name_is_in_the_reference() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in DOCS.glob("*.rst"))
    documented = set(re.findall(r"^\.\. auto\w+:: (\S+)", text, re.MULTILINE))
    missing = [name for name in mettl_async.__all__ if name != "__version__"]
    missing = [name for name in missing if name not in documented]
    assert missing == [], f"add these to a page of docs/: {missing}"
    for module in ("mettl_async.webhooks", "mettl_async.export", "mettl_async.testing"):
        assert module in documented


def test_every_page_is_in_the_table_of_contents() -> None:
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    for page in DOCS.glob("*.rst"):
        if page.stem != "index":
            assert f"   {page.stem}\n" in index, page.name


def test_every_method_of_the_client_is_in_its_article_group() -> None:
    """docs/client.rst lists MettlClient's methods by article, one by one: a new method
    must be placed in its group, or it would be missing from the reference."""
    text = (DOCS / "client.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\.\. auto(?:method|property):: MettlClient\.(\w+)", text, re.M))
    public = {name for name in dir(mettl_async.MettlClient) if not name.startswith("_")}
    assert public - listed == set(), f"add to docs/client.rst: {sorted(public - listed)}"
