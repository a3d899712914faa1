"""Log-spaced latency buckets: the mergeable histogram behind every latency percentile.

Bucket ``i`` covers ``[MIN * 2^(i/B), MIN * 2^((i+1)/B))`` ms with ``B = 64`` buckets per power of
two (each ~1.09 % wide), from 1 µs to ~73 min. Histograms of repeats, load generators or seconds
merge by adding counts. A quantile is estimated the way k6 computes its own (linear interpolation
between the two order statistics around rank ``q * (n - 1)``), with each order statistic replaced
by the geometric midpoint of its bucket, so for latencies of 1 µs and more the estimate is within
:data:`QUANTILE_ERROR` (relative) of the exact sample quantile.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HIST_BUCKETS_PER_OCTAVE = 64
HIST_MIN_MS = 0.001
HIST_MAX_INDEX = HIST_BUCKETS_PER_OCTAVE * 32
# Relative width of one bucket, and the largest relative error of a quantile estimate (half of it).
BUCKET_WIDTH = 2.0 ** (1.0 / HIST_BUCKETS_PER_OCTAVE) - 1.0
QUANTILE_ERROR = 2.0 ** (0.5 / HIST_BUCKETS_PER_OCTAVE) - 1.0


def bucket_index(values_ms: np.ndarray) -> np.ndarray:
    """Histogram bucket of each latency (ms); values outside the range go to the first/last bucket."""
    clipped = np.clip(np.asarray(values_ms, dtype=np.float64), HIST_MIN_MS, None)
    idx = np.floor(np.log2(clipped / HIST_MIN_MS) * HIST_BUCKETS_PER_OCTAVE).astype(np.int64)
    return np.clip(idx, 0, HIST_MAX_INDEX)


def bucket_upper_ms(index: np.ndarray | pd.Series) -> np.ndarray:
    return HIST_MIN_MS * np.power(2.0, (np.asarray(index) + 1) / HIST_BUCKETS_PER_OCTAVE)


def bucket_mid_ms(index: np.ndarray | pd.Series) -> np.ndarray:
    """Geometric midpoint of a bucket: within QUANTILE_ERROR of any value in it."""
    return HIST_MIN_MS * np.power(2.0, (np.asarray(index) + 0.5) / HIST_BUCKETS_PER_OCTAVE)


def grouped_quantiles(group: np.ndarray, bucket: np.ndarray, count: np.ndarray,
                      qs: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles of many histograms at once (one per group, e.g. per second).

    ``group``, ``bucket``, ``count`` are parallel arrays with positive counts. Returns the sorted
    distinct groups and a ``(groups, len(qs))`` array of estimates."""
    order = np.lexsort((bucket, group))
    group, bucket, count = group[order], bucket[order], np.asarray(count, dtype=np.int64)[order]
    groups, first = np.unique(group, return_index=True)
    cumulative = np.cumsum(count)
    before = np.concatenate(([0], cumulative))[first]  # samples in earlier groups
    totals = np.diff(np.concatenate((before, [cumulative[-1] if cumulative.size else 0])))
    mids = bucket_mid_ms(bucket)
    out = np.empty((groups.size, len(qs)))
    for j, q in enumerate(qs):
        rank = q * (totals - 1)
        low, high = np.floor(rank), np.ceil(rank)
        # The k-th smallest sample (0-based) of a group sits in the first row whose cumulative count exceeds it.
        at_low = np.searchsorted(cumulative, before + low, side="right")
        at_high = np.searchsorted(cumulative, before + high, side="right")
        out[:, j] = mids[at_low] + (mids[at_high] - mids[at_low]) * (rank - low)
    return groups, out


def histogram_quantile(hist: pd.DataFrame, q: float) -> float:
    """A quantile from (merged) bucket counts (columns ``bucket``, ``count``); NaN if empty."""
    hist = hist[hist["count"] > 0] if not hist.empty else hist
    if hist.empty:
        return float("nan")
    bucket = hist["bucket"].to_numpy(dtype=np.int64)
    _, values = grouped_quantiles(np.zeros(bucket.size, dtype=np.int64), bucket, hist["count"].to_numpy(), [q])
    return float(values[0, 0])


def histogram_frame(bucket: np.ndarray, count: np.ndarray) -> pd.DataFrame:
    """``histogram.csv``'s shape: bucket, its upper edge (ms) and count, buckets ascending, no empty ones."""
    keep = count > 0
    bucket, count = bucket[keep], count[keep]
    order = np.argsort(bucket, kind="stable")
    bucket, count = bucket[order], count[order]
    return pd.DataFrame({"bucket": bucket.astype(np.int64), "upper_ms": bucket_upper_ms(bucket),
                         "count": count.astype(np.int64)})


def latency_histogram(values_ms: np.ndarray) -> pd.DataFrame:
    """The histogram of a set of latencies (ms)."""
    values_ms = np.asarray(values_ms, dtype=np.float64)
    if values_ms.size == 0:
        return pd.DataFrame({"bucket": pd.Series(dtype="int64"), "upper_ms": pd.Series(dtype="float64"),
                             "count": pd.Series(dtype="int64")})
    idx, counts = np.unique(bucket_index(values_ms), return_counts=True)
    return histogram_frame(idx, counts)
