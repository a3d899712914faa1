"""The capacity search: the highest arrival rate a target sustains under each p99 bound.

Open model (k6 ``constant-arrival-rate``): the load does not slow down with the target, so a slow
target shows its queue in its tail instead of hiding it. A rate *passes* a bound when the measured
p99 is within the bound, fewer than 0.1% of requests failed, k6 dropped no iteration and delivered
the rate. The search steps the rate up (x ``growth``) until a rate fails the loosest bound, then
bisects (geometric mid-points) the bracket of each bound, default bound first, until the bracket is
narrower than ``resolution`` or the step budget is spent. Every probe is kept: the frontier is drawn
from all of them.

The rate never goes above the rig's reach (a fraction of its measured ceiling): a target that
passes there is *rig-bound*, its capacity "at least" that rate, never a figure of its own.

This module decides rates and verdicts only; running a probe is the caller's (local processes or
the cloud runner), so the same search runs in both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from schema.manifest import MAX_ERROR_RATE, RIG_BOUND_FRACTION
from schema.suites import CapacitySizes

# RIG_BOUND_FRACTION: a target whose throughput reaches this share of the rig's measured ceiling is
# rig-bound (the load generator and the mock, not the target, may have set the figure; it is reported
# as "at least"). The capacity search never probes above it.
__all__ = ["MAX_ERROR_RATE", "RIG_BOUND_FRACTION", "BoundResult", "CapacitySearch", "Probe"]
# A probe must deliver this share of the offered rate (k6 short of VUs, or requests stuck in a queue
# longer than the step, deliver less than asked).
MIN_DELIVERED = 0.9


@dataclass(frozen=True)
class Probe:
    """One measured rate."""

    rate: float
    p99_ms: float | None  # None: no successful request to measure
    p50_ms: float | None
    error_rate: float
    dropped: int
    achieved_rps: float
    requests: int
    problem: str | None = None  # the probe itself failed (k6 error, target died): never passes
    foreign_cores: float | None = None  # other work on the machine during the probe (None: not measured)
    disturbed: bool = False  # still disturbed after being measured again: its verdict is not trusted

    @property
    def clean(self) -> bool:
        return (self.problem is None and self.p99_ms is not None and self.error_rate < MAX_ERROR_RATE
                and self.dropped == 0 and self.achieved_rps >= MIN_DELIVERED * self.rate)

    def passes(self, bound_ms: float) -> bool:
        return self.clean and self.p99_ms is not None and self.p99_ms <= bound_ms

    def why_not(self, bound_ms: float) -> str | None:
        if self.problem:
            return self.problem
        if self.p99_ms is None:
            return "no successful request"
        if self.error_rate >= MAX_ERROR_RATE:
            return f"{self.error_rate * 100:.2f}% errors"
        if self.dropped:
            return f"{self.dropped} iterations dropped"
        if self.achieved_rps < MIN_DELIVERED * self.rate:
            return f"delivered {self.achieved_rps:.0f} of {self.rate:.0f} req/s"
        if self.p99_ms > bound_ms:
            return f"p99 {self.p99_ms:.1f} ms > {bound_ms:g} ms"
        return None


@dataclass(frozen=True)
class BoundResult:
    """The capacity under one p99 bound."""

    bound_ms: float
    capacity_rps: float | None  # highest passing rate below the lowest failing one; None: none passed
    rig_bound: bool  # passed at the rig's reach: capacity is at least ``capacity_rps``
    failing_rps: float | None  # the lowest rate that failed this bound (the bracket's top)
    p99_at_capacity_ms: float | None
    resolved: bool  # bracket narrower than the resolution (or rig-bound)
    note: str | None = None
    # Rates that met the bound above the lowest failing one: the target's p99 swings from step to
    # step (pauses, noise), so the capacity quoted (the lower side) is not a stable figure.
    passed_above_rps: list[float] = field(default_factory=list)


@dataclass
class CapacitySearch:
    sizes: CapacitySizes
    reach_rps: float  # never probe above this (the rig's reach)
    start_rps: float | None = None  # a hint (e.g. half the closed-loop throughput)
    # Per bound, the rig's own reach: RIG_BOUND_FRACTION x the rate the rig alone sustains under that
    # bound. A target passing there is rig-bound for that bound, whatever the global reach.
    reach_by_bound: dict[float, float] = field(default_factory=dict)
    probes: list[Probe] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reach = max(1, math.floor(self.reach_rps))
        hint = self.start_rps if self.start_rps else self.sizes.min_rate
        self._start = self._clip(hint)

    # ----------------------------------------------------------------------- bookkeeping
    def _clip(self, rate: float) -> int:
        return int(min(self.reach, max(math.ceil(self.sizes.min_rate), round(rate))))

    def _tried(self, rate: int) -> bool:
        return any(p.rate == rate for p in self.probes)

    def _bracket(self, bound: float) -> tuple[Probe | None, Probe | None]:
        failing = sorted((p for p in self.probes if not p.passes(bound)), key=lambda p: p.rate)
        hi = failing[0] if failing else None
        passing = [p for p in self.probes if p.passes(bound) and (hi is None or p.rate < hi.rate)]
        lo = max(passing, key=lambda p: p.rate) if passing else None
        return lo, hi

    def _bound_reach(self, bound: float) -> float:
        return min(self.reach, self.reach_by_bound.get(bound, self.reach))

    def _bounds_in_order(self) -> list[float]:
        others = sorted((b for b in self.sizes.bounds_ms if b != self.sizes.default_bound_ms), reverse=True)
        return [self.sizes.default_bound_ms, *others]

    @property
    def budget_left(self) -> int:
        return self.sizes.max_steps - len(self.probes)

    # ------------------------------------------------------------------------ decisions
    def next_rate(self) -> int | None:
        """The next rate to probe, or None when the search is done."""
        if self.budget_left <= 0:
            return None
        loosest = max(self.sizes.bounds_ms)
        if not self.probes:
            return self._start
        # Step up while every probe passes the loosest bound and the rig's reach is not reached.
        if all(p.passes(loosest) for p in self.probes):
            top = max(p.rate for p in self.probes)
            if top >= self.reach:
                return self._refine()
            return self._clip(top * self.sizes.growth)
        return self._refine()

    def _refine(self) -> int | None:
        for bound in self._bounds_in_order():
            lo, hi = self._bracket(bound)
            if lo is None:
                # Nothing passed this bound yet: step down from the lowest failing rate.
                lowest = min(p.rate for p in self.probes)
                rate = self._clip(lowest / self.sizes.growth)
                if rate < lowest and not self._tried(rate):
                    return rate
                continue
            if hi is None or lo.rate >= self._bound_reach(bound):
                continue  # passed up to the rig's reach: rig-bound, nothing to refine
            if hi.rate / lo.rate <= 1 + self.sizes.resolution:
                continue
            mid = self._clip(math.sqrt(lo.rate * hi.rate))
            if lo.rate < mid < hi.rate and not self._tried(mid):
                return mid
        return None

    def add(self, probe: Probe) -> None:
        self.probes.append(probe)

    # ------------------------------------------------------------------------- results
    def results(self) -> list[BoundResult]:
        out = []
        for bound in self.sizes.bounds_ms:
            lo, hi = self._bracket(bound)
            rig_bound = lo is not None and lo.rate >= self._bound_reach(bound)
            resolved = rig_bound or (lo is not None and hi is not None
                                     and hi.rate / lo.rate <= 1 + self.sizes.resolution)
            above = sorted(p.rate for p in self.probes if p.passes(bound) and hi is not None and p.rate > hi.rate)
            note = None
            if lo is None and above:
                note = f"no rate below the lowest failing one ({hi.rate:g} req/s) met the bound"  # type: ignore[union-attr]
            elif lo is None:
                note = (f"no probed rate met the bound (lowest tried {min(p.rate for p in self.probes):g} req/s)"
                        if self.probes else "not measured")
            elif hi is None and not rig_bound:
                note = "passed at every rate tried; the step budget ran out before the rig's reach"
            elif not resolved:
                note = f"step budget spent with the bracket {lo.rate:g}-{hi.rate:g} req/s"  # type: ignore[union-attr]
            if above:
                note = ((note + "; ") if note else "") + (
                    f"noisy: passed again at {', '.join(f'{r:g}' for r in sorted(above))} req/s above a failing rate")
            out.append(BoundResult(
                bound_ms=bound, capacity_rps=lo.rate if lo else None, rig_bound=rig_bound,
                failing_rps=hi.rate if hi else None, p99_at_capacity_ms=lo.p99_ms if lo else None,
                resolved=resolved, note=note, passed_above_rps=above))
        return out

    def record(self) -> dict:
        """Everything a report needs, as plain data (written into the step's record)."""
        return {
            "reach_rps": self.reach,
            "reach_by_bound": {str(k): v for k, v in self.reach_by_bound.items()},
            "start_rps": self._start,
            "sizes": self.sizes.model_dump(),
            "probes": [asdict(p) | {"clean": p.clean} for p in self.probes],
            "bounds": [asdict(r) for r in self.results()],
        }
