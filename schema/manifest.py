"""The run manifest (``manifest.json``): what was run, on what, with which versions; written by every
engine (local processes, the EC2 runner, the k6-operator), read by the analysis.

One model, versioned by ``format``: format 2 is today's (suite runs, step records, ``main_step``);
format 1 manifests (single scenarios, before the suites) load with their missing fields derived.
Records keep fields this version does not know (``extra="allow"``), so a report rebuilt by an
older or newer version loses nothing that was written.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMAT = 2
# A target whose throughput comes within this fraction of the rig's ceiling (or a capacity within it
# of the rig's own frontier) measured the rig, not the target: its figure reads "at least".
RIG_BOUND_FRACTION = 0.8
# A measurement with a larger share of failed requests does not pass (a capacity probe, a closed-loop
# level, the efficiency step's fixed rate).
MAX_ERROR_RATE = 0.001


class Record(BaseModel):
    """A part of the manifest: typed where the analysis reads it, open to fields it does not."""

    model_config = ConfigDict(extra="allow")


class ScenarioRecord(Record):
    name: str
    executor: str
    description: str = ""
    source: str | None = None
    mock_profile: str = "instant"
    report: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


class SuiteRecord(Record):
    name: str
    description: str = ""
    profile: str = "local"
    sizes: dict[str, Any] | None = None


class OrderEntry(Record):
    repeat: int
    target: str


class TargetRecord(Record):
    """A catalog entry as the run used it, with what the engine found."""

    title: str = ""
    role: str = Field("gateway", description="baseline, floor or gateway (the catalog's)")
    version: str | None = Field(None, description="pinned in the catalog, or deployed on the stack")
    source: str | None = Field(None, description="where the pinned artefact comes from")
    route: str | None = Field(None, description="the chat route's path")
    model: str | None = Field(None, description="the model name of the request body")
    runnable_locally: bool | None = Field(None, description="local engine: whether the catalog lets it run here")
    reason: str | None = Field(None, description="local engine: why it cannot run here")
    version_check: dict[str, Any] | None = Field(None, description="local engine: pinned, installed, matches_pin")
    stack: str | None = Field(None, description="cloud engines: the stack it was deployed with")
    services: dict[str, dict[str, Any]] | None = Field(None, description="local engine: the backing services "
                                                       "started beside it (name -> title, source, port, definition, "
                                                       "version_check)")


class MockRecord(Record):
    name: str | None = None
    title: str | None = None
    version: str | None = None
    source: str | None = None
    version_check: dict[str, Any] | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    streaming_profile: dict[str, Any] | None = None
    image: str | None = None
    deployed_profile: str | None = None
    differs_between_stacks: bool | None = None


class CpuPinning(Record):
    loadgen: list[int] | None = None
    mock: list[int] | None = None
    gateway: list[int] | None = None
    note: str = ""


class RigRecord(Record):
    """The rig's own measurement: k6 straight to the mock (ceiling, floor and, for a suite, frontier)."""

    mock: str | None = None
    profile: str | None = None
    cpu: str | None = None
    dir: str | None = None
    stack: str | None = None
    stacks: list[str] | None = None
    error: str | None = None
    status: str | None = None
    evidence: dict[str, Any] | None = None
    ceiling_profile: str | None = Field(None, description="the pacing the ceiling was measured with (unpaced)")
    frontier: dict[str, Any] | None = Field(None, description="suite runs: the rig's own capacity search")
    ceiling_rps: float | None = Field(None, description="the most requests per second k6 and the mock delivered")
    floor_ms: dict[str, float | None] = Field(default_factory=dict, description="latency at concurrency 1: p50 ...")
    ceiling_error_rate: float | None = Field(None, description="share of the ceiling's requests not answered well")
    ceiling_p99_ms: float | None = Field(None, description="the ceiling's p99 (queueing: a closed loop)")
    ceiling_vus: int | None = Field(None, description="the ceiling's closed loop")
    loadgen_cpu_seconds: float | None = Field(None, description="k6's CPU during the ceiling")
    mock_cpu_seconds: float | None = Field(None, description="the mock's CPU during the ceiling")
    ceiling_seconds: float | None = Field(None, description="how long the ceiling measured")
    reach_rps: float | None = Field(None, description="RIG_BOUND_FRACTION x ceiling: the rig-bound line")
    sizes: dict[str, Any] | None = Field(None, description="k6_scripts/rig.yaml's sizes for the run's place")
    noise: dict[str, Any] | None = Field(None, description="other work on the machine in the ceiling's and the "
                                         "floor's windows (local engine)")

    @property
    def measured(self) -> bool:
        return self.error is None and bool(self.ceiling_rps)

    def with_reach(self) -> RigRecord:
        """The record with its reach (RIG_BOUND_FRACTION x ceiling) filled in, when it has a ceiling."""
        if not self.ceiling_rps:
            return self
        return self.model_copy(update={"reach_rps": RIG_BOUND_FRACTION * self.ceiling_rps})

    def reach_by_bound(self) -> dict[float, float]:
        """Per p99 bound, RIG_BOUND_FRACTION x what the rig alone sustained under it (its own frontier)."""
        bounds = (self.frontier or {}).get("bounds") or []
        return {float(b["bound_ms"]): RIG_BOUND_FRACTION * b["capacity_rps"] for b in bounds if b.get("capacity_rps")}


class Manifest(Record):
    kind: str = "aigw-bench run"
    format: int = FORMAT
    environment: str = "local"
    engine: str = "local"
    run_id: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    interrupted: bool | None = None
    stopped: str | None = None  # why the run stopped before its end (Ctrl-C, SIGTERM, a full or read-only disk)
    command_line: list[str] = Field(default_factory=list)
    scenario: ScenarioRecord
    suite: SuiteRecord | None = None
    main_step: str = ""
    repeats: int = 1
    order: list[OrderEntry] = Field(default_factory=list)
    targets: dict[str, TargetRecord] = Field(default_factory=dict)
    mock: MockRecord = Field(default_factory=MockRecord)
    cpu_pinning: CpuPinning = Field(default_factory=CpuPinning)
    machine: dict[str, Any] = Field(default_factory=dict)
    tools: dict[str, Any] = Field(default_factory=dict)
    git: dict[str, Any] = Field(default_factory=dict)
    rig: RigRecord | None = None
    cloud: dict[str, dict[str, Any]] | None = None
    cost: dict[str, Any] | None = None
    mock_restored: dict[str, str] | None = None
    noise: dict[str, Any] | None = Field(None, description="the noise guard: its settings, the wait before the run")

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Format 1 (one scenario per run, no steps): its main step is the scenario; engines before the
        k6-operator wrote none (local runs ran on this machine, cloud runs on the EC2 runner)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if not data.get("main_step"):
            scenario = data.get("scenario") or {}
            data["main_step"] = "seed" if data.get("suite") else scenario.get("name", "")
        if not data.get("engine"):
            data["engine"] = "ec2" if data.get("environment") == "cloud" else "local"
        return data

    @property
    def is_suite(self) -> bool:
        return self.suite is not None

    @property
    def rig_record(self) -> RigRecord:
        return self.rig or RigRecord()

    @property
    def baseline(self) -> str | None:
        return next((name for name, t in self.targets.items() if t.role == "baseline"), None)

    def roles(self) -> dict[str, str]:
        return {name: t.role for name, t in self.targets.items()}
