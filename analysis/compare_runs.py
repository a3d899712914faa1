"""Two runs side by side (before/after a gateway upgrade, a config change): the change per target and metric.

A change counts as real when the runs' 95% intervals do not overlap (both runs with repeats), or,
without repeats, when it exceeds a relative threshold (default 5%, an honest guess at run-to-run
noise on one machine; measure yours with --repeats). Regressions are flagged, improvements noted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.compare import comparison
from analysis.load import load_run
from analysis.report_md import fmt, markdown_table
from analysis.stats import intervals_separate

# metric -> True if higher is better
METRICS = {"rps": True, "latency_p50_ms": False, "latency_p95_ms": False, "latency_p99_ms": False,
           "error_rate": False}
# Error rates are compared in absolute terms: 0 -> 0.1% is not "infinitely worse".
ERROR_RATE_POINTS = 0.005


@dataclass(frozen=True)
class RunComparison:
    table: pd.DataFrame  # target, metric, before, after, change_pct, judged_by, verdict
    notes: list[str]

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table["verdict"] == "regression"]


def _verdict(metric: str, before: float, after: float, separated: bool | None, threshold: float) -> tuple[str, str]:
    better_higher = METRICS[metric]
    if metric == "error_rate":
        real = abs(after - before) > ERROR_RATE_POINTS
        judged = f"absolute change > {ERROR_RATE_POINTS * 100:.1f} points"
    elif separated is not None:
        real, judged = separated, "95% intervals"
    else:
        real = before != 0 and abs(after / before - 1) > threshold
        judged = f"threshold {threshold * 100:.0f}%"
    if not real:
        return "within noise", judged
    improved = (after > before) == better_higher
    return ("improvement" if improved else "regression"), judged


def compare_runs(before_dir: Path, after_dir: Path, threshold: float = 0.05) -> RunComparison:
    before_run, after_run = load_run(before_dir), load_run(after_dir)
    before, after = comparison(before_run), comparison(after_run)
    notes = []
    sb, sa = before_run.manifest.scenario, after_run.manifest.scenario
    if sb.name != sa.name or sb.params != sa.params:
        notes.append(f"the runs used different scenarios or parameters ({sb.name} {sb.params} vs "
                     f"{sa.name} {sa.params}): the comparison is not like for like")
    mb, ma = before_run.manifest.machine, after_run.manifest.machine
    if (mb.get("cpu_model"), mb.get("cpus_usable")) != (ma.get("cpu_model"), ma.get("cpus_usable")):
        notes.append("the runs were made on different machines")
    tb, ta = before_run.manifest.targets, after_run.manifest.targets
    for name in sorted(set(tb) | set(ta)):
        vb = tb[name].version if name in tb else None
        va = ta[name].version if name in ta else None
        if vb != va:
            notes.append(f"{name}: version {vb or 'absent'} -> {va or 'absent'}")
    rows = []
    b_idx, a_idx = before.set_index("target"), after.set_index("target")
    for target in [t for t in a_idx.index if t in b_idx.index]:
        rb, ra = b_idx.loc[target], a_idx.loc[target]
        if not (rb["valid"] and ra["valid"]):
            notes.append(f"{target}: not compared (status {rb['status']} before, {ra['status']} after, or errors)")
            continue
        for metric in METRICS:
            vb, va = float(rb[metric]), float(ra[metric])
            separated = intervals_separate(rb[f"{metric}_ci_low"], rb[f"{metric}_ci_high"],
                                           ra[f"{metric}_ci_low"], ra[f"{metric}_ci_high"])
            verdict, judged = _verdict(metric, vb, va, separated, threshold)
            change = (va / vb - 1) * 100 if vb else float("nan")
            rows.append({"target": target, "metric": metric, "before": vb, "after": va, "change_pct": change,
                         "judged_by": judged, "verdict": verdict})
    return RunComparison(pd.DataFrame(rows, columns=["target", "metric", "before", "after", "change_pct",
                                                     "judged_by", "verdict"]), notes)


def render_comparison(result: RunComparison, before_dir: Path, after_dir: Path) -> str:
    lines = [f"# aigw-bench: {Path(after_dir).name} compared with {Path(before_dir).name}", ""]
    if result.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in result.notes), ""]
    regressions = result.regressions
    lines += ["## Regressions", ""]
    if regressions.empty:
        lines += ["None beyond the noise.", ""]
    else:
        lines += [f"- **{r.target}** {r.metric}: {r.before:,.2f} -> {r.after:,.2f} "
                  f"({r.change_pct:+.1f}%, {r.judged_by})" for r in regressions.itertuples()] + [""]
    rows = [[r.target, r.metric, fmt(r.before), fmt(r.after), fmt(r.change_pct, 1, "%"), r.verdict, r.judged_by]
            for r in result.table.itertuples()]
    lines += ["## All changes", "",
              markdown_table(["target", "metric", "before", "after", "change", "verdict", "judged by"], rows), ""]
    return "\n".join(lines)
