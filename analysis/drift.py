"""Drift over a sustained run: latency and the gateway's memory in the first minute against the last.

Per target and repeat, two windows of ``WINDOW_S`` seconds: the first of the measurement and the
last. A run shorter than two windows is not judged.

- **Latency**: every request of each window, rebuilt from the per-second histograms (each value
  within ±0.54% of the request's own latency). Verdict ``grows`` when the last minute's latencies are
  stochastically larger than the first's (one-sided Mann-Whitney U, ``scipy.stats.mannwhitneyu``,
  p < ``ALPHA``) and its median is higher by more than ``LATENCY_FLOOR_PCT`` (~1.6%, one and a half
  histogram buckets: medians one bucket apart may differ by anything from 0 to 2.2%, so a one-bucket
  step is below what the histograms resolve); ``falls`` symmetrically; otherwise ``stable``. Requests of a closed loop
  are not fully independent (a slow second slows the next requests), so a p-value is a guide and the
  size of the shift is always shown beside it.
- **Memory** (RSS of the gateway's process group, sampled about once a second locally, every 5 s
  from Prometheus in the cloud): the Theil-Sen slope over the whole measurement with its 95% interval
  (``scipy.stats.theilslopes``, robust to garbage-collection sawtooth). Verdict ``grows`` when the
  interval is above zero and the last minute's median exceeds the first's by more than
  ``RSS_FLOOR_MIB`` or ``RSS_FLOOR_FRACTION`` (whichever is larger: samples follow each other, so the
  interval alone is optimistic, and an allocator settling by a few hundred KiB is not a leak).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.buckets import BUCKET_WIDTH, bucket_mid_ms
from analysis.load import RunData
from analysis.timeseries import read_second_histograms
from schema.results import target_dir

WINDOW_S = 60
ALPHA = 0.01
LATENCY_FLOOR_PCT = ((1.0 + BUCKET_WIDTH) ** 1.5 - 1.0) * 100.0
RSS_FLOOR_MIB = 1.0
RSS_FLOOR_FRACTION = 0.01
DRIFT_COLUMNS = ["target", "repeat", "quantity", "first", "last", "change", "change_pct", "samples_first",
                 "samples_last", "test", "p_value", "slope_per_min", "slope_ci_low", "slope_ci_high", "verdict",
                 "note", "measured_s"]


def windows(t_s: np.ndarray, window_s: float = WINDOW_S) -> tuple[np.ndarray, np.ndarray] | None:
    """Masks of the first and the last ``window_s`` seconds of ``t_s``; None when they would overlap."""
    if t_s.size == 0:
        return None
    lo, hi = float(t_s.min()), float(t_s.max())
    if hi - lo + 1 < 2 * window_s:
        return None
    return t_s < lo + window_s, t_s > hi - window_s


def _row(target: str, repeat: int, quantity: str, **fields: object) -> dict[str, object]:
    return {"target": target, "repeat": repeat, "quantity": quantity, **fields}


def latency_drift(hist: pd.DataFrame, target: str, repeat: int) -> dict[str, object]:
    """First against last minute of one session's request latencies (ms)."""
    rows = hist[(hist["metric"] == "http_req_duration") & (hist["count"] > 0)]
    t_s = rows["t_s"].to_numpy(dtype=float)
    span = float(t_s.max() - t_s.min() + 1) if t_s.size else 0.0
    masks = windows(t_s)
    if masks is None:
        return _row(target, repeat, "latency", verdict=None, measured_s=span,
                    note=f"{span:.0f} s measured: shorter than two {WINDOW_S} s windows, not judged")
    first, last = (np.repeat(bucket_mid_ms(rows["bucket"].to_numpy()[m]), rows["count"].to_numpy()[m])
                   for m in masks)
    a, b = float(np.median(first)), float(np.median(last))
    change_pct = (b - a) / a * 100.0 if a else np.nan
    p_grow = float(stats.mannwhitneyu(first, last, alternative="less").pvalue)
    p_fall = float(stats.mannwhitneyu(first, last, alternative="greater").pvalue)
    floor = LATENCY_FLOOR_PCT
    if p_grow < ALPHA and change_pct > floor:
        verdict, p = "grows", p_grow
    elif p_fall < ALPHA and change_pct < -floor:
        verdict, p = "falls", p_fall
    else:
        verdict, p = "stable", min(p_grow, p_fall)
    return _row(target, repeat, "latency", first=a, last=b, change=b - a, change_pct=change_pct,
                samples_first=int(first.size), samples_last=int(last.size),
                test="Mann-Whitney U, one-sided, on every request's latency", p_value=p, verdict=verdict,
                measured_s=span, note=None)


def rss_drift(samples: pd.DataFrame, target: str, repeat: int) -> dict[str, object]:
    """First against last minute of one session's gateway memory (MiB), with the slope over the whole run."""
    samples = samples.dropna(subset=["rss_mib"]).sort_values("t_s")
    t_s, rss = samples["t_s"].to_numpy(dtype=float), samples["rss_mib"].to_numpy(dtype=float)
    span = float(t_s.max() - t_s.min()) if t_s.size else 0.0
    masks = windows(t_s)
    if masks is None or masks[0].sum() < 2 or masks[1].sum() < 2:
        return _row(target, repeat, "rss", verdict=None, measured_s=span,
                    note=f"{span:.0f} s of memory samples: shorter than two {WINDOW_S} s windows, not judged")
    a, b = float(np.median(rss[masks[0]])), float(np.median(rss[masks[1]]))
    slope, _, low, high = stats.theilslopes(rss, t_s, alpha=0.95)
    floor = max(RSS_FLOOR_MIB, RSS_FLOOR_FRACTION * a)
    if low > 0 and b - a > floor:
        verdict = "grows"
    elif high < 0 and a - b > floor:
        verdict = "falls"
    else:
        verdict = "stable"
    return _row(target, repeat, "rss", first=a, last=b, change=b - a, change_pct=(b - a) / a * 100.0 if a else np.nan,
                samples_first=int(masks[0].sum()), samples_last=int(masks[1].sum()),
                test="Theil-Sen slope, 95% interval", slope_per_min=float(slope) * 60.0,
                slope_ci_low=float(low) * 60.0, slope_ci_high=float(high) * 60.0, verdict=verdict,
                measured_s=span, note=None)


def drift_table(run: RunData, role: str = "gateway") -> pd.DataFrame:
    """Latency and memory drift of every measured session (targets without a ``role`` process: latency only)."""
    rows = []
    for o in run.sessions:
        if not o.measured:
            continue
        name = o.files.get("second_histograms")
        if name:
            try:
                hist = read_second_histograms(target_dir(run.run_dir, o.target, o.repeat) / name)
            except (OSError, ValueError):
                hist = None
            if hist is not None:
                rows.append(latency_drift(hist, o.target, o.repeat))
        res = run.resources
        if not res.empty and "role" in res:
            mine = res[(res["target"] == o.target) & (res["repeat"] == o.repeat) & (res["role"] == role)]
            if not mine.empty:
                rows.append(rss_drift(mine, o.target, o.repeat))
    frame = pd.DataFrame(rows)
    for col in DRIFT_COLUMNS:
        if col not in frame:
            frame[col] = np.nan
    return frame[DRIFT_COLUMNS]
