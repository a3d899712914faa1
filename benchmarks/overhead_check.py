"""The overhead figure against a second method: the direct side measured in windows of its own.

The suite's overhead step alternates blocks of direct and gateway requests in one k6 run and keeps
each block's first requests apart (docs/method.md). This benchmark measures the same thing another
way: the mock and the gateway started as a run starts them (same CPU plan, same body), a steady
warm-up through the gateway, then alternating windows at concurrency 1, each a k6 run of its own:
``--window`` seconds only to the mock (the gateway idle), then only through the gateway; the added
p50 of a round is the gateway window's p50 minus the direct window's. It prints, per target, the
median over rounds with their range, the figure a run directory reports for the same target, and
whether they agree within 10%.

``--settle S`` leaves each window's first S seconds out: a gateway idle through the other side's
window is slower for its first requests (the suite's overhead step keeps each block's first
requests apart for the same reason), so without it the windows charge that wake-up to the gateway.

``--side-by-side`` runs, in every round and in the same gateway process, the default suite's own
overhead step too, and judges the windows against it: what differs between the two is then the
method alone, not the gateway's start or the sitting (a gateway's added latency moves by more than
10% between starts here: docs/method.md).

``--rate R`` sends each window as an open loop at R requests per second instead of one virtual user
back to back: each request then finds the gateway idle, which is another figure (it reads higher
for every gateway here: docs/method.md), not a check of the suite's.

    flock /tmp/aigw-heavy.lock flock /tmp/aigw-rig.lock \\
        .venv/bin/python benchmarks/overhead_check.py --side-by-side --run results/<a default run>
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from aigw_bench.local.cpus import plan_cpus  # noqa: E402
from aigw_bench.local.engine import LocalEngine  # noqa: E402
from aigw_bench.measure.driver import K6Job  # noqa: E402
from aigw_bench.measure.plan import Knobs  # noqa: E402
from aigw_bench.measure.steps import CLOSED_LOOP, overhead_step  # noqa: E402
from aigw_bench.run.engine import RunContext  # noqa: E402
from aigw_bench.run.interrupts import exit_with  # noqa: E402
from aigw_bench.run.plan import plan_run  # noqa: E402
from analysis.load import load_run  # noqa: E402
from analysis.overhead import added_latency, read_pairs  # noqa: E402
from analysis.suite import suite_results  # noqa: E402
from k6_scripts.render import render_script  # noqa: E402
from schema.catalog import load_catalog  # noqa: E402
from schema.k6 import metric  # noqa: E402
from schema.mock import load_mock  # noqa: E402
from schema.results import Outcome, Status  # noqa: E402
from schema.scenarios import Scenario  # noqa: E402
from schema.suites import OverheadSizes, load_suite  # noqa: E402

AGREEMENT = 0.10


def agrees(ratio: float) -> str:
    return "yes" if abs(ratio - 1) <= AGREEMENT else "NO"


def p50_after(raw: Path, settle: float) -> float:
    """The median request duration (ms) of a k6 per-request CSV, leaving out its first ``settle`` seconds."""
    rows = pd.read_csv(raw, usecols=["metric_name", "timestamp", "metric_value"])
    rows = rows[rows["metric_name"] == "http_req_duration"]
    t = rows["timestamp"].astype(float)
    t = (t - t.min()) / (1000.0 if t.max() > 1e11 else 1.0)  # k6 writes seconds, or ms with timeFormat
    return float(rows.loc[t >= settle, "metric_value"].median())
OPEN_LOOP = Scenario(name="open", executor="constant-arrival-rate", profiles={},
                     description="a low fixed arrival rate (latency at low load)")


def paired_p50(d, sizes: OverheadSizes, base, work: Path) -> float:
    """The suite's own overhead step (alternating blocks, no warm-up: the session is warm): its added p50, µs."""
    record = overhead_step(d, sizes, base, work)
    return added_latency([read_pairs(work / "overhead" / record.files["raw"])])["added_p50_us"]


