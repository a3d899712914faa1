"""The expected duration and cost of a cloud plan, printed before anything starts.

Cost is stack-hours at each stack's hourly cost from the pinned price table (components/prices.py:
nodes, volumes, control plane, NAT, NLBs; the program exports it as ``hourly_cost_usd``, and for a
matrix it is computed from the stack file before deploying). Durations are the scenario's own
(warm-up + measurement, per target and repeat) plus fixed allowances for what the rig cannot know in
advance; those allowances are assumptions, printed as such, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Allowances (assumed, not measured here): starting k6 over SSM and uploading its results; a
# TestRun's initializer, image pulls on fresh nodes and starter; `pulumi up` of a whole stack (EKS
# control plane ~10-15 min, node groups, charts) and `pulumi destroy`.
START_ALLOWANCE_S = {"ec2": 60.0, "operator": 120.0}
DEPLOY_ALLOWANCE_S = 30 * 60.0
DESTROY_ALLOWANCE_S = 15 * 60.0


@dataclass(frozen=True)
class StackCost:
    stack: str
    hourly_usd: float | None  # None: unknown (the stack reports none)


@dataclass
class PlanEstimate:
    seconds: float
    usd: float | None
    lines: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    def text(self) -> str:
        cost = f"${self.usd:,.2f}" if self.usd is not None else "unknown (a stack reports no hourly cost)"
        head = f"plan: about {_duration(self.seconds)}, about {cost} at on-demand prices"
        return "\n".join([head, *(f"  {line}" for line in self.lines),
                          *(f"  assumed: {a}" for a in self.assumptions)])


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{max(minutes, 1)} min"


def _hourly(stack: StackCost) -> str:
    return f"${stack.hourly_usd:.4f}/h" if stack.hourly_usd is not None else "hourly cost unknown"


def _per_target_seconds(engine: str, warmup: float, duration: float) -> float:
    # The operator runs the warm-up as a TestRun of its own: a second start.
    starts = 2 if engine == "operator" and warmup > 0 else 1
    return warmup + duration + starts * START_ALLOWANCE_S[engine]


def estimate_run(stacks: list[StackCost], *, engine: str, warmup: float, duration: float,
                 repeats: int) -> PlanEstimate:
    """`cloud run`: the targets one after another; every stack of the plan is up (and billed) all along."""
    per_target = _per_target_seconds(engine, warmup, duration)
    seconds = per_target * len(stacks) * repeats
    hourly = [s.hourly_usd for s in stacks]
    usd = None if None in hourly else sum(hourly) * seconds / 3600  # type: ignore[arg-type]
    lines = [f"{s.stack}: {repeats} x {_duration(per_target)}, {_hourly(s)} while the plan runs" for s in stacks]
    return PlanEstimate(seconds, usd, lines, [
        f"{START_ALLOWANCE_S[engine]:.0f} s to start each k6 run ({engine} engine) on top of warm-up + duration"])


def estimate_matrix(stacks: list[StackCost], *, engine: str, warmup: float, duration: float,
                    repeats: int) -> PlanEstimate:
    """`cloud matrix`: each stack deployed, measured and destroyed, the stacks in parallel."""
    bench = _per_target_seconds(engine, warmup, duration) * repeats
    per_stack = DEPLOY_ALLOWANCE_S + bench + DESTROY_ALLOWANCE_S
    hourly = [s.hourly_usd for s in stacks]
    usd = None if None in hourly else sum(hourly) * per_stack / 3600  # type: ignore[arg-type]
    lines = [f"{s.stack}: up + {repeats} x run + destroy ~ {_duration(per_stack)}, {_hourly(s)}" for s in stacks]
    return PlanEstimate(per_stack, usd, lines, [
        f"{DEPLOY_ALLOWANCE_S / 60:.0f} min per `pulumi up`, {DESTROY_ALLOWANCE_S / 60:.0f} min per `pulumi destroy`",
        f"{START_ALLOWANCE_S[engine]:.0f} s to start each k6 run ({engine} engine)"])
