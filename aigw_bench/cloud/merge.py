"""Results of several load generators (k6 execution segments) merged into one.

Counts and rates add up; error rates are weighted by requests; latency percentiles come from the
union of the generators' per-request samples, through mergeable log-bucket histograms (within
~0.54%), never from averaging each generator's percentiles. Each generator's raw file is reduced to
per-second aggregates in its own process (:func:`analysis.derive.aggregate_files`) and checked
against that generator's own k6 summary; the aggregates are then added. The merged ``summary.json``
has k6's shape plus an ``aigw_bench_merged`` note saying how it was made.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.aggregate import SecondAggregate
from analysis.buckets import histogram_quantile
from analysis.derive import aggregate_files
from analysis.k6csv import DURATION, WAITING, ReadStats
from analysis.timeseries import SERIES_FILES, RawAggregate, check_against_summary, write_series

_PERCENTILES = {"p(50)": 0.5, "med": 0.5, "p(90)": 0.9, "p(95)": 0.95, "p(99)": 0.99, "p(99.9)": 0.999}


def _weighted(values: list[tuple[float, float]]) -> float | None:
    total = sum(w for _, w in values)
    return sum(v * w for v, w in values) / total if total else None


def _trend(summaries: list[dict], name: str, hist: pd.DataFrame) -> dict[str, Any] | None:
    parts = [s["metrics"][name]["values"] for s in summaries if name in s.get("metrics", {})]
    if not parts:
        return None
    counts = [p.get("count", 0) for p in parts]
    values: dict[str, Any] = {
        "avg": _weighted([(p["avg"], c) for p, c in zip(parts, counts, strict=True)]),
        "min": min(p["min"] for p in parts),
        "max": max(p["max"] for p in parts),
        "count": sum(counts),
    }
    for stat, q in _PERCENTILES.items():
        values[stat] = histogram_quantile(hist, q) if not hist.empty else None
    return {"type": "trend", "contains": "time", "values": values}


def merge_summaries(summaries: list[dict], duration_hist: pd.DataFrame, waiting_hist: pd.DataFrame) -> dict:
    """One k6-shaped summary from several generators' summaries and their merged histograms."""
    metrics: dict[str, Any] = {}
    reqs = [s["metrics"]["http_reqs"]["values"] for s in summaries]
    metrics["http_reqs"] = {"type": "counter", "contains": "default",
                            "values": {"count": sum(r["count"] for r in reqs), "rate": sum(r["rate"] for r in reqs)}}
    counts = [r["count"] for r in reqs]
    for name in ("aigw_ok", "http_req_failed"):
        rates = [(s["metrics"][name]["values"]["rate"], c) for s, c in zip(summaries, counts, strict=True)
                 if name in s["metrics"]]
        if rates:
            metrics[name] = {"type": "rate", "contains": "default", "values": {"rate": _weighted(rates)}}
    for name, hist in (("http_req_duration", duration_hist), ("http_req_waiting", waiting_hist)):
        trend = _trend(summaries, name, hist)
        if trend:
            metrics[name] = trend
    for name in ("dropped_iterations", "data_received", "data_sent", "aigw_response_bytes"):
        parts = [s["metrics"][name]["values"]["count"] for s in summaries if name in s["metrics"]]
        if parts:
            metrics[name] = {"type": "counter", "contains": "default", "values": {"count": sum(parts)}}
    duration_ms = max(s.get("state", {}).get("testRunDurationMs", 0) for s in summaries)
    return {
        "metrics": metrics,
        "state": {"testRunDurationMs": duration_ms},
        "aigw_bench_merged": {
            "generators": len(summaries),
            "method": "counts and rates summed; error rates weighted by requests; latency percentiles from the "
                      "merged per-request histograms of all generators (log buckets, ~1.1% wide)",
        },
    }


def start_skew(gen_dirs: list[Path]) -> dict[str, Any]:
    """When each generator started k6 (its ``start.txt``, epoch seconds to the millisecond) and the spread:
    the runners meet before the measurement (aigw_bench/cloud/templates/k6.sh.j2), this says how closely."""
    starts = {}
    for d in gen_dirs:
        path = d / "start.txt"
        text = path.read_text().strip() if path.exists() else ""
        if text.replace(".", "", 1).isdigit():
            starts[d.name] = float(text)
    if len(starts) < 2:
        return {}
    return {"generator_starts": starts, "start_skew_s": round(max(starts.values()) - min(starts.values()), 3)}


def merge_generators(gen_dirs: list[Path], out_dir: Path) -> dict[str, str]:
    """Merge ``gen*/summary.json`` + ``gen*/raw.csv.gz`` into ``out_dir``; returns the files written."""
    summaries = [json.loads((d / "summary.json").read_text()) for d in gen_dirs]
    parts = aggregate_files([d / "raw.csv.gz" for d in gen_dirs])
    merged = SecondAggregate()
    for part in parts:
        merged.merge(part.seconds)
    duration_hist, waiting_hist = merged.histogram(DURATION), merged.histogram(WAITING)
    summary = merge_summaries(summaries, duration_hist, waiting_hist)
    truncated = [f"{d.name}: {p.stats.truncated}" for d, p in zip(gen_dirs, parts, strict=True) if p.stats.truncated]
    if truncated:
        summary["aigw_bench_merged"]["truncated_raw"] = truncated
    summary["aigw_bench_merged"].update(start_skew(gen_dirs))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    stats = ReadStats(rows=sum(p.stats.rows for p in parts), rows_used=sum(p.stats.rows_used for p in parts),
                      malformed_rows=sum(p.stats.malformed_rows for p in parts),
                      has_status=all(p.stats.has_status for p in parts), truncated="; ".join(truncated) or None)
    # The merged percentiles come from these very histograms: what can be checked is each generator
    # against its own k6 summary.
    checks = {d.name: check_against_summary(p.seconds, s) for d, p, s in zip(gen_dirs, parts, summaries, strict=True)}
    write_series(RawAggregate(merged, stats), out_dir, check={
        "summary": "per generator: gen*/summary.json",
        "agrees": all(c["agrees"] is not False for c in checks.values()),
        "items": [{**i, "metric": f"{name} {i['metric']}"} for name, c in checks.items() for i in c["items"]],
    })
    return {"summary": "summary.json", **SERIES_FILES}
