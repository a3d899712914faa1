"""Scenarios (``k6_scripts/scenarios/*.yaml``) and their validated parameters.

A scenario fixes the shape of the load (k6 executor, the request body, the mock's pacing, the report's
sections); its parameters (VUs, duration, iterations, stages, prompt, ...) have defaults per profile
(``local`` or ``cloud``) and every one can be overridden. Bad values fail here, before anything
starts, with a message naming the parameter.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schema.base import REPO_DIR, load_yaml
from schema.errors import ConfigError
from schema.manifest import ScenarioRecord

SCENARIO_DIR = REPO_DIR / "k6_scripts" / "scenarios"

Executor = Literal["constant-vus", "constant-arrival-rate", "per-vu-iterations", "shared-iterations", "ramping-vus"]
Profile = Literal["local", "cloud"]
# Executors that run a number of iterations (``iterations``); ``duration`` is then their k6 maxDuration.
ITERATION_EXECUTORS = ("per-vu-iterations", "shared-iterations")
# Executors whose warm-up is not a shorter run of their own load: the script switches to a closed loop
# of ``warmup_vus`` for ``warmup`` seconds (AIGW_WARMUP=1, set by whoever starts k6 for a warm-up).
WARMUP_SWITCH_EXECUTORS = (*ITERATION_EXECUTORS, "ramping-vus")
# Report sections a scenario may ask for (analysis/scenario_results.py): its harness's own figures.
# ``hey_tool``: also run the published tool itself (hey) after k6, and show its own output beside k6's.
ReportSection = Literal["completion_metrics", "stages", "drift", "latency_distribution", "hey_tool"]
# The system message of the bodies that have one.
SYSTEM_PROMPT = "You are a concise assistant."

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_FULL = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a k6 duration string (``20s``, ``3m``, ``1m30s``, ``500ms``); a bare number is seconds."""
    value = str(text).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    if not _DURATION_FULL.match(value):
        raise ValueError(f"'{text}' is not a duration; use forms like 20s, 3m, 1m30s, 500ms")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def format_duration(seconds: float) -> str:
    """A k6 duration string for a number of seconds (millisecond precision)."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


class Stage(BaseModel):
    """One stage of a ramping-vus scenario: k6 moves the VU count linearly to ``target`` over ``duration``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration: float = Field(gt=0, le=24 * 3600)
    target: int = Field(ge=0, le=100_000)

    @field_validator("duration", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class ScenarioParams(BaseModel):
    """The knobs of one run. Durations are seconds (parsed from k6 duration strings).

    The request body is built from the last group (:func:`k6_scripts.render.build_body`): a field set
    to null is left out of the body, so a scenario describes exactly the body its harness sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vus: int = Field(ge=1, le=100_000, description="virtual users (pre-allocated VUs for arrival-rate; the VUs at "
                                                   "the start for ramping-vus, k6's startVUs)")
    duration: float = Field(gt=0, le=24 * 3600, description="measured duration per target and repeat; iteration "
                                                             "executors: the most it may take (k6 maxDuration); "
                                                             "ramping-vus: the stages' total (computed)")
    warmup: float = Field(0, ge=0, le=3600, description="load before the measurement, excluded from results")
    iterations: int | None = Field(None, ge=1, le=100_000_000,
                                   description="per-vu-iterations: iterations per VU; shared-iterations: in total")
    stages: tuple[Stage, ...] | None = Field(None, min_length=1, max_length=100,
                                             description="ramping-vus: the VU targets and how long to reach each")
    warmup_vus: int | None = Field(None, ge=1, le=100_000,
                                   description="iteration and ramping executors: VUs of the warm-up's closed loop "
                                               "(default: vus)")
    think_time: float = Field(0, ge=0, le=3600, description="pause after each answer before the next request "
                                                           "(k6 sleep), seconds")
    prompt_tokens: int | None = Field(None, ge=1, le=200_000,
                                      description="a generated user prompt of this size in (estimated) tokens")
    prompt: str | None = Field(None, min_length=1, max_length=1_000_000,
                               description="the user prompt as literal text (instead of prompt_tokens)")
    system_prompt: str | None = Field(SYSTEM_PROMPT, description="the system message; null: none")
    max_tokens: int | None = Field(256, ge=1, le=200_000, description="max_tokens in the body; null: left out")
    temperature: int | float | None = Field(0, ge=0, le=2, description="temperature in the body; null: left out")
    stream: bool | None = Field(False, description="stream in the body; null: left out (the API does not stream)")
    usage_metrics: bool = Field(False, description="read usage.completion_tokens of every successful answer: "
                                                   "output tokens per second, per request and in total")
    rate: int | None = Field(None, ge=1, le=10_000_000, description="requests per second (arrival-rate)")
    max_vus: int | None = Field(None, ge=1, le=100_000, description="VU ceiling (arrival-rate)")
    request_timeout: float = Field(60, gt=0, le=3600, description="per-request timeout")
    prompt_seed: int = Field(1, ge=0, description="seed of the deterministic prompt text")
    full_check_every: int = Field(
        1, ge=1, le=1000,
        description="parse every Nth answer of each VU in full (JSON); the others are checked for the answer's "
                    "markers only, which costs the load generator less")

    @field_validator("duration", "warmup", "request_timeout", mode="before")
    @classmethod
    def _parse_duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_duration(value)
        return value

    @field_validator("duration", "warmup")
    @classmethod
    def _k6_minimum(cls, value: float) -> float:
        # k6 refuses scenarios shorter than a second (exit code 104); a warm-up of 0 is none.
        if 0 < value < 1:
            raise ValueError("k6 runs last at least 1s (a warm-up of 0 is none)")
        return value

    @field_validator("think_time", mode="before")
    @classmethod
    def _parse_think_time(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_prompt(self) -> ScenarioParams:
        if (self.prompt is None) == (self.prompt_tokens is None):
            raise ValueError("give the user prompt either as prompt_tokens (a generated text of that size) or as "
                             "prompt (literal text), not both and not neither")
        return self


class Scenario(BaseModel):
    """A scenario file: the load's shape plus default parameters per profile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    executor: Executor
    source: str | None = Field(None, description="where the shape comes from (the original harness), for the report")
    template: str = "chat_completions.js.j2"
    mock_profile: str = Field("instant", description="the mock's pacing profile (mock_llm/profiles.yaml)")
    report: list[ReportSection] = Field(default_factory=list, description="the harness's own report sections")
    defaults: dict[str, Any] = Field(default_factory=dict)
    profiles: dict[Profile, dict[str, Any]]

    @model_validator(mode="after")
    def _profiles_valid(self) -> Scenario:
        if "stages" in self.report and self.executor != "ramping-vus":
            raise ValueError(f"report section 'stages' needs the ramping-vus executor, not {self.executor}")
        for profile in self.profiles:
            self.params(profile)  # raises on a bad default
        return self

    def _merged(self, profile: Profile, overrides: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults, then the profile's values, then the overrides; a later layer's prompt (literal or
        generated) replaces an earlier layer's of either kind, so ``--prompt-tokens`` works everywhere."""
        merged: dict[str, Any] = {}
        for layer in (self.defaults, self.profiles[profile], {k: v for k, v in (overrides or {}).items()
                                                               if v is not None}):
            if "prompt" in layer or "prompt_tokens" in layer:
                merged.pop("prompt", None)
                merged.pop("prompt_tokens", None)
            merged.update(layer)
        if self.executor != "ramping-vus":
            return merged
        if "stages" in merged and "duration" not in merged and isinstance(merged["stages"], list | tuple):
            # A ramping scenario lasts as long as its stages: nothing else to say (or to contradict).
            with contextlib.suppress(ValidationError):  # reported with the stage's own field below
                merged["duration"] = sum(Stage.model_validate(s).duration for s in merged["stages"])
        elif "stages" in merged and "duration" in merged:
            raise ConfigError(f"scenario '{self.name}': duration: a ramping-vus scenario lasts as long as its "
                              "stages; leave duration (--duration) out and change the stages instead")
        return merged

    def max_vus(self, params: ScenarioParams) -> int:
        """The most VUs the measured run may use (how far several load generators may split it)."""
        if self.executor == "constant-arrival-rate":
            return max(params.vus, params.max_vus or params.vus)
        if self.executor == "ramping-vus":
            return max([params.vus, *(s.target for s in params.stages or ())])
        return params.vus

    def warmup_max_vus(self, params: ScenarioParams) -> int:
        """The most VUs of the warm-up: a closed loop of ``warmup_vus`` for the executors that switch
        (AIGW_WARMUP=1), else a shorter run of the scenario's own load."""
        if self.executor in WARMUP_SWITCH_EXECUTORS:
            return params.warmup_vus or params.vus
        return self.max_vus(params)

    def params(self, profile: Profile, overrides: dict[str, Any] | None = None) -> ScenarioParams:
        """Defaults, then the profile's values, then ``overrides`` (None values are ignored)."""
        if profile not in self.profiles:
            raise ConfigError(f"scenario '{self.name}' has no '{profile}' profile")
        merged = self._merged(profile, overrides)
        try:
            params = ScenarioParams.model_validate(merged)
        except ValidationError as err:
            problems = "; ".join(
                (f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "")
                + e["msg"].removeprefix("Value error, ")
                for e in err.errors()
            )
            raise ConfigError(f"scenario '{self.name}': invalid parameter: {problems}") from None
        self._check_executor(params)
        return params

    def _check_executor(self, params: ScenarioParams) -> None:
        """The parameters the executor needs, and none that only another executor reads."""
        where = f"scenario '{self.name}' uses {self.executor}"
        if self.executor == "constant-arrival-rate":
            if params.rate is None:
                raise ConfigError(f"scenario '{self.name}': 'rate' (requests per second) is required")
            if params.max_vus is not None and params.max_vus < params.vus:
                raise ConfigError(f"scenario '{self.name}': max_vus ({params.max_vus}) < vus ({params.vus})")
        elif params.rate is not None:
            raise ConfigError(f"{where}: 'rate' applies to arrival-rate scenarios only")
        if self.executor in ITERATION_EXECUTORS:
            if params.iterations is None:
                raise ConfigError(f"{where}: 'iterations' is required (" + (
                    "per VU)" if self.executor == "per-vu-iterations" else "in total, shared by the VUs)"))
            if self.executor == "shared-iterations" and params.iterations < params.vus:
                # k6 refuses it too ("iterations ... can't be less than the number of VUs").
                raise ConfigError(f"{where}: iterations ({params.iterations}) < vus ({params.vus})")
        elif params.iterations is not None:
            raise ConfigError(f"{where}: 'iterations' applies to per-vu-iterations and shared-iterations only")
        if self.executor == "ramping-vus":
            if not params.stages:
                raise ConfigError(f"{where}: 'stages' is required (a list of {{duration, target}})")
        elif params.stages is not None:
            raise ConfigError(f"{where}: 'stages' applies to ramping-vus only")
        if params.warmup_vus is not None and self.executor not in WARMUP_SWITCH_EXECUTORS:
            raise ConfigError(f"{where}: 'warmup_vus' applies to iteration and ramping executors only (the "
                              "others warm up with a shorter run of their own load)")


def list_scenarios(directory: Path = SCENARIO_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_scenario(name: str, directory: Path = SCENARIO_DIR) -> Scenario:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown scenario '{name}'. Known scenarios: {', '.join(list_scenarios(directory))}")
    data = load_yaml(path)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"{path}: invalid scenario: {problems}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if scenario.name != name:
        raise ConfigError(f"{path}: name '{scenario.name}' must equal the file name '{name}'")
    return scenario


def scenario_record(scenario: Scenario, params: ScenarioParams) -> ScenarioRecord:
    """The scenario as the manifest records it."""
    return ScenarioRecord(name=scenario.name, executor=scenario.executor, description=scenario.description,
                          source=scenario.source, mock_profile=scenario.mock_profile, report=list(scenario.report),
                          params=params.model_dump(mode="json"))
