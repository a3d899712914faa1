"""The closed-loop frontier: per target and p99 bound, the most requests per second a closed loop at some
concurrency level got with its p99 under the bound (the concurrency step, aigw_bench/measure/steps.py).

It is what concurrency-climb harnesses publish, kept so that their figures can be set beside ours. It
reads higher than the open-model capacity (:mod:`analysis.capacity`) for the same target and bound: a
closed loop's client waits for its answer before sending the next request, so when the target slows
down the load slows down with it, and the queue an arriving request would meet is never measured
(coordinated omission). The open model's arrivals do not wait; its frontier is the one to plan with.
Across repeats the lowest repeat counts, with the range beside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import RunData

COLUMNS = ["target", "p99_bound_ms", "max_rps", "vus", "p99_ms", "rig_bound", "repeats", "max_rps_low",
           "max_rps_high"]
LEVEL_COLUMNS = ["target", "repeat", "vus", "rps", "p50_ms", "p99_ms", "error_rate", "requests", "disturbed"]


def levels(run: RunData) -> pd.DataFrame:
    """Every concurrency level of every session (for the chart and for digging in)."""
    rows = [{"target": o.target, "repeat": o.repeat, **{k: lv.get(k) for k in LEVEL_COLUMNS[2:]}}
            for o, r in run.step_records("concurrency") for lv in r.data.get("levels", [])]
    return pd.DataFrame(rows, columns=LEVEL_COLUMNS)


def closed_frontier(run: RunData) -> pd.DataFrame:
    per_bound: dict[tuple[str, float], list[dict]] = {}
    for o, r in run.step_records("concurrency"):
        for b in r.data.get("bounds", []):
            per_bound.setdefault((o.target, float(b["bound_ms"])), []).append(b)
    rows = []
    for (target, bound), results in sorted(per_bound.items()):
        values = [b["max_rps"] for b in results if b["max_rps"] is not None]
        chosen = (min((b for b in results if b["max_rps"] is not None), key=lambda b: b["max_rps"])
                  if len(values) == len(results) else next(b for b in results if b["max_rps"] is None))
        rows.append({"target": target, "p99_bound_ms": bound, "max_rps": chosen["max_rps"], "vus": chosen["vus"],
                     "p99_ms": chosen["p99_ms"], "rig_bound": all(b["rig_bound"] for b in results),
                     "repeats": len(results), "max_rps_low": min(values) if values else np.nan,
                     "max_rps_high": max(values) if values else np.nan})
    return pd.DataFrame(rows, columns=COLUMNS)


def closed_columns(front: pd.DataFrame, default_bound_ms: float | None) -> pd.DataFrame:
    """Per target at the default bound: ``closed_capacity_rps`` (empty when rig-bound) and ``closed_vus``."""
    if front.empty or default_bound_ms is None:
        return pd.DataFrame(columns=["target", "closed_capacity_rps", "closed_vus"])
    at = front[front["p99_bound_ms"] == float(default_bound_ms)]
    return pd.DataFrame({"target": at["target"],
                         "closed_capacity_rps": at["max_rps"].where(~at["rig_bound"].astype(bool)),
                         "closed_vus": at["vus"]}).reset_index(drop=True)
