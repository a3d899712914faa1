"""The rig's ceiling and floor with each mock, side by side: what a run measures before its targets.

For each mock in turn (rounds interleaved, so slow drifts of the machine hit both), this runs the
rig measurement every `aigw-bench run` starts with (k6 straight to the mock, the run's CPU plan, the
seed scenario's body, the local rig sizes of k6_scripts/rig.yaml; no target) and prints the ceiling
(closed loop, RPS) and the floor (concurrency 1, p50 and p99), each round and as medians, with the
CPU time each side spent per request.

    .venv/bin/python benchmarks/rig_ceiling.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aigw_bench.local.cpus import plan_cpus  # noqa: E402
from aigw_bench.local.engine import LocalEngine  # noqa: E402
from aigw_bench.measure.plan import Knobs  # noqa: E402
from aigw_bench.run.interrupts import exit_with  # noqa: E402
from aigw_bench.run.loop import Runner  # noqa: E402
from aigw_bench.run.plan import plan_run  # noqa: E402
from schema.catalog import load_catalog  # noqa: E402
from schema.mock import list_mocks, load_mock  # noqa: E402


def measure(mock: str, root: Path) -> dict:
    plan = plan_run("local", targets=[load_catalog().get("direct")], scenario="seed", suite=None,
                    mock_profile="instant", knobs=Knobs(), repeats=1, results_root=root)
    (root / mock).mkdir(parents=True)
    rig = Runner(plan, LocalEngine(load_mock(mock), plan_cpus())).rig_only(root / mock)
    return rig.model_dump()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mocks", default=",".join(list_mocks()))
    args = parser.parse_args()
    mocks = args.mocks.split(",")
    rows: dict[str, list[dict]] = {m: [] for m in mocks}
    print(f"CPU plan: {plan_cpus().note}; seed body (~1000-token prompt); rig sizes: k6_scripts/rig.yaml (local)")
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mock in mocks[r % len(mocks):] + mocks[: r % len(mocks)]:
                rig = measure(mock, Path(tmp) / f"r{r}")
                if rig.get("error"):
                    print(f"  round {r + 1} {mock}: not measured: {rig['error']}")
                    continue
                rows[mock].append(rig)
                requests = rig["ceiling_rps"] * rig["sizes"]["ceiling"]["duration"]
                k6_us = rig["loadgen_cpu_seconds"] / requests * 1e6
                mock_us = rig["mock_cpu_seconds"] / requests * 1e6
                print(f"  round {r + 1} {mock:<9} ceiling {rig['ceiling_rps']:7,.0f} RPS  floor p50 "
                      f"{rig['floor_ms']['p50'] * 1000:6.0f} µs  p99 {rig['floor_ms']['p99'] * 1000:6.0f} µs  "
                      f"CPU per request: k6 {k6_us:4.0f} µs, mock {mock_us:4.0f} µs", flush=True)
    print(f"\n{'mock':<10}{'ceiling RPS':>13}{'floor p50':>12}{'floor p99':>12}   (median of {args.rounds} rounds)")
    for mock, items in rows.items():
        if not items:
            continue
        ceiling = statistics.median(i["ceiling_rps"] for i in items)
        p50 = statistics.median(i["floor_ms"]["p50"] for i in items) * 1000
        p99 = statistics.median(i["floor_ms"]["p99"] for i in items) * 1000
        print(f"{mock:<10}{ceiling:>13,.0f}{p50:>9,.0f} µs{p99:>9,.0f} µs")
    return 0


if __name__ == "__main__":
    exit_with(main)
