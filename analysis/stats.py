"""Repeat statistics: mean, 95% confidence interval (Student's t), coefficient of variation.

A difference between two targets is called significant only when their 95% intervals do not
overlap: conservative (it misses some real differences) but easy to check by eye in the table.
With one repeat there is no interval and nothing is called significant.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Two-sided 95% critical values of Student's t by degrees of freedom (standard tables).
_T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
    20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
    29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}


def t95(df: int) -> float:
    if df < 1:
        return math.nan
    if df in _T95:
        return _T95[df]
    larger = [k for k in _T95 if k > df]
    return _T95[min(larger)] if larger else 1.960  # conservative: the next tabulated df below


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
