"""The comparison: one row per target, derived from the tidy frames of :mod:`analysis.load`.

The scenario's columns are k6's own summary figures (the mean over repeats; request counts are the
total over repeats, whole numbers). Not k6's own: the suite's columns (:mod:`analysis.suite`, computed
from the steps' files), the repeats' intervals, and these derived ones:
- ``rate_added_p50_ms`` / ``_p95_`` / ``_p99_``: target minus the baseline (direct to mock) at the same
  fixed arrival rate, only for an open-model scenario (``constant-arrival-rate``). A closed loop's
  latency is queueing at each target's limit, so no added latency is derived from it: empty there, and
  in a suite (whose added latency is ``added_p50_us``, measured at concurrency 1);
- ``rps_pct_of_baseline``: the target's throughput as a percentage of the baseline's;
and :func:`relative_statements` gives the published benchmark's form, "X has N% more RPS than Y".
Every column is described in docs/columns.md (a test holds the two together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.load import RunData
from analysis.stats import intervals_separate, summarize_repeats
from analysis.suite import SUITE_COLUMNS, SuiteResults, suite_columns
from schema.manifest import RIG_BOUND_FRACTION

ROLE_ORDER = {"baseline": 0, "floor": 1, "gateway": 2}
RATE_ADDED_COLUMNS = ["rate_added_p50_ms", "rate_added_p95_ms", "rate_added_p99_ms"]
# Counts: totals over the repeats, whole numbers (a mean of counts would read 9,999.5 requests).
COUNT_COLUMNS = ["requests", "ok_requests", "dropped_iterations"]
INTEGER_COLUMNS = ["repeats", *COUNT_COLUMNS, "overhead_pairs", "closed_vus"]
LATENCY_COLUMNS = ["latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms"]
# Metrics shown with a 95% confidence interval and coefficient of variation when there are repeats.
INTERVAL_METRICS = ["rps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "error_rate"]
COMPARISON_COLUMNS = [
    "target", "role", "version", "status", "valid", "repeats", "requests", "rps", "error_rate",
    *LATENCY_COLUMNS, "latency_avg_ms", "ttfb_p95_ms",
    *RATE_ADDED_COLUMNS, "rps_pct_of_baseline",
    "response_bytes_avg", "dropped_iterations",
    *(f"{m}_{s}" for m in INTERVAL_METRICS for s in ("ci_low", "ci_high", "cv")),
    "rig_ceiling_rps", "rig_bound", *SUITE_COLUMNS,
    # Same-run ratios: figures that do not depend on the machine's speed (compare them across machines).
    "capacity_x_ceiling", "capacity_x_ceiling_low", "capacity_x_ceiling_high", "cpu_x_floor",
    # The published harnesses' own figures (scenarios inferxgate-*, hey): hey's percentiles, time to first
    # byte, successful requests, output tokens.
    "latency_min_ms", "latency_p10_ms", "latency_p25_ms", "latency_p75_ms", "ttfb_avg_ms", "ttfb_p50_ms",
    "ttfb_p99_ms", "ok_requests", "test_duration_s", "output_tokens_per_s", "tokens_per_response",
    "request_tokens_per_s_avg", "request_tokens_per_s_p50",
    "reason",
]
# Above this error rate a row is not a valid measurement of the target's capacity.
MAX_VALID_ERROR_RATE = 0.01


def _status_summary(rows: pd.DataFrame) -> tuple[str, str | None]:
    statuses = rows["status"].tolist()
    if all(s == "ok" for s in statuses):
        return "ok", None
    if len(statuses) == 1:
        return statuses[0], rows["reason"].iloc[0]
    bad = rows[rows["status"] != "ok"]
    status = bad["status"].iloc[0]
    reasons = "; ".join(f"r{r.repeat}: {r.reason}" for r in bad.itertuples())
    return status if status != "ok" else "ok", reasons


def comparison(run: RunData, suite: SuiteResults | None = None) -> pd.DataFrame:
    targets = run.manifest.targets
    wide = (
        run.metrics.pivot_table(index=["target", "repeat"], columns="metric", values="value", aggfunc="first")
        if not run.metrics.empty else pd.DataFrame()
    )
    means = wide.groupby(level="target").mean() if not wide.empty else pd.DataFrame()
    if not means.empty:
        counted = [c for c in COUNT_COLUMNS if c in wide.columns]
        means[counted] = wide[counted].groupby(level="target").sum(min_count=1)
    counts = wide.groupby(level="target").size() if not wide.empty else pd.Series(dtype=int)
    spread = summarize_repeats(run.metrics[run.metrics["metric"].isin(INTERVAL_METRICS)])
    rows = []
    for name, info in targets.items():
        outcome_rows = run.outcomes[run.outcomes["target"] == name] if not run.outcomes.empty else pd.DataFrame()
        status, reason = _status_summary(outcome_rows) if not outcome_rows.empty else ("not_run", None)
        # The baseline is the mock that ran (its catalog entry has no software of its own): its version, also
        # for runs recorded before the manifest said so.
        version = run.manifest.mock.version if info.role == "baseline" and run.manifest.mock.version else info.version
        row = {"target": name, "role": info.role, "version": version,
               "status": status, "reason": reason, "repeats": int(counts.get(name, 0))}
        if name in means.index:
            row.update(means.loc[name].to_dict())
        for r in spread[spread["target"] == name].itertuples():
            row.update({f"{r.metric}_ci_low": r.ci_low, f"{r.metric}_ci_high": r.ci_high, f"{r.metric}_cv": r.cv})
        rows.append(row)
    table = _all_columns(pd.DataFrame(rows))
    table["valid"] = (table["status"] == "ok") & (table["error_rate"].fillna(1.0) <= MAX_VALID_ERROR_RATE)
    baseline = table[(table["role"] == "baseline") & table["valid"]]
    if not baseline.empty:
        b = baseline.iloc[0]
        if is_open_model(run):
            for q in ("p50", "p95", "p99"):
                table[f"rate_added_{q}_ms"] = table[f"latency_{q}_ms"] - b[f"latency_{q}_ms"]
            table.loc[table["role"] == "baseline", RATE_ADDED_COLUMNS] = 0.0
        table["rps_pct_of_baseline"] = table["rps"] / b["rps"] * 100.0
    # The rig's ceiling next to every throughput: near it, the figure is the rig's, not the target's.
    ceiling = run.rig.ceiling_rps
    table["rig_ceiling_rps"] = ceiling if ceiling else np.nan
    table["rig_bound"] = (table["rps"] >= RIG_BOUND_FRACTION * ceiling) if ceiling else False
    if suite is not None and not suite.empty:
        extra = suite_columns(suite)
        table = table.drop(columns=[c for c in SUITE_COLUMNS if c in table.columns]).merge(extra, on="target",
                                                                                            how="left")
        table = _ratios(table, ceiling)
    table = _all_columns(table)
    table["_order"] = table["role"].map(ROLE_ORDER).fillna(9)
    table = table.sort_values(["_order", "target"]).drop(columns="_order").reset_index(drop=True)
    for column in INTEGER_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").round().astype("Int64")
    return table[COMPARISON_COLUMNS]


def _all_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every comparison column, the missing ones empty: added at once (one by one fragments
    the frame, and pandas warned about it in every run that lacked many)."""
    return table.reindex(columns=[*table.columns, *(c for c in COMPARISON_COLUMNS if c not in table.columns)])


