"""Two runs side by side (before/after a gateway upgrade, a config change): the headline's figures per
target, each with a verdict.

For a suite run the figures are the headline's: added latency at p50 and p99, capacity at the default
bound, CPU-ms per request, memory under load, added time to first token, and the published shape's
throughput. A change is real when the two runs' uncertainties do not overlap: for added latency its
95% interval widened to the range of the run's per-session figures (the interval covers the noise of
one run's requests; the sessions show what a second run finds), for capacity and CPU the range over
repeats. A figure without either is judged by a relative threshold (default 5%).

A figure that moves between runs more than between one run's sessions (capacity, CPU per request,
memory, closed-loop throughput: analysis/history.py) is confirmed only against earlier runs of the same
suite on the same machine (at least three, found beside the runs compared): a change beyond the
intervals but within where one more such run would fall (a 95% prediction from them) is noise, and one
with fewer such runs is "unconfirmed", listed apart and never a regression. Added p50 is confirmed the
same way where such runs exist, and otherwise keeps its own rules (one slowed run is a regression).

An added latency also has to move by more than the rig can resolve: the A/A control's own reading
(its value and interval bounds) is what the rig attributes to a proxy that is not there, so a change
smaller than the two runs' A/A magnitudes summed is within noise even when the intervals part.
Two runs minutes apart on a shared machine move the direct floor by a few microseconds; without this,
an unchanged A/A control reads as a "regression".

Runs made on different machines are compared on the same-run ratios that the machine's speed does not
change (added p50 as a multiple of the floor's, capacity as a share of the rig's ceiling, CPU per
request as a multiple of the floor's); a figure without one says it cannot be compared. Scenario runs
compare k6's figures (RPS, latency percentiles, errors) as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.compare import comparison
from analysis.history import MIN_RUNS, Prediction, earlier_runs
from analysis.load import load_run
from analysis.report_md import fmt, markdown_table
from analysis.stats import intervals_separate
from analysis.suite import suite_results


@dataclass(frozen=True)
class Figure:
    higher_is_better: bool
    low: str | None = None  # interval columns
    high: str | None = None
    spread: tuple[str, str] | None = None  # a range widening the interval (between sessions, a search's bracket)
    ratio: str | None = None  # the same-run ratio to compare across machines
    resolved_by_control: bool = False  # a change must exceed the A/A control's own reading
    same_as: str | None = None  # a column both runs must agree on for the figure to be compared
    between_runs: bool = False  # confirmed only against its spread over earlier runs (analysis/history.py)
    # Confirmed against earlier runs where there are enough, else judged by its own rules (not "unconfirmed").
    history_if_any: bool = False


RATIOS = {"added_p50_x_floor": Figure(False, "added_p50_x_floor_ci_low", "added_p50_x_floor_ci_high"),
          "capacity_x_ceiling": Figure(True, "capacity_x_ceiling_low", "capacity_x_ceiling_high", between_runs=True),
          "cpu_x_floor": Figure(False, between_runs=True)}
SUITE_FIGURES = {
    "added_p50_us": Figure(False, "added_p50_us_ci_low", "added_p50_us_ci_high",
                           ("added_p50_us_sessions_low", "added_p50_us_sessions_high"), "added_p50_x_floor",
                           resolved_by_control=True, between_runs=True, history_if_any=True),
    "added_p99_us": Figure(False, "added_p99_us_ci_low", "added_p99_us_ci_high", resolved_by_control=True),
    # The range the searches put the capacity in (to the highest failing rate); a run from before that column
    # has its repeats' range only.
    "capacity_rps": Figure(True, "capacity_low_rps", "capacity_high_rps",
                           ("capacity_low_rps", "capacity_range_high_rps"), ratio="capacity_x_ceiling",
                           between_runs=True),
    # A stall-bound target has no capacity at the default bound; the headline quotes the next bound's.
    "capacity_next_rps": Figure(True, "capacity_next_rps", "capacity_next_range_high_rps",
                                same_as="capacity_next_bound_ms", between_runs=True),
    "cpu_ms_per_request": Figure(False, "cpu_ms_per_request_low", "cpu_ms_per_request_high", ratio="cpu_x_floor",
                                 between_runs=True),
    "rss_mib": Figure(False, between_runs=True),
    # LiteLLM's read 29.7 [25.0, 30.8] then 40.1 [33.8, 43.6] ms in two runs 8 minutes apart (5 Dec, same code).
    "added_ttft_p50_ms": Figure(False, "added_ttft_p50_ms_ci_low", "added_ttft_p50_ms_ci_high",
                                resolved_by_control=True, between_runs=True),
    "rps": Figure(True, "rps_ci_low", "rps_ci_high", between_runs=True),
}
SCENARIO_FIGURES = {"rps": Figure(True, "rps_ci_low", "rps_ci_high"),
                    "latency_p50_ms": Figure(False, "latency_p50_ms_ci_low", "latency_p50_ms_ci_high"),
                    "latency_p95_ms": Figure(False, "latency_p95_ms_ci_low", "latency_p95_ms_ci_high"),
                    "latency_p99_ms": Figure(False, "latency_p99_ms_ci_low", "latency_p99_ms_ci_high"),
                    "error_rate": Figure(False)}
# Error rates are compared in absolute terms: 0 -> 0.1% is not "infinitely worse".
ERROR_RATE_POINTS = 0.005
COLUMNS = ["target", "metric", "before", "after", "change_pct", "judged_by", "verdict"]


@dataclass(frozen=True)
class RunComparison:
    table: pd.DataFrame  # target, metric, before, after, change_pct, judged_by, verdict
    notes: list[str]

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table["verdict"] == "regression"]


def _number(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(out) else out


def _uncertainty(row: pd.Series, figure: Figure) -> tuple[float, float] | None:
    """The figure's interval, widened to its between-session range where there is one."""
    bounds = [(_number(row.get(figure.low)), _number(row.get(figure.high)))] if figure.low and figure.high else []
    if figure.spread:
        bounds.append((_number(row.get(figure.spread[0])), _number(row.get(figure.spread[1]))))
    bounds = [b for b in bounds if b[0] is not None and b[1] is not None]
    if not bounds:
        return None
    return min(b[0] for b in bounds), max(b[1] for b in bounds)


