"""The capacity frontier: per target and p99 bound, the highest arrival rate that met the bound.

Each session's capacity step records every probe (rate, p99, errors, drops) and, per bound, the
highest passing rate below the lowest failing one (:mod:`aigw_bench.measure.search`). Across repeats
a target's capacity is the *lowest* of its repeats' (the rate it sustained every time). Its range is what
the searches know: each repeat's capacity lies between its highest passing and its lowest failing rate,
so the range runs from the quoted figure to the highest of the repeats' lowest failing rates
(``range_high_rps``). The repeats' own figures (``max_rps_low``, ``max_rps_high``) understate it by up to a
bracket: a session that passed 138 req/s and failed 146 may have a capacity of 145. Where a rate met the
bound above a rate that failed it (the target's p99 swings from step to step), ``passed_above_rps``
holds the highest such rate: the figure is unstable.
A target that passed at the rig's reach in every repeat is rig-bound: its
capacity is "at least" that rate and the ``capacity_rps`` column stays empty.

A bound can also lie on the target's *stall floor*: a target that pauses (a garbage collector, an event
loop held up) has a p99 set by its pauses, not by a queue. A queue lifts the median with the tail; a
pause lifts only the tail. So the probes *without a queue* (their median within NO_QUEUE_P50 times the
lowest median of their session, at rates where the rig alone met the bound) show what the pauses alone
do to the p99: where the median of their p99s stands TAIL_RATIO times above their p50 and reaches
STALL_SHARE of a bound, whether a probe meets the bound is a matter of whether a pause fell inside it:
across four default runs here Portkey's p99 read 37-87 ms at every rate from 164 to 874 req/s (p50
about 1 ms), and its "capacity at p99 <= 50 ms" came out 188, 207, 453 and 824 req/s. Such a bound gets
no capacity figure: the evidence (that p99, at which rates) and the capacity at the next bound its
stalls do not reach.

The rule reads every probe without a queue, whatever its rate, and their median, not their worst: an
earlier form read the worst p99 at or below half the highest clean rate, and so depended on where the
search happened to step (two runs in a row: one probed Portkey at 281-399 req/s and found its stalls;
the other's lowest probe was 432 req/s, above half of 811, so the rule saw nothing, though its probes
at 432-641 req/s read p99 40-58 ms with the median flat at ~1.1 ms), and one pause in one probe could
decide it. Half the bound, not 70%: Portkey's median p99 without a queue read 34-53 ms over nine runs,
astride 70% of 50 ms (35) and above half (25), so the verdict no longer flips from run to run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.load import RunData
from schema.manifest import MAX_ERROR_RATE

FRONTIER_COLUMNS = ["target", "p99_bound_ms", "max_rps", "rig_bound", "repeats", "max_rps_low", "max_rps_high",
                    "p99_at_max_ms", "failing_rps", "range_high_rps", "resolved", "note", "passed_above_rps",
                    "no_queue_probes", "no_queue_rps", "no_queue_p99_ms", "stall_bound"]
PROBE_COLUMNS = ["target", "repeat", "rate", "p99_ms", "p50_ms", "error_rate", "dropped", "achieved_rps",
                 "requests", "clean", "problem"]
# The median p99 of the probes without a queue within this share of a bound, and this many times their p50,
# puts the bound on the target's stall floor (above). A queue keeps p99/p50 near ln(100)/ln(2) = 6.6 (M/M/1)
# or below. A probe has no queue while its median stays within NO_QUEUE_P50 of its session's lowest; the
# rule needs MIN_NO_QUEUE such probes.
STALL_SHARE = 0.5
TAIL_RATIO = 10.0
NO_QUEUE_P50 = 1.5
MIN_NO_QUEUE = 3


def _searches(run: RunData) -> list[tuple[str, int, dict]]:
    """(target, repeat, search record) of every capacity search; the rig's own is the baseline's (repeat 0)."""
    out = [(o.target, o.repeat, r.data) for o, r in run.step_records("capacity") if r.data.get("bounds")]
    rig = run.rig.frontier
    baseline = run.manifest.baseline or "direct"
    if rig and rig.get("bounds"):
        # The rig sustains what it sustains: never "at least", it is the reference the others are capped by.
        bounds = [{**b, "rig_bound": True} for b in rig["bounds"]]
        out.insert(0, (baseline, 0, {**rig, "bounds": bounds}))
    return out


def probes(run: RunData) -> pd.DataFrame:
    """Every probed rate of every search (for the frontier chart and for digging in)."""
    rows = []
    for target, repeat, data in _searches(run):
        for p in data.get("probes", []):
            rows.append({"target": target, "repeat": repeat,
                         **{k: p.get(k) for k in PROBE_COLUMNS if k not in ("target", "repeat")}})
    return pd.DataFrame(rows, columns=PROBE_COLUMNS)


@dataclass(frozen=True)
class NoQueue:
    """What a target's probes without a queue say of its stalls (over every repeat)."""

    probes: int = 0  # how many clean probes kept their median within NO_QUEUE_P50 of the lowest
    top_rps: float | None = None  # the highest rate among them
    p99_ms: float | None = None  # the median of their p99s
    tail_ratio: float | None = None  # the median of their p99 / p50

    def stalls(self, bound_ms: float) -> bool:
        """The bound lies on the stall floor: enough probes, a tail of pauses, reaching into the bound."""
        return (self.probes >= MIN_NO_QUEUE and self.p99_ms is not None and self.tail_ratio is not None
                and self.tail_ratio >= TAIL_RATIO and self.p99_ms >= STALL_SHARE * bound_ms)


