"""A run's plan: what is measured (:class:`Measurement`), on which targets, in which order, with the
rig's own sizes, and where the results go. The same for every engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from aigw_bench.measure.plan import Knobs, Measurement, measurement
from schema.catalog import Gateway, variant_targets
from schema.errors import ConfigError
from schema.scenarios import Profile
from schema.suites import RigSizes, load_rig_sizes

T = TypeVar("T")


def interleaved_order(targets: list[T], repeats: int) -> list[tuple[int, T]]:
    """(repeat, target) pairs: each repeat runs every target once, starting one further along the list,
    so slow drifts of the machine (heat, caches, noisy neighbours) do not always hit the same target."""
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1 (got {repeats})")
    n = len(targets)
    return [(r, targets[(i + r - 1) % n]) for r in range(1, repeats + 1) for i in range(n)]


@dataclass
class RunPlan:
    measurement: Measurement
    targets: list[Gateway]
    rig: RigSizes
    results_root: Path
    keep_raw: bool = True
    command_line: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # entries without a variant of the suite's variants

    def order(self) -> list[tuple[int, Gateway]]:
        return interleaved_order(self.targets, self.measurement.repeats)


def plan_run(where: Profile, *, targets: list[Gateway], scenario: str | None, suite: str | None,
             mock_profile: str | None, knobs: Knobs, repeats: int | None, results_root: Path,
             keep_raw: bool = True, command_line: list[str] | None = None,
             variants: list[str] | None = None) -> RunPlan:
    """A validated plan with the sizes of ``where``; every problem fails here, before anything starts. A suite
    that runs variants (``variants:`` in its file) measures each entry's variants of it (``variants``: some)."""
    m = measurement(where, scenario=scenario, suite=suite, mock_profile=mock_profile, knobs=knobs, repeats=repeats)
    chosen, left_out = variant_targets(targets, m.suite.variants if m.suite else None, variants)
    return RunPlan(measurement=m, targets=chosen, rig=load_rig_sizes(where), results_root=results_root,
                   keep_raw=keep_raw, command_line=command_line or [], left_out=left_out)

