"""From k6's per-request samples (CSV output) to per-second series and latency histograms.

One pass over the raw file, block by block (:mod:`analysis.k6csv`), folded into per-second counts
and per-second histograms (:mod:`analysis.aggregate`): memory depends on the run's duration, not
on its request count. Written next to each other:

- ``timeseries.csv``: one row per second: requests, ok, errors, latency mean / p50 / p90 / p95 /
  p99 / max, time to first byte p50 / p95 (percentiles from that second's histogram, within
  ``QUANTILE_ERROR`` ~0.54 %; mean and max exact), active VUs (k6's ``vus`` gauge);
- ``histogram.csv``: the whole run's latency histogram (bucket, upper_ms, count);
- ``statuses.csv``: requests per HTTP status (0 = no response);
- ``histograms.parquet``: every second's latency and time-to-first-byte histograms, so percentiles
  over any window can be computed later without the raw file (:func:`window_quantiles`);
- ``raw-check.json``: the whole-run percentiles, counts, mean and maximum from the raw file against
  k6's own ``summary.json``; ``raw-truncated.txt`` if the file was cut short (the seconds before
  the cut are kept).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.aggregate import LATENCY_METRICS, SecondAggregate
from analysis.buckets import (
    BUCKET_WIDTH,
    HIST_BUCKETS_PER_OCTAVE,
    HIST_MIN_MS,
    QUANTILE_ERROR,
    grouped_quantiles,
    histogram_quantile,
)
from analysis.k6csv import BLOCK_BYTES, DURATION, K6CsvError, ReadStats, read_blocks

# The name the local runner and the cloud stage catch.
TimeseriesError = K6CsvError

# Bump when the derived files change meaning: `aigw-bench report` then derives them again.
# 3: timeseries.csv has the active VUs per second.
DERIVED_FORMAT = 3
SERIES_FILES = {"timeseries": "timeseries.csv", "histogram": "histogram.csv", "statuses": "statuses.csv",
                "second_histograms": "histograms.parquet", "raw_check": "raw-check.json"}
TRUNCATED_NOTE = "raw-truncated.txt"
# k6 summary stat -> quantile, for the check against the raw samples.
_SUMMARY_QUANTILES = {"med": 0.5, "p(50)": 0.5, "p(90)": 0.9, "p(95)": 0.95, "p(99)": 0.99, "p(99.9)": 0.999}
# k6 writes sample values with six decimals: the raw value of a sample is within this of k6's.
_CSV_ROUNDING_MS = 1e-6


@dataclass
class RawAggregate:
    """What one raw file (or several merged) reduced to, and how reading it went."""

    seconds: SecondAggregate
    stats: ReadStats


def aggregate_raw(path: Path, block_bytes: int = BLOCK_BYTES, threads: int | None = None) -> RawAggregate:
    """Read a k6 CSV file once, keeping per-second aggregates only."""
    stats = ReadStats()
    agg = SecondAggregate()
    for block in read_blocks(Path(path), stats, block_bytes, threads):
        agg.fold(block)
    if agg.seconds.base is None:
        detail = f" ({stats.truncated})" if stats.truncated else ""
        raise TimeseriesError(f"{path}: no samples of the metrics the analysis uses{detail}")
    return RawAggregate(agg, stats)


# ----------------------------------------------------------------------------- the check
def check_against_summary(agg: SecondAggregate, summary: dict[str, Any]) -> dict[str, Any]:
    """Whole-run figures from the raw samples next to k6's own, each with whether they agree.

    Counts must be equal; the maximum and mean equal up to k6's six-decimal CSV rounding; each
    percentile within ``QUANTILE_ERROR`` (the histogram's bucket error) of k6's."""
    metrics = summary.get("metrics", {}) if isinstance(summary, dict) else {}
    items: list[dict[str, Any]] = []

    def add(metric: str, stat: str, raw: float, k6: float, tolerance: float) -> None:
        diff = raw - k6
        items.append({"metric": metric, "stat": stat, "raw": raw, "k6": k6,
                      "diff_pct": diff / k6 * 100 if k6 else None, "agrees": bool(abs(diff) <= tolerance)})

    seconds = agg.seconds.arrays
    k6_reqs = metrics.get("http_reqs", {}).get("values", {})
    if "count" in k6_reqs:
        add("http_reqs", "count", int(seconds["requests"].sum()), int(k6_reqs["count"]), 0)
    for code, name in LATENCY_METRICS.items():
        values = metrics.get(name, {}).get("values", {})
        hist = agg.histogram(code)
        total = int(hist["count"].sum())
        if "count" in values:
            add(name, "count", total, int(values["count"]), 0)
        if total == 0:
            continue
        for stat, q in _SUMMARY_QUANTILES.items():
            if stat in values:
                k6 = float(values[stat])
                add(name, stat, histogram_quantile(hist, q), k6, QUANTILE_ERROR * abs(k6) + _CSV_ROUNDING_MS)
        if code == DURATION:
            if "max" in values:
                add(name, "max", float(seconds["duration_max"].max()), float(values["max"]), _CSV_ROUNDING_MS)
            if "avg" in values:
                mean = float(seconds["duration_sum_ns"].sum()) / 1e6 / total
                add(name, "avg", mean, float(values["avg"]), _CSV_ROUNDING_MS)
    return {"agrees": all(i["agrees"] for i in items) if items else None, "items": items}


def _check_record(agg: RawAggregate, summary_path: Path | None, check: dict[str, Any] | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "format": DERIVED_FORMAT,
        "bucket_width_pct": BUCKET_WIDTH * 100,
        "quantile_error_pct": QUANTILE_ERROR * 100,
        "rows_read": agg.stats.rows,
        "rows_used": agg.stats.rows_used,
        "malformed_rows": agg.stats.malformed_rows,
        "truncated": agg.stats.truncated,
        "summary": summary_path.name if summary_path else None,
    }
    if check is not None:
        record.update(check)
        return record
    if summary_path is None:
        record.update(agrees=None, items=[], note="no k6 summary to check against")
        return record
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        record.update(agrees=None, items=[], note=f"{summary_path.name} unreadable: {exc}")
        return record
    record.update(check_against_summary(agg.seconds, summary))
    return record


def check_summary_line(record: dict[str, Any]) -> dict[str, Any]:
    """The check in a few fields, for an outcome's evidence."""
    items = record.get("items", [])
    quantiles = [abs(i["diff_pct"]) for i in items if i["stat"] in _SUMMARY_QUANTILES and i["diff_pct"] is not None]
    return {"agrees": record.get("agrees"), "checked": len(items),
            "disagreeing": [f"{i['metric']} {i['stat']}: raw {i['raw']:.6g} vs k6 {i['k6']:.6g}"
                            for i in items if not i["agrees"]],
            "max_percentile_diff_pct": max(quantiles, default=None), "tolerance_pct": record.get("quantile_error_pct")}


# -------------------------------------------------------------------------------- files
def _second_histograms_table(agg: SecondAggregate) -> pa.Table:
    t0 = agg.seconds.base or 0
    frames = [agg.second_histograms(code).assign(metric=name) for code, name in LATENCY_METRICS.items()]
    frame = pd.concat(frames, ignore_index=True)
    frame = pd.DataFrame({"metric": frame["metric"].astype("category"), "t_s": frame["epoch_s"] - t0,
                          "epoch_s": frame["epoch_s"], "bucket": frame["bucket"].astype("int16"),
                          "count": frame["count"].astype("int64")})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.replace_schema_metadata({
        "buckets_per_octave": str(HIST_BUCKETS_PER_OCTAVE), "min_ms": str(HIST_MIN_MS),
        "bucket": "i covers [min_ms * 2^(i/B), min_ms * 2^((i+1)/B)) ms, B = buckets_per_octave",
    })


def write_series(agg: RawAggregate, out_dir: Path, summary: Path | None = None, *,
                 timeseries_name: str = SERIES_FILES["timeseries"],
                 check: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the derived files of an aggregate into ``out_dir``; returns the check record.

    The check compares with the k6 ``summary`` file, unless a ``check`` already made is given."""
    seconds = agg.seconds
    seconds.per_second().to_csv(out_dir / timeseries_name, index=False, float_format="%.4f")
    seconds.histogram(DURATION).to_csv(out_dir / SERIES_FILES["histogram"], index=False, float_format="%.6f")
    statuses = seconds.status_frame() if agg.stats.has_status else seconds.status_frame().iloc[0:0]
    statuses.to_csv(out_dir / SERIES_FILES["statuses"], index=False)
    pq.write_table(_second_histograms_table(seconds), out_dir / SERIES_FILES["second_histograms"], compression="zstd")
    truncated_note = out_dir / TRUNCATED_NOTE
    if agg.stats.truncated:
        truncated_note.write_text(agg.stats.truncated + "\n")
    else:
        truncated_note.unlink(missing_ok=True)
    record = _check_record(agg, summary, check)
    # Written last: its presence (and format) says the set above is complete.
    (out_dir / SERIES_FILES["raw_check"]).write_text(json.dumps(record, indent=1))
    return record


def write_timeseries(raw: Path, out_csv: Path, summary: Path | None = None) -> str | None:
    """Derive every series file of ``raw`` next to ``out_csv``; returns the truncation note, if any.

    The whole-run figures are checked against ``summary`` (default: the ``summary.json`` next to
    ``out_csv``, if there is one)."""
    if summary is None and out_csv.with_name("summary.json").exists():
        summary = out_csv.with_name("summary.json")
    agg = aggregate_raw(raw)
    write_series(agg, out_csv.parent, summary, timeseries_name=out_csv.name)
    return agg.stats.truncated


# ------------------------------------------------------------------------ reading back
def read_second_histograms(path: Path) -> pd.DataFrame:
    """``histograms.parquet``: metric, t_s, epoch_s, bucket, count (one row per non-empty cell)."""
    return pd.read_parquet(path)


def window_quantiles(histograms: pd.DataFrame, window_s: int, qs: list[float],
                     metric: str = "http_req_duration") -> pd.DataFrame:
    """Percentiles over consecutive windows of ``window_s`` seconds, from per-second histograms.

    One row per window with samples: ``t_s`` (the window's first second), ``samples`` and one
    column per quantile (``p50``, ``p99.9``, ...), each within ``QUANTILE_ERROR`` of the exact value."""
    rows = histograms[histograms["metric"] == metric]
    names = [f"p{q * 100:g}" for q in qs]
    if rows.empty:
        return pd.DataFrame(columns=["t_s", "samples", *names])
    window = rows["t_s"].to_numpy(dtype=np.int64) // window_s
    counts = rows["count"].to_numpy(dtype=np.int64)
    groups, values = grouped_quantiles(window, rows["bucket"].to_numpy(dtype=np.int64), counts, qs)
    samples = np.bincount(np.searchsorted(groups, window), weights=counts).astype(np.int64)
    out = pd.DataFrame({"t_s": groups * window_s, "samples": samples})
    for j, name in enumerate(names):
        out[name] = values[:, j]
    return out