def no_queue(probes: list[dict], up_to_rps: float | None = None) -> NoQueue:
    """The probes without a queue among a target's probes: clean, not still disturbed by other work on the
    machine, at most ``up_to_rps`` (where the rig itself meets the bound: above it the tail is the rig's),
    their median within NO_QUEUE_P50 of the lowest median of its session (``repeat``): sessions start the
    target afresh, and one process can run slower than the next at every rate (Portkey's p50 1.3-2.0 ms
    in one session, 0.95 in the other)."""
    clean = [p for p in probes if p.get("clean") and not p.get("disturbed") and p.get("p99_ms") is not None
             and p.get("p50_ms") and (up_to_rps is None or p["rate"] <= up_to_rps)]
    floors: dict[object, float] = {}
    for p in clean:
        floors[p.get("repeat")] = min(p["p50_ms"], floors.get(p.get("repeat"), p["p50_ms"]))
    free = [p for p in clean if p["p50_ms"] <= NO_QUEUE_P50 * floors[p.get("repeat")]]
    if not free:
        return NoQueue()
    return NoQueue(len(free), max(p["rate"] for p in free), float(np.median([p["p99_ms"] for p in free])),
                   float(np.median([p["p99_ms"] / p["p50_ms"] for p in free])))


@dataclass(frozen=True)
class PauseFailure:
    """A session whose capacity at a bound was set by a pause: the probe at its lowest failing rate kept its
    median where the session's lowest was, and failed on its tail or on iterations k6 had to drop."""

    repeat: int
    passed_rps: float  # the session's capacity: the highest rate it passed below that probe
    rate: float
    p99_ms: float
    p50_ms: float
    floor_p50_ms: float  # the session's lowest median
    dropped: int
    requests: int