def control_resolution(tables: list[pd.DataFrame], metric: str, figure: Figure) -> float | None:
    """What the rig can misattribute to a proxy in a change between two runs: the A/A control's (the
    baseline measured against itself) largest reading, value or interval bound, in each run, summed
    (each run's own error can fall either way). None when a run has no valid A/A reading."""
    per_run = []
    for table in tables:
        readings = []
        for _, row in table[(table["role"] == "baseline") & table["valid"]].iterrows():
            readings += [_number(row.get(c)) for c in (metric, figure.low, figure.high) if c]
        readings = [abs(r) for r in readings if r is not None]
        if not readings:
            return None
        per_run.append(max(readings))
    return sum(per_run)


def _verdict(metric: str, figure: Figure, rb: pd.Series, ra: pd.Series, threshold: float,
             resolution: float | None = None) -> tuple[str, str]:
    before, after = _number(rb.get(metric)), _number(ra.get(metric))
    assert before is not None and after is not None
    if resolution is not None and abs(after - before) <= resolution:
        unit = " µs" if metric.endswith("_us") else " ms" if metric.endswith("_ms") else ""
        return "within noise", f"below the A/A control's {fmt(resolution)}{unit}"
    if metric == "error_rate":
        real = abs(after - before) > ERROR_RATE_POINTS
        judged = f"absolute change > {ERROR_RATE_POINTS * 100:.1f} points"
    else:
        ub, ua = _uncertainty(rb, figure), _uncertainty(ra, figure)
        if ub is not None and ua is not None:
            real = bool(intervals_separate(ub[0], ub[1], ua[0], ua[1]))
            judged = "intervals" + (" and sessions" if figure.spread else "")
        else:
            real = before != 0 and abs(after / before - 1) > threshold
            judged = f"threshold {threshold * 100:.0f}%"
    if not real:
        return "within noise", judged
    return ("improvement" if (after > before) == figure.higher_is_better else "regression"), judged


def _notes(before_run, after_run) -> tuple[list[str], bool]:
    notes = []
    sb, sa = before_run.manifest.scenario, after_run.manifest.scenario
    suite_b = before_run.manifest.suite.name if before_run.manifest.suite else None
    suite_a = after_run.manifest.suite.name if after_run.manifest.suite else None
    if suite_b != suite_a or (suite_b is None and (sb.name != sa.name or sb.params != sa.params)):
        notes.append(f"the runs used different suites, scenarios or parameters ({suite_b or sb.name} vs "
                     f"{suite_a or sa.name}): the comparison is not like for like")
    mb, ma = before_run.manifest.machine, after_run.manifest.machine
    same_machine = (mb.get("cpu_model"), mb.get("cpus_usable")) == (ma.get("cpu_model"), ma.get("cpus_usable"))
    if not same_machine:
        notes.append("the runs were made on different machines: figures are compared by their same-run ratios "
                     "(to the floor's, to the rig's ceiling), which the machine's speed does not change")
    tb, ta = before_run.manifest.targets, after_run.manifest.targets
    for name in sorted(set(tb) | set(ta)):
        vb = tb[name].version if name in tb else None
        va = ta[name].version if name in ta else None
        if vb != va:
            notes.append(f"{name}: version {vb or 'absent'} -> {va or 'absent'}")
    return notes, same_machine


