"""Statistics: repeats' mean, 95% interval (Student's t) and coefficient of variation; bootstrap
intervals on differences of quantiles. Critical values and resampling come from scipy.stats.

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


def summarize_repeats(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per target and metric: n, mean, sd, ci_low, ci_high, cv (from a tidy target/repeat/metric/value frame)."""
    if metrics.empty:
        return pd.DataFrame(columns=["target", "metric", "n", "mean", "sd", "ci_low", "ci_high", "cv"])
    grouped = metrics.groupby(["target", "metric"])["value"]
    out = grouped.agg(n="count", mean="mean", sd="std").reset_index()
    half = out["sd"] / np.sqrt(out["n"]) * out["n"].map(lambda n: t95(int(n) - 1))
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cv"] = out["sd"] / out["mean"].abs()
    single = out["n"] < 2
    out.loc[single, ["sd", "ci_low", "ci_high", "cv"]] = np.nan
    return out


def intervals_separate(a_low: float, a_high: float, b_low: float, b_high: float) -> bool | None:
    """True if two intervals do not overlap, False if they do, None if either is unknown."""
    if any(pd.isna(v) for v in (a_low, a_high, b_low, b_high)):
        return None
    return a_high < b_low or b_high < a_low
