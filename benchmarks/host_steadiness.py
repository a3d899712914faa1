"""How steady the machine's CPUs are from one moment to the next, when nothing else runs on it.

The noise guard sees other work inside this machine (/proc); it cannot see the host under a virtual
machine. This times one fixed piece of CPU work (a pure-Python loop, ~100 ms) pinned to each CPU of the
run's plan in turn, every ``--gap`` seconds, and prints per CPU the median, the 90th percentile, the
slowest, and the share of rounds at least 20% slower than the median, with the host's reported steal
time and the other work inside the machine over the whole run (both should be near zero for the
spread to be the host's). A CPU whose rounds spread by tens of per cent moves CPU-bound figures (CPU-ms
per request, capacity) between runs by as much, whatever a run's own intervals say.

    flock /tmp/aigw-heavy.lock .venv/bin/python benchmarks/host_steadiness.py --rounds 60
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aigw_bench.local.cpus import plan_cpus  # noqa: E402
from aigw_bench.local.noise import ForeignMeter  # noqa: E402

LOOP = 2_000_000  # iterations of the fixed work: ~100 ms on the reference machine
SLOW = 1.2  # a round this many times the CPU's median counts as slowed


def work() -> float:
    """Seconds for the fixed work on the CPU this process is pinned to."""
    started, total = time.perf_counter(), 0
    for i in range(LOOP):
        total += i * i % 7
    return time.perf_counter() - started


def steal_ticks() -> int:
    """Time the host says it took from this machine's CPUs (/proc/stat's steal column), in clock ticks."""
    return int(Path("/proc/stat").read_text().splitlines()[0].split()[8])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="rounds per CPU (each ~0.1 s of work)")
    parser.add_argument("--gap", type=float, default=1.5, help="seconds between rounds")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 1000 or not 0 <= args.gap <= 60:
        parser.error("--rounds must be 1-1000 and --gap 0-60 s")
    plan = plan_cpus()
    cpus = sorted({c for group in (plan.loadgen, plan.mock, plan.gateway) for c in (group or [])}) or [0]
    meter = ForeignMeter(ours=lambda: [], threshold_cores=0.1)
    window, steal0 = meter.start(), steal_ticks()
    times: dict[int, list[float]] = {c: [] for c in cpus}
    for _ in range(args.rounds):  # CPUs interleaved: a slow minute of the host falls on all of them
        for cpu in cpus:
            os.sched_setaffinity(0, {cpu})
            times[cpu].append(work())
        time.sleep(args.gap)
    foreign, steal = meter.stop(window), steal_ticks() - steal0
    for cpu, values in times.items():
        ms = np.array(values) * 1000
        median = float(np.median(ms))
        print(f"cpu {cpu}: {len(ms)} rounds  median {median:6.1f} ms  p90 {np.percentile(ms, 90):6.1f} ms  "
              f"slowest {ms.max():6.1f} ms  slowed >= {SLOW:g}x: {np.mean(ms >= SLOW * median) * 100:4.1f}%")
    print(f"over {foreign.seconds:.0f} s: host steal {steal / os.sysconf('SC_CLK_TCK'):.2f} CPU-s; other work in "
          f"this machine {foreign.cores:.3f} cores ({foreign.cpu_seconds:.1f} CPU-s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