def pause_failures(probes: pd.DataFrame, target: str, bound_ms: float) -> list[PauseFailure]:
    """Per session of ``target``, the probe that bounded its capacity at ``bound_ms`` (the lowest rate that
    failed it, with a lower rate that passed), where that probe failed by a pause, not a queue. Then the
    figure is the rate at which a short probe first caught one of the target's pauses: LiteLLM on 5 Dec, in
    14 of 18 sessions (a probe at 146 req/s read p99 294 ms at a median of 5.1 ms; its session's lowest 5.3)."""
    out = []
    mine = probes[(probes["target"] == target) & probes["p50_ms"].notna() & probes["p99_ms"].notna()]
    for repeat, session in mine.groupby("repeat"):
        passed = session["clean"].astype(bool) & (session["p99_ms"] <= bound_ms)
        failed = session[~passed].sort_values("rate")
        clean = session[session["clean"].astype(bool)]
        if failed.empty or clean.empty:
            continue
        hi = failed.iloc[0]
        below = session[passed & (session["rate"] < hi["rate"])]
        floor = float(clean["p50_ms"].min())
        # Failed on its tail or its drops, not on errors or a broken probe; its median did not move.
        by_tail = (not hi["problem"] or pd.isna(hi["problem"])) and hi["error_rate"] < MAX_ERROR_RATE
        if below.empty or not by_tail or hi["p50_ms"] > NO_QUEUE_P50 * floor:
            continue
        out.append(PauseFailure(int(repeat), float(below["rate"].max()), float(hi["rate"]), float(hi["p99_ms"]),
                                float(hi["p50_ms"]), floor, int(hi["dropped"] or 0), int(hi["requests"] or 0)))
    return out


def frontier(run: RunData) -> pd.DataFrame:
    """One row per target and bound: the frontier (``frontier.csv``). The baseline's row is the rig's."""
    per_bound: dict[tuple[str, float], list[dict]] = {}
    per_target: dict[str, list[dict]] = {}
    for target, repeat, data in _searches(run):
        per_target.setdefault(target, []).extend({**p, "repeat": repeat} for p in data.get("probes", []))
        for b in data.get("bounds", []):
            per_bound.setdefault((target, float(b["bound_ms"])), []).append(b)
    # Where the rig alone met each bound (its own search): a target's tail above that rate is the rig's too,
    # never evidence of the target's stalls. No rig search recorded: no limit.
    rig_rps = {float(b["bound_ms"]): b["capacity_rps"] or 0.0 for b in (run.rig.frontier or {}).get("bounds", [])}
    rows = []
    for (target, bound), results in sorted(per_bound.items()):
        rig_bound = all(r["rig_bound"] for r in results)
        limited = [r for r in results if not r["rig_bound"]]
        values = [r["capacity_rps"] for r in limited if r["capacity_rps"] is not None]
        # The lowest repeat counts: a capacity is what the target sustained every time.
        if rig_bound:
            chosen = min(results, key=lambda r: r["capacity_rps"] if r["capacity_rps"] is not None else 0)
        elif len(values) == len(limited):
            chosen = min(limited, key=lambda r: r["capacity_rps"])
        else:
            chosen = next(r for r in limited if r["capacity_rps"] is None)
        all_values = [r["capacity_rps"] for r in results if r["capacity_rps"] is not None]
        notes = sorted({r["note"] for r in results if r.get("note")})
        above = [rate for r in results for rate in r.get("passed_above_rps") or []]
        # Every repeat's capacity lies below its lowest failing rate: the highest of those tops the range. Where
        # a repeat failed nowhere (rig-bound there, or its budget ran out), the top is its figure, "at least".
        tops = [r["failing_rps"] if r["failing_rps"] is not None and not r["rig_bound"] else r["capacity_rps"]
                for r in results]
        tops = [t for t in tops if t is not None]
        nq = no_queue(per_target.get(target, []), rig_rps.get(bound))
        rows.append({
            "target": target, "p99_bound_ms": bound,
            "max_rps": chosen["capacity_rps"], "rig_bound": rig_bound, "repeats": len(results),
            "max_rps_low": min(all_values) if all_values else np.nan,
            "max_rps_high": max(all_values) if all_values else np.nan,
            "p99_at_max_ms": chosen["p99_at_capacity_ms"], "failing_rps": chosen["failing_rps"],
            "range_high_rps": max(tops) if tops else np.nan,
            "resolved": all(r["resolved"] for r in results), "note": "; ".join(notes) or None,
            # The p99 met the bound again above a failing rate: the quoted figure is not a stable one.
            "passed_above_rps": max(above) if above else np.nan,
            "no_queue_probes": nq.probes,
            "no_queue_rps": nq.top_rps if nq.top_rps is not None else np.nan,
            "no_queue_p99_ms": nq.p99_ms if nq.p99_ms is not None else np.nan,
            # Never for the rig's own row: it is the reference, and rig-bound rows are "at least" already.
            "stall_bound": bool(not rig_bound and nq.stalls(bound)),
        })
    return pd.DataFrame(rows, columns=FRONTIER_COLUMNS)


