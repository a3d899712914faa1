"""What k6's own work per request costs the rig: RPS of k6 alone against the fast mock, per script variant.

On a small machine k6 and the mock share a CPU, so every metric sample and check k6 records per
request lowers the ceiling the rig can measure. This runs k6 straight to the fast mock (instant
pacing) with the run's CPU plan and the seed scenario's body, closed loop at 50 VUs, for each
variant of the script in turn, several rounds interleaved, and prints the median RPS per variant and
its ratio to the script as shipped, with the CPU time k6 spent per request.

Variants (each from the script as rendered for the seed scenario):
- shipped: the template as it is (every answer checked for its markers, every Nth parsed in full)
- parse-all: every answer parsed in full (full_check_every = 1)
- +csv: shipped, plus k6's per-request CSV output (the analysis's raw samples)
- +check(): shipped, plus a k6 check() per request (two `checks` samples each)
- +trend: shipped, with the response size recorded as a Trend instead of a Counter
- minimal: a script that only sends the request (k6's own floor on this machine)

    .venv/bin/python benchmarks/k6_cost.py --rounds 3 --seconds 6
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aigw_bench.local.cpus import plan_cpus  # noqa: E402
from aigw_bench.local.engine import LocalEngine  # noqa: E402
from aigw_bench.measure.driver import Endpoint, K6Job  # noqa: E402
from aigw_bench.measure.plan import Knobs  # noqa: E402
from aigw_bench.run.engine import RunContext  # noqa: E402
from aigw_bench.run.interrupts import exit_with  # noqa: E402
from aigw_bench.run.plan import plan_run  # noqa: E402
from k6_scripts.render import render_script  # noqa: E402
from schema.catalog import load_catalog  # noqa: E402
from schema.mock import load_mock  # noqa: E402
from schema.scenarios import load_scenario  # noqa: E402

CHECK = """  check(res, { 'status is 200': (r) => r.status === 200, 'OpenAI body': () => ok });
"""


def variants(parse_every: int) -> dict[str, tuple[str, bool]]:
    """name -> (script source, per-request CSV on)."""
    scenario = load_scenario("seed")
    target = Endpoint("direct", "http://127.0.0.1:18080/v1/chat/completions", "gpt-4o-mini")

    def render(every: int) -> str:
        params = scenario.params("local", {"vus": 50, "duration": "5s", "warmup": 0, "full_check_every": every})
        return render_script(scenario, params, target).source

    shipped = render(parse_every)
    with_check = shipped.replace("import { Counter, Rate } from 'k6/metrics';",
                                 "import { check } from 'k6';\nimport { Counter, Rate } from 'k6/metrics';")
    with_check = with_check.replace("  const ok = answerOk(res);\n", "  const ok = answerOk(res);\n" + CHECK)
    with_trend = shipped.replace("new Counter('aigw_response_bytes')", "new Trend('aigw_response_bytes')").replace(
        "import { Counter, Rate } from 'k6/metrics';", "import { Counter, Rate, Trend } from 'k6/metrics';")
    minimal = re.sub(r"export default function \(\) \{.*?\n\}\n", "export default function () {\n"
                     "  http.post(URL, BODY, params);\n}\n", shipped, flags=re.S)
    for name, text in (("+check()", with_check), ("+trend", with_trend), ("minimal", minimal)):
        if text == shipped:
            raise SystemExit(f"variant {name}: the template changed and the substitution no longer applies")
    return {"shipped": (shipped, False), "parse-all": (render(1), False), "+csv": (shipped, True),
            "+check()": (with_check, False), "+trend": (with_trend, False), "minimal": (minimal, False)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--parse-every", type=int, default=None,
                        help="full_check_every of the shipped script (default: the scenario's)")
    args = parser.parse_args()
    every = args.parse_every or load_scenario("seed").params("local").full_check_every
    table: dict[str, list[tuple[float, float]]] = {}
    scripts = variants(every)
    engine = LocalEngine(load_mock("fast"), plan_cpus())
    print(f"CPU plan: {engine.cpu_plan.note}; 50 VUs closed loop, {args.seconds:g} s per run, {args.rounds} rounds; "
          f"shipped script parses every {every}th answer in full", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan = plan_run("local", targets=[load_catalog().get("direct")], scenario="seed", suite=None,
                        mock_profile="instant", knobs=Knobs(), repeats=1, results_root=work)
        engine.begin(RunContext(plan=plan, run_dir=work, run_id=work.name))
        with engine.rig_session("local") as session:  # the mock alone: k6 straight to it
            for r in range(args.rounds):
                names = list(scripts)
                names = names[r % len(names):] + names[: r % len(names)]  # rotate: no variant always first
                for name in names:
                    source, csv = scripts[name]
                    run = session.run_k6(K6Job(label=name, dir=work / f"r{r}-{name.strip('+()')}", source=source,
                                               duration=args.seconds, warmup=1.0, raw=csv))
                    requests = run.summary["metrics"]["http_reqs"]["values"]["count"] if run.summary else 0
                    rps = run.summary["metrics"]["http_reqs"]["values"]["rate"] if run.summary else 0.0
                    k6_cpu_us = run.cpu_seconds.get("loadgen", 0.0) / requests * 1e6 if requests else float("nan")
                    table.setdefault(name, []).append((rps, k6_cpu_us))
                    print(f"  round {r + 1} {name:<10} {rps:8,.0f} RPS  k6 {k6_cpu_us:6.0f} µs CPU/request", flush=True)
    base = statistics.median(v[0] for v in table["shipped"])
    print(f"\n{'variant':<11}{'median RPS':>12}{'vs shipped':>12}{'k6 CPU µs/req':>15}   (min–max RPS)")
    for name, values in table.items():
        rps = [v[0] for v in values]
        cpu = statistics.median(v[1] for v in values)
        print(f"{name:<11}{statistics.median(rps):>12,.0f}{statistics.median(rps) / base:>11.2f}x{cpu:>15,.0f}"
              f"   ({min(rps):,.0f}–{max(rps):,.0f})")
    return 0


if __name__ == "__main__":
    exit_with(main)
