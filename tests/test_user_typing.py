"""What a user's ``mypy --strict`` sees: closable listings, MettlClient(), typed options."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GOOD = """\
import asyncio
import contextlib

from mettl_async import MettlClient


async def main() -> None:
    async with MettlClient() as mettl:
        async with contextlib.aclosing(mettl.iter_all_results()) as results:
            async for schedule, result in results:
                print(schedule.name, result.email)
                break
        async with contextlib.aclosing(mettl.iter_schedules(sort="name", sort_order="asc")) as s:
            async for schedule in s:
                print(schedule.access_key)
        async with contextlib.aclosing(mettl.iter_pbts()) as pbts:
            async for pbt in pbts:
                print(pbt)
        async with contextlib.aclosing(mettl.iter_all_results().raw()) as raw:
            async for _, record in raw:
                print(record.json)
    async with MettlClient.from_env(max_in_flight=8, requests_per_second=5.0) as other:
        print(await other.get_account())


asyncio.run(main())
"""

BAD = """\
from mettl_async import MettlClient


async def main() -> None:
    MettlClient.from_env(max_inflight=8)  # line 5: a misspelt option
    mettl = MettlClient()
    mettl.iter_schedules(sort="nmae")  # line 7: not a sort Mettl knows
    mettl.iter_candidate_results("key", sort_order="up")  # line 8: not an order
"""


@pytest.mark.slow
def test_user_code_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path / ".mypy_cache"), "good.py", "bad.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    errors = re.findall(r"^(\w+\.py):(\d+): error: (.*)$", output, re.MULTILINE)
    assert [(name, line) for name, line, _ in errors] == [
        ("bad.py", "5"),
        ("bad.py", "7"),
        ("bad.py", "8"),
    ], textwrap.indent(output, "  ")
    assert 'keyword argument "max_inflight"' in errors[0][2]
    assert "'nmae'" in errors[1][2]
    assert "'up'" in errors[2][2]