def _between_runs(verdict: str, judged: str, after: float, values: list[float],
                  history_if_any: bool = False) -> tuple[str, str]:
    """A change beyond one run's intervals, confirmed (or not) by where one more run of the first
    configuration would put the figure (its runs' ``values``). ``history_if_any``: with too few runs the
    figure's own verdict stands."""
    if verdict not in ("regression", "improvement"):
        return verdict, judged
    prediction = Prediction.of(values)
    if prediction is None and history_if_any:
        return verdict, f"{judged}; no {MIN_RUNS} runs like the first to confirm it against"
    if prediction is None:
        return "unconfirmed", (f"{judged}; between-run spread not measured ({len(values)} run(s) like the first "
                               f"with this figure, {MIN_RUNS} needed)")
    runs = f"95% prediction {prediction.low:,.4g}-{prediction.high:,.4g} from {prediction.runs} runs"
    if prediction.holds(after):
        return "within noise", f"within what another run of the first finds ({runs})"
    return verdict, f"{judged} and beyond what another run of the first finds ({runs})"


def compare_runs(before_dir: Path, after_dir: Path, threshold: float = 0.05,
                 history: list[Path] | None = None) -> RunComparison:
    """``history``: folders holding earlier runs like ``before`` (default: the two runs' own folders)."""
    before_run, after_run = load_run(before_dir), load_run(after_dir)
    suites = before_run.is_suite and after_run.is_suite
    before = comparison(before_run, suite_results(before_run) if suites else None)
    after = comparison(after_run, suite_results(after_run) if suites else None)
    notes, same_machine = _notes(before_run, after_run)
    folders = [Path(before_dir).parent, Path(after_dir).parent] if history is None else history
    earlier = earlier_runs(Path(before_dir), before_run.manifest, before, exclude=Path(after_dir), folders=folders)
    notes += [f"left out of the between-run spread: {why}" for why in earlier.left_out]
    figures = SUITE_FIGURES if suites else SCENARIO_FIGURES
    rows = []
    b_idx, a_idx = before.set_index("target"), after.set_index("target")
    for target in [t for t in a_idx.index if t in b_idx.index]:
        rb, ra = b_idx.loc[target], a_idx.loc[target]
        if not (rb["valid"] and ra["valid"]):
            notes.append(f"{target}: not compared (status {rb['status']} before, {ra['status']} after, or errors)")
            continue
        for metric, figure in figures.items():
            if not same_machine:
                if figure.ratio is None:
                    if _number(rb.get(metric)) is not None:
                        rows.append({"target": target, "metric": metric, "before": _number(rb.get(metric)),
                                     "after": _number(ra.get(metric)), "change_pct": float("nan"),
                                     "judged_by": "-", "verdict": "not comparable (different machines)"})
                    continue
                metric, figure = figure.ratio, RATIOS[figure.ratio]
            vb, va = _number(rb.get(metric)), _number(ra.get(metric))
            if vb is None or va is None:
                continue  # not measured in one of the runs (a rig-bound capacity, a baseline's CPU)
            if figure.same_as and _number(rb.get(figure.same_as)) != _number(ra.get(figure.same_as)):
                notes.append(f"{target}: {metric} not compared: {figure.same_as} was {rb.get(figure.same_as)} "
                             f"before and {ra.get(figure.same_as)} after")
                continue
            resolution = control_resolution([before, after], metric, figure) if figure.resolved_by_control else None
            verdict, judged = _verdict(metric, figure, rb, ra, threshold, resolution)
            if figure.between_runs:
                version = rb.get("version")
                verdict, judged = _between_runs(verdict, judged, va, earlier.values(target, metric, version),
                                                figure.history_if_any)
            rows.append({"target": target, "metric": metric, "before": vb, "after": va,
                         "change_pct": (va / vb - 1) * 100 if vb else float("nan"), "judged_by": judged,
                         "verdict": verdict})
    return RunComparison(pd.DataFrame(rows, columns=COLUMNS), notes)


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
    unconfirmed = result.table[result.table["verdict"] == "unconfirmed"]
    if not unconfirmed.empty:
        lines += ["## Unconfirmed", "",
                  "Beyond one run's sessions, but these figures move between runs more than between sessions, "
                  f"and fewer than {MIN_RUNS} runs like the first are beside it to say by how much: repeat the "
                  "first configuration into the same results directory, then compare again.", "",
                  *(f"- {r.target} {r.metric}: {r.before:,.2f} -> {r.after:,.2f} ({r.change_pct:+.1f}%)"
                    for r in unconfirmed.itertuples()), ""]
    rows = [[r.target, r.metric, fmt(r.before), fmt(r.after), fmt(r.change_pct, 1, "%"), r.verdict, r.judged_by]
            for r in result.table.itertuples()]
    lines += ["## The headline's figures", "",
              markdown_table(["target", "figure", "before", "after", "change", "verdict", "judged by"], rows), "",
              "Judged by: the two runs' intervals (for added latency widened to the range of each run's "
              "per-session figures), or a threshold where a figure has none. An added latency must also "
              "move by more than the two runs' A/A control readings summed (the rig's resolution); capacity, "
              "CPU, memory and closed-loop throughput beyond where another run like the first would put them "
              "(a 95% prediction from three or more such runs: docs/method.md, 'Between runs').", ""]
    return "\n".join(lines)
