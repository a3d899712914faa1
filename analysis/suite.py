"""The suite's figures per target, from the step records and files of a run (empty for scenario runs).

- overhead: added latency at concurrency 1, with intervals (:mod:`analysis.overhead`)
- frontier: capacity under each p99 bound, and every probe (:mod:`analysis.capacity`)
- efficiency: CPU per request and memory at one fixed rate (:mod:`analysis.efficiency`)
- streaming: added TTFT and gap, chunk fidelity, re-buffering (:mod:`analysis.streaming`)

:func:`suite_columns` gives the per-target columns that ``comparison.csv`` carries (names fixed, for
other tools to rely on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.capacity import capacity_columns, frontier, probes
from analysis.concurrency import COLUMNS as CLOSED_COLUMNS
from analysis.concurrency import closed_columns, closed_frontier
from analysis.efficiency import efficiency_table
from analysis.load import RunData
from analysis.overhead import overhead_table
from analysis.streaming import first_token_wait, streaming_table

# comparison.csv columns from the suite (the first eight are promised by name).
SUITE_COLUMNS = [
    "added_p50_us", "added_p50_us_ci_low", "added_p50_us_ci_high", "added_p99_us", "capacity_rps",
    "capacity_rig_bound", "cpu_ms_per_request", "rss_mib",
    "added_p90_us", "added_p90_us_ci_low", "added_p90_us_ci_high", "added_p99_us_ci_low", "added_p99_us_ci_high",
    "overhead_pairs", "capacity_bound_ms", "capacity_at_least_rps", "capacity_below_rps", "capacity_low_rps",
    "capacity_high_rps", "capacity_range_high_rps",
    "efficiency_rps", "efficiency_sustained", "cpu_ms_per_request_low", "cpu_ms_per_request_high",
    "rss_idle_mib", "rss_after_mib",
    "added_ttft_p50_ms", "added_ttft_p50_ms_ci_low", "added_ttft_p50_ms_ci_high", "added_ttft_p99_ms",
    "added_gap_p50_ms", "added_gap_p99_ms", "stream_complete_share", "stream_rebuffers",
    "capacity_unstable_up_to_rps", "capacity_stall_bound", "capacity_no_queue_p99_ms", "capacity_no_queue_rps",
    "capacity_no_queue_probes",
    "capacity_next_bound_ms", "capacity_next_rps", "capacity_next_rig_bound", "capacity_next_range_high_rps",
    "closed_capacity_rps", "closed_vus",
    "added_p50_us_sessions_low", "added_p50_us_sessions_high", "carryover_p50_us", "carryover_first_us",
    "added_p50_x_floor", "added_p50_x_floor_ci_low", "added_p50_x_floor_ci_high",
    "stream_first_token_wait_ms", "stream_holds_first_token", "added_gap_p50_ms_ci_low", "added_gap_p50_ms_ci_high",
    "stream_token_gap_ms",
]


@dataclass(frozen=True)
class SuiteResults:
    overhead: pd.DataFrame
    frontier: pd.DataFrame
    probes: pd.DataFrame
    efficiency: pd.DataFrame
    streaming: pd.DataFrame
    default_bound_ms: float | None
    efficiency_rate: float | None
    closed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CLOSED_COLUMNS))

    @property
    def empty(self) -> bool:
        return all(f.empty for f in (self.overhead, self.frontier, self.efficiency, self.streaming))


def suite_results(run: RunData) -> SuiteResults:
    sizes = (run.manifest.suite.sizes if run.manifest.suite else None) or {}
    return SuiteResults(
        overhead=overhead_table(run), frontier=frontier(run), probes=probes(run),
        efficiency=efficiency_table(run), streaming=streaming_table(run),
        default_bound_ms=(sizes.get("capacity") or {}).get("default_bound_ms"),
        efficiency_rate=(sizes.get("efficiency") or {}).get("rate"),
        closed=closed_frontier(run),
    )


def suite_columns(results: SuiteResults) -> pd.DataFrame:
    """One row per target with the suite's columns of comparison.csv."""
    o = results.overhead.rename(columns={"pairs": "overhead_pairs"})
    parts = [o[["target", *[c for c in SUITE_COLUMNS if c in o.columns]]]]
    cap = capacity_columns(results.frontier, results.default_bound_ms)
    if not cap.empty:
        at = results.frontier[results.frontier["p99_bound_ms"] == float(results.default_bound_ms or 0)]
        cap = cap.merge(at[["target", "max_rps_low", "max_rps_high", "range_high_rps", "passed_above_rps"]].rename(
            columns={"max_rps_low": "capacity_low_rps", "max_rps_high": "capacity_high_rps",
                     "range_high_rps": "capacity_range_high_rps",
                     "passed_above_rps": "capacity_unstable_up_to_rps"}), on="target")
    parts.append(cap)
    parts.append(closed_columns(results.closed, results.default_bound_ms))
    e = results.efficiency.rename(columns={"rate": "efficiency_rps", "sustained": "efficiency_sustained",
                                           "rss_load_mib": "rss_mib"})
    parts.append(e[["target", *[c for c in SUITE_COLUMNS if c in e.columns]]])
    s = results.streaming.rename(columns={"complete_share": "stream_complete_share", "rebuffers": "stream_rebuffers",
                                          "token_gap_ms": "stream_token_gap_ms"})
    parts.append(s[["target", *[c for c in SUITE_COLUMNS if c in s.columns]]])
    merged = pd.DataFrame({"target": pd.Series(dtype="object")})
    for part in parts:
        if not part.empty:
            merged = merged.merge(part, on="target", how="outer")
    for col in SUITE_COLUMNS:
        if col not in merged.columns:
            merged[col] = pd.NA
    for i, r in merged.iterrows():
        needed = (r["added_ttft_p50_ms"], r["added_ttft_p50_ms_ci_low"], r["added_p50_us"], r["stream_token_gap_ms"])
        if all(pd.notna(v) for v in needed):
            wait, held = first_token_wait(*(float(v) for v in needed))
            merged.at[i, "stream_first_token_wait_ms"], merged.at[i, "stream_holds_first_token"] = wait, held
    return merged[["target", *SUITE_COLUMNS]]
