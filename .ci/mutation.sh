#!/usr/bin/env bash
# Mutation testing of the modules whose guarantees the tests must defend (not in CI: it takes
# tens of minutes). Usage: bash .ci/mutation.sh [GROUP...]
#   groups: webhooks journal paging export listing ratelimit sync (default: all of them)
# Installs the `mutation` extra into .venv, runs mutmut (configured under [tool.mutmut] in
# pyproject.toml) on the groups' modules, then prints each module's mutants, killed, survived
# and timed out, and the kill rate. Results are cached in mutants/ (git-ignored): a second run
# tests only what changed; `rm -rf mutants` starts afresh. The report is docs/mutation.md;
# `.venv/bin/mutmut show NAME` prints a mutant's diff, `.venv/bin/mutmut browse` browses them.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[test,mutation]'

declare -A modules=(
    [webhooks]="mettl_async.webhooks._processor mettl_async.webhooks._events mettl_async.webhooks._auth"
    [journal]="mettl_async.export.journal"
    [export]="mettl_async.export.engine"
    [paging]="mettl_async._paging"
    [listing]="mettl_async._streaming mettl_async._pagewalk mettl_async._coverage mettl_async._walk mettl_async._lister"
    [ratelimit]="mettl_async._ratelimit mettl_async._pacer"
    [sync]="mettl_async.sync.engine mettl_async.sync.sink"
)
groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(webhooks journal paging export listing ratelimit sync)

selected=()
patterns=()
for group in "${groups[@]}"; do
    if [ -z "${modules[$group]+x}" ]; then
        echo "unknown group '$group'; expected one of: ${!modules[*]}" >&2
        exit 2
    fi
    for module in ${modules[$group]}; do
        selected+=("$module")
        patterns+=("$module.*")
    done
done

.venv/bin/mutmut run "${patterns[@]}" || true  # survivors are reported below, not an error

.venv/bin/mutmut results --all true | .venv/bin/python -c '
import collections, sys
modules = sys.argv[1:]
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
' "${selected[@]}"
