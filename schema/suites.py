"""Suites (``k6_scripts/suites/*.yaml``): the measurement method's steps and their sizes per profile.

A suite says what is measured per target (overhead, the published shape, the capacity frontier,
efficiency, streaming) and how long each part runs, with one set of sizes for this machine
(``local``) and one for the EKS environment (``cloud``). The code that runs the steps and judges
them is the same for both; only the sizes differ. Bad values fail here, naming the file and field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schema.base import REPO_DIR, format_validation_error, load_yaml
from schema.errors import ConfigError
from schema.faults import FAULTS_FILE, load_plans
from schema.scenarios import Profile, parse_duration

SUITE_DIR = REPO_DIR / "k6_scripts" / "suites"


class _Sizes(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("duration", "warmup", "step", "max_step", "idle", "after", "request_timeout", "settle",
                     mode="before", check_fields=False)
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("duration", "warmup", "step", "max_step", check_fields=False)
    @classmethod
    def _k6_minimum(cls, value: Any) -> Any:
        # k6 refuses scenarios shorter than a second (exit code 104); 0 turns a warm-up off.
        if value is not None and 0 < value < 1:
            raise ValueError("k6 runs last at least 1s (0 turns a warm-up off)")
        return value


class OverheadSizes(_Sizes):
    """Concurrency 1, the mock directly and through the target in alternating blocks of ``block`` seconds;
    the requests of each block's first ``settle`` seconds are kept apart (what the other side leaves
    behind lasts tens of milliseconds here: docs/method.md)."""

    duration: float = Field(gt=0, le=3600)
    warmup: float = Field(0, ge=0, le=600, description="the least warm-up")
    warmup_max: float | None = Field(None, gt=0, le=3600, description="warm up until the median through the "
                                     "target is steady, at most this long (none: exactly `warmup`)")
    steady_tolerance: float = Field(0.05, gt=0, lt=1, description="steady: each per-second median within this "
                                    "fraction of their mean")
    steady_seconds: int = Field(3, ge=2, le=60, description="steady: for this many seconds in a row")
    block: float = Field(0.5, ge=0.05, le=60, description="seconds with one side before switching to the other")
    settle: float = Field(0.1, ge=0.001, le=30, description="the first seconds of a block, kept apart (the "
                          "carry-over)")

    @field_validator("warmup_max", "block", mode="before")
    @classmethod
    def _max_seconds(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> OverheadSizes:
        if self.settle > self.block / 2:
            raise ValueError(f"settle ({self.settle:g} s) must be at most half of block ({self.block:g} s)")
        if self.duration < 4 * self.block:
            raise ValueError(f"duration ({self.duration:g} s) must hold at least two pairs of blocks "
                             f"(4 x block = {4 * self.block:g} s): the interval resamples pairs of blocks")
        if self.warmup_max is not None and self.warmup_max < self.warmup:
            raise ValueError(f"warmup_max ({self.warmup_max:g} s) must be at least warmup ({self.warmup:g} s)")
        return self

    def steady(self) -> str | None:
        """AIGW_STEADY for the warm-up (k6_scripts/templates/paired.js.j2), or None for a fixed one."""
        if self.warmup_max is None:
            return None
        return f"{self.steady_tolerance:g},{self.steady_seconds},{max(self.warmup, 1.0):g}"


class SeedSizes(_Sizes):
    vus: int = Field(ge=1, le=100_000)
    duration: float = Field(gt=0, le=3600)
    warmup: float = Field(0, ge=0, le=600)


class CapacitySizes(_Sizes):
    bounds_ms: list[float] = Field(min_length=1)
    default_bound_ms: float = Field(gt=0)
    step: float = Field(gt=0, le=600, description="measured seconds per probed rate (at least)")
    min_requests: int = Field(0, ge=0, le=10_000_000,
                              description="a probe lasts until about this many requests (a p99 needs ~1000)")
    max_step: float | None = Field(None, gt=0, le=3600, description="but never longer than this")
    warmup: float = Field(0, ge=0, le=300, description="seconds at the probed rate before measuring it")
    max_steps: int = Field(ge=2, le=50)
    min_rate: float = Field(gt=0)
    growth: float = Field(gt=1, le=4, description="factor between rates while stepping up")
    resolution: float = Field(gt=0, lt=1, description="bisect until the bracket is narrower than this fraction")
    max_vus: int = Field(ge=1, le=100_000)

    @model_validator(mode="after")
    def _bounds(self) -> CapacitySizes:
        if any(b <= 0 for b in self.bounds_ms) or sorted(set(self.bounds_ms)) != list(self.bounds_ms):
            raise ValueError("bounds_ms: positive, increasing, without repeats")
        if self.default_bound_ms not in self.bounds_ms:
            raise ValueError(f"default_bound_ms {self.default_bound_ms:g} must be one of bounds_ms")
        if self.max_step is not None and self.max_step < self.step:
            raise ValueError("max_step must be at least step")
        return self

    def probe_seconds(self, rate: float) -> float:
        """How long a probe at ``rate`` measures: ``step``, longer for ~``min_requests``, at most ``max_step``."""
        wanted = max(self.step, self.min_requests / rate if rate > 0 else self.step)
        return min(wanted, self.max_step) if self.max_step else wanted


class EfficiencySizes(_Sizes):
    rate: float = Field(gt=0, description="requests per second, the same for every target")
    duration: float = Field(gt=0, le=3600)
    idle: float = Field(gt=0, le=600, description="seconds of memory sampling before the load")
    after: float = Field(gt=0, le=600, description="seconds of memory sampling after the load")


class StreamingSizes(_Sizes):
    profile: str = Field(description="the mock's pacing profile while streaming (mock_llm/profiles.yaml)")
    output_tokens: int | None = Field(None, ge=2, le=100_000, description="chunks per answer (profile's if unset)")
    concurrency: int = Field(ge=1, le=10_000, description="streams open at once on each side (direct, target)")
    duration: float = Field(gt=0, le=3600)


class ConcurrencySizes(_Sizes):
    """The closed-loop frontier: a closed loop at each of ``levels`` VUs (increasing); the most requests per
    second whose p99 stays under each bound, as the concurrency-climb harnesses publish it."""

    levels: list[int] = Field(min_length=2, description="VUs, increasing")
    duration: float = Field(gt=0, le=3600)
    warmup: float = Field(0, ge=0, le=600)
    min_gain: float = Field(0.05, ge=0, lt=1, description="stop once throughput grew less than this fraction "
                            "for two levels in a row (the target has stopped scaling)")

    @field_validator("levels")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(v < 1 for v in value) or sorted(set(value)) != list(value):
            raise ValueError("levels: positive, increasing, without repeats")
        return value


class FaultScenario(_Sizes):
    """One scenario of the faults suite: the mock serves ``plan`` (mock_llm/faults.yaml) while k6 sends the
    fixed arrival rate with this request timeout, streaming or not."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="the step's name: faults-<name>")
    plan: str = Field(description="a fault plan of mock_llm/faults.yaml")
    stream: bool = False
    duration: float | None = Field(None, ge=1, le=3600, description="measured seconds (none: the profile's)")
    request_timeout: float | None = Field(None, ge=1, le=600, description="k6's request timeout (none: the "
                                          "profile's); shorter than the mock's answer, the client gives up")
    description: str = ""

    @field_validator("plan")
    @classmethod
    def _known_plan(cls, value: str) -> str:
        plans = load_plans()
        if value not in plans:
            raise ValueError(f"unknown fault plan '{value}' (known: {', '.join(plans)}; {FAULTS_FILE})")
        return value