def is_open_model(run: RunData) -> bool:
    """A scenario run at a fixed arrival rate: the only load whose latencies may be subtracted (a suite's
    published shape and every closed loop measure queueing at each target's limit)."""
    return not run.is_suite and run.manifest.scenario.executor == "constant-arrival-rate"


def _ratios(table: pd.DataFrame, ceiling: float | None) -> pd.DataFrame:
    """Capacity as a share of the rig's ceiling, CPU per request as a multiple of the floor's (a plain proxy
    measured in the same run): what one machine's speed does not change."""
    numeric = {c: pd.to_numeric(table[c], errors="coerce")
               for c in ("capacity_rps", "capacity_low_rps", "capacity_range_high_rps", "cpu_ms_per_request")}
    if ceiling:
        table["capacity_x_ceiling"] = numeric["capacity_rps"] / ceiling
        table["capacity_x_ceiling_low"] = numeric["capacity_low_rps"] / ceiling
        table["capacity_x_ceiling_high"] = numeric["capacity_range_high_rps"] / ceiling
    floors = table[table["role"] == "floor"]
    if not floors.empty and pd.notna(numeric["cpu_ms_per_request"][floors.index[0]]):
        table["cpu_x_floor"] = numeric["cpu_ms_per_request"] / numeric["cpu_ms_per_request"][floors.index[0]]
    return table


@dataclass(frozen=True)
class Statement:
    faster: str
    slower: str
    rps_more_pct: float
    p95_lower_pct: float
    text: str
    rps_significant: bool | None  # None: one repeat, no interval to judge by
    p95_significant: bool | None


def relative_statements(table: pd.DataFrame, roles: tuple[str, ...] = ("gateway", "floor")) -> list[Statement]:
    """For every pair of validly measured targets of the given roles, the faster one vs the slower."""
    valid = table[table["valid"] & table["role"].isin(roles)].sort_values("rps", ascending=False)
    out = []
    records = valid.to_dict("records")
    for i, a in enumerate(records):
        for b in records[i + 1:]:
            more = (a["rps"] / b["rps"] - 1.0) * 100.0
            lower = (1.0 - a["latency_p95_ms"] / b["latency_p95_ms"]) * 100.0
            latency = (f"{lower:.0f}% lower p95 latency" if lower >= 0
                       else f"{-lower:.0f}% higher p95 latency")
            text = (f"{a['target']} delivered {more:.0f}% more RPS than {b['target']} "
                    f"({a['rps']:.0f} vs {b['rps']:.0f} RPS) with {latency} "
                    f"({a['latency_p95_ms']:.2f} vs {b['latency_p95_ms']:.2f} ms)")
            rps_sig = intervals_separate(a["rps_ci_low"], a["rps_ci_high"], b["rps_ci_low"], b["rps_ci_high"])
            p95_sig = intervals_separate(a["latency_p95_ms_ci_low"], a["latency_p95_ms_ci_high"],
                                         b["latency_p95_ms_ci_low"], b["latency_p95_ms_ci_high"])
            out.append(Statement(a["target"], b["target"], more, lower, text, rps_sig, p95_sig))
    return out
