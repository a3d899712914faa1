"""A ramp's stages (ramping-vus scenarios): throughput and latency per stage, and where scaling stops.

Each second of a target's per-second series belongs to the stage k6 was in at its middle. The clock
starts a second before k6's first ``vus`` sample (k6 samples the active VUs once a second from the
start of the run), so seconds line up with the scenario's schedule whatever the first request's
latency. Seconds after the schedule (VUs finishing during the graceful ramp-down) count with the last
stage. Per stage, over every repeat: requests per second, the active VUs' mean, and latency
percentiles from the merged per-second histograms (each within the histogram's ±0.54%).

**Where a target stops scaling.** In a closed loop every VU waits for its answer, then ``think``
seconds, then asks again, so each VU's throughput is 1 / (R + think) with R the mean response time
(Little's law). A stage's scaling efficiency is that per-VU throughput relative to the best earlier
stage: (R_best + think) / (R + think), computed from mean latencies because requests completed in a
rising stage were started by the fewer VUs of a moment before (the measured RPS per VU of a ramp
lags). Throughput stops scaling in the first stage whose efficiency falls below ``SCALING_FLOOR``:
its VUs each deliver less than that share of what the VUs before them did, so adding VUs adds
queueing, not requests. Stages that lower the VU target are not judged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.buckets import grouped_quantiles
from analysis.load import RunData
from analysis.timeseries import read_second_histograms
from schema.results import target_dir

# Below this share of the best earlier stage's per-VU throughput, a stage has stopped scaling.
SCALING_FLOOR = 0.9
STAGE_QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
STAGE_COLUMNS = ["target", "stage", "label", "start_s", "end_s", "vus_from", "vus_to", "vus_mean", "seconds",
                 "requests", "errors", "rps", "rps_per_vu", "latency_mean_ms", *STAGE_QUANTILES, "ttfb_p95_ms",
                 "ramps_down", "efficiency", "repeats"]
SCALING_COLUMNS = ["target", "peak_rps", "peak_stage", "peak_vus_mean", "knee_stage", "knee_efficiency",
                   "knee_latency_mean_ms", "best_latency_mean_ms", "best_stage", "last_judged_stage", "think_time_s"]


def schedule(params: dict[str, Any]) -> pd.DataFrame:
    """The stages of a ramping-vus run's parameters: stage (1-based), label, start_s, end_s, vus_from, vus_to."""
    rows, start, vus = [], 0.0, int(params.get("vus") or 0)
    for i, st in enumerate(params.get("stages") or [], start=1):
        duration, target = float(st["duration"]), int(st["target"])
        verb = "hold at" if target == vus else "to"
        rows.append({"stage": i, "label": f"{duration:g} s {verb} {target} VUs", "start_s": start,
                     "end_s": start + duration, "vus_from": vus, "vus_to": target})
        start, vus = start + duration, target
    return pd.DataFrame(rows, columns=["stage", "label", "start_s", "end_s", "vus_from", "vus_to"])


def assign_stages(series: pd.DataFrame, stages: pd.DataFrame) -> pd.Series:
    """The stage of each per-second row (``t_s``, ``vus``), by the time at the middle of its second."""
    first_vus = series.loc[series["vus"].notna(), "t_s"] if "vus" in series else pd.Series(dtype=float)
    anchor = float(first_vus.min()) - 1.0 if not first_vus.empty else float(series["t_s"].min())
    middle = series["t_s"].to_numpy(dtype=float) - anchor + 0.5
    index = np.searchsorted(stages["end_s"].to_numpy(), middle, side="right")
    return pd.Series(stages["stage"].to_numpy()[np.clip(index, 0, len(stages) - 1)], index=series.index)


def _histograms(run: RunData, target: str, repeat: int) -> pd.DataFrame | None:
    outcome = next((o for o in run.sessions if o.target == target and o.repeat == repeat), None)
    name = outcome.files.get("second_histograms") if outcome else None
    if not name:
        return None
    path: Path = target_dir(run.run_dir, target, repeat) / name
    try:
        return read_second_histograms(path)
    except (OSError, ValueError):
        return None


def _quantiles(hist: pd.DataFrame, stage_of_second: dict[int, int], metric: str,
               qs: list[float]) -> dict[int, np.ndarray]:
    rows = hist[(hist["metric"] == metric) & hist["t_s"].isin(stage_of_second.keys())]
    if rows.empty:
        return {}
    group = rows["t_s"].map(stage_of_second).to_numpy(dtype=np.int64)
    groups, values = grouped_quantiles(group, rows["bucket"].to_numpy(dtype=np.int64),
                                       rows["count"].to_numpy(dtype=np.int64), qs)
    return {int(g): values[i] for i, g in enumerate(groups)}