class FaultsSizes(_Sizes):
    """The faults suite (docs/faults.md): each scenario at ``rate`` requests per second for ``duration``."""

    rate: float = Field(gt=0, le=100_000, description="requests per second, the same for every target and scenario")
    duration: float = Field(gt=0, le=3600)
    request_timeout: float = Field(10.0, ge=1, le=600, description="k6's request timeout unless a scenario sets one")
    vus: int = Field(20, ge=1, le=100_000, description="VUs allocated before the start")
    max_vus: int = Field(200, ge=1, le=100_000)
    settle: float = Field(0.3, ge=0, le=30, description="seconds after k6 ends before the mocks' records are read "
                          "(a client's close is noted as the mock sees it)")
    scenarios: list[FaultScenario] = Field(min_length=1)

    @field_validator("scenarios")
    @classmethod
    def _unique(cls, value: list[FaultScenario]) -> list[FaultScenario]:
        names = [s.name for s in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"scenario names must be unique: {', '.join(twice)} given twice")
        return value

    def timeout_of(self, scenario: FaultScenario) -> float:
        return scenario.request_timeout or self.request_timeout

    def duration_of(self, scenario: FaultScenario) -> float:
        return scenario.duration or self.duration

    def seconds(self) -> float:
        """At most how long the scenarios measure (each to its last request's timeout)."""
        return sum(self.duration_of(s) + self.timeout_of(s) + self.settle for s in self.scenarios)


STEPS = ("overhead", "seed", "capacity", "concurrency", "efficiency", "streaming", "faults")
StepName = Literal["overhead", "seed", "capacity", "concurrency", "efficiency", "streaming", "faults"]


