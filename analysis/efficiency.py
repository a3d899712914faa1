"""Efficiency: the gateway's CPU per request and its memory, at one fixed rate for every target.

CPU-ms per request is the CPU time the gateway's processes used while k6 ran (from /proc, every
process of its group, sampled at start and end) divided by the requests k6 sent. Memory is the
resident set of those processes: the highest sample before the load (idle), during it, and the last
sample after it stopped (does it give memory back?). A target that did not sustain the rate (more
than 0.1% errors, dropped iterations, or less than 95% of the rate delivered) is shown, marked, but
its figures describe a struggling process, not its cost at that rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import RunData
from schema.manifest import MAX_ERROR_RATE

MIN_DELIVERED = 0.95
COLUMNS = ["target", "rate", "repeats", "cpu_ms_per_request", "cpu_ms_per_request_low", "cpu_ms_per_request_high",
           "rss_idle_mib", "rss_load_mib", "rss_after_mib", "sustained", "mock_cpu_ms_per_request", "note"]


def _peak(items: list[dict], key: str) -> float:
    values = [d[key] for d in items if d.get(key) is not None]
    return max(values) if values else np.nan


def efficiency_table(run: RunData) -> pd.DataFrame:
    by_target: dict[str, list[dict]] = {}
    for outcome, record in run.step_records("efficiency"):
        if record.status == "ok":
            by_target.setdefault(outcome.target, []).append(record.data)
    rows = []
    for target, items in by_target.items():
        cpu = [d["cpu_ms_per_request"] for d in items if d.get("cpu_ms_per_request") is not None]
        mock = [d["mock_cpu_seconds"] * 1000 / d["requests"] for d in items
                if d.get("mock_cpu_seconds") is not None and d.get("requests")]
        problems = []
        for d in items:
            error = 1 - (d.get("ok_rate") or 0)
            if error > MAX_ERROR_RATE:
                problems.append(f"{error * 100:.2f}% errors")
            if d.get("dropped"):
                problems.append(f"{d['dropped']:.0f} iterations dropped")
            if (d.get("rps") or 0) < MIN_DELIVERED * d["rate"]:
                problems.append(f"delivered {d.get('rps') or 0:.1f} of {d['rate']:g} req/s")

        rows.append({
            "target": target, "rate": items[0]["rate"], "repeats": len(items),
            "cpu_ms_per_request": float(np.mean(cpu)) if cpu else np.nan,
            "cpu_ms_per_request_low": min(cpu) if cpu else np.nan,
            "cpu_ms_per_request_high": max(cpu) if cpu else np.nan,
            "rss_idle_mib": _peak(items, "rss_idle_mib"), "rss_load_mib": _peak(items, "rss_load_mib"),
            "rss_after_mib": _peak(items, "rss_after_mib"),
            "sustained": not problems,
            "mock_cpu_ms_per_request": float(np.mean(mock)) if mock else np.nan,
            "note": "; ".join(sorted(set(problems))) or None,
        })
    return pd.DataFrame(rows, columns=COLUMNS)
