#!/usr/bin/env bash
# Mutation testing of the modules whose guarantees the tests must defend (not in CI: it takes
# tens of minutes). Usage:
#   bash .ci/mutation.sh [--survivors | --fresh] [GROUP...]
#   groups: the tables under [tool.mutmut.groups] in pyproject.toml (default: all of them)
# Installs the `mutation` extra into .venv, then runs mutmut on each group in turn, each in its
# own directory mutants/GROUP/ (git-ignored): there the sources and tests are linked, and a
# generated pyproject.toml gives mutmut the group's modules (`only_mutate`) and its tests
# (`pytest_add_cli_args_test_selection`). A group's cache (its results and which tests reach
# which function) is therefore its own: running the groups one after another, or changing one
# group's tests, never resets or mixes another's. A rerun tests only mutants not yet tried or
# of functions changed since; --survivors retests the group's survivors and the mutants no
# test reached (after new tests were written); --fresh deletes the group's directory first.
# Then it prints each module's mutants, killed, survived and timed out, and the kill rate.
# The report is docs/mutation.md. To look at one mutant:
#   (cd mutants/GROUP && ../../.venv/bin/mutmut show NAME)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=cached
case "${1:-}" in
    --survivors) mode=survivors; shift ;;
    --fresh) mode=fresh; shift ;;
esac

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[test,mutation]'

# every group, or check the ones named
names=$(.venv/bin/python - "$@" <<'EOF'
import sys, tomllib
groups = tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["groups"]
unknown = [name for name in sys.argv[1:] if name not in groups]
if unknown:
    sys.exit(f"unknown group {unknown[0]!r}; expected one of: {' '.join(groups)}")
print("\n".join(sys.argv[1:] or groups))
EOF
)
mapfile -t groups <<<"$names"

for group in "${groups[@]}"; do
    work=mutants/$group
    [ "$mode" != fresh ] || rm -rf "$work"
    mkdir -p "$work"
    for name in mettl_async tests benchmarks README.md; do
        ln -sfn "$root/$name" "$work/$name"
    done
    # the project's pyproject.toml, its [tool.mutmut] tables replaced by the group's settings
    .venv/bin/python - "$group" >"$work/pyproject.toml.new" <<'EOF'
import json, re, sys, tomllib
text = open("pyproject.toml", encoding="utf-8").read()
mutmut = tomllib.loads(text)["tool"]["mutmut"]
group = mutmut.pop("groups")[sys.argv[1]]
settings = dict(mutmut, only_mutate=group["modules"])
selection = list(group["tests"])
for test in group.get("deselect", []):
    selection += ["--deselect", test]
settings["pytest_add_cli_args_test_selection"] = selection
kept = re.sub(r"(?ms)^\[tool\.mutmut[].].*?(?=^\[(?!tool\.mutmut[].]))", "", text)
print(kept.rstrip() + "\n\n[tool.mutmut]")
for key, value in settings.items():
    print(f"{key} = {json.dumps(value)}")
EOF
    # rewritten only when it changed: an unchanged file keeps mutmut's cache valid
    if cmp -s "$work/pyproject.toml.new" "$work/pyproject.toml"; then
        rm "$work/pyproject.toml.new"
    else
        mv "$work/pyproject.toml.new" "$work/pyproject.toml"
    fi

    names=()
    if [ "$mode" = survivors ]; then
        mapfile -t names < <(cd "$work" && "$root/.venv/bin/mutmut" results 2>/dev/null \
            | sed -n 's/^ *\([^ ]*\): \(survived\|no tests\)$/\1/p')
        if [ ${#names[@]} -eq 0 ]; then
            echo "== $group: no survivors to retest"
        fi
    fi
    if [ "$mode" != survivors ] || [ ${#names[@]} -gt 0 ]; then
        echo "== $group: mutmut run in $work"
        # survivors are reported below, not an error
        (cd "$work" && nice -n 19 "$root/.venv/bin/mutmut" run "${names[@]}") || true
    fi
done

for group in "${groups[@]}"; do
    echo
    echo "== $group"
    (cd "mutants/$group" && "$root/.venv/bin/mutmut" results --all true) | .venv/bin/python -c '
import collections, sys, tomllib
group = tomllib.load(open("pyproject.toml", "rb"))["tool"]["mutmut"]["groups"][sys.argv[1]]
modules = [path.removesuffix(".py").replace("/", ".") for path in group["modules"]]
counts = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    name, sep, status = line.strip().rpartition(": ")
    if not sep:
        continue
    module = next((m for m in modules if name.startswith(m + ".")), None)
    if module is not None:
        counts[module][status] += 1
head = ("module", "mutants", "killed", "survived", "timeout", "other", "killed %")
print("%-34s %7s %6s %8s %7s %5s %8s" % head)
for module in modules:
    c = counts[module]
    total = sum(c.values())
    killed = c["killed"] + c["timeout"]
    other = total - c["killed"] - c["survived"] - c["timeout"]
    rate = "%.1f" % (100 * killed / total) if total else "-"
    row = (module, total, c["killed"], c["survived"], c["timeout"], other, rate)
    print("%-34s %7d %6d %8d %7d %5d %8s" % row)
' "$group"
done
