"""What a measurement step needs from the place it runs in: the local machine or the EKS environment.

The steps (:mod:`aigw_bench.measure.steps`) decide what to send, for how long, and what the results
mean; a :class:`Driver` only knows how to start k6 (a local process, or SSM Run Command on the
cloud runner), how to read the processes' CPU and memory, how to restart the mock with another
pacing profile, and how to run the streaming probe. The same step code thus runs in both places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aigw_bench.measure.events import Event, EventSink, Phase, Tick
from k6_scripts.render import RenderTarget
from schema.faults import FaultPlan
from schema.mock import PacingProfile

# Where requests go: the chat route's full URL, the headers and the model name of the body.
Endpoint = RenderTarget


@dataclass(frozen=True)
class K6Job:
    """One k6 run: a rendered script, how long it measures, and where its files go."""

    label: str  # for the progress display, e.g. "capacity 350 req/s"
    dir: Path  # the job's files: script.js, summary.json, k6.log, raw.csv.gz, resources.csv
    source: str
    duration: float  # measured seconds (the script's AIGW_DURATION)
    warmup: float = 0.0  # seconds of the same script before, excluded from every result
    raw: bool = False  # k6's per-request CSV (raw.csv.gz)
    request_timeout: float = 60.0
    # Hints for drivers with several load generators or remote metrics (the local one ignores them):
    split: bool = True  # the load may be split across load generators (not at concurrency 1)
    exact_resources: bool = False  # the step reads the run's CPU seconds: measure them over exactly its window
    max_vus: int | None = None  # the most VUs the script uses: no more load generators than that
    warmup_vus: int | None = None  # the same for its warm-up (default: max_vus)
    # AIGW_STEADY of the warm-up: it runs until the target is steady, ``warmup`` being its longest
    # (k6_scripts/templates/paired.js.j2); None: a warm-up of exactly ``warmup`` seconds.
    steady: str | None = None
    # A window disturbed by other work may be measured again; not a faults scenario's (the mock's counts and
    # its plan's clock started with the first window: a second one would count every request id twice).
    remeasure: bool = True


@dataclass
class K6Run:
    """What a k6 run left behind. ``summary`` is None when summary.json is missing or cut short."""

    dir: Path
    exit_code: int | None
    seconds: float
    files: dict[str, str]  # kind -> file name inside ``dir``
    summary: dict[str, Any] | None
    summary_problem: str | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)  # t_s, role, cpu_cores, rss_mib, ...
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # role -> CPU time used during the run
    warmup_log: str = ""  # the warm-up's k6 log (a steady warm-up says there when and why it stopped)
    # Other work on the machine during the window (aigw_bench/local/noise.py), where the engine can see it.
    noise: dict[str, Any] | None = None

    @property
    def thresholds_passed(self) -> bool | None:
        if self.exit_code is None:
            return None
        return self.exit_code == 0


class ReportsProgress:
    """What a Driver tells the terminal, always in the name of its ``target``."""

    target: Endpoint
    on_event: EventSink

    def emit(self, event: Event) -> None:
        self.on_event(event)

    def phase(self, text: str) -> None:
        self.emit(Phase(target=self.target.name, phase=text))

    def tick(self, label: str, elapsed: float, duration: float, warmup: bool = False, **live: Any) -> None:
        self.emit(Tick(target=self.target.name, label=label, warmup=warmup, elapsed=elapsed, duration=duration,
                       **live))


class SessionLost(Exception):
    """The session cannot go on: the target or the mock died, or k6 cannot run. Carries the evidence."""

    def __init__(self, status: str, reason: str, **evidence: Any):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.evidence = evidence


class ResourcesUnavailable(Exception):
    """The processes' CPU and memory cannot be read (e.g. the cloud's Prometheus does not answer). The
    step that needs them records why; the session goes on."""

    def __init__(self, reason: str, **evidence: Any):
        super().__init__(reason)
        self.reason = reason
        self.evidence = evidence


@dataclass(frozen=True)
class StreamJob:
    """The streaming probe: ``concurrency`` streams at a time on each side, for ``duration`` seconds."""

    label: str
    dir: Path
    body: str
    concurrency: int
    duration: float
    request_timeout: float = 120.0


@dataclass(frozen=True)
class ToolJob:
    """A published harness's own load tool, run as published after k6's measurement (hey): its name, its
    arguments, and the file its output goes to (``dir / f"{tool}.txt"``)."""

    label: str
    dir: Path
    tool: str
    args: list[str]
    limit: float  # seconds before it is stopped

    @property
    def output(self) -> Path:
        return self.dir / f"{self.tool}.txt"


class ToolUnavailable(Exception):
    """The tool cannot run where this driver runs k6 (not installed; not on the cloud's runners)."""


class Driver(Protocol):
    """One target's session: the mock and the target are up and answered the benchmark's request."""

    environment: str  # "local" or "cloud"
    direct: Endpoint  # the mock itself
    target: Endpoint  # the mock through the target (the same as direct for the baseline)
    k6_runs: list[K6Run]  # every measured k6 run of the session so far (what is kept when it is cut short)

    def run_k6(self, job: K6Job) -> K6Run:
        """Run k6 to the end (warm-up first, if any). Raises SessionLost if the target or mock died."""
        ...

    def idle_resources(self, seconds: float) -> list[dict[str, Any]]:
        """CPU and memory samples of the processes while nothing is sent (efficiency: idle, after).
        Raises ResourcesUnavailable if they cannot be read."""
        ...

    def use_profile(self, profile: PacingProfile) -> None:
        """Restart the mock with another pacing profile; returns when it answers again."""
        ...

    def run_stream_probe(self, job: StreamJob) -> Path:
        """Run the streaming probe against ``direct`` and ``target`` at once; returns its CSV."""
        ...

    def use_fault_plan(self, plan: FaultPlan, profile: PacingProfile, warm_body: str) -> None:
        """Restart the mock serving ``plan`` with ``profile``'s pacing (its second, healthy instance keeps
        running); returns when it
        answers and one request through the target (``warm_body``, whatever its answer) has replaced the
        target's connections to the mock that was stopped. Raises SessionLost if the mock cannot start."""
        ...

    def reset_upstream(self) -> None:
        """Clear both mocks' attempt records and start their plans' clocks (POST /__aigw/reset)."""
        ...

    def upstream_records(self) -> dict[str, dict[str, Any]]:
        """Both mocks' attempt records (GET /__aigw/requests) by role: ``mock``, ``fallback``."""
        ...

    def run_tool(self, job: ToolJob) -> int | None:
        """Run a load tool to the end on the load generator's CPUs, its output in ``job.output``; returns its
        exit code. Raises ToolUnavailable where it cannot run, SessionLost if the target or mock died."""
        ...

    def emit(self, event: Event) -> None:
        """Progress for the terminal (phases, ticks, probes)."""
        ...
