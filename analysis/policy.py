"""The policies suite's results (docs/policies.md): per target and policy, what it costs over the same
target with no policy (added latency and its difference to `none` with a 95% interval, capacity change,
CPU-ms per request) and whether it worked under load (the `works` step's verdicts), or why it did not
run (a policy the edition does not have, with the evidence). Written as ``policy.csv`` and the
report's "Policy cost" section."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import RunData
from analysis.overhead import OverheadDataError, p50_replicates, step_pairs
from analysis.stats import SEED

BASE = "none"  # the policy every delta is taken against: the target in the proxy role
COLUMNS = ["target", "entry", "policy", "supported", "works", "added_p50_us", "added_p50_us_ci_low",
           "added_p50_us_ci_high", "delta_p50_us", "delta_p50_us_ci_low", "delta_p50_us_ci_high", "capacity_rps",
           "capacity_change_pct", "cpu_ms_per_request", "cpu_change_pct", "cache_hit_p50_us", "cache_miss_p50_us",
           "status", "summary", "evidence"]


def _record(run: RunData, target: str) -> dict[str, Any]:
    record = run.manifest.targets.get(target)
    return {**(record.model_extra or {})} if record is not None else {}


def _pairs(run: RunData) -> dict[str, list]:
    found: dict[str, list] = {}
    for outcome, record in run.step_records("overhead"):
        if record.status != "ok":
            continue
        try:
            found.setdefault(outcome.target, []).append(step_pairs(run, outcome, record))
        except OverheadDataError:
            continue
    return found


def _works(run: RunData, target: str) -> tuple[str, list[dict[str, Any]]]:
    """'yes' (every check passed), 'no', 'unknown' (a check could not tell), 'not checked' (no check: the
    baseline policy), or 'not measured' (no works step recorded), and the verdicts."""
    verdicts = [v for outcome, record in run.step_records("works") if outcome.target == target
                for v in (record.data.get("verdicts") or [])]
    if not verdicts:
        return "not measured", []
    results = [v.get("works") for v in verdicts]
    if any(r is False for r in results):
        return "no", verdicts
    return ("unknown" if any(r is None for r in results) else "yes"), verdicts


def _value(table: pd.DataFrame, target: str, column: str) -> float:
    if column not in table.columns:
        return math.nan
    rows = table.loc[table["target"] == target, column]
    return float(rows.iloc[0]) if len(rows) and pd.notna(rows.iloc[0]) else math.nan


def _change(value: float, base: float) -> float:
    return (value / base - 1.0) * 100.0 if base and not math.isnan(value) and not math.isnan(base) else math.nan


def _delta(mine: list, base: list, estimate: float) -> tuple[float, float]:
    """95% interval of (added p50 with the policy) - (added p50 without), from independent block bootstraps."""
    if not mine or not base or math.isnan(estimate):
        return math.nan, math.nan
    diff = p50_replicates(mine, SEED + 3) - p50_replicates(base, SEED + 4)
    low, high = np.percentile(diff, [2.5, 97.5])
    return float(low), float(high)


def policy_table(run: RunData, table: pd.DataFrame) -> pd.DataFrame:
    """One row per target that is a variant of the `policies` suite (empty for any other run)."""
    suite = run.manifest.suite
    if suite is None or (suite.model_extra or {}).get("variants") != "policies":
        return pd.DataFrame(columns=COLUMNS)
    pairs = _pairs(run)
    sessions = {o.target: o for o in run.sessions}
    rows = []
    for target in run.manifest.targets:
        record = _record(run, target)
        if record.get("variant_suite") != "policies":
            continue
        entry, policy = record["entry"], record["variant"]
        base = f"{entry}+{BASE}"
        unsupported = record.get("unsupported")
        outcome = sessions.get(target)
        status = str(outcome.status) if outcome is not None else "not_run"
        works, verdicts = ("not in this edition", []) if unsupported else _works(run, target)
        if policy == BASE and works == "not measured" and status == "ok":
            works = "not checked"
        if unsupported:
            evidence = unsupported
        elif verdicts:
            evidence = "; ".join(f"{v['kind']}: {v.get('why', '')}" for v in verdicts)
        else:
            evidence = (outcome.reason or "") if outcome is not None else ""
        added = _value(table, target, "added_p50_us")
        base_added = _value(table, base, "added_p50_us")
        delta = added - base_added if policy != BASE else (0.0 if not math.isnan(added) else math.nan)
        low, high = (0.0, 0.0) if policy == BASE and not math.isnan(added) else _delta(
            pairs.get(target, []), pairs.get(base, []), delta)
        cache = next((v for v in verdicts if v.get("kind") == "cache"), {})
        capacity, cpu = _value(table, target, "capacity_rps"), _value(table, target, "cpu_ms_per_request")
        rows.append({
            "target": target, "entry": entry, "policy": policy, "supported": unsupported is None, "works": works,
            "added_p50_us": added, "added_p50_us_ci_low": _value(table, target, "added_p50_us_ci_low"),
            "added_p50_us_ci_high": _value(table, target, "added_p50_us_ci_high"),
            "delta_p50_us": delta, "delta_p50_us_ci_low": low, "delta_p50_us_ci_high": high,
            "capacity_rps": capacity, "capacity_change_pct": _change(capacity, _value(table, base, "capacity_rps")),
            "cpu_ms_per_request": cpu, "cpu_change_pct": _change(cpu, _value(table, base, "cpu_ms_per_request")),
            "cache_hit_p50_us": (cache["hit_p50_ms"] * 1000.0) if cache.get("hit_p50_ms") is not None else math.nan,
            "cache_miss_p50_us": (cache["miss_p50_ms"] * 1000.0) if cache.get("miss_p50_ms") is not None
            else math.nan,
            "status": status, "summary": record.get("summary", ""), "evidence": evidence,
        })
    return pd.DataFrame(rows, columns=COLUMNS)