def windows(engine: LocalEngine, target: str, rounds: int, window: float, warmup: float, work: Path,
            rate: float | None = None, settle: float = 0.0,
            paired: OverheadSizes | None = None) -> tuple[list[float], list[float]]:
    """Added p50 (µs) of each round: a window through the gateway minus a window straight to the mock;
    with ``paired``, also the suite's overhead step's in the same round (same gateway process)."""
    gateway = load_catalog().get(target)
    outcome = Outcome(target=target, repeat=1, status=Status.OK)
    added, side_by_side = [], []
    with engine.session(gateway, 1, work, outcome) as d:
        base = engine.ctx.plan.measurement.params
        if rate is None:
            scenario, load = CLOSED_LOOP, {"vus": 1}
        else:
            scenario, load = OPEN_LOOP, {"rate": round(rate), "vus": 5, "max_vus": 5}
        params = base.model_copy(update={**load, "duration": window + settle, "warmup": 0, "stream": False})
        steady = base.model_copy(update={"vus": 1, "duration": warmup, "warmup": 0, "stream": False})
        d.run_k6(K6Job(label="warm-up", dir=work / "warmup", source=render_script(CLOSED_LOOP, steady, d.target).source,
                       duration=warmup, split=False, max_vus=1))
        for r in range(rounds):
            p50 = {}
            for side, endpoint in (("direct", d.direct), ("target", d.target)):
                run = d.run_k6(K6Job(label=f"round {r + 1}: {side}", dir=work / f"r{r + 1}-{side}", split=False,
                                     source=render_script(scenario, params, endpoint).source,
                                     duration=window + settle, raw=settle > 0, max_vus=params.max_vus or 1))
                p50[side] = (metric(run.summary, "http_req_duration", "p(50)") if not settle
                             else p50_after(run.dir / run.files["raw"], settle))
            added.append((p50["target"] - p50["direct"]) * 1000.0)
            if paired is not None:
                side_by_side.append(paired_p50(d, paired, base, work / f"r{r + 1}-paired"))
            also = f", the suite's step in the same round {side_by_side[-1]:8.1f} µs" if paired else ""
            print(f"  {target} round {r + 1}: direct p50 {p50['direct'] * 1000:7.1f} µs, through the gateway "
                  f"{p50['target'] * 1000:8.1f} µs, added {added[-1]:8.1f} µs{also}", flush=True)
    return added, side_by_side


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a run directory of the default suite (its figures beside)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="each round also runs the default suite's overhead step in the same gateway process, "
                             "and the windows are judged against it (no gateway start or sitting between them)")
    parser.add_argument("--targets", default="nginx,portkey,litellm")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds at the start of every window left out (the target waking from the other "
                             "window's idle), read from k6's per-request CSV; the window runs this much longer")
    parser.add_argument("--rate", type=float, default=None,
                        help="each window an open loop at this many requests/s (default: one user back to back)")
    args = parser.parse_args()
    if not args.run and not args.side_by_side:
        parser.error("give --run (a run's figures) or --side-by-side (the suite's step in the same session)")
    overhead = suite_results(load_run(args.run)).overhead.set_index("target") if args.run else None
    mock = load_run(args.run).manifest.mock.name if args.run else None
    paired = None
    if args.side_by_side:
        sizes = load_suite("default").sizes("local").overhead
        paired = sizes.model_copy(update={"warmup": 0.0, "warmup_max": None})
    targets = args.targets.split(",")
    engine = LocalEngine(load_mock(mock or "fast"), plan_cpus())
    with tempfile.TemporaryDirectory() as tmp:
        plan = plan_run("local", targets=[load_catalog().get(t) for t in targets], scenario="seed", suite=None,
                        mock_profile="instant", knobs=Knobs(), repeats=1, results_root=Path(tmp))
        engine.begin(RunContext(plan=plan, run_dir=Path(tmp), run_id="overhead-check"))
        load = "concurrency 1" if args.rate is None else f"an open loop of {args.rate:g} req/s"
        kept = f" (the first {args.settle:g} s of each left out)" if args.settle else ""
        print(f"CPU plan: {engine.cpu_plan.note}; {args.rounds} rounds of {args.window:g} s windows{kept} at "
              f"{load} after a {args.warmup:g} s warm-up; the run: {args.run}")
        results = {t: windows(engine, t, args.rounds, args.window, args.warmup, Path(tmp) / t, args.rate,
                              args.settle, paired) for t in targets}
    worst = 0.0
    if paired is not None:
        print(f"\n{'target':<10}{'windows: added p50':>22}{'(range)':>22}{'suite step, same rounds':>26}"
              f"{'(range)':>22}{'step / windows':>16}  agrees within {AGREEMENT:.0%}")
        for target, (added, steps) in results.items():
            windowed, step = statistics.median(added), statistics.median(steps)
            ratio = step / windowed if windowed else float("nan")
            worst = max(worst, abs(ratio - 1))
            print(f"{target:<10}{windowed:>19.1f} µs{f'{min(added):.1f}–{max(added):.1f}':>22}{step:>23.1f} µs"
                  f"{f'{min(steps):.1f}–{max(steps):.1f}':>22}{ratio:>16.3f}  {agrees(ratio)}")
    if overhead is not None:
        print(f"\n{'target':<10}{'windows: added p50':>22}{'(range)':>22}{'run: added p50':>17}{'95% CI':>22}"
              f"{'run / windows':>15}  agrees within {AGREEMENT:.0%}")
        for target, (added, _) in results.items():
            windowed = statistics.median(added)
            row = overhead.loc[target] if target in overhead.index else None
            figure = float(row["added_p50_us"]) if row is not None else float("nan")
            ratio = figure / windowed if windowed else float("nan")
            if paired is None:
                worst = max(worst, abs(ratio - 1))
            interval = f"{row['added_p50_us_ci_low']:.1f}–{row['added_p50_us_ci_high']:.1f}" if row is not None else "–"
            print(f"{target:<10}{windowed:>19.1f} µs{f'{min(added):.1f}–{max(added):.1f}':>22}{figure:>14.1f} µs"
                  f"{interval:>22}{ratio:>15.3f}  {agrees(ratio)}")
    return 0 if worst <= AGREEMENT else 1


if __name__ == "__main__":
    exit_with(main)
