"""Statistics: repeats' mean, their interval (the range below 5 repeats, a bootstrap interval of the mean
from 5 on: Student's t on two or three repeats gives bounds like -1,500 RPS) and coefficient of
variation; bootstrap intervals on differences of quantiles. Resampling comes from scipy.stats.

A difference between two targets is called significant only when their 95% intervals do not
overlap: conservative (it misses some real differences) but easy to check by eye in the table.
With one repeat there is no interval and nothing is called significant.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 20261122  # the same data gives the same interval


def t95(df: int) -> float:
    """The two-sided 95% critical value of Student's t with ``df`` degrees of freedom (scipy.stats.t)."""
    if df < 1:
        return math.nan
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def cluster_bootstrap_diff(a: list[np.ndarray], b: list[np.ndarray], quantiles: list[float],
                           paired: bool = False, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``quantile(b) - quantile(a)`` at each quantile, with a 95% percentile-bootstrap interval.

    ``a`` and ``b`` are clusters of values (a block of consecutive requests, one stream's gaps);
    clusters are resampled whole, so values that belong together stay together. ``paired``: cluster
    i of ``a`` goes with cluster i of ``b`` (one resample picks both); otherwise each side is
    resampled on its own. Returns (estimate, low, high); low/high are NaN with fewer than 2 clusters.
    """
    qs = np.asarray(quantiles)

    def pooled(clusters: list[np.ndarray], index: np.ndarray) -> np.ndarray:
        return np.concatenate([clusters[i] for i in np.asarray(index, dtype=int)])

    def diff(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
        return np.quantile(pooled(b, ib), qs) - np.quantile(pooled(a, ia), qs)

    ia, ib = np.arange(len(a)), np.arange(len(b))
    estimate = diff(ia, ib)
    nan = np.full(len(qs), np.nan)
    if min(len(a), len(b)) < 2:
        return estimate, nan, nan
    if paired:
        result = stats.bootstrap((ia,), lambda i: diff(i, i), vectorized=False, n_resamples=RESAMPLES,
                                 confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed))
    else:
        result = stats.bootstrap((ia, ib), diff, vectorized=False, paired=False, n_resamples=RESAMPLES,
                                 confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed))
    return estimate, np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)


# From this many repeats on, a bootstrap interval of the mean; below, the range (min to max) itself.
BOOTSTRAP_MIN_REPEATS = 5


def repeat_interval(values: np.ndarray) -> tuple[float, float, str]:
    """(low, high, what it is) for the mean of a few repeats: never outside what was measured."""
    if len(values) < 2:
        return math.nan, math.nan, ""
    if len(values) < BOOTSTRAP_MIN_REPEATS:
        return float(values.min()), float(values.max()), "range"
    result = stats.bootstrap((values,), np.mean, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                             method="percentile", rng=np.random.default_rng(SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high), "95% CI"


def summarize_repeats(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per target and metric: n, mean, sd, ci_low, ci_high (the range of fewer than 5 repeats, else a
    bootstrap 95% interval of the mean: ``interval`` says which), cv; from a tidy target/repeat/metric/value
    frame."""
    columns = ["target", "metric", "n", "mean", "sd", "ci_low", "ci_high", "interval", "cv"]
    if metrics.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for (target, metric), values in metrics.groupby(["target", "metric"])["value"]:
        v = values.dropna().to_numpy(dtype=float)
        low, high, interval = repeat_interval(v)
        sd = float(v.std(ddof=1)) if len(v) > 1 else math.nan
        mean = float(v.mean()) if len(v) else math.nan
        cv = sd / abs(mean) if len(v) > 1 and mean else math.nan
        rows.append({"target": target, "metric": metric, "n": len(v), "mean": mean, "sd": sd, "ci_low": low,
                     "ci_high": high, "interval": interval, "cv": cv})
    return pd.DataFrame(rows, columns=columns)


def intervals_separate(a_low: float, a_high: float, b_low: float, b_high: float) -> bool | None:
    """True if two intervals do not overlap, False if they do, None if either is unknown."""
    if any(pd.isna(v) for v in (a_low, a_high, b_low, b_high)):
        return None
    return a_high < b_low or b_high < a_low
