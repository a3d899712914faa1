"""From k6's per-request samples (CSV output) to a per-second series and a latency histogram.

k6 writes one row per metric sample: ``metric_name,timestamp,metric_value,...``. Only four metrics
matter here: ``http_reqs`` (one per request), ``http_req_duration`` (full response time),
``http_req_waiting`` (time to first byte) and ``aigw_ok`` (1 if the response was a well-formed
completion). A file cut short (k6 killed, disk full) still yields the seconds before the cut; the
result says it was truncated.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

_METRICS = ("http_reqs", "http_req_duration", "http_req_waiting", "aigw_ok")
_CHUNK_ROWS = 1_000_000

# Log-spaced latency buckets, 64 per power of two (~1.1 % wide), from 1 µs to ~73 min: fine enough
# for p99.9, mergeable across repeats and load generators by adding counts.
HIST_BUCKETS_PER_OCTAVE = 64
HIST_MIN_MS = 0.001
HIST_MAX_INDEX = HIST_BUCKETS_PER_OCTAVE * 32


class TimeseriesError(Exception):
    """The raw file is missing or unreadable from its first byte."""


@dataclass(frozen=True)
class RawSamples:
    frame: pd.DataFrame  # columns: metric (category), t_ms (int64), value (float64)
    statuses: pd.DataFrame  # columns: status, requests (HTTP status mix; 0 = no response)
    rows_read: int
    truncated: str | None  # why reading stopped early, if it did


def read_raw(path: Path) -> RawSamples:
    """Read the metric samples this analysis uses, keeping what precedes a truncation."""
    if not path.exists():
        raise TimeseriesError(f"{path}: missing")
    frames: list[pd.DataFrame] = []
    statuses: list[pd.Series] = []
    rows = 0
    truncated = None
    try:
        reader = pd.read_csv(
            path,
            usecols=["metric_name", "timestamp", "metric_value", "status"],
            dtype={"metric_name": "string", "timestamp": "int64", "metric_value": "float64", "status": "Int64"},
            chunksize=_CHUNK_ROWS,
            compression="gzip" if path.suffix == ".gz" else None,
        )
        for chunk in reader:
            rows += len(chunk)
            frames.append(chunk.loc[chunk["metric_name"].isin(_METRICS), ["metric_name", "timestamp", "metric_value"]])
            reqs = chunk.loc[chunk["metric_name"] == "http_reqs", "status"].fillna(0)
            statuses.append(reqs.value_counts())
    except (EOFError, zlib.error, gzip.BadGzipFile, pd.errors.ParserError, ValueError) as exc:
        if not frames:
            raise TimeseriesError(f"{path}: unreadable ({exc})") from None
        truncated = f"reading stopped after {rows} rows: {exc}"
    except pd.errors.EmptyDataError:
        raise TimeseriesError(f"{path}: empty") from None
    if not frames:
        raise TimeseriesError(f"{path}: no samples")
    df = pd.concat(frames, ignore_index=True)
    df = df.rename(columns={"metric_name": "metric", "timestamp": "t_ms", "metric_value": "value"})
    df["metric"] = df["metric"].astype("category")
    mix = pd.concat(statuses).groupby(level=0).sum() if statuses else pd.Series(dtype="int64")
    status_frame = pd.DataFrame({"status": mix.index.astype("int64"), "requests": mix.to_numpy(dtype="int64")})
    return RawSamples(df, status_frame.sort_values("status", ignore_index=True), rows, truncated)


def per_second(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per wall-clock second: requests, successes, latency percentiles (ms)."""
    if samples.empty:
        return pd.DataFrame()
    t0 = int(samples["t_ms"].min()) // 1000
    second = samples["t_ms"] // 1000 - t0
    samples = samples.assign(second=second)
    by = samples.groupby(["metric", "second"], observed=True)["value"]
    counts = by.size().unstack("metric", fill_value=0)
    sums = by.sum().unstack("metric", fill_value=0)
    out = pd.DataFrame(index=pd.RangeIndex(int(second.max()) + 1, name="t_s"))
    out["epoch_s"] = out.index + t0
    out["requests"] = counts.get("http_reqs", pd.Series(dtype="int64")).reindex(out.index, fill_value=0)
    ok = sums.get("aigw_ok", pd.Series(dtype="float64")).reindex(out.index, fill_value=0)
    out["ok"] = ok.astype("int64")
    out["errors"] = out["requests"] - out["ok"]
    dur = samples[samples["metric"] == "http_req_duration"].groupby("second")["value"]
    quantiles = dur.quantile([0.5, 0.9, 0.95, 0.99]).unstack()
    out["latency_mean_ms"] = dur.mean().reindex(out.index)
    for q, name in ((0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99")):
        out[f"latency_{name}_ms"] = quantiles[q].reindex(out.index) if q in quantiles else np.nan
    out["latency_max_ms"] = dur.max().reindex(out.index)
    ttfb = samples[samples["metric"] == "http_req_waiting"].groupby("second")["value"]
    out["ttfb_p50_ms"] = ttfb.quantile(0.5).reindex(out.index)
    out["ttfb_p95_ms"] = ttfb.quantile(0.95).reindex(out.index)
    return out.reset_index()


def bucket_index(values_ms: np.ndarray) -> np.ndarray:
    """Histogram bucket of each latency (ms); bucket i covers [MIN*2^(i/B), MIN*2^((i+1)/B))."""
    clipped = np.clip(values_ms, HIST_MIN_MS, None)
    idx = np.floor(np.log2(clipped / HIST_MIN_MS) * HIST_BUCKETS_PER_OCTAVE).astype(np.int64)
    return np.clip(idx, 0, HIST_MAX_INDEX)


def bucket_upper_ms(index: np.ndarray | pd.Series) -> np.ndarray:
    return HIST_MIN_MS * np.power(2.0, (np.asarray(index) + 1) / HIST_BUCKETS_PER_OCTAVE)


def latency_histogram(samples: pd.DataFrame, metric: str = "http_req_duration") -> pd.DataFrame:
    values = samples.loc[samples["metric"] == metric, "value"].to_numpy()
    if values.size == 0:
        return pd.DataFrame(columns=["bucket", "upper_ms", "count"])
    idx, counts = np.unique(bucket_index(values), return_counts=True)
    return pd.DataFrame({"bucket": idx, "upper_ms": bucket_upper_ms(idx), "count": counts})


def histogram_quantile(hist: pd.DataFrame, q: float) -> float:
    """A quantile from (merged) bucket counts: the upper edge of the bucket holding it."""
    if hist.empty:
        return float("nan")
    ordered = hist.groupby("bucket", as_index=False)["count"].sum().sort_values("bucket")
    cumulative = ordered["count"].cumsum().to_numpy()
    rank = q * cumulative[-1]
    pos = int(np.searchsorted(cumulative, rank, side="left"))
    return float(bucket_upper_ms(ordered["bucket"].to_numpy()[min(pos, len(ordered) - 1)]))


def write_timeseries(raw: Path, out_csv: Path) -> str | None:
    """Write ``timeseries.csv``, ``histogram.csv`` and ``statuses.csv`` next to each other.

    Returns the truncation note, if the raw file was cut short."""
    samples = read_raw(raw)
    per_second(samples.frame).to_csv(out_csv, index=False, float_format="%.4f")
    latency_histogram(samples.frame).to_csv(out_csv.with_name("histogram.csv"), index=False, float_format="%.6f")
    samples.statuses.to_csv(out_csv.with_name("statuses.csv"), index=False)
    if samples.truncated:
        out_csv.with_name("raw-truncated.txt").write_text(samples.truncated + "\n")
    return samples.truncated
