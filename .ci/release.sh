#!/usr/bin/env bash
# The release as a user gets it: sdist and wheel built from the checkout, checked
# by twine, the wheel installed alone into a fresh virtualenv (not editable, not
# the checkout on sys.path), its command run and its pytest plugin used; and the
# sdist unpacked to show a packager can collect and run the tests from it.
#
#   .ci/release.sh PYTHON     PYTHON: an interpreter that has build and twine
#
# Everything is made under a temporary directory, removed however this ends.
set -euo pipefail
cd "$(dirname "$0")/.."

python=$(command -v "${1:?usage: .ci/release.sh PYTHON}")
python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf 'release.sh: %s\n' "$*"; }

say "python -m build (sdist, then the wheel from the sdist)"
"$python" -m build -q -o "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/mettl_async-*.tar.gz)
wheel=$(ls "$work"/dist/mettl_async-*.whl)
say "built $(basename "$sdist") and $(basename "$wheel")"

say "twine check --strict"
"$python" -m twine check --strict "$sdist" "$wheel"

say "the wheel alone in a fresh virtualenv"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" pytest pytest-asyncio 2>&1 | grep -v '^WARNING: Location' || true
# Run from an empty directory: nothing of the checkout can be imported from there.
mkdir "$work/user"
cd "$work/user"
origin=$("$work/venv/bin/python" -c 'import mettl_async, os; print(os.path.dirname(mettl_async.__file__))')
case "$origin" in
    "$work/venv/"*) say "imported from $origin" ;;
    *) say "mettl_async was imported from $origin, not from the wheel's install"; exit 1 ;;
esac
"$work/venv/bin/python" - <<'EOF'
import importlib.metadata as md
import pathlib

import mettl_async

dist = md.distribution("mettl-async")
assert dist.version == mettl_async.__version__, (dist.version, mettl_async.__version__)
assert (pathlib.Path(mettl_async.__file__).parent / "py.typed").is_file(), "py.typed missing"
plugins = [ep for ep in dist.entry_points if ep.group == "pytest11"]
assert [ep.value for ep in plugins] == ["mettl_async.testing.pytest_plugin"], plugins
print("release.sh: version", dist.version, "py.typed and the pytest11 entry point present")
EOF
"$work/venv/bin/mettl-async" --version
"$work/venv/bin/mettl-async" demo --output "$work/user/demo.jsonl"

say "a user's test of the fake_mettl fixture, from the installed wheel"
printf '[pytest]\nasyncio_default_fixture_loop_scope = function\n' >"$work/user/pytest.ini"
cat >"$work/user/test_with_fake.py" <<'EOF'
import pytest


@pytest.mark.asyncio
async def test_every_result_arrives(fake_mettl):
    async with fake_mettl.client() as mettl:
        results = [result async for _, result in mettl.iter_all_results()]
    assert len(results) == fake_mettl.fake.account.total_candidates
EOF
# -W error: a warning the fake raises in a user's test run (aiohttp's, say) fails the release.
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider -W error "$work/user/test_with_fake.py"

say "the sdist holds what a packager needs to run the tests"
mkdir "$work/sdist"
tar -xzf "$sdist" -C "$work/sdist"
unpacked=$(ls -d "$work"/sdist/mettl_async-*)
for needed in pyproject.toml README.md CHANGELOG.md LICENSE tests benchmarks docs mettl_async/py.typed; do
    [ -e "$unpacked/$needed" ] || { say "the sdist lacks $needed"; exit 1; }
done
# Every test module imports and is collected from the sdist's own tree, and the
# signing vectors (data files the tests read) pass there.
(cd "$unpacked" && PYTHONPATH="$unpacked" "$python" -m pytest -q -p no:cacheprovider \
    --collect-only tests | tail -1)
(cd "$unpacked" && PYTHONPATH="$unpacked" "$python" -m pytest -q -p no:cacheprovider \
    tests/test_signing.py | tail -1)
say "ok"
