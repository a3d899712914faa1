"""The capacity frontier: per target and p99 bound, the highest arrival rate that met the bound.

Each session's capacity step records every probe (rate, p99, errors, drops) and, per bound, the
highest passing rate below the lowest failing one (:mod:`aigw_bench.measure.search`). Across repeats
a target's capacity is the *lowest* of its repeats' (the rate it sustained every time), with the
range shown beside it. Where a rate met the bound above a rate that failed it (the target's p99
swings from step to step), ``passed_above_rps`` holds the highest such rate: the figure is unstable.
A target that passed at the rig's reach in every repeat is rig-bound: its
capacity is "at least" that rate and the ``capacity_rps`` column stays empty.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import RunData

FRONTIER_COLUMNS = ["target", "p99_bound_ms", "max_rps", "rig_bound", "repeats", "max_rps_low", "max_rps_high",
                    "p99_at_max_ms", "failing_rps", "resolved", "note", "passed_above_rps"]
PROBE_COLUMNS = ["target", "repeat", "rate", "p99_ms", "p50_ms", "error_rate", "dropped", "achieved_rps",
                 "requests", "clean", "problem"]


def _searches(run: RunData) -> list[tuple[str, int, dict]]:
    """(target, repeat, search record) of every capacity search; the rig's own is the baseline's (repeat 0)."""
    out = [(o.target, o.repeat, r.data) for o, r in run.step_records("capacity") if r.data.get("bounds")]
    rig = run.rig.frontier
    baseline = run.manifest.baseline or "direct"
    if rig and rig.get("bounds"):
        # The rig sustains what it sustains: never "at least", it is the reference the others are capped by.
        bounds = [{**b, "rig_bound": True} for b in rig["bounds"]]
        out.insert(0, (baseline, 0, {**rig, "bounds": bounds}))
    return out


def probes(run: RunData) -> pd.DataFrame:
    """Every probed rate of every search (for the frontier chart and for digging in)."""
    rows = []
    for target, repeat, data in _searches(run):
        for p in data.get("probes", []):
            rows.append({"target": target, "repeat": repeat,
                         **{k: p.get(k) for k in PROBE_COLUMNS if k not in ("target", "repeat")}})
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


def frontier(run: RunData) -> pd.DataFrame:
    """One row per target and bound: the frontier (``frontier.csv``). The baseline's row is the rig's."""
    per_bound: dict[tuple[str, float], list[dict]] = {}
    for target, _repeat, data in _searches(run):
        for b in data.get("bounds", []):
            per_bound.setdefault((target, float(b["bound_ms"])), []).append(b)
    rows = []
    for (target, bound), results in sorted(per_bound.items()):
        rig_bound = all(r["rig_bound"] for r in results)
        limited = [r for r in results if not r["rig_bound"]]
        values = [r["capacity_rps"] for r in limited if r["capacity_rps"] is not None]
        # The lowest repeat counts: a capacity is what the target sustained every time.
        if rig_bound:
            chosen = min(results, key=lambda r: r["capacity_rps"] if r["capacity_rps"] is not None else 0)
        elif len(values) == len(limited):
            chosen = min(limited, key=lambda r: r["capacity_rps"])
        else:
            chosen = next(r for r in limited if r["capacity_rps"] is None)
        all_values = [r["capacity_rps"] for r in results if r["capacity_rps"] is not None]
        notes = sorted({r["note"] for r in results if r.get("note")})
        above = [rate for r in results for rate in r.get("passed_above_rps") or []]
        rows.append({
            "target": target, "p99_bound_ms": bound,
            "max_rps": chosen["capacity_rps"], "rig_bound": rig_bound, "repeats": len(results),
            "max_rps_low": min(all_values) if all_values else np.nan,
            "max_rps_high": max(all_values) if all_values else np.nan,
            "p99_at_max_ms": chosen["p99_at_capacity_ms"], "failing_rps": chosen["failing_rps"],
            "resolved": all(r["resolved"] for r in results), "note": "; ".join(notes) or None,
            # The p99 met the bound again above a failing rate: the quoted figure is not a stable one.
            "passed_above_rps": max(above) if above else np.nan,
        })
    return pd.DataFrame(rows, columns=FRONTIER_COLUMNS)


def capacity_columns(front: pd.DataFrame, default_bound_ms: float | None) -> pd.DataFrame:
    """Per target, at the default bound: ``capacity_rps`` (empty when rig-bound) and ``capacity_rig_bound``."""
    if front.empty or default_bound_ms is None:
        return pd.DataFrame(columns=["target", "capacity_rps", "capacity_rig_bound", "capacity_at_least_rps",
                                     "capacity_bound_ms", "capacity_below_rps"])
    at = front[front["p99_bound_ms"] == float(default_bound_ms)]
    out = pd.DataFrame({
        "target": at["target"],
        # Never a capacity figure for a rig-bound target: only "at least".
        "capacity_rps": at["max_rps"].where(~at["rig_bound"].astype(bool)),
        "capacity_rig_bound": at["rig_bound"].astype(bool),
        "capacity_at_least_rps": at["max_rps"].where(at["rig_bound"].astype(bool)),
        "capacity_bound_ms": at["p99_bound_ms"],
        # Nothing met the bound: the capacity is below the lowest rate tried (the lowest that failed).
        "capacity_below_rps": at["failing_rps"].where(at["max_rps"].isna()),
    })
    return out.reset_index(drop=True)
