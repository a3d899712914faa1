"""What the run loop (:mod:`aigw_bench.run.loop`) needs from an engine: how k6 and the mock are
reached in one place (this machine; a stack's EC2 runner over SSM; a stack's k6-operator), and what
that place adds to the manifest. Chosen once, by the command line; the loop never asks which it is.

The loop owns the algorithm: plan, preflight, run directory, manifest, the rig of each place, every
target's session in interleaved order, the steps, outcomes written as they end, Ctrl-C. An engine
supplies the sessions (a :class:`aigw_bench.measure.driver.Driver` with the mock and the target
ready) and says where things are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigw_bench.measure.driver import Driver
from aigw_bench.measure.events import EventSink, ignore
from aigw_bench.run.plan import RunPlan
from schema.catalog import Gateway
from schema.manifest import Manifest, RigRecord
from schema.results import Outcome
from schema.scenarios import Profile


@dataclass
class RunContext:
    """What every hook of an engine may need about the run it serves (set by :meth:`Engine.begin`)."""

    plan: RunPlan
    run_dir: Path
    run_id: str
    emit: EventSink = ignore


@dataclass
class Description:
    """The engine's part of the manifest."""

    targets: dict[str, dict[str, Any]] = field(default_factory=dict)  # per target: fields beyond the catalog's
    mock: dict[str, Any] = field(default_factory=dict)
    cpu_pinning: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    cloud: dict[str, dict[str, Any]] | None = None
    cost: dict[str, Any] | None = None
    noise: dict[str, Any] | None = None  # the noise guard's settings and what the wait before the run saw
    setting: list[tuple[str, str]] = field(default_factory=list)  # what the terminal shows at the start
    where: str = ""  # how the terminal says where the run happens ("" here, " on AWS, cloud sizes")


class Engine(ABC):
    name: str  # the manifest's "engine": local, ec2, operator
    environment: str  # the manifest's "environment": local, cloud
    where: Profile  # whose sizes the suites and scenarios use
    interrupt_note: str = ""  # what an interrupted session's reason adds (what the engine cleaned up)
    not_runnable_hint: str = ""  # what to do when no selected target can run with this engine

    ctx: RunContext

    # ----------------------------------------------------------------- before anything starts
    def validate(self, plan: RunPlan) -> None:  # noqa: B027 (a hook: most engines accept every plan)
        """Problems of the plan on this engine (e.g. a pacing profile a stack's mock cannot serve)."""

    def locks(self, plan: RunPlan) -> list[tuple[Path, str]]:
        """Locks the run holds besides its results directory's (path, what it guards in words): the rig's
        when two runs at once would collide on it."""
        return []

    def prepare(self, emit: EventSink) -> None:  # noqa: B027
        """Before the preflight: e.g. stop what an earlier, killed run left behind."""

    @abstractmethod
    def preflight(self, plan: RunPlan) -> None:
        """Everything the run needs is there and free; raises before anything starts."""

    def run_id(self, run_dir: Path) -> str:
        return run_dir.name

    def begin(self, ctx: RunContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def describe(self, plan: RunPlan) -> Description: ...

    # ----------------------------------------------------------------------------- the rig
    @abstractmethod
    def places(self) -> list[str]:
        """Where a rig is measured, in order: one per mock and set of load generators."""

    @abstractmethod
    def place_of(self, target: Gateway) -> str: ...

    def rig_dir(self, place: str) -> Path:
        return self.ctx.run_dir / "rig"

    def rig_label(self, place: str) -> str:
        return "rig"

    @abstractmethod
    def rig_base(self, place: str) -> dict[str, Any]:
        """What the rig record says before it is measured: mock, profile, CPU plan, stack."""

    @abstractmethod
    def rig_session(self, place: str) -> AbstractContextManager[Driver]:
        """The mock of ``place`` up and answering, as a Driver whose target is the mock itself. Engine
        faults become :class:`aigw_bench.measure.driver.SessionLost`."""

    def combine_rigs(self, manifest: Manifest, rigs: dict[str, RigRecord]) -> RigRecord:
        """The run's rig (the manifest's ``rig``) from each place's."""
        return next(iter(rigs.values()))

    # ------------------------------------------------------------------------ one target
    def not_runnable(self, target: Gateway) -> str | None:
        """Why the target cannot run with this engine, or None."""
        return None

    @abstractmethod
    def session(self, target: Gateway, repeat: int, work: Path, outcome: Outcome) -> AbstractContextManager[Driver]:
        """The mock and ``target`` ready to measure, as a Driver; everything stopped on the way out. Faults
        of the engine become SessionLost; what the session learnt goes into ``outcome.evidence``."""

    def session_files(self, work: Path, outcome: Outcome) -> None:  # noqa: B027
        """Files of the session's own to list in the outcome (e.g. the gateway's log)."""

    def finish(self, manifest: Manifest, seconds: float) -> None:  # noqa: B027
        """After the last session, also when interrupted: put things back, add the run's cost."""