class SuiteSizes(_Sizes):
    repeats: int = Field(1, ge=1, le=100)
    steps: list[StepName] | None = Field(None, description="the steps to run, always in the suite's order "
                                         "(none: every step the profile sizes); the others are recorded as "
                                         "skipped. The seed is always run: the comparison's rows come from it")
    overhead: OverheadSizes
    seed: SeedSizes
    capacity: CapacitySizes
    concurrency: ConcurrencySizes | None = Field(None, description="none: no closed-loop frontier")
    efficiency: EfficiencySizes
    streaming: StreamingSizes
    faults: FaultsSizes | None = Field(None, description="none: no faults scenarios (docs/faults.md)")

    @model_validator(mode="after")
    def _steps_have_sizes(self) -> SuiteSizes:
        if self.steps is not None:
            if "faults" in self.steps and self.faults is None:
                raise ValueError("steps: 'faults' is listed but the profile has no faults sizes")
            if "seed" not in self.steps:
                raise ValueError("steps: the seed (the published shape) is always run: the comparison's rows come "
                                 "from it; list it with the steps you want")
            if "concurrency" in self.steps and self.concurrency is None:
                raise ValueError("steps: 'concurrency' is listed but the profile has no concurrency sizes")
        return self

    def runs(self, step: str) -> bool:
        """Whether this profile runs ``step`` (concurrency only where it is sized)."""
        if (step == "concurrency" and self.concurrency is None) or (step == "faults" and self.faults is None):
            return False
        return self.steps is None or step in self.steps

    def session_seconds(self) -> float:
        """At most how long one session measures (every capacity probe at its longest), for planning."""
        c, o, k = self.capacity, self.overhead, self.concurrency
        seconds = {"overhead": (o.warmup_max or o.warmup) + o.duration, "seed": self.seed.warmup + self.seed.duration,
                   "capacity": c.max_steps * (c.warmup + (c.max_step or c.step)),
                   "concurrency": len(k.levels) * (k.warmup + k.duration) if k else 0.0,
                   "efficiency": self.efficiency.idle + self.efficiency.duration + self.efficiency.after,
                   "streaming": self.streaming.duration,
                   "faults": self.faults.seconds() if self.faults else 0.0}
        return sum(v for step, v in seconds.items() if self.runs(step))


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: int = Field(1000, ge=1, le=200_000)
    max_tokens: int = Field(256, ge=1, le=200_000)


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    body: Body = Body()
    variants: str | None = Field(None, description="run each target's catalog variants whose `suite` is this "
                                 "(e.g. policies); none: the entries as they are")
    profiles: dict[Profile, SuiteSizes]

    def sizes(self, profile: Profile) -> SuiteSizes:
        if profile not in self.profiles:
            raise ConfigError(f"suite '{self.name}' has no '{profile}' profile")
        return self.profiles[profile]


def list_suites(directory: Path = SUITE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_suite(name: str, directory: Path = SUITE_DIR) -> Suite:
    """A shipped suite by name, or a suite file of your own by path (``--suite my-suite.yaml``)."""
    by_path = name.endswith((".yaml", ".yml")) or "/" in name
    path = Path(name) if by_path else directory / f"{name}.yaml"
    if not path.is_file():
        if by_path:
            raise ConfigError(f"suite file {path} not found")
        raise ConfigError(f"unknown suite '{name}'. Known suites: {', '.join(list_suites(directory))} "
                          "(or give the path of a suite file)")
    try:
        suite = Suite.model_validate(load_yaml(path))
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err, "suite")) from None
    if suite.name != path.stem:
        raise ConfigError(f"{path}: name '{suite.name}' must equal the file name '{path.stem}'")
    return suite


RIG_FILE = REPO_DIR / "k6_scripts" / "rig.yaml"


class RigCeilingSizes(_Sizes):
    vus: int = Field(ge=1, le=100_000)
    duration: float = Field(gt=0, le=3600)
    warmup: float = Field(0, ge=0, le=600)


class RigFloorSizes(_Sizes):
    duration: float = Field(gt=0, le=3600)
    warmup: float = Field(0, ge=0, le=600)


class NoiseSizes(_Sizes):
    """The noise guard (aigw_bench/local/noise.py): what counts as a disturbed window, and what is done."""

    threshold_cores: float = Field(0.10, gt=0, le=64, description="foreign CPU (cores, averaged over a window) "
                                   "above which a window is disturbed")
    max_remeasure: int = Field(2, ge=0, le=10, description="a disturbed window is measured again at most this "
                               "often; still disturbed, its figures are flagged")
    quiet_wait: float = Field(60.0, ge=0, le=3600, description="before a run, wait at most this long for a quiet "
                              "second")

    @field_validator("quiet_wait", mode="before")
    @classmethod
    def _wait_seconds(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class RigSizes(_Sizes):
    ceiling: RigCeilingSizes
    floor: RigFloorSizes
    noise: NoiseSizes = NoiseSizes()


def load_rig_sizes(profile: Profile, path: Path | None = None) -> RigSizes:
    """The rig's sizes for ``profile``: from ``path``, else the file named by ``AIGW_BENCH_RIG`` (a
    machine of your own, or the tests' short rig), else ``k6_scripts/rig.yaml``."""
    path = path or Path(os.environ.get("AIGW_BENCH_RIG") or RIG_FILE)
    if not path.is_file():
        raise ConfigError(f"rig sizes file {path} not found (AIGW_BENCH_RIG names it)")
    data = load_yaml(path)
    raw = (data.get("profiles") or {}).get(profile)
    if raw is None:
        raise ConfigError(f"{path}: no '{profile}' profile")
    try:
        return RigSizes.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, err, "rig sizes")) from None