def stage_table(run: RunData) -> pd.DataFrame:
    """One row per target and stage (repeats merged); empty unless the run is a ramping-vus scenario."""
    scenario = run.manifest.scenario
    params = scenario.params
    if scenario.executor != "ramping-vus" or not params.get("stages") or run.timeseries.empty:
        return pd.DataFrame(columns=STAGE_COLUMNS)
    stages = schedule(params)
    parts, hist_parts = [], []
    for (target, repeat), series in run.timeseries.groupby(["target", "repeat"], sort=True):
        series = series.sort_values("t_s").copy()
        if "vus" not in series:
            series["vus"] = np.nan
        series["stage"] = assign_stages(series, stages)
        series["vus_filled"] = series["vus"].ffill().bfill()
        parts.append(series)
        hist = _histograms(run, str(target), int(repeat))
        if hist is not None:
            of = dict(zip(series["t_s"].astype(int), series["stage"].astype(int), strict=True))
            hist_parts.append((str(target), hist, of))
    frame = pd.concat(parts, ignore_index=True)
    frame["latency_sum_ms"] = frame["latency_mean_ms"].fillna(0) * frame["requests"]
    grouped = frame.groupby(["target", "stage"]).agg(
        seconds=("t_s", "size"), requests=("requests", "sum"), errors=("errors", "sum"),
        vus_mean=("vus_filled", "mean"), latency_sum_ms=("latency_sum_ms", "sum"),
        repeats=("repeat", "nunique")).reset_index()
    grouped["rps"] = grouped["requests"] / grouped["seconds"]
    grouped["rps_per_vu"] = grouped["rps"] / grouped["vus_mean"].where(grouped["vus_mean"] > 0)
    grouped["latency_mean_ms"] = grouped["latency_sum_ms"] / grouped["requests"].where(grouped["requests"] > 0)
    quantiles = _stage_quantiles(hist_parts)
    out = grouped.merge(stages, on="stage", how="left").merge(quantiles, on=["target", "stage"], how="left")
    out["ramps_down"] = out["vus_to"] < out["vus_from"]
    out["efficiency"] = _efficiencies(out, float(params.get("think_time") or 0.0))
    for col in STAGE_COLUMNS:
        if col not in out:
            out[col] = np.nan
    return out[STAGE_COLUMNS].sort_values(["target", "stage"]).reset_index(drop=True)


def _stage_quantiles(hist_parts: list[tuple[str, pd.DataFrame, dict[int, int]]]) -> pd.DataFrame:
    """Latency and time-to-first-byte percentiles per target and stage from the merged per-second histograms."""
    rows = []
    by_target: dict[str, list[tuple[pd.DataFrame, dict[int, int]]]] = {}
    for target, hist, of in hist_parts:
        by_target.setdefault(target, []).append((hist, of))
    for target, items in by_target.items():
        # Repeats merge by adding counts; their seconds are told apart by a repeat offset.
        merged, mapping = [], {}
        for n, (hist, of) in enumerate(items):
            offset = n * 1_000_000
            merged.append(hist.assign(t_s=hist["t_s"] + offset))
            mapping.update({t + offset: s for t, s in of.items()})
        hist = pd.concat(merged, ignore_index=True)
        latency = _quantiles(hist, mapping, "http_req_duration", list(STAGE_QUANTILES.values()))
        ttfb = _quantiles(hist, mapping, "http_req_waiting", [0.95])
        for stage, values in latency.items():
            row = {"target": target, "stage": stage, **dict(zip(STAGE_QUANTILES, values, strict=True))}
            if stage in ttfb:
                row["ttfb_p95_ms"] = float(ttfb[stage][0])
            rows.append(row)
    return pd.DataFrame(rows, columns=["target", "stage", *STAGE_QUANTILES, "ttfb_p95_ms"])


def _efficiencies(stages: pd.DataFrame, think_s: float) -> pd.Series:
    """Per target, each rising or holding stage's per-VU throughput relative to the best earlier stage's."""
    out = pd.Series(np.nan, index=stages.index)
    for _, frame in stages.groupby("target"):
        best = None
        for i, r in frame.sort_values("stage").iterrows():
            if r["ramps_down"] or pd.isna(r["latency_mean_ms"]):
                continue
            cycle = r["latency_mean_ms"] / 1000.0 + think_s
            if best is not None:
                out[i] = best / cycle
            best = cycle if best is None else min(best, cycle)
    return out


def scaling_table(stages: pd.DataFrame, think_s: float) -> pd.DataFrame:
    """Per target: the peak throughput and its stage, and the first stage that stopped scaling (if any)."""
    rows = []
    for target, frame in stages.groupby("target", sort=True):
        frame = frame.sort_values("stage")
        judged = frame[~frame["ramps_down"] & frame["latency_mean_ms"].notna()]
        peak = frame.loc[frame["rps"].idxmax()] if frame["rps"].notna().any() else None
        knee = judged[judged["efficiency"] < SCALING_FLOOR].head(1)
        before = judged[judged["stage"] < (int(knee["stage"].iloc[0]) if not knee.empty else 10**9)]
        best = before.loc[before["latency_mean_ms"].idxmin()] if not before.empty else None
        rows.append({
            "target": target,
            "peak_rps": peak["rps"] if peak is not None else np.nan,
            "peak_stage": int(peak["stage"]) if peak is not None else np.nan,
            "peak_vus_mean": peak["vus_mean"] if peak is not None else np.nan,
            "knee_stage": int(knee["stage"].iloc[0]) if not knee.empty else np.nan,
            "knee_efficiency": float(knee["efficiency"].iloc[0]) if not knee.empty else np.nan,
            "knee_latency_mean_ms": float(knee["latency_mean_ms"].iloc[0]) if not knee.empty else np.nan,
            "best_latency_mean_ms": float(best["latency_mean_ms"]) if best is not None else np.nan,
            "best_stage": int(best["stage"]) if best is not None else np.nan,
            "last_judged_stage": int(judged["stage"].max()) if not judged.empty else np.nan,
            "think_time_s": think_s,
        })
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)
