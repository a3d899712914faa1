"""Added latency: what a target adds to a request at concurrency 1, with a 95% interval on the difference.

The overhead step sends one request at a time, alternating between the mock directly and the mock
through the target (k6_scripts/templates/paired.js.j2); each k6 iteration yields one latency per
side. The added latency at a quantile is ``quantile(target) - quantile(direct)``, in microseconds.

Its interval comes from a block bootstrap (``scipy.stats.bootstrap``, percentile method, 2,000
resamples, fixed seed): iterations are cut into blocks of consecutive pairs, and blocks (each with
both sides) are resampled with replacement across all repeats, so the interval carries the noise of
the requests and the slow drifts of the machine that blocks keep together. Resampling whole blocks
rather than single requests keeps the pairing: a slow moment slows both sides of its block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.load import RunData
from analysis.stats import RESAMPLES, cluster_bootstrap_diff

QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}
BLOCKS_PER_REPEAT = 30
MIN_BLOCK, MAX_BLOCK = 10, 200
METHOD = ("95% CI: block bootstrap over consecutive request pairs (scipy.stats.bootstrap, percentile, "
          f"{RESAMPLES} resamples), pooled over repeats")

COLUMNS = ["target", "repeats", "pairs", "blocks", "block_pairs",
           *(f"{side}_{q}_us" for side in ("direct", "target") for q in QUANTILES),
           *(f"added_{q}_us{suffix}" for q in QUANTILES for suffix in ("", "_ci_low", "_ci_high")),
           "direct_ok_rate", "target_ok_rate"]


class OverheadDataError(Exception):
    pass


@dataclass(frozen=True)
class Pairs:
    """Latencies (ms) of one overhead run, in iteration order: element i of each side is iteration i."""

    direct: np.ndarray
    target: np.ndarray


def read_pairs(raw_csv) -> Pairs:
    """The two sides of a paired run from k6's per-request CSV (only the two custom trends are read)."""
    try:
        frame = pd.read_csv(raw_csv, usecols=["metric_name", "metric_value"],
                            dtype={"metric_name": "string", "metric_value": "float64"})
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        raise OverheadDataError(f"{raw_csv}: unreadable ({exc})") from None
    direct = frame.loc[frame["metric_name"] == "aigw_direct_ms", "metric_value"].to_numpy()
    target = frame.loc[frame["metric_name"] == "aigw_target_ms", "metric_value"].to_numpy()
    n = min(len(direct), len(target))  # k6 stopped mid-iteration: drop the unpaired last one
    if n == 0:
        raise OverheadDataError(f"{raw_csv}: no paired samples")
    return Pairs(direct[:n], target[:n])


def read_pairs_file(path) -> Pairs:
    """The two sides of a paired run from the pairs an engine collected from the script's log
    (``direct_ms,target_ms`` rows: the k6-operator's runner pods cannot hand back k6's CSV)."""
    try:
        frame = pd.read_csv(path, dtype={"direct_ms": "float64", "target_ms": "float64"})
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        raise OverheadDataError(f"{path}: unreadable ({exc})") from None
    if frame.empty:
        raise OverheadDataError(f"{path}: no paired samples")
    return Pairs(frame["direct_ms"].to_numpy(), frame["target_ms"].to_numpy())


def step_pairs(run: RunData, outcome, record) -> Pairs:
    """An overhead step's pairs: from k6's per-request CSV, or from the pairs its engine logged."""
    if "raw" in record.files:
        return read_pairs(run.step_path(outcome, record, "raw"))
    if "pairs" in record.files:
        return read_pairs_file(run.step_path(outcome, record, "pairs"))
    raise OverheadDataError(f"{outcome.target} r{outcome.repeat}: the overhead step kept no per-request samples")


def _blocks(pairs: list[Pairs]) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for p in pairs:
        size = int(np.clip(len(p.direct) // BLOCKS_PER_REPEAT, MIN_BLOCK, MAX_BLOCK))
        for start in range(0, len(p.direct), size):
            out.append((p.direct[start:start + size], p.target[start:start + size]))
    return out


def added_latency(pairs: list[Pairs]) -> dict[str, float]:
    """Point estimates and 95% intervals (µs) of target minus direct at p50, p90 and p99."""
    blocks = _blocks(pairs)
    qs = list(QUANTILES.values())
    direct = [b[0] * 1000.0 for b in blocks]
    target = [b[1] * 1000.0 for b in blocks]
    estimate, low, high = cluster_bootstrap_diff(direct, target, qs, paired=True)
    out: dict[str, float] = {"blocks": len(blocks), "pairs": int(sum(len(p.direct) for p in pairs)),
                             "block_pairs": int(np.median([len(b[0]) for b in blocks]))}
    direct_all = np.concatenate(direct)
    target_all = np.concatenate(target)
    for i, (name, q) in enumerate(QUANTILES.items()):
        out[f"added_{name}_us"] = float(estimate[i])
        out[f"added_{name}_us_ci_low"] = float(low[i])
        out[f"added_{name}_us_ci_high"] = float(high[i])
        out[f"direct_{name}_us"] = float(np.quantile(direct_all, q))
        out[f"target_{name}_us"] = float(np.quantile(target_all, q))
    return out


def overhead_table(run: RunData) -> pd.DataFrame:
    """One row per target with an overhead step: added latency at p50/p90/p99 (µs) with 95% intervals."""
    by_target: dict[str, list] = {}
    for outcome, record in run.step_records("overhead"):
        if record.status != "ok":
            continue
        try:
            pairs = step_pairs(run, outcome, record)
        except OverheadDataError:
            continue
        by_target.setdefault(outcome.target, []).append((pairs, record.data))
    rows = []
    for target, items in by_target.items():
        row = {"target": target, "repeats": len(items), **added_latency([p for p, _ in items])}
        for side in ("direct", "target"):
            rates = [d.get(f"{side}_ok_rate") for _, d in items if d.get(f"{side}_ok_rate") is not None]
            row[f"{side}_ok_rate"] = min(rates) if rates else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def excludes_zero(row: dict, quantile: str = "p50") -> bool | None:
    low, high = row.get(f"added_{quantile}_us_ci_low"), row.get(f"added_{quantile}_us_ci_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return None
    return bool(low > 0 or high < 0)
