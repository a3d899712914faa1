"""Added latency: what a target adds to a request at concurrency 1, with a 95% interval on the difference.

The overhead step sends one request at a time to the mock directly and to the mock through the
target, in alternating blocks of a fixed time (k6_scripts/templates/paired.js.j2), direct first. What
one side leaves behind slows the other side's next requests for tens of milliseconds on this machine
(measured: docs/method.md), so the requests of each block's first ``settle`` seconds are kept apart:
counted in the direct side, a gateway's carry-over would hide part of its cost. The carry-over is
measured and reported on its own. The added latency at a quantile is ``quantile(target) -
quantile(direct)`` over the steady requests, in microseconds.

The blocks are found in the order k6 recorded the requests (a block ends where the side changes);
direct block j is paired with the target block after it. The interval comes from a block bootstrap
(``scipy.stats.bootstrap``, percentile method, 2,000 resamples, fixed seed): pairs of blocks are
resampled with replacement across all repeats, so the interval carries the noise of the requests and
the slow drifts of the machine that neighbouring blocks share. It covers the sampling noise of this
run, not what another run or another machine finds: the spread between this run's sessions is
reported next to it.

Runs made before the block design (one request each way per iteration) are read as they were
measured: consecutive iterations cut into about 30 blocks per repeat, nothing kept apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.load import RunData
from analysis.stats import RESAMPLES, SEED, cluster_bootstrap_diff

QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}
BLOCKS_PER_REPEAT = 30
MIN_BLOCK, MAX_BLOCK = 10, 200
METHOD = ("95% CI: block bootstrap over neighbouring direct and target blocks (scipy.stats.bootstrap, "
          f"percentile, {RESAMPLES} resamples), pooled over repeats")
# The direct side of a gateway's session may be slower than the A/A control's by this much before the
# report says that the gateway's work leaks into the direct baseline. Sessions differ among themselves
# (another moment of the machine): a few percent between two A/A sessions here.
LEAK_TOLERANCE = 0.15
LEAK_FLOOR_US = 10.0
# The steady direct requests early in their block against the late ones: above this, the carry-over
# outlasted the settle window.
DRIFT_TOLERANCE = 0.10
DRIFT_FLOOR_US = 10.0

COLUMNS = ["target", "repeats", "pairs", "blocks", "block_requests",
           *(f"{side}_{q}_us" for side in ("direct", "target") for q in QUANTILES),
           *(f"added_{q}_us{suffix}" for q in QUANTILES for suffix in ("", "_ci_low", "_ci_high")),
           "added_p50_us_sessions_low", "added_p50_us_sessions_high",
           "carryover_p50_us", "carryover_p50_us_ci_low", "carryover_p50_us_ci_high", "carryover_first_us",
           "carryover_drift_us", "carryover_drift_us_ci_low", "carryover_drift_us_ci_high",
           "target_first_us", "direct_leak_us", "warmup_s", "warmup_steady",
           "added_p50_x_floor", "added_p50_x_floor_ci_low", "added_p50_x_floor_ci_high",
           "direct_ok_rate", "target_ok_rate"]

SETTLE_METRICS = {"aigw_direct_ms": ("direct", False), "aigw_target_ms": ("target", False),
                  "aigw_direct_settle_ms": ("direct", True), "aigw_target_settle_ms": ("target", True)}


class OverheadDataError(Exception):
    pass


def _empty() -> np.ndarray:
    return np.empty(0)


@dataclass(frozen=True)
class Block:
    """A direct block and the target block after it (latencies in ms, in order): the steady requests of
    each side, and the ones kept apart at the start of each (``*_settle``)."""

    direct: np.ndarray
    target: np.ndarray
    direct_settle: np.ndarray = field(default_factory=_empty)
    target_settle: np.ndarray = field(default_factory=_empty)
    after_target: bool = False  # the direct block followed a target block (not the run's first)


@dataclass(frozen=True)
class Pairs:
    """One session's overhead run as pairs of blocks."""

    blocks: list[Block]

    @classmethod
    def from_iterations(cls, direct: np.ndarray, target: np.ndarray) -> Pairs:
        """The earlier design: element i of each side is iteration i; cut into about 30 blocks."""
        n = min(len(direct), len(target))  # k6 stopped mid-iteration: drop the unpaired last one
        size = int(np.clip(n // BLOCKS_PER_REPEAT, MIN_BLOCK, MAX_BLOCK))
        return cls([Block(direct[i:i + size], target[i:i + size]) for i in range(0, n, size)])

    @property
    def direct(self) -> np.ndarray:
        return np.concatenate([b.direct for b in self.blocks])

    @property
    def target(self) -> np.ndarray:
        return np.concatenate([b.target for b in self.blocks])


def blocks_in_order(requests: Iterable[tuple[str, bool, float]], source: str) -> Pairs:
    """Pairs of blocks from the requests in the order they were sent (side, kept apart, ms): a block ends
    where the side changes; a direct block without its target block (the run's end) is dropped, and so
    is a pair where either side has no steady request."""
    runs: list[tuple[str, list[float], list[float]]] = []  # side, settle, steady
    for side, settle, ms in requests:
        if not runs or runs[-1][0] != side:
            runs.append((side, [], []))
        runs[-1][1 if settle else 2].append(ms)
    blocks, previous = [], None
    for i, (side, settle, steady) in enumerate(runs):
        if side == "direct" and i + 1 < len(runs):
            _, t_settle, t_steady = runs[i + 1]
            if steady and t_steady:
                blocks.append(Block(np.array(steady), np.array(t_steady), np.array(settle), np.array(t_settle),
                                    after_target=previous == "target"))
        previous = side
    if not blocks:
        raise OverheadDataError(f"{source}: no pair of direct and target blocks with steady requests")
    return Pairs(blocks)


def read_pairs(raw_csv, designed: bool = True) -> Pairs:
    """A paired run from k6's per-request CSV (only the overhead script's trends are read, in file order:
    one virtual user's samples are written in the order it sent its requests)."""
    try:
        frame = pd.read_csv(raw_csv, usecols=["metric_name", "metric_value"],
                            dtype={"metric_name": "string", "metric_value": "float64"})
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        raise OverheadDataError(f"{raw_csv}: unreadable ({exc})") from None
    frame = frame[frame["metric_name"].isin(list(SETTLE_METRICS))]
    if not designed:
        side = frame["metric_name"]
        return Pairs.from_iterations(frame.loc[side == "aigw_direct_ms", "metric_value"].to_numpy(),
                                     frame.loc[side == "aigw_target_ms", "metric_value"].to_numpy())
    keys = [SETTLE_METRICS[name] for name in frame["metric_name"]]
    return blocks_in_order(((s, k, ms) for (s, k), ms in zip(keys, frame["metric_value"], strict=True)),
                           str(raw_csv))


def read_pairs_file(path) -> Pairs:
    """A paired run from the requests an engine collected from the script's log, in order (``side,settle,ms``
    rows: the k6-operator's runner pods cannot hand back k6's CSV)."""
    try:
        frame = pd.read_csv(path, dtype={"side": "string", "settle": "int64", "ms": "float64"})
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:
        raise OverheadDataError(f"{path}: unreadable ({exc})") from None
    return blocks_in_order(zip(frame["side"], frame["settle"].astype(bool), frame["ms"], strict=True), str(path))


def step_pairs(run: RunData, outcome, record) -> Pairs:
    """An overhead step's pairs: from k6's per-request CSV, or from the requests its engine logged."""
    designed = "block" in (record.data.get("sizes") or {})
    if "raw" in record.files:
        return read_pairs(run.step_path(outcome, record, "raw"), designed)
    if "pairs" in record.files:
        return read_pairs_file(run.step_path(outcome, record, "pairs"))
    raise OverheadDataError(f"{outcome.target} r{outcome.repeat}: the overhead step kept no per-request samples")


def _blocks(pairs: list[Pairs]) -> list[Block]:
    return [b for p in pairs for b in p.blocks]


def added_latency(pairs: list[Pairs]) -> dict[str, float]:
    """Point estimates and 95% intervals (µs) of target minus direct at p50, p90 and p99."""
    blocks = _blocks(pairs)
    qs = list(QUANTILES.values())
    direct = [b.direct * 1000.0 for b in blocks]
    target = [b.target * 1000.0 for b in blocks]
    estimate, low, high = cluster_bootstrap_diff(direct, target, qs, paired=True)
    direct_all, target_all = np.concatenate(direct), np.concatenate(target)
    out: dict[str, float] = {"blocks": len(blocks), "pairs": int(min(len(direct_all), len(target_all))),
                             "block_requests": int(np.median([len(b.target) for b in blocks]))}
    for i, (name, q) in enumerate(QUANTILES.items()):
        out[f"added_{name}_us"] = float(estimate[i])
        out[f"added_{name}_us_ci_low"] = float(low[i])
        out[f"added_{name}_us_ci_high"] = float(high[i])
        out[f"direct_{name}_us"] = float(np.quantile(direct_all, q))
        out[f"target_{name}_us"] = float(np.quantile(target_all, q))
    sessions = [float(np.median(p.target) - np.median(p.direct)) * 1000.0 for p in pairs]
    out["added_p50_us_sessions_low"], out["added_p50_us_sessions_high"] = min(sessions), max(sessions)
    return out


def p50_replicates(pairs: list[Pairs], seed: int, n: int = RESAMPLES) -> np.ndarray:
    """Bootstrap replicates (µs) of the added p50, blocks resampled as :func:`added_latency` does."""
    blocks = _blocks(pairs)
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    for i in range(n):
        pick = rng.integers(0, len(blocks), len(blocks))
        out[i] = (np.median(np.concatenate([blocks[j].target for j in pick]))
                  - np.median(np.concatenate([blocks[j].direct for j in pick]))) * 1000.0
    return out


def ratio_to(pairs: list[Pairs], reference: list[Pairs], estimate: float,
             reference_estimate: float) -> dict[str, float]:
    """The added p50 as a multiple of a reference target's measured in the same run (the floor: a plain
    proxy), with a 95% interval from independent block bootstraps of both: a figure that does not depend
    on the machine's speed. None when the reference's own interval reaches zero (nothing to divide by)."""
    ref = p50_replicates(reference, SEED + 1)
    low_ref, high_ref = np.percentile(ref, [2.5, 97.5])
    if low_ref <= 0 <= high_ref:
        return {}
    mine = p50_replicates(pairs, SEED + 2)
    low, high = np.percentile(mine / ref, [2.5, 97.5])
    return {"added_p50_x_floor": float(estimate / reference_estimate), "added_p50_x_floor_ci_low": float(low),
            "added_p50_x_floor_ci_high": float(high)}


def carry_over(pairs: list[Pairs]) -> dict[str, float]:
    """What the target's work leaves behind, on the direct blocks that follow a target block (µs, against
    the steady direct requests of the same block): the settle window's p50 (with a block-bootstrap
    interval) and its very first request (median over blocks). ``carryover_drift_us``: the first third
    of each block's steady direct requests against its last third (p50, pooled, with its interval): near
    zero when the settle window outlasted the carry-over. ``target_first_us``: the target's own first
    request after a direct block against its steady ones (a gateway slower after idling)."""
    blocks = [b for b in _blocks(pairs) if b.after_target and len(b.direct_settle)]
    if not blocks:
        return {}
    steady = [b.direct * 1000.0 for b in blocks]
    settle = [b.direct_settle * 1000.0 for b in blocks]
    estimate, low, high = cluster_bootstrap_diff(steady, settle, [0.5], paired=True)
    first = [s[0] - np.median(d) for s, d in zip(settle, steady, strict=True)]
    target_first = [b.target_settle[0] - np.median(b.target) for b in blocks if len(b.target_settle)]
    return {"carryover_p50_us": float(estimate[0]), "carryover_p50_us_ci_low": float(low[0]),
            "carryover_p50_us_ci_high": float(high[0]), "carryover_first_us": float(np.median(first)),
            **_drift(steady),
            "target_first_us": float(np.median(target_first)) * 1000.0 if target_first else np.nan}


def _drift(steady: list[np.ndarray]) -> dict[str, float]:
    """The first third of each block's steady direct requests against its last third (p50, pooled, µs), with
    a block-bootstrap interval: on a shared machine blocks without any carry-over drift by 10-15 µs (a
    no-spill proxy read +15 µs here), so the rule judges the interval, not the point."""
    early = [d[:len(d) // 3] for d in steady if len(d) >= 3]
    late = [d[len(d) - len(d) // 3:] for d in steady if len(d) >= 3]
    if not early:
        return {"carryover_drift_us": np.nan, "carryover_drift_us_ci_low": np.nan, "carryover_drift_us_ci_high": np.nan}
    estimate, low, high = cluster_bootstrap_diff(late, early, [0.5], paired=True)
    return {"carryover_drift_us": float(estimate[0]), "carryover_drift_us_ci_low": float(low[0]),
            "carryover_drift_us_ci_high": float(high[0])}


def outlasts_settle(row: dict) -> bool:
    """True if the steady direct requests early in their block were slower than the late ones (the drift's
    interval lies above the tolerance): the carry-over lasted longer than the requests kept apart, and part
    of it is in the direct side. Runs written before the interval existed are judged on the point."""
    drift, direct = row.get("carryover_drift_us_ci_low"), row.get("direct_p50_us")
    if drift is None or pd.isna(drift):
        drift = row.get("carryover_drift_us")
    if drift is None or direct is None or pd.isna(drift) or pd.isna(direct):
        return False
    return drift > max(DRIFT_FLOOR_US, DRIFT_TOLERANCE * direct)


def overhead_table(run: RunData) -> pd.DataFrame:
    """One row per target with an overhead step: added latency at p50/p90/p99 (µs) with 95% intervals, the
    carry-over, the spread between sessions, and how far the direct side sat above the A/A control's."""
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
        pairs = [p for p, _ in items]
        row = {"target": target, "repeats": len(items), **added_latency(pairs), **carry_over(pairs)}
        for side in ("direct", "target"):
            rates = [d.get(f"{side}_ok_rate") for _, d in items if d.get(f"{side}_ok_rate") is not None]
            row[f"{side}_ok_rate"] = min(rates) if rates else np.nan
        warmups = [(d.get("warmup") or {}) for _, d in items]
        row["warmup_s"] = max((w.get("seconds") or 0.0 for w in warmups), default=np.nan)
        row["warmup_steady"] = (all(w.get("steady", True) for w in warmups) if any(w.get("until_steady")
                                                                                   for w in warmups) else np.nan)
        rows.append(row)
    floor = next((t for t, role in run.roles().items() if role == "floor" and t in by_target), None)
    if floor is not None:
        reference = [p for p, _ in by_target[floor]]
        floor_p50 = next(r["added_p50_us"] for r in rows if r["target"] == floor)
        for row in rows:
            mine = [p for p, _ in by_target[row["target"]]]
            row.update(ratio_to(mine, reference, row["added_p50_us"], floor_p50))
    table = pd.DataFrame(rows, columns=COLUMNS)
    baseline = run.baseline
    if baseline is not None and baseline in set(table["target"]):
        aa_direct = float(table.set_index("target").loc[baseline, "direct_p50_us"])
        table["direct_leak_us"] = table["direct_p50_us"] - aa_direct
    return table


def leaks(row: dict) -> bool:
    """True if a session's direct side sat above the A/A control's by more than the tolerance."""
    leak, direct = row.get("direct_leak_us"), row.get("direct_p50_us")
    if leak is None or direct is None or pd.isna(leak) or pd.isna(direct):
        return False
    return leak > max(LEAK_FLOOR_US, LEAK_TOLERANCE * (direct - leak))


def excludes_zero(row: dict, quantile: str = "p50") -> bool | None:
    low, high = row.get(f"added_{quantile}_us_ci_low"), row.get(f"added_{quantile}_us_ci_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return None
    return bool(low > 0 or high < 0)