CAPACITY_COLUMNS = ["target", "capacity_rps", "capacity_rig_bound", "capacity_at_least_rps", "capacity_bound_ms",
                    "capacity_below_rps", "capacity_stall_bound", "capacity_no_queue_p99_ms",
                    "capacity_no_queue_rps", "capacity_no_queue_probes", "capacity_next_bound_ms", "capacity_next_rps",
                    "capacity_next_rig_bound", "capacity_next_range_high_rps"]
NEXT_COLUMNS = CAPACITY_COLUMNS[-4:]


def next_bound(front: pd.DataFrame, target: str, bound: float) -> dict:
    """The capacity at the first looser bound the target's stalls do not reach (and that it met)."""
    looser = front[(front["target"] == target) & (front["p99_bound_ms"] > bound)].sort_values("p99_bound_ms")
    for r in looser.to_dict("records"):
        if not r["stall_bound"] and pd.notna(r["max_rps"]):
            return {"capacity_next_bound_ms": r["p99_bound_ms"], "capacity_next_rps": r["max_rps"],
                    "capacity_next_rig_bound": bool(r["rig_bound"]),
                    "capacity_next_range_high_rps": np.nan if r["rig_bound"] else r["range_high_rps"]}
    return NO_NEXT_BOUND


NO_NEXT_BOUND = {"capacity_next_bound_ms": np.nan, "capacity_next_rps": np.nan, "capacity_next_rig_bound": pd.NA,
                 "capacity_next_range_high_rps": np.nan}


def capacity_columns(front: pd.DataFrame, default_bound_ms: float | None) -> pd.DataFrame:
    """Per target, at the default bound: ``capacity_rps`` (empty when rig-bound or stall-bound),
    ``capacity_rig_bound``, and for a bound on the target's stall floor the evidence and the next bound's."""
    if front.empty or default_bound_ms is None:
        return pd.DataFrame(columns=CAPACITY_COLUMNS)
    at = front[front["p99_bound_ms"] == float(default_bound_ms)]
    rig_bound, stalls = at["rig_bound"].astype(bool), at["stall_bound"].astype(bool)
    out = pd.DataFrame({
        "target": at["target"],
        # Never a capacity figure for a rig-bound target (only "at least"), nor for a bound its stalls reach.
        "capacity_rps": at["max_rps"].where(~rig_bound & ~stalls),
        "capacity_rig_bound": rig_bound,
        "capacity_at_least_rps": at["max_rps"].where(rig_bound),
        "capacity_bound_ms": at["p99_bound_ms"],
        # Nothing met the bound: the capacity is below the lowest rate tried (the lowest that failed).
        "capacity_below_rps": at["failing_rps"].where(at["max_rps"].isna() & ~stalls),
        "capacity_stall_bound": stalls,
        "capacity_no_queue_p99_ms": at["no_queue_p99_ms"].where(stalls),
        "capacity_no_queue_rps": at["no_queue_rps"].where(stalls),
        "capacity_no_queue_probes": at["no_queue_probes"].where(stalls),
    }).reset_index(drop=True)
    nxt = [next_bound(front, t, float(default_bound_ms)) if stall else NO_NEXT_BOUND
           for t, stall in zip(out["target"], out["capacity_stall_bound"], strict=True)]
    return pd.concat([out, pd.DataFrame(nxt, columns=NEXT_COLUMNS)], axis=1)[CAPACITY_COLUMNS]
