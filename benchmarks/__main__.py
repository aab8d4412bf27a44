"""Every performance figure of mettl-async, side by side with its baseline.

    python -m benchmarks            # the full suite (a few minutes)
    python -m benchmarks --quick    # every section at a tiny size, in seconds
    python -m benchmarks --only decode memory

Sections: (1) account export vs the latency bound, (2) the typed walk vs the
raw walk, (3) one large schedule, (4) client overhead vs a bare aiohttp loop,
(5) decode, (6) memory, (7) an export against a server that throttles
(rate-limited export), (8) processes sharing one key (several exports against
one throttling fake), (9) sync into a database vs the export, (10) an export of
a busy account (records arriving and deleted mid-walk, pages late), (11) what
tracing costs the walk (off, a no-op provider, the SDK). The fake
Mettl runs in its own process; every comparison is measured in the same run,
interleaved, with warm-up and repeats, and reported as medians and ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from ._harness import machine
from .bench_busy import busy_section
from .bench_decode import decode_section
from .bench_memory import memory_section
from .bench_overhead import overhead_section
from .bench_ratelimit import ratelimit_section
from .bench_sharedkey import sharedkey_section
from .bench_stream import account_section, large_schedule_section, typed_walk_section
from .bench_sync import sync_section
from .bench_tracing import tracing_section

SECTIONS: dict[str, Callable[..., str]] = {
    "account": account_section,
    "typed": typed_walk_section,
    "large": large_schedule_section,
    "overhead": overhead_section,
    "decode": decode_section,
    "memory": memory_section,
    "ratelimit": ratelimit_section,
    "sharedkey": sharedkey_section,
    "sync": sync_section,
    "busy": busy_section,
    "tracing": tracing_section,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run only these")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"# mettl-async benchmarks{' (quick)' if args.quick else ''}\n")
    print(f"Machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start\n")
    for name in args.only or list(SECTIONS):
        section_started = time.perf_counter()
        print(SECTIONS[name](quick=args.quick))
        print(f"({name}: {time.perf_counter() - section_started:.0f} s)\n", flush=True)
    print(f"Total: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
