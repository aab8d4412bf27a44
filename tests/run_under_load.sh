#!/usr/bin/env bash
# Run the README's test command while two processes burn a CPU core each, as on a
# busy CI machine: a test that depends on timing fails here. Usage:
#   bash tests/run_under_load.sh [RUNS]        (default: 3 runs in a row)
# TEST_COMMAND overrides the command (default: the README's, after quick-start:test).
# The burners are started here and killed by their PIDs, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-3}
command=${TEST_COMMAND:-$(awk '/<!-- quick-start:test -->/ { getline; getline; print; exit }' README.md)}
if [ -z "$command" ]; then
    echo "README.md has no test command after <!-- quick-start:test -->" >&2
    exit 1
fi

burners=()
stop_burners() {
    for pid in "${burners[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${burners[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    burners=()
}
trap stop_burners EXIT INT TERM

for _ in 1 2; do
    python3 -c 'while True: pass' &
    burners+=("$!")
done
echo "==> CPU burners running: PIDs ${burners[*]}"

for run in $(seq 1 "$runs"); do
    echo "==> run $run/$runs under load: $command"
    started=$(date +%s)
    bash -c "$command"
    echo "==> run $run/$runs passed in $(( $(date +%s) - started )) s"
done
