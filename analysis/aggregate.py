"""Per-second aggregates of k6 samples: counts, sums, maxima and mergeable latency histograms.

A :class:`SecondAggregate` folds blocks of samples in (nothing per request is kept) and merges with
the aggregate of another file of the same run (another load generator) by adding. Everything it holds is an
integer or a maximum, so the result does not depend on how a file was cut into blocks, nor on the
order files are merged in: latencies are summed as integer nanoseconds (k6 writes them with six
decimals of a millisecond, so nothing is rounded).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.buckets import HIST_MAX_INDEX, bucket_index, grouped_quantiles, histogram_frame
from analysis.k6csv import DURATION, HTTP_REQS, OK, VUS, WAITING, Block

_NB = HIST_MAX_INDEX + 1  # buckets per histogram
LATENCY_METRICS = {DURATION: "http_req_duration", WAITING: "http_req_waiting"}
# Pending sparse histogram entries folded together once there are this many.
_CONSOLIDATE_AT = 1 << 20


class _SparseCounts:
    """Counts keyed by int64 (second * buckets + bucket): only the cells that occur are stored."""

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.int64)
        self.counts = np.empty(0, dtype=np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self._pending.append((keys, counts))
        self._pending_size += keys.size
        if self._pending_size >= _CONSOLIDATE_AT:
            self.consolidate()

    def consolidate(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self.keys, *(k for k, _ in self._pending)])
        counts = np.concatenate([self.counts, *(c for _, c in self._pending)])
        self.keys, inverse = np.unique(keys, return_inverse=True)
        self.counts = np.zeros(self.keys.size, dtype=np.int64)
        np.add.at(self.counts, inverse, counts)
        self._pending, self._pending_size = [], 0


@dataclass
class _Seconds:
    """Dense per-second arrays over [base, base + size), grown as seconds appear."""

    base: int | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    _fill: dict[str, float] = field(default_factory=dict)

    def declare(self, name: str, dtype: type, fill: float = 0) -> None:
        self.arrays[name] = np.empty(0, dtype=dtype)
        self._fill[name] = fill

    @property
    def size(self) -> int:
        return next(iter(self.arrays.values())).size

    def cover(self, lo: int, hi: int) -> None:
        """Make seconds lo..hi (inclusive) addressable."""
        if self.base is None:
            self.base = lo
        start, end = min(lo, self.base), max(hi + 1, self.base + self.size)
        if start == self.base and end == self.base + self.size:
            return
        for name, old in self.arrays.items():
            new = np.full(end - start, self._fill[name], dtype=old.dtype)
            new[self.base - start : self.base - start + old.size] = old
            self.arrays[name] = new
        self.base = start

    def view(self, name: str, lo: int, hi: int) -> np.ndarray:
        assert self.base is not None
        return self.arrays[name][lo - self.base : hi + 1 - self.base]


class SecondAggregate:
    """Per-second aggregates of one or more k6 CSV files (seconds are unix epoch seconds)."""

    def __init__(self) -> None:
        self.seconds = _Seconds()
        for name in ("requests", "ok", "duration_count", "duration_sum_ns", "waiting_count"):
            self.seconds.declare(name, np.int64)
        self.seconds.declare("duration_max", np.float64, fill=-np.inf)
        # Active VUs: the highest of k6's samples in the second; -1 = no sample (k6 samples once a second).
        self.seconds.declare("vus", np.int64, fill=-1)
        self.histograms = {metric: _SparseCounts() for metric in LATENCY_METRICS}
        self.statuses: dict[int, int] = {}

    # ------------------------------------------------------------------ folding samples in
    def fold(self, block: Block) -> None:
        if block.t_ms.size == 0:
            return
        second = block.t_ms // 1000
        lo, hi = int(second.min()), int(second.max())
        self.seconds.cover(lo, hi)
        span = hi - lo + 1
        rel = second - lo

        def count(mask: np.ndarray) -> np.ndarray:
            return np.bincount(rel[mask], minlength=span)

        reqs = block.metric == HTTP_REQS
        self.seconds.view("requests", lo, hi)[:] += count(reqs)
        status, n = np.unique(block.status[reqs], return_counts=True)
        for s, c in zip(status.tolist(), n.tolist(), strict=True):
            self.statuses[s] = self.statuses.get(s, 0) + c
        # k6's Rate: a sample counts as a pass when its value is non-zero.
        self.seconds.view("ok", lo, hi)[:] += count((block.metric == OK) & (block.value != 0))
        for metric in LATENCY_METRICS:
            mask = block.metric == metric
            values, where = block.value[mask], rel[mask]
            self.seconds.view("duration_count" if metric == DURATION else "waiting_count", lo, hi)[:] += (
                np.bincount(where, minlength=span))
            if metric == DURATION:
                # Integer ns: exact and independent of summation order (float sums are neither).
                ns = np.rint(values * 1e6)
                self.seconds.view("duration_sum_ns", lo, hi)[:] += np.rint(
                    np.bincount(where, weights=ns, minlength=span)).astype(np.int64)
                np.maximum.at(self.seconds.view("duration_max", lo, hi), where, values)
            keys, counts = np.unique((where + lo) * _NB + bucket_index(values), return_counts=True)
            self.histograms[metric].add(keys, counts)
        vus = block.metric == VUS
        if vus.any():
            np.maximum.at(self.seconds.view("vus", lo, hi), rel[vus], np.rint(block.value[vus]).astype(np.int64))

    def merge(self, other: SecondAggregate) -> None:
        """Add another aggregate's samples (another load generator of the same run)."""
        if other.seconds.base is None:
            return
        lo = other.seconds.base
        hi = lo + other.seconds.size - 1
        self.seconds.cover(lo, hi)
        for name, values in other.seconds.arrays.items():
            mine = self.seconds.view(name, lo, hi)
            if name == "duration_max":
                np.maximum(mine, values, out=mine)
            elif name == "vus":  # each generator ran its share of the VUs: they add up (-1: no sample)
                mine[:] = np.where((mine < 0) & (values < 0), -1, np.maximum(mine, 0) + np.maximum(values, 0))
            else:
                mine += values
        for metric, hist in other.histograms.items():
            hist.consolidate()
            self.histograms[metric].add(hist.keys, hist.counts)
        for s, c in other.statuses.items():
            self.statuses[s] = self.statuses.get(s, 0) + c

    # ---------------------------------------------------------------------------- results
    def second_histograms(self, metric: int) -> pd.DataFrame:
        """Columns epoch_s, bucket, count: one row per non-empty (second, bucket)."""
        hist = self.histograms[metric]
        hist.consolidate()
        return pd.DataFrame({"epoch_s": hist.keys // _NB, "bucket": hist.keys % _NB, "count": hist.counts})

    def histogram(self, metric: int = DURATION) -> pd.DataFrame:
        """The whole-run histogram (``histogram.csv``'s columns)."""
        per_second = self.second_histograms(metric)
        merged = per_second.groupby("bucket", sort=True)["count"].sum()
        return histogram_frame(merged.index.to_numpy(), merged.to_numpy())

    def status_frame(self) -> pd.DataFrame:
        items = sorted(self.statuses.items())
        return pd.DataFrame({"status": pd.Series([s for s, _ in items], dtype="int64"),
                             "requests": pd.Series([c for _, c in items], dtype="int64")})

    def per_second(self) -> pd.DataFrame:
        """``timeseries.csv``: one row per second from the first sample's second to the last.

        Latency percentiles come from each second's histogram (within ``QUANTILE_ERROR``); the
        mean and maximum are exact."""
        sec = self.seconds
        if sec.base is None:
            return pd.DataFrame()
        a = sec.arrays
        out = pd.DataFrame({"t_s": np.arange(sec.size), "epoch_s": np.arange(sec.size) + sec.base})
        out["requests"] = a["requests"]
        out["ok"] = a["ok"]
        out["errors"] = out["requests"] - out["ok"]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["latency_mean_ms"] = np.where(a["duration_count"] > 0,
                                              a["duration_sum_ns"] / 1e6 / a["duration_count"], np.nan)
        latency = self._quantile_columns(DURATION, [0.5, 0.9, 0.95, 0.99])
        for j, label in enumerate(("p50", "p90", "p95", "p99")):
            out[f"latency_{label}_ms"] = latency[:, j]
        out["latency_max_ms"] = np.where(np.isfinite(a["duration_max"]), a["duration_max"], np.nan)
        ttfb = self._quantile_columns(WAITING, [0.5, 0.95])
        out["ttfb_p50_ms"], out["ttfb_p95_ms"] = ttfb[:, 0], ttfb[:, 1]
        out["vus"] = np.where(a["vus"] >= 0, a["vus"], np.nan)  # empty where k6 took no sample that second
        return out

    def _quantile_columns(self, metric: int, qs: list[float]) -> np.ndarray:
        assert self.seconds.base is not None
        out = np.full((self.seconds.size, len(qs)), np.nan)
        hist = self.histograms[metric]
        hist.consolidate()
        if hist.keys.size:
            groups, values = grouped_quantiles(hist.keys // _NB, hist.keys % _NB, hist.counts, qs)
            out[groups - self.seconds.base] = values
        return out

