"""What a run tells the person at the terminal while it goes, as typed events: the engines and the
steps make them, one sink (the CLI's progress display, a test's list) takes them. A misspelt event is
a NameError where it is made, never an event silently dropped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: the events carry them, nothing here uses them
    from aigw_bench.measure.plan import Measurement
    from aigw_bench.measure.search import Probe
    from schema.manifest import RigRecord
    from schema.results import Outcome


@dataclass(frozen=True)
class Reaped:
    """Processes an earlier, killed run left behind were stopped before this one."""

    groups: list[str]


@dataclass(frozen=True)
class LockTakenOver:
    """A run lock was left by a run that died holding it (SIGKILL, a machine that stopped): this run took it."""

    what: str
    holder: str  # who held it, in words


@dataclass(frozen=True)
class RunStarted:
    run_dir: Path
    total: int  # sessions (target x repeat)
    measurement: Measurement
    where: str  # "" here, or e.g. " on AWS, cloud sizes"
    setting: list[tuple[str, str]] = field(default_factory=list)  # what the engine runs on, line by line


@dataclass(frozen=True)
class TargetStarted:
    target: str
    repeat: int
    index: int  # 0 for the rig
    total: int


@dataclass(frozen=True)
class RigDone:
    rig: RigRecord


@dataclass(frozen=True)
class Phase:
    target: str
    phase: str


@dataclass(frozen=True)
class ProbeDone:
    """One capacity probe measured."""

    target: str
    rate: int
    probe: Probe
    bound_ms: float


@dataclass(frozen=True)
class Tick:
    """A measurement in progress (about once a second)."""

    target: str
    label: str
    warmup: bool
    elapsed: float
    duration: float
    requests: int | None = None
    rps: float | None = None
    ok_rate: float | None = None


@dataclass(frozen=True)
class TargetDone:
    outcome: Outcome
    index: int
    total: int


Event = Reaped | LockTakenOver | RunStarted | TargetStarted | RigDone | Phase | ProbeDone | Tick | TargetDone
EventSink = Callable[[Event], Any]


def ignore(_event: Event) -> None:
    """The sink of a run nobody watches."""
